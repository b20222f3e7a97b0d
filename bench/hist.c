/* bench/hist.c: the log-linear latency histogram of hist.h. */
#include "hist.h"

#include <string.h>

void hist_reset(struct hist *h) {
    memset(h, 0, sizeof(*h));
}

unsigned hist_bucket(uint64_t v) {
    if (v < HIST_SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* v in [2^e, 2^(e+1)), e >= SUB_BITS */
    if (e >= HIST_TOP_BITS) return HIST_BUCKETS - 1;
    unsigned shift = e - HIST_SUB_BITS;
    /* v >> shift is in [SUB, 2*SUB): the linear sub-bucket within this power of two. */
    return HIST_SUB + shift * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

uint64_t hist_bucket_low(unsigned b) {
    if (b < HIST_SUB) return b;
    unsigned shift = (b - HIST_SUB) / HIST_SUB;
    uint64_t sub = HIST_SUB + (b - HIST_SUB) % HIST_SUB;
    return sub << shift;
}

uint64_t hist_bucket_high(unsigned b) {
    if (b < HIST_SUB) return b;
    unsigned shift = (b - HIST_SUB) / HIST_SUB;
    return hist_bucket_low(b) + (1ull << shift) - 1;
}

void hist_record(struct hist *h, uint64_t v) {
    h->counts[hist_bucket(v)]++;
    h->total++;
    if (v > h->max) h->max = v;
}

void hist_merge(struct hist *dst, const struct hist *src) {
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        dst->counts[b] += src->counts[b];
    }
    dst->total += src->total;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t hist_percentile(const struct hist *h, double p) {
    if (h->total == 0) return 0;
    double want = p / 100.0 * (double)h->total;
    uint64_t rank = want < 1 ? 1 : (uint64_t)want;
    if ((double)rank < want) rank++; /* ceil, without libm */
    if (rank > h->total) rank = h->total;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(b);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}
