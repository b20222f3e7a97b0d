/* zev/udp.h: UDP sockets (Node's dgram.Socket): bind, batched receive into the buffer pool,
 * sends by reference through a batched queue, connect, socket options and multicast.
 * Included from <zev.h>; docs/udp.md maps every Node dgram call to these.
 *
 * Ownership: the user owns zev_udp_t memory (embed it in your own struct). Nothing is
 * allocated per datagram. Received datagrams are read by the kernel, in batches, straight into
 * slots of the loop's buffer pool; a message's slice is valid during the callback and
 * zev_buf_ref(slice->owner) keeps it. A send takes the caller's slices by reference: raw ones
 * (owner NULL) must stay valid until the send's callback, refcounted ones are held until the
 * datagram is sent. The slice array itself is read during the call only: a queued datagram
 * keeps its own copy of the slice descriptors (not the bytes) in 128-byte entries from the
 * loop's slab (one entry per datagram, plus one per five slices after the second).
 */
#ifndef ZEV_UDP_H
#define ZEV_UDP_H

#include <stddef.h>
#include <stdint.h>

typedef struct zev_udp_s zev_udp_t;

#define ZEV_UDP_BATCH_MAX 64 /* most datagrams per recvmmsg / sendmmsg call */
#define ZEV_UDP_BATCH_DEFAULT 32
#define ZEV_UDP_MAX_SLICES 64      /* most slices in one datagram */
#define ZEV_UDP4_MAX_PAYLOAD 65507 /* 65535 - 20 (IPv4 header) - 8 (UDP header) */
#define ZEV_UDP6_MAX_PAYLOAD 65527 /* 65535 - 8: IPv6's length field excludes its header */

/* Node's rinfo: who sent a datagram. */
typedef struct {
    const zev_sockaddr_t *addr; /* the sender, valid during the callback; text: zev_addr_info */
    int family;                 /* 4 or 6 */
    int port;
    size_t size; /* the datagram's size; more than the slice holds if truncated */
} zev_udp_rinfo_t;

/* A datagram arrived or receiving failed. status 0: msg holds the whole datagram (msg->len may
 * be 0: an empty datagram is a message). status -EMSGSIZE: the datagram was longer than the
 * socket's max datagram size (zev_udp_set_max_datagram); msg holds its first bytes only and
 * rinfo->size says how long it was. Any other status is an error on the socket, with msg and
 * rinfo NULL: -ECONNREFUSED (a connected socket's peer port is closed), -EHOSTUNREACH...;
 * -ENOMEM (the buffer pool is exhausted) also stops receiving. An error other than an ICMP
 * report is reported once per readable event, then the socket waits for the next arrival. */
typedef void (*zev_udp_message_cb)(zev_udp_t *u, int status, const zev_slice_t *msg,
                                   const zev_udp_rinfo_t *rinfo);
/* The socket is bound (Node's 'listening'). Runs from the loop, before any message. */
typedef void (*zev_udp_listening_cb)(zev_udp_t *u);
/* A send finished: status is the number of bytes sent, or a negative errno (-EACCES for a
 * broadcast without zev_udp_set_broadcast, -ECONNREFUSED, -ENETUNREACH..., -ECANCELED if the
 * socket was closed first). */
typedef void (*zev_udp_send_cb)(zev_udp_t *u, int status, void *arg);
/* The send queue fell back under the high-water mark after a send returned 1. */
typedef void (*zev_udp_drain_cb)(zev_udp_t *u);

typedef struct {
    int ipv6_only;  /* udp6 only: do not receive IPv4-mapped traffic (Node's ipv6Only) */
    int reuse_addr; /* SO_REUSEADDR: several sockets on one port, e.g. multicast listeners */
    int reuse_port; /* SO_REUSEPORT: the kernel spreads datagrams over sockets (one per loop) */
} zev_udp_bind_opts_t;

typedef struct {
    uint64_t datagrams_received; /* delivered to the message callback, truncated ones included */
    uint64_t bytes_received;
    uint64_t truncated; /* delivered with -EMSGSIZE */
    uint64_t recv_errors;
    uint64_t datagrams_sent;
    uint64_t bytes_sent;
    uint64_t send_errors; /* sends that failed, with or without a callback */
    uint64_t recv_calls;  /* recvmmsg / recvmsg calls made */
    uint64_t send_calls;  /* sendmmsg / sendmsg calls made */
} zev_udp_stats_t;

struct zev__udp_req;
struct zev__udp_ring;

struct zev_udp_s {
    zev_handle_t handle;
    /* private */
    struct zev_watcher io;
    int family;          /* AF_INET or AF_INET6 */
    unsigned batch;      /* datagrams per recvmmsg / sendmmsg */
    size_t max_datagram; /* receive slot size */
    zev_udp_message_cb on_message;
    zev_udp_listening_cb on_listening;
    zev_udp_drain_cb on_drain;
    struct zev__udp_req *q_head;   /* send queue: finished sends awaiting their callback, */
    struct zev__udp_req *q_unsent; /* then (from here) datagrams not yet sent */
    struct zev__udp_req *q_tail;
    size_t q_bytes;   /* bytes of unsent datagrams */
    unsigned q_count; /* unsent datagrams */
    size_t hwm;
    zev_sockaddr_t peer; /* while connected */
    zev_udp_stats_t stats;
    struct zev__udp_ring *ring; /* completion mode (io_uring): the socket's in-flight state */
};

/* ---- socket --------------------------------------------------------------------------------- */

/* Open a UDP socket of family 4 (Node's 'udp4') or 6 ('udp6'). It can send at once (its first
 * send binds it to the any address and an ephemeral port, as Node) or be bound first. -EINVAL on NULL or another family, -EBADF on a
 * closed loop, -EMFILE/-ENFILE/-ENOMEM from the kernel, -ENOMEM if the loop's handle table
 * could not grow (zev/inspect.h). On failure u is not a handle. */
ZEV_EXPORT int zev_udp_init(zev_loop_t *loop, zev_udp_t *u, int family);
/* Adopt a datagram socket opened elsewhere (libuv's uv_udp_open, Node's bind({fd})) into u,
 * in place of zev_udp_init: the family is the socket's, and a bound or connected socket stays
 * so. From a 0 return zev owns fd: it is made non-blocking and close-on-exec, and zev_close
 * closes it; on failure fd is still the caller's and u is not a handle. -EBADF for a closed
 * fd or loop, -ENOTSOCK for a descriptor that is no socket, -EINVAL for NULL or a socket that
 * is not a datagram socket, -EAFNOSUPPORT for one neither IPv4 nor IPv6 (AF_UNIX). */
ZEV_EXPORT int zev_udp_open(zev_loop_t *loop, zev_udp_t *u, int fd);
/* Bind to host (numeric; NULL or "" for any address of the family) and port (0: ephemeral);
 * cb (may be NULL) runs from the loop once bound. opts may be NULL. -EINVAL on bad text, port
 * outside 0..65535 or ipv6_only on a udp4 socket; -EAFNOSUPPORT for an address of the other
 * family; -EALREADY if bound (or implicitly bound by a send or connect); -EADDRINUSE,
 * -EADDRNOTAVAIL, -EACCES from the kernel; -ENOTSUP for reuse_port where unavailable. */
ZEV_EXPORT int zev_udp_bind(zev_udp_t *u, const char *host, int port,
                            const zev_udp_bind_opts_t *opts, zev_udp_listening_cb cb);
/* The bound address (Node's address()). -ENOTCONN if not bound yet. */
ZEV_EXPORT int zev_udp_local_address(const zev_udp_t *u, zev_addr_info_t *out);
/* Associate the socket with one peer (Node's connect): sends without an address go there,
 * and only its datagrams are received. Synchronous. host NULL or "": the loopback address.
 * -EISCONN if connected, -EINVAL on bad text or port 0, -EAFNOSUPPORT for the other family. */
ZEV_EXPORT int zev_udp_connect(zev_udp_t *u, const char *host, int port);
/* As zev_udp_connect with a parsed address. */
ZEV_EXPORT int zev_udp_connect_addr(zev_udp_t *u, const zev_sockaddr_t *addr);
/* Undo connect. -ENOTCONN if not connected. */
ZEV_EXPORT int zev_udp_disconnect(zev_udp_t *u);
/* The connected peer (Node's remoteAddress()). -ENOTCONN if not connected. */
ZEV_EXPORT int zev_udp_remote_address(const zev_udp_t *u, zev_addr_info_t *out);
/* Close: zev_close(&u->handle, cb). Queued sends complete with -ECANCELED. Node's unref/ref:
 * zev_unref(&u->handle), zev_ref(&u->handle). */

/* ---- receive -------------------------------------------------------------------------------- */

/* Deliver datagrams to cb (replaces the callback if already receiving). Datagrams that arrived
 * while not receiving are delivered next iteration. The socket keeps the loop alive while
 * receiving unless unref'd. -EINVAL on NULL, -EBADF if closed. */
ZEV_EXPORT int zev_udp_recv_start(zev_udp_t *u, zev_udp_message_cb cb);
/* Stop delivering; datagrams wait in the kernel. Called from a message callback it takes
 * effect after the batch being delivered, so no datagram already read is lost. */
ZEV_EXPORT int zev_udp_recv_stop(zev_udp_t *u);
/* Datagrams per recvmmsg and sendmmsg call, 1..ZEV_UDP_BATCH_MAX (default 32); 1 uses plain
 * recvmsg/sendmsg. A receive batch holds batch slots of the max datagram size. -EINVAL. */
ZEV_EXPORT int zev_udp_set_batch_size(zev_udp_t *u, unsigned n);
/* Bytes one datagram may have to be received whole (default: the family's maximum payload,
 * at most the pool's chunk size); longer ones arrive truncated, with -EMSGSIZE. Smaller slots
 * let one pool chunk hold a whole batch. -EINVAL if 0 or above the chunk size. */
ZEV_EXPORT int zev_udp_set_max_datagram(zev_udp_t *u, size_t bytes);

/* ---- send ----------------------------------------------------------------------------------- */

/* Send n slices as one datagram to host:port (Node's send). host NULL or "" with a port: the
 * loopback address, as Node; host NULL and port 0: the connected peer. Tried at once when
 * nothing is queued, else queued by reference and later flushed with sendmmsg; cb (may be
 * NULL) always runs later, from the loop. Returns 0, or 1 when the queue is above the
 * high-water mark (wait for the drain callback). -EINVAL on bad text, port 0, n above
 * ZEV_UDP_MAX_SLICES or a NULL base; -EAFNOSUPPORT for the other family; -EMSGSIZE above
 * ZEV_UDP4_MAX_PAYLOAD / ZEV_UDP6_MAX_PAYLOAD; -EISCONN with an address on a connected socket;
 * -EDESTADDRREQ without one on an unconnected socket; -EBADF if closed; -ENOMEM if no queue
 * entry could be had. On a negative return nothing was sent and cb will not run. The first
 * send of a socket never bound binds it first (any address, port 0); if that fails, cb gets
 * the bind's error (-EADDRINUSE, -EAGAIN: no ephemeral port) and the next send tries again. */
ZEV_EXPORT int zev_udp_send(zev_udp_t *u, const zev_slice_t *slices, unsigned n, const char *host,
                            int port, zev_udp_send_cb cb, void *arg);
/* As zev_udp_send with a parsed address; to NULL: the connected peer. */
ZEV_EXPORT int zev_udp_send_addr(zev_udp_t *u, const zev_slice_t *slices, unsigned n,
                                 const zev_sockaddr_t *to, zev_udp_send_cb cb, void *arg);
/* Node's getSendQueueSize / getSendQueueCount: bytes and datagrams queued, not yet sent. */
ZEV_EXPORT size_t zev_udp_send_queue_size(const zev_udp_t *u);
ZEV_EXPORT unsigned zev_udp_send_queue_count(const zev_udp_t *u);
/* Send-queue high-water mark in bytes (default 64 KiB). -EINVAL if 0 or above 1 GiB. */
ZEV_EXPORT int zev_udp_set_high_water_mark(zev_udp_t *u, size_t bytes);
/* Called when the queue falls back under the mark after a send returned 1; NULL clears. */
ZEV_EXPORT int zev_udp_set_drain_cb(zev_udp_t *u, zev_udp_drain_cb cb);

/* ---- options -------------------------------------------------------------------------------- */

/* Unicast TTL / hop limit (Node's setTTL), 1..255 (-EINVAL outside). */
ZEV_EXPORT int zev_udp_set_ttl(zev_udp_t *u, int ttl);
/* SO_BROADCAST on or off (Node's setBroadcast); needed to send to a broadcast address. */
ZEV_EXPORT int zev_udp_set_broadcast(zev_udp_t *u, int enable);
/* Kernel buffer sizes in bytes (Node's set/getRecvBufferSize, set/getSendBufferSize). The
 * setters take 1..INT_MAX (-EINVAL outside); the getters return what the kernel reports
 * (Linux doubles the request) or a negative errno. */
ZEV_EXPORT int zev_udp_set_recv_buffer_size(zev_udp_t *u, size_t bytes);
ZEV_EXPORT int zev_udp_set_send_buffer_size(zev_udp_t *u, size_t bytes);
ZEV_EXPORT int zev_udp_recv_buffer_size(const zev_udp_t *u);
ZEV_EXPORT int zev_udp_send_buffer_size(const zev_udp_t *u);
/* Counters. -EINVAL on NULL. */
ZEV_EXPORT int zev_udp_stats(const zev_udp_t *u, zev_udp_stats_t *out);
/* The file descriptor, or -EBADF. For options zev does not wrap; do not read or write it. */
ZEV_EXPORT int zev_udp_fileno(const zev_udp_t *u);

/* ---- multicast ------------------------------------------------------------------------------ */

/* An interface (iface below) is given as text: an address of the socket's family
 * ("198.18.0.1"; IPv6 "fd00::1"), an interface name ("eth0"), an index ("3"), or for udp6 an
 * address with a scope ("::%eth0", "fe80::1%2"). NULL lets the kernel choose. Errors: -EINVAL
 * on bad text, -ENODEV for an unknown interface, -EADDRNOTAVAIL for an address no interface
 * has (or an interface without an IPv4 address, for udp4). */

/* Multicast TTL / hop limit (Node's setMulticastTTL), 0..255 (-EINVAL outside). */
ZEV_EXPORT int zev_udp_set_multicast_ttl(zev_udp_t *u, int ttl);
/* Whether this host's own members receive what we send to a group (default on). */
ZEV_EXPORT int zev_udp_set_multicast_loopback(zev_udp_t *u, int enable);
/* The interface multicast is sent from (Node's setMulticastInterface); NULL resets it. */
ZEV_EXPORT int zev_udp_set_multicast_interface(zev_udp_t *u, const char *iface);
/* Join or leave a group (Node's addMembership / dropMembership) on iface (NULL: the kernel's
 * choice). -EINVAL if group is not a multicast address, -EAFNOSUPPORT if it is of the other
 * family; dropping a membership that was never added fails with -EADDRNOTAVAIL. */
ZEV_EXPORT int zev_udp_add_membership(zev_udp_t *u, const char *group, const char *iface);
ZEV_EXPORT int zev_udp_drop_membership(zev_udp_t *u, const char *group, const char *iface);
/* Receive group traffic from one source only (Node's addSourceSpecificMembership /
 * dropSourceSpecificMembership). -EINVAL if source is not a unicast address or group not a
 * multicast one, -EAFNOSUPPORT for the other family; dropping one never added:
 * -EADDRNOTAVAIL. udp6 with iface NULL: the group's scope, the multicast interface, else the
 * group's route decide (BSD needs one); -EADDRNOTAVAIL if none does. */
ZEV_EXPORT int zev_udp_add_source_membership(zev_udp_t *u, const char *source, const char *group,
                                             const char *iface);
ZEV_EXPORT int zev_udp_drop_source_membership(zev_udp_t *u, const char *source, const char *group,
                                              const char *iface);

#endif /* ZEV_UDP_H */
