/* tests/soak/soak.c: zev-soak, the soak test: the command line, the limits, the phases, the
 * report and the verdict. scripts/soak runs it for a minute with 10,000 connections; the
 * release build's `soak` test runs it for a few seconds with 1,000 (docs/testing.md).
 *
 * It starts three servers from the examples directory: zev-echo-server, zev-udp-echo and,
 * for the second phase, zev-proxy in front of the echo server. Then:
 *   phase 1  `--connections` connections straight to zev-echo-server (tcp_load.c) for half
 *            of `--seconds`, with the probe (probe.c) on the same server;
 *   phase 2  the same through zev-proxy for the other half, the probe through the proxy too;
 *   all along, a UDP flood against zev-udp-echo (udp_flood.c), from the same thread.
 * After each phase every connection finishes its current message and ends; the servers'
 * descriptor counts must come back to what they were when they started listening. At the
 * end each server gets SIGTERM and must exit with status 0.
 *
 * The run fails (exit 1) if a byte was lost or reordered, a stream stalled or ended early,
 * the load did not reach `--connections` at once, a UDP echo was corrupt or none came back,
 * a server leaked a descriptor or did not exit cleanly. Its last line is "1 passed, 0 failed"
 * or "0 passed, 1 failed", which scripts/test counts like a Criterion summary.
 */
#include "soak.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define DRAIN_S 15            /* after a phase: time for every connection to end */
#define FD_SETTLE_MS 5000     /* time for a server to close what its peers closed */
#define EXIT_TIMEOUT_MS 10000 /* SIGTERM to exit */
#define PROGRESS_NS 5000000000ull

static const char usage[] =
    "usage: zev-soak --examples DIR [--seconds S] [--connections N] [--max-connecting N]\n"
    "                [--udp-window N] [--udp-rate N] [--seed N]\n"
    "\n"
    "Soak zev's example servers (DIR holds zev-echo-server, zev-proxy, zev-udp-echo):\n"
    "N connections through zev-echo-server for S/2 seconds, then through zev-proxy in front\n"
    "of it for S/2, random message sizes, every echoed byte checked, connections opening and\n"
    "closing all the time, a UDP flood against zev-udp-echo throughout, and a probe doing one\n"
    "small round trip every 10 ms. 127.0.0.1 only.\n"
    "\n"
    "  --seconds S          total load time, 2..86400 (default 60)\n"
    "  --connections N      concurrent connections per phase, 1..100000 (default 10000)\n"
    "  --max-connecting N   handshakes in flight at once (default 256)\n"
    "  --udp-window N       UDP datagrams in flight (default 64)\n"
    "  --udp-rate N         UDP datagrams sent per second at most (default 20000)\n"
    "  --seed N             random seed (default 1)\n"
    "\n"
    "Exit status 0 if nothing was lost, reordered or leaked and every server exited 0.\n";

struct opts {
    const char *examples;
    double seconds;
    unsigned connections;
    unsigned max_connecting;
    unsigned udp_window;
    unsigned udp_rate;
    uint64_t seed;
};

struct phase {
    const char *name;
    struct tcp_stats tcp;
    struct probe_stats probe;
    double seconds;
    unsigned connections;       /* wanted at once */
    unsigned stuck;             /* connections still open after DRAIN_S */
    long long listen_overflows; /* TcpExt ListenOverflows during the phase, machine-wide */
};

struct soak {
    struct opts o;
    int ep;
    struct udp_flood *udp;
    int failed;
};

static void fail(struct soak *s, const char *who, const char *why) {
    printf("  FAIL: %s: %s\n", who, why);
    s->failed = 1;
}

/* ---- setup ---------------------------------------------------------------------------------- */

static unsigned long parse_num(const char *arg, const char *flag, unsigned long lo,
                               unsigned long hi) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg ? arg : "", &end, 10);
    if (!arg || errno || *end || v < lo || v > hi) {
        fprintf(stderr, "zev-soak: %s wants a number in %lu..%lu\n%s", flag, lo, hi, usage);
        exit(2);
    }
    return v;
}

static void parse_args(struct opts *o, int argc, char **argv) {
    *o = (struct opts){.seconds = 60,
                       .connections = 10000,
                       .max_connecting = 256,
                       .udp_window = 64,
                       .udp_rate = 20000,
                       .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(f, "--examples") && v) {
            o->examples = v;
        } else if (!strcmp(f, "--seconds")) {
            o->seconds = (double)parse_num(v, f, 2, 86400);
        } else if (!strcmp(f, "--connections")) {
            o->connections = (unsigned)parse_num(v, f, 1, 100000);
        } else if (!strcmp(f, "--max-connecting")) {
            o->max_connecting = (unsigned)parse_num(v, f, 1, 100000);
        } else if (!strcmp(f, "--udp-window")) {
            o->udp_window = (unsigned)parse_num(v, f, 1, 1024);
        } else if (!strcmp(f, "--udp-rate")) {
            o->udp_rate = (unsigned)parse_num(v, f, 1, 10000000);
        } else if (!strcmp(f, "--seed")) {
            o->seed = parse_num(v, f, 0, ~0ul);
        } else {
            fprintf(stderr, "zev-soak: unknown argument %s\n%s", f, usage);
            exit(2);
        }
        i++;
    }
    if (!o->examples) {
        fprintf(stderr, "zev-soak: --examples DIR is required\n%s", usage);
        exit(2);
    }
}

#define FD_SLACK 64 /* a server's own descriptors, the probe's, the spare a listener keeps */

/* Descriptors the proxy needs for n connections: two per pair, for the n live ones, the
 * handshakes in flight it may accept, and the pairs whose client has just closed and which it
 * has not yet closed itself: with a few hundred connections ending a second, 2% of n. A run
 * without that margin saw zev-proxy's upstream connects fail with EMFILE. */
static rlim_t proxy_fds(unsigned n, unsigned max_connecting) {
    return (rlim_t)(n + 1 + max_connecting + n / 50) * 2 + FD_SLACK;
}

/* Raise our descriptor limit (the servers inherit it) to what the proxy needs. Without
 * CAP_SYS_RESOURCE the hard limit is a ceiling; then the proxy phase carries what fits under
 * it, and says so. Returns the number of connections the proxy phase can carry, 0 if even the
 * direct phase cannot run. */
static unsigned raise_nofile(unsigned connections, unsigned max_connecting) {
    rlim_t need = proxy_fds(connections, max_connecting);
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0) return 0;
    rlim_t was = r.rlim_cur;
    if (r.rlim_cur < need) {
        struct rlimit want = {.rlim_cur = need, .rlim_max = r.rlim_max < need ? need : r.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
            r = want;
        } else {
            r.rlim_cur = r.rlim_max; /* as far as we may go unprivileged */
            setrlimit(RLIMIT_NOFILE, &r);
        }
    }
    printf("ulimit -n: %llu (was %llu; hard limit %llu; the proxy phase needs %llu)\n",
           (unsigned long long)r.rlim_cur, (unsigned long long)was, (unsigned long long)r.rlim_max,
           (unsigned long long)need);
    if (r.rlim_cur >= need) return connections;
    if (r.rlim_cur < (rlim_t)connections + 1 + max_connecting + FD_SLACK) {
        fprintf(stderr, "zev-soak: %u connections need ulimit -n %llu at least\n", connections,
                (unsigned long long)need);
        return 0;
    }
    unsigned fit = connections;
    while (fit > 1 && proxy_fds(fit, max_connecting) > r.rlim_cur)
        fit--;
    printf("ulimit -n: the hard limit cannot be raised (no CAP_SYS_RESOURCE): the proxy phase "
           "carries %u connections (2 descriptors each in the proxy, plus room for churn)\n",
           fit);
    return fit;
}

static long read_sysctl(const char *path, long *second) {
    FILE *f = fopen(path, "r");
    long a = -1, b = -1;
    if (f) {
        if (fscanf(f, "%ld %ld", &a, &b) < 1) a = -1;
        fclose(f);
    }
    if (second) *second = b;
    return a;
}

/* Print the kernel limits that matter; fail only where the soak cannot work at all. */
static int check_kernel(const struct opts *o) {
    long somaxconn = read_sysctl("/proc/sys/net/core/somaxconn", NULL);
    long hi = -1;
    long lo = read_sysctl("/proc/sys/net/ipv4/ip_local_port_range", &hi);
    long tw_reuse = read_sysctl("/proc/sys/net/ipv4/tcp_tw_reuse", NULL);
    long syn_backlog = read_sysctl("/proc/sys/net/ipv4/tcp_max_syn_backlog", NULL);
    long ports = lo > 0 && hi >= lo ? hi - lo + 1 : -1;
    printf("kernel: net.core.somaxconn %ld, tcp_max_syn_backlog %ld (servers listen with a "
           "backlog of 511; at most %u handshakes in flight)\n",
           somaxconn, syn_backlog, o->max_connecting);
    printf("kernel: ip_local_port_range %ld-%ld (%ld ports per destination), tcp_tw_reuse %ld "
           "(2: loopback ports in TIME_WAIT are reused)\n",
           lo, hi, ports, tw_reuse);
    if (ports >= 0 && ports < (long)o->connections + 1024) {
        fprintf(stderr,
                "zev-soak: %ld ephemeral ports for %u connections: widen "
                "net.ipv4.ip_local_port_range\n",
                ports, o->connections);
        return -1;
    }
    if (tw_reuse == 0) {
        printf("kernel: warning: tcp_tw_reuse 0: closed connections hold their port for 60 s; "
               "EADDRNOTAVAIL may follow\n");
    }
    return 0;
}

/* A TcpExt counter of /proc/net/netstat (a line of names, then a line of values), or -1. */
static long long read_tcpext(const char *name) {
    FILE *f = fopen("/proc/net/netstat", "r");
    if (!f) return -1;
    static char names[8192], values[8192];
    long long v = -1;
    while (v < 0 && fgets(names, sizeof(names), f) && fgets(values, sizeof(values), f)) {
        if (strncmp(names, "TcpExt:", 7) != 0) continue;
        char *sn, *sv;
        char *n = strtok_r(names, " \n", &sn);
        char *x = strtok_r(values, " \n", &sv);
        for (; n && x; n = strtok_r(NULL, " \n", &sn), x = strtok_r(NULL, " \n", &sv)) {
            if (!strcmp(n, name)) v = atoll(x);
        }
    }
    fclose(f);
    return v;
}

/* ---- the loop ------------------------------------------------------------------------------- */

/* One epoll_wait and its events; the TCP load and UDP flood also get their tick. */
static void pump(struct soak *s, struct tcp_load *tcp, int timeout_ms) {
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(s->ep, evs, MAX_EVENTS, timeout_ms);
    uint64_t now = soak_now_ns();
    if (tcp) tcp_load_tick(tcp, now);
    for (int i = 0; i < n; i++) {
        uint8_t kind = *(const uint8_t *)evs[i].data.ptr;
        if (kind == SOAK_KIND_TCP && tcp) {
            tcp_load_event(tcp, evs[i].data.ptr, evs[i].events);
        } else if (kind == SOAK_KIND_UDP) {
            udp_flood_event(s->udp, evs[i].events);
        }
    }
    if (s->udp) udp_flood_tick(s->udp, now);
}

static void progress(const char *name, double t, const struct tcp_stats *st,
                     const struct udp_stats *u) {
    fprintf(stderr,
            "  [%s] %5.1f s: %u live (peak %u), %llu exchanges, %.1f MB echoed, "
            "%llu lost; udp %llu echoed\n",
            name, t, st->live, st->peak_live, (unsigned long long)st->exchanges,
            (double)st->bytes_echoed / 1e6, (unsigned long long)st->bytes_lost,
            (unsigned long long)(u ? u->echoed : 0));
}

static int run_phase(struct soak *s, struct phase *ph, int port) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double seconds = s->o.seconds / 2;
    struct tcp_load *tcp = tcp_load_new(s->ep, &to, ph->connections, s->o.max_connecting,
                                        s->o.seed * 7 + (uint64_t)port);
    struct probe *probe = tcp ? probe_start(&to, seconds + DRAIN_S + 5) : NULL;
    if (!probe) {
        tcp_load_free(tcp);
        return -1;
    }
    long long overflows = read_tcpext("ListenOverflows");
    uint64_t t0 = soak_now_ns();
    uint64_t end = t0 + (uint64_t)(seconds * 1e9);
    uint64_t next_progress = t0 + PROGRESS_NS;
    for (uint64_t now = t0; now < end; now = soak_now_ns()) {
        pump(s, tcp, 10);
        if (now >= next_progress) {
            progress(ph->name, (double)(now - t0) / 1e9, tcp_load_stats(tcp),
                     s->udp ? udp_flood_stats(s->udp) : NULL);
            next_progress += PROGRESS_NS;
        }
    }
    ph->seconds = (double)(soak_now_ns() - t0) / 1e9;
    tcp_load_stop(tcp);
    uint64_t drain_end = soak_now_ns() + (uint64_t)DRAIN_S * 1000000000u;
    while (tcp_load_open(tcp) > 0 && soak_now_ns() < drain_end)
        pump(s, tcp, 10);
    ph->stuck = tcp_load_open(tcp);
    ph->listen_overflows = overflows < 0 ? -1 : read_tcpext("ListenOverflows") - overflows;
    tcp_load_abort(tcp);
    probe_stop(probe, &ph->probe);
    ph->tcp = *tcp_load_stats(tcp);
    tcp_load_free(tcp);
    return 0;
}

/* ---- the report ----------------------------------------------------------------------------- */

static void report_phase(struct soak *s, const struct phase *ph) {
    const struct tcp_stats *t = &ph->tcp;
    char errs[512];
    soak_errors_format(&t->errors, errs, sizeof(errs));
    uint64_t closed = t->closed_graceful + t->closed_reset + t->closed_abandoned + t->closed_failed;
    printf("%s: %.1f s, %u connections wanted, peak %u concurrent (all up after %.1f s, then "
           "%.0f on average)\n",
           ph->name, ph->seconds, ph->connections, t->peak_live, t->ramp_s, t->live_avg);
    printf("  connections: %llu opened, %llu closed (graceful %llu, reset %llu, abandoned %llu,"
           " failed %llu), %llu connects failed, %.0f/s\n",
           (unsigned long long)t->opened, (unsigned long long)closed,
           (unsigned long long)t->closed_graceful, (unsigned long long)t->closed_reset,
           (unsigned long long)t->closed_abandoned, (unsigned long long)t->closed_failed,
           (unsigned long long)t->connect_failed, (double)t->opened / ph->seconds);
    printf("  bytes moved: %llu (%llu sent, %llu echoed and checked, %.1f MB/s each way); "
           "%llu exchanges (%.0f/s)\n",
           (unsigned long long)(t->bytes_sent + t->bytes_echoed), (unsigned long long)t->bytes_sent,
           (unsigned long long)t->bytes_echoed, (double)t->bytes_echoed / 1e6 / ph->seconds,
           (unsigned long long)t->exchanges, (double)t->exchanges / ph->seconds);
    printf("  bytes lost: %llu, reordered: %llu, abandoned on purpose: %llu, stuck "
           "connections: %u\n",
           (unsigned long long)(t->bytes_lost + ph->probe.bytes_lost),
           (unsigned long long)(t->bytes_reordered + ph->probe.bytes_reordered),
           (unsigned long long)t->bytes_abandoned, ph->stuck);
    printf("  errors: %s; listen queue overflows: %lld (TcpExt ListenOverflows, machine-wide: "
           "SYNs a full accept queue dropped, each a 1 s retransmit for its client)\n",
           errs, ph->listen_overflows);
    soak_errors_format(&ph->probe.errors, errs, sizeof(errs));
    printf("  probe: %llu round trips, p50 %.2f ms, p99 %.2f ms, max %.2f ms; errors: %s\n",
           (unsigned long long)ph->probe.round_trips, (double)ph->probe.p50_us / 1e3,
           (double)ph->probe.p99_us / 1e3, (double)ph->probe.max_us / 1e3, errs);

    if (t->peak_live < ph->connections) fail(s, ph->name, "never reached the connections wanted");
    if (t->bytes_lost + ph->probe.bytes_lost) fail(s, ph->name, "bytes lost");
    if (t->bytes_reordered + ph->probe.bytes_reordered) fail(s, ph->name, "bytes reordered");
    for (int k = SOAK_ERR_EARLY_EOF; k < SOAK_ERR_N; k++) {
        if (t->errors.n[k] || ph->probe.errors.n[k]) {
            fail(s, ph->name, "a stream stalled, ended early or came back wrong");
            break;
        }
    }
    if (!ph->probe.round_trips) fail(s, ph->name, "the probe made no round trip");
}

static void report_udp(struct soak *s, double seconds) {
    const struct udp_stats *u = udp_flood_stats(s->udp);
    char errs[512];
    soak_errors_format(&u->errors, errs, sizeof(errs));
    printf("udp flood (one socket, %u datagrams in flight, at most %u/s, 16..1400 B): %llu sent, "
           "%llu echoed "
           "(%.0f/s), %llu bytes moved, %llu dropped (UDP may drop: reported only), %llu late, "
           "%llu corrupt; errors: %s\n",
           s->o.udp_window, s->o.udp_rate, (unsigned long long)u->sent,
           (unsigned long long)u->echoed, (double)u->echoed / seconds,
           (unsigned long long)(u->bytes_sent + u->bytes_echoed), (unsigned long long)u->dropped,
           (unsigned long long)u->late, (unsigned long long)u->corrupt, errs);
    if (u->corrupt) fail(s, "udp", "corrupt UDP echoes");
    if (!u->echoed) fail(s, "udp", "no UDP echo at all");
}

static void report_server(struct soak *s, struct server *srv) {
    printf("server %s: peak RSS (VmHWM) %.1f MiB, CPU %.1f s, fds %u at start, %u at end; "
           "SIGTERM: ",
           srv->name, (double)srv->hwm_kib / 1024.0, srv->cpu_s, srv->fds_start, srv->fds_end);
    if (!srv->exited) {
        printf("still running after %d ms (killed)\n", EXIT_TIMEOUT_MS);
    } else if (WIFEXITED(srv->exit_status)) {
        printf("exit %d in %.0f ms\n", WEXITSTATUS(srv->exit_status), srv->exit_ms);
    } else {
        printf("killed by signal %d in %.0f ms\n", WTERMSIG(srv->exit_status), srv->exit_ms);
    }
    unsigned lines = server_print_log(srv, 5);
    if (lines) printf("  %s wrote %u lines to stderr (first ones above)\n", srv->name, lines);
    if (srv->fds_end != srv->fds_start) fail(s, srv->name, "descriptors leaked");
    if (!srv->exited || !WIFEXITED(srv->exit_status) || WEXITSTATUS(srv->exit_status) != 0) {
        fail(s, srv->name, "did not exit 0 on SIGTERM");
    }
}

static double tv_s(struct timeval tv) {
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void report_self(uint64_t t0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("zev-soak itself: CPU %.1f s (user %.1f, system %.1f) in %.1f s\n",
           tv_s(ru.ru_utime) + tv_s(ru.ru_stime), tv_s(ru.ru_utime), tv_s(ru.ru_stime),
           (double)(soak_now_ns() - t0) / 1e9);
}

/* ---- main ----------------------------------------------------------------------------------- */

static int start(struct server *srv, const struct opts *o, const char *name, const char *a1,
                 const char *a2, const char *a3, const char *a4) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", o->examples, name);
    char *argv[] = {path, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    return server_start(srv, name, argv);
}

static int verdict(int failed) {
    printf("%s\n%d passed, %d failed\n", failed ? "soak FAILED" : "soak passed", !failed, !!failed);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) {
    struct soak s = {.ep = -1};
    parse_args(&s.o, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    soak_pattern_init(s.o.seed);
    printf("zev-soak --seconds %.0f --connections %u --max-connecting %u --udp-window %u "
           "--udp-rate %u "
           "--seed %llu (%ld CPUs)\n",
           s.o.seconds, s.o.connections, s.o.max_connecting, s.o.udp_window, s.o.udp_rate,
           (unsigned long long)s.o.seed, sysconf(_SC_NPROCESSORS_ONLN));
    unsigned proxy_connections = raise_nofile(s.o.connections, s.o.max_connecting);
    if (!proxy_connections || check_kernel(&s.o) < 0) return verdict(1) + 1;

    struct server echo, proxy, udp;
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    if (s.ep < 0 || start(&echo, &s.o, "zev-echo-server", "--port", "0", NULL, NULL) < 0) {
        return verdict(1) + 1;
    }
    if (start(&udp, &s.o, "zev-udp-echo", "--port", "0", NULL, NULL) < 0) {
        server_stop(&echo, EXIT_TIMEOUT_MS);
        return verdict(1) + 1;
    }
    struct sockaddr_in uto = {.sin_family = AF_INET, .sin_port = htons((uint16_t)udp.port)};
    uto.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s.udp = udp_flood_new(s.ep, &uto, s.o.udp_window, s.o.udp_rate, s.o.seed);

    struct phase direct = {.name = "zev-echo-server", .connections = s.o.connections};
    struct phase proxied = {.name = "zev-proxy -> zev-echo-server",
                            .connections = proxy_connections};
    int proxy_up = 0;
    unsigned echo_fds_between = 0;
    uint64_t t0 = soak_now_ns();
    if (!s.udp || run_phase(&s, &direct, echo.port) < 0) {
        s.failed = 1;
    } else {
        server_settle_fds(&echo, FD_SETTLE_MS);
        echo_fds_between = echo.fds_end;
        char to[64];
        snprintf(to, sizeof(to), "127.0.0.1:%d", echo.port);
        proxy_up = start(&proxy, &s.o, "zev-proxy", "--listen", "127.0.0.1:0", "--to", to) == 0;
        if (!proxy_up || run_phase(&s, &proxied, proxy.port) < 0) s.failed = 1;
    }
    double udp_seconds = (double)(soak_now_ns() - t0) / 1e9;
    if (s.udp) {
        udp_flood_stop(s.udp);
        uint64_t end = soak_now_ns() + 1000000000u;
        while (udp_flood_in_flight(s.udp) > 0 && soak_now_ns() < end)
            pump(&s, NULL, 10);
    }

    printf("\n");
    if (direct.seconds > 0) report_phase(&s, &direct);
    printf("  zev-echo-server fds after this phase: %u (%u at start)\n", echo_fds_between,
           echo.fds_start);
    if (echo_fds_between != echo.fds_start) fail(&s, echo.name, "descriptors leaked");
    if (proxied.seconds > 0) report_phase(&s, &proxied);
    if (s.udp) report_udp(&s, udp_seconds);
    udp_flood_free(s.udp);

    struct server *servers[] = {proxy_up ? &proxy : NULL, &echo, &udp};
    for (size_t i = 0; i < 3; i++) {
        if (!servers[i]) continue;
        server_settle_fds(servers[i], FD_SETTLE_MS);
        server_read_usage(servers[i]);
        server_stop(servers[i], EXIT_TIMEOUT_MS);
        report_server(&s, servers[i]);
    }
    close(s.ep);
    report_self(t0);
    return verdict(s.failed);
}
