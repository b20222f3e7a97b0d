/* tests/support/tcp_pair.h: a connected pair of zev TCP sockets on 127.0.0.1 in zt_loop. */
#ifndef ZT_TCP_PAIR_H
#define ZT_TCP_PAIR_H

#include "zev.h"

/* Initialise a and b and connect them (a is the client, b the accepted side). Runs the loop
 * until both are connected; the listener is closed again before returning. */
void zt_tcp_pair(zev_tcp_t *a, zev_tcp_t *b);

#endif
