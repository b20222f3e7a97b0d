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

/* ---- names: getaddrinfo off the loop's thread (Node's dns.lookup, libuv's uv_getaddrinfo) -- */

typedef struct zev_resolve_s zev_resolve_t;
/* The lookup ended: status 0 with n >= 1 addresses (getaddrinfo's order, each with the port
 * asked for; valid during the call only), or status < 0 with n 0: -ZEV_EAI_NONAME (Node's
 * ENOTFOUND), -ZEV_EAI_AGAIN, -ZEV_EAI_FAIL, -ENOMEM, an errno, or -ECANCELED. Runs on the
 * loop's thread; the request may be reused or freed from here on. */
typedef void (*zev_resolve_cb)(zev_resolve_t *req, int status, const zev_sockaddr_t *addrs,
                               size_t n);

struct zev__resolve_job;

/* One lookup. The user owns its memory from zev_resolve until the callback ran. */
struct zev_resolve_s {
    /* public */
    void *data;
    /* read-only */
    zev_loop_t *loop;
    /* private */
    zev_resolve_cb cb;
    struct zev__resolve_job *job; /* on the resolver's queue or thread; NULL when not running */
    struct zev__link cancelled;   /* in the resolver's list while its -ECANCELED is due */
    int port;
};

/* Resolve host (a name, or numeric text) for port on one of the loop's resolver threads
 * (getaddrinfo; at most 4 threads, started on first need, joined by zev_loop_close); cb runs
 * later on the loop's thread, never inside this call. family: 0 (any), 4 or 6. A lookup in
 * flight keeps zev_run going. Costs two allocations (the job, with a copy of host, from
 * malloc since a cancelled job may outlive the loop; the answer's array through the loop's
 * allocator) plus getaddrinfo's own. -EINVAL on NULL, text that is neither an address nor a
 * host name (labels of letters, digits, '-', '_'; 253 bytes at most), a bad family or a port
 * outside 0..65535; -EBADF on a closed loop; -ENOMEM; -EAGAIN if no thread could start. */
ZEV_EXPORT int zev_resolve(zev_loop_t *loop, zev_resolve_t *req, const char *host, int port,
                           int family, zev_resolve_cb cb);
/* Cancel a lookup: its callback runs from the loop with -ECANCELED (never inside this call).
 * A lookup already inside getaddrinfo is cancelled logically: its thread finishes the call
 * and frees the answer. -EINVAL on NULL, -EALREADY if the callback ran or is already due. */
ZEV_EXPORT int zev_resolve_cancel(zev_resolve_t *req);

#endif /* ZEV_ADDR_H */
