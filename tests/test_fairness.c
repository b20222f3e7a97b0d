/* tests/test_fairness.c: the loop's fairness budget (docs/internals.md, "Fairness"). Peers that
 * never stop sending must not hold an iteration: each socket's turn ends at its quantum, a
 * phase ends at its time slice, and timers and new connections keep their turn every
 * iteration. Counted in iterations and bytes, never timed: where time matters (the slice),
 * the data callback sleeps, so the slice is sure to be spent however slow the machine. */
#include "reactor_internal.h"
#include "tcp_pair.h"
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(fairness, .init = zt_setup, .fini = zt_teardown, .timeout = 60);

enum { MAX_CONNS = 8, BIG_BUF = 1 << 20 };

static struct {
    zev_tcp_server_t s;
    zev_tcp_t conns[MAX_CONNS];
    int peers[MAX_CONNS]; /* raw client ends; the flooding ones are refilled on every read */
    int accepted;
    int flooding;
    unsigned sleep_us; /* per read: a slow data callback */
    uint64_t iter;     /* the iteration the counters below are about */
    size_t iter_bytes, max_iter_bytes;
    int iter_reads, max_iter_reads, reads;
    int timer_fires;
} f;

static char junk[256 * 1024];

/* Keep the peer's side full: the socket always has more to read than any budget. */
static void refill(int fd) {
    while (write(fd, junk, sizeof(junk)) > 0) {
    }
    cr_assert_eq(errno, EAGAIN);
}

static void flood_data(zev_tcp_t *t, const zev_slice_t *slice) {
    uint64_t it = zt_loop.metrics.iterations;
    if (it != f.iter) {
        f.iter = it;
        f.iter_bytes = 0;
        f.iter_reads = 0;
    }
    f.iter_bytes += slice->len;
    f.iter_reads++;
    f.reads++;
    if (f.iter_bytes > f.max_iter_bytes) f.max_iter_bytes = f.iter_bytes;
    if (f.iter_reads > f.max_iter_reads) f.max_iter_reads = f.iter_reads;
    if (f.flooding) refill(f.peers[(zev_tcp_t *)t - f.conns]);
    if (f.sleep_us) usleep(f.sleep_us);
}

static const zev_tcp_events_t flood_events = {.data = flood_data};

static void on_connection(zev_tcp_server_t *s, int status) {
    cr_assert_eq(status, 0);
    cr_assert_lt(f.accepted, MAX_CONNS);
    zev_tcp_t *c = &f.conns[f.accepted++];
    cr_assert_eq(zev_tcp_init(s->handle.loop, c), 0);
    cr_assert_eq(zev_tcp_accept(s, c), 0);
    int big = BIG_BUF; /* full 64 KiB reads however far behind the reader is */
    setsockopt(c->io.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    zev_tcp_set_events(c, &flood_events);
    cr_assert_eq(zev_tcp_read_start(c), 0);
}

static void on_timer(zev_timer_t *t) {
    f.timer_fires++;
    zev_timer_start(t, on_timer, 0, 0); /* due again next iteration */
}

/* n flooding peers, each accepted and with its socket full. */
static int start_flood(int n) {
    memset(&f, 0, sizeof(f));
    int port = zt_listen(&f.s, on_connection, NULL);
    for (int i = 0; i < n; i++) {
        f.peers[i] = zt_raw_connect(port);
        int big = BIG_BUF;
        setsockopt(f.peers[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        fcntl(f.peers[i], F_SETFL, O_NONBLOCK);
    }
    cr_assert(zt_run_until(&f.accepted, n, 5000));
    f.flooding = 1;
    for (int i = 0; i < n; i++) refill(f.peers[i]);
    return port;
}

static void stop_flood(void) {
    f.flooding = 0;
    for (int i = 0; i < f.accepted; i++) {
        zev_close(&f.conns[i].handle, NULL);
        close(f.peers[i]);
    }
    zev_close(&f.s.handle, NULL);
    zt_run();
}

static void run_iterations(int n) {
    for (int i = 0; i < n; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
}

Test(fairness, a_flooded_socket_lets_a_timer_and_a_new_connection_run_every_iteration) {
    int port = start_flood(1);
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, on_timer, 0, 0);
    run_iterations(40);
    cr_assert_geq(f.reads, 40, "the flood was read");
    cr_assert_geq(f.timer_fires, 39, "a timer due each iteration fired %d times in 40",
                  f.timer_fires);
    /* One quantum per turn, and a socket with a turn coming gets no second one from a fresh
     * edge: at most two turns' worth in one iteration (before: 32 reads, 2 MiB). */
    cr_assert_leq(f.max_iter_bytes, 2 * (size_t)ZEV__BUDGET_QUANTUM,
                  "%zu bytes read in one iteration", f.max_iter_bytes);

    /* A new client, while the flood goes on: accepted in the next iteration. */
    f.peers[1] = zt_raw_connect(port);
    run_iterations(2);
    cr_assert_eq(f.accepted, 2, "accepted within two iterations");
    f.flooding = 0;
    zev_close(&t.handle, NULL);
    stop_flood();
}

Test(fairness, a_slow_data_callback_ends_the_phase_when_its_slice_is_spent) {
    start_flood(3);
    /* Two reads sleep past the 2 ms slice: whatever the machine, time has passed. Without a
     * slice, three sockets would read 12 quanta' worth (48 reads) in one iteration. */
    f.sleep_us = 1200;
    run_iterations(20);
    cr_assert_geq(f.reads, 20);
    cr_assert_leq(f.max_iter_reads, 6, "%d reads in one iteration", f.max_iter_reads);
    f.sleep_us = 0;
    stop_flood();
}

/* Sockets that used their quantum wait behind one that just became ready: the pending queue
 * runs watchers with no turn yet first, then those that yielded. */
static int quiet_got;

static void quiet_data(zev_tcp_t *t, const zev_slice_t *slice) {
    (void)t;
    quiet_got += (int)slice->len;
}

static const zev_tcp_events_t quiet_events = {.data = quiet_data};

Test(fairness, a_resumed_socket_runs_before_sockets_that_used_their_quantum) {
    int port = start_flood(4);
    run_iterations(3); /* every flooded socket has yielded at least once */
    f.peers[4] = zt_raw_connect(port);
    cr_assert(zt_run_until(&f.accepted, 5, 5000));
    zev_tcp_t *q = &f.conns[4];
    zev_tcp_read_stop(q);
    zev_tcp_set_events(q, &quiet_events);
    cr_assert_eq(write(f.peers[4], "hello", 5), 5);
    usleep(10000); /* the bytes are there, the edge spent while paused */
    run_iterations(2);
    cr_assert_eq(quiet_got, 0, "paused");
    /* The resume feeds the socket: its turn comes first in the next pending phase, however
     * many flooded sockets yielded before it. */
    int reads_before = f.reads;
    cr_assert_eq(zev_tcp_read_start(q), 0);
    f.sleep_us = 3000; /* any flooded socket that ran first would spend the whole slice */
    run_iterations(1);
    f.sleep_us = 0;
    cr_assert_eq(quiet_got, 5, "the resumed socket got its turn in the first iteration");
    cr_assert_leq(f.reads - reads_before, 2, "and the flooded ones waited behind it");
    stop_flood();
}
