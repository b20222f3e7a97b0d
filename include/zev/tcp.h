/* zev/tcp.h: TCP listeners (Node's net.Server) and stream sockets (Node's net.Socket).
 * Included from <zev.h>; docs/tcp.md maps every Node net call to these.
 *
 * Ownership: the user owns zev_tcp_server_t and zev_tcp_t memory (embed them in your own
 * structs). A server hands a new connection to the connection callback, which accepts it into
 * a zev_tcp_t the user initialised. Nothing is allocated per message: queued writes take
 * entries from a per-loop slab that is reused, and reads land in the loop's buffer pool. A
 * socket's rare state (timeouts, pipes, ...) takes one slab object on first use, kept until
 * the socket closes.
 */
#ifndef ZEV_TCP_H
#define ZEV_TCP_H

#include <stdint.h>
#include <sys/types.h>

typedef struct zev_tcp_s zev_tcp_t;
typedef struct zev_tcp_server_s zev_tcp_server_t;

/* ---- TCP listener ------------------------------------------------------------------------- */

/* A connection is waiting: call zev_tcp_accept() now (a connection not accepted inside the
 * callback is closed and counted as dropped). status < 0 reports a failure to accept, such as
 * -EMFILE (once per shortage: waiting connections are shed until an accept succeeds again) or
 * -EPROTO (one waiting connection failed; the rest are still accepted); see docs/tcp.md. */
typedef void (*zev_tcp_connection_cb)(zev_tcp_server_t *server, int status);
/* A connection was closed at once because maxConnections was reached (Node's 'drop'). */
typedef void (*zev_tcp_drop_cb)(zev_tcp_server_t *server, const zev_sockaddr_t *peer);

typedef struct {
    int backlog;        /* 0: 511, as Node */
    int ipv6_only;      /* 1: an IPv6 listener does not accept IPv4-mapped peers (IPv6 only) */
    int reuse_port;     /* 1: SO_REUSEPORT, several listeners (one per loop) on one port */
} zev_tcp_listen_opts_t;

typedef struct {
    uint64_t accepted; /* connections handed to the connection callback */
    uint64_t dropped;  /* connections closed at once (maxConnections, not accepted, shed) */
    uint64_t accept_errors; /* failures reported to the connection callback */
    uint64_t shed;     /* of dropped: closed at once because descriptors ran out (EMFILE) */
} zev_tcp_server_stats_t;

struct zev_tcp_server_s {
    zev_handle_t handle;
    /* private */
    struct zev_watcher io;
    zev_tcp_connection_cb on_connection;
    zev_tcp_drop_cb on_drop;
    int pending_fd;           /* accepted, waiting for zev_tcp_accept inside the callback */
    int reserve_fd;           /* freed to shed the backlog on EMFILE */
    unsigned connections;
    unsigned max_connections; /* 0: no limit */
    unsigned backoff_ms;      /* current pause when the reserve cannot help */
    zev_tcp_server_stats_t stats;
    struct zev__timer_node backoff; /* resumes accepting after an EMFILE pause */
    zev_sockaddr_t pending_peer;
};

/* Initialise a listener. -EINVAL on NULL, -EBADF on a closed loop, -ENOMEM (the loop's handle
 * table, zev/inspect.h). */
ZEV_EXPORT int zev_tcp_server_init(zev_loop_t *loop, zev_tcp_server_t *server);
/* Listen on host ("127.0.0.1", "::1", NULL or "" for any IPv4, "::" for any IPv6) and port
 * (0: ephemeral). opts may be NULL. -EINVAL on bad text, port outside 0..65535, NULL cb or
 * ipv6_only on an IPv4 host; -EADDRINUSE, -EACCES, -EADDRNOTAVAIL from the kernel; -EBADF if
 * closed; -EALREADY if already listening. */
ZEV_EXPORT int zev_tcp_listen(zev_tcp_server_t *server, const char *host, int port,
                              const zev_tcp_listen_opts_t *opts, zev_tcp_connection_cb cb);
/* Take the waiting connection into client (initialised with zev_tcp_init, not yet used).
 * Only inside the connection callback. -EAGAIN if none is waiting, -EINVAL/-EBADF on bad
 * handles, -EISCONN if client is already in use. On failure client is still an open handle:
 * zev_close it (an initialised handle keeps zev_loop_close at -EBUSY). */
ZEV_EXPORT int zev_tcp_accept(zev_tcp_server_t *server, zev_tcp_t *client);
/* Adopt a listening stream socket opened elsewhere (systemd's socket activation, a parent
 * process; Node's server.listen({fd}), libuv's uv_tcp_open on a listener) and accept on it as
 * zev_tcp_listen does. From a 0 return zev owns fd: it is made non-blocking and close-on-exec,
 * and zev_close closes it; on failure fd is still the caller's. -EBADF for a closed fd,
 * -ENOTSOCK for a descriptor that is no socket, -EINVAL for a socket that is not a listening
 * stream socket (zev_tcp_open takes the others) or a NULL cb, -EAFNOSUPPORT for one neither
 * IPv4 nor IPv6 (AF_UNIX), -EALREADY if server is already listening. */
ZEV_EXPORT int zev_tcp_server_open(zev_tcp_server_t *server, int fd, zev_tcp_connection_cb cb);
/* Kernel buffer sizes of the listener, inherited by every socket accepted after the call;
 * as zev_tcp_set_recv_buffer_size. -ENOTCONN before listen or open. */
ZEV_EXPORT int zev_tcp_server_set_recv_buffer_size(zev_tcp_server_t *server, size_t bytes);
ZEV_EXPORT int zev_tcp_server_set_send_buffer_size(zev_tcp_server_t *server, size_t bytes);
ZEV_EXPORT int zev_tcp_server_recv_buffer_size(const zev_tcp_server_t *server);
ZEV_EXPORT int zev_tcp_server_send_buffer_size(const zev_tcp_server_t *server);
/* Address the listener is bound to (Node's server.address()). -ENOTCONN if not listening. */
ZEV_EXPORT int zev_tcp_server_address(const zev_tcp_server_t *server, zev_addr_info_t *out);
/* Live connections accepted from this listener and not yet closed (getConnections). */
ZEV_EXPORT int zev_tcp_server_connections(const zev_tcp_server_t *server);
/* Close connections over max at once and report them to cb (may be NULL); 0: no limit. */
ZEV_EXPORT int zev_tcp_server_set_max_connections(zev_tcp_server_t *server, unsigned max,
                                                  zev_tcp_drop_cb cb);
/* Counters. -EINVAL on NULL. */
ZEV_EXPORT int zev_tcp_server_stats(const zev_tcp_server_t *server, zev_tcp_server_stats_t *out);
/* zev_close(&server->handle, cb) stops accepting at once; cb runs after every connection
 * accepted from it has closed too (Node's server.close). */

/* ---- TCP stream socket -------------------------------------------------------------------- */

/* Events of a socket, usually one static const table shared by every connection. Any entry
 * may be NULL. Each runs from the loop, never inside the call that caused it. */
typedef struct {
    /* Bytes arrived. The slice is valid during the call; zev_buf_ref(slice->owner) keeps it. */
    void (*data)(zev_tcp_t *t, const zev_slice_t *slice);
    /* The peer ended its side (EOF). Unless allow_half_open, zev ends ours after flushing. */
    void (*end)(zev_tcp_t *t);
    /* The connection failed (-ECONNRESET, -ETIMEDOUT, -EPIPE...). Reading has stopped and
     * queued writes completed with err; close the socket. Runs once. */
    void (*error)(zev_tcp_t *t, int err);
    /* The write queue fell back under the high-water mark after a write returned 1. */
    void (*drain)(zev_tcp_t *t);
    /* No read or write (no read, with ZEV_TCP_TIMEOUT_READ) for the idle timeout (Node's
     * 'timeout'); nothing is closed for you. */
    void (*timeout)(zev_tcp_t *t);
    /* After zev_tcp_end (or the automatic end on peer EOF): every queued byte was written and
     * our side is shut down (Node's 'finish'). A good moment to close once 'end' was seen. */
    void (*finish)(zev_tcp_t *t);
} zev_tcp_events_t;

typedef void (*zev_tcp_connect_cb)(zev_tcp_t *t, int status);
/* A write finished: status 0 (every byte handed to the kernel) or a negative errno
 * (-ECANCELED if the socket was closed first). */
typedef void (*zev_tcp_write_cb)(zev_tcp_t *t, int status, void *arg);

struct zev__wentry;
struct zev__tcp_extra;

/* Only what every connection needs, or what the per-message path touches, is inline; the rest
 * (timeouts, pipes, connect callback, user read buffer, a non-default high-water mark) is in
 * one 128-byte object from the loop's slab, taken on first use and released at close. The
 * calls that may need it say "-ENOMEM" below. docs/internals.md draws the layout. */
struct zev_tcp_s {
    zev_handle_t handle;
    /* private */
    struct zev_watcher io;            /* right after the handle (see zev__watcher_dispatch) */
    const zev_tcp_events_t *events;
    zev_tcp_server_t *server;         /* the listener it came from, for its connection count */
    struct zev__wentry *wq_tail;      /* write queue, circular: wq_tail->next is its head */
    size_t wq_held;                   /* memory held by unsent entries (src/tcp/write.c) */
    uint32_t wq_writes;               /* writes whose callback is still due */
    int err;                          /* the failure being (or that was) reported */
    uint64_t bytes_read;
    uint64_t bytes_written;
    struct zev__tcp_extra *extra;     /* rare state, or NULL: none set (src/tcp/tcp_internal.h) */
};

/* Initialise a socket for connect or accept. -EINVAL on NULL, -EBADF on a closed loop, -ENOMEM
 * (the loop's handle table, zev/inspect.h). */
ZEV_EXPORT int zev_tcp_init(zev_loop_t *loop, zev_tcp_t *t);
/* Set the event table (kept by pointer; it must outlive the socket). NULL clears. */
ZEV_EXPORT int zev_tcp_set_events(zev_tcp_t *t, const zev_tcp_events_t *events);
/* zev_tcp_bind flags. */
#define ZEV_TCP_BIND_IPV6_ONLY 1u /* an IPv6 address only: no IPv4-mapped connects */

/* Bind an idle socket to a local address and port before zev_tcp_connect (Node's
 * localAddress/localPort, libuv's uv_tcp_bind): the connect then leaves from there. host is
 * numeric (NULL or "": any IPv4 address, "::": any IPv6), port 0: ephemeral. Sets SO_REUSEADDR,
 * as libuv does. The socket then has a descriptor: options such as the buffer sizes may be set
 * before the connect. A connect by name tries only the addresses of the bound family, one at
 * a time (docs/tcp.md, "Binding before connecting"). -EINVAL on bad text, port or flags, or if
 * t is already bound, connecting or connected; -EADDRINUSE, -EADDRNOTAVAIL, -EACCES from the
 * kernel; -EBADF if closed. */
ZEV_EXPORT int zev_tcp_bind(zev_tcp_t *t, const char *host, int port, unsigned flags);
/* Adopt a stream socket opened elsewhere (libuv's uv_tcp_open, Node's new net.Socket({fd})).
 * Connected, t is open for reading and writing at once; not connected (fresh or bound), t is
 * as after zev_tcp_bind, ready for zev_tcp_connect (a connect already in progress is not
 * adopted). From a 0 return zev owns fd: it is made non-blocking and close-on-exec, and
 * zev_close closes it; on failure fd is still the caller's. -EBADF for a closed fd, -ENOTSOCK
 * for a descriptor that is no socket, -EINVAL for a datagram or a listening socket
 * (zev_tcp_server_open), -EAFNOSUPPORT for one neither IPv4 nor IPv6 (AF_UNIX), -EISCONN if t
 * is in use. */
ZEV_EXPORT int zev_tcp_open(zev_tcp_t *t, int fd);
/* Connect to host and port; cb(t, 0) once the kernel reports the handshake done, or cb(t,
 * -ECONNREFUSED, -ETIMEDOUT, -ENETUNREACH...). Numeric text connects at once; a host name is
 * looked up on the loop's resolver threads (zev_resolve) and its addresses raced, IPv6 and
 * IPv4 250 ms apart (RFC 8305, Node's autoSelectFamily; docs/names.md), with no descriptor
 * until one wins; a failed lookup gives cb -ZEV_EAI_NONAME etc. Writes, end and sendfile made
 * before cb only queue, and go out after it. Closing t before that abandons the connect (and
 * lookup) and cb is never called (Node: no 'connect' after destroy). -EINVAL on bad text or
 * port or NULL, -EISCONN if in use, -ENOMEM if the socket's extra state could not be had (the
 * callback is kept there) or, for a name, the lookup's. On a bound socket: -EAFNOSUPPORT for an
 * address of the other family. */
ZEV_EXPORT int zev_tcp_connect(zev_tcp_t *t, const char *host, int port, zev_tcp_connect_cb cb);
/* As zev_tcp_connect with a parsed address. */
ZEV_EXPORT int zev_tcp_connect_addr(zev_tcp_t *t, const zev_sockaddr_t *addr,
                                    zev_tcp_connect_cb cb);
/* Fail a connect that has not finished after timeout_ms with -ETIMEDOUT (0: no limit, the
 * kernel's; at most about 49 days); by name, it covers the lookup too. Call before connect. -EINVAL on negative, -EISCONN once connecting, -ENOMEM (not
 * for 0 on a socket that has no timeout yet: that allocates nothing). */
ZEV_EXPORT int zev_tcp_set_connect_timeout(zev_tcp_t *t, int64_t timeout_ms);

/* Start delivering data (Node's resume). Data already buffered is delivered next iteration.
 * -ENOTCONN before connect/accept, -EBADF if closed. */
ZEV_EXPORT int zev_tcp_read_start(zev_tcp_t *t);
/* Stop delivering data (Node's pause); bytes wait in the kernel. */
ZEV_EXPORT int zev_tcp_read_stop(zev_tcp_t *t);
/* Read into buf (caller-owned, len bytes) instead of the pool: slices then have owner NULL
 * and are only valid during the data callback. buf NULL returns to the pool; so does being a
 * pipe's source, until unpiped. -EINVAL if buf is set and len is 0, -EBADF if closed, -ENOMEM
 * (never for buf NULL). */
ZEV_EXPORT int zev_tcp_set_read_buffer(zev_tcp_t *t, void *buf, size_t len);

/* Write n slices in order. Raw slices (owner NULL) must stay valid until cb; refcounted ones
 * are held by the queue until sent. Tries the kernel at once; queues what remains by
 * reference. cb (may be NULL) always runs later from the loop. Returns 0, or 1 when the
 * memory the queue holds (zev_tcp_write_queue_memory: entries, unsent raw bytes, whole pinned
 * chunks, carved slices' bytes) is above the high-water mark (wait for the drain event); -EPIPE after end, -EBADF
 * if closed, -EINVAL on bad args, -ENOMEM if no queue entry could be had. Failures of the
 * connection arrive in cb and the error event. */
ZEV_EXPORT int zev_tcp_write(zev_tcp_t *t, const zev_slice_t *slices, unsigned n,
                             zev_tcp_write_cb cb, void *arg);
/* Write what the kernel takes now, queue nothing, call nothing (libuv's uv_try_write): returns
 * how many bytes from the front of slices were written (at most 64 slices and INT_MAX bytes
 * are tried), or -EAGAIN if the kernel took none, while connecting, or while an earlier write
 * still has bytes queued (they go first). The slices are free again on return. -EPIPE after
 * end, -ENOTCONN before connect, -EBADF if closed, -EINVAL on bad args, or the kernel's
 * failure (-ECONNRESET, -EPIPE), returned only: no event reports it. */
ZEV_EXPORT int zev_tcp_try_write(zev_tcp_t *t, const zev_slice_t *slices, unsigned n);
/* Queue len bytes of file fd from offset, sent with sendfile in order with other writes;
 * the caller keeps fd open until cb. Counts as one queue entry toward the high-water mark (the
 * file's bytes are not in memory). -ENOSYS where sendfile is unavailable. */
ZEV_EXPORT int zev_tcp_sendfile(zev_tcp_t *t, int fd, off_t offset, size_t len,
                                zev_tcp_write_cb cb, void *arg);
/* Half-close: shut down our side once every queued byte is written (Node's end()). Later
 * writes fail with -EPIPE. Idempotent. */
ZEV_EXPORT int zev_tcp_end(zev_tcp_t *t);
/* Destroy: zev_close(&t->handle, cb). Queued writes complete with -ECANCELED. */
/* Destroy with a reset (libuv's uv_tcp_close_reset, Node's resetAndDestroy()): the peer gets
 * RST and sees -ECONNRESET, not an orderly end; unsent bytes are dropped. Then as zev_close.
 * -EINVAL on NULL, -EBADF if closing or closed, or the setsockopt errno. */
ZEV_EXPORT int zev_tcp_close_reset(zev_tcp_t *t, zev_close_cb cb);

/* Node's allowHalfOpen: 1 keeps our side open after the peer's EOF (default 0). */
ZEV_EXPORT int zev_tcp_set_allow_half_open(zev_tcp_t *t, int enable);
/* Write-queue high-water mark in bytes of memory held (default 64 KiB; docs/tcp.md,
 * "Backpressure"). -EINVAL if 0 or above 1 GiB, -EBADF if closed, -ENOMEM for a value other
 * than the default (setting the default allocates nothing). */
ZEV_EXPORT int zev_tcp_set_high_water_mark(zev_tcp_t *t, size_t bytes);
/* Idle timeout (Node's setTimeout): the timeout event after ms without I/O; 0 disables.
 * Costs no heap operation per read or write. -EINVAL on negative, -EBADF if closed, -ENOMEM
 * (never for 0 on a socket that has no timeout). */
ZEV_EXPORT int zev_tcp_set_timeout(zev_tcp_t *t, int64_t ms);
/* zev_tcp_set_timeout's flags: only reads count as activity (a client that only receives,
 * such as a chat subscriber that never speaks, is still idle). */
enum { ZEV_TCP_TIMEOUT_READ = 1 };
/* As zev_tcp_set_timeout, with flags (0: reads and writes count, as Node's setTimeout); a
 * later call replaces both. -EINVAL on negative ms or unknown flags; else as above. */
ZEV_EXPORT int zev_tcp_set_timeout_ex(zev_tcp_t *t, int64_t ms, unsigned flags);
/* TCP_NODELAY on or off. -ENOTCONN without a socket yet. */
ZEV_EXPORT int zev_tcp_set_nodelay(zev_tcp_t *t, int enable);
/* SO_KEEPALIVE, with the first probe after delay_s seconds (0: the system's). */
ZEV_EXPORT int zev_tcp_set_keepalive(zev_tcp_t *t, int enable, unsigned delay_s);

/* Kernel buffer sizes in bytes (libuv's uv_recv_buffer_size / uv_send_buffer_size, as
 * zev_udp_set_recv_buffer_size). The setters take 1..INT_MAX (-EINVAL outside); the getters
 * return what the kernel reports, which on Linux is twice the last request (capped by
 * net.core.rmem_max / wmem_max; libuv reports the same doubled value), or a negative errno.
 * -ENOTCONN without a descriptor (before connect, accept, open or bind). */
ZEV_EXPORT int zev_tcp_set_recv_buffer_size(zev_tcp_t *t, size_t bytes);
ZEV_EXPORT int zev_tcp_set_send_buffer_size(zev_tcp_t *t, size_t bytes);
ZEV_EXPORT int zev_tcp_recv_buffer_size(const zev_tcp_t *t);
ZEV_EXPORT int zev_tcp_send_buffer_size(const zev_tcp_t *t);

/* Local and peer address (Node's address(), remoteAddress/remotePort/remoteFamily). */
ZEV_EXPORT int zev_tcp_local_address(const zev_tcp_t *t, zev_addr_info_t *out);
ZEV_EXPORT int zev_tcp_remote_address(const zev_tcp_t *t, zev_addr_info_t *out);
/* Counters: Node's bytesRead, bytesWritten, writableLength (bytes queued, not yet written;
 * O(queued entries)); writes still pending. */
ZEV_EXPORT uint64_t zev_tcp_bytes_read(const zev_tcp_t *t);
ZEV_EXPORT uint64_t zev_tcp_bytes_written(const zev_tcp_t *t);
ZEV_EXPORT size_t zev_tcp_write_queue_size(const zev_tcp_t *t);
ZEV_EXPORT unsigned zev_tcp_write_queue_count(const zev_tcp_t *t);
/* What the high-water mark compares: bytes of memory the write queue holds, 64 per entry plus
 * unsent raw bytes plus every pool chunk a queued slice pins, whole (a zev_buf_alloc slice,
 * whose chunk is shared: its unsent bytes). O(1); 0 on NULL. */
ZEV_EXPORT size_t zev_tcp_write_queue_memory(const zev_tcp_t *t);
/* The file descriptor, or -EBADF. For options zev does not wrap; do not read or write it. */
ZEV_EXPORT int zev_tcp_fileno(const zev_tcp_t *t);

/* ---- pipe: zero-copy forwarding with backpressure ------------------------------------------ */

typedef struct zev_tcp_pipe_s zev_tcp_pipe_t;
struct zev_tcp_pipe_s {
    /* private */
    zev_tcp_t *src;
    zev_tcp_t *dst;
    int end_dst; /* end dst when src ends */
};

/* Forward everything src reads to dst without copying, pausing src while dst is above its
 * high-water mark and resuming on drain; ends dst when src ends unless end_dst is 0. While
 * piped, src's data goes to dst only (its data event is not called); every other event still
 * reaches both sockets' own tables. A socket may be the source of one pipe and the destination
 * of another (a two-way proxy: set allow_half_open on both sockets, or one side's EOF ends the
 * other direction too, and what still comes back is refused with -EPIPE on its source). The
 * caller owns p until zev_tcp_unpipe or until either socket closes. src reads into the pool
 * while piped, even if it has a user read buffer. -EINVAL on NULL, src == dst or sockets of
 * two loops, -EBADF if either is closed, -EBUSY if src is already a source or dst already a
 * destination, -ENOMEM if either socket's extra state could not be had. */
ZEV_EXPORT int zev_tcp_pipe(zev_tcp_pipe_t *p, zev_tcp_t *src, zev_tcp_t *dst, int end_dst);
/* Stop forwarding; restores both sockets' own event tables. src stays as it was (reading or
 * paused). */
ZEV_EXPORT int zev_tcp_unpipe(zev_tcp_pipe_t *p);

#endif /* ZEV_TCP_H */
