/* tests/test_async.c: the cross-thread wake-up. The threaded scenarios live in
 * support/thread_scenarios.c so the TSan build can run them too (tsan_threads.c). */
#include "thread_scenarios.h"
#include "zt.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>

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

Test(async, a_callback_closes_and_frees_the_handle_while_its_sender_is_still_inside_send) {
    const char *err = zt_async_close_and_free_while_sending(2000);
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

/* ---- async-signal safety: zev.h promises zev_async_send works from a signal handler ---- */

static zev_async_t sig_async;
static volatile sig_atomic_t handler_result;

static void send_from_handler(int sig) {
    (void)sig;
    handler_result = zev_async_send(&sig_async);
}

static void catch_sigusr1(struct sigaction *old) {
    struct sigaction sa = {.sa_handler = send_from_handler};
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, old), 0);
}

Test(async, a_send_from_a_signal_handler_runs_the_callback_and_keeps_errno) {
    struct sigaction old;
    catch_sigusr1(&old);
    calls = 0;
    handler_result = 1;
    zev_async_init(&zt_loop, &sig_async, count_and_close);
    errno = EDOM;
    raise(SIGUSR1);
    cr_assert_eq(errno, EDOM, "the handler's send left errno alone");
    cr_assert_eq(handler_result, 0);
    zt_run();
    cr_assert_eq(calls, 1);
    sigaction(SIGUSR1, &old, NULL);
}

static void *signal_loop_thread(void *arg) {
    pthread_kill(*(pthread_t *)arg, SIGUSR1);
    return NULL;
}

/* The signal lands on the loop's own thread, most likely while it waits in the kernel: the
 * handler's wake-up must still get the callback run (the wait's EINTR is retried). */
Test(async, a_signal_to_the_loop_thread_while_it_waits_wakes_it) {
    struct sigaction old;
    catch_sigusr1(&old);
    calls = 0;
    handler_result = 1;
    zev_async_init(&zt_loop, &sig_async, count_and_close);
    pthread_t self = pthread_self();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, signal_loop_thread, &self), 0);
    zt_run(); /* returns only once the handler's send ran the callback, which closes */
    pthread_join(th, NULL);
    cr_assert_eq(handler_result, 0);
    cr_assert_eq(calls, 1);
    sigaction(SIGUSR1, &old, NULL);
}
