/* tests/test_zero_copy.c: the zero-copy contract, proven. 64 MiB go client -> proxy (pipe) ->
 * echo server -> proxy -> client, all zev sockets in one loop, while every memcpy-family call
 * made by zev (and by this test) is counted. This executable is linked with
 * --wrap=memcpy,memmove,... so each call from statically linked code (libzev included) goes
 * through the counters below. The test passes only if no such call happened during the
 * transfer: zero payload bytes copied in user space. */
#include "zt.h"

#include <stdlib.h>
#include <string.h>

TestSuite(zero_copy, .init = zt_setup, .fini = zt_teardown, .timeout = 120);

static volatile int counting; /* volatile: the compiler must not drop the stores around calls */
static volatile size_t copy_calls;
static volatile size_t copy_bytes;

void *__real_memcpy(void *dst, const void *src, size_t n);
void *__real_memmove(void *dst, const void *src, size_t n);
void *__real___memcpy_chk(void *dst, const void *src, size_t n, size_t dstlen);

void *__wrap_memcpy(void *dst, const void *src, size_t n);
void *__wrap_memcpy(void *dst, const void *src, size_t n) {
    if (counting) {
        copy_calls++;
        copy_bytes += n;
    }
    return __real_memcpy(dst, src, n);
}

void *__wrap_memmove(void *dst, const void *src, size_t n);
void *__wrap_memmove(void *dst, const void *src, size_t n) {
    if (counting) {
        copy_calls++;
        copy_bytes += n;
    }
    return __real_memmove(dst, src, n);
}

enum { TOTAL = 64 << 20, BLOCK = 1 << 20 };

static uint8_t block[BLOCK];

struct proxied {
    zev_tcp_t in;  /* accepted from the client */
    zev_tcp_t out; /* to the echo server */
    zev_tcp_pipe_t up;
    zev_tcp_pipe_t down;
};

static zev_tcp_server_t echo_server, proxy_server;
static zev_tcp_t echo_conn;
static struct proxied px;
static zev_tcp_t client;
static size_t sent_blocks;
static size_t received;
static uint64_t sum_received;
static int closed;

static void count_close(zev_handle_t *h) {
    (void)h;
    closed++;
}

static void echo_data(zev_tcp_t *t, const zev_slice_t *s) {
    if (zev_tcp_write(t, s, 1, NULL, NULL) == 1) zev_tcp_read_stop(t);
}
static void echo_drain(zev_tcp_t *t) {
    zev_tcp_read_start(t);
}
static void echo_finish(zev_tcp_t *t) {
    zev_close(&t->handle, count_close);
}
static const zev_tcp_events_t echo_events = {.data = echo_data, .drain = echo_drain,
                                             .finish = echo_finish};

static void on_echo_connection(zev_tcp_server_t *s, int status) {
    cr_assert_eq(status, 0);
    zev_tcp_init(s->handle.loop, &echo_conn);
    cr_assert_eq(zev_tcp_accept(s, &echo_conn), 0);
    zev_tcp_set_events(&echo_conn, &echo_events);
    zev_tcp_read_start(&echo_conn);
    zev_close(&s->handle, NULL);
}

/* Each side of the proxy closes once both directions are done: the peer ended (end) and our
 * side was ended and flushed (finish). handle.data counts the two. */
static void proxy_half_done(zev_tcp_t *t) {
    t->handle.data = (void *)((intptr_t)t->handle.data + 1);
    if ((intptr_t)t->handle.data == 2) zev_close(&t->handle, count_close);
}
static const zev_tcp_events_t proxy_events = {.end = proxy_half_done, .finish = proxy_half_done};

static void on_upstream_connected(zev_tcp_t *t, int status) {
    (void)t;
    cr_assert_eq(status, 0);
    cr_assert_eq(zev_tcp_pipe(&px.up, &px.in, &px.out, 1), 0);
    cr_assert_eq(zev_tcp_pipe(&px.down, &px.out, &px.in, 1), 0);
}

static void on_proxy_connection(zev_tcp_server_t *s, int status) {
    cr_assert_eq(status, 0);
    zev_tcp_init(s->handle.loop, &px.in);
    cr_assert_eq(zev_tcp_accept(s, &px.in), 0);
    zev_tcp_set_events(&px.in, &proxy_events);
    zev_tcp_init(s->handle.loop, &px.out);
    zev_tcp_set_events(&px.out, &proxy_events);
    /* A proxy must not end one direction because the other ended (Node: allowHalfOpen). */
    zev_tcp_set_allow_half_open(&px.in, 1);
    zev_tcp_set_allow_half_open(&px.out, 1);
    zev_addr_info_t info;
    zev_tcp_server_address(&echo_server, &info);
    cr_assert_eq(zev_tcp_connect(&px.out, "127.0.0.1", info.port, on_upstream_connected), 0);
    zev_close(&s->handle, NULL);
}

static void send_next(zev_tcp_t *t, int status, void *arg);

static void send_block(zev_tcp_t *t) {
    zev_slice_t s = zev_slice(block, BLOCK);
    sent_blocks++;
    /* Raw memory by reference: the callback says when zev is done with it. */
    cr_assert_geq(zev_tcp_write(t, &s, 1, send_next, NULL), 0);
}

static void send_next(zev_tcp_t *t, int status, void *arg) {
    (void)arg;
    cr_assert_eq(status, 0);
    if (sent_blocks < TOTAL / BLOCK) {
        send_block(t);
    } else {
        zev_tcp_end(t);
    }
}

static void client_data(zev_tcp_t *t, const zev_slice_t *s) {
    (void)t;
    for (size_t i = 0; i < s->len; i++) sum_received += (uint8_t)s->base[i];
    received += s->len;
}

static void client_end(zev_tcp_t *t) {
    zev_close(&t->handle, count_close);
}
static const zev_tcp_events_t client_events = {.data = client_data, .end = client_end};

static void on_client_connected(zev_tcp_t *t, int status) {
    cr_assert_eq(status, 0);
    zev_tcp_read_start(t);
    send_block(t);
    send_block(t); /* two in flight keep the pipe full */
}

Test(zero_copy, sixty_four_mib_through_a_proxy_and_an_echo_server_copy_nothing) {
    uint64_t sum_block = 0;
    for (size_t i = 0; i < BLOCK; i++) {
        block[i] = (uint8_t)(i * 7 + (i >> 12));
        sum_block += block[i];
    }
    zev_tcp_server_init(&zt_loop, &echo_server);
    zev_tcp_server_init(&zt_loop, &proxy_server);
    cr_assert_eq(zev_tcp_listen(&echo_server, "127.0.0.1", 0, NULL, on_echo_connection), 0);
    cr_assert_eq(zev_tcp_listen(&proxy_server, "127.0.0.1", 0, NULL, on_proxy_connection), 0);
    zev_addr_info_t info;
    zev_tcp_server_address(&proxy_server, &info);
    zev_tcp_init(&zt_loop, &client);
    zev_tcp_set_events(&client, &client_events);
    cr_assert_eq(zev_tcp_connect(&client, "127.0.0.1", info.port, on_client_connected), 0);

    counting = 1;
    zt_run();
    counting = 0;

    cr_assert_eq(received, (size_t)TOTAL, "every byte came back");
    cr_assert_eq(sum_received, sum_block * (TOTAL / BLOCK));
    cr_assert_eq(closed, 4, "client, both proxy sides and the echo side closed");
    cr_assert_eq(copy_calls, 0, "%zu memcpy/memmove calls copied %zu bytes", copy_calls,
                 copy_bytes);
    cr_assert_eq(zev_tcp_bytes_written(&client), (uint64_t)TOTAL);
}

Test(zero_copy, the_counter_sees_a_copy_when_there_is_one) {
    /* Guards the proof itself: if --wrap were not in effect, the test above would pass
     * vacuously. A copy through memcpy here must be counted. */
    static char a[4096], b[4096];
    volatile size_t n = sizeof(a);
    counting = 1;
    memcpy(b, a, n);
    counting = 0;
    cr_assert_eq(copy_calls, 1);
    cr_assert_eq(copy_bytes, sizeof(a));
}
