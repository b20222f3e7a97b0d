/* tests/test_tcp_connect.c: the connect phase of a client socket. A connect is over only when
 * the kernel says so (or it fails or times out): writes, an end or a sendfile made meanwhile
 * only queue, and are sent after the connect callback. Also: what happens around that
 * callback (a write callback that closes, data and EOF that came with the handshake), and
 * requests in flight on an unref'd socket keeping the loop alive. */
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_connect, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

/* ---- plain listeners on 127.0.0.1 that zev does not drive ---- */

static int raw_listen(int backlog, int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, backlog), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Wait (bounded) for a connection on a plain listener and accept it. */
static int raw_accept(int lfd) {
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 10000), 1, "a connection arrives");
    int fd = accept(lfd, NULL, NULL);
    cr_assert_geq(fd, 0);
    return fd;
}

/* ---- what happened, in order: c connect, w write callback, f finish, e error, E end ---- */

static char log_buf[32];
static int n_log;
static int connect_calls;
static int connect_status;
static int write_status;
static int finish_calls;
static int end_calls;
static int closed;
static int remote_port; /* zev_tcp_remote_address inside the connect callback */
static int remote_err;

static void log_event(char c) {
    cr_assert_lt(n_log, (int)sizeof(log_buf) - 1);
    log_buf[n_log++] = c;
}

static void reset_log(void) {
    memset(log_buf, 0, sizeof(log_buf));
    n_log = connect_calls = finish_calls = end_calls = closed = 0;
    connect_status = write_status = remote_port = remote_err = 1;
}

static void record_connect(zev_tcp_t *t, int status) {
    log_event('c');
    connect_calls++;
    connect_status = status;
    zev_addr_info_t info;
    remote_err = zev_tcp_remote_address(t, &info);
    remote_port = remote_err == 0 ? info.port : 0;
}

static void record_write(zev_tcp_t *t, int status, void *arg) {
    (void)t;
    (void)arg;
    log_event('w');
    write_status = status;
}

static void count_closed(zev_handle_t *h) {
    (void)h;
    closed++;
}

static void close_and_run(zev_tcp_t *t);

/* ---- around the connect callback ---- */

/* t connecting to a plain listener that completes handshakes itself (the test accepts with
 * raw_accept). Returns the listener. */
static int connect_plain(zev_tcp_t *t, zev_tcp_connect_cb cb) {
    int port;
    int lfd = raw_listen(8, &port);
    reset_log();
    cr_assert_eq(zev_tcp_init(&zt_loop, t), 0);
    cr_assert_eq(zev_tcp_connect(t, "127.0.0.1", port, cb), 0);
    return lfd;
}

static void close_in_write_cb(zev_tcp_t *t, int status, void *arg) {
    (void)arg;
    log_event('w');
    write_status = status;
    zev_close(&t->handle, count_closed);
}

Test(tcp_connect, a_write_callback_closing_the_socket_after_connect_leaves_it_inactive) {
    zev_tcp_t t;
    int lfd = connect_plain(&t, record_connect);
    /* Two writes queued while connecting, sent together: the first one's callback closes the
     * socket while the second's callback still waits in the queue (the close completes it:
     * its byte was sent). */
    zev_slice_t s = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_write(&t, &s, 1, close_in_write_cb, NULL), 0);
    cr_assert_eq(zev_tcp_write(&t, &s, 1, record_write, NULL), 0);
    cr_assert(zt_run_until(&closed, 1, 10000));
    cr_assert_str_eq(log_buf, "cww");
    cr_assert_eq(write_status, 0);
    cr_assert_eq(zev_is_active(&t.handle), 0, "a closed socket is not active");
    cr_assert_eq(zev_loop_alive(&zt_loop), 0, "nothing keeps the loop alive");
    zt_run(); /* returns at once */
    close(raw_accept(lfd));
    close(lfd);
}

/* Found by the API fuzzer: a connect is refused with two writes queued; the first write's
 * callback (told -ECONNREFUSED) closes the socket. The second write must then be cancelled
 * like every request of a closed handle, not told the connect error after zev_close. */
Test(tcp_connect, a_write_callback_closing_a_refused_socket_cancels_the_writes_behind_it) {
    int port;
    close(raw_listen(1, &port)); /* a port on 127.0.0.1 with nobody listening: refused */
    reset_log();
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", port, record_connect), 0);
    zev_slice_t s = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_write(&t, &s, 1, close_in_write_cb, NULL), 0);
    cr_assert_eq(zev_tcp_write(&t, &s, 1, record_write, NULL), 0);
    zt_run();
    cr_assert_eq(closed, 1);
    cr_assert_str_eq(log_buf, "cww");
    cr_assert_eq(connect_status, -ECONNREFUSED);
    cr_assert_eq(write_status, -ECANCELED, "after zev_close only cancellations: got %d",
                 write_status);
}

/* A connect refused after end() was asked: the end can never happen, so nothing is in flight
 * any more and the loop may exit although the user has not closed the socket yet (Node's
 * destroyed socket keeps no process alive). */
Test(tcp_connect, an_end_on_a_refused_socket_does_not_keep_the_loop_alive) {
    int port;
    close(raw_listen(1, &port));
    reset_log();
    zev_tcp_t t;
    cr_assert_eq(zev_tcp_init(&zt_loop, &t), 0);
    cr_assert_eq(zev_tcp_connect(&t, "127.0.0.1", port, record_connect), 0);
    cr_assert_eq(zev_tcp_end(&t), 0);
    cr_assert(zt_run_until(&connect_calls, 1, 10000));
    cr_assert_eq(connect_status, -ECONNREFUSED);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0, "a failed end is no request in flight");
    cr_assert_eq(zev_is_active(&t.handle), 0);
    close_and_run(&t);
}

static void close_and_run(zev_tcp_t *t) {
    cr_assert_eq(zev_close(&t->handle, count_closed), 0);
    zt_run();
    cr_assert_eq(closed, 1);
}

static char got[16];
static size_t n_got;
static int read_early;

static void collect_data(zev_tcp_t *t, const zev_slice_t *s) {
    (void)t;
    cr_assert_leq(n_got + s->len, sizeof(got));
    memcpy(got + n_got, s->base, s->len);
    n_got += s->len;
}

static void collect_end(zev_tcp_t *t) {
    (void)t;
    log_event('E');
    end_calls++;
}

static const zev_tcp_events_t collect_events = {.data = collect_data, .end = collect_end};

static void start_reading(zev_tcp_t *t, int status) {
    record_connect(t, status);
    if (!read_early) cr_assert_eq(zev_tcp_read_start(t), 0);
}

Test(tcp_connect, data_and_eof_that_came_before_the_connect_was_reported_are_both_delivered) {
    for (read_early = 0; read_early < 2; read_early++) {
        n_got = 0;
        zev_tcp_t t;
        int lfd = connect_plain(&t, start_reading);
        zev_tcp_set_events(&t, &collect_events);
        zev_tcp_set_allow_half_open(&t, 1);
        if (read_early) cr_assert_eq(zev_tcp_read_start(&t), 0);
        /* Before the loop first runs: the server accepts, sends and shuts down its side. */
        int peer = raw_accept(lfd);
        cr_assert_eq(write(peer, "hello", 5), 5);
        cr_assert_eq(shutdown(peer, SHUT_WR), 0);
        cr_assert(zt_run_until(&end_calls, 1, 10000), "the EOF is delivered (read_early %d)",
                  read_early);
        cr_assert_eq(n_got, 5);
        cr_assert_eq(memcmp(got, "hello", 5), 0);
        cr_assert_str_eq(log_buf, "cE");
        cr_assert_eq(connect_status, 0);
        close(peer);
        close_and_run(&t);
        close(lfd);
    }
}

/* A listener whose accept queue is full: it never accepts, its backlog is 0, and one
 * connection (the filler) already waits in its queue. The kernel drops every further SYN, so
 * a connect to it stays in SYN_SENT: until its connect timeout, or until the test accepts the
 * filler and the kernel retransmits the SYN (about a second later). */
struct full_listener {
    int lfd;
    int filler;
    int port;
};

static void full_listener_open(struct full_listener *fl) {
    fl->lfd = raw_listen(0, &fl->port);
    fl->filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fl->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fl->filler, (struct sockaddr *)&a, sizeof(a));
    cr_assert(r == 0 || errno == EINPROGRESS);
    /* The listener turns readable once the filler's handshake is done and it waits in the
     * queue, which with backlog 0 is then full: no waiting on a clock. */
    struct pollfd p = {.fd = fl->lfd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 10000), 1, "the filler fills the accept queue");
}

/* Make room: the next SYN retransmit of a blocked connect gets in. */
static void full_listener_make_room(struct full_listener *fl) {
    close(raw_accept(fl->lfd));
    close(fl->filler);
    fl->filler = -1;
}

static void full_listener_close(struct full_listener *fl) {
    if (fl->filler >= 0) close(fl->filler);
    close(fl->lfd);
}

static void record_finish(zev_tcp_t *t) {
    (void)t;
    log_event('f');
    finish_calls++;
}

static void record_error(zev_tcp_t *t, int err) {
    (void)t;
    (void)err;
    log_event('e');
}

static const zev_tcp_events_t recording_events = {.error = record_error,
                                                  .finish = record_finish};

/* Start a connect to a blocked listener; the socket times the connect out after timeout_ms
 * (0: no timeout). */
static void connect_blocked(zev_tcp_t *t, const struct full_listener *fl, int64_t timeout_ms) {
    reset_log();
    cr_assert_eq(zev_tcp_init(&zt_loop, t), 0);
    zev_tcp_set_events(t, &recording_events);
    if (timeout_ms) cr_assert_eq(zev_tcp_set_connect_timeout(t, timeout_ms), 0);
    cr_assert_eq(zev_tcp_connect(t, "127.0.0.1", fl->port, record_connect), 0);
}

/* ---- nothing the library feeds itself is the connect's answer ---- */

Test(tcp_connect, connect_timeout_still_fires_after_end_while_the_handshake_is_blocked) {
    struct full_listener fl;
    full_listener_open(&fl);
    zev_tcp_t t;
    connect_blocked(&t, &fl, 100);
    cr_assert_eq(zev_tcp_end(&t), 0, "end while connecting only queues");
    cr_assert(zt_run_until(&connect_calls, 1, 10000));
    cr_assert_eq(connect_status, -ETIMEDOUT, "got %s", zev_err_name(connect_status));
    cr_assert_str_eq(log_buf, "c", "no finish for a socket that never connected");
    close_and_run(&t);
    cr_assert_str_eq(log_buf, "c");
    full_listener_close(&fl);
}

Test(tcp_connect, an_empty_write_while_the_handshake_is_blocked_is_no_connect_result) {
    struct full_listener fl;
    full_listener_open(&fl);
    zev_tcp_t t;
    connect_blocked(&t, &fl, 100);
    cr_assert_eq(zev_tcp_write(&t, NULL, 0, record_write, NULL), 0);
    cr_assert(zt_run_until(&connect_calls, 1, 10000));
    cr_assert_eq(connect_status, -ETIMEDOUT, "got %s", zev_err_name(connect_status));
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    /* The write queued behind the connect completes after it (it had no bytes to fail). */
    cr_assert_str_eq(log_buf, "cw");
    close_and_run(&t);
    full_listener_close(&fl);
}

#ifdef __linux__
Test(tcp_connect, sendfile_while_the_handshake_is_blocked_is_no_connect_result) {
    struct full_listener fl;
    full_listener_open(&fl);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(fwrite("hello", 1, 5, f), 5);
    fflush(f);
    zev_tcp_t t;
    connect_blocked(&t, &fl, 100);
    cr_assert_eq(zev_tcp_sendfile(&t, fileno(f), 0, 5, record_write, NULL), 0);
    cr_assert(zt_run_until(&connect_calls, 1, 10000));
    cr_assert_eq(connect_status, -ETIMEDOUT, "got %s", zev_err_name(connect_status));
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_str_eq(log_buf, "cw");
    cr_assert_eq(write_status, -ETIMEDOUT, "the file region was never sent");
    close_and_run(&t);
    fclose(f);
    full_listener_close(&fl);
}
#endif

Test(tcp_connect, a_failure_while_connecting_reaches_the_connect_callback) {
    struct full_listener fl;
    full_listener_open(&fl);
    zev_tcp_t t;
    connect_blocked(&t, &fl, 0);
    /* The write queue's slab has no block yet: queueing fails, and the socket with it. */
    zt_use_picky_allocator();
    zev_slice_t s = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_write(&t, &s, 1, record_write, NULL), -ENOMEM);
    zt_alloc_refuse = 0;
    cr_assert(zt_run_until(&connect_calls, 1, 10000));
    cr_assert_eq(connect_status, -ENOMEM, "got %s", zev_err_name(connect_status));
    zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_str_eq(log_buf, "c", "told once, through the connect callback");
    close_and_run(&t);
    full_listener_close(&fl);
}

Test(tcp_connect, a_write_and_end_queued_while_connecting_reach_the_peer_after_a_slow_handshake) {
    struct full_listener fl;
    full_listener_open(&fl);
    zev_tcp_t t;
    connect_blocked(&t, &fl, 0);
    zev_slice_t s = zev_slice("hi", 2);
    cr_assert_eq(zev_tcp_write(&t, &s, 1, record_write, NULL), 0);
    cr_assert_eq(zev_tcp_end(&t), 0);
    for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(connect_calls, 0, "the handshake is still blocked");
    cr_assert_str_eq(log_buf, "");

    full_listener_make_room(&fl);
    cr_assert(zt_run_until(&connect_calls, 1, 10000), "the SYN retransmit gets in");
    cr_assert_eq(connect_status, 0, "got %s", zev_err_name(connect_status));
    cr_assert_eq(remote_err, 0, "the peer is known inside the callback: %s",
                 zev_err_name(remote_err));
    cr_assert_eq(remote_port, fl.port);
    cr_assert(zt_run_until(&finish_calls, 1, 10000));
    cr_assert_str_eq(log_buf, "cwf", "connect, then the queued write, then finish");
    cr_assert_eq(write_status, 0);

    int peer = raw_accept(fl.lfd);
    char buf[8];
    size_t n_peer = 0;
    for (;;) {
        ssize_t n = read(peer, buf + n_peer, sizeof(buf) - n_peer);
        cr_assert_geq(n, 0);
        if (n == 0) break; /* our end() reached the peer */
        n_peer += (size_t)n;
    }
    cr_assert_eq(n_peer, 2);
    cr_assert_eq(memcmp(buf, "hi", 2), 0);
    close(peer);
    close_and_run(&t);
    full_listener_close(&fl);
}

/* ---- requests in flight keep the loop alive on an unref'd socket ---- */

Test(tcp_connect, an_unrefd_socket_still_gets_its_connect_callback) {
    zev_tcp_t t;
    int lfd = connect_plain(&t, record_connect);
    cr_assert_eq(zev_unref(&t.handle), 0);
    zt_run();
    cr_assert_str_eq(log_buf, "c", "the connect is a request in flight");
    cr_assert_eq(connect_status, 0);
    close_and_run(&t);
    close(raw_accept(lfd));
    close(lfd);
}

/* A connected, unref'd socket and its plain peer. Returns the listener. */
static int connect_unrefd(zev_tcp_t *t, int *peer) {
    int lfd = connect_plain(t, record_connect);
    zev_tcp_set_events(t, &recording_events);
    zt_run();
    cr_assert_eq(connect_status, 0);
    *peer = raw_accept(lfd);
    cr_assert_eq(zev_unref(&t->handle), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0, "nothing in flight yet");
    return lfd;
}

Test(tcp_connect, an_unrefd_socket_still_gets_its_write_callback) {
    zev_tcp_t t;
    int peer;
    int lfd = connect_unrefd(&t, &peer);
    zev_slice_t s = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_write(&t, &s, 1, record_write, NULL), 0);
    zt_run();
    cr_assert_str_eq(log_buf, "cw", "the write is a request in flight");
    cr_assert_eq(write_status, 0);
    close_and_run(&t);
    close(peer);
    close(lfd);
}

Test(tcp_connect, an_unrefd_socket_still_gets_finish_after_end) {
    zev_tcp_t t;
    int peer;
    int lfd = connect_unrefd(&t, &peer);
    cr_assert_eq(zev_tcp_end(&t), 0);
    zt_run();
    cr_assert_str_eq(log_buf, "cf", "the end is a request in flight");
    char c;
    cr_assert_eq(read(peer, &c, 1), 0, "the peer sees our EOF");
    close_and_run(&t);
    close(peer);
    close(lfd);
}
