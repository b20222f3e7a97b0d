/* fuzz/fuzz_addr.c: libFuzzer target for address text and socket addresses (zev/addr.h).
 *
 * Input: one byte choosing how the port is drawn (in range, negative, above 65535, any int),
 * four bytes of port, one line of host text, then raw bytes for a socket address. Checks:
 * - zev_ip_family gives 0, 4 or 6; zev_addr_parse gives 0 or -EINVAL, -EINVAL for every port
 *   outside 0..65535, success for every IPv4 text (and the empty "any" text), and a family that
 *   agrees with zev_ip_family when it succeeds;
 * - what parses round-trips: zev_addr_info gives the same family and port and a text that
 *   parses back to the same socket address, and whose own info is the same text;
 * - any IPv4/IPv6 socket address (random address, port, scope) round-trips the same way, and
 *   any other family is -EINVAL.
 */
#include "fuzz_common.h"
#include "zev.h"

#include <errno.h>
#include <limits.h>

static int draw_port(struct fuzz_in *in) {
    uint8_t mode = fuzz_u8(in);
    uint32_t raw = fuzz_u32(in);
    switch (mode % 4) {
    case 0:
        return (int)(raw % 65536);
    case 1:
        return raw == 0 ? -1 : -(int)(raw % (uint32_t)INT_MAX) - 1;
    case 2:
        return 65536 + (int)(raw % (uint32_t)(INT_MAX - 65536));
    default:
        return (int)raw; /* any int, by the two's complement the platform has */
    }
}

static int family_of(const zev_sockaddr_t *a) {
    return a->sa.sa_family == AF_INET ? 4 : a->sa.sa_family == AF_INET6 ? 6 : 0;
}

/* Socket addresses as zev_addr_parse builds them: equal in family, address, port, scope. */
static bool same_addr(const zev_sockaddr_t *a, const zev_sockaddr_t *b) {
    if (a->sa.sa_family != b->sa.sa_family) return false;
    if (a->sa.sa_family == AF_INET) {
        return a->in4.sin_port == b->in4.sin_port &&
               memcmp(&a->in4.sin_addr, &b->in4.sin_addr, sizeof(a->in4.sin_addr)) == 0;
    }
    return a->in6.sin6_port == b->in6.sin6_port && a->in6.sin6_scope_id == b->in6.sin6_scope_id &&
           memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr)) == 0;
}

/* addr is an IPv4/IPv6 socket address: its info must describe it and parse back to it. */
static void check_round_trip(const zev_sockaddr_t *addr) {
    zev_addr_info_t info;
    FUZZ_CHECK(zev_addr_info(addr, &info) == 0);
    FUZZ_CHECK(memchr(info.address, '\0', sizeof(info.address)) != NULL);
    FUZZ_CHECK(info.family == family_of(addr));
    FUZZ_CHECK(info.port >= 0 && info.port <= 65535);
    FUZZ_CHECK(zev_ip_family(info.address) == info.family);
    zev_sockaddr_t back;
    FUZZ_CHECK(zev_addr_parse(&back, info.address, info.port) == 0);
    FUZZ_CHECK(same_addr(addr, &back));
    zev_addr_info_t again;
    FUZZ_CHECK(zev_addr_info(&back, &again) == 0);
    FUZZ_CHECK(strcmp(info.address, again.address) == 0 && info.port == again.port);
}

static void check_text(const char *text, int port) {
    int family = zev_ip_family(text);
    FUZZ_CHECK(family == 0 || family == 4 || family == 6);
    zev_sockaddr_t a;
    int r = zev_addr_parse(&a, text, port);
    FUZZ_CHECK(r == 0 || r == -EINVAL);
    if (port < 0 || port > 65535) {
        FUZZ_CHECK(r == -EINVAL);
        return;
    }
    if (text[0] == '\0' || family == 4) FUZZ_CHECK(r == 0 && a.sa.sa_family == AF_INET);
    if (r != 0) return;
    if (text[0] != '\0') FUZZ_CHECK(family_of(&a) == family);
    FUZZ_CHECK(zev_addr_len(&a) ==
               (family_of(&a) == 4 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)));
    zev_addr_info_t info;
    FUZZ_CHECK(zev_addr_info(&a, &info) == 0 && info.port == port);
    check_round_trip(&a);
}

/* Whatever bytes are left, laid over a socket address whose family is chosen. */
static void check_sockaddr(struct fuzz_in *in) {
    static const sa_family_t families[] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
    zev_sockaddr_t a;
    memset(&a, 0, sizeof(a));
    uint8_t *bytes = (uint8_t *)&a;
    for (size_t i = 0; i < sizeof(a); i++) {
        bytes[i] = fuzz_u8(in);
    }
    uint8_t pick = fuzz_u8(in);
    if (pick < 0xf0) a.sa.sa_family = families[pick % 4];
    zev_addr_info_t info;
    if (a.sa.sa_family != AF_INET && a.sa.sa_family != AF_INET6) {
        FUZZ_CHECK(zev_addr_info(&a, &info) == -EINVAL);
        FUZZ_CHECK(zev_addr_len(&a) == 0);
        return;
    }
    check_round_trip(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_in in = {data, size};
    int port = draw_port(&in);
    char text[256];
    fuzz_text(&in, text, sizeof(text));
    check_text(text, port);
    FUZZ_CHECK(zev_ip_family(NULL) == 0);
    check_sockaddr(&in);
    return 0;
}
