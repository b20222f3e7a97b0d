/* src/reactor/signal.c: signal handles (libuv's uv_signal, Node's process.on('SIGINT')).
 *
 * Signals are process-wide, so this file keeps the one piece of process-wide mutable state in
 * zev (the registry below): per signal, how many handles are started over every loop and the
 * disposition found at the first start, put back at the last stop; and the list of loops that
 * have started handles, which the signal handler walks. A lock-free spinlock guards it. The
 * signal handler takes it too, which is safe because every other holder blocks all signals
 * in its thread while holding it (so a handler never interrupts a holder on its own thread)
 * and the handler runs with all signals blocked (so handlers never nest); a holder on another
 * thread holds it for a few list edits and at most a sigaction() or kevent().
 *
 * Delivery, two ways, chosen by the backend (no #if here):
 * - Handler (epoll): zev's handler marks the signal caught in each loop that wants it
 *   (loop->signal_caught, an atomic bit set) and wakes the loop as zev_async_send does; the
 *   wake-up dispatch (async.c) then calls zev__signal_dispatch on the loop's thread. The
 *   handler runs on whichever thread the kernel picks, so no thread needs the signal blocked
 *   or unblocked in particular, and every loop hears every signal. Why not signalfd: it reads
 *   only signals pending for the reading thread or the process, so a signal sent to another
 *   thread (pthread_kill) never arrives, one loop's read takes a signal from all the others,
 *   and it needs the signal blocked in every thread, which children inherit across exec.
 * - Kernel (kqueue): each loop adds an EVFILT_SIGNAL knote per signal it wants; the kernel
 *   records every delivery in every such kqueue, and the events reach loop->signal_io. The
 *   handler installed then does nothing: it is there so the default action (often terminate)
 *   does not happen. A handler rather than SIG_IGN, because SIG_IGN would survive an exec into
 *   children and makes the kernel reap children itself (SIGCHLD).
 *
 * docs/embedding.md, "Signals", gives the user's view and the trade-offs.
 */
#include "backend.h"
#include "reactor_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>

#if ATOMIC_LLONG_LOCK_FREE != 2 && ATOMIC_LONG_LOCK_FREE != 2
#error "signal delivery needs lock-free 64-bit atomics (a signal handler sets them)"
#endif

#define MAX_SIGNUM 64 /* signals 1..64: one bit each in loop->signal_caught */

static atomic_flag registry_lock = ATOMIC_FLAG_INIT;
static zev_loop_t *registry_loops; /* loops with signal_wanted != 0, via signal_next */
static unsigned registry_handles[MAX_SIGNUM];
static struct sigaction registry_previous[MAX_SIGNUM];

static _Atomic uint64_t *as_atomic64(uint64_t *p) {
    /* zev.h keeps the field a plain uint64_t (C++-includable); only atomics touch it. */
    return (_Atomic uint64_t *)p;
}

static atomic_int *as_atomic(int *p) {
    return (atomic_int *)p;
}

static uint64_t signal_bit(int signum) {
    return (uint64_t)1 << (signum - 1);
}

/* ---- the registry lock ---- */

static void lock_registry(sigset_t *saved) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, saved);
    while (atomic_flag_test_and_set_explicit(&registry_lock, memory_order_acquire)) {
        sched_yield();
    }
}

static void unlock_registry(const sigset_t *saved) {
    atomic_flag_clear_explicit(&registry_lock, memory_order_release);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* ---- the handlers ---- */

/* Signal context. Async-signal-safe: atomics, and at most one write() per loop (the loop's
 * eventfd or self-pipe, as zev_async_send); errno is kept. The spin is short: the holder is
 * on another thread (see the top of the file). */
static void on_signal(int signum) {
    int saved_errno = errno;
    uint64_t bit = signal_bit(signum);
    while (atomic_flag_test_and_set_explicit(&registry_lock, memory_order_acquire)) {
    }
    for (zev_loop_t *loop = registry_loops; loop; loop = loop->signal_next) {
        if (!(loop->signal_wanted & bit)) continue;
        atomic_fetch_or(as_atomic64(&loop->signal_caught), bit);
        /* Set before the wake-up flag is looked at: a wake-up already in flight clears it
         * before its dispatch reads signal_caught (async.c), so it sees this bit. */
        if (atomic_exchange(as_atomic(&loop->async_wake_pending), 1) == 0) {
            (void)zev__backend_wake(loop);
        }
    }
    atomic_flag_clear_explicit(&registry_lock, memory_order_release);
    errno = saved_errno;
}

/* Where the kernel records signals itself (EVFILT_SIGNAL): only keeps the default action
 * from happening. */
static void on_signal_recorded(int signum) {
    (void)signum;
}

static int install_handler(int signum) {
    struct sigaction sa = {0};
    sa.sa_handler = zev__backend_builtin.signal ? on_signal_recorded : on_signal;
    sigfillset(&sa.sa_mask); /* handlers never nest: on_signal takes the registry lock */
    sa.sa_flags = SA_RESTART;
    if (sigaction(signum, &sa, &registry_previous[signum - 1]) < 0) return -errno;
    return 0;
}

static void restore_handler(int signum) {
    (void)sigaction(signum, &registry_previous[signum - 1], NULL);
}

/* ---- the loop's interest, under the registry lock ---- */

/* Does a started handle of this loop watch signum? O(started signal handles of the loop). */
static bool loop_wants(const zev_loop_t *loop, int signum) {
    const struct zev__link *head = &loop->signal_handles;
    for (const struct zev__link *n = head->next; n != head; n = n->next) {
        if (zev__container_of(n, zev_signal_t, node)->signum == signum) return true;
    }
    return false;
}

static void loop_list_remove(zev_loop_t *loop) {
    zev_loop_t **p = &registry_loops;
    while (*p != loop) {
        p = &(*p)->signal_next;
    }
    *p = loop->signal_next;
    loop->signal_next = NULL;
}

/* First handle of signum in this loop: the kernel's knote, then the bit the handler reads. */
static int loop_add(zev_loop_t *loop, int signum) {
    int (*kernel)(zev_loop_t *, struct zev_watcher *, int, bool) = loop->backend->ops->signal;
    if (kernel) {
        int err = kernel(loop, &loop->signal_io.io, signum, true);
        if (err < 0) return err;
    }
    if (loop->signal_wanted == 0) {
        loop->signal_next = registry_loops;
        registry_loops = loop;
    }
    loop->signal_wanted |= signal_bit(signum);
    return 0;
}

static void loop_remove(zev_loop_t *loop, int signum) {
    int (*kernel)(zev_loop_t *, struct zev_watcher *, int, bool) = loop->backend->ops->signal;
    if (kernel) (void)kernel(loop, &loop->signal_io.io, signum, false);
    loop->signal_wanted &= ~signal_bit(signum);
    if (loop->signal_wanted == 0) loop_list_remove(loop);
}

/* Called before the handle joins loop->signal_handles. */
static int watch_signal(zev_loop_t *loop, int signum) {
    bool first_here = !loop_wants(loop, signum);
    sigset_t saved;
    lock_registry(&saved);
    bool first_anywhere = registry_handles[signum - 1] == 0;
    int err = first_anywhere ? install_handler(signum) : 0;
    if (err == 0 && first_here) {
        err = loop_add(loop, signum);
        if (err < 0 && first_anywhere) restore_handler(signum);
    }
    if (err == 0) registry_handles[signum - 1]++;
    unlock_registry(&saved);
    return err;
}

/* Called after the handle left loop->signal_handles. */
static void unwatch_signal(zev_loop_t *loop, int signum) {
    bool last_here = !loop_wants(loop, signum);
    sigset_t saved;
    lock_registry(&saved);
    if (last_here) loop_remove(loop, signum);
    zev__debug_assert(registry_handles[signum - 1] > 0, "signal handle count below zero");
    if (--registry_handles[signum - 1] == 0) restore_handler(signum);
    unlock_registry(&saved);
}

/* ---- handles ---- */

static void stop_handle(zev_signal_t *s) {
    int signum = s->signum;
    if (signum == 0) return;
    zev__list_remove(&s->node);
    s->signum = 0;
    zev__handle_stop(&s->handle);
    unwatch_signal(s->handle.loop, signum);
}

static void signal_close(zev_handle_t *h) {
    stop_handle((zev_signal_t *)h);
}

static void signal_inspect(const zev_handle_t *h, zev_handle_info_t *out) {
    out->signum = ((const zev_signal_t *)h)->signum;
}

static const struct zev__handle_ops signal_ops = {.close = signal_close, .inspect = signal_inspect};

/* kqueue: an EVFILT_SIGNAL event; revents is the signal number (backend.h). */
static void on_signal_event(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)w;
    if (revents < 1 || revents > MAX_SIGNUM) return;
    atomic_fetch_or(as_atomic64(&loop->signal_caught), signal_bit((int)revents));
    zev__signal_dispatch(loop);
}

static const struct zev__handle_ops signal_io_ops = {.io = on_signal_event};

int zev_signal_init(zev_loop_t *loop, zev_signal_t *s) {
    if (!loop || !s) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    zev__debug_handle_fresh(loop, &s->handle, &signal_ops);
    *s = (zev_signal_t){0};
    int err = zev__handle_init(loop, &s->handle, ZEV_SIGNAL, &signal_ops);
    if (err < 0) return err;
    zev__list_init(&s->node);
    if (!loop->signal_io.handle.ops) {
        /* The loop's EVFILT_SIGNAL watcher: never registered as a descriptor, never open. */
        loop->signal_io.handle.ops = &signal_io_ops;
        zev__watcher_init(&loop->signal_io.io, -1);
    }
    return 0;
}

static int start(zev_signal_t *s, zev_signal_cb cb, int signum, int oneshot) {
    if (!s) return -EINVAL;
    if (!zev__handle_usable(&s->handle)) return zev__handle_error(&s->handle);
    if (!cb || signum < 1 || signum > MAX_SIGNUM) return -EINVAL;
    if (s->signum != signum) {
        stop_handle(s);
        int err = watch_signal(s->handle.loop, signum);
        if (err < 0) return err;
        s->signum = signum;
        s->pass = s->handle.loop->signal_pass; /* a dispatch running now skips it */
        zev__list_push_back(&s->handle.loop->signal_handles, &s->node);
        zev__handle_start(&s->handle);
    }
    s->cb = cb;
    s->oneshot = oneshot;
    return 0;
}

int zev_signal_start(zev_signal_t *s, zev_signal_cb cb, int signum) {
    return start(s, cb, signum, 0);
}

int zev_signal_start_oneshot(zev_signal_t *s, zev_signal_cb cb, int signum) {
    return start(s, cb, signum, 1);
}

int zev_signal_stop(zev_signal_t *s) {
    if (!s) return -EINVAL;
    if (!zev__handle_usable(&s->handle)) return zev__handle_error(&s->handle);
    stop_handle(s);
    return 0;
}

/* Every handle started before this call whose signal was caught runs once, in start order.
 * A callback may stop, close or start any handle: each visited handle moves to the tail
 * stamped with this pass's generation, as does a handle started meanwhile (start()), so
 * reaching a stamped handle at the head ends the pass; the list keeps every started handle
 * throughout (loop_wants() walks it). */
void zev__signal_dispatch(zev_loop_t *loop) {
    _Atomic uint64_t *caught_p = as_atomic64(&loop->signal_caught);
    if (atomic_load(caught_p) == 0) return;
    uint64_t caught = atomic_exchange(caught_p, 0);
    unsigned pass = ++loop->signal_pass;
    struct zev__link *head = &loop->signal_handles;
    while (head->next != head) {
        zev_signal_t *s = zev__container_of(head->next, zev_signal_t, node);
        if (s->pass == pass) break;
        s->pass = pass;
        zev__list_remove(&s->node);
        zev__list_push_back(head, &s->node);
        int signum = s->signum;
        if (!(caught & signal_bit(signum))) continue;
        if (s->oneshot) stop_handle(s);
        s->cb(s, signum);
    }
}
