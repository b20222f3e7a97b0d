/* tests/test_tcp.c: listeners and connections: listen, address, connect, echo, close order,
 * connection limits, and the errors Node users expect. */
#include "zt.h"

#include <errno.h>
#include <string.h>

TestSuite(tcp, .init = zt_setup, .fini = zt_teardown, .timeout = 20);

/* ---- a tiny echo server built on the public API ---- */

#define MAX_CONNS 64

struct echo_server {
    zev_tcp_server_t server;
    zev_tcp_t conns[MAX_CONNS];
    int n_conns;
    int closed_conns;
    int server_closed;
    int connection_errors;
};

static void echo_data(zev_tcp_t *t, const zev_slice_t *s) {
    zev_tcp_write(t, s, 1, NULL, NULL);
}

static void conn_closed(zev_handle_t *h) {
    struct echo_server *es = h->data;
    es->closed_conns++;
}

static void echo_finish(zev_tcp_t *t) {
    zev_close(&t->handle, conn_closed);
}

static const zev_tcp_events_t echo_events = {.data = echo_data, .finish = echo_finish};

static void on_connection(zev_tcp_server_t *s, int status) {
    struct echo_server *es = s->handle.data;
    if (status < 0) {
        es->connection_errors++;
        return;
    }
    cr_assert_lt(es->n_conns, MAX_CONNS);
    zev_tcp_t *c = &es->conns[es->n_conns++];
    cr_assert_eq(zev_tcp_init(s->handle.loop, c), 0);
    c->handle.data = es;
    cr_assert_eq(zev_tcp_accept(s, c), 0);
    zev_tcp_set_events(c, &echo_events);
    cr_assert_eq(zev_tcp_read_start(c), 0);
}

static int echo_listen(struct echo_server *es, const char *host) {
    memset(es, 0, sizeof(*es));
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &es->server), 0);
    es->server.handle.data = es;
    cr_assert_eq(zev_tcp_listen(&es->server, host, 0, NULL, on_connection), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_tcp_server_address(&es->server, &info), 0);
    cr_assert_gt(info.port, 0);
    return info.port;
}

static void server_closed(zev_handle_t *h) {
    struct echo_server *es = h->data;
    es->server_closed++;
}

/* ---- a client that sends a message, half-closes, and collects the echo ---- */

struct client {
    zev_tcp_t tcp;
    const char *msg;
    char got[256];
    size_t n_got;
    int connect_status;
    int connected;
    int ended;
    int closed;
};

static void client_data(zev_tcp_t *t, const zev_slice_t *s) {
    struct client *c = t->handle.data;
    cr_assert_leq(c->n_got + s->len, sizeof(c->got));
    memcpy(c->got + c->n_got, s->base, s->len);
    c->n_got += s->len;
}

static void client_closed(zev_handle_t *h) {
    ((struct client *)h->data)->closed++;
}

static void client_end(zev_tcp_t *t) {
    struct client *c = t->handle.data;
    c->ended++;
    zev_close(&t->handle, client_closed);
}

static const zev_tcp_events_t client_events = {.data = client_data, .end = client_end};

static void client_connected(zev_tcp_t *t, int status) {
    struct client *c = t->handle.data;
    c->connect_status = status;
    c->connected++;
    if (status < 0) {
        zev_close(&t->handle, client_closed);
        return;
    }
    zev_slice_t s = zev_slice(c->msg, strlen(c->msg));
    cr_assert_eq(zev_tcp_write(t, &s, 1, NULL, NULL), 0);
    cr_assert_eq(zev_tcp_end(t), 0);
    cr_assert_eq(zev_tcp_read_start(t), 0);
}

static void client_start(struct client *c, const char *host, int port, const char *msg) {
    memset(c, 0, sizeof(*c));
    c->msg = msg;
    cr_assert_eq(zev_tcp_init(&zt_loop, &c->tcp), 0);
    c->tcp.handle.data = c;
    zev_tcp_set_events(&c->tcp, &client_events);
    cr_assert_eq(zev_tcp_connect(&c->tcp, host, port, client_connected), 0);
}

Test(tcp, echo_over_ipv4_then_server_close_waits_for_connections) {
    struct echo_server es;
    struct client c;
    int port = echo_listen(&es, "127.0.0.1");
    client_start(&c, "127.0.0.1", port, "hello, zev");
    cr_assert_eq(c.connected, 0, "connect callback never runs inside connect");
    zev_close(&es.server.handle, server_closed); /* stops accepting; the client may be refused */
    zt_run();
    cr_assert_eq(es.server_closed, 1);
    cr_assert_eq(c.closed, 1);
}

Test(tcp, echo_over_ipv4_and_ipv6) {
    const char *hosts[] = {"127.0.0.1", "::1"};
    for (int i = 0; i < 2; i++) {
        struct echo_server es;
        struct client c;
        int port = echo_listen(&es, hosts[i]);
        client_start(&c, hosts[i], port, "round trip");
        while (!c.closed) zev_run(&zt_loop, ZEV_RUN_ONCE);
        cr_assert_eq(c.connect_status, 0);
        cr_assert_eq(c.n_got, strlen("round trip"));
        cr_assert_eq(memcmp(c.got, "round trip", c.n_got), 0);
        cr_assert_eq(c.ended, 1);
        zev_close(&es.server.handle, server_closed);
        zt_run();
        cr_assert_eq(es.server_closed, 1);
        cr_assert_eq(es.closed_conns, 1);
        cr_assert_eq(zev_tcp_bytes_read(&es.conns[0]), strlen("round trip"));
        cr_assert_eq(zev_tcp_bytes_written(&es.conns[0]), strlen("round trip"));
    }
}
