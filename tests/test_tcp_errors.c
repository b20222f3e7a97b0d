/* tests/test_tcp_errors.c: every error a TCP user can meet, and bad input that must be refused
 * without a crash or a silent success. */
#include "tcp_pair.h"
#include "zt.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_errors, .init = zt_setup, .fini = zt_teardown, .timeout = 20);

static void ignore_connection(zev_tcp_server_t *s, int status) {
    (void)s;
    (void)status;
}

static int listen_any(zev_tcp_server_t *s, const char *host) {
    cr_assert_eq(zev_tcp_server_init(&zt_loop, s), 0);
    int err = zev_tcp_listen(s, host, 0, NULL, ignore_connection);
    cr_assert_eq(err, 0, "%s", zev_err_name(err));
    zev_addr_info_t info;
    zev_tcp_server_address(s, &info);
    return info.port;
}

static void close_and_run(zev_handle_t *h) {
    zev_close(h, NULL);
    zt_run();
}

Test(tcp_errors, listening_on_a_taken_port_is_eaddrinuse) {
    zev_tcp_server_t a, b;
    int port = listen_any(&a, "127.0.0.1");
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &b), 0);
    cr_assert_eq(zev_tcp_listen(&b, "127.0.0.1", port, NULL, ignore_connection), -EADDRINUSE);
    cr_assert_not(zev_is_active(&b.handle));
    cr_assert_eq(zev_tcp_listen(&a, "127.0.0.1", 0, NULL, ignore_connection), -EALREADY);
    zev_close(&b.handle, NULL);
    close_and_run(&a.handle);
}

Test(tcp_errors, reuse_port_lets_two_listeners_share_a_port) {
    zev_tcp_server_t a, b;
    zev_tcp_listen_opts_t o = {.reuse_port = 1};
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &a), 0);
    cr_assert_eq(zev_tcp_listen(&a, "127.0.0.1", 0, &o, ignore_connection), 0);
    zev_addr_info_t info;
    zev_tcp_server_address(&a, &info);
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &b), 0);
    cr_assert_eq(zev_tcp_listen(&b, "127.0.0.1", info.port, &o, ignore_connection), 0);
    zev_close(&b.handle, NULL);
    close_and_run(&a.handle);
}

Test(tcp_errors, a_foreign_address_is_eaddrnotavail) {
    zev_tcp_server_t s;
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &s), 0);
    /* TEST-NET-1 is never configured here; bind fails locally, no packet is sent. */
    cr_assert_eq(zev_tcp_listen(&s, "192.0.2.1", 0, NULL, ignore_connection), -EADDRNOTAVAIL);
    close_and_run(&s.handle);
}

Test(tcp_errors, bad_address_text_and_ports_are_einval) {
    zev_tcp_server_t s;
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &s), 0);
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.256", 0, NULL, ignore_connection), -EINVAL);
    cr_assert_eq(zev_tcp_listen(&s, "localhost", 0, NULL, ignore_connection), -EINVAL);
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", 70000, NULL, ignore_connection), -EINVAL);
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", -1, NULL, ignore_connection), -EINVAL);
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", 0, NULL, NULL), -EINVAL);
    zev_tcp_listen_opts_t o = {.backlog = -5};
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", 0, &o, ignore_connection), -EINVAL);
    cr_assert_not(zev_is_active(&s.handle));
    zev_tcp_t t;
    zev_tcp_init(&zt_loop, &t);
    cr_assert_eq(zev_tcp_connect(&t, "::1::2", 80, (zev_tcp_connect_cb)ignore_connection),
                 -EINVAL);
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", 70000, (zev_tcp_connect_cb)ignore_connection),
                 -EINVAL);
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", 0, (zev_tcp_connect_cb)ignore_connection),
                 -EINVAL, "port 0 is not a destination");
    zev_close(&t.handle, NULL);
    close_and_run(&s.handle);
}

Test(tcp_errors, null_and_closed_handles_are_refused) {
    zev_slice_t sl = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_init(NULL, NULL), -EINVAL);
    cr_assert_eq(zev_tcp_server_init(&zt_loop, NULL), -EINVAL);
    cr_assert_eq(zev_tcp_write(NULL, &sl, 1, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_tcp_read_start(NULL), -EINVAL);
    cr_assert_eq(zev_tcp_end(NULL), -EINVAL);
    cr_assert_eq(zev_tcp_listen(NULL, "127.0.0.1", 0, NULL, ignore_connection), -EINVAL);
    cr_assert_eq(zev_tcp_accept(NULL, NULL), -EINVAL);
    cr_assert_eq(zev_tcp_set_nodelay(NULL, 1), -EINVAL);
    cr_assert_eq(zev_tcp_set_timeout(NULL, 1), -EINVAL);
    cr_assert_eq(zev_tcp_server_address(NULL, NULL), -EINVAL);

    zev_tcp_t t;
    zev_tcp_init(&zt_loop, &t);
    cr_assert_eq(zev_tcp_write(&t, &sl, 1, NULL, NULL), -ENOTCONN, "never connected");
    cr_assert_eq(zev_tcp_read_start(&t), -ENOTCONN);
    cr_assert_eq(zev_tcp_set_nodelay(&t, 1), -ENOTCONN);
    cr_assert_eq(zev_tcp_write(&t, NULL, 1, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_tcp_set_high_water_mark(&t, 0), -EINVAL);
    cr_assert_eq(zev_tcp_set_timeout(&t, -1), -EINVAL);
    cr_assert_eq(zev_close(&t.handle, NULL), 0);
    cr_assert_eq(zev_close(&t.handle, NULL), -EBADF, "double close");
    cr_assert_eq(zev_tcp_write(&t, &sl, 1, NULL, NULL), -EBADF);
    cr_assert_eq(zev_tcp_read_start(&t), -EBADF);
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", 1, (zev_tcp_connect_cb)ignore_connection),
                 -EBADF);
    zt_run();
    cr_assert_eq(zev_tcp_end(&t), -EBADF, "after the close callback too");
}

static int connect_status;
static int connect_calls;

static void record_connect(zev_tcp_t *t, int status) {
    connect_status = status;
    connect_calls++;
    zev_close(&t->handle, NULL);
}

Test(tcp_errors, connecting_to_a_closed_port_is_econnrefused) {
    zev_tcp_server_t s;
    int port = listen_any(&s, "127.0.0.1");
    close_and_run(&s.handle); /* the port is now free: nobody listens */
    zev_tcp_t t;
    zev_tcp_init(&zt_loop, &t);
    connect_calls = 0;
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", port, record_connect), 0);
    zt_run();
    cr_assert_eq(connect_calls, 1);
    cr_assert_eq(connect_status, -ECONNREFUSED, "%s", zev_err_name(connect_status));
}

Test(tcp_errors, a_connect_timeout_is_etimedout) {
    /* A plain listener that never accepts, with its accept queue full, drops further SYNs: a
     * connect to it hangs until our timeout. Everything stays on 127.0.0.1. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    enum { FILL = 4 };
    int fds[FILL];
    for (int i = 0; i < FILL; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fds[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(50000); /* let the handshakes that fit complete */

    zev_tcp_t t;
    zev_tcp_init(&zt_loop, &t);
    connect_calls = 0;
    cr_assert_eq(zev_tcp_set_connect_timeout(&t, 200), 0);
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", ntohs(a.sin_port), record_connect), 0);
    zt_run();
    cr_assert_eq(connect_calls, 1);
    cr_assert_eq(connect_status, -ETIMEDOUT, "%s", zev_err_name(connect_status));
    for (int i = 0; i < FILL; i++) close(fds[i]);
    close(lfd);
}

Test(tcp_errors, addresses_and_families_are_reported) {
    cr_assert_eq(zev_ip_family("127.0.0.1"), 4);
    cr_assert_eq(zev_ip_family("::1"), 6);
    cr_assert_eq(zev_ip_family("fe80::1%1"), 6);
    cr_assert_eq(zev_ip_family("1.2.3"), 0);
    cr_assert_eq(zev_ip_family("example.com"), 0);
    cr_assert_eq(zev_ip_family(""), 0);
    cr_assert_eq(zev_ip_family(NULL), 0);
    zev_tcp_server_t s;
    listen_any(&s, "::1");
    zev_addr_info_t info;
    cr_assert_eq(zev_tcp_server_address(&s, &info), 0);
    cr_assert_str_eq(info.address, "::1");
    cr_assert_eq(info.family, 6);
    close_and_run(&s.handle);
    cr_assert_eq(zev_tcp_server_address(&s, &info), -ENOTCONN);
}

Test(tcp_errors, ipv6_scopes_must_be_an_index_or_a_name) {
    zev_sockaddr_t a;
    cr_assert_eq(zev_addr_parse(&a, "fe80::1%1", 9), 0);
    cr_assert_eq(a.in6.sin6_scope_id, 1);
    cr_assert_eq(zev_addr_parse(&a, "fe80::1%lo", 9), 0);
    cr_assert_gt(a.in6.sin6_scope_id, 0);
    const char *bad[] = {"fe80::1%-1", "fe80::1%99999999999", "fe80::1% 3", "fe80::1%+2",
                         "fe80::1%", "fe80::1%12abc", "fe80::1%no-such-if0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(zev_addr_parse(&a, bad[i], 9), -EINVAL, "%s", bad[i]);
    }
    cr_assert_eq(zev_ip_family("fe80::1%-1"), 0);
    cr_assert_eq(zev_ip_family("fe80::1% 3"), 0);
    cr_assert_eq(zev_ip_family("fe80::1%eth0"), 6);
}

/* Found by fuzz/fuzz_addr: Linux's SIOCGIFINDEX cuts a name at ':' (the old "eth0:1" alias
 * syntax), so if_nametoindex("lo::1%lo") is lo's index, and zev_addr_parse took text that
 * zev_ip_family says is no address as an IPv6 address scoped to lo. */
Test(tcp_errors, ipv6_scope_with_a_colon_is_not_the_interface_before_it) {
    zev_sockaddr_t a;
    cr_assert_eq(zev_ip_family("::1%lo::1%lo"), 0);
    cr_assert_eq(zev_addr_parse(&a, "::1%lo::1%lo", 80), -EINVAL, "the fuzzer's input");
    cr_assert_eq(zev_addr_parse(&a, "fe80::1%lo:1", 80), -EINVAL);
    cr_assert_eq(zev_addr_parse(&a, "fe80::1%lo", 80), 0, "the interface itself still is");
}

static int sendfile_status;
static int sendfile_calls;

static void record_sendfile(zev_tcp_t *t, int status, void *arg) {
    (void)t;
    (void)arg;
    sendfile_status = status;
    sendfile_calls++;
}

/* Found by the API fuzzer: sendfile has no MSG_NOSIGNAL, so sending a file region to a socket
 * that can no longer send raised SIGPIPE and killed the process. It must fail with -EPIPE
 * like every other write. The socket's write side is shut down behind zev's back, the one
 * deterministic way to make the next send say EPIPE. */
Test(tcp_errors, sendfile_to_a_socket_that_cannot_send_is_epipe_not_sigpipe) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(fwrite("hello", 1, 5, f), 5);
    fflush(f);
    cr_assert_eq(shutdown(zev_tcp_fileno(&a), SHUT_WR), 0);
    sendfile_calls = 0;
    cr_assert_eq(zev_tcp_sendfile(&a, fileno(f), 0, 5, record_sendfile, NULL), 0);
    zev_close(&b.handle, NULL);
    cr_assert(zt_run_until(&sendfile_calls, 1, 10000));
    cr_assert_eq(sendfile_status, -EPIPE, "got %s", zev_err_name(sendfile_status));
    fclose(f);
    close_and_run(&a.handle);
}

static int peer_error;
static int peer_errors;

static void record_peer_error(zev_tcp_t *t, int err) {
    (void)t;
    peer_error = err;
    peer_errors++;
}

static const zev_tcp_events_t peer_error_events = {.error = record_peer_error};

/* libuv's uv_tcp_close_reset, Node's socket.resetAndDestroy(): the peer sees a reset, not an
 * orderly end, so a proxy can pass a reset on instead of turning it into a clean EOF. */
Test(tcp_errors, close_reset_makes_the_peer_see_econnreset) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    zev_tcp_set_events(&b, &peer_error_events);
    cr_assert_eq(zev_tcp_read_start(&b), 0);
    peer_errors = 0;
    cr_assert_eq(zev_tcp_close_reset(&a, NULL), 0);
    cr_assert_eq(zev_tcp_close_reset(&a, NULL), -EBADF, "a closing socket");
    cr_assert(zt_run_until(&peer_errors, 1, 10000));
    cr_assert_eq(peer_error, -ECONNRESET, "got %s", zev_err_name(peer_error));
    cr_assert_eq(zev_tcp_close_reset(NULL, NULL), -EINVAL);
    close_and_run(&b.handle);
}
