/* tests/support/thread_scenarios.h: multi-threaded scenarios shared by the Criterion suite
 * (test_async.c) and the ThreadSanitizer runner (tsan_threads.c). Criterion itself cannot start
 * under TSan (its fixed-address arena collides with TSan's shadow memory; Criterion issue 274),
 * so the TSan build runs these same functions from a plain main(). Each returns 0 on success
 * or a short description of what went wrong, and releases everything it took. */
#ifndef ZT_THREAD_SCENARIOS_H
#define ZT_THREAD_SCENARIOS_H

/* A thread sends `rounds` wake-ups, each waiting until the loop saw the previous one. */
const char *zt_async_pingpong(int rounds);
/* `threads` threads send `sends` wake-ups each at once; all must be seen, and coalesced. */
const char *zt_async_storm(int threads, int sends);

#endif
