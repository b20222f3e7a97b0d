/* bench/peers/udp_echo_uv.c: a libuv UDP echo server written the fast way.
 *
 * The handle is created with UV_UDP_RECVMMSG and alloc_cb hands out one static buffer of
 * 20 x 64 KiB, so libuv receives up to 20 datagrams per recvmmsg (its maximum) and calls
 * recv_cb once per datagram. Each is answered at once with uv_udp_try_send() (one sendmsg;
 * libuv has no batched try-send). Only a datagram the kernel will not take now is copied into
 * a malloc'd send request and queued with uv_udp_send(). Receiving is not paused for it:
 * uv_udp_recv_stop() inside a recvmmsg batch drops the rest of the batch, and the benchmark
 * client bounds what is in flight anyway.
 */
#include "peer.h"

#include <uv.h>

#define SLOTS 20 /* libuv's recvmmsg width */

static char recv_buf[SLOTS * PEER_READ_SIZE];

struct queued {
    uv_udp_send_t req;
    struct sockaddr_storage to;
    char data[];
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(recv_buf, sizeof(recv_buf));
}

static void on_sent(uv_udp_send_t *req, int status) {
    if (status < 0) fprintf(stderr, "udp_echo_uv: send: %s\n", uv_strerror(status));
    free(req);
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags) {
    (void)flags; /* UV_UDP_MMSG_CHUNK / _FREE: the buffer is static, nothing to free */
    if (nread < 0) {
        fprintf(stderr, "udp_echo_uv: recv: %s\n", uv_strerror((int)nread));
        return;
    }
    if (!from) return; /* nothing more to read, or the end of a recvmmsg batch */
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    int rc = uv_udp_try_send(u, &out, 1, from);
    if (rc >= 0) return;
    if (rc != UV_EAGAIN) {
        fprintf(stderr, "udp_echo_uv: send: %s\n", uv_strerror(rc));
        return;
    }
    struct queued *q = malloc(sizeof(*q) + (size_t)nread);
    if (!q) return; /* one datagram lost */
    memcpy(q->data, buf->base, (size_t)nread);
    memcpy(&q->to, from,
           from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    uv_buf_t copy = uv_buf_init(q->data, (unsigned)nread);
    if (uv_udp_send(&q->req, u, &copy, 1, (const struct sockaddr *)&q->to, on_sent) < 0) {
        free(q);
    }
}

int main(int argc, char **argv) {
    struct peer_args a;
    peer_parse(argc, argv, &a);
    uv_loop_t *loop = uv_default_loop();
    uv_udp_t server;
    int rc = uv_udp_init_ex(loop, &server, a.addr.ss_family | UV_UDP_RECVMMSG);
    if (rc == 0) rc = uv_udp_bind(&server, (const struct sockaddr *)&a.addr, 0);
    if (rc == 0) rc = uv_udp_recv_start(&server, on_alloc, on_recv);
    if (rc < 0) {
        fprintf(stderr, "udp_echo_uv: bind %s:%d: %s\n", a.host, a.port, uv_strerror(rc));
        return 1;
    }
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&server, &fd);
    peer_print_listening(argv[0], fd);
    return uv_run(loop, UV_RUN_DEFAULT);
}
