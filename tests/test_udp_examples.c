/* tests/test_udp_examples.c: the UDP example programs run as a user would run them: --help,
 * "listening on HOST:PORT", echo, send from stdin or --size, error messages with the errno
 * name and exit 1, exit 0 on SIGINT/SIGTERM, and zev-mcast as listener and sender, any-source
 * and source-specific, between two private network namespaces (tests/support/netns.h).
 *
 * The programs are found next to this test in the build tree (../examples/); in a build
 * without examples every test skips. Every wait is bounded; every child is reaped. */
#include "fake_dns.h"
#include "netns.h"
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static struct zt_netns ns;

static void ex_setup(void) {
    zt_setup();
    zt_netns_setup(&ns); /* when it fails, the tests that need it skip; the others run here */
}

static void ex_teardown(void) {
    zt_netns_teardown(&ns);
    zt_teardown();
}

TestSuite(udp_examples, .init = ex_setup, .fini = ex_teardown, .timeout = 60);

#define REQUIRE_NETNS()                                                                            \
    do {                                                                                           \
        if (!ns.ok) cr_skip_test("%s", ns.why);                                                    \
    } while (0)

/* ---- running a program ---- */

struct proc {
    pid_t pid;
    int out; /* its stdout */
    int err; /* its stderr */
};

static void program_path(const char *name, char *path, size_t cap) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert_gt(n, 0);
    self[n] = '\0';
    snprintf(path, cap, "%s/../examples/%s", dirname(self), name);
    if (access(path, X_OK) != 0) cr_skip_test("%s not built (-Dexamples=false?)", name);
}

/* Start name with args (NULL-terminated), feeding it stdin_text (NULL: no input). */
static void spawn(struct proc *p, const char *name, const char *const *args, const char *stdin_text,
                  size_t stdin_len) {
    char path[PATH_MAX];
    program_path(name, path, sizeof(path));
    char *argv[16] = {(char *)name};
    for (int i = 0; args[i]; i++) {
        argv[i + 1] = (char *)args[i];
    }
    int in[2], out[2], err[2];
    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    cr_assert_eq(posix_spawn(&p->pid, path, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (stdin_text) {
        size_t off = 0;
        while (off < stdin_len) {
            ssize_t w = write(in[1], stdin_text + off, stdin_len - off);
            cr_assert_gt(w, 0);
            off += (size_t)w;
        }
    }
    close(in[1]);
    p->out = out[0];
    p->err = err[0];
}

/* Read from fd until a newline, EOF or ms pass. Returns the length (newline dropped). */
static size_t read_line(int fd, char *buf, size_t cap, int ms) {
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, ms) <= 0) break;
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0 || buf[n] == '\n') break;
        n++;
    }
    buf[n] = '\0';
    return n;
}

/* Everything fd has until EOF (bounded by ms). */
static size_t read_all(int fd, char *buf, size_t cap, int ms) {
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, ms) <= 0) break;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

/* Wait up to ms for p to exit; returns its exit status, or -1 after killing it. Closes its
 * pipes. */
static int finish(struct proc *p, int ms) {
    int st = 0;
    int waited = 0;
    while (waitpid(p->pid, &st, WNOHANG) == 0) {
        if (waited >= ms) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            st = -1;
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        waited += 10;
    }
    close(p->out);
    close(p->err);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

/* The port of "listening on HOST:PORT" after checking the host part. */
static int listening_port(struct proc *p, const char *host_text) {
    char line[128];
    read_line(p->out, line, sizeof(line), 10000);
    char want[96];
    snprintf(want, sizeof(want), "listening on %s:", host_text);
    cr_assert_eq(strncmp(line, want, strlen(want)), 0, "got '%s', want '%s...'", line, want);
    int port = atoi(line + strlen(want));
    cr_assert_gt(port, 0);
    return port;
}

/* A plain UDP socket bound to host:port (0: ephemeral) with a receive timeout. */
static int plain_socket(const char *host, int port, int *bound) {
    zev_sockaddr_t a;
    cr_assert_eq(zev_addr_parse(&a, host, port), 0);
    int fd = socket(a.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(fd, &a.sa, zev_addr_len(&a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, &a.sa, &len);
    zev_addr_info_t info;
    zev_addr_info(&a, &info);
    if (bound) *bound = info.port;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static ssize_t send_to(int fd, const char *host, int port, const void *buf, size_t len) {
    zev_sockaddr_t a;
    zev_addr_parse(&a, host, port);
    return sendto(fd, buf, len, 0, &a.sa, zev_addr_len(&a));
}

/* ---- every program ---- */

Test(udp_examples, help_prints_usage_and_exits_0) {
    const char *names[] = {"zev-udp-echo", "zev-udp-send", "zev-mcast"};
    for (int i = 0; i < 3; i++) {
        struct proc p;
        const char *args[] = {"--help", NULL};
        spawn(&p, names[i], args, NULL, 0);
        char out[2048];
        read_all(p.out, out, sizeof(out), 10000);
        cr_assert_eq(finish(&p, 10000), 0, "%s --help", names[i]);
        char want[64];
        snprintf(want, sizeof(want), "usage: %s ", names[i]);
        cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s", out);
        cr_assert_not_null(strstr(out, "host name"), "%s --help: names", names[i]);
        cr_assert_not_null(strstr(out, "SIGINT or SIGTERM"), "%s --help: signals", names[i]);
    }
}

Test(udp_examples, bad_command_lines_exit_2) {
    struct proc p;
    const char *args[] = {"--port", "70000", NULL};
    spawn(&p, "zev-udp-echo", args, NULL, 0);
    char err[256];
    read_all(p.err, err, sizeof(err), 10000);
    cr_assert_eq(finish(&p, 10000), 2);
    cr_assert(strstr(err, "zev-udp-echo: ") == err, "%s", err);
    const char *mc[] = {"--group", "239.1.2.3", "--port", "5000", NULL};
    spawn(&p, "zev-mcast", mc, NULL, 0);
    read_all(p.err, err, sizeof(err), 10000);
    cr_assert_eq(finish(&p, 10000), 2);
    cr_assert(strstr(err, "--listen") != NULL, "%s", err);
}

/* ---- zev-udp-echo ---- */

static void echo_round_trip(const char *host, const char *shown, int signo) {
    struct proc p;
    const char *args[] = {"--host", host, "--port", "0", NULL};
    spawn(&p, "zev-udp-echo", args, NULL, 0);
    int port = listening_port(&p, shown);
    int fd = plain_socket(host, 0, NULL);
    char buf[64];
    cr_assert_eq(send_to(fd, host, port, "ping", 4), 4);
    cr_assert_eq(recv(fd, buf, sizeof(buf), 0), 4);
    cr_assert_eq(memcmp(buf, "ping", 4), 0);
    cr_assert_eq(send_to(fd, host, port, "", 0), 0);
    cr_assert_eq(recv(fd, buf, sizeof(buf), 0), 0, "an empty datagram comes back empty");
    close(fd);
    kill(p.pid, signo);
    cr_assert_eq(finish(&p, 10000), 0, "exit 0 on signal %d", signo);
}

/* After "listening on", the backend line a benchmark checks before trusting a row. */
Test(udp_examples, echo_names_its_backend_after_listening) {
    const char *saved = getenv("ZEV_BACKEND");
    char *old = saved ? strdup(saved) : NULL;
    cr_assert_eq(unsetenv("ZEV_BACKEND"), 0);
    struct proc p;
    const char *args[] = {"--port", "0", NULL};
    spawn(&p, "zev-udp-echo", args, NULL, 0);
    if (old) {
        setenv("ZEV_BACKEND", old, 1);
    } else {
        unsetenv("ZEV_BACKEND");
    }
    free(old);
    listening_port(&p, "127.0.0.1");
    char line[128];
    read_line(p.out, line, sizeof(line), 10000);
    char want[96];
    snprintf(want, sizeof(want), "backend: %s (built-in default)", zev_backend_name());
    cr_assert_str_eq(line, want);
    kill(p.pid, SIGTERM);
    cr_assert_eq(finish(&p, 10000), 0);
}

Test(udp_examples, echo_answers_over_ipv4_and_exits_0_on_sigterm) {
    echo_round_trip("127.0.0.1", "127.0.0.1", SIGTERM);
}

Test(udp_examples, echo_answers_over_ipv6_and_exits_0_on_sigint) {
    echo_round_trip("::1", "[::1]", SIGINT);
}

Test(udp_examples, echo_reports_a_taken_port_with_its_errno_name) {
    int port = 0;
    int fd = plain_socket("127.0.0.1", 0, &port);
    int one = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct proc p;
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    const char *args[] = {"--port", port_text, NULL};
    spawn(&p, "zev-udp-echo", args, NULL, 0);
    char err[256];
    read_all(p.err, err, sizeof(err), 10000);
    cr_assert_eq(finish(&p, 10000), 1);
    char want[128];
    snprintf(want, sizeof(want),
             "zev-udp-echo: bind 127.0.0.1:%d: EADDRINUSE (address already in use)\n", port);
    cr_assert_str_eq(err, want);
    close(fd);
}

/* ---- zev-udp-send ---- */

Test(udp_examples, send_sends_stdin_count_times) {
    int port = 0;
    int fd = plain_socket("127.0.0.1", 0, &port);
    char to[32];
    snprintf(to, sizeof(to), "127.0.0.1:%d", port);
    struct proc p;
    const char *args[] = {"--to", to, "--count", "3", "--ttl", "9", NULL};
    spawn(&p, "zev-udp-send", args, "from stdin", 10);
    cr_assert_eq(finish(&p, 10000), 0);
    char buf[64];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(recv(fd, buf, sizeof(buf), 0), 10);
        cr_assert_eq(memcmp(buf, "from stdin", 10), 0);
    }
    const char *sized[] = {"--to", to, "--size", "1000", NULL};
    spawn(&p, "zev-udp-send", sized, NULL, 0);
    cr_assert_eq(finish(&p, 10000), 0);
    static char big[2000];
    cr_assert_eq(recv(fd, big, sizeof(big), 0), 1000);
    cr_assert_eq(memcmp(big, "0123456789", 10), 0);
    close(fd);
}

/* A destination given by name (only localhost, from /etc/hosts) is resolved once at start. */
Test(udp_examples, send_to_a_host_name_reaches_its_first_address) {
    if (!zt_hosts_has("localhost", "127.0.0.1")) cr_skip_test("/etc/hosts lacks localhost");
    int port = 0;
    int fd = plain_socket("127.0.0.1", 0, &port);
    char to[32];
    snprintf(to, sizeof(to), "localhost:%d", port);
    struct proc p;
    const char *args[] = {"--to", to, "--size", "5", "--count", "2", NULL};
    spawn(&p, "zev-udp-send", args, NULL, 0);
    cr_assert_eq(finish(&p, 10000), 0);
    char buf[16];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(recv(fd, buf, sizeof(buf), 0), 5);
        cr_assert_eq(memcmp(buf, "01234", 5), 0);
    }
    close(fd);
}

Test(udp_examples, send_reports_an_oversized_datagram_with_its_errno_name) {
    static char input[ZEV_UDP4_MAX_PAYLOAD + 1];
    memset(input, 'x', sizeof(input));
    struct proc p;
    const char *args[] = {"--to", "127.0.0.1:9", NULL};
    spawn(&p, "zev-udp-send", args, input, sizeof(input));
    char err[256];
    read_all(p.err, err, sizeof(err), 10000);
    cr_assert_eq(finish(&p, 10000), 1);
    cr_assert_str_eq(err, "zev-udp-send: send 127.0.0.1:9: EMSGSIZE (message too long)\n");
}

Test(udp_examples, send_to_broadcast_needs_the_flag) {
    REQUIRE_NETNS();
    int port = 0;
    int fd = plain_socket("0.0.0.0", 0, &port); /* in namespace A */
    char to[32];
    snprintf(to, sizeof(to), "%s:%d", ZT_NS_BCAST4, port);
    zt_netns_enter(&ns, 'b');
    struct proc p;
    const char *refused[] = {"--to", to, NULL};
    spawn(&p, "zev-udp-send", refused, "hello", 5);
    char err[256];
    read_all(p.err, err, sizeof(err), 10000);
    cr_assert_eq(finish(&p, 10000), 1);
    char want[128];
    snprintf(want, sizeof(want), "zev-udp-send: send %s: EACCES (permission denied)\n", to);
    cr_assert_str_eq(err, want);
    const char *allowed[] = {"--to", to, "--broadcast", NULL};
    spawn(&p, "zev-udp-send", allowed, "hello", 5);
    cr_assert_eq(finish(&p, 10000), 0);
    zt_netns_enter(&ns, 'a');
    char buf[16];
    cr_assert_eq(recv(fd, buf, sizeof(buf), 0), 5);
    close(fd);
}

/* ---- zev-mcast ---- */

static void mcast_send(const char *group, int port, const char *source, const char *text) {
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    zt_netns_enter(&ns, 'b');
    struct proc p;
    const char *args[] = {"--group", group,     "--port",
                          port_text, "--iface", ZT_NS_B_IF,
                          "--send",  text,      source ? "--source" : NULL,
                          source,    NULL};
    spawn(&p, "zev-mcast", args, NULL, 0);
    char err[256];
    read_all(p.err, err, sizeof(err), 10000);
    cr_assert_eq(finish(&p, 10000), 0, "sender: %s", err);
    zt_netns_enter(&ns, 'a');
}

Test(udp_examples, mcast_any_source_ipv4_listener_prints_each_message) {
    REQUIRE_NETNS();
    struct proc l;
    const char *args[] = {"--group",  "239.1.2.3", "--port",  "0", "--iface",
                          ZT_NS_A_IF, "--listen",  "--count", "2", NULL};
    spawn(&l, "zev-mcast", args, NULL, 0);
    int port = listening_port(&l, "239.1.2.3");
    mcast_send("239.1.2.3", port, NULL, "first");
    mcast_send("239.1.2.3", port, NULL, "second");
    char out[256];
    read_all(l.out, out, sizeof(out), 10000);
    cr_assert_eq(finish(&l, 10000), 0);
    cr_assert_str_eq(out, "first\nsecond\n");
}

Test(udp_examples, mcast_source_specific_ipv6_listener_ignores_other_sources) {
    REQUIRE_NETNS();
    struct proc l;
    const char *args[] = {"--group",  "ff3e::4321", "--port",   "0",       "--iface", ZT_NS_A_IF,
                          "--source", ZT_NS_B6,     "--listen", "--count", "1",       NULL};
    spawn(&l, "zev-mcast", args, NULL, 0);
    int port = listening_port(&l, "[ff3e::4321]");
    mcast_send("ff3e::4321", port, ZT_NS_B6_OTHER, "foreign");
    mcast_send("ff3e::4321", port, ZT_NS_B6, "allowed");
    char out[256];
    read_all(l.out, out, sizeof(out), 10000);
    cr_assert_eq(finish(&l, 10000), 0);
    cr_assert_str_eq(out, "allowed\n");
}

Test(udp_examples, mcast_listener_exits_0_on_sigterm) {
    REQUIRE_NETNS();
    struct proc l;
    const char *args[] = {"--group", "239.1.2.7", "--port", "0", "--listen", NULL};
    spawn(&l, "zev-mcast", args, NULL, 0);
    listening_port(&l, "239.1.2.7");
    kill(l.pid, SIGTERM);
    cr_assert_eq(finish(&l, 10000), 0);
}
