/* tests/test_loop.c: loop life, run modes, stop, alive, time and metrics. */
#include "zt.h"

#include <errno.h>

TestSuite(loop, .init = zt_setup, .fini = zt_teardown, .timeout = 10);

static int fired;

static void count_fire(zev_timer_t *t) {
    (void)t;
    fired++;
}

static void stop_loop(zev_timer_t *t) {
    fired++;
    zev_stop(t->handle.loop);
}

Test(loop, run_with_nothing_to_do_returns_zero_at_once) {
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_ONCE), 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_NOWAIT), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    zev_loop_metrics_t m;
    zev_loop_metrics(&zt_loop, &m);
    cr_assert_eq(m.iterations, 0, "no iteration runs when nothing is alive");
}

Test(loop, default_mode_runs_until_the_last_timer_fired) {
    zev_timer_t a, b;
    fired = 0;
    zev_timer_init(&zt_loop, &a);
    zev_timer_init(&zt_loop, &b);
    zev_timer_start(&a, count_fire, 1, 0);
    zev_timer_start(&b, count_fire, 5, 0);
    zt_run();
    cr_assert_eq(fired, 2);
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
}

Test(loop, once_mode_blocks_for_the_next_timer_and_fires_it) {
    zev_timer_t a, b;
    fired = 0;
    zev_timer_init(&zt_loop, &a);
    zev_timer_init(&zt_loop, &b);
    zev_timer_start(&a, count_fire, 5, 0);
    zev_timer_start(&b, count_fire, 60000, 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_ONCE), 1, "b keeps the loop alive");
    cr_assert_eq(fired, 1, "ONCE waited for a and fired it");
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
    cr_assert_eq(fired, 1);
}

Test(loop, nowait_mode_does_not_block_for_a_future_timer) {
    zev_timer_t t;
    fired = 0;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, count_fire, 60000, 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_NOWAIT), 1);
    cr_assert_eq(fired, 0);
    zev_loop_metrics_t m;
    zev_loop_metrics(&zt_loop, &m);
    cr_assert_eq(m.iterations, 1);
    cr_assert_lt(m.blocked_ns, 1000000000ull, "NOWAIT never blocks for the 60 s timer");
    zev_close(&t.handle, NULL);
    zt_run();
}

Test(loop, stop_returns_after_the_current_iteration) {
    zev_timer_t stopper, other;
    fired = 0;
    zev_timer_init(&zt_loop, &stopper);
    zev_timer_init(&zt_loop, &other);
    zev_timer_start(&stopper, stop_loop, 0, 1);
    zev_timer_start(&other, count_fire, 60000, 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 1, "still alive after stop");
    cr_assert_eq(fired, 1);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 1, "stop flag was reset; stops again");
    cr_assert_eq(fired, 2);
    zev_close(&stopper.handle, NULL);
    zev_close(&other.handle, NULL);
    zt_run();
}

Test(loop, stop_before_run_makes_run_return_at_once) {
    zev_timer_t t;
    fired = 0;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, count_fire, 0, 0);
    cr_assert_eq(zev_stop(&zt_loop), 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 1);
    cr_assert_eq(fired, 0);
    zt_run();
    cr_assert_eq(fired, 1);
    zev_close(&t.handle, NULL);
    zt_run();
}

static void reenter(zev_timer_t *t) {
    fired = zev_run(t->handle.loop, ZEV_RUN_NOWAIT);
}

Test(loop, run_from_inside_a_callback_is_ebusy) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, reenter, 0, 0);
    zt_run();
    cr_assert_eq(fired, -EBUSY);
    zev_close(&t.handle, NULL);
    zt_run();
}

Test(loop, close_with_open_handle_is_ebusy_and_loop_stays_usable) {
    zev_timer_t t;
    int closed = 0;
    zev_timer_init(&zt_loop, &t);
    cr_assert_eq(zev_loop_close(&zt_loop), -EBUSY, "an initialised handle is still open");
    zev_timer_start(&t, count_fire, 1, 0);
    fired = 0;
    zt_run();
    cr_assert_eq(fired, 1, "the loop still works after the refused close");
    t.handle.data = &closed;
    zev_close(&t.handle, zt_count_close);
    cr_assert_eq(zev_loop_close(&zt_loop), -EBUSY, "a close callback is still due");
    zt_run();
    cr_assert_eq(closed, 1);
}

Test(loop, now_is_cached_and_advances_with_update_time) {
    uint64_t before = zev_now(&zt_loop);
    uint64_t hr = zev_hrtime();
    while (zev_hrtime() - hr < 3000000u) {
    }
    cr_assert_eq(zev_now(&zt_loop), before, "cached until updated");
    zev_update_time(&zt_loop);
    cr_assert_geq(zev_now(&zt_loop), before + 2);
}

static void stop_after_three(zev_timer_t *t) {
    if (++fired == 3) zev_timer_stop(t);
}

Test(loop, metrics_count_iterations_polls_and_timers) {
    zev_timer_t t;
    fired = 0;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, stop_after_three, 2, 2);
    zt_run();
    zev_loop_metrics_t m;
    cr_assert_eq(zev_loop_metrics(&zt_loop, &m), 0);
    cr_assert_eq(m.timers_fired, 3);
    cr_assert_geq(m.iterations, 2, "the timer waits 2 ms between fires");
    cr_assert_eq(m.polls, m.iterations, "one kernel wait per iteration");
    cr_assert_gt(m.blocked_ns, 0);
    cr_assert_eq(m.events, 0, "timers are not I/O events");
    zev_close(&t.handle, NULL);
    zt_run();
}

Test(loop, backend_name_matches_the_build) {
    const char *name = zev_backend_name();
#ifdef ZT_EXPECT_KQUEUE
    cr_assert_str_eq(name, "kqueue");
#else
    cr_assert_str_eq(name, "epoll");
#endif
}

static int reinit_result;

static void reinit_while_running(zev_timer_t *t) {
    reinit_result = zev_loop_init(t->handle.loop);
}

/* Initialising a live loop again would drop its handles and leak its descriptors. */
Test(loop, init_on_a_live_loop_is_ebusy_and_the_loop_keeps_working) {
    int fds = zt_fd_count();
    cr_assert_eq(zev_loop_init(&zt_loop), -EBUSY, "ready");
    cr_assert_eq(zev_loop_init_ex(&zt_loop, NULL), -EBUSY);
    cr_assert_eq(zt_fd_count(), fds, "nothing was opened");
    zev_timer_t t;
    reinit_result = 0;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, reinit_while_running, 0, 0);
    zt_run();
    cr_assert_eq(reinit_result, -EBUSY, "running");
    cr_assert_eq(zev_close(&t.handle, NULL), 0, "the timer is still the loop's");
    zt_run();
}
