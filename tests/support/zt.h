/* tests/support/zt.h: helpers shared by the Criterion suites.
 *
 * Every suite that uses the loop fixture gets a fresh loop in `zt_loop`, and its teardown
 * closes the loop (asserting success: every handle was closed) and asserts that the test
 * released every descriptor it opened.
 */
#ifndef ZT_H
#define ZT_H

#include "zev.h"

#include <criterion/criterion.h>

extern zev_loop_t zt_loop;

/* Entries of a directory without "." and "..", or -1: /proc/PID/task counts threads. */
int zt_dir_entries(const char *path);
/* Number of open descriptors of this process. */
int zt_fd_count(void);
/* Fixture: record fds, init zt_loop. */
void zt_setup(void);
/* Fixture: close zt_loop, assert no fd leaked. */
void zt_teardown(void);
/* Run zt_loop until nothing is alive; assert it returned 0. Tests bound it with .timeout. */
void zt_run(void);
/* Run zt_loop (ONCE at a time) until *flag reaches want or ms pass. Returns 1 if it did. */
int zt_run_until(const int *flag, int want, int64_t ms);
/* Close callback that counts into an int pointed to by handle->data (if set). */
void zt_count_close(zev_handle_t *h);
/* Give zt_loop an allocator that fails while zt_alloc_refuse is set (tests of -ENOMEM paths),
 * and set it. The loop's earlier blocks came from malloc, which this allocator's free suits. */
extern int zt_alloc_refuse;
void zt_use_picky_allocator(void);
/* Bytes the loop holds from its allocator, and calls, counted by the allocator that
 * zt_loop_counting() gives zt_loop (malloc/free underneath). */
typedef struct {
    long long live;
    unsigned long allocs;
    unsigned long frees;
} zt_alloc_count_t;
extern zt_alloc_count_t zt_allocs;
/* Re-initialise the (fresh) zt_loop through zev_loop_init_ex with options o (the fixture's
 * backend check included). */
void zt_loop_with(const zev_loop_options_t *o);
/* Re-initialise the (fresh) zt_loop through zev_loop_init_ex with that counting allocator,
 * and idle memory given back after 1 ms (zev_loop_options_t.idle_ms). */
void zt_loop_counting(void);
/* Run zt_loop (ONCE at a time, at most `rounds` times) until it holds at most `bytes` more
 * than `base` from the counting allocator. Returns 1 if it did. */
int zt_run_until_live_at_most(long long base, long long bytes, int rounds);
/* Whether zt_loop runs in completion mode (io_uring with ZEV_URING_COMPLETION): sockets submit
 * operations instead of making the syscalls the fault seam counts and fails. */
bool zt_loop_completes(void);

#endif
