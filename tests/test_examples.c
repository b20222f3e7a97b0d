/* tests/test_examples.c: the example programs' common promises (--help, usage errors) and
 * zev-echo-server and zev-tcp-client, run as child processes exactly as users run them and
 * checked from outside with plain POSIX sockets: their command lines, "listening on", exit
 * statuses, error messages, and the traffic they carry. zev-http-hello and zev-proxy have
 * their own files (test_example_http.c, test_example_proxy.c); the helpers are in
 * tests/support/examples.h.
 */
#include "examples.h"
#include "fake_dns.h"
#include "zt.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(examples, .init = examples_setup, .fini = examples_teardown, .timeout = 60);

/* ---- command lines -------------------------------------------------------------------- */

static const char *const programs[] = {"zev-echo-server", "zev-tcp-client", "zev-proxy",
                                       "zev-http-hello"};

Test(examples, help_prints_usage_and_exits_zero) {
    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
        struct child *c = spawn(programs[i], (const char *const[]){"--help", NULL}, false);
        char out[4096];
        read_all(c->out, out, sizeof(out));
        cr_assert_eq(wait_exit(c), 0, "%s --help", programs[i]);
        char want[64];
        snprintf(want, sizeof(want), "usage: %s ", programs[i]);
        cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s --help printed '%s'", programs[i],
                     out);
        cr_assert_not_null(strstr(out, "host name"), "%s --help: names", programs[i]);
        cr_assert_not_null(strstr(out, "SIGINT or SIGTERM"), "%s --help: signals", programs[i]);
    }
    /* The limits a server exposed to hostile peers needs are all documented. */
    static const struct {
        const char *prog;
        const char *flag;
    } limits[] = {
        {"zev-http-hello", "--max-header-size BYTES"},
        {"zev-http-hello", "--headers-timeout MS"},
        {"zev-http-hello", "--keep-alive-timeout MS"},
        {"zev-proxy", "--connect-timeout MS"},
        {"zev-proxy", "--idle-timeout MS"},
    };
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        struct child *c = spawn(limits[i].prog, (const char *const[]){"--help", NULL}, false);
        char out[4096];
        read_all(c->out, out, sizeof(out));
        cr_assert_eq(wait_exit(c), 0);
        cr_assert_not_null(strstr(out, limits[i].flag), "%s --help lacks %s", limits[i].prog,
                           limits[i].flag);
    }
}

struct bad_case {
    const char *prog;
    const char *args[6];
    const char *message; /* expected in stderr */
};

Test(examples, bad_arguments_exit_two_with_a_message) {
    static const struct bad_case cases[] = {
        {"zev-echo-server", {"--port", "70000"}, "invalid port '70000' for --port"},
        {"zev-echo-server", {"--port", "abc"}, "invalid port 'abc'"},
        {"zev-echo-server", {"--port=-1"}, "invalid port '-1'"},
        {"zev-echo-server", {"--bogus"}, "unknown option '--bogus'"},
        {"zev-echo-server", {"--host", "no such host"}, "invalid host 'no such host' for --host"},
        {"zev-echo-server", {"--host", "127.0.0.256"}, "invalid host '127.0.0.256'"},
        {"zev-echo-server", {"--port"}, "option '--port' needs a value"},
        {"zev-echo-server", {"extra"}, "unexpected argument 'extra'"},
        {"zev-echo-server", {"--max-connections", "x"}, "invalid value 'x'"},
        {"zev-echo-server", {"--threads", "0"}, "invalid value '0' for --threads (expected 1..64)"},
        {"zev-echo-server", {"--threads=65"}, "invalid value '65' for --threads"},
        {"zev-tcp-client", {"--port", "0"}, "invalid port '0'"},
        {"zev-proxy", {"--listen", "0"}, "missing --to"},
        {"zev-proxy", {"--to", "127.0.0.1"}, "expected HOST:PORT"},
        {"zev-proxy", {"--to", "::1:80"}, "in brackets"},
        {"zev-proxy", {"--to", "bad/host:80"}, "an IPv4 address or a host name"},
        {"zev-proxy", {"--to", "[localhost]:80"}, "expected [IPV6]:PORT"},
        {"zev-proxy", {"--listen", "[::1]:99999", "--to", "[::1]:80"}, "invalid address"},
        {"zev-http-hello", {"--port", "8080x"}, "invalid port '8080x'"},
        {"zev-http-hello", {"--max-header-size", "0"}, "invalid value '0' for --max-header-size"},
        {"zev-http-hello", {"--headers-timeout", "-1"}, "invalid value '-1'"},
        {"zev-http-hello", {"--keep-alive-timeout"}, "needs a value"},
        {"zev-proxy", {"--to", "127.0.0.1:1", "--connect-timeout", "x"}, "invalid value 'x'"},
        {"zev-proxy", {"--to", "127.0.0.1:1", "--idle-timeout=1e3"}, "invalid value '1e3'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *k = &cases[i];
        struct child *c = spawn(k->prog, k->args, false);
        char out[256];
        char err[1024];
        size_t n_out = read_all(c->out, out, sizeof(out));
        read_all(c->err, err, sizeof(err));
        cr_assert_eq(wait_exit(c), 2, "%s %s: exit status", k->prog, k->args[0]);
        cr_assert_eq(n_out, 0, "%s: nothing on stdout", k->prog);
        char head[64];
        snprintf(head, sizeof(head), "%s: ", k->prog);
        cr_assert_eq(strncmp(err, head, strlen(head)), 0, "stderr '%s'", err);
        cr_assert_not_null(strstr(err, k->message), "case %zu: stderr '%s' lacks '%s'", i, err,
                           k->message);
    }
}

/* ---- zev-echo-server ------------------------------------------------------------------ */

Test(examples, echo_server_echoes_every_byte_and_exits_zero_on_sigterm) {
    int port;
    struct child *srv = start_server("zev-echo-server", ephemeral, "127.0.0.1", &port);
    size_t n = 4 << 20; /* well past the high-water mark: reading must pause and resume */
    char *out = pattern(n);
    char *in = malloc(n + 1);
    int fd = connect_to("127.0.0.1", port);
    size_t got = exchange(fd, out, n, true, in, n + 1);
    cr_assert_eq(got, n);
    cr_assert_eq(memcmp(in, out, n), 0);
    close(fd);
    free(out);
    free(in);
    stop_with(srv, SIGTERM);
    char err[256];
    cr_assert_eq(read_all(srv->err, err, sizeof(err)), 0, "stderr: '%s'", err);
}

Test(examples, echo_server_closes_live_connections_on_sigint) {
    int port;
    struct child *srv = start_server("zev-echo-server", ephemeral, "127.0.0.1", &port);
    int fd = connect_to("127.0.0.1", port);
    char buf[16];
    cr_assert_eq(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
    cr_assert_eq(read_exact(fd, buf, 4), 4); /* accepted and served */
    stop_with(srv, SIGINT);
    ssize_t r = recv(fd, buf, sizeof(buf), 0); /* the server closed it */
    cr_assert(r == 0 || (r < 0 && errno == ECONNRESET), "recv returned %zd", r);
    close(fd);
}

/* A second echo server (with threads extra arguments, or NULL) on the first one's port fails
 * with exit 1 and one line naming EADDRINUSE. */
static void expect_eaddrinuse(const char *threads) {
    int port;
    struct child *first = start_server("zev-echo-server", ephemeral, "127.0.0.1", &port);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    struct child *second = spawn(
        "zev-echo-server",
        (const char *const[]){"--port", port_text, threads ? "--threads" : NULL, threads, NULL},
        false);
    char out[256];
    char err[512];
    cr_assert_eq(read_all(second->out, out, sizeof(out)), 0, "stdout: '%s'", out);
    read_all(second->err, err, sizeof(err));
    cr_assert_eq(wait_exit(second), 1);
    char want[256];
    snprintf(want, sizeof(want),
             "zev-echo-server: listen 127.0.0.1:%d: EADDRINUSE (address already in use)\n", port);
    cr_assert_str_eq(err, want);
    stop_with(first, SIGTERM);
}

Test(examples, echo_server_on_a_taken_port_fails_with_eaddrinuse) {
    expect_eaddrinuse(NULL);
}

Test(examples, echo_server_over_ipv6) {
    int port;
    struct child *srv =
        start_server("zev-echo-server", (const char *const[]){"--host", "::1", "--port", "0", NULL},
                     "[::1]", &port);
    int fd = connect_to("::1", port);
    char in[64];
    cr_assert_eq(exchange(fd, "over six", 8, true, in, sizeof(in)), 8);
    cr_assert_eq(memcmp(in, "over six", 8), 0);
    close(fd);
    stop_with(srv, SIGTERM);
}

Test(examples, echo_server_max_connections_closes_the_extra_one) {
    int port;
    struct child *srv = start_server(
        "zev-echo-server", (const char *const[]){"--port", "0", "--max-connections", "1", NULL},
        "127.0.0.1", &port);
    int first = connect_to("127.0.0.1", port);
    char buf[16];
    cr_assert_eq(send(first, "one", 3, MSG_NOSIGNAL), 3);
    cr_assert_eq(read_exact(first, buf, 3), 3);
    int extra = connect_to("127.0.0.1", port); /* the kernel accepts; zev closes it at once */
    struct pollfd p = {.fd = extra, .events = POLLIN};
    cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0);
    ssize_t r = recv(extra, buf, sizeof(buf), 0);
    cr_assert(r == 0 || (r < 0 && errno == ECONNRESET), "recv returned %zd", r);
    cr_assert_eq(send(first, "two", 3, MSG_NOSIGNAL), 3); /* the first is unaffected */
    cr_assert_eq(read_exact(first, buf, 3), 3);
    cr_assert_eq(memcmp(buf, "two", 3), 0);
    close(extra);
    close(first);
    stop_with(srv, SIGTERM);
}

Test(examples, echo_server_with_threads_serves_every_connection_and_exits_zero_on_sigterm) {
    int port;
    struct child *srv = start_server("zev-echo-server",
                                     (const char *const[]){"--port", "0", "--threads", "2", NULL},
                                     "127.0.0.1", &port);
    char task_dir[64];
    snprintf(task_dir, sizeof(task_dir), "/proc/%d/task", (int)srv->pid);
    cr_assert_eq(zt_dir_entries(task_dir), 3, "the main thread (signals) and two workers");
    /* Which listener the kernel hands a connection to is its choice (SO_REUSEPORT hashes the
     * peer's port), so only the service is checked: every connection echoes, none is lost. */
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = connect_to("127.0.0.1", port);
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            char out[32];
            char in[32];
            int n = snprintf(out, sizeof(out), "round %d connection %d", round, i);
            cr_assert_eq(send(fds[i], out, (size_t)n, MSG_NOSIGNAL), n);
            cr_assert_eq(read_exact(fds[i], in, (size_t)n), (size_t)n);
            cr_assert_eq(memcmp(in, out, (size_t)n), 0);
        }
    }
    stop_with(srv, SIGTERM); /* with every connection still open: each worker closes its own */
    for (int i = 0; i < N; i++) {
        char buf[16];
        ssize_t r = recv(fds[i], buf, sizeof(buf), 0);
        cr_assert(r == 0 || (r < 0 && errno == ECONNRESET), "recv returned %zd", r);
        close(fds[i]);
    }
    char err[256];
    cr_assert_eq(read_all(srv->err, err, sizeof(err)), 0, "stderr: '%s'", err);
}

/* After "listening on", one line naming the backend the loops run and why, so a benchmark
 * can refuse a row whose server fell back: checked with one loop and with worker threads
 * (where only the worker's own thread may ask its loop). Without ZEV_BACKEND (the uring test
 * setup sets it) the built-in backend runs, whichever this build has. */
static void expect_backend_line(const char *threads) {
    const char *saved = getenv("ZEV_BACKEND");
    char *old = saved ? strdup(saved) : NULL;
    cr_assert_eq(unsetenv("ZEV_BACKEND"), 0);
    int port;
    struct child *srv = start_server(
        "zev-echo-server",
        (const char *const[]){"--port", "0", threads ? "--threads" : NULL, threads, NULL},
        "127.0.0.1", &port);
    if (old) {
        setenv("ZEV_BACKEND", old, 1);
    } else {
        unsetenv("ZEV_BACKEND");
    }
    free(old);
    char line[128];
    read_line(srv->out, line, sizeof(line));
    char want[96];
    snprintf(want, sizeof(want), "backend: %s (built-in default)", zev_backend_name());
    cr_assert_str_eq(line, want);
    stop_clean(srv);
}

Test(examples, echo_server_names_its_backend_after_listening) {
    expect_backend_line(NULL);
}

Test(examples, echo_server_with_threads_names_its_backend_after_listening) {
    expect_backend_line("2");
}

Test(examples, echo_server_with_threads_on_a_taken_port_fails_with_eaddrinuse) {
    expect_eaddrinuse("3");
}

/* ---- zev-tcp-client ------------------------------------------------------------------- */

Test(examples, tcp_client_pipes_stdin_through_the_echo_server) {
    int port;
    struct child *srv = start_server("zev-echo-server", ephemeral, "127.0.0.1", &port);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    struct child *cli =
        spawn("zev-tcp-client",
              (const char *const[]){"--host", "127.0.0.1", "--port", port_text, NULL}, true);

    size_t n = 1 << 20;
    char *out = pattern(n);
    char *in = malloc(n + 1);
    size_t sent = 0;
    size_t got = 0;
    fcntl(cli->in, F_SETFL, O_NONBLOCK);
    while (got < n + 1) { /* feed stdin and drain stdout together: pipes are small */
        struct pollfd p[2] = {{.fd = cli->out, .events = POLLIN},
                              {.fd = cli->in, .events = POLLOUT}};
        cr_assert_gt(poll(p, cli->in >= 0 ? 2 : 1, IO_TIMEOUT_MS), 0, "timed out at %zu", got);
        if (cli->in >= 0 && p[1].revents) {
            ssize_t w = write(cli->in, out + sent, n - sent);
            if (w > 0) sent += (size_t)w;
            if (sent == n) close_fd(&cli->in); /* stdin EOF: the client half-closes */
        }
        if (p[0].revents) {
            ssize_t r = read(cli->out, in + got, n + 1 - got);
            if (r <= 0) break;
            got += (size_t)r;
        }
    }
    cr_assert_eq(got, n);
    cr_assert_eq(memcmp(in, out, n), 0);
    cr_assert_eq(wait_exit(cli), 0);
    free(out);
    free(in);
    stop_with(srv, SIGTERM);
}

Test(examples, tcp_client_reports_connection_refused) {
    int holder;
    int port = refusing_port(&holder);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    struct child *cli =
        spawn("zev-tcp-client", (const char *const[]){"--port", port_text, NULL}, false);
    char err[512];
    read_all(cli->err, err, sizeof(err));
    cr_assert_eq(wait_exit(cli), 1);
    char want[128];
    snprintf(want, sizeof(want), "zev-tcp-client: connect 127.0.0.1:%d: ECONNREFUSED", port);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0, "stderr '%s'", err);
    close(holder);
}

/* A file as stdin (which epoll cannot watch: read directly, a chunk per iteration) goes
 * through the echo server and back byte for byte, and the client exits 0 at the end. */
Test(examples, tcp_client_pipes_a_1mib_file_through_the_echo_server_byte_exact) {
    int port;
    struct child *srv = start_server("zev-echo-server", ephemeral, "127.0.0.1", &port);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    size_t n = 1 << 20;
    char *out = pattern(n);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(out, 1, n, f), n);
    cr_assert_eq(fflush(f), 0);
    int fd = dup(fileno(f));
    fclose(f);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    struct child *cli = spawn_stdin_fd(
        "zev-tcp-client", (const char *const[]){"--port", port_text, NULL}, fd);
    char *in = malloc(n + 2);
    cr_assert_eq(read_all(cli->out, in, n + 2), n);
    cr_assert_eq(memcmp(in, out, n), 0);
    cr_assert_eq(wait_exit(cli), 0);
    free(out);
    free(in);
    stop_clean(srv);
}

/* The client and a plain server: what reaches the server, in order, and when. */
static struct child *client_of(int listener, bool with_stdin, int *conn) {
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(listener, (struct sockaddr *)&a, &len), 0);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", ntohs(a.sin_port));
    struct child *cli =
        spawn("zev-tcp-client", (const char *const[]){"--port", port_text, NULL}, with_stdin);
    *conn = accept_one(listener);
    return cli;
}

/* stdin's EOF is a half-close: the server sees the bytes then EOF, and the client still
 * prints what the server sends after that, then exits 0 at the server's EOF. */
Test(examples, tcp_client_half_closes_at_stdin_eof_and_keeps_reading) {
    struct sockaddr_in a;
    int l = plain_listener(1, &a);
    int conn;
    struct child *cli = client_of(l, true, &conn);
    cr_assert_eq(write(cli->in, "hello", 5), 5);
    char buf[64];
    cr_assert_eq(read_exact(conn, buf, 5), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    close_fd(&cli->in);
    cr_assert_eq(read_all(conn, buf, sizeof(buf)), 0, "EOF after the bytes, got '%s'", buf);
    cr_assert_eq(send(conn, "world", 5, MSG_NOSIGNAL), 5); /* the other way is still open */
    close(conn);
    cr_assert_eq(read_all(cli->out, buf, sizeof(buf)), 5);
    cr_assert_str_eq(buf, "world");
    cr_assert_eq(wait_exit(cli), 0);
    close(l);
}

/* /dev/null (which epoll cannot watch) is an empty stdin: the half-close comes at once. */
Test(examples, tcp_client_with_stdin_from_dev_null_half_closes_at_once) {
    struct sockaddr_in a;
    int l = plain_listener(1, &a);
    int conn;
    struct child *cli = client_of(l, false, &conn);
    char buf[64];
    cr_assert_eq(read_all(conn, buf, sizeof(buf)), 0, "EOF at once, got '%s'", buf);
    cr_assert_eq(send(conn, "bye", 3, MSG_NOSIGNAL), 3);
    close(conn);
    cr_assert_eq(read_all(cli->out, buf, sizeof(buf)), 3);
    cr_assert_str_eq(buf, "bye");
    cr_assert_eq(wait_exit(cli), 0);
    char err[256];
    cr_assert_eq(read_all(cli->err, err, sizeof(err)), 0, "stderr: '%s'", err);
    close(l);
}

/* A stdout nobody reads stops the client reading the socket (the server's sends stall at
 * the kernel's buffers) without blocking its loop: SIGTERM still ends it with exit 0, and
 * the data held meanwhile is a bounded amount. */
Test(examples, tcp_client_with_a_stalled_stdout_stops_reading_and_still_exits_on_sigterm) {
    struct sockaddr_in a;
    int l = plain_listener(1, &a);
    int conn;
    struct child *cli = client_of(l, true, &conn);
    fcntl(conn, F_SETFL, O_NONBLOCK);
    size_t chunk = 64 * 1024;
    char *block = pattern(chunk);
    size_t sent = 0;
    for (;;) { /* until a send waits in vain: the client no longer reads */
        ssize_t w = send(conn, block, chunk, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            cr_assert_lt(sent, (size_t)256 << 20, "the client never stopped reading");
            continue;
        }
        cr_assert(w < 0 && errno == EAGAIN, "send: %s", strerror(errno));
        struct pollfd p = {.fd = conn, .events = POLLOUT};
        if (poll(&p, 1, 200) == 0) break;
    }
    cr_assert_eq(child_threads(cli), 1, "the client runs on one thread");
    stop_with(cli, SIGTERM);
    free(block);
    close(conn);
    close(l);
}

/* ---- one thread ------------------------------------------------------------------------ */

/* Signals are handles on the loop, and stdin a watcher: with one loop, one thread. */
Test(examples, every_program_runs_on_one_thread) {
    static const struct {
        const char *prog;
        const char *args[3];
        const char *host;
    } servers[] = {
        {"zev-echo-server", {"--port", "0"}, "127.0.0.1"},
        {"zev-http-hello", {"--port", "0"}, "127.0.0.1"},
        {"zev-proxy", {"--listen", "0"}, "127.0.0.1"},
        {"zev-udp-echo", {"--port", "0"}, "127.0.0.1"},
        {"zev-pubsub", {"--port", "0"}, "127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof(servers) / sizeof(servers[0]); i++) {
        const char *args[6] = {servers[i].args[0], servers[i].args[1]};
        if (strcmp(servers[i].prog, "zev-proxy") == 0) {
            args[2] = "--to";
            args[3] = "127.0.0.1:9";
        }
        int port;
        struct child *srv = start_server(servers[i].prog, args, servers[i].host, &port);
        cr_assert_eq(child_threads(srv), 1, "%s: threads", servers[i].prog);
        stop_clean(srv);
    }
    struct sockaddr_in a;
    int l = plain_listener(1, &a);
    int conn;
    struct child *cli = client_of(l, true, &conn);
    cr_assert_eq(write(cli->in, "x", 1), 1);
    char buf[4];
    cr_assert_eq(read_exact(conn, buf, 1), 1); /* connected, stdin watched */
    cr_assert_eq(child_threads(cli), 1, "zev-tcp-client: threads");
    stop_with(cli, SIGINT);
    close(conn);
    close(l);
}

/* ---- host names ------------------------------------------------------------------------ */

/* Only names this machine answers from /etc/hosts: nothing is asked of a DNS server. */
#define LOCALHOST_OR_SKIP()                                                                    \
    do {                                                                                       \
        if (!zt_hosts_has("localhost", "127.0.0.1"))                                           \
            cr_skip_test("/etc/hosts does not map localhost to 127.0.0.1");                    \
    } while (0)

/* A server given a name listens on its first address and prints it numerically; resolving
 * it left no thread behind. */
Test(examples, servers_listen_on_a_host_name_and_print_the_numeric_address) {
    LOCALHOST_OR_SKIP();
    static const char *const progs[] = {"zev-echo-server", "zev-http-hello", "zev-udp-echo"};
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
        int port;
        struct child *srv = start_server(
            progs[i], (const char *const[]){"--host", "localhost", "--port", "0", NULL},
            "127.0.0.1", &port);
        cr_assert_eq(child_threads(srv), 1, "%s: threads", progs[i]);
        if (i == 0) {
            int fd = connect_to("127.0.0.1", port);
            char in[16];
            cr_assert_eq(exchange(fd, "by name", 7, true, in, sizeof(in)), 7);
            cr_assert_eq(memcmp(in, "by name", 7), 0);
            close(fd);
        }
        stop_clean(srv);
    }
}

/* zev-tcp-client and zev-proxy connect by name (zev_tcp_connect with the name); the proxy
 * also listens on one. */
Test(examples, client_and_proxy_connect_by_host_name) {
    LOCALHOST_OR_SKIP();
    int echo_port;
    struct child *srv = start_server("zev-echo-server", ephemeral, "127.0.0.1", &echo_port);
    char to[32];
    snprintf(to, sizeof(to), "localhost:%d", echo_port);
    int proxy_port;
    struct child *px = start_server(
        "zev-proxy", (const char *const[]){"--listen", "localhost:0", "--to", to, NULL},
        "127.0.0.1", &proxy_port);
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", proxy_port);
    struct child *cli = spawn(
        "zev-tcp-client", (const char *const[]){"--host", "localhost", "--port", port_text, NULL},
        true);
    cr_assert_eq(write(cli->in, "through both", 12), 12);
    close_fd(&cli->in);
    char out[64];
    cr_assert_eq(read_all(cli->out, out, sizeof(out)), 12);
    cr_assert_str_eq(out, "through both");
    cr_assert_eq(wait_exit(cli), 0);
    stop_clean(px);
    stop_clean(srv);
}

/* A name that does not resolve: "PROG: WHAT HOST:PORT: ENOTFOUND (...)" and exit 1. The text
 * starts with '-', which getaddrinfo refuses as a host name without asking a DNS server, and
 * the program runs in a network namespace of its own besides, so that no query could leave
 * this machine even from a resolver that asked. */
Test(examples, a_host_name_that_does_not_resolve_is_enotfound_and_exit_1) {
    if (!can_isolate()) cr_skip_test("cannot create a network namespace");
    static const char bad[] = "-nosuchhost.invalid";
    static const struct {
        const char *prog;
        const char *args[5];
        const char *message;
    } cases[] = {
        {"zev-tcp-client", {"--host", bad, "--port", "80"}, "connect -nosuchhost.invalid:80"},
        {"zev-echo-server", {"--host", bad, "--port", "0"}, "listen -nosuchhost.invalid:0"},
        {"zev-http-hello", {"--host", bad, "--port", "0"}, "listen -nosuchhost.invalid:0"},
        {"zev-proxy", {"--to", "-nosuchhost.invalid:80"}, "target -nosuchhost.invalid:80"},
        {"zev-proxy", {"--listen", "-nosuchhost.invalid:0", "--to", "127.0.0.1:9"},
         "listen -nosuchhost.invalid:0"},
        {"zev-udp-echo", {"--host", bad, "--port", "0"}, "bind -nosuchhost.invalid:0"},
        {"zev-udp-send", {"--to", "-nosuchhost.invalid:9", "--size", "1"},
         "send -nosuchhost.invalid:9"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct child *c = spawn_isolated(cases[i].prog, cases[i].args);
        char out[256];
        char err[512];
        cr_assert_eq(read_all(c->out, out, sizeof(out)), 0, "%s: stdout '%s'", cases[i].prog, out);
        read_all(c->err, err, sizeof(err));
        cr_assert_eq(wait_exit(c), 1, "%s: exit status (stderr '%s')", cases[i].prog, err);
        char want[256];
        snprintf(want, sizeof(want), "%s: %s: ENOTFOUND (host name not found)\n", cases[i].prog,
                 cases[i].message);
        cr_assert_str_eq(err, want);
    }
}
