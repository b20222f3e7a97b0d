/* tests/kqueue_emu_tsan.c: runs the kqueue emulation's thread scenarios under ThreadSanitizer
 * without Criterion, which cannot start under TSan (see support/thread_scenarios.h). Prints
 * one line per scenario and "N passed, N failed"; exits 1 on any failure. A data race makes
 * TSan report and exit non-zero, which fails the test too. */
#include "emu_threads.h"

#include <stdio.h>

struct scenario {
    const char *name;
    const char *(*run)(void);
};

static const char *pingpong(void) {
    return kq_emu_wake_pingpong(2000);
}

static const char *storm(void) {
    return kq_emu_trigger_storm(4, 5000);
}

static const char *churn(void) {
    return kq_emu_changes_while_blocked(2000);
}

static const char *signal_ping(void) {
    return kq_emu_signal_from_another_thread(500);
}

static const char *trigger_in_handler(void) {
    return kq_emu_trigger_from_a_signal_handler(20000);
}

int main(void) {
    const struct scenario scenarios[] = {
        {"wake_pingpong", pingpong},
        {"trigger_storm", storm},
        {"changes_while_blocked", churn},
        {"signal_from_another_thread", signal_ping},
        {"trigger_from_a_signal_handler", trigger_in_handler},
    };
    int passed = 0;
    int failed = 0;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        const char *err = scenarios[i].run();
        printf("[%s] kqueue_emu::%s%s%s\n", err ? "FAIL" : "PASS", scenarios[i].name,
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
