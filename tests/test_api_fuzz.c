/* tests/test_api_fuzz.c: a short fixed-seed run of the model-based API fuzzer
 * (tests/fuzz_api/, docs/testing.md). Each seed is a random sequence of TCP, UDP and timer
 * operations checked against the fuzzer's model; a failure prints the seed and the last
 * operations, and `fuzz_api --seed N` reproduces it. scripts/fuzz-api runs random seeds for
 * as long as asked. */
#include "fuzz.h"
#include "zt.h"

TestSuite(api_fuzz, .timeout = 60);

static _Noreturn void fail_test(const char *report, void *ctx) {
    (void)ctx;
    cr_log_error("%s", report);
    cr_assert_fail("%s", report);
    __builtin_unreachable();
}

static void run_seed(uint64_t seed, unsigned ops) {
    struct fz_options o = {.seed = seed, .max_ops = ops, .max_ms = 20000, .on_fail = fail_test};
    struct fz_result r;
    cr_assert_eq(fz_run(&o, &r), 0);
    cr_assert_gt(r.ops, ops / 2, "most operations found something to act on");
}

Test(api_fuzz, seed_1) {
    run_seed(1, 1500);
}
