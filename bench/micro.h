/* bench/micro.h: what the loop micro-benchmarks share, so zev and its peers run the same thing.
 *
 * Each library has one binary (bench/micro_zev.c, bench/peers/micro_uv.c, micro_ev.c) that
 * implements every scenario idiomatically for that library and hands micro_main() a table of
 * run functions. This harness owns what must be identical across peers: the scenario names,
 * their default sizes, the timeout patterns, the clock, the cross-thread ping-pong and the
 * output line. It links no event library.
 *
 * Output, one line on stdout per run, for scripts/bench:
 *   scenario=timers_start_stop impl=zev value=123456.7 unit=ops/s
 */
#ifndef ZEV_BENCH_MICRO_H
#define ZEV_BENCH_MICRO_H

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>

enum micro_scenario {
    MICRO_TIMERS_START_STOP, /* start N timers, then stop them all: ops/s, 2 ops each */
    MICRO_TIMERS_FIRE,       /* N due timers fired by the loop: fires/s */
    MICRO_ASYNC_WAKEUPS,     /* thread -> loop -> thread round trips: roundtrips/s */
    MICRO_EMPTY_ITERATION,   /* NOWAIT iteration, one idle async handle: ns/iter */
    MICRO_N_SCENARIOS
};

/* Run one scenario with `count` items; store the measured time in *elapsed_ns. Return 0, or
 * -1 after printing why on stderr. The harness turns the time into the reported value. */
typedef int (*micro_run_fn)(long count, uint64_t *elapsed_ns);

/* Parse --scenario/--count/--list/--help, run, print the result line. The exit status. */
int micro_main(int argc, char **argv, const char *impl, const micro_run_fn runs[]);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t micro_now_ns(void);
/* Sleep at least ms milliseconds (retries on EINTR). */
void micro_sleep_ms(unsigned ms);

/* timers_start_stop: timeouts 1..101 s, scattered so inserts land all over the heap. */
static inline int64_t micro_start_stop_timeout_ms(long i) {
    return (int64_t)(((uint64_t)i * 7919u) % 100000u) + 1000;
}

/* timers_fire: timeouts 0..99 ms, scattered; the loop runs once all are due. */
static inline int64_t micro_fire_timeout_ms(long i) {
    return (int64_t)(((uint64_t)i * 7919u) % 100u);
}
#define MICRO_FIRE_SETTLE_MS 110u /* > the largest fire timeout: every timer is due */

/* Warm-up iterations before timing empty_iteration; round trips before timing async. */
#define MICRO_WARMUP 1000L
/* A scenario that has not finished after this long has lost an event: give up. */
#define MICRO_LIMIT_NS (30ull * 1000000000ull)

/* ---- async ping-pong -------------------------------------------------------------------- */

/* A helper thread sends a wake-up to the loop (send), then waits until the loop's callback
 * answers (micro_pingpong_reply); MICRO_WARMUP untimed round trips, then `count` timed ones.
 * Each wake-up is observed before the next is sent, so nothing coalesces. Both sides use
 * the same POSIX semaphore for every peer: only the library's wake-up path differs. */
struct micro_pingpong {
    int (*send)(void *arg); /* the library's thread-safe wake-up; 0 or negative */
    void *arg;
    long count;   /* timed round trips */
    long total;   /* warm-up + timed: the loop's callback stops after this many */
    long replies; /* loop thread only */
    sem_t reply;
    pthread_t thread;
    uint64_t elapsed_ns; /* written by the helper before it exits */
};

/* Start the helper thread. 0, or -1 after printing why. */
int micro_pingpong_start(struct micro_pingpong *pp, long count, int (*send)(void *), void *arg);
/* Loop side, from the wake-up callback: answer the helper. 1 once the last round trip is
 * answered (the caller then closes its handle so the loop can end), else 0. */
int micro_pingpong_reply(struct micro_pingpong *pp);
/* Join the helper and release the semaphore. 0 with *elapsed_ns set, or -1. */
int micro_pingpong_finish(struct micro_pingpong *pp, uint64_t *elapsed_ns);

#endif /* ZEV_BENCH_MICRO_H */
