/* tests/test_buf.c: the pool's refcounts, and what a released chunk refuses. */
#include "reactor_internal.h"
#include "zt.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

TestSuite(buf, .init = zt_setup, .fini = zt_teardown, .timeout = 10);

Test(buf, ref_and_unref_count_and_the_last_unref_returns_the_chunk) {
    zev_buf_t *b = zev_buf_get(&zt_loop);
    cr_assert_not_null(b);
    cr_assert_eq(zev_buf_ref(b), b);
    cr_assert_eq(zev_buf_unref(b), 0);
    zev_buf_pool_stats_t st;
    zev_buf_pool_stats(&zt_loop, &st);
    cr_assert_eq(st.in_use, 1);
    cr_assert_eq(zev_buf_unref(b), 0);
    zev_buf_pool_stats(&zt_loop, &st);
    cr_assert_eq(st.in_use, 0);
    cr_assert_eq(zev_buf_unref(NULL), 0, "NULL-safe");
    cr_assert_null(zev_buf_ref(NULL));
}

/* One zev_buf_unref too many put a chunk on the free list while somebody still used it; a
 * zev_buf_ref then revived it there, and the pool handed the same chunk to a second owner
 * (a peer received another writer's bytes). A released chunk must refuse both. */
Test(buf, a_released_chunk_refuses_ref_and_unref_and_is_never_handed_out_twice) {
    zev_buf_t *b = zev_buf_get(&zt_loop);
    cr_assert_eq(zev_buf_unref(b), 0);
    cr_assert_eq(zev_buf_unref(b), -EINVAL, "one unref too many");
    cr_assert_null(zev_buf_ref(b), "a released chunk cannot be revived");
    zev_buf_pool_stats_t st;
    zev_buf_pool_stats(&zt_loop, &st);
    cr_assert_eq(st.in_use, 0, "nothing changed");
    zev_buf_t *c1 = zev_buf_get(&zt_loop);
    zev_buf_t *c2 = zev_buf_get(&zt_loop);
    cr_assert_neq(c1, c2, "one chunk, one owner");
    zev_buf_pool_stats(&zt_loop, &st);
    cr_assert_eq(st.in_use, 2);
    zev_buf_unref(c1);
    zev_buf_unref(c2);
}

Test(buf, a_reference_count_at_its_maximum_refuses_one_more) {
    zev_buf_t *b = zev_buf_get(&zt_loop);
    b->refs = UINT32_MAX; /* private field, set directly: 4 billion refs take too long */
    cr_assert_null(zev_buf_ref(b), "would wrap to 0");
    cr_assert_eq(b->refs, UINT32_MAX);
    b->refs = 1;
    zev_buf_unref(b);
}

Test(buf, chunk_sizes_that_would_overflow_or_are_absurd_are_einval) {
    zev_loop_t loop;
    zev_loop_options_t o = {0};
    const size_t bad[] = {SIZE_MAX, SIZE_MAX - 32, (size_t)ZEV_BUF_SIZE_MAX + 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.buf_size = bad[i];
        int err = zev_loop_init_ex(&loop, &o);
        if (err == 0) zev_loop_close(&loop);
        cr_assert_eq(err, -EINVAL, "buf_size %zu", bad[i]);
    }
    o.buf_size = ZEV_BUF_SIZE_MAX;
    cr_assert_eq(zev_loop_init_ex(&loop, &o), 0, "the documented maximum is accepted");
    cr_assert_eq(zev_loop_close(&loop), 0);
}

#if defined(ZEV_DEBUG_CHECKS) && defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>

/* Debug builds under ASan: a chunk on the free list is poisoned, so a slice kept without a
 * reference is reported at its first use, not when the chunk's next owner writes to it. */
Test(buf, a_released_chunk_is_poisoned_until_the_pool_hands_it_out_again) {
    zev_buf_t *b = zev_buf_get(&zt_loop);
    char *p = b->base;
    cr_assert_not(__asan_address_is_poisoned(p));
    zev_buf_unref(b);
    cr_assert(__asan_address_is_poisoned(p));
    cr_assert(__asan_address_is_poisoned(p + b->size - 1));
    zev_buf_t *again = zev_buf_get(&zt_loop);
    cr_assert_eq(again, b, "the free list is LIFO");
    cr_assert_not(__asan_address_is_poisoned(p));
    zev_buf_unref(again);
}
#endif

/* ---- giving memory back ------------------------------------------------------------------ */

/* Chunks freed only at zev_loop_close kept a server at its peak RSS after a burst of 300
 * never-reading clients had left. Chunks idle for a whole interval (idle_ms: 1 ms here) go
 * back, down to a floor of 1 MiB. */
Test(buf, after_a_burst_the_pool_gives_idle_chunks_back_down_to_its_floor) {
    zt_loop_counting();
    long long base = zt_allocs.live;
    enum { BURST = 64 };
    zev_buf_t *held[BURST];
    for (int i = 0; i < BURST; i++) cr_assert_not_null(held[i] = zev_buf_get(&zt_loop));
    cr_assert_gt(zt_allocs.live - base, BURST * 64 * 1024);
    for (int i = 0; i < BURST; i++) zev_buf_unref(held[i]);
    cr_assert(zt_run_until_live_at_most(base, 1 << 20, 10000), "%lld bytes of idle chunks kept",
              zt_allocs.live - base);
    zev_buf_pool_stats_t st;
    zev_buf_pool_stats(&zt_loop, &st);
    cr_assert_eq(st.in_use, 0);
    cr_assert_eq(st.released, BURST - st.idle);
    cr_assert_leq(st.idle, (1 << 20) / (64 * 1024));
}

/* Hysteresis: a use that swings far above the floor within every interval (a UDP socket takes
 * a batch of chunks per receive pass and gives them all back) neither allocates nor frees once
 * warmed up, however many intervals pass: steady state costs no allocator call per message.
 * The trim is called once per swing, as its timer would between two swings; through the
 * timer, a loaded machine could fit two trims between swings and make the test flaky (it
 * once counted 25 allocations). The timer's own wiring is tested above. */
Test(buf, a_pool_swinging_above_its_floor_every_interval_allocates_and_frees_nothing) {
    zt_loop_counting();
    enum { SWING = 40, ROUNDS = 20 };
    zev_buf_t *held[SWING];
    for (int round = 0; round < ROUNDS; round++) {
        if (round == 1) zt_allocs.allocs = zt_allocs.frees = 0;
        for (int i = 0; i < SWING; i++) held[i] = zev_buf_get(&zt_loop);
        for (int i = 0; i < SWING; i++) zev_buf_unref(held[i]);
        (void)zev__buf_pool_trim(&zt_loop); /* the interval ends */
    }
    cr_assert_eq(zt_allocs.allocs, 0, "%lu allocations", zt_allocs.allocs);
    cr_assert_eq(zt_allocs.frees, 0, "%lu frees", zt_allocs.frees);
}

/* The slab's sweep with objects still in use: it frees exactly the blocks whose objects are
 * all free, keeps the ones that hold a live object, and leaves a free list that hands out
 * only memory it still owns (ASan would see a freed block written below). */
Test(buf, a_slab_sweep_frees_wholly_free_blocks_and_keeps_those_in_use) {
    zt_loop_counting();
    struct zev__slab *slab = &zt_loop.slab;
    long long base = zt_allocs.live;
    enum { N = 4000, EVERY = 333 }; /* 32 blocks of 127; 13 survivors, each in its own block */
    static char *obj[N];
    for (int i = 0; i < N; i++) cr_assert_not_null(obj[i] = zev__slab_get(&zt_loop, slab));
    cr_assert_eq(slab->n_blocks, (N + 126) / 127);
    int survivors = 0;
    for (int i = 0; i < N; i++) {
        if (i % EVERY == 0) {
            survivors++;
            memset(obj[i], 's', ZEV__SLAB_SMALL);
        } else {
            zev__slab_put(slab, obj[i]);
        }
    }
    zev__slab_trim(slab); /* the interval that saw the peak: nothing goes */
    cr_assert_eq(slab->n_blocks, (N + 126) / 127);
    zev__slab_trim(slab); /* an interval under a quarter of the capacity: sweep */
    cr_assert_eq(slab->n_blocks, (size_t)survivors, "one block per survivor stays");
    cr_assert_eq(zt_allocs.live - base, (long long)survivors * 8192);
    static char *again[N];
    for (int i = 0; i < N; i++) {
        again[i] = zev__slab_get(&zt_loop, slab);
        memset(again[i], 'a', ZEV__SLAB_SMALL);
    }
    for (int i = 0; i < N; i += EVERY) cr_assert_eq(obj[i][63], 's', "survivors untouched");
    for (int i = 0; i < N; i++) zev__slab_put(slab, again[i]);
    for (int i = 0; i < N; i += EVERY) zev__slab_put(slab, obj[i]);
    zev__slab_trim(slab);
    zev__slab_trim(slab);
    cr_assert_eq(slab->n_blocks, 0, "nothing in use for an interval: every block goes back");
}

/* ---- carved slices: one chunk shared by many small messages (zev_buf_alloc) ---------------- */

static size_t pool_in_use(void) {
    zev_buf_pool_stats_t st;
    zev_buf_pool_stats(&zt_loop, &st);
    return (size_t)st.in_use;
}

/* A fan-out server formatting one message per line pinned a whole chunk per message: small
 * slices must come from one chunk, aligned and apart, and the chunk must go back to the pool
 * with the last slice of it once the loop has moved on to the next. */
Test(buf, carved_slices_share_one_chunk_that_returns_with_its_last_slice) {
    enum { N = 64, LEN = 100 };
    zev_slice_t s[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(zev_buf_alloc(&zt_loop, LEN, &s[i]), 0);
        cr_assert_eq(s[i].len, LEN);
        cr_assert_eq((uintptr_t)s[i].base % 16, 0, "aligned as malloc");
        cr_assert_eq(s[i].owner, s[0].owner, "small slices share a chunk");
        memset(s[i].base, 'a' + i % 26, LEN);
        if (i > 0) cr_assert_geq(s[i].base, s[i - 1].base + LEN, "slices never overlap");
    }
    for (int i = 0; i < N; i++) cr_assert_eq(s[i].base[LEN - 1], 'a' + i % 26);
    cr_assert_eq(pool_in_use(), 1, "one chunk for %d messages", N);
    zev_buf_t *first = s[0].owner;
    cr_assert_eq(first->refs, N + 1, "a reference per slice, and the loop's");
    /* Carve until the loop moves on: the first chunk is then held by its slices only. */
    zev_slice_t next;
    int more = 0;
    size_t room = first->size / 128 + 1;
    do {
        cr_assert_eq(zev_buf_alloc(&zt_loop, 128, &next), 0);
        if (next.owner == first) zev_buf_unref(next.owner);
    } while (next.owner == first && ++more < (int)room);
    cr_assert_neq(next.owner, first, "a full chunk is left for a fresh one");
    cr_assert_eq(first->refs, N, "the loop let go of the full chunk");
    cr_assert_eq(pool_in_use(), 2);
    for (int i = 0; i < N; i++) cr_assert_eq(zev_buf_unref(s[i].owner), 0);
    cr_assert_eq(pool_in_use(), 1, "the last slice returned the full chunk to the pool");
    zev_buf_unref(next.owner);
}

/* Nobody holds a slice of the carve chunk: the next message goes to its beginning again, so a
 * fan-out whose writes all reach the kernel at once reuses one hot chunk forever. */
Test(buf, a_carve_chunk_nobody_holds_starts_over_and_steady_state_allocates_nothing) {
    zt_loop_counting();
    zev_slice_t a;
    cr_assert_eq(zev_buf_alloc(&zt_loop, 40, &a), 0);
    char *start = a.base;
    zev_buf_unref(a.owner);
    cr_assert_eq(zev_buf_alloc(&zt_loop, 40, &a), 0);
    cr_assert_eq(a.base, start, "started over");
    zev_buf_unref(a.owner);
    /* A window of 100 messages in flight over 100000: a few chunks, reused. */
    enum { WINDOW = 100, MESSAGES = 100000 };
    static zev_slice_t win[WINDOW];
    for (int i = 0; i < MESSAGES; i++) {
        if (i >= WINDOW) zev_buf_unref(win[i % WINDOW].owner);
        cr_assert_eq(zev_buf_alloc(&zt_loop, 50 + i % 200, &win[i % WINDOW]), 0);
        if (i == 10 * WINDOW) zt_allocs.allocs = 0;
    }
    cr_assert_eq(zt_allocs.allocs, 0, "%lu allocations once warm", zt_allocs.allocs);
    cr_assert_leq(pool_in_use(), 3);
    for (int i = 0; i < WINDOW; i++) zev_buf_unref(win[i].owner);
}

/* A message too big to share well gets a chunk of its own and leaves the carve chunk as it
 * was: the next small slice still follows the previous one. */
Test(buf, a_large_message_that_does_not_fit_gets_its_own_chunk) {
    zev_slice_t small, big, after;
    cr_assert_eq(zev_buf_alloc(&zt_loop, 10, &small), 0);
    size_t size = small.owner->size;
    cr_assert_eq(zev_buf_alloc(&zt_loop, size - 8, &big), 0);
    cr_assert_neq(big.owner, small.owner);
    cr_assert_eq(big.owner->refs, 1, "only the caller's reference");
    cr_assert_eq(big.base, big.owner->base);
    cr_assert_eq(zev_buf_alloc(&zt_loop, 10, &after), 0);
    cr_assert_eq(after.owner, small.owner);
    cr_assert_eq(after.base, small.base + 16);
    zev_slice_t whole;
    cr_assert_eq(zev_buf_alloc(&zt_loop, size, &whole), 0, "a whole chunk is allowed");
    cr_assert_eq(pool_in_use(), 3);
    zev_buf_unref(big.owner);
    zev_buf_unref(whole.owner);
    cr_assert_eq(pool_in_use(), 1, "a lone chunk goes back with its slice");
    zev_buf_unref(small.owner);
    zev_buf_unref(after.owner);
}

Test(buf, carving_rejects_bad_arguments_and_a_closed_loop) {
    zev_slice_t s = {0};
    cr_assert_eq(zev_buf_alloc(NULL, 1, &s), -EINVAL);
    cr_assert_eq(zev_buf_alloc(&zt_loop, 1, NULL), -EINVAL);
    cr_assert_eq(zev_buf_alloc(&zt_loop, 0, &s), -EINVAL);
    cr_assert_eq(zev_buf_alloc(&zt_loop, 64 * 1024 + 1, &s), -EINVAL, "above the chunk size");
    cr_assert_eq(pool_in_use(), 0, "nothing taken");
    zev_loop_t loop;
    cr_assert_eq(zev_loop_init(&loop), 0);
    cr_assert_eq(zev_loop_close(&loop), 0);
    cr_assert_eq(zev_buf_alloc(&loop, 1, &s), -EBADF);
}

/* The loop's own reference to its carve chunk does not keep zev_loop_close busy; a slice the
 * user still holds does. */
Test(buf, loop_close_is_busy_while_a_carved_slice_is_held_and_not_after) {
    zev_loop_t loop;
    cr_assert_eq(zev_loop_init(&loop), 0);
    zev_slice_t s;
    cr_assert_eq(zev_buf_alloc(&loop, 30, &s), 0);
    cr_assert_eq(zev_loop_close(&loop), -EBUSY);
    zev_buf_unref(s.owner);
    cr_assert_eq(zev_loop_close(&loop), 0);
}

/* Trimming lets go of a carve chunk nobody holds, as it does of the read area. */
Test(buf, an_idle_carve_chunk_goes_back_at_the_trim) {
    zt_loop_counting();
    long long base = zt_allocs.live;
    zev_slice_t s;
    cr_assert_eq(zev_buf_alloc(&zt_loop, 30, &s), 0);
    zev_buf_unref(s.owner);
    /* Idle chunks above the floor make the trim run; the carve chunk is one of them. */
    enum { BURST = 40 };
    zev_buf_t *held[BURST];
    for (int i = 0; i < BURST; i++) held[i] = zev_buf_get(&zt_loop);
    for (int i = 0; i < BURST; i++) zev_buf_unref(held[i]);
    cr_assert(zt_run_until_live_at_most(base, 1 << 20, 10000));
    cr_assert_null(zt_loop.carve_chunk, "let go");
    cr_assert_eq(pool_in_use(), 0);
}
