/* bench/micro_zev.c: the loop micro-benchmarks written for zev, public API only.
 *
 * The same scenarios, written for libuv and libev, are in bench/peers/; the harness, the
 * timeout patterns and the output line are shared through micro.h. scripts/bench runs all of
 * them interleaved and compares.
 */
#include "micro.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <zev.h>

static int fail(const char *what, int err) {
    fprintf(stderr, "micro_zev: %s: %s (%s)\n", what, zev_err_name(err), zev_strerror(err));
    return -1;
}

/* Deliver the close callbacks of the handles already closed, then close the loop: one DEFAULT
 * run does it, after which zev_loop_close must succeed. */
static int finish_loop(zev_loop_t *loop) {
    int rc = zev_run(loop, ZEV_RUN_DEFAULT);
    if (rc < 0) return fail("run (closing)", rc);
    rc = zev_loop_close(loop);
    return rc < 0 ? fail("loop_close", rc) : 0;
}

static void on_timer_unexpected(zev_timer_t *t) {
    (void)t;
    fprintf(stderr, "micro_zev: a timer that should never fire fired\n");
    abort();
}

/* Initialise n timers, or none: on failure the ones done are closed again. */
static zev_timer_t *make_timers(zev_loop_t *loop, long n) {
    zev_timer_t *timers = calloc((size_t)n, sizeof(*timers));
    if (!timers) {
        fail("calloc timers", -ENOMEM);
        return NULL;
    }
    for (long i = 0; i < n; i++) {
        int rc = zev_timer_init(loop, &timers[i]);
        if (rc < 0) {
            fail("timer_init", rc);
            while (i-- > 0) {
                zev_close(&timers[i].handle, NULL);
            }
            free(timers);
            return NULL;
        }
    }
    return timers;
}

static void close_timers(zev_timer_t *timers, long n) {
    for (long i = 0; i < n; i++) {
        zev_close(&timers[i].handle, NULL);
    }
}

static int run_timers_start_stop(long n, uint64_t *elapsed_ns) {
    zev_loop_t loop;
    int rc = zev_loop_init(&loop);
    if (rc < 0) return fail("loop_init", rc);
    zev_timer_t *timers = make_timers(&loop, n);
    if (!timers) {
        finish_loop(&loop);
        return -1;
    }

    int bad = 0;
    uint64_t t0 = micro_now_ns();
    for (long i = 0; i < n; i++) {
        bad |= zev_timer_start(&timers[i], on_timer_unexpected, micro_start_stop_timeout_ms(i), 0);
    }
    for (long i = 0; i < n; i++) {
        bad |= zev_timer_stop(&timers[i]);
    }
    *elapsed_ns = micro_now_ns() - t0;

    close_timers(timers, n);
    rc = finish_loop(&loop);
    free(timers);
    if (bad < 0) return fail("timer_start/stop", bad);
    return rc;
}

static void on_fire(zev_timer_t *t) {
    long *fired = t->handle.data;
    (*fired)++;
}

/* Start n timers due within 0..99 ms, wait until all are due, then time the loop firing
 * them: the loop's cost per expired timer (heap removal, bookkeeping, callback). */
static int run_timers_fire(long n, uint64_t *elapsed_ns) {
    zev_loop_t loop;
    int rc = zev_loop_init(&loop);
    if (rc < 0) return fail("loop_init", rc);
    zev_timer_t *timers = make_timers(&loop, n);
    if (!timers) {
        finish_loop(&loop);
        return -1;
    }
    long fired = 0;
    int bad = 0;
    for (long i = 0; i < n; i++) {
        timers[i].handle.data = &fired;
        bad |= zev_timer_start(&timers[i], on_fire, micro_fire_timeout_ms(i), 0);
    }
    micro_sleep_ms(MICRO_FIRE_SETTLE_MS);

    uint64_t t0 = micro_now_ns();
    uint64_t now = t0;
    while (bad >= 0 && fired < n && now - t0 < MICRO_LIMIT_NS) {
        rc = zev_run(&loop, ZEV_RUN_NOWAIT);
        if (rc < 0) bad = rc;
        now = micro_now_ns();
    }
    *elapsed_ns = now - t0;

    close_timers(timers, n);
    rc = finish_loop(&loop);
    free(timers);
    if (bad < 0) return fail("timer_start/run", bad);
    if (fired != n) {
        fprintf(stderr, "micro_zev: %ld of %ld timers fired\n", fired, n);
        return -1;
    }
    return rc;
}

struct async_bench {
    zev_async_t async;
    struct micro_pingpong pp;
};

static int send_async(void *arg) {
    return zev_async_send(arg);
}

static void on_async(zev_async_t *a) {
    struct async_bench *b = a->handle.data;
    if (micro_pingpong_reply(&b->pp)) zev_close(&a->handle, NULL);
}

static int run_async_wakeups(long n, uint64_t *elapsed_ns) {
    zev_loop_t loop;
    int rc = zev_loop_init(&loop);
    if (rc < 0) return fail("loop_init", rc);
    struct async_bench b;
    rc = zev_async_init(&loop, &b.async, on_async);
    if (rc < 0) {
        fail("async_init", rc);
        zev_loop_close(&loop);
        return -1;
    }
    b.async.handle.data = &b;
    if (micro_pingpong_start(&b.pp, n, send_async, &b.async) < 0) {
        zev_close(&b.async.handle, NULL);
        finish_loop(&loop);
        return -1;
    }
    /* The callback closes the handle after the last reply; then nothing keeps the loop. */
    rc = zev_run(&loop, ZEV_RUN_DEFAULT);
    int err = micro_pingpong_finish(&b.pp, elapsed_ns);
    if (rc < 0) fail("run", rc);
    if (finish_loop(&loop) < 0 || rc < 0) return -1;
    return err;
}

static void on_async_idle(zev_async_t *a) {
    (void)a;
}

/* n non-blocking iterations with `idle` as the one active handle; checks that each call
 * really iterated (zev_run does nothing when no handle keeps the loop alive). */
static int time_nowait_iterations(zev_loop_t *loop, long n, uint64_t *elapsed_ns) {
    int bad = 0;
    for (long i = 0; i < MICRO_WARMUP; i++) {
        bad |= zev_run(loop, ZEV_RUN_NOWAIT);
    }
    uint64_t t0 = micro_now_ns();
    for (long i = 0; i < n; i++) {
        bad |= zev_run(loop, ZEV_RUN_NOWAIT);
    }
    *elapsed_ns = micro_now_ns() - t0;
    if (bad < 0) return fail("run (nowait)", bad);
    zev_loop_metrics_t m;
    zev_loop_metrics(loop, &m);
    if (m.iterations != (uint64_t)(n + MICRO_WARMUP)) {
        fprintf(stderr, "micro_zev: %llu iterations, expected %ld\n",
                (unsigned long long)m.iterations, n + MICRO_WARMUP);
        return -1;
    }
    return 0;
}

static int run_empty_iteration(long n, uint64_t *elapsed_ns) {
    zev_loop_t loop;
    int rc = zev_loop_init(&loop);
    if (rc < 0) return fail("loop_init", rc);
    zev_async_t idle;
    rc = zev_async_init(&loop, &idle, on_async_idle);
    if (rc < 0) {
        fail("async_init", rc);
        zev_loop_close(&loop);
        return -1;
    }
    int err = time_nowait_iterations(&loop, n, elapsed_ns);
    zev_close(&idle.handle, NULL);
    rc = finish_loop(&loop);
    return err < 0 ? err : rc;
}

int main(int argc, char **argv) {
    static const micro_run_fn runs[MICRO_N_SCENARIOS] = {
        [MICRO_TIMERS_START_STOP] = run_timers_start_stop,
        [MICRO_TIMERS_FIRE] = run_timers_fire,
        [MICRO_ASYNC_WAKEUPS] = run_async_wakeups,
        [MICRO_EMPTY_ITERATION] = run_empty_iteration,
    };
    return micro_main(argc, argv, "zev", runs);
}
