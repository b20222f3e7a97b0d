/* tests/soak/tcp_load.c: thousands of TCP connections to an echo service, opening and closing
 * all the time, every echoed byte checked.
 *
 * Each of `connections` slots holds one connection at a time. A connection lives a random
 * number of exchanges (1..MAX_EXCHANGES), a random pause (0..MAX_THINK_MS) apart, like a
 * client between requests; an exchange writes one message of a random size and waits until
 * its echo is back whole, while the echo already returning is read and checked
 * against the stream's pattern (soak.h) byte by byte, at its offset, and fed to a running
 * CRC32C that must equal the sent bytes' CRC when the stream ends. When its last message is
 * out, a connection ends one of three ways, chosen at open:
 *   graceful  (65%) shutdown(SHUT_WR) right after the last byte is written, then every byte
 *             must come back before the server's EOF: what a half-close promises;
 *   reset     (30%) after the last echo is back whole, close with RST (SO_LINGER 0): the
 *             server sees ECONNRESET with nothing left to send;
 *   abandon   (5%)  right after the last message is written, close with RST without awaiting
 *             the echo: the server's pending writes fail under it. Those bytes are counted
 *             as abandoned, not lost.
 * A freed slot is reopened at once (at most max_connecting handshakes in flight, to stay well
 * inside the listen backlog), so the service always carries about `connections` connections.
 * Until every slot has been established at once (the ramp), no connection ends: one that
 * reaches its last exchange draws a new lifetime, so the full count is reached even when
 * opening 10,000 takes seconds; then connections end as drawn, and the count hovers just
 * under the full one.
 *
 * Sockets are non-blocking, registered once, edge-triggered, with EPOLLIN|EPOLLOUT|EPOLLRDHUP:
 * one thread drives them all, with one 64 KiB read buffer. The pauses wait on a wheel of
 * 10 ms buckets (O(1) to add and remove), turned by the tick.
 */
#include "soak.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EXCHANGES 40u
#define MAX_THINK_MS 100u
#define WHEEL_MS 10u
#define WHEEL_SLOTS 16u /* > MAX_THINK_MS / WHEEL_MS + 1: a pause never wraps the wheel */
#define TICK_SCAN_NS 1000000000ull /* look for stalled connections once a second */

enum conn_state { C_FREE, C_CONNECTING, C_OPEN, C_THINKING, C_HALF_CLOSED };
enum conn_end { END_GRACEFUL, END_RESET, END_ABANDON };

struct conn {
    uint8_t kind; /* SOAK_KIND_TCP: first, for the epoll dispatch in soak.c */
    uint8_t state;
    uint8_t end;
    uint8_t last; /* the current message is the last: the end began when it was written */
    int fd;
    uint32_t exchanges_left; /* counting the current one */
    uint32_t key;            /* pattern offset of byte 0 of the stream */
    uint32_t crc_sent;
    uint32_t crc_echoed;
    uint64_t sent;
    uint64_t echoed;
    uint64_t msg_end; /* stream offset where the current message ends */
    uint64_t progress_ns;
    struct conn *wheel_next; /* C_THINKING: the wheel bucket's list */
    struct conn *wheel_prev;
};

struct tcp_load {
    int ep;
    struct sockaddr_in to;
    unsigned n;
    unsigned max_connecting;
    struct conn *conns;
    unsigned *free_slots; /* a stack of slot indices */
    unsigned n_free;
    int stopping;
    int ramped; /* every slot was established at once: connections may end */
    uint64_t start_ns;
    uint64_t live_sum; /* live, summed at every tick after the ramp */
    uint64_t live_samples;
    uint64_t rng;
    uint64_t now_ns;
    uint64_t last_scan_ns;
    unsigned char *rbuf;
    struct conn wheel[WHEEL_SLOTS]; /* list heads; bucket i: pauses ending in tick i mod N */
    uint64_t wheel_tick;            /* the next tick to turn: now_ns / WHEEL_MS */
    struct tcp_stats st;
};

/* Mostly small, sometimes large: 70% up to 512 B, 25% up to 8 KiB, 4.9% up to 64 KiB, 0.1%
 * up to 1 MiB (larger than the socket buffers, so the server's write queue and backpressure
 * work). About 3.5 KiB on average. */
static uint64_t message_size(struct tcp_load *l) {
    uint64_t r = soak_rand(&l->rng) % 1000;
    if (r < 700) return soak_rand_range(&l->rng, 1, 512);
    if (r < 950) return soak_rand_range(&l->rng, 513, 8192);
    if (r < 999) return soak_rand_range(&l->rng, 8193, 65536);
    return soak_rand_range(&l->rng, 65537, 1u << 20);
}

static void wheel_remove(struct conn *c) {
    c->wheel_prev->wheel_next = c->wheel_next;
    c->wheel_next->wheel_prev = c->wheel_prev;
    c->wheel_next = c->wheel_prev = NULL;
}

/* Pause c for 0..MAX_THINK_MS: it joins the bucket of the tick its pause ends in. */
static void wheel_add(struct tcp_load *l, struct conn *c) {
    uint64_t due =
        l->now_ns / (WHEEL_MS * 1000000ull) + soak_rand_range(&l->rng, 0, MAX_THINK_MS / WHEEL_MS);
    if (due < l->wheel_tick) due = l->wheel_tick;
    struct conn *head = &l->wheel[due % WHEEL_SLOTS];
    c->state = C_THINKING;
    c->wheel_next = head->wheel_next;
    c->wheel_prev = head;
    head->wheel_next->wheel_prev = c;
    head->wheel_next = c;
}

static const unsigned char *stream_at(const struct conn *c, uint64_t offset) {
    return soak_pattern + (c->key + offset) % SOAK_PATTERN_PERIOD;
}

static void slot_free(struct tcp_load *l, struct conn *c, int rst) {
    if (rst) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd); /* also leaves the epoll set: the fd is not shared */
    c->fd = -1;
    if (c->state == C_THINKING) wheel_remove(c);
    if (c->state == C_CONNECTING) {
        l->st.connecting--;
    } else {
        l->st.live--;
    }
    c->state = C_FREE;
    l->free_slots[l->n_free++] = (unsigned)(c - l->conns);
}

/* The connection failed (`kind`: an errno or a SOAK_ERR_*): what was sent and not echoed is
 * lost, unless it never connected. */
static void conn_fail(struct tcp_load *l, struct conn *c, int kind) {
    soak_error_add(&l->st.errors, kind);
    if (c->state == C_CONNECTING) {
        l->st.connect_failed++;
    } else {
        l->st.bytes_lost += c->sent - c->echoed;
        l->st.closed_failed++;
    }
    slot_free(l, c, 1);
}

static void conn_open(struct tcp_load *l, struct conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->state = C_CONNECTING;
    l->st.connecting++;
    l->st.opened++;
    c->fd = fd;
    if (fd < 0) {
        l->st.connecting--;
        c->state = C_FREE;
        l->st.connect_failed++;
        soak_error_add(&l->st.errors, errno);
        l->free_slots[l->n_free++] = (unsigned)(c - l->conns);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint64_t r = soak_rand(&l->rng);
    c->key = (uint32_t)(r % SOAK_PATTERN_PERIOD);
    uint64_t e = (r >> 32) % 100;
    c->end = e < 65 ? END_GRACEFUL : e < 95 ? END_RESET : END_ABANDON;
    c->exchanges_left = (uint32_t)soak_rand_range(&l->rng, 1, MAX_EXCHANGES);
    c->last = 0;
    c->sent = c->echoed = c->msg_end = 0;
    c->crc_sent = c->crc_echoed = 0;
    c->progress_ns = l->now_ns;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (connect(fd, (const struct sockaddr *)&l->to, sizeof(l->to)) < 0 && errno != EINPROGRESS) {
        conn_fail(l, c, errno);
        return;
    }
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0) conn_fail(l, c, errno);
}

/* Fill free slots, a bounded number of handshakes at a time. A failure to even start one
 * (EADDRNOTAVAIL, EMFILE) ends this round, so a shortage is not retried in a tight loop. */
static void fill_slots(struct tcp_load *l) {
    while (!l->stopping && l->n_free > 0 && l->st.connecting < l->max_connecting) {
        uint64_t failed = l->st.connect_failed;
        conn_open(l, &l->conns[l->free_slots[--l->n_free]]);
        if (l->st.connect_failed != failed) return;
    }
}

/* The last message is fully written: end as chosen at open. */
static void last_message_out(struct tcp_load *l, struct conn *c) {
    if (c->end == END_GRACEFUL) {
        if (shutdown(c->fd, SHUT_WR) < 0) {
            conn_fail(l, c, errno);
            return;
        }
        c->state = C_HALF_CLOSED;
    } else if (c->end == END_ABANDON) {
        l->st.bytes_abandoned += c->sent - c->echoed;
        l->st.closed_abandoned++;
        slot_free(l, c, 1);
    }
}

/* Write the rest of the current message; 0, or -1 if the connection is gone. */
static int conn_write(struct tcp_load *l, struct conn *c) {
    while (c->sent < c->msg_end) {
        uint64_t left = c->msg_end - c->sent;
        size_t n = left < SOAK_CHUNK ? (size_t)left : SOAK_CHUNK;
        const unsigned char *p = stream_at(c, c->sent);
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0; /* the next EPOLLOUT edge brings us back */
            conn_fail(l, c, errno);
            return -1;
        }
        c->crc_sent = soak_crc32c(c->crc_sent, p, (size_t)w);
        c->sent += (uint64_t)w;
        l->st.bytes_sent += (uint64_t)w;
    }
    if (c->exchanges_left == 1 && c->state == C_OPEN && !c->last && (l->ramped || l->stopping)) {
        c->last = 1;
        last_message_out(l, c);
        if (c->state == C_FREE) return -1;
    }
    return 0;
}

static int exchange_start(struct tcp_load *l, struct conn *c) {
    c->state = C_OPEN;
    c->msg_end = c->sent + message_size(l);
    return conn_write(l, c);
}

/* The current message is back whole. */
static int exchange_done(struct tcp_load *l, struct conn *c) {
    l->st.exchanges++;
    if (!c->last) {
        if (c->exchanges_left > 1) {
            c->exchanges_left--;
        } else {
            /* Still ramping: a new lifetime, so that connections do not all end together
             * the moment the ramp is over. */
            c->exchanges_left = (uint32_t)soak_rand_range(&l->rng, 1, MAX_EXCHANGES);
        }
        wheel_add(l, c); /* the next message after a pause */
        return 0;
    }
    if (c->end == END_RESET) {
        l->st.closed_reset++;
        slot_free(l, c, 1);
        return -1;
    }
    return 0; /* graceful: the EOF ends it */
}

/* The server's EOF: on a half-closed stream with every byte back, the good end. */
static void conn_eof(struct tcp_load *l, struct conn *c) {
    if (c->state != C_HALF_CLOSED || c->echoed != c->sent) {
        conn_fail(l, c, SOAK_ERR_EARLY_EOF);
        return;
    }
    if (c->crc_echoed != c->crc_sent) {
        soak_error_add(&l->st.errors, SOAK_ERR_CHECKSUM);
        l->st.bytes_reordered += c->echoed;
    }
    l->st.closed_graceful++;
    slot_free(l, c, 0);
}

/* Check n echoed bytes in l->rbuf; 0, or -1 if the connection was failed. */
static int check_echo(struct tcp_load *l, struct conn *c, size_t n) {
    if (c->echoed + n > c->sent) {
        l->st.bytes_reordered += n;
        conn_fail(l, c, SOAK_ERR_EXTRA);
        return -1;
    }
    if (memcmp(l->rbuf, stream_at(c, c->echoed), n) != 0) {
        l->st.bytes_reordered += n;
        c->echoed += n; /* not lost: delivered wrong */
        conn_fail(l, c, SOAK_ERR_MISMATCH);
        return -1;
    }
    c->crc_echoed = soak_crc32c(c->crc_echoed, l->rbuf, n);
    c->echoed += n;
    c->progress_ns = l->now_ns;
    l->st.bytes_echoed += n;
    return 0;
}

/* Read until the socket is drained; 0, or -1 if the connection is gone. */
static int conn_read(struct tcp_load *l, struct conn *c) {
    for (;;) {
        ssize_t n = recv(c->fd, l->rbuf, SOAK_CHUNK, 0);
        if (n > 0) {
            if (check_echo(l, c, (size_t)n) < 0) return -1;
            /* Once per message: a byte past msg_end fails check_echo first. */
            if (c->echoed == c->msg_end && exchange_done(l, c) < 0) return -1;
            continue;
        }
        if (n == 0) {
            conn_eof(l, c);
            return -1;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return 0;
        conn_fail(l, c, errno);
        return -1;
    }
}

static void conn_connected(struct tcp_load *l, struct conn *c) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) {
        conn_fail(l, c, err);
        return;
    }
    c->state = C_OPEN;
    l->st.connecting--;
    l->st.live++;
    if (l->st.live > l->st.peak_live) l->st.peak_live = l->st.live;
    if (!l->ramped && l->st.live == l->n) {
        l->ramped = 1;
        l->st.ramp_s = (double)(l->now_ns - l->start_ns) / 1e9;
    }
    c->progress_ns = l->now_ns;
    if (l->stopping) c->exchanges_left = 1;
    exchange_start(l, c);
}

void tcp_load_event(struct tcp_load *l, void *ptr, uint32_t events) {
    struct conn *c = ptr;
    if (c->state == C_FREE) return; /* closed earlier in this batch */
    if (c->state == C_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        conn_connected(l, c);
        if (c->state == C_FREE) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (conn_read(l, c) < 0) return;
    }
    if ((events & EPOLLOUT) && c->state == C_OPEN) conn_write(l, c);
}

static void scan_stalled(struct tcp_load *l) {
    uint64_t limit = (uint64_t)SOAK_STALL_S * 1000000000u;
    for (unsigned i = 0; i < l->n; i++) {
        struct conn *c = &l->conns[i];
        if (c->state != C_FREE && c->progress_ns + limit < l->now_ns) {
            conn_fail(l, c, c->state == C_CONNECTING ? ETIMEDOUT : SOAK_ERR_STALLED);
        }
    }
}

/* Start the next exchange of every connection whose pause is over. */
static void wheel_turn(struct tcp_load *l) {
    uint64_t now_tick = l->now_ns / (WHEEL_MS * 1000000ull);
    for (; l->wheel_tick <= now_tick; l->wheel_tick++) {
        struct conn *head = &l->wheel[l->wheel_tick % WHEEL_SLOTS];
        while (head->wheel_next != head) {
            struct conn *c = head->wheel_next;
            wheel_remove(c);
            c->progress_ns = l->now_ns;
            exchange_start(l, c);
        }
    }
}

void tcp_load_tick(struct tcp_load *l, uint64_t now_ns) {
    l->now_ns = now_ns;
    if (l->ramped && !l->stopping) {
        l->live_sum += l->st.live;
        l->st.live_avg = (double)l->live_sum / (double)++l->live_samples;
    }
    wheel_turn(l);
    if (now_ns - l->last_scan_ns >= TICK_SCAN_NS) {
        l->last_scan_ns = now_ns;
        scan_stalled(l);
    }
    fill_slots(l);
}

void tcp_load_stop(struct tcp_load *l) {
    l->stopping = 1;
    for (unsigned i = 0; i < l->n; i++) {
        struct conn *c = &l->conns[i];
        if (c->state == C_THINKING) c->exchanges_left = 1; /* its pause ends in the last one */
        if (c->state != C_OPEN) continue;
        c->exchanges_left = 1;
        if (c->sent == c->msg_end && !c->last) {
            c->last = 1;
            last_message_out(l, c);
        }
    }
}

unsigned tcp_load_open(const struct tcp_load *l) {
    return l->st.live + l->st.connecting;
}

void tcp_load_abort(struct tcp_load *l) {
    for (unsigned i = 0; i < l->n; i++) {
        struct conn *c = &l->conns[i];
        if (c->state != C_FREE) conn_fail(l, c, SOAK_ERR_STALLED);
    }
}

const struct tcp_stats *tcp_load_stats(const struct tcp_load *l) {
    return &l->st;
}

struct tcp_load *tcp_load_new(int ep, const struct sockaddr_in *to, unsigned connections,
                              unsigned max_connecting, uint64_t seed) {
    struct tcp_load *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    l->conns = calloc(connections, sizeof(*l->conns));
    l->free_slots = calloc(connections, sizeof(*l->free_slots));
    l->rbuf = malloc(SOAK_CHUNK);
    if (!l->conns || !l->free_slots || !l->rbuf) {
        tcp_load_free(l);
        return NULL;
    }
    l->ep = ep;
    l->to = *to;
    l->n = connections;
    l->max_connecting = max_connecting;
    l->rng = seed | 1;
    l->now_ns = l->last_scan_ns = l->start_ns = soak_now_ns();
    l->wheel_tick = l->now_ns / (WHEEL_MS * 1000000ull);
    for (unsigned i = 0; i < WHEEL_SLOTS; i++) {
        l->wheel[i].wheel_next = l->wheel[i].wheel_prev = &l->wheel[i];
    }
    for (unsigned i = 0; i < connections; i++) {
        l->conns[i].kind = SOAK_KIND_TCP;
        l->conns[i].fd = -1;
        l->free_slots[i] = connections - 1 - i;
    }
    l->n_free = connections;
    return l;
}

void tcp_load_free(struct tcp_load *l) {
    if (!l) return;
    free(l->conns);
    free(l->free_slots);
    free(l->rbuf);
    free(l);
}
