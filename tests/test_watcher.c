/* tests/test_watcher.c: the backend through the internal watcher API, on pipes and
 * socketpairs: edge-triggered delivery, hang-up, stale events, the pending queue. */
#include "reactor_internal.h"
#include "zt.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(watcher, .init = zt_setup, .fini = zt_teardown, .timeout = 10);

/* A watcher's events go to the ops of the handle just before it, so a probe has one too
 * (never initialised as a handle: only its ops are read). */
struct probe {
    zev_handle_t h;
    struct zev_watcher w;
    int calls;
    unsigned last;
    struct probe *victim; /* stopped by this probe's callback, if set */
    int restarts;         /* stop and start the victim this many times instead of closing it */
};

static void on_event(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    struct probe *p = zev__container_of(w, struct probe, w);
    p->calls++;
    p->last = revents;
    if (!p->victim) return;
    if (p->restarts == 0) {
        zev__watcher_stop(loop, &p->victim->w);
        close(p->victim->w.fd);
        p->victim->w.fd = -1;
    }
    for (int i = 0; i < p->restarts; i++) {
        zev__watcher_stop(loop, &p->victim->w);
        cr_assert_eq(zev__watcher_start(loop, &p->victim->w, ZEV__READABLE), 0);
    }
}

static const struct zev__handle_ops probe_ops = {.io = on_event};

static void probe_init(struct probe *p, int fd) {
    p->h.ops = &probe_ops;
    zev__watcher_init(&p->w, fd);
}

static zev_timer_t keepalive;

static void noop(zev_timer_t *t) {
    (void)t;
}

/* One blocking-free iteration with a referenced handle, so the loop really polls. */
static void iterate(void) {
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
}

static void keepalive_start(void) {
    zev_timer_init(&zt_loop, &keepalive);
    zev_timer_start(&keepalive, noop, 60000, 0);
}

static void keepalive_close(void) {
    zev_close(&keepalive.handle, NULL);
    zt_run();
}

Test(watcher, a_readable_pipe_reaches_the_watcher_once_per_edge) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct probe p = {0};
    keepalive_start();
    probe_init(&p, fds[0]);
    cr_assert_eq(zev__watcher_start(&zt_loop, &p.w, ZEV__READABLE), 0);
    iterate();
    cr_assert_eq(p.calls, 0, "nothing written yet");
    cr_assert_eq(write(fds[1], "x", 1), 1);
    iterate();
    cr_assert_eq(p.calls, 1);
    cr_assert(p.last & ZEV__READABLE);
    iterate();
    cr_assert_eq(p.calls, 1, "edge-triggered: unread data is not reported again");
    cr_assert_eq(write(fds[1], "y", 1), 1);
    iterate();
    cr_assert_eq(p.calls, 2, "new data is a new edge");
    zev__watcher_stop(&zt_loop, &p.w);
    close(fds[0]);
    close(fds[1]);
    keepalive_close();
}

Test(watcher, a_socket_is_writable_once_after_registration) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct probe p = {0};
    keepalive_start();
    probe_init(&p, sv[0]);
    zev__watcher_start(&zt_loop, &p.w, ZEV__READABLE | ZEV__WRITABLE);
    iterate();
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.last & (ZEV__WRITABLE | ZEV__READABLE), ZEV__WRITABLE);
    iterate();
    cr_assert_eq(p.calls, 1);
    zev__watcher_stop(&zt_loop, &p.w);
    close(sv[0]);
    close(sv[1]);
    keepalive_close();
}

Test(watcher, peer_close_is_reported_as_hangup) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct probe p = {0};
    keepalive_start();
    probe_init(&p, sv[0]);
    zev__watcher_start(&zt_loop, &p.w, ZEV__READABLE);
    iterate();
    close(sv[1]);
    iterate();
    cr_assert_geq(p.calls, 1);
    cr_assert(p.last & ZEV__HANGUP);
    cr_assert(p.last & ZEV__READABLE, "a hang-up is readable: read() returns the EOF");
    zev__watcher_stop(&zt_loop, &p.w);
    close(sv[0]);
    keepalive_close();
}

/* Two probes on socketpairs a and b, each the other's victim, both readable before the poll:
 * one batch holds both events, and whichever callback runs first acts on the other. */
static void two_victims_in_one_batch(struct probe *pa, struct probe *pb, int a[2], int b[2],
                                     int restarts) {
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    pa->victim = pb;
    pb->victim = pa;
    pa->restarts = pb->restarts = restarts;
    keepalive_start();
    probe_init(pa, a[0]);
    probe_init(pb, b[0]);
    zev__watcher_start(&zt_loop, &pa->w, ZEV__READABLE);
    zev__watcher_start(&zt_loop, &pb->w, ZEV__READABLE);
    cr_assert_eq(write(a[1], "a", 1), 1);
    cr_assert_eq(write(b[1], "b", 1), 1);
    iterate();
}

Test(watcher, a_watcher_stopped_earlier_in_the_batch_never_gets_its_stale_event) {
    int a[2], b[2];
    struct probe pa = {0}, pb = {0};
    /* The first callback stops and closes the other; the other's event must be dropped. */
    two_victims_in_one_batch(&pa, &pb, a, b, 0);
    cr_assert_eq(pa.calls + pb.calls, 1, "exactly one callback ran");
    struct probe *survivor = pa.calls ? &pa : &pb;
    zev__watcher_stop(&zt_loop, &survivor->w);
    close(survivor->w.fd);
    close(a[1]);
    close(b[1]);
    keepalive_close();
}

/* The first callback stops and restarts the other `restarts` times. The other's event was
 * fetched for its first registration and must be dropped; the new registration reports the
 * unread byte in the next batch. */
static void restart_within_a_batch(int restarts) {
    int a[2], b[2];
    struct probe pa = {0}, pb = {0};
    two_victims_in_one_batch(&pa, &pb, a, b, restarts);
    cr_assert_eq(pa.calls + pb.calls, 1, "the restarted watcher's old event was dropped");
    struct probe *first = pa.calls ? &pa : &pb;
    struct probe *restarted = first->victim;
    first->victim = NULL;
    restarted->victim = NULL;
    iterate();
    cr_assert_eq(restarted->calls, 1, "its new registration reports the unread byte");
    cr_assert(restarted->last & ZEV__READABLE);
    cr_assert_eq(first->calls, 1);
    zev__watcher_stop(&zt_loop, &pa.w);
    zev__watcher_stop(&zt_loop, &pb.w);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    keepalive_close();
}

Test(watcher, a_watcher_stopped_and_restarted_in_the_batch_never_gets_its_old_event) {
    restart_within_a_batch(1);
}

/* Two flips of a one-bit instance would revive the first registration's events. */
Test(watcher, a_watcher_restarted_twice_in_the_batch_never_gets_its_old_event) {
    restart_within_a_batch(2);
}

Test(watcher, a_fed_watcher_runs_next_iteration_without_blocking) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct probe p = {0};
    keepalive_start();
    probe_init(&p, fds[0]);
    zev__watcher_start(&zt_loop, &p.w, ZEV__READABLE);
    zev__watcher_feed(&zt_loop, &p.w, ZEV__READABLE);
    cr_assert_eq(p.calls, 0, "feeding never runs the callback inline");
    /* The pending watcher is progress: ONCE must not then block for the 60 s keepalive
     * (the suite's timeout catches that). */
    zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.last, ZEV__READABLE);
    zev__watcher_stop(&zt_loop, &p.w);
    close(fds[0]);
    close(fds[1]);
    keepalive_close();
}

Test(watcher, stopping_a_fed_watcher_cancels_its_pending_run) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct probe p = {0};
    keepalive_start();
    probe_init(&p, fds[0]);
    zev__watcher_start(&zt_loop, &p.w, ZEV__READABLE);
    zev__watcher_feed(&zt_loop, &p.w, ZEV__READABLE);
    zev__watcher_stop(&zt_loop, &p.w);
    iterate();
    cr_assert_eq(p.calls, 0);
    close(fds[0]);
    close(fds[1]);
    keepalive_close();
}

Test(watcher, events_are_counted_in_the_metrics) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct probe p = {0};
    keepalive_start();
    probe_init(&p, fds[0]);
    zev__watcher_start(&zt_loop, &p.w, ZEV__READABLE);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    zev_loop_metrics_t before, after;
    zev_loop_metrics(&zt_loop, &before);
    iterate();
    zev_loop_metrics(&zt_loop, &after);
    cr_assert_eq(after.events - before.events, 1);
    cr_assert_eq(after.wakeups - before.wakeups, 1);
    cr_assert_geq(after.max_events, 1);
    zev__watcher_stop(&zt_loop, &p.w);
    close(fds[0]);
    close(fds[1]);
    keepalive_close();
}

/* ---- a handle's queue slot: the pending queue while open, the close queue once closed ---- */

struct owned_probe {
    zev_handle_t h;
    struct zev_watcher w;
    int events;
    int closed;
    struct owned_probe *victim; /* closed by this probe's event, if set */
};

static void owned_closed(zev_handle_t *h) {
    ((struct owned_probe *)h)->closed++;
}

static void owned_on_event(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)loop;
    (void)revents;
    struct owned_probe *p = zev__container_of(w, struct owned_probe, w);
    p->events++;
    if (p->victim) zev_close(&p->victim->h, owned_closed);
}

static void owned_close(zev_handle_t *h) {
    struct owned_probe *p = (struct owned_probe *)h;
    zev__watcher_stop(h->loop, &p->w);
}

static const struct zev__handle_ops owned_ops = {.close = owned_close, .io = owned_on_event};

Test(watcher, a_handle_closed_while_its_watcher_is_pending_gets_only_its_close_callback) {
    struct owned_probe a = {0}, b = {0};
    zev__handle_init(&zt_loop, &a.h, ZEV_HANDLE_UNKNOWN, &owned_ops);
    zev__handle_init(&zt_loop, &b.h, ZEV_HANDLE_UNKNOWN, &owned_ops);
    zev__watcher_init(&a.w, -1);
    zev__watcher_init(&b.w, -1);
    a.victim = &b;
    keepalive_start();
    /* Both wait in the pending queue, a first: a's event closes b before b's turn. b's queue
     * slot then moves to the close queue, and b's pending run must be gone with it. */
    zev__watcher_feed(&zt_loop, &a.w, ZEV__READABLE);
    zev__watcher_feed(&zt_loop, &b.w, ZEV__READABLE);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(a.events, 1);
    cr_assert_eq(b.events, 0, "closed while pending: its event is dropped");
    cr_assert(zev_is_closing(&b.h));
    zev__watcher_feed(&zt_loop, &b.w, ZEV__READABLE); /* closing: ignored, slot untouched */
    zev_close(&a.h, owned_closed);
    keepalive_close();
    cr_assert_eq(a.closed, 1);
    cr_assert_eq(b.closed, 1, "b's close callback ran once, after a feed while closing");
    cr_assert_eq(b.events, 0);
}
