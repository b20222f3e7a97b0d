/* src/reactor/backend_kqueue.c: the BSD and macOS backend, kqueue with EV_CLEAR filters.
 *
 * A watcher gets one knote per direction it wants (EVFILT_READ, EVFILT_WRITE, udata = its
 * tag), added with EV_CLEAR so the kernel reports each new readiness once, like EPOLLET. The
 * additions are batched: watch queues them and the next wait submits them with kevent(), so
 * starting a watcher costs no syscall. A full changelist is submitted at once on its own.
 * Removals are not batched: a queued EV_DELETE would reach the kernel after the owner closed
 * the fd (EBADF), or after the number was reused by a new fd, whose knote it would delete.
 *
 * Descriptor watchers in level mode (ZEV__W_LEVEL, fdwatch.c) are added without EV_CLEAR.
 * Signals: one EVFILT_SIGNAL knote per loop and signal number (kq_signal).
 *
 * Wake-up: an EVFILT_USER knote (ident 0, EV_CLEAR) triggered with NOTE_TRIGGER, where the
 * headers define it; otherwise, or with -Dwakeup=pipe, wake.c's pipe. On Linux this file
 * builds against the test-only emulation in tests/support/kqueue_emu. It only talks to the
 * kernel; poll.c retries, times, counts and dispatches.
 */
#include "backend.h"
#include "reactor_internal.h"
#include "sys.h"
#include "wake.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>

#if defined(EVFILT_USER) && !defined(ZEV_WAKE_PIPE)
#define USE_USER_EVENT 1
#else
#define USE_USER_EVENT 0
#endif

/* Queued additions before a submission of their own: a burst of accepted connections. */
#define MAX_CHANGES 64u

/* kevent() that never waits (a changelist, maybe receipts), through the fault seam. */
static int kevent_ctl(zev_loop_t *loop, struct kevent *ch, int n, struct kevent *out, int n_out) {
    int f = zev__fault_hit(ZEV_SYS_POLL_CTL, NULL);
    if (f < 0) return f;
    const struct timespec zero = {0, 0};
    for (;;) {
        int r = kevent(loop->backend->fd, ch, n, out, n_out, &zero);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

#ifdef EV_RECEIPT
/* Submit changes now, each on its own: with EV_RECEIPT the kernel reports every change in
 * place (the array doubles as eventlist) and returns without collecting events, so a failed
 * change neither stops the ones after it nor hides them. On return each entry has EV_ERROR
 * set and its errno (or 0) in data. */
static int submit_now(zev_loop_t *loop, struct kevent *ch, int n) {
    for (int i = 0; i < n; i++) {
        ch[i].flags |= EV_RECEIPT;
    }
    int r = kevent_ctl(loop, ch, n, ch, n);
    if (r < 0) {
        for (int i = 0; i < n; i++) {
            ch[i].flags &= ~EV_RECEIPT;
        }
        return r;
    }
    return 0;
}
#else
/* Without EV_RECEIPT, one call per change, so that each failure is known and none stops the
 * others. The results are stored as EV_RECEIPT would. */
static int submit_now(zev_loop_t *loop, struct kevent *ch, int n) {
    for (int i = 0; i < n; i++) {
        int r = kevent_ctl(loop, &ch[i], 1, NULL, 0);
        ch[i].flags = EV_ERROR;
        ch[i].data = r < 0 ? -r : 0;
    }
    return 0;
}
#endif

static bool change_failed(const struct kevent *ev) {
    return (ev->flags & EV_ERROR) && ev->data != 0;
}

/* Submit the queued additions now. One the kernel refused reaches its watcher as an error in
 * the next iteration's pending phase, as it would have from the wait. */
static int flush_changes(zev_loop_t *loop) {
    struct kevent *ch = loop->backend->changes;
    int n = (int)loop->backend->n_changes;
    int err = submit_now(loop, ch, n);
    if (err < 0) return err;
    loop->backend->n_changes = 0;
    for (int i = 0; i < n; i++) {
        if (change_failed(&ch[i])) {
            zev__watcher_feed(loop, zev__tag_watcher((uintptr_t)ch[i].udata),
                              ZEV__ERROR | ZEV__READABLE | ZEV__WRITABLE);
        }
    }
    return 0;
}

/* ---- wake-up ---- */

#if USE_USER_EVENT
static void on_user_wake(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)w;
    (void)revents;
    zev__async_dispatch(loop);
}

static const struct zev__handle_ops user_wake_ops = {.io = on_user_wake};

/* Added at once, not queued: a wake-up sent from another thread before the first poll must
 * find the knote in place. EV_CLEAR makes any number of triggers one event. Creating the
 * wake-up channel answers to ZEV_SYS_WAKE_OPEN whatever it is made of, so a test can fail
 * that step on every backend. */
static int open_wake(zev_loop_t *loop) {
    int err = zev__fault_hit(ZEV_SYS_WAKE_OPEN, NULL);
    if (err < 0) return err;
    loop->wake.handle.ops = &user_wake_ops;
    zev__watcher_init(&loop->wake.io, -1);
    struct kevent ev;
    EV_SET(&ev, 0, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, (void *)zev__watcher_tag(&loop->wake.io));
    err = submit_now(loop, &ev, 1);
    if (err < 0) return err;
    return change_failed(&ev) ? -(int)ev.data : 0;
}

static void close_wake(zev_loop_t *loop) {
    (void)loop; /* the knote goes with the kqueue */
}

static int kq_wake(zev_loop_t *loop) {
    /* udata again: FreeBSD replaces a knote's udata on every change, triggers included. */
    struct kevent ev;
    EV_SET(&ev, 0, EVFILT_USER, 0, NOTE_TRIGGER, 0, (void *)zev__watcher_tag(&loop->wake.io));
    int r = kevent_ctl(loop, &ev, 1, NULL, 0);
    return r < 0 ? r : 0;
}
#else
static int open_wake(zev_loop_t *loop) {
    return zev__wake_start(loop);
}

static void close_wake(zev_loop_t *loop) {
    zev__wake_close(loop);
}

static int kq_wake(zev_loop_t *loop) {
    return zev__wake_signal(loop);
}
#endif

/* ---- life ---- */

static int kq_init(zev_loop_t *loop) {
    struct zev__backend *b = loop->backend;
    int err = zev__fault_hit(ZEV_SYS_POLL_CREATE, NULL);
    if (err < 0) return err;
    b->fd = kqueue();
    if (b->fd < 0) return -errno;
    if (fcntl(b->fd, F_SETFD, FD_CLOEXEC) < 0) {
        err = -errno;
        goto close_kq;
    }
    /* One block: the eventlist, then the changelist. */
    b->max_changes = MAX_CHANGES;
    b->events = zev__alloc(loop, sizeof(struct kevent) * (b->max_events + MAX_CHANGES));
    if (!b->events) {
        err = -ENOMEM;
        goto close_kq;
    }
    b->changes = (struct kevent *)b->events + b->max_events;
    err = open_wake(loop);
    if (err < 0) goto free_events;
    return 0;

free_events:
    zev__free(loop, b->events, sizeof(struct kevent) * (b->max_events + MAX_CHANGES));
    b->events = b->changes = NULL;
close_kq:
    zev__sys_close(b->fd);
    b->fd = -1;
    return err;
}

static void kq_close(zev_loop_t *loop) {
    struct zev__backend *b = loop->backend;
    close_wake(loop);
    zev__free(loop, b->events, sizeof(struct kevent) * (b->max_events + b->max_changes));
    b->events = b->changes = NULL;
    b->n_changes = 0;
    zev__sys_close(b->fd);
    b->fd = -1;
}

/* ---- interest ---- */

static int kq_watch(zev_loop_t *loop, struct zev_watcher *w, unsigned events) {
    struct zev__backend *b = loop->backend;
    /* Only the directions not added yet: re-adding one would make the kernel report a
     * condition that still holds a second time. */
    unsigned add = events & ~((w->flags & ZEV__W_REGISTERED) ? w->events : 0u);
    unsigned need = !!(add & ZEV__READABLE) + !!(add & ZEV__WRITABLE);
    if (need == 0) return 0;
    /* Make room for both first, so a failure leaves nothing of w queued. */
    if (b->n_changes + need > b->max_changes) {
        int err = flush_changes(loop);
        if (err < 0) return err;
    }
    struct kevent *ch = (struct kevent *)b->changes + b->n_changes;
    uintptr_t fd = (uintptr_t)w->fd;
    void *tag = (void *)zev__watcher_tag(w);
    /* Without EV_CLEAR a knote is level-triggered: only fdwatch.c's level mode asks. */
    unsigned short flags = (w->flags & ZEV__W_LEVEL) ? EV_ADD : EV_ADD | EV_CLEAR;
    /* EV_SET may evaluate its first argument more than once on some systems: no ++ in it. */
    if (add & ZEV__READABLE) {
        EV_SET(ch, fd, EVFILT_READ, flags, 0, 0, tag);
        ch++;
    }
    if (add & ZEV__WRITABLE) EV_SET(ch, fd, EVFILT_WRITE, flags, 0, 0, tag);
    b->n_changes += need;
    return 0;
}

/* Remove w's queued additions (the kernel never saw them); returns their directions.
 * O(queued changes). */
static unsigned drop_queued(zev_loop_t *loop, const struct zev_watcher *w) {
    struct kevent *ch = loop->backend->changes;
    unsigned dropped = 0;
    unsigned kept = 0;
    for (unsigned i = 0; i < loop->backend->n_changes; i++) {
        if (zev__tag_watcher((uintptr_t)ch[i].udata) == w) {
            dropped |= ch[i].filter == EVFILT_READ ? ZEV__READABLE : ZEV__WRITABLE;
        } else {
            ch[kept++] = ch[i];
        }
    }
    loop->backend->n_changes = kept;
    return dropped;
}

/* Delete the knotes the kernel has, at once, in one kevent() call. */
static void kq_unwatch(zev_loop_t *loop, struct zev_watcher *w) {
    unsigned added = w->events & ~drop_queued(loop, w);
    struct kevent del[2];
    struct kevent *d = del; /* no ++ inside EV_SET (see kq_watch) */
    if (added & ZEV__READABLE) {
        EV_SET(d, (uintptr_t)w->fd, EVFILT_READ, EV_DELETE, 0, 0, 0);
        d++;
    }
    if (added & ZEV__WRITABLE) {
        EV_SET(d, (uintptr_t)w->fd, EVFILT_WRITE, EV_DELETE, 0, 0, 0);
        d++;
    }
    /* Failure is harmless here: the fd may already be closed, and closing it deleted them. */
    if (d > del) (void)submit_now(loop, del, (int)(d - del));
}

/* ---- signals ---- */

/* EVFILT_SIGNAL records every delivery attempt of signum to the process, whatever the
 * signal's disposition and in every kqueue that has such a knote (so each loop hears it);
 * the filter is EV_CLEAR by itself. Submitted at once, not queued: a signal raised right
 * after zev_signal_start must find the knote. */
static int kq_signal(zev_loop_t *loop, struct zev_watcher *w, int signum, bool on) {
    struct kevent ev;
    EV_SET(&ev, (uintptr_t)signum, EVFILT_SIGNAL, on ? EV_ADD : EV_DELETE, 0, 0,
           (void *)zev__watcher_tag(w));
    int err = submit_now(loop, &ev, 1);
    if (err < 0) return err;
    return change_failed(&ev) ? -(int)ev.data : 0;
}

/* ---- wait ---- */

static unsigned to_revents(const struct kevent *ev) {
    if (ev->filter == EVFILT_SIGNAL) return (unsigned)ev->ident; /* see backend.h */
    /* A refused addition: the owner's next read or write reports the error. */
    if (ev->flags & EV_ERROR) return ZEV__ERROR | ZEV__READABLE | ZEV__WRITABLE;
    unsigned r = ev->filter == EVFILT_WRITE ? ZEV__WRITABLE : ZEV__READABLE;
    if (ev->flags & EV_EOF) {
        if (ev->filter == EVFILT_READ) r |= ZEV__HANGUP;
        if (ev->fflags != 0) r |= ZEV__ERROR | ZEV__READABLE | ZEV__WRITABLE;
    }
#ifdef EV_OOBAND /* macOS: out-of-band data is pending (FreeBSD has no such report) */
    if (ev->filter == EVFILT_READ && (ev->flags & EV_OOBAND)) r |= ZEV__URGENT;
#endif
    return r;
}

/* After a kevent() that carried the changelist: a change leaves the queue only once the
 * kernel has taken it. It has if the call returned (each change applied, or refused in the
 * eventlist) or failed with EINTR (kqueue(2): changes are applied before the wait). After
 * any other failure nobody knows how far it got, so the changes go again on their own, with
 * a receipt each: re-adding an applied one is harmless, a refused one reaches its watcher.
 * If even that fails they stay queued for the next wait. */
static void settle_changes(zev_loop_t *loop, int n) {
    if (n >= 0 || n == -EINTR) {
        loop->backend->n_changes = 0;
        return;
    }
    (void)flush_changes(loop);
}

static int kq_wait(zev_loop_t *loop, int timeout_ms) {
    struct zev__backend *b = loop->backend;
    /* Every refused change takes an eventlist slot; more changes than slots would make
     * kevent() fail outright, so such a changelist goes first on its own. */
    if (b->n_changes > b->max_events) {
        int err = flush_changes(loop);
        if (err < 0) return err;
    }
    int n = zev__fault_hit(ZEV_SYS_POLL_WAIT, NULL);
    if (n < 0) return n; /* the kernel saw nothing: the changelist is still queued */
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    struct kevent *ev = b->events;
    n = kevent(b->fd, b->changes, (int)b->n_changes, ev, (int)b->max_events,
               timeout_ms < 0 ? NULL : &ts);
    if (n < 0) n = -errno;
    settle_changes(loop, n);
    for (int i = 0; i < n; i++) {
        b->ready[i].tag = (uintptr_t)ev[i].udata;
        b->ready[i].revents = to_revents(&ev[i]);
    }
    return n;
}

const struct zev__backend_ops zev__backend_builtin = {
    .name = "kqueue",
    .init = kq_init,
    .close = kq_close,
    .watch = kq_watch,
    .unwatch = kq_unwatch,
    .wait = kq_wait,
    .wake = kq_wake,
    .signal = kq_signal,
};
