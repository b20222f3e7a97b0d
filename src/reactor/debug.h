/* src/reactor/debug.h: cheap checks of zev's own invariants, for debug builds.
 *
 * With -Ddebug_checks (by default on when buildtype is debug, off in release) each function
 * below tests one invariant and, if it is broken, prints one line on stderr and aborts: the
 * only place the library prints (docs/internals.md, "Debug checks"). Without it every
 * function is empty, so a check and the loads feeding it compile to nothing. User mistakes
 * that are cheap to detect in every build return an errno instead; these catch the rest.
 *
 * Under AddressSanitizer the pool chunks and slab objects sitting on a free list are also
 * poisoned, so a stale pointer into one is reported at its first use, not when another owner
 * reuses the memory.
 */
#ifndef ZEV_DEBUG_H
#define ZEV_DEBUG_H

#include "zev.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef ZEV_DEBUG_CHECKS
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#endif

#if defined(ZEV_DEBUG_CHECKS) && defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#ifdef ZEV_DEBUG_CHECKS

static inline void zev__debug_stack(void) {
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_print_stack_trace(); /* which call broke it, not only what */
#endif
}

static inline void zev__debug_assert(bool ok, const char *what) {
    if (ok) return;
    fprintf(stderr, "zev: debug check failed: %s\n", what);
    zev__debug_stack();
    abort();
}

/* loop->run_thread: the thread inside zev_run, 0 outside. Relaxed atomics: a wrong-thread
 * call reads it from another thread, and the check must not itself be a data race. */
static inline _Atomic uintptr_t *zev__debug_run_thread(const zev_loop_t *loop) {
    return (_Atomic uintptr_t *)&((zev_loop_t *)loop)->run_thread;
}

static inline uintptr_t zev__debug_self(void) {
    return (uintptr_t)pthread_self();
}

static inline void zev__debug_run_begin(zev_loop_t *loop) {
    atomic_store_explicit(zev__debug_run_thread(loop), zev__debug_self(), memory_order_relaxed);
}

static inline void zev__debug_run_end(zev_loop_t *loop) {
    atomic_store_explicit(zev__debug_run_thread(loop), 0, memory_order_relaxed);
}

/* A loop and its handles belong to the thread running it; only zev_async_send is exempt.
 * Checked only while zev_run is active: between runs a loop may move to another thread. */
static inline void zev__debug_loop_thread(const zev_loop_t *loop) {
    uintptr_t owner = atomic_load_explicit(zev__debug_run_thread(loop), memory_order_relaxed);
    zev__debug_assert(owner == 0 || owner == zev__debug_self(),
                      "a loop or handle call came from a thread other than the one running the "
                      "loop (only zev_async_send is thread-safe)");
}

#else /* !ZEV_DEBUG_CHECKS: every check is empty */

static inline void zev__debug_assert(bool ok, const char *what) {
    (void)ok;
    (void)what;
}

static inline void zev__debug_run_begin(zev_loop_t *loop) {
    (void)loop;
}

static inline void zev__debug_run_end(zev_loop_t *loop) {
    (void)loop;
}

static inline void zev__debug_loop_thread(const zev_loop_t *loop) {
    (void)loop;
}

#endif /* ZEV_DEBUG_CHECKS */

#if defined(ZEV_DEBUG_CHECKS) && defined(__SANITIZE_ADDRESS__)

/* Memory on a free list: any access before it is handed out again is reported. */
static inline void zev__debug_poison(const void *p, size_t len) {
    ASAN_POISON_MEMORY_REGION(p, len);
}

static inline void zev__debug_unpoison(const void *p, size_t len) {
    ASAN_UNPOISON_MEMORY_REGION(p, len);
}

#else

static inline void zev__debug_poison(const void *p, size_t len) {
    (void)p;
    (void)len;
}

static inline void zev__debug_unpoison(const void *p, size_t len) {
    (void)p;
    (void)len;
}

#endif

#endif /* ZEV_DEBUG_H */
