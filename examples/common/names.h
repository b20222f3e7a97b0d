/* examples/common/names.h: a host from the command line to one address, for the examples that
 * listen, bind or send to a fixed place (servers, UDP tools). Clients that connect pass the
 * name to zev_tcp_connect instead, which races the addresses (docs/names.md).
 */
#ifndef EX_NAMES_H
#define EX_NAMES_H

#include <zev.h>

/* Resolve host (numeric text or a host name) for port to its first address (getaddrinfo's
 * order) in *out; family 0 (any), 4 or 6. Numeric text is parsed at once. A name is looked up
 * with zev_resolve on a loop of its own that is closed before returning, so its resolver
 * thread is gone again and the program's loop keeps to one thread. Call before the program's
 * loop runs: this blocks for the lookup. 0, or a negative error (-ZEV_EAI_NONAME: ENOTFOUND,
 * -ZEV_EAI_AGAIN, -EINVAL for text that is no host, ...). */
int ex_resolve(const char *host, int port, int family, zev_sockaddr_t *out);
/* As ex_resolve, giving the address as numeric text (ZEV_ADDR_TEXT_MAX bytes) for calls that
 * take text: zev_tcp_listen, zev_udp_bind. */
int ex_resolve_text(const char *host, int family, char *text);

#endif /* EX_NAMES_H */
