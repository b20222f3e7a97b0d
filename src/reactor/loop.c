/* src/reactor/loop.c: the loop's life (init, run, stop, close), its clock and its counters.
 *
 * One iteration runs these phases in order (the diagram is in docs/internals.md):
 *   1. update the cached time       4. poll the backend, dispatching ready watchers (poll.c)
 *   2. run due timers               5. run due close callbacks
 *   3. run watchers fed last time
 * Phases 2-3 share one fairness budget (a time slice and a byte cap, budget.c) and phase 4
 * gets a fresh one, so a loaded iteration stays short and fresh events always get a turn.
 * Handles, watchers, timers, async and the poll phase live in their own files; this file only
 * sequences them.
 */
#include "backend.h"
#include "ring.h"
#include "reactor_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define DEFAULT_MAX_EVENTS 1024u
#define MAX_MAX_EVENTS (1u << 20)
#define DEFAULT_BUF_SIZE (64u * 1024u)
#define MIN_BUF_SIZE 256u

static void *default_alloc(void *ctx, size_t size) {
    (void)ctx;
    return malloc(size);
}

static void default_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size;
    free(ptr);
}

void *zev__alloc(zev_loop_t *loop, size_t size) {
    return loop->allocator.alloc(loop->allocator.ctx, size);
}

void zev__free(zev_loop_t *loop, void *ptr, size_t size) {
    if (ptr) loop->allocator.free(loop->allocator.ctx, ptr, size);
}

uint64_t zev_hrtime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void zev_update_time(zev_loop_t *loop) {
    if (loop) loop->now_ms = zev_hrtime() / 1000000u;
}

uint64_t zev_now(const zev_loop_t *loop) {
    return loop ? loop->now_ms : 0;
}

int zev_loop_init(zev_loop_t *loop) {
    return zev_loop_init_ex(loop, NULL);
}

int zev_loop_init_ex(zev_loop_t *loop, const zev_loop_options_t *opts) {
    if (!loop) return -EINVAL;
    /* Initialising a live loop again would lose its handles and leak its descriptors. */
    if (loop->state == ZEV__LOOP_READY || loop->state == ZEV__LOOP_RUNNING) return -EBUSY;
    zev_loop_options_t o = {0};
    if (opts) o = *opts;
    if ((o.allocator.alloc == NULL) != (o.allocator.free == NULL)) return -EINVAL;
    if (o.max_events > MAX_MAX_EVENTS) return -EINVAL;
    if (o.buf_size != 0 && (o.buf_size < MIN_BUF_SIZE || o.buf_size > ZEV_BUF_SIZE_MAX))
        return -EINVAL; /* past the maximum, the chunk header plus size could wrap */
    if ((unsigned)o.backend > ZEV_BACKEND_IO_URING) return -EINVAL;

    *loop = (zev_loop_t){0};
    loop->allocator = o.allocator;
    if (!loop->allocator.alloc) {
        loop->allocator.alloc = default_alloc;
        loop->allocator.free = default_free;
    }
    zev__list_init(&loop->pending_watchers);
    zev__list_init(&loop->pending_yielded);
    zev__list_init(&loop->async_handles);
    zev__list_init(&loop->fdwatches);
    zev__list_init(&loop->signal_handles);
    zev__buf_pool_init(loop, o.buf_size ? o.buf_size : DEFAULT_BUF_SIZE);
    zev__slab_init(&loop->slab, ZEV__SLAB_SMALL);
    zev__slab_init(&loop->slab_large, ZEV__SLAB_LARGE);
    zev__trim_init(loop, o.idle_ms);
    zev_update_time(loop);

    int err = zev__backend_open(loop, o.max_events ? o.max_events : DEFAULT_MAX_EVENTS,
                                o.backend);
    if (err < 0) {
        loop->state = ZEV__LOOP_CLOSED;
        return err;
    }
    if (o.send_zc_min) zev__ring_set_send_zc_min(loop, o.send_zc_min);
    loop->state = ZEV__LOOP_READY;
    return 0;
}

int zev_loop_close(zev_loop_t *loop) {
    if (!loop) return -EINVAL;
    if (loop->state == ZEV__LOOP_CLOSED) return -EBADF;
    if (loop->state != ZEV__LOOP_READY) return loop->state == ZEV__LOOP_RUNNING ? -EBUSY : -EINVAL;
    if (loop->open_handles > 0 || loop->closing_head) return -EBUSY;
    if (loop->slab.in_use > 0 || loop->slab_large.in_use > 0) return -EBUSY;
    int err = zev__resolver_close(loop); /* -EBUSY while a lookup's callback is due */
    if (err < 0) return err;
    /* A completion backend lends chunks to the kernel: they come back before the pool's
     * check (and are lent again if the loop goes on after -EBUSY). */
    if (zev__loop_completes(loop)) zev__ring_bufs_release(loop);
    err = zev__buf_pool_close(loop);
    if (err < 0) return err;
    zev__slab_close(loop, &loop->slab);
    zev__slab_close(loop, &loop->slab_large);
    zev__handle_table_close(loop);
    zev__backend_close(loop);
    loop->state = ZEV__LOOP_CLOSED;
    return 0;
}

int zev_loop_alive(const zev_loop_t *loop) {
    if (!zev__loop_usable(loop)) return 0;
    return loop->active_refs > 0 || loop->request_handles > 0 || loop->closing_head != NULL;
}

int zev_stop(zev_loop_t *loop) {
    if (!loop) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    loop->stop_flag = 1;
    return 0;
}

int zev_loop_metrics(const zev_loop_t *loop, zev_loop_metrics_t *out) {
    if (!loop || !out) return -EINVAL;
    *out = loop->metrics;
    return 0;
}

/* How long the poll phase may block: not at all when something is already waiting to run. */
static int poll_timeout(const zev_loop_t *loop, zev_run_mode mode, bool made_progress) {
    if (mode == ZEV_RUN_NOWAIT || loop->stop_flag) return 0;
    if (mode == ZEV_RUN_ONCE && made_progress) return 0; /* ONCE ran a callback: don't block */
    if (zev__watcher_any_pending(loop) || loop->closing_head) return 0;
    if (loop->active_refs == 0 && loop->request_handles == 0) return 0;
    return zev__timer_next_timeout(loop);
}

static int run_iteration(zev_loop_t *loop, zev_run_mode mode) {
    uint64_t now_ns = zev_hrtime();
    loop->now_ms = now_ns / 1000000u;
    /* Timers and the pending phase share one slice; the poll's dispatch gets its own (poll.c),
     * so events fetched fresh always get their turn. */
    zev__budget_begin(loop, now_ns);
    bool made_progress = zev__timer_run_due(loop) > 0;
    made_progress |= zev__watcher_any_pending(loop);
    zev__watcher_run_pending(loop);
    int err = zev__loop_poll(loop, poll_timeout(loop, mode, made_progress));
    if (err < 0) return err;
    /* ONCE promises progress: if the poll timed out for a timer, fire it now. */
    if (mode == ZEV_RUN_ONCE) {
        zev_update_time(loop);
        zev__timer_run_due(loop);
    }
    zev__handle_run_closing(loop);
    loop->metrics.iterations++;
    return 0;
}

int zev_run(zev_loop_t *loop, zev_run_mode mode) {
    if (!loop) return -EINVAL;
    if (mode != ZEV_RUN_DEFAULT && mode != ZEV_RUN_ONCE && mode != ZEV_RUN_NOWAIT) return -EINVAL;
    if (loop->state == ZEV__LOOP_RUNNING) return -EBUSY;
    if (loop->state != ZEV__LOOP_READY) return loop->state == ZEV__LOOP_CLOSED ? -EBADF : -EINVAL;

    loop->state = ZEV__LOOP_RUNNING;
    zev__debug_run_begin(loop);
    int result = 0;
    int alive = zev_loop_alive(loop);
    if (!alive) zev_update_time(loop);
    while (alive && !loop->stop_flag) {
        result = run_iteration(loop, mode);
        if (result < 0) break;
        alive = zev_loop_alive(loop);
        if (mode != ZEV_RUN_DEFAULT) break;
    }
    loop->stop_flag = 0;
    zev__debug_run_end(loop);
    loop->state = ZEV__LOOP_READY;
    return result < 0 ? result : alive;
}
