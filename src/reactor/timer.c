/* src/reactor/timer.c: timer nodes on the heap in heap.c, and the zev_timer_t handle.
 *
 * A node is armed while it sits in the heap. The run phase fires only nodes armed before the
 * phase began, so a callback that starts a timer with timeout 0 (or a repeat that is already
 * due) cannot make the phase loop forever: that timer waits for the next iteration.
 */
#include "reactor_internal.h"

#include <errno.h>
#include <limits.h>

static uint64_t deadline_after(const zev_loop_t *loop, uint64_t timeout_ms) {
    uint64_t d = loop->now_ms + timeout_ms;
    return d < loop->now_ms ? UINT64_MAX : d; /* saturate instead of wrapping into the past */
}

void zev__timer_node_start(zev_loop_t *loop, struct zev__timer_node *n, uint64_t timeout_ms) {
    if (zev__timer_node_armed(loop, n)) zev__timer_heap_remove(loop, n);
    n->deadline_ms = deadline_after(loop, timeout_ms);
    n->start_seq = loop->timer_seq++;
    zev__timer_heap_insert(loop, n);
}

void zev__timer_node_stop(zev_loop_t *loop, struct zev__timer_node *n) {
    if (zev__timer_node_armed(loop, n)) zev__timer_heap_remove(loop, n);
}

int zev__timer_next_timeout(const zev_loop_t *loop) {
    const struct zev__timer_node *n = zev__timer_heap_min(loop);
    if (!n) return -1;
    if (n->deadline_ms <= loop->now_ms) return 0;
    uint64_t diff = n->deadline_ms - loop->now_ms;
    return diff > INT_MAX ? INT_MAX : (int)diff;
}

unsigned zev__timer_run_due(zev_loop_t *loop) {
    uint64_t armed_before = loop->timer_seq;
    unsigned fired = 0;
    for (;;) {
        struct zev__timer_node *n = zev__timer_heap_min(loop);
        if (!n || n->deadline_ms > loop->now_ms || n->start_seq >= armed_before) break;
        zev__timer_heap_remove(loop, n);
        loop->metrics.timers_fired++;
        fired++;
        n->fire(loop, n); /* may re-arm n, or free the memory that holds it */
    }
    return fired;
}

/* ---- zev_timer_t ---- */

static void timer_close(zev_handle_t *h) {
    zev_timer_t *t = (zev_timer_t *)h;
    zev__timer_node_stop(h->loop, &t->node);
}

static void timer_inspect(const zev_handle_t *h, zev_handle_info_t *out) {
    out->due_in_ms = zev_timer_get_due_in((const zev_timer_t *)h);
}

static const struct zev__handle_ops timer_ops = {
    .close = timer_close, .finish = NULL, .inspect = timer_inspect};

static void timer_fire(zev_loop_t *loop, struct zev__timer_node *n) {
    zev_timer_t *t = zev__container_of(n, zev_timer_t, node);
    /* Re-arm (or go inactive) before the callback, so it sees a consistent timer and may
     * stop, restart or close it. */
    if (t->repeat_ms) {
        zev__timer_node_start(loop, n, t->repeat_ms);
    } else {
        zev__handle_stop(&t->handle);
    }
    t->cb(t);
}

int zev_timer_init(zev_loop_t *loop, zev_timer_t *t) {
    if (!loop || !t) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    zev__debug_handle_fresh(loop, &t->handle, &timer_ops);
    *t = (zev_timer_t){0};
    int err = zev__handle_init(loop, &t->handle, ZEV_TIMER, &timer_ops);
    if (err < 0) return err;
    t->node.fire = timer_fire;
    return 0;
}

static void timer_arm(zev_timer_t *t, uint64_t timeout_ms) {
    zev__timer_node_start(t->handle.loop, &t->node, timeout_ms);
    zev__handle_start(&t->handle);
}

static void timer_disarm(zev_timer_t *t) {
    zev__timer_node_stop(t->handle.loop, &t->node);
    zev__handle_stop(&t->handle);
}

int zev_timer_start(zev_timer_t *t, zev_timer_cb cb, int64_t timeout_ms, int64_t repeat_ms) {
    if (!t || !cb || timeout_ms < 0 || repeat_ms < 0) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    t->cb = cb;
    t->repeat_ms = (uint64_t)repeat_ms;
    timer_arm(t, (uint64_t)timeout_ms);
    return 0;
}

int zev_timer_stop(zev_timer_t *t) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    timer_disarm(t);
    return 0;
}

int zev_timer_again(zev_timer_t *t) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (!t->cb) return -EINVAL;
    if (t->repeat_ms == 0) {
        timer_disarm(t);
        return 0;
    }
    timer_arm(t, t->repeat_ms);
    return 0;
}

int zev_timer_set_repeat(zev_timer_t *t, int64_t repeat_ms) {
    if (!t || repeat_ms < 0) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    t->repeat_ms = (uint64_t)repeat_ms;
    return 0;
}

uint64_t zev_timer_get_repeat(const zev_timer_t *t) {
    return t ? t->repeat_ms : 0;
}

uint64_t zev_timer_get_due_in(const zev_timer_t *t) {
    if (!t || !(t->handle.flags & ZEV__H_ACTIVE)) return 0;
    uint64_t now = t->handle.loop->now_ms;
    return t->node.deadline_ms > now ? t->node.deadline_ms - now : 0;
}
