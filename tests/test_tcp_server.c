/* tests/test_tcp_server.c: the listener's Node semantics: connection counts, maxConnections
 * and drop, connections not accepted, close waiting for its connections, unref, addresses. */
#include "tcp_pair.h"
#include "zt.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_server, .init = zt_setup, .fini = zt_teardown, .timeout = 20);

struct srv {
    zev_tcp_server_t s;
    zev_tcp_t conns[8];
    int n;
    int drops;
    int closed;
    int accept_all;
};

static void on_conn(zev_tcp_server_t *s, int status) {
    struct srv *v = s->handle.data;
    cr_assert_eq(status, 0);
    if (!v->accept_all) return; /* not accepted: zev closes it and counts a drop */
    zev_tcp_t *c = &v->conns[v->n++];
    zev_tcp_init(s->handle.loop, c);
    cr_assert_eq(zev_tcp_accept(s, c), 0);
    cr_assert_eq(zev_tcp_accept(s, c), -EAGAIN, "one connection per callback");
}

static void on_drop(zev_tcp_server_t *s, const zev_sockaddr_t *peer) {
    struct srv *v = s->handle.data;
    zev_addr_info_t info;
    cr_assert_eq(zev_addr_info(peer, &info), 0);
    cr_assert_str_eq(info.address, "127.0.0.1");
    v->drops++;
}

static void srv_closed(zev_handle_t *h) {
    ((struct srv *)h->data)->closed++;
}

static int srv_listen(struct srv *v) {
    memset(v, 0, sizeof(*v));
    v->accept_all = 1;
    zev_tcp_server_init(&zt_loop, &v->s);
    v->s.handle.data = v;
    cr_assert_eq(zev_tcp_listen(&v->s, "127.0.0.1", 0, NULL, on_conn), 0);
    zev_addr_info_t info;
    zev_tcp_server_address(&v->s, &info);
    cr_assert_str_eq(info.address, "127.0.0.1");
    cr_assert_eq(info.family, 4);
    return info.port;
}

static void run_until_events(struct srv *v, int conns, int drops) {
    while (v->n < conns || v->drops < drops) zev_run(&zt_loop, ZEV_RUN_ONCE);
}

Test(tcp_server, max_connections_closes_the_extra_ones_and_reports_drop) {
    struct srv v;
    int port = srv_listen(&v);
    cr_assert_eq(zev_tcp_server_set_max_connections(&v.s, 2, on_drop), 0);
    int fds[4];
    for (int i = 0; i < 4; i++) fds[i] = zt_raw_connect(port);
    run_until_events(&v, 2, 2);
    cr_assert_eq(v.n, 2);
    cr_assert_eq(v.drops, 2);
    cr_assert_eq(zev_tcp_server_connections(&v.s), 2);
    zev_tcp_server_stats_t st;
    zev_tcp_server_stats(&v.s, &st);
    cr_assert_eq(st.accepted, 2);
    cr_assert_eq(st.dropped, 2);
    /* A dropped peer sees its connection closed. */
    char c;
    int dropped_eof = 0;
    for (int i = 0; i < 4; i++) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = 1000};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (read(fds[i], &c, 1) == 0) dropped_eof++;
    }
    cr_assert_eq(dropped_eof, 2);
    zev_close(&v.conns[0].handle, NULL);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* the listener keeps the loop alive: one iteration */
    cr_assert_eq(zev_tcp_server_connections(&v.s), 1);
    zev_close(&v.conns[1].handle, NULL);
    zev_close(&v.s.handle, srv_closed);
    zt_run();
    cr_assert_eq(v.closed, 1);
    for (int i = 0; i < 4; i++) close(fds[i]);
}

Test(tcp_server, a_connection_not_accepted_in_the_callback_is_dropped) {
    struct srv v;
    int port = srv_listen(&v);
    v.accept_all = 0;
    int fd = zt_raw_connect(port);
    zev_tcp_server_stats_t st = {0};
    while (st.dropped == 0) {
        zev_run(&zt_loop, ZEV_RUN_ONCE);
        zev_tcp_server_stats(&v.s, &st);
    }
    cr_assert_eq(st.accepted, 0);
    cr_assert_eq(zev_tcp_server_connections(&v.s), 0);
    zev_close(&v.s.handle, srv_closed);
    zt_run();
    close(fd);
}

Test(tcp_server, close_stops_accepting_now_and_calls_back_after_the_last_connection) {
    struct srv v;
    int port = srv_listen(&v);
    int fd = zt_raw_connect(port);
    run_until_events(&v, 1, 0);
    zev_tcp_read_start(&v.conns[0]);
    zev_close(&v.s.handle, srv_closed);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(v.closed, 0, "a connection is still open");
    /* No longer accepting: a new connect is refused. */
    int fd2 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd2, (struct sockaddr *)&a, sizeof(a)), -1);
    cr_assert_eq(errno, ECONNREFUSED);
    close(fd2);
    zev_close(&v.conns[0].handle, NULL);
    zt_run();
    cr_assert_eq(v.closed, 1);
    close(fd);
}

static int close_order[4];
static int n_closed;

static void record_close(zev_handle_t *h) {
    close_order[n_closed++] = (int)(intptr_t)h->data;
}

/* Closed in one callback with its last connection, a server calls back once, after it. Server
 * first: its close is held back, then resumed by the connection's. Connection first: the
 * resume comes while the server still waits its turn in the same close phase. */
Test(tcp_server, a_server_closed_with_its_last_connection_calls_back_once_after_it) {
    for (int server_first = 0; server_first < 2; server_first++) {
        struct srv v;
        srv_listen(&v);
        zev_addr_info_t info;
        zev_tcp_server_address(&v.s, &info);
        int fd = zt_raw_connect(info.port);
        run_until_events(&v, 1, 0);
        n_closed = 0;
        v.s.handle.data = (void *)1;
        v.conns[0].handle.data = (void *)2;
        if (server_first) zev_close(&v.s.handle, record_close);
        zev_close(&v.conns[0].handle, record_close);
        if (!server_first) zev_close(&v.s.handle, record_close);
        zt_run();
        cr_assert_eq(n_closed, 2, "each close callback once (server first: %d)", server_first);
        cr_assert_eq(close_order[0], 2, "the connection first");
        cr_assert_eq(close_order[1], 1, "then the server");
        close(fd);
    }
}

Test(tcp_server, unref_lets_the_loop_exit_while_listening) {
    struct srv v;
    srv_listen(&v);
    cr_assert_eq(zev_loop_alive(&zt_loop), 1);
    zev_unref(&v.s.handle);
    zt_run(); /* returns at once */
    cr_assert(zev_is_active(&v.s.handle), "still listening");
    zev_close(&v.s.handle, NULL);
    zt_run();
}

Test(tcp_server, socket_addresses_match_both_ends) {
    struct srv v;
    int port = srv_listen(&v);
    int fd = zt_raw_connect(port);
    run_until_events(&v, 1, 0);
    zev_addr_info_t local, remote;
    cr_assert_eq(zev_tcp_local_address(&v.conns[0], &local), 0);
    cr_assert_eq(zev_tcp_remote_address(&v.conns[0], &remote), 0);
    cr_assert_eq(local.port, port);
    cr_assert_str_eq(remote.address, "127.0.0.1");
    struct sockaddr_in mine;
    socklen_t len = sizeof(mine);
    getsockname(fd, (struct sockaddr *)&mine, &len);
    cr_assert_eq(remote.port, ntohs(mine.sin_port));
    cr_assert_eq(zev_tcp_set_nodelay(&v.conns[0], 1), 0);
    cr_assert_eq(zev_tcp_set_keepalive(&v.conns[0], 1, 30), 0);
    int on = 0;
    len = sizeof(on);
    getsockopt(zev_tcp_fileno(&v.conns[0]), IPPROTO_TCP, TCP_NODELAY, &on, &len);
    cr_assert_eq(on, 1);
    getsockopt(zev_tcp_fileno(&v.conns[0]), SOL_SOCKET, SO_KEEPALIVE, &on, &len);
    cr_assert_eq(on, 1);
    cr_assert_eq(zev_tcp_set_keepalive(&v.conns[0], 1, 100000), -EINVAL);
    zev_close(&v.conns[0].handle, NULL);
    zev_close(&v.s.handle, NULL);
    zt_run();
    close(fd);
}

Test(tcp_server, ipv6_only_on_an_ipv4_host_is_einval) {
    /* As libuv (and zev's UDP bind): the option means nothing for an IPv4 socket, so asking
     * for it there is a mistake to report, not to ignore. */
    zev_tcp_server_t s;
    zev_tcp_server_init(&zt_loop, &s);
    zev_tcp_listen_opts_t only6 = {.ipv6_only = 1};
    int fds = zt_fd_count();
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", 0, &only6, on_conn), -EINVAL);
    cr_assert_eq(zev_tcp_listen(&s, NULL, 0, &only6, on_conn), -EINVAL, "NULL host is IPv4");
    cr_assert_eq(zt_fd_count(), fds, "no socket left open by the refused listen");
    zev_addr_info_t info;
    cr_assert_eq(zev_tcp_server_address(&s, &info), -ENOTCONN, "not listening");
    /* The same options on an IPv6 host are fine. */
    cr_assert_eq(zev_tcp_listen(&s, "::1", 0, &only6, on_conn), 0);
    cr_assert_eq(zev_tcp_server_address(&s, &info), 0);
    cr_assert_eq(info.family, 6);
    zev_close(&s.handle, NULL);
    zt_run();
}
