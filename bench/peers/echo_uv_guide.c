/* bench/peers/echo_uv_guide.c: a libuv TCP echo server written the way the libuv guide does.
 *
 * The guide's echo server ("Networking" chapter), as most libuv code in the wild is written:
 * alloc_cb mallocs the suggested size (64 KiB) for every read, read_cb wraps the bytes in a
 * malloc'd write request and queues it with uv_write(), and the write callback frees the
 * request and the buffer. So every message costs two malloc/free pairs and goes through the
 * write queue (uv_write still tries the kernel at once when the queue is empty). No
 * backpressure, as in the guide: the benchmark client bounds what is in flight.
 *
 * One change from the guide: on EOF it shuts the write side down (uv_shutdown) and closes
 * in the shutdown callback, so echoes still queued are sent, not cancelled by uv_close: the
 * same behaviour as the other peers. Compare echo_uv_fast.c.
 */
#include "peer.h"

#include <uv.h>

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static void alloc_buffer(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf) {
    (void)handle;
    buf->base = malloc(suggested_size);
    buf->len = buf->base ? suggested_size : 0;
}

static void on_close(uv_handle_t *handle) {
    free(handle);
}

static void echo_write(uv_write_t *req, int status) {
    if (status < 0 && status != UV_ECANCELED) {
        fprintf(stderr, "echo_uv_guide: write: %s\n", uv_strerror(status));
    }
    write_req_t *wr = (write_req_t *)req;
    free(wr->buf.base);
    free(wr);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    (void)status;
    uv_close((uv_handle_t *)req->handle, on_close);
    free(req);
}

static void echo_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf) {
    if (nread > 0) {
        write_req_t *req = malloc(sizeof(*req));
        req->buf = uv_buf_init(buf->base, (unsigned)nread);
        uv_write((uv_write_t *)req, client, &req->buf, 1, echo_write);
        return;
    }
    if (nread < 0) {
        uv_shutdown_t *sreq = NULL;
        if (nread == UV_EOF) sreq = malloc(sizeof(*sreq));
        if (!sreq || uv_shutdown(sreq, client, on_shutdown) < 0) {
            free(sreq);
            uv_close((uv_handle_t *)client, on_close);
        }
    }
    free(buf->base);
}

static void on_new_connection(uv_stream_t *server, int status) {
    if (status < 0) {
        fprintf(stderr, "echo_uv_guide: new connection: %s\n", uv_strerror(status));
        return;
    }
    uv_tcp_t *client = malloc(sizeof(*client));
    uv_tcp_init(server->loop, client);
    if (uv_accept(server, (uv_stream_t *)client) == 0) {
        uv_read_start((uv_stream_t *)client, alloc_buffer, echo_read);
    } else {
        uv_close((uv_handle_t *)client, on_close);
    }
}

int main(int argc, char **argv) {
    struct peer_args a;
    peer_parse(argc, argv, &a);
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&a.addr, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&server, PEER_BACKLOG, on_new_connection);
    if (r < 0) {
        fprintf(stderr, "echo_uv_guide: listen %s:%d: %s\n", a.host, a.port, uv_strerror(r));
        return 1;
    }
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&server, &fd);
    peer_print_listening(argv[0], fd);
    return uv_run(loop, UV_RUN_DEFAULT);
}
