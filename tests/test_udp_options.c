/* tests/test_udp_options.c: UDP socket options on loopback: TTL and hop limit (checked on the
 * wire with IP_RECVTTL / IPV6_RECVHOPLIMIT), broadcast, multicast TTL, loopback and interface
 * (read back from the kernel), buffer sizes, batch size, and the validation of membership
 * arguments, and adopting a datagram socket opened elsewhere (zev_udp_open). Nothing here joins a group: memberships and multicast traffic are tested inside
 * private namespaces (test_udp_multicast.c). */
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../src/udp/udp_internal.h" /* the source-specific request, built without a socket */

TestSuite(udp_options, .init = zt_setup, .fini = zt_teardown, .timeout = 20);

static int get_int(const zev_udp_t *u, int level, int name) {
    int v = -1;
    socklen_t len = sizeof(v);
    cr_assert_eq(getsockopt(zev_udp_fileno(u), level, name, &v, &len), 0);
    return v;
}

static void close_all(zev_udp_t *a, zev_udp_t *b) {
    zev_close(&a->handle, NULL);
    if (b) zev_close(&b->handle, NULL);
    zt_run();
}

/* A plain receiving socket that reports each datagram's TTL / hop limit. */
static int ttl_receiver(int family, int *port) {
    const char *host = family == 4 ? "127.0.0.1" : "::1";
    zev_sockaddr_t a;
    zev_addr_parse(&a, host, 0);
    int fd = socket(a.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int one = 1;
    if (family == 4) {
        cr_assert_eq(setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one)), 0);
    } else {
        cr_assert_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one)), 0);
    }
    cr_assert_eq(bind(fd, &a.sa, zev_addr_len(&a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, &a.sa, &len);
    zev_addr_info_t info;
    zev_addr_info(&a, &info);
    *port = info.port;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int received_ttl(int fd) {
    char buf[64];
    char ctl[CMSG_SPACE(sizeof(int)) * 2];
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
    cr_assert_geq(recvmsg(fd, &m, 0), 0);
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

static void ttl_reaches_the_wire(int family) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, family), 0);
    cr_assert_eq(zev_udp_set_ttl(&u, 0), -EINVAL);
    cr_assert_eq(zev_udp_set_ttl(&u, 256), -EINVAL);
    cr_assert_eq(zev_udp_set_ttl(&u, -1), -EINVAL);
    cr_assert_eq(zev_udp_set_ttl(&u, 1), 0);
    cr_assert_eq(zev_udp_set_ttl(&u, 255), 0);
    cr_assert_eq(zev_udp_set_ttl(&u, 7), 0);
    int port = 0;
    int fd = ttl_receiver(family, &port);
    zev_slice_t s = zev_slice("ttl", 3);
    cr_assert_eq(zev_udp_send(&u, &s, 1, family == 4 ? "127.0.0.1" : "::1", port, NULL, NULL), 0);
    cr_assert_eq(received_ttl(fd), 7);
    close(fd);
    close_all(&u, NULL);
}

Test(udp_options, ttl_is_checked_1_to_255_and_reaches_the_wire_ipv4) {
    ttl_reaches_the_wire(4);
}

Test(udp_options, hop_limit_is_checked_1_to_255_and_reaches_the_wire_ipv6) {
    ttl_reaches_the_wire(6);
}

Test(udp_options, broadcast_flag_is_set_and_cleared) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 4), 0);
    cr_assert_eq(get_int(&u, SOL_SOCKET, SO_BROADCAST), 0);
    cr_assert_eq(zev_udp_set_broadcast(&u, 1), 0);
    cr_assert_eq(get_int(&u, SOL_SOCKET, SO_BROADCAST), 1);
    cr_assert_eq(zev_udp_set_broadcast(&u, 0), 0);
    cr_assert_eq(get_int(&u, SOL_SOCKET, SO_BROADCAST), 0);
    close_all(&u, NULL);
}

Test(udp_options, multicast_ttl_is_checked_0_to_255) {
    zev_udp_t u4, u6;
    cr_assert_eq(zev_udp_init(&zt_loop, &u4, 4), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &u6, 6), 0);
    cr_assert_eq(zev_udp_set_multicast_ttl(&u4, -1), -EINVAL);
    cr_assert_eq(zev_udp_set_multicast_ttl(&u4, 256), -EINVAL);
    cr_assert_eq(zev_udp_set_multicast_ttl(&u6, 256), -EINVAL);
    cr_assert_eq(zev_udp_set_multicast_ttl(&u4, 0), 0);
    cr_assert_eq(get_int(&u4, IPPROTO_IP, IP_MULTICAST_TTL), 0);
    cr_assert_eq(zev_udp_set_multicast_ttl(&u4, 255), 0);
    cr_assert_eq(get_int(&u4, IPPROTO_IP, IP_MULTICAST_TTL), 255);
    cr_assert_eq(zev_udp_set_multicast_ttl(&u6, 9), 0);
    cr_assert_eq(get_int(&u6, IPPROTO_IPV6, IPV6_MULTICAST_HOPS), 9);
    close_all(&u4, &u6);
}

Test(udp_options, multicast_loopback_is_switched) {
    zev_udp_t u4, u6;
    cr_assert_eq(zev_udp_init(&zt_loop, &u4, 4), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &u6, 6), 0);
    cr_assert_eq(get_int(&u4, IPPROTO_IP, IP_MULTICAST_LOOP), 1, "on by default");
    cr_assert_eq(zev_udp_set_multicast_loopback(&u4, 0), 0);
    cr_assert_eq(get_int(&u4, IPPROTO_IP, IP_MULTICAST_LOOP), 0);
    cr_assert_eq(zev_udp_set_multicast_loopback(&u6, 0), 0);
    cr_assert_eq(get_int(&u6, IPPROTO_IPV6, IPV6_MULTICAST_LOOP), 0);
    cr_assert_eq(zev_udp_set_multicast_loopback(&u6, 1), 0);
    cr_assert_eq(get_int(&u6, IPPROTO_IPV6, IPV6_MULTICAST_LOOP), 1);
    close_all(&u4, &u6);
}

static struct in_addr v4_multicast_if(const zev_udp_t *u) {
    struct in_addr a = {0};
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockopt(zev_udp_fileno(u), IPPROTO_IP, IP_MULTICAST_IF, &a, &len), 0);
    return a;
}

Test(udp_options, ipv4_multicast_interface_by_address_name_or_index) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 4), 0);
    char lo_index[16];
    snprintf(lo_index, sizeof(lo_index), "%u", if_nametoindex("lo"));
    const char *ways[] = {"127.0.0.1", "lo", lo_index};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(zev_udp_set_multicast_interface(&u, NULL), 0);
        cr_assert_eq(v4_multicast_if(&u).s_addr, htonl(INADDR_ANY));
        cr_assert_eq(zev_udp_set_multicast_interface(&u, ways[i]), 0, "%s", ways[i]);
        cr_assert_eq(v4_multicast_if(&u).s_addr, htonl(INADDR_LOOPBACK), "%s", ways[i]);
    }
    cr_assert_eq(zev_udp_set_multicast_interface(&u, "nosuch0"), -ENODEV);
    cr_assert_eq(zev_udp_set_multicast_interface(&u, "999999"), -ENODEV);
    cr_assert_eq(zev_udp_set_multicast_interface(&u, "::1"), -EAFNOSUPPORT);
    cr_assert_eq(zev_udp_set_multicast_interface(&u, ""), -EINVAL);
    close_all(&u, NULL);
}

Test(udp_options, ipv6_multicast_interface_by_name_index_scope_or_address) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 6), 0);
    int lo = (int)if_nametoindex("lo");
    char lo_index[16];
    snprintf(lo_index, sizeof(lo_index), "%d", lo);
    const char *ways[] = {"lo", lo_index, "::%lo", "::1"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(zev_udp_set_multicast_interface(&u, "::"), 0);
        cr_assert_eq(get_int(&u, IPPROTO_IPV6, IPV6_MULTICAST_IF), 0);
        cr_assert_eq(zev_udp_set_multicast_interface(&u, ways[i]), 0, "%s", ways[i]);
        cr_assert_eq(get_int(&u, IPPROTO_IPV6, IPV6_MULTICAST_IF), lo, "%s", ways[i]);
    }
    cr_assert_eq(zev_udp_set_multicast_interface(&u, NULL), 0);
    cr_assert_eq(get_int(&u, IPPROTO_IPV6, IPV6_MULTICAST_IF), 0);
    cr_assert_eq(zev_udp_set_multicast_interface(&u, "::%nosuch0"), -ENODEV);
    cr_assert_eq(zev_udp_set_multicast_interface(&u, "fd00::99"), -EADDRNOTAVAIL);
    cr_assert_eq(zev_udp_set_multicast_interface(&u, "127.0.0.1"), -EAFNOSUPPORT);
    close_all(&u, NULL);
}

Test(udp_options, membership_arguments_are_checked_before_the_kernel) {
    zev_udp_t u4, u6;
    cr_assert_eq(zev_udp_init(&zt_loop, &u4, 4), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &u6, 6), 0);
    cr_assert_eq(zev_udp_add_membership(&u4, "10.1.2.3", NULL), -EINVAL, "not multicast");
    cr_assert_eq(zev_udp_add_membership(&u4, "239.1.2", NULL), -EINVAL);
    cr_assert_eq(zev_udp_add_membership(&u4, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_add_membership(&u4, "ff05::1", NULL), -EAFNOSUPPORT);
    cr_assert_eq(zev_udp_add_membership(&u6, "239.1.2.3", NULL), -EAFNOSUPPORT);
    cr_assert_eq(zev_udp_add_membership(&u6, "fd00::1", NULL), -EINVAL);
    cr_assert_eq(zev_udp_drop_membership(&u6, "::", NULL), -EINVAL);
    cr_assert_eq(zev_udp_add_membership(&u4, "239.1.2.3", "nosuch0"), -ENODEV);
    cr_assert_eq(zev_udp_add_source_membership(&u4, "239.1.1.1", "232.1.1.1", NULL), -EINVAL,
                 "a multicast source");
    cr_assert_eq(zev_udp_add_source_membership(&u4, "0.0.0.0", "232.1.1.1", NULL), -EINVAL);
    cr_assert_eq(zev_udp_add_source_membership(&u4, "10.0.0.1", "10.0.0.2", NULL), -EINVAL);
    cr_assert_eq(zev_udp_add_source_membership(&u6, "::", "ff3e::1", NULL), -EINVAL);
    cr_assert_eq(zev_udp_drop_source_membership(&u6, "fd00::1", "fd00::2", NULL), -EINVAL);
    cr_assert_eq(zev_udp_add_source_membership(&u6, "10.0.0.1", "ff3e::1", NULL), -EAFNOSUPPORT);
    close_all(&u4, &u6);
}

/* What MCAST_JOIN_SOURCE_GROUP gets for IPv6. Linux reads only the family and the addresses;
 * FreeBSD also wants each address's sin6_len and refuses interface 0, so both are checked
 * here, where a Linux kernel cannot catch them. */
Test(udp_options, ipv6_source_request_has_family_length_interface_and_addresses) {
    struct in6_addr group;
    struct in6_addr source;
    cr_assert_eq(inet_pton(AF_INET6, "ff3e::8000:1", &group), 1);
    cr_assert_eq(inet_pton(AF_INET6, "fd00::2", &source), 1);
    struct group_source_req g;
    memset(&g, 0xa5, sizeof(g)); /* nothing left over may reach the kernel */
    zev__udp_source_req6(&g, &group, &source, 7);
    cr_assert_eq(g.gsr_interface, 7);
    const struct sockaddr_in6 *a[2] = {(const void *)&g.gsr_group, (const void *)&g.gsr_source};
    const struct in6_addr *want[2] = {&group, &source};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(a[i]->sin6_family, AF_INET6);
        cr_assert(IN6_ARE_ADDR_EQUAL(&a[i]->sin6_addr, want[i]));
        cr_assert_eq(a[i]->sin6_port, 0);
        cr_assert_eq(a[i]->sin6_scope_id, 0);
        cr_assert_eq(a[i]->sin6_flowinfo, 0);
#ifdef ZEV_HAVE_SIN6_LEN
        cr_assert_eq(a[i]->sin6_len, sizeof(struct sockaddr_in6));
#endif
    }
}

Test(udp_options, ipv6_source_request_never_leaves_the_interface_to_the_kernel) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 6), 0);
    struct in6_addr group;
    cr_assert_eq(inet_pton(AF_INET6, "ff3e::8000:1", &group), 1);
    struct in6_addr local;
    cr_assert_eq(inet_pton(AF_INET6, "ff02::1", &local), 1);
    unsigned lo = if_nametoindex("lo");
    cr_assert_gt(lo, 0);
    unsigned index = 0;
    cr_assert_eq(zev__udp_source_index6(&u, &group, 0, "lo", &index), 0, "named");
    cr_assert_eq(index, lo);
    cr_assert_eq(zev__udp_source_index6(&u, &group, 0, "zev-no-such-if", &index), -ENODEV);
    index = 0;
    cr_assert_eq(zev__udp_source_index6(&u, &local, lo, NULL, &index), 0, "the group's scope");
    cr_assert_eq(index, lo);
    /* A link-local group with no scope and no multicast interface: no route can say which
     * link, so no interface can be chosen. */
    cr_assert_eq(zev__udp_source_index6(&u, &local, 0, NULL, &index), -EADDRNOTAVAIL);
    cr_assert_eq(zev_udp_set_multicast_interface(&u, "lo"), 0);
    index = 0;
    cr_assert_eq(zev__udp_source_index6(&u, &local, 0, NULL, &index), 0,
                 "the socket's multicast interface");
    cr_assert_eq(index, lo);
    cr_assert_eq(zev_close(&u.handle, NULL), 0);
    zt_run();
}

Test(udp_options, buffer_sizes_are_checked_and_read_back) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 4), 0);
    cr_assert_eq(zev_udp_set_recv_buffer_size(&u, 0), -EINVAL);
    cr_assert_eq(zev_udp_set_send_buffer_size(&u, 0), -EINVAL);
    cr_assert_eq(zev_udp_set_recv_buffer_size(&u, (size_t)INT_MAX + 1), -EINVAL);
    cr_assert_eq(zev_udp_set_recv_buffer_size(&u, 65536), 0);
    cr_assert_eq(zev_udp_set_send_buffer_size(&u, 32768), 0);
    cr_assert_geq(zev_udp_recv_buffer_size(&u), 65536);
    cr_assert_geq(zev_udp_send_buffer_size(&u), 32768);
    cr_assert_lt(zev_udp_send_buffer_size(&u), 65536 * 2, "the send size is its own");
    close_all(&u, NULL);
}

Test(udp_options, batch_size_and_high_water_mark_ranges) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 4), 0);
    cr_assert_eq(zev_udp_set_batch_size(&u, 0), -EINVAL);
    cr_assert_eq(zev_udp_set_batch_size(&u, ZEV_UDP_BATCH_MAX + 1), -EINVAL);
    cr_assert_eq(zev_udp_set_batch_size(&u, 1), 0);
    cr_assert_eq(zev_udp_set_batch_size(&u, ZEV_UDP_BATCH_MAX), 0);
    cr_assert_eq(zev_udp_set_high_water_mark(&u, 0), -EINVAL);
    cr_assert_eq(zev_udp_set_high_water_mark(&u, (1u << 30) + 1), -EINVAL);
    cr_assert_eq(zev_udp_set_high_water_mark(&u, 1), 0);
    close_all(&u, NULL);
}

Test(udp_options, every_option_reports_ebadf_after_close_and_einval_on_null) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_init(&zt_loop, &u, 4), 0);
    zev_close(&u.handle, NULL);
    cr_assert_eq(zev_udp_set_ttl(&u, 5), -EBADF);
    cr_assert_eq(zev_udp_set_broadcast(&u, 1), -EBADF);
    cr_assert_eq(zev_udp_set_multicast_ttl(&u, 1), -EBADF);
    cr_assert_eq(zev_udp_set_multicast_loopback(&u, 1), -EBADF);
    cr_assert_eq(zev_udp_set_multicast_interface(&u, "127.0.0.1"), -EBADF);
    cr_assert_eq(zev_udp_add_membership(&u, "239.1.2.3", NULL), -EBADF);
    cr_assert_eq(zev_udp_set_recv_buffer_size(&u, 4096), -EBADF);
    cr_assert_eq(zev_udp_recv_buffer_size(&u), -EBADF);
    cr_assert_eq(zev_udp_set_batch_size(&u, 4), -EBADF);
    cr_assert_eq(zev_udp_connect(&u, "127.0.0.1", 9), -EBADF);
    cr_assert_eq(zev_udp_disconnect(&u), -EBADF);
    cr_assert_eq(zev_udp_fileno(&u), -EBADF);
    zt_run();
    cr_assert_eq(zev_udp_set_ttl(NULL, 5), -EINVAL);
    cr_assert_eq(zev_udp_set_broadcast(NULL, 1), -EINVAL);
    cr_assert_eq(zev_udp_set_multicast_loopback(NULL, 1), -EINVAL);
    cr_assert_eq(zev_udp_set_multicast_interface(NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_add_membership(NULL, "239.1.2.3", NULL), -EINVAL);
    cr_assert_eq(zev_udp_recv_start(NULL, NULL), -EINVAL);
    cr_assert_eq(zev_udp_stats(NULL, NULL), -EINVAL);
}

/* ---- adopting a descriptor (zev_udp_open) ---- */

static int adopted_msgs;
static char adopted_got[16];
static int adopted_port;

static void on_adopted_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                               const zev_udp_rinfo_t *rinfo) {
    (void)u;
    cr_assert_eq(status, 0);
    cr_assert_eq(msg->len, 4);
    memcpy(adopted_got, msg->base, 4);
    adopted_port = rinfo->port;
    adopted_msgs++;
}

static int raw_udp(const char *host, zev_sockaddr_t *a) {
    cr_assert_eq(zev_addr_parse(a, host, 0), 0);
    int fd = socket(a->sa.sa_family, SOCK_DGRAM, 0); /* blocking, inheritable */
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, &a->sa, zev_addr_len(a)), 0);
    socklen_t len = sizeof(*a);
    cr_assert_eq(getsockname(fd, &a->sa, &len), 0);
    return fd;
}

static int sends_done;
static void count_send(zev_udp_t *u, int status, void *arg) {
    (void)u, (void)arg;
    cr_assert_eq(status, 4);
    sends_done++;
}

Test(udp_options, adopted_socket_keeps_its_binding_and_sends_and_receives) {
    zev_sockaddr_t ua, pa;
    int fd = raw_udp("127.0.0.1", &ua);
    int peer = raw_udp("127.0.0.1", &pa);
    zev_udp_t u;
    cr_assert_eq(zev_udp_open(&zt_loop, &u, fd), 0);
    cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK, "made non-blocking");
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "made close-on-exec");
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_local_address(&u, &info), 0);
    cr_assert_eq(info.port, zev__addr_port(&ua));
    cr_assert_eq(zev_udp_bind(&u, "127.0.0.1", 0, NULL, NULL), -EALREADY, "bound already");
    cr_assert_eq(zev_udp_send(&u, (zev_slice_t[]){zev_slice("xy", 2)}, 1, "::1", 9, NULL, NULL),
                 -EAFNOSUPPORT, "the family is the socket's");
    cr_assert_eq(zev_udp_recv_start(&u, on_adopted_message), 0);
    adopted_msgs = 0;
    cr_assert_eq(sendto(peer, "ping", 4, 0, &ua.sa, zev_addr_len(&ua)), 4);
    cr_assert(zt_run_until(&adopted_msgs, 1, 10000));
    cr_assert_eq(memcmp(adopted_got, "ping", 4), 0);
    cr_assert_eq(adopted_port, zev__addr_port(&pa));
    sends_done = 0;
    cr_assert_eq(zev_udp_send(&u, (zev_slice_t[]){zev_slice("pong", 4)}, 1, "127.0.0.1",
                              zev__addr_port(&pa), count_send, NULL),
                 0);
    cr_assert(zt_run_until(&sends_done, 1, 10000));
    char buf[8];
    cr_assert_eq(recv(peer, buf, sizeof(buf), 0), 4);
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    close_all(&u, NULL);
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "zev closed the adopted socket");
    close(peer);
}

Test(udp_options, adopted_connected_socket_sends_to_its_peer) {
    zev_sockaddr_t ua, pa;
    int fd = raw_udp("127.0.0.1", &ua);
    int peer = raw_udp("127.0.0.1", &pa);
    cr_assert_eq(connect(fd, &pa.sa, zev_addr_len(&pa)), 0);
    zev_udp_t u;
    cr_assert_eq(zev_udp_open(&zt_loop, &u, fd), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_udp_remote_address(&u, &info), 0);
    cr_assert_eq(info.port, zev__addr_port(&pa));
    sends_done = 0;
    cr_assert_eq(zev_udp_send(&u, (zev_slice_t[]){zev_slice("pong", 4)}, 1, NULL, 0, count_send,
                              NULL),
                 0);
    cr_assert(zt_run_until(&sends_done, 1, 10000));
    char buf[8];
    cr_assert_eq(recv(peer, buf, sizeof(buf), 0), 4);
    close_all(&u, NULL);
    close(peer);
}

Test(udp_options, adopting_the_wrong_kind_of_descriptor_is_refused) {
    zev_udp_t u;
    cr_assert_eq(zev_udp_open(&zt_loop, &u, -1), -EBADF);
    int closed_fd = socket(AF_INET, SOCK_DGRAM, 0);
    close(closed_fd);
    cr_assert_eq(zev_udp_open(&zt_loop, &u, closed_fd), -EBADF);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(zev_udp_open(&zt_loop, &u, p[0]), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp), 0);
    cr_assert_eq(zev_udp_open(&zt_loop, &u, sp[0]), -EAFNOSUPPORT);
    close(sp[0]);
    close(sp[1]);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(zev_udp_open(&zt_loop, &u, t), -EINVAL, "a stream socket");
    cr_assert_eq(fcntl(t, F_GETFL) & O_NONBLOCK, 0, "left as it was");
    cr_assert_eq(zev_udp_open(NULL, &u, t), -EINVAL);
    close(t);
}
