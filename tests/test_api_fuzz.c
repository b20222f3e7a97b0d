/* tests/test_api_fuzz.c: short fixed-seed runs of the model-based API fuzzer (tests/fuzz_api/,
 * docs/testing.md). Each test is one seed under one mix of operation weights, chosen because
 * that seed reaches a place where features meet and where zev once went wrong (named in the
 * test). A failure prints the seed, the message and the last operations;
 * `fuzz_api --seed N --weights W` reproduces it. scripts/fuzz-api runs random seeds for as
 * long as asked. */
#include "fuzz.h"
#include "zt.h"

TestSuite(api_fuzz, .timeout = 60);

static _Noreturn void fail_test(const char *report, void *ctx) {
    (void)ctx;
    cr_assert_fail("%s", report);
    __builtin_unreachable();
}

static void run_seed(uint64_t seed, const char *weights) {
    struct fz_options o = {.seed = seed, .max_ops = 1500, .max_ms = 20000, .weights = weights,
                           .on_fail = fail_test};
    struct fz_result r;
    cr_assert_eq(fz_run(&o, &r), 0);
    cr_assert_gt(r.ops, 500, "most operations found something to act on");
    cr_assert_gt(r.connects_ok, 10);
}

/* Every operation. Early on, writes, empty writes and end() meet a connect still in SYN_SENT
 * (the listener never accepts): the connect callback must not report 0 until the handshake
 * is really over. */
Test(api_fuzz, handshakes_that_stall_seed_2) {
    run_seed(2, NULL);
}

/* Connects that complete at once, with writes queued before they do: a write callback run by
 * the post-connect flush closes its socket, which must stay inactive. */
Test(api_fuzz, connect_then_write_and_close_in_callback_seed_3) {
    run_seed(3, "connect_stalled=0");
}

/* Proxies: connect upstream and pipe a stream into it at once, the source reading into a
 * small user buffer: piped bytes must arrive unchanged. */
Test(api_fuzz, proxies_piping_user_memory_seed_4) {
    run_seed(4, "proxy=20,connect_stalled=0,connect_refused=0");
}

/* Handles unref'd while writes, sends and connects are in flight: the loop stays alive
 * exactly until they complete. */
Test(api_fuzz, unref_with_requests_in_flight_seed_1) {
    run_seed(1, "unref_all=8,unref=8,connect_stalled=0");
}
