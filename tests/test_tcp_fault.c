/* tests/test_tcp_fault.c: TCP under injected syscall faults (built with -Dfault_injection):
 * EMFILE on accept never spins, short and interrupted writes keep byte order, and faults reach
 * the right callback. */
#include "reactor_internal.h"
#include "ring.h"
#include "sys_fault.h"
#include "tcp_pair.h"
#include "zt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void fault_setup(void) {
    zev_fault_reset();
    zt_setup();
}

static void fault_teardown(void) {
    zev_fault_reset();
    zt_teardown();
}

TestSuite(tcp_fault, .init = fault_setup, .fini = fault_teardown, .timeout = 30);

static int emfile_reports;
static int accepted;

static void on_connection(zev_tcp_server_t *s, int status) {
    if (status == -EMFILE) {
        emfile_reports++;
        return;
    }
    accepted++;
}

static void stop_loop(zev_timer_t *t) {
    zev_stop(t->handle.loop);
}

/* Every accept fails, the spare descriptor's too, so nothing can be shed: the listener backs
 * off and retries, and reports the shortage once (it used to at every retry). */
Test(tcp_fault, permanent_emfile_backs_off_and_is_reported_once) {
    zev_tcp_server_t s;
    zev_tcp_server_init(&zt_loop, &s);
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", 0, NULL, on_connection), 0);
    zev_addr_info_t info;
    zev_tcp_server_address(&s, &info);
    /* A client waits in the backlog; every accept now fails with EMFILE. */
    int c = zt_raw_connect(info.port);
    zev_fault_fail(ZEV_SYS_ACCEPT, 0, -1, EMFILE);
    zev_timer_t t;
    zev_timer_init(&zt_loop, &t);
    zev_timer_start(&t, stop_loop, 1000, 0);
    zev_run(&zt_loop, ZEV_RUN_DEFAULT);
    uint64_t calls = zev_fault_calls(ZEV_SYS_ACCEPT);
    /* Backoff doubles from 10 ms to 1 s: about 7 attempts (plus one shed each) in 1 s. A
     * spinning loop would make hundreds of thousands. */
    cr_assert_geq(calls, 2);
    cr_assert_leq(calls, 40, "%lu accept calls in one second", (unsigned long)calls);
    cr_assert_eq(emfile_reports, 1, "%d reports of one shortage", emfile_reports);
    cr_assert_eq(accepted, 0);
    zev_loop_metrics_t m;
    zev_loop_metrics(&zt_loop, &m);
    cr_assert_leq(m.iterations, 100, "the loop slept between attempts");
    zev_tcp_server_stats_t st;
    zev_tcp_server_stats(&s, &st);
    cr_assert_eq(st.accept_errors, (uint64_t)emfile_reports);

    /* The condition clears: the waiting client is accepted on the next attempt. */
    zev_fault_reset();
    zev_timer_start(&t, stop_loop, 3000, 0);
    while (accepted == 0 && zev_is_active(&t.handle)) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(accepted, 1, "accepting resumed after the backoff");
    zev_close(&t.handle, NULL);
    zev_close(&s.handle, NULL);
    zt_run();
    close(c);
}

struct sink {
    uint8_t *got;
    size_t n;
};

static void sink_data(zev_tcp_t *t, const zev_slice_t *s) {
    struct sink *k = t->handle.data;
    memcpy(k->got + k->n, s->base, s->len);
    k->n += s->len;
}

static const zev_tcp_events_t sink_events = {.data = sink_data};

Test(tcp_fault, short_and_interrupted_sends_keep_byte_order) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    enum { N = 200000 };
    uint8_t *src = malloc(N);
    for (int i = 0; i < N; i++) src[i] = (uint8_t)(i * 13 + (i >> 9));
    struct sink k = {.got = malloc(N)};
    b.handle.data = &k;
    zev_tcp_set_events(&b, &sink_events);
    zev_tcp_read_start(&b);
    /* Every send moves at most 777 bytes: the queue must resume exactly where each stopped. */
    zev_fault_short(ZEV_SYS_SENDMSG, 0, -1, 777);
    zev_slice_t s[3] = {zev_slice(src, 1000), zev_slice(src + 1000, 99000),
                        zev_slice(src + 100000, 50000)};
    cr_assert_geq(zev_tcp_write(&a, s, 3, NULL, NULL), 0);
    while (k.n < 150000) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_geq(zev_fault_hits(ZEV_SYS_SENDMSG), 150000 / 777, "sends really were short");
    /* Then every send is interrupted twice before it goes through. */
    zev_fault_fail(ZEV_SYS_SENDMSG, 0, 2, EINTR);
    zev_slice_t rest = zev_slice(src + 150000, 50000);
    cr_assert_geq(zev_tcp_write(&a, &rest, 1, NULL, NULL), 0);
    while (k.n < N) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(memcmp(k.got, src, N), 0, "bytes in order, none lost or repeated");
    zev_fault_reset();
    free(src);
    free(k.got);
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
}

static int connect_status;

static void record_connect(zev_tcp_t *t, int status) {
    connect_status = status;
    zev_close(&t->handle, NULL);
}

Test(tcp_fault, a_synchronous_connect_failure_reaches_the_callback_later) {
    zev_tcp_t t;
    zev_tcp_init(&zt_loop, &t);
    zev_fault_fail(ZEV_SYS_CONNECT, 0, 1, ENETUNREACH);
    connect_status = 1;
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", 9, record_connect), 0);
    cr_assert_eq(connect_status, 1, "not inside connect");
    zt_run();
    cr_assert_eq(connect_status, -ENETUNREACH);
}

Test(tcp_fault, bind_failures_are_returned_by_listen) {
    zev_tcp_server_t s;
    zev_tcp_server_init(&zt_loop, &s);
    int fds = zt_fd_count();
    zev_fault_fail(ZEV_SYS_BIND, 0, 1, EACCES); /* root may bind anywhere: inject it */
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", 80, NULL, on_connection), -EACCES);
    cr_assert_eq(zt_fd_count(), fds, "the socket was released");
    zev_close(&s.handle, NULL);
    zt_run();
}

static int read_errors;
static int last_read_error;

static void count_error(zev_tcp_t *t, int err) {
    (void)t;
    read_errors++;
    last_read_error = err;
}

Test(tcp_fault, a_read_error_reaches_the_error_event_once) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    static const zev_tcp_events_t err_events = {.error = count_error};
    zev_tcp_set_events(&b, &err_events);
    zev_tcp_read_start(&b);
    zev_fault_fail(ZEV_SYS_READ, 0, 1, EIO);
    zev_slice_t s = zev_slice("boom", 4);
    zev_tcp_write(&a, &s, 1, NULL, NULL);
    while (!read_errors) zev_run(&zt_loop, ZEV_RUN_ONCE);
    for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(read_errors, 1);
    cr_assert_eq(last_read_error, -EIO);
    cr_assert_eq(zev_tcp_read_start(&b), -EIO, "the socket remembers why it failed");
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
}

/* Found by the fault sweep on io_uring: a send that met EAGAIN waits for room with a poll,
 * which did not count as a send in flight, so the next write started a chain beside it, and
 * when the poll's answer came the chain's bytes went out a second time. (In completion mode
 * only: on epoll an injected EAGAIN is never followed by the edge a real one would raise.) */
Test(tcp_fault, a_write_while_waiting_for_room_after_eagain_sends_each_byte_once) {
    if (!zev__loop_completes(&zt_loop)) cr_skip_test("a completion-mode case");
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    struct sink k = {.got = malloc(4 * 4096)}; /* room for bytes sent twice, to see them */
    b.handle.data = &k;
    zev_tcp_set_events(&b, &sink_events);
    zev_tcp_read_start(&b);
    zev_buf_t *c = zev_buf_get(&zt_loop);
    cr_assert_not_null(c);
    for (int i = 0; i < 8192; i++) c->base[i] = (char)(i * 31 + 7);
    zev_slice_t first = {c->base, 4096, c}, second = {c->base + 4096, 4096, c};
    zev_fault_fail(ZEV_SYS_SENDMSG, 0, 1, EAGAIN);
    cr_assert_geq(zev_tcp_write(&a, &first, 1, NULL, NULL), 0); /* waits for room */
    cr_assert_geq(zev_tcp_write(&a, &second, 1, NULL, NULL), 0);
    zev_buf_unref(c);
    while (k.n < 8192) zev_run(&zt_loop, ZEV_RUN_ONCE);
    for (int i = 0; i < 20 && k.n <= 4 * 4096 - 4096; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    zev_fault_reset();
    cr_assert_eq(k.n, 8192, "each byte once");
    for (int i = 0; i < 8192; i++) cr_assert_eq(k.got[i], (uint8_t)(i * 31 + 7), "byte %d", i);
    free(k.got);
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
}

/* Switching to user memory stops the pool receive in flight with a synchronous cancel, whose
 * wait is an enter of its own. When that enter fails, the receive goes on, and it must stay
 * the socket's one operation: a readiness report armed beside it for the user's buffer could
 * read bytes that overtake the receive's, and the close would wait for one operation of two.
 * The bytes the receive takes come as a pool slice; after it, reads land in user memory. */
struct switch_sink {
    char got[16];
    size_t n;
    int pool_slices_after_user; /* a pool slice after one in user memory: order broken */
    int user_slices;
    char *user;
};

static void switch_sink_data(zev_tcp_t *t, const zev_slice_t *s) {
    struct switch_sink *k = t->handle.data;
    cr_assert_leq(k->n + s->len, sizeof(k->got));
    if (s->base >= k->user && s->base < k->user + 32) {
        k->user_slices++;
    } else if (k->user_slices > 0) {
        k->pool_slices_after_user++;
    }
    memcpy(k->got + k->n, s->base, s->len);
    k->n += s->len;
}

static const zev_tcp_events_t switch_sink_events = {.data = switch_sink_data};

Test(tcp_fault, a_switch_to_user_memory_whose_cancel_cannot_be_entered_keeps_one_receive) {
    if (!zev__loop_completes(&zt_loop)) cr_skip_test("a completion-mode case");
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    char user[32];
    struct switch_sink k = {.user = user};
    b.handle.data = &k;
    zev_tcp_set_events(&b, &switch_sink_events);
    zev_tcp_read_start(&b);
    for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* a pool receive waits */
    zev_fault_fail(ZEV_SYS_RING_SUBMIT, 0, 1, ENOMEM);
    cr_assert_eq(zev_tcp_set_read_buffer(&b, user, sizeof(user)), 0);
    cr_assert_eq(zev_fault_hits(ZEV_SYS_RING_SUBMIT), 1, "the cancel's enter failed");
    zev_fault_reset();
    const char *parts[] = {"abc", "def", "ghi"};
    for (int i = 0; i < 3; i++) {
        zev_slice_t s = zev_slice((void *)parts[i], 3);
        cr_assert_geq(zev_tcp_write(&a, &s, 1, NULL, NULL), 0);
        while (k.n < 3u * (size_t)(i + 1)) zev_run(&zt_loop, ZEV_RUN_ONCE);
    }
    cr_assert_eq(memcmp(k.got, "abcdefghi", 9), 0, "in order, each byte once");
    cr_assert_eq(k.pool_slices_after_user, 0);
    cr_assert_geq(k.user_slices, 1, "reads land in user memory once the receive ended");
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
}

/* ---- accept errors that accept(2) says to retry -------------------------------------------- */

struct backlog_srv {
    zev_tcp_server_t s;
    zev_tcp_t conns[3];
    int statuses[8]; /* every connection_cb status, in order */
    int n_status;
    int n_conns;
};

static void on_backlog_connection(zev_tcp_server_t *s, int status) {
    struct backlog_srv *v = s->handle.data;
    cr_assert_lt(v->n_status, 8);
    v->statuses[v->n_status++] = status;
    if (status < 0) return;
    cr_assert_lt(v->n_conns, 3);
    zev_tcp_t *c = &v->conns[v->n_conns];
    zev_tcp_init(s->handle.loop, c);
    cr_assert_eq(zev_tcp_accept(s, c), 0);
    v->n_conns++;
}

/* Three connections wait in the backlog and the first accept fails with an error of a
 * connection that died there. The listening socket's edge is spent, so unless the listener
 * keeps accepting, the other two wait for a fourth connection that never comes. */
static void transient_accept_error_keeps_accepting(int err) {
    struct backlog_srv v = {0};
    int port = zt_listen(&v.s, on_backlog_connection, &v);
    /* Let the listener look once and find nothing, so the connections below raise one fresh
     * edge, which the failed accept then spends. */
    for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(v.n_status, 0);
    int fds[3];
    for (int i = 0; i < 3; i++) fds[i] = zt_raw_connect(port);
    uint64_t calls_before = zev_fault_calls(ZEV_SYS_ACCEPT);
    zev_fault_fail(ZEV_SYS_ACCEPT, 0, 1, err);
    zt_run_until(&v.n_conns, 3, 2000);
    cr_assert_eq(v.n_conns, 3, "errno %d: %d of 3 waiting connections accepted", err,
                 v.n_conns);
    bool reported = err != ECONNABORTED; /* ECONNABORTED is skipped silently, as libuv does */
    cr_assert_eq(v.n_status, reported ? 4 : 3, "errno %d", err);
    int k = 0;
    if (reported) cr_assert_eq(v.statuses[k++], -err, "the error first, then the connections");
    for (; k < v.n_status; k++) cr_assert_eq(v.statuses[k], 0);
    zev_tcp_server_stats_t st;
    zev_tcp_server_stats(&v.s, &st);
    cr_assert_eq(st.accepted, 3);
    cr_assert_eq(st.accept_errors, reported ? 1u : 0u);
    /* In completion mode the kernel accepts, and an empty backlog costs no call. */
    uint64_t calls_want = zev__loop_completes(&zt_loop) ? 4 : 5;
    cr_assert_eq(zev_fault_calls(ZEV_SYS_ACCEPT) - calls_before, calls_want,
                 "one failed, three taken (and one EAGAIN on readiness)");
    for (int i = 0; i < 3; i++) {
        zev_close(&v.conns[i].handle, NULL);
        close(fds[i]);
    }
    zev_close(&v.s.handle, NULL);
    zt_run();
    zev_fault_reset();
}

Test(tcp_fault, a_transient_accept_error_does_not_strand_the_backlog) {
    static const int errs[] = {
        EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN,
#ifdef ENONET
        ENONET,
#endif
        EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH, ECONNABORTED,
    };
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        transient_accept_error_keeps_accepting(errs[i]);
}

/* ---- descriptor exhaustion: shed the whole backlog, report once per episode ---- */

static zev_tcp_t exh_conns[4];
static int exh_accepted;

static void exh_on_connection(zev_tcp_server_t *s, int status) {
    if (status == -EMFILE) {
        emfile_reports++;
        return;
    }
    cr_assert_eq(status, 0);
    cr_assert_lt(exh_accepted, 4);
    zev_tcp_t *c = &exh_conns[exh_accepted++];
    cr_assert_eq(zev_tcp_init(s->handle.loop, c), 0);
    cr_assert_eq(zev_tcp_accept(s, c), 0);
}

/* Raw clients already in the backlog (a blocking connect returns once the handshake is
 * done). */
static void connect_raw(int port, int *fds, int n) {
    for (int i = 0; i < n; i++) fds[i] = zt_raw_connect(port);
}

static void run_until_shed(const zev_tcp_server_t *s, uint64_t want) {
    zev_tcp_server_stats_t st = {0};
    for (int i = 0; i < 100; i++) {
        zev_tcp_server_stats(s, &st);
        if (st.shed >= want) return;
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    }
    cr_assert_eq(st.shed, want, "shed %lu of %lu", (unsigned long)st.shed, (unsigned long)want);
}

Test(tcp_fault, descriptor_exhaustion_sheds_the_whole_backlog_and_reports_once) {
    emfile_reports = 0;
    exh_accepted = 0;
    zev_tcp_server_t s;
    zev_tcp_server_init(&zt_loop, &s);
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", 0, NULL, exh_on_connection), 0);
    zev_addr_info_t info;
    zev_tcp_server_address(&s, &info);

    /* Out of descriptors with five clients waiting: the first accept says EMFILE, and the
     * spare descriptor lets every waiting one be accepted and closed, at once. */
    int fds[8];
    connect_raw(info.port, fds, 5);
    zev_fault_fail(ZEV_SYS_ACCEPT, 0, 1, EMFILE);
    run_until_shed(&s, 5);
    cr_assert_eq(exh_accepted, 0, "nothing accepted while out of descriptors");
    cr_assert_eq(emfile_reports, 1);
    zt_assert_closed_by_server(fds, 5);

    /* Still short (no accept has succeeded since): three more are shed without a report. */
    connect_raw(info.port, fds, 3);
    zev_fault_fail(ZEV_SYS_ACCEPT, 0, 1, EMFILE);
    run_until_shed(&s, 8);
    cr_assert_eq(emfile_reports, 1, "one report per episode");
    zt_assert_closed_by_server(fds, 3);

    /* Descriptors are back: the next client is served, which ends the episode... */
    zev_fault_reset();
    connect_raw(info.port, fds, 1);
    cr_assert(zt_run_until(&exh_accepted, 1, 5000));
    /* ...so the next shortage is a new episode, reported again. */
    connect_raw(info.port, fds + 1, 1);
    zev_fault_fail(ZEV_SYS_ACCEPT, 0, 1, EMFILE);
    run_until_shed(&s, 9);
    cr_assert_eq(emfile_reports, 2);
    zt_assert_closed_by_server(fds + 1, 1);

    zev_tcp_server_stats_t st;
    zev_tcp_server_stats(&s, &st);
    cr_assert_eq(st.accepted, 1);
    cr_assert_eq(st.accept_errors, 2, "counted with the reports");
    cr_assert_eq(st.dropped, 9, "shed connections are dropped ones too");
    zev_close(&exh_conns[0].handle, NULL);
    zev_close(&s.handle, NULL);
    zt_run();
    close(fds[0]);
}

/* Found by the API fuzzer with every slice sent zero-copy (ZEV_SEND_ZC_MIN=1): a socket that
 * failed while the kernel still held a zero-copy send's bytes reported the error at once and
 * completed its writes only at the kernel's notification, after the error; writes complete
 * before the error event on every other path. Here the peer does not read and its window is
 * full, so the zero-copy send's bytes wait in the socket, and the notification with them. */
static int zc_written, zc_status, zc_errors, zc_written_at_error;

static void zc_write_done(zev_tcp_t *t, int status, void *arg) {
    (void)t, (void)arg;
    zc_written++;
    zc_status = status;
}

static void zc_error(zev_tcp_t *t, int err) {
    (void)t, (void)err;
    zc_errors++;
    zc_written_at_error = zc_written;
}

static void discard(zev_tcp_t *t, const zev_slice_t *s) {
    (void)t, (void)s;
}

Test(tcp_fault, a_failure_while_the_kernel_holds_a_zero_copy_send_reports_the_write_first) {
    zt_loop_with(&(zev_loop_options_t){.send_zc_min = 4096});
    if (!zev__loop_completes(&zt_loop)) cr_skip_test("zero-copy sends are io_uring's");
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    static const zev_tcp_events_t a_events = {.error = zc_error};
    static const zev_tcp_events_t b_events = {.data = discard};
    zev_tcp_set_events(&a, &a_events);
    zev_tcp_set_events(&b, &b_events);
    /* Fill the peer's window past what it takes, leaving room in a's own buffer. */
    int big = 1 << 20;
    cr_assert_eq(setsockopt(zev_tcp_fileno(&a), SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
    static char filler[256 * 1024];
    size_t filled = 0;
    while (filled < sizeof(filler)) {
        ssize_t r = send(zev_tcp_fileno(&a), filler + filled, sizeof(filler) - filled,
                         MSG_DONTWAIT);
        if (r <= 0) break;
        filled += (size_t)r;
    }
    zev_buf_t *chunk = zev_buf_get(&zt_loop);
    zev_slice_t s = {chunk->base, 16384, chunk};
    memset(chunk->base, 'z', s.len);
    cr_assert_geq(zev_tcp_write(&a, &s, 1, zc_write_done, NULL), 0);
    zev_buf_unref(chunk);
    for (int i = 0; i < 2000 && zt_loop.metrics.zc_sends == 0; i++) {
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        usleep(1000);
    }
    cr_assert_eq(zt_loop.metrics.zc_sends, 1, "the write went out zero-copy");
    for (int i = 0; i < 20; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(zc_written, 0, "the peer has not read: the kernel holds the bytes");
    /* The socket fails: the next send it starts meets an error. */
    zev_fault_fail(ZEV_SYS_SENDMSG, 0, 1, ECONNRESET);
    zev_slice_t more = zev_slice("x", 1);
    cr_assert_geq(zev_tcp_write(&a, &more, 1, zc_write_done, NULL), 0);
    for (int i = 0; i < 20; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(zc_errors, 0, "the error waits for the writes, which wait for the kernel");
    zev_tcp_read_start(&b); /* the peer reads: the bytes go, the kernel lets go of them */
    for (int i = 0; i < 5000 && !zc_errors; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(zc_errors, 1);
    cr_assert_eq(zc_written, 2);
    cr_assert_eq(zc_written_at_error, 2, "both writes were told before the error event");
    cr_assert_eq(zc_status, -ECONNRESET, "the last write failed with the socket");
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
}
