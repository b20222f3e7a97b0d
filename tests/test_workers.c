/* tests/test_workers.c: zev_workers_start/stop, n loops on n threads. The traffic scenarios
 * live in support/thread_scenarios.c so the TSan build runs them too (tsan_threads.c); the
 * cases here need no second thread of their own. Every test checks that no descriptor and no
 * thread outlived it. */
#include "thread_scenarios.h"
#include "zt.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static int fds_before;
static int threads_before;

static int thread_count(void) {
    return zt_dir_entries("/proc/self/task");
}

static void workers_setup(void) {
    fds_before = zt_fd_count();
    threads_before = thread_count();
}

/* A joined thread can stay listed in /proc for an instant after pthread_join returned (the
 * kernel wakes the joiner before it releases the task), so give the count a moment. */
static void workers_teardown(void) {
    cr_assert_eq(zt_fd_count(), fds_before, "descriptors leaked");
    int threads = thread_count();
    for (int i = 0; i < 2000 && threads != threads_before; i++) {
        nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
        threads = thread_count();
    }
    cr_assert_eq(threads, threads_before, "threads left running");
}

TestSuite(workers, .init = workers_setup, .fini = workers_teardown, .timeout = 60);

/* ---- arguments ---------------------------------------------------------------------------- */

static atomic_int setups;
static atomic_int stops;

static int count_setup(zev_worker_t *w) {
    (void)w;
    atomic_fetch_add(&setups, 1);
    return 0;
}

static void count_stop(zev_worker_t *w) {
    (void)w;
    atomic_fetch_add(&stops, 1);
}

Test(workers, bad_arguments_are_einval_and_run_nothing) {
    zev_worker_t workers[2];
    atomic_store(&setups, 0);
    cr_assert_eq(zev_workers_start(NULL, 2, count_setup, count_stop, NULL), -EINVAL);
    cr_assert_eq(zev_workers_start(workers, 2, NULL, count_stop, NULL), -EINVAL);
    cr_assert_eq(zev_workers_start(workers, 0, count_setup, count_stop, NULL), -EINVAL);
    cr_assert_eq(zev_workers_start(workers, ZEV_WORKERS_MAX + 1, count_setup, count_stop, NULL),
                 -EINVAL);
    cr_assert_eq(atomic_load(&setups), 0);
    cr_assert_eq(zev_workers_stop(NULL, 2), -EINVAL);
    cr_assert_eq(zev_workers_stop(workers, 0), -EINVAL);
    cr_assert_eq(zev_workers_stop(workers, ZEV_WORKERS_MAX + 1), -EINVAL);
    memset(workers, 0, sizeof(workers));
    cr_assert_eq(zev_workers_stop(workers, 2), -EBADF, "zeroed workers were never started");
}

/* ---- traffic ------------------------------------------------------------------------------ */

Test(workers, two_reuseport_listeners_on_one_port_serve_every_connection) {
    const char *err = zt_workers_echo(2, 32);
    cr_assert_null(err, "%s", err);
}

Test(workers, four_workers_serve_every_connection) {
    const char *err = zt_workers_echo(4, 64);
    cr_assert_null(err, "%s", err);
}

Test(workers, a_failing_setup_stops_and_joins_the_workers_already_running) {
    const char *err = zt_workers_setup_fails();
    cr_assert_null(err, "%s", err);
}

/* ---- loops that end by themselves --------------------------------------------------------- */

static atomic_int timers_closed;

static void timer_closed(zev_handle_t *h) {
    (void)h;
    atomic_fetch_add(&timers_closed, 1);
}

static void close_timer(zev_timer_t *t) {
    zev_close(&t->handle, timer_closed);
}

/* Worker 0 runs one timer and then has nothing left; worker 1 opens nothing at all. */
static int short_lived_setup(zev_worker_t *w) {
    atomic_fetch_add(&setups, 1);
    if (w->index != 0) return 0;
    zev_timer_t *t = w->data;
    zev_timer_init(&w->loop, t);
    return zev_timer_start(t, close_timer, 0, 0);
}

Test(workers, loops_that_end_by_themselves_are_just_joined) {
    zev_worker_t workers[2];
    zev_timer_t timer; /* outlives worker 0's loop: the stop below joins it */
    atomic_store(&setups, 0);
    atomic_store(&stops, 0);
    atomic_store(&timers_closed, 0);
    cr_assert_eq(zev_workers_start(workers, 2, short_lived_setup, count_stop, &timer), 0);
    cr_assert_eq(atomic_load(&setups), 2);
    while (atomic_load(&timers_closed) == 0) { /* bounded by .timeout */
        sched_yield();
    }
    cr_assert_eq(zev_workers_stop(workers, 2), 0);
    cr_assert_eq(atomic_load(&timers_closed), 1);
    cr_assert_eq(atomic_load(&stops), 0, "no loop was running to be stopped");
}

/* ---- stop, twice or from the wrong thread ------------------------------------------------- */

struct stopper {
    zev_worker_t workers[2];
    zev_async_t poke; /* on worker 0's loop: the test asks it to call stop from there */
    atomic_int result;
    atomic_int answered;
};

static void stop_from_worker(zev_async_t *a) {
    struct stopper *s = a->handle.data;
    atomic_store(&s->result, zev_workers_stop(s->workers, 2));
    atomic_store(&s->answered, 1);
}

static int stopper_setup(zev_worker_t *w) {
    atomic_fetch_add(&setups, 1);
    if (w->index != 0) return 0;
    struct stopper *s = w->data;
    zev_async_init(&w->loop, &s->poke, stop_from_worker); /* referenced: keeps loop 0 alive */
    s->poke.handle.data = s;
    return 0;
}

static void stopper_stop(zev_worker_t *w) {
    atomic_fetch_add(&stops, 1);
    if (w->index == 0) zev_close(&((struct stopper *)w->data)->poke.handle, NULL);
}

Test(workers, stop_from_a_worker_thread_is_edeadlk_and_a_second_stop_is_ebadf) {
    struct stopper s;
    atomic_init(&s.result, 0);
    atomic_init(&s.answered, 0);
    atomic_store(&setups, 0);
    atomic_store(&stops, 0);
    cr_assert_eq(zev_workers_start(s.workers, 2, stopper_setup, stopper_stop, &s), 0);
    cr_assert_eq(zev_async_send(&s.poke), 0);
    while (!atomic_load(&s.answered)) { /* bounded by .timeout */
        sched_yield();
    }
    cr_assert_eq(atomic_load(&s.result), -EDEADLK);
    cr_assert_eq(atomic_load(&stops), 0, "the refused stop did nothing");

    cr_assert_eq(zev_workers_stop(s.workers, 2), 0);
    cr_assert_eq(atomic_load(&stops), 1, "worker 0's loop was still running; 1's had ended");
    cr_assert_eq(zev_workers_stop(s.workers, 2), -EBADF);
}
