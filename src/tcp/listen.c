/* src/tcp/listen.c: TCP listeners (Node's net.Server): listen, accept, connection limits,
 * running out of descriptors, and close-after-the-last-connection.
 *
 * Accepting runs until EAGAIN or the turn's share of the loop's fairness budget, so a
 * connection storm cannot starve established sockets; a listener is a priority watcher, so
 * busy sockets never make it wait either (docs/internals.md, "Fairness").
 *
 * Out of descriptors (EMFILE/ENFILE), the kernel keeps the connection in the backlog and the
 * listener stays readable. The listener then sheds the whole backlog at once with its reserve
 * descriptor (shed_backlog), so every waiting peer is told at once, and waits for the next
 * connection's edge: no timer, no retry, no CPU while nobody connects; the first accept that
 * succeeds again ends the episode. The shortage is reported once per episode. Only when the
 * reserve cannot help (none, or ENOBUFS/ENOMEM) does it pause with a doubling backoff
 * (10 ms .. 1 s), so even then the loop makes a bounded number of accept calls per second.
 * An error of one connection that died in the backlog (EPROTO, ECONNABORTED...) does not stop
 * accepting: the listening socket's edge is spent, so stopping would strand the rest.
 *
 * In completion mode (io_uring, ring.h) the kernel accepts: one multishot accept stays in
 * flight and each result is a new descriptor, which takes the same path as accept4's
 * (zev__tcp_server_take). See the "completion mode" section at the end, and docs/internals.md, "The
 * completion loop".
 */
#include "ring.h"
#include "tcp_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>

#define DEFAULT_BACKLOG 511
#define BACKOFF_MIN_MS 10u
#define BACKOFF_MAX_MS 1000u

static int open_reserve(void) {
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void close_fd(int *fd) {
    if (*fd >= 0) zev__sys_close(*fd);
    *fd = -1;
}


static void server_close(zev_handle_t *h) {
    zev_tcp_server_t *s = (zev_tcp_server_t *)h;
    zev__timer_node_stop(h->loop, &s->backoff);
    zev__tcp_server_ring_forget(s); /* completion mode: every accepted descriptor in flight is closed */
    zev__watcher_stop(h->loop, &s->io); /* frees the handle's queue slot for the close queue */
    close_fd(&s->io.fd);
    close_fd(&s->reserve_fd);
    close_fd(&s->pending_fd); /* completion mode: a held one */
    h->flags &= ~(ZEV__TCP_LISTENING | ZEV__TCP_ACCEPT_HELD);
}

/* Hold the close callback back until the last accepted connection has closed. */
static int server_finish(zev_handle_t *h) {
    return ((zev_tcp_server_t *)h)->connections > 0;
}

static void on_backoff(zev_loop_t *loop, struct zev__timer_node *n);
static void on_listen_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents);

static void server_inspect(const zev_handle_t *h, zev_handle_info_t *out) {
    out->connections = ((const zev_tcp_server_t *)h)->connections;
}

static const struct zev__handle_ops server_ops = {.close = server_close,
                                                  .finish = server_finish,
                                                  .io = on_listen_io,
                                                  .inspect = server_inspect,
                                                  .complete = zev__tcp_server_ring_complete};
_Static_assert(offsetof(zev_tcp_server_t, io) == sizeof(zev_handle_t),
               "the watcher follows the handle (zev__watcher_dispatch)");

int zev_tcp_server_init(zev_loop_t *loop, zev_tcp_server_t *s) {
    if (!loop || !s) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    zev__debug_handle_fresh(loop, &s->handle, &server_ops);
    *s = (zev_tcp_server_t){0};
    int err = zev__handle_init(loop, &s->handle, ZEV_TCP_SERVER, &server_ops);
    if (err < 0) return err;
    zev__watcher_init(&s->io, -1);
    s->io.flags |= ZEV__W_PRIORITY; /* accepting never waits behind busy sockets */
    s->pending_fd = -1;
    s->reserve_fd = -1;
    s->backoff.fire = on_backoff;
    return 0;
}

static int bind_and_listen(int fd, const zev_sockaddr_t *addr, const zev_tcp_listen_opts_t *o) {
    int err = zev__sys_setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (err < 0) return err;
    if (o->reuse_port) {
        err = zev__sys_reuse_port(fd);
        if (err < 0) return err;
    }
    if (addr->sa.sa_family == AF_INET6) {
        err = zev__sys_setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, o->ipv6_only ? 1 : 0);
        if (err < 0) return err;
    }
    err = zev__sys_bind(fd, &addr->sa, zev_addr_len(addr));
    if (err < 0) return err;
    return zev__sys_listen(fd, o->backlog > 0 ? o->backlog : DEFAULT_BACKLOG);
}

/* Take a listening fd: the reserve, the watcher, and a first look. On failure fd is still the
 * caller's. */
static int start_accepting(zev_tcp_server_t *s, int fd, zev_tcp_connection_cb cb) {
    s->reserve_fd = open_reserve(); /* best effort: without it EMFILE still backs off */
    s->io.fd = fd;
    bool ring = zev__loop_completes(s->handle.loop);
    int err = ring ? zev__tcp_server_ring_start(s) : zev__watcher_start(s->handle.loop, &s->io, ZEV__READABLE);
    if (err < 0) {
        s->io.fd = -1;
        close_fd(&s->reserve_fd);
        return err;
    }
    s->on_connection = cb;
    s->handle.flags |= ZEV__TCP_LISTENING;
    zev__handle_start(&s->handle);
    /* Connections may already wait (a reused port, an adopted listener): look once, next
     * iteration. (A multishot accept takes them by itself.) */
    if (!ring) zev__watcher_feed(s->handle.loop, &s->io, ZEV__READABLE);
    return 0;
}

int zev_tcp_listen(zev_tcp_server_t *s, const char *host, int port,
                   const zev_tcp_listen_opts_t *opts, zev_tcp_connection_cb cb) {
    if (!s || !cb) return -EINVAL;
    if (!zev__handle_usable(&s->handle)) return zev__handle_error(&s->handle);
    if (s->handle.flags & ZEV__TCP_LISTENING) return -EALREADY;
    zev_tcp_listen_opts_t o = {0};
    if (opts) o = *opts;
    if (o.backlog < 0) return -EINVAL;
    zev_sockaddr_t addr;
    int err = zev_addr_parse(&addr, host, port);
    if (err < 0) return err;
    /* IPV6_V6ONLY means nothing on an IPv4 socket: refuse rather than ignore it (libuv). */
    if (o.ipv6_only && addr.sa.sa_family != AF_INET6) return -EINVAL;

    int fd = zev__sys_socket(addr.sa.sa_family, SOCK_STREAM, 0);
    if (fd < 0) return fd;
    err = bind_and_listen(fd, &addr, &o);
    if (err == 0) err = start_accepting(s, fd, cb);
    if (err < 0) zev__sys_close(fd);
    return err;
}

int zev_tcp_server_open(zev_tcp_server_t *s, int fd, zev_tcp_connection_cb cb) {
    if (!s || !cb) return -EINVAL;
    if (!zev__handle_usable(&s->handle)) return zev__handle_error(&s->handle);
    if (s->handle.flags & ZEV__TCP_LISTENING) return -EALREADY;
    struct zev__sock_kind kind;
    int err = zev__sock_describe(fd, SOCK_STREAM, &kind);
    if (err < 0) return err;
    if (!kind.listening) return -EINVAL; /* zev_tcp_open's */
    err = zev__sock_own(fd);
    if (err < 0) return err;
    return start_accepting(s, fd, cb);
}

int zev_tcp_accept(zev_tcp_server_t *s, zev_tcp_t *client) {
    if (!s || !client) return -EINVAL;
    if (!zev__handle_usable(&s->handle)) return zev__handle_error(&s->handle);
    if (!zev__handle_usable(&client->handle)) return zev__handle_error(&client->handle);
    if (client->handle.loop != s->handle.loop) return -EINVAL;
    if (s->pending_fd < 0 || (s->handle.flags & ZEV__TCP_ACCEPT_HELD)) return -EAGAIN;
    if (client->io.fd >= 0 || zev__tcp_phase(client) != ZEV__TCP_IDLE) return -EISCONN;
    int err = zev__tcp_attach_connected(client, s->pending_fd);
    if (err < 0) return err; /* the fd stays pending and is dropped after the callback */
    s->pending_fd = -1;
    zev__tcp_set_phase(client, ZEV__TCP_CONNECTED);
    client->server = s;
    s->connections++;
    s->stats.accepted++;
    return 0;
}

void zev__tcp_server_connection_closed(zev_tcp_server_t *s) {
    s->connections--;
    if (s->connections == 0 && (s->handle.flags & ZEV__H_CLOSING))
        zev__handle_close_resume(&s->handle);
}

/* Errors of one waiting connection that failed in the backlog (accept(2): "treat them like
 * EAGAIN by retrying"): the listener itself is fine and the rest of the backlog is still
 * there. Stopping would strand it, since the listening socket's edge is already spent. */
static bool is_transient(int err) {
    switch (-err) {
    case EPROTO:
    case ENOPROTOOPT:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
#ifdef ENONET
    case ENONET:
#endif
        return true;
    default:
        return false;
    }
}

/* Give up accepting for a while (doubling, BACKOFF_MIN_MS..BACKOFF_MAX_MS): the shortage could
 * not be worked around, and retrying at once would spin. The timer looks again. */
void zev__tcp_server_pause(zev_tcp_server_t *s) {
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS) s->backoff_ms = BACKOFF_MAX_MS;
    s->handle.flags |= ZEV__TCP_ACCEPT_PAUSED;
    zev__timer_node_start(s->handle.loop, &s->backoff, s->backoff_ms);
}

static void on_backoff(zev_loop_t *loop, struct zev__timer_node *n) {
    zev_tcp_server_t *s = zev__container_of(n, zev_tcp_server_t, backoff);
    s->handle.flags &= ~ZEV__TCP_ACCEPT_PAUSED;
    /* The listening socket's edge came and went while paused: look again. */
    zev__watcher_feed(loop, &s->io, ZEV__READABLE);
}

enum shed { SHED_DONE, SHED_MORE, SHED_FAILED };

/* The spare-descriptor trick (libuv's and Node's): free the reserve, then accept and close
 * every waiting connection on the slot it leaves, until the backlog is empty (SHED_DONE) or
 * the turn is over (SHED_MORE), and take the reserve back. Each peer learns at once that it
 * will not be served, rather than waiting in the backlog for a timeout. SHED_FAILED: no
 * reserve, or the slot was gone (another thread took it, or the shortage is system-wide). */
static enum shed shed_backlog(zev_tcp_server_t *s, size_t *turn) {
    if (s->reserve_fd < 0) s->reserve_fd = open_reserve(); /* descriptors may be back */
    if (s->reserve_fd < 0) return SHED_FAILED;
    close_fd(&s->reserve_fd);
    enum shed result = SHED_MORE;
    while (*turn > 0) {
        int fd = zev__sys_accept(s->io.fd, NULL, NULL);
        if (fd == -EAGAIN) {
            result = SHED_DONE;
            break;
        }
        if (fd < 0 && fd != -EINTR && fd != -ECONNABORTED && !is_transient(fd)) {
            result = SHED_FAILED;
            break;
        }
        if (fd >= 0) {
            zev__sys_close(fd);
            s->stats.shed++;
            s->stats.dropped++;
        }
        zev__budget_spend(s->handle.loop, turn, 0);
    }
    s->reserve_fd = open_reserve();
    return result;
}

/* Out of descriptors (or kernel memory): shed the backlog if the reserve allows, else pause;
 * report the shortage once per episode, which lasts until an accept succeeds again. */
static void on_shortage(zev_tcp_server_t *s, int err, size_t *turn) {
    bool first = !(s->handle.flags & ZEV__TCP_FD_SHORT);
    s->handle.flags |= ZEV__TCP_FD_SHORT;
    enum shed r = err == -EMFILE || err == -ENFILE ? shed_backlog(s, turn) : SHED_FAILED;
    if (r != SHED_FAILED) zev__tcp_server_ring_shed(s);
    if (r == SHED_FAILED) zev__tcp_server_pause(s);
    if (r == SHED_MORE) zev__watcher_yield(s->handle.loop, &s->io, ZEV__READABLE);
    if (!first) return;
    s->stats.accept_errors++;
    s->on_connection(s, err);
}

static bool over_limit(const zev_tcp_server_t *s) {
    return s->max_connections && s->connections >= s->max_connections;
}

bool zev__tcp_server_is_shortage(int err) {
    return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

/* The peer of an accepted fd, for the drop callback, where the accept did not say (a multishot
 * accept cannot: see zev__ring_accept). A peer that already reset leaves no address: the
 * callback then gets an AF_UNSPEC one. */
static void learn_peer(zev_tcp_server_t *s, int fd) {
    socklen_t len = sizeof(s->pending_peer);
    if (zev__sys_getpeername(fd, &s->pending_peer.sa, &len) < 0)
        s->pending_peer = (zev_sockaddr_t){0};
}

/* What follows an accept's answer, a descriptor or a negative errno, whoever accepted (accept4,
 * or the kernel in completion mode); with peer_known, s->pending_peer holds fd's peer. Returns
 * false when this turn of accepting is over. */
bool zev__tcp_server_take(zev_tcp_server_t *s, int fd, bool peer_known, size_t *turn) {
    /* The peer reset it first: nothing to tell (libuv skips it too). */
    if (fd == -EINTR || fd == -ECONNABORTED) return true;
    if (zev__tcp_server_is_shortage(fd)) {
        on_shortage(s, fd, turn);
        return false;
    }
    if (fd < 0) {
        s->stats.accept_errors++;
        s->on_connection(s, fd);
        /* Report, then take the rest of the backlog (within the budget; the callback may
         * have closed the listener, which the caller checks). Any other error is the
         * listener's own, and retrying it at once would only repeat it. */
        return is_transient(fd);
    }
    s->backoff_ms = 0;
    s->handle.flags &= ~ZEV__TCP_FD_SHORT; /* the episode is over: the next one is reported */
    if (over_limit(s)) {
        if (s->on_drop && !peer_known) learn_peer(s, fd);
        zev__sys_close(fd);
        s->stats.dropped++;
        if (s->on_drop) s->on_drop(s, &s->pending_peer);
        return true;
    }
    s->pending_fd = fd;
    s->on_connection(s, 0);
    if (s->pending_fd >= 0) { /* not accepted inside the callback */
        close_fd(&s->pending_fd);
        s->stats.dropped++;
    }
    return true;
}

/* One accept4 and what follows it. Returns false when this turn of accepting is over. */
static bool accept_one(zev_tcp_server_t *s, size_t *turn) {
    socklen_t len = sizeof(s->pending_peer);
    int fd = zev__sys_accept(s->io.fd, &s->pending_peer.sa, &len);
    if (fd == -EAGAIN) return false;
    return zev__tcp_server_take(s, fd, true, turn);
}

/* A turn of accepting: until EAGAIN, or the turn's budget (each accept and its callback is an
 * operation), then yield: a connection storm cannot starve established sockets. */
static void on_listen_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)revents;
    zev_tcp_server_t *s = zev__container_of(w, zev_tcp_server_t, io);
    if (s->handle.flags & ZEV__TCP_RING) { /* a resume, or more of the backlog to shed */
        zev__tcp_server_ring_settle(s);
        return;
    }
    size_t turn = ZEV__BUDGET_QUANTUM;
    for (;;) {
        unsigned f = s->handle.flags;
        if (!(f & ZEV__TCP_LISTENING) || (f & ZEV__TCP_ACCEPT_PAUSED)) return;
        if (!accept_one(s, &turn)) return;
        if (zev__budget_spend(loop, &turn, 0)) break;
    }
    zev__watcher_yield(loop, w, ZEV__READABLE);
}

int zev_tcp_server_address(const zev_tcp_server_t *s, zev_addr_info_t *out) {
    if (!s || !out) return -EINVAL;
    if (!(s->handle.flags & ZEV__TCP_LISTENING)) return -ENOTCONN;
    zev_sockaddr_t addr;
    socklen_t len = sizeof(addr);
    int err = zev__sys_getsockname(s->io.fd, &addr.sa, &len);
    if (err < 0) return err;
    return zev_addr_info(&addr, out);
}

int zev_tcp_server_connections(const zev_tcp_server_t *s) {
    return s ? (int)s->connections : -EINVAL;
}

int zev_tcp_server_set_max_connections(zev_tcp_server_t *s, unsigned max, zev_tcp_drop_cb cb) {
    if (!s) return -EINVAL;
    if (!zev__handle_usable(&s->handle)) return zev__handle_error(&s->handle);
    s->max_connections = max;
    s->on_drop = cb;
    return 0;
}

int zev_tcp_server_stats(const zev_tcp_server_t *s, zev_tcp_server_stats_t *out) {
    if (!s || !out) return -EINVAL;
    *out = s->stats;
    return 0;
}
