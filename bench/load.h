/* bench/load.h: what the parts of zev-bench, the socket load generator, share.
 *
 * zev-bench is deliberately not built on zev: it is a plain epoll client, so every echo server
 * (zev's and its peers') is measured by the same independent code. bench/zev-bench.c owns the
 * command line, the clock, the measurement window, the server's CPU and memory readings and
 * the result line; bench/load_tcp.c and bench/load_udp.c own the traffic of each mode and
 * count finished operations in load->ops. Everything is bounded: a fixed number of sockets,
 * a fixed measuring time, and a hard deadline after which the run fails.
 */
#ifndef ZEV_BENCH_LOAD_H
#define ZEV_BENCH_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include "hist.h"
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

enum load_mode {
    LOAD_PINGPONG,     /* C connections, one message in flight each: round trips/s */
    LOAD_PIPELINE,     /* C connections, DEPTH messages in flight each: messages/s */
    LOAD_BULK,         /* one connection, SIZE-byte writes, echo read back: MB/s */
    LOAD_CONNRATE,     /* C slots: connect, one message, echo, reset: connections/s */
    LOAD_IDLE_MEMORY,  /* C connections opened and left idle: server KiB per connection */
    LOAD_UDP_PINGPONG, /* C sockets, one datagram in flight each: round trips/s */
    LOAD_UDP_FLOOD,    /* C sockets, DEPTH datagrams in flight each: datagrams/s */
    LOAD_N_MODES
};

struct load_opts {
    enum load_mode mode;
    const char *name; /* scenario label in the result line */
    const char *impl; /* implementation label in the result line */
    const char *host;
    int port;
    unsigned connections;
    unsigned depth; /* pipeline / udp-flood: messages in flight per socket */
    size_t size;    /* bytes per message (bulk: per write) */
    double duration_s;
    double warmup_s;
    pid_t server_pid; /* 0: unknown */
    int close_fin;    /* connrate: close with a FIN (default: a reset, see load_tcp.c) */
    double rate;      /* pingpong / pipeline: messages/s over all connections, open loop; 0:
                       * closed loop (send as soon as the window has room) */
    int quiet;
};

/* One socket of the load. */
struct conn {
    int fd;
    int state;        /* enum conn_state in load_tcp.c; unused for UDP */
    uint64_t sent;    /* TCP: bytes written; UDP: datagrams sent */
    uint64_t recvd;   /* TCP: bytes read back; UDP: datagrams received */
    uint64_t last_ns; /* UDP: last send or receive, to spot losses */
    uint64_t *stamps; /* pingpong / pipeline, closed loop: send time of message m at m % depth */
    uint64_t base_ns; /* open loop: intended send time of this connection's message 0 */
};

struct load {
    struct load_opts o;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int ep;
    struct conn *conns;
    unsigned n_conns;
    char *rbuf; /* read buffer, rbuf_len bytes */
    size_t rbuf_len;
    uint64_t now_ns;  /* refreshed by the main loop after every epoll_wait */
    uint64_t ops;     /* finished operations (round trips, messages, bytes, connections) */
    uint64_t errors;  /* failed connects and the like; too many fail the run */
    uint64_t lost;    /* UDP: datagrams given up on */
    unsigned opened;  /* connrate / idle: slots started so far, conns[0 .. opened) */
    unsigned settled; /* idle: connections that echoed once and are now idle */
    int stopping;     /* the measuring window is over: open no more connections */
    int done;         /* idle: every connection is idle */
    const char *fail; /* set with a reason to end the run with an error */
    struct hist *lat;    /* pingpong / pipeline: per-message latency in ns, this window's */
    uint64_t *stamp_mem; /* conns' stamps, n_conns * depth, allocated once */
    uint64_t interval_ns; /* open loop: time between one connection's intended sends */
};

/* Failures tolerated before a run is declared broken (connect refusals, resets). */
#define LOAD_MAX_ERRORS 1000u
/* The read buffer: as large as the servers' reads. */
#define LOAD_RBUF_LEN 65536u

/* The byte pattern every TCP stream carries: byte k of a stream is load_pattern[k % 256], so
 * load_pattern + (k % 256) holds the next LOAD_PATTERN_SPAN bytes from offset k. */
#define LOAD_PATTERN_SPAN 65536u
extern char load_pattern[LOAD_PATTERN_SPAN + 256];

/* CLOCK_MONOTONIC in ns. */
uint64_t load_now_ns(void);
/* Record a failure reason (the first one wins) and return -1. */
int load_fail(struct load *l, const char *why);
/* Add fd to the epoll set with events, data.ptr = c. 0 or -1 (reason recorded). */
int load_watch(struct load *l, struct conn *c, uint32_t events);

/* TCP modes (load_tcp.c). start: open the first sockets; event: one epoll event for c;
 * tick: called at least every 20 ms; stop: close everything. 0, or -1 with l->fail set. */
int tcp_start(struct load *l);
void tcp_event(struct load *l, struct conn *c, uint32_t events);
void tcp_tick(struct load *l);
void tcp_stop(struct load *l);
/* pingpong / pipeline: whether per-message latency is measured. */
int tcp_timed(const struct load *l);
/* Open loop: send every message now due; the next intended send time (UINT64_MAX: none until
 * an echo frees the window). */
uint64_t tcp_pace(struct load *l);

/* UDP modes (load_udp.c), same contract; udp_tick resends what seems lost. */
int udp_start(struct load *l);
void udp_event(struct load *l, struct conn *c, uint32_t events);
void udp_tick(struct load *l);
void udp_stop(struct load *l);

#endif /* ZEV_BENCH_LOAD_H */
