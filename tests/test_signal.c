/* tests/test_signal.c: signal handles. Delivery in the loop (never in signal context), several
 * handles and loops per signal, the previous disposition restored by the last stop, one-shot,
 * stop and close in callbacks, coalescing while the loop does not run, errors. The threaded
 * scenarios (pthread_kill to the loop's thread and to another, two loops on two threads, a
 * handler calling zev_async_send) live in support/signal_scenarios.c for the TSan runner too. */
#include "thread_scenarios.h"
#include "zt.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

TestSuite(signal, .init = zt_setup, .fini = zt_teardown, .timeout = 20);

struct probe {
    zev_signal_t sig;
    int calls;
    int last_signum;
    int closed;
    int order;           /* global call order of this probe's last callback */
    struct probe *other; /* stopped by this probe's callback, if set */
    int close_self;
    int active_in_cb;
};

static int call_order;

static void on_signal(zev_signal_t *s, int signum) {
    struct probe *p = (struct probe *)s;
    p->calls++;
    p->last_signum = signum;
    p->order = ++call_order;
    p->active_in_cb = zev_is_active(&s->handle);
    if (p->other) cr_assert_eq(zev_signal_stop(&p->other->sig), 0);
    if (p->close_self) {
        s->handle.data = &p->closed;
        cr_assert_eq(zev_close(&s->handle, zt_count_close), 0);
    }
}

static void start(zev_loop_t *loop, struct probe *p, int signum) {
    cr_assert_eq(zev_signal_init(loop, &p->sig), 0);
    cr_assert_eq(zev_signal_start(&p->sig, on_signal, signum), 0);
}

static void close_all(struct probe *p, int n) {
    for (int i = 0; i < n; i++) {
        if (!zev_is_closing(&p[i].sig.handle)) zev_close(&p[i].sig.handle, NULL);
    }
    zt_run();
}

static void (*current_handler(int sig))(int) {
    struct sigaction cur;
    cr_assert_eq(sigaction(sig, NULL, &cur), 0);
    return cur.sa_handler;
}

static int handler_calls;

static void count_handler(int sig) {
    (void)sig;
    handler_calls++;
}

static void set_handler(int sig, void (*handler)(int)) {
    struct sigaction sa = {.sa_handler = handler};
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(sig, &sa, NULL), 0);
}

/* ---- delivery ---- */

Test(signal, raise_reaches_the_callback_in_the_loop_not_in_signal_context) {
    struct probe p = {0};
    start(&zt_loop, &p, SIGUSR1);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(p.calls, 0, "nothing runs in signal context");
    cr_assert(zt_run_until(&p.calls, 1, 5000));
    cr_assert_eq(p.last_signum, SIGUSR1);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(p.calls, 1, "one signal, one callback");
    close_all(&p, 1);
}

Test(signal, kill_to_the_process_reaches_every_handle_of_the_signal_in_start_order) {
    struct probe p[3];
    memset(p, 0, sizeof(p));
    start(&zt_loop, &p[0], SIGUSR1);
    start(&zt_loop, &p[1], SIGUSR2);
    start(&zt_loop, &p[2], SIGUSR1);
    call_order = 0;
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert(zt_run_until(&p[2].calls, 1, 5000));
    cr_assert_eq(p[0].calls, 1);
    cr_assert_eq(p[1].calls, 0, "another signal's handle hears nothing");
    cr_assert_lt(p[0].order, p[2].order);
    close_all(p, 3);
}

Test(signal, each_loop_hears_the_signal) {
    zev_loop_t second;
    cr_assert_eq(zev_loop_init(&second), 0);
    struct probe a = {0};
    struct probe b = {0};
    start(&zt_loop, &a, SIGUSR1);
    start(&second, &b, SIGUSR1);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert(zt_run_until(&a.calls, 1, 5000));
    while (b.calls == 0) {
        zev_run(&second, ZEV_RUN_ONCE);
    }
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(a.calls, 1);
    zev_close(&b.sig.handle, NULL);
    cr_assert_eq(zev_run(&second, ZEV_RUN_DEFAULT), 0);
    cr_assert_eq(zev_loop_close(&second), 0);
    close_all(&a, 1);
}

Test(signal, signals_sent_while_the_loop_is_not_running_are_kept_and_coalesce) {
    struct probe p = {0};
    start(&zt_loop, &p, SIGUSR1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(raise(SIGUSR1), 0);
    }
    cr_assert(zt_run_until(&p.calls, 1, 5000));
    for (int i = 0; i < 3; i++) {
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    }
    cr_assert_eq(p.calls, 1, "three signals before the loop looked: one callback");
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert(zt_run_until(&p.calls, 2, 5000), "the next one is heard again");
    close_all(&p, 1);
}

Test(signal, a_signal_to_the_loop_thread_and_to_another_thread_reaches_the_loop) {
    const char *err = zt_signal_to_loop_and_other_threads(200);
    cr_assert_null(err, "%s", err);
}

Test(signal, two_loops_on_two_threads_each_hear_every_signal) {
    const char *err = zt_signal_two_loops_two_threads(100);
    cr_assert_null(err, "%s", err);
}

Test(signal, zev_async_send_from_a_signal_handler_is_safe) {
    const char *err = zt_async_send_from_a_signal_handler(3000);
    cr_assert_null(err, "%s", err);
}

/* ---- dispositions ---- */

Test(signal, the_last_stop_restores_sig_dfl) {
    cr_assert_eq(current_handler(SIGUSR1), SIG_DFL);
    struct probe p[2];
    memset(p, 0, sizeof(p));
    start(&zt_loop, &p[0], SIGUSR1);
    cr_assert_neq(current_handler(SIGUSR1), SIG_DFL, "zev's handler is in place");
    start(&zt_loop, &p[1], SIGUSR1);
    cr_assert_eq(zev_signal_stop(&p[0].sig), 0);
    cr_assert_neq(current_handler(SIGUSR1), SIG_DFL, "one handle is still started");
    cr_assert_eq(zev_signal_stop(&p[1].sig), 0);
    cr_assert_eq(current_handler(SIGUSR1), SIG_DFL);
    close_all(p, 2);
}

Test(signal, the_last_stop_restores_the_previous_handler_and_ignore) {
    handler_calls = 0;
    set_handler(SIGUSR1, count_handler);
    set_handler(SIGUSR2, SIG_IGN);
    struct probe p[2];
    memset(p, 0, sizeof(p));
    start(&zt_loop, &p[0], SIGUSR1);
    start(&zt_loop, &p[1], SIGUSR2);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert(zt_run_until(&p[0].calls, 1, 5000));
    cr_assert_eq(handler_calls, 0, "zev's handler replaced it while handles are started");
    close_all(p, 2);
    cr_assert_eq(current_handler(SIGUSR1), count_handler);
    cr_assert_eq(current_handler(SIGUSR2), SIG_IGN);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(handler_calls, 1);
}

Test(signal, handles_in_two_loops_restore_only_when_both_stopped) {
    zev_loop_t second;
    cr_assert_eq(zev_loop_init(&second), 0);
    struct probe a = {0};
    struct probe b = {0};
    start(&zt_loop, &a, SIGUSR2);
    start(&second, &b, SIGUSR2);
    close_all(&a, 1);
    cr_assert_neq(current_handler(SIGUSR2), SIG_DFL, "the other loop still watches it");
    zev_close(&b.sig.handle, NULL);
    cr_assert_eq(zev_run(&second, ZEV_RUN_DEFAULT), 0);
    cr_assert_eq(current_handler(SIGUSR2), SIG_DFL);
    cr_assert_eq(zev_loop_close(&second), 0);
}

Test(signal, starting_a_started_handle_on_another_signal_moves_it) {
    struct probe p = {0};
    start(&zt_loop, &p, SIGUSR1);
    cr_assert_eq(zev_signal_start(&p.sig, on_signal, SIGUSR2), 0);
    cr_assert_eq(p.sig.signum, SIGUSR2);
    cr_assert_eq(current_handler(SIGUSR1), SIG_DFL, "no handle watches SIGUSR1 any more");
    cr_assert_eq(raise(SIGUSR2), 0);
    cr_assert(zt_run_until(&p.calls, 1, 5000));
    cr_assert_eq(p.last_signum, SIGUSR2);
    close_all(&p, 1);
}

/* ---- one-shot, stop and close in callbacks ---- */

Test(signal, oneshot_stops_before_its_callback_and_restores_the_disposition) {
    set_handler(SIGUSR1, SIG_IGN);
    struct probe p = {0};
    cr_assert_eq(zev_signal_init(&zt_loop, &p.sig), 0);
    cr_assert_eq(zev_signal_start_oneshot(&p.sig, on_signal, SIGUSR1), 0);
    cr_assert_eq(raise(SIGUSR1), 0);
    zt_run(); /* the stopped handle no longer keeps the loop */
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.active_in_cb, 0, "stopped before the callback");
    cr_assert_eq(p.sig.signum, 0);
    cr_assert_eq(current_handler(SIGUSR1), SIG_IGN);
    cr_assert_eq(raise(SIGUSR1), 0);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(p.calls, 1);
    close_all(&p, 1);
}

Test(signal, close_inside_the_callback) {
    struct probe p = {.close_self = 1};
    start(&zt_loop, &p, SIGUSR1);
    cr_assert_eq(raise(SIGUSR1), 0);
    zt_run();
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.closed, 1);
    cr_assert_eq(current_handler(SIGUSR1), SIG_DFL);
}

Test(signal, a_callback_stopping_a_later_handle_of_the_signal_keeps_it_from_running) {
    struct probe p[2];
    memset(p, 0, sizeof(p));
    start(&zt_loop, &p[0], SIGUSR1);
    start(&zt_loop, &p[1], SIGUSR1);
    p[0].other = &p[1];
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert(zt_run_until(&p[0].calls, 1, 5000));
    cr_assert_eq(p[1].calls, 0);
    cr_assert_neq(current_handler(SIGUSR1), SIG_DFL, "p[0] still watches it");
    close_all(p, 2);
}

static struct probe *started_late;

static void start_another(zev_signal_t *s, int signum) {
    on_signal(s, signum);
    if (started_late) cr_assert_eq(zev_signal_start(&started_late->sig, on_signal, signum), 0);
}

Test(signal, a_handle_started_in_a_callback_waits_for_the_next_signal) {
    struct probe p = {0};
    struct probe late = {0};
    cr_assert_eq(zev_signal_init(&zt_loop, &p.sig), 0);
    cr_assert_eq(zev_signal_init(&zt_loop, &late.sig), 0);
    cr_assert_eq(zev_signal_start(&p.sig, start_another, SIGUSR1), 0);
    started_late = &late;
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert(zt_run_until(&p.calls, 1, 5000));
    cr_assert_eq(late.calls, 0);
    started_late = NULL;
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert(zt_run_until(&late.calls, 1, 5000));
    cr_assert_eq(p.calls, 2);
    zev_close(&late.sig.handle, NULL);
    close_all(&p, 1);
}

/* ---- ref and errors ---- */

Test(signal, a_started_handle_keeps_the_loop_alive_until_unref) {
    struct probe p = {0};
    cr_assert_eq(zev_signal_init(&zt_loop, &p.sig), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    cr_assert_eq(zev_signal_start(&p.sig, on_signal, SIGUSR1), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 1);
    cr_assert_eq(zev_unref(&p.sig.handle), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 0);
    close_all(&p, 1);
}

Test(signal, bad_arguments_are_einval_and_closed_handles_ebadf) {
    zev_signal_t s;
    cr_assert_eq(zev_signal_init(NULL, &s), -EINVAL);
    cr_assert_eq(zev_signal_init(&zt_loop, NULL), -EINVAL);
    cr_assert_eq(zev_signal_start(NULL, on_signal, SIGUSR1), -EINVAL);
    cr_assert_eq(zev_signal_stop(NULL), -EINVAL);
    cr_assert_eq(zev_signal_init(&zt_loop, &s), 0);
    cr_assert_eq(zev_signal_start(&s, NULL, SIGUSR1), -EINVAL);
    cr_assert_eq(zev_signal_start(&s, on_signal, 0), -EINVAL);
    cr_assert_eq(zev_signal_start(&s, on_signal, 65), -EINVAL);
    cr_assert_eq(zev_signal_start(&s, on_signal, SIGKILL), -EINVAL);
    cr_assert_eq(zev_signal_start(&s, on_signal, SIGSTOP), -EINVAL);
    cr_assert_not(zev_is_active(&s.handle));
    cr_assert_eq(zev_signal_stop(&s), 0, "stopping a stopped handle is fine");
    cr_assert_eq(zev_close(&s.handle, NULL), 0);
    cr_assert_eq(zev_signal_start(&s, on_signal, SIGUSR1), -EBADF);
    cr_assert_eq(zev_signal_stop(&s), -EBADF);
    zt_run();
}
