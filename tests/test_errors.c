/* tests/test_errors.c: error names and texts, and bad input to the loop. */
#include "zt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void noop_async(zev_async_t *a) {
    (void)a;
}

Test(errors, every_errno_zev_returns_has_a_name_and_text) {
    const int codes[] = {EINVAL, EBADF, EBUSY, ENOMEM, EMFILE, ENFILE, EAGAIN, EINTR,
                         EADDRINUSE, EADDRNOTAVAIL, EACCES, ECONNREFUSED, ECONNRESET,
                         ETIMEDOUT, ENETUNREACH, EHOSTUNREACH, EPIPE, ECANCELED, EMSGSIZE,
                         EISCONN, ENOTCONN, EAFNOSUPPORT, ENOTSOCK, EPERM, ENOBUFS,
                         ENODEV, EALREADY, EINPROGRESS, EOPNOTSUPP, ENOSYS, ERANGE};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        cr_assert_str_neq(zev_err_name(-codes[i]), "UNKNOWN", "errno %d", codes[i]);
        cr_assert_str_neq(zev_strerror(-codes[i]), "unknown error", "errno %d", codes[i]);
    }
}

Test(errors, names_match_the_symbols) {
    cr_assert_str_eq(zev_err_name(-EADDRINUSE), "EADDRINUSE");
    cr_assert_str_eq(zev_err_name(-ECONNREFUSED), "ECONNREFUSED");
    cr_assert_str_eq(zev_err_name(-EBADF), "EBADF");
    cr_assert_str_eq(zev_strerror(-EADDRINUSE), "address already in use");
    cr_assert_str_eq(zev_err_name(EINVAL), "EINVAL", "positive codes are accepted too");
}

Test(errors, unknown_codes_are_named_so_and_never_null) {
    cr_assert_str_eq(zev_err_name(-99999), "UNKNOWN");
    cr_assert_str_eq(zev_strerror(-99999), "unknown error");
    cr_assert_str_eq(zev_strerror(0), "success");
}

Test(errors, deadlock_protocol_and_no_network_errors_have_names) {
    cr_assert_str_eq(zev_err_name(-EDEADLK), "EDEADLK");
    cr_assert_str_eq(zev_err_name(-EPROTO), "EPROTO");
#ifdef ENONET
    cr_assert_str_eq(zev_err_name(-ENONET), "ENONET");
#endif
    cr_assert_str_neq(zev_strerror(-EPROTO), "unknown error");
}

Test(errors, enotsup_and_eopnotsupp_both_have_names_equal_or_not) {
    /* One value on Linux, two on the BSDs: each must be named either way. */
    const char *sup = zev_err_name(-ENOTSUP);
    const char *op = zev_err_name(-EOPNOTSUPP);
    cr_assert(strcmp(sup, "ENOTSUP") == 0 || strcmp(sup, "EOPNOTSUPP") == 0, "%s", sup);
    cr_assert_str_eq(op, "EOPNOTSUPP");
    if (ENOTSUP != EOPNOTSUPP) cr_assert_str_eq(sup, "ENOTSUP");
}

Test(errors, codes_missing_from_the_table_get_the_system_text) {
    /* EXDEV is not an error zev returns, so not in its table: the system describes it. */
    cr_assert_str_eq(zev_strerror(-EXDEV), strerror(EXDEV));
    cr_assert_str_eq(zev_strerror(EXDEV), strerror(EXDEV));
#ifdef ZEV_HAVE_STRERRORNAME_NP
    cr_assert_str_eq(zev_err_name(-EXDEV), "EXDEV", "the C library knows the name");
#endif
}

Test(errors, version_text_matches_the_header) {
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", ZEV_VERSION_MAJOR, ZEV_VERSION_MINOR,
             ZEV_VERSION_PATCH);
    cr_assert_str_eq(zev_version(), want);
}

Test(errors, null_loop_is_einval_everywhere) {
    cr_assert_eq(zev_loop_init(NULL), -EINVAL);
    cr_assert_eq(zev_loop_close(NULL), -EINVAL);
    cr_assert_eq(zev_run(NULL, ZEV_RUN_DEFAULT), -EINVAL);
    cr_assert_eq(zev_stop(NULL), -EINVAL);
    cr_assert_eq(zev_loop_alive(NULL), 0);
    cr_assert_eq(zev_now(NULL), 0);
    cr_assert_eq(zev_loop_metrics(NULL, NULL), -EINVAL);
}

Test(errors, a_closed_loop_refuses_work) {
    zev_loop_t loop;
    zev_timer_t t;
    zev_async_t a;
    cr_assert_eq(zev_loop_init(&loop), 0);
    cr_assert_eq(zev_loop_close(&loop), 0);
    cr_assert_eq(zev_loop_close(&loop), -EBADF, "closing twice");
    cr_assert_eq(zev_run(&loop, ZEV_RUN_DEFAULT), -EBADF);
    cr_assert_eq(zev_stop(&loop), -EBADF);
    cr_assert_eq(zev_timer_init(&loop, &t), -EBADF);
    cr_assert_eq(zev_async_init(&loop, &a, noop_async), -EBADF);
    cr_assert_eq(zev_loop_alive(&loop), 0);
}

Test(errors, bad_run_mode_and_bad_options_are_einval) {
    zev_loop_t loop;
    cr_assert_eq(zev_loop_init(&loop), 0);
    cr_assert_eq(zev_run(&loop, (zev_run_mode)42), -EINVAL);
    cr_assert_eq(zev_loop_close(&loop), 0);

    zev_loop_options_t o = {0};
    o.buf_size = 1;
    cr_assert_eq(zev_loop_init_ex(&loop, &o), -EINVAL, "chunk too small");
    o.buf_size = 0;
    o.max_events = 1u << 30;
    cr_assert_eq(zev_loop_init_ex(&loop, &o), -EINVAL, "max_events too large");
    o.max_events = 0;
    o.allocator.ctx = NULL;
    o.allocator.alloc = NULL;
    o.allocator.free = (void (*)(void *, void *, size_t))1;
    cr_assert_eq(zev_loop_init_ex(&loop, &o), -EINVAL, "half an allocator");
}

struct counting_alloc {
    int allocs;
    int frees;
};

static void *count_alloc(void *ctx, size_t size) {
    ((struct counting_alloc *)ctx)->allocs++;
    return malloc(size);
}

static void count_free(void *ctx, void *p, size_t size) {
    (void)size;
    ((struct counting_alloc *)ctx)->frees++;
    free(p);
}

Test(errors, the_allocator_hook_sees_every_loop_allocation) {
    struct counting_alloc c = {0};
    zev_loop_options_t o = {.allocator = {count_alloc, count_free, &c}, .max_events = 8};
    zev_loop_t loop;
    cr_assert_eq(zev_loop_init_ex(&loop, &o), 0);
    int at_init = c.allocs;
    cr_assert_geq(at_init, 1, "the backend's arrays, allocated once at init");
    zev_buf_t *b = zev_buf_get(&loop);
    cr_assert_eq(c.allocs, at_init + 1, "one pool chunk");
    cr_assert_not_null(b);
    cr_assert_eq(zev_loop_close(&loop), -EBUSY, "a chunk is still referenced");
    zev_buf_unref(b);
    cr_assert_eq(zev_loop_close(&loop), 0);
    cr_assert_eq(c.frees, c.allocs, "everything went back through the hook");
}
