/* src/udp/internal.h: what the UDP files share. A socket's state is a few flag bits in its
 * handle; the send queue is a singly linked list of slab entries (struct zev__udp_req) whose
 * finished prefix waits for its callbacks and whose tail (from u->q_unsent) waits for the
 * kernel. udp.c owns the socket's life, recv.c receiving, send.c the queue, options.c and
 * multicast.c the socket options.
 */
#ifndef ZEV_UDP_INTERNAL_H
#define ZEV_UDP_INTERNAL_H

#include "reactor_internal.h"
#include "sys.h"

/* Handle flag bits owned by UDP (zev_handle_t.flags, from bit 8 up). */
enum {
    ZEV__UDP_RECVING = 1u << 8,
    ZEV__UDP_BOUND = 1u << 9, /* bound explicitly, or implicitly by a send or connect */
    ZEV__UDP_CONNECTED = 1u << 10,
    ZEV__UDP_LISTEN_DUE = 1u << 11, /* bound: the listening callback is to run */
    ZEV__UDP_NEED_DRAIN = 1u << 12, /* a send returned 1: call drain when under the mark */
    ZEV__UDP_CORKED = 1u << 13,     /* delivering a receive batch: sends queue, then one flush */
    /* Completion mode (ring.c): the socket submits operations instead of waiting for
     * readiness; its watcher is registered only if receiving falls back to readiness. */
    ZEV__UDP_RING = 1u << 14,
    ZEV__UDP_RING_RECV = 1u << 15,   /* the multishot receive is in flight */
    ZEV__UDP_RING_CANCEL = 1u << 16, /* ... and its cancellation was asked for */
    ZEV__UDP_RING_PARKED = 1u << 17, /* results kept while not receiving (zev__ring_park) */
    ZEV__UDP_RING_POLLRX = 1u << 18, /* receiving by readiness: a datagram may not fit a chunk */
    ZEV__UDP_RING_DRAIN = 1u << 19,  /* stopped inside a message callback: finish that batch */
};

enum {
    ZEV__UDP_DEFAULT_HWM = 64 * 1024,
    ZEV__UDP_MAX_HWM = 1 << 30,
    ZEV__UDP_FLUSH_IOV = 256, /* iovecs gathered by one sendmmsg */
    ZEV__UDP_REQ_SLICES = 2,  /* slices kept in a request entry */
    ZEV__UDP_MORE_SLICES = 5, /* slices kept in each continuation entry */
};

/* recvmmsg/sendmmsg: the seam offers them on Linux; elsewhere every batch is one datagram. */
#ifdef __linux__
#define ZEV__UDP_HAVE_MMSG 1
#define ZEV__UDP_RECV_FLAGS MSG_TRUNC /* Linux then reports a truncated datagram's real size */
#else
#define ZEV__UDP_HAVE_MMSG 0
#define ZEV__UDP_RECV_FLAGS 0
#endif

enum {
    ZEV__UDP_REQ_TO = 1u << 0,   /* `to` holds the destination (else the connected peer) */
    ZEV__UDP_REQ_DONE = 1u << 1, /* sent or failed; `status` holds the result */
};

/* Slices past the first ZEV__UDP_REQ_SLICES of a datagram. Exactly fits ZEV__SLAB_LARGE. */
struct zev__udp_more {
    struct zev__udp_more *next;
    zev_slice_t slice[ZEV__UDP_MORE_SLICES];
};

/* One queued datagram, from the loop's large slab. The slice descriptors are kept here (the
 * caller's array may be gone); the bytes are not: they stay where the caller put them. */
struct zev__udp_req {
    struct zev__udp_req *next;
    struct zev__udp_more *more;
    zev_udp_send_cb cb;
    void *arg;
    zev_sockaddr_t to;
    uint32_t len; /* datagram bytes */
    int status;   /* once DONE: bytes sent or -errno */
    uint16_t n_slices;
    uint16_t flags; /* ZEV__UDP_REQ_* */
    zev_slice_t slice[ZEV__UDP_REQ_SLICES];
};

_Static_assert(sizeof(struct zev__udp_req) <= ZEV__SLAB_LARGE, "udp request outgrew the slab");
_Static_assert(sizeof(struct zev__udp_more) <= ZEV__SLAB_LARGE, "udp slices outgrew the slab");

static inline bool zev__udp_closing(const zev_udp_t *u) {
    return (u->handle.flags & (ZEV__H_CLOSING | ZEV__H_CLOSED)) != 0;
}

/* udp.c */
void zev__udp_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents);
/* Recompute whether the socket keeps the loop alive: receiving, sends queued or due, or the
 * listening callback due. */
void zev__udp_update_active(zev_udp_t *u);
/* A destination or peer from text: host NULL or "" means the family's loopback (as Node),
 * port must be 1..65535. -EINVAL, -EAFNOSUPPORT. */
int zev__udp_parse_peer(const zev_udp_t *u, const char *host, int port, zev_sockaddr_t *out);
/* Largest payload to addr (NULL: the connected peer): IPv4 and IPv4-mapped 65507, IPv6 65527. */
size_t zev__udp_max_payload(const zev_udp_t *u, const zev_sockaddr_t *addr);
/* Bind a socket never bound to the family's any address, port 0, before its first send.
 * 0, or the bind's -errno (-EADDRINUSE, -EAGAIN: no ephemeral port left). */
int zev__udp_bind_implicit(zev_udp_t *u);
/* -EINVAL on NULL, -EBADF if closing or closed, else the fd. */
int zev__udp_fd(const zev_udp_t *u);

/* multicast.c */
struct group_source_req;
struct in6_addr;
/* Fill *g as MCAST_JOIN_SOURCE_GROUP / MCAST_LEAVE_SOURCE_GROUP take it for an IPv6 group and
 * source on interface index: family and, where the system has it, length set in both
 * addresses (FreeBSD rejects them without). Pure, so tests can check every field anywhere. */
void zev__udp_source_req6(struct group_source_req *g, const struct in6_addr *group,
                          const struct in6_addr *source, unsigned index);
/* The interface index of an IPv6 source-specific request: iface if given, else the group's
 * scope, else the socket's multicast interface, else the interface the route to the group
 * leaves by. Never 0 (FreeBSD refuses 0): -EADDRNOTAVAIL if none can be chosen, and iface's
 * own errors (-EINVAL, -ENODEV). */
int zev__udp_source_index6(const zev_udp_t *u, const struct in6_addr *group, uint32_t scope,
                           const char *iface, unsigned *out);

/* recv.c */
void zev__udp_on_readable(zev_udp_t *u, unsigned revents);
/* A receive error to the message callback (counted in recv_errors). */
void zev__udp_report_error(zev_udp_t *u, int err);
/* Whether a receive error was handed over and cleared by the call (an ICMP report): datagrams
 * may wait behind it, so receiving goes on. */
bool zev__udp_error_handed_over(int err);
void zev__udp_fill_rinfo(const zev_sockaddr_t *from, size_t size, zev_udp_rinfo_t *ri);

/* send.c */
/* Run due send callbacks and send what is queued, in batches, until EAGAIN. */
void zev__udp_flush(zev_udp_t *u);
/* Complete every queued send: unsent ones with err, finished ones with their result. */
void zev__udp_cancel_sends(zev_udp_t *u, int err);
/* For completion mode (ring.c), which sends the queue's unsent head through the ring: */
/* Describe queued datagram r in *m, its slices in iov (room for r->n_slices); returns them. */
unsigned zev__udp_req_msg(struct zev__udp_req *r, struct msghdr *m, struct iovec *iov);
/* The first unsent datagram is finished: status is its bytes or -errno. */
void zev__udp_sent(zev_udp_t *u, int status);
/* Run the callbacks of finished sends; false if one closed the socket. */
bool zev__udp_run_done(zev_udp_t *u);
/* After sends finished: the drain callback if due, and whether the socket keeps the loop up. */
void zev__udp_after_sends(zev_udp_t *u);

/* ring.c (completion mode; every call is a no-op on a socket that is not in it) */
/* Whether a new socket on loop runs in completion mode (then it is not registered). */
bool zev__udp_ring_wanted(const zev_loop_t *loop);
/* The fed READABLE of a socket that receives: false if it receives by readiness (recv.c). */
bool zev__udp_ring_receive(zev_udp_t *u);
void zev__udp_ring_recv_stop(zev_udp_t *u);
/* Send the queue's unsent head through the ring; true if the socket is in completion mode. */
bool zev__udp_ring_flush(zev_udp_t *u);
/* Inside zev_close: end every operation, give the chunks back, free the ring state. */
void zev__udp_ring_close(zev_udp_t *u);
/* ops->complete: an operation's result. */
void zev__udp_ring_complete(zev_handle_t *h, const void *result);

#endif /* ZEV_UDP_INTERNAL_H */
