/* tests/support/tcp_pair.h: a connected pair of zev TCP sockets on 127.0.0.1 in zt_loop. */
#ifndef ZT_TCP_PAIR_H
#define ZT_TCP_PAIR_H

#include "zev.h"

/* Initialise a and b and connect them (a is the client, b the accepted side). Runs the loop
 * until both are connected; the listener is closed again before returning. */
void zt_tcp_pair(zev_tcp_t *a, zev_tcp_t *b);
/* A plain blocking socket connected to 127.0.0.1:port (a peer that is not zev); the caller
 * closes it. Once it returns, the connection waits in the listener's backlog. */
int zt_raw_connect(int port);
/* The same with TCP_NODELAY: each send leaves as its own segment. */
int zt_raw_connect_nodelay(int port);
/* The server closed every one of fds (plain sockets): a read says EOF or reset, never "would
 * block". Each is closed and set to -1. */
void zt_assert_closed_by_server(int *fds, int n);
/* Initialise s in zt_loop with handle.data = data, listen on 127.0.0.1 port 0; returns the
 * port. */
int zt_listen(zev_tcp_server_t *s, zev_tcp_connection_cb cb, void *data);

#endif
