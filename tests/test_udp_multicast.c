/* tests/test_udp_multicast.c: broadcast and multicast for real, between two private network
 * namespaces joined by a veth pair (tests/support/netns.h): broadcast with and without the
 * option, any-source and source-specific groups over IPv4 and IPv6, a source that is not
 * allowed, loopback on and off, multicast TTL, the outgoing interface, and dropping
 * memberships. No packet leaves the namespaces. Without root or netns support every test
 * skips and says why.
 *
 * "Never arrives" is asserted after a datagram that must arrive (sent later, on the same path)
 * has arrived, plus a bounded grace period. */
#include "netns.h"
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../src/udp/udp_internal.h" /* zev__udp_source_index6: which interface a join uses */

static struct zt_netns ns;

static void mc_setup(void) {
    zt_setup();
    zt_netns_setup(&ns);
}

static void mc_teardown(void) {
    zt_netns_teardown(&ns);
    zt_teardown();
}

TestSuite(udp_multicast, .init = mc_setup, .fini = mc_teardown, .timeout = 30);

#define REQUIRE_NETNS()                                                                            \
    do {                                                                                           \
        if (!ns.ok) cr_skip_test("%s", ns.why);                                                    \
    } while (0)

#define GRACE_MS 150

/* ---- helpers ---- */

enum { KEEP = 16 };

struct inbox {
    zev_udp_t udp;
    int n;
    char data[KEEP][64];
    zev_addr_info_t from[KEEP];
};

static void inbox_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                          const zev_udp_rinfo_t *ri) {
    cr_assert_eq(status, 0, "status %s", zev_err_name(status));
    struct inbox *in = u->handle.data;
    int i = in->n++;
    if (i >= KEEP) return;
    size_t n = msg->len < 63 ? msg->len : 63;
    memcpy(in->data[i], msg->base, n);
    in->data[i][n] = '\0';
    zev_addr_info(ri->addr, &in->from[i]);
}

/* A receiver in namespace `where`, bound to host:port (reuse_addr, as multicast listeners
 * are). Returns its port. */
static int inbox_open(struct inbox *in, char where, int family, const char *host, int port) {
    zt_netns_enter(&ns, where);
    memset(in, 0, sizeof(*in));
    cr_assert_eq(zev_udp_init(&zt_loop, &in->udp, family), 0);
    in->udp.handle.data = in;
    zev_udp_bind_opts_t o = {.reuse_addr = 1};
    cr_assert_eq(zev_udp_bind(&in->udp, host, port, &o, NULL), 0);
    cr_assert_eq(zev_udp_recv_start(&in->udp, inbox_message), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&in->udp, &info), 0);
    zt_netns_enter(&ns, 'a');
    return info.port;
}

/* A sender in namespace `where`, bound to host:0, sending multicast from iface (may be NULL). */
static void sender_open(zev_udp_t *u, char where, int family, const char *host, const char *iface) {
    zt_netns_enter(&ns, where);
    cr_assert_eq(zev_udp_init(&zt_loop, u, family), 0);
    cr_assert_eq(zev_udp_bind(u, host, 0, NULL, NULL), 0);
    if (iface) cr_assert_eq(zev_udp_set_multicast_interface(u, iface), 0, "iface %s", iface);
    zt_netns_enter(&ns, 'a');
}

struct sent {
    int n;
    int status[KEEP];
};

static void on_sent(zev_udp_t *u, int status, void *arg) {
    (void)u;
    struct sent *s = arg;
    if (s->n < KEEP) s->status[s->n] = status;
    s->n++;
}


static void grace(void) {
    int never = 0;
    zt_run_until(&never, 1, GRACE_MS);
}

static void send_text(zev_udp_t *u, const char *text, const char *host, int port, struct sent *s) {
    zev_slice_t sl = zev_slice(text, strlen(text));
    cr_assert_geq(zev_udp_send(u, &sl, 1, host, port, s ? on_sent : NULL, s), 0);
}

static void close_udp(zev_udp_t *u) {
    cr_assert_eq(zev_close(&u->handle, NULL), 0);
}

/* ---- broadcast ---- */

Test(udp_multicast, broadcast_needs_the_option_then_reaches_the_other_namespace) {
    REQUIRE_NETNS();
    struct inbox in;
    int port = inbox_open(&in, 'a', 4, "0.0.0.0", 0);
    zev_udp_t tx;
    sender_open(&tx, 'b', 4, ZT_NS_B4, NULL);
    struct sent s = {0};
    send_text(&tx, "no option", ZT_NS_BCAST4, port, &s);
    send_text(&tx, "no option", "255.255.255.255", port, &s);
    cr_assert(zt_run_until(&s.n, 2, 5000));
    cr_assert_eq(s.status[0], -EACCES, "got %s", zev_err_name(s.status[0]));
    cr_assert_eq(s.status[1], -EACCES, "got %s", zev_err_name(s.status[1]));
    cr_assert_eq(zev_udp_set_broadcast(&tx, 1), 0);
    send_text(&tx, "subnet", ZT_NS_BCAST4, port, &s);
    send_text(&tx, "limited", "255.255.255.255", port, &s);
    cr_assert(zt_run_until(&in.n, 2, 5000));
    cr_assert_eq(s.status[2], 6);
    cr_assert_str_eq(in.data[0], "subnet");
    cr_assert_str_eq(in.data[1], "limited");
    cr_assert_str_eq(in.from[0].address, ZT_NS_B4);
    cr_assert_eq(in.n, 2, "the refused ones never left");
    close_udp(&tx);
    close_udp(&in.udp);
    zt_run();
}

/* ---- any-source ---- */

struct group_case {
    int family;
    const char *any;
    const char *group;
    const char *rx_if[4]; /* ways to name A's interface; NULL: the kernel's choice */
    const char *tx_host;
    const char *tx_if;
};

static void any_source(const struct group_case *c) {
    for (int i = 0; i < 4; i++) {
        struct inbox in;
        int port = inbox_open(&in, 'a', c->family, c->any, 0);
        cr_assert_eq(zev_udp_add_membership(&in.udp, c->group, c->rx_if[i]), 0, "join on %s",
                     c->rx_if[i] ? c->rx_if[i] : "(default)");
        zev_udp_t tx;
        sender_open(&tx, 'b', c->family, c->tx_host, c->tx_if);
        send_text(&tx, "to the group", c->group, port, NULL);
        cr_assert(zt_run_until(&in.n, 1, 5000), "join on %s", c->rx_if[i] ? c->rx_if[i] : "-");
        cr_assert_str_eq(in.data[0], "to the group");
        cr_assert_str_eq(in.from[0].address, c->tx_host);
        cr_assert_eq(zev_udp_drop_membership(&in.udp, c->group, c->rx_if[i]), 0);
        cr_assert_eq(zev_udp_drop_membership(&in.udp, c->group, c->rx_if[i]), -EADDRNOTAVAIL,
                     "dropping twice is an error");
        /* Left the group: nothing more arrives, but unicast (sent after) still does. */
        send_text(&tx, "after leaving", c->group, port, NULL);
        send_text(&tx, "unicast", c->family == 4 ? ZT_NS_A4 : ZT_NS_A6, port, NULL);
        cr_assert(zt_run_until(&in.n, 2, 5000));
        grace();
        cr_assert_eq(in.n, 2);
        cr_assert_str_eq(in.data[1], "unicast");
        close_udp(&tx);
        close_udp(&in.udp);
        zt_run();
    }
}

Test(udp_multicast, any_source_ipv4_group_on_any_interface_form) {
    REQUIRE_NETNS();
    char index[16];
    snprintf(index, sizeof(index), "%u", ns.a_index);
    struct group_case c = {4,        "0.0.0.0", "239.1.2.3", {NULL, ZT_NS_A4, ZT_NS_A_IF, index},
                           ZT_NS_B4, ZT_NS_B_IF};
    any_source(&c);
}

Test(udp_multicast, any_source_ipv6_group_on_any_interface_form) {
    REQUIRE_NETNS();
    char index[16];
    snprintf(index, sizeof(index), "%u", ns.a_index);
    struct group_case c = {6,        "::",      "ff05::1:3", {NULL, ZT_NS_A6, ZT_NS_A_IF, index},
                           ZT_NS_B6, ZT_NS_B_IF};
    any_source(&c);
}

/* ---- source-specific ---- */

static void source_specific(int family, const char *any, const char *group, const char *rx_if,
                            const char *allowed, const char *other) {
    struct inbox in;
    int port = inbox_open(&in, 'a', family, any, 0);
    cr_assert_eq(zev_udp_add_source_membership(&in.udp, allowed, group, rx_if), 0);
    zev_udp_t bad, good;
    sender_open(&bad, 'b', family, other, ZT_NS_B_IF);
    sender_open(&good, 'b', family, allowed, ZT_NS_B_IF);
    struct sent s = {0};
    send_text(&bad, "not allowed", group, port, &s);
    send_text(&good, "allowed", group, port, NULL);
    cr_assert(zt_run_until(&in.n, 1, 5000));
    grace();
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.status[0], 11, "the other source did send: %s", zev_err_name(s.status[0]));
    cr_assert_eq(in.n, 1, "the other source never arrives");
    cr_assert_str_eq(in.data[0], "allowed");
    cr_assert_str_eq(in.from[0].address, allowed);
    cr_assert_eq(zev_udp_drop_source_membership(&in.udp, other, group, rx_if), -EADDRNOTAVAIL,
                 "a source never added");
    cr_assert_eq(zev_udp_drop_source_membership(&in.udp, allowed, group, rx_if), 0);
    cr_assert_eq(zev_udp_drop_source_membership(&in.udp, allowed, group, rx_if), -EADDRNOTAVAIL,
                 "dropping twice is an error");
    send_text(&good, "after leaving", group, port, NULL);
    send_text(&good, "unicast", family == 4 ? ZT_NS_A4 : ZT_NS_A6, port, NULL);
    cr_assert(zt_run_until(&in.n, 2, 5000));
    grace();
    cr_assert_eq(in.n, 2);
    cr_assert_str_eq(in.data[1], "unicast");
    close_udp(&bad);
    close_udp(&good);
    close_udp(&in.udp);
    zt_run();
}

Test(udp_multicast, source_specific_ipv4_only_the_allowed_source_arrives) {
    REQUIRE_NETNS();
    source_specific(4, "0.0.0.0", "232.1.1.1", ZT_NS_A4, ZT_NS_B4, ZT_NS_B4_OTHER);
}

Test(udp_multicast, source_specific_ipv6_only_the_allowed_source_arrives) {
    REQUIRE_NETNS();
    source_specific(6, "::", "ff3e::8000:1", ZT_NS_A_IF, ZT_NS_B6, ZT_NS_B6_OTHER);
}

/* No interface given: zev picks the one the route to the group leaves by (FreeBSD refuses
 * interface 0 for a source-specific join; Linux would pick the same by itself). */
Test(udp_multicast, source_specific_ipv6_without_an_interface_uses_the_group_route) {
    REQUIRE_NETNS();
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 6), 0);
    struct in6_addr group;
    cr_assert_eq(inet_pton(AF_INET6, "ff3e::8000:2", &group), 1);
    unsigned index = 0;
    cr_assert_eq(zev__udp_source_index6(&u, &group, 0, NULL, &index), 0);
    cr_assert_eq(index, if_nametoindex(ZT_NS_A_IF));
    close_udp(&u);
    source_specific(6, "::", "ff3e::8000:2", NULL, ZT_NS_B6, ZT_NS_B6_OTHER);
}

Test(udp_multicast, dropping_memberships_never_added_is_an_error) {
    REQUIRE_NETNS();
    zev_udp_t u4, u6;
    cr_assert_eq(zev_udp_init(&zt_loop, &u4, 4), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &u6, 6), 0);
    cr_assert_eq(zev_udp_drop_membership(&u4, "239.9.9.9", NULL), -EADDRNOTAVAIL);
    cr_assert_eq(zev_udp_drop_membership(&u4, "239.9.9.9", ZT_NS_A_IF), -EADDRNOTAVAIL);
    cr_assert_eq(zev_udp_drop_membership(&u6, "ff05::9", ZT_NS_A_IF), -EADDRNOTAVAIL);
    cr_assert_eq(zev_udp_drop_source_membership(&u4, ZT_NS_B4, "232.9.9.9", NULL), -EADDRNOTAVAIL);
    cr_assert_eq(zev_udp_drop_source_membership(&u6, ZT_NS_B6, "ff3e::9", ZT_NS_A_IF),
                 -EADDRNOTAVAIL);
    /* Joined any-source: a source-specific drop of that group is still "never added". */
    cr_assert_eq(zev_udp_add_membership(&u4, "239.9.9.9", NULL), 0);
    cr_assert_eq(zev_udp_drop_source_membership(&u4, ZT_NS_B4, "239.9.9.9", NULL), -EADDRNOTAVAIL);
    cr_assert_eq(zev_udp_add_membership(&u4, "239.9.9.9", NULL), -EADDRINUSE,
                 "joining twice is an error too");
    close_udp(&u4);
    close_udp(&u6);
    zt_run();
}

/* ---- loopback, TTL, interface ---- */

Test(udp_multicast, loopback_on_and_off) {
    REQUIRE_NETNS();
    const char *any[] = {"0.0.0.0", "::"};
    const char *group[] = {"239.1.2.4", "ff05::1:4"};
    const char *tx_host[] = {ZT_NS_B4, ZT_NS_B6};
    for (int i = 0; i < 2; i++) {
        int family = 4 + 2 * i;
        struct inbox far, near;
        int port = inbox_open(&far, 'a', family, any[i], 0);
        inbox_open(&near, 'b', family, any[i], port);
        cr_assert_eq(zev_udp_add_membership(&far.udp, group[i], ZT_NS_A_IF), 0);
        zt_netns_enter(&ns, 'b'); /* interface names resolve in the caller's namespace */
        cr_assert_eq(zev_udp_add_membership(&near.udp, group[i], ZT_NS_B_IF), 0);
        zt_netns_enter(&ns, 'a');
        zev_udp_t tx;
        sender_open(&tx, 'b', family, tx_host[i], ZT_NS_B_IF);
        send_text(&tx, "loop on", group[i], port, NULL);
        cr_assert(zt_run_until(&near.n, 1, 5000), "loopback is on by default");
        cr_assert(zt_run_until(&far.n, 1, 5000));
        cr_assert_eq(zev_udp_set_multicast_loopback(&tx, 0), 0);
        send_text(&tx, "loop off", group[i], port, NULL);
        cr_assert(zt_run_until(&far.n, 2, 5000), "still sent on the link");
        grace();
        cr_assert_eq(near.n, 1, "but not looped back to this host");
        cr_assert_eq(zev_udp_set_multicast_loopback(&tx, 1), 0);
        send_text(&tx, "loop on again", group[i], port, NULL);
        cr_assert(zt_run_until(&near.n, 2, 5000));
        cr_assert_str_eq(near.data[1], "loop on again");
        close_udp(&tx);
        close_udp(&far.udp);
        close_udp(&near.udp);
        zt_run();
    }
}

/* A plain socket in A joined to group, reporting the TTL / hop limit of what it receives. */
static int ttl_listener(int family, const char *group, int port) {
    zev_sockaddr_t a;
    zev_addr_parse(&a, family == 4 ? "0.0.0.0" : "::", port);
    int fd = socket(a.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(fd, &a.sa, zev_addr_len(&a)), 0);
    if (family == 4) {
        struct ip_mreq m = {0};
        inet_pton(AF_INET, group, &m.imr_multiaddr);
        inet_pton(AF_INET, ZT_NS_A4, &m.imr_interface);
        cr_assert_eq(setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)), 0);
        cr_assert_eq(setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one)), 0);
    } else {
        struct ipv6_mreq m = {0};
        inet_pton(AF_INET6, group, &m.ipv6mr_multiaddr);
        m.ipv6mr_interface = ns.a_index;
        cr_assert_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof(m)), 0);
        cr_assert_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one)), 0);
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int received_ttl(int fd, char *text, size_t cap) {
    char ctl[CMSG_SPACE(sizeof(int)) * 2];
    struct iovec iov = {text, cap - 1};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
    ssize_t n = recvmsg(fd, &m, 0);
    cr_assert_geq(n, 0, "nothing arrived: %s", strerror(errno));
    text[n] = '\0';
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
            (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
            int v;
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            return v;
        }
    }
    return -1;
}

Test(udp_multicast, multicast_ttl_zero_stays_on_the_host_and_others_reach_the_wire) {
    REQUIRE_NETNS();
    const char *any[] = {"0.0.0.0", "::"};
    const char *group[] = {"239.1.2.5", "ff05::1:5"};
    const char *tx_host[] = {ZT_NS_B4, ZT_NS_B6};
    for (int i = 0; i < 2; i++) {
        int family = 4 + 2 * i;
        struct inbox near;
        int port = inbox_open(&near, 'b', family, any[i], 0);
        zt_netns_enter(&ns, 'b');
        cr_assert_eq(zev_udp_add_membership(&near.udp, group[i], ZT_NS_B_IF), 0);
        zt_netns_enter(&ns, 'a');
        int far = ttl_listener(family, group[i], port);
        zev_udp_t tx;
        sender_open(&tx, 'b', family, tx_host[i], ZT_NS_B_IF);
        cr_assert_eq(zev_udp_set_multicast_ttl(&tx, 0), 0);
        send_text(&tx, "ttl 0", group[i], port, NULL);
        cr_assert(zt_run_until(&near.n, 1, 5000), "TTL 0 is still looped back locally");
        cr_assert_eq(zev_udp_set_multicast_ttl(&tx, 3), 0);
        send_text(&tx, "ttl 3", group[i], port, NULL);
        char text[64];
        cr_assert_eq(received_ttl(far, text, sizeof(text)), 3);
        cr_assert_str_eq(text, "ttl 3", "the TTL 0 datagram never left the host");
        close(far);
        close_udp(&tx);
        close_udp(&near.udp);
        zt_run();
    }
}

Test(udp_multicast, multicast_interface_picks_the_outgoing_link) {
    REQUIRE_NETNS();
    char index[16];
    snprintf(index, sizeof(index), "%u", ns.b_index);
    const char *ways4[] = {ZT_NS_B4, ZT_NS_B_IF, index};
    const char *ways6[] = {ZT_NS_B_IF, index, "::%" ZT_NS_B_IF, ZT_NS_B6};
    for (int i = 0; i < 2; i++) {
        int family = 4 + 2 * i;
        const char *group = i == 0 ? "239.1.2.6" : "ff05::1:6";
        struct inbox far;
        int port = inbox_open(&far, 'a', family, i == 0 ? "0.0.0.0" : "::", 0);
        cr_assert_eq(zev_udp_add_membership(&far.udp, group, ZT_NS_A_IF), 0);
        zev_udp_t tx;
        sender_open(&tx, 'b', family, i == 0 ? "0.0.0.0" : "::", NULL);
        const char **ways = i == 0 ? ways4 : ways6;
        int n_ways = i == 0 ? 3 : 4;
        for (int w = 0; w < n_ways; w++) {
            zt_netns_enter(&ns, 'b'); /* interface names resolve in the caller's namespace */
            cr_assert_eq(zev_udp_set_multicast_interface(&tx, "lo"), 0);
            send_text(&tx, "via lo", group, port, NULL); /* may fail or vanish: never on zvb */
            cr_assert_eq(zev_udp_set_multicast_interface(&tx, ways[w]), 0, "%s", ways[w]);
            zt_netns_enter(&ns, 'a');
            send_text(&tx, ways[w], group, port, NULL);
            cr_assert(zt_run_until(&far.n, w + 1, 5000), "via %s", ways[w]);
            cr_assert_str_eq(far.data[w], ways[w], "the datagram sent via lo never arrived");
        }
        grace();
        cr_assert_eq(far.n, n_ways);
        close_udp(&tx);
        close_udp(&far.udp);
        zt_run();
    }
}
