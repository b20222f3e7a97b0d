/* tests/test_tcp_zc.c: zero-copy send (io_uring's SEND_ZC, zev_loop_options_t.send_zc_min).
 *
 * A zero-copy send's result comes once the bytes are in the socket, but the kernel sends them
 * from the writer's pages, which it holds until a notification: on a real link, when the peer
 * acknowledged them. So a write is only complete, its callback due and its memory the
 * writer's again, at the notification, and a close must wait for it too. A writer that
 * reuses its memory as soon as it is told (the contract of every write) would otherwise put
 * other bytes on the wire.
 *
 * On loopback the notification follows the result at once, so nothing could show a callback
 * that came too early. The tests that can show it slow the link down instead: they run in a
 * network namespace of their own whose loopback goes through a token-bucket queue (`tc ...
 * tbf`), where the sent bytes wait for a fraction of a second, pages and all, after their
 * send's result. Without root or `tc` those tests skip, saying why.
 *
 * On readiness backends the option does nothing: the same tests check that.
 */
#include "tcp_pair.h"
#include "zt.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_zc, .init = zt_setup, .fini = zt_teardown, .timeout = 60);

/* zt_loop again, with zero-copy sends from min bytes up (0: the environment decides). */
static void zc_loop(size_t min) {
    zt_loop_with(&(zev_loop_options_t){.send_zc_min = min});
}

/* Move this test's process (Criterion runs each in its own) into a new network namespace
 * whose loopback is rate-limited, so sent bytes wait in its queue. Skips the test if that
 * cannot be had. The namespace vanishes with the process. */
static void slow_loopback(void) {
    if (geteuid() != 0) cr_skip_test("needs root for a network namespace");
    if (unshare(CLONE_NEWNET) != 0) cr_skip_test("unshare(CLONE_NEWNET): %s", strerror(errno));
    /* An MTU of 1500 keeps each packet under the bucket's burst (a 64 KiB loopback packet
     * would be dropped whole); 800 kbit/s is 100 KB/s, so 48 KiB take about half a second. */
    int st = system("ip link set lo mtu 1500 up >/dev/null 2>&1 && "
                    "tc qdisc add dev lo root tbf rate 800kbit burst 16kb latency 10s "
                    ">/dev/null 2>&1");
    if (st != 0) cr_skip_test("no rate-limited loopback (`ip`, `tc qdisc ... tbf`): %d", st);
}

enum { PAYLOAD = 48 * 1024 };

static unsigned char pattern_byte(size_t i) {
    return (unsigned char)(i * 7u + i / 251u + 1u);
}

/* The reading side: counts bytes and those that differ from the pattern, and the EOF. */
struct receiver {
    size_t got;
    size_t wrong;
    int ended;
};

static void on_receiver_data(zev_tcp_t *t, const zev_slice_t *s) {
    struct receiver *r = t->handle.data;
    for (size_t i = 0; i < s->len; i++) r->wrong += (unsigned char)s->base[i] != pattern_byte(r->got + i);
    r->got += s->len;
}

static void on_receiver_end(zev_tcp_t *t) {
    struct receiver *r = t->handle.data;
    r->ended = 1;
}

static const zev_tcp_events_t receiver_events = {.data = on_receiver_data, .end = on_receiver_end};

/* The writing side: a chunk of its own it fills with the pattern and writes by reference.
 * Told the write is done, it reuses the chunk at once, as a writer with one buffer does. */
struct writer {
    zev_buf_t *chunk;
    int written;      /* write callbacks */
    int status;       /* the last one's */
    int closed;       /* close callbacks */
    int order;        /* 1: the write callback came before the close callback */
    int errors;
    int last_error;
};

static void reuse_chunk(struct writer *w) {
    if (!w->chunk) return;
    memset(w->chunk->base, 'X', PAYLOAD);
    zev_buf_unref(w->chunk);
    w->chunk = NULL;
}

static void on_written(zev_tcp_t *t, int status, void *arg) {
    (void)t;
    struct writer *w = arg;
    w->written++;
    w->status = status;
    w->order = w->closed == 0;
    reuse_chunk(w);
}

static void on_writer_closed(zev_handle_t *h) {
    struct writer *w = h->data;
    w->closed++;
    reuse_chunk(w);
}

static void on_writer_error(zev_tcp_t *t, int err) {
    struct writer *w = t->handle.data;
    w->errors++;
    w->last_error = err;
}

static const zev_tcp_events_t writer_events = {.error = on_writer_error};

static void write_pattern(zev_tcp_t *a, struct writer *w) {
    w->chunk = zev_buf_get(&zt_loop);
    cr_assert_not_null(w->chunk);
    cr_assert_geq(w->chunk->size, PAYLOAD);
    for (size_t i = 0; i < PAYLOAD; i++) w->chunk->base[i] = (char)pattern_byte(i);
    zev_slice_t s = {w->chunk->base, PAYLOAD, w->chunk};
    cr_assert_geq(zev_tcp_write(a, &s, 1, on_written, w), 0);
}

/* Run until the loop counted a zero-copy send (its result came), or 5 s passed. */
static int run_until_zero_copy_sent(void) {
    for (int i = 0; i < 5000 && zt_loop.metrics.zc_sends == 0; i++) {
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        usleep(1000);
    }
    return zt_loop.metrics.zc_sends > 0;
}

static void run_until_received(struct receiver *r, size_t want) {
    for (int i = 0; i < 10000 && r->got < want; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(r->got, want, "%zu of %zu bytes arrived", r->got, want);
}

static void pair(zev_tcp_t *a, zev_tcp_t *b, struct writer *w, struct receiver *r) {
    zt_tcp_pair(a, b);
    a->handle.data = w;
    zev_tcp_set_events(a, &writer_events);
    b->handle.data = r;
    zev_tcp_set_events(b, &receiver_events);
    zev_tcp_read_start(b);
}

static void require_completion_mode(void) {
    if (!zt_loop_completes()) cr_skip_test("zero-copy sends exist only in io_uring's completion mode");
}

/* On the slow loopback: a pair, and the pattern written zero-copy, its send's result come
 * (the bytes are in the socket; the kernel still reads them from the chunk). */
static void zero_copy_write_in_flight(zev_tcp_t *a, zev_tcp_t *b, struct writer *w,
                                      struct receiver *r) {
    slow_loopback();
    zc_loop(4096);
    require_completion_mode();
    pair(a, b, w, r);
    write_pattern(a, w);
    cr_assert(run_until_zero_copy_sent(), "the write went out zero-copy");
}

Test(tcp_zc, a_chunk_reused_in_its_write_callback_reaches_the_peer_as_written) {
    zev_tcp_t a, b;
    struct writer w = {0};
    struct receiver r = {0};
    zero_copy_write_in_flight(&a, &b, &w, &r);
    run_until_received(&r, PAYLOAD);
    cr_assert_eq(r.wrong, 0, "%zu bytes arrived rewritten: the callback came before the "
                             "kernel let go of them", r.wrong);
    for (int i = 0; i < 1000 && !w.written; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(w.written, 1);
    cr_assert_eq(w.status, 0);
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
}

/* The socket closes after its zero-copy send's result, before the notification: the kernel
 * still sends the bytes from the chunk after the descriptor is gone, so the close callback
 * (after which everything the socket took is the caller's again) waits for it. */
Test(tcp_zc, a_close_before_the_kernel_let_go_of_a_zero_copy_send_holds_its_callback) {
    zev_tcp_t a, b;
    struct writer w = {0};
    struct receiver r = {0};
    zero_copy_write_in_flight(&a, &b, &w, &r);
    cr_assert_eq(w.written, 0, "the bytes are still on their way");
    zev_close(&a.handle, on_writer_closed);
    for (int i = 0; i < 10000 && !(r.ended && w.closed); i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(r.got, PAYLOAD, "%zu of %d bytes arrived", r.got, PAYLOAD);
    cr_assert_eq(r.wrong, 0, "%zu bytes arrived rewritten: the close callback came before "
                             "the kernel let go of them", r.wrong);
    cr_assert_eq(r.ended, 1, "a graceful close: the EOF follows the bytes");
    cr_assert_eq(w.closed, 1);
    cr_assert_eq(w.written, 1, "the write is told once");
    cr_assert_eq(w.status, 0, "its bytes went out: %s", zev_err_name(w.status));
    cr_assert_eq(w.order, 1, "the write callback comes before the close callback");
    zev_close(&b.handle, NULL);
    zt_run();
}

/* The peer resets while a zero-copy send's notification is due: the write is told once, the
 * error once, and nothing the socket held is let go before the kernel is done with it. */
Test(tcp_zc, a_reset_while_a_notification_is_due_tells_the_write_and_the_error_once) {
    zev_tcp_t a, b;
    struct writer w = {0};
    struct receiver r = {0};
    zero_copy_write_in_flight(&a, &b, &w, &r);
    zev_tcp_read_start(&a); /* to see the reset */
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    cr_assert_eq(setsockopt(zev_tcp_fileno(&b), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard)), 0);
    zev_close(&b.handle, NULL);
    for (int i = 0; i < 10000 && !(w.written && w.errors); i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    for (int i = 0; i < 10; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(w.written, 1, "the write is told once");
    cr_assert_eq(w.errors, 1, "the error event once");
    cr_assert(w.last_error == -ECONNRESET || w.last_error == -EPIPE, "%s",
              zev_err_name(w.last_error));
    zev_close(&a.handle, NULL);
    zt_run();
    zev_buf_pool_stats_t pool;
    zev_buf_pool_stats(&zt_loop, &pool);
    cr_assert_eq(pool.in_use, pool.lent, "every chunk reference but the ring's was let go");
}

/* Only slices of at least the threshold go zero-copy; on a readiness backend none do. */
Test(tcp_zc, only_slices_over_the_threshold_go_zero_copy_and_all_arrive_in_order) {
    zc_loop(4096);
    zev_tcp_t a, b;
    struct writer w = {0};
    struct receiver r = {0};
    pair(&a, &b, &w, &r);
    zev_buf_t *chunk = zev_buf_get(&zt_loop);
    cr_assert_not_null(chunk);
    for (size_t i = 0; i < PAYLOAD; i++) chunk->base[i] = (char)pattern_byte(i);
    /* One small slice, one large, one small: three queued entries, one chain. */
    zev_slice_t s[3] = {{chunk->base, 1000, chunk},
                        {chunk->base + 1000, PAYLOAD - 2000, chunk},
                        {chunk->base + PAYLOAD - 1000, 1000, chunk}};
    cr_assert_geq(zev_tcp_write(&a, s, 3, on_written, &w), 0);
    zev_buf_unref(chunk);
    run_until_received(&r, PAYLOAD);
    cr_assert_eq(r.wrong, 0);
    for (int i = 0; i < 1000 && !w.written; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(w.written, 1);
    cr_assert_eq(w.status, 0);
    cr_assert_eq(zt_loop.metrics.zc_sends, zt_loop_completes() ? 1u : 0u,
                 "%llu zero-copy sends", (unsigned long long)zt_loop.metrics.zc_sends);
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
}

/* The default is never; ZEV_SEND_ZC_MIN turns it on for runs that compare, and text that is
 * not a number leaves it off. */
static uint64_t zero_copy_sends_with_env(const char *value) {
    if (value) {
        setenv("ZEV_SEND_ZC_MIN", value, 1);
    } else {
        unsetenv("ZEV_SEND_ZC_MIN");
    }
    zc_loop(0);
    zev_tcp_t a, b;
    struct writer w = {0};
    struct receiver r = {0};
    pair(&a, &b, &w, &r);
    write_pattern(&a, &w);
    run_until_received(&r, PAYLOAD);
    for (int i = 0; i < 1000 && !w.written; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(r.wrong, 0);
    uint64_t n = zt_loop.metrics.zc_sends;
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
    return n;
}

Test(tcp_zc, zero_copy_is_off_by_default_and_the_environment_can_turn_it_on) {
    cr_assert_eq(zero_copy_sends_with_env(NULL), 0, "never by default");
    cr_assert_eq(zero_copy_sends_with_env("many"), 0, "not a number: off");
    cr_assert_eq(zero_copy_sends_with_env("-5"), 0, "negative: off");
    bool completes = zt_loop_completes();
    cr_assert_eq(zero_copy_sends_with_env("4096"), completes ? 1u : 0u);
    unsetenv("ZEV_SEND_ZC_MIN");
}
