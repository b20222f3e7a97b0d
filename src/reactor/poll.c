/* src/reactor/poll.c: the poll phase of an iteration, around whichever backend the loop uses.
 *
 * The backend waits and fills the ready list; everything else about the wait is here, once
 * for every backend: retrying EINTR with what is left of the timeout, the cached clock, the
 * counters, dispatching the batch within the dispatch's fairness budget (budget.c), and the
 * stale-event check (the instance bit, watcher.c).
 * The backend's ops table is read once per iteration; dispatch makes no indirect call of its
 * own beyond the owner's io callback.
 */
#include "backend.h"
#include "ring.h"
#include "reactor_internal.h"

#include <errno.h>

int zev__backend_wake(zev_loop_t *loop) {
    return loop->backend->ops->wake(loop);
}

static void account_poll(zev_loop_t *loop, uint64_t blocked_ns, int n_events) {
    zev_loop_metrics_t *m = &loop->metrics;
    m->polls++;
    m->blocked_ns += blocked_ns;
    if (n_events <= 0) return;
    m->wakeups++;
    m->events += (unsigned)n_events;
    if ((unsigned)n_events > m->max_events) m->max_events = (unsigned)n_events;
}

/* What is left of timeout_ms after spent_ns; -1 (forever) and 0 stay as they are. */
static int time_left(int timeout_ms, uint64_t spent_ns) {
    if (timeout_ms <= 0) return timeout_ms;
    uint64_t spent_ms = spent_ns / 1000000u;
    return spent_ms >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent_ms;
}

/* The instance bit the event was registered with must still be the watcher's: a stop since
 * flipped it (watcher.c). A delivered event also proves that the watcher's last flip is
 * behind this batch, so the next stop may flip again. */
static struct zev_watcher *live_watcher(uintptr_t tag) {
    struct zev_watcher *w = zev__tag_watcher(tag);
    if (!w || zev__watcher_tag(w) != tag) return NULL;
    if (w->flags & ZEV__W_FLIPPED) w->flags &= (uint8_t)~ZEV__W_FLIPPED;
    return w;
}

/* Whether w's fresh event runs now or joins the pending queue (fed: ahead of owners that
 * yielded). A watcher already pending has a turn coming: the event joins it, so a busy owner
 * gets one turn per pass however many edges it raises. Once the phase's budget is spent the
 * rest of the batch is only queued, O(1) each, and runs first in the next pending phase.
 * Priority watchers (the wake-up, listeners) always run at once. */
static void deliver(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    if ((w->flags & ZEV__W_PRIORITY) || !((w->flags & ZEV__W_PENDING) || loop->budget.over)) {
        zev__watcher_dispatch(loop, w, revents);
        return;
    }
    zev__watcher_feed(loop, w, revents);
}

/* A completion backend's result for an operation a handle submitted: it carries data (a
 * received buffer, a count of bytes sent), so it goes to the owner, never to the pending
 * queue; once the phase's budget is spent, it waits for the next wait instead, in the
 * backend, as a readiness event would wait in the pending queue. No instance bit: a handle
 * that stops ends its operations synchronously (ring.h, zev__ring_forget), voiding its
 * results in this batch (tag 0) and those the backend kept. */
static void complete(zev_loop_t *loop, struct zev__backend *b, const struct zev__ready *e) {
    if (!e->tag) return;
    if (loop->budget.over && b->ops->defer && b->ops->defer(loop, e) == 0) return;
    zev_handle_t *owner = zev__watcher_owner(zev__ready_watcher(e));
    owner->ops->complete(owner, e);
}

/* Hazard: any callback may stop, close or restart any watcher, this one or one later in the
 * batch; live_watcher() checks each entry just before its turn, never ahead. */
static void dispatch(zev_loop_t *loop, struct zev__backend *b, unsigned n) {
    b->n_ready = n;
    for (unsigned i = 0; i < n; i++) {
        b->next_ready = i + 1;
        if (b->ready[i].revents & ZEV__COMPLETED) {
            complete(loop, b, &b->ready[i]);
            continue;
        }
        struct zev_watcher *w = live_watcher(b->ready[i].tag);
        if (w) deliver(loop, w, b->ready[i].revents);
    }
    b->n_ready = 0;
    b->next_ready = 0;
}

void zev__loop_drop_ready(zev_loop_t *loop, const struct zev_watcher *w) {
    struct zev__backend *b = loop->backend;
    for (unsigned i = b->next_ready; i < b->n_ready; i++) {
        if (zev__tag_watcher(b->ready[i].tag) == w) b->ready[i].tag = 0;
    }
}

int zev__loop_poll(zev_loop_t *loop, int timeout_ms) {
    struct zev__backend *b = loop->backend;
    int (*wait)(zev_loop_t *, int) = b->ops->wait;
    uint64_t start = zev_hrtime();
    for (;;) {
        int n = wait(loop, timeout_ms);
        uint64_t end = zev_hrtime();
        account_poll(loop, end - start, n);
        loop->now_ms = end / 1000000u;
        zev__budget_begin(loop, end);
        if (n > 0) dispatch(loop, b, (unsigned)n);
        if (n != -EINTR) return n < 0 ? n : 0;
        timeout_ms = time_left(timeout_ms, end - start);
        start = end;
    }
}
