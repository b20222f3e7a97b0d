/* bench/peers/echo_epoll.c: the reference TCP echo server: hand-written edge-triggered epoll.
 *
 * What an expert writes without a library, and so the floor the libraries are measured against:
 * - every socket is registered once, EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET: echoing costs no
 *   epoll_ctl, ever;
 * - reads land in one static 64 KiB buffer and are written straight back with write();
 * - a short read means the socket is drained (a new arrival raises a new edge), so the
 *   read that would only say EAGAIN is skipped: one read, one write, one epoll_wait per
 *   message in a ping-pong;
 * - what the kernel does not take is copied to a per-connection buffer (the only copy, and
 *   only under backpressure), and reading pauses until it is written: the peer is slowed
 *   down by TCP, not by our memory.
 * No per-read budget: a socket is read until drained or until its echo backs up, which stops
 * it anyway. Leaves the command line and the "listening on" line to peer.h.
 */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 1024
#define ACCEPT_BUDGET 64

struct conn {
    int fd;
    char *pending; /* unsent echo, copied out of the read buffer */
    size_t pending_len;
    size_t pending_off;
};

static char read_buf[PEER_READ_SIZE];
static int listen_fd;
/* The listener is told apart from connections by this address in epoll_event.data.ptr. */
static struct conn listener_tag;

static void conn_close(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
}

/* Write the unsent remainder. 1 when it is all out, 0 to wait for EPOLLOUT, -1 on error. */
static int flush_pending(struct conn *c) {
    while (c->pending_off < c->pending_len) {
        ssize_t n = write(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
        c->pending_off += (size_t)n;
    }
    c->pending_len = c->pending_off = 0;
    return 1;
}

/* Echo n bytes of read_buf. 1 if all written, 0 if some wait in c->pending, -1 on error. */
static int echo(struct conn *c, size_t n) {
    ssize_t w;
    do {
        w = write(c->fd, read_buf, n);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN) return -1;
    size_t sent = w < 0 ? 0 : (size_t)w;
    if (sent == n) return 1;
    size_t rest = n - sent;
    char *p = realloc(c->pending, rest);
    if (!p) return -1;
    memcpy(p, read_buf + sent, rest);
    c->pending = p;
    c->pending_len = rest;
    c->pending_off = 0;
    return 0;
}

/* Read and echo until drained or backed up. 0 to keep the connection, -1 to close it. */
static int on_readable(struct conn *c, uint32_t events) {
    int hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    for (;;) {
        ssize_t n = read(c->fd, read_buf, sizeof(read_buf));
        if (n > 0) {
            int r = echo(c, (size_t)n);
            if (r <= 0) return r; /* backed up: resume once pending is flushed */
            /* Drained; but after a hang-up the EOF itself is still to be read. */
            if ((size_t)n < sizeof(read_buf) && !hup) return 0;
            continue;
        }
        if (n == 0) return -1; /* EOF, and every echo is out: close, which sends our FIN */
        if (errno == EINTR) continue;
        return errno == EAGAIN ? 0 : -1;
    }
}

static void on_conn_event(struct conn *c, uint32_t events) {
    if (c->pending_len > 0) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int r = flush_pending(c);
        if (r < 0) {
            conn_close(c);
            return;
        }
        if (r == 0) return;
        /* Flushed: bytes (and maybe the FIN) that arrived while paused raised their edges
         * long ago; read now, until EAGAIN rather than to the first short read. */
        events |= EPOLLIN | EPOLLRDHUP;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (on_readable(c, events) < 0) conn_close(c);
    }
}

static void accept_some(int ep) {
    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN) perror("echo_epoll: accept4");
            return;
        }
        struct conn *c = calloc(1, sizeof(*c));
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (!c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("echo_epoll: new connection");
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
    }
    /* Budget spent with more waiting: the edge will not come again, so look once more from
     * the next epoll_wait (level-triggered for the listener would do the same). */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
    epoll_ctl(ep, EPOLL_CTL_MOD, listen_fd, &ev);
}

/* --stall-ms: the whole server sleeps, as one stuck on a slow disk or a long GC pause would. */
static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void stall(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv) {
    struct peer_args a;
    peer_parse(argc, argv, &a);

    listen_fd = peer_listen_tcp(argv[0], &a);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev) < 0) {
        perror("echo_epoll: epoll");
        return 1;
    }
    peer_print_listening(argv[0], listen_fd);

    static struct epoll_event events[MAX_EVENTS];
    uint64_t next_stall = a.stall_ms ? mono_ms() + 1000 : 0;
    for (;;) {
        int timeout = -1;
        if (next_stall) {
            uint64_t now = mono_ms();
            if (now >= next_stall) {
                stall(a.stall_ms);
                next_stall = now + 1000;
                now = mono_ms();
            }
            timeout = next_stall > now ? (int)(next_stall - now) : 0;
        }
        int n = epoll_wait(ep, events, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("echo_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &listener_tag) {
                accept_some(ep);
            } else {
                on_conn_event(events[i].data.ptr, events[i].events);
            }
        }
    }
}
