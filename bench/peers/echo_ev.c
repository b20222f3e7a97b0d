/* bench/peers/echo_ev.c: a libev TCP echo server.
 *
 * libev gives readiness, not I/O, so this is the epoll reference's logic on ev_io watchers,
 * the way ev.pod shows them: one read watcher per connection (level-triggered, so one read
 * per callback: libev calls again while bytes wait), reads into one static 64 KiB buffer and
 * write() straight back. What the kernel does not take is copied to the connection, the read
 * watcher stops and a write watcher starts until it is written (backpressure); switching
 * watchers costs libev an epoll_ctl, but only then. The loop is ev_loop_new() pinned to the
 * epoll backend, as in bench/peers/micro_ev.c.
 */
#include "peer.h"

#include <errno.h>
#include <unistd.h>

#include <ev.h>

#define ACCEPT_BUDGET 64

struct conn {
    ev_io reader;
    ev_io writer;
    char *pending; /* unsent echo */
    size_t pending_len;
    size_t pending_off;
};

static char read_buf[PEER_READ_SIZE];

static void conn_close(struct ev_loop *loop, struct conn *c) {
    ev_io_stop(loop, &c->reader);
    ev_io_stop(loop, &c->writer);
    close(c->reader.fd);
    free(c->pending);
    free(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents) {
    (void)revents;
    struct conn *c = w->data;
    while (c->pending_off < c->pending_len) {
        ssize_t n = write(w->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            conn_close(loop, c);
            return;
        }
        c->pending_off += (size_t)n;
    }
    c->pending_len = c->pending_off = 0;
    ev_io_stop(loop, &c->writer);
    ev_io_start(loop, &c->reader);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
    (void)revents;
    struct conn *c = w->data;
    ssize_t n = read(w->fd, read_buf, sizeof(read_buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { /* EOF with every echo out (we never read while one is pending), or error */
        conn_close(loop, c);
        return;
    }
    ssize_t sent = write(w->fd, read_buf, (size_t)n);
    if (sent == n) return;
    if (sent < 0 && errno != EAGAIN && errno != EINTR) {
        conn_close(loop, c);
        return;
    }
    size_t done = sent > 0 ? (size_t)sent : 0;
    size_t rest = (size_t)n - done;
    char *p = realloc(c->pending, rest);
    if (!p) {
        conn_close(loop, c);
        return;
    }
    memcpy(p, read_buf + done, rest);
    c->pending = p;
    c->pending_len = rest;
    c->pending_off = 0;
    ev_io_stop(loop, &c->reader);
    ev_io_start(loop, &c->writer);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
    (void)revents;
    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN) perror("echo_ev: accept4");
            return; /* level-triggered: more waiting means we are called again */
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        ev_io_init(&c->reader, on_readable, fd, EV_READ);
        ev_io_init(&c->writer, on_writable, fd, EV_WRITE);
        c->reader.data = c->writer.data = c;
        ev_io_start(loop, &c->reader);
    }
}

int main(int argc, char **argv) {
    struct peer_args a;
    peer_parse(argc, argv, &a);
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    int fd = socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (!loop || fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a.addr, a.addr_len) < 0 || listen(fd, PEER_BACKLOG) < 0) {
        perror("echo_ev: listen");
        return 1;
    }
    ev_io acceptor;
    ev_io_init(&acceptor, on_accept, fd, EV_READ);
    ev_io_start(loop, &acceptor);
    peer_print_listening(argv[0], fd);
    ev_run(loop, 0);
    return 0;
}
