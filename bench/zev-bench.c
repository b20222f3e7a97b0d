/* bench/zev-bench.c: the socket load generator scripts/bench drives against echo servers.
 *
 * A plain epoll client, not built on zev, so zev's echo server and its peers (libuv, libevent,
 * libev, hand-written epoll) are all measured by the same independent code. This file owns the
 * command line, the clock, the measuring window (warm-up, then duration), the server's CPU
 * time (/proc/PID/task/TID/schedstat, every thread) and memory (/proc/PID/status, VmRSS), the progress line on
 * stderr and the one result line on stdout:
 *   scenario=pingpong-50 impl=zev value=123456.78 unit=roundtrips/s count=... total=... ...
 * pingpong and pipeline also time every message, send to echo complete, in a log-linear
 * histogram (hist.h) and append lat_p50_us .. lat_max_us; with --rate they run open loop, each
 * message timed from its intended send time (see record_done in load_tcp.c).
 * The traffic itself is in load_tcp.c and load_udp.c (see load.h).
 *
 * Bounded: at most MAX_CONNS sockets (MAX_IDLE_CONNS for idle-memory), a measuring window
 * of at most MAX_DURATION_S, and a hard deadline (the window plus DEADLINE_SLACK_S, or
 * IDLE_LIMIT_S to set up idle connections) after which the run fails rather than waits.
 */
#include "load.h"

#include <errno.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1000u
#define MAX_IDLE_CONNS 20000u
#define MAX_DURATION_S 300.0
#define MAX_WARMUP_S 60.0
#define DEADLINE_SLACK_S 10.0
#define IDLE_LIMIT_S 60.0
#define IDLE_SETTLE_MS 100
#define TICK_NS 10000000ull /* 10 ms */
#define MAX_EVENTS 256
#define MAX_RATE 10000000.0

struct mode_info {
    const char *name;
    const char *unit;
    unsigned connections;
    size_t size;
    unsigned depth;
    const char *what;
};

static const struct mode_info modes[LOAD_N_MODES] = {
    [LOAD_PINGPONG] = {"pingpong", "roundtrips/s", 50, 64, 1,
                       "C connections, 1 message in flight each"},
    [LOAD_PIPELINE] = {"pipeline", "msgs/s", 50, 64, 16,
                       "C connections, DEPTH messages in flight each"},
    [LOAD_BULK] = {"bulk", "MB/s", 1, 65536, 16,
                   "SIZE-byte writes, DEPTH in flight, echo read back"},
    [LOAD_CONNRATE] = {"connrate", "conns/s", 16, 64, 1,
                       "C slots: connect, message, echo, close (reset)"},
    [LOAD_IDLE_MEMORY] = {"idle-memory", "KiB/conn", 10000, 64, 1,
                          "C connections, 1 echo each, then idle: server RSS growth / C"},
    [LOAD_UDP_PINGPONG] = {"udp-pingpong", "roundtrips/s", 50, 64, 1,
                           "C sockets, 1 datagram in flight each"},
    [LOAD_UDP_FLOOD] = {"udp-flood", "datagrams/s", 4, 64, 64,
                        "C sockets, DEPTH datagrams in flight each"},
};

char load_pattern[LOAD_PATTERN_SPAN + 256];

uint64_t load_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int load_fail(struct load *l, const char *why) {
    if (!l->fail) l->fail = why;
    return -1;
}

int load_watch(struct load *l, struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) == 0) return 0;
    return load_fail(l, "epoll_ctl ADD failed");
}

static int is_udp(const struct load *l) {
    return l->o.mode == LOAD_UDP_PINGPONG || l->o.mode == LOAD_UDP_FLOOD;
}

/* ---- command line -------------------------------------------------------------------------- */

static void usage(FILE *out) {
    fprintf(out,
            "usage: zev-bench --mode MODE --port N [options]\n"
            "Load an echo server on 127.0.0.1/::1 and print one result line:\n"
            "  scenario=NAME impl=IMPL value=NUMBER unit=UNIT [key=value...]\n"
            "\n"
            "  --mode MODE          what to measure (below)\n"
            "  --host ADDR          server address (default 127.0.0.1)\n"
            "  --port N             server port (required)\n"
            "  --connections C      sockets (default per mode; at most %u, %u for idle)\n"
            "  --depth D            messages in flight per socket (pipeline, bulk, udp-flood)\n"
            "  --size BYTES         message size (bulk: write size)\n"
            "  --duration S         measuring time in seconds (default 2)\n"
            "  --warmup S           traffic before measuring starts (default 0.5)\n"
            "  --impl LABEL         implementation label for the result (default: unknown)\n"
            "  --name LABEL         scenario label for the result (default: MODE)\n"
            "  --server-pid PID     read the server's CPU time and memory (idle-memory needs it)\n"
            "  --close rst|fin      connrate: close with a reset (default) or a FIN\n"
            "  --rate N             pingpong, pipeline: open loop, N messages/s over all\n"
            "                       connections, latency from each intended send time\n"
            "  --quiet              no progress line on stderr\n"
            "\n"
            "Modes (default connections, size, depth):\n",
            MAX_CONNS, MAX_IDLE_CONNS);
    for (int i = 0; i < LOAD_N_MODES; i++) {
        fprintf(out, "  %-13s %5u %6zu %3u  %s: %s\n", modes[i].name, modes[i].connections,
                modes[i].size, modes[i].depth, modes[i].unit, modes[i].what);
    }
}

static int bad_arg(const char *opt, const char *val) {
    fprintf(stderr, "zev-bench: bad value for %s: '%s' (see --help)\n", opt, val);
    return -1;
}

static int parse_uint(const char *opt, const char *val, unsigned long min, unsigned long max,
                      unsigned long *out) {
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(val, &end, 10);
    if (errno || end == val || *end || val[0] == '-' || v < min || v > max) {
        return bad_arg(opt, val);
    }
    *out = v;
    return 0;
}

static int parse_seconds(const char *opt, const char *val, double min, double max, double *out) {
    char *end = NULL;
    double v = strtod(val, &end);
    if (end == val || *end || !(v >= min && v <= max)) return bad_arg(opt, val);
    *out = v;
    return 0;
}

/* 0 to run, 1 to exit 0 (--help), -1 to exit 2. Sizes and counts left 0 get the mode's. */
static int parse_args(int argc, char **argv, struct load_opts *o) {
    int mode = -1;
    unsigned long conns = 0, depth = 0, size = 0, port = 0, pid = 0;
    int have_port = 0;
    o->host = "127.0.0.1";
    o->impl = "unknown";
    o->duration_s = 2.0;
    o->warmup_s = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(opt, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "zev-bench: %s: missing value or unknown option\n", opt);
            return -1;
        }
        const char *val = argv[++i];
        int rc = 0;
        if (!strcmp(opt, "--mode")) {
            for (int m = 0; m < LOAD_N_MODES; m++) {
                if (!strcmp(val, modes[m].name)) mode = m;
            }
            if (mode < 0) rc = bad_arg(opt, val);
        } else if (!strcmp(opt, "--host")) {
            o->host = val;
        } else if (!strcmp(opt, "--port")) {
            rc = parse_uint(opt, val, 1, 65535, &port);
            have_port = 1;
        } else if (!strcmp(opt, "--connections")) {
            rc = parse_uint(opt, val, 1, MAX_IDLE_CONNS, &conns);
        } else if (!strcmp(opt, "--depth")) {
            rc = parse_uint(opt, val, 1, 1024, &depth);
        } else if (!strcmp(opt, "--size")) {
            rc = parse_uint(opt, val, 1, LOAD_PATTERN_SPAN, &size);
        } else if (!strcmp(opt, "--duration")) {
            rc = parse_seconds(opt, val, 0.05, MAX_DURATION_S, &o->duration_s);
        } else if (!strcmp(opt, "--warmup")) {
            rc = parse_seconds(opt, val, 0.0, MAX_WARMUP_S, &o->warmup_s);
        } else if (!strcmp(opt, "--impl")) {
            o->impl = val;
        } else if (!strcmp(opt, "--name")) {
            o->name = val;
        } else if (!strcmp(opt, "--close")) {
            if (!strcmp(val, "fin")) {
                o->close_fin = 1;
            } else if (strcmp(val, "rst") != 0) {
                rc = bad_arg(opt, val);
            }
        } else if (!strcmp(opt, "--rate")) {
            rc = parse_seconds(opt, val, 1.0, MAX_RATE, &o->rate);
        } else if (!strcmp(opt, "--server-pid")) {
            rc = parse_uint(opt, val, 1, 1u << 30, &pid);
        } else {
            fprintf(stderr, "zev-bench: unknown option %s (see --help)\n", opt);
            return -1;
        }
        if (rc < 0) return -1;
    }
    if (mode < 0 || !have_port) {
        fprintf(stderr, "zev-bench: --mode and --port are required (see --help)\n");
        return -1;
    }
    const struct mode_info *mi = &modes[mode];
    o->mode = (enum load_mode)mode;
    o->name = o->name ? o->name : mi->name;
    o->port = (int)port;
    o->connections = conns ? (unsigned)conns : mi->connections;
    o->depth = depth ? (unsigned)depth : mi->depth;
    o->size = size ? (size_t)size : mi->size;
    o->server_pid = (pid_t)pid;
    if (o->mode != LOAD_IDLE_MEMORY && o->connections > MAX_CONNS) {
        fprintf(stderr, "zev-bench: --connections is at most %u for %s\n", MAX_CONNS, mi->name);
        return -1;
    }
    if (o->mode == LOAD_IDLE_MEMORY && !o->server_pid) {
        fprintf(stderr, "zev-bench: idle-memory reads the server's memory: give --server-pid\n");
        return -1;
    }
    if ((o->mode == LOAD_UDP_PINGPONG || o->mode == LOAD_UDP_FLOOD) && o->size > 65507) {
        fprintf(stderr, "zev-bench: a UDP datagram holds at most 65507 bytes\n");
        return -1;
    }
    if (o->mode == LOAD_PINGPONG || o->mode == LOAD_UDP_PINGPONG) o->depth = 1;
    if (o->rate > 0 && o->mode != LOAD_PINGPONG && o->mode != LOAD_PIPELINE) {
        fprintf(stderr, "zev-bench: --rate is for pingpong and pipeline\n");
        return -1;
    }
    return 0;
}

static int resolve(struct load *l) {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;
    memset(&l->addr, 0, sizeof(l->addr));
    if (inet_pton(AF_INET, l->o.host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)l->o.port);
        l->addr_len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, l->o.host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)l->o.port);
        l->addr_len = sizeof(*in6);
        return 0;
    }
    fprintf(stderr, "zev-bench: --host wants a numeric IPv4 or IPv6 address, not '%s'\n",
            l->o.host);
    return -1;
}

/* Enough descriptors for every socket plus a few; the soft limit may rise to the hard one. */
static int ensure_fd_limit(unsigned sockets) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0) return 0;
    rlim_t want = (rlim_t)sockets + 32;
    if (r.rlim_cur >= want) return 0;
    if (r.rlim_max != RLIM_INFINITY && r.rlim_max < want) {
        fprintf(stderr, "zev-bench: %u connections need %lu descriptors; the limit is %lu\n",
                sockets, (unsigned long)want, (unsigned long)r.rlim_max);
        return -1;
    }
    r.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &r);
}

/* ---- the server, seen from /proc ----------------------------------------------------------- */

/* CPU time of the server in ns, summed over its threads (zev's echo server serves on worker
 * threads while its main thread waits for signals), or 0. */
static uint64_t server_cpu_ns(pid_t pid) {
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    if (!tasks) return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(tasks)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread just ended */
        unsigned long long ns = 0;
        if (fscanf(f, "%llu", &ns) == 1) total += ns;
        fclose(f);
    }
    closedir(tasks);
    return total;
}

/* VmRSS of the server in KiB, or -1. */
static long server_rss_kib(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    }
    fclose(f);
    return kib;
}

/* ---- the run ------------------------------------------------------------------------------- */

struct window {
    uint64_t t0, t1; /* measuring started, ended */
    uint64_t ops0, ops1;
    uint64_t cpu0, cpu1; /* server CPU ns at both ends */
};

static double scaled(const struct load *l, double per_s) {
    return l->o.mode == LOAD_BULK ? per_s / 1e6 : per_s; /* bulk counts bytes: MB/s */
}

static void progress(const struct load *l, uint64_t start, uint64_t now, int measuring,
                     const struct window *w, int tty) {
    double t = (double)(now - start) / 1e9;
    double rate = 0;
    if (measuring && now > w->t0) rate = (double)(l->ops - w->ops0) * 1e9 / (double)(now - w->t0);
    const char *unit = modes[l->o.mode].unit;
    if (l->o.mode == LOAD_IDLE_MEMORY) {
        fprintf(stderr, "%szev-bench: %s [%s] %.1f s: %u of %u connections idle%s", tty ? "\r" : "",
                l->o.name, l->o.impl, t, l->settled, l->o.connections, tty ? "   " : "\n");
    } else {
        fprintf(stderr, "%szev-bench: %s [%s] %.1f/%.1f s %s: %.1f %s%s", tty ? "\r" : "",
                l->o.name, l->o.impl, t, l->o.warmup_s + l->o.duration_s,
                measuring ? "measuring" : "warming up", scaled(l, rate), unit, tty ? "   " : "\n");
    }
}

static void dispatch(struct load *l, struct conn *c, uint32_t events) {
    if (is_udp(l)) {
        udp_event(l, c, events);
    } else {
        tcp_event(l, c, events);
    }
}

/* Open loop: connection i's intended sends are interval_ns apart, the connections staggered
 * evenly across one interval so the total rate is smooth. */
static void pace_setup(struct load *l, uint64_t start) {
    l->interval_ns = (uint64_t)((double)l->o.connections * 1e9 / l->o.rate);
    if (l->interval_ns == 0) l->interval_ns = 1;
    for (unsigned i = 0; i < l->n_conns; i++) {
        l->conns[i].base_ns = start + l->interval_ns * i / l->n_conns;
    }
}

/* Wait for events; open loop, no later than the next intended send (to the ns where
 * epoll_pwait2 exists, else rounded up to the ms). */
static int wait_events(struct load *l, struct epoll_event *events, uint64_t next_send) {
    if (l->o.rate <= 0) return epoll_wait(l->ep, events, MAX_EVENTS, 10);
    uint64_t now = load_now_ns();
    uint64_t wait = next_send > now ? next_send - now : 0;
    if (wait > TICK_NS) wait = TICK_NS;
    struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
    int n = epoll_pwait2(l->ep, events, MAX_EVENTS, &ts, NULL);
    if (n < 0 && errno == ENOSYS) n = epoll_wait(l->ep, events, MAX_EVENTS, (int)((wait + 999999) / 1000000));
    return n;
}

/* Drive the traffic until the window closes (or, idle-memory, every connection is idle). */
static int run(struct load *l, struct window *w) {
    int tty = !l->o.quiet && isatty(STDERR_FILENO);
    uint64_t start = load_now_ns();
    uint64_t measure_at = start + (uint64_t)(l->o.warmup_s * 1e9);
    uint64_t end_at = measure_at + (uint64_t)(l->o.duration_s * 1e9);
    uint64_t deadline = end_at + (uint64_t)(DEADLINE_SLACK_S * 1e9);
    if (l->o.mode == LOAD_IDLE_MEMORY) deadline = start + (uint64_t)(IDLE_LIMIT_S * 1e9);
    uint64_t next_tick = start + TICK_NS;
    uint64_t next_progress = start + (tty ? 250000000ull : 1000000000ull);
    int measuring = 0;
    static struct epoll_event events[MAX_EVENTS];
    uint64_t next_send = UINT64_MAX;
    l->now_ns = start;
    if (l->o.rate > 0) pace_setup(l, start);
    if ((is_udp(l) ? udp_start(l) : tcp_start(l)) < 0) return -1;
    for (;;) {
        int n = wait_events(l, events, next_send);
        if (n < 0 && errno != EINTR) return load_fail(l, "epoll_wait failed");
        l->now_ns = load_now_ns();
        for (int i = 0; i < n && !l->fail; i++) {
            dispatch(l, events[i].data.ptr, events[i].events);
        }
        if (l->o.rate > 0 && !l->fail) next_send = tcp_pace(l);
        if (l->fail) return -1;
        uint64_t now = l->now_ns;
        if (now >= next_tick) {
            if (is_udp(l)) {
                udp_tick(l);
            } else {
                tcp_tick(l);
            }
            next_tick = now + TICK_NS;
            if (l->fail) return -1;
        }
        if (l->o.mode == LOAD_IDLE_MEMORY) {
            if (l->done) break;
        } else if (!measuring && now >= measure_at) {
            measuring = 1;
            w->t0 = now;
            w->ops0 = l->ops;
            if (l->lat) hist_reset(l->lat); /* warm-up latencies do not count */
            if (l->o.server_pid) w->cpu0 = server_cpu_ns(l->o.server_pid);
        } else if (measuring && now >= end_at) {
            w->t1 = now;
            w->ops1 = l->ops;
            if (l->o.server_pid) w->cpu1 = server_cpu_ns(l->o.server_pid);
            l->stopping = 1;
            break;
        }
        if (now >= deadline) return load_fail(l, "no progress before the deadline; giving up");
        if (!l->o.quiet && now >= next_progress) {
            progress(l, start, now, measuring, w, tty);
            next_progress = now + (tty ? 250000000ull : 1000000000ull);
        }
    }
    if (tty) fputc('\n', stderr);
    return 0;
}

/* New fields go last, so parsers of the older line keep working. */
static void print_latency(const struct load *l) {
    static const struct {
        const char *key;
        double p;
    } ps[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p999", 99.9}};
    for (unsigned i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        printf(" lat_%s_us=%.1f", ps[i].key, (double)hist_percentile(l->lat, ps[i].p) / 1e3);
    }
    printf(" lat_max_us=%.1f lat_count=%llu", (double)l->lat->max / 1e3,
           (unsigned long long)l->lat->total);
    if (l->o.rate > 0) printf(" rate=%.0f", l->o.rate);
}

static void print_result(const struct load *l, const struct window *w, long rss0, long rss1) {
    const struct mode_info *mi = &modes[l->o.mode];
    if (l->o.mode == LOAD_IDLE_MEMORY) {
        double per_conn = (double)(rss1 - rss0) / (double)l->o.connections;
        printf("scenario=%s impl=%s value=%.3f unit=%s count=%u rss_before_kib=%ld "
               "rss_after_kib=%ld errors=%llu\n",
               l->o.name, l->o.impl, per_conn, mi->unit, l->o.connections, rss0, rss1,
               (unsigned long long)l->errors);
        return;
    }
    double secs = (double)(w->t1 - w->t0) / 1e9;
    uint64_t count = w->ops1 - w->ops0;
    double value = scaled(l, secs > 0 ? (double)count / secs : 0);
    printf("scenario=%s impl=%s value=%.2f unit=%s count=%llu total=%llu seconds=%.3f "
           "errors=%llu",
           l->o.name, l->o.impl, value, mi->unit, (unsigned long long)count,
           (unsigned long long)l->ops, secs, (unsigned long long)l->errors);
    if (is_udp(l)) printf(" lost=%llu", (unsigned long long)l->lost);
    if (l->o.server_pid && w->cpu1 >= w->cpu0 && w->cpu0 > 0) {
        double cpu_ns = (double)(w->cpu1 - w->cpu0);
        printf(" server_cpu=%.1f", secs > 0 ? 100.0 * cpu_ns / (secs * 1e9) : 0);
        /* Bulk counts bytes; its cost is per 64 KiB write, not per byte. */
        double per = l->o.mode == LOAD_BULK ? (double)count / (double)l->o.size : (double)count;
        printf(" server_ns_op=%.0f", per > 0 ? cpu_ns / per : 0);
    }
    if (l->lat) print_latency(l);
    putchar('\n');
}

int main(int argc, char **argv) {
    struct load l = {0};
    int rc = parse_args(argc, argv, &l.o);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (resolve(&l) < 0) return 2;
    for (size_t i = 0; i < sizeof(load_pattern); i++) {
        load_pattern[i] = (char)(i * 7u + 1u);
    }

    l.n_conns = l.o.connections;
    if (ensure_fd_limit(l.n_conns) < 0) return 1;
    l.conns = calloc(l.n_conns, sizeof(*l.conns));
    l.rbuf_len = LOAD_RBUF_LEN;
    l.rbuf = malloc(l.rbuf_len);
    l.ep = epoll_create1(EPOLL_CLOEXEC);
    if (tcp_timed(&l)) { /* everything latency needs, allocated before measuring */
        l.lat = calloc(1, sizeof(*l.lat));
        l.stamp_mem = calloc((size_t)l.n_conns * l.o.depth, sizeof(*l.stamp_mem));
        if (!l.lat || !l.stamp_mem) {
            perror("zev-bench: setup");
            return 1;
        }
    }
    if (!l.conns || !l.rbuf || l.ep < 0) {
        perror("zev-bench: setup");
        return 1;
    }
    for (unsigned i = 0; i < l.n_conns; i++) {
        l.conns[i].fd = -1;
        if (l.stamp_mem) l.conns[i].stamps = l.stamp_mem + (size_t)i * l.o.depth;
    }

    long rss0 = 0, rss1 = 0;
    if (l.o.mode == LOAD_IDLE_MEMORY) {
        rss0 = server_rss_kib(l.o.server_pid);
        if (rss0 < 0) {
            fprintf(stderr, "zev-bench: cannot read /proc/%d/status\n", (int)l.o.server_pid);
            return 1;
        }
    }
    struct window w = {0};
    rc = run(&l, &w);
    if (rc == 0 && l.o.mode == LOAD_IDLE_MEMORY) {
        struct timespec settle = {0, IDLE_SETTLE_MS * 1000000L};
        nanosleep(&settle, NULL);
        rss1 = server_rss_kib(l.o.server_pid);
        if (rss1 < 0) rc = load_fail(&l, "the server is gone (cannot read its VmRSS)");
    }
    if (is_udp(&l)) {
        udp_stop(&l);
    } else {
        tcp_stop(&l);
    }
    if (rc < 0) {
        fprintf(stderr, "zev-bench: %s [%s]: %s (after %llu operations, %llu errors)\n", l.o.name,
                l.o.impl, l.fail ? l.fail : "failed", (unsigned long long)l.ops,
                (unsigned long long)l.errors);
        return 1;
    }
    if (l.o.mode != LOAD_IDLE_MEMORY && w.ops1 == w.ops0) {
        fprintf(stderr, "zev-bench: %s [%s]: nothing completed while measuring (%llu errors)\n",
                l.o.name, l.o.impl, (unsigned long long)l.errors);
        return 1;
    }
    print_result(&l, &w, rss0, rss1);
    close(l.ep);
    free(l.rbuf);
    free(l.conns);
    free(l.lat);
    free(l.stamp_mem);
    return fflush(stdout) == 0 ? 0 : 1;
}
