/* src/tcp/stream.c: a stream socket's life: init, attach to an fd, its extra state, event
 * dispatch by phase, failure reporting and close. Connecting, reading, writing and timeouts
 * live in their own files; this one calls them, and they tell it what happened.
 *
 * Every failure goes through zev__tcp_fail(), which only records it and feeds the watcher:
 * the error event and the failed write callbacks then run from the loop's pending phase,
 * never inside the user's call that noticed the failure (a write that hit ECONNRESET).
 */
#include "tcp_internal.h"

#include <errno.h>

_Static_assert(offsetof(zev_tcp_t, io) == sizeof(zev_handle_t),
               "the watcher follows the handle (zev__watcher_dispatch)");

static void on_timer(zev_loop_t *loop, struct zev__timer_node *n);

struct zev__tcp_extra *zev__tcp_extra_get(zev_tcp_t *t) {
    if (t->extra) return t->extra;
    zev_loop_t *loop = t->handle.loop;
    struct zev__tcp_extra *x = zev__slab_get(loop, &loop->slab_large);
    if (!x) return NULL;
    *x = (struct zev__tcp_extra){.socket = t, .hwm = ZEV__TCP_DEFAULT_HWM};
    x->node.fire = on_timer;
    t->extra = x;
    return x;
}

void zev__tcp_extra_free(zev_tcp_t *t) {
    struct zev__tcp_extra *x = t->extra;
    if (!x) return;
    zev_loop_t *loop = t->handle.loop;
    zev__timer_node_stop(loop, &x->node);
    zev__slab_put(&loop->slab_large, x);
    t->extra = NULL;
    t->handle.flags &= ~(ZEV__TCP_PIPE_SRC | ZEV__TCP_USER_BUF);
}

/* Everything that uses the extra state stops here (pipes, timers, the connect), so it goes
 * back to the slab now; nothing can take it again, since every call that would returns -EBADF
 * from here on. */
static void tcp_close(zev_handle_t *h) {
    zev_tcp_t *t = (zev_tcp_t *)h;
    zev_loop_t *loop = h->loop;
    zev__tcp_pipe_detach(t);
    zev__tcp_name_end(t); /* a connect by name: its lookup and attempts */
    zev__tcp_ring_forget(t); /* completion mode: the kernel lets go of the socket first */
    zev__tcp_extra_free(t);
    zev__watcher_stop(loop, &t->io); /* frees the handle's queue slot for the close queue */
    if (t->io.fd >= 0) {
        zev__sys_close(t->io.fd);
        t->io.fd = -1;
    }
    h->flags &= ~ZEV__TCP_READING;
    zev__tcp_set_phase(t, ZEV__TCP_CLOSED);
}

/* Queued writes are told they were cancelled. A connect still in flight was abandoned by
 * tcp_close, callback and all (Node emits no 'connect' after destroy()). */
static int tcp_finish(zev_handle_t *h) {
    zev_tcp_t *t = (zev_tcp_t *)h;
    /* A zero-copy send's bytes may still be read by the kernel (the descriptor's close lets
     * it go on sending them): the writes, the close callback and the loop wait for its
     * notification, which resumes the close (write.c). */
    if (zev__tcp_ring_zc_due(t)) {
        zev__handle_set_requests(h, true);
        return 1;
    }
    zev__tcp_cancel_writes(t, -ECANCELED);
    if (t->server) {
        zev__tcp_server_connection_closed(t->server);
        t->server = NULL;
    }
    return 0;
}

static void tcp_inspect(const zev_handle_t *h, zev_handle_info_t *out) {
    /* Indexed by the internal phase's value (tcp_internal.h: 0..3 << 8). */
    static const zev_tcp_phase phases[] = {ZEV_TCP_PHASE_IDLE, ZEV_TCP_PHASE_CONNECTING,
                                           ZEV_TCP_PHASE_CONNECTED, ZEV_TCP_PHASE_CLOSED};
    const zev_tcp_t *t = (const zev_tcp_t *)h;
    out->tcp_phase = phases[zev__tcp_phase(t) >> 8];
    out->queued_bytes = zev_tcp_write_queue_size(t);
    out->queued_memory = zev_tcp_write_queue_memory(t);
    out->queued = zev_tcp_write_queue_count(t);
}

static const struct zev__handle_ops tcp_ops = {
    .close = tcp_close,
    .finish = tcp_finish,
    .io = zev__tcp_io,
    .inspect = tcp_inspect,
    .complete = zev__tcp_ring_complete};

int zev_tcp_init(zev_loop_t *loop, zev_tcp_t *t) {
    if (!loop || !t) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    zev__debug_handle_fresh(loop, &t->handle, &tcp_ops);
    *t = (zev_tcp_t){0};
    int err = zev__handle_init(loop, &t->handle, ZEV_TCP, &tcp_ops);
    if (err < 0) return err;
    zev__watcher_init(&t->io, -1);
    return 0;
}

int zev_tcp_close_reset(zev_tcp_t *t, zev_close_cb cb) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (t->io.fd >= 0) {
        /* A zero linger time makes close() abort the connection: RST instead of FIN. */
        struct linger abort_now = {.l_onoff = 1, .l_linger = 0};
        int err = zev__sys_setsockopt(t->io.fd, SOL_SOCKET, SO_LINGER, &abort_now,
                                      sizeof(abort_now));
        if (err < 0) return err;
    }
    return zev_close(&t->handle, cb);
}

int zev_tcp_set_events(zev_tcp_t *t, const zev_tcp_events_t *events) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    t->events = events;
    return 0;
}

int zev__tcp_attach(zev_tcp_t *t, int fd) {
#ifdef SO_NOSIGPIPE
    /* Where sends have no MSG_NOSIGNAL (macOS), the socket itself must not raise SIGPIPE. */
    int err = zev__sys_setsockopt_int(fd, SOL_SOCKET, SO_NOSIGPIPE, 1);
    if (err < 0) return err;
#endif
    t->io.fd = fd;
    /* Registered once for both directions: wanting to write later costs no epoll_ctl. */
    int rc = zev__watcher_start(t->handle.loop, &t->io, ZEV__READABLE | ZEV__WRITABLE);
    if (rc < 0) t->io.fd = -1;
    return rc;
}

void zev__tcp_update_active(zev_tcp_t *t) {
    /* zev_close stopped the handle for good: a callback that ran after it (a write callback
     * that closed its socket mid-flush) must not make it keep the loop alive again. */
    if (zev__tcp_closing(t)) return;
    unsigned f = t->handle.flags;
    /* Requests keep the loop alive even when unref'd; reading alone does not. An end still
     * to do is one, unless the socket failed: then it never will be (the failure report
     * itself is the request until it ran). */
    bool end_due = (f & (ZEV__TCP_ENDING | ZEV__TCP_SHUT | ZEV__TCP_FAILED)) == ZEV__TCP_ENDING;
    bool requests = zev__tcp_phase(t) == ZEV__TCP_CONNECTING || !zev__tcp_wq_empty(t) ||
                    end_due || (f & ZEV__TCP_FAILED && !(f & ZEV__TCP_REPORTED));
    if (requests || (f & ZEV__TCP_READING)) {
        zev__handle_start(&t->handle);
    } else {
        zev__handle_stop(&t->handle);
    }
    zev__handle_set_requests(&t->handle, requests);
}

void zev__tcp_fail(zev_tcp_t *t, int err) {
    if (t->handle.flags & ZEV__TCP_FAILED) return;
    t->err = err;
    t->handle.flags |= ZEV__TCP_FAILED;
    t->handle.flags &= ~ZEV__TCP_READING;
    zev__watcher_feed(t->handle.loop, &t->io, ZEV__ERROR);
    zev__tcp_update_active(t);
}

static void report_failure(zev_tcp_t *t) {
    t->handle.flags |= ZEV__TCP_REPORTED;
    /* A connect in flight ends with the failure: its callback is told, as for a refusal. */
    if (zev__tcp_phase(t) == ZEV__TCP_CONNECTING) {
        zev__tcp_connect_finish(t, t->err);
        return;
    }
    zev__tcp_ring_forget(t); /* a send in flight reads the bytes about to be let go */
    /* The kernel still reads bytes of a zero-copy send: the writes complete first, as always,
     * so the whole report waits for its notification, which feeds it again (write.c). */
    if (zev__tcp_ring_zc_due(t)) {
        t->handle.flags &= ~ZEV__TCP_REPORTED;
        return;
    }
    zev__tcp_cancel_writes(t, t->err);
    if (zev__tcp_closing(t)) return;
    zev__tcp_update_active(t);
    if (t->events && t->events->error) t->events->error(t, t->err);
}

/* While connecting nobody reads: a readable edge is remembered for later. Returns the events
 * to handle as a connected socket: none until the connect's answer came and was a success;
 * then what waited for it (the writes and the end queued meanwhile, and bytes whose edge came
 * while connecting). */
static unsigned on_connecting(zev_tcp_t *t, unsigned revents) {
    if (revents & (ZEV__READABLE | ZEV__HANGUP)) t->handle.flags |= ZEV__TCP_READ_MISSED;
    int status = zev__tcp_connect_result(t, revents);
    if (status == -EINPROGRESS) return 0;
    if (!zev__tcp_connect_finish(t, status)) return 0;
    zev__tcp_ring_begin(t); /* on io_uring: completion mode from here on */
    if (zev__tcp_closing(t) || (t->handle.flags & ZEV__TCP_FAILED)) return 0;
    unsigned events = ZEV__WRITABLE;
    if (t->handle.flags & ZEV__TCP_READ_MISSED) {
        t->handle.flags &= ~ZEV__TCP_READ_MISSED;
        events |= ZEV__READABLE;
    }
    return events;
}

static void on_connected(zev_tcp_t *t, unsigned revents) {
    if (t->handle.flags & ZEV__TCP_RING) {
        if (revents & ZEV__READABLE) zev__tcp_ring_resume(t); /* only ever fed */
    } else if (revents & (ZEV__READABLE | ZEV__HANGUP | ZEV__ERROR)) {
        zev__tcp_on_readable(t, revents);
    }
    if (zev__tcp_closing(t) || t->handle.flags & ZEV__TCP_FAILED) return;
    bool ending = (t->handle.flags & (ZEV__TCP_ENDING | ZEV__TCP_SHUT)) == ZEV__TCP_ENDING;
    if (revents & (ZEV__WRITABLE | ZEV__ERROR) && (!zev__tcp_wq_empty(t) || ending))
        zev__tcp_flush(t);
}

/* The watcher callback: one entry point for kernel events and fed (deferred) work. A fed
 * event means the same in every phase (tcp_internal.h), so only recorded facts and the phase
 * decide what runs. Each step re-checks the handle, since any callback may have closed it. */
void zev__tcp_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)loop;
    zev_tcp_t *t = zev__container_of(w, zev_tcp_t, io);
    /* Remember a hang-up in every phase: its edge may come while connecting or while reading
     * is paused, and the short-read shortcut in read.c must not then stop before the EOF. */
    if (revents & ZEV__HANGUP) t->handle.flags |= ZEV__TCP_PEER_HUP;
    unsigned f = t->handle.flags;
    if ((f & (ZEV__TCP_FAILED | ZEV__TCP_REPORTED)) == ZEV__TCP_FAILED) {
        report_failure(t);
        return;
    }
    if (f & ZEV__TCP_FAILED) return;
    if (zev__tcp_phase(t) == ZEV__TCP_CONNECTING) revents = on_connecting(t, revents);
    if (revents && zev__tcp_phase(t) == ZEV__TCP_CONNECTED) on_connected(t, revents);
}

/* The socket's timer node fired: timeout.c says which timeout it was. */
static void on_timer(zev_loop_t *loop, struct zev__timer_node *n) {
    (void)loop;
    zev_tcp_t *t = zev__container_of(n, struct zev__tcp_extra, node)->socket;
    switch (zev__tcp_timeout_expired(t)) {
    case ZEV__TCP_TIMEOUT_CONNECT:
        zev__tcp_connect_finish(t, -ETIMEDOUT);
        break;
    case ZEV__TCP_TIMEOUT_IDLE:
        /* Fires once per idle period: the next activity re-arms it (zev__tcp_touch). */
        if (t->events && t->events->timeout) t->events->timeout(t);
        break;
    case ZEV__TCP_TIMEOUT_NONE:
        break;
    }
}
