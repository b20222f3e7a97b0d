/* src/udp/options.c: unicast socket options (TTL, broadcast, kernel buffer sizes), zev's own
 * receive settings (batch and slot size), counters and the descriptor. Ranges are checked here,
 * as Node checks them, even where a kernel would accept more. Multicast options live in
 * multicast.c.
 */
#include "udp_internal.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>

static int set_int(const zev_udp_t *u, int level, int name, int value) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    return zev__sys_setsockopt_int(fd, level, name, value);
}

static int get_int(const zev_udp_t *u, int level, int name) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    int value;
    int err = zev__sys_getsockopt_int(fd, level, name, &value);
    return err < 0 ? err : value;
}

int zev_udp_set_ttl(zev_udp_t *u, int ttl) {
    if (!u || ttl < 1 || ttl > 255) return -EINVAL;
    if (u->family == AF_INET) return set_int(u, IPPROTO_IP, IP_TTL, ttl);
    return set_int(u, IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl);
}

int zev_udp_set_broadcast(zev_udp_t *u, int enable) {
    return set_int(u, SOL_SOCKET, SO_BROADCAST, enable ? 1 : 0);
}

static int set_buffer(zev_udp_t *u, int name, size_t bytes) {
    if (!u || bytes == 0 || bytes > INT_MAX) return -EINVAL;
    return set_int(u, SOL_SOCKET, name, (int)bytes);
}

int zev_udp_set_recv_buffer_size(zev_udp_t *u, size_t bytes) {
    return set_buffer(u, SO_RCVBUF, bytes);
}

int zev_udp_set_send_buffer_size(zev_udp_t *u, size_t bytes) {
    return set_buffer(u, SO_SNDBUF, bytes);
}

int zev_udp_recv_buffer_size(const zev_udp_t *u) {
    return get_int(u, SOL_SOCKET, SO_RCVBUF);
}

int zev_udp_send_buffer_size(const zev_udp_t *u) {
    return get_int(u, SOL_SOCKET, SO_SNDBUF);
}

int zev_udp_set_batch_size(zev_udp_t *u, unsigned n) {
    if (!u || n == 0 || n > ZEV_UDP_BATCH_MAX) return -EINVAL;
    if (!zev__handle_usable(&u->handle)) return zev__handle_error(&u->handle);
    u->batch = n;
    return 0;
}

int zev_udp_set_max_datagram(zev_udp_t *u, size_t bytes) {
    if (!u) return -EINVAL;
    if (!zev__handle_usable(&u->handle)) return zev__handle_error(&u->handle);
    if (bytes == 0 || bytes > u->handle.loop->pool.stats.chunk_size) return -EINVAL;
    u->max_datagram = bytes;
    return 0;
}

int zev_udp_stats(const zev_udp_t *u, zev_udp_stats_t *out) {
    if (!u || !out) return -EINVAL;
    *out = u->stats;
    return 0;
}

int zev_udp_fileno(const zev_udp_t *u) {
    if (!u || u->io.fd < 0) return -EBADF;
    return u->io.fd;
}
