/* tests/test_backend.c: choosing a loop's backend at run time, and falling back with a reason.
 * Built with fault injection: a refused io_uring_setup is simulated through the seam (the real
 * refusals, a sysctl or a seccomp profile, cannot be set up from a test). */
#include "reactor_internal.h"
#include "sys_fault.h"
#include "zt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* These tests choose the backend themselves: $ZEV_BACKEND from `--setup uring` is put aside. */
static char saved_env[32];
static bool had_env;

static void backend_setup(void) {
    const char *v = getenv("ZEV_BACKEND");
    had_env = v != NULL;
    if (v) snprintf(saved_env, sizeof(saved_env), "%s", v);
    unsetenv("ZEV_BACKEND");
    zev_fault_reset();
}

static void backend_teardown(void) {
    zev_fault_reset();
    if (had_env) setenv("ZEV_BACKEND", saved_env, 1);
}

TestSuite(backend, .init = backend_setup, .fini = backend_teardown, .timeout = 10);

static const char *run_with(zev_backend_kind kind, const char **why, int *err) {
    static zev_loop_t loop;
    loop = (zev_loop_t){0};
    zev_loop_options_t o = {.backend = kind};
    *err = zev_loop_init_ex(&loop, &o);
    if (*err < 0) return NULL;
    static char name[16], reason[160];
    const char *w = NULL;
    snprintf(name, sizeof(name), "%s", zev_loop_backend(&loop, &w));
    snprintf(reason, sizeof(reason), "%s", w ? w : "");
    *why = reason;
    cr_assert_eq(zev_loop_close(&loop), 0);
    return name;
}

Test(backend, the_default_is_the_built_in_readiness_backend) {
    const char *why;
    int err;
    const char *name = run_with(ZEV_BACKEND_DEFAULT, &why, &err);
    cr_assert_eq(err, 0);
    cr_assert_str_eq(name, zev_backend_name());
    cr_assert_str_eq(why, "built-in default");
}

#ifdef ZEV_HAVE_IO_URING
Test(backend, io_uring_asked_in_the_options_runs_io_uring) {
    const char *why;
    int err;
    const char *name = run_with(ZEV_BACKEND_IO_URING, &why, &err);
    cr_assert_eq(err, 0);
    cr_assert_str_eq(name, "io_uring");
    cr_assert_str_eq(why, "options");
}

/* The handle listing named the built-in backend (zev_backend_name) for every loop, so a
 * loop running io_uring was printed as "(epoll)". */
Test(backend, the_handle_listing_names_the_backend_the_loop_runs) {
    zev_loop_t loop;
    zev_loop_options_t o = {.backend = ZEV_BACKEND_IO_URING};
    cr_assert_eq(zev_loop_init_ex(&loop, &o), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    cr_assert_geq(zev_loop_print_handles(&loop, out, 0), 0);
    fclose(out);
    cr_assert_not_null(strstr(text, "(io_uring)"), "%s", text);
    free(text);
    cr_assert_eq(zev_loop_close(&loop), 0);
}

Test(backend, zev_backend_in_the_environment_picks_io_uring) {
    setenv("ZEV_BACKEND", "io_uring", 1);
    const char *why;
    int err;
    const char *name = run_with(ZEV_BACKEND_DEFAULT, &why, &err);
    cr_assert_eq(err, 0);
    cr_assert_str_eq(name, "io_uring");
    cr_assert_str_eq(why, "ZEV_BACKEND=io_uring");
}

Test(backend, the_options_win_over_the_environment) {
    setenv("ZEV_BACKEND", "io_uring", 1);
    const char *why;
    int err;
    const char *name = run_with(ZEV_BACKEND_EPOLL, &why, &err);
    cr_assert_eq(err, 0);
    cr_assert_str_eq(name, "epoll");
}

Test(backend, io_uring_refused_by_the_kernel_falls_back_to_epoll_and_says_why) {
    int fds_before = zt_fd_count();
    zev_fault_fail(ZEV_SYS_POLL_CREATE, 0, 1, EPERM); /* as seccomp or the sysctl answer */
    const char *why;
    int err;
    const char *name = run_with(ZEV_BACKEND_IO_URING, &why, &err);
    cr_assert_eq(err, 0, "a refusal is no error: the loop runs epoll");
    cr_assert_str_eq(name, "epoll");
    cr_assert(strstr(why, "io_uring unavailable") && strstr(why, "EPERM") &&
                  strstr(why, "using epoll"),
              "why: %s", why);
    cr_assert_eq(zt_fd_count(), fds_before);
}

Test(backend, an_old_kernel_without_io_uring_falls_back_to_epoll) {
    zev_fault_fail(ZEV_SYS_POLL_CREATE, 0, 1, ENOSYS);
    const char *why;
    int err;
    const char *name = run_with(ZEV_BACKEND_IO_URING, &why, &err);
    cr_assert_eq(err, 0);
    cr_assert_str_eq(name, "epoll");
    cr_assert(strstr(why, "ENOSYS"), "why: %s", why);
}

Test(backend, out_of_descriptors_while_setting_up_io_uring_is_an_error_not_a_switch) {
    int fds_before = zt_fd_count();
    zev_fault_fail(ZEV_SYS_POLL_CREATE, 0, 1, EMFILE);
    const char *why;
    int err;
    run_with(ZEV_BACKEND_IO_URING, &why, &err);
    cr_assert_eq(err, -EMFILE);
    cr_assert_eq(zt_fd_count(), fds_before);
}

Test(backend, a_failed_ring_mapping_releases_the_ring_and_is_reported) {
    int fds_before = zt_fd_count();
    zev_fault_fail(ZEV_SYS_RING_MAP, 1, 1, ENOMEM); /* the second mapping: the SQEs */
    const char *why;
    int err;
    run_with(ZEV_BACKEND_IO_URING, &why, &err);
    cr_assert_eq(err, -ENOMEM);
    cr_assert_eq(zt_fd_count(), fds_before, "the ring's descriptor is closed again");
}
#endif

Test(backend, a_backend_not_built_in_falls_back_with_the_reason) {
    zev_backend_kind other = strcmp(zev_backend_name(), "epoll") == 0 ? ZEV_BACKEND_KQUEUE
                                                                       : ZEV_BACKEND_EPOLL;
    const char *why;
    int err;
    const char *name = run_with(other, &why, &err);
    cr_assert_eq(err, 0);
    cr_assert_str_eq(name, zev_backend_name());
    cr_assert(strstr(why, "not built in"), "why: %s", why);
}

Test(backend, an_unknown_name_in_zev_backend_is_einval) {
    setenv("ZEV_BACKEND", "select", 1);
    zev_loop_t loop = {0};
    cr_assert_eq(zev_loop_init(&loop), -EINVAL);
    setenv("ZEV_BACKEND", "", 1); /* empty: as unset */
    cr_assert_eq(zev_loop_init(&loop), 0);
    cr_assert_str_eq(zev_loop_backend(&loop, NULL), zev_backend_name());
    cr_assert_eq(zev_loop_close(&loop), 0);
}

Test(backend, an_out_of_range_backend_option_is_einval) {
    zev_loop_t loop = {0};
    zev_loop_options_t o = {.backend = (zev_backend_kind)42};
    cr_assert_eq(zev_loop_init_ex(&loop, &o), -EINVAL);
}

Test(backend, a_closed_or_null_loop_has_no_backend) {
    zev_loop_t loop = {0};
    const char *why = "untouched";
    cr_assert_null(zev_loop_backend(NULL, &why));
    cr_assert_eq(zev_loop_init(&loop), 0);
    cr_assert_eq(zev_loop_close(&loop), 0);
    cr_assert_null(zev_loop_backend(&loop, &why));
    cr_assert_str_eq(why, "untouched");
}
