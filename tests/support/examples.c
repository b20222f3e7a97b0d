/* tests/support/examples.c: running the example programs as child processes and talking to
 * them through plain POSIX sockets, for the example suites (tests/test_example*.c).
 *
 * The binaries are found through ZT_EXAMPLES_DIR, set by tests/meson.build. Every child is
 * recorded; the fixture kills (by pid) and reaps whatever a failing test left behind.
 */
#include "examples.h"
#include "zt.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ZT_EXAMPLES_DIR
#error "ZT_EXAMPLES_DIR must name the directory of the built examples"
#endif

const char *const ephemeral[] = {"--port", "0", NULL};

/* ---- child processes ------------------------------------------------------------------ */

/* In static storage, not on a test's stack: a failed assertion leaves the test function, and
 * the fixture must still find (and kill) exactly the processes it started. */
#define MAX_CHILDREN 32
static struct child children[MAX_CHILDREN];
static int n_children;

void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

void examples_setup(void) {
    signal(SIGPIPE, SIG_IGN); /* a child that died must fail a write, not kill the test */
    n_children = 0;
}

/* Kill and reap only the children this test started and did not reap. */
void examples_teardown(void) {
    for (int i = 0; i < n_children; i++) {
        struct child *c = &children[i];
        if (c->pid > 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
            c->pid = 0;
        }
        close_fd(&c->in);
        close_fd(&c->out);
        close_fd(&c->err);
    }
    n_children = 0;
}

/* Start ZT_EXAMPLES_DIR/prog with args (NULL-terminated) and stdin_fd as its stdin (the
 * caller's, closed here), or a pipe to it if stdin_fd is -1. In a new network namespace (only
 * a loopback that is down) if isolated. */
static struct child *spawn_with(const char *prog, const char *const *args, int stdin_fd,
                                bool isolated) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", ZT_EXAMPLES_DIR, prog);
    const char *argv[16] = {path};
    int argc = 1;
    for (; args && args[argc - 1]; argc++) {
        cr_assert_lt(argc, 15);
        argv[argc] = args[argc - 1];
    }
    argv[argc] = NULL;

    int in[2] = {stdin_fd, -1};
    int out[2];
    int err[2];
    if (stdin_fd < 0) cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
    cr_assert_lt(n_children, MAX_CHILDREN);

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        if (isolated && unshare(CLONE_NEWNET) != 0) _exit(126);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    struct child *c = &children[n_children++];
    *c = (struct child){.pid = pid, .in = in[1], .out = out[0], .err = err[0]};
    return c;
}

static int open_dev_null(void) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    return fd;
}

struct child *spawn(const char *prog, const char *const *args, bool with_stdin) {
    return spawn_with(prog, args, with_stdin ? -1 : open_dev_null(), false);
}

struct child *spawn_stdin_fd(const char *prog, const char *const *args, int stdin_fd) {
    return spawn_with(prog, args, stdin_fd, false);
}

struct child *spawn_isolated(const char *prog, const char *const *args) {
    return spawn_with(prog, args, open_dev_null(), true);
}

bool can_isolate(void) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) _exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static long elapsed_ms(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Wait for the child to exit; returns its exit status. Killing and failing after timeout. */
int wait_exit(struct child *c) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        cr_assert_geq(r, 0, "waitpid: %s", strerror(errno));
        if (r == c->pid) break;
        if (elapsed_ms(&start) > IO_TIMEOUT_MS) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
            c->pid = 0;
            cr_assert_fail("child did not exit in time");
        }
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    c->pid = 0;
    cr_assert(WIFEXITED(status), "child killed by signal %d", WTERMSIG(status));
    return WEXITSTATUS(status);
}

/* Send sig to the child and expect a clean exit 0. */
void stop_with(struct child *c, int sig) {
    cr_assert_eq(kill(c->pid, sig), 0);
    cr_assert_eq(wait_exit(c), 0, "exit status after signal %d", sig);
}

/* Stop with SIGTERM, expecting exit 0 and nothing on stderr (no sanitizer report). */
void stop_clean(struct child *srv) {
    stop_with(srv, SIGTERM);
    char err[2048];
    cr_assert_eq(read_all(srv->err, err, sizeof(err)), 0, "stderr: '%s'", err);
}

/* Read fd until EOF, or until want bytes if want is not 0; at most cap bytes. */
static size_t read_some(int fd, char *buf, size_t cap, size_t want) {
    size_t n = 0;
    while (n < cap && (want == 0 || n < want)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0, "timed out reading");
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        cr_assert_geq(got, 0, "read: %s", strerror(errno));
        if (got == 0) break;
        n += (size_t)got;
    }
    return n;
}

/* Read fd until EOF as a string (at most cap - 1 bytes); returns the length. */
size_t read_all(int fd, char *buf, size_t cap) {
    size_t n = read_some(fd, buf, cap - 1, 0);
    buf[n] = '\0';
    return n;
}

/* Read exactly n bytes (fewer only at EOF). */
size_t read_exact(int fd, char *buf, size_t n) {
    return read_some(fd, buf, n, n);
}

/* Read one line from fd (without the '\n'). */
void read_line(int fd, char *buf, size_t cap) {
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0, "timed out waiting for a line");
        char ch;
        ssize_t got = read(fd, &ch, 1);
        if (got < 0 && errno == EINTR) continue;
        cr_assert_eq(got, 1, "EOF before a full line (got '%.*s')", (int)n, buf);
        if (ch == '\n') break;
        buf[n++] = ch;
    }
    buf[n] = '\0';
}

/* Start a server and return the port from its "listening on HOST:PORT" line; host is the
 * expected HOST text ("127.0.0.1" or "[::1]"). */
struct child *start_server(const char *prog, const char *const *args, const char *host,
                           int *port_out) {
    struct child *c = spawn(prog, args, false);
    char line[128];
    read_line(c->out, line, sizeof(line));
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "listening on %s:", host);
    cr_assert_eq(strncmp(line, prefix, strlen(prefix)), 0, "unexpected first line '%s'", line);
    int port = atoi(line + strlen(prefix));
    cr_assert(port > 0 && port < 65536, "bad port in '%s'", line);
    *port_out = port;
    return c;
}

/* ---- a plain POSIX peer --------------------------------------------------------------- */

int connect_to(const char *host, int port) {
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int family = strchr(host, ':') ? AF_INET6 : AF_INET;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        len = sizeof(*a);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&ss, len), 0, "connect %s:%d: %s", host, port,
                 strerror(errno));
    return fd;
}

/* Send all of out (then shut down our sending side if shut) while reading what comes back,
 * until EOF or cap bytes; returns bytes read. Never blocks on one direction, so a peer that
 * echoes while we send cannot deadlock us. */
size_t exchange(int fd, const char *out, size_t n_out, bool shut, char *in, size_t cap) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t sent = 0;
    size_t got = 0;
    bool shut_done = false;
    for (;;) {
        if (sent == n_out && shut && !shut_done) {
            cr_assert_eq(shutdown(fd, SHUT_WR), 0);
            shut_done = true;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < n_out ? POLLOUT : 0)};
        cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0, "timed out (sent %zu, got %zu)", sent, got);
        if (sent < n_out && (p.revents & POLLOUT)) {
            ssize_t w = send(fd, out + sent, n_out - sent, MSG_NOSIGNAL);
            if (w > 0) sent += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, in + got, cap - got, 0);
            if (r == 0 || (r < 0 && errno == ECONNRESET)) break;
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            cr_assert_gt(r, 0, "recv: %s", strerror(errno));
            got += (size_t)r;
            if (got == cap) break;
        }
    }
    return got;
}

/* Read until needle has appeared count times (or EOF); returns bytes read. */
size_t read_until_count(int fd, char *buf, size_t cap, const char *needle, int count) {
    size_t n = 0;
    for (;;) {
        int seen = 0;
        buf[n] = '\0';
        for (const char *p = buf; (p = strstr(p, needle)); p += strlen(needle)) {
            seen++;
        }
        if (seen >= count) return n;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0, "timed out after '%s'", buf);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0) return n;
        n += (size_t)r;
    }
}

/* A port that refuses connections: bound (so nobody else takes it) but not listening. */
int refusing_port(int *holder) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *holder = fd;
    return ntohs(a.sin_port);
}

char *pattern(size_t n) {
    char *p = malloc(n);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = (char)('a' + (i * 7 + i / 251) % 26);
    }
    return p;
}

/* Read until the peer closes (EOF or a reset) or cap - 1 bytes, as a string; fails if it is
 * still open after IO_TIMEOUT_MS. */
size_t read_until_closed(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0, "still open after %d ms (got '%.*s')",
                     IO_TIMEOUT_MS, (int)n, buf);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0 || (r < 0 && errno == ECONNRESET)) break;
        cr_assert_gt(r, 0, "recv: %s", strerror(errno));
        n += (size_t)r;
        if (n == cap - 1) break;
    }
    buf[n] = '\0';
    return n;
}

/* Read from fd until it ends, which must be a reset (ECONNRESET), not an orderly EOF. */
void expect_reset(int fd) {
    char buf[256];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0, "still open after %d ms", IO_TIMEOUT_MS);
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r < 0 && errno == EINTR) continue;
        if (r > 0) continue;
        cr_assert(r < 0 && errno == ECONNRESET, "ended with %s, not a reset",
                  r == 0 ? "a clean EOF" : strerror(errno));
        return;
    }
}

/* Close with a reset (SO_LINGER 0) instead of a FIN. */
void close_with_reset(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
    close(fd);
}

/* Open socket descriptors of a child, from /proc. Only sockets: the kqueue emulation holds an
 * eventfd while the loop is blocked, so the count of every descriptor depends on the moment. */
int child_sockets(const struct child *c) {
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)c->pid);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[64 + sizeof(e->d_name)];
        char target[64];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len > 0 && strncmp(target, "socket:", 7) == 0) n++;
    }
    closedir(d);
    return n;
}

/* Poll (every 5 ms, at most IO_TIMEOUT_MS) until the child has want sockets open. */
void wait_child_sockets(const struct child *c, int want, const char *what) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int n;
    while ((n = child_sockets(c)) != want) {
        cr_assert_leq(elapsed_ms(&start), IO_TIMEOUT_MS, "%s: %d sockets, expected %d", what, n,
                      want);
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
}

/* Threads of a running child, from /proc. */
int child_threads(const struct child *c) {
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)c->pid);
    return zt_dir_entries(dir);
}

/* VmRSS of a child in KiB. */
long child_rss_kib(const struct child *c) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)c->pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    }
    fclose(f);
    cr_assert_gt(kib, 0);
    return kib;
}

/* A plain listener on 127.0.0.1 for a test to play the target; its address goes to addr. */
int plain_listener(int backlog, struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &addr->sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
    cr_assert_eq(listen(fd, backlog), 0);
    socklen_t len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, &len);
    return fd;
}

/* Accept one connection within IO_TIMEOUT_MS. */
int accept_one(int listener) {
    struct pollfd p = {.fd = listener, .events = POLLIN};
    cr_assert_gt(poll(&p, 1, IO_TIMEOUT_MS), 0, "nothing to accept");
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(fd, 0, "accept: %s", strerror(errno));
    return fd;
}

/* A target that never completes a handshake: a 127.0.0.1 listener with backlog 0 whose
 * accept queue the test fills, after which the kernel drops every SYN. The filling sockets
 * go to fills (at most 8); returns the listener. */
int hanging_target(int *port, int fills[MAX_FILLS], int *n_fills) {
    struct sockaddr_in a;
    int l = plain_listener(0, &a);
    *port = ntohs(a.sin_port);
    *n_fills = 0;
    for (int i = 0; i < MAX_FILLS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        fills[(*n_fills)++] = fd;
        int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
        cr_assert(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (r != 0 && poll(&p, 1, 200) == 0) return l; /* this SYN was dropped: queue full */
    }
    cr_assert_fail("the accept queue of a backlog-0 listener never filled");
    return -1;
}

void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++) {
        close(fds[i]);
    }
}
