/* bench/peers/micro_uv.c: the loop micro-benchmarks of bench/micro_zev.c, written for libuv.
 *
 * Same scenarios, sizes, timeouts and timing as the zev version (all from bench/micro.h);
 * only the library calls differ, written the way libuv's own docs and tests use them.
 */
#include "micro.h"

#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

static int fail(const char *what, int err) {
    fprintf(stderr, "micro_uv: %s: %s (%s)\n", what, uv_err_name(err), uv_strerror(err));
    return -1;
}

/* Deliver the close callbacks of everything closed, then close the loop. */
static int finish_loop(uv_loop_t *loop) {
    uv_run(loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(loop);
    return rc < 0 ? fail("loop_close", rc) : 0;
}

static void on_timer_unexpected(uv_timer_t *t) {
    (void)t;
    fprintf(stderr, "micro_uv: a timer that should never fire fired\n");
    abort();
}

static uv_timer_t *make_timers(uv_loop_t *loop, long n) {
    uv_timer_t *timers = calloc((size_t)n, sizeof(*timers));
    if (!timers) {
        fail("calloc timers", UV_ENOMEM);
        return NULL;
    }
    for (long i = 0; i < n; i++) {
        int rc = uv_timer_init(loop, &timers[i]);
        if (rc < 0) {
            fail("timer_init", rc);
            while (i-- > 0) {
                uv_close((uv_handle_t *)&timers[i], NULL);
            }
            free(timers);
            return NULL;
        }
    }
    return timers;
}

static void close_timers(uv_timer_t *timers, long n) {
    for (long i = 0; i < n; i++) {
        uv_close((uv_handle_t *)&timers[i], NULL);
    }
}

static int run_timers_start_stop(long n, uint64_t *elapsed_ns) {
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) return fail("loop_init", rc);
    uv_timer_t *timers = make_timers(&loop, n);
    if (!timers) {
        finish_loop(&loop);
        return -1;
    }

    int bad = 0;
    uint64_t t0 = micro_now_ns();
    for (long i = 0; i < n; i++) {
        bad |= uv_timer_start(&timers[i], on_timer_unexpected,
                              (uint64_t)micro_start_stop_timeout_ms(i), 0);
    }
    for (long i = 0; i < n; i++) {
        bad |= uv_timer_stop(&timers[i]);
    }
    *elapsed_ns = micro_now_ns() - t0;

    close_timers(timers, n);
    rc = finish_loop(&loop);
    free(timers);
    if (bad < 0) return fail("timer_start/stop", bad);
    return rc;
}

static void on_fire(uv_timer_t *t) {
    long *fired = t->data;
    (*fired)++;
}

static int run_timers_fire(long n, uint64_t *elapsed_ns) {
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) return fail("loop_init", rc);
    uv_timer_t *timers = make_timers(&loop, n);
    if (!timers) {
        finish_loop(&loop);
        return -1;
    }
    long fired = 0;
    int bad = 0;
    for (long i = 0; i < n; i++) {
        timers[i].data = &fired;
        bad |= uv_timer_start(&timers[i], on_fire, (uint64_t)micro_fire_timeout_ms(i), 0);
    }
    micro_sleep_ms(MICRO_FIRE_SETTLE_MS);

    uint64_t t0 = micro_now_ns();
    uint64_t now = t0;
    while (bad >= 0 && fired < n && now - t0 < MICRO_LIMIT_NS) {
        uv_run(&loop, UV_RUN_NOWAIT);
        now = micro_now_ns();
    }
    *elapsed_ns = now - t0;

    close_timers(timers, n);
    rc = finish_loop(&loop);
    free(timers);
    if (bad < 0) return fail("timer_start", bad);
    if (fired != n) {
        fprintf(stderr, "micro_uv: %ld of %ld timers fired\n", fired, n);
        return -1;
    }
    return rc;
}

struct async_bench {
    uv_async_t async;
    struct micro_pingpong pp;
};

static int send_async(void *arg) {
    return uv_async_send(arg);
}

static void on_async(uv_async_t *a) {
    struct async_bench *b = a->data;
    if (micro_pingpong_reply(&b->pp)) uv_close((uv_handle_t *)a, NULL);
}

static int run_async_wakeups(long n, uint64_t *elapsed_ns) {
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) return fail("loop_init", rc);
    struct async_bench b;
    rc = uv_async_init(&loop, &b.async, on_async);
    if (rc < 0) {
        fail("async_init", rc);
        uv_loop_close(&loop);
        return -1;
    }
    b.async.data = &b;
    if (micro_pingpong_start(&b.pp, n, send_async, &b.async) < 0) {
        uv_close((uv_handle_t *)&b.async, NULL);
        finish_loop(&loop);
        return -1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int err = micro_pingpong_finish(&b.pp, elapsed_ns);
    if (finish_loop(&loop) < 0) return -1;
    return err;
}

static void on_async_idle(uv_async_t *a) {
    (void)a;
}

/* n non-blocking iterations; uv_run returns 0 when nothing kept the loop alive, which would
 * mean it did not iterate. */
static int time_nowait_iterations(uv_loop_t *loop, long n, uint64_t *elapsed_ns) {
    int dead = 0;
    for (long i = 0; i < MICRO_WARMUP; i++) {
        dead |= !uv_run(loop, UV_RUN_NOWAIT);
    }
    uint64_t t0 = micro_now_ns();
    for (long i = 0; i < n; i++) {
        dead |= !uv_run(loop, UV_RUN_NOWAIT);
    }
    *elapsed_ns = micro_now_ns() - t0;
    if (dead) {
        fprintf(stderr, "micro_uv: the loop was not alive\n");
        return -1;
    }
    return 0;
}

static int run_empty_iteration(long n, uint64_t *elapsed_ns) {
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) return fail("loop_init", rc);
    uv_async_t idle;
    rc = uv_async_init(&loop, &idle, on_async_idle);
    if (rc < 0) {
        fail("async_init", rc);
        uv_loop_close(&loop);
        return -1;
    }
    int err = time_nowait_iterations(&loop, n, elapsed_ns);
    uv_close((uv_handle_t *)&idle, NULL);
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
    return micro_main(argc, argv, "uv", runs);
}
