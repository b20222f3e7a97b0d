/* src/tcp/connect.c: client connections (Node's socket.connect): the connecting phase.
 *
 *   IDLE ──zev_tcp_connect──► CONNECTING ──answer 0────► CONNECTED
 *                                  └───────answer < 0──► CLOSED (the user closes it)
 *
 * A non-blocking connect() usually answers EINPROGRESS. The answer then comes from exactly one
 * of four facts:
 *  1. the kernel reports the socket writable, in error or hung up, and SO_ERROR says which way
 *     the handshake went. Only a kernel event may be asked: during SYN_SENT SO_ERROR is 0
 *     too, so an event the library fed itself would read as a success;
 *  2. connect() answered at once (0 or an error): ZEV__TCP_CONNECT_DUE with t->err, reported
 *     from the loop so that the callback never runs inside zev_tcp_connect;
 *  3. the connect timeout fired (stream.c hands it here);
 *  4. a failure was recorded meanwhile (zev__tcp_fail: a write that could not be queued).
 * Writes, end and sendfile made while connecting only queue and feed nothing (write.c); they
 * go out after the connect callback, as ordinary work of the connected phase.
 *
 * A connect by name (eyeballs.c) is CONNECTING from the call on, through the lookup and the
 * attempts, with no descriptor; the winning attempt's descriptor is attached and reported as
 * fact 2, so the same four facts end it.
 *
 * An IDLE socket may already hold a descriptor, bound (zev_tcp_bind) or adopted unconnected
 * (zev_tcp_open). It is not registered with the loop until the connect: an unconnected socket
 * reads as hung up, and that must not pass for the peer's. The connect then uses it.
 */
#include "tcp_internal.h"

#include <errno.h>
#include <netinet/in.h>

int zev_tcp_bind(zev_tcp_t *t, const char *host, int port, unsigned flags) {
    if (!t || (flags & ~ZEV_TCP_BIND_IPV6_ONLY)) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (t->io.fd >= 0 || zev__tcp_phase(t) != ZEV__TCP_IDLE) return -EINVAL;
    zev_sockaddr_t addr;
    int err = zev_addr_parse(&addr, host, port);
    if (err < 0) return err;
    bool v6 = addr.sa.sa_family == AF_INET6;
    if ((flags & ZEV_TCP_BIND_IPV6_ONLY) && !v6) return -EINVAL;

    int fd = zev__sys_socket(addr.sa.sa_family, SOCK_STREAM, 0);
    if (fd < 0) return fd;
    /* libuv's choice: a fixed local port can be bound again while its last connection waits
     * in TIME_WAIT. It never lets two sockets share a port with a listener. */
    err = zev__sys_setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (err == 0 && v6) {
        int only = (flags & ZEV_TCP_BIND_IPV6_ONLY) ? 1 : 0;
        err = zev__sys_setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, only);
    }
    if (err == 0) err = zev__sys_bind(fd, &addr.sa, zev_addr_len(&addr));
    if (err < 0) goto close_fd;
    t->io.fd = fd; /* held, not watched, until the connect (see the top of this file) */
    return 0;

close_fd:
    zev__sys_close(fd);
    return err;
}

int zev_tcp_open(zev_tcp_t *t, int fd) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (t->io.fd >= 0 || zev__tcp_phase(t) != ZEV__TCP_IDLE) return -EISCONN;
    struct zev__sock_kind kind;
    int err = zev__sock_describe(fd, SOCK_STREAM, &kind);
    if (err < 0) return err;
    if (kind.listening) return -EINVAL; /* zev_tcp_server_open's */
    err = zev__sock_own(fd);
    if (err < 0) return err;
    if (!kind.connected) {
        t->io.fd = fd; /* as if bound: zev_tcp_connect uses it */
        return 0;
    }
    err = zev__tcp_attach_connected(t, fd);
    if (err < 0) return err;
    zev__tcp_set_phase(t, ZEV__TCP_CONNECTED);
    return 0;
}

/* The family of an idle socket's own descriptor, or a negative errno. */
static int bound_family(int fd) {
    zev_sockaddr_t local;
    socklen_t len = sizeof(local);
    int err = zev__sys_getsockname(fd, &local.sa, &len);
    return err < 0 ? err : local.sa.sa_family;
}

/* Numeric text takes the direct path, with no lookup and no thread. */
int zev_tcp_connect(zev_tcp_t *t, const char *host, int port, zev_tcp_connect_cb cb) {
    if (!t || !host || !cb) return -EINVAL;
    zev_sockaddr_t addr;
    if (zev_addr_parse(&addr, host, port) == 0) return zev_tcp_connect_addr(t, &addr, cb);
    if (port <= 0 || port > 65535 || !zev__resolve_name_valid(host)) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (zev__tcp_phase(t) != ZEV__TCP_IDLE) return -EISCONN;
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;
    int err = zev__tcp_name_start(t, host, port);
    if (err < 0) return err;
    x->connect_cb = cb;
    t->err = 0;
    zev__tcp_set_phase(t, ZEV__TCP_CONNECTING);
    zev__tcp_timeout_connect_started(t); /* the timeout covers the lookup too */
    zev__tcp_update_active(t);
    return 0;
}

int zev_tcp_connect_addr(zev_tcp_t *t, const zev_sockaddr_t *addr, zev_tcp_connect_cb cb) {
    if (!t || !addr || !cb) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    unsigned len = zev_addr_len(addr);
    if (len == 0) return -EAFNOSUPPORT;
    if (zev__addr_port(addr) == 0) return -EINVAL; /* port 0 is not a destination */
    if (zev__tcp_phase(t) != ZEV__TCP_IDLE) return -EISCONN;
    int fd = t->io.fd; /* bound or adopted: connect from it */
    if (fd >= 0) {
        int family = bound_family(fd);
        if (family < 0) return family;
        if (family != addr->sa.sa_family) return -EAFNOSUPPORT;
    }
    /* The callback waits in the extra state: take it before anything needs undoing. */
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;

    bool own = fd < 0;
    if (own) fd = zev__sys_socket(addr->sa.sa_family, SOCK_STREAM, 0);
    if (fd < 0) return fd;
    int err = zev__tcp_attach(t, fd);
    if (err < 0) goto close_fd;

    x->connect_cb = cb;
    t->err = 0;
    zev__tcp_set_phase(t, ZEV__TCP_CONNECTING);
    int r;
    do {
        r = zev__sys_connect(fd, &addr->sa, len);
    } while (r == -EINTR);
    if (r != -EINPROGRESS) {
        /* Known now (0 or an error): record it as a fact, and look at it from the loop. */
        t->err = r;
        t->handle.flags |= ZEV__TCP_CONNECT_DUE;
        zev__watcher_feed(t->handle.loop, &t->io, ZEV__WRITABLE);
    }
    zev__tcp_timeout_connect_started(t);
    zev__tcp_update_active(t);
    return 0;

close_fd:
    if (own) {
        zev__sys_close(fd);
    } else {
        t->io.fd = fd; /* still the socket's, bound and idle */
    }
    return err;
}

int zev__tcp_handshake_status(int fd, unsigned revents) {
    /* Readable alone is no answer: bytes cannot come before the handshake is done, and the
     * writable edge that says so is on its way. */
    if (!(revents & (ZEV__WRITABLE | ZEV__ERROR | ZEV__HANGUP))) return -EINPROGRESS;
    int so_error;
    int err = zev__sys_getsockopt_int(fd, SOL_SOCKET, SO_ERROR, &so_error);
    if (err < 0) return err;
    return so_error == EINPROGRESS ? -EINPROGRESS : -so_error;
}

int zev__tcp_connect_result(zev_tcp_t *t, unsigned revents) {
    if (t->handle.flags & ZEV__TCP_CONNECT_DUE) return t->err;
    return zev__tcp_handshake_status(t->io.fd, revents);
}

/* The connect failed: the socket is unusable. Stop hearing from it; the user closes it. */
static void connect_failed(zev_tcp_t *t, int status) {
    t->err = status;
    t->handle.flags |= ZEV__TCP_FAILED | ZEV__TCP_REPORTED;
    t->handle.flags &= ~ZEV__TCP_READING;
    zev__tcp_set_phase(t, ZEV__TCP_CLOSED);
    zev__watcher_stop(t->handle.loop, &t->io);
}

bool zev__tcp_connect_finish(zev_tcp_t *t, int status) {
    zev__tcp_name_end(t); /* a timeout or a failure may end a connect by name early */
    t->handle.flags &= ~ZEV__TCP_CONNECT_DUE;
    if (status == 0) {
        zev__tcp_set_phase(t, ZEV__TCP_CONNECTED);
    } else {
        connect_failed(t, status);
    }
    zev__tcp_timeout_connect_ended(t);
    zev__tcp_update_active(t);
    /* Connecting implies the extra state: zev_tcp_connect_addr took it, only close frees it. */
    zev_tcp_connect_cb cb = t->extra->connect_cb;
    t->extra->connect_cb = NULL;
    cb(t, status);
    if (zev__tcp_closing(t)) return false;
    if (status == 0) return true;
    /* Writes queued behind a connect that failed were never sent. */
    zev__tcp_cancel_writes(t, status);
    zev__tcp_update_active(t);
    return false;
}
