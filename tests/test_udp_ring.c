/* tests/test_udp_ring.c: UDP behaviour that the io_uring completion mode (src/udp/ring.c) must
 * keep, through the public API only, so every test also runs on epoll and kqueue: the
 * multishot receive ending and being armed again, the ring running dry while the user keeps
 * chunks, truncation with the real size, recv_stop and close inside a message callback, close
 * with sends queued or in flight, send order over a burst, and a failed datagram inside a
 * linked chain of sends. Nothing depends on timing: datagrams are queued in the kernel before
 * receiving starts, or sent from a callback, and loopback neither drops (the receive buffers
 * are sized for every test) nor reorders. */
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

TestSuite(udp_ring, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

enum { MAX_MSGS = 512 };

struct rx {
    zev_udp_t udp;
    int n;
    int errors;
    int stop_on;  /* recv_stop in the callback of this datagram (1-based) */
    int close_on; /* zev_close in the callback of this datagram */
    int keep;     /* take a reference on every chunk */
    int closed;
    int status[MAX_MSGS];
    size_t len[MAX_MSGS];
    size_t size[MAX_MSGS];
    int seq[MAX_MSGS]; /* the number the datagram carries, -1 if none */
    zev_buf_t *kept[MAX_MSGS];
};

static void rx_closed(zev_handle_t *h) {
    ((struct rx *)h->data)->closed++;
}

static int seq_of(const zev_slice_t *m) {
    char b[16];
    size_t n = m->len < sizeof(b) - 1 ? m->len : sizeof(b) - 1;
    memcpy(b, m->base, n);
    b[n] = '\0';
    int v = -1;
    return sscanf(b, "%d", &v) == 1 ? v : -1;
}

static void rx_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                       const zev_udp_rinfo_t *ri) {
    struct rx *r = u->handle.data;
    if (!msg) {
        r->errors++;
        return;
    }
    cr_assert_not_null(msg->owner, "the slice lives in a pool chunk");
    cr_assert_geq(msg->base, msg->owner->base);
    cr_assert_leq(msg->base + msg->len, msg->owner->base + msg->owner->size);
    int i = r->n++;
    cr_assert_lt(i, MAX_MSGS);
    r->status[i] = status;
    r->len[i] = msg->len;
    r->size[i] = ri->size;
    r->seq[i] = seq_of(msg);
    if (r->keep) {
        zev_buf_ref(msg->owner);
        r->kept[i] = msg->owner;
    }
    if (r->n == r->stop_on) cr_assert_eq(zev_udp_recv_stop(u), 0);
    if (r->n == r->close_on) cr_assert_eq(zev_close(&u->handle, rx_closed), 0);
}

/* Open r on 127.0.0.1:0 with room for every test's datagrams; returns the port. */
static int rx_open(struct rx *r, int start) {
    memset(r, 0, sizeof(*r));
    cr_assert_eq(zev_udp_init(&zt_loop, &r->udp, 4), 0);
    r->udp.handle.data = r;
    cr_assert_eq(zev_udp_set_recv_buffer_size(&r->udp, 4 << 20), 0);
    cr_assert_eq(zev_udp_bind(&r->udp, "127.0.0.1", 0, NULL, NULL), 0);
    if (start) cr_assert_eq(zev_udp_recv_start(&r->udp, rx_message), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&r->udp, &info), 0);
    return info.port;
}

/* Queue datagrams "from", "from+1", ... below "to" in port's kernel buffer, from a plain
 * socket, before zev reads any. */
static void preload(int port, int from, int to) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    zev_sockaddr_t dst;
    cr_assert_eq(zev_addr_parse(&dst, "127.0.0.1", port), 0);
    for (int i = from; i < to; i++) {
        char b[16];
        int len = snprintf(b, sizeof(b), "%d", i);
        cr_assert_eq(sendto(fd, b, (size_t)len, 0, &dst.sa, zev_addr_len(&dst)), len);
    }
    close(fd);
}

static void assert_in_order(const struct rx *r, int n) {
    cr_assert_eq(r->n, n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(r->seq[i], i, "datagram %d carried %d", i, r->seq[i]);
        cr_assert_eq(r->status[i], 0);
    }
}

static uint64_t pool_in_use(void) {
    zev_buf_pool_stats_t ps;
    cr_assert_eq(zev_buf_pool_stats(&zt_loop, &ps), 0);
    return ps.in_use - ps.lent; /* chunks lent to io_uring's buffer ring are the loop's */
}

/* ---- receiving ---- */

/* Each stop ends the receive (the multishot is cancelled) and each start must arm it again:
 * datagrams that came while stopped are delivered after the start, in order, none twice. */
Test(udp_ring, receive_stopped_and_started_again_loses_and_repeats_nothing) {
    struct rx r;
    int port = rx_open(&r, 1);
    int sent = 0;
    for (int round = 0; round < 4; round++) {
        preload(port, sent, sent + 3);
        sent += 3;
        cr_assert(zt_run_until(&r.n, sent, 5000));
        cr_assert_eq(zev_udp_recv_stop(&r.udp), 0);
        preload(port, sent, sent + 2);
        sent += 2;
        for (int i = 0; i < 3; i++)
            zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        cr_assert_eq(r.n, sent - 2, "round %d: nothing is delivered while stopped", round);
        cr_assert_eq(zev_udp_recv_start(&r.udp, rx_message), 0);
    }
    cr_assert(zt_run_until(&r.n, sent, 5000));
    assert_in_order(&r, sent);
    cr_assert_eq(r.errors, 0);
    zev_close(&r.udp.handle, rx_closed);
    zt_run();
    cr_assert_eq(pool_in_use(), 0);
}

/* The user keeps every datagram's chunk: receive buffers run out again and again (on io_uring
 * the multishot ends with -ENOBUFS; the ring grows and the receive is armed again). Every
 * datagram still arrives, in order, each in a chunk of its own that the user now owns. */
Test(udp_ring, datagrams_waiting_while_the_user_holds_every_chunk_all_arrive) {
    enum { N = 200 };
    struct rx r;
    int port = rx_open(&r, 0);
    r.keep = 1;
    preload(port, 0, N);
    cr_assert_eq(zev_udp_recv_start(&r.udp, rx_message), 0);
    cr_assert(zt_run_until(&r.n, N, 10000));
    assert_in_order(&r, N);
    cr_assert_eq(r.errors, 0);
    for (int i = 1; i < N; i++) {
        cr_assert_neq(r.kept[i], r.kept[i - 1], "a kept chunk is never received into again");
    }
    cr_assert_eq(pool_in_use(), N, "the kept chunks, and only they, are in use");
    for (int i = 0; i < N; i++)
        zev_buf_unref(r.kept[i]);
    cr_assert_eq(pool_in_use(), 0);
    zev_close(&r.udp.handle, rx_closed);
    zt_run();
}

/* A datagram longer than the socket's max datagram: -EMSGSIZE, its first bytes, and its real
 * size; the datagrams around it are whole. */
Test(udp_ring, truncation_is_reported_with_the_real_size) {
    struct rx r;
    int port = rx_open(&r, 0);
    cr_assert_eq(zev_udp_set_max_datagram(&r.udp, 100), 0);
    static char big[3000];
    memset(big, 'x', sizeof(big));
    memcpy(big, "1", 1);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    zev_sockaddr_t dst;
    cr_assert_eq(zev_addr_parse(&dst, "127.0.0.1", port), 0);
    const size_t sizes[] = {1, 3000, 100, 101, 2};
    for (int i = 0; i < 5; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        memcpy(big, b, strlen(b));
        cr_assert_eq(sendto(fd, big, sizes[i], 0, &dst.sa, zev_addr_len(&dst)), (ssize_t)sizes[i]);
    }
    close(fd);
    cr_assert_eq(zev_udp_recv_start(&r.udp, rx_message), 0);
    cr_assert(zt_run_until(&r.n, 5, 5000));
    const int want_status[] = {0, -EMSGSIZE, 0, -EMSGSIZE, 0};
    const size_t want_len[] = {1, 100, 100, 100, 2};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(r.status[i], want_status[i], "datagram %d: %s", i, zev_err_name(r.status[i]));
        cr_assert_eq(r.len[i], want_len[i], "datagram %d: %zu bytes", i, r.len[i]);
        cr_assert_eq(r.size[i], sizes[i], "datagram %d: real size %zu", i, r.size[i]);
        cr_assert_eq(r.seq[i], i);
    }
    zev_udp_stats_t st;
    cr_assert_eq(zev_udp_stats(&r.udp, &st), 0);
    cr_assert_eq(st.truncated, 2);
    zev_close(&r.udp.handle, rx_closed);
    zt_run();
}

/* recv_stop in the second message callback while three more datagrams were already read: those
 * are delivered (they left the kernel), later arrivals wait for recv_start, in order. */
Test(udp_ring, recv_stop_inside_a_callback_with_more_completed_loses_nothing) {
    struct rx r;
    int port = rx_open(&r, 0);
    r.stop_on = 2;
    preload(port, 0, 5);
    cr_assert_eq(zev_udp_recv_start(&r.udp, rx_message), 0);
    cr_assert(zt_run_until(&r.n, 5, 5000));
    preload(port, 5, 8);
    for (int i = 0; i < 4; i++)
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(r.n, 5, "no message callback once the stopped batch is over");
    cr_assert_eq(zev_is_active(&r.udp.handle), 0);
    r.stop_on = 0;
    cr_assert_eq(zev_udp_recv_start(&r.udp, rx_message), 0);
    cr_assert(zt_run_until(&r.n, 8, 5000));
    assert_in_order(&r, 8);
    zev_close(&r.udp.handle, rx_closed);
    zt_run();
    cr_assert_eq(pool_in_use(), 0);
}

/* zev_close in a message callback with more datagrams already read: no callback after it,
 * every chunk back, the close callback once. */
Test(udp_ring, close_inside_a_message_callback_returns_every_chunk) {
    struct rx r;
    int port = rx_open(&r, 0);
    r.close_on = 2;
    preload(port, 0, 6);
    cr_assert_eq(zev_udp_recv_start(&r.udp, rx_message), 0);
    zt_run();
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.closed, 1);
    cr_assert_eq(pool_in_use(), 0);
}

/* ---- sending ---- */

struct tx {
    zev_udp_t udp;
    int n;
    int status[MAX_MSGS];
    int order[MAX_MSGS];
    int close_after_sends; /* in the trigger's callback: send this many, then close */
    int burst;             /* in the trigger's callback: send this many */
    int port;              /* where the burst goes */
    int closed;
    zev_udp_t *to_close; /* a listening callback closes this socket */
};

static void tx_sent(zev_udp_t *u, int status, void *arg) {
    struct tx *t = u->handle.data;
    cr_assert_eq(t->closed, 0, "send callbacks run before the close callback");
    int i = t->n++;
    cr_assert_lt(i, MAX_MSGS);
    t->status[i] = status;
    t->order[i] = (int)(intptr_t)arg;
}

static void tx_closed(zev_handle_t *h) {
    ((struct tx *)h->data)->closed++;
}

static char payload[MAX_MSGS][8];

static void send_seq(struct tx *t, int from, int to, const char *host) {
    for (int i = from; i < to; i++) {
        int len = snprintf(payload[i], sizeof(payload[i]), "%d", i);
        zev_slice_t s = zev_slice(payload[i], (size_t)len);
        cr_assert_geq(zev_udp_send(&t->udp, &s, 1, host, t->port, tx_sent, (void *)(intptr_t)i), 0);
    }
}

/* The trigger datagram's callback: sends made here queue (the socket is delivering) and
 * leave together afterwards: on io_uring as linked sendmsg SQEs. */
static void tx_trigger(zev_udp_t *u, int status, const zev_slice_t *msg,
                       const zev_udp_rinfo_t *ri) {
    (void)status, (void)msg, (void)ri;
    struct tx *t = u->handle.data;
    if (t->burst) send_seq(t, 0, t->burst, "127.0.0.1");
    if (t->close_after_sends) {
        send_seq(t, 0, t->close_after_sends, "127.0.0.1");
        cr_assert_eq(zev_close(&u->handle, tx_closed), 0);
    }
    t->burst = t->close_after_sends = 0;
}

static int tx_open(struct tx *t, int family, const char *host) {
    memset(t, 0, sizeof(*t));
    cr_assert_eq(zev_udp_init(&zt_loop, &t->udp, family), 0);
    t->udp.handle.data = t;
    cr_assert_eq(zev_udp_bind(&t->udp, host, 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_recv_start(&t->udp, tx_trigger), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&t->udp, &info), 0);
    return info.port;
}

Test(udp_ring, a_burst_of_sends_keeps_its_order) {
    enum { N = 300 };
    struct rx r;
    struct tx t;
    int rport = rx_open(&r, 1);
    int tport = tx_open(&t, 4, "127.0.0.1");
    t.port = rport;
    t.burst = N;
    preload(tport, 0, 1);
    cr_assert(zt_run_until(&t.n, N, 10000));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t.order[i], i, "callback %d was for datagram %d", i, t.order[i]);
        cr_assert_eq(t.status[i], (int)strlen(payload[i]));
    }
    cr_assert(zt_run_until(&r.n, N, 10000));
    assert_in_order(&r, N);
    cr_assert_eq(zev_udp_send_queue_count(&t.udp), 0);
    zev_close(&t.udp.handle, NULL);
    zev_close(&r.udp.handle, NULL);
    zt_run();
    cr_assert_eq(zt_loop.slab_large.in_use, 0, "every queue entry went back");
}

/* Queued sends, then close in the same callback: each is cancelled, once, before the close
 * callback, and nothing leaks. */
Test(udp_ring, close_with_queued_sends_cancels_each_once) {
    struct rx r;
    struct tx t;
    int rport = rx_open(&r, 1);
    int tport = tx_open(&t, 4, "127.0.0.1");
    t.port = rport;
    t.close_after_sends = 40;
    preload(tport, 0, 1);
    cr_assert(zt_run_until(&t.closed, 1, 5000));
    cr_assert_eq(t.n, 40);
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(t.order[i], i);
        cr_assert_eq(t.status[i], -ECANCELED, "send %d: %s", i, zev_err_name(t.status[i]));
    }
    zev_close(&r.udp.handle, NULL);
    zt_run();
    cr_assert_eq(r.n, 0);
    cr_assert_eq(zt_loop.slab_large.in_use, 0);
}

/* Sends handed to the kernel (on io_uring: SQEs written, maybe not yet submitted), then the
 * socket is closed from a listening callback that runs right after the flush. Each send gets
 * one callback before the close callback: its bytes if the kernel sent it, else -ECANCELED,
 * and the receiver gets exactly the ones reported sent. */
static zev_udp_t closer; /* only carries the listening callback that closes the sender */

static void close_other(zev_udp_t *u) {
    struct tx *t = u->handle.data;
    cr_assert_eq(zev_close(&t->udp.handle, tx_closed), 0);
}

/* First datagram: queue the burst. Second, same batch: bind the closer, whose listening
 * callback is fed behind the sender's flush. */
static void trigger_then_bind_closer(zev_udp_t *u, int status, const zev_slice_t *msg,
                                     const zev_udp_rinfo_t *ri) {
    struct tx *t = u->handle.data;
    if (t->burst) {
        tx_trigger(u, status, msg, ri);
        return;
    }
    if (!(zev_udp_local_address(&closer, &(zev_addr_info_t){0}) == 0)) {
        cr_assert_eq(zev_udp_bind(&closer, "127.0.0.1", 0, NULL, close_other), 0);
    }
}

Test(udp_ring, close_with_sends_in_flight_reports_each_once) {
    enum { N = 20 };
    struct rx r;
    struct tx t;
    int rport = rx_open(&r, 1);
    int tport = tx_open(&t, 4, "127.0.0.1");
    cr_assert_eq(zev_udp_recv_start(&t.udp, trigger_then_bind_closer), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &closer, 4), 0);
    closer.handle.data = &t;
    t.port = rport;
    t.burst = N;
    preload(tport, 0, 2);
    cr_assert(zt_run_until(&t.closed, 1, 5000));
    cr_assert_eq(t.n, N, "one callback per send");
    int sent = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t.order[i], i);
        int s = t.status[i];
        cr_assert(s == (int)strlen(payload[i]) || s == -ECANCELED, "send %d: %s", i,
                  zev_err_name(s));
        if (s > 0) sent++;
    }
    cr_log_info("closed with %d sends handed over: %d sent, %d cancelled", N, sent, N - sent);
    cr_assert(zt_run_until(&r.n, sent, 5000));
    for (int i = 0; i < 3; i++)
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(r.n, sent, "the receiver got exactly the datagrams reported sent");
    zev_close(&closer.handle, NULL);
    zev_close(&r.udp.handle, NULL);
    zt_run();
    cr_assert_eq(zt_loop.slab_large.in_use, 0);
    cr_assert_eq(pool_in_use(), 0);
}

/* A datagram the kernel refuses inside a batch of queued sends (an IPv4-mapped destination
 * from an IPv6-only socket): its own callback says so, and the datagrams behind it, which on
 * io_uring the broken link cancelled, are still sent, in order. */
static void send_mixed(zev_udp_t *u, int status, const zev_slice_t *msg,
                       const zev_udp_rinfo_t *ri) {
    (void)status, (void)msg, (void)ri;
    struct tx *t = u->handle.data;
    if (!t->burst) return;
    t->burst = 0;
    send_seq(t, 0, 2, "::1");
    send_seq(t, 2, 3, "::ffff:127.0.0.1");
    send_seq(t, 3, 6, "::1");
}

Test(udp_ring, a_failed_datagram_in_a_chain_does_not_stop_the_others) {
    struct rx r;
    memset(&r, 0, sizeof(r));
    cr_assert_eq(zev_udp_init(&zt_loop, &r.udp, 6), 0);
    r.udp.handle.data = &r;
    cr_assert_eq(zev_udp_bind(&r.udp, "::1", 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_recv_start(&r.udp, rx_message), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&r.udp, &info), 0);
    struct tx t;
    memset(&t, 0, sizeof(t));
    cr_assert_eq(zev_udp_init(&zt_loop, &t.udp, 6), 0);
    t.udp.handle.data = &t;
    zev_udp_bind_opts_t only6 = {.ipv6_only = 1};
    cr_assert_eq(zev_udp_bind(&t.udp, "::1", 0, &only6, NULL), 0);
    cr_assert_eq(zev_udp_recv_start(&t.udp, send_mixed), 0);
    zev_addr_info_t tinfo;
    cr_assert_eq(zev_udp_local_address(&t.udp, &tinfo), 0);
    t.port = info.port;
    t.burst = 1;
    /* the trigger, from a plain IPv6 socket */
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    zev_sockaddr_t dst;
    cr_assert_eq(zev_addr_parse(&dst, "::1", tinfo.port), 0);
    cr_assert_eq(sendto(fd, "go", 2, 0, &dst.sa, zev_addr_len(&dst)), 2);
    close(fd);
    cr_assert(zt_run_until(&t.n, 6, 5000));
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(t.order[i], i);
        int want = i == 2 ? -ENETUNREACH : 1;
        cr_assert_eq(t.status[i], want, "send %d: %s", i, zev_err_name(t.status[i]));
    }
    cr_assert(zt_run_until(&r.n, 5, 5000));
    const int want_seq[] = {0, 1, 3, 4, 5};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(r.seq[i], want_seq[i]);
    zev_udp_stats_t st;
    cr_assert_eq(zev_udp_stats(&t.udp, &st), 0);
    cr_assert_eq(st.send_errors, 1);
    cr_assert_eq(st.datagrams_sent, 5);
    zev_close(&t.udp.handle, NULL);
    zev_close(&r.udp.handle, NULL);
    zt_run();
}

/* ---- the sender's address ---- */

struct from {
    zev_udp_t udp;
    int n;
    zev_addr_info_t info;
    size_t len;
};

static void from_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                         const zev_udp_rinfo_t *ri) {
    struct from *f = u->handle.data;
    cr_assert_eq(status, 0);
    cr_assert_eq(zev_addr_info(ri->addr, &f->info), 0);
    cr_assert_eq(f->info.port, ri->port);
    cr_assert_eq(f->info.family, ri->family);
    f->len = msg->len;
    f->n++;
}

/* The sender's family, address and port, whole, on IPv4 (where the ring keeps only the first
 * 8 bytes of the address) and IPv6 (a max datagram small enough for the ring's chunks). */
static void sender_is_reported_whole(int family, const char *host) {
    struct from f = {0};
    cr_assert_eq(zev_udp_init(&zt_loop, &f.udp, family), 0);
    f.udp.handle.data = &f;
    if (family == 6) cr_assert_eq(zev_udp_set_max_datagram(&f.udp, 1500), 0);
    cr_assert_eq(zev_udp_bind(&f.udp, host, 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_recv_start(&f.udp, from_message), 0);
    zev_addr_info_t to;
    cr_assert_eq(zev_udp_local_address(&f.udp, &to), 0);
    zev_udp_t s;
    cr_assert_eq(zev_udp_init(&zt_loop, &s, family), 0);
    cr_assert_eq(zev_udp_bind(&s, host, 0, NULL, NULL), 0);
    zev_addr_info_t me;
    cr_assert_eq(zev_udp_local_address(&s, &me), 0);
    zev_slice_t sl = zev_slice("hello", 5);
    cr_assert_eq(zev_udp_send(&s, &sl, 1, host, to.port, NULL, NULL), 0);
    cr_assert(zt_run_until(&f.n, 1, 5000));
    cr_assert_eq(f.len, 5);
    cr_assert_str_eq(f.info.address, host);
    cr_assert_eq(f.info.port, me.port);
    cr_assert_eq(f.info.family, family);
    zev_close(&s.handle, NULL);
    zev_close(&f.udp.handle, NULL);
    zt_run();
}

Test(udp_ring, the_sender_is_reported_whole_on_ipv4_and_ipv6) {
    sender_is_reported_whole(4, "127.0.0.1");
    sender_is_reported_whole(6, "::1");
}
