/* tests/test_tcp_options.c: the calls that sit beside the stream: a non-queuing try-write
 * (uv_try_write), kernel buffer sizes of sockets and listeners, binding a local address before
 * connecting (Node's localAddress/localPort, uv_tcp_bind), numeric and by name, and adopting
 * descriptors opened elsewhere (uv_tcp_open, Node's server.listen({fd})).
 *
 * Only loopback: plain sockets made here with socket()/bind()/listen() on 127.0.0.1 stand for
 * the ones systemd or a parent process would pass. Names are localhost from /etc/hosts or the
 * fake getaddrinfo's made-up ones (support/fake_dns.h). */
#include "fake_dns.h"
#include "tcp_pair.h"
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_options, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

/* ---- helpers ---- */

struct sink {
    uint8_t *got;
    size_t cap;
    size_t n_got;
    int errors;
};

static void sink_data(zev_tcp_t *t, const zev_slice_t *s) {
    struct sink *k = t->handle.data;
    cr_assert_leq(k->n_got + s->len, k->cap);
    memcpy(k->got + k->n_got, s->base, s->len);
    k->n_got += s->len;
}

static void sink_error(zev_tcp_t *t, int err) {
    struct sink *k = t->handle.data;
    k->errors++;
    (void)err;
}

static const zev_tcp_events_t sink_events = {.data = sink_data, .error = sink_error};

static int closed;
static void count_closed(zev_handle_t *h) {
    (void)h;
    closed++;
}

static void close_both(zev_tcp_t *a, zev_tcp_t *b) {
    closed = 0;
    zev_close(&a->handle, count_closed);
    zev_close(&b->handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 2);
}

static uint8_t *pattern(size_t n, unsigned seed) {
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 31u + seed) ^ (i >> 8));
    return p;
}

static int port_of_fd(int fd, bool peer) {
    zev_sockaddr_t a;
    socklen_t len = sizeof(a);
    cr_assert_eq(peer ? getpeername(fd, &a.sa, &len) : getsockname(fd, &a.sa, &len), 0);
    zev_addr_info_t info;
    cr_assert_eq(zev_addr_info(&a, &info), 0);
    return info.port;
}

static int local_port(const zev_tcp_t *t) {
    zev_addr_info_t info;
    cr_assert_eq(zev_tcp_local_address(t, &info), 0);
    return info.port;
}

static int remote_port(const zev_tcp_t *t) {
    zev_addr_info_t info;
    cr_assert_eq(zev_tcp_remote_address(t, &info), 0);
    return info.port;
}

/* A plain listener on 127.0.0.1 (or ::1), port 0, as another process would open it. */
static int raw_listener(int family) {
    int fd = socket(family, SOCK_STREAM, 0); /* blocking, inheritable: zev must fix both */
    cr_assert_geq(fd, 0);
    zev_sockaddr_t a;
    cr_assert_eq(zev_addr_parse(&a, family == AF_INET ? "127.0.0.1" : "::1", 0), 0);
    if (bind(fd, &a.sa, zev_addr_len(&a)) < 0 && errno == EADDRNOTAVAIL) {
        close(fd);
        cr_skip_test("no loopback address of this family");
    }
    cr_assert_eq(listen(fd, 8), 0);
    return fd;
}

static int raw_accept(int listener) {
    int fd = accept(listener, NULL, NULL);
    cr_assert_geq(fd, 0);
    return fd;
}

static void read_exactly(int fd, uint8_t *buf, size_t n) {
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        cr_assert_gt(r, 0);
        got += (size_t)r;
    }
}

/* ---- try-write ---- */

static int write_cbs;
static void count_write(zev_tcp_t *t, int status, void *arg) {
    (void)t, (void)status, (void)arg;
    write_cbs++;
}

Test(tcp_options, try_write_writes_at_once_queues_nothing_and_calls_nothing) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    struct sink k = {.got = malloc(16), .cap = 16};
    b.handle.data = &k;
    zev_tcp_set_events(&b, &sink_events);
    zev_tcp_read_start(&b);
    zev_slice_t s[2] = {zev_slice("hello ", 6), zev_slice("world", 5)};
    cr_assert_eq(zev_tcp_try_write(&a, s, 2), 11);
    cr_assert_eq(zev_tcp_write_queue_count(&a), 0);
    cr_assert_eq(zev_tcp_write_queue_memory(&a), 0, "nothing queued");
    cr_assert_eq(zev_tcp_bytes_written(&a), 11);
    cr_assert_eq(zev_tcp_try_write(&a, s, 0), 0, "nothing to write");
    while (k.n_got < 11) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(memcmp(k.got, "hello world", 11), 0);
    cr_assert_eq(k.errors, 0);
    free(k.got);
    close_both(&a, &b);
}

Test(tcp_options, try_write_to_a_full_socket_is_partial_then_eagain_and_keeps_order) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    cr_assert_eq(zev_tcp_set_send_buffer_size(&a, 16 * 1024), 0);
    cr_assert_eq(zev_tcp_set_recv_buffer_size(&b, 16 * 1024), 0);
    enum { CHUNK = 1 << 20, MAX = 8 * CHUNK };
    uint8_t *src = pattern(MAX, 7);
    size_t total = 0;
    int partial = 0;
    int r;
    /* b does not read: the kernel's buffers fill, and the last call takes part or nothing. */
    while ((r = zev_tcp_try_write(&a, (zev_slice_t[]){zev_slice(src + total, CHUNK)}, 1)) > 0) {
        if (r < CHUNK) partial++;
        total += (size_t)r;
        cr_assert_leq(total + CHUNK, MAX, "a full socket stops taking bytes");
    }
    cr_assert_eq(r, -EAGAIN);
    cr_assert_geq(partial, 1, "a write the kernel took only part of returned its count");
    cr_assert_eq(zev_tcp_write_queue_count(&a), 0);
    cr_assert_eq(zev_tcp_bytes_written(&a), total);
    struct sink k = {.got = malloc(MAX), .cap = MAX};
    b.handle.data = &k;
    zev_tcp_set_events(&b, &sink_events);
    zev_tcp_read_start(&b);
    while (k.n_got < total) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(memcmp(k.got, src, total), 0, "exactly the bytes counted, in order");
    free(k.got);
    free(src);
    close_both(&a, &b);
}

Test(tcp_options, try_write_is_eagain_while_queued_bytes_wait_and_they_go_first) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    cr_assert_eq(zev_tcp_set_send_buffer_size(&a, 16 * 1024), 0);
    enum { CHUNK = 1 << 20 };
    uint8_t *src = pattern(CHUNK, 3);
    write_cbs = 0;
    cr_assert_geq(zev_tcp_write(&a, (zev_slice_t[]){zev_slice(src, CHUNK)}, 1, count_write, NULL),
                  0);
    cr_assert_gt(zev_tcp_write_queue_size(&a), 0, "the kernel could not take a MiB at once");
    cr_assert_eq(zev_tcp_try_write(&a, (zev_slice_t[]){zev_slice("x", 1)}, 1), -EAGAIN,
                 "the queue goes first");
    struct sink k = {.got = malloc(CHUNK), .cap = CHUNK};
    b.handle.data = &k;
    zev_tcp_set_events(&b, &sink_events);
    zev_tcp_read_start(&b);
    while (k.n_got < CHUNK || write_cbs < 1) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(memcmp(k.got, src, CHUNK), 0);
    cr_assert_eq(write_cbs, 1);
    cr_assert_eq(zev_tcp_try_write(&a, (zev_slice_t[]){zev_slice("x", 1)}, 1), 1,
                 "the queue is empty again");
    cr_assert_eq(zev_tcp_end(&a), 0);
    cr_assert_eq(zev_tcp_try_write(&a, (zev_slice_t[]){zev_slice("x", 1)}, 1), -EPIPE);
    cr_assert_eq(zev_tcp_try_write(&a, NULL, 1), -EINVAL);
    free(k.got);
    free(src);
    close_both(&a, &b);
    cr_assert_eq(zev_tcp_try_write(&a, (zev_slice_t[]){zev_slice("x", 1)}, 1), -EBADF);
}

static int connects;
static void count_connect(zev_tcp_t *t, int status) {
    cr_assert_eq(status, 0, "connect: %s", zev_err_name(status));
    (void)t;
    connects++;
}

static void ignore_connection(zev_tcp_server_t *s, int status) {
    (void)s, (void)status; /* not accepted: zev closes it */
}

Test(tcp_options, try_write_before_and_while_connecting) {
    zev_tcp_server_t s;
    int port = zt_listen(&s, ignore_connection, NULL);
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    zev_slice_t x = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_try_write(&t, &x, 1), -ENOTCONN);
    connects = 0;
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", port, count_connect), 0);
    cr_assert_eq(zev_tcp_try_write(&t, &x, 1), -EAGAIN, "while connecting");
    cr_assert_eq(connects, 0);
    closed = 0;
    zev_close(&t.handle, count_closed);
    zev_close(&s.handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 2);
    cr_assert_eq(connects, 0, "abandoned by the close");
}

/* ---- buffer sizes ---- */

static int kernel_value(int fd, int name) {
    int v = 0;
    socklen_t len = sizeof(v);
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, name, &v, &len), 0);
    return v;
}

Test(tcp_options, buffer_sizes_are_checked_and_read_back_as_the_kernel_reports) {
    zev_tcp_t a, b;
    cr_assert_eq(zev_tcp_init(&zt_loop, &a), 0);
    cr_assert_eq(zev_tcp_set_recv_buffer_size(&a, 4096), -ENOTCONN, "no descriptor yet");
    cr_assert_eq(zev_tcp_recv_buffer_size(&a), -ENOTCONN);
    zev_close(&a.handle, NULL);
    zt_run();
    zt_tcp_pair(&a, &b);
    cr_assert_eq(zev_tcp_set_recv_buffer_size(&a, 0), -EINVAL);
    cr_assert_eq(zev_tcp_set_send_buffer_size(&a, (size_t)INT_MAX + 1), -EINVAL);
    cr_assert_eq(zev_tcp_set_recv_buffer_size(NULL, 4096), -EINVAL);
    cr_assert_eq(zev_tcp_send_buffer_size(NULL), -EINVAL);
    cr_assert_eq(zev_tcp_set_recv_buffer_size(&a, 48 * 1024), 0);
    cr_assert_eq(zev_tcp_set_send_buffer_size(&a, 40 * 1024), 0);
    int fd = zev_tcp_fileno(&a);
    cr_assert_eq(zev_tcp_recv_buffer_size(&a), kernel_value(fd, SO_RCVBUF));
    cr_assert_eq(zev_tcp_send_buffer_size(&a), kernel_value(fd, SO_SNDBUF));
#ifdef __linux__
    cr_assert_eq(zev_tcp_recv_buffer_size(&a), 2 * 48 * 1024, "Linux doubles the request");
    cr_assert_eq(zev_tcp_send_buffer_size(&a), 2 * 40 * 1024);
#endif
    close_both(&a, &b);
    cr_assert_eq(zev_tcp_set_recv_buffer_size(&a, 4096), -EBADF);
}

static zev_tcp_t accepted;
static int accepts;
static void accept_into(zev_tcp_server_t *s, int status) {
    cr_assert_eq(status, 0);
    cr_assert_eq(zev_tcp_init(&zt_loop, &accepted), 0);
    cr_assert_eq(zev_tcp_accept(s, &accepted), 0);
    accepts++;
}

Test(tcp_options, listener_buffer_sizes_are_inherited_by_accepted_sockets) {
    zev_tcp_server_t s;
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &s), 0);
    cr_assert_eq(zev_tcp_server_set_recv_buffer_size(&s, 4096), -ENOTCONN);
    cr_assert_eq(zev_tcp_server_send_buffer_size(&s), -ENOTCONN);
    cr_assert_eq(zev_tcp_listen(&s, "127.0.0.1", 0, NULL, accept_into), 0);
    cr_assert_eq(zev_tcp_server_set_recv_buffer_size(&s, 0), -EINVAL);
    cr_assert_eq(zev_tcp_server_set_recv_buffer_size(&s, 24 * 1024), 0);
    cr_assert_eq(zev_tcp_server_set_send_buffer_size(&s, 20 * 1024), 0);
    int rcv = zev_tcp_server_recv_buffer_size(&s);
    int snd = zev_tcp_server_send_buffer_size(&s);
    cr_assert_eq(rcv, kernel_value(s.io.fd, SO_RCVBUF));
    zev_addr_info_t info;
    zev_tcp_server_address(&s, &info);
    accepts = 0;
    int c = zt_raw_connect(info.port);
    cr_assert(zt_run_until(&accepts, 1, 10000));
    cr_assert_eq(zev_tcp_recv_buffer_size(&accepted), rcv, "inherited from the listener");
    cr_assert_eq(zev_tcp_send_buffer_size(&accepted), snd);
    close(c);
    closed = 0;
    zev_close(&accepted.handle, count_closed);
    zev_close(&s.handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 2);
}

/* ---- binding before connecting ---- */

static void on_connect_status(zev_tcp_t *t, int status) {
    *(int *)t->handle.data = status;
    connects++;
}

Test(tcp_options, bound_socket_connects_from_its_local_address_and_port) {
    zev_tcp_server_t s;
    accepts = 0;
    int port = zt_listen(&s, accept_into, NULL);
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 0), 0);
    int bound = local_port(&t);
    cr_assert_gt(bound, 0, "an ephemeral port is chosen at bind");
    /* A descriptor before the connect: options can be set on it. */
    cr_assert_eq(zev_tcp_set_recv_buffer_size(&t, 32 * 1024), 0);
    int status = 1;
    t.handle.data = &status;
    connects = 0;
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", port, on_connect_status), 0);
    cr_assert(zt_run_until(&connects, 1, 10000));
    cr_assert_eq(status, 0);
    cr_assert(zt_run_until(&accepts, 1, 10000));
    cr_assert_eq(local_port(&t), bound, "the connect left from the bound port");
    cr_assert_eq(remote_port(&accepted), bound, "the peer sees it");
    cr_assert_eq(zev_tcp_recv_buffer_size(&t), kernel_value(zev_tcp_fileno(&t), SO_RCVBUF));
    zev_close(&s.handle, NULL);
    close_both(&t, &accepted);
}

Test(tcp_options, bind_errors_in_use_bound_connecting_and_family) {
    zev_tcp_server_t s;
    int port = zt_listen(&s, ignore_connection, NULL);
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_bind(NULL, "127.0.0.1", 0, 0), -EINVAL);
    cr_assert_eq(zev_tcp_bind(&t, "localhost", 0, 0), -EINVAL, "numeric only");
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 65536, 0), -EINVAL);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 8), -EINVAL, "unknown flag");
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, ZEV_TCP_BIND_IPV6_ONLY), -EINVAL);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", port, 0), -EADDRINUSE, "a listener has it");
    cr_assert_eq(zev_tcp_fileno(&t), -EBADF, "a failed bind leaves no descriptor");
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 0), 0);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 0), -EINVAL, "bound already");
    cr_assert_eq(zev_tcp_connect(&t, "::1", port, count_connect), -EAFNOSUPPORT);
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", port, count_connect), 0);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 0), -EINVAL, "connecting");
    closed = 0;
    zev_close(&t.handle, count_closed);
    zev_close(&s.handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 2);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 0), -EBADF);
}

Test(tcp_options, bound_socket_closed_before_connecting_releases_its_descriptor) {
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 0), 0);
    closed = 0;
    zev_close(&t.handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 1); /* the fixture checks the descriptor was closed */
}

/* Bind to 127.0.0.1, connect by name to a listener on 127.0.0.1 only: the connect must leave
 * from the bound port. */
static void bound_connect_by_name(const char *name) {
    zev_tcp_server_t s;
    accepts = 0;
    int port = zt_listen(&s, accept_into, NULL);
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 0), 0);
    int bound = local_port(&t);
    int status = 1;
    t.handle.data = &status;
    connects = 0;
    cr_assert_eq(zev_tcp_connect(&t, name, port, on_connect_status), 0);
    cr_assert(zt_run_until(&connects, 1, 10000));
    cr_assert_eq(status, 0, "connect: %s", zev_err_name(status));
    cr_assert_eq(local_port(&t), bound);
    cr_assert(zt_run_until(&accepts, 1, 10000));
    cr_assert_eq(remote_port(&accepted), bound);
    zev_close(&s.handle, NULL);
    close_both(&t, &accepted);
}

/* dual.zev.test answers ::1 first, then 127.0.0.1. Unbound, the race would try ::1 first from
 * a socket of its own (refused), then 127.0.0.1 from another: not the bound port. */
Test(tcp_options, bound_socket_connects_by_name_from_its_family_only) {
    ZT_FAKE_DNS_OR_SKIP();
    bound_connect_by_name("dual.zev.test");
}

Test(tcp_options, bound_socket_by_name_with_no_address_of_its_family_fails) {
    ZT_FAKE_DNS_OR_SKIP();
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    if (zev_tcp_bind(&t, "::1", 0, 0) == -EADDRNOTAVAIL) cr_skip_test("no ::1 here");
    int status = 1;
    t.handle.data = &status;
    connects = 0;
    cr_assert_eq(zev_tcp_connect(&t, "v4.zev.test", 9, on_connect_status), 0);
    cr_assert(zt_run_until(&connects, 1, 10000));
    cr_assert_eq(status, -EAFNOSUPPORT);
    closed = 0;
    zev_close(&t.handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 1);
}

Test(tcp_options, bound_socket_connects_to_localhost) {
    if (!zt_hosts_has("localhost", "127.0.0.1")) cr_skip_test("/etc/hosts has no localhost");
    bound_connect_by_name("localhost");
}

/* ---- adopting descriptors ---- */

static void assert_owned_flags(int fd) {
    cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK, "made non-blocking");
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "made close-on-exec");
}

Test(tcp_options, adopted_listener_accepts_through_zev) {
    int l = raw_listener(AF_INET);
    zev_tcp_server_t s;
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &s), 0);
    cr_assert_eq(zev_tcp_server_open(&s, l, accept_into), 0);
    assert_owned_flags(l);
    cr_assert_eq(zev_tcp_server_open(&s, l, accept_into), -EALREADY);
    zev_addr_info_t info;
    cr_assert_eq(zev_tcp_server_address(&s, &info), 0);
    cr_assert_eq(info.port, port_of_fd(l, false));
    accepts = 0;
    int c = zt_raw_connect(info.port);
    cr_assert(zt_run_until(&accepts, 1, 10000));
    cr_assert_eq(zev_tcp_server_connections(&s), 1);
    cr_assert_eq(remote_port(&accepted), port_of_fd(c, false));
    close(c);
    closed = 0;
    zev_close(&accepted.handle, count_closed);
    zev_close(&s.handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 2);
    cr_assert_eq(fcntl(l, F_GETFD), -1, "zev closed the adopted listener");
}

Test(tcp_options, adopted_connected_socket_exchanges_data) {
    int l = raw_listener(AF_INET);
    int c = zt_raw_connect(port_of_fd(l, false));
    int fd = raw_accept(l);
    close(l);
    cr_assert_eq(write(c, "ping", 4), 4, "sent before the adoption");
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_open(&t, fd), 0);
    assert_owned_flags(fd);
    cr_assert_eq(remote_port(&t), port_of_fd(c, false));
    cr_assert_eq(zev_tcp_open(&t, fd), -EISCONN);
    struct sink k = {.got = malloc(16), .cap = 16};
    t.handle.data = &k;
    zev_tcp_set_events(&t, &sink_events);
    cr_assert_eq(zev_tcp_read_start(&t), 0);
    while (k.n_got < 4) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(memcmp(k.got, "ping", 4), 0);
    write_cbs = 0;
    cr_assert_eq(zev_tcp_write(&t, (zev_slice_t[]){zev_slice("pong", 4)}, 1, count_write, NULL),
                 0);
    while (write_cbs < 1) zev_run(&zt_loop, ZEV_RUN_ONCE);
    uint8_t buf[4];
    read_exactly(c, buf, 4);
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    free(k.got);
    closed = 0;
    zev_close(&t.handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 1);
    cr_assert_eq(read(c, buf, 4), 0, "zev closed the adopted socket: EOF");
    close(c);
}

Test(tcp_options, adopted_unconnected_socket_connects_from_its_bound_port) {
    zev_tcp_server_t s;
    accepts = 0;
    int port = zt_listen(&s, accept_into, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    zev_sockaddr_t a;
    cr_assert_eq(zev_addr_parse(&a, "127.0.0.1", 0), 0);
    cr_assert_eq(bind(fd, &a.sa, zev_addr_len(&a)), 0);
    int bound = port_of_fd(fd, false);
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_open(&t, fd), 0);
    cr_assert_eq(zev_tcp_bind(&t, "127.0.0.1", 0, 0), -EINVAL, "bound already");
    int status = 1;
    t.handle.data = &status;
    connects = 0;
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", port, on_connect_status), 0);
    cr_assert(zt_run_until(&connects, 1, 10000));
    cr_assert_eq(status, 0);
    cr_assert(zt_run_until(&accepts, 1, 10000));
    cr_assert_eq(remote_port(&accepted), bound);
    zev_close(&s.handle, NULL);
    close_both(&t, &accepted);
}

Test(tcp_options, adopting_the_wrong_kind_of_descriptor_is_refused) {
    zev_tcp_t t;
    zev_tcp_server_t s;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_server_init(&zt_loop, &s), 0);
    cr_assert_eq(zev_tcp_open(&t, -1), -EBADF);
    int closed_fd = socket(AF_INET, SOCK_STREAM, 0);
    close(closed_fd);
    cr_assert_eq(zev_tcp_open(&t, closed_fd), -EBADF);
    cr_assert_eq(zev_tcp_server_open(&s, closed_fd, accept_into), -EBADF);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(zev_tcp_open(&t, p[0]), -ENOTSOCK);
    cr_assert_eq(zev_tcp_server_open(&s, p[0], accept_into), -ENOTSOCK);
    int flags = fcntl(p[0], F_GETFL);
    cr_assert_eq(flags & O_NONBLOCK, 0, "a refused descriptor is left as it was");
    close(p[0]);
    close(p[1]);
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    cr_assert_eq(zev_tcp_open(&t, sp[0]), -EAFNOSUPPORT, "TCP handles are IPv4/IPv6 only");
    close(sp[0]);
    close(sp[1]);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_eq(zev_tcp_open(&t, u), -EINVAL, "a datagram socket");
    cr_assert_eq(zev_tcp_server_open(&s, u, accept_into), -EINVAL);
    close(u);
    int l = raw_listener(AF_INET);
    cr_assert_eq(zev_tcp_open(&t, l), -EINVAL, "a listener: zev_tcp_server_open's");
    cr_assert_eq(zev_tcp_server_open(&s, l, NULL), -EINVAL, "no callback");
    int c = zt_raw_connect(port_of_fd(l, false));
    cr_assert_eq(zev_tcp_server_open(&s, c, accept_into), -EINVAL, "connected: zev_tcp_open's");
    cr_assert_eq(zev_tcp_fileno(&t), -EBADF, "t took nothing");
    close(c);
    close(l);
    closed = 0;
    zev_close(&t.handle, count_closed);
    zev_close(&s.handle, count_closed);
    zt_run();
    cr_assert_eq(closed, 2);
}
