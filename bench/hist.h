/* bench/hist.h: a fixed-size log-linear latency histogram (HdrHistogram's layout).
 *
 * Values (nanoseconds in zev-bench) below HIST_SUB are counted exactly; above, every power of
 * two [2^e, 2^(e+1)) is split into HIST_SUB linear buckets of width 2^(e-HIST_SUB_BITS), so a
 * bucket is at most 1/128 of its values wide: every reported value is within 0.8% of a value
 * that was recorded. The counts live inside the struct (about 30 KiB): allocate it once before
 * measuring; hist_record is a few integer operations and never allocates. Values from
 * 2^HIST_TOP_BITS ns (about 68 s) up land in the last bucket; max stays exact.
 */
#ifndef ZEV_BENCH_HIST_H
#define ZEV_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_TOP_BITS 36
#define HIST_BUCKETS (HIST_SUB + (HIST_TOP_BITS - HIST_SUB_BITS) * HIST_SUB)

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
};

/* Empty it (also how a measuring window starts). */
void hist_reset(struct hist *h);
/* Count one value. */
void hist_record(struct hist *h, uint64_t v);
/* Add every count of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/* The value at percentile p (0 < p <= 100): the highest value of the bucket holding the
 * ceil(p/100 * total)-th smallest value, never above max; 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);

/* The bucket of v, and the lowest and highest value a bucket counts (for the tests). */
unsigned hist_bucket(uint64_t v);
uint64_t hist_bucket_low(unsigned b);
uint64_t hist_bucket_high(unsigned b);

#endif /* ZEV_BENCH_HIST_H */
