/* src/reactor/fdwatch.c: zev_fdwatch_t, a watcher for any descriptor the user owns (libuv's
 * uv_poll, libev's ev_io). It waits and reports; it never reads, writes or closes the fd.
 *
 * Level-triggered by default, and cheaply so: the watcher's registration is level-triggered
 * in the kernel (ZEV__W_LEVEL: no EPOLLET, no EV_CLEAR; epoll and kqueue both mix modes per
 * descriptor), so a condition that still holds is reported by every wait with no extra
 * syscall, and TCP and UDP watchers stay edge-triggered and untouched. The alternative,
 * re-feeding the watcher after each callback and confirming with a zero-timeout poll(2),
 * would cost a syscall per callback and duplicate what the kernel already does.
 * ZEV_FDWATCH_EDGE keeps the edge-triggered registration the sockets use.
 *
 * Changing the events: widening in the same mode re-registers once (epoll_ctl MOD, or one
 * more kqueue filter); narrowing or switching mode stops and starts the watcher, which also
 * retires events of the old registration still in the batch (watcher.c's instance bit).
 */
#include "backend.h"
#include "reactor_internal.h"

#include <errno.h>
#include <fcntl.h>

_Static_assert(offsetof(zev_fdwatch_t, io) == sizeof(zev_handle_t),
               "a descriptor watcher's I/O watcher follows its handle");

enum {
    WANTABLE =
        ZEV_FDWATCH_READABLE | ZEV_FDWATCH_WRITABLE | ZEV_FDWATCH_DISCONNECT | ZEV_FDWATCH_EDGE,
    READ_WRITE = ZEV_FDWATCH_READABLE | ZEV_FDWATCH_WRITABLE,
};

/* The user's events from the backend's. A hang-up or an error that maps to nothing the user
 * asked for still brings the wanted directions, as libuv does, so the callback's read or
 * write finds the EOF or the error instead of the loop waking for nothing. */
static unsigned user_events(unsigned wanted, unsigned revents) {
    unsigned ev = 0;
    if ((wanted & ZEV_FDWATCH_READABLE) && (revents & ZEV__READABLE)) ev |= ZEV_FDWATCH_READABLE;
    if ((wanted & ZEV_FDWATCH_WRITABLE) && (revents & ZEV__WRITABLE)) ev |= ZEV_FDWATCH_WRITABLE;
    if ((wanted & ZEV_FDWATCH_DISCONNECT) && (revents & ZEV__HANGUP)) ev |= ZEV_FDWATCH_DISCONNECT;
    if (revents & ZEV__ERROR) ev |= ZEV_FDWATCH_ERROR;
    if ((revents & (ZEV__HANGUP | ZEV__ERROR)) && !(ev & READ_WRITE)) ev |= wanted & READ_WRITE;
    return ev;
}

static void on_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)loop;
    zev_fdwatch_t *fw = zev__container_of(w, zev_fdwatch_t, io);
    unsigned ev = user_events(fw->events, revents);
    if (ev) fw->cb(fw, ev);
}

static void stop_io(zev_fdwatch_t *fw) {
    zev__watcher_stop(fw->handle.loop, &fw->io);
    zev__list_remove(&fw->node);
    zev__handle_stop(&fw->handle);
    fw->events = 0;
}

static void fdwatch_close(zev_handle_t *h) {
    stop_io((zev_fdwatch_t *)h);
}

static const struct zev__handle_ops fdwatch_ops = {.close = fdwatch_close, .io = on_io};

static bool fd_open(int fd) {
    return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

int zev_fdwatch_init(zev_loop_t *loop, zev_fdwatch_t *fw, int fd) {
    if (!loop || !fw) return -EINVAL;
    if (!zev__loop_usable(loop) || !fd_open(fd)) return -EBADF;
    zev__debug_handle_fresh(loop, &fw->handle, &fdwatch_ops);
    *fw = (zev_fdwatch_t){0};
    int err = zev__handle_init(loop, &fw->handle, ZEV_FDWATCH, &fdwatch_ops);
    if (err < 0) return err;
    zev__watcher_init(&fw->io, fd);
    zev__list_init(&fw->node);
    return 0;
}

/* Another started watcher of this loop on the same number: the kernel cannot say so on kqueue
 * (EV_ADD on an existing knote silently takes it over), so the loop keeps the list. O(started
 * descriptor watchers), once per start. */
static bool fd_taken(const zev_loop_t *loop, int fd) {
    for (const struct zev__link *n = loop->fdwatches.next; n != &loop->fdwatches; n = n->next) {
        if (zev__container_of(n, zev_fdwatch_t, node)->io.fd == fd) return true;
    }
    return false;
}

static unsigned backend_events(unsigned events) {
    unsigned b = 0;
    if (events & (ZEV_FDWATCH_READABLE | ZEV_FDWATCH_DISCONNECT)) b |= ZEV__READABLE;
    if (events & ZEV_FDWATCH_WRITABLE) b |= ZEV__WRITABLE;
    return b;
}

/* Register a stopped watcher. On failure it stays stopped. */
static int start_io(zev_fdwatch_t *fw, unsigned events) {
    zev_loop_t *loop = fw->handle.loop;
    if (!fd_open(fw->io.fd)) return -EBADF;
    if (fd_taken(loop, fw->io.fd)) return -EEXIST;
    fw->io.flags &= (uint8_t)~ZEV__W_LEVEL;
    if (!(events & ZEV_FDWATCH_EDGE)) fw->io.flags |= ZEV__W_LEVEL;
    int err = zev__watcher_start(loop, &fw->io, backend_events(events));
    if (err < 0) return err;
    fw->events = events;
    zev__list_push_back(&loop->fdwatches, &fw->node);
    zev__handle_start(&fw->handle);
    return 0;
}

/* Change the events of a started watcher. If re-registering fails it ends stopped. */
static int change_io(zev_fdwatch_t *fw, unsigned events) {
    unsigned old = backend_events(fw->events);
    unsigned now = backend_events(events);
    bool same_mode = ((fw->events ^ events) & ZEV_FDWATCH_EDGE) == 0;
    if (same_mode && (now & old) == old) {
        int err = zev__watcher_start(fw->handle.loop, &fw->io, now);
        if (err < 0) {
            stop_io(fw);
            return err;
        }
        fw->events = events;
        return 0;
    }
    stop_io(fw);
    return start_io(fw, events);
}

int zev_fdwatch_start(zev_fdwatch_t *fw, unsigned events, zev_fdwatch_cb cb) {
    if (!fw) return -EINVAL;
    if (!zev__handle_usable(&fw->handle)) return zev__handle_error(&fw->handle);
    if (!cb || (events & ~WANTABLE) || !(events & READ_WRITE)) return -EINVAL;
    /* kqueue reports a hang-up only through its read filter, so ask for both everywhere. */
    if ((events & ZEV_FDWATCH_DISCONNECT) && !(events & ZEV_FDWATCH_READABLE)) return -EINVAL;
    fw->cb = cb;
    if (!(fw->io.flags & ZEV__W_REGISTERED)) return start_io(fw, events);
    if (events == fw->events) return 0;
    return change_io(fw, events);
}

int zev_fdwatch_stop(zev_fdwatch_t *fw) {
    if (!fw) return -EINVAL;
    if (!zev__handle_usable(&fw->handle)) return zev__handle_error(&fw->handle);
    stop_io(fw);
    return 0;
}

int zev_fdwatch_fd(const zev_fdwatch_t *fw) {
    return fw ? fw->io.fd : -EINVAL;
}
