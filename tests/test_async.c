/* tests/test_async.c: the cross-thread wake-up. The threaded scenarios live in
 * support/thread_scenarios.c so the TSan build can run them too (tsan_threads.c). */
#include "thread_scenarios.h"
#include "zt.h"

#include <errno.h>

TestSuite(async, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

static int calls;

static void count_and_close(zev_async_t *a) {
    calls++;
    zev_close(&a->handle, NULL);
}

Test(async, sends_before_the_loop_runs_coalesce_into_one_callback) {
    zev_async_t a;
    calls = 0;
    zev_async_init(&zt_loop, &a, count_and_close);
    for (int i = 0; i < 10; i++) cr_assert_eq(zev_async_send(&a), 0);
    zt_run();
    cr_assert_eq(calls, 1);
}

Test(async, an_active_async_keeps_the_loop_alive_until_unref) {
    zev_async_t a;
    zev_async_init(&zt_loop, &a, count_and_close);
    cr_assert(zev_is_active(&a.handle));
    cr_assert_eq(zev_loop_alive(&zt_loop), 1);
    zev_unref(&a.handle);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    zt_run();
    zev_close(&a.handle, NULL);
    zt_run();
}

Test(async, a_thread_wakes_the_loop_every_round) {
    const char *err = zt_async_pingpong(2000);
    cr_assert_null(err, "%s", err);
}

Test(async, many_threads_sending_at_once_coalesce_and_lose_no_wakeup) {
    const char *err = zt_async_storm(4, 20000);
    cr_assert_null(err, "%s", err);
}

Test(async, bad_input_is_einval_and_closed_handles_are_ebadf) {
    zev_async_t a;
    cr_assert_eq(zev_async_init(NULL, &a, count_and_close), -EINVAL);
    cr_assert_eq(zev_async_init(&zt_loop, NULL, count_and_close), -EINVAL);
    cr_assert_eq(zev_async_init(&zt_loop, &a, NULL), -EINVAL);
    cr_assert_eq(zev_async_send(NULL), -EINVAL);
    zev_async_init(&zt_loop, &a, count_and_close);
    zev_close(&a.handle, NULL);
    cr_assert_eq(zev_async_send(&a), -EBADF);
    zt_run();
    cr_assert_eq(zev_async_send(&a), -EBADF);
}

static zev_async_t pair[2];
static int pair_calls[2];

static void close_both(zev_async_t *a) {
    pair_calls[a == &pair[1]]++;
    zev_close(&pair[0].handle, NULL);
    zev_close(&pair[1].handle, NULL);
}

Test(async, a_callback_may_close_another_async_that_is_pending) {
    pair_calls[0] = pair_calls[1] = 0;
    zev_async_init(&zt_loop, &pair[0], close_both);
    zev_async_init(&zt_loop, &pair[1], close_both);
    zev_async_send(&pair[0]);
    zev_async_send(&pair[1]);
    zt_run();
    cr_assert_eq(pair_calls[0] + pair_calls[1], 1, "the closed one's callback never runs");
}
