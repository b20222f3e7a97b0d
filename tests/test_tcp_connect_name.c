/* tests/test_tcp_connect_name.c: zev_tcp_connect with a host name: the lookup off the loop's
 * thread, then the addresses raced as RFC 8305 asks (Happy Eyeballs, Node's autoSelectFamily):
 * an attempt per address, the next one 250 ms after the previous or at once when it fails,
 * the first to connect wins and the others are closed silently. While the lookup and the
 * race run, the socket behaves as while connecting: writes and end queue, the connect
 * timeout covers it all, close abandons it all and no connect callback runs.
 *
 * No packet leaves the machine: names are either listed in /etc/hosts (skipped otherwise) or
 * made up and answered by the fake getaddrinfo behind the seam (support/fake_dns.h), and
 * every address is loopback. A "stalled" listener is a plain one on ::1 whose backlog of 0 is
 * full: the kernel drops further SYNs, so an attempt to it neither succeeds nor fails. */
#include "fake_dns.h"
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_connect_name, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

/* ---- plain listeners that zev does not drive ---- */

static bool port_taken; /* the last bind found the port in use (a parallel test has it) */

static int raw_listen_on(int family, int port, int backlog) {
    port_taken = false;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    zev_sockaddr_t a;
    cr_assert_eq(zev_addr_parse(&a, family == AF_INET ? "127.0.0.1" : "::1", port), 0);
    if (family == AF_INET6) {
        int one = 1;
        cr_assert_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)), 0);
    }
    int r = bind(fd, &a.sa, zev_addr_len(&a));
    if (r < 0 && errno == EADDRNOTAVAIL) cr_skip_test("no loopback address of this family");
    if (r < 0 && errno == EADDRINUSE && port != 0) {
        port_taken = true;
        close(fd);
        return -1;
    }
    cr_assert_eq(r, 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, backlog), 0);
    return fd;
}

static int port_of(int fd) {
    zev_sockaddr_t a;
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, &a.sa, &len), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_addr_info(&a, &info), 0);
    return info.port;
}

static bool readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Fill a backlog-0 listener so that the next SYN to it is dropped: one connection completes
 * into the accept queue, a second one waits, and every later one stalls. */
struct stalled {
    int listener;
    int fillers[2];
};

static void stall(struct stalled *s, int port) {
    s->listener = raw_listen_on(AF_INET6, port, 0);
    zev_sockaddr_t a;
    cr_assert_eq(zev_addr_parse(&a, "::1", port_of(s->listener)), 0);
    for (int i = 0; i < 2; i++) {
        s->fillers[i] = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        cr_assert_geq(s->fillers[i], 0);
        connect(s->fillers[i], &a.sa, zev_addr_len(&a));
        if (i == 0) {
            struct pollfd p = {.fd = s->fillers[0], .events = POLLOUT};
            cr_assert_eq(poll(&p, 1, 10000), 1, "the first filler connects");
        }
    }
}

static void unstall(struct stalled *s) {
    close(s->fillers[0]);
    close(s->fillers[1]);
    close(s->listener);
}

/* ---- the client under test ---- */

static zev_tcp_t client;
static int connect_calls;
static int connect_status;
static zev_addr_info_t remote;
static int write_calls;
static int write_status;
static int closed;

static void on_connect(zev_tcp_t *t, int status) {
    cr_assert_eq(t, &client);
    connect_calls++;
    connect_status = status;
    if (status == 0) cr_assert_eq(zev_tcp_remote_address(t, &remote), 0);
}

static void on_write(zev_tcp_t *t, int status, void *arg) {
    write_calls++;
    write_status = status;
}

static void on_closed(zev_handle_t *h) {
    closed++;
}

static void close_client(void) {
    zev_close(&client.handle, on_closed);
    zt_run();
    cr_assert_eq(closed, 1);
}

static void start(const char *host, int port) {
    cr_assert_eq(zev_tcp_init(&zt_loop, &client), 0);
    cr_assert_eq(zev_tcp_connect(&client, host, port, on_connect), 0);
    cr_assert_eq(connect_calls, 0, "never inside zev_tcp_connect");
}

/* Run until the connect callback ran. */
static void run_to_connect(void) {
    cr_assert(zt_run_until(&connect_calls, 1, 20000), "the connect ends");
    cr_assert_eq(connect_calls, 1);
}

Test(tcp_connect_name, localhost_reaches_an_ipv4_listener) {
    if (!zt_hosts_has("localhost", "127.0.0.1")) cr_skip_test("/etc/hosts has no 127.0.0.1 localhost");
    int l = raw_listen_on(AF_INET, 0, 8);
    start("localhost", port_of(l));
    run_to_connect();
    cr_assert_eq(connect_status, 0, "%s", zev_err_name(connect_status));
    cr_assert_str_eq(remote.address, "127.0.0.1");
    cr_assert(readable(l, 10000));
    close_client();
    close(l);
}

/* The real race, where this machine's /etc/hosts gives localhost both families. */
Test(tcp_connect_name, localhost_with_both_families_reaches_a_listener_on_either) {
    if (!zt_hosts_has("localhost", "127.0.0.1") || !zt_hosts_has("localhost", "::1"))
        cr_skip_test("/etc/hosts does not map localhost to both 127.0.0.1 and ::1 here (the "
                     "dual-family cases run on a made-up name instead)");
    int l6 = raw_listen_on(AF_INET6, 0, 8);
    start("localhost", port_of(l6));
    run_to_connect();
    cr_assert_eq(connect_status, 0, "%s", zev_err_name(connect_status));
    cr_assert_str_eq(remote.address, "::1");
    close_client();
    close(l6);
    connect_calls = closed = 0;
    int l4 = raw_listen_on(AF_INET, 0, 8);
    start("localhost", port_of(l4));
    run_to_connect();
    cr_assert_eq(connect_status, 0, "%s", zev_err_name(connect_status));
    cr_assert_str_eq(remote.address, "127.0.0.1");
    close_client();
    close(l4);
}

Test(tcp_connect_name, numeric_text_takes_the_direct_path_with_no_thread) {
    int l = raw_listen_on(AF_INET, 0, 8);
    start("127.0.0.1", port_of(l));
    cr_assert_geq(zev_tcp_fileno(&client), 0, "a descriptor at once, as before");
    run_to_connect();
    cr_assert_eq(connect_status, 0);
    cr_assert_null(zt_loop.resolver, "no lookup, no resolver thread");
    close_client();
    close(l);
}

Test(tcp_connect_name, bad_names_and_ports_are_refused_at_once) {
    zev_tcp_init(&zt_loop, &client);
    cr_assert_eq(zev_tcp_connect(&client, "a..b", 80, on_connect), -EINVAL);
    cr_assert_eq(zev_tcp_connect(&client, "localhost", 0, on_connect), -EINVAL);
    cr_assert_eq(zev_tcp_connect(&client, "localhost", 65536, on_connect), -EINVAL);
    cr_assert_null(zt_loop.resolver);
    close_client();
    cr_assert_eq(connect_calls, 0);
}

Test(tcp_connect_name, unknown_name_fails_with_enotfound_and_queued_writes_with_it) {
    ZT_FAKE_DNS_OR_SKIP();
    start("nowhere.zev.test", 80);
    zev_slice_t sl = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_write(&client, &sl, 1, on_write, NULL), 0, "queued while resolving");
    cr_assert_eq(zev_tcp_connect(&client, "nowhere.zev.test", 80, on_connect), -EISCONN);
    run_to_connect();
    cr_assert_eq(connect_status, -ZEV_EAI_NONAME);
    cr_assert_str_eq(zev_err_name(connect_status), "ENOTFOUND");
    zt_run();
    cr_assert_eq(write_calls, 1);
    cr_assert_eq(write_status, -ZEV_EAI_NONAME);
    close_client();
}

Test(tcp_connect_name, writes_and_end_while_resolving_go_out_after_the_connect) {
    ZT_FAKE_DNS_OR_SKIP();
    int l = raw_listen_on(AF_INET, 0, 8);
    start("block.zev.test", port_of(l));
    cr_assert(zt_fake_dns_wait_blocked(1, 10000));
    zev_slice_t sl = zev_slice("hello", 5);
    cr_assert_eq(zev_tcp_write(&client, &sl, 1, on_write, NULL), 0);
    cr_assert_eq(zev_tcp_end(&client), 0);
    cr_assert_eq(zev_tcp_fileno(&client), -EBADF, "no descriptor while resolving");
    zt_fake_dns_release();
    run_to_connect();
    cr_assert_eq(connect_status, 0);
    cr_assert(zt_run_until(&write_calls, 1, 10000));
    cr_assert_eq(write_status, 0);
    cr_assert(readable(l, 10000));
    int s = accept(l, NULL, NULL);
    cr_assert_geq(s, 0);
    char buf[16];
    ssize_t n = 0;
    for (ssize_t r; n < 6 && (r = read(s, buf + n, sizeof(buf) - (size_t)n)) > 0;) n += r;
    cr_assert_eq(n, 5, "the bytes, then EOF from the queued end");
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    close(s);
    close_client();
    close(l);
}

Test(tcp_connect_name, close_while_resolving_never_calls_the_connect_callback) {
    ZT_FAKE_DNS_OR_SKIP();
    start("block.zev.test", 80);
    cr_assert(zt_fake_dns_wait_blocked(1, 10000));
    zev_slice_t sl = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_write(&client, &sl, 1, on_write, NULL), 0);
    close_client();
    cr_assert_eq(connect_calls, 0, "no connect callback after close (Node: none after destroy)");
    cr_assert_eq(write_calls, 1);
    cr_assert_eq(write_status, -ECANCELED);
    zt_fake_dns_release();
    cr_assert(zt_fake_dns_close_loop_and_wait_frees(&zt_loop, 1, 10000), "the abandoned answer was freed");
}

Test(tcp_connect_name, connect_timeout_covers_the_lookup) {
    ZT_FAKE_DNS_OR_SKIP();
    zev_tcp_init(&zt_loop, &client);
    cr_assert_eq(zev_tcp_set_connect_timeout(&client, 50), 0);
    cr_assert_eq(zev_tcp_connect(&client, "block.zev.test", 80, on_connect), 0);
    run_to_connect();
    cr_assert_eq(connect_status, -ETIMEDOUT);
    close_client();
    zt_fake_dns_release();
    cr_assert(zt_fake_dns_close_loop_and_wait_frees(&zt_loop, 1, 10000));
}

Test(tcp_connect_name, ipv6_listener_is_reached_through_a_dual_family_name) {
    ZT_FAKE_DNS_OR_SKIP();
    int l6 = raw_listen_on(AF_INET6, 0, 8);
    start("dual.zev.test", port_of(l6));
    run_to_connect();
    cr_assert_eq(connect_status, 0, "%s", zev_err_name(connect_status));
    cr_assert_str_eq(remote.address, "::1", "the first address's family goes first");
    close_client();
    close(l6);
}

Test(tcp_connect_name, ipv4_listener_is_reached_at_once_when_ipv6_is_refused) {
    ZT_FAKE_DNS_OR_SKIP();
    int l4 = raw_listen_on(AF_INET, 0, 8);
    start("dual.zev.test", port_of(l4));
    run_to_connect();
    cr_assert_eq(connect_status, 0, "%s", zev_err_name(connect_status));
    cr_assert_str_eq(remote.address, "127.0.0.1");
    close_client();
    close(l4);
}

Test(tcp_connect_name, every_address_refused_reports_the_last_failure) {
    ZT_FAKE_DNS_OR_SKIP();
    int l = raw_listen_on(AF_INET, 0, 8);
    int port = port_of(l);
    close(l); /* nobody listens on port now, on either family */
    start("four.zev.test", port);
    run_to_connect();
    cr_assert_eq(connect_status, -ECONNREFUSED, "%s", zev_err_name(connect_status));
    close_client();
}

Test(tcp_connect_name, stalled_ipv6_loses_to_ipv4_started_after_the_delay) {
    ZT_FAKE_DNS_OR_SKIP();
    struct stalled s6;
    int port;
    int l4 = -1;
    for (int i = 0; i < 50 && l4 < 0; i++) { /* the same port free on both families */
        stall(&s6, 0);
        port = port_of(s6.listener);
        l4 = raw_listen_on(AF_INET, port, 8);
        if (l4 < 0) unstall(&s6);
    }
    cr_assert_geq(l4, 0, "a port free on ::1 and 127.0.0.1");
    start("dual.zev.test", port);
    run_to_connect();
    cr_assert_eq(connect_status, 0, "%s", zev_err_name(connect_status));
    cr_assert_str_eq(remote.address, "127.0.0.1", "IPv4 won the race");
    cr_assert(readable(l4, 10000));
    int fds_with_winner = zt_fd_count();
    zev_slice_t sl = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_write(&client, &sl, 1, on_write, NULL), 0);
    zt_run_until(&write_calls, 1, 10000);
    cr_assert_eq(write_status, 0);
    cr_assert_eq(zt_fd_count(), fds_with_winner, "the stalled loser was closed already");
    close_client();
    close(l4);
    unstall(&s6);
}

Test(tcp_connect_name, close_while_racing_closes_every_attempt_silently) {
    ZT_FAKE_DNS_OR_SKIP();
    struct stalled s6;
    stall(&s6, 0);
    start("v6.zev.test", port_of(s6.listener));
    /* The answer is freed right after the callback that started the (stalled) attempt; the
     * lookup in flight keeps each blocking iteration waiting only for its wake-up. */
    for (int i = 0; i < 100 && zt_fake_dns_frees() < 1; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(zt_fake_dns_frees(), 1, "the lookup answered; the attempt runs");
    cr_assert_eq(connect_calls, 0);
    close_client(); /* the fixture then checks that the attempt's descriptor was closed */
    cr_assert_eq(connect_calls, 0);
    unstall(&s6);
}

Test(tcp_connect_name, connect_timeout_covers_the_attempts) {
    ZT_FAKE_DNS_OR_SKIP();
    struct stalled s6;
    stall(&s6, 0);
    zev_tcp_init(&zt_loop, &client);
    cr_assert_eq(zev_tcp_set_connect_timeout(&client, 100), 0);
    cr_assert_eq(zev_tcp_connect(&client, "v6.zev.test", port_of(s6.listener), on_connect), 0);
    run_to_connect();
    cr_assert_eq(connect_status, -ETIMEDOUT);
    close_client();
    unstall(&s6);
}
