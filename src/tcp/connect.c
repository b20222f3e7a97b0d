/* src/tcp/connect.c: client connections (Node's socket.connect).
 *
 * A non-blocking connect() usually answers EINPROGRESS; the socket turns writable when the
 * handshake finishes either way, and SO_ERROR tells which way. Results that are known at once
 * (an immediate success or refusal) are still reported from the loop, through the watcher's
 * pending queue, so the callback never runs inside zev_tcp_connect.
 */
#include "tcp_internal.h"

#include <errno.h>
#include <netinet/in.h>

int zev_tcp_connect(zev_tcp_t *t, const char *host, int port, zev_tcp_connect_cb cb) {
    if (!t || !host || !cb) return -EINVAL;
    zev_sockaddr_t addr;
    int err = zev_addr_parse(&addr, host, port);
    if (err < 0) return err;
    return zev_tcp_connect_addr(t, &addr, cb);
}

int zev_tcp_connect_addr(zev_tcp_t *t, const zev_sockaddr_t *addr, zev_tcp_connect_cb cb) {
    if (!t || !addr || !cb) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return -EBADF;
    unsigned len = zev_addr_len(addr);
    if (len == 0) return -EAFNOSUPPORT;
    if (zev__addr_port(addr) == 0) return -EINVAL; /* port 0 is not a destination */
    if (t->io.fd >= 0 || t->handle.flags & (ZEV__TCP_CONNECTING | ZEV__TCP_CONNECTED))
        return -EISCONN;
    /* The callback waits in the extra state: take it before anything needs undoing. */
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;

    int fd = zev__sys_socket(addr->sa.sa_family, SOCK_STREAM, 0);
    if (fd < 0) return fd;
    int err = zev__tcp_attach(t, fd);
    if (err < 0) goto close_fd;

    x->connect_cb = cb;
    t->err = 0;
    t->handle.flags |= ZEV__TCP_CONNECTING;
    int r;
    do {
        r = zev__sys_connect(fd, &addr->sa, len);
    } while (r == -EINTR);
    if (r != -EINPROGRESS) {
        /* Known now (0 or an error); tell the callback from the loop. */
        t->err = r;
        t->handle.flags |= ZEV__TCP_CONNECT_DUE;
        zev__watcher_feed(t->handle.loop, &t->io, ZEV__WRITABLE);
    }
    zev__tcp_timeout_connect_started(t);
    zev__tcp_update_active(t);
    return 0;

close_fd:
    zev__sys_close(fd);
    return err;
}

static int connect_status(zev_tcp_t *t) {
    if (t->handle.flags & ZEV__TCP_CONNECT_DUE) return t->err;
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    int err = zev__sys_getsockopt(t->io.fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (err < 0) return err;
    return so_error == EINPROGRESS ? -EINPROGRESS : -so_error;
}

void zev__tcp_on_connect_result(zev_tcp_t *t) {
    if (!(t->handle.flags & ZEV__TCP_CONNECTING)) return;
    int status = connect_status(t);
    if (status == -EINPROGRESS) return; /* a spurious wake-up: keep waiting */
    t->handle.flags &= ~(ZEV__TCP_CONNECTING | ZEV__TCP_CONNECT_DUE);
    zev__tcp_timeout_connect_ended(t);
    if (status == 0) {
        t->handle.flags |= ZEV__TCP_CONNECTED;
    } else {
        /* The socket is unusable; stop hearing from it and let the user close it. */
        t->err = status;
        t->handle.flags |= ZEV__TCP_FAILED | ZEV__TCP_REPORTED;
        t->handle.flags &= ~ZEV__TCP_READING;
        zev__watcher_stop(t->handle.loop, &t->io);
    }
    zev__tcp_update_active(t);
    /* Connecting implies the extra state: zev_tcp_connect_addr took it, only close frees it. */
    zev_tcp_connect_cb cb = t->extra->connect_cb;
    t->extra->connect_cb = NULL;
    cb(t, status);
    if (zev__tcp_closing(t)) return;
    if (status < 0) {
        zev__tcp_cancel_writes(t, status);
        return;
    }
    /* Writes queued while connecting. */
    if (!zev__tcp_wq_empty(t) || t->handle.flags & ZEV__TCP_ENDING) zev__tcp_flush(t);
    /* Bytes that came with the handshake raised their edge while we were connecting. */
    if (zev__tcp_closing(t)) return;
    if ((t->handle.flags & ZEV__TCP_READING) && (t->handle.flags & ZEV__TCP_READ_MISSED)) {
        t->handle.flags &= ~ZEV__TCP_READ_MISSED;
        zev__watcher_feed(t->handle.loop, &t->io, ZEV__READABLE);
    }
    zev__tcp_update_active(t);
}
