/* src/udp/ring.c: a datagram socket in completion mode, on the io_uring backend.
 *
 * How this differs from recv.c and send.c. On epoll the socket is told "readable" and then
 * calls recvmmsg into slots it carved from pool chunks, and sends go out with sendmsg or
 * sendmmsg when the socket is writable. Here nothing waits for readiness:
 *
 *  - Receiving is ONE multishot IORING_OP_RECVMSG that stays armed: the kernel takes a chunk
 *    from the loop's buffer ring (uring_ops.c) for each datagram and posts a result naming it.
 *    The chunk then holds a struct io_uring_recvmsg_out (the datagram's real size and flags),
 *    the sender's address, and the payload: the message callback's slice points at that
 *    payload, owned by the chunk, as on epoll (no copy). One chunk per datagram, whatever its
 *    size: the price of letting the kernel pick buffers. A result without IORING_CQE_F_MORE
 *    ends the multishot (the ring ran dry: -ENOBUFS, an error, a cancellation), and it is
 *    armed again while the socket receives.
 *  - The header and the address share the chunk with the payload, so a datagram has room for
 *    chunk size - 16 - the address bytes (8 for IPv4: family, port, address, which is all a
 *    sockaddr_in says; 28 for IPv6). A socket whose max datagram does not fit that room (the
 *    default on IPv6 with 64 KiB chunks: 65527 + 44 > 65536) receives by readiness instead
 *    (recv.c, the poll form of the same ring), since a datagram cut by the ring where epoll
 *    would have delivered it whole would change what the user sees.
 *  - Queued sends go out as IORING_OP_SENDMSG SQEs, submitted with the loop's one
 *    io_uring_enter. They are linked (IOSQE_IO_LINK) into one chain of up to 128
 *    datagrams, the ring's sendmmsg: the kernel starts each only after the previous ended,
 *    so datagrams leave in queue order, and results come back in that order. One chain is in
 *    flight at a time. A failed send cancels the rest of its chain (-ECANCELED): those were
 *    never sent and stay queued for the next chain, so one datagram's error is its own, as
 *    on epoll. A send with nothing queued still goes straight to sendmsg (send.c): the same
 *    status at the same time as on epoll; replies made inside message callbacks queue (the
 *    socket is corked) and leave as one chain.
 *
 * The same promises as on epoll: a recv_stop inside a message callback lets the results
 * already read in that dispatch be delivered (they left the kernel), and keeps later ones
 * (parked) for the next recv_start; no message callback runs after recv_stop otherwise.
 * Closing ends every operation synchronously (zev__ring_forget), so no result names the socket
 * after its close callback and every chunk is back; sends the kernel finished keep their
 * status, the rest get -ECANCELED.
 */
#include "ring.h"
#include "udp_internal.h"

#include <errno.h>
#include <netinet/in.h>

#ifdef ZEV_HAVE_IO_URING

#include <linux/io_uring.h> /* struct io_uring_recvmsg_out, IORING_CQE_F_MORE */

/* The longest chain of sends, and the iovecs it gathers. Longer than sendmmsg's batch: one
 * chain is in flight at a time (two chains could overtake each other), so a chain is what one
 * io_uring_enter sends for the socket, where epoll flushes batch after batch until EAGAIN.
 * 128 leaves half of the SQ (256) to the rest of the loop. */
enum { ZEV__UDP_RING_CHAIN = 128, ZEV__UDP_RING_IOV = 512 };

/* The socket's ring state, one allocation per socket in completion mode (about 15 KiB). The
 * message headers are read by the kernel when the SQEs are submitted, at the next enter, so
 * they live here rather than on a stack. */
struct zev__udp_ring {
    struct msghdr rx;   /* the multishot receive's layout: the name area, no control data */
    uint64_t stop_iter; /* the iteration of a recv_stop made inside a message callback */
    unsigned tx_n;      /* sends of the chain in flight */
    bool tx_broken;     /* one of them failed: the rest of the chain come back cancelled */
    struct msghdr tx[ZEV__UDP_RING_CHAIN];
    struct iovec iov[ZEV__UDP_RING_IOV];
};

bool zev__udp_ring_wanted(const zev_loop_t *loop) {
    return zev__loop_completes(loop);
}

static struct zev__udp_ring *ring_state(zev_udp_t *u) {
    if (u->ring) return u->ring;
    struct zev__udp_ring *rs = zev__alloc(u->handle.loop, sizeof(*rs));
    if (!rs) return NULL;
    *rs = (struct zev__udp_ring){0};
    u->ring = rs;
    return rs;
}

/* ---- receiving ---- */

/* Bytes of the sender's address kept in a chunk. IPv4: a sockaddr_in up to sin_zero (the
 * kernel cuts the name to this and reports its real length), which lets a largest IPv4
 * datagram (65507) fit a 64 KiB chunk with the 16-byte header. */
static size_t name_room(const zev_udp_t *u) {
    return u->family == AF_INET ? offsetof(struct sockaddr_in, sin_zero)
                                : sizeof(struct sockaddr_in6);
}

static size_t head_room(const zev_udp_t *u) {
    return sizeof(struct io_uring_recvmsg_out) + name_room(u);
}

/* Whether a datagram of the socket's max size fits a chunk behind the header and name. */
static bool fits(const zev_udp_t *u) {
    size_t chunk = u->handle.loop->pool.stats.chunk_size;
    return chunk >= head_room(u) && chunk - head_room(u) >= u->max_datagram;
}

static bool may_arm(const zev_udp_t *u) {
    unsigned f = u->handle.flags;
    return (f & ZEV__UDP_RECVING) &&
           !(f & (ZEV__UDP_RING_RECV | ZEV__UDP_RING_PARKED | ZEV__UDP_RING_POLLRX)) &&
           !zev__udp_closing(u);
}

/* Stop receiving after a failure that retrying would only repeat (as recv.c does when the
 * pool is exhausted): reported once, recv_start tries again. */
static void give_up(zev_udp_t *u, int err) {
    u->handle.flags &= ~ZEV__UDP_RECVING;
    zev__udp_update_active(u);
    zev__udp_report_error(u, err);
}

/* Arm the multishot receive if the socket receives and none is in flight. poll_first after
 * an error the call did not hand over: the next try waits for an arrival, so an error that
 * persists costs one result per arrival instead of a spin (recv.c's policy). */
static void arm(zev_udp_t *u, bool poll_first) {
    if (!may_arm(u) || !fits(u)) return;
    struct zev__udp_ring *rs = ring_state(u);
    if (!rs) {
        give_up(u, -ENOMEM);
        return;
    }
    rs->rx = (struct msghdr){.msg_namelen = (socklen_t)name_room(u)};
    int err = zev__ring_recvmsg_multishot(u->handle.loop, &u->io, &rs->rx, poll_first);
    if (err < 0) {
        give_up(u, err);
        return;
    }
    u->handle.flags |= ZEV__UDP_RING_RECV;
}

/* The sender, from the chunk's name area (at offset 16: aligned for a sockaddr). */
static void sender_of(const zev_udp_t *u, const char *name, zev_sockaddr_t *from) {
    *from = (zev_sockaddr_t){0};
    if (u->family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)name;
        from->in4.sin_family = AF_INET;
        from->in4.sin_port = in->sin_port;
        from->in4.sin_addr = in->sin_addr;
    } else {
        from->in6 = *(const struct sockaddr_in6 *)(const void *)name;
    }
}

/* A datagram cut at the chunk's room although the socket now allows more (its max datagram
 * grew while the multishot ran): end the multishot, so the next arming falls back to
 * readiness. The cut one is reported as truncated, with its real size, never as whole. */
static void outgrown(zev_udp_t *u) {
    unsigned f = u->handle.flags;
    if (!(f & ZEV__UDP_RING_RECV) || (f & ZEV__UDP_RING_CANCEL)) return;
    if (zev__ring_cancel_async(u->handle.loop, &u->io, ZEV__OP_RECV) == 0) {
        u->handle.flags |= ZEV__UDP_RING_CANCEL;
    }
}

/* One datagram to the message callback, its slice in the chunk. Replies the callback sends
 * queue (corked) and leave together from the pending phase, as one chain. Fairness: the
 * multishot cannot be told to wait (the kernel has already received the datagram), so each
 * one is charged to the phase's budget, as recv.c charges a batch; what that budget then
 * defers are the readiness owners of the same phase. A dispatch reads at most the backend's
 * max_events results, which bounds the work one socket does per iteration. */
static void deliver(zev_udp_t *u, const struct zev__ready *e) {
    zev_loop_t *loop = u->handle.loop;
    zev_buf_t *c = zev__ring_chunk(loop, e);
    if (!c) return;
    const struct io_uring_recvmsg_out *o = (const struct io_uring_recvmsg_out *)(void *)c->base;
    size_t room = c->size - head_room(u);
    size_t size = o->payloadlen;
    size_t len = size < room ? size : room;
    if (len > u->max_datagram) len = u->max_datagram;
    bool cut = (o->flags & MSG_TRUNC) || size > len;
    if (size > room && room < u->max_datagram) outgrown(u);
    zev_sockaddr_t from;
    sender_of(u, c->base + sizeof(*o), &from);
    zev_slice_t s = {c->base + head_room(u), len, c};
    zev_udp_rinfo_t ri;
    zev__udp_fill_rinfo(&from, size, &ri);
    u->stats.datagrams_received++;
    u->stats.bytes_received += len;
    if (cut) u->stats.truncated++;
    size_t turn = ZEV__BUDGET_QUANTUM;
    (void)zev__budget_spend(loop, &turn, len);
    bool was_corked = (u->handle.flags & ZEV__UDP_CORKED) != 0;
    u->handle.flags |= ZEV__UDP_CORKED;
    u->on_message(u, cut ? -EMSGSIZE : 0, &s, &ri);
    if (!was_corked) u->handle.flags &= ~ZEV__UDP_CORKED;
    if (zev__udp_closing(u)) return;
    bool idle = !u->ring || u->ring->tx_n == 0;
    if (u->q_unsent && idle) zev__watcher_feed(loop, &u->io, ZEV__WRITABLE);
}

/* A receive result the socket takes now: a datagram, or the end of the multishot. */
static void use_result(zev_udp_t *u, const struct zev__ready *e) {
    zev_loop_t *loop = u->handle.loop;
    bool ended = !(e->flags & IORING_CQE_F_MORE);
    bool poll_first = false;
    if (e->res >= 0) {
        deliver(u, e);
        zev__ring_chunk_done(loop, e); /* back to the ring, or replaced if the user kept it */
        if (zev__udp_closing(u)) return;
    } else if (e->res == -ENOBUFS) {
        /* The ring ran dry: lend it more chunks, then re-arm. */
        if (zev__ring_bufs_grow(loop, ZEV__BUFS_DGRAM) == 0) { /* the pool cannot grow */
            give_up(u, -ENOMEM);
            return;
        }
    } else if (e->res != -ECANCELED) {
        zev__ring_chunk_done(loop, e);
        zev__udp_report_error(u, e->res);
        if (zev__udp_closing(u)) return;
        poll_first = !zev__udp_error_handed_over(e->res);
    }
    if (ended) arm(u, poll_first);
}

/* Whether a result may reach the message callback now: the socket receives and nothing is
 * parked before it, or it was stopped inside a message callback of this same iteration (the
 * results of that dispatch are delivered, as recv.c delivers the rest of its batch). */
static bool may_deliver(const zev_udp_t *u) {
    unsigned f = u->handle.flags;
    if (f & ZEV__UDP_RING_PARKED) return false;
    if (f & ZEV__UDP_RECVING) return true;
    return (f & ZEV__UDP_RING_DRAIN) && u->ring &&
           u->ring->stop_iter == u->handle.loop->metrics.iterations;
}

static void on_recv_result(zev_udp_t *u, const struct zev__ready *e) {
    zev_loop_t *loop = u->handle.loop;
    if (!(e->flags & IORING_CQE_F_MORE)) {
        u->handle.flags &= ~(ZEV__UDP_RING_RECV | ZEV__UDP_RING_CANCEL);
    }
    if (zev__udp_closing(u)) {
        zev__ring_chunk_done(loop, e); /* nobody will read it: the chunk goes back */
        return;
    }
    bool worth_keeping = e->res >= 0 || (e->res != -ECANCELED && e->res != -ENOBUFS);
    if (!may_deliver(u) && worth_keeping) {
        if (zev__ring_park(loop, e) < 0) { /* only under a failing allocator */
            zev__ring_chunk_done(loop, e);
            return;
        }
        u->handle.flags |= ZEV__UDP_RING_PARKED;
        return;
    }
    if (!may_deliver(u)) {
        if (e->res == -ENOBUFS) (void)zev__ring_bufs_grow(loop, ZEV__BUFS_DGRAM);
        return; /* an ended multishot is armed again by the next recv_start */
    }
    use_result(u, e);
}

/* The fed READABLE of a receiving socket: what was parked, in order, then the multishot. */
static void resume(zev_udp_t *u) {
    u->handle.flags &= ~ZEV__UDP_RING_DRAIN;
    struct zev__ready e;
    while ((u->handle.flags & ZEV__UDP_RING_PARKED) && (u->handle.flags & ZEV__UDP_RECVING)) {
        if (!zev__ring_unpark(u->handle.loop, &u->io, &e)) {
            u->handle.flags &= ~ZEV__UDP_RING_PARKED;
            break;
        }
        use_result(u, &e);
        if (zev__udp_closing(u)) return;
    }
    arm(u, false);
}

/* Receive by readiness from now on: a datagram of the socket's max size would not fit a
 * chunk behind the header (see the top of this file). */
static bool fall_back(zev_udp_t *u) {
    int err = zev__watcher_start(u->handle.loop, &u->io, ZEV__READABLE);
    if (err < 0) {
        give_up(u, err);
        return true;
    }
    u->handle.flags |= ZEV__UDP_RING_POLLRX;
    return false;
}

bool zev__udp_ring_receive(zev_udp_t *u) {
    unsigned f = u->handle.flags;
    if (!(f & ZEV__UDP_RING) || (f & ZEV__UDP_RING_POLLRX)) return false;
    /* Results still parked or a multishot still running are the ring's to finish first. */
    if (!fits(u) && !(f & (ZEV__UDP_RING_RECV | ZEV__UDP_RING_PARKED))) return fall_back(u);
    resume(u);
    return true;
}

void zev__udp_ring_recv_stop(zev_udp_t *u) {
    unsigned f = u->handle.flags;
    if (!(f & ZEV__UDP_RING) || (f & ZEV__UDP_RING_POLLRX)) return;
    if ((f & ZEV__UDP_CORKED) && u->ring) { /* inside a message callback */
        u->handle.flags |= ZEV__UDP_RING_DRAIN;
        u->ring->stop_iter = u->handle.loop->metrics.iterations;
    }
    if ((f & ZEV__UDP_RING_RECV) && !(f & ZEV__UDP_RING_CANCEL)) {
        /* Results already on their way are parked when they come (on_recv_result). */
        if (zev__ring_cancel_async(u->handle.loop, &u->io, ZEV__OP_RECV) == 0) {
            u->handle.flags |= ZEV__UDP_RING_CANCEL;
        }
    }
}

/* ---- sending ---- */

/* Write one chain of SQEs for the first unsent datagrams. */
static void submit_chain(zev_udp_t *u) {
    struct zev__udp_ring *rs = ring_state(u);
    if (!rs) {
        zev__udp_sent(u, -ENOMEM); /* that datagram fails; the next flush tries the others */
        zev__watcher_feed(u->handle.loop, &u->io, ZEV__WRITABLE);
        return;
    }
    unsigned n = 0;
    unsigned n_iov = 0;
    for (struct zev__udp_req *r = u->q_unsent; r && n < ZEV__UDP_RING_CHAIN; r = r->next) {
        if (n_iov + r->n_slices > ZEV__UDP_RING_IOV) break; /* never the first: 64 < 512 */
        n_iov += zev__udp_req_msg(r, &rs->tx[n], rs->iov + n_iov);
        n++;
    }
    /* A chain goes in with one enter: room for all of it, submitting what waits if need be
     * (zev__uring_sqe would otherwise submit a full SQ and split the chain there). Without
     * room, the next iteration tries again. */
    if (zev__ring_reserve(u->handle.loop, n) < 0) {
        zev__watcher_feed(u->handle.loop, &u->io, ZEV__WRITABLE);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        (void)zev__ring_sendmsg(u->handle.loop, &u->io, &rs->tx[i], i + 1 < n); /* reserved */
    }
    rs->tx_n = n;
    rs->tx_broken = false;
}

bool zev__udp_ring_flush(zev_udp_t *u) {
    if (!(u->handle.flags & ZEV__UDP_RING)) return false;
    if (!zev__udp_run_done(u)) return true;
    bool idle = !u->ring || u->ring->tx_n == 0;
    if (u->q_unsent && idle) submit_chain(u);
    zev__udp_after_sends(u);
    return true;
}

/* A send's result, in chain order: it finishes the first unsent datagram, unless it is the
 * cancellation a failed link before it caused (that datagram was never sent: it waits for
 * the next chain). The callbacks run once the whole chain is back, as they run after a
 * whole sendmmsg on epoll: a callback that sends again then finds nothing in flight, and its
 * datagram goes straight out, as there. While closing the status is only recorded:
 * zev_close's finish reports it (sends the kernel finished keep their result, the rest get
 * -ECANCELED). */
static void on_send_result(zev_udp_t *u, const struct zev__ready *e) {
    struct zev__udp_ring *rs = u->ring;
    rs->tx_n--;
    bool never_sent = rs->tx_broken && e->res == -ECANCELED && !zev__udp_closing(u);
    if (!never_sent) {
        if (e->res < 0) rs->tx_broken = true;
        zev__udp_sent(u, e->res);
    }
    if (rs->tx_n == 0 && !zev__udp_closing(u)) (void)zev__udp_ring_flush(u);
}

/* ---- results and close ---- */

void zev__udp_ring_complete(zev_handle_t *h, const void *result) {
    zev_udp_t *u = (zev_udp_t *)h;
    const struct zev__ready *e = result;
    if (zev__ready_op(e) == ZEV__OP_RECV) {
        on_recv_result(u, e);
    } else if (zev__ready_op(e) == ZEV__OP_SEND && u->ring && u->ring->tx_n > 0) {
        on_send_result(u, e);
    }
}

void zev__udp_ring_close(zev_udp_t *u) {
    unsigned f = u->handle.flags;
    if (!(f & ZEV__UDP_RING)) return;
    unsigned in_flight = (f & ZEV__UDP_RING_RECV) ? 1 : 0;
    if (u->ring) in_flight += u->ring->tx_n;
    /* Also hands the parked results back (their chunks return to the ring). */
    zev__ring_forget(u->handle.loop, &u->io, in_flight);
    u->handle.flags &=
        ~(ZEV__UDP_RING_RECV | ZEV__UDP_RING_CANCEL | ZEV__UDP_RING_PARKED | ZEV__UDP_RING_DRAIN);
    if (u->ring) zev__free(u->handle.loop, u->ring, sizeof(*u->ring));
    u->ring = NULL;
}

#else /* no io_uring in this build: no socket is ever in completion mode */

bool zev__udp_ring_wanted(const zev_loop_t *loop) {
    (void)loop;
    return false;
}

bool zev__udp_ring_receive(zev_udp_t *u) {
    (void)u;
    return false;
}

void zev__udp_ring_recv_stop(zev_udp_t *u) {
    (void)u;
}

bool zev__udp_ring_flush(zev_udp_t *u) {
    (void)u;
    return false;
}

void zev__udp_ring_close(zev_udp_t *u) {
    (void)u;
}

void zev__udp_ring_complete(zev_handle_t *h, const void *result) {
    (void)h, (void)result;
}

#endif
