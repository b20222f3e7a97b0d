/* tests/support/kqueue_emu/kqueue_emu.c: FreeBSD kqueue(2)/kevent(2) emulated over Linux epoll,
 * so zev's kqueue backend and the whole suite run on Linux. Test support, never shipped.
 *
 * Written from the FreeBSD man page, kqueue(2). What it does:
 * - EVFILT_READ, EVFILT_WRITE (on anything epoll can watch), EVFILT_SIGNAL and EVFILT_USER.
 *   A knote is named
 *   by (ident, filter). EV_ADD creates one (enabled unless EV_DISABLE) or modifies one: any
 *   change but EV_DELETE replaces udata and re-runs the filter, so a condition that holds is
 *   reported again; as in FreeBSD's code, only EV_ENABLE re-enables a disabled knote.
 *   EV_ENABLE/EV_DISABLE switch delivery; EV_DELETE removes (ENOENT if absent, EBADF on a
 *   closed descriptor); EV_ONESHOT deletes after the first delivery; EV_CLEAR resets the
 *   state after delivery, otherwise a knote is level-triggered. EV_ONESHOT and EV_CLEAR are
 *   fixed when the knote is created, as in FreeBSD. EV_RECEIPT reports every change.
 * - A failed change is reported as an EV_ERROR entry (errno in data) while the eventlist has
 *   room, and then kevent() returns those entries without collecting events; with no room it
 *   returns -1 and the errno, leaving later changes unapplied. Changes are applied before
 *   events are collected; nevents == 0 never waits; timeout NULL waits forever; a signal
 *   returns -1/EINTR with the changes applied.
 * - READ: data is FIONREAD, or the accept queue length of a TCP listener (TCP_INFO; 1 for other
 *   listeners); EV_EOF when the peer shut down (EPOLLRDHUP/EPOLLHUP); EV_OOBAND while TCP
 *   urgent data is pending (POLLPRI: macOS's report, which FreeBSD lacks, so that the
 *   backend's use of it is tested). WRITE: data is the free send-buffer or pipe space (never
 *   below 1); EV_EOF on EPOLLHUP, or EPOLLERR on a pipe whose reader has gone. USER: NOTE_TRIGGER, the NOTE_FF* operations on the low 24 fflags bits,
 *   data passed through, EV_CLEAR untriggers after delivery (or when given in a change).
 * - SIGNAL: ident 1..64; data counts deliveries since last returned; EV_CLEAR always; every
 *   knote for the signal, in every queue, records it, whatever the disposition (an ignored
 *   SIGCHLD excepted), and the disposition still acts (see "signal knotes" below).
 * - Closing a descriptor drops its knotes: each knote remembers the file (st_dev, st_ino) it
 *   was added for, and a knote whose descriptor is closed or now names another file is
 *   discarded when next seen, never reported.
 *
 * How: kqueue() returns an epoll descriptor and nothing else, so the descriptor count is what
 * FreeBSD's would be. Each descriptor with enabled knotes has one edge-triggered registration
 * whose mask is the union of its enabled filters. An epoll event only puts knotes on the
 * queue's FIFO; a knote is reported after re-running its filter (poll() with zero timeout, then
 * FIONREAD & co.), like FreeBSD's scan does: a level-triggered knote goes back to the tail and is
 * re-checked on the next call, an EV_CLEAR one leaves the FIFO until epoll sees new activity.
 * A thread blocked in kevent() has a private eventfd in the epoll set, so EVFILT_USER triggers
 * from other threads can wake it; it is closed before kevent() returns, so the extra
 * descriptor exists only while a thread is blocked.
 *
 * Deliberately not done:
 * - A disposition the program sets while a signal knote exists replaces the emulation's
 *   recording handler, so the knote stops recording (FreeBSD would go on). zev sets its own
 *   before adding the knote and puts it back after deleting it, which nests properly.
 * - Other filters (TIMER, PROC, VNODE, AIO, EMPTY), EV_DISPATCH, NOTE_LOWAT and vnode
 *   semantics: a regular file cannot be added (epoll refuses it with EPERM).
 * - fflags of EV_EOF is not the socket's real error: Linux reads SO_ERROR only by clearing it,
 *   and the application must still find it there (as on FreeBSD, where it stays set). So when
 *   a socket reports EPOLLERR with EV_EOF, fflags is EIO, standing for "an error is pending".
 * - One registration serves both filters of a descriptor, and Linux does not say which
 *   direction woke it: an EV_CLEAR knote can be reported again when the other direction sees
 *   activity while its own condition still holds. FreeBSD would not. Edge-triggered consumers
 *   tolerate this (they do with epoll too); a lost edge cannot happen.
 * - EV_EOF on EVFILT_WRITE after our own shutdown(SHUT_WR) (Linux raises no HUP for it).
 * - An EV_ONESHOT knote is re-checked before delivery like any other; FreeBSD delivers it
 *   as it was when it fired.
 * - A kqueue descriptor is not closed on fork; it is close-on-exec.
 * - State is process-wide, behind one mutex (released while blocked), held only with every
 *   signal blocked in the holding thread, so that a signal handler may call kevent() (an
 *   EVFILT_USER trigger) and the recording handler may take it. close() on a kqueue
 *   cannot be seen, so its state is reclaimed lazily: when kqueue() is handed the same number
 *   again, or when kevent() finds the descriptor closed. Until then it stays reachable.
 */
#include "sys/event.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Test-only introspection, not part of FreeBSD's API (declared here to keep sys/event.h
 * FreeBSD's; the emulation's own test declares it too): queue states still allocated. */
int kqueue_emu_live_queues(void);

#define EMU_SOERROR EIO      /* fflags for "a socket error is pending" (see above) */
#define WAKER_TAG UINT64_MAX /* epoll data of a blocked thread's eventfd */
#define EPOLL_BATCH 64
#define KEPT_FLAGS (EV_ONESHOT | EV_CLEAR | EV_RECEIPT)

struct knote {
    struct kevent kev; /* ident, filter, kept flags, user fflags and data, udata */
    bool disabled;
    bool triggered; /* EVFILT_USER only */
    bool queued;
    unsigned seen;      /* collect() pass that last checked it */
    struct knote *prev; /* in the queue's FIFO while queued */
    struct knote *next;
    struct knote *list_next; /* in kq->users (EVFILT_USER) or kq->signals (EVFILT_SIGNAL) */
};

struct fd_slot {
    struct knote *rd;
    struct knote *wr;
    uint32_t mask; /* events registered with epoll; 0: not registered */
    dev_t dev;     /* the file the knotes were added for */
    ino_t ino;
};

struct waiter {
    int efd;
    struct waiter *next;
};

struct kq {
    int ep;
    dev_t dev; /* identity of ep, to notice the number naming something else */
    ino_t ino;
    struct fd_slot *fds; /* indexed by descriptor */
    size_t n_fds;
    struct knote *users;
    struct knote *signals;
    struct knote fifo; /* sentinel of the queue of knotes to (re-)check for delivery */
    unsigned pass;     /* collect() calls so far */
    struct waiter *waiters;
};

static pthread_mutex_t emu_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kq **table; /* indexed by kqueue descriptor */
static size_t table_len;
static int n_states; /* allocated, whether in the table or not: what the leak test counts */

/* EVFILT_SIGNAL, per signal number over every queue: how many knotes watch it, and the
 * disposition the emulation's recording handler replaced (see "Signals" below). */
#define EMU_NSIG 64
static struct {
    int knotes;
    struct sigaction saved;
} emu_signals[EMU_NSIG + 1];

/* Every holder of emu_lock blocks all signals in its thread first, so the recording handler
 * (and an EVFILT_USER trigger made from a signal handler, as zev_async_send may be) can take
 * the lock without ever interrupting its own thread's holder. */
static void lock_emu(sigset_t *saved) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, saved);
    pthread_mutex_lock(&emu_lock);
}

static void unlock_emu(const sigset_t *saved) {
    pthread_mutex_unlock(&emu_lock);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* ---- the FIFO ---- */

static void enqueue(struct kq *kq, struct knote *kn) {
    if (kn->queued) return;
    kn->queued = true;
    kn->next = &kq->fifo;
    kn->prev = kq->fifo.prev;
    kq->fifo.prev->next = kn;
    kq->fifo.prev = kn;
}

static void dequeue(struct kq *kq, struct knote *kn) {
    if (!kn->queued) return;
    kn->queued = false;
    kn->prev->next = kn->next;
    kn->next->prev = kn->prev;
}

static void wake_waiters(const struct kq *kq) {
    uint64_t one = 1;
    for (const struct waiter *w = kq->waiters; w; w = w->next) {
        (void)!write(w->efd, &one, sizeof(one)); /* a full counter is awake anyway */
    }
}

/* ---- queue state ---- */

static void release_signal(int sig);

static void free_kq(struct kq *kq) {
    for (size_t i = 0; i < kq->n_fds; i++) {
        free(kq->fds[i].rd);
        free(kq->fds[i].wr);
    }
    free(kq->fds);
    while (kq->users) {
        struct knote *kn = kq->users;
        kq->users = kn->list_next;
        free(kn);
    }
    while (kq->signals) {
        struct knote *kn = kq->signals;
        kq->signals = kn->list_next;
        release_signal((int)kn->kev.ident);
        free(kn);
    }
    free(kq);
    n_states--;
}

/* The state of descriptor kqfd, or NULL. A closed descriptor's state is reclaimed here. */
static struct kq *find_kq(int kqfd) {
    if (kqfd < 0 || (size_t)kqfd >= table_len || !table[kqfd]) return NULL;
    struct kq *kq = table[kqfd];
    struct stat st;
    if (fstat(kqfd, &st) == 0 && st.st_dev == kq->dev && st.st_ino == kq->ino) return kq;
    if (kq->waiters) return NULL; /* closed under a blocked thread: leave it to that thread */
    free_kq(kq);
    table[kqfd] = NULL;
    return NULL;
}

static int install_kq(struct kq *kq) {
    size_t fd = (size_t)kq->ep;
    if (fd >= table_len) {
        size_t len = fd + 1 > 2 * table_len ? fd + 1 : 2 * table_len;
        struct kq **t = realloc(table, len * sizeof(*t));
        if (!t) return ENOMEM;
        for (size_t i = table_len; i < len; i++) {
            t[i] = NULL;
        }
        table = t;
        table_len = len;
    }
    /* A state already here belongs to a closed queue, or the kernel could not have handed
     * out this number again. */
    if (table[fd]) free_kq(table[fd]);
    table[fd] = kq;
    return 0;
}

int kqueue(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return -1;
    int err = ENOMEM;
    struct kq *kq = calloc(1, sizeof(*kq));
    if (!kq) goto close_ep;
    struct stat st;
    if (fstat(ep, &st) < 0) {
        err = errno;
        goto free_kq;
    }
    kq->ep = ep;
    kq->dev = st.st_dev;
    kq->ino = st.st_ino;
    kq->fifo.next = kq->fifo.prev = &kq->fifo;
    sigset_t mask;
    lock_emu(&mask);
    err = install_kq(kq);
    if (!err) n_states++;
    unlock_emu(&mask);
    if (err) goto free_kq;
    return ep;

free_kq:
    free(kq);
close_ep:
    close(ep);
    errno = err;
    return -1;
}

int kqueue_emu_live_queues(void) {
    sigset_t mask;
    lock_emu(&mask);
    int n = n_states;
    unlock_emu(&mask);
    return n;
}

/* ---- descriptor knotes ---- */

static struct fd_slot *get_slot(struct kq *kq, int fd, bool grow) {
    if ((size_t)fd < kq->n_fds) return &kq->fds[fd];
    if (!grow) return NULL;
    size_t len = (size_t)fd + 1;
    if (len < 2 * kq->n_fds) len = 2 * kq->n_fds;
    struct fd_slot *s = realloc(kq->fds, len * sizeof(*s));
    if (!s) return NULL;
    for (size_t i = kq->n_fds; i < len; i++)
        s[i] = (struct fd_slot){0};
    kq->fds = s;
    kq->n_fds = len;
    return &kq->fds[fd];
}

static void drop_knote(struct kq *kq, struct knote **kp) {
    if (!*kp) return;
    dequeue(kq, *kp);
    free(*kp);
    *kp = NULL;
}

/* The descriptor was closed (and maybe reused): its knotes went with it, and so did its
 * registration, since epoll forgets a file when it is released. */
static void forget_fd(struct kq *kq, struct fd_slot *s) {
    drop_knote(kq, &s->rd);
    drop_knote(kq, &s->wr);
    s->mask = 0;
}

/* Register the union of the enabled filters. A MOD makes epoll re-poll the file and queue it
 * if ready: that is how a change re-runs the filter. Returns 0 or an errno. */
static int sync_mask(struct kq *kq, int fd, struct fd_slot *s) {
    uint32_t want = 0;
    if (s->rd && !s->rd->disabled) want |= EPOLLIN | EPOLLRDHUP;
    if (s->wr && !s->wr->disabled) want |= EPOLLOUT;
    struct epoll_event ev = {.events = want | EPOLLET, .data.u64 = (uint64_t)fd};
    if (!want) {
        /* Failure means the file is already gone, and with it the registration. */
        if (s->mask) (void)epoll_ctl(kq->ep, EPOLL_CTL_DEL, fd, NULL);
        s->mask = 0;
        return 0;
    }
    int op = s->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int r = epoll_ctl(kq->ep, op, fd, &ev);
    if (r < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        r = epoll_ctl(kq->ep, EPOLL_CTL_ADD, fd, &ev);
    if (r < 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
        r = epoll_ctl(kq->ep, EPOLL_CTL_MOD, fd, &ev);
    if (r < 0) return errno;
    s->mask = want;
    return 0;
}

static int add_fd_knote(struct kq *kq, int fd, const struct kevent *kev, const struct stat *st) {
    struct fd_slot *s = get_slot(kq, fd, true);
    if (!s) return ENOMEM;
    struct knote *kn = calloc(1, sizeof(*kn));
    if (!kn) return ENOMEM;
    kn->kev = *kev;
    kn->kev.flags &= KEPT_FLAGS;
    kn->disabled = (kev->flags & EV_DISABLE) && !(kev->flags & EV_ENABLE);
    struct knote **kp = kev->filter == EVFILT_READ ? &s->rd : &s->wr;
    *kp = kn;
    s->dev = st->st_dev;
    s->ino = st->st_ino;
    int err = sync_mask(kq, fd, s);
    if (err) drop_knote(kq, kp); /* the failed epoll_ctl changed nothing */
    return err;
}

static int change_fd(struct kq *kq, const struct kevent *kev) {
    if (kev->ident > INT_MAX) return EBADF;
    int fd = (int)kev->ident;
    struct fd_slot *s = get_slot(kq, fd, false);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        if (s) forget_fd(kq, s);
        return EBADF;
    }
    if (s && (s->dev != st.st_dev || s->ino != st.st_ino)) forget_fd(kq, s);
    struct knote **kp = NULL;
    if (s) kp = kev->filter == EVFILT_READ ? &s->rd : &s->wr;
    if (!kp || !*kp) {
        if (!(kev->flags & EV_ADD)) return ENOENT;
        return add_fd_knote(kq, fd, kev, &st);
    }
    struct knote *kn = *kp;
    if (kev->flags & EV_DELETE) {
        drop_knote(kq, kp);
        return sync_mask(kq, fd, s);
    }
    if (kev->flags & EV_ENABLE) {
        kn->disabled = false;
    } else if (kev->flags & EV_DISABLE) {
        kn->disabled = true;
        dequeue(kq, kn);
    }
    kn->kev.udata = kev->udata;
    kn->kev.fflags = kev->fflags;
    kn->kev.data = kev->data;
    return sync_mask(kq, fd, s);
}

/* ---- user knotes ---- */

static struct knote **find_user(struct kq *kq, uintptr_t ident) {
    struct knote **kp = &kq->users;
    while (*kp && (*kp)->kev.ident != ident) {
        kp = &(*kp)->list_next;
    }
    return kp;
}

/* FreeBSD's filt_usertouch(EVENT_REGISTER). */
static void touch_user(struct knote *kn, const struct kevent *kev) {
    unsigned int ff = kev->fflags & NOTE_FFLAGSMASK;
    switch (kev->fflags & NOTE_FFCTRLMASK) {
    case NOTE_FFAND:
        kn->kev.fflags &= ff;
        break;
    case NOTE_FFOR:
        kn->kev.fflags |= ff;
        break;
    case NOTE_FFCOPY:
        kn->kev.fflags = ff;
        break;
    default: /* NOTE_FFNOP */
        break;
    }
    kn->kev.data = kev->data;
    if (kev->fflags & NOTE_TRIGGER) kn->triggered = true;
    if (kev->flags & EV_CLEAR) kn->triggered = false;
}

static int change_user(struct kq *kq, const struct kevent *kev) {
    struct knote **kp = find_user(kq, kev->ident);
    struct knote *kn = *kp;
    if (!kn) {
        if (!(kev->flags & EV_ADD)) return ENOENT;
        kn = calloc(1, sizeof(*kn));
        if (!kn) return ENOMEM;
        kn->kev = *kev;
        kn->kev.flags &= KEPT_FLAGS;
        kn->kev.fflags = kev->fflags & NOTE_FFLAGSMASK;
        kn->triggered = (kev->fflags & NOTE_TRIGGER) != 0;
        kn->disabled = (kev->flags & EV_DISABLE) && !(kev->flags & EV_ENABLE);
        *kp = kn;
    } else if (kev->flags & EV_DELETE) {
        *kp = kn->list_next;
        dequeue(kq, kn);
        free(kn);
        return 0;
    } else {
        if (kev->flags & EV_ENABLE) {
            kn->disabled = false;
        } else if (kev->flags & EV_DISABLE) {
            kn->disabled = true;
        }
        kn->kev.udata = kev->udata;
        touch_user(kn, kev);
    }
    if (kn->triggered && !kn->disabled) {
        enqueue(kq, kn);
        wake_waiters(kq);
    } else {
        dequeue(kq, kn);
    }
    return 0;
}

/* ---- signal knotes ----
 *
 * FreeBSD records every attempt to deliver a signal, whatever its disposition (except SIGCHLD
 * when ignored), in every knote for it, and the normal delivery happens as well. Linux has no
 * such hook and drops an ignored signal at once, so while any knote watches a signal the
 * emulation installs its own handler there: it counts the delivery into each queue's knote,
 * wakes the threads blocked on those queues, then does what the replaced disposition would
 * have done (calls the handler, ignores, or restores the default and raises again). The last
 * knote's deletion puts the replaced disposition back, unless the program has changed it since.
 */

static bool default_ignored(int sig) {
    return sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT;
}

static void chain(int sig, const struct sigaction *prev, siginfo_t *info, void *ctx) {
    if (prev->sa_flags & SA_SIGINFO) {
        if (prev->sa_sigaction) prev->sa_sigaction(sig, info, ctx);
        return;
    }
    if (prev->sa_handler == SIG_IGN) return;
    if (prev->sa_handler != SIG_DFL) {
        prev->sa_handler(sig);
        return;
    }
    if (default_ignored(sig)) return;
    /* The default action (terminate, stop): blocked while this handler runs, the re-raised
     * signal is delivered with SIG_DFL when it returns. */
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Signal context: emu_lock is safe to take here, since no thread holds it unblocked. */
static void on_emu_signal(int sig, siginfo_t *info, void *ctx) {
    int saved_errno = errno;
    pthread_mutex_lock(&emu_lock);
    struct sigaction prev = emu_signals[sig].saved;
    bool record = !(sig == SIGCHLD && prev.sa_handler == SIG_IGN && !(prev.sa_flags & SA_SIGINFO));
    for (size_t i = 0; record && i < table_len; i++) {
        struct kq *kq = table[i];
        if (!kq) continue;
        for (struct knote *kn = kq->signals; kn; kn = kn->list_next) {
            if ((int)kn->kev.ident != sig) continue;
            kn->kev.data++;
            if (kn->disabled) continue;
            enqueue(kq, kn);
            wake_waiters(kq);
        }
    }
    pthread_mutex_unlock(&emu_lock);
    chain(sig, &prev, info, ctx);
    errno = saved_errno;
}

static int hold_signal(int sig) {
    if (emu_signals[sig].knotes++ > 0) return 0;
    struct sigaction sa = {0};
    sa.sa_sigaction = on_emu_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (sigaction(sig, &sa, &emu_signals[sig].saved) == 0) return 0;
    emu_signals[sig].knotes--;
    return errno;
}

static void release_signal(int sig) {
    if (--emu_signals[sig].knotes > 0) return;
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_emu_signal) {
        (void)sigaction(sig, &emu_signals[sig].saved, NULL);
    }
}

static int change_signal(struct kq *kq, const struct kevent *kev) {
    if (kev->ident < 1 || kev->ident > EMU_NSIG) return EINVAL;
    int sig = (int)kev->ident;
    struct knote **kp = &kq->signals;
    while (*kp && (*kp)->kev.ident != kev->ident) {
        kp = &(*kp)->list_next;
    }
    struct knote *kn = *kp;
    if (!kn) {
        if (!(kev->flags & EV_ADD)) return ENOENT;
        kn = calloc(1, sizeof(*kn));
        if (!kn) return ENOMEM;
        int err = hold_signal(sig);
        if (err) {
            free(kn);
            return err;
        }
        kn->kev = *kev;
        kn->kev.flags = (kev->flags & KEPT_FLAGS) | EV_CLEAR; /* FreeBSD sets it itself */
        kn->kev.data = 0;
        kn->disabled = (kev->flags & EV_DISABLE) && !(kev->flags & EV_ENABLE);
        *kp = kn;
        return 0;
    }
    if (kev->flags & EV_DELETE) {
        *kp = kn->list_next;
        dequeue(kq, kn);
        free(kn);
        release_signal(sig);
        return 0;
    }
    if (kev->flags & EV_ENABLE) {
        kn->disabled = false;
        if (kn->kev.data > 0) enqueue(kq, kn);
    } else if (kev->flags & EV_DISABLE) {
        kn->disabled = true;
        dequeue(kq, kn);
    }
    kn->kev.udata = kev->udata;
    return 0;
}

/* ---- changes ---- */

static int apply_one(struct kq *kq, const struct kevent *kev) {
    switch (kev->filter) {
    case EVFILT_READ:
    case EVFILT_WRITE:
        return change_fd(kq, kev);
    case EVFILT_USER:
        return change_user(kq, kev);
    case EVFILT_SIGNAL:
        return change_signal(kq, kev);
    default:
        return EINVAL;
    }
}

/* Apply every change in order. Returns the number of EV_ERROR entries written to out, or
 * -errno for a failure that found no room. */
static int apply_changes(struct kq *kq, const struct kevent *changes, int n_changes,
                         struct kevent *out, int n_out) {
    int n_errors = 0;
    for (int i = 0; i < n_changes; i++) {
        struct kevent kev = changes[i]; /* a copy: out may be the same array */
        int err = apply_one(kq, &kev);
        if (err == 0 && !(kev.flags & EV_RECEIPT)) continue;
        if (n_errors == n_out) return err ? -err : n_errors;
        kev.flags = EV_ERROR;
        kev.data = err;
        out[n_errors++] = kev;
    }
    return n_errors;
}

/* ---- filters, run at delivery ---- */

static int64_t read_data(int fd) {
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) == 0) return n;
    /* A listening socket refuses FIONREAD; TCP reports its accept queue in TCP_INFO. */
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_LISTEN) {
        return ti.tcpi_unacked;
    }
    return 1;
}

static int64_t write_data(int fd, const struct stat *st) {
    int64_t space = 1;
    int size = 0;
    int used = 0;
    socklen_t len = sizeof(size);
    if (S_ISSOCK(st->st_mode)) {
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len) == 0 &&
            ioctl(fd, TIOCOUTQ, &used) == 0) {
            space = (int64_t)size - used;
        }
    } else if (S_ISFIFO(st->st_mode)) {
        size = fcntl(fd, F_GETPIPE_SZ);
        if (size > 0 && ioctl(fd, FIONREAD, &used) == 0) space = (int64_t)size - used;
    }
    return space > 0 ? space : 1;
}

/* Re-run kn's filter, as FreeBSD does before returning a knote. Fills *ev and returns true if
 * the condition holds. If the descriptor was closed since, kn is freed (with its sibling). */
static bool run_fd_filter(struct kq *kq, struct knote *kn, struct kevent *ev) {
    int fd = (int)kn->kev.ident;
    struct fd_slot *s = &kq->fds[fd];
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != s->dev || st.st_ino != s->ino) {
        forget_fd(kq, s);
        return false;
    }
    bool rd = kn->kev.filter == EVFILT_READ;
    struct pollfd p = {.fd = fd, .events = rd ? POLLIN | POLLRDHUP | POLLPRI : POLLOUT};
    if (poll(&p, 1, 0) != 1) return false;
    short r = p.revents;
    bool eof;
    *ev = kn->kev;
    ev->fflags = 0;
    if (rd) {
        if (!(r & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))) return false;
        /* A pipe's write end whose reader has gone polls POLLERR alone: FreeBSD says EOF. */
        eof = (r & (POLLRDHUP | POLLHUP)) || ((r & POLLERR) && !S_ISSOCK(st.st_mode));
        ev->data = read_data(fd);
        if (r & POLLPRI) ev->flags |= EV_OOBAND;
    } else {
        if (!(r & (POLLOUT | POLLHUP | POLLERR))) return false;
        eof = (r & POLLHUP) || ((r & POLLERR) && !S_ISSOCK(st.st_mode));
        ev->data = write_data(fd, &st);
    }
    if (eof) {
        ev->flags |= EV_EOF;
        if ((r & POLLERR) && S_ISSOCK(st.st_mode)) ev->fflags = EMU_SOERROR;
    }
    return true;
}

static bool run_user_filter(const struct knote *kn, struct kevent *ev) {
    if (!kn->triggered) return false;
    *ev = kn->kev;
    return true;
}

static bool run_signal_filter(const struct knote *kn, struct kevent *ev) {
    if (kn->kev.data == 0) return false;
    *ev = kn->kev;
    return true;
}

/* After delivery: EV_ONESHOT deletes, EV_CLEAR resets, level-triggered goes to the tail. */
static void after_delivery(struct kq *kq, struct knote *kn) {
    bool user = kn->kev.filter == EVFILT_USER;
    if (kn->kev.flags & EV_ONESHOT) {
        struct kevent del = kn->kev;
        del.flags = EV_DELETE;
        (void)apply_one(kq, &del);
    } else if (kn->kev.flags & EV_CLEAR) {
        if (user) kn->triggered = false;
        if (kn->kev.filter == EVFILT_SIGNAL) kn->kev.data = 0;
    } else {
        enqueue(kq, kn);
    }
}

/* ---- collecting and waiting ---- */

static void note_event(struct kq *kq, const struct epoll_event *e) {
    if (e->data.u64 == WAKER_TAG) return;
    struct fd_slot *s = get_slot(kq, (int)e->data.u64, false);
    if (!s) return;
    if (s->rd && !s->rd->disabled && (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        enqueue(kq, s->rd);
    }
    if (s->wr && !s->wr->disabled && (e->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
        enqueue(kq, s->wr);
    }
}

/* Move what epoll has seen onto the FIFO. Events left in the kernel wait for the next call. */
static void drain_epoll(struct kq *kq, int n_out) {
    struct epoll_event evs[EPOLL_BATCH];
    for (int round = 0; round <= n_out / EPOLL_BATCH; round++) {
        int n = epoll_wait(kq->ep, evs, EPOLL_BATCH, 0);
        for (int i = 0; i < n; i++) {
            note_event(kq, &evs[i]);
        }
        if (n < EPOLL_BATCH) return;
    }
}

/* Deliver up to n_out knotes whose filter holds, in FIFO order. A level-triggered knote goes
 * back to the tail marked with this pass, so reaching one ends the pass: none is reported
 * twice in one call. */
static int collect(struct kq *kq, struct kevent *out, int n_out) {
    drain_epoll(kq, n_out);
    unsigned pass = ++kq->pass;
    int n = 0;
    while (n < n_out && kq->fifo.next != &kq->fifo && kq->fifo.next->seen != pass) {
        struct knote *kn = kq->fifo.next;
        dequeue(kq, kn);
        kn->seen = pass;
        bool ready;
        if (kn->kev.filter == EVFILT_USER) {
            ready = run_user_filter(kn, &out[n]);
        } else if (kn->kev.filter == EVFILT_SIGNAL) {
            ready = run_signal_filter(kn, &out[n]);
        } else {
            ready = run_fd_filter(kq, kn, &out[n]);
        }
        if (!ready) continue;
        n++;
        after_delivery(kq, kn);
    }
    return n;
}

/* Block in epoll_wait with the lock released; a private eventfd lets a trigger from another
 * thread wake us. Returns 0 or an errno (EINTR included); the lock is held again on return. */
static int wait_events(struct kq *kq, int timeout_ms, const sigset_t *caller_mask) {
    struct waiter w = {.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), .next = kq->waiters};
    if (w.efd < 0) return errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKER_TAG};
    if (epoll_ctl(kq->ep, EPOLL_CTL_ADD, w.efd, &ev) < 0) {
        int err = errno;
        close(w.efd);
        return err;
    }
    kq->waiters = &w;
    pthread_mutex_unlock(&emu_lock);
    /* The caller's signal mask only while blocked, set atomically with the wait: a signal
     * that arrived since lock_emu interrupts it at once. */
    struct epoll_event evs[EPOLL_BATCH];
    int n = epoll_pwait(kq->ep, evs, EPOLL_BATCH, timeout_ms, caller_mask);
    int err = n < 0 ? errno : 0;
    pthread_mutex_lock(&emu_lock);
    struct waiter **wp = &kq->waiters;
    while (*wp != &w) {
        wp = &(*wp)->next;
    }
    *wp = w.next;
    close(w.efd); /* which also takes it out of the epoll set */
    for (int i = 0; i < n; i++) {
        note_event(kq, &evs[i]);
    }
    return err;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds until deadline_ns, rounded up so a wait never ends early; capped at INT_MAX. */
static int ms_until(uint64_t deadline_ns) {
    uint64_t now = now_ns();
    if (now >= deadline_ns) return 0;
    uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int scan(struct kq *kq, struct kevent *out, int n_out, const struct timespec *timeout,
                const sigset_t *caller_mask) {
    uint64_t deadline = 0;
    if (timeout) {
        uint64_t max_s = (uint64_t)INT_MAX / 1000u;
        uint64_t s = (uint64_t)timeout->tv_sec > max_s ? max_s : (uint64_t)timeout->tv_sec;
        deadline = now_ns() + s * 1000000000u + (uint64_t)timeout->tv_nsec;
    }
    for (;;) {
        int n = collect(kq, out, n_out);
        if (n > 0) return n;
        int wait_ms = timeout ? ms_until(deadline) : -1;
        if (wait_ms == 0) return 0;
        int err = wait_events(kq, wait_ms, caller_mask);
        if (err) return -err;
    }
}

int kevent(int kqfd, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
           int nevents, const struct timespec *timeout) {
    if (nchanges < 0 || nevents < 0) {
        errno = EINVAL;
        return -1;
    }
    if ((nchanges > 0 && !changelist) || (nevents > 0 && !eventlist)) {
        errno = EFAULT;
        return -1;
    }
    if (timeout &&
        (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000)) {
        errno = EINVAL;
        return -1;
    }
    sigset_t mask;
    lock_emu(&mask);
    int r;
    struct kq *kq = find_kq(kqfd);
    if (!kq) {
        r = -EBADF;
    } else {
        r = apply_changes(kq, changelist, nchanges, eventlist, nevents);
        /* Reported changes are returned alone, at once (FreeBSD's kern_kevent). */
        if (r == 0 && nevents > 0) r = scan(kq, eventlist, nevents, timeout, &mask);
    }
    unlock_emu(&mask);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}
