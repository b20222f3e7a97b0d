/* tests/test_tcp_stress.c: 1,000 concurrent connections through an echo server, random sizes,
 * each verified by checksum; the pool and slab return to idle afterwards. */
#include "zt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

TestSuite(tcp_stress, .init = zt_setup, .fini = zt_teardown, .timeout = 120);

enum { N_CONNS = 1000, MAX_MSG = 64 * 1024 };

struct conn {
    zev_tcp_t tcp;
    int is_client;
    /* client side */
    uint8_t *msg;
    size_t len;
    size_t n_got;
    uint64_t sum_sent;
    uint64_t sum_got;
    int ended;
};

static zev_tcp_server_t server;
static struct conn *server_side;
static int n_accepted;
static int n_closed;
static int n_clients_done;

static uint64_t checksum(uint64_t sum, const uint8_t *p, size_t n, size_t offset) {
    for (size_t i = 0; i < n; i++) sum += (uint64_t)p[i] * (offset + i + 1);
    return sum;
}

static void count_closed(zev_handle_t *h) {
    (void)h;
    n_closed++;
}

static void echo_data(zev_tcp_t *t, const zev_slice_t *s) {
    if (zev_tcp_write(t, s, 1, NULL, NULL) == 1) zev_tcp_read_stop(t);
}

static void echo_drain(zev_tcp_t *t) {
    zev_tcp_read_start(t);
}

static void echo_finish(zev_tcp_t *t) {
    zev_close(&t->handle, count_closed);
}

static void echo_error(zev_tcp_t *t, int err) {
    cr_assert_fail("server side error %s", zev_err_name(err));
    zev_close(&t->handle, count_closed);
}

static const zev_tcp_events_t echo_events = {.data = echo_data, .drain = echo_drain,
                                             .finish = echo_finish, .error = echo_error};

static void on_connection(zev_tcp_server_t *s, int status) {
    cr_assert_eq(status, 0, "%s", zev_err_name(status));
    struct conn *c = &server_side[n_accepted++];
    zev_tcp_init(s->handle.loop, &c->tcp);
    cr_assert_eq(zev_tcp_accept(s, &c->tcp), 0);
    zev_tcp_set_events(&c->tcp, &echo_events);
    zev_tcp_read_start(&c->tcp);
    if (n_accepted == N_CONNS) zev_close(&s->handle, NULL); /* closes after every connection */
}

static void client_data(zev_tcp_t *t, const zev_slice_t *s) {
    struct conn *c = t->handle.data;
    c->sum_got = checksum(c->sum_got, (const uint8_t *)s->base, s->len, c->n_got);
    c->n_got += s->len;
}

static void client_end(zev_tcp_t *t) {
    struct conn *c = t->handle.data;
    c->ended = 1;
    n_clients_done++;
    zev_close(&t->handle, count_closed);
}

static void client_error(zev_tcp_t *t, int err) {
    cr_assert_fail("client error %s", zev_err_name(err));
    zev_close(&t->handle, count_closed);
}

static const zev_tcp_events_t client_events = {.data = client_data, .end = client_end,
                                               .error = client_error};

static void client_connected(zev_tcp_t *t, int status) {
    struct conn *c = t->handle.data;
    cr_assert_eq(status, 0, "connect: %s", zev_err_name(status));
    zev_slice_t s = zev_slice(c->msg, c->len);
    cr_assert_geq(zev_tcp_write(t, &s, 1, NULL, NULL), 0);
    zev_tcp_end(t);
    zev_tcp_read_start(t);
}

Test(tcp_stress, a_thousand_concurrent_echoes_arrive_whole_and_in_order) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * N_CONNS + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < 2 * N_CONNS + 64) cr_skip_test("RLIMIT_NOFILE %lu is too low",
                                                          (unsigned long)rl.rlim_cur);
    }
    srand(1234);
    struct conn *clients = calloc(N_CONNS, sizeof(*clients));
    server_side = calloc(N_CONNS, sizeof(*server_side));
    zev_tcp_server_init(&zt_loop, &server);
    zev_tcp_listen_opts_t o = {.backlog = 2048};
    cr_assert_eq(zev_tcp_listen(&server, "127.0.0.1", 0, &o, on_connection), 0);
    zev_addr_info_t info;
    zev_tcp_server_address(&server, &info);
    for (int i = 0; i < N_CONNS; i++) {
        struct conn *c = &clients[i];
        c->len = (size_t)(rand() % MAX_MSG); /* 0 .. 64 KiB - 1: zero-length included */
        c->msg = malloc(c->len + 1);
        for (size_t j = 0; j < c->len; j++) c->msg[j] = (uint8_t)rand();
        c->sum_sent = checksum(0, c->msg, c->len, 0);
        zev_tcp_init(&zt_loop, &c->tcp);
        c->tcp.handle.data = c;
        zev_tcp_set_events(&c->tcp, &client_events);
        cr_assert_eq(zev_tcp_connect(&c->tcp, "127.0.0.1", info.port, client_connected), 0);
    }
    zt_run();
    cr_assert_eq(n_accepted, N_CONNS);
    cr_assert_eq(n_clients_done, N_CONNS);
    cr_assert_eq(n_closed, 2 * N_CONNS);
    for (int i = 0; i < N_CONNS; i++) {
        cr_assert_eq(clients[i].n_got, clients[i].len, "connection %d", i);
        cr_assert_eq(clients[i].sum_got, clients[i].sum_sent, "connection %d", i);
        free(clients[i].msg);
    }
    zev_buf_pool_stats_t st;
    zev_buf_pool_stats(&zt_loop, &st);
    cr_assert_leq(st.in_use - st.lent, 1,
                  "only the shared read area is still held (and, on io_uring, the chunks lent "
                  "to the kernel's buffer ring: %llu)", (unsigned long long)st.lent);
    free(clients);
    free(server_side);
}
