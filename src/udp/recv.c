/* src/udp/recv.c: receiving datagrams in batches, straight into the loop's buffer pool.
 *
 * A batch is u->batch slots of u->max_datagram bytes carved, in order, from pool chunks taken
 * for the batch (as many datagrams as fit per chunk; one per chunk at the default 64 KiB). One
 * recvmmsg fills as many slots as datagrams are waiting; each is handed to the message
 * callback as a slice owned by its chunk, then the batch drops its chunk references: a chunk
 * nobody kept goes back to the pool's free list (a pointer swap, no allocation) and is reused
 * by the next batch, while a chunk the user took a reference on lives until they drop it. With
 * a batch of one, or where recvmmsg is missing, plain recvmsg does the same job.
 *
 * Truncation: a datagram longer than its slot is cut by the kernel (MSG_TRUNC); it is delivered
 * with -EMSGSIZE and its real size, never as if whole.
 *
 * Corking: while a batch is delivered, sends from the message callbacks are queued and then
 * flushed together, so an echo server answers a batch of N datagrams with one sendmmsg.
 *
 * Fairness: each receive call spends the loop's budget (the batch's bytes plus a fixed cost,
 * reactor_internal.h); once the socket's turn is over it yields to the pending queue so other
 * sockets get their turn (the edge will not come again).
 *
 * Errors: reported once; only an error the call hands over (an ICMP report) lets the pass read
 * on. Any other ends the pass without feeding it, so a persistent error cannot spin the loop:
 * see read_on_after.
 */
#include "udp_internal.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>

struct rx_batch {
    unsigned n_chunks;
    zev_buf_t *chunks[ZEV_UDP_BATCH_MAX]; /* the batch holds one reference on each */
    zev_buf_t *owner[ZEV_UDP_BATCH_MAX];  /* the chunk of slot i */
    struct iovec iov[ZEV_UDP_BATCH_MAX];
    zev_sockaddr_t from[ZEV_UDP_BATCH_MAX];
    size_t size[ZEV_UDP_BATCH_MAX]; /* datagram size as the kernel reports it */
    bool cut[ZEV_UDP_BATCH_MAX];    /* MSG_TRUNC */
#if ZEV__UDP_HAVE_MMSG
    struct mmsghdr msgs[ZEV_UDP_BATCH_MAX];
#endif
};

int zev_udp_recv_start(zev_udp_t *u, zev_udp_message_cb cb) {
    if (!u || !cb) return -EINVAL;
    if (!zev__handle_usable(&u->handle)) return zev__handle_error(&u->handle);
    u->on_message = cb;
    if (u->handle.flags & ZEV__UDP_RECVING) return 0;
    u->handle.flags |= ZEV__UDP_RECVING;
    /* Datagrams may have arrived while not receiving; their edge is gone, so look once. */
    zev__watcher_feed(u->handle.loop, &u->io, ZEV__READABLE);
    zev__udp_update_active(u);
    return 0;
}

int zev_udp_recv_stop(zev_udp_t *u) {
    if (!u) return -EINVAL;
    if (!zev__handle_usable(&u->handle)) return zev__handle_error(&u->handle);
    u->handle.flags &= ~ZEV__UDP_RECVING;
    zev__udp_ring_recv_stop(u); /* completion mode: the multishot receive is cancelled */
    zev__udp_update_active(u);
    return 0;
}

/* Slots of u->max_datagram bytes that fit in one chunk. Each slot starts 16-byte aligned, so
 * every slot but the last also needs its padding: the last one may end anywhere up to the
 * chunk's end (its size need not be a multiple of 16), the others take a whole stride. */
static size_t slots_per_chunk(size_t chunk, size_t slot, size_t stride) {
    assert(slot <= chunk); /* zev_udp_set_max_datagram and the default keep it so */
    return (chunk - slot) / stride + 1;
}

/* Carve up to want slots; returns how many (0: the pool is exhausted). */
static unsigned take_slots(zev_udp_t *u, struct rx_batch *b, unsigned want) {
    size_t slot = u->max_datagram;
    size_t stride = (slot + 15u) & ~(size_t)15u;
    zev_buf_t *c = NULL;
    size_t left = 0; /* slots still free in c */
    size_t off = 0;
    unsigned n = 0;
    b->n_chunks = 0;
    for (; n < want; n++) {
        if (left == 0) {
            c = zev_buf_get(u->handle.loop);
            if (!c) break;
            b->chunks[b->n_chunks++] = c;
            left = slots_per_chunk(c->size, slot, stride);
            off = 0;
        }
        b->owner[n] = c;
        b->iov[n].iov_base = c->base + off;
        b->iov[n].iov_len = slot;
        off += stride;
        left--;
    }
    return n;
}

static void release_slots(struct rx_batch *b) {
    for (unsigned i = 0; i < b->n_chunks; i++) {
        zev_buf_unref(b->chunks[i]);
    }
    b->n_chunks = 0;
}

/* One recvmsg into slot 0. Returns 1, or -errno. */
static int read_one(zev_udp_t *u, struct rx_batch *b) {
    struct msghdr m = {.msg_name = &b->from[0],
                       .msg_namelen = sizeof(b->from[0]),
                       .msg_iov = &b->iov[0],
                       .msg_iovlen = 1};
    ssize_t r = zev__sys_recvmsg(u->io.fd, &m, ZEV__UDP_RECV_FLAGS);
    if (r < 0) return (int)r;
    b->size[0] = (size_t)r;
    b->cut[0] = (m.msg_flags & MSG_TRUNC) != 0;
    return 1;
}

#if ZEV__UDP_HAVE_MMSG
/* One recvmmsg into n slots. Returns the number of datagrams, or -errno. */
static int read_many(zev_udp_t *u, struct rx_batch *b, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        b->msgs[i].msg_hdr = (struct msghdr){.msg_name = &b->from[i],
                                             .msg_namelen = sizeof(b->from[i]),
                                             .msg_iov = &b->iov[i],
                                             .msg_iovlen = 1};
        b->msgs[i].msg_len = 0;
    }
    int r = zev__sys_recvmmsg(u->io.fd, b->msgs, n, ZEV__UDP_RECV_FLAGS);
    for (int i = 0; i < r; i++) {
        b->size[i] = b->msgs[i].msg_len;
        b->cut[i] = (b->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    }
    return r;
}
#endif

static int read_batch(zev_udp_t *u, struct rx_batch *b, unsigned n) {
    u->stats.recv_calls++;
#if ZEV__UDP_HAVE_MMSG
    if (n > 1) return read_many(u, b, n);
#endif
    return read_one(u, b);
}

void zev__udp_fill_rinfo(const zev_sockaddr_t *from, size_t size, zev_udp_rinfo_t *ri) {
    ri->addr = from;
    ri->size = size;
    ri->family = from->sa.sa_family == AF_INET ? 4 : 6;
    ri->port = zev__addr_port(from);
}

/* Hand n datagrams to the message callback. Returns false if a callback closed the socket (the
 * rest of the batch is dropped with it). A recv_stop from a callback does not cut the batch
 * short: those datagrams have left the kernel and would otherwise be lost. */
static bool deliver(zev_udp_t *u, const struct rx_batch *b, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        size_t slot = b->iov[i].iov_len;
        bool cut = b->cut[i] || b->size[i] > slot;
        zev_slice_t s = {b->iov[i].iov_base, b->size[i] > slot ? slot : b->size[i], b->owner[i]};
        zev_udp_rinfo_t ri;
        zev__udp_fill_rinfo(&b->from[i], b->size[i], &ri);
        u->stats.datagrams_received++;
        u->stats.bytes_received += s.len;
        if (cut) u->stats.truncated++;
        u->on_message(u, cut ? -EMSGSIZE : 0, &s, &ri);
        if (zev__udp_closing(u)) return false;
    }
    return true;
}

void zev__udp_report_error(zev_udp_t *u, int err) {
    u->stats.recv_errors++;
    u->on_message(u, err, NULL, NULL);
}

/* Errors that one receive call hands over and clears: a connected socket's pending ICMP report
 * (so_error). Datagrams may be waiting behind one. */
bool zev__udp_error_handed_over(int err) {
    switch (err) {
    case -ECONNREFUSED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EHOSTDOWN:
    case -ENETDOWN:
    case -ENOPROTOOPT:
    case -EMSGSIZE:
    case -EOPNOTSUPP:
    case -EPROTO:
        return true;
    default:
        return false;
    }
}

/* The receive error policy (docs/udp.md): report an error, then read on only after the first
 * error of a pass and only if the call handed it over. Anything else ends the pass, which does
 * not feed itself: the socket waits for its next readable event, so an error that persists
 * costs one call per event instead of a spinning loop. The same error twice in a pass did not
 * go away and is reported once. *seen: the pass's previous error, 0 if none. */
static bool read_on_after(zev_udp_t *u, int err, int *seen) {
    bool first = *seen == 0;
    if (err != *seen) zev__udp_report_error(u, err);
    *seen = err;
    return first && zev__udp_error_handed_over(err);
}

/* Bytes of the n datagrams of a batch as delivered (a cut one counts its slot). */
static size_t batch_bytes(const struct rx_batch *b, unsigned n) {
    size_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        sum += b->size[i] < b->iov[i].iov_len ? b->size[i] : b->iov[i].iov_len;
    }
    return sum;
}

void zev__udp_on_readable(zev_udp_t *u, unsigned revents) {
    zev_loop_t *loop = u->handle.loop;
    int seen = 0;
    size_t turn = ZEV__BUDGET_QUANTUM;
    while (turn > 0) {
        if (!(u->handle.flags & ZEV__UDP_RECVING) || zev__udp_closing(u)) return;
        struct rx_batch b;
        unsigned want = take_slots(u, &b, u->batch);
        if (want == 0) {
            /* Reading on would spin: stop, and let the user decide when to try again. */
            u->handle.flags &= ~ZEV__UDP_RECVING;
            zev__udp_update_active(u);
            zev__udp_report_error(u, -ENOMEM);
            return;
        }
        int r = read_batch(u, &b, want);
        if (r < 0) {
            release_slots(&b);
            zev__budget_spend(loop, &turn, 0);
            if (r == -EINTR) continue;
            if (r == -EAGAIN || !read_on_after(u, r, &seen)) return;
            continue;
        }
        zev__budget_spend(loop, &turn, batch_bytes(&b, (unsigned)r));
        /* Replies sent from the callbacks queue up (the queue takes its own references) and
         * leave together: a batch of echoes costs one sendmmsg, not one sendmsg each. */
        bool was_corked = (u->handle.flags & ZEV__UDP_CORKED) != 0;
        u->handle.flags |= ZEV__UDP_CORKED;
        bool open = deliver(u, &b, (unsigned)r);
        if (!was_corked) u->handle.flags &= ~ZEV__UDP_CORKED;
        release_slots(&b);
        if (!open) return;
        if (u->q_unsent && !was_corked) zev__udp_flush(u);
        if (zev__udp_closing(u)) return;
        /* Fewer than asked: the queue is empty, and a new arrival raises a new edge. Not after
         * an error event: recvmmsg may have stopped at that error, which is still to read. */
        if ((unsigned)r < want && !(revents & ZEV__ERROR)) return;
    }
    zev__watcher_yield(loop, &u->io, ZEV__READABLE);
}
