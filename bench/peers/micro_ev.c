/* bench/peers/micro_ev.c: the loop micro-benchmarks of bench/micro_zev.c, written for libev.
 *
 * Same scenarios, sizes, timeouts and timing as the zev version (all from bench/micro.h),
 * written the way ev.pod shows. The loop is ev_loop_new() pinned to the epoll backend, so all
 * three libraries wait on the same kernel interface. libev has no handles to close: stopping
 * a watcher (or a one-shot timer firing) is the whole teardown, then ev_loop_destroy().
 */
#include "micro.h"

#include <stdio.h>
#include <stdlib.h>

#include <ev.h>

static struct ev_loop *new_loop(void) {
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!loop) fprintf(stderr, "micro_ev: ev_loop_new(EVBACKEND_EPOLL) failed\n");
    return loop;
}

static void on_timer_unexpected(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop;
    (void)w;
    (void)revents;
    fprintf(stderr, "micro_ev: a timer that should never fire fired\n");
    abort();
}

/* ev_timer_init is a macro that fills the struct; like the other peers' init calls it is
 * done before the clock starts. */
static ev_timer *make_timers(long n, void (*cb)(struct ev_loop *, ev_timer *, int)) {
    ev_timer *timers = calloc((size_t)n, sizeof(*timers));
    if (!timers) {
        fprintf(stderr, "micro_ev: calloc timers failed\n");
        return NULL;
    }
    for (long i = 0; i < n; i++) {
        ev_timer_init(&timers[i], cb, 0., 0.);
    }
    return timers;
}

static int run_timers_start_stop(long n, uint64_t *elapsed_ns) {
    struct ev_loop *loop = new_loop();
    if (!loop) return -1;
    ev_timer *timers = make_timers(n, on_timer_unexpected);
    if (!timers) {
        ev_loop_destroy(loop);
        return -1;
    }

    uint64_t t0 = micro_now_ns();
    for (long i = 0; i < n; i++) {
        ev_timer_set(&timers[i], (ev_tstamp)micro_start_stop_timeout_ms(i) * 1e-3, 0.);
        ev_timer_start(loop, &timers[i]);
    }
    for (long i = 0; i < n; i++) {
        ev_timer_stop(loop, &timers[i]);
    }
    *elapsed_ns = micro_now_ns() - t0;

    free(timers);
    ev_loop_destroy(loop);
    return 0;
}

static void on_fire(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop;
    (void)revents;
    long *fired = w->data;
    (*fired)++;
}

static int run_timers_fire(long n, uint64_t *elapsed_ns) {
    struct ev_loop *loop = new_loop();
    if (!loop) return -1;
    ev_timer *timers = make_timers(n, on_fire);
    if (!timers) {
        ev_loop_destroy(loop);
        return -1;
    }
    long fired = 0;
    for (long i = 0; i < n; i++) {
        timers[i].data = &fired;
        ev_timer_set(&timers[i], (ev_tstamp)micro_fire_timeout_ms(i) * 1e-3, 0.);
        ev_timer_start(loop, &timers[i]);
    }
    micro_sleep_ms(MICRO_FIRE_SETTLE_MS);

    uint64_t t0 = micro_now_ns();
    uint64_t now = t0;
    while (fired < n && now - t0 < MICRO_LIMIT_NS) {
        ev_run(loop, EVRUN_NOWAIT);
        now = micro_now_ns();
    }
    *elapsed_ns = now - t0;

    /* A one-shot timer that fired is already stopped; this only matters after a failure. */
    for (long i = 0; i < n; i++) {
        ev_timer_stop(loop, &timers[i]);
    }
    free(timers);
    ev_loop_destroy(loop);
    if (fired != n) {
        fprintf(stderr, "micro_ev: %ld of %ld timers fired\n", fired, n);
        return -1;
    }
    return 0;
}

struct async_bench {
    ev_async async;
    struct ev_loop *loop;
    struct micro_pingpong pp;
};

static int send_async(void *arg) {
    struct async_bench *b = arg;
    ev_async_send(b->loop, &b->async);
    return 0;
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents) {
    (void)revents;
    struct async_bench *b = w->data;
    if (micro_pingpong_reply(&b->pp)) ev_async_stop(loop, w);
}

static int run_async_wakeups(long n, uint64_t *elapsed_ns) {
    struct async_bench b;
    b.loop = new_loop();
    if (!b.loop) return -1;
    ev_async_init(&b.async, on_async);
    b.async.data = &b;
    ev_async_start(b.loop, &b.async);
    if (micro_pingpong_start(&b.pp, n, send_async, &b) < 0) {
        ev_async_stop(b.loop, &b.async);
        ev_loop_destroy(b.loop);
        return -1;
    }
    /* The callback stops the watcher after the last reply; then nothing keeps the loop. */
    ev_run(b.loop, 0);
    int err = micro_pingpong_finish(&b.pp, elapsed_ns);
    ev_loop_destroy(b.loop);
    return err;
}

static void on_async_idle(struct ev_loop *loop, ev_async *w, int revents) {
    (void)loop;
    (void)w;
    (void)revents;
}

/* n non-blocking iterations; ev_iteration() counts polls, so it proves each call iterated. */
static int time_nowait_iterations(struct ev_loop *loop, long n, uint64_t *elapsed_ns) {
    unsigned before = ev_iteration(loop);
    for (long i = 0; i < MICRO_WARMUP; i++) {
        ev_run(loop, EVRUN_NOWAIT);
    }
    uint64_t t0 = micro_now_ns();
    for (long i = 0; i < n; i++) {
        ev_run(loop, EVRUN_NOWAIT);
    }
    *elapsed_ns = micro_now_ns() - t0;
    unsigned done = ev_iteration(loop) - before;
    if (done != (unsigned)(n + MICRO_WARMUP)) {
        fprintf(stderr, "micro_ev: %u iterations, expected %ld\n", done, n + MICRO_WARMUP);
        return -1;
    }
    return 0;
}

static int run_empty_iteration(long n, uint64_t *elapsed_ns) {
    struct ev_loop *loop = new_loop();
    if (!loop) return -1;
    ev_async idle;
    ev_async_init(&idle, on_async_idle);
    ev_async_start(loop, &idle);
    int err = time_nowait_iterations(loop, n, elapsed_ns);
    ev_async_stop(loop, &idle);
    ev_loop_destroy(loop);
    return err;
}

int main(int argc, char **argv) {
    static const micro_run_fn runs[MICRO_N_SCENARIOS] = {
        [MICRO_TIMERS_START_STOP] = run_timers_start_stop,
        [MICRO_TIMERS_FIRE] = run_timers_fire,
        [MICRO_ASYNC_WAKEUPS] = run_async_wakeups,
        [MICRO_EMPTY_ITERATION] = run_empty_iteration,
    };
    return micro_main(argc, argv, "ev", runs);
}
