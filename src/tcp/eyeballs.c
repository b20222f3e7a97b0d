/* src/tcp/eyeballs.c: connecting by name: the lookup, then the addresses raced as RFC 8305
 * (Happy Eyeballs v2) asks, which is what Node's net.connect does with autoSelectFamily.
 *
 *   zev_tcp_connect(t, "localhost") ─► lookup ─► attempt ─ 250 ms, or it failed ─► attempt ...
 *                                                   └── the first to connect wins: its
 *                                                       descriptor becomes t's
 *
 * The addresses are taken in the resolver's order with the families interleaved (the first
 * address's family first), so with both families an IPv6 and an IPv4 attempt race. A new
 * attempt starts ATTEMPT_DELAY_MS after the previous one, or at once when one fails; at most
 * ATTEMPTS run together (a third waits for one to fail). The losers are closed silently.
 *
 * The socket is CONNECTING from the call on, with no descriptor until a winner is attached,
 * so connect.c's promises hold unchanged: writes and end only queue, the connect timeout
 * covers the lookup and every attempt, close abandons everything without the callback, and a
 * recorded failure ends it. The winner is reported as a connect() that answered at once
 * (ZEV__TCP_CONNECT_DUE), so connect.c and stream.c finish it as for a numeric address.
 *
 * A bound socket (zev_tcp_bind, or adopted unconnected) keeps its local address: only the
 * addresses of its family are tried, and one at a time. Its own descriptor makes the first
 * attempt, so the options set on it count if that one wins; each later attempt, started when
 * the one before failed, takes a new descriptor bound to the same address and port (free
 * again: a refused or failed connect leaves no TIME_WAIT). Racing two attempts would need
 * two descriptors on one port at once, which BSD refuses for TCP.
 *
 * Memory: one allocation per connect by name through the loop's allocator (this state), one
 * for the address list, plus the lookup's own (resolve.c). Each attempt's watcher belongs to
 * an internal handle inside this state; the state is freed by the close callback of its
 * `life` handle, after the batch being dispatched, since an event for a stopped attempt may
 * still be in it (the watcher must stay readable for the stale-event check, watcher.c).
 */
#include "tcp_internal.h"

#include <errno.h>

enum { ATTEMPTS = 2, ATTEMPT_DELAY_MS = 250 };

struct attempt {
    zev_handle_t handle; /* owns io: never counted as open, never closed, like the loop's wake */
    struct zev_watcher io;
    struct zev__tcp_name *name;
};

_Static_assert(offsetof(struct attempt, io) == sizeof(zev_handle_t),
               "the watcher follows its handle (zev__watcher_dispatch)");

struct zev__tcp_name {
    zev_handle_t life; /* counted as open; its close callback frees this */
    zev_tcp_t *socket;
    zev_resolve_t req;
    zev_sockaddr_t *addrs; /* families interleaved; loop allocator */
    size_t n_addrs;
    size_t next;           /* the next address to try */
    struct attempt attempts[ATTEMPTS];
    struct zev__timer_node delay; /* starts the next attempt */
    int last_err;          /* the last attempt's failure, reported if none wins */
    int bound_fd;          /* the bound socket's own descriptor, until an attempt takes it */
    zev_sockaddr_t local;  /* the bound socket's address, or family 0: not bound */
};

static void attempt_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents);
static void on_delay(zev_loop_t *loop, struct zev__timer_node *n);
static void on_resolved(zev_resolve_t *req, int status, const zev_sockaddr_t *addrs, size_t n);

static const struct zev__handle_ops attempt_ops = {.io = attempt_io};
static const struct zev__handle_ops life_ops = {0};

static void free_name(zev_handle_t *h) {
    struct zev__tcp_name *name = zev__container_of(h, struct zev__tcp_name, life);
    zev__free(h->loop, name, sizeof(*name));
}

static bool is_bound(const struct zev__tcp_name *name) {
    return name->local.sa.sa_family != 0;
}

int zev__tcp_name_start(zev_tcp_t *t, const char *host, int port) {
    zev_loop_t *loop = t->handle.loop;
    struct zev__tcp_name *name = zev__alloc(loop, sizeof(*name));
    if (!name) return -ENOMEM;
    *name = (struct zev__tcp_name){.socket = t, .last_err = -ZEV_EAI_NONAME, .bound_fd = -1};
    int err = 0;
    if (t->io.fd >= 0) {
        socklen_t len = sizeof(name->local);
        err = zev__sys_getsockname(t->io.fd, &name->local.sa, &len);
    }
    if (err == 0) err = zev_resolve(loop, &name->req, host, port, 0, on_resolved);
    if (err < 0) {
        zev__free(loop, name, sizeof(*name));
        return err;
    }
    /* The bound descriptor waits here for the first attempt: the socket has none while
     * connecting by name. */
    name->bound_fd = t->io.fd;
    t->io.fd = -1;
    zev__handle_init(loop, &name->life, ZEV_HANDLE_UNKNOWN, &life_ops);
    for (unsigned i = 0; i < ATTEMPTS; i++) {
        struct attempt *a = &name->attempts[i];
        a->handle = (zev_handle_t){.loop = loop, .ops = &attempt_ops};
        zev__watcher_init(&a->io, -1);
        a->name = name;
    }
    name->delay.fire = on_delay;
    t->extra->name = name;
    return 0;
}

static void attempt_close(zev_loop_t *loop, struct attempt *a) {
    if (a->io.fd < 0) return;
    zev__watcher_stop(loop, &a->io);
    zev__sys_close(a->io.fd);
    a->io.fd = -1;
}

void zev__tcp_name_end(zev_tcp_t *t) {
    struct zev__tcp_name *name = t->extra ? t->extra->name : NULL;
    if (!name) return;
    zev_loop_t *loop = t->handle.loop;
    t->extra->name = NULL;
    zev__resolve_abandon(&name->req);
    zev__timer_node_stop(loop, &name->delay);
    for (unsigned i = 0; i < ATTEMPTS; i++) attempt_close(loop, &name->attempts[i]);
    if (name->bound_fd >= 0) zev__sys_close(name->bound_fd);
    name->bound_fd = -1;
    zev__free(loop, name->addrs, name->n_addrs * sizeof(*name->addrs));
    name->addrs = NULL;
    zev_close(&name->life, free_name);
}

/* Copy the addresses of the bound family, in the resolver's order. */
static int take_bound_family(struct zev__tcp_name *name, const zev_sockaddr_t *addrs, size_t n) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) kept += addrs[i].sa.sa_family == name->local.sa.sa_family;
    if (kept == 0) return -EAFNOSUPPORT;
    name->addrs = zev__alloc(name->socket->handle.loop, kept * sizeof(*addrs));
    if (!name->addrs) return -ENOMEM;
    name->n_addrs = kept;
    for (size_t i = 0, j = 0; i < n; i++) {
        if (addrs[i].sa.sa_family == name->local.sa.sa_family) name->addrs[j++] = addrs[i];
    }
    return 0;
}

/* Copy addrs, alternating families from the first address's (RFC 8305, section 4). */
static int take_addrs(struct zev__tcp_name *name, const zev_sockaddr_t *addrs, size_t n) {
    if (is_bound(name)) return take_bound_family(name, addrs, n);
    zev_loop_t *loop = name->socket->handle.loop;
    name->addrs = zev__alloc(loop, n * sizeof(*addrs));
    if (!name->addrs) return -ENOMEM;
    name->n_addrs = n;
    sa_family_t first = addrs[0].sa.sa_family;
    size_t same = 0;  /* next candidate of the first family */
    size_t other = 0; /* next candidate of the other family */
    for (size_t i = 0; i < n; i++) {
        while (same < n && addrs[same].sa.sa_family != first) same++;
        while (other < n && addrs[other].sa.sa_family == first) other++;
        bool take_same = (i % 2 == 0 && same < n) || other >= n;
        name->addrs[i] = take_same ? addrs[same++] : addrs[other++];
    }
    return 0;
}

/* The connect ends without a winner. connect.c calls zev__tcp_name_end first thing. */
static void fail(struct zev__tcp_name *name, int err) {
    zev__tcp_connect_finish(name->socket, err);
}

static void win(struct zev__tcp_name *name, struct attempt *a) {
    zev_tcp_t *t = name->socket;
    zev_loop_t *loop = t->handle.loop;
    int fd = a->io.fd;
    zev__watcher_stop(loop, &a->io); /* t's watcher registers it anew */
    a->io.fd = -1;
    zev__tcp_name_end(t);
    int err = zev__tcp_attach(t, fd);
    if (err < 0) {
        zev__sys_close(fd);
        zev__tcp_connect_finish(t, err);
        return;
    }
    /* connect.c's fact 2: the answer is known; report it from the loop. */
    t->err = 0;
    t->handle.flags |= ZEV__TCP_CONNECT_DUE;
    zev__watcher_feed(loop, &t->io, ZEV__WRITABLE);
}

/* A descriptor for the next attempt: the bound socket's own first, then new ones bound where
 * it was (SO_REUSEADDR, as zev_tcp_bind set). */
static int attempt_socket(struct zev__tcp_name *name, const zev_sockaddr_t *addr) {
    int fd = name->bound_fd;
    if (fd >= 0) {
        name->bound_fd = -1;
        return fd;
    }
    fd = zev__sys_socket(addr->sa.sa_family, SOCK_STREAM, 0);
    if (fd < 0 || !is_bound(name)) return fd;
    int err = zev__sys_setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (err == 0) err = zev__sys_bind(fd, &name->local.sa, zev_addr_len(&name->local));
    if (err < 0) zev__sys_close(fd);
    return err < 0 ? err : fd;
}

/* Open a socket and start connecting it to addr: 0 in progress, 1 connected at once, or a
 * negative errno (a->io.fd is then -1). */
static int attempt_start(zev_loop_t *loop, struct attempt *a, const zev_sockaddr_t *addr) {
    int fd = attempt_socket(a->name, addr);
    if (fd < 0) return fd;
    int r;
    do {
        r = zev__sys_connect(fd, &addr->sa, zev_addr_len(addr));
    } while (r == -EINTR);
    zev__watcher_init(&a->io, fd);
    if (r == 0) return 1;
    if (r == -EINPROGRESS) r = zev__watcher_start(loop, &a->io, ZEV__WRITABLE);
    if (r < 0) {
        zev__sys_close(fd);
        a->io.fd = -1;
    }
    return r;
}

static bool attempts_running(const struct zev__tcp_name *name);

/* A free attempt slot, or NULL: every slot busy, or a bound socket's one attempt running. */
static struct attempt *free_attempt(struct zev__tcp_name *name) {
    if (is_bound(name) && attempts_running(name)) return NULL;
    for (unsigned i = 0; i < ATTEMPTS; i++) {
        if (name->attempts[i].io.fd < 0) return &name->attempts[i];
    }
    return NULL;
}

static bool attempts_running(const struct zev__tcp_name *name) {
    for (unsigned i = 0; i < ATTEMPTS; i++) {
        if (name->attempts[i].io.fd >= 0) return true;
    }
    return false;
}

/* Start the next address if an attempt slot is free: at once after a failure, or when the
 * delay fires. With nothing left to try and nothing running, the connect failed. */
static void start_next(struct zev__tcp_name *name) {
    zev_loop_t *loop = name->socket->handle.loop;
    struct attempt *a;
    while (name->next < name->n_addrs && (a = free_attempt(name)) != NULL) {
        int r = attempt_start(loop, a, &name->addrs[name->next++]);
        if (r == 1) {
            win(name, a);
            return;
        }
        if (r == 0) {
            if (name->next < name->n_addrs && !is_bound(name))
                zev__timer_node_start(loop, &name->delay, ATTEMPT_DELAY_MS);
            return;
        }
        name->last_err = r;
    }
    if (!attempts_running(name)) fail(name, name->last_err);
}

static void on_resolved(zev_resolve_t *req, int status, const zev_sockaddr_t *addrs, size_t n) {
    struct zev__tcp_name *name = zev__container_of(req, struct zev__tcp_name, req);
    if (status == 0) status = take_addrs(name, addrs, n);
    if (status < 0) {
        fail(name, status);
        return;
    }
    start_next(name);
}

static void on_delay(zev_loop_t *loop, struct zev__timer_node *n) {
    (void)loop;
    start_next(zev__container_of(n, struct zev__tcp_name, delay));
}

/* An attempt's handshake answered, as connect.c reads it: SO_ERROR after a kernel event. */
static void attempt_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    struct attempt *a = zev__container_of(w, struct attempt, io);
    int status = zev__tcp_handshake_status(w->fd, revents);
    if (status == -EINPROGRESS) return;
    if (status == 0) {
        win(a->name, a);
        return;
    }
    attempt_close(loop, a);
    a->name->last_err = status;
    start_next(a->name);
}
