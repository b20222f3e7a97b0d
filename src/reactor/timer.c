/* src/reactor/timer.c: timer handles on top of the heap in heap.c.
 *
 * A timer is active while it sits in the heap. The run phase fires only timers started before
 * the phase began, so a callback that starts a timer with timeout 0 (or a repeat that is
 * already due) cannot make the phase loop forever: that timer waits for the next iteration.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>

static void timer_close(zev_handle_t *h) {
    zev_timer_t *t = (zev_timer_t *)h;
    if (h->flags & ZEV__H_ACTIVE) zev__timer_heap_remove(h->loop, t);
}

static const struct zev__handle_ops timer_ops = {.close = timer_close, .finish = NULL};

int zev_timer_init(zev_loop_t *loop, zev_timer_t *t) {
    if (!loop || !t) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    *t = (zev_timer_t){0};
    zev__handle_init(loop, &t->handle, ZEV_TIMER, &timer_ops);
    return 0;
}

static uint64_t deadline_after(const zev_loop_t *loop, uint64_t timeout_ms) {
    uint64_t d = loop->now_ms + timeout_ms;
    return d < loop->now_ms ? UINT64_MAX : d; /* saturate instead of wrapping into the past */
}

static void timer_arm(zev_timer_t *t, uint64_t timeout_ms) {
    zev_loop_t *loop = t->handle.loop;
    if (t->handle.flags & ZEV__H_ACTIVE) zev__timer_heap_remove(loop, t);
    t->deadline_ms = deadline_after(loop, timeout_ms);
    t->start_seq = loop->timer_seq++;
    zev__timer_heap_insert(loop, t);
    zev__handle_start(&t->handle);
}

static void timer_disarm(zev_timer_t *t) {
    if (!(t->handle.flags & ZEV__H_ACTIVE)) return;
    zev__timer_heap_remove(t->handle.loop, t);
    zev__handle_stop(&t->handle);
}

int zev_timer_start(zev_timer_t *t, zev_timer_cb cb, int64_t timeout_ms, int64_t repeat_ms) {
    if (!t || !cb || timeout_ms < 0 || repeat_ms < 0) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return -EBADF;
    t->cb = cb;
    t->repeat_ms = (uint64_t)repeat_ms;
    timer_arm(t, (uint64_t)timeout_ms);
    return 0;
}

int zev_timer_stop(zev_timer_t *t) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return -EBADF;
    timer_disarm(t);
    return 0;
}

int zev_timer_again(zev_timer_t *t) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return -EBADF;
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
    if (!zev__handle_usable(&t->handle)) return -EBADF;
    t->repeat_ms = (uint64_t)repeat_ms;
    return 0;
}

uint64_t zev_timer_get_repeat(const zev_timer_t *t) {
    return t ? t->repeat_ms : 0;
}

uint64_t zev_timer_get_due_in(const zev_timer_t *t) {
    if (!t || !(t->handle.flags & ZEV__H_ACTIVE)) return 0;
    uint64_t now = t->handle.loop->now_ms;
    return t->deadline_ms > now ? t->deadline_ms - now : 0;
}

int zev__timer_next_timeout(const zev_loop_t *loop) {
    const zev_timer_t *t = zev__timer_heap_min(loop);
    if (!t) return -1;
    if (t->deadline_ms <= loop->now_ms) return 0;
    uint64_t diff = t->deadline_ms - loop->now_ms;
    return diff > INT_MAX ? INT_MAX : (int)diff;
}

unsigned zev__timer_run_due(zev_loop_t *loop) {
    uint64_t started_before = loop->timer_seq;
    unsigned fired = 0;
    for (;;) {
        zev_timer_t *t = zev__timer_heap_min(loop);
        if (!t || t->deadline_ms > loop->now_ms || t->start_seq >= started_before) break;
        /* Re-arm (or stop) before the callback, so the callback sees a consistent timer and
         * may stop, restart or close it. */
        timer_disarm(t);
        if (t->repeat_ms) timer_arm(t, t->repeat_ms);
        loop->metrics.timers_fired++;
        fired++;
        t->cb(t);
    }
    return fired;
}
