/* bench/zc_probe.c: does zero-copy send (io_uring SEND_ZC) pay on this machine?
 *
 * zev sends a stream's queued slices with io_uring SEND, or with SEND_ZC from a threshold
 * (zev_loop_options_t.send_zc_min). SEND_ZC lets the kernel send straight from the slice's
 * pages, at the price of a second completion per send (the notification that the kernel let
 * go of the pages, which comes only once the peer has acknowledged the bytes). Whether that
 * pays depends on the path: over loopback and veth the kernel copies anyway, and says so in
 * the notification (IORING_NOTIF_USAGE_ZC_COPIED).
 *
 * This probe sends the same bytes over one TCP connection on 127.0.0.1 with SEND and with
 * SEND_ZC, at several sizes, 4 sends in flight, and prints MB/s and how many notifications
 * said "copied". A thread on the other end reads and discards. It speaks to io_uring with
 * raw syscalls and uses no zev code: it measures the kernel, not the library.
 *
 *   zc_probe [MiB per run, default 256]   (each run also stops after 3 s)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEPTH 4
#define ENTRIES 16
#define RUN_SECONDS 3.0 /* each run stops queueing after this long, whatever is left */

struct ring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    unsigned tail;
};

static int ring_init(struct ring *r) {
    struct io_uring_params p = {0};
    r->fd = (int)syscall(__NR_io_uring_setup, ENTRIES, &p);
    if (r->fd < 0) return -errno;
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t len = sq_len > cq_len ? sq_len : cq_len; /* one mapping (FEAT_SINGLE_MMAP, 5.4+) */
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                   IORING_OFF_SQ_RING);
    void *s = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (m == MAP_FAILED || s == MAP_FAILED) return -errno;
    r->sq_tail = (unsigned *)(m + p.sq_off.tail);
    r->sq_mask = (unsigned *)(m + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(m + p.sq_off.array);
    r->cq_head = (unsigned *)(m + p.cq_off.head);
    r->cq_tail = (unsigned *)(m + p.cq_off.tail);
    r->cq_mask = (unsigned *)(m + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(m + p.cq_off.cqes);
    r->sqes = s;
    r->tail = 0;
    return 0;
}

static void queue_send(struct ring *r, int fd, const char *buf, size_t len, int zc) {
    unsigned i = r->tail & *r->sq_mask;
    struct io_uring_sqe *sqe = &r->sqes[i];
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = zc ? IORING_OP_SEND_ZC : IORING_OP_SEND;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)buf;
    sqe->len = (uint32_t)len;
    sqe->msg_flags = MSG_NOSIGNAL | MSG_WAITALL;
    if (zc) sqe->ioprio = IORING_SEND_ZC_REPORT_USAGE;
    r->sq_array[i] = i;
    r->tail++;
}

/* Submit what is queued and wait for one completion. */
static int enter(struct ring *r, unsigned to_submit) {
    __atomic_store_n(r->sq_tail, r->tail, __ATOMIC_RELEASE);
    long n = syscall(__NR_io_uring_enter, r->fd, to_submit, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    return n < 0 ? -errno : 0;
}

struct sink {
    int fd;
    uint64_t want;
};

static void *sink_main(void *arg) {
    struct sink *k = arg;
    static char buf[1 << 20];
    uint64_t got = 0;
    while (got < k->want) {
        ssize_t n = recv(k->fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        got += (uint64_t)n;
    }
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connected pair on 127.0.0.1: *out sends, *in receives. */
static int tcp_pair(int *out, int *in) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0)
        return -errno;
    *out = socket(AF_INET, SOCK_STREAM, 0);
    if (*out < 0 || connect(*out, (struct sockaddr *)&a, sizeof(a)) < 0) return -errno;
    *in = accept(l, NULL, NULL);
    close(l);
    return *in < 0 ? -errno : 0;
}

/* Send total bytes in sends of size bytes; returns MB/s, and how many notifications came and
 * said "copied" (zc only). */
static double run(struct ring *r, size_t size, uint64_t total, int zc, unsigned *notifs,
                  unsigned *copied) {
    int out = -1, in = -1;
    if (tcp_pair(&out, &in) < 0) return -1;
    char *buf = malloc(size);
    if (!buf) return -1;
    memset(buf, 'z', size);
    struct sink k = {.fd = in, .want = total};
    pthread_t th;
    pthread_create(&th, NULL, sink_main, &k);
    uint64_t queued = 0, sent = 0;
    unsigned busy = 0, to_submit = 0; /* sends, or zero-copy notifications, still to come */
    *notifs = *copied = 0;
    double t0 = now_s();
    for (;;) {
        if (now_s() - t0 > RUN_SECONDS) total = queued; /* out of time: finish what is busy */
        while (busy < DEPTH && queued < total) {
            queue_send(r, out, buf, size, zc);
            queued += size;
            busy++;
            to_submit++;
        }
        if (busy == 0) break; /* everything answered, nothing left to queue */
        if (enter(r, to_submit) < 0) break;
        to_submit = 0;
        unsigned head = *r->cq_head;
        unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
        for (; head != tail; head++) {
            struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
            if (c->flags & IORING_CQE_F_NOTIF) { /* the kernel let go of the pages */
                (*notifs)++;
                if ((uint32_t)c->res & IORING_NOTIF_USAGE_ZC_COPIED) (*copied)++;
                busy--;
                continue;
            }
            if (c->res > 0) sent += (uint64_t)c->res;
            if (c->res < 0) total = queued; /* an error: stop queueing, finish what is busy */
            if (!(c->flags & IORING_CQE_F_MORE)) busy--; /* no notification follows */
        }
        __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
    }
    double secs = now_s() - t0;
    shutdown(out, SHUT_WR); /* the reader's EOF, if the run ended early */
    pthread_join(th, NULL);
    close(out);
    close(in);
    free(buf);
    return (double)sent / secs / 1e6;
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: zc_probe [MiB per run, 1..4096, default 256]\n"
               "Sends over one loopback TCP connection with io_uring SEND and SEND_ZC and\n"
               "prints MB/s per send size and how many zero-copy sends the kernel copied.\n");
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 256;
    if (mib < 1 || mib > 4096) {
        fprintf(stderr, "zc_probe: MiB per run must be 1..4096\n");
        return 2;
    }
    struct ring r;
    int err = ring_init(&r);
    if (err < 0) {
        fprintf(stderr, "zc_probe: io_uring_setup: %s\n", strerror(-err));
        return 1;
    }
    const size_t sizes[] = {4096, 16384, 65536, 262144, 1048576};
    printf("%-10s %12s %12s %8s  %s\n", "send size", "SEND MB/s", "SEND_ZC MB/s", "ZC/SEND",
           "notifications saying the kernel copied");
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t total = (uint64_t)mib << 20;
        total -= total % sizes[i];
        unsigned n0, c0, n1, c1;
        double plain = run(&r, sizes[i], total, 0, &n0, &c0);
        double zc = run(&r, sizes[i], total, 1, &n1, &c1);
        if (plain <= 0 || zc <= 0) {
            fprintf(stderr, "zc_probe: a run failed\n");
            return 1;
        }
        printf("%-10zu %12.0f %12.0f %8.2f  %u of %u\n", sizes[i], plain, zc, zc / plain, c1, n1);
    }
    return 0;
}
