/* tests/tsan_threads.c: runs the thread scenarios under ThreadSanitizer without Criterion,
 * which cannot start under TSan (see support/thread_scenarios.h). Prints one line per
 * scenario and the usual "N passed, N failed" line; exits 1 on any failure. A data race makes
 * TSan abort the process (halt_on_error=1 in scripts/test), which fails the test too. */
#include "thread_scenarios.h"

#include <stdio.h>

struct scenario {
    const char *name;
    const char *(*run)(void);
};

static const char *pingpong(void) {
    return zt_async_pingpong(2000);
}

static const char *storm(void) {
    return zt_async_storm(4, 20000);
}

static const char *close_and_free(void) {
    return zt_async_close_and_free_while_sending(2000);
}

static const char *workers_echo(void) {
    return zt_workers_echo(2, 32);
}

static const char *resolve_storm(void) {
    return zt_resolve_cancel_storm(20, 32);
}

static const char *signal_threads(void) {
    return zt_signal_to_loop_and_other_threads(500);
}

static const char *signal_two_loops(void) {
    return zt_signal_two_loops_two_threads(300);
}

static const char *async_in_handler(void) {
    return zt_async_send_from_a_signal_handler(5000);
}

int main(void) {
    const struct scenario scenarios[] = {
        {"async_pingpong", pingpong},
        {"async_storm", storm},
        {"async_close_and_free_while_sending", close_and_free},
        {"workers_echo", workers_echo},
        {"workers_setup_fails", zt_workers_setup_fails},
        {"resolve_cancel_storm", resolve_storm},
        {"signal_to_loop_and_other_threads", signal_threads},
        {"signal_two_loops_two_threads", signal_two_loops},
        {"async_send_from_a_signal_handler", async_in_handler},
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        const char *err = scenarios[i].run();
        printf("[%s] threads::%s%s%s\n", err ? "FAIL" : "PASS", scenarios[i].name,
               err ? ": " : "", err ? err : "");
        if (err) {
            failed++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
