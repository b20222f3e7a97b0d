/* src/udp/udp.c: a UDP socket's life: open, bind, connect and disconnect, addresses, event
 * dispatch and close. Receiving (recv.c), the send queue (send.c) and options (options.c,
 * multicast.c) live in their own files.
 *
 * The socket is opened at init and registered with the loop once, edge-triggered, for both
 * directions: queueing a send later costs no epoll_ctl. Every callback runs from the loop: the
 * listening callback is fed to the pending phase by bind, never run inside it.
 */
#include "udp_internal.h"

#include <errno.h>
#include <netinet/in.h>

static void udp_close(zev_handle_t *h) {
    zev_udp_t *u = (zev_udp_t *)h;
    zev__udp_ring_close(u); /* completion mode: the kernel lets go of the socket first */
    zev__watcher_stop(h->loop, &u->io); /* frees the handle's queue slot for the close queue */
    if (u->io.fd >= 0) {
        zev__sys_close(u->io.fd);
        u->io.fd = -1;
    }
    h->flags &= ~(ZEV__UDP_RECVING | ZEV__UDP_LISTEN_DUE);
}

static int udp_finish(zev_handle_t *h) {
    zev__udp_cancel_sends((zev_udp_t *)h, -ECANCELED);
    return 0;
}

static void udp_inspect(const zev_handle_t *h, zev_handle_info_t *out) {
    const zev_udp_t *u = (const zev_udp_t *)h;
    out->queued_bytes = u->q_bytes;
    out->queued = u->q_count;
}

static const struct zev__handle_ops udp_ops = {.close = udp_close,
                                               .finish = udp_finish,
                                               .io = zev__udp_io,
                                               .inspect = udp_inspect,
                                               .complete = zev__udp_ring_complete};
_Static_assert(offsetof(zev_udp_t, io) == sizeof(zev_handle_t),
               "the watcher follows the handle (zev__watcher_dispatch)");

static size_t default_max_datagram(const zev_loop_t *loop, int family) {
    size_t max = family == AF_INET ? ZEV_UDP4_MAX_PAYLOAD : ZEV_UDP6_MAX_PAYLOAD;
    size_t chunk = loop->pool.stats.chunk_size;
    return max < chunk ? max : chunk;
}

/* Make u a handle around the socket fd of family af. On failure fd is still the caller's. */
static int init_with(zev_loop_t *loop, zev_udp_t *u, int fd, int af) {
    zev__watcher_init(&u->io, fd);
    /* Completion mode registers nothing: its operations are submitted as needed (ring.c). */
    bool ring = zev__udp_ring_wanted(loop);
    int err = ring ? 0 : zev__watcher_start(loop, &u->io, ZEV__READABLE | ZEV__WRITABLE);
    if (err < 0) {
        u->io.fd = -1;
        return err;
    }
    err = zev__handle_init(loop, &u->handle, ZEV_UDP, &udp_ops);
    if (err < 0) { /* no slot in the loop's handle table */
        zev__watcher_stop(loop, &u->io);
        u->io.fd = -1;
        return err;
    }
    if (ring) u->handle.flags |= ZEV__UDP_RING;
    u->family = af;
    u->batch = ZEV_UDP_BATCH_DEFAULT;
    u->max_datagram = default_max_datagram(loop, af);
    u->hwm = ZEV__UDP_DEFAULT_HWM;
    return 0;
}

int zev_udp_init(zev_loop_t *loop, zev_udp_t *u, int family) {
    if (!loop || !u || (family != 4 && family != 6)) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    zev__debug_handle_fresh(loop, &u->handle, &udp_ops);
    *u = (zev_udp_t){0};
    u->io.fd = -1;
    int af = family == 4 ? AF_INET : AF_INET6;
    int fd = zev__sys_socket(af, SOCK_DGRAM, 0);
    if (fd < 0) return fd;
    int err = init_with(loop, u, fd, af);
    if (err < 0) zev__sys_close(fd);
    return err;
}

/* A bound socket (a port, or an address other than any) or a connected one keeps that state:
 * zev_udp_bind then says -EALREADY, and sends go to the peer, as on zev's own sockets. */
int zev_udp_open(zev_loop_t *loop, zev_udp_t *u, int fd) {
    if (!loop || !u) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    struct zev__sock_kind kind;
    int err = zev__sock_describe(fd, SOCK_DGRAM, &kind);
    if (err < 0) return err;
    err = zev__sock_own(fd);
    if (err < 0) return err;
    zev__debug_handle_fresh(loop, &u->handle, &udp_ops);
    *u = (zev_udp_t){0};
    err = init_with(loop, u, fd, kind.local.sa.sa_family);
    if (err < 0) return err;
    if (zev__addr_port(&kind.local) != 0) u->handle.flags |= ZEV__UDP_BOUND;
    if (kind.connected) {
        u->peer = kind.peer;
        u->handle.flags |= ZEV__UDP_CONNECTED | ZEV__UDP_BOUND;
    }
    return 0;
}

int zev__udp_fd(const zev_udp_t *u) {
    if (!u) return -EINVAL;
    if (!zev__handle_usable(&u->handle)) return zev__handle_error(&u->handle);
    return u->io.fd;
}

void zev__udp_update_active(zev_udp_t *u) {
    if (zev__udp_closing(u)) return; /* zev_close has already made it inactive */
    unsigned f = u->handle.flags;
    /* Sends in flight and a due bind callback keep the loop alive even when unref'd. */
    bool requests = (f & ZEV__UDP_LISTEN_DUE) || u->q_head;
    if (requests || (f & ZEV__UDP_RECVING)) {
        zev__handle_start(&u->handle);
    } else {
        zev__handle_stop(&u->handle);
    }
    zev__handle_set_requests(&u->handle, requests);
}

/* ---- addresses ---- */

static int family_of(const zev_sockaddr_t *a) {
    return a->sa.sa_family;
}

int zev__udp_parse_peer(const zev_udp_t *u, const char *host, int port, zev_sockaddr_t *out) {
    if (port <= 0 || port > 65535) return -EINVAL;
    if (!host || *host == '\0') host = u->family == AF_INET ? "127.0.0.1" : "::1";
    int err = zev_addr_parse(out, host, port);
    if (err < 0) return err;
    return family_of(out) == u->family ? 0 : -EAFNOSUPPORT;
}

size_t zev__udp_max_payload(const zev_udp_t *u, const zev_sockaddr_t *addr) {
    if (!addr) addr = &u->peer;
    if (family_of(addr) == AF_INET) return ZEV_UDP4_MAX_PAYLOAD;
    if (IN6_IS_ADDR_V4MAPPED(&addr->in6.sin6_addr)) return ZEV_UDP4_MAX_PAYLOAD;
    return ZEV_UDP6_MAX_PAYLOAD;
}

static int apply_bind_opts(zev_udp_t *u, const zev_udp_bind_opts_t *o) {
    int fd = u->io.fd;
    int err = 0;
    if (o->reuse_addr) err = zev__sys_setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (err < 0) return err;
    if (o->reuse_port) {
        err = zev__sys_reuse_port(fd);
        if (err < 0) return err;
    }
    /* Always explicit, so the system-wide default (net.ipv6.bindv6only) does not decide. */
    if (u->family == AF_INET6) {
        err = zev__sys_setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, o->ipv6_only != 0);
    }
    return err;
}

static int bind_to(zev_udp_t *u, const zev_sockaddr_t *addr, const zev_udp_bind_opts_t *o) {
    int err = apply_bind_opts(u, o);
    if (err < 0) return err;
    err = zev__sys_bind(u->io.fd, &addr->sa, zev_addr_len(addr));
    if (err < 0) return err;
    u->handle.flags |= ZEV__UDP_BOUND;
    return 0;
}

/* Left to the kernel, the implicit bind happens inside sendmsg, and when it finds no port Linux
 * answers EAGAIN: the datagram would be queued for a writable edge that never comes. Binding
 * here first turns that into an error the send can report (libuv's deferred bind does the
 * same). The any address and port 0, with zev_udp_bind's default options. */
int zev__udp_bind_implicit(zev_udp_t *u) {
    zev_sockaddr_t any = {0};
    if (u->family == AF_INET) {
        any.in4.sin_family = AF_INET;
        any.in4.sin_addr.s_addr = htonl(INADDR_ANY);
    } else {
        any.in6.sin6_family = AF_INET6;
        any.in6.sin6_addr = in6addr_any;
    }
    return bind_to(u, &any, &(zev_udp_bind_opts_t){0});
}

int zev_udp_bind(zev_udp_t *u, const char *host, int port, const zev_udp_bind_opts_t *opts,
                 zev_udp_listening_cb cb) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    if (u->handle.flags & ZEV__UDP_BOUND) return -EALREADY;
    zev_udp_bind_opts_t o = {0};
    if (opts) o = *opts;
    if (o.ipv6_only && u->family != AF_INET6) return -EINVAL;
    if (!host || *host == '\0') host = u->family == AF_INET ? "0.0.0.0" : "::";
    zev_sockaddr_t addr;
    int err = zev_addr_parse(&addr, host, port);
    if (err < 0) return err;
    if (family_of(&addr) != u->family) return -EAFNOSUPPORT;
    err = bind_to(u, &addr, &o);
    if (err < 0) return err;
    u->on_listening = cb;
    if (cb) {
        u->handle.flags |= ZEV__UDP_LISTEN_DUE;
        zev__watcher_feed(u->handle.loop, &u->io, 0);
    }
    zev__udp_update_active(u);
    return 0;
}

int zev_udp_local_address(const zev_udp_t *u, zev_addr_info_t *out) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    if (!out) return -EINVAL;
    zev_sockaddr_t addr;
    socklen_t len = sizeof(addr);
    int err = zev__sys_getsockname(fd, &addr.sa, &len);
    if (err < 0) return err;
    err = zev_addr_info(&addr, out);
    if (err < 0) return err;
    return out->port == 0 ? -ENOTCONN : 0; /* port 0: neither bound nor used yet */
}

int zev_udp_connect_addr(zev_udp_t *u, const zev_sockaddr_t *addr) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    if (!addr) return -EINVAL;
    if (u->handle.flags & ZEV__UDP_CONNECTED) return -EISCONN;
    if (family_of(addr) != u->family) {
        return family_of(addr) == AF_INET || family_of(addr) == AF_INET6 ? -EAFNOSUPPORT : -EINVAL;
    }
    if (zev__addr_port(addr) == 0) return -EINVAL; /* port 0 is not a destination */
    int err = zev__sys_connect(fd, &addr->sa, zev_addr_len(addr));
    if (err < 0) return err;
    u->peer = *addr;
    u->handle.flags |= ZEV__UDP_CONNECTED | ZEV__UDP_BOUND;
    return 0;
}

int zev_udp_connect(zev_udp_t *u, const char *host, int port) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    zev_sockaddr_t addr;
    int err = zev__udp_parse_peer(u, host, port, &addr);
    if (err < 0) return err;
    return zev_udp_connect_addr(u, &addr);
}

int zev_udp_disconnect(zev_udp_t *u) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    if (!(u->handle.flags & ZEV__UDP_CONNECTED)) return -ENOTCONN;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    int err = zev__sys_connect(fd, &unspec, sizeof(unspec));
    /* Some BSDs dissolve the association and still answer EAFNOSUPPORT. */
    if (err < 0 && err != -EAFNOSUPPORT) return err;
    u->handle.flags &= ~ZEV__UDP_CONNECTED;
    u->peer = (zev_sockaddr_t){0};
    return 0;
}

int zev_udp_remote_address(const zev_udp_t *u, zev_addr_info_t *out) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    if (!out) return -EINVAL;
    if (!(u->handle.flags & ZEV__UDP_CONNECTED)) return -ENOTCONN;
    return zev_addr_info(&u->peer, out);
}

/* ---- dispatch ---- */

/* The watcher callback: kernel events and fed work (the listening callback, a look at data
 * that arrived while not receiving, send callbacks due). Each step re-checks the handle, since
 * any callback may have closed it. */
void zev__udp_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)loop;
    zev_udp_t *u = zev__container_of(w, zev_udp_t, io);
    if (u->handle.flags & ZEV__UDP_LISTEN_DUE) {
        u->handle.flags &= ~ZEV__UDP_LISTEN_DUE;
        zev__udp_update_active(u);
        if (u->on_listening) u->on_listening(u);
        if (zev__udp_closing(u)) return;
    }
    if (revents & (ZEV__READABLE | ZEV__ERROR) && u->handle.flags & ZEV__UDP_RECVING) {
        if (!zev__udp_ring_receive(u)) zev__udp_on_readable(u, revents);
    }
    if (zev__udp_closing(u)) return;
    /* A pending socket error with nothing received reaches the next send, never lost. */
    if (revents & (ZEV__WRITABLE | ZEV__ERROR) && u->q_head) zev__udp_flush(u);
}
