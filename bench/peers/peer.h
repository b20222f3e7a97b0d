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
};

static inline void peer_usage(const char *prog, int status) {
    fprintf(status ? stderr : stdout,
            "usage: %s [--host ADDR] [--port N]\n"
            "Echo server for scripts/bench (default 127.0.0.1, port 0 = ephemeral).\n"
            "Prints 'listening on HOST:PORT' once ready; SIGTERM ends it.\n",
            prog);
    exit(status);
}

/* Parse --host/--port into a; exits with status 2 on a bad command line. */
static inline void peer_parse(int argc, char **argv, struct peer_args *a) {
    const char *prog = argv[0];
    a->host = "127.0.0.1";
    a->port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) peer_usage(prog, 0);
        if (i + 1 >= argc) peer_usage(prog, 2);
        if (strcmp(argv[i], "--host") == 0) {
            a->host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0) {
            char *end = NULL;
            long p = strtol(argv[++i], &end, 10);
            if (*end != '\0' || p < 0 || p > 65535) peer_usage(prog, 2);
            a->port = (int)p;
        } else {
            peer_usage(prog, 2);
        }
    }
    memset(&a->addr, 0, sizeof(a->addr));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&a->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->addr;
    if (inet_pton(AF_INET, a->host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)a->port);
        a->addr_len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)a->port);
        a->addr_len = sizeof(*in6);
    } else {
        fprintf(stderr, "%s: --host wants a numeric IPv4 or IPv6 address, not '%s'\n", prog,
                a->host);
        exit(2);
    }
    /* A peer that vanishes is an EPIPE from write, never a signal. SIGTERM keeps its default
     * action: the benchmark kills its servers, and nothing needs flushing. */
    signal(SIGPIPE, SIG_IGN);
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
