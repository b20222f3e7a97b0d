/* bench/load_tcp.c: the TCP traffic of zev-bench: pingpong, pipeline, bulk, connrate, idle.
 *
 * Every socket is non-blocking, TCP_NODELAY (a load generator must not wait for Nagle), and
 * registered once with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, like the servers it measures.
 * - Stream modes (pingpong, pipeline, bulk) keep up to depth * size bytes in flight on each
 *   connection and top the window up with one write as soon as echoes come back, so a
 *   pipelined client sends whatever messages fit in one go, as real clients do. Every byte read
 *   back is checked against what was sent (load_pattern), so a server that reorders, drops or
 *   duplicates fails the run.
 * - Connection modes (connrate, idle-memory) run slots: connect, send one message, read its
 *   echo, then close (connrate: with a reset unless --close fin, see msg_done) or keep the
 *   connection idle (idle-memory); a failed connect is counted and the slot retried from the
 *   tick, up to LOAD_MAX_ERRORS.
 * Leaves the clock, the window and the result line to zev-bench.c.
 */
#include "load.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum conn_state {
    CONN_CLOSED,
    CONN_CONNECTING,
    CONN_STREAMING, /* stream modes: sending and reading back continuously */
    CONN_ECHO_WAIT, /* connection modes: the message is (being) sent, its echo awaited */
    CONN_IDLE,      /* idle-memory: echoed once, now left alone */
};

/* idle-memory: handshakes + first echoes in progress at once; keeps the listen backlog from
 * overflowing, which would cost one-second SYN retransmits rather than measure anything. */
#define IDLE_CONCURRENCY 256u

static int stream_mode(const struct load *l) {
    return l->o.mode == LOAD_PINGPONG || l->o.mode == LOAD_PIPELINE || l->o.mode == LOAD_BULK;
}

static int failf(struct load *l, const char *what, int err) {
    static char why[160];
    snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
    return load_fail(l, why);
}

/* A slot's connection failed: count it, close it; the tick opens a new one. Stream modes
 * cannot lose a connection and stay comparable, so there it ends the run, as does a refused
 * connect (a full backlog drops SYNs on Linux, it does not refuse them). */
static void conn_error(struct load *l, struct conn *c, const char *what, int err) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = CONN_CLOSED;
    if (stream_mode(l) || err == ECONNREFUSED) { /* refused: nobody listens any more */
        failf(l, what, err);
        return;
    }
    if (++l->errors > LOAD_MAX_ERRORS) failf(l, what, err);
}

static int conn_open(struct load *l, struct conn *c) {
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return failf(l, "socket", errno); /* EMFILE: raise the limit, not our cue */
    /* Nagle would hold back a stream's later small writes; a connection's single message is
     * never held, so connection modes save the call. */
    int one = 1;
    if (stream_mode(l)) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->state = CONN_CONNECTING;
    c->sent = c->recvd = 0;
    if (connect(fd, (const struct sockaddr *)&l->addr, l->addr_len) < 0 && errno != EINPROGRESS) {
        conn_error(l, c, "connect", errno);
        return l->fail ? -1 : 0;
    }
    return load_watch(l, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
}

/* Bytes of the stream from offset `from`, checked against the pattern. */
static int check_bytes(struct load *l, uint64_t from, size_t n) {
    if (memcmp(l->rbuf, load_pattern + from % 256, n) == 0) return 0;
    return load_fail(l, "the echo differs from what was sent (bytes lost, reordered or mixed)");
}

int tcp_timed(const struct load *l) {
    return l->o.mode == LOAD_PINGPONG || l->o.mode == LOAD_PIPELINE;
}

/* Messages of the stream at or after byte `from`: the index of the first one that starts there. */
static uint64_t msg_at(const struct load *l, uint64_t from) {
    return (from + l->o.size - 1) / l->o.size;
}

/* Open loop: how far the stream may have been sent by `now`, every message whose intended
 * time has come. */
static uint64_t due_bytes(const struct load *l, const struct conn *c, uint64_t now) {
    if (now < c->base_ns) return 0;
    return ((now - c->base_ns) / l->interval_ns + 1) * l->o.size;
}

/* Closed loop: a message is timed from the write that carries its first byte. */
static void stamp_sent(struct load *l, struct conn *c, uint64_t from, uint64_t to) {
    if (!tcp_timed(l) || l->o.rate > 0) return;
    uint64_t now = load_now_ns();
    for (uint64_t m = msg_at(l, from); m < msg_at(l, to); m++) {
        c->stamps[m % l->o.depth] = now;
    }
}

/* Messages echoed whole by bytes [from, to): their latency, from the send (closed loop) or
 * from the INTENDED send time (open loop), so a stalled server cannot hide its stall by
 * holding the client back (coordinated omission, corrected as wrk2 does). */
static void record_done(struct load *l, struct conn *c, uint64_t from, uint64_t to) {
    uint64_t first = from / l->o.size, end = to / l->o.size;
    if (!tcp_timed(l) || first == end) return;
    uint64_t now = load_now_ns();
    for (uint64_t m = first; m < end; m++) {
        uint64_t at = l->o.rate > 0 ? c->base_ns + m * l->interval_ns : c->stamps[m % l->o.depth];
        hist_record(l->lat, now > at ? now - at : 0);
    }
}

/* ---- stream modes ------------------------------------------------------------------------ */

/* Top the window up: as many whole messages as fit, in one write where the kernel allows. */
static void stream_refill(struct load *l, struct conn *c) {
    size_t size = l->o.size;
    uint64_t window = (uint64_t)l->o.depth * size;
    uint64_t due = l->o.rate > 0 ? due_bytes(l, c, load_now_ns()) : UINT64_MAX;
    for (;;) {
        uint64_t in_flight = c->sent - c->recvd;
        if (in_flight + size > window || c->sent >= due) return;
        uint64_t room = window - in_flight;
        size_t n = (size_t)(room - room % size);
        size_t cap = LOAD_PATTERN_SPAN - LOAD_PATTERN_SPAN % size;
        if (n > cap) n = cap;
        if (n > due - c->sent) n = (size_t)(due - c->sent);
        ssize_t w = send(c->fd, load_pattern + c->sent % 256, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) conn_error(l, c, "send", errno);
            return; /* EAGAIN: the next EPOLLOUT edge calls us again */
        }
        stamp_sent(l, c, c->sent, c->sent + (uint64_t)w);
        c->sent += (uint64_t)w;
        if ((size_t)w < n) return;
    }
}

static void stream_read(struct load *l, struct conn *c, uint32_t events) {
    /* Bulk counts bytes; the others count whole messages echoed. */
    uint64_t unit = l->o.mode == LOAD_BULK ? 1 : l->o.size;
    int hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    for (;;) {
        ssize_t n = recv(c->fd, l->rbuf, l->rbuf_len, 0);
        if (n > 0) {
            if (c->recvd + (uint64_t)n > c->sent) {
                load_fail(l, "the server echoed more bytes than it was sent");
                return;
            }
            if (check_bytes(l, c->recvd, (size_t)n) < 0) return;
            l->ops += (c->recvd + (uint64_t)n) / unit - c->recvd / unit;
            record_done(l, c, c->recvd, c->recvd + (uint64_t)n);
            c->recvd += (uint64_t)n;
            if ((size_t)n < l->rbuf_len && !hup) return; /* drained: a new edge will come */
            continue;
        }
        if (n == 0) {
            conn_error(l, c, "the server closed a connection", ECONNRESET);
            return;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) conn_error(l, c, "recv", errno);
        return;
    }
}

/* ---- connection modes -------------------------------------------------------------------- */

static void msg_send(struct load *l, struct conn *c) {
    while (c->sent < l->o.size) {
        ssize_t w = send(c->fd, load_pattern + c->sent, l->o.size - c->sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) conn_error(l, c, "send", errno);
            return;
        }
        c->sent += (uint64_t)w;
    }
}

/* Close a connection with a reset: no FIN exchange and no TIME_WAIT left behind. */
static void close_reset(int fd) {
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    close(fd);
}

/* The message was echoed whole: count it, then close (connrate) or keep it idle.
 * connrate resets by default: closing first with a FIN leaves a TIME_WAIT on our side per
 * connection, and creating those costs the client more than the whole connection costs the
 * server, so the rate would measure the client's kernel, and swing 2x with how full the
 * kernel's TIME_WAIT table happens to be (once net.ipv4.tcp_max_tw_buckets is reached no
 * more are made). --close fin keeps the graceful close; the server's CPU per connection is
 * comparable either way. */
static void msg_done(struct load *l, struct conn *c) {
    if (l->o.mode == LOAD_CONNRATE) {
        if (l->o.close_fin) {
            close(c->fd);
        } else {
            close_reset(c->fd);
        }
        c->fd = -1;
        c->state = CONN_CLOSED;
        l->ops++;
        if (!l->stopping) conn_open(l, c);
        return;
    }
    c->state = CONN_IDLE;
    l->settled++;
    if (l->settled == l->o.connections) l->done = 1;
    if (l->opened < l->o.connections) conn_open(l, &l->conns[l->opened++]);
}

static void msg_read(struct load *l, struct conn *c) {
    for (;;) {
        size_t want = l->o.size - (size_t)c->recvd;
        ssize_t n = recv(c->fd, l->rbuf, want, 0);
        if (n > 0) {
            if (check_bytes(l, c->recvd, (size_t)n) < 0) return;
            c->recvd += (uint64_t)n;
            if (c->recvd == l->o.size) {
                msg_done(l, c);
                return;
            }
            continue;
        }
        if (n == 0) {
            conn_error(l, c, "the server closed a connection before echoing", ECONNRESET);
            return;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) conn_error(l, c, "recv", errno);
        return;
    }
}

/* ---- events ------------------------------------------------------------------------------ */

static void on_connected(struct load *l, struct conn *c, uint32_t events) {
    if (events & (EPOLLERR | EPOLLHUP)) { /* only then is there an error to ask for */
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        conn_error(l, c, "connect", err ? err : ECONNRESET);
        return;
    }
    if (stream_mode(l)) {
        c->state = CONN_STREAMING;
        stream_refill(l, c);
    } else {
        c->state = CONN_ECHO_WAIT;
        msg_send(l, c);
    }
}

void tcp_event(struct load *l, struct conn *c, uint32_t events) {
    switch (c->state) {
    case CONN_CONNECTING:
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(l, c, events);
        return;
    case CONN_STREAMING:
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) stream_read(l, c, events);
        if (c->state == CONN_STREAMING && !l->fail) stream_refill(l, c);
        return;
    case CONN_ECHO_WAIT:
        if (events & EPOLLOUT) msg_send(l, c);
        if (c->state == CONN_ECHO_WAIT && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
            msg_read(l, c);
        }
        return;
    case CONN_IDLE:
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            load_fail(l, "the server spoke on, or closed, an idle connection");
        }
        return;
    default:
        return;
    }
}

int tcp_start(struct load *l) {
    unsigned first = l->o.connections;
    if (l->o.mode == LOAD_IDLE_MEMORY && first > IDLE_CONCURRENCY) first = IDLE_CONCURRENCY;
    for (unsigned i = 0; i < l->n_conns; i++) {
        l->conns[i].fd = -1;
        l->conns[i].state = CONN_CLOSED;
    }
    for (unsigned i = 0; i < first; i++) {
        if (conn_open(l, &l->conns[i]) < 0) return -1;
    }
    l->opened = first;
    return 0;
}

uint64_t tcp_pace(struct load *l) {
    uint64_t next = UINT64_MAX;
    for (unsigned i = 0; i < l->n_conns && !l->fail; i++) {
        struct conn *c = &l->conns[i];
        if (c->state != CONN_STREAMING) continue;
        stream_refill(l, c);
        if (c->state != CONN_STREAMING) continue;
        /* Window full: the echo that frees it sends the next message, no timer needed. */
        if (c->sent - c->recvd + l->o.size > (uint64_t)l->o.depth * l->o.size) continue;
        uint64_t at = c->base_ns + msg_at(l, c->sent) * l->interval_ns;
        if (at < next) next = at;
    }
    return next;
}

/* Slots whose connection failed get a new one here (connrate, idle): the slots started so
 * far are conns[0 .. opened). */
void tcp_tick(struct load *l) {
    if (stream_mode(l) || l->stopping) return;
    for (unsigned i = 0; i < l->opened && !l->fail; i++) {
        if (l->conns[i].fd < 0) conn_open(l, &l->conns[i]);
    }
}

void tcp_stop(struct load *l) {
    /* 10k idle connections closed gracefully would leave 10k TIME_WAITs behind: reset them. */
    for (unsigned i = 0; i < l->n_conns; i++) {
        struct conn *c = &l->conns[i];
        if (c->fd < 0) continue;
        if (l->o.mode == LOAD_IDLE_MEMORY) {
            close_reset(c->fd);
        } else {
            close(c->fd);
        }
        c->fd = -1;
    }
}
