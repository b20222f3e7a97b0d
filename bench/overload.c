/* bench/overload.c: zev-overload, the overload measurements of docs/performance.md
 * ("Under overload"): latency, descriptors, memory. Plain POSIX and epoll-free, built
 * on nothing from zev, so it measures any server the same way.
 *
 *   zev-overload http-flood [options] -- SERVER [ARGS...]
 *     Starts SERVER (which must print "listening on HOST:PORT"; give it --port 0), opens
 *     --clients connections that pipeline `GET / HTTP/1.1\r\n\r\n` as fast as the server takes
 *     them but read only --read-bytes every --read-ms (slow readers), warms up, then measures
 *     --probes fresh connections, one every --probe-ms: connect, one GET, wait for the whole
 *     answer. Reports p50/p99/max of a probe, then sends SIGTERM (the flood still running) and
 *     reports how long the server took to exit.
 *
 *   zev-overload emfile [options] -- SERVER [ARGS...]
 *     Starts SERVER with RLIMIT_NOFILE = --nofile (as `ulimit -n`), opens --clients
 *     connections that each send one byte and wait for its echo. Reports how many were served
 *     and how many closed by the server (shed), the p50/p99/max time until a shed client saw
 *     its connection closed, the server's CPU time over one idle second while the served
 *     clients hold every descriptor, then closes the served clients and reports how long until
 *     a new client was served again.
 *
 *   zev-overload burst [options] -- SERVER [ARGS...]
 *     Starts SERVER, reads its RSS, opens --clients connections that each send --bytes of
 *     --payload (`a`: "a\n\n" repeated, the issue-11 burst; `get`: pipelined
 *     `GET / HTTP/1.1\r\n\r\n`) and never read, holds them --hold-ms after the last byte went
 *     out (or the send deadline passed), then closes them all. Reports the server's RSS before,
 *     its peak (sampled every ms and VmHWM) and the peak growth per connection, and its RSS
 *     --after-ms after the clients left. Run it where the kernel's send buffers are small
 *     (scripts/overload does: a network namespace with net.ipv4.tcp_wmem's max at 64 KiB), or
 *     the kernel holds the answers instead of the server.
 *
 * Bounded: every wait has a deadline, at most --clients connections, 127.0.0.1 only; the
 * server is ended by its PID (SIGTERM, then SIGKILL after 30 s).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 4096
#define START_TIMEOUT_MS 5000
#define KILL_AFTER_MS 30000

static const char request[] = "GET / HTTP/1.1\r\n\r\n";

static struct {
    int clients;
    int read_bytes;
    int read_ms;
    int warmup_ms;
    int probes;
    int probe_ms;
    int probe_timeout_ms;
    int nofile;
    int bytes;
    int hold_ms;
    int after_ms;
    const char *payload;
    char **server_argv;
} opt = {500, 1024, 10, 2000, 100, 20, 10000, 64, 65535, 2000, 5000, "a", NULL};

static pid_t server_pid = -1;
static int server_port;

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_us(uint64_t us) {
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
    nanosleep(&ts, NULL);
}

static void die(const char *what) {
    fprintf(stderr, "zev-overload: %s: %s\n", what, strerror(errno));
    if (server_pid > 0) kill(server_pid, SIGKILL);
    exit(2);
}

/* ---- the server process -------------------------------------------------------------------- */

/* Start the server with its stdout on a pipe and wait for "listening on HOST:PORT". */
static void start_server(int nofile) {
    int p[2];
    if (pipe(p) < 0) die("pipe");
    server_pid = fork();
    if (server_pid < 0) die("fork");
    if (server_pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        if (nofile > 0) {
            struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0) _exit(126);
        }
        execv(opt.server_argv[0], opt.server_argv);
        _exit(127);
    }
    close(p[1]);
    char line[256];
    size_t n = 0;
    uint64_t deadline = now_us() + START_TIMEOUT_MS * 1000u;
    while (n < sizeof(line) - 1 && now_us() < deadline) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t r = read(p[0], line + n, 1);
        if (r <= 0) break;
        if (line[n] == '\n') break;
        n++;
    }
    line[n] = '\0';
    const char *colon = strrchr(line, ':');
    if (strncmp(line, "listening on ", 13) != 0 || !colon) {
        fprintf(stderr, "zev-overload: the server did not say where it listens (got \"%s\")\n",
                line);
        kill(server_pid, SIGKILL);
        exit(2);
    }
    server_port = atoi(colon + 1);
    /* Keep reading its stdout in the background would need a thread; it prints nothing more. */
    close(p[0]);
}

static int connect_nb(void);

/* Whether the server still listens: a connect is refused once its listener is closed. */
static int still_listening(void) {
    int fd = connect_nb();
    struct pollfd pf = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    if (poll(&pf, 1, 1) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    close(fd);
    return err != ECONNREFUSED;
}

/* The server's main thread from /proc/PID/schedstat: nanoseconds on a CPU and waiting in a
 * run queue for one (CPUs shared with other work). 0 if the kernel keeps no schedstats. */
static int schedstat(pid_t pid, uint64_t *run_ns, uint64_t *wait_ns) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long run = 0, wait = 0;
    int ok = fscanf(f, "%llu %llu", &run, &wait) == 2;
    fclose(f);
    if (ok) {
        *run_ns = run;
        *wait_ns = wait;
    }
    return ok;
}

static uint64_t exit_run_ns, exit_wait_ns; /* of the last stop_server, 0 if unknown */

/* SIGTERM the server and return how long it took to exit, in microseconds; *closed_us: until
 * its listener was closed (its loop ran the shutdown callback). While waiting, tick() keeps
 * the load going (may be NULL). Also sets exit_run_ns and exit_wait_ns: the main thread's time
 * on a CPU and waiting for one between the signal and its exit, read once it is a zombie. */
static uint64_t stop_server(void (*tick)(void), int *status, uint64_t *closed_us) {
    uint64_t run0 = 0, wait0 = 0, run1 = 0, wait1 = 0;
    int have0 = schedstat(server_pid, &run0, &wait0);
    uint64_t t0 = now_us();
    uint64_t exited_us = 0;
    *closed_us = 0;
    kill(server_pid, SIGTERM);
    for (;;) {
        if (!*closed_us && !still_listening()) *closed_us = now_us() - t0;
        siginfo_t si = {0};
        if (!exited_us && waitid(P_PID, (id_t)server_pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid == server_pid) {
            exited_us = now_us() - t0;
            have0 = have0 && schedstat(server_pid, &run1, &wait1);
        }
        if (exited_us) {
            waitpid(server_pid, status, 0);
            break;
        }
        if (now_us() - t0 > KILL_AFTER_MS * 1000u) {
            kill(server_pid, SIGKILL);
            waitpid(server_pid, status, 0);
            exited_us = now_us() - t0;
            have0 = 0;
            break;
        }
        if (tick) tick();
        sleep_us(200);
    }
    exit_run_ns = have0 ? run1 - run0 : 0;
    exit_wait_ns = have0 ? wait1 - wait0 : 0;
    server_pid = -1;
    return exited_us;
}

/* " (main thread: X ms on a CPU, Y ms waiting for one)" after a stop_server, or "". */
static const char *exit_cpu_note(void) {
    static char note[96];
    note[0] = '\0';
    if (exit_run_ns || exit_wait_ns) {
        snprintf(note, sizeof(note), "; main thread %.1f ms on a CPU, %.1f ms waiting for one",
                 exit_run_ns / 1e6, exit_wait_ns / 1e6);
    }
    return note;
}

static uint64_t cpu_ticks(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* Fields after the command: state(3) ... utime(14) stime(15). */
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
        return ut + st;
    return 0;
}

/* ---- sockets ------------------------------------------------------------------------------- */

static int connect_nb(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) die("connect");
    return fd;
}

/* Wait for fd to be ready for events until deadline_us; 1 ready, 0 timed out. */
static int wait_fd(int fd, short events, uint64_t deadline_us) {
    for (;;) {
        uint64_t now = now_us();
        if (now >= deadline_us) return 0;
        struct pollfd pf = {fd, events, 0};
        int r = poll(&pf, 1, (int)((deadline_us - now + 999) / 1000));
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) die("poll");
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n]. */
static uint64_t pct(const uint64_t *v, int n, int p) {
    if (n == 0) return 0;
    int k = (p * n + 99) / 100;
    return v[k > 0 ? k - 1 : 0];
}

static void report_ms(const char *what, uint64_t *v, int n) {
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    printf("%s: n=%d p50=%.1f ms p99=%.1f ms max=%.1f ms\n", what, n, pct(v, n, 50) / 1000.0,
           pct(v, n, 99) / 1000.0, n ? v[n - 1] / 1000.0 : 0.0);
}

/* ---- http-flood ---------------------------------------------------------------------------- */

struct flood_conn {
    int fd;
    size_t req_off; /* bytes of the current request already written */
    uint64_t next_read_us;
};

static struct flood_conn flood[MAX_CLIENTS];
static char sink[1 << 16];
#define REQ_LEN (sizeof(request) - 1)
static char requests[REQ_LEN * 1024];
static uint64_t flood_requests, flood_bytes_read;

/* One pass over the flood: write requests until the kernel is full, and read a little from
 * each connection whose turn has come. */
static void flood_tick(void) {
    uint64_t now = now_us();
    for (int i = 0; i < opt.clients; i++) {
        struct flood_conn *c = &flood[i];
        if (c->fd < 0) continue;
        /* Many requests per send, from a buffer of them back to back: the offset into it
         * stays the offset into the current request. */
        for (int k = 0; k < 4; k++) {
            ssize_t w = send(c->fd, requests + c->req_off, sizeof(requests) - c->req_off,
                             MSG_NOSIGNAL);
            if (w <= 0) break;
            size_t end = c->req_off + (size_t)w;
            flood_requests += end / REQ_LEN;
            c->req_off = end % REQ_LEN;
        }
        if (now < c->next_read_us) continue;
        c->next_read_us = now + (uint64_t)opt.read_ms * 1000u;
        ssize_t r = recv(c->fd, sink, (size_t)opt.read_bytes, 0);
        if (r > 0) flood_bytes_read += (uint64_t)r;
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            close(c->fd);
            c->fd = -1;
        }
    }
}

static atomic_int probes_done;
static uint64_t probe_us[MAX_CLIENTS];
static int probe_ok, probe_failed;

/* One fresh connection: connect, one GET, the whole answer. Returns microseconds, 0 on
 * failure or timeout. */
static uint64_t probe_once(void) {
    uint64_t t0 = now_us();
    uint64_t deadline = t0 + (uint64_t)opt.probe_timeout_ms * 1000u;
    int fd = connect_nb();
    uint64_t result = 0;
    if (!wait_fd(fd, POLLOUT, deadline)) goto out;
    if (send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(request) - 1)
        goto out;
    char buf[512];
    size_t n = 0;
    while (n < sizeof(buf) - 1 && wait_fd(fd, POLLIN, deadline)) {
        ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "Hello, World!")) {
            result = now_us() - t0;
            break;
        }
    }
out:
    close(fd);
    return result;
}

static void *probe_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < opt.probes; i++) {
        uint64_t t = probe_once();
        if (t) {
            probe_us[probe_ok++] = t;
        } else {
            probe_failed++;
        }
        sleep_us((uint64_t)opt.probe_ms * 1000u);
    }
    atomic_store(&probes_done, 1);
    return NULL;
}

static int run_http_flood(void) {
    start_server(0);
    for (size_t k = 0; k < sizeof(requests); k += REQ_LEN) memcpy(requests + k, request, REQ_LEN);
    for (int i = 0; i < opt.clients; i++) {
        flood[i].fd = connect_nb();
        flood[i].next_read_us = now_us() + (uint64_t)(i % opt.read_ms) * 1000u;
    }
    uint64_t warm_end = now_us() + (uint64_t)opt.warmup_ms * 1000u;
    while (now_us() < warm_end) {
        flood_tick();
        sleep_us(1000);
    }
    uint64_t req0 = flood_requests;
    uint64_t t0 = now_us();
    pthread_t th;
    if (pthread_create(&th, NULL, probe_thread, NULL) != 0) die("pthread_create");
    while (!atomic_load(&probes_done)) {
        flood_tick();
        sleep_us(1000);
    }
    pthread_join(th, NULL);
    double secs = (now_us() - t0) / 1e6;
    int alive = 0;
    for (int i = 0; i < opt.clients; i++) alive += flood[i].fd >= 0;
    int status = 0;
    uint64_t closed_us;
    uint64_t exit_us = stop_server(flood_tick, &status, &closed_us);
    printf("flood: %d clients (%d still open), %.0f requests/s written, %.1f MB/s of answers "
           "read, over %.1f s\n",
           opt.clients, alive, (flood_requests - req0) / secs, flood_bytes_read / secs / 1e6,
           secs);
    report_ms("fresh GET under the flood", probe_us, probe_ok);
    printf("fresh GET failures (no answer within %d ms): %d\n", opt.probe_timeout_ms,
           probe_failed);
    printf("SIGTERM to listener closed: %.1f ms\n", closed_us / 1000.0);
    printf("SIGTERM to exit: %.1f ms (%s %d%s)\n", exit_us / 1000.0,
           WIFEXITED(status) ? "exit status" : "killed by signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), exit_cpu_note());
    for (int i = 0; i < opt.clients; i++) {
        if (flood[i].fd >= 0) close(flood[i].fd);
    }
    return 0;
}

/* ---- emfile -------------------------------------------------------------------------------- */

enum { C_WAITING, C_SERVED, C_SHED, C_CLOSED };

struct echo_conn {
    int fd;
    int state;
    int sent;
    uint64_t start_us, end_us;
};

static struct echo_conn echo[MAX_CLIENTS];

/* Advance one client: send its byte once connected, then see the echo (served) or the
 * connection closed (shed). */
static void echo_step(struct echo_conn *c) {
    if (c->state != C_WAITING) return;
    if (!c->sent) {
        ssize_t w = send(c->fd, "x", 1, MSG_NOSIGNAL);
        if (w == 1) c->sent = 1;
        if (w < 0 && errno != EAGAIN && errno != ENOTCONN) goto shed;
    }
    char b;
    ssize_t r = recv(c->fd, &b, 1, 0);
    if (r == 1) {
        c->state = C_SERVED;
        c->end_us = now_us();
        return;
    }
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != ENOTCONN)) goto shed;
    return;
shed:
    c->state = C_SHED;
    c->end_us = now_us();
}

/* One client at a time until one is served; returns microseconds from t0 to that echo. */
static uint64_t first_served_after(uint64_t t0, uint64_t limit_us, int *attempts) {
    while (now_us() - t0 < limit_us) {
        struct echo_conn c = {.fd = connect_nb(), .state = C_WAITING, .start_us = now_us()};
        (*attempts)++;
        uint64_t deadline = now_us() + 1000000u;
        while (c.state == C_WAITING && now_us() < deadline) {
            wait_fd(c.fd, POLLIN | POLLOUT, now_us() + 1000u);
            echo_step(&c);
        }
        close(c.fd);
        if (c.state == C_SERVED) return c.end_us - t0;
    }
    return 0;
}

static int run_emfile(void) {
    start_server(opt.nofile);
    uint64_t t0 = now_us();
    for (int i = 0; i < opt.clients; i++) {
        echo[i] = (struct echo_conn){.fd = connect_nb(), .state = C_WAITING, .start_us = now_us()};
    }
    uint64_t deadline = t0 + 3000000u;
    int waiting = opt.clients;
    while (waiting > 0 && now_us() < deadline) {
        waiting = 0;
        for (int i = 0; i < opt.clients; i++) {
            echo_step(&echo[i]);
            waiting += echo[i].state == C_WAITING;
        }
        sleep_us(200);
    }
    static uint64_t shed_us[MAX_CLIENTS];
    int served = 0, shed = 0;
    for (int i = 0; i < opt.clients; i++) {
        if (echo[i].state == C_SERVED) served++;
        if (echo[i].state == C_SHED) shed_us[shed++] = echo[i].end_us - echo[i].start_us;
    }
    printf("emfile: RLIMIT_NOFILE %d, %d clients: %d served, %d closed by the server, "
           "%d without an answer after 3 s\n",
           opt.nofile, opt.clients, served, shed, waiting);
    report_ms("time until a client beyond the limit saw its connection closed", shed_us, shed);

    /* Every descriptor is held by a served client: the server should now be idle. */
    uint64_t c0 = cpu_ticks(server_pid);
    sleep_us(1000000u);
    uint64_t c1 = cpu_ticks(server_pid);
    printf("server CPU over 1 s while out of descriptors: %.0f ms\n",
           (double)(c1 - c0) * 1000.0 / (double)sysconf(_SC_CLK_TCK));

    /* Free the descriptors: close every served client, then connect until one is served. */
    for (int i = 0; i < opt.clients; i++) {
        if (echo[i].state == C_WAITING || echo[i].state == C_SERVED) close(echo[i].fd);
        if (echo[i].state == C_SHED) close(echo[i].fd);
        echo[i].fd = -1;
    }
    int attempts = 0;
    uint64_t t_free = now_us();
    uint64_t resume = first_served_after(t_free, 3000000u, &attempts);
    if (resume) {
        printf("descriptors freed to a new client served: %.1f ms (%d attempt%s)\n",
               resume / 1000.0, attempts, attempts == 1 ? "" : "s");
    } else {
        printf("descriptors freed to a new client served: none within 3 s (%d attempts)\n",
               attempts);
    }
    int status = 0;
    uint64_t closed_us;
    uint64_t exit_us = stop_server(NULL, &status, &closed_us);
    printf("SIGTERM to exit: %.1f ms%s\n", exit_us / 1000.0, exit_cpu_note());
    return 0;
}

/* ---- burst --------------------------------------------------------------------------------- */

#define BURST_SEND_MS 10000

/* The server's resident memory in KiB, from /proc/PID/status (field "VmRSS:" or "VmHWM:"). */
static long proc_kib(pid_t pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    size_t flen = strlen(field);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, flen) == 0) {
            kib = atol(line + flen);
            break;
        }
    }
    fclose(f);
    return kib;
}

struct burst_conn {
    int fd;
    size_t off;
};

static struct burst_conn burst[MAX_CLIENTS];
static char burst_buf[1 << 20];

static void fill_payload(void) {
    const char *unit = strcmp(opt.payload, "get") == 0 ? request : "a\n\n";
    size_t ulen = strlen(unit);
    for (size_t k = 0; k < (size_t)opt.bytes; k++) burst_buf[k] = unit[k % ulen];
}

/* One pass: send what each connection's kernel buffer takes. Returns connections not done. */
static int burst_tick(void) {
    int left = 0;
    for (int i = 0; i < opt.clients; i++) {
        struct burst_conn *c = &burst[i];
        if (c->fd < 0 || c->off == (size_t)opt.bytes) continue;
        ssize_t w = send(c->fd, burst_buf + c->off, (size_t)opt.bytes - c->off, MSG_NOSIGNAL);
        if (w > 0) c->off += (size_t)w;
        if (w < 0 && errno != EAGAIN && errno != ENOTCONN && errno != EINTR) {
            close(c->fd); /* the server closed it (a 400, a reset): it is done */
            c->fd = -1;
            continue;
        }
        left += c->off < (size_t)opt.bytes;
    }
    return left;
}

static int run_burst(void) {
    start_server(0);
    fill_payload();
    sleep_us(300000u);
    long before = proc_kib(server_pid, "VmRSS:");
    long peak = before;
    for (int i = 0; i < opt.clients; i++) burst[i] = (struct burst_conn){connect_nb(), 0};
    uint64_t t0 = now_us();
    int left = opt.clients;
    uint64_t hold_end = 0;
    while (now_us() - t0 < (BURST_SEND_MS + (uint64_t)opt.hold_ms) * 1000u) {
        if (left > 0) left = burst_tick();
        long rss = proc_kib(server_pid, "VmRSS:");
        if (rss > peak) peak = rss;
        if (!hold_end && (left == 0 || now_us() - t0 >= BURST_SEND_MS * 1000u))
            hold_end = now_us() + (uint64_t)opt.hold_ms * 1000u;
        if (hold_end && now_us() >= hold_end) break;
        sleep_us(1000);
    }
    double send_s = (now_us() - t0) / 1e6 - opt.hold_ms / 1e3;
    long hwm = proc_kib(server_pid, "VmHWM:");
    if (hwm > peak) peak = hwm;
    uint64_t sent = 0;
    int whole = 0, closed = 0;
    for (int i = 0; i < opt.clients; i++) {
        sent += burst[i].off;
        whole += burst[i].off == (size_t)opt.bytes;
        closed += burst[i].fd < 0;
        if (burst[i].fd >= 0) close(burst[i].fd);
        burst[i].fd = -1;
    }
    long during = proc_kib(server_pid, "VmRSS:");
    sleep_us((uint64_t)opt.after_ms * 1000u);
    long after = proc_kib(server_pid, "VmRSS:");
    printf("burst: %d clients x %d bytes of '%s', never reading: %d sent it all in %.1f s "
           "(%.1f MB), %d closed by the server\n",
           opt.clients, opt.bytes, opt.payload, whole, send_s, sent / 1e6, closed);
    printf("server RSS before: %ld KiB\n", before);
    printf("server RSS peak: %ld KiB (VmHWM %ld KiB), %.1f KiB per connection above before\n",
           peak, hwm, (double)(peak - before) / opt.clients);
    printf("server RSS when the clients left: %ld KiB\n", during);
    printf("server RSS %d ms after the clients left: %ld KiB (%.2fx before)\n", opt.after_ms,
           after, before > 0 ? (double)after / (double)before : 0.0);
    int status = 0;
    uint64_t closed_us;
    uint64_t exit_us = stop_server(NULL, &status, &closed_us);
    printf("SIGTERM to exit: %.1f ms%s\n", exit_us / 1000.0, exit_cpu_note());
    return 0;
}

/* ---- command line ---------------------------------------------------------------------------- */

static const char usage[] =
    "usage: zev-overload http-flood|emfile|burst [options] -- SERVER [ARGS...]\n"
    "  --clients N        connections (http-flood 500, emfile 200, burst 300; at most 4096)\n"
    "  --read-bytes N     http-flood: bytes each client reads per turn (1024)\n"
    "  --read-ms N        http-flood: ms between a client's reads (10)\n"
    "  --warmup-ms N      http-flood: flood time before probing (2000)\n"
    "  --probes N         http-flood: fresh connections measured (100)\n"
    "  --probe-ms N       http-flood: pause between probes (20)\n"
    "  --probe-timeout-ms N  http-flood: a probe without an answer by then failed (10000)\n"
    "  --nofile N         emfile: the server's RLIMIT_NOFILE (64)\n"
    "  --payload a|get    burst: 'a\\n\\n' repeated (a) or pipelined GETs (get)\n"
    "  --bytes N          burst: bytes each client sends (65535: 'a\\n\\n' x 21,845)\n"
    "  --hold-ms N        burst: clients stay, not reading, this long after sending (2000)\n"
    "  --after-ms N       burst: RSS is read this long after the clients left (5000)\n";

static int int_arg(int argc, char **argv, int *i, int lo, int hi) {
    if (*i + 1 >= argc) {
        fputs(usage, stderr);
        exit(2);
    }
    int v = atoi(argv[++*i]);
    if (v < lo || v > hi) {
        fprintf(stderr, "zev-overload: %s must be in %d..%d\n", argv[*i - 1], lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int is_flood = strcmp(argv[1], "http-flood") == 0;
    int is_burst = strcmp(argv[1], "burst") == 0;
    if (!is_flood && !is_burst && strcmp(argv[1], "emfile") != 0) {
        fputs(usage, stderr);
        return 2;
    }
    if (!is_flood) opt.clients = is_burst ? 300 : 200;
    int i = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) break;
        if (strcmp(a, "--clients") == 0) {
            opt.clients = int_arg(argc, argv, &i, 1, MAX_CLIENTS);
        } else if (strcmp(a, "--read-bytes") == 0) {
            opt.read_bytes = int_arg(argc, argv, &i, 1, (int)sizeof(sink));
        } else if (strcmp(a, "--read-ms") == 0) {
            opt.read_ms = int_arg(argc, argv, &i, 1, 10000);
        } else if (strcmp(a, "--warmup-ms") == 0) {
            opt.warmup_ms = int_arg(argc, argv, &i, 0, 60000);
        } else if (strcmp(a, "--probes") == 0) {
            opt.probes = int_arg(argc, argv, &i, 1, MAX_CLIENTS);
        } else if (strcmp(a, "--probe-ms") == 0) {
            opt.probe_ms = int_arg(argc, argv, &i, 0, 10000);
        } else if (strcmp(a, "--probe-timeout-ms") == 0) {
            opt.probe_timeout_ms = int_arg(argc, argv, &i, 100, 60000);
        } else if (strcmp(a, "--nofile") == 0) {
            opt.nofile = int_arg(argc, argv, &i, 16, 1 << 20);
        } else if (strcmp(a, "--bytes") == 0) {
            opt.bytes = int_arg(argc, argv, &i, 1, (int)sizeof(burst_buf));
        } else if (strcmp(a, "--hold-ms") == 0) {
            opt.hold_ms = int_arg(argc, argv, &i, 0, 60000);
        } else if (strcmp(a, "--after-ms") == 0) {
            opt.after_ms = int_arg(argc, argv, &i, 0, 60000);
        } else if (strcmp(a, "--payload") == 0 && i + 1 < argc &&
                   (strcmp(argv[i + 1], "a") == 0 || strcmp(argv[i + 1], "get") == 0)) {
            opt.payload = argv[++i];
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (i + 1 >= argc) {
        fputs(usage, stderr);
        return 2;
    }
    opt.server_argv = argv + i + 1;
    signal(SIGPIPE, SIG_IGN);
    if (is_burst) return run_burst();
    return is_flood ? run_http_flood() : run_emfile();
}
