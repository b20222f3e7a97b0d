/* src/udp/multicast.c: multicast options and group membership, any-source and
 * source-specific, IPv4 and IPv6; and turning interface text (address, name, index, IPv6
 * scope) into what each socket option wants: an interface address for IPv4, an index for IPv6.
 *
 * Resolving a name or an address walks getifaddrs(): a setup-time cost, never per datagram.
 * Ranges and group addresses are checked here, so bad input gets a clear -EINVAL instead of
 * whatever a kernel makes of it.
 */
#include "udp_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static int set_opt(const zev_udp_t *u, int level, int name, const void *v, socklen_t len) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    return zev__sys_setsockopt(fd, level, name, v, len);
}

static bool is_v4(const zev_udp_t *u) {
    return u->family == AF_INET;
}

/* int, not u_char: Linux, FreeBSD and macOS take both for these options. */
int zev_udp_set_multicast_ttl(zev_udp_t *u, int ttl) {
    if (!u || ttl < 0 || ttl > 255) return -EINVAL;
    if (is_v4(u)) return set_opt(u, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
    return set_opt(u, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof(ttl));
}

int zev_udp_set_multicast_loopback(zev_udp_t *u, int enable) {
    if (!u) return -EINVAL;
    int v = enable ? 1 : 0;
    if (is_v4(u)) return set_opt(u, IPPROTO_IP, IP_MULTICAST_LOOP, &v, sizeof(v));
    return set_opt(u, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &v, sizeof(v));
}

/* ---- interface text ---- */

/* An interface name or decimal index. -ENODEV if there is no such interface. */
static int index_of(const char *text, unsigned *out) {
    if (*text == '\0') return -EINVAL;
    char *end = NULL;
    unsigned long v = strtoul(text, &end, 10);
    if (*end == '\0') {
        char name[IF_NAMESIZE];
        if (v == 0 || v > UINT32_MAX || !if_indextoname((unsigned)v, name)) return -ENODEV;
        *out = (unsigned)v;
        return 0;
    }
    unsigned index = if_nametoindex(text);
    if (index == 0) return -ENODEV;
    *out = index;
    return 0;
}

/* The first IPv4 address of interface index. */
static int v4_addr_of_index(unsigned index, struct in_addr *out) {
    char name[IF_NAMESIZE];
    if (!if_indextoname(index, name)) return -ENODEV;
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) < 0) return -errno;
    int err = -EADDRNOTAVAIL;
    for (struct ifaddrs *a = list; a; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
        if (strcmp(a->ifa_name, name) != 0) continue;
        *out = ((const struct sockaddr_in *)(const void *)a->ifa_addr)->sin_addr;
        err = 0;
        break;
    }
    freeifaddrs(list);
    return err;
}

/* The index of the interface that has IPv6 address addr. */
static int index_of_v6_addr(const struct in6_addr *addr, unsigned *out) {
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) < 0) return -errno;
    int err = -EADDRNOTAVAIL;
    for (struct ifaddrs *a = list; a; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET6) continue;
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)a->ifa_addr;
        if (!IN6_ARE_ADDR_EQUAL(&s->sin6_addr, addr)) continue;
        *out = if_nametoindex(a->ifa_name);
        err = *out ? 0 : -ENODEV;
        break;
    }
    freeifaddrs(list);
    return err;
}

/* IPv4: an interface address (INADDR_ANY for NULL: the kernel chooses). */
static int iface_v4(const char *iface, struct in_addr *out) {
    out->s_addr = htonl(INADDR_ANY);
    if (!iface) return 0;
    if (inet_pton(AF_INET, iface, out) == 1) return 0;
    if (zev_ip_family(iface) == 6) return -EAFNOSUPPORT;
    unsigned index = 0;
    int err = index_of(iface, &index);
    return err < 0 ? err : v4_addr_of_index(index, out);
}

/* IPv6: an interface index (0 for NULL or "::": the kernel chooses). "addr%scope" takes the
 * scope's interface, as Node does for "::%eth1". */
static int iface_v6(const char *iface, unsigned *out) {
    *out = 0;
    if (!iface) return 0;
    const char *pct = strchr(iface, '%');
    if (pct) {
        if (zev_ip_family(iface) != 6) return -EINVAL;
        return index_of(pct + 1, out);
    }
    struct in6_addr a;
    if (inet_pton(AF_INET6, iface, &a) == 1) {
        return IN6_IS_ADDR_UNSPECIFIED(&a) ? 0 : index_of_v6_addr(&a, out);
    }
    if (zev_ip_family(iface) == 4) return -EAFNOSUPPORT;
    return index_of(iface, out);
}

int zev_udp_set_multicast_interface(zev_udp_t *u, const char *iface) {
    if (!u) return -EINVAL;
    if (is_v4(u)) {
        struct in_addr a;
        int err = iface_v4(iface, &a);
        return err < 0 ? err : set_opt(u, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof(a));
    }
    unsigned index = 0;
    int err = iface_v6(iface, &index);
    if (err < 0) return err;
    int v = (int)index;
    return set_opt(u, IPPROTO_IPV6, IPV6_MULTICAST_IF, &v, sizeof(v));
}

/* ---- membership ---- */

static bool is_multicast(const zev_sockaddr_t *a) {
    if (a->sa.sa_family == AF_INET) return IN_MULTICAST(ntohl(a->in4.sin_addr.s_addr));
    return IN6_IS_ADDR_MULTICAST(&a->in6.sin6_addr);
}

static bool is_unicast(const zev_sockaddr_t *a) {
    if (is_multicast(a)) return false;
    if (a->sa.sa_family == AF_INET) {
        uint32_t v = ntohl(a->in4.sin_addr.s_addr);
        return v != INADDR_ANY && v != INADDR_BROADCAST;
    }
    return !IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
}

/* Parse address text of the socket's family. */
static int parse(const zev_udp_t *u, const char *text, zev_sockaddr_t *out) {
    if (!text) return -EINVAL;
    int err = zev_addr_parse(out, text, 0);
    if (err < 0) return err;
    return out->sa.sa_family == u->family ? 0 : -EAFNOSUPPORT;
}

/* An IPv6 group's interface: iface if given, else the group's own scope ("ff02::1%eth0"). */
static int group_index_v6(const zev_sockaddr_t *group, const char *iface, unsigned *out) {
    int err = iface_v6(iface, out);
    if (err == 0 && !iface) *out = group->in6.sin6_scope_id;
    return err;
}

static int membership(zev_udp_t *u, const char *group_text, const char *iface, bool join) {
    if (!u) return -EINVAL;
    zev_sockaddr_t group;
    int err = parse(u, group_text, &group);
    if (err < 0) return err;
    if (!is_multicast(&group)) return -EINVAL;
    if (is_v4(u)) {
        struct ip_mreq m = {.imr_multiaddr = group.in4.sin_addr};
        err = iface_v4(iface, &m.imr_interface);
        if (err < 0) return err;
        int opt = join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP;
        return set_opt(u, IPPROTO_IP, opt, &m, sizeof(m));
    }
    struct ipv6_mreq m = {.ipv6mr_multiaddr = group.in6.sin6_addr};
    unsigned index = 0;
    err = group_index_v6(&group, iface, &index);
    if (err < 0) return err;
    m.ipv6mr_interface = index;
    int opt = join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP;
    return set_opt(u, IPPROTO_IPV6, opt, &m, sizeof(m));
}

int zev_udp_add_membership(zev_udp_t *u, const char *group, const char *iface) {
    return membership(u, group, iface, true);
}

int zev_udp_drop_membership(zev_udp_t *u, const char *group, const char *iface) {
    return membership(u, group, iface, false);
}

static int source_membership4(zev_udp_t *u, const zev_sockaddr_t *source,
                              const zev_sockaddr_t *group, const char *iface, bool join) {
    struct ip_mreq_source m = {.imr_multiaddr = group->in4.sin_addr,
                               .imr_sourceaddr = source->in4.sin_addr};
    int err = iface_v4(iface, &m.imr_interface);
    if (err < 0) return err;
    int opt = join ? IP_ADD_SOURCE_MEMBERSHIP : IP_DROP_SOURCE_MEMBERSHIP;
    return set_opt(u, IPPROTO_IP, opt, &m, sizeof(m));
}

/* ---- IPv6 source-specific requests ----
 *
 * MCAST_JOIN_SOURCE_GROUP takes two sockaddrs and an interface index. Linux reads only the
 * family and the address of each; FreeBSD also checks sin6_len (EINVAL without it) and
 * refuses interface 0 (EADDRNOTAVAIL), where Linux would pick one by route. So zev always
 * sets the length where the field exists and always names an interface. */

static void set_sin6_len(struct sockaddr_in6 *s) {
#ifdef ZEV_HAVE_SIN6_LEN
    s->sin6_len = sizeof(*s);
#else
    (void)s;
#endif
}

static void fill_sin6(struct sockaddr_storage *ss, const struct in6_addr *addr) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)(void *)ss;
    *s = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_addr = *addr};
    set_sin6_len(s);
}

void zev__udp_source_req6(struct group_source_req *g, const struct in6_addr *group,
                          const struct in6_addr *source, unsigned index) {
    *g = (struct group_source_req){.gsr_interface = index};
    fill_sin6(&g->gsr_group, group);
    fill_sin6(&g->gsr_source, source);
}

/* The socket's IPv6 multicast interface (zev_udp_set_multicast_interface), 0 if none. */
static unsigned multicast_if_v6(int fd) {
    unsigned index = 0;
    socklen_t len = sizeof(index);
    int err = zev__sys_getsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, &len);
    return err < 0 ? 0 : index;
}

/* The interface the unicast route to group leaves by: what FreeBSD itself picks for a legacy
 * IPV6_JOIN_GROUP with interface 0, and Linux for every join with 0. A throwaway UDP socket
 * connected to the group (connect sends nothing) learns the source address of that route;
 * the interface that has it is the answer. Setup time only: a socket and a getifaddrs walk. */
static int route_index_v6(const struct in6_addr *group, unsigned *out) {
    int fd = zev__sys_socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0) return fd;
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(9), .sin6_addr = *group};
    set_sin6_len(&to);
    struct sockaddr_in6 from;
    socklen_t len = sizeof(from);
    int err = zev__sys_connect(fd, (const struct sockaddr *)&to, sizeof(to));
    if (err == 0) err = zev__sys_getsockname(fd, (struct sockaddr *)&from, &len);
    zev__sys_close(fd);
    if (err < 0) return -EADDRNOTAVAIL; /* no route: nothing to choose from */
    if (from.sin6_scope_id != 0) {
        *out = from.sin6_scope_id;
        return 0;
    }
    return index_of_v6_addr(&from.sin6_addr, out);
}

int zev__udp_source_index6(const zev_udp_t *u, const struct in6_addr *group, uint32_t scope,
                           const char *iface, unsigned *out) {
    int fd = zev__udp_fd(u);
    if (fd < 0) return fd;
    int err = iface_v6(iface, out); /* 0 for NULL or "::": choose */
    if (err < 0) return err;
    if (*out == 0) *out = scope;
    if (*out == 0) *out = multicast_if_v6(fd);
    if (*out != 0) return 0;
    err = route_index_v6(group, out);
    return err < 0 || *out == 0 ? -EADDRNOTAVAIL : 0;
}

static int source_membership6(zev_udp_t *u, const zev_sockaddr_t *source,
                              const zev_sockaddr_t *group, const char *iface, bool join) {
    unsigned index = 0;
    int err =
        zev__udp_source_index6(u, &group->in6.sin6_addr, group->in6.sin6_scope_id, iface, &index);
    if (err < 0) return err;
    struct group_source_req g;
    zev__udp_source_req6(&g, &group->in6.sin6_addr, &source->in6.sin6_addr, index);
    int opt = join ? MCAST_JOIN_SOURCE_GROUP : MCAST_LEAVE_SOURCE_GROUP;
    return set_opt(u, IPPROTO_IPV6, opt, &g, sizeof(g));
}

static int source_membership(zev_udp_t *u, const char *source_text, const char *group_text,
                             const char *iface, bool join) {
    if (!u) return -EINVAL;
    zev_sockaddr_t source;
    zev_sockaddr_t group;
    int err = parse(u, source_text, &source);
    if (err == 0) err = parse(u, group_text, &group);
    if (err < 0) return err;
    if (!is_unicast(&source) || !is_multicast(&group)) return -EINVAL;
    if (is_v4(u)) {
        err = source_membership4(u, &source, &group, iface, join);
    } else {
        err = source_membership6(u, &source, &group, iface, join);
    }
    /* Linux says EINVAL when the group has no membership at all on that interface (never
     * joined, or its last source already dropped) and EADDRNOTAVAIL when it has one without
     * this source. Both mean "never added"; the arguments were checked above, so report one
     * error, as an any-source drop does. */
    if (!join && err == -EINVAL) err = -EADDRNOTAVAIL;
    return err;
}

int zev_udp_add_source_membership(zev_udp_t *u, const char *source, const char *group,
                                  const char *iface) {
    return source_membership(u, source, group, iface, true);
}

int zev_udp_drop_source_membership(zev_udp_t *u, const char *source, const char *group,
                                   const char *iface) {
    return source_membership(u, source, group, iface, false);
}
