/* tests/support/kqueue_emu/emu_threads.c: the emulation's thread scenarios (emu_threads.h).
 *
 * zev wakes a loop by triggering an EVFILT_USER knote from another thread while the loop's
 * thread is blocked in kevent() on the same queue; these scenarios hammer that path, and
 * changes made from a second thread, so that ThreadSanitizer can look at them; and signals:
 * EVFILT_SIGNAL woken from another thread, and a trigger made inside a signal handler.
 */
#include "emu_threads.h"

#include <sys/event.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#define USER_IDENT 7

static const struct timespec five_s = {5, 0};

#define DONE_IDENT 8

static int add_user(int kq) {
    struct kevent ev[2];
    EV_SET(&ev[0], USER_IDENT, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    EV_SET(&ev[1], DONE_IDENT, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    return kevent(kq, ev, 2, NULL, 0, NULL);
}

static int trigger_ident(int kq, uintptr_t ident) {
    struct kevent ev;
    EV_SET(&ev, ident, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    return kevent(kq, &ev, 1, NULL, 0, NULL);
}

static int trigger(int kq) {
    return trigger_ident(kq, USER_IDENT);
}

/* ---- ping-pong ---- */

struct pingpong {
    int kq;
    int rounds;
    atomic_int seen;
    atomic_bool failed;
};

static void *pingpong_thread(void *arg) {
    struct pingpong *p = arg;
    for (int i = 0; i < p->rounds && !atomic_load(&p->failed); i++) {
        if (trigger(p->kq) != 0) {
            atomic_store(&p->failed, true);
            break;
        }
        while (atomic_load(&p->seen) <= i && !atomic_load(&p->failed)) {
            sched_yield();
        }
    }
    return NULL;
}

const char *kq_emu_wake_pingpong(int rounds) {
    struct pingpong p = {.kq = kqueue(), .rounds = rounds};
    if (p.kq < 0) return "kqueue failed";
    const char *err = NULL;
    pthread_t t;
    if (add_user(p.kq) != 0) {
        err = "adding the user event failed";
        goto close_kq;
    }
    if (pthread_create(&t, NULL, pingpong_thread, &p) != 0) {
        err = "pthread_create failed";
        goto close_kq;
    }
    for (int i = 0; i < rounds && !err; i++) {
        struct kevent ev;
        int n = kevent(p.kq, NULL, 0, &ev, 1, &five_s);
        if (n != 1) {
            err = n == 0 ? "a trigger did not wake the blocked kevent (5 s)" : "kevent failed";
        } else if (ev.filter != EVFILT_USER || ev.ident != USER_IDENT) {
            err = "the event is not the user event";
        } else if (atomic_load(&p.failed)) {
            err = "the triggering kevent failed";
        }
        if (err) atomic_store(&p.failed, true);
        atomic_store(&p.seen, i + 1);
    }
    pthread_join(t, NULL);
close_kq:
    close(p.kq);
    return err;
}

/* ---- storm ---- */

struct storm {
    int kq;
    int triggers;
    atomic_int running;
    atomic_bool failed;
};

static void *storm_thread(void *arg) {
    struct storm *s = arg;
    for (int i = 0; i < s->triggers; i++) {
        if (trigger(s->kq) != 0) atomic_store(&s->failed, true);
    }
    /* One more after saying so, so the owner wakes up to see the count drop. */
    atomic_fetch_sub(&s->running, 1);
    if (trigger(s->kq) != 0) atomic_store(&s->failed, true);
    return NULL;
}

const char *kq_emu_trigger_storm(int threads, int triggers) {
    enum { MAX_THREADS = 16 };
    if (threads > MAX_THREADS) return "too many threads asked for";
    struct storm s = {.kq = kqueue(), .triggers = triggers, .running = threads};
    if (s.kq < 0) return "kqueue failed";
    const char *err = NULL;
    pthread_t t[MAX_THREADS];
    int started = 0;
    if (add_user(s.kq) != 0) {
        err = "adding the user event failed";
        goto close_kq;
    }
    for (; started < threads; started++) {
        if (pthread_create(&t[started], NULL, storm_thread, &s) != 0) break;
    }
    if (started < threads) {
        atomic_fetch_sub(&s.running, threads - started);
        err = "pthread_create failed";
    }
    long events = 0;
    while (atomic_load(&s.running) > 0 && !err) {
        struct kevent ev;
        int n = kevent(s.kq, NULL, 0, &ev, 1, &five_s);
        if (n < 0) err = "kevent failed";
        events += n > 0 ? n : 0;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
    }
    if (err) goto close_kq;
    /* Whatever the last trigger left pending is reported once, then nothing. */
    struct kevent ev;
    const struct timespec zero = {0, 0};
    events += kevent(s.kq, NULL, 0, &ev, 1, &zero);
    if (atomic_load(&s.failed)) {
        err = "a triggering kevent failed";
    } else if (events < 1 || events > (long)threads * (triggers + 1)) {
        err = "event count outside [1, triggers]";
    } else if (kevent(s.kq, NULL, 0, &ev, 1, &zero) != 0) {
        err = "EV_CLEAR did not reset the user event";
    }
close_kq:
    close(s.kq);
    return err;
}

/* ---- changes from another thread ---- */

struct churn {
    int kq;
    int fd; /* a pipe's read end, always readable */
    int rounds;
    atomic_bool failed;
};

static int marker;

static void *churn_thread(void *arg) {
    struct churn *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        struct kevent ev[2];
        EV_SET(&ev[0], c->fd, EVFILT_READ, EV_ADD, 0, 0, &marker);
        if (kevent(c->kq, ev, 1, NULL, 0, NULL) != 0) atomic_store(&c->failed, true);
        sched_yield();
        EV_SET(&ev[0], c->fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
        EV_SET(&ev[1], USER_IDENT, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
        if (kevent(c->kq, ev, 2, NULL, 0, NULL) != 0) atomic_store(&c->failed, true);
    }
    if (trigger_ident(c->kq, DONE_IDENT) != 0) atomic_store(&c->failed, true);
    return NULL;
}

const char *kq_emu_changes_while_blocked(int rounds) {
    int p[2];
    if (pipe(p) < 0) return "pipe failed";
    struct churn c = {.kq = kqueue(), .fd = p[0], .rounds = rounds};
    const char *err = NULL;
    pthread_t t;
    if (c.kq < 0) {
        err = "kqueue failed";
        goto close_pipe;
    }
    if (write(p[1], "x", 1) != 1 || add_user(c.kq) != 0) {
        err = "setup failed";
        goto close_kq;
    }
    if (pthread_create(&t, NULL, churn_thread, &c) != 0) {
        err = "pthread_create failed";
        goto close_kq;
    }
    bool done = false;
    while (!done && !err) {
        struct kevent ev[4];
        int n = kevent(c.kq, NULL, 0, ev, 4, &five_s);
        if (n <= 0) err = n == 0 ? "the final trigger did not wake kevent (5 s)" : "kevent failed";
        for (int i = 0; i < n; i++) {
            bool user = ev[i].filter == EVFILT_USER && ev[i].ident == USER_IDENT;
            bool read = ev[i].filter == EVFILT_READ && ev[i].ident == (uintptr_t)p[0] &&
                        ev[i].udata == &marker && ev[i].data == 1;
            bool fin = ev[i].filter == EVFILT_USER && ev[i].ident == DONE_IDENT;
            if (!user && !read && !fin) err = "an event that no live knote could have produced";
            done = done || fin;
        }
    }
    pthread_join(t, NULL);
    if (!err && atomic_load(&c.failed)) err = "a change from the other thread failed";
close_kq:
    close(c.kq);
close_pipe:
    close(p[0]);
    close(p[1]);
    return err;
}

/* ---- signals ---- */

struct sigping {
    int kq;
    int rounds;
    atomic_int seen;
    atomic_bool failed;
};

/* Each round the signal goes to this thread itself, never to the one blocked in kevent():
 * only the recording handler's wake-up can end that wait. */
static void *sigping_thread(void *arg) {
    struct sigping *p = arg;
    for (int i = 0; i < p->rounds && !atomic_load(&p->failed); i++) {
        if (pthread_kill(pthread_self(), SIGUSR2) != 0) atomic_store(&p->failed, true);
        while (atomic_load(&p->seen) <= i && !atomic_load(&p->failed)) {
            sched_yield();
        }
    }
    return NULL;
}

const char *kq_emu_signal_from_another_thread(int rounds) {
    struct sigaction ign = {.sa_handler = SIG_IGN};
    struct sigaction old;
    if (sigaction(SIGUSR2, &ign, &old) != 0) return "sigaction failed";
    struct sigping p = {.kq = kqueue(), .rounds = rounds};
    const char *err = NULL;
    pthread_t t;
    struct kevent ch;
    EV_SET(&ch, SIGUSR2, EVFILT_SIGNAL, EV_ADD, 0, 0, NULL);
    if (p.kq < 0) {
        err = "kqueue failed";
        goto restore;
    }
    if (kevent(p.kq, &ch, 1, NULL, 0, NULL) != 0) {
        err = "adding the signal knote failed";
        goto close_kq;
    }
    if (pthread_create(&t, NULL, sigping_thread, &p) != 0) {
        err = "pthread_create failed";
        goto close_kq;
    }
    for (int i = 0; i < rounds && !err; i++) {
        struct kevent ev;
        int n;
        do {
            n = kevent(p.kq, NULL, 0, &ev, 1, &five_s);
        } while (n < 0 && errno == EINTR);
        if (n != 1) {
            err = n == 0 ? "a signal on another thread did not wake kevent (5 s)" : "kevent failed";
        } else if (ev.filter != EVFILT_SIGNAL || ev.ident != SIGUSR2 || ev.data != 1) {
            err = "not the signal event, or not one delivery";
        }
        if (err) atomic_store(&p.failed, true);
        atomic_store(&p.seen, i + 1);
    }
    pthread_join(t, NULL);
    if (!err && atomic_load(&p.failed)) err = "pthread_kill failed";
close_kq:
    close(p.kq);
restore:
    sigaction(SIGUSR2, &old, NULL);
    return err;
}

/* The handler's queue: a signal handler has no argument to carry it. */
static atomic_int handler_kq = -1;

static void trigger_from_handler(int sig) {
    (void)sig;
    int saved_errno = errno;
    (void)trigger(atomic_load(&handler_kq));
    errno = saved_errno;
}

struct bombard {
    pthread_t target;
    atomic_bool stop;
};

static void *bombard_thread(void *arg) {
    struct bombard *b = arg;
    while (!atomic_load(&b->stop)) {
        pthread_kill(b->target, SIGUSR1);
        sched_yield();
    }
    return NULL;
}

const char *kq_emu_trigger_from_a_signal_handler(int calls) {
    struct sigaction sa = {.sa_handler = trigger_from_handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    if (sigaction(SIGUSR1, &sa, &old) != 0) return "sigaction failed";
    int kq = kqueue();
    const char *err = NULL;
    struct bombard b = {.target = pthread_self()};
    pthread_t t;
    if (kq < 0) {
        err = "kqueue failed";
        goto restore;
    }
    if (add_user(kq) != 0) {
        err = "adding the user event failed";
        goto close_kq;
    }
    atomic_store(&handler_kq, kq);
    if (pthread_create(&t, NULL, bombard_thread, &b) != 0) {
        err = "pthread_create failed";
        goto close_kq;
    }
    /* Signals land anywhere in these calls, the locked parts included; before the emulation
     * blocked signals while holding its lock, the handler's kevent() deadlocked there. */
    const struct timespec zero = {0, 0};
    for (int i = 0; i < calls && !err; i++) {
        struct kevent ev;
        if (kevent(kq, NULL, 0, &ev, 1, &zero) < 0 && errno != EINTR) err = "kevent failed";
    }
    atomic_store(&b.stop, true);
    pthread_join(t, NULL);
close_kq:
    sigaction(SIGUSR1, &old, NULL);
    atomic_store(&handler_kq, -1);
    close(kq);
    return err;
restore:
    sigaction(SIGUSR1, &old, NULL);
    return err;
}
