/* tests/soak/soak.h: what the parts of zev-soak, the soak client, share.
 *
 * zev-soak starts the example servers itself (examples/zev-echo-server, zev-proxy in front of
 * it, zev-udp-echo), loads them for a while and checks that nothing was lost, reordered or
 * leaked. It is a plain epoll client on one thread, not built on zev, so a defect in zev cannot
 * hide a defect in the servers. The parts:
 *   soak.c       command line, limits, the phases, the report and the exit status
 *   servers.c    starting a server, reading /proc/PID (fds, VmHWM), SIGTERM and its exit status
 *   tcp_load.c   thousands of connections, each a random number of echoed messages
 *   udp_flood.c  one UDP socket keeping a window of datagrams in flight
 *   probe.c      one connection on its own thread, a small round trip every 10 ms
 *   check.c      the byte pattern streams carry, the CRC32C checksum, the error counts
 * Everything is bounded: a fixed number of sockets, a fixed time per phase, and hard deadlines
 * (drain, server start, server exit) after which the run fails rather than waits.
 */
#ifndef ZEV_SOAK_H
#define ZEV_SOAK_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- check.c: pattern, checksum, random numbers, error counts -------------------------------- */

/* Byte k of a stream with key `off` is soak_pattern[(off + k) % SOAK_PATTERN_PERIOD]; the
 * buffer repeats the period for SOAK_CHUNK more bytes, so soak_pattern + (off + k) % PERIOD
 * holds the next SOAK_CHUNK bytes of the stream. The period is prime, so streams with
 * different keys never line up, and a byte delivered to the wrong stream or the wrong offset
 * fails the comparison. */
#define SOAK_PATTERN_PERIOD 65521u
#define SOAK_CHUNK 65536u
extern unsigned char soak_pattern[SOAK_PATTERN_PERIOD + SOAK_CHUNK];
/* Fill the pattern (and the CRC table): call once, before any other thread starts. */
void soak_pattern_init(uint64_t seed);

/* CRC32C, streaming: crc32c(crc32c(0, a), b) == crc32c(0, a || b). SSE4.2 when present. */
uint32_t soak_crc32c(uint32_t crc, const void *p, size_t n);

/* xorshift64*: the soak's only source of randomness, seeded from the command line. */
uint64_t soak_rand(uint64_t *state);
/* Uniform in [lo, hi]. */
uint64_t soak_rand_range(uint64_t *state, uint64_t lo, uint64_t hi);

uint64_t soak_now_ns(void);

/* Failures by kind: an errno, or one of the soak's own (past the errno range). */
enum {
    SOAK_ERR_EARLY_EOF = 512, /* the server ended a stream before echoing all of it */
    SOAK_ERR_STALLED,         /* no progress for SOAK_STALL_S */
    SOAK_ERR_MISMATCH,        /* echoed bytes differ from those sent at that offset */
    SOAK_ERR_EXTRA,           /* more bytes echoed than sent */
    SOAK_ERR_CHECKSUM,        /* the running CRC32C of a stream differs at its end */
    SOAK_ERR_PROBE_TIMEOUT,   /* a probe round trip took over SOAK_PROBE_TIMEOUT_MS */
    SOAK_ERR_N
};
struct soak_errors {
    uint64_t n[SOAK_ERR_N];
};
void soak_error_add(struct soak_errors *e, int kind);
uint64_t soak_errors_total(const struct soak_errors *e);
/* "ECONNRESET=3 stalled=1" or "none". */
void soak_errors_format(const struct soak_errors *e, char *out, size_t len);

/* A connection that makes no progress for this long is declared stalled (and its bytes lost). */
#define SOAK_STALL_S 20

/* epoll's data.ptr points at one of these first members, to tell the owners apart. */
enum soak_kind { SOAK_KIND_TCP = 1, SOAK_KIND_UDP };

/* ---- tcp_load.c --------------------------------------------------------------------------------
 */

struct tcp_stats {
    uint64_t opened;           /* connects started */
    uint64_t connect_failed;   /* connects that failed (nothing sent, nothing lost) */
    uint64_t closed_graceful;  /* half-closed after the last message, every byte back, EOF */
    uint64_t closed_reset;     /* reset after the last echo arrived whole */
    uint64_t closed_abandoned; /* reset with the last message's echo not awaited */
    uint64_t closed_failed;    /* ended by an error */
    uint64_t exchanges;        /* messages echoed whole */
    uint64_t bytes_sent;
    uint64_t bytes_echoed;    /* read back and checked */
    uint64_t bytes_lost;      /* sent, never echoed, on a connection not abandoned */
    uint64_t bytes_reordered; /* read back but not the bytes sent at that offset */
    uint64_t bytes_abandoned; /* not awaited on purpose (abandoned connections) */
    unsigned live;            /* connections established right now */
    unsigned peak_live;
    double ramp_s;   /* until every connection was established at once; 0: never */
    double live_avg; /* established, on average after the ramp */
    unsigned connecting;
    struct soak_errors errors;
};

struct tcp_load;
/* `connections` slots against `to`; at most `max_connecting` handshakes in flight. */
struct tcp_load *tcp_load_new(int ep, const struct sockaddr_in *to, unsigned connections,
                              unsigned max_connecting, uint64_t seed);
void tcp_load_event(struct tcp_load *l, void *ptr, uint32_t events);
/* Open connections into free slots; every second, look for stalled ones. */
void tcp_load_tick(struct tcp_load *l, uint64_t now_ns);
/* Open nothing more; every connection's current message becomes its last. */
void tcp_load_stop(struct tcp_load *l);
/* Connections still open or connecting. */
unsigned tcp_load_open(const struct tcp_load *l);
/* Close what is left, counting its outstanding bytes as lost (SOAK_ERR_STALLED). */
void tcp_load_abort(struct tcp_load *l);
const struct tcp_stats *tcp_load_stats(const struct tcp_load *l);
void tcp_load_free(struct tcp_load *l);

/* ---- udp_flood.c -------------------------------------------------------------------------------
 */

struct udp_stats {
    uint64_t sent, echoed, bytes_sent, bytes_echoed;
    uint64_t dropped; /* no echo within SOAK_UDP_DROP_MS: UDP may drop, reported only */
    uint64_t late;    /* echoed after being counted dropped */
    uint64_t corrupt; /* an echo that is not a datagram we sent, byte for byte */
    struct soak_errors errors;
};
struct udp_flood;
/* `window` datagrams in flight at most, `rate` sent per second at most. */
struct udp_flood *udp_flood_new(int ep, const struct sockaddr_in *to, unsigned window,
                                unsigned rate, uint64_t seed);
void udp_flood_event(struct udp_flood *u, uint32_t events);
void udp_flood_tick(struct udp_flood *u, uint64_t now_ns);
/* Send nothing more; udp_flood_in_flight() then falls to 0 as echoes arrive or time out. */
void udp_flood_stop(struct udp_flood *u);
unsigned udp_flood_in_flight(const struct udp_flood *u);
const struct udp_stats *udp_flood_stats(const struct udp_flood *u);
void udp_flood_free(struct udp_flood *u);

/* ---- probe.c -----------------------------------------------------------------------------------
 */

#define SOAK_PROBE_INTERVAL_MS 10
#define SOAK_PROBE_TIMEOUT_MS 2000
struct probe_stats {
    uint64_t round_trips;
    uint64_t p50_us, p99_us, max_us;
    uint64_t bytes_lost, bytes_reordered;
    struct soak_errors errors;
};
struct probe;
/* Connect to `to` and start the thread; NULL on failure (message printed). */
struct probe *probe_start(const struct sockaddr_in *to, double max_seconds);
/* Stop the thread, close the connection, fill `out`. */
void probe_stop(struct probe *p, struct probe_stats *out);

/* ---- servers.c ---------------------------------------------------------------------------------
 */

struct server {
    const char *name;
    pid_t pid;
    int port;
    int out_fd; /* the read end of its stdout */
    int log_fd; /* a memfd holding its stderr */
    unsigned fds_start;
    unsigned fds_end;
    uint64_t hwm_kib;
    double cpu_s;    /* user + system CPU time so far */
    int exit_status; /* as from waitpid */
    int exited;
    double exit_ms; /* SIGTERM to exit */
};
/* Start argv (argv[0] is the path), wait for "listening on HOST:PORT". 0 or -1 (printed). */
int server_start(struct server *s, const char *name, char *const argv[]);
/* Entries in /proc/PID/fd, or -1. */
int server_fd_count(const struct server *s);
/* Wait up to timeout_ms for the fd count to come back to fds_start; store it in fds_end. */
void server_settle_fds(struct server *s, unsigned timeout_ms);
/* VmHWM of /proc/PID/status in KiB into s->hwm_kib, and its CPU time from /proc/PID/stat
 * into s->cpu_s; left 0 if unreadable. */
void server_read_usage(struct server *s);
/* SIGTERM, wait up to timeout_ms (then SIGKILL). 0 if it exited with status 0. */
int server_stop(struct server *s, unsigned timeout_ms);
/* Print up to max_lines of its stderr, indented; return how many lines it holds. */
unsigned server_print_log(const struct server *s, unsigned max_lines);

#endif /* ZEV_SOAK_H */
