/* src/reactor/addr.c: IP address text <-> socket addresses (Node's isIP and address()).
 * Only numeric addresses: zev does no name resolution, which would block the loop.
 */
#include "zev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

/* Split "fe80::1%eth0" into the address part and the scope; returns 0 if the text is too long. */
static int split_scope(const char *text, char *addr, size_t addr_len, const char **scope) {
    const char *pct = strchr(text, '%');
    size_t n = pct ? (size_t)(pct - text) : strlen(text);
    if (n >= addr_len) return 0;
    for (size_t i = 0; i < n; i++) addr[i] = text[i];
    addr[n] = '\0';
    *scope = pct ? pct + 1 : NULL;
    return 1;
}

/* A scope is an interface index (decimal digits only, 1..UINT32_MAX) or an interface name. */
static int parse_scope(const char *scope, uint32_t *out) {
    *out = 0;
    if (!scope) return 0;
    if (*scope == '\0') return -EINVAL;
    if (*scope >= '0' && *scope <= '9') {
        uint64_t v = 0;
        for (const char *p = scope; *p; p++) {
            if (*p < '0' || *p > '9') return -EINVAL;
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > UINT32_MAX) return -EINVAL;
        }
        *out = (uint32_t)v;
        return 0;
    }
    /* No interface name has a ':', but Linux's lookup cuts a name there (the old "eth0:1"
     * alias syntax): "lo:junk" would resolve to lo. */
    if (strchr(scope, ':')) return -EINVAL;
    unsigned idx = if_nametoindex(scope);
    if (idx == 0) return -EINVAL;
    *out = idx;
    return 0;
}

/* Node's isIP accepts any non-empty zone text; zev also refuses signs and spaces, which no
 * interface name or index contains. */
static bool valid_scope_text(const char *scope) {
    if (*scope == '\0') return false;
    for (const char *p = scope; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '+' || *p == '-' || *p == '%') return false;
    }
    return true;
}

int zev_ip_family(const char *text) {
    if (!text) return 0;
    struct in_addr a4;
    if (inet_pton(AF_INET, text, &a4) == 1) return 4;
    char addr[ZEV_ADDR_TEXT_MAX];
    const char *scope = NULL;
    struct in6_addr a6;
    if (!split_scope(text, addr, sizeof(addr), &scope)) return 0;
    if (scope && !valid_scope_text(scope)) return 0;
    return inet_pton(AF_INET6, addr, &a6) == 1 ? 6 : 0;
}

int zev_addr_parse(zev_sockaddr_t *out, const char *host, int port) {
    if (!out || port < 0 || port > 65535) return -EINVAL;
    if (!host || *host == '\0') host = "0.0.0.0";
    zev_sockaddr_t a;
    memset(&a, 0, sizeof(a));
    if (inet_pton(AF_INET, host, &a.in4.sin_addr) == 1) {
        a.in4.sin_family = AF_INET;
        a.in4.sin_port = htons((uint16_t)port);
        *out = a;
        return 0;
    }
    char text[ZEV_ADDR_TEXT_MAX];
    const char *scope = NULL;
    if (!split_scope(host, text, sizeof(text), &scope)) return -EINVAL;
    if (inet_pton(AF_INET6, text, &a.in6.sin6_addr) != 1) return -EINVAL;
    uint32_t scope_id = 0;
    if (parse_scope(scope, &scope_id) < 0) return -EINVAL;
    a.in6.sin6_family = AF_INET6;
    a.in6.sin6_port = htons((uint16_t)port);
    a.in6.sin6_scope_id = scope_id;
    *out = a;
    return 0;
}

unsigned zev_addr_len(const zev_sockaddr_t *addr) {
    if (!addr) return 0;
    if (addr->sa.sa_family == AF_INET) return sizeof(struct sockaddr_in);
    if (addr->sa.sa_family == AF_INET6) return sizeof(struct sockaddr_in6);
    return 0;
}

int zev_addr_info(const zev_sockaddr_t *addr, zev_addr_info_t *info) {
    if (!addr || !info) return -EINVAL;
    if (addr->sa.sa_family == AF_INET) {
        if (!inet_ntop(AF_INET, &addr->in4.sin_addr, info->address, sizeof(info->address)))
            return -errno;
        info->family = 4;
        info->port = ntohs(addr->in4.sin_port);
        return 0;
    }
    if (addr->sa.sa_family == AF_INET6) {
        if (!inet_ntop(AF_INET6, &addr->in6.sin6_addr, info->address, sizeof(info->address)))
            return -errno;
        if (addr->in6.sin6_scope_id) {
            size_t n = strlen(info->address);
            snprintf(info->address + n, sizeof(info->address) - n, "%%%u",
                     (unsigned)addr->in6.sin6_scope_id);
        }
        info->family = 6;
        info->port = ntohs(addr->in6.sin6_port);
        return 0;
    }
    return -EINVAL;
}
