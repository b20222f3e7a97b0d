/* src/tcp/options.c: socket options, addresses and counters of a stream socket, and the kernel
 * buffer sizes of sockets and listeners. */
#include "tcp_internal.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#define MAX_HWM (1u << 30)

static int socket_fd(const zev_tcp_t *t) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    return t->io.fd >= 0 ? t->io.fd : -ENOTCONN;
}

int zev_tcp_set_nodelay(zev_tcp_t *t, int enable) {
    int fd = socket_fd(t);
    if (fd < 0) return fd;
    return zev__sys_setsockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, enable ? 1 : 0);
}

int zev_tcp_set_keepalive(zev_tcp_t *t, int enable, unsigned delay_s) {
    int fd = socket_fd(t);
    if (fd < 0) return fd;
    if (delay_s > 32767) return -EINVAL; /* the kernels' limit for the idle time */
    int err = zev__sys_setsockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, enable ? 1 : 0);
    if (err < 0 || !enable || delay_s == 0) return err;
#if defined(TCP_KEEPIDLE)
    return zev__sys_setsockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)delay_s);
#elif defined(TCP_KEEPALIVE)
    return zev__sys_setsockopt_int(fd, IPPROTO_TCP, TCP_KEEPALIVE, (int)delay_s);
#else
    return 0;
#endif
}

/* ---- kernel buffer sizes: the same contract as zev_udp_set_recv_buffer_size ---- */

static int server_fd(const zev_tcp_server_t *s) {
    if (!s) return -EINVAL;
    if (!zev__handle_usable(&s->handle)) return zev__handle_error(&s->handle);
    return s->handle.flags & ZEV__TCP_LISTENING ? s->io.fd : -ENOTCONN;
}

/* The value is checked before the descriptor, so a bad value is -EINVAL in every state. */
static int set_buffer(int fd, int name, size_t bytes) {
    if (bytes == 0 || bytes > INT_MAX) return -EINVAL;
    if (fd < 0) return fd;
    return zev__sys_setsockopt_int(fd, SOL_SOCKET, name, (int)bytes);
}

/* What the kernel reports: Linux doubles a request for its own bookkeeping (socket(7)). */
static int get_buffer(int fd, int name) {
    if (fd < 0) return fd;
    int value;
    int err = zev__sys_getsockopt_int(fd, SOL_SOCKET, name, &value);
    return err < 0 ? err : value;
}

int zev_tcp_set_recv_buffer_size(zev_tcp_t *t, size_t bytes) {
    return t ? set_buffer(socket_fd(t), SO_RCVBUF, bytes) : -EINVAL;
}

int zev_tcp_set_send_buffer_size(zev_tcp_t *t, size_t bytes) {
    return t ? set_buffer(socket_fd(t), SO_SNDBUF, bytes) : -EINVAL;
}

int zev_tcp_recv_buffer_size(const zev_tcp_t *t) {
    return get_buffer(socket_fd(t), SO_RCVBUF);
}

int zev_tcp_send_buffer_size(const zev_tcp_t *t) {
    return get_buffer(socket_fd(t), SO_SNDBUF);
}

int zev_tcp_server_set_recv_buffer_size(zev_tcp_server_t *s, size_t bytes) {
    return s ? set_buffer(server_fd(s), SO_RCVBUF, bytes) : -EINVAL;
}

int zev_tcp_server_set_send_buffer_size(zev_tcp_server_t *s, size_t bytes) {
    return s ? set_buffer(server_fd(s), SO_SNDBUF, bytes) : -EINVAL;
}

int zev_tcp_server_recv_buffer_size(const zev_tcp_server_t *s) {
    return get_buffer(server_fd(s), SO_RCVBUF);
}

int zev_tcp_server_send_buffer_size(const zev_tcp_server_t *s) {
    return get_buffer(server_fd(s), SO_SNDBUF);
}

int zev_tcp_set_allow_half_open(zev_tcp_t *t, int enable) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (enable) {
        t->handle.flags |= ZEV__TCP_HALF_OPEN;
    } else {
        t->handle.flags &= ~ZEV__TCP_HALF_OPEN;
    }
    return 0;
}

int zev_tcp_set_high_water_mark(zev_tcp_t *t, size_t bytes) {
    if (!t || bytes == 0 || bytes > MAX_HWM) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (bytes == ZEV__TCP_DEFAULT_HWM && !t->extra) return 0; /* already: nothing to allocate */
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;
    x->hwm = (uint32_t)bytes;
    return 0;
}

static int address_of(const zev_tcp_t *t, zev_addr_info_t *out, bool peer) {
    if (!out) return -EINVAL;
    int fd = socket_fd(t);
    if (fd < 0) return fd;
    zev_sockaddr_t addr;
    socklen_t len = sizeof(addr);
    int r = peer ? zev__sys_getpeername(fd, &addr.sa, &len)
                 : zev__sys_getsockname(fd, &addr.sa, &len);
    if (r < 0) return r;
    return zev_addr_info(&addr, out);
}

int zev_tcp_local_address(const zev_tcp_t *t, zev_addr_info_t *out) {
    return address_of(t, out, false);
}

int zev_tcp_remote_address(const zev_tcp_t *t, zev_addr_info_t *out) {
    return address_of(t, out, true);
}

uint64_t zev_tcp_bytes_read(const zev_tcp_t *t) {
    return t ? t->bytes_read : 0;
}

uint64_t zev_tcp_bytes_written(const zev_tcp_t *t) {
    return t ? t->bytes_written : 0;
}

unsigned zev_tcp_write_queue_count(const zev_tcp_t *t) {
    return t ? t->wq_writes : 0;
}

int zev_tcp_fileno(const zev_tcp_t *t) {
    if (!t || t->io.fd < 0) return -EBADF;
    return t->io.fd;
}
