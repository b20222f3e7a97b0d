/* tests/test_buf.c: the pool's refcounts, and what a released chunk refuses. */
#include "zt.h"

#include <errno.h>
#include <stdint.h>

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
