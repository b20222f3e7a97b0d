/* tests/test_handle.c: ref/unref, active state, and deferred close with its re-entrancy. */
#include "zt.h"

#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>

TestSuite(handle, .init = zt_setup, .fini = zt_teardown, .timeout = 10);

static int order[8];
static int n_order;

static void record_close(zev_handle_t *h) {
    order[n_order++] = *(int *)h->data;
}

static void noop_timer(zev_timer_t *t) {
    (void)t;
}

Test(handle, close_callback_runs_from_the_loop_never_inside_close) {
    zev_timer_t t;
    int id = 7;
    n_order = 0;
    zev_timer_init(&zt_loop, &t);
    t.handle.data = &id;
    cr_assert_eq(zev_close(&t.handle, record_close), 0);
    cr_assert_eq(n_order, 0, "not run inside zev_close");
    cr_assert(zev_is_closing(&t.handle));
    zt_run();
    cr_assert_eq(n_order, 1);
    cr_assert_eq(order[0], 7);
    zt_run();
    cr_assert_eq(n_order, 1, "exactly once");
}

Test(handle, close_callbacks_run_in_close_order) {
    zev_timer_t t[3];
    int ids[3] = {0, 1, 2};
    n_order = 0;
    for (int i = 0; i < 3; i++) {
        zev_timer_init(&zt_loop, &t[i]);
        t[i].handle.data = &ids[i];
    }
    zev_close(&t[2].handle, record_close);
    zev_close(&t[0].handle, record_close);
    zev_close(&t[1].handle, record_close);
    zt_run();
    cr_assert_eq(n_order, 3);
    cr_assert_eq(order[0], 2);
    cr_assert_eq(order[1], 0);
    cr_assert_eq(order[2], 1);
}

Test(handle, closing_twice_is_ebadf_and_the_callback_still_runs_once) {
    zev_timer_t t;
    int closed = 0;
    zev_timer_init(&zt_loop, &t);
    t.handle.data = &closed;
    cr_assert_eq(zev_close(&t.handle, zt_count_close), 0);
    cr_assert_eq(zev_close(&t.handle, zt_count_close), -EBADF);
    zt_run();
    cr_assert_eq(zev_close(&t.handle, zt_count_close), -EBADF, "closed handles stay closed");
    cr_assert_eq(closed, 1);
}

static zev_timer_t chain[2];
static int chain_ids[2] = {10, 11};

static void close_next(zev_handle_t *h) {
    record_close(h);
    if (h == &chain[0].handle) zev_close(&chain[1].handle, record_close);
}

Test(handle, a_close_callback_may_close_another_handle) {
    n_order = 0;
    for (int i = 0; i < 2; i++) {
        zev_timer_init(&zt_loop, &chain[i]);
        chain[i].handle.data = &chain_ids[i];
    }
    zev_close(&chain[0].handle, close_next);
    zt_run();
    cr_assert_eq(n_order, 2);
    cr_assert_eq(order[0], 10);
    cr_assert_eq(order[1], 11);
}

static zev_timer_t self_closer;
static int self_fired;

static void close_self(zev_timer_t *t) {
    self_fired++;
    cr_assert_eq(zev_close(&t->handle, NULL), 0);
}

Test(handle, a_callback_may_close_its_own_handle) {
    self_fired = 0;
    zev_timer_init(&zt_loop, &self_closer);
    zev_timer_start(&self_closer, close_self, 0, 1); /* repeating: must not fire again */
    zt_run();
    cr_assert_eq(self_fired, 1);
}

Test(handle, unref_lets_the_loop_exit_with_the_handle_active) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, noop_timer, 60000, 0);
    cr_assert(zev_has_ref(&t.handle));
    cr_assert_eq(zev_unref(&t.handle), 0);
    cr_assert_eq(zev_unref(&t.handle), 0, "idempotent");
    cr_assert_not(zev_has_ref(&t.handle));
    cr_assert(zev_is_active(&t.handle));
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    zt_run(); /* returns at once though the timer is pending */
    cr_assert(zev_is_active(&t.handle));
    cr_assert_eq(zev_ref(&t.handle), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 1);
    zev_close(&t.handle, NULL);
    zt_run();
}

Test(handle, unref_before_start_is_remembered) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_unref(&t.handle);
    zev_timer_start(&t, noop_timer, 60000, 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    zev_timer_stop(&t);
    zev_ref(&t.handle);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0, "inactive handles do not keep the loop alive");
    zev_close(&t.handle, NULL);
    zt_run();
}

Test(handle, is_active_follows_start_and_stop) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    cr_assert_not(zev_is_active(&t.handle));
    zev_timer_start(&t, noop_timer, 100, 0);
    cr_assert(zev_is_active(&t.handle));
    zev_timer_stop(&t);
    cr_assert_not(zev_is_active(&t.handle));
    zev_close(&t.handle, NULL);
    cr_assert_not(zev_is_active(&t.handle));
    zt_run();
}

Test(handle, calls_on_a_closed_handle_are_ebadf) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_close(&t.handle, NULL);
    cr_assert_eq(zev_timer_start(&t, noop_timer, 1, 0), -EBADF, "while closing");
    zt_run();
    cr_assert_eq(zev_timer_start(&t, noop_timer, 1, 0), -EBADF, "after close");
    cr_assert_eq(zev_timer_stop(&t), -EBADF);
    cr_assert_eq(zev_timer_again(&t), -EBADF);
    cr_assert_eq(zev_ref(&t.handle), -EBADF);
    cr_assert_eq(zev_unref(&t.handle), -EBADF);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
}

Test(handle, null_handle_calls_are_einval) {
    cr_assert_eq(zev_close(NULL, NULL), -EINVAL);
    cr_assert_eq(zev_ref(NULL), -EINVAL);
    cr_assert_eq(zev_unref(NULL), -EINVAL);
    cr_assert_eq(zev_has_ref(NULL), 0);
    cr_assert_eq(zev_is_active(NULL), 0);
    cr_assert_eq(zev_is_closing(NULL), 0);
}

/* The typed close callback for malloc'd handles: the README's echo server relies on it instead
 * of casting free to zev_close_cb (a call through an incompatible function type). Nothing here
 * frees the timer: only zev_free_on_close does, and ASan's leak check fails this test if it
 * does not. */
Test(handle, free_on_close_frees_a_malloced_timer) {
    zev_timer_t *t = malloc(sizeof(*t));
    cr_assert_not_null(t);
    cr_assert_eq(zev_timer_init(&zt_loop, t), 0);
    cr_assert_eq(zev_timer_start(t, noop_timer, 60000, 0), 0);
    cr_assert_eq(zev_close(&t->handle, zev_free_on_close), 0);
    zt_run();
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
}
Test(handle, has_ref_is_0_once_closed_as_node_hasref) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, noop_timer, 60000, 0);
    cr_assert_eq(zev_has_ref(&t.handle), 1);
    zev_close(&t.handle, NULL);
    cr_assert_eq(zev_has_ref(&t.handle), 0, "closing: nothing keeps the loop for it any more");
    zt_run();
    cr_assert_eq(zev_has_ref(&t.handle), 0, "closed");
}

static void no_connection(zev_tcp_server_t *s, int status) {
    (void)s;
    (void)status;
}

/* A handle of all zero bytes was never given to an init call: every entry point must refuse
 * it (its loop pointer is NULL) instead of following that pointer. */
Test(handle, a_zeroed_never_initialised_handle_is_einval_from_every_entry_point) {
    zev_timer_t t = {0};
    cr_assert_eq(zev_timer_start(&t, noop_timer, 1, 0), -EINVAL);
    cr_assert_eq(zev_timer_stop(&t), -EINVAL);
    cr_assert_eq(zev_timer_again(&t), -EINVAL);
    cr_assert_eq(zev_timer_set_repeat(&t, 5), -EINVAL);
    cr_assert_eq(zev_timer_get_due_in(&t), 0);
    cr_assert_eq(zev_close(&t.handle, NULL), -EINVAL);
    cr_assert_eq(zev_ref(&t.handle), -EINVAL);
    cr_assert_eq(zev_unref(&t.handle), -EINVAL);
    cr_assert_eq(zev_has_ref(&t.handle), 0);

    zev_async_t a = {0};
    cr_assert_eq(zev_async_send(&a), -EINVAL);

    zev_tcp_t s = {0};
    zev_tcp_server_t srv = {0};
    cr_assert_eq(zev_tcp_set_timeout(&s, 10), -EINVAL);
    cr_assert_eq(zev_tcp_set_connect_timeout(&s, 10), -EINVAL);
    cr_assert_eq(zev_tcp_read_start(&s), -EINVAL);
    cr_assert_eq(zev_tcp_read_stop(&s), -EINVAL);
    cr_assert_eq(zev_tcp_end(&s), -EINVAL);
    cr_assert_eq(zev_tcp_write(&s, NULL, 0, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_tcp_set_nodelay(&s, 1), -EINVAL);
    cr_assert_eq(zev_tcp_listen(&srv, "127.0.0.1", 0, NULL, no_connection), -EINVAL);
    cr_assert_eq(zev_tcp_server_set_max_connections(&srv, 1, NULL), -EINVAL);

    zev_udp_t u = {0};
    cr_assert_eq(zev_udp_recv_stop(&u), -EINVAL);
    cr_assert_eq(zev_udp_set_batch_size(&u, 4), -EINVAL);
    cr_assert_eq(zev_udp_set_broadcast(&u, 1), -EINVAL);
    cr_assert_eq(zev_udp_send(&u, NULL, 0, "127.0.0.1", 9, NULL, NULL), -EINVAL);
}

#ifdef ZEV_DEBUG_CHECKS
/* ---- debug builds: a broken invariant aborts with a message ---- */

static atomic_int loop_running;
static atomic_int other_thread_returned;

static void *stop_from_another_thread(void *arg) {
    while (!atomic_load(&loop_running)) sched_yield();
    zev_stop(arg); /* not thread-safe: debug builds abort here */
    atomic_store(&other_thread_returned, 1);
    return NULL;
}

static void wait_for_the_other_thread(zev_timer_t *t) {
    atomic_store(&loop_running, 1);
    while (!atomic_load(&other_thread_returned)) sched_yield();
    zev_close(&t->handle, NULL);
}

Test(handle, a_call_from_another_thread_while_the_loop_runs_aborts_in_debug_builds,
     .signal = SIGABRT) {
    zev_timer_t t;
    pthread_t th;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, wait_for_the_other_thread, 0, 0);
    pthread_create(&th, NULL, stop_from_another_thread, &zt_loop);
    zev_run(&zt_loop, ZEV_RUN_DEFAULT);
    pthread_join(th, NULL);
}
#endif

#ifdef ZEV_DEBUG_CHECKS
Test(handle, init_on_a_timer_that_is_still_open_aborts_in_debug_builds, .signal = SIGABRT) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, noop_timer, 60000, 0);
    zev_timer_init(&zt_loop, &t); /* would drop the armed timer from the heap */
}
#endif
