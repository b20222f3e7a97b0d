/* tests/soak/probe.c: the latency probe, one connection doing one small round trip every
 * 10 ms on its own thread.
 *
 * Its own thread with a blocking socket, so what it measures is the server's (and the
 * kernel's) answer time, not how long the load thread takes to get round to a ready event in
 * a batch of thousands. Each round trip sends PROBE_LEN bytes of its stream (the pattern, as
 * for the load) and waits for the echo with poll() up to SOAK_PROBE_TIMEOUT_MS. Round trips
 * are started on a fixed 10 ms grid (clock_nanosleep to an absolute time); one that overruns
 * skips the ticks it missed rather than bunching up. The latencies are kept (bounded by the
 * phase length) and sorted at the end for p50, p99 and max.
 */
#include "soak.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_LEN 32u

struct probe {
    int fd;
    pthread_t thread;
    atomic_int stop;
    uint32_t key;
    uint64_t offset; /* stream bytes sent and echoed so far */
    uint64_t *lat_us;
    size_t n_lat;
    size_t max_lat;
    int broken; /* the connection failed: stop probing */
    struct probe_stats st;
};

static void probe_fail(struct probe *p, int kind) {
    soak_error_add(&p->st.errors, kind);
    p->st.bytes_lost += PROBE_LEN;
    p->broken = 1;
}

/* Read n echoed bytes by `deadline_ns`; 0, or -1 (recorded). */
static int read_echo(struct probe *p, unsigned char *buf, size_t n, uint64_t deadline_ns) {
    size_t got = 0;
    while (got < n) {
        uint64_t now = soak_now_ns();
        if (now >= deadline_ns) {
            probe_fail(p, SOAK_ERR_PROBE_TIMEOUT);
            return -1;
        }
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)((deadline_ns - now) / 1000000u) + 1);
        if (r < 0 && errno != EINTR) {
            probe_fail(p, errno);
            return -1;
        }
        if (r <= 0) continue;
        ssize_t k = recv(p->fd, buf + got, n - got, MSG_DONTWAIT);
        if (k == 0) {
            probe_fail(p, SOAK_ERR_EARLY_EOF);
            return -1;
        }
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            probe_fail(p, errno);
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}

static void round_trip(struct probe *p) {
    const unsigned char *want = soak_pattern + (p->key + p->offset) % SOAK_PATTERN_PERIOD;
    uint64_t t0 = soak_now_ns();
    ssize_t w = send(p->fd, want, PROBE_LEN, MSG_NOSIGNAL);
    if (w != (ssize_t)PROBE_LEN) { /* 32 bytes into an empty buffer: all or an error */
        probe_fail(p, w < 0 ? errno : SOAK_ERR_STALLED);
        return;
    }
    unsigned char buf[PROBE_LEN];
    if (read_echo(p, buf, PROBE_LEN, t0 + SOAK_PROBE_TIMEOUT_MS * 1000000ull) < 0) return;
    uint64_t us = (soak_now_ns() - t0) / 1000u;
    if (memcmp(buf, want, PROBE_LEN) != 0) {
        soak_error_add(&p->st.errors, SOAK_ERR_MISMATCH);
        p->st.bytes_reordered += PROBE_LEN;
        p->broken = 1;
        return;
    }
    p->offset += PROBE_LEN;
    p->st.round_trips++;
    if (p->n_lat < p->max_lat) p->lat_us[p->n_lat++] = us;
}

static void *probe_main(void *arg) {
    struct probe *p = arg;
    const uint64_t step = SOAK_PROBE_INTERVAL_MS * 1000000ull;
    uint64_t next = soak_now_ns();
    while (!atomic_load(&p->stop) && !p->broken) {
        round_trip(p);
        uint64_t now = soak_now_ns();
        next += step;
        if (next < now) next = now - (now - next) % step + step; /* skip missed ticks */
        struct timespec ts = {.tv_sec = (time_t)(next / 1000000000u),
                              .tv_nsec = (long)(next % 1000000000u)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    return NULL;
}

struct probe *probe_start(const struct sockaddr_in *to, double max_seconds) {
    struct probe *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->max_lat = (size_t)(max_seconds * 1000.0 / SOAK_PROBE_INTERVAL_MS) + 16;
    p->lat_us = calloc(p->max_lat, sizeof(*p->lat_us));
    p->key = 12345;
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!p->lat_us || p->fd < 0) goto fail;
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = SOAK_PROBE_TIMEOUT_MS / 1000};
    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect() too */
    if (connect(p->fd, (const struct sockaddr *)to, sizeof(*to)) < 0) {
        perror("zev-soak: probe connect");
        goto fail;
    }
    atomic_init(&p->stop, 0);
    if (pthread_create(&p->thread, NULL, probe_main, p) != 0) goto fail;
    return p;
fail:
    if (p->fd >= 0) close(p->fd);
    free(p->lat_us);
    free(p);
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void probe_stop(struct probe *p, struct probe_stats *out) {
    atomic_store(&p->stop, 1);
    pthread_join(p->thread, NULL);
    close(p->fd);
    if (p->n_lat > 0) {
        qsort(p->lat_us, p->n_lat, sizeof(*p->lat_us), cmp_u64);
        p->st.p50_us = p->lat_us[p->n_lat / 2];
        p->st.p99_us = p->lat_us[(p->n_lat * 99) / 100];
        p->st.max_us = p->lat_us[p->n_lat - 1];
    }
    *out = p->st;
    free(p->lat_us);
    free(p);
}
