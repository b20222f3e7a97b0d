/* tests/test_udp.c: UDP sockets on 127.0.0.1 and ::1: bind and address, listening, receive
 * (batches, empty and truncated datagrams, keeping a slice), send (scatter-gather, errors,
 * deferred callbacks), connect/disconnect, ICMP port-unreachable, unref and close. */
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

TestSuite(udp, .init = zt_setup, .fini = zt_teardown, .timeout = 20);

/* ---- helpers ---- */

enum { KEEP = 32, KEEP_BYTES = 256 };

struct inbox {
    zev_udp_t udp;
    int n;      /* datagrams delivered (status 0 or -EMSGSIZE) */
    int errors; /* status < 0 with no datagram */
    int last_err;
    int listening;
    int closed;
    int close_on; /* close the socket in the callback of this datagram (1-based) */
    int stop_on;  /* recv_stop in the callback of this datagram */
    int status[KEEP];
    size_t len[KEEP];
    size_t size[KEEP];
    char data[KEEP][KEEP_BYTES];
    zev_addr_info_t from[KEEP];
};

static void inbox_closed(zev_handle_t *h) {
    ((struct inbox *)h->data)->closed++;
}

static void inbox_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                          const zev_udp_rinfo_t *ri) {
    struct inbox *in = u->handle.data;
    if (!msg) {
        cr_assert_null(ri);
        in->errors++;
        in->last_err = status;
        return;
    }
    int i = in->n++;
    if (i < KEEP) {
        in->status[i] = status;
        in->len[i] = msg->len;
        in->size[i] = ri->size;
        size_t n = msg->len < KEEP_BYTES ? msg->len : KEEP_BYTES;
        if (n) memcpy(in->data[i], msg->base, n);
        cr_assert_eq(zev_addr_info(ri->addr, &in->from[i]), 0);
        cr_assert_eq(in->from[i].family, ri->family);
        cr_assert_eq(in->from[i].port, ri->port);
    }
    if (in->n == in->stop_on) zev_udp_recv_stop(u);
    if (in->n == in->close_on) zev_close(&u->handle, inbox_closed);
}

static void inbox_listening(zev_udp_t *u) {
    ((struct inbox *)u->handle.data)->listening++;
}

/* Open, bind to host:0 and start receiving. Returns the port. */
static int inbox_open(struct inbox *in, int family, const char *host) {
    memset(in, 0, sizeof(*in));
    cr_assert_eq(zev_udp_init(&zt_loop, &in->udp, family), 0);
    in->udp.handle.data = in;
    cr_assert_eq(zev_udp_bind(&in->udp, host, 0, NULL, inbox_listening), 0);
    cr_assert_eq(zev_udp_recv_start(&in->udp, inbox_message), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&in->udp, &info), 0);
    cr_assert_gt(info.port, 0);
    return info.port;
}

static void inbox_close(struct inbox *in) {
    cr_assert_eq(zev_close(&in->udp.handle, inbox_closed), 0);
}


struct sent {
    int n;
    int status[KEEP];
    void *arg[KEEP];
};

static void on_sent(zev_udp_t *u, int status, void *arg) {
    (void)u;
    struct sent *s = arg;
    if (s->n < KEEP) s->status[s->n] = status;
    s->n++;
}

static int closed_count;
static void count_closed(zev_handle_t *h) {
    (void)h;
    closed_count++;
}

/* A plain socket (not zev) bound to host:0; returns the fd and sets *port. */
static int plain_socket(int family, const char *host, int *port) {
    zev_sockaddr_t a;
    cr_assert_eq(zev_addr_parse(&a, host, 0), 0);
    int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, &a.sa, zev_addr_len(&a)), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, &a.sa, &len), 0);
    zev_addr_info_t info;
    zev_addr_info(&a, &info);
    *port = info.port;
    return fd;
}

/* ---- init, bind, address ---- */

Test(udp, init_rejects_bad_arguments) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(NULL, &u, 4), -EINVAL);
    cr_assert_eq(zev_udp_init(&zt_loop, NULL, 4), -EINVAL);
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 5), -EINVAL);
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 0), -EINVAL);
}

Test(udp, bind_ephemeral_port_then_listening_runs_from_the_loop) {
    struct inbox in;
    int port = inbox_open(&in, 4, "127.0.0.1");
    cr_assert_eq(in.listening, 0, "listening never runs inside bind");
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&in.udp, &info), 0);
    cr_assert_str_eq(info.address, "127.0.0.1");
    cr_assert_eq(info.family, 4);
    cr_assert_eq(info.port, port);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(in.listening, 1);
    inbox_close(&in);
    cr_assert_eq(in.closed, 0, "close callback never runs inside zev_close");
    zt_run();
    cr_assert_eq(in.closed, 1);
    cr_assert_eq(in.listening, 1);
}

Test(udp, bind_any_address_of_each_family) {
    zev_udp_t a, b;
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_init(&zt_loop, &a, 4), 0);
    cr_assert_eq(zev_udp_bind(&a, NULL, 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_local_address(&a, &info), 0);
    cr_assert_str_eq(info.address, "0.0.0.0");
    cr_assert_eq(zev_udp_init(&zt_loop, &b, 6), 0);
    cr_assert_eq(zev_udp_bind(&b, "", 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_local_address(&b, &info), 0);
    cr_assert_str_eq(info.address, "::");
    cr_assert_eq(info.family, 6);
    zev_close(&a.handle, count_closed);
    zev_close(&b.handle, count_closed);
    closed_count = 0;
    zt_run();
    cr_assert_eq(closed_count, 2);
}

Test(udp, local_address_before_bind_is_enotconn) {
    zev_udp_t u;
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 4), 0);
    cr_assert_eq(zev_udp_local_address(&u, &info), -ENOTCONN);
    cr_assert_eq(zev_udp_remote_address(&u, &info), -ENOTCONN);
    zev_close(&u.handle, NULL);
    zt_run();
}

Test(udp, bind_errors_are_named) {
    zev_udp_t u4, u6, other;
    cr_assert_eq(zev_udp_init(&zt_loop, &u4, 4), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &u6, 6), 0);
    cr_assert_eq(zev_udp_bind(&u4, "127.0.0.256", 0, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_bind(&u4, "localhost", 0, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_bind(&u4, "127.0.0.1", 65536, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_bind(&u4, "127.0.0.1", -1, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_bind(&u4, "::1", 0, NULL, NULL), -EAFNOSUPPORT);
    cr_assert_eq(zev_udp_bind(&u6, "127.0.0.1", 0, NULL, NULL), -EAFNOSUPPORT);
    zev_udp_bind_opts_t v6only = {.ipv6_only = 1};
    cr_assert_eq(zev_udp_bind(&u4, "127.0.0.1", 0, &v6only, NULL), -EINVAL);
    cr_assert_eq(zev_udp_bind(&u4, "127.0.0.1", 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_bind(&u4, "127.0.0.1", 0, NULL, NULL), -EALREADY);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&u4, &info), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &other, 4), 0);
    cr_assert_eq(zev_udp_bind(&other, "127.0.0.1", info.port, NULL, NULL), -EADDRINUSE);
    cr_assert_eq(zev_udp_bind(&u6, "::1", 0, NULL, NULL), 0);
    closed_count = 0;
    zev_close(&u4.handle, count_closed);
    zev_close(&u6.handle, count_closed);
    zev_close(&other.handle, count_closed);
    zt_run();
    cr_assert_eq(closed_count, 3);
}

Test(udp, reuse_addr_and_reuse_port_share_a_port) {
    zev_udp_t a, b, c, d;
    zev_addr_info_t info;
    zev_udp_bind_opts_t ra = {.reuse_addr = 1};
    cr_assert_eq(zev_udp_init(&zt_loop, &a, 4), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &b, 4), 0);
    cr_assert_eq(zev_udp_bind(&a, "127.0.0.1", 0, &ra, NULL), 0);
    cr_assert_eq(zev_udp_local_address(&a, &info), 0);
    cr_assert_eq(zev_udp_bind(&b, "127.0.0.1", info.port, &ra, NULL), 0);
    zev_udp_bind_opts_t rp = {.reuse_port = 1};
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 6), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &d, 6), 0);
    cr_assert_eq(zev_udp_bind(&c, "::1", 0, &rp, NULL), 0);
    cr_assert_eq(zev_udp_local_address(&c, &info), 0);
    cr_assert_eq(zev_udp_bind(&d, "::1", info.port, &rp, NULL), 0);
    closed_count = 0;
    zev_close(&a.handle, count_closed);
    zev_close(&b.handle, count_closed);
    zev_close(&c.handle, count_closed);
    zev_close(&d.handle, count_closed);
    zt_run();
    cr_assert_eq(closed_count, 4);
}

Test(udp, ipv6_only_decides_whether_ipv4_shares_the_port) {
    zev_udp_t v6, v4;
    zev_addr_info_t info;
    zev_udp_bind_opts_t only = {.ipv6_only = 1};
    cr_assert_eq(zev_udp_init(&zt_loop, &v6, 6), 0);
    cr_assert_eq(zev_udp_bind(&v6, "::", 0, &only, NULL), 0);
    cr_assert_eq(zev_udp_local_address(&v6, &info), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &v4, 4), 0);
    cr_assert_eq(zev_udp_bind(&v4, "0.0.0.0", info.port, NULL, NULL), 0,
                 "an IPv6-only socket leaves the IPv4 port free");
    zev_close(&v6.handle, NULL);
    zev_close(&v4.handle, NULL);
    zt_run();
}

Test(udp, dual_stack_socket_receives_ipv4_as_mapped_ipv6) {
    struct inbox in;
    memset(&in, 0, sizeof(in));
    cr_assert_eq(zev_udp_init(&zt_loop, &in.udp, 6), 0);
    in.udp.handle.data = &in;
    cr_assert_eq(zev_udp_bind(&in.udp, "::", 0, NULL, NULL), 0); /* ipv6_only 0: dual stack */
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&in.udp, &info), 0);
    zev_udp_t v4;
    cr_assert_eq(zev_udp_init(&zt_loop, &v4, 4), 0);
    zev_slice_t s = zev_slice("mapped", 6);
    cr_assert_eq(zev_udp_send(&v4, &s, 1, "127.0.0.1", info.port, NULL, NULL), 0);
    cr_assert(zt_run_until(&in.n, 1, 5000));
    cr_assert_str_eq(in.from[0].address, "::ffff:127.0.0.1");
    cr_assert_eq(in.from[0].family, 6);
    zev_close(&v4.handle, NULL);
    inbox_close(&in);
    zt_run();
}

/* ---- echo over both families ---- */

struct echo {
    zev_udp_t udp;
    int echoed;
};

static void echo_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                         const zev_udp_rinfo_t *ri) {
    cr_assert_eq(status, 0);
    struct echo *e = u->handle.data;
    /* The received slice goes back by reference: the queue holds its chunk if it must wait. */
    cr_assert_geq(zev_udp_send_addr(u, msg, 1, ri->addr, NULL, NULL), 0);
    e->echoed++;
}

Test(udp, echo_over_ipv4_and_ipv6) {
    const char *hosts[] = {"127.0.0.1", "::1"};
    for (int i = 0; i < 2; i++) {
        int family = i == 0 ? 4 : 6;
        struct echo e = {0};
        cr_assert_eq(zev_udp_init(&zt_loop, &e.udp, family), 0);
        e.udp.handle.data = &e;
        cr_assert_eq(zev_udp_bind(&e.udp, hosts[i], 0, NULL, NULL), 0);
        cr_assert_eq(zev_udp_recv_start(&e.udp, echo_message), 0);
        zev_addr_info_t info;
        cr_assert_eq(zev_udp_local_address(&e.udp, &info), 0);

        struct inbox client;
        int cport = inbox_open(&client, family, hosts[i]);
        struct sent sent = {0};
        zev_slice_t s = zev_slice("round trip", 10);
        cr_assert_eq(zev_udp_send(&client.udp, &s, 1, hosts[i], info.port, on_sent, &sent), 0);
        cr_assert_eq(sent.n, 0, "a send callback never runs inside send");
        cr_assert(zt_run_until(&client.n, 1, 5000));
        cr_assert_eq(sent.n, 1);
        cr_assert_eq(sent.status[0], 10, "the callback gets the bytes sent");
        cr_assert_eq(client.status[0], 0);
        cr_assert_eq(client.len[0], 10);
        cr_assert_eq(client.size[0], 10);
        cr_assert_eq(memcmp(client.data[0], "round trip", 10), 0);
        cr_assert_str_eq(client.from[0].address, hosts[i]);
        cr_assert_eq(client.from[0].port, info.port);
        cr_assert_eq(client.from[0].family, family);
        cr_assert_eq(e.echoed, 1);
        (void)cport;
        zev_close(&e.udp.handle, NULL);
        inbox_close(&client);
        zt_run();
    }
}

Test(udp, send_without_host_goes_to_loopback_as_node) {
    struct inbox in;
    int port = inbox_open(&in, 6, "::1");
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 6), 0);
    zev_slice_t s = zev_slice("x", 1);
    cr_assert_eq(zev_udp_send(&c, &s, 1, NULL, port, NULL, NULL), 0);
    cr_assert(zt_run_until(&in.n, 1, 5000));
    zev_close(&c.handle, NULL);
    inbox_close(&in);
    zt_run();
}

/* ---- receive ---- */

Test(udp, zero_length_datagram_is_a_message) {
    struct inbox in;
    int port = inbox_open(&in, 4, "127.0.0.1");
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    struct sent sent = {0};
    cr_assert_eq(zev_udp_send(&c, NULL, 0, "127.0.0.1", port, on_sent, &sent), 0);
    zev_slice_t empty = zev_slice("", 0);
    cr_assert_eq(zev_udp_send(&c, &empty, 1, "127.0.0.1", port, on_sent, &sent), 0);
    cr_assert(zt_run_until(&in.n, 2, 5000));
    cr_assert_eq(in.status[0], 0);
    cr_assert_eq(in.len[0], 0);
    cr_assert_eq(in.size[0], 0);
    cr_assert_eq(in.len[1], 0);
    cr_assert(zt_run_until(&sent.n, 2, 5000));
    cr_assert_eq(sent.status[0], 0);
    cr_assert_eq(sent.status[1], 0);
    zev_close(&c.handle, NULL);
    inbox_close(&in);
    zt_run();
}

Test(udp, truncated_datagram_is_reported_never_delivered_whole) {
    struct inbox in;
    int port = inbox_open(&in, 4, "127.0.0.1");
    cr_assert_eq(zev_udp_set_max_datagram(&in.udp, 0), -EINVAL);
    cr_assert_eq(zev_udp_set_max_datagram(&in.udp, (64 << 10) + 1), -EINVAL);
    cr_assert_eq(zev_udp_set_max_datagram(&in.udp, 16), 0);
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    char big[100];
    for (int i = 0; i < 100; i++) {
        big[i] = (char)('a' + i % 26);
    }
    zev_slice_t s1 = zev_slice(big, sizeof(big));
    zev_slice_t s2 = zev_slice(big, 16);
    zev_slice_t s3 = zev_slice(big, 10);
    cr_assert_eq(zev_udp_send(&c, &s1, 1, "127.0.0.1", port, NULL, NULL), 0);
    cr_assert_eq(zev_udp_send(&c, &s2, 1, "127.0.0.1", port, NULL, NULL), 0);
    cr_assert_eq(zev_udp_send(&c, &s3, 1, "127.0.0.1", port, NULL, NULL), 0);
    cr_assert(zt_run_until(&in.n, 3, 5000));
    cr_assert_eq(in.status[0], -EMSGSIZE);
    cr_assert_eq(in.len[0], 16, "only what fitted is in the slice");
    cr_assert_eq(in.size[0], 100, "the real size is reported");
    cr_assert_eq(memcmp(in.data[0], big, 16), 0);
    cr_assert_eq(in.status[1], 0, "exactly the slot size is whole");
    cr_assert_eq(in.len[1], 16);
    cr_assert_eq(in.status[2], 0);
    cr_assert_eq(in.len[2], 10);
    zev_udp_stats_t st;
    cr_assert_eq(zev_udp_stats(&in.udp, &st), 0);
    cr_assert_eq(st.truncated, 1);
    cr_assert_eq(st.datagrams_received, 3);
    zev_close(&c.handle, NULL);
    inbox_close(&in);
    zt_run();
}

Test(udp, the_largest_datagrams_arrive_whole_by_default) {
    static char big[ZEV_UDP6_MAX_PAYLOAD];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (char)(i * 7);
    }
    const char *hosts[] = {"127.0.0.1", "::1"};
    size_t max[] = {ZEV_UDP4_MAX_PAYLOAD, ZEV_UDP6_MAX_PAYLOAD};
    for (int i = 0; i < 2; i++) {
        struct inbox in;
        int port = inbox_open(&in, 4 + 2 * i, hosts[i]);
        zev_udp_t c;
        cr_assert_eq(zev_udp_init(&zt_loop, &c, 4 + 2 * i), 0);
        zev_slice_t over = zev_slice(big, max[i] + 1);
        cr_assert_eq(zev_udp_send(&c, &over, 1, hosts[i], port, NULL, NULL), -EMSGSIZE);
        zev_slice_t parts[2] = {zev_slice(big, 1000), zev_slice(big + 1000, max[i] - 1000)};
        struct sent sent = {0};
        cr_assert_eq(zev_udp_send(&c, parts, 2, hosts[i], port, on_sent, &sent), 0);
        cr_assert(zt_run_until(&in.n, 1, 5000));
        cr_assert_eq(in.status[0], 0);
        cr_assert_eq(in.len[0], max[i]);
        cr_assert_eq(memcmp(in.data[0], big, KEEP_BYTES), 0);
        cr_assert(zt_run_until(&sent.n, 1, 5000));
        cr_assert_eq(sent.status[0], (int)max[i]);
        zev_close(&c.handle, NULL);
        inbox_close(&in);
        zt_run();
    }
}

Test(udp, scatter_gather_send_arrives_as_one_datagram) {
    struct inbox in;
    int port = inbox_open(&in, 4, "127.0.0.1");
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    const char *parts[] = {"one ", "", "two ", "three ", "four ", "five ", "six ", "seven"};
    zev_slice_t s[8];
    for (int i = 0; i < 8; i++) {
        s[i] = zev_slice(parts[i], strlen(parts[i]));
    }
    cr_assert_eq(zev_udp_send(&c, s, 8, "127.0.0.1", port, NULL, NULL), 0);
    cr_assert(zt_run_until(&in.n, 1, 5000));
    const char *want = "one two three four five six seven";
    cr_assert_eq(in.len[0], strlen(want));
    cr_assert_eq(memcmp(in.data[0], want, strlen(want)), 0);
    zev_close(&c.handle, NULL);
    inbox_close(&in);
    zt_run();
}

/* Keep a received slice past its callback and send it on: zero copies, and the chunk goes back
 * to the pool once the last reference is dropped. */
struct keeper {
    zev_udp_t udp;
    zev_slice_t kept;
    int got;
};

static void keep_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                         const zev_udp_rinfo_t *ri) {
    (void)ri;
    cr_assert_eq(status, 0);
    struct keeper *k = u->handle.data;
    cr_assert_not_null(msg->owner, "received bytes live in a pool chunk");
    cr_assert_geq(msg->base, msg->owner->base);
    cr_assert_leq(msg->base + msg->len, msg->owner->base + msg->owner->size);
    k->kept = *msg;
    zev_buf_ref(msg->owner);
    k->got++;
}

Test(udp, received_slice_can_be_kept_and_forwarded_without_copy) {
    struct keeper k = {0};
    cr_assert_eq(zev_udp_init(&zt_loop, &k.udp, 4), 0);
    k.udp.handle.data = &k;
    cr_assert_eq(zev_udp_bind(&k.udp, "127.0.0.1", 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_recv_start(&k.udp, keep_message), 0);
    zev_addr_info_t info;
    zev_udp_local_address(&k.udp, &info);
    struct inbox dst;
    int dport = inbox_open(&dst, 4, "127.0.0.1");
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    zev_slice_t s = zev_slice("forward me", 10);
    cr_assert_eq(zev_udp_send(&c, &s, 1, "127.0.0.1", info.port, NULL, NULL), 0);
    cr_assert(zt_run_until(&k.got, 1, 5000));
    zev_buf_pool_stats_t ps;
    zev_buf_pool_stats(&zt_loop, &ps);
    cr_assert_eq(ps.in_use - ps.lent, 1, "only the kept chunk is still in use");
    struct sent sent = {0};
    cr_assert_eq(zev_udp_send(&k.udp, &k.kept, 1, "127.0.0.1", dport, on_sent, &sent), 0);
    zev_buf_unref(k.kept.owner); /* the send took its own reference if it needed one */
    cr_assert(zt_run_until(&dst.n, 1, 5000));
    cr_assert_eq(memcmp(dst.data[0], "forward me", 10), 0);
    cr_assert(zt_run_until(&sent.n, 1, 5000));
    zev_buf_pool_stats(&zt_loop, &ps);
    cr_assert_eq(ps.in_use - ps.lent, 0);
    zev_close(&c.handle, NULL);
    zev_close(&k.udp.handle, NULL);
    inbox_close(&dst);
    zt_run();
}

Test(udp, a_burst_is_read_in_batches) {
    struct inbox in;
    memset(&in, 0, sizeof(in));
    cr_assert_eq(zev_udp_init(&zt_loop, &in.udp, 4), 0);
    in.udp.handle.data = &in;
    cr_assert_eq(zev_udp_set_recv_buffer_size(&in.udp, 4 << 20), 0);
    cr_assert_eq(zev_udp_bind(&in.udp, "127.0.0.1", 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_set_max_datagram(&in.udp, 2048), 0);
    zev_addr_info_t info;
    zev_udp_local_address(&in.udp, &info);
    /* A plain socket queues the burst in the kernel before zev looks. */
    int port = 0;
    int fd = plain_socket(4, "127.0.0.1", &port);
    zev_sockaddr_t to;
    zev_addr_parse(&to, "127.0.0.1", info.port);
    enum { N = 320 };
    for (int i = 0; i < N; i++) {
        char b[8];
        int n = snprintf(b, sizeof(b), "%d", i);
        cr_assert_eq(sendto(fd, b, (size_t)n, 0, &to.sa, zev_addr_len(&to)), n);
    }
    close(fd);
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    cr_assert(zt_run_until(&in.n, N, 5000));
    zev_udp_stats_t st;
    zev_udp_stats(&in.udp, &st);
    cr_assert_eq(st.datagrams_received, N);
    cr_assert_leq(st.recv_calls, N / ZEV_UDP_BATCH_DEFAULT + 2, "recv calls: %llu",
                  (unsigned long long)st.recv_calls);
    for (int i = 0; i < KEEP; i++) {
        char b[8];
        int n = snprintf(b, sizeof(b), "%d", i);
        cr_assert_eq(in.len[i], (size_t)n);
        cr_assert_eq(memcmp(in.data[i], b, (size_t)n), 0, "datagrams arrive in order");
    }
    inbox_close(&in);
    zt_run();
}

/* Pool chunks whose size is not a multiple of 16: slots start 16-byte aligned, so the padding
 * after each slot counts when deciding how many fit in a chunk. Every datagram fills its slot
 * to the last byte; a slot carved past its chunk's end is a heap overflow (ASan) and fails the
 * bounds check below in any build. */
struct odd_rx {
    zev_udp_t udp;
    size_t slot;
    int n;
};

static void odd_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                        const zev_udp_rinfo_t *ri) {
    struct odd_rx *rx = u->handle.data;
    cr_assert_eq(status, 0);
    cr_assert_not_null(msg);
    cr_assert_eq(ri->size, rx->slot);
    cr_assert_eq(msg->len, rx->slot);
    const char *start = msg->owner->base;
    const char *end = start + msg->owner->size;
    cr_assert(msg->base >= start && msg->base + rx->slot <= end,
              "slot %d at offset %td of a %zu-byte chunk", rx->n, msg->base - start,
              msg->owner->size);
    for (size_t i = 0; i < msg->len; i++) {
        cr_assert_eq(msg->base[i], (char)('a' + rx->n % 26), "datagram %d intact", rx->n);
    }
    rx->n++;
}

static void receive_with_odd_chunks(size_t chunk, size_t slot, unsigned batch, int count) {
    zev_loop_t loop;
    zev_loop_options_t o = {.buf_size = chunk};
    cr_assert_eq(zev_loop_init_ex(&loop, &o), 0);
    struct odd_rx rx = {.slot = slot};
    cr_assert_eq(zev_udp_init(&loop, &rx.udp, 4), 0);
    rx.udp.handle.data = &rx;
    cr_assert_eq(zev_udp_set_recv_buffer_size(&rx.udp, 1 << 20), 0);
    cr_assert_eq(zev_udp_bind(&rx.udp, "127.0.0.1", 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_set_max_datagram(&rx.udp, slot), 0);
    cr_assert_eq(zev_udp_set_batch_size(&rx.udp, batch), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&rx.udp, &info), 0);
    int port = 0;
    int fd = plain_socket(4, "127.0.0.1", &port);
    zev_sockaddr_t to;
    zev_addr_parse(&to, "127.0.0.1", info.port);
    char payload[512];
    cr_assert_leq(slot, sizeof(payload));
    for (int i = 0; i < count; i++) {
        memset(payload, 'a' + i % 26, slot);
        cr_assert_eq(sendto(fd, payload, slot, 0, &to.sa, zev_addr_len(&to)), (ssize_t)slot);
    }
    close(fd);
    cr_assert_eq(zev_udp_recv_start(&rx.udp, odd_message), 0);
    for (int i = 0; i < 100 && rx.n < count; i++) {
        zev_run(&loop, ZEV_RUN_ONCE);
    }
    cr_assert_eq(rx.n, count, "chunk %zu, slot %zu, batch %u", chunk, slot, batch);
    zev_close(&rx.udp.handle, NULL);
    zev_run(&loop, ZEV_RUN_DEFAULT);
    cr_assert_eq(zev_loop_close(&loop), 0);
}

Test(udp, receive_batch_into_chunks_not_a_multiple_of_16) {
    receive_with_odd_chunks(376, 113, 8, 24);  /* 3 slots of 128 would end at 384 */
    receive_with_odd_chunks(270, 1, 32, 64);   /* 17 slots of 16 would end at 272 */
    receive_with_odd_chunks(1009, 241, 8, 16); /* 4 slots of 256 would end at 1024 */
    receive_with_odd_chunks(257, 100, 8, 16);
    receive_with_odd_chunks(300, 300, 4, 8); /* one slot per chunk, no room for padding */
    receive_with_odd_chunks(513, 17, 64, 128);
}

Test(udp, recv_stop_inside_a_batch_loses_nothing) {
    struct inbox in;
    int port = inbox_open(&in, 4, "127.0.0.1");
    cr_assert_eq(zev_udp_recv_stop(&in.udp), 0);
    in.stop_on = 1;
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    zev_slice_t s = zev_slice("d", 1);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(zev_udp_send(&c, &s, 1, "127.0.0.1", port, NULL, NULL), 0);
    }
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(in.n, 0, "not receiving: datagrams wait in the kernel");
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    cr_assert(zt_run_until(&in.n, 5, 5000));
    cr_assert_eq(in.n, 5, "the stop took effect after the batch already read");
    cr_assert_eq(zev_is_active(&in.udp.handle), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(zev_udp_send(&c, &s, 1, "127.0.0.1", port, NULL, NULL), 0);
    }
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(in.n, 5);
    in.stop_on = 0;
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    cr_assert(zt_run_until(&in.n, 8, 5000));
    zev_close(&c.handle, NULL);
    inbox_close(&in);
    zt_run();
}

Test(udp, close_inside_message_callback_drops_the_rest_and_leaks_nothing) {
    struct inbox in;
    int port = inbox_open(&in, 4, "127.0.0.1");
    cr_assert_eq(zev_udp_recv_stop(&in.udp), 0);
    in.close_on = 1;
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    zev_slice_t s = zev_slice("d", 1);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(zev_udp_send(&c, &s, 1, "127.0.0.1", port, NULL, NULL), 0);
    }
    cr_assert_eq(zev_udp_recv_start(&in.udp, inbox_message), 0);
    zev_close(&c.handle, NULL);
    zt_run();
    cr_assert_eq(in.n, 1);
    cr_assert_eq(in.closed, 1);
    zev_buf_pool_stats_t ps;
    zev_buf_pool_stats(&zt_loop, &ps);
    cr_assert_eq(ps.in_use - ps.lent, 0);
}

/* ---- send errors ---- */

Test(udp, send_rejects_bad_input_with_named_errors) {
    zev_udp_t u4, u6;
    cr_assert_eq(zev_udp_init(&zt_loop, &u4, 4), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &u6, 6), 0);
    zev_slice_t s = zev_slice("x", 1);
    cr_assert_eq(zev_udp_send(&u4, &s, 1, "127.0.0.1", 0, NULL, NULL), -EINVAL, "port 0");
    cr_assert_eq(zev_udp_send(&u4, &s, 1, "127.0.0.1", 65536, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_send(&u4, &s, 1, "127.0.0", 9, NULL, NULL), -EINVAL, "bad text");
    cr_assert_eq(zev_udp_send(&u4, &s, 1, "example.com", 9, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_send(&u4, &s, 1, "::1", 9, NULL, NULL), -EAFNOSUPPORT);
    cr_assert_eq(zev_udp_send(&u6, &s, 1, "127.0.0.1", 9, NULL, NULL), -EAFNOSUPPORT);
    cr_assert_eq(zev_udp_send(&u4, &s, 1, NULL, 0, NULL, NULL), -EDESTADDRREQ);
    cr_assert_eq(zev_udp_send_addr(&u4, &s, 1, NULL, NULL, NULL), -EDESTADDRREQ);
    cr_assert_eq(zev_udp_send(&u4, NULL, 1, "127.0.0.1", 9, NULL, NULL), -EINVAL);
    zev_slice_t bad = {NULL, 3, NULL};
    cr_assert_eq(zev_udp_send(&u4, &bad, 1, "127.0.0.1", 9, NULL, NULL), -EINVAL);
    zev_slice_t many[ZEV_UDP_MAX_SLICES + 1];
    for (int i = 0; i <= ZEV_UDP_MAX_SLICES; i++) {
        many[i] = s;
    }
    cr_assert_eq(zev_udp_send(&u4, many, ZEV_UDP_MAX_SLICES + 1, "127.0.0.1", 9, NULL, NULL),
                 -EINVAL);
    static char big[ZEV_UDP6_MAX_PAYLOAD + 1];
    zev_slice_t b4 = zev_slice(big, ZEV_UDP4_MAX_PAYLOAD + 1);
    zev_slice_t b6 = zev_slice(big, ZEV_UDP6_MAX_PAYLOAD + 1);
    zev_slice_t halves[2] = {zev_slice(big, 40000), zev_slice(big, 25508)};
    cr_assert_eq(zev_udp_send(&u4, &b4, 1, "127.0.0.1", 9, NULL, NULL), -EMSGSIZE);
    cr_assert_eq(zev_udp_send(&u4, halves, 2, "127.0.0.1", 9, NULL, NULL), -EMSGSIZE);
    cr_assert_eq(zev_udp_send(&u6, &b6, 1, "::1", 9, NULL, NULL), -EMSGSIZE);
    cr_assert_eq(zev_udp_send(&u6, &b4, 1, "::ffff:127.0.0.1", 9, NULL, NULL), -EMSGSIZE,
                 "an IPv4-mapped peer has IPv4's limit");
    zev_udp_stats_t st;
    zev_udp_stats(&u4, &st);
    cr_assert_eq(st.send_calls, 0, "rejected before any syscall");
    zev_close(&u4.handle, NULL);
    zev_close(&u6.handle, NULL);
    cr_assert_eq(zev_udp_send(&u4, &s, 1, "127.0.0.1", 9, NULL, NULL), -EBADF);
    cr_assert_eq(zev_udp_recv_start(&u4, inbox_message), -EBADF);
    cr_assert_eq(zev_udp_bind(&u4, NULL, 0, NULL, NULL), -EBADF);
    cr_assert_eq(zev_close(&u4.handle, NULL), -EBADF, "closing twice is an error");
    zt_run();
    cr_assert_eq(zev_close(&u4.handle, NULL), -EBADF);
}

Test(udp, send_implicitly_binds_and_replies_come_back) {
    struct echo e = {0};
    cr_assert_eq(zev_udp_init(&zt_loop, &e.udp, 4), 0);
    e.udp.handle.data = &e;
    cr_assert_eq(zev_udp_bind(&e.udp, "127.0.0.1", 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_recv_start(&e.udp, echo_message), 0);
    zev_addr_info_t info;
    zev_udp_local_address(&e.udp, &info);
    struct inbox c;
    memset(&c, 0, sizeof(c));
    cr_assert_eq(zev_udp_init(&zt_loop, &c.udp, 4), 0);
    c.udp.handle.data = &c;
    cr_assert_eq(zev_udp_recv_start(&c.udp, inbox_message), 0);
    zev_slice_t s = zev_slice("ping", 4);
    cr_assert_eq(zev_udp_send(&c.udp, &s, 1, "127.0.0.1", info.port, NULL, NULL), 0);
    zev_addr_info_t mine;
    cr_assert_eq(zev_udp_local_address(&c.udp, &mine), 0, "the send bound the socket");
    cr_assert_eq(zev_udp_bind(&c.udp, NULL, 0, NULL, NULL), -EALREADY);
    cr_assert(zt_run_until(&c.n, 1, 5000));
    zev_close(&e.udp.handle, NULL);
    inbox_close(&c);
    zt_run();
}

static void send_from_a_never_bound_socket(int family, const char *host, const char *any) {
    struct inbox in;
    int port = inbox_open(&in, family, host);
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, family), 0);
    zev_addr_info_t mine;
    cr_assert_eq(zev_udp_local_address(&c, &mine), -ENOTCONN);
    struct sent sent = {0};
    zev_slice_t s = zev_slice("first", 5);
    cr_assert_eq(zev_udp_send(&c, &s, 1, host, port, on_sent, &sent), 0);
    cr_assert_eq(zev_udp_local_address(&c, &mine), 0, "the first send bound the socket");
    cr_assert_gt(mine.port, 0);
    cr_assert_str_eq(mine.address, any);
    cr_assert_eq(zev_udp_bind(&c, NULL, 0, NULL, NULL), -EALREADY);
    cr_assert(zt_run_until(&in.n, 1, 5000));
    cr_assert_eq(memcmp(in.data[0], "first", 5), 0);
    cr_assert_eq(in.from[0].port, mine.port, "sent from the port it was bound to");
    cr_assert(zt_run_until(&sent.n, 1, 5000));
    cr_assert_eq(sent.status[0], 5);
    zev_close(&c.handle, NULL);
    inbox_close(&in);
    zt_run();
}

Test(udp, send_from_a_never_bound_socket_binds_it_to_the_any_address) {
    send_from_a_never_bound_socket(4, "127.0.0.1", "0.0.0.0");
    send_from_a_never_bound_socket(6, "::1", "::");
}

/* ---- connect ---- */

Test(udp, connect_disconnect_and_remote_address_as_node) {
    struct inbox in;
    int port = inbox_open(&in, 4, "127.0.0.1");
    zev_udp_t c;
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    cr_assert_eq(zev_udp_disconnect(&c), -ENOTCONN);
    cr_assert_eq(zev_udp_connect(&c, "127.0.0.1", 0), -EINVAL);
    cr_assert_eq(zev_udp_connect(&c, "127.0.0.x", port), -EINVAL);
    cr_assert_eq(zev_udp_connect(&c, "::1", port), -EAFNOSUPPORT);
    cr_assert_eq(zev_udp_connect(&c, "127.0.0.1", port), 0);
    cr_assert_eq(zev_udp_connect(&c, "127.0.0.1", port), -EISCONN);
    cr_assert_eq(zev_udp_remote_address(&c, &info), 0);
    cr_assert_str_eq(info.address, "127.0.0.1");
    cr_assert_eq(info.port, port);
    cr_assert_eq(zev_udp_local_address(&c, &info), 0, "connect binds");
    zev_slice_t s = zev_slice("to peer", 7);
    cr_assert_eq(zev_udp_send(&c, &s, 1, NULL, 0, NULL, NULL), 0);
    cr_assert_eq(zev_udp_send_addr(&c, &s, 1, NULL, NULL, NULL), 0);
    cr_assert_eq(zev_udp_send(&c, &s, 1, "127.0.0.1", port, NULL, NULL), -EISCONN);
    zev_sockaddr_t a;
    zev_addr_parse(&a, "127.0.0.1", port);
    cr_assert_eq(zev_udp_send_addr(&c, &s, 1, &a, NULL, NULL), -EISCONN);
    cr_assert(zt_run_until(&in.n, 2, 5000));
    cr_assert_eq(memcmp(in.data[0], "to peer", 7), 0);
    cr_assert_eq(zev_udp_disconnect(&c), 0);
    cr_assert_eq(zev_udp_disconnect(&c), -ENOTCONN);
    cr_assert_eq(zev_udp_remote_address(&c, &info), -ENOTCONN);
    cr_assert_eq(zev_udp_send(&c, &s, 1, NULL, 0, NULL, NULL), -EDESTADDRREQ);
    cr_assert_eq(zev_udp_send(&c, &s, 1, "127.0.0.1", port, NULL, NULL), 0);
    cr_assert(zt_run_until(&in.n, 3, 5000));
    zev_close(&c.handle, NULL);
    inbox_close(&in);
    zt_run();
}

Test(udp, connected_socket_receives_only_from_its_peer) {
    struct inbox a, b;
    int pa = inbox_open(&a, 4, "127.0.0.1");
    int pb = inbox_open(&b, 4, "127.0.0.1");
    struct inbox c;
    int pc = inbox_open(&c, 4, "127.0.0.1");
    cr_assert_eq(zev_udp_connect(&c.udp, "127.0.0.1", pa), 0);
    zev_slice_t s1 = zev_slice("stranger", 8);
    zev_slice_t s2 = zev_slice("peer", 4);
    cr_assert_eq(zev_udp_send(&b.udp, &s1, 1, "127.0.0.1", pc, NULL, NULL), 0);
    cr_assert_eq(zev_udp_send(&a.udp, &s2, 1, "127.0.0.1", pc, NULL, NULL), 0);
    cr_assert(zt_run_until(&c.n, 1, 5000));
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(memcmp(c.data[0], "peer", 4), 0);
    (void)pb;
    inbox_close(&a);
    inbox_close(&b);
    inbox_close(&c);
    zt_run();
}

/* A port nobody listens on: bind a socket, note its port, close it. */
static int closed_port(void) {
    int port = 0;
    int fd = plain_socket(4, "127.0.0.1", &port);
    close(fd);
    return port;
}

Test(udp, port_unreachable_on_a_connected_socket_is_econnrefused) {
    struct inbox c;
    memset(&c, 0, sizeof(c));
    cr_assert_eq(zev_udp_init(&zt_loop, &c.udp, 4), 0);
    c.udp.handle.data = &c;
    cr_assert_eq(zev_udp_connect(&c.udp, "127.0.0.1", closed_port()), 0);
    cr_assert_eq(zev_udp_recv_start(&c.udp, inbox_message), 0);
    zev_slice_t s = zev_slice("anyone?", 7);
    cr_assert_eq(zev_udp_send(&c.udp, &s, 1, NULL, 0, NULL, NULL), 0);
    cr_assert(zt_run_until(&c.errors, 1, 5000));
    cr_assert_eq(c.last_err, -ECONNREFUSED);
    cr_assert_eq(c.n, 0);
    zev_udp_stats_t st;
    zev_udp_stats(&c.udp, &st);
    cr_assert_eq(st.recv_errors, 1);
    inbox_close(&c);
    zt_run();
}

/* Without receiving, the ICMP error waits in the socket and fails the next send. */
struct refused {
    zev_udp_t udp;
    zev_timer_t timer;
    int tries;
    int refused;
};

static void refused_sent(zev_udp_t *u, int status, void *arg) {
    (void)arg;
    struct refused *r = u->handle.data;
    if (status == -ECONNREFUSED) {
        r->refused++;
    } else {
        cr_assert_eq(status, 7);
    }
}

static void refused_try(zev_timer_t *t) {
    struct refused *r = t->handle.data;
    if (r->refused || r->tries == 50) {
        zev_timer_stop(t);
        return;
    }
    r->tries++;
    zev_slice_t s = zev_slice("anyone?", 7);
    cr_assert_eq(zev_udp_send(&r->udp, &s, 1, NULL, 0, refused_sent, NULL), 0);
}

Test(udp, port_unreachable_reaches_the_next_send_when_not_receiving) {
    struct refused r = {0};
    cr_assert_eq(zev_udp_init(&zt_loop, &r.udp, 4), 0);
    r.udp.handle.data = &r;
    cr_assert_eq(zev_udp_connect(&r.udp, "127.0.0.1", closed_port()), 0);
    cr_assert_eq(zev_timer_init(&zt_loop, &r.timer), 0);
    r.timer.handle.data = &r;
    zev_timer_start(&r.timer, refused_try, 0, 10);
    cr_assert(zt_run_until(&r.refused, 1, 5000));
    cr_assert_geq(r.tries, 2, "the first send succeeds; the error comes back after it");
    zev_close(&r.timer.handle, NULL);
    zev_close(&r.udp.handle, NULL);
    zt_run();
}

/* ---- ref, close ---- */

Test(udp, unref_lets_the_loop_exit_while_receiving) {
    struct inbox in;
    inbox_open(&in, 4, "127.0.0.1");
    zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* listening */
    cr_assert_eq(zev_is_active(&in.udp.handle), 1);
    cr_assert_eq(zev_loop_alive(&zt_loop), 1);
    cr_assert_eq(zev_unref(&in.udp.handle), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 0, "an unref'd socket does not keep run");
    cr_assert_eq(zev_ref(&in.udp.handle), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 1);
    cr_assert_eq(zev_udp_recv_stop(&in.udp), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0, "a socket that only sits bound is not active");
    inbox_close(&in);
    zt_run();
    cr_assert_eq(in.closed, 1);
}

/* Like libuv's requests, a send in flight keeps the loop alive even on an unref'd socket: unref
 * only lets the loop exit while the socket merely waits. */
Test(udp, unrefd_socket_keeps_the_loop_alive_until_its_send_callback_runs) {
    int port = 0;
    int rx = plain_socket(4, "127.0.0.1", &port); /* bound, and nothing in the loop */
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    cr_assert_eq(zev_unref(&c.handle), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    struct sent sent = {0};
    zev_slice_t s = zev_slice("unref'd", 7);
    cr_assert_eq(zev_udp_send(&c, &s, 1, "127.0.0.1", port, on_sent, &sent), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 1, "the send keeps the loop alive");
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 0);
    cr_assert_eq(sent.n, 1, "zev_run returned before the send callback ran");
    cr_assert_eq(sent.status[0], 7);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0, "done: unref'd again");
    char buf[16];
    cr_assert_eq(recv(rx, buf, sizeof(buf), MSG_DONTWAIT), 7);
    cr_assert_eq(memcmp(buf, "unref'd", 7), 0);
    close(rx);
    zev_close(&c.handle, NULL);
    zt_run();
}

Test(udp, close_completes_pending_send_callbacks_first) {
    struct inbox in;
    int port = inbox_open(&in, 4, "127.0.0.1");
    zev_udp_t c;
    cr_assert_eq(zev_udp_init(&zt_loop, &c, 4), 0);
    struct sent sent = {0};
    zev_slice_t s = zev_slice("bye", 3);
    cr_assert_eq(zev_udp_send(&c, &s, 1, "127.0.0.1", port, on_sent, &sent), 0);
    closed_count = 0;
    zev_close(&c.handle, count_closed);
    cr_assert_eq(sent.n, 0);
    cr_assert(zt_run_until(&closed_count, 1, 5000));
    cr_assert_eq(sent.n, 1);
    cr_assert_eq(sent.status[0], 3, "it was sent before the close: its real result");
    inbox_close(&in);
    zt_run();
}
