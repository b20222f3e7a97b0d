/* zev/addr.h: socket addresses as text, family and port (Node's address(), net.isIP).
 * Included from <zev.h>.
 */
#ifndef ZEV_ADDR_H
#define ZEV_ADDR_H

#include <netinet/in.h>
#include <sys/socket.h>

/* Big enough for any IPv6 text with a "%scope" suffix. */
#define ZEV_ADDR_TEXT_MAX 64

/* An IPv4 or IPv6 socket address. */
typedef union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} zev_sockaddr_t;

/* What Node's address() and rinfo give: text, family (4 or 6) and port. */
typedef struct {
    char address[ZEV_ADDR_TEXT_MAX];
    int family;
    int port;
} zev_addr_info_t;

/* 4 for IPv4 text, 6 for IPv6 text (a "%scope" suffix allowed), 0 otherwise or on NULL. */
ZEV_EXPORT int zev_ip_family(const char *text);
/* Parse host text and port into *out. host NULL or "" means any address ("0.0.0.0"); "::" is
 * IPv6 any. -EINVAL on NULL out, text that is not an IP address, or port outside 0..65535. */
ZEV_EXPORT int zev_addr_parse(zev_sockaddr_t *out, const char *host, int port);
/* Fill *info from a socket address. -EINVAL on NULL or a family other than IPv4/IPv6. */
ZEV_EXPORT int zev_addr_info(const zev_sockaddr_t *addr, zev_addr_info_t *info);
/* Length of the sockaddr for its family (0 for an unknown family). */
ZEV_EXPORT unsigned zev_addr_len(const zev_sockaddr_t *addr);

#endif /* ZEV_ADDR_H */
