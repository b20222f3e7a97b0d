/* bench/peers/proxy_epoll.c: the reference TCP proxy: hand-written edge-triggered epoll.
 *
 * What the kernel allows for a proxy that goes through user space, to measure zev-proxy
 * against (scripts/bench, family proxy). The same technique as echo_epoll.c:
 * - each accepted connection gets a pair of ends (the client and a nonblocking connect to
 *   --to), both registered once EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET: no epoll_ctl per message;
 * - bytes read from one end go out of the other straight from one static 64 KiB buffer;
 * - what the other end does not take (or cannot yet: it may still be connecting) is copied to
 *   that end's pending buffer, and reading the source pauses until it is flushed;
 * - EOF on one end shuts down the other's sending side once its pending bytes are out, and
 *   the pair closes when both directions have ended (or at once on an error).
 * Command line: --host/--port to listen on, --to HOST:PORT (peer.h).
 */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 1024
#define ACCEPT_BUDGET 64

struct end {
    int fd;
    struct end *other;
    struct pair *pair;
    char *pending; /* bytes for this end's fd that it did not take yet */
    size_t pending_len;
    size_t pending_off;
    bool eof;          /* this end's peer sent FIN: nothing more to read from it */
    bool shut;         /* our FIN was sent on this end */
    bool closed;       /* the pair is closed; freed after the current batch */
};

struct pair {
    struct end client;
    struct end upstream;
    struct pair *next_dead;
};

static char read_buf[PEER_READ_SIZE];
static int listen_fd;
static struct peer_args args;
static struct end listener_tag;
static struct pair *dead; /* closed during this batch of events: freed after it */

static void pair_close(struct end *e) {
    if (e->closed) return;
    struct end *o = e->other;
    struct pair *p = e->pair;
    e->closed = o->closed = true;
    close(e->fd);
    close(o->fd);
    free(e->pending);
    free(o->pending);
    p->next_dead = dead;
    dead = p;
}

/* Send our FIN on e once everything for it is out and its source has ended. */
static void maybe_shut(struct end *e) {
    if (!e->shut && e->other->eof && e->pending_len == 0) {
        shutdown(e->fd, SHUT_WR);
        e->shut = true;
    }
    if (e->shut && e->other->shut) pair_close(e);
}

/* Write n bytes of read_buf to dst. 1 if all written, 0 if some wait in dst->pending, -1 on
 * error. */
static int forward(struct end *dst, size_t n) {
    ssize_t w;
    do {
        w = write(dst->fd, read_buf, n);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != ENOTCONN) return -1;
    size_t sent = w < 0 ? 0 : (size_t)w;
    if (sent == n) return 1;
    size_t rest = n - sent;
    char *p = realloc(dst->pending, rest);
    if (!p) return -1;
    memcpy(p, read_buf + sent, rest);
    dst->pending = p;
    dst->pending_len = rest;
    dst->pending_off = 0;
    return 0;
}

/* Read src and forward to its other end until drained or backed up. -1 to close the pair. */
static int on_readable(struct end *src, uint32_t events) {
    int hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    while (!src->eof) {
        ssize_t n = read(src->fd, read_buf, sizeof(read_buf));
        if (n > 0) {
            int r = forward(src->other, (size_t)n);
            if (r <= 0) return r; /* backed up: resumed once the other end is flushed */
            if ((size_t)n < sizeof(read_buf) && !hup) return 0;
            continue;
        }
        if (n == 0) {
            src->eof = true;
            maybe_shut(src->other);
            return 0;
        }
        if (errno == EINTR) continue;
        return errno == EAGAIN ? 0 : -1;
    }
    return 0;
}

/* Flush what waits for e. 1 when it is all out, 0 to wait for EPOLLOUT, -1 on error. */
static int flush_pending(struct end *e) {
    while (e->pending_off < e->pending_len) {
        ssize_t n = write(e->fd, e->pending + e->pending_off, e->pending_len - e->pending_off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == ENOTCONN ? 0 : -1;
        }
        e->pending_off += (size_t)n;
    }
    e->pending_len = e->pending_off = 0;
    return 1;
}

static void on_end_event(struct end *e, uint32_t events) {
    if (e->closed) return;
    if (events & EPOLLERR) {
        pair_close(e);
        return;
    }
    if (e->pending_len > 0 && (events & EPOLLOUT)) {
        int r = flush_pending(e);
        if (r < 0) {
            pair_close(e);
            return;
        }
        if (r == 1) {
            /* The source paused for us: its bytes (and maybe its FIN) raised their edges
             * long ago, so read it now, until EAGAIN rather than to the first short read. */
            if (on_readable(e->other, EPOLLIN | EPOLLRDHUP) < 0) {
                pair_close(e);
                return;
            }
            if (e->closed) return;
            maybe_shut(e);
            if (e->closed) return;
        }
    }
    /* Reading e waits while its destination still holds unsent bytes. */
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && e->other->pending_len == 0) {
        if (on_readable(e, events) < 0) pair_close(e);
    }
}

static int connect_upstream(void) {
    int fd = socket(args.to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&args.to, args.to_len) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static int watch(int ep, struct end *e) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = e};
    return epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &ev);
}

static void accept_some(int ep) {
    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN) perror("proxy_epoll: accept4");
            return;
        }
        struct pair *p = calloc(1, sizeof(*p));
        int up = p ? connect_upstream() : -1;
        if (up < 0) {
            perror("proxy_epoll: connect to --to");
            free(p);
            close(fd);
            continue;
        }
        p->client = (struct end){.fd = fd, .other = &p->upstream, .pair = p};
        p->upstream = (struct end){.fd = up, .other = &p->client, .pair = p};
        if (watch(ep, &p->client) < 0 || watch(ep, &p->upstream) < 0) {
            perror("proxy_epoll: epoll_ctl");
            close(fd);
            close(up);
            free(p);
        }
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
    epoll_ctl(ep, EPOLL_CTL_MOD, listen_fd, &ev);
}

int main(int argc, char **argv) {
    peer_parse(argc, argv, &args);
    if (args.to_len == 0) {
        fprintf(stderr, "%s: --to HOST:PORT is required\n", argv[0]);
        return 2;
    }

    listen_fd = peer_listen_tcp(argv[0], &args);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev) < 0) {
        perror("proxy_epoll: epoll");
        return 1;
    }
    peer_print_listening(argv[0], listen_fd);

    static struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("proxy_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &listener_tag) {
                accept_some(ep);
            } else {
                on_end_event(events[i].data.ptr, events[i].events);
            }
        }
        while (dead) {
            struct pair *p = dead;
            dead = p->next_dead;
            free(p);
        }
    }
}
