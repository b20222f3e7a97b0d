/* tests/test_bench_hist.c: zev-bench's latency histogram (bench/hist.c). */
#include "../bench/hist.h"

#include <criterion/criterion.h>
#include <stdlib.h>

TestSuite(bench_hist, .timeout = 60);

static struct hist *new_hist(void) {
    struct hist *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    return h;
}

Test(bench_hist, small_values_are_exact) {
    for (uint64_t v = 0; v < HIST_SUB; v++) {
        cr_assert_eq(hist_bucket_low(hist_bucket(v)), v);
        cr_assert_eq(hist_bucket_high(hist_bucket(v)), v);
    }
}

Test(bench_hist, bucket_edges_round_trip_exactly) {
    /* Every bucket's lowest and highest value map back to it, and the next value up to the
     * next bucket: the buckets tile the range with no gap and no overlap. */
    for (unsigned b = 0; b + 1 < HIST_BUCKETS; b++) {
        uint64_t lo = hist_bucket_low(b), hi = hist_bucket_high(b);
        cr_assert_eq(hist_bucket(lo), b, "bucket %u low %llu", b, (unsigned long long)lo);
        cr_assert_eq(hist_bucket(hi), b, "bucket %u high %llu", b, (unsigned long long)hi);
        cr_assert_eq(hist_bucket(hi + 1), b + 1, "bucket %u", b);
    }
    cr_assert_eq(hist_bucket(1ull << 40), HIST_BUCKETS - 1);
}

Test(bench_hist, percentile_of_an_edge_value_is_that_value) {
    struct hist *h = new_hist();
    hist_record(h, 1024); /* the lowest value of its bucket */
    cr_assert_eq(hist_percentile(h, 50), 1024); /* clamped to max: exact */
    hist_record(h, 2047); /* the highest value of its bucket */
    cr_assert_eq(hist_percentile(h, 100), 2047);
    cr_assert_eq(hist_percentile(h, 50), hist_bucket_high(hist_bucket(1024)));
    cr_assert_eq(h->max, 2047);
    free(h);
}

Test(bench_hist, relative_error_below_one_percent_from_1us_to_10s) {
    struct hist *h = new_hist();
    /* A geometric sweep, 1 us to 10 s in ns, 1.3% apart: each value alone in a histogram. */
    unsigned n = 0;
    for (double v = 1000; v <= 1e10; v *= 1.013, n++) {
        hist_reset(h);
        uint64_t x = (uint64_t)v;
        hist_record(h, x);
        hist_record(h, (uint64_t)1e11); /* a larger max, so p50 is the bucket's bound */
        uint64_t got = hist_percentile(h, 50);
        cr_assert_geq(got, x);
        cr_assert_lt((double)(got - x) / (double)x, 0.01, "value %llu reported %llu",
                     (unsigned long long)x, (unsigned long long)got);
    }
    cr_assert_gt(n, 1000);
    free(h);
}

Test(bench_hist, percentiles_of_a_uniform_spread) {
    struct hist *h = new_hist();
    for (uint64_t v = 1; v <= 100000; v++) {
        hist_record(h, v * 1000); /* 1 us .. 100 ms */
    }
    const double ps[] = {50, 90, 99, 99.9};
    for (unsigned i = 0; i < 4; i++) {
        double want = ps[i] / 100.0 * 100000 * 1000;
        double got = (double)hist_percentile(h, ps[i]);
        cr_assert(got >= want && got < want * 1.01, "p%.1f: %.0f, want %.0f", ps[i], got, want);
    }
    cr_assert_eq(hist_percentile(h, 100), 100000000u);
    cr_assert_eq(h->total, 100000u);
    free(h);
}

Test(bench_hist, merge_adds_counts_and_keeps_the_larger_max) {
    struct hist *a = new_hist(), *b = new_hist();
    for (unsigned i = 0; i < 90; i++) {
        hist_record(a, 50000); /* 50 us */
    }
    for (unsigned i = 0; i < 10; i++) {
        hist_record(b, 200000000); /* 200 ms */
    }
    hist_merge(a, b);
    cr_assert_eq(a->total, 100u);
    cr_assert_eq(a->max, 200000000u);
    cr_assert_eq(a->counts[hist_bucket(50000)], 90u);
    cr_assert_eq(a->counts[hist_bucket(200000000)], 10u);
    cr_assert_eq(hist_percentile(a, 90), hist_bucket_high(hist_bucket(50000)));
    cr_assert_eq(hist_percentile(a, 91), 200000000u); /* the max is exact */
    cr_assert_eq(hist_percentile(a, 99), 200000000u);
    /* b is unchanged */
    cr_assert_eq(b->total, 10u);
    free(a);
    free(b);
}

Test(bench_hist, empty_reports_zero) {
    struct hist *h = new_hist();
    cr_assert_eq(hist_percentile(h, 99), 0u);
    free(h);
}
