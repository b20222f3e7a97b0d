/* bench/load_udp.c: the UDP traffic of zev-bench: udp-pingpong and udp-flood.
 *
 * Each socket is connect()ed to the echo server, so it only hears the server, and keeps up to
 * depth datagrams in flight (1 for udp-pingpong): it tops the window up with one sendmmsg
 * and drains replies with recvmmsg, 64 at a time, edge-triggered. Any echo server works, zev's
 * or another. UDP may drop: a socket that heard nothing for LOSS_MS while datagrams were out
 * counts them as lost and sends afresh, so a lost datagram costs a pause, never a hang.
 * conn->state holds the datagrams in flight. Leaves the clock and the result to zev-bench.c.
 */
#include "load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH 64
#define MAX_DEPTH 256
#define LOSS_MS 100

static struct mmsghdr tx[MAX_DEPTH];
static struct iovec tx_iov[MAX_DEPTH];
static struct mmsghdr rx[BATCH];
static struct iovec rx_iov[BATCH];
static size_t slot_len;

static int failf(struct load *l, const char *what, int err) {
    static char why[160];
    snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
    return load_fail(l, why);
}

static void refill(struct load *l, struct conn *c) {
    while (c->state < (int)l->o.depth) {
        unsigned n = l->o.depth - (unsigned)c->state;
        int sent = sendmmsg(c->fd, tx, n, 0);
        if (sent < 0) {
            if (errno == EINTR) continue;
            /* A full buffer: the tick tries again. ECONNREFUSED: the server is gone. */
            if (errno != EAGAIN && errno != ENOBUFS) failf(l, "sendmmsg", errno);
            return;
        }
        c->state += sent;
        c->sent += (uint64_t)sent;
        c->last_ns = l->now_ns;
    }
}

void udp_event(struct load *l, struct conn *c, uint32_t events) {
    (void)events;
    for (;;) {
        int n = recvmmsg(c->fd, rx, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) failf(l, "recvmmsg", errno);
            break;
        }
        for (int i = 0; i < n; i++) {
            if (rx[i].msg_len != l->o.size || (rx[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                load_fail(l, "an echoed datagram has the wrong size");
                return;
            }
        }
        c->recvd += (uint64_t)n;
        c->last_ns = l->now_ns;
        /* A reply to a datagram already written off as lost is late, not extra: no credit. */
        int counted = n < c->state ? n : c->state;
        c->state -= counted;
        l->ops += (uint64_t)counted;
        if (n < BATCH) break; /* drained: the next datagram raises a new edge */
    }
    refill(l, c);
}

int udp_start(struct load *l) {
    if (l->o.depth > MAX_DEPTH) return load_fail(l, "--depth is at most 256 for UDP");
    slot_len = l->o.size + 1; /* one spare byte: a longer datagram shows as too long */
    free(l->rbuf);
    l->rbuf = malloc(BATCH * slot_len);
    if (!l->rbuf) return load_fail(l, "out of memory");
    for (unsigned i = 0; i < BATCH; i++) {
        rx_iov[i] = (struct iovec){.iov_base = l->rbuf + i * slot_len, .iov_len = slot_len};
        rx[i].msg_hdr = (struct msghdr){.msg_iov = &rx_iov[i], .msg_iovlen = 1};
    }
    for (unsigned i = 0; i < MAX_DEPTH; i++) {
        tx_iov[i] = (struct iovec){.iov_base = load_pattern, .iov_len = l->o.size};
        tx[i].msg_hdr = (struct msghdr){.msg_iov = &tx_iov[i], .msg_iovlen = 1};
    }
    for (unsigned i = 0; i < l->n_conns; i++) {
        struct conn *c = &l->conns[i];
        c->fd = socket(l->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) return failf(l, "socket", errno);
        if (connect(c->fd, (const struct sockaddr *)&l->addr, l->addr_len) < 0) {
            return failf(l, "connect", errno);
        }
        if (load_watch(l, c, EPOLLIN | EPOLLET) < 0) return -1;
    }
    for (unsigned i = 0; i < l->n_conns && !l->fail; i++) {
        refill(l, &l->conns[i]);
    }
    return l->fail ? -1 : 0;
}

void udp_tick(struct load *l) {
    uint64_t limit_ns = (uint64_t)LOSS_MS * 1000000u;
    for (unsigned i = 0; i < l->n_conns && !l->fail; i++) {
        struct conn *c = &l->conns[i];
        if (c->state > 0 && l->now_ns - c->last_ns > limit_ns) {
            l->lost += (uint64_t)c->state;
            c->state = 0;
        }
        refill(l, c);
    }
}

void udp_stop(struct load *l) {
    for (unsigned i = 0; i < l->n_conns; i++) {
        if (l->conns[i].fd >= 0) close(l->conns[i].fd);
        l->conns[i].fd = -1;
    }
}
