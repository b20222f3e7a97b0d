/* tests/support/signal_scenarios.c: the multi-threaded signal scenarios of thread_scenarios.h
 * (signal handles hearing signals sent to other threads, two loops on two threads, and
 * zev_async_send called from a signal handler), run by test_signal.c and, under TSan, by
 * tsan_threads.c. Each returns NULL or what went wrong, and puts back every disposition. */
#include "thread_scenarios.h"

#include "zev.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

static bool is_default(int sig) {
    struct sigaction cur;
    return sigaction(sig, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
           cur.sa_handler == SIG_DFL;
}

/* ---- one loop, signals sent to its thread and to another ---- */

struct ping {
    zev_signal_t sig;
    pthread_t loop_thread;
    int rounds;
    atomic_int seen;
    atomic_int wrong_thread;
};

/* Round i goes to the loop's thread when i is even, to this thread when odd: either way the
 * loop hears it, in the loop. */
static void *ping_signals(void *arg) {
    struct ping *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        pthread_kill(i % 2 == 0 ? p->loop_thread : pthread_self(), SIGUSR1);
        while (atomic_load(&p->seen) <= i) {
            sched_yield();
        }
    }
    return NULL;
}

static void on_ping(zev_signal_t *s, int signum) {
    struct ping *p = s->handle.data;
    if (signum != SIGUSR1 || !pthread_equal(pthread_self(), p->loop_thread))
        atomic_store(&p->wrong_thread, 1);
    int seen = atomic_fetch_add(&p->seen, 1) + 1;
    if (seen == p->rounds) zev_close(&s->handle, NULL);
}

const char *zt_signal_to_loop_and_other_threads(int rounds) {
    zev_loop_t loop;
    struct ping p = {.loop_thread = pthread_self(), .rounds = rounds};
    const char *err = NULL;
    if (zev_loop_init(&loop) != 0) return "loop init failed";
    zev_signal_init(&loop, &p.sig);
    p.sig.handle.data = &p;
    if (zev_signal_start(&p.sig, on_ping, SIGUSR1) != 0) err = "signal start failed";
    pthread_t t;
    if (!err && pthread_create(&t, NULL, ping_signals, &p) != 0) err = "pthread_create failed";
    if (err) {
        zev_close(&p.sig.handle, NULL);
        zev_run(&loop, ZEV_RUN_DEFAULT);
    } else {
        if (zev_run(&loop, ZEV_RUN_DEFAULT) != 0) err = "run failed";
        pthread_join(t, NULL);
    }
    if (!err && atomic_load(&p.seen) != rounds) err = "a signal was lost, or heard twice";
    if (!err && atomic_load(&p.wrong_thread)) err = "a callback ran off the loop's thread";
    if (!err && !is_default(SIGUSR1)) err = "SIG_DFL not restored after the last close";
    if (zev_loop_close(&loop) != 0 && !err) err = "loop close failed";
    return err;
}

/* ---- two loops on two threads, one signal ---- */

struct listener {
    zev_loop_t loop;
    zev_signal_t sig;
    zev_signal_t churn; /* started and stopped on every signal: the registry under contention */
    pthread_t thread;
    atomic_int ready;
    atomic_int seen;
    int rounds;
    int failed;
};

static void on_churn(zev_signal_t *s, int signum);

static void on_listener(zev_signal_t *s, int signum) {
    struct listener *l = s->handle.data;
    if (signum != SIGUSR2) l->failed = 1;
    if (zev_signal_stop(&l->churn) != 0 || zev_signal_start(&l->churn, on_churn, SIGUSR2) != 0)
        l->failed = 1;
    int seen = atomic_fetch_add(&l->seen, 1) + 1;
    if (seen == l->rounds) {
        zev_close(&l->sig.handle, NULL);
        zev_close(&l->churn.handle, NULL);
    }
}

static void on_churn(zev_signal_t *s, int signum) {
    (void)s;
    (void)signum;
}

static void *run_listener(void *arg) {
    struct listener *l = arg;
    if (zev_loop_init(&l->loop) != 0) {
        l->failed = 1;
        atomic_store(&l->ready, 1);
        return NULL;
    }
    zev_signal_init(&l->loop, &l->sig);
    zev_signal_init(&l->loop, &l->churn);
    l->sig.handle.data = l;
    l->churn.handle.data = l;
    if (zev_signal_start(&l->sig, on_listener, SIGUSR2) != 0 ||
        zev_signal_start(&l->churn, on_churn, SIGUSR2) != 0)
        l->failed = 1;
    atomic_store(&l->ready, 1);
    if (zev_run(&l->loop, ZEV_RUN_DEFAULT) != 0) l->failed = 1;
    if (zev_loop_close(&l->loop) != 0) l->failed = 1;
    return NULL;
}

const char *zt_signal_two_loops_two_threads(int rounds) {
    struct listener ls[2] = {{.rounds = rounds}, {.rounds = rounds}};
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&ls[i].thread, NULL, run_listener, &ls[i]) != 0)
            return "pthread_create failed";
    }
    for (int i = 0; i < 2; i++) {
        while (!atomic_load(&ls[i].ready)) {
            sched_yield();
        }
    }
    bool failed = ls[0].failed || ls[1].failed;
    for (int r = 0; r < rounds && !failed; r++) {
        kill(getpid(), SIGUSR2);
        for (int i = 0; i < 2; i++) {
            while (atomic_load(&ls[i].seen) <= r) {
                sched_yield();
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(ls[i].thread, NULL);
    }
    if (failed || ls[0].failed || ls[1].failed) return "a loop failed to start, run or close";
    if (atomic_load(&ls[0].seen) != rounds || atomic_load(&ls[1].seen) != rounds)
        return "a loop missed a signal or heard one twice";
    if (!is_default(SIGUSR2)) return "SIG_DFL not restored after the last handle";
    return NULL;
}

/* ---- zev_async_send from a signal handler ---- */

static _Atomic(zev_async_t *) handler_async; /* a signal handler gets no argument */

static void send_from_handler(int sig) {
    (void)sig;
    zev_async_t *a = atomic_load(&handler_async);
    if (a) zev_async_send(a);
}

struct bombard {
    zev_async_t async;
    pthread_t loop_thread;
    int signals;
    atomic_int done;
    int callbacks;
};

static void *bombard_loop(void *arg) {
    struct bombard *b = arg;
    for (int i = 0; i < b->signals; i++) {
        pthread_kill(b->loop_thread, SIGUSR1);
        sched_yield();
    }
    atomic_store(&b->done, 1);
    zev_async_send(&b->async); /* the callback that sees done */
    return NULL;
}

static void on_bombard(zev_async_t *a) {
    struct bombard *b = a->handle.data;
    b->callbacks++;
    if (!atomic_load(&b->done)) return;
    atomic_store(&handler_async, NULL);
    zev_close(&a->handle, NULL);
}

const char *zt_async_send_from_a_signal_handler(int signals) {
    struct sigaction sa = {.sa_handler = send_from_handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    if (sigaction(SIGUSR1, &sa, &old) != 0) return "sigaction failed";
    zev_loop_t loop;
    struct bombard b = {.loop_thread = pthread_self(), .signals = signals};
    const char *err = NULL;
    if (zev_loop_init(&loop) != 0) {
        sigaction(SIGUSR1, &old, NULL);
        return "loop init failed";
    }
    zev_async_init(&loop, &b.async, on_bombard);
    b.async.handle.data = &b;
    atomic_store(&handler_async, &b.async);
    pthread_t t;
    if (pthread_create(&t, NULL, bombard_loop, &b) != 0) {
        err = "pthread_create failed";
        atomic_store(&handler_async, NULL);
        zev_close(&b.async.handle, NULL);
        zev_run(&loop, ZEV_RUN_DEFAULT);
    } else {
        /* Signals interrupt the loop anywhere, inside the kernel wait and around it. */
        if (zev_run(&loop, ZEV_RUN_DEFAULT) != 0) err = "run failed";
        pthread_join(t, NULL);
    }
    /* SIG_IGN first discards a signal still pending for this thread, which the old
     * disposition (SIG_DFL: terminate) must never see. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGUSR1, &ign, NULL);
    sigaction(SIGUSR1, &old, NULL);
    if (!err && b.callbacks < 1) err = "no callback ran";
    if (zev_loop_close(&loop) != 0 && !err) err = "loop close failed";
    return err;
}
