/* src/reactor/backend_epoll.c: the Linux backend, epoll in edge-triggered mode.
 *
 * Each fd is registered once, with every event its owner may ever want, and EPOLLET: so
 * wanting to write later costs no epoll_ctl, and the kernel reports each transition once.
 * Descriptor watchers in level mode (ZEV__W_LEVEL, fdwatch.c) leave EPOLLET out: epoll mixes
 * modes per fd, so the kernel re-reports their condition and TCP and UDP are unaffected.
 * Owners read until EAGAIN (or feed themselves to the pending queue; see watcher.c).
 * This file only talks to the kernel; poll.c retries, times, counts and dispatches.
 */
#include "backend.h"
#include "epoll_events.h"
#include "reactor_internal.h"
#include "sys.h"
#include "wake.h"

#include <errno.h>
#include <sys/epoll.h>

static size_t events_size(const struct zev__backend *b) {
    return sizeof(struct epoll_event) * b->max_events;
}

static int epoll_init(zev_loop_t *loop) {
    struct zev__backend *b = loop->backend;
    int err = zev__fault_hit(ZEV_SYS_POLL_CREATE, NULL);
    if (err < 0) return err;
    b->fd = epoll_create1(EPOLL_CLOEXEC);
    if (b->fd < 0) return -errno;
    b->events = zev__alloc(loop, events_size(b));
    if (!b->events) {
        err = -ENOMEM;
        goto close_epoll;
    }
    err = zev__wake_start(loop);
    if (err < 0) goto free_events;
    return 0;

free_events:
    zev__free(loop, b->events, events_size(b));
    b->events = NULL;
close_epoll:
    zev__sys_close(b->fd);
    b->fd = -1;
    return err;
}

static void epoll_close(zev_loop_t *loop) {
    struct zev__backend *b = loop->backend;
    zev__wake_close(loop);
    zev__free(loop, b->events, events_size(b));
    b->events = NULL;
    zev__sys_close(b->fd);
    b->fd = -1;
}

static int epoll_ctl_seam(zev_loop_t *loop, int op, int fd, struct epoll_event *ev) {
    int f = zev__fault_hit(ZEV_SYS_POLL_CTL, NULL);
    if (f < 0) return f;
    return epoll_ctl(loop->backend->fd, op, fd, ev) < 0 ? -errno : 0;
}

static int epoll_watch(zev_loop_t *loop, struct zev_watcher *w, unsigned events) {
    struct epoll_event ev = {0};
    ev.events = (w->flags & ZEV__W_LEVEL) ? 0 : EPOLLET; /* level: only fdwatch.c asks */
    if (events & ZEV__READABLE) ev.events |= EPOLLIN | EPOLLRDHUP | EPOLLPRI;
    if (events & ZEV__WRITABLE) ev.events |= EPOLLOUT;
    ev.data.ptr = (void *)zev__watcher_tag(w);
    int op = (w->flags & ZEV__W_REGISTERED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    return epoll_ctl_seam(loop, op, w->fd, &ev);
}

static void epoll_unwatch(zev_loop_t *loop, struct zev_watcher *w) {
    /* Failure is harmless here: the fd may already be gone, and closing it deregisters it. */
    (void)epoll_ctl_seam(loop, EPOLL_CTL_DEL, w->fd, NULL);
}

static int epoll_wait_ready(zev_loop_t *loop, int timeout_ms) {
    struct zev__backend *b = loop->backend;
    int n = zev__fault_hit(ZEV_SYS_POLL_WAIT, NULL);
    if (n < 0) return n;
    struct epoll_event *ev = b->events;
    n = epoll_wait(b->fd, ev, (int)b->max_events, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        b->ready[i].tag = (uintptr_t)ev[i].data.ptr;
        b->ready[i].revents = zev__epoll_revents(ev[i].events);
    }
    return n;
}

const struct zev__backend_ops zev__backend_builtin = {
    .name = "epoll",
    .init = epoll_init,
    .close = epoll_close,
    .watch = epoll_watch,
    .unwatch = epoll_unwatch,
    .wait = epoll_wait_ready,
    .wake = zev__wake_signal,
};
