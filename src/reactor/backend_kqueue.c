/* src/reactor/backend_kqueue.c: the BSD and macOS backend, kqueue with EV_CLEAR filters.
 *
 * A watcher gets one knote per direction it wants (EVFILT_READ, EVFILT_WRITE, udata = the
 * watcher), added with EV_CLEAR so the kernel reports each new readiness once, like EPOLLET in
 * the epoll backend. Additions are batched: watch queues them in loop->backend_changes and the
 * next kevent() of the poll submits them with the wait, so starting a watcher costs no syscall.
 * A full array is submitted at once on its own.
 *
 * Removals are not batched. A queued EV_DELETE would reach the kernel after the owner closed
 * the fd (failing with EBADF), or after the number was reused by a new fd, whose fresh knote
 * it would then delete. So unwatch drops the watcher's still-queued additions (the kernel
 * never saw them) and deletes the others at once, in one kevent() call.
 *
 * Hazard: a callback may stop or close another watcher whose event is later in the same batch,
 * and its memory may be reused by the time the close callback ran. unwatch therefore clears
 * that watcher's remaining entries in the batch, so a stale event never reaches it.
 *
 * Wake-up: an EVFILT_USER knote (ident 0, EV_CLEAR) triggered with NOTE_TRIGGER, where the
 * headers define it; no descriptor needed. Otherwise, or with -Dwakeup=pipe, wake.c's pipe.
 * On Linux this file builds against the test-only emulation in tests/support/kqueue_emu.
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

const char *zev__backend_name(void) {
    return "kqueue";
}

static struct kevent *batch(zev_loop_t *loop) {
    return (struct kevent *)loop->backend_events;
}

static struct kevent *changes(zev_loop_t *loop) {
    return (struct kevent *)loop->backend_changes;
}

/* kevent() that never waits (a changelist, maybe receipts), through the fault seam. */
static int kevent_ctl(zev_loop_t *loop, struct kevent *ch, int n, struct kevent *out, int n_out) {
    int f = zev__fault_hit(ZEV_SYS_POLL_CTL, NULL);
    if (f < 0) return f;
    const struct timespec zero = {0, 0};
    for (;;) {
        int r = kevent(loop->backend_fd, ch, n, out, n_out, &zero);
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
 * the next iteration's pending phase, as it would have from the poll. */
static int flush_changes(zev_loop_t *loop) {
    struct kevent *ch = changes(loop);
    int n = (int)loop->backend_n_changes;
    int err = submit_now(loop, ch, n);
    if (err < 0) return err;
    loop->backend_n_changes = 0;
    for (int i = 0; i < n; i++) {
        if (change_failed(&ch[i]) && ch[i].udata) {
            zev__watcher_feed(loop, ch[i].udata, ZEV__ERROR | ZEV__READABLE | ZEV__WRITABLE);
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
    EV_SET(&ev, 0, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, &loop->wake.io);
    err = submit_now(loop, &ev, 1);
    if (err < 0) return err;
    return change_failed(&ev) ? -(int)ev.data : 0;
}

static void close_wake(zev_loop_t *loop) {
    (void)loop; /* the knote goes with the kqueue */
}

int zev__backend_wake(zev_loop_t *loop) {
    /* udata again: FreeBSD replaces a knote's udata on every change, triggers included. */
    struct kevent ev;
    EV_SET(&ev, 0, EVFILT_USER, 0, NOTE_TRIGGER, 0, &loop->wake.io);
    int r = kevent_ctl(loop, &ev, 1, NULL, 0);
    return r < 0 ? r : 0;
}
#else
static int open_wake(zev_loop_t *loop) {
    int err = zev__wake_open(loop);
    if (err < 0) return err;
    err = zev__watcher_start(loop, &loop->wake.io, ZEV__READABLE);
    if (err < 0) zev__wake_close(loop);
    return err;
}

static void close_wake(zev_loop_t *loop) {
    zev__wake_close(loop);
}

int zev__backend_wake(zev_loop_t *loop) {
    return zev__wake_signal(loop);
}
#endif

/* ---- life ---- */

int zev__backend_init(zev_loop_t *loop) {
    int err = zev__fault_hit(ZEV_SYS_POLL_CREATE, NULL);
    if (err < 0) return err;
    loop->backend_fd = kqueue();
    if (loop->backend_fd < 0) return -errno;
    if (fcntl(loop->backend_fd, F_SETFD, FD_CLOEXEC) < 0) {
        err = -errno;
        goto close_kq;
    }

    size_t events_size = sizeof(struct kevent) * loop->backend_max_events;
    loop->backend_events = zev__alloc(loop, events_size);
    if (!loop->backend_events) {
        err = -ENOMEM;
        goto close_kq;
    }
    loop->backend_max_changes = MAX_CHANGES;
    loop->backend_n_changes = 0;
    loop->backend_changes = zev__alloc(loop, sizeof(struct kevent) * MAX_CHANGES);
    if (!loop->backend_changes) {
        err = -ENOMEM;
        goto free_events;
    }
    err = open_wake(loop);
    if (err < 0) goto free_changes;
    return 0;

free_changes:
    zev__free(loop, loop->backend_changes, sizeof(struct kevent) * MAX_CHANGES);
    loop->backend_changes = NULL;
free_events:
    zev__free(loop, loop->backend_events, events_size);
    loop->backend_events = NULL;
close_kq:
    zev__sys_close(loop->backend_fd);
    loop->backend_fd = -1;
    return err;
}

void zev__backend_close(zev_loop_t *loop) {
    close_wake(loop);
    zev__free(loop, loop->backend_changes, sizeof(struct kevent) * loop->backend_max_changes);
    loop->backend_changes = NULL;
    loop->backend_n_changes = 0;
    zev__free(loop, loop->backend_events, sizeof(struct kevent) * loop->backend_max_events);
    loop->backend_events = NULL;
    zev__sys_close(loop->backend_fd);
    loop->backend_fd = -1;
}

/* ---- interest ---- */

int zev__backend_watch(zev_loop_t *loop, struct zev_watcher *w, unsigned events) {
    /* Only the directions not added yet: re-adding one would make the kernel report a
     * condition that still holds a second time. */
    unsigned add = events & ~((w->flags & ZEV__W_REGISTERED) ? w->events : 0u);
    unsigned need = !!(add & ZEV__READABLE) + !!(add & ZEV__WRITABLE);
    if (need == 0) return 0;
    /* Make room for both first, so a failure leaves nothing of w queued. */
    if (loop->backend_n_changes + need > loop->backend_max_changes) {
        int err = flush_changes(loop);
        if (err < 0) return err;
    }
    struct kevent *ch = changes(loop) + loop->backend_n_changes;
    uintptr_t fd = (uintptr_t)w->fd;
    /* EV_SET may evaluate its first argument more than once on some systems: no ++ in it. */
    if (add & ZEV__READABLE) {
        EV_SET(ch, fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, w);
        ch++;
    }
    if (add & ZEV__WRITABLE) EV_SET(ch, fd, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, w);
    loop->backend_n_changes += need;
    return 0;
}

/* Remove w's queued additions; returns the directions they were for. O(queued changes). */
static unsigned drop_queued(zev_loop_t *loop, const struct zev_watcher *w) {
    struct kevent *ch = changes(loop);
    unsigned dropped = 0;
    unsigned kept = 0;
    for (unsigned i = 0; i < loop->backend_n_changes; i++) {
        if (ch[i].udata == w) {
            dropped |= ch[i].filter == EVFILT_READ ? ZEV__READABLE : ZEV__WRITABLE;
        } else {
            ch[kept++] = ch[i];
        }
    }
    loop->backend_n_changes = kept;
    return dropped;
}

void zev__backend_unwatch(zev_loop_t *loop, struct zev_watcher *w) {
    unsigned added = w->events & ~drop_queued(loop, w);
    struct kevent del[2];
    struct kevent *d = del;
    uintptr_t fd = (uintptr_t)w->fd;
    if (added & ZEV__READABLE) {
        EV_SET(d, fd, EVFILT_READ, EV_DELETE, 0, 0, w);
        d++;
    }
    if (added & ZEV__WRITABLE) {
        EV_SET(d, fd, EVFILT_WRITE, EV_DELETE, 0, 0, w);
        d++;
    }
    /* Failure is harmless here: the fd may already be closed, and closing it deleted them. */
    if (d > del) (void)submit_now(loop, del, (int)(d - del));
    struct kevent *ev = batch(loop);
    for (unsigned i = loop->backend_next_ready; i < loop->backend_n_ready; i++) {
        if (ev[i].udata == w) ev[i].udata = NULL;
    }
}

/* ---- poll ---- */

static unsigned to_revents(const struct kevent *ev) {
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

/* kevent with the queued changes, retried on EINTR with what is left of the timeout. */
static int wait_events(zev_loop_t *loop, int timeout_ms) {
    uint64_t start = zev_hrtime();
    for (;;) {
        struct timespec ts = {.tv_sec = timeout_ms / 1000,
                              .tv_nsec = (timeout_ms % 1000) * 1000000L};
        int n = zev__fault_hit(ZEV_SYS_POLL_WAIT, NULL);
        if (n == 0) {
            n = kevent(loop->backend_fd, changes(loop), (int)loop->backend_n_changes, batch(loop),
                       (int)loop->backend_max_events, timeout_ms < 0 ? NULL : &ts);
            if (n < 0) n = -errno;
            /* The kernel took the changelist: all of it on EINTR (kqueue(2)), and a change
             * that failed otherwise would only fail again. */
            loop->backend_n_changes = 0;
        }
        uint64_t end = zev_hrtime();
        zev__loop_account_poll(loop, end - start, n > 0 ? (unsigned)n : 0);
        loop->now_ms = end / 1000000u;
        if (n != -EINTR) return n;
        if (timeout_ms > 0) {
            uint64_t spent_ms = (end - start) / 1000000u;
            timeout_ms = spent_ms >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent_ms;
        }
        start = end;
    }
}

int zev__backend_poll(zev_loop_t *loop, int timeout_ms) {
    /* Every refused change takes an eventlist slot; more changes than slots would make
     * kevent() fail outright, so such a changelist goes first on its own. */
    if (loop->backend_n_changes > loop->backend_max_events) {
        int err = flush_changes(loop);
        if (err < 0) return err;
    }
    int n = wait_events(loop, timeout_ms);
    if (n <= 0) return n;
    struct kevent *ev = batch(loop);
    loop->backend_n_ready = (unsigned)n;
    for (unsigned i = 0; i < (unsigned)n; i++) {
        loop->backend_next_ready = i + 1;
        struct zev_watcher *w = ev[i].udata;
        if (w) zev__watcher_dispatch(loop, w, to_revents(&ev[i]));
    }
    loop->backend_n_ready = 0;
    loop->backend_next_ready = 0;
    return n;
}
