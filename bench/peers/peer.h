/* bench/peers/peer.h: the command line and the "listening on" line every echo peer shares.
 *
 * The peers are servers written idiomatically for one library each; what is not about the
 * library (parsing --host/--port, printing the bound address the way the zev examples do,
 * ignoring SIGPIPE, dying quietly on SIGTERM) lives here so it is identical for all of them.
 * Header-only (static functions) so each peer stays one translation unit.
 */
#ifndef ZEV_BENCH_PEER_H
#define ZEV_BENCH_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Every peer reads into (or asks its library for) 64 KiB at a time, as zev's pool chunks. */
#define PEER_READ_SIZE 65536
/* Listen backlog: Node's default, which zev uses too. */
#define PEER_BACKLOG 511
/* Unsent echo bytes above which a peer stops reading until they drain (zev's default HWM). */
#define PEER_HIGH_WATER 65536

struct peer_args {
    const char *host;
    int port;
    struct sockaddr_storage addr; /* host and port, parsed */
    socklen_t addr_len;
    struct sockaddr_storage to; /* --to HOST:PORT (proxies only); to_len 0 if not given */
    socklen_t to_len;
    long stall_ms; /* --stall-ms (echo_epoll only): stop answering this long once a second */
};

static inline void peer_usage(const char *prog, int status) {
    fprintf(status ? stderr : stdout,
            "usage: %s [--host ADDR] [--port N] [--to HOST:PORT] [--stall-ms MS]\n"
            "Echo server (or, with --to, proxy) for scripts/bench (default 127.0.0.1, port 0 =\n"
            "ephemeral).\n"
            "Prints 'listening on HOST:PORT' once ready; SIGTERM ends it.\n"
            "--stall-ms (echo_epoll): stop answering for MS once a second, a deliberately\n"
            "stalling server for checking latency measurement.\n",
            prog);
    exit(status);
}

/* Numeric host text and port into ss; 0, or -1 if host is not a numeric address. */
static inline int peer_make_addr(const char *host, int port, struct sockaddr_storage *ss,
                                 socklen_t *len) {
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
    } else {
        return -1;
    }
    return 0;
}

/* A port number 0..65535, or -1. */
static inline long peer_port(const char *text) {
    char *end = NULL;
    long p = strtol(text, &end, 10);
    return end == text || *end != '\0' || p < 0 || p > 65535 ? -1 : p;
}

/* "HOST:PORT" or "[V6]:PORT" (as zev-proxy's --to) into a->to; -1 if malformed. */
static inline int peer_parse_to(const char *text, struct peer_args *a) {
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof(host)) return -1;
    long port = peer_port(colon + 1);
    if (port < 0) return -1;
    size_t n = (size_t)(colon - text);
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
        text++;
        n -= 2;
    }
    memcpy(host, text, n);
    host[n] = '\0';
    return peer_make_addr(host, (int)port, &a->to, &a->to_len);
}

/* Parse --host/--port (and --to, for proxies) into a; exits with status 2 on a bad command
 * line. */
static inline void peer_parse(int argc, char **argv, struct peer_args *a) {
    const char *prog = argv[0];
    a->host = "127.0.0.1";
    a->port = 0;
    a->to_len = 0;
    a->stall_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) peer_usage(prog, 0);
        if (i + 1 >= argc) peer_usage(prog, 2);
        if (strcmp(argv[i], "--host") == 0) {
            a->host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0) {
            long p = peer_port(argv[++i]);
            if (p < 0) peer_usage(prog, 2);
            a->port = (int)p;
        } else if (strcmp(argv[i], "--stall-ms") == 0) {
            a->stall_ms = peer_port(argv[++i]); /* 0 .. 65535 ms */
            if (a->stall_ms < 0 || a->stall_ms >= 1000) peer_usage(prog, 2);
        } else if (strcmp(argv[i], "--to") == 0) {
            if (peer_parse_to(argv[++i], a) < 0) {
                fprintf(stderr, "%s: --to wants a numeric HOST:PORT, not '%s'\n", prog, argv[i]);
                exit(2);
            }
        } else {
            peer_usage(prog, 2);
        }
    }
    if (peer_make_addr(a->host, a->port, &a->addr, &a->addr_len) < 0) {
        fprintf(stderr, "%s: --host wants a numeric IPv4 or IPv6 address, not '%s'\n", prog,
                a->host);
        exit(2);
    }
    /* A peer that vanishes is an EPIPE from write, never a signal. SIGTERM keeps its default
     * action: the benchmark kills its servers, and nothing needs flushing. */
    signal(SIGPIPE, SIG_IGN);
}

/* A nonblocking TCP listener on a's address with SO_REUSEADDR and PEER_BACKLOG, for the
 * peers written on plain epoll. Exits with status 1 if it cannot be had. */
static inline int peer_listen_tcp(const char *prog, const struct peer_args *a) {
    int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (const struct sockaddr *)&a->addr, a->addr_len) < 0 ||
        listen(fd, PEER_BACKLOG) < 0) {
        fprintf(stderr, "%s: listen: %s\n", prog, strerror(errno));
        exit(1);
    }
    return fd;
}

/* Print "listening on HOST:PORT" ("[::1]:PORT" for IPv6) for the bound socket fd, flushed,
 * as the zev examples do. Exits with status 1 if the address cannot be read. */
static inline void peer_print_listening(const char *prog, int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char text[INET6_ADDRSTRLEN];
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        perror("getsockname");
        exit(1);
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
        printf("listening on [%s]:%u\n", text, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text));
        printf("listening on %s:%u\n", text, ntohs(in4->sin_port));
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: cannot write to stdout\n", prog);
        exit(1);
    }
}

#endif /* ZEV_BENCH_PEER_H */
