/* bench/micro.c: the micro-benchmark harness: command line, clock, result line, ping-pong.
 *
 * Leaves the scenarios themselves to each library's binary; see micro.h for the contract.
 */
#include "micro.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct scenario_info {
    const char *name;
    const char *unit;
    long default_count;
    double ops_per_item; /* 0: the value is ns per item (lower is better), else ops/s */
    const char *what;    /* one line for --describe */
};

static const struct scenario_info scenarios[MICRO_N_SCENARIOS] = {
    [MICRO_TIMERS_START_STOP] = {"timers_start_stop", "ops/s", 1000000, 2.0,
                                 "start 1M timers (1..101 s, scattered), stop all; 2 ops each"},
    [MICRO_TIMERS_FIRE] = {"timers_fire", "fires/s", 100000, 1.0,
                           "100k timers due in 0..99 ms; once all are due, time NOWAIT runs "
                           "until all fired"},
    [MICRO_ASYNC_WAKEUPS] = {"async_wakeups", "roundtrips/s", 100000, 1.0,
                             "thread sends async, loop callback posts a semaphore back; 100k "
                             "round trips"},
    [MICRO_EMPTY_ITERATION] = {"empty_iteration", "ns/iter", 1000000, 0.0,
                               "1M NOWAIT runs with one idle async handle (one epoll_wait(0) "
                               "each)"},
};

#define MAX_COUNT 100000000L

uint64_t micro_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void micro_sleep_ms(unsigned ms) {
    struct timespec left = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
        /* the rest of the interval is in `left` */
    }
}

static void usage(FILE *out, const char *prog) {
    fprintf(out,
            "usage: %s --scenario NAME [--count N]\n"
            "       %s --list | --describe\n"
            "Run one loop micro-benchmark and print one line:\n"
            "  scenario=NAME impl=IMPL value=NUMBER unit=UNIT\n"
            "Scenarios (default count):\n",
            prog, prog);
    for (int i = 0; i < MICRO_N_SCENARIOS; i++) {
        fprintf(out, "  %-22s %9ld  %s\n", scenarios[i].name, scenarios[i].default_count,
                scenarios[i].unit);
    }
}

static int find_scenario(const char *name) {
    for (int i = 0; i < MICRO_N_SCENARIOS; i++) {
        if (strcmp(scenarios[i].name, name) == 0) return i;
    }
    return -1;
}

static long parse_count(const char *text) {
    char *end = NULL;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n <= 0 || n > MAX_COUNT) return -1;
    return n;
}

static void print_result(int s, const char *impl, long count, uint64_t elapsed_ns) {
    const struct scenario_info *info = &scenarios[s];
    double ns = elapsed_ns > 0 ? (double)elapsed_ns : 1.0;
    double value =
        info->ops_per_item > 0 ? info->ops_per_item * (double)count * 1e9 / ns : ns / (double)count;
    printf("scenario=%s impl=%s value=%.2f unit=%s\n", info->name, impl, value, info->unit);
}

int micro_main(int argc, char **argv, const char *impl, const micro_run_fn runs[]) {
    const char *prog = argc > 0 ? argv[0] : "micro";
    int s = -1;
    long count = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout, prog);
            return 0;
        }
        if (strcmp(arg, "--list") == 0) {
            for (int j = 0; j < MICRO_N_SCENARIOS; j++) {
                puts(scenarios[j].name);
            }
            return 0;
        }
        if (strcmp(arg, "--describe") == 0) {
            for (int j = 0; j < MICRO_N_SCENARIOS; j++) {
                printf("%s: %s\n", scenarios[j].name, scenarios[j].what);
            }
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s: missing value or unknown option\n", prog, arg);
            return 2;
        }
        const char *val = argv[++i];
        if (strcmp(arg, "--scenario") == 0) {
            s = find_scenario(val);
            if (s < 0) {
                fprintf(stderr, "%s: unknown scenario '%s' (see --list)\n", prog, val);
                return 2;
            }
        } else if (strcmp(arg, "--count") == 0) {
            count = parse_count(val);
            if (count < 0) {
                fprintf(stderr, "%s: --count wants 1..%ld, not '%s'\n", prog, MAX_COUNT, val);
                return 2;
            }
        } else {
            fprintf(stderr, "%s: unknown option %s\n", prog, arg);
            return 2;
        }
    }
    if (s < 0) {
        usage(stderr, prog);
        return 2;
    }
    if (count == 0) count = scenarios[s].default_count;
    uint64_t elapsed_ns = 0;
    if (runs[s](count, &elapsed_ns) < 0) {
        fprintf(stderr, "%s: scenario %s failed\n", prog, scenarios[s].name);
        return 1;
    }
    print_result(s, impl, count, elapsed_ns);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- async ping-pong -------------------------------------------------------------------- */

static struct timespec to_timespec(uint64_t ns) {
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    return ts;
}

/* A lost wake-up leaves the loop thread blocked in the kernel for good, and nothing else can
 * reach it; so the helper ends the whole process, which is what a benchmark should do. */
static void give_up(const char *why, long done) {
    fprintf(stderr, "async_wakeups: %s after %ld round trips; giving up\n", why, done);
    _Exit(1);
}

static void *pingpong_main(void *arg) {
    struct micro_pingpong *pp = arg;
    uint64_t start = micro_now_ns();
    struct timespec limit = to_timespec(start + MICRO_LIMIT_NS);
    uint64_t t0 = start;
    long warmup = pp->total - pp->count;
    for (long i = 0; i < pp->total; i++) {
        if (i == warmup) t0 = micro_now_ns();
        if (pp->send(pp->arg) < 0) give_up("send failed", i);
        while (sem_clockwait(&pp->reply, CLOCK_MONOTONIC, &limit) != 0) {
            if (errno != EINTR) give_up(errno == ETIMEDOUT ? "no reply" : strerror(errno), i);
        }
    }
    pp->elapsed_ns = micro_now_ns() - t0;
    return NULL;
}

int micro_pingpong_start(struct micro_pingpong *pp, long count, int (*send)(void *), void *arg) {
    pp->send = send;
    pp->arg = arg;
    pp->count = count;
    pp->total = count > LONG_MAX - MICRO_WARMUP ? LONG_MAX : count + MICRO_WARMUP;
    pp->replies = 0;
    pp->elapsed_ns = 0;
    if (sem_init(&pp->reply, 0, 0) != 0) {
        perror("async_wakeups: sem_init");
        return -1;
    }
    int err = pthread_create(&pp->thread, NULL, pingpong_main, pp);
    if (err != 0) {
        fprintf(stderr, "async_wakeups: pthread_create: %s\n", strerror(err));
        sem_destroy(&pp->reply);
        return -1;
    }
    return 0;
}

int micro_pingpong_reply(struct micro_pingpong *pp) {
    pp->replies++;
    sem_post(&pp->reply);
    return pp->replies >= pp->total;
}

int micro_pingpong_finish(struct micro_pingpong *pp, uint64_t *elapsed_ns) {
    int err = pthread_join(pp->thread, NULL);
    sem_destroy(&pp->reply);
    if (err != 0) {
        fprintf(stderr, "async_wakeups: pthread_join: %s\n", strerror(err));
        return -1;
    }
    if (pp->replies != pp->total) {
        fprintf(stderr, "async_wakeups: %ld replies, expected %ld\n", pp->replies, pp->total);
        return -1;
    }
    *elapsed_ns = pp->elapsed_ns;
    return 0;
}
