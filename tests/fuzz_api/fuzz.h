/* tests/fuzz_api/fuzz.h: a model-based fuzzer of zev's public API (see docs/testing.md).
 *
 * One run draws a random sequence of operations (listen, connect, accept, write, end, destroy,
 * pause, resume, pipe, timers, ref/unref, UDP...) from a seeded PRNG, performs them on real
 * loopback sockets, and checks every callback and every step against a small reference model.
 * The first disagreement ends the run through the caller's on_fail hook, with the seed and the
 * last operations in the message. Used by tests/test_api_fuzz.c (fixed seeds) and by the
 * stand-alone runner tests/fuzz_api/runner.c (random seeds for as long as asked).
 */
#ifndef FUZZ_API_H
#define FUZZ_API_H

#include <stdint.h>

struct fz_result {
    unsigned ops;          /* operations performed */
    uint64_t bytes;        /* payload bytes checked by receivers */
    unsigned connects_ok;  /* connect callbacks with status 0 */
    unsigned closes;       /* close callbacks */
    int out_of_time;       /* the run hit max_ms and wound down early */
};

struct fz_options {
    uint64_t seed;
    unsigned max_ops;  /* operations before winding down (0: 2000) */
    unsigned max_ms;   /* wall-clock bound of the whole run (0: 20000) */
    int verbose;       /* print every operation and callback as it happens */
    /* Weights that replace the table's, "name=w,name=w" (e.g. "connect_stalled=0" to steer
     * around a known defect); NULL: the table's. An unknown name fails the run. */
    const char *weights;
    /* Called once with the failure report (seed, message, last operations); must not
     * return (Criterion's cr_fatal, or exit in the runner). */
    void (*on_fail)(const char *report, void *ctx);
    void *ctx;
    /* If set, filled with the counts so far before on_fail is called (a runner still counts
     * the operations of a failing seed). */
    struct fz_result *progress;
};


/* Run one seed. Returns 0 when every check held (a failure never returns: see on_fail). */
int fz_run(const struct fz_options *opts, struct fz_result *result);

#endif
