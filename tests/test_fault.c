/* tests/test_fault.c: the syscall seam. Built only with -Dfault_injection=true. */
#include "reactor_internal.h"
#include "sys_fault.h"
#include "zt.h"

#include <errno.h>
#include <unistd.h>

static void fault_setup(void) {
    zev_fault_reset();
    zt_setup();
}

static void fault_teardown(void) {
    zev_fault_reset();
    zt_teardown();
}

TestSuite(fault, .init = fault_setup, .fini = fault_teardown, .timeout = 10);

static int fired;

static void count_fire(zev_timer_t *t) {
    (void)t;
    fired++;
}

Test(fault, eintr_from_the_kernel_wait_is_retried_not_reported) {
    zev_timer_t t;
    fired = 0;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, count_fire, 5, 0);
    zev_fault_fail(ZEV_SYS_POLL_WAIT, 0, 3, EINTR);
    uint64_t calls_before = zev_fault_calls(ZEV_SYS_POLL_WAIT);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_ONCE), 0, "no error surfaced");
    cr_assert_eq(fired, 1);
    cr_assert_eq(zev_fault_hits(ZEV_SYS_POLL_WAIT), 3);
    cr_assert_geq(zev_fault_calls(ZEV_SYS_POLL_WAIT) - calls_before, 4, "retried after each");
    zev_close(&t.handle, NULL);
    zt_run();
}

Test(fault, other_wait_failures_are_returned_by_run) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, count_fire, 60000, 0);
    zev_fault_fail(ZEV_SYS_POLL_WAIT, 0, 1, ENOMEM);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), -ENOMEM);
    cr_assert(zev_is_active(&t.handle), "state is intact");
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_NOWAIT), 1, "the loop runs again");
    zev_close(&t.handle, NULL);
    zt_run();
}

Test(fault, loop_init_failure_releases_what_it_took) {
    zev_loop_t loop;
    int fds = zt_fd_count();
    zev_fault_fail(ZEV_SYS_WAKE_OPEN, 0, 1, EMFILE);
    cr_assert_eq(zev_loop_init(&loop), -EMFILE);
    cr_assert_eq(zt_fd_count(), fds);
    zev_fault_fail(ZEV_SYS_POLL_CREATE, 0, 1, ENFILE);
    cr_assert_eq(zev_loop_init(&loop), -ENFILE);
    cr_assert_eq(zt_fd_count(), fds);
}

Test(fault, skip_and_times_select_exactly_the_calls_asked_for) {
    zev_fault_fail(ZEV_SYS_READ, 2, 1, EIO);
    char c;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(write(fds[1], "abc", 3), 3);
    cr_assert_eq(zev__sys_read(fds[0], &c, 1), 1);
    cr_assert_eq(zev__sys_read(fds[0], &c, 1), 1);
    cr_assert_eq(zev__sys_read(fds[0], &c, 1), -EIO);
    cr_assert_eq(zev__sys_read(fds[0], &c, 1), 1);
    cr_assert_eq(zev_fault_calls(ZEV_SYS_READ), 4);
    zev_fault_short(ZEV_SYS_WRITE, 0, 1, 2);
    cr_assert_eq(zev__sys_write(fds[1], "wxyz", 4), 2, "shortened");
    cr_assert_eq(zev__sys_write(fds[1], "wxyz", 4), 4);
    char back[7] = {0};
    cr_assert_eq(zev__sys_read(fds[0], back, 6), 6);
    cr_assert_str_eq(back, "wxwxyz", "the short write moved the first two bytes only");
    close(fds[0]);
    close(fds[1]);
}

/* ---- kqueue: watches queued for the kernel wait survive a failed wait (defect 18) ---- */

struct probe {
    zev_handle_t h; /* a watcher's events go to the ops of the handle just before it */
    struct zev_watcher w;
    int calls;
};

static void probe_event(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)loop;
    (void)revents;
    zev__container_of(w, struct probe, w)->calls++;
}

static const struct zev__handle_ops probe_ops = {.io = probe_event};

/* Start a watcher on a readable pipe (on kqueue its EV_ADD waits in the changelist for the
 * next kernel wait), fail that wait with err, and run until the event arrives. */
static void watch_across_a_failed_wait(int err, int expect_run) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    zev_timer_t keepalive;
    zev_timer_init(&zt_loop, &keepalive);
    zev_timer_start(&keepalive, count_fire, 60000, 0);
    struct probe p = {.h.ops = &probe_ops};
    zev__watcher_init(&p.w, fds[0]);
    cr_assert_eq(zev__watcher_start(&zt_loop, &p.w, ZEV__READABLE), 0);
    zev_fault_fail(ZEV_SYS_POLL_WAIT, 0, 1, err);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_NOWAIT), expect_run);
    cr_assert_eq(zev_fault_hits(ZEV_SYS_POLL_WAIT), 1, "the wait did fail");
    for (int i = 0; i < 3 && p.calls == 0; i++) {
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    }
    cr_assert_eq(p.calls, 1, "the watch queued before the failed wait reached the kernel");
    zev__watcher_stop(&zt_loop, &p.w);
    close(fds[0]);
    close(fds[1]);
    zev_close(&keepalive.handle, NULL);
    zt_run();
}

Test(fault, a_watch_queued_before_an_interrupted_wait_still_gets_its_event) {
    watch_across_a_failed_wait(EINTR, 1);
}

Test(fault, a_watch_queued_before_a_failed_wait_still_gets_its_event) {
    watch_across_a_failed_wait(ENOMEM, -ENOMEM);
}
