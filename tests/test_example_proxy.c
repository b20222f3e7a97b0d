/* tests/test_example_proxy.c: zev-proxy run as a child process between a plain POSIX client
 * and a target (zev-echo-server, or a plain listener the test plays): forwarding both ways
 * with the half-close, and its behaviour against hostile or failing peers (refusing, hanging
 * and silent targets, resets on either side). The helpers are in tests/support/examples.h.
 */
#include "examples.h"
#include "zt.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(example_proxy, .init = examples_setup, .fini = examples_teardown, .timeout = 60);

/* ---- zev-proxy ------------------------------------------------------------------------ */

Test(example_proxy, proxy_forwards_both_ways_and_passes_the_half_close) {
    int echo_port;
    struct child *echo = start_server("zev-echo-server", ephemeral, "127.0.0.1", &echo_port);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", echo_port);
    int port;
    struct child *proxy = start_server(
        "zev-proxy", (const char *const[]){"--listen", "127.0.0.1:0", "--to", to, NULL},
        "127.0.0.1", &port);
    /* Small messages are all in flight when the client's EOF reaches the proxy: the answers
     * come back only if that EOF ended one direction, not the whole pair. One proxy serves
     * every round: it keeps going after a pair closes. */
    const size_t sizes[] = {5, 100000, 2 << 20};
    size_t max = sizes[2];
    char *out = pattern(max);
    char *in = malloc(max + 1);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        int fd = connect_to("127.0.0.1", port);
        size_t got = exchange(fd, out, n, true, in, n + 1);
        cr_assert_eq(got, n, "%zu bytes sent, %zu came back", n, got);
        cr_assert_eq(memcmp(in, out, n), 0);
        close(fd);
    }
    free(out);
    free(in);
    stop_with(proxy, SIGTERM);
    stop_with(echo, SIGTERM);
}

Test(example_proxy, proxy_over_ipv6_closes_the_client_when_the_target_refuses) {
    int holder = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    cr_assert_eq(bind(holder, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(holder, (struct sockaddr *)&a, &len);
    char to[64];
    snprintf(to, sizeof(to), "[::1]:%d", ntohs(a.sin6_port));
    int port;
    struct child *proxy =
        start_server("zev-proxy", (const char *const[]){"--listen", "[::1]:0", "--to", to, NULL},
                     "[::1]", &port);
    for (int round = 0; round < 2; round++) {
        int fd = connect_to("::1", port);
        char buf[16];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0);
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        cr_assert(r == 0 || (r < 0 && errno == ECONNRESET), "recv returned %zd", r);
        close(fd);
    }
    stop_with(proxy, SIGTERM);
    char err[1024];
    read_all(proxy->err, err, sizeof(err));
    char want[128];
    snprintf(want, sizeof(want), "zev-proxy: connect %s: ECONNREFUSED (connection refused)\n", to);
    cr_assert_not_null(strstr(err, want), "stderr '%s'", err);
    close(holder);
}

/* ---- zev-proxy against hostile peers ----------------------------------------------------- */

static struct child *start_proxy(int target_port, const char *const *extra, int *port) {
    static char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", target_port);
    const char *args[12] = {"--listen", "127.0.0.1:0", "--to", to};
    int n = 4;
    for (; extra && extra[n - 4]; n++) {
        cr_assert_lt(n, 11);
        args[n] = extra[n - 4];
    }
    args[n] = NULL;
    return start_server("zev-proxy", args, "127.0.0.1", port);
}

Test(example_proxy, proxy_frees_both_sockets_at_once_when_the_client_leaves_while_connecting) {
    int fills[MAX_FILLS];
    int n_fills;
    int target_port;
    int target = hanging_target(&target_port, fills, &n_fills);
    int port;
    struct child *proxy = start_proxy(target_port, NULL, &port); /* connect timeout: 60 s */
    int base = child_sockets(proxy);
    for (int round = 0; round < 2; round++) {
        int fd = connect_to("127.0.0.1", port);
        wait_child_sockets(proxy, base + 2, "client and connecting target socket");
        if (round == 0) {
            close(fd);
        } else {
            close_with_reset(fd);
        }
        wait_child_sockets(proxy, base, "after the client left"); /* not after the connect's 60 s */
    }
    stop_clean(proxy);
    close_all(fills, n_fills);
    close(target);
}

Test(example_proxy, proxy_connect_timeout_closes_the_client) {
    int fills[MAX_FILLS];
    int n_fills;
    int target_port;
    int target = hanging_target(&target_port, fills, &n_fills);
    int port;
    struct child *proxy =
        start_proxy(target_port, (const char *const[]){"--connect-timeout", "200", NULL}, &port);
    int base = child_sockets(proxy);
    int fd = connect_to("127.0.0.1", port);
    char buf[64];
    cr_assert_eq(read_until_closed(fd, buf, sizeof(buf)), 0);
    close(fd);
    wait_child_sockets(proxy, base, "after the connect timed out");
    stop_with(proxy, SIGTERM);
    char err[1024];
    read_all(proxy->err, err, sizeof(err));
    char want[128];
    snprintf(want, sizeof(want), "zev-proxy: connect 127.0.0.1:%d: ETIMEDOUT", target_port);
    cr_assert_not_null(strstr(err, want), "stderr '%s'", err);
    close_all(fills, n_fills);
    close(target);
}

Test(example_proxy, proxy_idle_timeout_closes_the_client_of_a_stopped_target) {
    struct sockaddr_in target_addr;
    int target = plain_listener(1, &target_addr);
    int target_port = ntohs(target_addr.sin_port);
    int port;
    struct child *proxy =
        start_proxy(target_port, (const char *const[]){"--idle-timeout", "300", NULL}, &port);
    int base = child_sockets(proxy);
    int fd = connect_to("127.0.0.1", port);
    int up = accept_one(target);
    cr_assert_eq(send(fd, "hello", 5, MSG_NOSIGNAL), 5);
    char buf[64];
    cr_assert_eq(read_exact(up, buf, 5), 5); /* forwarded; the target then says nothing */
    cr_assert_eq(read_until_closed(fd, buf, sizeof(buf)), 0);
    cr_assert_eq(read_until_closed(up, buf, sizeof(buf)), 0);
    wait_child_sockets(proxy, base, "after the idle timeout");
    close(fd);
    close(up);
    stop_clean(proxy);
    close(target);
}

/* A reset on one side (the client if client_resets, else the target) closes the other. */
static void expect_reset_closes_both(bool client_resets) {
    struct sockaddr_in target_addr;
    int target = plain_listener(1, &target_addr);
    int target_port = ntohs(target_addr.sin_port);
    int port;
    struct child *proxy = start_proxy(target_port, NULL, &port);
    int base = child_sockets(proxy);
    int fd = connect_to("127.0.0.1", port);
    int up = accept_one(target);
    char buf[64];
    cr_assert_eq(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
    cr_assert_eq(read_exact(up, buf, 4), 4);
    cr_assert_eq(send(up, "pong", 4, MSG_NOSIGNAL), 4);
    cr_assert_eq(read_exact(fd, buf, 4), 4);
    int survivor = client_resets ? up : fd;
    close_with_reset(client_resets ? fd : up);
    expect_reset(survivor);
    wait_child_sockets(proxy, base, "after the reset");
    close(survivor);
    stop_with(proxy, SIGTERM);
    close(target);
}

/* Found by the soak: when the proxy cannot reach its target, the client must see a reset,
 * not a clean end of stream that looks like a complete (empty) answer. */
Test(example_proxy, proxy_resets_the_client_when_the_target_refuses) {
    int refused_port;
    {
        struct sockaddr_in a;
        int gone = plain_listener(1, &a);
        refused_port = ntohs(a.sin_port);
        close(gone); /* nobody listens there now: 127.0.0.1 answers the SYN with RST */
    }
    int port;
    struct child *proxy = start_proxy(refused_port, NULL, &port);
    int fd = connect_to("127.0.0.1", port);
    /* The reset may already be here (then the send says so), or come after the request. */
    if (send(fd, "ping", 4, MSG_NOSIGNAL) < 0) {
        cr_assert(errno == ECONNRESET || errno == EPIPE, "send: %s", strerror(errno));
    } else {
        expect_reset(fd);
    }
    close(fd);
    stop_with(proxy, SIGTERM);
}

Test(example_proxy, proxy_closes_both_sides_when_the_client_resets) {
    expect_reset_closes_both(true);
}

Test(example_proxy, proxy_closes_both_sides_when_the_target_resets) {
    expect_reset_closes_both(false);
}
