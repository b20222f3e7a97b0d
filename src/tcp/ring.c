/* src/tcp/ring.c: a stream socket in completion mode, on the io_uring backend.
 *
 * On epoll a connected socket waits to be told "readable" and then calls read(). Here it keeps
 * one receive in flight: the kernel completes it when bytes arrive, into a chunk it took from
 * the loop's buffer ring, and the result is the data event's slice, with no syscall of zev's
 * own. Writes are sends submitted from the write queue's head, one in flight per socket so
 * bytes keep their order; the result moves the queue forward exactly as a sendmsg's return
 * does on epoll (write.c). All of an iteration's submissions go in with the loop's one
 * io_uring_enter.
 *
 * Everything else is the readiness code's: the phases, the write queue and its callbacks,
 * failure reporting from the loop (the watcher is still fed, just never registered), pipes,
 * timeouts. Two facts are new:
 *  - pausing does not stop the receive in flight; a result that comes while paused is kept
 *    (parked, in the backend) and delivered when reading resumes;
 *  - closing (or failing, before the queued writes are cancelled) ends every operation
 *    synchronously: the kernel must be done with the socket's buffers before their owners get
 *    them back, and no result may name the socket after its close callback.
 * The receive is one-shot, armed again after each result: see docs/internals.md, "The
 * completion loop", for why not multishot.
 */
#include "epoll_events.h"
#include "ring.h"
#include "tcp_internal.h"

#include <errno.h>

int zev__tcp_attach_connected(zev_tcp_t *t, int fd) {
    if (!zev__loop_completes(t->handle.loop)) return zev__tcp_attach(t, fd);
    t->io.fd = fd;
    t->handle.flags |= ZEV__TCP_RING;
    return 0;
}

#ifdef ZEV_HAVE_IO_URING

void zev__tcp_ring_begin(zev_tcp_t *t) {
    if (!zev__loop_completes(t->handle.loop)) return;
    zev__watcher_stop(t->handle.loop, &t->io); /* its readiness is no longer wanted */
    t->handle.flags |= ZEV__TCP_RING;
    zev__tcp_ring_read_start(t);
}

static bool receiving_wanted(const zev_tcp_t *t) {
    unsigned f = t->handle.flags;
    return (f & ZEV__TCP_READING) && !(f & (ZEV__TCP_RING_RECV | ZEV__TCP_RING_PARKED)) &&
           !(f & (ZEV__TCP_EOF | ZEV__TCP_FAILED)) && !zev__tcp_closing(t) &&
           zev__tcp_phase(t) == ZEV__TCP_CONNECTED;
}

/* Pool mode: a receive into the buffer ring. User memory: a readiness report, and the read
 * runs at delivery, into whatever buffer is set then (the kernel never holds user memory
 * that a later zev_tcp_set_read_buffer may take back). */
static void arm_recv(zev_tcp_t *t) {
    if (!receiving_wanted(t)) return;
    zev_loop_t *loop = t->handle.loop;
    size_t len = 0;
    int err;
    if (zev__tcp_user_buf(t, &len)) {
        err = zev__ring_poll_in(loop, &t->io);
    } else {
        err = zev__ring_recv(loop, &t->io);
    }
    if (err < 0) {
        zev__tcp_fail(t, err);
        return;
    }
    t->handle.flags |= ZEV__TCP_RING_RECV;
}

/* The fault seam sees a receive's result as the read it stands for, at the moment a read
 * would have run on a readiness backend, and may fail it: the bytes are dropped with the
 * socket, which fails. (A shortened read has no meaning here: the bytes are out of the
 * socket already, and are delivered whole.) Returns the result to act on. */
static int seen_as_read(const struct zev__ready *e) {
    if (e->res < 0) return e->res; /* -ENOBUFS included: the ring's own shortage */
    size_t ignored = 0;
    int hit = zev__fault_hit(ZEV_SYS_READ, &ignored);
    return hit < 0 && hit != -EINTR && hit != -EAGAIN ? hit : e->res;
}

/* A receive result for a socket that reads: the data event, the EOF, or the failure. */
static void on_received(zev_tcp_t *t, const struct zev__ready *e) {
    zev_loop_t *loop = t->handle.loop;
    int res = seen_as_read(e);
    if (e->res == -ENOBUFS) { /* the ring ran dry: lend it more and ask again */
        (void)zev__ring_bufs_grow(loop, ZEV__BUFS_STREAM);
    } else if (res < 0) {
        zev__ring_chunk_done(loop, e);
        zev__tcp_fail(t, res);
        return;
    } else if (res == 0) {
        zev__tcp_on_eof(t);
        return;
    } else {
        zev_buf_t *chunk = zev__ring_chunk(loop, e);
        zev_slice_t slice = {chunk->base + e->off, (size_t)res, chunk};
        zev__tcp_deliver(t, &slice);
        zev__ring_chunk_done(loop, e);
        /* One receive is one turn; spending it ends the phase when its slice is over, and
         * the batch's other results then wait for the next wait (poll.c). */
        size_t turn = ZEV__BUDGET_QUANTUM;
        (void)zev__budget_spend(loop, &turn, (size_t)res);
    }
    arm_recv(t);
}

/* Keep a result for the resume (reading is paused); without memory to keep it, its chunk
 * goes back and the socket fails. */
static void park(zev_tcp_t *t, const struct zev__ready *e) {
    zev_loop_t *loop = t->handle.loop;
    if (zev__ring_park(loop, e) < 0) {
        zev__ring_chunk_done(loop, e);
        zev__tcp_fail(t, -ENOMEM);
        return;
    }
    t->handle.flags |= ZEV__TCP_RING_PARKED;
}

static void on_recv_result(zev_tcp_t *t, const struct zev__ready *e) {
    zev_loop_t *loop = t->handle.loop;
    t->handle.flags &= ~ZEV__TCP_RING_RECV;
    unsigned f = t->handle.flags;
    if (zev__tcp_closing(t) || (f & ZEV__TCP_FAILED) || e->res == -ECANCELED) {
        zev__ring_chunk_done(loop, e); /* nobody will read it: the chunk goes back */
        return;
    }
    if (zev__ring_is_readiness(e)) {
        /* The readiness path reads into the user's buffer (or notes a paused socket's
         * missed edge), then a new report is asked for unless it yielded. */
        zev__tcp_on_readable(t, zev__epoll_revents((uint32_t)e->res));
        if (!zev__tcp_closing(t)) arm_recv(t);
        return;
    }
    if (!(f & ZEV__TCP_READING)) {
        park(t, e); /* paused since this receive was asked for */
        return;
    }
    on_received(t, e);
}

/* Where bytes land changed (zev_tcp_set_read_buffer, a pipe's start or end). A receive in
 * flight into the pool while the socket now reads into user memory is stopped; bytes it had
 * already received are delivered first, from the pool, as they were read before the switch. */
void zev__tcp_ring_read_mode(zev_tcp_t *t, bool was_pool) {
    size_t len = 0;
    unsigned f = t->handle.flags;
    if (!(f & ZEV__TCP_RING_RECV) || !was_pool || !zev__tcp_user_buf(t, &len)) return;
    bool kept = false;
    int err = zev__ring_cancel(t->handle.loop, &t->io, ZEV__OP_RECV, &kept);
    if (kept) t->handle.flags |= ZEV__TCP_RING_PARKED;
    /* Not stopped: the receive stays the socket's one operation, and its result comes as a
     * pool slice before any read into user memory (a readiness report beside it could read
     * bytes that overtake it, and would be a second operation the close does not wait for). */
    if (err < 0) return;
    t->handle.flags &= ~ZEV__TCP_RING_RECV;
    if (f & ZEV__TCP_READING) zev__tcp_ring_read_start(t); /* what was kept, or a new ask */
}

void zev__tcp_ring_read_start(zev_tcp_t *t) {
    if (!(t->handle.flags & ZEV__TCP_RING)) return;
    if (t->handle.flags & ZEV__TCP_RING_PARKED) {
        /* Delivered from the loop, never inside zev_tcp_read_start (stream.c routes it). */
        zev__watcher_feed(t->handle.loop, &t->io, ZEV__READABLE);
        return;
    }
    arm_recv(t);
}

/* The fed READABLE of a resumed socket: what was kept, then a fresh receive. */
void zev__tcp_ring_resume(zev_tcp_t *t) {
    struct zev__ready e;
    if ((t->handle.flags & ZEV__TCP_RING_PARKED) &&
        zev__ring_unpark(t->handle.loop, &t->io, &e)) {
        t->handle.flags &= ~ZEV__TCP_RING_PARKED;
        if (t->handle.flags & ZEV__TCP_READING) {
            on_received(t, &e);
        } else {
            park(t, &e); /* paused again meanwhile */
        }
        return;
    }
    arm_recv(t);
}

void zev__tcp_ring_complete(zev_handle_t *h, const void *result) {
    zev_tcp_t *t = (zev_tcp_t *)h;
    const struct zev__ready *e = result;
    switch (zev__ready_op(e)) {
    case ZEV__OP_RECV:
        on_recv_result(t, e);
        break;
    case ZEV__OP_SEND: /* a send's result, or a zero-copy send's notification (write.c) */
        if (e->flags & IORING_CQE_F_NOTIF) {
            zev__tcp_ring_zc_notified(t);
        } else {
            zev__tcp_ring_sent(t, e->res, zev__ready_more(e));
        }
        break;
    case ZEV__OP_POLLOUT: /* room for a file region's sendfile */
        t->handle.flags &= ~ZEV__TCP_RING_SEND;
        if (!zev__tcp_closing(t) && !(t->handle.flags & ZEV__TCP_FAILED)) zev__tcp_flush(t);
        break;
    case ZEV__OP_ACCEPT: /* listeners only (listen.c) */
    default:
        break;
    }
}

void zev__tcp_ring_forget(zev_tcp_t *t) {
    unsigned f = t->handle.flags;
    if (!(f & ZEV__TCP_RING)) return;
    unsigned sends = zev__tcp_ring_sends_in_flight(t);
    if (sends == 0 && (f & ZEV__TCP_RING_SEND)) sends = 1; /* a wait for room */
    unsigned in_flight = ((f & ZEV__TCP_RING_RECV) ? 1 : 0) + sends;
    zev__ring_forget(t->handle.loop, &t->io, in_flight);
    t->handle.flags &= ~(ZEV__TCP_RING_RECV | ZEV__TCP_RING_SEND | ZEV__TCP_RING_PARKED);
}

#else /* no io_uring in this build: no socket is ever in completion mode */

void zev__tcp_ring_begin(zev_tcp_t *t) {
    (void)t;
}

void zev__tcp_ring_read_start(zev_tcp_t *t) {
    (void)t;
}

void zev__tcp_ring_resume(zev_tcp_t *t) {
    (void)t;
}

void zev__tcp_ring_complete(zev_handle_t *h, const void *result) {
    (void)h, (void)result;
}

void zev__tcp_ring_forget(zev_tcp_t *t) {
    (void)t;
}

void zev__tcp_ring_read_mode(zev_tcp_t *t, bool was_pool) {
    (void)t, (void)was_pool;
}

#endif
