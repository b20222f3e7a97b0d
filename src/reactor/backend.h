/* src/reactor/backend.h: the whole contract between the loop and a kernel event API.
 *
 * A backend only talks to the kernel: it registers interest, waits, and writes what the kernel
 * returned into the ready list as (watcher, revents) pairs. It runs no callback. The loop
 * (poll.c) owns everything around the wait: EINTR retry with the remaining timeout, the clock,
 * the counters, dispatch, and dropping stale events (redis ae's split). A backend knows
 * watchers and nothing about TCP or UDP.
 *
 * One readiness backend per build today (backend_epoll.c or backend_kqueue.c, as meson picks),
 * reached through an ops table that the poll phase reads once per iteration, so that a
 * run-time choice (epoll, or an io_uring completion backend filling the same ready list) is a
 * change to zev__backend_open alone. See docs/internals.md, "Backends".
 */
#ifndef ZEV_BACKEND_H
#define ZEV_BACKEND_H

#include "reactor_internal.h"

#include <stdint.h>

/* One entry of the batch: filled by ops->wait, dispatched by the loop, voided (0) by the loop
 * when its watcher is stopped in a way the instance bit cannot cover (watcher.c). */
struct zev__ready {
    uintptr_t tag;    /* zev__watcher_tag() as registered with the kernel; for a completion,
                       * the watcher with the operation's kind in the low bits */
    unsigned revents; /* ZEV__READABLE | ZEV__WRITABLE | ZEV__HANGUP | ZEV__ERROR; for a
                       * signal watcher (ops->signal), the signal number; ZEV__COMPLETED for
                       * the result of an operation (completion backends) */
    int32_t res;      /* a completion: the operation's result (bytes, or a negative errno) */
    uint32_t flags;   /* a completion: IORING_CQE_F_* (MORE: the operation goes on; BUFFER:
                       * buffer id in the top 16 bits) */
    uint32_t off;     /* a completion into a buffer: where in its chunk the bytes start */
};

/* revents of a completion: dispatched to the owner's ops->complete, never queued. */
#define ZEV__COMPLETED (1u << 7)

struct zev__backend_ops {
    const char *name; /* "epoll", "kqueue" */
    /* Create the kernel object and the wake-up channel; register loop->wake.io. Undo all of
     * it on failure. Negative errno. */
    int (*init)(zev_loop_t *loop);
    void (*close)(zev_loop_t *loop);
    /* Register w->fd for events (ZEV__READABLE | ZEV__WRITABLE), edge-triggered unless w
     * has ZEV__W_LEVEL, with zev__watcher_tag(w) as the kernel's data. Called once per
     * watcher, or again to widen the set. Negative errno. */
    int (*watch)(zev_loop_t *loop, struct zev_watcher *w, unsigned events);
    /* Forget w in the kernel. Events of w already in the batch are the loop's business. */
    void (*unwatch)(zev_loop_t *loop, struct zev_watcher *w);
    /* Wait up to timeout_ms (-1: forever, 0: not at all) and fill backend->ready. Returns the
     * number of entries or a negative errno, -EINTR included (the loop retries). Runs
     * nothing, reads no clock, counts nothing. */
    int (*wait)(zev_loop_t *loop, int timeout_ms);
    /* Make a wait in progress return. The one call made from other threads. */
    int (*wake)(zev_loop_t *loop);
    /* Optional: the kernel itself records signals (kqueue's EVFILT_SIGNAL). Add (on) or
     * delete interest in signum, at once (not batched), delivering to w: its ready entries
     * carry the signal number as revents. NULL where signals come through a handler
     * (signal.c). Negative errno. */
    int (*signal)(zev_loop_t *loop, struct zev_watcher *w, int signum, bool on);
    /* Optional (completion backends): keep an operation's result for the next wait, because
     * the dispatch phase's budget is spent (poll.c). Negative errno: deliver it now. */
    int (*defer)(zev_loop_t *loop, const struct zev__ready *e);
};

/* The backend's state, out of the public zev_loop_s: one allocation at init (this struct and
 * the ready list), reached through loop->backend. The kernel arrays are the backend's own. */
struct zev__backend {
    const struct zev__backend_ops *ops;
    struct zev__ready *ready; /* the batch being dispatched */
    unsigned n_ready;         /* its length, while dispatching */
    unsigned next_ready;      /* index of the next entry to dispatch */
    unsigned max_events;      /* length of ready and of the kernel's event array */
    int fd;                   /* the epoll or kqueue descriptor */
    void *events;             /* the kernel's event array */
    void *changes;            /* kqueue: additions waiting for the next kevent() */
    unsigned n_changes;
    unsigned max_changes;
    int wake_fds[2]; /* eventfd or self-pipe (wake.c); -1 where EVFILT_USER is used */
    void *priv;      /* state only one backend has (io_uring: the rings), its init's own */
    char why[160];   /* how the backend was chosen (zev_loop_backend) */
};

/* The readiness backend meson compiled in: backend_epoll.c or backend_kqueue.c defines it. */
extern const struct zev__backend_ops zev__backend_builtin;
#ifdef ZEV_HAVE_IO_URING
/* The completion backend (backend_uring.c), Linux builds only; chosen at run time. */
extern const struct zev__backend_ops zev__backend_uring;
#endif

/* (backend_select.c) Allocate loop->backend with a max_events batch and start the backend
 * asked for (options, else $ZEV_BACKEND, else the built-in one), falling back to the built-in
 * one with the reason in backend->why. -EINVAL if $ZEV_BACKEND names no backend. */
int zev__backend_open(zev_loop_t *loop, unsigned max_events, zev_backend_kind asked);
void zev__backend_close(zev_loop_t *loop);
/* (poll.c) The poll phase: wait (EINTR retried with the time left), update the clock and the
 * counters, dispatch the batch. 0 or the wait's negative errno. */
int zev__loop_poll(zev_loop_t *loop, int timeout_ms);
/* (poll.c) Void w's entries in the rest of the batch being dispatched. O(batch). */
void zev__loop_drop_ready(zev_loop_t *loop, const struct zev_watcher *w);
/* Wake a loop blocked in its wait. Thread-safe. */
int zev__backend_wake(zev_loop_t *loop);

/* ---- the instance bit (see watcher.c and docs/internals.md, "Stale events") ---- */

/* What a backend gives the kernel as an event's data: w with its instance bit in bit 0. */
static inline uintptr_t zev__watcher_tag(const struct zev_watcher *w) {
    return (uintptr_t)w | ((w->flags & ZEV__W_INSTANCE) ? 1u : 0u);
}

static inline struct zev_watcher *zev__tag_watcher(uintptr_t tag) {
    return (struct zev_watcher *)(tag & ~(uintptr_t)1);
}

#endif /* ZEV_BACKEND_H */
