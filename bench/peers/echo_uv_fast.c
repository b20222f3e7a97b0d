/* bench/peers/echo_uv_fast.c: a libuv TCP echo server written the fast way.
 *
 * What someone who knows libuv well writes when echo speed matters:
 * - alloc_cb hands out one static 64 KiB buffer (the loop is single-threaded and read_cb is
 *   done with the buffer when it returns), so no read allocates;
 * - read_cb answers with uv_try_write(), a plain write() when nothing is queued;
 * - only what the kernel did not take is copied into one malloc'd write request and queued
 *   with uv_write(), and reading stops until its callback (backpressure, as zev's HWM does).
 * On EOF nothing can be queued (reading stops while a write is), so the handle is closed at
 * once, which sends our FIN after every echoed byte. Compare echo_uv_guide.c, the same server
 * the way the libuv guide teaches it.
 */
#include "peer.h"

#include <uv.h>

static char read_buf[PEER_READ_SIZE];

struct remainder {
    uv_write_t req;
    char data[]; /* the unsent tail of one echo */
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_closed(uv_handle_t *h) {
    free(h);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_remainder_written(uv_write_t *req, int status) {
    uv_stream_t *s = req->handle;
    free(req);
    if (uv_is_closing((uv_handle_t *)s)) return;
    if (status < 0) {
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    if (nread < 0) { /* UV_EOF or a reset: nothing is queued, see the top comment */
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    if (nread == 0) return; /* EAGAIN */
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    int n = uv_try_write(s, &out, 1);
    if (n == nread) return;
    if (n < 0 && n != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    size_t sent = n > 0 ? (size_t)n : 0;
    size_t rest = (size_t)nread - sent;
    struct remainder *r = malloc(sizeof(*r) + rest);
    if (!r) {
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    memcpy(r->data, buf->base + sent, rest);
    uv_buf_t tail = uv_buf_init(r->data, (unsigned)rest);
    if (uv_write(&r->req, s, &tail, 1, on_remainder_written) < 0) {
        free(r);
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    uv_read_stop(s);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) {
        fprintf(stderr, "echo_uv_fast: accept: %s\n", uv_strerror(status));
        return;
    }
    uv_tcp_t *client = malloc(sizeof(*client));
    if (!client) return;
    uv_tcp_init(server->loop, client);
    if (uv_accept(server, (uv_stream_t *)client) < 0 ||
        uv_read_start((uv_stream_t *)client, on_alloc, on_read) < 0) {
        uv_close((uv_handle_t *)client, on_closed);
    }
}

int main(int argc, char **argv) {
    struct peer_args a;
    peer_parse(argc, argv, &a);
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&a.addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&server, PEER_BACKLOG, on_connection);
    if (rc < 0) {
        fprintf(stderr, "echo_uv_fast: listen %s:%d: %s\n", a.host, a.port, uv_strerror(rc));
        return 1;
    }
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&server, &fd);
    peer_print_listening(argv[0], fd);
    return uv_run(loop, UV_RUN_DEFAULT);
}
