/* tests/support/zt.c: the loop fixture, fd-leak check and small callbacks for the suites. */
#include <string.h>
#include "zt.h"

#include "ring.h"

#include <dirent.h>
#include <stdlib.h>

zev_loop_t zt_loop;
static int fds_at_setup;

int zt_dir_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n;
}

int zt_fd_count(void) {
    return zt_dir_entries("/proc/self/fd") - 1; /* the directory's own fd */
}

/* Under `meson test --setup uring` the suites must really run io_uring: a fallback to epoll
 * (the kernel refused it) fails every test instead of passing on the wrong backend. */
static void expect_backend(void) {
    const char *want = getenv("ZT_EXPECT_BACKEND");
    if (!want) return;
    const char *why = NULL;
    const char *got = zev_loop_backend(&zt_loop, &why);
    cr_assert(got && strcmp(got, want) == 0, "backend %s, expected %s: %s", got, want, why);
}

void zt_setup(void) {
    fds_at_setup = zt_fd_count();
    cr_assert_eq(zev_loop_init(&zt_loop), 0);
    expect_backend();
}

void zt_teardown(void) {
    int err = zev_loop_close(&zt_loop);
    cr_assert_eq(err, 0, "zev_loop_close: %s (a handle was left open)", zev_err_name(err));
    cr_assert_eq(zt_fd_count(), fds_at_setup, "descriptors leaked");
}

void zt_run(void) {
    int r = zev_run(&zt_loop, ZEV_RUN_DEFAULT);
    cr_assert_eq(r, 0, "zev_run returned %d (%s)", r, zev_err_name(r));
}

void zt_count_close(zev_handle_t *h) {
    if (h->data) (*(int *)h->data)++;
}

static int deadline_hit;

static void on_deadline(zev_timer_t *t) {
    (void)t;
    deadline_hit = 1;
}

int zt_run_until(const int *flag, int want, int64_t ms) {
    zev_timer_t deadline;
    cr_assert_eq(zev_timer_init(&zt_loop, &deadline), 0);
    deadline_hit = 0;
    zev_timer_start(&deadline, on_deadline, ms, 0);
    while (*flag < want && !deadline_hit) zev_run(&zt_loop, ZEV_RUN_ONCE);
    zev_close(&deadline.handle, NULL);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    return *flag >= want;
}

int zt_alloc_refuse;

static void *picky_alloc(void *ctx, size_t size) {
    (void)ctx;
    return zt_alloc_refuse ? NULL : malloc(size);
}

static void picky_free(void *ctx, void *p, size_t size) {
    (void)ctx;
    (void)size;
    free(p);
}

void zt_use_picky_allocator(void) {
    zt_loop.allocator = (zev_allocator_t){picky_alloc, picky_free, NULL};
    zt_alloc_refuse = 1;
}

zt_alloc_count_t zt_allocs;

static void *counting_alloc(void *ctx, size_t size) {
    (void)ctx;
    void *p = malloc(size);
    if (p) {
        zt_allocs.live += (long long)size;
        zt_allocs.allocs++;
    }
    return p;
}

static void counting_free(void *ctx, void *p, size_t size) {
    (void)ctx;
    zt_allocs.live -= (long long)size;
    zt_allocs.frees++;
    free(p);
}

void zt_loop_with(const zev_loop_options_t *o) {
    cr_assert_eq(zev_loop_close(&zt_loop), 0, "zt_loop_with wants a fresh loop");
    cr_assert_eq(zev_loop_init_ex(&zt_loop, o), 0);
    expect_backend();
}

void zt_loop_counting(void) {
    zt_allocs = (zt_alloc_count_t){0};
    zev_loop_options_t o = {.allocator = {counting_alloc, counting_free, NULL}, .idle_ms = 1};
    zt_loop_with(&o);
}

int zt_run_until_live_at_most(long long base, long long bytes, int rounds) {
    zev_timer_t tick; /* keeps each round short while the loop has nothing else to do */
    cr_assert_eq(zev_timer_init(&zt_loop, &tick), 0);
    zev_timer_start(&tick, on_deadline, 1, 1);
    for (int i = 0; i < rounds && zt_allocs.live - base > bytes; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    zev_close(&tick.handle, NULL);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    return zt_allocs.live - base <= bytes;
}

bool zt_loop_completes(void) {
    return zev__loop_completes(&zt_loop);
}
