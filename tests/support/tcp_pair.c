/* tests/support/tcp_pair.c: see tcp_pair.h. */
#include "tcp_pair.h"

#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

struct pair_setup {
    zev_tcp_server_t server;
    zev_tcp_t *accepted_into;
    int accepted;
    int connected;
};

/* The listener must outlive the accepted socket (its close completes after b's), so it lives
 * here rather than on the caller's stack. Criterion runs each test in its own process. */
static struct pair_setup pairs[8];
static int n_pairs;

static void on_pair_connection(zev_tcp_server_t *s, int status) {
    struct pair_setup *p = s->handle.data;
    cr_assert_eq(status, 0);
    cr_assert_eq(zev_tcp_accept(s, p->accepted_into), 0);
    p->accepted = 1;
}

static void on_pair_connect(zev_tcp_t *t, int status) {
    struct pair_setup *p = t->handle.data;
    cr_assert_eq(status, 0, "connect: %s", zev_err_name(status));
    p->connected = 1;
}

void zt_tcp_pair(zev_tcp_t *a, zev_tcp_t *b) {
    cr_assert_lt(n_pairs, 8);
    struct pair_setup *p = &pairs[n_pairs++];
    *p = (struct pair_setup){.accepted_into = b};
    cr_assert_eq(zev_tcp_init(&zt_loop, a), 0);
    cr_assert_eq(zev_tcp_init(&zt_loop, b), 0);
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &p->server), 0);
    p->server.handle.data = p;
    cr_assert_eq(zev_tcp_listen(&p->server, "127.0.0.1", 0, NULL, on_pair_connection), 0);
    zev_addr_info_t info;
    zev_tcp_server_address(&p->server, &info);
    a->handle.data = p;
    cr_assert_eq(zev_tcp_connect(a, "127.0.0.1", info.port, on_pair_connect), 0);
    while (!p->accepted || !p->connected) zev_run(&zt_loop, ZEV_RUN_ONCE);
    a->handle.data = NULL;
    /* Stops accepting now; its close callback follows b's close. */
    zev_close(&p->server.handle, NULL);
}

int zt_raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

int zt_listen(zev_tcp_server_t *s, zev_tcp_connection_cb cb, void *data) {
    cr_assert_eq(zev_tcp_server_init(&zt_loop, s), 0);
    s->handle.data = data;
    cr_assert_eq(zev_tcp_listen(s, "127.0.0.1", 0, NULL, cb), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_tcp_server_address(s, &info), 0);
    return info.port;
}

int zt_raw_connect_nodelay(int port) {
    int fd = zt_raw_connect(port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

void zt_assert_closed_by_server(int *fds, int n) {
    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 5000), 1, "client %d was never told", i);
        char b;
        ssize_t r = recv(fds[i], &b, 1, MSG_DONTWAIT);
        cr_assert(r == 0 || (r < 0 && errno == ECONNRESET), "client %d: %zd", i, r);
        close(fds[i]);
        fds[i] = -1;
    }
}
