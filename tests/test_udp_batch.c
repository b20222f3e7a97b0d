/* tests/test_udp_batch.c: batching and failure paths of UDP, counted and provoked through the
 * syscall seam (built only with -Dfault_injection=true): recvmmsg/sendmmsg calls per burst,
 * the plain recvmsg/sendmsg path, the send queue (by reference, scatter-gather, high-water
 * mark, drain, cancel on close), a datagram that fails inside a batch, EINTR, receive errors,
 * pool exhaustion, and fairness between sockets. */
#include "zt.h"

#include "sys_fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void batch_setup(void) {
    zt_setup();
    zev_fault_reset();
}

static void batch_teardown(void) {
    zev_fault_reset();
    zt_teardown();
}

TestSuite(udp_batch, .init = batch_setup, .fini = batch_teardown, .timeout = 30);

/* ---- helpers ---- */

enum { KEEP = 64 };

struct inbox {
    zev_udp_t udp;
    int n;
    int errors;
    int last_err;
    char data[KEEP][32];
    size_t len[KEEP];
};

static int deliveries;
static int delivery_owner[1024];

static void inbox_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                          const zev_udp_rinfo_t *ri) {
    (void)ri;
    struct inbox *in = u->handle.data;
    if (!msg) {
        in->errors++;
        in->last_err = status;
        return;
    }
    cr_assert_eq(status, 0);
    if (deliveries < 1024) delivery_owner[deliveries] = (int)(intptr_t)u->handle.data;
    deliveries++;
    int i = in->n++;
    if (i < KEEP) {
        size_t n = msg->len < 31 ? msg->len : 31;
        memcpy(in->data[i], msg->base, n);
        in->data[i][n] = '\0';
        in->len[i] = msg->len;
    }
}

static int inbox_open_at(struct inbox *in, int start, int family, const char *host) {
    memset(in, 0, sizeof(*in));
    cr_assert_eq(zev_udp_init(&zt_loop, &in->udp, family), 0);
    in->udp.handle.data = in;
    cr_assert_eq(zev_udp_set_recv_buffer_size(&in->udp, 4 << 20), 0);
    cr_assert_eq(zev_udp_bind(&in->udp, host, 0, NULL, NULL), 0);
    if (start) cr_assert_eq(zev_udp_recv_start(&in->udp, inbox_message), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&in->udp, &info), 0);
    return info.port;
}

static int inbox_open(struct inbox *in, int start) {
    return inbox_open_at(in, start, 4, "127.0.0.1");
}


/* Queue n datagrams "0", "1", ... to port from a plain socket, before zev reads any. */
static void preload(int port, int n) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    zev_sockaddr_t to;
    zev_addr_parse(&to, "127.0.0.1", port);
    for (int i = 0; i < n; i++) {
        char b[16];
        int len = snprintf(b, sizeof(b), "%d", i);
        cr_assert_eq(sendto(fd, b, (size_t)len, 0, &to.sa, zev_addr_len(&to)), len);
    }
    close(fd);
}

struct sent {
    int n;
    int status[KEEP * 4];
};

static void on_sent(zev_udp_t *u, int status, void *arg) {
    (void)u;
    struct sent *s = arg;
    if (s->n < KEEP * 4) s->status[s->n] = status;
    s->n++;
}

/* ---- receive batching ---- */

static void burst_in_batches(unsigned batch, size_t max_datagram, int n) {
    struct inbox in;
    int port = inbox_open(&in, 0);
    cr_assert_eq(zev_udp_set_batch_size(&in.udp, batch), 0);
    if (max_datagram) cr_assert_eq(zev_udp_set_max_datagram(&in.udp, max_datagram), 0);
    preload(port, n);
    zev_fault_reset();
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    cr_assert(zt_run_until(&in.n, n, 10000), "got %d of %d", in.n, n);
    uint64_t calls = zev_fault_calls(ZEV_SYS_RECVMMSG);
    cr_log_info("udp recv burst: %d datagrams, batch %u, slot %zu: %llu recvmmsg calls, %llu "
                "recvmsg calls",
                n, batch, max_datagram ? max_datagram : (size_t)65507, (unsigned long long)calls,
                (unsigned long long)zev_fault_calls(ZEV_SYS_RECVMSG));
    cr_assert_leq(calls, (uint64_t)(n / (int)batch + 2), "%llu recvmmsg calls for %d datagrams",
                  (unsigned long long)calls, n);
    cr_assert_eq(zev_fault_calls(ZEV_SYS_RECVMSG), 0);
    for (int i = 0; i < KEEP; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        cr_assert_str_eq(in.data[i], b, "in order");
    }
    zev_buf_pool_stats_t ps;
    zev_buf_pool_stats(&zt_loop, &ps);
    cr_assert_eq(ps.in_use - ps.lent, 0, "every slot went back to the pool");
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, a_burst_takes_datagrams_over_batch_recvmmsg_calls) {
    burst_in_batches(32, 1024, 512);
}

Test(udp_batch, the_largest_batch_with_small_slots) {
    burst_in_batches(ZEV_UDP_BATCH_MAX, 512, 640);
}

Test(udp_batch, default_slots_hold_a_whole_datagram_each) {
    burst_in_batches(ZEV_UDP_BATCH_DEFAULT, 0, 256);
}

Test(udp_batch, batch_of_one_uses_the_portable_recvmsg_path) {
    struct inbox in;
    int port = inbox_open(&in, 0);
    cr_assert_eq(zev_udp_set_batch_size(&in.udp, 1), 0);
    preload(port, 40);
    zev_fault_reset();
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    cr_assert(zt_run_until(&in.n, 40, 5000));
    cr_assert_eq(zev_fault_calls(ZEV_SYS_RECVMMSG), 0);
    cr_assert_leq(zev_fault_calls(ZEV_SYS_RECVMSG), 40 + 4);
    cr_assert_str_eq(in.data[39], "39");
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, one_socket_cannot_starve_another) {
    struct inbox a, b;
    int pa = inbox_open(&a, 0);
    int pb = inbox_open(&b, 0);
    cr_assert_eq(zev_udp_set_batch_size(&a.udp, 1), 0);
    cr_assert_eq(zev_udp_set_batch_size(&b.udp, 1), 0);
    preload(pa, 200);
    preload(pb, 200);
    deliveries = 0;
    cr_assert_eq(zev_udp_recv_start(&a.udp, inbox_message), 0);
    cr_assert_eq(zev_udp_recv_start(&b.udp, inbox_message), 0);
    cr_assert(zt_run_until(&deliveries, 400, 5000));
    /* a read budget per iteration: b gets a turn long before a has read its 200 */
    int first_b = -1;
    for (int i = 0; i < 400 && first_b < 0; i++) {
        if (delivery_owner[i] == (int)(intptr_t)&b) first_b = i;
    }
    cr_assert_geq(first_b, 0);
    cr_assert_lt(first_b, 100, "b's first datagram came after %d of a's", first_b);
    zev_close(&a.udp.handle, NULL);
    zev_close(&b.udp.handle, NULL);
    zt_run();
}

/* ---- receive failures ---- */

/* These tests fail the receive and send syscalls through the seam; in completion mode the
 * socket makes none (its operations go through the ring), and test_udp_ring.c covers the same
 * behaviour there. */
static void skip_if_completing(void) {
    if (zt_loop_completes()) cr_skip_test("completion mode: no recvmmsg/sendmmsg to fail");
}


Test(udp_batch, eintr_is_retried_and_other_errors_reach_the_callback) {
    skip_if_completing();
    struct inbox in;
    int port = inbox_open(&in, 0);
    preload(port, 2);
    zev_fault_fail(ZEV_SYS_RECVMMSG, 0, 1, EINTR);
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    cr_assert(zt_run_until(&in.n, 2, 5000));
    cr_assert_eq(in.errors, 0, "EINTR is retried, never reported");
    zev_fault_fail(ZEV_SYS_RECVMMSG, 0, 1, EIO);
    preload(port, 1);
    cr_assert(zt_run_until(&in.errors, 1, 5000));
    cr_assert_eq(in.last_err, -EIO, "got %s", zev_err_name(in.last_err));
    cr_assert_eq(in.n, 2, "an error ends the pass: the datagram waits for the next event");
    preload(port, 1);
    cr_assert(zt_run_until(&in.n, 4, 5000), "the next arrival reads both");
    cr_assert_eq(in.errors, 1);
    zev_udp_stats_t st;
    zev_udp_stats(&in.udp, &st);
    cr_assert_eq(st.recv_errors, 1);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

/* An ICMP error on a connected socket is handed over by one receive call and is gone: the
 * datagrams queued behind it are read in the same pass. */
Test(udp_batch, a_handed_over_receive_error_does_not_hold_back_the_datagrams_behind_it) {
    skip_if_completing();
    struct inbox in;
    int port = inbox_open(&in, 0);
    preload(port, 3);
    zev_fault_fail(ZEV_SYS_RECVMMSG, 0, 1, ECONNREFUSED);
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    cr_assert(zt_run_until(&in.n, 3, 5000));
    cr_assert_eq(in.errors, 1);
    cr_assert_eq(in.last_err, -ECONNREFUSED);
    cr_assert_eq(zev_fault_calls(ZEV_SYS_RECVMMSG), 2, "the error, then the three datagrams");
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

/* A receive error that does not go away (a permanent -ENOMEM from recvmmsg) must not make the
 * loop spin: it is reported once per readable event, and the loop blocks until the next one. */
static void stop_loop(zev_timer_t *t) {
    zev_stop(t->handle.loop);
}

static void persistent_error_blocks_the_loop(int err) {
    struct inbox in;
    int port = inbox_open(&in, 0);
    preload(port, 1);
    zev_timer_t guard;
    cr_assert_eq(zev_timer_init(&zt_loop, &guard), 0);
    cr_assert_eq(zev_timer_start(&guard, stop_loop, 50, 0), 0);
    /* Take the arrival's own edge first (ignored: not receiving yet), so recv_start's look
     * is the one readable event of the run. */
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    zev_fault_reset();
    zev_fault_fail(ZEV_SYS_RECVMMSG, 0, -1, err);
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    zev_run(&zt_loop, ZEV_RUN_DEFAULT); /* until the guard stops it, 50 ms on */
    uint64_t calls = zev_fault_calls(ZEV_SYS_RECVMMSG);
    cr_log_info("permanent %s for 50 ms: %llu recvmmsg calls, %d error callbacks",
                zev_err_name(-err), (unsigned long long)calls, in.errors);
    cr_assert_eq(in.errors, 1, "%d error callbacks", in.errors);
    cr_assert_eq(in.last_err, -err);
    /* One call; two for an error that claims to be handed over (the pass tries once more). */
    cr_assert_leq(calls, 2, "%llu recvmmsg calls", (unsigned long long)calls);
    /* The fault clears; the next arrival is the next readable event: both datagrams come. */
    zev_fault_reset();
    preload(port, 1);
    cr_assert(zt_run_until(&in.n, 2, 5000));
    cr_assert_eq(in.errors, 1);
    zev_close(&guard.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, a_persistent_receive_error_is_reported_once_not_spun) {
    skip_if_completing();
    persistent_error_blocks_the_loop(ENOMEM);
    persistent_error_blocks_the_loop(EFAULT);
    /* Even an error of the kind a receive call normally hands over once. */
    persistent_error_blocks_the_loop(ECONNREFUSED);
}

/* An allocator that refuses pool chunks on demand. */
static int refuse_chunks;
static void *picky_alloc(void *ctx, size_t size) {
    (void)ctx;
    if (refuse_chunks && size > 4096 * 4) return NULL;
    return malloc(size);
}
static void picky_free(void *ctx, void *p, size_t size) {
    (void)ctx;
    (void)size;
    free(p);
}

Test(udp_batch, an_exhausted_pool_stops_receiving_with_enomem) {
    zev_loop_t loop;
    zev_loop_options_t o = {.allocator = {picky_alloc, picky_free, NULL}};
    cr_assert_eq(zev_loop_init_ex(&loop, &o), 0);
    struct inbox in;
    memset(&in, 0, sizeof(in));
    cr_assert_eq(zev_udp_init(&loop, &in.udp, 4), 0);
    in.udp.handle.data = &in;
    cr_assert_eq(zev_udp_bind(&in.udp, "127.0.0.1", 0, NULL, NULL), 0);
    zev_addr_info_t info;
    zev_udp_local_address(&in.udp, &info);
    preload(info.port, 3);
    refuse_chunks = 1;
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    for (int i = 0; i < 5 && !in.errors; i++) {
        zev_run(&loop, ZEV_RUN_NOWAIT);
    }
    cr_assert_eq(in.errors, 1);
    cr_assert_eq(in.last_err, -ENOMEM);
    cr_assert_eq(zev_is_active(&in.udp.handle), 0, "receiving stopped rather than spin");
    refuse_chunks = 0;
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    for (int i = 0; i < 5 && in.n < 3; i++) {
        zev_run(&loop, ZEV_RUN_NOWAIT);
    }
    cr_assert_eq(in.n, 3, "nothing was lost");
    zev_close(&in.udp.handle, NULL);
    zev_run(&loop, ZEV_RUN_DEFAULT);
    cr_assert_eq(zev_loop_close(&loop), 0);
}

/* ---- send queue ---- */

/* Make the next immediate send meet EAGAIN, so it and every send after it are queued. */
static void block_next_send(void) {
    zev_fault_fail(ZEV_SYS_SENDMSG, 0, 1, EAGAIN);
}

Test(udp_batch, a_queued_burst_is_flushed_with_datagrams_over_batch_sendmmsg_calls) {
    struct inbox in;
    int port = inbox_open(&in, 1);
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    enum { N = 256 };
    static char text[N][8];
    struct sent s = {0};
    block_next_send();
    for (int i = 0; i < N; i++) {
        int len = snprintf(text[i], sizeof(text[i]), "%d", i);
        zev_slice_t sl = zev_slice(text[i], (size_t)len);
        cr_assert_geq(zev_udp_send(&tx, &sl, 1, "127.0.0.1", port, on_sent, &s), 0);
    }
    cr_assert_eq(zev_udp_send_queue_count(&tx), N);
    cr_assert_eq(s.n, 0);
    uint64_t before_mmsg = zev_fault_calls(ZEV_SYS_SENDMMSG);
    uint64_t before_msg = zev_fault_calls(ZEV_SYS_SENDMSG);
    cr_assert_eq(before_msg, 1, "only the first send was tried at once");
    cr_assert(zt_run_until(&s.n, N, 10000));
    uint64_t mmsg = zev_fault_calls(ZEV_SYS_SENDMMSG) - before_mmsg;
    uint64_t msg = zev_fault_calls(ZEV_SYS_SENDMSG) - before_msg;
    cr_log_info("udp send burst: %d datagrams, batch %d: %llu sendmmsg calls, %llu sendmsg calls",
                N, ZEV_UDP_BATCH_DEFAULT, (unsigned long long)mmsg, (unsigned long long)msg);
    cr_assert_leq(mmsg + msg, (uint64_t)(N / ZEV_UDP_BATCH_DEFAULT + 2));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(s.status[i], (int)strlen(text[i]), "callback %d in order with its bytes", i);
    }
    cr_assert(zt_run_until(&in.n, N, 10000));
    cr_assert_str_eq(in.data[63], "63");
    zev_udp_stats_t st;
    zev_udp_stats(&tx, &st);
    cr_assert_eq(st.datagrams_sent, N);
    cr_assert_eq(st.send_calls, 1 + mmsg + msg);
    cr_assert_eq(zev_udp_send_queue_count(&tx), 0);
    cr_assert_eq(zev_udp_send_queue_size(&tx), 0);
    cr_assert_eq(zt_loop.slab_large.in_use, 0, "every queue entry went back to the slab");
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, batch_of_one_flushes_with_sendmsg) {
    skip_if_completing();
    struct inbox in;
    int port = inbox_open(&in, 1);
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    cr_assert_eq(zev_udp_set_batch_size(&tx, 1), 0);
    block_next_send();
    zev_slice_t sl = zev_slice("x", 1);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(zev_udp_send(&tx, &sl, 1, "127.0.0.1", port, NULL, NULL), 0);
    }
    cr_assert(zt_run_until(&in.n, 10, 5000));
    cr_assert_eq(zev_fault_calls(ZEV_SYS_SENDMMSG), 0);
    cr_assert_eq(zev_fault_calls(ZEV_SYS_SENDMSG), 11);
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, queued_datagrams_are_sent_by_reference) {
    struct inbox in;
    int port = inbox_open(&in, 1);
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    char raw[4] = {'A', 'A', 'A', 'A'};
    zev_buf_t *chunk = zev_buf_get(&zt_loop);
    cr_assert_not_null(chunk);
    memcpy(chunk->base, "pooled", 6);
    zev_slice_t owned = {chunk->base, 6, chunk};
    zev_slice_t rs = zev_slice(raw, 4);
    block_next_send();
    cr_assert_eq(zev_udp_send(&tx, &rs, 1, "127.0.0.1", port, NULL, NULL), 0);
    cr_assert_eq(zev_udp_send(&tx, &owned, 1, "127.0.0.1", port, NULL, NULL), 0);
    zev_buf_unref(chunk); /* the queue holds its own reference */
    zev_buf_pool_stats_t ps;
    zev_buf_pool_stats(&zt_loop, &ps);
    cr_assert_eq(ps.in_use - ps.lent, 1);
    memset(raw, 'B', sizeof(raw)); /* still queued: the kernel will read these bytes */
    cr_assert(zt_run_until(&in.n, 2, 5000));
    cr_assert_str_eq(in.data[0], "BBBB", "queued by reference, not copied");
    cr_assert_str_eq(in.data[1], "pooled");
    zev_buf_pool_stats(&zt_loop, &ps);
    cr_assert_eq(ps.in_use - ps.lent, 0, "sent: the queue dropped its reference");
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, a_queued_datagram_of_many_slices_keeps_them_all) {
    struct inbox in;
    int port = inbox_open(&in, 1);
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    const char *letters = "abcdefghijklmnopqrstuvwxyz";
    enum { N_SLICES = 23 };
    zev_buf_t *chunk = zev_buf_get(&zt_loop);
    memcpy(chunk->base, letters, 26);
    zev_slice_t s[N_SLICES];
    for (int i = 0; i < N_SLICES; i++) {
        /* odd ones from the pool (referenced), even ones raw */
        s[i] = i % 2 ? (zev_slice_t){chunk->base + i, 1, chunk} : zev_slice(letters + i, 1);
    }
    block_next_send();
    cr_assert_eq(zev_udp_send(&tx, s, N_SLICES, "127.0.0.1", port, NULL, NULL), 0);
    memset(s, 0, sizeof(s)); /* the caller's array may go: the queue kept descriptors */
    zev_buf_unref(chunk);
    cr_assert_eq(zt_loop.slab_large.in_use, 1 + 5, "one entry and five continuations");
    cr_assert(zt_run_until(&in.n, 1, 5000));
    cr_assert_eq(in.len[0], N_SLICES);
    cr_assert_eq(memcmp(in.data[0], letters, N_SLICES), 0);
    cr_assert_eq(zt_loop.slab_large.in_use, 0);
    zev_buf_pool_stats_t ps;
    zev_buf_pool_stats(&zt_loop, &ps);
    cr_assert_eq(ps.in_use - ps.lent, 0);
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

static int drains;
static void on_drain(zev_udp_t *u) {
    (void)u;
    drains++;
}

Test(udp_batch, high_water_mark_and_drain) {
    struct inbox in;
    int port = inbox_open(&in, 1);
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    cr_assert_eq(zev_udp_set_high_water_mark(&tx, 100), 0);
    cr_assert_eq(zev_udp_set_drain_cb(&tx, on_drain), 0);
    char block[30];
    memset(block, 'z', sizeof(block));
    zev_slice_t sl = zev_slice(block, sizeof(block));
    block_next_send();
    drains = 0;
    int r[5];
    for (int i = 0; i < 5; i++) {
        r[i] = zev_udp_send(&tx, &sl, 1, "127.0.0.1", port, NULL, NULL);
    }
    cr_assert_eq(r[0], 0);
    cr_assert_eq(r[2], 0, "90 bytes queued: under the mark");
    cr_assert_eq(r[3], 1, "120 bytes queued: over the mark");
    cr_assert_eq(r[4], 1);
    cr_assert_eq(zev_udp_send_queue_size(&tx), 150);
    cr_assert_eq(zev_udp_send_queue_count(&tx), 5);
    cr_assert_eq(drains, 0);
    cr_assert(zt_run_until(&drains, 1, 5000));
    cr_assert(zt_run_until(&in.n, 5, 5000));
    cr_assert_eq(drains, 1);
    cr_assert_eq(zev_udp_send_queue_size(&tx), 0);
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, a_failed_datagram_in_a_batch_does_not_stop_the_others) {
    skip_if_completing();
    struct inbox in;
    int port = inbox_open_at(&in, 1, 6, "::1");
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 6), 0);
    zev_udp_bind_opts_t only6 = {.ipv6_only = 1};
    cr_assert_eq(zev_udp_bind(&tx, "::1", 0, &only6, NULL), 0);
    struct sent s = {0};
    zev_slice_t sl = zev_slice("abc", 3);
    block_next_send();
    cr_assert_eq(zev_udp_send(&tx, &sl, 1, "::1", port, on_sent, &s), 0);
    /* IPv4-mapped from an IPv6-only socket: the kernel refuses this one, nothing is sent */
    cr_assert_eq(zev_udp_send(&tx, &sl, 1, "::ffff:127.0.0.1", port, on_sent, &s), 0);
    cr_assert_eq(zev_udp_send(&tx, &sl, 1, "::1", port, on_sent, &s), 0);
    zev_fault_fail(ZEV_SYS_SENDMMSG, 0, 1, ENOBUFS); /* and the first flush fails outright */
    cr_assert_eq(zev_udp_send(&tx, &sl, 1, "::1", port, on_sent, &s), 0);
    cr_assert(zt_run_until(&s.n, 4, 5000));
    cr_assert_eq(s.status[0], -ENOBUFS, "got %s", zev_err_name(s.status[0]));
    cr_assert_eq(s.status[1], -ENETUNREACH, "got %s", zev_err_name(s.status[1]));
    cr_assert_eq(s.status[2], 3);
    cr_assert_eq(s.status[3], 3);
    cr_assert(zt_run_until(&in.n, 2, 5000));
    zev_udp_stats_t st;
    zev_udp_stats(&tx, &st);
    cr_assert_eq(st.send_errors, 2);
    cr_assert_eq(st.datagrams_sent, 2);
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

static int closes;
static void on_close(zev_handle_t *h) {
    struct sent *s = h->data;
    cr_assert_eq(s->n, 3, "send callbacks run before the close callback");
    closes++;
}

Test(udp_batch, close_cancels_queued_sends_in_order) {
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    struct sent s = {0};
    tx.handle.data = &s;
    zev_slice_t sl = zev_slice("abc", 3);
    block_next_send();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(zev_udp_send(&tx, &sl, 1, "127.0.0.1", 9, on_sent, &s), 0);
    }
    closes = 0;
    cr_assert_eq(zev_close(&tx.handle, on_close), 0);
    cr_assert_eq(s.n, 0, "never inside zev_close");
    zt_run();
    cr_assert_eq(closes, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(s.status[i], -ECANCELED);
    }
    cr_assert_eq(zev_fault_calls(ZEV_SYS_SENDMMSG), 0);
}

Test(udp_batch, eintr_on_send_is_retried) {
    struct inbox in;
    int port = inbox_open(&in, 1);
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    struct sent s = {0};
    zev_slice_t sl = zev_slice("abc", 3);
    zev_fault_fail(ZEV_SYS_SENDMSG, 0, 2, EINTR);
    cr_assert_eq(zev_udp_send(&tx, &sl, 1, "127.0.0.1", port, on_sent, &s), 0);
    cr_assert_eq(zev_fault_calls(ZEV_SYS_SENDMSG), 3);
    cr_assert(zt_run_until(&s.n, 1, 5000));
    cr_assert_eq(s.status[0], 3);
    cr_assert(zt_run_until(&in.n, 1, 5000));
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

/* The first send from a socket never bound binds it explicitly. Here that bind fails: every
 * send's callback gets the error and the loop exits. Sends are also made to meet EAGAIN, which
 * is what Linux answers when its own implicit bind at sendmsg finds no port: with no writable
 * edge ever to follow, such a datagram used to wait forever. An unref'd guard timer ends a hung
 * run so the test fails instead of timing out. */
struct guard {
    zev_timer_t timer;
    zev_udp_t *udp;
    int fired;
};

static void guard_fire(zev_timer_t *t) {
    struct guard *g = t->handle.data;
    g->fired++;
    zev_close(&g->udp->handle, NULL);
}

static void failed_implicit_bind_fails_every_send(int err) {
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    struct guard g = {.udp = &tx};
    cr_assert_eq(zev_timer_init(&zt_loop, &g.timer), 0);
    g.timer.handle.data = &g;
    cr_assert_eq(zev_timer_start(&g.timer, guard_fire, 3000, 0), 0);
    cr_assert_eq(zev_unref(&g.timer.handle), 0);
    zev_fault_reset();
    zev_fault_fail(ZEV_SYS_BIND, 0, -1, err);
    zev_fault_fail(ZEV_SYS_SENDMSG, 0, -1, EAGAIN);
    zev_fault_fail(ZEV_SYS_SENDMMSG, 0, -1, EAGAIN);
    struct sent s = {0};
    zev_slice_t sl = zev_slice("lost", 4);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(zev_udp_send(&tx, &sl, 1, "127.0.0.1", 9, on_sent, &s), 0);
    }
    cr_assert_eq(s.n, 0, "never inside zev_udp_send");
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 0, "the loop exits");
    cr_assert_eq(g.fired, 0, "the sends never hung");
    cr_assert_eq(s.n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(s.status[i], -err, "send %d: %s", i, zev_err_name(s.status[i]));
    }
    cr_assert_eq(zev_fault_calls(ZEV_SYS_BIND), 3, "each send tried to bind");
    cr_assert_eq(zev_fault_calls(ZEV_SYS_SENDMSG) + zev_fault_calls(ZEV_SYS_SENDMMSG), 0,
                 "nothing was handed to the kernel unbound");
    zev_udp_stats_t st;
    zev_udp_stats(&tx, &st);
    cr_assert_eq(st.send_errors, 3);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&tx, &info), -ENOTCONN, "still unbound");
    /* Once a port can be had, the next send binds and goes. */
    zev_fault_reset();
    struct inbox in;
    int port = inbox_open(&in, 1);
    zev_fault_reset(); /* count only tx's binds */
    cr_assert_eq(zev_udp_send(&tx, &sl, 1, "127.0.0.1", port, on_sent, &s), 0);
    cr_assert(zt_run_until(&s.n, 4, 5000));
    cr_assert_eq(s.status[3], 4);
    cr_assert(zt_run_until(&in.n, 1, 5000));
    cr_assert_eq(zev_fault_calls(ZEV_SYS_BIND), 1);
    zev_close(&g.timer.handle, NULL);
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, first_send_from_an_unbound_socket_fails_every_send_when_its_bind_fails) {
    failed_implicit_bind_fails_every_send(EADDRINUSE);
    failed_implicit_bind_fails_every_send(EAGAIN);
}

Test(udp_batch, an_unbound_socket_is_bound_once_by_its_first_send) {
    struct inbox in;
    int port = inbox_open(&in, 1);
    zev_udp_t tx;
    cr_assert_eq(zev_udp_init(&zt_loop, &tx, 4), 0);
    zev_fault_reset();
    zev_slice_t sl = zev_slice("x", 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(zev_udp_send(&tx, &sl, 1, "127.0.0.1", port, NULL, NULL), 0);
    }
    cr_assert_eq(zev_fault_calls(ZEV_SYS_BIND), 1);
    cr_assert(zt_run_until(&in.n, 3, 5000));
    zev_close(&tx.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

Test(udp_batch, socket_and_bind_failures_are_returned) {
    zev_udp_t u;
    zev_fault_fail(ZEV_SYS_SOCKET, 0, 1, EMFILE);
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 4), -EMFILE);
    cr_assert_eq(zev_udp_fileno(&u), -EBADF, "a failed init leaves no handle");
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 4), 0);
    zev_fault_fail(ZEV_SYS_BIND, 0, 1, EACCES);
    cr_assert_eq(zev_udp_bind(&u, "127.0.0.1", 0, NULL, NULL), -EACCES);
    zev_fault_fail(ZEV_SYS_SETSOCKOPT, 0, 1, ENOPROTOOPT);
    cr_assert_eq(zev_udp_set_ttl(&u, 9), -ENOPROTOOPT);
    cr_assert_eq(zev_udp_bind(&u, "127.0.0.1", 0, NULL, NULL), 0, "a failed bind can be retried");
    zev_close(&u.handle, NULL);
    zt_run();
}

/* Send callbacks that send again, or close the socket, while the queue is being flushed. */
struct chain {
    zev_udp_t udp;
    int port;
    int n;
    int close_at;
    int status[16];
};

static void chain_sent(zev_udp_t *u, int status, void *arg) {
    struct chain *c = u->handle.data;
    int i = (int)(intptr_t)arg;
    cr_assert_eq(i, c->n, "callbacks in send order");
    c->status[c->n++] = status;
    if (i == c->close_at) {
        zev_close(&u->handle, NULL);
        return;
    }
    if (i < 3) { /* each of the first three queues one more behind the others */
        zev_slice_t sl = zev_slice("more", 4);
        cr_assert_geq(
            zev_udp_send(u, &sl, 1, "127.0.0.1", c->port, chain_sent, (void *)(intptr_t)(i + 6)),
            0);
    }
}

Test(udp_batch, callbacks_may_send_again_or_close_during_a_flush) {
    struct inbox in;
    int port = inbox_open(&in, 1);
    for (int close_at = -1; close_at <= 4; close_at += 5) {
        struct chain c = {.port = port, .close_at = close_at};
        cr_assert_eq(zev_udp_init(&zt_loop, &c.udp, 4), 0);
        c.udp.handle.data = &c;
        block_next_send();
        zev_slice_t sl = zev_slice("first", 5);
        for (int i = 0; i < 6; i++) {
            cr_assert_eq(
                zev_udp_send(&c.udp, &sl, 1, "127.0.0.1", port, chain_sent, (void *)(intptr_t)i),
                0);
        }
        if (close_at < 0) {
            cr_assert(zt_run_until(&c.n, 9, 5000));
            for (int i = 0; i < 6; i++) {
                cr_assert_eq(c.status[i], 5);
            }
            for (int i = 6; i < 9; i++) {
                cr_assert_eq(c.status[i], 4);
            }
            zev_close(&c.udp.handle, NULL);
        } else {
            cr_assert(zt_run_until(&c.n, 9, 5000));
            /* Already sent when the socket closed: the close reports their real results. */
            cr_assert_eq(c.status[5], 5);
            for (int i = 6; i < 9; i++) {
                cr_assert_eq(c.status[i], 4);
            }
        }
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        cr_assert_eq(zt_loop.slab_large.in_use, 0);
    }
    zev_close(&in.udp.handle, NULL);
    zt_run();
}

/* ---- replies from the message callback leave as one batch ---- */

static void echo_back(zev_udp_t *u, int status, const zev_slice_t *msg,
                      const zev_udp_rinfo_t *ri) {
    if (!msg) return;
    cr_assert_eq(status, 0);
    cr_assert_geq(zev_udp_send_addr(u, msg, 1, ri->addr, NULL, NULL), 0);
    (*(int *)u->handle.data)++;
}

Test(udp_batch, replies_sent_while_a_batch_is_delivered_leave_in_one_sendmmsg) {
    /* An echo socket answers a preloaded burst; the answers land in an inbox. */
    struct inbox in;
    int in_port = inbox_open(&in, 1);
    zev_udp_t echo;
    int echoed = 0;
    cr_assert_eq(zev_udp_init(&zt_loop, &echo, 4), 0);
    echo.handle.data = &echoed;
    cr_assert_eq(zev_udp_set_max_datagram(&echo, 1024), 0);
    cr_assert_eq(zev_udp_bind(&echo, "127.0.0.1", 0, NULL, NULL), 0);
    zev_addr_info_t info;
    zev_udp_local_address(&echo, &info);
    enum { N = 256 };
    /* Preload from the inbox's own port so the echoes go back there. */
    zev_sockaddr_t to;
    zev_addr_parse(&to, "127.0.0.1", info.port);
    for (int i = 0; i < N; i++) {
        char b[16];
        int len = snprintf(b, sizeof(b), "%d", i);
        zev_slice_t s = zev_slice(b, (size_t)len);
        cr_assert_geq(zev_udp_send_addr(&in.udp, &s, 1, &to, NULL, NULL), 0);
    }
    while (zev_udp_send_queue_count(&in.udp) > 0) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    (void)in_port;
    zev_fault_reset();
    cr_assert_eq(zev_udp_recv_start(&echo, echo_back), 0);
    cr_assert(zt_run_until(&in.n, N, 10000), "got %d of %d back", in.n, N);
    cr_assert_eq(echoed, N);
    uint64_t mmsg = zev_fault_calls(ZEV_SYS_SENDMMSG);
    uint64_t msg = zev_fault_calls(ZEV_SYS_SENDMSG);
    cr_log_info("udp echo burst: %d datagrams answered with %llu sendmmsg and %llu sendmsg", N,
                (unsigned long long)mmsg, (unsigned long long)msg);
    cr_assert_eq(msg, 0, "no datagram answered on its own");
    cr_assert_leq(mmsg, N / 32 + 2, "%llu sendmmsg calls for %d replies", (unsigned long long)mmsg,
                  N);
    for (int i = 0; i < KEEP; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        cr_assert_str_eq(in.data[i], b, "answers keep their order");
    }
    zev_close(&echo.handle, NULL);
    zev_close(&in.udp.handle, NULL);
    zt_run();
}
