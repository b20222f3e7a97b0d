/* src/reactor/backend_epoll.c: the Linux backend, epoll in edge-triggered mode.
 *
 * Each fd is registered once, with every event its owner may ever want, and EPOLLET: so
 * wanting to write later costs no epoll_ctl, and the kernel reports each transition once.
 * Owners read until EAGAIN (or feed themselves to the pending queue; see watcher.c).
 *
 * Hazard: a callback may stop or close another watcher whose event is later in the same batch,
 * and its memory may be reused by the time the close callback ran. unwatch therefore clears
 * that watcher's remaining entries in the batch, so a stale event never reaches it.
 */
#include "backend.h"
#include "reactor_internal.h"
#include "sys.h"
#include "wake.h"

#include <errno.h>
#include <sys/epoll.h>

const char *zev__backend_name(void) {
    return "epoll";
}

static struct epoll_event *batch(zev_loop_t *loop) {
    return (struct epoll_event *)loop->backend_events;
}

int zev__backend_init(zev_loop_t *loop) {
    int err = zev__fault_hit(ZEV_SYS_POLL_CREATE, NULL);
    if (err < 0) return err;
    loop->backend_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->backend_fd < 0) return -errno;

    size_t size = sizeof(struct epoll_event) * loop->backend_max_events;
    loop->backend_events = zev__alloc(loop, size);
    if (!loop->backend_events) {
        err = -ENOMEM;
        goto close_epoll;
    }
    err = zev__wake_open(loop);
    if (err < 0) goto free_events;
    err = zev__watcher_start(loop, &loop->wake.io, ZEV__READABLE);
    if (err < 0) goto close_wake;
    return 0;

close_wake:
    zev__wake_close(loop);
free_events:
    zev__free(loop, loop->backend_events, size);
    loop->backend_events = NULL;
close_epoll:
    zev__sys_close(loop->backend_fd);
    loop->backend_fd = -1;
    return err;
}

void zev__backend_close(zev_loop_t *loop) {
    zev__wake_close(loop);
    zev__free(loop, loop->backend_events, sizeof(struct epoll_event) * loop->backend_max_events);
    loop->backend_events = NULL;
    zev__sys_close(loop->backend_fd);
    loop->backend_fd = -1;
}

static int epoll_ctl_seam(zev_loop_t *loop, int op, int fd, struct epoll_event *ev) {
    int f = zev__fault_hit(ZEV_SYS_POLL_CTL, NULL);
    if (f < 0) return f;
    return epoll_ctl(loop->backend_fd, op, fd, ev) < 0 ? -errno : 0;
}

int zev__backend_watch(zev_loop_t *loop, struct zev_watcher *w, unsigned events) {
    struct epoll_event ev = {0};
    ev.events = EPOLLET;
    if (events & ZEV__READABLE) ev.events |= EPOLLIN | EPOLLRDHUP | EPOLLPRI;
    if (events & ZEV__WRITABLE) ev.events |= EPOLLOUT;
    ev.data.ptr = w;
    int op = (w->flags & ZEV__W_REGISTERED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    return epoll_ctl_seam(loop, op, w->fd, &ev);
}

void zev__backend_unwatch(zev_loop_t *loop, struct zev_watcher *w) {
    /* Failure is harmless here: the fd may already be gone, and closing it deregisters it. */
    (void)epoll_ctl_seam(loop, EPOLL_CTL_DEL, w->fd, NULL);
    struct epoll_event *ev = batch(loop);
    for (unsigned i = loop->backend_next_ready; i < loop->backend_n_ready; i++) {
        if (ev[i].data.ptr == w) ev[i].data.ptr = NULL;
    }
}

static unsigned to_revents(uint32_t e) {
    unsigned r = 0;
    if (e & EPOLLIN) r |= ZEV__READABLE;
    if (e & EPOLLOUT) r |= ZEV__WRITABLE;
    if (e & (EPOLLRDHUP | EPOLLHUP)) r |= ZEV__HANGUP | ZEV__READABLE;
    if (e & EPOLLERR) r |= ZEV__ERROR | ZEV__READABLE | ZEV__WRITABLE;
    if (e & EPOLLPRI) r |= ZEV__URGENT | ZEV__READABLE;
    return r;
}

/* epoll_wait, retried on EINTR with what is left of the timeout. */
static int wait_events(zev_loop_t *loop, int timeout_ms) {
    uint64_t start = zev_hrtime();
    for (;;) {
        int n = zev__fault_hit(ZEV_SYS_POLL_WAIT, NULL);
        if (n == 0) {
            n = epoll_wait(loop->backend_fd, batch(loop), (int)loop->backend_max_events,
                           timeout_ms);
            if (n < 0) n = -errno;
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
    int n = wait_events(loop, timeout_ms);
    if (n <= 0) return n;
    struct epoll_event *ev = batch(loop);
    loop->backend_n_ready = (unsigned)n;
    for (unsigned i = 0; i < (unsigned)n; i++) {
        loop->backend_next_ready = i + 1;
        struct zev_watcher *w = ev[i].data.ptr;
        if (w) zev__watcher_dispatch(loop, w, to_revents(ev[i].events));
    }
    loop->backend_n_ready = 0;
    loop->backend_next_ready = 0;
    return n;
}

int zev__backend_wake(zev_loop_t *loop) {
    return zev__wake_signal(loop);
}
