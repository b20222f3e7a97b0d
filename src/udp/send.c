/* src/udp/send.c: sending datagrams by reference, and the send queue.
 *
 * With nothing waiting to be sent, a datagram goes straight to one sendmsg (its slices
 * gathered, never copied). If the kernel says EAGAIN, or datagrams are already waiting, it is
 * queued: a slab entry keeps the destination and the slice descriptors (refcounted owners are
 * referenced, raw bytes stay the caller's), and when the socket turns writable the queue is
 * flushed with sendmmsg, up to u->batch datagrams per call. A datagram that fails does not stop
 * the ones behind it: UDP datagrams are independent, so each gets its own status.
 *
 * Callbacks always run from the loop: a datagram sent at once still gets an entry, marked
 * done, and the watcher is fed so the callback runs in the next pending phase. The queue is
 * therefore [done, awaiting callback ...][unsent ...], u->q_unsent pointing at the first
 * unsent entry; docs/udp.md draws it.
 */
#include "udp_internal.h"

#include <errno.h>
#include <stdint.h>

/* Send calls per flush before yielding to other handles (a callback that always sends again
 * must not keep the loop here forever). */

static zev_slice_t *slice_at(struct zev__udp_req *r, unsigned i, struct zev__udp_more **m) {
    if (i < ZEV__UDP_REQ_SLICES) return &r->slice[i];
    unsigned j = (i - ZEV__UDP_REQ_SLICES) % ZEV__UDP_MORE_SLICES;
    if (j == 0) *m = *m ? (*m)->next : r->more;
    return &(*m)->slice[j];
}

static struct zev__udp_req *req_new(zev_udp_t *u) {
    zev_loop_t *loop = u->handle.loop;
    struct zev__udp_req *r = zev__slab_get(loop, &loop->slab_large);
    if (r) *r = (struct zev__udp_req){0};
    return r;
}

/* Drop the slice references and continuation entries; the entry itself stays. */
static void req_release_slices(zev_udp_t *u, struct zev__udp_req *r) {
    struct zev__udp_more *m = NULL;
    for (unsigned i = 0; i < r->n_slices; i++) {
        zev_buf_unref(slice_at(r, i, &m)->owner);
    }
    r->n_slices = 0;
    while (r->more) {
        struct zev__udp_more *next = r->more->next;
        zev__slab_put(&u->handle.loop->slab_large, r->more);
        r->more = next;
    }
}

static void req_free(zev_udp_t *u, struct zev__udp_req *r) {
    req_release_slices(u, r);
    zev__slab_put(&u->handle.loop->slab_large, r);
}

/* Keep the descriptors of slices[] in r, referencing each owner. -ENOMEM leaves r empty. */
static int req_keep_slices(zev_udp_t *u, struct zev__udp_req *r, const zev_slice_t *slices,
                           unsigned n) {
    unsigned extra = n > ZEV__UDP_REQ_SLICES ? n - ZEV__UDP_REQ_SLICES : 0;
    struct zev__udp_more **link = &r->more;
    for (unsigned k = 0; k < extra; k += ZEV__UDP_MORE_SLICES) {
        struct zev__udp_more *m = zev__slab_get(u->handle.loop, &u->handle.loop->slab_large);
        if (!m) {
            req_release_slices(u, r);
            return -ENOMEM;
        }
        m->next = NULL;
        *link = m;
        link = &m->next;
    }
    struct zev__udp_more *m = NULL;
    for (unsigned i = 0; i < n; i++) {
        zev_slice_t *dst = slice_at(r, i, &m);
        *dst = slices[i];
        zev_buf_ref(dst->owner);
    }
    r->n_slices = (uint16_t)n;
    return 0;
}

static unsigned req_iov(struct zev__udp_req *r, struct iovec *iov) {
    struct zev__udp_more *m = NULL;
    for (unsigned i = 0; i < r->n_slices; i++) {
        const zev_slice_t *s = slice_at(r, i, &m);
        iov[i].iov_base = s->base;
        iov[i].iov_len = s->len;
    }
    return r->n_slices;
}

static void append(zev_udp_t *u, struct zev__udp_req *r) {
    if (u->q_tail) {
        u->q_tail->next = r;
    } else {
        u->q_head = r;
    }
    u->q_tail = r;
}

static void account(zev_udp_t *u, ssize_t result) {
    if (result >= 0) {
        u->stats.datagrams_sent++;
        u->stats.bytes_sent += (uint64_t)result;
    } else {
        u->stats.send_errors++;
    }
}

static void fill_msghdr(struct msghdr *m, struct zev__udp_req *r, struct iovec *iov, unsigned n) {
    bool to = r->flags & ZEV__UDP_REQ_TO;
    *m = (struct msghdr){.msg_name = to ? &r->to.sa : NULL,
                         .msg_namelen = to ? zev_addr_len(&r->to) : 0,
                         .msg_iov = iov,
                         .msg_iovlen = n};
}

/* ---- the immediate path ---- */

static int check_send(const zev_udp_t *u, const zev_slice_t *slices, unsigned n,
                      const zev_sockaddr_t *to, size_t *len) {
    if ((n > 0 && !slices) || n > ZEV_UDP_MAX_SLICES) return -EINVAL;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!slices[i].base && slices[i].len > 0) return -EINVAL;
        if (slices[i].len > SIZE_MAX - total) return -EMSGSIZE;
        total += slices[i].len;
    }
    if (to) {
        if (u->handle.flags & ZEV__UDP_CONNECTED) return -EISCONN;
        int af = to->sa.sa_family;
        if (af != u->family) return af == AF_INET || af == AF_INET6 ? -EAFNOSUPPORT : -EINVAL;
        if (zev__addr_port(to) == 0) return -EINVAL; /* port 0 is not a destination */
    } else if (!(u->handle.flags & ZEV__UDP_CONNECTED)) {
        return -EDESTADDRREQ;
    }
    if (total > zev__udp_max_payload(u, to)) return -EMSGSIZE;
    *len = total;
    return 0;
}

static ssize_t send_now(zev_udp_t *u, const zev_slice_t *slices, unsigned n,
                        const zev_sockaddr_t *to) {
    struct iovec iov[ZEV_UDP_MAX_SLICES];
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = slices[i].base;
        iov[i].iov_len = slices[i].len;
    }
    struct msghdr m = {.msg_name = to ? (void *)&to->sa : NULL,
                       .msg_namelen = to ? zev_addr_len(to) : 0,
                       .msg_iov = iov,
                       .msg_iovlen = n};
    for (;;) {
        u->stats.send_calls++;
        ssize_t r = zev__sys_sendmsg(u->io.fd, &m, 0);
        if (r != -EINTR) return r;
    }
}

/* Queue a datagram (r: an entry already taken, or NULL). Returns 0, 1 above the mark, or
 * -ENOMEM with nothing queued. */
static int enqueue(zev_udp_t *u, struct zev__udp_req *r, const zev_slice_t *slices, unsigned n,
                   const zev_sockaddr_t *to, size_t len) {
    if (!r) r = req_new(u);
    if (!r) return -ENOMEM;
    if (req_keep_slices(u, r, slices, n) < 0) {
        req_free(u, r);
        return -ENOMEM;
    }
    if (to) {
        r->to = *to;
        r->flags |= ZEV__UDP_REQ_TO;
    }
    r->len = (uint32_t)len;
    append(u, r);
    if (!u->q_unsent) u->q_unsent = r;
    u->q_bytes += len;
    u->q_count++;
    zev__udp_update_active(u);
    if (u->q_bytes > u->hwm) {
        u->handle.flags |= ZEV__UDP_NEED_DRAIN;
        return 1;
    }
    return 0;
}

/* A datagram finished at once (sent, or failed before reaching the queue): its callback, if
 * any, runs from the loop. Returns 0: the result belongs to the callback. */
static int complete_later(zev_udp_t *u, struct zev__udp_req *r, ssize_t status) {
    account(u, status);
    if (!r) return 0;
    r->status = (int)status;
    r->flags = ZEV__UDP_REQ_DONE;
    append(u, r); /* behind other finished sends: callbacks keep send order */
    zev__watcher_feed(u->handle.loop, &u->io, ZEV__WRITABLE);
    zev__udp_update_active(u);
    return 0;
}

int zev_udp_send_addr(zev_udp_t *u, const zev_slice_t *slices, unsigned n, const zev_sockaddr_t *to,
                      zev_udp_send_cb cb, void *arg) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    size_t len = 0;
    int err = check_send(u, slices, n, to, &len);
    if (err < 0) return err;
    zev__debug_slices(u->handle.loop, slices, n);
    struct zev__udp_req *r = NULL;
    if (cb) {
        r = req_new(u); /* taken first: a datagram is never sent without its completion */
        if (!r) return -ENOMEM;
        r->cb = cb;
        r->arg = arg;
    }
    /* Never bound: bind first. Nothing can be queued yet (every send binds), so a failure is
     * this datagram's alone; the next send tries again. */
    if (!(u->handle.flags & ZEV__UDP_BOUND)) {
        err = zev__udp_bind_implicit(u);
        if (err < 0) return complete_later(u, r, err);
    }
    /* Corked (a receive batch is being delivered): queue, so the replies to a whole batch
     * leave in one sendmmsg after it instead of one sendmsg each. */
    if (u->q_unsent || (u->handle.flags & ZEV__UDP_CORKED)) return enqueue(u, r, slices, n, to, len);

    ssize_t s = send_now(u, slices, n, to);
    if (s == -EAGAIN) {
        /* Look again next iteration as well as on the writable edge: one call, and progress
         * never depends on an edge (an injected EAGAIN raises none). */
        zev__watcher_feed(u->handle.loop, &u->io, ZEV__WRITABLE);
        return enqueue(u, r, slices, n, to, len);
    }
    return complete_later(u, r, s);
}

int zev_udp_send(zev_udp_t *u, const zev_slice_t *slices, unsigned n, const char *host, int port,
                 zev_udp_send_cb cb, void *arg) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    if (!host && port == 0) return zev_udp_send_addr(u, slices, n, NULL, cb, arg);
    if (u->handle.flags & ZEV__UDP_CONNECTED) return -EISCONN;
    zev_sockaddr_t to;
    int err = zev__udp_parse_peer(u, host, port, &to);
    if (err < 0) return err;
    return zev_udp_send_addr(u, slices, n, &to, cb, arg);
}

/* ---- the flush ---- */

/* The first unsent datagram is finished: sent (status = bytes) or failed (-errno). */
static void mark_done(zev_udp_t *u, int status) {
    struct zev__udp_req *r = u->q_unsent;
    r->flags |= ZEV__UDP_REQ_DONE;
    r->status = status;
    u->q_unsent = r->next;
    u->q_bytes -= r->len;
    u->q_count--;
    req_release_slices(u, r); /* the kernel has the bytes (or never will) */
    account(u, status);
}

/* Run the callbacks of finished sends at the head, in order, as far as the entry that was last
 * when called (sends made by these callbacks wait for the next run). Returns false if a
 * callback closed the socket. */
static bool complete_done(zev_udp_t *u) {
    struct zev__udp_req *last = u->q_tail;
    while (u->q_head && u->q_head != u->q_unsent) {
        struct zev__udp_req *r = u->q_head;
        u->q_head = r->next;
        if (!u->q_head) u->q_tail = NULL;
        zev_udp_send_cb cb = r->cb;
        void *arg = r->arg;
        int status = r->status;
        bool was_last = r == last;
        req_free(u, r);
        if (cb) cb(u, status, arg);
        if (zev__udp_closing(u)) return false;
        if (was_last) break;
    }
    return true;
}

static int send_single(zev_udp_t *u) {
    struct iovec iov[ZEV_UDP_MAX_SLICES];
    struct msghdr m;
    fill_msghdr(&m, u->q_unsent, iov, req_iov(u->q_unsent, iov));
    u->stats.send_calls++;
    ssize_t r = zev__sys_sendmsg(u->io.fd, &m, 0);
    if (r < 0) return (int)r;
    mark_done(u, (int)r);
    return 1;
}

#if ZEV__UDP_HAVE_MMSG
/* One sendmmsg over the first unsent datagrams. Returns how many were sent, or -errno for the
 * first of them. */
static int send_many(zev_udp_t *u) {
    struct mmsghdr msgs[ZEV_UDP_BATCH_MAX];
    struct iovec iov[ZEV__UDP_FLUSH_IOV];
    unsigned n = 0;
    unsigned n_iov = 0;
    for (struct zev__udp_req *r = u->q_unsent; r && n < u->batch; r = r->next) {
        if (n_iov + r->n_slices > ZEV__UDP_FLUSH_IOV) break; /* never the first: 64 < 256 */
        unsigned k = req_iov(r, iov + n_iov);
        fill_msghdr(&msgs[n].msg_hdr, r, iov + n_iov, k);
        msgs[n].msg_len = 0;
        n_iov += k;
        n++;
    }
    u->stats.send_calls++;
    int sent = zev__sys_sendmmsg(u->io.fd, msgs, n, 0);
    for (int i = 0; i < sent; i++) {
        mark_done(u, (int)msgs[i].msg_len);
    }
    return sent;
}
#endif

static int send_some(zev_udp_t *u) {
#if ZEV__UDP_HAVE_MMSG
    if (u->batch > 1 && u->q_unsent->next) return send_many(u);
#endif
    return send_single(u);
}

static void after_flush(zev_udp_t *u) {
    if ((u->handle.flags & ZEV__UDP_NEED_DRAIN) && u->q_bytes <= u->hwm) {
        u->handle.flags &= ~ZEV__UDP_NEED_DRAIN;
        if (u->on_drain) u->on_drain(u);
        if (zev__udp_closing(u)) return;
    }
    zev__udp_update_active(u);
}

/* Bytes of the queued datagrams from r up to (not including) end: what one call sent. */
static size_t bytes_between(const struct zev__udp_req *r, const struct zev__udp_req *end) {
    size_t sum = 0;
    for (; r && r != end; r = r->next) sum += r->len;
    return sum;
}

void zev__udp_flush(zev_udp_t *u) {
    if (zev__udp_ring_flush(u)) return; /* completion mode: sendmsg SQEs (ring.c) */
    size_t turn = ZEV__BUDGET_QUANTUM;
    for (;;) {
        if (!complete_done(u)) return;
        if (!u->q_unsent) break;
        if (turn == 0) {
            zev__watcher_yield(u->handle.loop, &u->io, ZEV__WRITABLE);
            break;
        }
        struct zev__udp_req *first = u->q_unsent;
        int r = send_some(u);
        zev__budget_spend(u->handle.loop, &turn, r > 0 ? bytes_between(first, u->q_unsent) : 0);
        if (r == -EINTR) continue;
        if (r == -EAGAIN) break;    /* the kernel is full; its next writable edge resumes us */
        if (r < 0) mark_done(u, r); /* this datagram failed; the ones behind it go on */
    }
    after_flush(u);
}

void zev__udp_cancel_sends(zev_udp_t *u, int err) {
    /* Detach first: a callback may send again (and fail fast, the socket is closing). */
    struct zev__udp_req *r = u->q_head;
    struct zev__udp_req *unsent = u->q_unsent;
    u->q_head = u->q_tail = u->q_unsent = NULL;
    u->q_bytes = 0;
    u->q_count = 0;
    bool cancelled = false;
    while (r) {
        struct zev__udp_req *next = r->next;
        if (r == unsent) cancelled = true;
        if (cancelled) u->stats.send_errors++;
        zev_udp_send_cb cb = r->cb;
        void *arg = r->arg;
        int status = cancelled ? err : r->status;
        req_free(u, r);
        if (cb) cb(u, status, arg);
        r = next;
    }
}

/* ---- for completion mode (ring.c) ---- */

unsigned zev__udp_req_msg(struct zev__udp_req *r, struct msghdr *m, struct iovec *iov) {
    unsigned n = req_iov(r, iov);
    fill_msghdr(m, r, iov, n);
    return n;
}

void zev__udp_sent(zev_udp_t *u, int status) {
    mark_done(u, status);
}

bool zev__udp_run_done(zev_udp_t *u) {
    return complete_done(u);
}

void zev__udp_after_sends(zev_udp_t *u) {
    after_flush(u);
}

/* ---- queue introspection and backpressure ---- */

size_t zev_udp_send_queue_size(const zev_udp_t *u) {
    return u ? u->q_bytes : 0;
}

unsigned zev_udp_send_queue_count(const zev_udp_t *u) {
    return u ? u->q_count : 0;
}

int zev_udp_set_high_water_mark(zev_udp_t *u, size_t bytes) {
    if (!u || bytes == 0 || bytes > ZEV__UDP_MAX_HWM) return -EINVAL;
    if (!zev__handle_usable(&u->handle)) return zev__handle_error(&u->handle);
    u->hwm = bytes;
    return 0;
}

int zev_udp_set_drain_cb(zev_udp_t *u, zev_udp_drain_cb cb) {
    if (!u) return -EINVAL;
    if (!zev__handle_usable(&u->handle)) return zev__handle_error(&u->handle);
    u->on_drain = cb;
    return 0;
}
