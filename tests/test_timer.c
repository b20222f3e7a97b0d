/* tests/test_timer.c: timer ordering, repeat, again, stop/start inside callbacks, scale. */
#include "reactor_internal.h"
#include "zt.h"

#include <errno.h>
#include <stdlib.h>

TestSuite(timer, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

#define N_ORDER 16
static int fired_ids[64];
static int n_fired;

static void record(zev_timer_t *t) {
    fired_ids[n_fired++] = *(int *)t->handle.data;
}

static void close_all(zev_timer_t *t, int n) {
    for (int i = 0; i < n; i++) zev_close(&t[i].handle, NULL);
    zt_run();
}

Test(timer, equal_deadlines_fire_in_start_order) {
    zev_timer_t t[N_ORDER];
    int ids[N_ORDER];
    n_fired = 0;
    for (int i = 0; i < N_ORDER; i++) {
        ids[i] = i;
        zev_timer_init(&zt_loop, &t[i]);
        t[i].handle.data = &ids[i];
    }
    /* Start in a shuffled order; equal deadlines must fire in that start order. */
    int start_order[N_ORDER] = {5, 3, 9, 0, 15, 1, 12, 7, 2, 14, 4, 11, 6, 13, 8, 10};
    for (int i = 0; i < N_ORDER; i++) zev_timer_start(&t[start_order[i]], record, 3, 0);
    zt_run();
    cr_assert_eq(n_fired, N_ORDER);
    for (int i = 0; i < N_ORDER; i++) cr_assert_eq(fired_ids[i], start_order[i], "slot %d", i);
    close_all(t, N_ORDER);
}

Test(timer, earlier_deadlines_fire_first) {
    zev_timer_t t[4];
    int ids[4] = {0, 1, 2, 3};
    int64_t timeouts[4] = {30, 10, 20, 0};
    n_fired = 0;
    for (int i = 0; i < 4; i++) {
        zev_timer_init(&zt_loop, &t[i]);
        t[i].handle.data = &ids[i];
        zev_timer_start(&t[i], record, timeouts[i], 0);
    }
    zt_run();
    int want[4] = {3, 1, 2, 0};
    for (int i = 0; i < 4; i++) cr_assert_eq(fired_ids[i], want[i]);
    close_all(t, 4);
}

Test(timer, restarting_moves_the_timer_to_the_back_of_its_deadline) {
    zev_timer_t t[3];
    int ids[3] = {0, 1, 2};
    n_fired = 0;
    for (int i = 0; i < 3; i++) {
        zev_timer_init(&zt_loop, &t[i]);
        t[i].handle.data = &ids[i];
        zev_timer_start(&t[i], record, 2, 0);
    }
    zev_timer_start(&t[0], record, 2, 0); /* same deadline, new start: now last */
    zt_run();
    cr_assert_eq(n_fired, 3);
    cr_assert_eq(fired_ids[0], 1);
    cr_assert_eq(fired_ids[1], 2);
    cr_assert_eq(fired_ids[2], 0);
    close_all(t, 3);
}

static int repeats;

static void repeat_three_times(zev_timer_t *t) {
    if (++repeats == 3) zev_timer_stop(t);
}

Test(timer, repeat_fires_until_stopped_inside_its_callback) {
    zev_timer_t t;
    repeats = 0;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, repeat_three_times, 1, 1);
    zt_run();
    cr_assert_eq(repeats, 3);
    cr_assert_not(zev_is_active(&t.handle));
    close_all(&t, 1);
}

static zev_timer_t zero_timer;
static int zero_fired;
static uint64_t iteration_when_zero_started;
static uint64_t iteration_when_zero_fired;

static void zero_cb(zev_timer_t *t) {
    zev_loop_metrics_t m;
    zev_loop_metrics(t->handle.loop, &m);
    iteration_when_zero_fired = m.iterations;
    zero_fired++;
}

static void start_zero(zev_timer_t *t) {
    zev_loop_metrics_t m;
    zev_loop_metrics(t->handle.loop, &m);
    iteration_when_zero_started = m.iterations;
    zev_timer_start(&zero_timer, zero_cb, 0, 0);
    cr_assert_eq(zero_fired, 0);
}

Test(timer, zero_timeout_started_in_a_callback_runs_next_iteration) {
    zev_timer_t starter;
    zero_fired = 0;
    zev_timer_init(&zt_loop, &starter);
    zev_timer_init(&zt_loop, &zero_timer);
    zev_timer_start(&starter, start_zero, 0, 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_NOWAIT), 1, "zero_timer still pending");
    cr_assert_eq(zero_fired, 0, "not in the same timer phase");
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_NOWAIT), 0);
    cr_assert_eq(zero_fired, 1);
    cr_assert_eq(iteration_when_zero_fired, iteration_when_zero_started + 1);
    zev_close(&starter.handle, NULL);
    close_all(&zero_timer, 1);
}

static int self_restarts;

static void restart_self_with_zero(zev_timer_t *t) {
    if (++self_restarts < 5) zev_timer_start(t, restart_self_with_zero, 0, 0);
}

Test(timer, a_timer_restarting_itself_with_zero_fires_once_per_iteration) {
    zev_timer_t t;
    self_restarts = 0;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, restart_self_with_zero, 0, 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_NOWAIT), 1);
    cr_assert_eq(self_restarts, 1, "the timer phase does not loop on it");
    zt_run();
    cr_assert_eq(self_restarts, 5);
    close_all(&t, 1);
}

static zev_timer_t victims[3];
static int victim_ids[3] = {100, 101, 102};

static void stop_the_others(zev_timer_t *t) {
    record(t);
    zev_timer_stop(&victims[1]);
    zev_close(&victims[2].handle, NULL);
}

Test(timer, a_callback_may_stop_or_close_timers_due_in_the_same_phase) {
    n_fired = 0;
    for (int i = 0; i < 3; i++) {
        zev_timer_init(&zt_loop, &victims[i]);
        victims[i].handle.data = &victim_ids[i];
    }
    zev_timer_start(&victims[0], stop_the_others, 1, 0);
    zev_timer_start(&victims[1], record, 1, 0);
    zev_timer_start(&victims[2], record, 1, 0);
    zt_run();
    cr_assert_eq(n_fired, 1);
    cr_assert_eq(fired_ids[0], 100);
    zev_close(&victims[0].handle, NULL);
    zev_close(&victims[1].handle, NULL);
    zt_run();
}

Test(timer, again_restarts_with_the_repeat_and_needs_a_start_first) {
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    cr_assert_eq(zev_timer_again(&t), -EINVAL, "never started");
    int id = 1;
    t.handle.data = &id;
    n_fired = 0;
    zev_timer_start(&t, record, 60000, 50);
    cr_assert_eq(zev_timer_again(&t), 0);
    cr_assert_leq(zev_timer_get_due_in(&t), 50, "rearmed with the repeat");
    cr_assert_eq(zev_timer_get_repeat(&t), 50);
    zev_timer_set_repeat(&t, 0);
    cr_assert_eq(zev_timer_again(&t), 0);
    cr_assert_not(zev_is_active(&t.handle), "again with repeat 0 stops");
    cr_assert_eq(zev_timer_get_due_in(&t), 0);
    close_all(&t, 1);
}

Test(timer, due_in_counts_down_from_the_timeout) {
    zev_timer_t t;
    int id = 1;
    zev_timer_init(&zt_loop, &t);
    t.handle.data = &id;
    zev_timer_start(&t, record, 1000, 0);
    cr_assert_eq(zev_timer_get_due_in(&t), 1000);
    zev_timer_stop(&t);
    cr_assert_eq(zev_timer_get_due_in(&t), 0);
    close_all(&t, 1);
}

Test(timer, bad_arguments_are_einval_and_change_nothing) {
    zev_timer_t t;
    int id = 1;
    cr_assert_eq(zev_timer_init(NULL, &t), -EINVAL);
    cr_assert_eq(zev_timer_init(&zt_loop, NULL), -EINVAL);
    zev_timer_init(&zt_loop, &t);
    t.handle.data = &id;
    cr_assert_eq(zev_timer_start(&t, record, -1, 0), -EINVAL);
    cr_assert_eq(zev_timer_start(&t, record, 1, -1), -EINVAL);
    cr_assert_eq(zev_timer_start(&t, NULL, 1, 0), -EINVAL);
    cr_assert_eq(zev_timer_start(NULL, record, 1, 0), -EINVAL);
    cr_assert_not(zev_is_active(&t.handle));
    cr_assert_eq(zev_timer_set_repeat(&t, -5), -EINVAL);
    cr_assert_eq(zev_timer_stop(NULL), -EINVAL);
    cr_assert_eq(zev_timer_again(NULL), -EINVAL);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    close_all(&t, 1);
}

Test(timer, a_million_timers_start_and_stop) {
    enum { N = 1000000 };
    zev_timer_t *t = calloc(N, sizeof(*t));
    cr_assert_not_null(t);
    for (int i = 0; i < N; i++) {
        zev_timer_init(&zt_loop, &t[i]);
        cr_assert_eq(zev_timer_start(&t[i], record, (int64_t)(i * 7919u % 100000u) + 1000, 0), 0);
    }
    cr_assert_eq(zt_loop.timer_count, N);
    /* Stop in an order unrelated to the deadlines, then the rest from the middle out. */
    for (int i = 0; i < N; i += 3) zev_timer_stop(&t[i]);
    for (int i = N - 1; i >= 0; i--) zev_timer_stop(&t[i]);
    cr_assert_eq(zt_loop.timer_count, 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    for (int i = 0; i < N; i++) zev_close(&t[i].handle, NULL);
    zt_run();
    free(t);
}

Test(timer, heap_pops_many_random_deadlines_in_key_order) {
    enum { N = 5000 };
    zev_timer_t *t = calloc(N, sizeof(*t));
    srand(42);
    for (int i = 0; i < N; i++) {
        zev_timer_init(&zt_loop, &t[i]);
        zev_timer_start(&t[i], record, rand() % 1000, 0);
    }
    /* Remove a random third, then drain the heap through its minimum: keys never go back. */
    for (int i = 0; i < N; i++) {
        if (rand() % 3 == 0) zev_timer_stop(&t[i]);
    }
    uint64_t last_deadline = 0, last_seq = 0;
    int first = 1;
    while (zt_loop.timer_root) {
        struct zev__timer_node *n = zt_loop.timer_root;
        zev_timer_t *m = zev__container_of(n, zev_timer_t, node);
        if (!first) {
            cr_assert(m->node.deadline_ms > last_deadline ||
                      (m->node.deadline_ms == last_deadline && m->node.start_seq > last_seq));
        }
        first = 0;
        last_deadline = m->node.deadline_ms;
        last_seq = m->node.start_seq;
        zev_timer_stop(m);
    }
    for (int i = 0; i < N; i++) zev_close(&t[i].handle, NULL);
    zt_run();
    free(t);
}
