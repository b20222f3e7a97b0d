/* tests/test_fault_sweep.c: the fault sweep (issue 11, docs/testing.md "The fault sweep").
 *
 * Three scenarios, each run once clean to count its syscalls and then once per (syscall,
 * error, call position) with that one call failed or shortened through the syscall seam:
 *   tcp_echo:  a client writes a known pattern (three writes and a sendfile), ends, and checks
 *              the echo byte by byte until EOF;
 *   tcp_proxy: the same client through a zev_tcp_pipe proxy (two pipes, half-open) to the
 *              echo server;
 *   udp_echo:  a client sends 16 datagrams, a server echoes each (a batch's replies leave in
 *              one sendmmsg), the client checks each; udp_echo_unbatched the same with a batch
 *              size of 1 (recvmsg and sendmsg).
 * Every run must end with its handles closed exactly once, no buffer chunk or descriptor
 * left, every write, send and connect callback run exactly once, every error event at most
 * once per socket, the bytes that arrived in order and unchanged, and either everything
 * delivered or the injected error reported to a callback (or returned by the call). EINTR,
 * EAGAIN and short counts must leave no trace at all. The driver and the table are in
 * tests/support/sweep.c.
 */
#include "sweep.h"
#include "zt.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

TestSuite(fault_sweep, .init = zt_setup, .fini = zt_teardown, .timeout = 240);

/* Call positions tried per (syscall, error): all of them up to this, else a sample. */
enum { MAX_POSITIONS = 32 };

/* ---- handles every scenario closes ---------------------------------------------------------- */

enum { MAX_HANDLES = 12 };

struct tracked {
    zev_handle_t *h;
    int closes;
    bool closing;
};

struct scen {
    zev_loop_t *loop;
    struct sweep_outcome *o;
    struct sweep_guard guard;
    struct tracked handles[MAX_HANDLES];
    int n_handles;
    int open;
};

static struct scen sc;

static void scen_begin(zev_loop_t *loop, struct sweep_outcome *o) {
    memset(&sc, 0, sizeof(sc));
    sc.loop = loop;
    sc.o = o;
}

static void progress(void) {
    sc.guard.progress++;
}

static void track(zev_handle_t *h) {
    cr_assert_lt(sc.n_handles, MAX_HANDLES);
    sc.handles[sc.n_handles++] = (struct tracked){.h = h};
    sc.open++;
}

static struct tracked *tracked_of(zev_handle_t *h) {
    for (int i = 0; i < sc.n_handles; i++) {
        if (sc.handles[i].h == h) return &sc.handles[i];
    }
    return NULL;
}

static void (*after_close)(zev_handle_t *h);

static void on_closed(zev_handle_t *h) {
    struct tracked *t = tracked_of(h);
    if (!t) return;
    if (++t->closes > 1) sweep_fail(sc.o, "a close callback ran twice");
    progress();
    sc.open--;
    if (after_close) after_close(h);
    if (sc.open == 0) sweep_guard_done(&sc.guard);
}

static void close_h(zev_handle_t *h) {
    struct tracked *t = tracked_of(h);
    if (!t || t->closing) return;
    t->closing = true;
    int r = zev_close(h, on_closed);
    if (r < 0) sweep_fail(sc.o, "zev_close: %s", zev_err_name(r));
}

static void close_all(void *ctx) {
    (void)ctx;
    for (int i = 0; i < sc.n_handles; i++)
        close_h(sc.handles[i].h);
}

static void scen_run(void) {
    sweep_guard_start(&sc.guard, sc.loop, sc.o, close_all, NULL);
    if (sc.open == 0) sweep_guard_done(&sc.guard);
    sweep_run_loop(sc.loop, sc.o);
    for (int i = 0; i < sc.n_handles; i++) {
        if (sc.handles[i].closes != 1)
            sweep_fail(sc.o, "handle %d closed %d times", i, sc.handles[i].closes);
    }
}

/* An API call's result: a failure is the caller being told. */
static int api(int r) {
    sweep_report(sc.o, r, SWEEP_AT_CALL);
    return r;
}

/* ---- TCP: the client, the echo server and the proxy ----------------------------------------- */

enum { CHUNK = 65536, N_WRITES = 3, FILE_LEN = 65536, TOTAL = CHUNK * N_WRITES + FILE_LEN };

static uint8_t pattern[TOTAL];
static int pattern_fd = -1; /* holds pattern[CHUNK * N_WRITES ..] for the sendfile */

/* A socket and what its events did. */
struct sock {
    zev_tcp_t t;
    int errors, ends, finishes;
};

struct pair {
    struct sock down, up;
    zev_tcp_pipe_t to_up, to_down;
};

static struct {
    struct sock client;
    int port;     /* where the client connects: the echo server or the proxy */
    int connects; /* connect callbacks */
    int write_cbs[N_WRITES + 1];
    bool write_queued[N_WRITES + 1];
    uint64_t got; /* bytes echoed back, checked */
    zev_tcp_server_t echo_srv, proxy_srv;
    bool echo_listening, proxy_listening;
    int echo_port;
    struct sock echo[2];
    int n_echo;
    int echo_writes, echo_write_cbs;
    struct pair pairs[2];
    int n_pairs;
} tc;

static struct sock *sock_of(zev_tcp_t *t) {
    return (struct sock *)t; /* t is the first member */
}

static void sock_error(zev_tcp_t *t, int err) {
    struct sock *s = sock_of(t);
    progress();
    if (++s->errors > 1) sweep_fail(sc.o, "an error event ran twice (%s)", zev_err_name(err));
    if (err >= 0) sweep_fail(sc.o, "error event with status %d", err);
    sweep_report(sc.o, err, SWEEP_AT_ERROR);
}

/* The client: checks every byte against the pattern; closes after end and finish. */
static void client_data(zev_tcp_t *t, const zev_slice_t *s) {
    (void)t;
    progress();
    if (tc.got + s->len > TOTAL) {
        sweep_fail(sc.o, "%lu bytes echoed, %d written", (unsigned long)(tc.got + s->len), TOTAL);
        return;
    }
    if (memcmp(s->base, pattern + tc.got, s->len) != 0) {
        sweep_fail(sc.o, "echoed bytes differ within %lu..%lu", (unsigned long)tc.got,
                   (unsigned long)(tc.got + s->len));
    }
    tc.got += s->len;
}

static void client_maybe_close(zev_tcp_t *t) {
    struct sock *s = sock_of(t);
    if (s->errors || (s->ends && s->finishes)) close_h(&t->handle);
}

static void client_end(zev_tcp_t *t) {
    progress();
    sock_of(t)->ends++;
    client_maybe_close(t);
}

static void client_finish(zev_tcp_t *t) {
    progress();
    sock_of(t)->finishes++;
    client_maybe_close(t);
}

static void client_error(zev_tcp_t *t, int err) {
    sock_error(t, err);
    close_h(&t->handle);
}

static const zev_tcp_events_t client_events = {
    .data = client_data, .end = client_end, .finish = client_finish, .error = client_error};

static void client_wrote(zev_tcp_t *t, int status, void *arg) {
    (void)t;
    progress();
    int i = (int)(intptr_t)arg;
    if (++tc.write_cbs[i] > 1) sweep_fail(sc.o, "write callback %d ran twice", i);
    sweep_report(sc.o, status, SWEEP_AT_WRITE);
}

static void client_connected(zev_tcp_t *t, int status) {
    progress();
    if (++tc.connects > 1) sweep_fail(sc.o, "the connect callback ran twice");
    if (status < 0) {
        sweep_report(sc.o, status, SWEEP_AT_CONNECT);
        close_h(&t->handle);
        return;
    }
    /* Options and addresses: their failures are returned and change nothing else. */
    api(zev_tcp_set_nodelay(t, 1));
    zev_addr_info_t info;
    api(zev_tcp_local_address(t, &info));
}

static void client_start(void) {
    zev_tcp_t *t = &tc.client.t;
    cr_assert_eq(zev_tcp_init(sc.loop, t), 0);
    track(&t->handle);
    zev_tcp_set_events(t, &client_events);
    if (api(zev_tcp_connect(t, "127.0.0.1", tc.port, client_connected)) < 0) {
        close_h(&t->handle);
        return;
    }
    if (api(zev_tcp_read_start(t)) < 0) return;
    /* Written before the handshake ends, as Node programs do: they queue until connected. */
    for (int i = 0; i < N_WRITES; i++) {
        zev_slice_t s = zev_slice(pattern + i * CHUNK, CHUNK);
        tc.write_queued[i] = api(zev_tcp_write(t, &s, 1, client_wrote, (void *)(intptr_t)i)) >= 0;
    }
    tc.write_queued[N_WRITES] = api(zev_tcp_sendfile(t, pattern_fd, 0, FILE_LEN, client_wrote,
                                                     (void *)(intptr_t)N_WRITES)) >= 0;
    api(zev_tcp_end(t));
}

/* The echo server: writes back each slice by reference; closes on finish or error. */
static void echo_wrote(zev_tcp_t *t, int status, void *arg) {
    (void)t;
    (void)arg;
    progress();
    tc.echo_write_cbs++;
    sweep_report(sc.o, status, SWEEP_AT_WRITE);
}

static void echo_data(zev_tcp_t *t, const zev_slice_t *s) {
    progress();
    if (api(zev_tcp_write(t, s, 1, echo_wrote, NULL)) >= 0) tc.echo_writes++;
}

static void echo_finish(zev_tcp_t *t) {
    progress();
    sock_of(t)->finishes++;
    close_h(&t->handle);
}

static void echo_error(zev_tcp_t *t, int err) {
    sock_error(t, err);
    close_h(&t->handle);
}

static const zev_tcp_events_t echo_events = {
    .data = echo_data, .finish = echo_finish, .error = echo_error};

static void echo_connection(zev_tcp_server_t *srv, int status) {
    progress();
    if (status < 0 || tc.n_echo == 2) {
        sweep_report(sc.o, status, SWEEP_AT_CONNECTION);
        return;
    }
    struct sock *s = &tc.echo[tc.n_echo++];
    cr_assert_eq(zev_tcp_init(sc.loop, &s->t), 0);
    track(&s->t.handle);
    if (api(zev_tcp_accept(srv, &s->t)) < 0 ||
        (zev_tcp_set_events(&s->t, &echo_events), api(zev_tcp_read_start(&s->t)) < 0)) {
        close_h(&s->t.handle);
    }
}

/* The proxy: pipes down -> up at once and up -> down once connected; both sockets are
 * half-open, so the two directions end on their own; the pair closes when both ended and
 * finished, or on either's error. */
static struct pair *pair_of(zev_tcp_t *t) {
    for (int i = 0; i < tc.n_pairs; i++) {
        if (t == &tc.pairs[i].down.t || t == &tc.pairs[i].up.t) return &tc.pairs[i];
    }
    cr_assert_fail("not a proxy socket");
    return NULL;
}

static void pair_close(struct pair *p) {
    close_h(&p->down.t.handle);
    close_h(&p->up.t.handle);
}

static void pair_maybe_close(zev_tcp_t *t) {
    struct pair *p = pair_of(t);
    if (p->down.ends && p->down.finishes && p->up.ends && p->up.finishes) pair_close(p);
}

static void proxy_end(zev_tcp_t *t) {
    progress();
    sock_of(t)->ends++;
    pair_maybe_close(t);
}

static void proxy_finish(zev_tcp_t *t) {
    progress();
    sock_of(t)->finishes++;
    pair_maybe_close(t);
}

static void proxy_error(zev_tcp_t *t, int err) {
    sock_error(t, err);
    pair_close(pair_of(t));
}

static const zev_tcp_events_t proxy_events = {
    .end = proxy_end, .finish = proxy_finish, .error = proxy_error};

static void up_connected(zev_tcp_t *t, int status) {
    progress();
    struct pair *p = pair_of(t);
    if (status < 0) {
        sweep_report(sc.o, status, SWEEP_AT_CONNECT);
        pair_close(p);
        return;
    }
    if (api(zev_tcp_pipe(&p->to_down, &p->up.t, &p->down.t, 1)) < 0) pair_close(p);
}

static void proxy_connection(zev_tcp_server_t *srv, int status) {
    progress();
    if (status < 0 || tc.n_pairs == 2) {
        sweep_report(sc.o, status, SWEEP_AT_CONNECTION);
        return;
    }
    struct pair *p = &tc.pairs[tc.n_pairs++];
    cr_assert_eq(zev_tcp_init(sc.loop, &p->down.t), 0);
    track(&p->down.t.handle);
    cr_assert_eq(zev_tcp_init(sc.loop, &p->up.t), 0);
    track(&p->up.t.handle);
    if (api(zev_tcp_accept(srv, &p->down.t)) < 0) {
        pair_close(p);
        return;
    }
    zev_tcp_set_events(&p->down.t, &proxy_events);
    zev_tcp_set_events(&p->up.t, &proxy_events);
    zev_tcp_set_allow_half_open(&p->down.t, 1);
    zev_tcp_set_allow_half_open(&p->up.t, 1);
    if (api(zev_tcp_connect(&p->up.t, "127.0.0.1", tc.echo_port, up_connected)) < 0 ||
        api(zev_tcp_pipe(&p->to_up, &p->down.t, &p->up.t, 1)) < 0) {
        pair_close(p);
    }
}

/* When the client is gone, the listeners go too (what waits in their backlog is dropped). */
static void tcp_after_close(zev_handle_t *h) {
    if (h != &tc.client.t.handle) return;
    close_h(&tc.echo_srv.handle);
    close_h(&tc.proxy_srv.handle);
}

/* Listen on 127.0.0.1:0; returns the port, or a negative errno with srv closed. */
static int tcp_listen(zev_tcp_server_t *srv, zev_tcp_connection_cb cb) {
    cr_assert_eq(zev_tcp_server_init(sc.loop, srv), 0);
    track(&srv->handle);
    int r = api(zev_tcp_listen(srv, "127.0.0.1", 0, NULL, cb));
    zev_addr_info_t info;
    if (r == 0) r = api(zev_tcp_server_address(srv, &info));
    if (r < 0) {
        close_h(&srv->handle);
        return r;
    }
    return info.port;
}

static void tcp_scenario(zev_loop_t *loop, struct sweep_outcome *o, bool proxy) {
    scen_begin(loop, o);
    memset(&tc, 0, sizeof(tc));
    after_close = tcp_after_close;
    tc.echo_port = tcp_listen(&tc.echo_srv, echo_connection);
    tc.port = tc.echo_port;
    if (proxy && tc.port > 0) {
        tc.port = tcp_listen(&tc.proxy_srv, proxy_connection);
        if (tc.port < 0) close_h(&tc.echo_srv.handle);
    }
    if (tc.port > 0) {
        client_start();
    } else {
        close_all(NULL);
    }
    scen_run();
    for (int i = 0; i <= N_WRITES; i++) {
        if (tc.write_queued[i] && tc.write_cbs[i] != 1) {
            sweep_fail(o, "write %d: %d callbacks", i, tc.write_cbs[i]);
        }
    }
    if (tc.echo_write_cbs != tc.echo_writes) {
        sweep_fail(o, "echo: %d writes, %d callbacks", tc.echo_writes, tc.echo_write_cbs);
    }
    o->complete = tc.got == TOTAL && tc.client.ends == 1;
}

static void tcp_echo(zev_loop_t *loop, struct sweep_outcome *o) {
    tcp_scenario(loop, o, false);
}

static void tcp_proxy(zev_loop_t *loop, struct sweep_outcome *o) {
    tcp_scenario(loop, o, true);
}

static void pattern_open(void) {
    for (int i = 0; i < TOTAL; i++)
        pattern[i] = (uint8_t)(i * 131 + (i >> 8));
    pattern_fd = memfd_create("zev-sweep", MFD_CLOEXEC);
    cr_assert_geq(pattern_fd, 0);
    cr_assert_eq(pwrite(pattern_fd, pattern + N_WRITES * CHUNK, FILE_LEN, 0), FILE_LEN);
    /* The sendfile sends offsets 0..FILE_LEN of the file: what follows the writes. */
}

/* The syscalls on the TCP path and what each can plausibly fail with. */
static const struct sweep_plan tcp_plan[] = {
    {ZEV_SYS_SOCKET, {EMFILE, ENOMEM, ENOBUFS}, 3},
    {ZEV_SYS_SETSOCKOPT, {ENOMEM, ENOBUFS}, 2},
    {ZEV_SYS_GETSOCKNAME, {ENOBUFS}, 1},
    {ZEV_SYS_ACCEPT, {EINTR, EAGAIN, ENOMEM, ENOBUFS, EMFILE, ECONNABORTED}, 6},
    {ZEV_SYS_CONNECT, {EINTR, EAGAIN, ENOMEM, ENOBUFS, ECONNRESET}, 5},
    {ZEV_SYS_GETSOCKOPT, {ENOMEM, ENOBUFS}, 2},
    {ZEV_SYS_READ, {EINTR, EAGAIN, ENOMEM, ENOBUFS, ECONNRESET, SWEEP_SHORT}, 6},
    {ZEV_SYS_SENDMSG, {EINTR, EAGAIN, ENOMEM, ENOBUFS, ECONNRESET, EPIPE, SWEEP_SHORT}, 7},
    {ZEV_SYS_SENDFILE, {EINTR, EAGAIN, ENOMEM, ECONNRESET, EPIPE, SWEEP_SHORT}, 6},
    /* Not ENOTCONN: zev takes it as "the peer is gone" and finishes (the reader sees the
     * reset anyway); injected on a live connection the peer would wait for a FIN for ever. */
    {ZEV_SYS_SHUTDOWN, {ENOBUFS}, 1},
    {ZEV_SYS_POLL_CTL, {ENOMEM, ENOSPC}, 2},
    {ZEV_SYS_POLL_WAIT, {EINTR, ENOMEM}, 2},
    {ZEV_SYS_CLOSE, {EINTR, EIO}, 2},
};

static void sweep_and_report(struct sweep_table *t, sweep_scenario_fn fn,
                             const struct sweep_plan *plan, int n_plan) {
    sweep_all(t, fn, plan, n_plan, MAX_POSITIONS);
    sweep_print(t, stderr);
    cr_assert_eq(t->failures, 0, "%u of %u runs broke a rule; first: %s", t->failures, t->runs,
                 t->first_failures[0]);
}

Test(fault_sweep, tcp_echo) {
    pattern_open();
    static struct sweep_table t = {.title = "tcp_echo"};
    sweep_and_report(&t, tcp_echo, tcp_plan, sizeof(tcp_plan) / sizeof(tcp_plan[0]));
    close(pattern_fd);
}

Test(fault_sweep, tcp_proxy) {
    pattern_open();
    static struct sweep_table t = {.title = "tcp_proxy"};
    sweep_and_report(&t, tcp_proxy, tcp_plan, sizeof(tcp_plan) / sizeof(tcp_plan[0]));
    close(pattern_fd);
}

/* ---- UDP: a client sends datagrams, a server echoes them ------------------------------------ */

enum { N_DGRAMS = 16, DGRAM_MAX = 100 + 61 * N_DGRAMS };

static uint8_t dgrams[N_DGRAMS][DGRAM_MAX];

static size_t dgram_len(int i) {
    return 100 + 61 * (size_t)i;
}

static struct {
    zev_udp_t srv, cli;
    int send_cbs[N_DGRAMS];
    bool send_queued[N_DGRAMS];
    int received[N_DGRAMS];
    int lost_known; /* datagrams whose sender was told they failed */
    int n_received;
    int echo_sends, echo_send_cbs;
} uc;

static void udp_maybe_done(void) {
    if (uc.n_received + uc.lost_known < N_DGRAMS) return;
    close_all(NULL);
}

static void udp_lost(int status, unsigned where) {
    sweep_report(sc.o, status, where);
    uc.lost_known++;
    udp_maybe_done();
}

static void cli_sent(zev_udp_t *u, int status, void *arg) {
    (void)u;
    progress();
    int i = (int)(intptr_t)arg;
    if (++uc.send_cbs[i] > 1) sweep_fail(sc.o, "send callback %d ran twice", i);
    if (status < 0) {
        udp_lost(status, SWEEP_AT_SEND);
    } else if ((size_t)status != dgram_len(i)) {
        sweep_fail(sc.o, "send %d: %d bytes of %zu", i, status, dgram_len(i));
    }
}

static void cli_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                        const zev_udp_rinfo_t *ri) {
    (void)u;
    (void)ri;
    progress();
    if (!msg) {
        sweep_report(sc.o, status, SWEEP_AT_MESSAGE);
        return;
    }
    int i = msg->len ? (uint8_t)msg->base[0] : -1;
    if (status != 0 || i < 0 || i >= N_DGRAMS || msg->len != dgram_len(i) ||
        memcmp(msg->base, dgrams[i], msg->len) != 0) {
        sweep_fail(sc.o, "a datagram came back changed (status %d, %zu bytes)", status, msg->len);
        return;
    }
    if (++uc.received[i] > 1) sweep_fail(sc.o, "datagram %d came back twice", i);
    uc.n_received++;
    udp_maybe_done();
}

static void srv_sent(zev_udp_t *u, int status, void *arg) {
    (void)u;
    (void)arg;
    progress();
    uc.echo_send_cbs++;
    if (status < 0) udp_lost(status, SWEEP_AT_SEND);
}

static void srv_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                        const zev_udp_rinfo_t *ri) {
    progress();
    if (!msg) {
        sweep_report(sc.o, status, SWEEP_AT_MESSAGE);
        return;
    }
    int r = api(zev_udp_send_addr(u, msg, 1, ri->addr, srv_sent, NULL));
    if (r < 0) {
        udp_lost(r, 0); /* api() reported it */
    } else {
        uc.echo_sends++;
    }
}

/* Open a socket bound to 127.0.0.1:0 and receiving; returns its port or a negative errno. */
static int udp_open(zev_udp_t *u, zev_udp_message_cb cb) {
    int r = api(zev_udp_init(sc.loop, u, 4));
    if (r < 0) return r; /* not a handle */
    track(&u->handle);
    zev_addr_info_t info;
    r = api(zev_udp_bind(u, "127.0.0.1", 0, NULL, NULL));
    if (r == 0) r = api(zev_udp_recv_start(u, cb));
    if (r == 0) r = api(zev_udp_local_address(u, &info));
    return r < 0 ? r : info.port;
}

/* batch: datagrams per receive and send call on both sockets (1: recvmsg and sendmsg). */
static void udp_scenario(zev_loop_t *loop, struct sweep_outcome *o, unsigned batch) {
    scen_begin(loop, o);
    memset(&uc, 0, sizeof(uc));
    after_close = NULL;
    int port = udp_open(&uc.srv, srv_message);
    int cport = port > 0 ? udp_open(&uc.cli, cli_message) : -1;
    if (cport > 0) {
        zev_udp_set_batch_size(&uc.srv, batch);
        zev_udp_set_batch_size(&uc.cli, batch);
        api(zev_udp_set_recv_buffer_size(&uc.cli, 1 << 20));
        for (int i = 0; i < N_DGRAMS; i++) {
            zev_slice_t s = zev_slice(dgrams[i], dgram_len(i));
            int r =
                api(zev_udp_send(&uc.cli, &s, 1, "127.0.0.1", port, cli_sent, (void *)(intptr_t)i));
            uc.send_queued[i] = r >= 0;
            if (r < 0) uc.lost_known++;
        }
        udp_maybe_done();
    } else {
        close_all(NULL);
    }
    scen_run();
    for (int i = 0; i < N_DGRAMS; i++) {
        if (uc.send_queued[i] && uc.send_cbs[i] != 1) {
            sweep_fail(o, "send %d: %d callbacks", i, uc.send_cbs[i]);
        }
    }
    if (uc.echo_send_cbs != uc.echo_sends) {
        sweep_fail(o, "echo: %d sends, %d callbacks", uc.echo_sends, uc.echo_send_cbs);
    }
    o->complete = uc.n_received == N_DGRAMS;
}

static void udp_echo(zev_loop_t *loop, struct sweep_outcome *o) {
    udp_scenario(loop, o, ZEV_UDP_BATCH_DEFAULT);
}

static void udp_echo_unbatched(zev_loop_t *loop, struct sweep_outcome *o) {
    udp_scenario(loop, o, 1);
}

static const struct sweep_plan udp_plan[] = {
    {ZEV_SYS_SOCKET, {EMFILE, ENOMEM, ENOBUFS}, 3},
    {ZEV_SYS_SETSOCKOPT, {ENOMEM, ENOBUFS}, 2},
    {ZEV_SYS_GETSOCKNAME, {ENOBUFS}, 1},
    {ZEV_SYS_RECVMMSG, {EINTR, EAGAIN, ENOMEM, ENOBUFS, SWEEP_SHORT}, 5},
    {ZEV_SYS_RECVMSG, {EINTR, EAGAIN, ENOMEM, ENOBUFS}, 4},
    {ZEV_SYS_SENDMSG, {EINTR, EAGAIN, ENOMEM, ENOBUFS}, 4},
    {ZEV_SYS_SENDMMSG, {EINTR, EAGAIN, ENOMEM, ENOBUFS, SWEEP_SHORT}, 5},
    {ZEV_SYS_POLL_CTL, {ENOMEM, ENOSPC}, 2},
    {ZEV_SYS_POLL_WAIT, {EINTR, ENOMEM}, 2},
    {ZEV_SYS_CLOSE, {EINTR, EIO}, 2},
};

static void dgrams_fill(void) {
    for (int i = 0; i < N_DGRAMS; i++) {
        for (int j = 0; j < DGRAM_MAX; j++)
            dgrams[i][j] = (uint8_t)(i * 7 + j * 13);
        dgrams[i][0] = (uint8_t)i;
    }
}

Test(fault_sweep, udp_echo) {
    dgrams_fill();
    static struct sweep_table t = {.title = "udp_echo"};
    sweep_and_report(&t, udp_echo, udp_plan, sizeof(udp_plan) / sizeof(udp_plan[0]));
}

Test(fault_sweep, udp_echo_unbatched) {
    dgrams_fill();
    static struct sweep_table t = {.title = "udp_echo_unbatched"};
    sweep_and_report(&t, udp_echo_unbatched, udp_plan, sizeof(udp_plan) / sizeof(udp_plan[0]));
}
