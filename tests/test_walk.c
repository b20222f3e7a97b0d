/* tests/test_walk.c: an inspectable loop: zev_loop_walk visits every handle the user opened and
 * whose close callback has not run (open, closing, close-pending), never the library's own;
 * zev_handle_info describes each (type, state, fd, active, ref'd, requests, and the type's own
 * fields); zev_loop_print_handles writes them, the pool and the slab to a FILE, and says why
 * zev_loop_close is -EBUSY. The table behind the walk costs no byte in a handle, grows at init
 * only (-ENOMEM then), and survives callbacks that close or open handles. */
#include "fake_dns.h"
#include "tcp_pair.h"
#include "zt.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(walk, .init = zt_setup, .fini = zt_teardown, .timeout = 20);

/* ---- helpers ------------------------------------------------------------------------------ */

enum { MAX_SEEN = 64 };

struct seen {
    int n;
    zev_handle_info_t info[MAX_SEEN];
};

static void collect(zev_handle_t *h, void *arg) {
    struct seen *s = arg;
    cr_assert_lt(s->n, MAX_SEEN);
    cr_assert_eq(zev_handle_info(h, &s->info[s->n]), 0);
    cr_assert_eq(s->info[s->n].handle, h);
    s->n++;
}

static struct seen walk_all(void) {
    struct seen s = {0};
    int n = zev_loop_walk(&zt_loop, collect, &s);
    cr_assert_eq(n, s.n, "the walk returns how many it visited");
    return s;
}

/* The walk's description of h; fails the test if h was not visited exactly once. */
static zev_handle_info_t seen_once(const struct seen *s, const zev_handle_t *h) {
    int found = -1;
    for (int i = 0; i < s->n; i++) {
        if (s->info[i].handle != h) continue;
        cr_assert_eq(found, -1, "%s visited twice", zev_handle_type_name(s->info[i].type));
        found = i;
    }
    cr_assert_neq(found, -1, "a handle was not visited");
    return s->info[found];
}

/* The loop's print into a string (the caller frees it). */
static char *print_to_string(unsigned flags) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    cr_assert_eq(zev_loop_print_handles(&zt_loop, f, flags), 0);
    fclose(f);
    return text;
}

static void count_visit(zev_handle_t *h, void *arg) {
    (void)h;
    (void)arg;
}

/* How many handles a walk visits, for walks too long to collect. */
static int count_walk(void) {
    return zev_loop_walk(&zt_loop, count_visit, NULL);
}

/* The line of text that starts with prefix, or NULL. */
static const char *line_starting(const char *text, const char *prefix) {
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, prefix, strlen(prefix)) == 0) return l;
    }
    return NULL;
}

static void assert_line(const char *text, const char *prefix) {
    cr_assert_not_null(line_starting(text, prefix), "no line starting \"%s\" in:\n%s", prefix,
                       text);
}

static void no_timer_cb(zev_timer_t *t) {
    (void)t;
}

static void no_async_cb(zev_async_t *a) {
    (void)a;
}

static void no_signal_cb(zev_signal_t *s, int signum) {
    (void)s;
    (void)signum;
}

static void no_fdwatch_cb(zev_fdwatch_t *w, unsigned events) {
    (void)w;
    (void)events;
}

static void no_write_cb(zev_tcp_t *t, int status, void *arg) {
    (void)t;
    (void)arg;
    cr_assert_eq(status, 0);
}

static int connected;
static void on_connect(zev_tcp_t *t, int status) {
    (void)t;
    cr_assert_eq(status, 0, "connect: %s", zev_err_name(status));
    connected++;
}

static zev_tcp_t accepted;
static int accepts;
static void on_connection(zev_tcp_server_t *s, int status) {
    cr_assert_eq(status, 0);
    cr_assert_eq(zev_tcp_init(&zt_loop, &accepted), 0);
    cr_assert_eq(zev_tcp_accept(s, &accepted), 0);
    accepts++;
}

/* ---- the walk and each handle's description -------------------------------------------- */

Test(walk, a_mix_of_handles_is_walked_once_each_with_its_type_state_fd_and_fields) {
    zev_timer_t started, stopped;
    cr_assert_eq(zev_timer_init(&zt_loop, &started), 0);
    cr_assert_eq(zev_timer_start(&started, no_timer_cb, 10000, 0), 0);
    cr_assert_eq(zev_timer_init(&zt_loop, &stopped), 0);
    cr_assert_eq(zev_unref(&stopped.handle), 0);
    zev_async_t async;
    cr_assert_eq(zev_async_init(&zt_loop, &async, no_async_cb), 0);
    zev_tcp_server_t server;
    int port = zt_listen(&server, on_connection, NULL);
    zev_tcp_t idle, client;
    cr_assert_eq(zev_tcp_init(&zt_loop, &idle), 0);
    cr_assert_eq(zev_tcp_init(&zt_loop, &client), 0);
    cr_assert_eq(zev_tcp_connect(&client, "127.0.0.1", port, on_connect), 0);
    zev_slice_t hello = zev_slice("hello", 5);
    cr_assert_eq(zev_tcp_write(&client, &hello, 1, no_write_cb, NULL), 0, "queued while connecting");
    zev_udp_t udp;
    cr_assert_eq(zev_udp_init(&zt_loop, &udp, 4), 0);
    cr_assert_eq(zev_udp_bind(&udp, "127.0.0.1", 0, NULL, NULL), 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    zev_fdwatch_t watch;
    cr_assert_eq(zev_fdwatch_init(&zt_loop, &watch, fds[0]), 0);
    cr_assert_eq(zev_fdwatch_start(&watch, ZEV_FDWATCH_READABLE, no_fdwatch_cb), 0);
    zev_signal_t sig;
    cr_assert_eq(zev_signal_init(&zt_loop, &sig), 0);
    cr_assert_eq(zev_signal_start(&sig, no_signal_cb, SIGUSR2), 0);

    struct seen s = walk_all();
    cr_assert_eq(s.n, 9);
    zev_handle_info_t i = seen_once(&s, &started.handle);
    cr_assert_eq(i.type, ZEV_TIMER);
    cr_assert_str_eq(zev_handle_type_name(i.type), "timer");
    cr_assert_eq(i.state, ZEV_HANDLE_OPEN);
    cr_assert_eq(i.fd, -1);
    cr_assert(i.active && i.ref && !i.requests);
    cr_assert(i.due_in_ms > 0 && i.due_in_ms <= 10000, "due in %llu ms",
              (unsigned long long)i.due_in_ms);
    i = seen_once(&s, &stopped.handle);
    cr_assert(!i.active && !i.ref && i.due_in_ms == 0);
    i = seen_once(&s, &async.handle);
    cr_assert_str_eq(zev_handle_type_name(i.type), "async");
    cr_assert(i.active && i.ref && i.fd == -1);
    i = seen_once(&s, &server.handle);
    cr_assert_str_eq(zev_handle_type_name(i.type), "tcp_server");
    cr_assert(i.fd == server.io.fd && i.fd >= 0);
    cr_assert(i.active && i.ref && i.connections == 0);
    i = seen_once(&s, &idle.handle);
    cr_assert_str_eq(zev_handle_type_name(i.type), "tcp");
    cr_assert_eq(i.tcp_phase, ZEV_TCP_PHASE_IDLE);
    cr_assert(i.fd == -1 && !i.active && !i.requests && i.queued == 0);
    i = seen_once(&s, &client.handle);
    cr_assert_eq(i.tcp_phase, ZEV_TCP_PHASE_CONNECTING);
    cr_assert_eq(i.fd, zev_tcp_fileno(&client));
    cr_assert(i.requests, "a connect and a write in flight");
    cr_assert_eq(i.queued_bytes, 5);
    cr_assert_eq(i.queued, 1);
    cr_assert_eq(i.queued_memory, zev_tcp_write_queue_memory(&client));
    i = seen_once(&s, &udp.handle);
    cr_assert_str_eq(zev_handle_type_name(i.type), "udp");
    cr_assert_eq(i.fd, zev_udp_fileno(&udp));
    cr_assert(!i.active && i.ref && i.queued_bytes == 0, "bound, not receiving");
    i = seen_once(&s, &watch.handle);
    cr_assert_str_eq(zev_handle_type_name(i.type), "fdwatch");
    cr_assert(i.fd == fds[0] && i.active);
    i = seen_once(&s, &sig.handle);
    cr_assert_str_eq(zev_handle_type_name(i.type), "signal");
    cr_assert(i.signum == SIGUSR2 && i.active && i.fd == -1);

    /* Connected and accepted: the phase follows, the queue empties, a new handle appears. */
    cr_assert(zt_run_until(&accepts, 1, 10000));
    cr_assert(zt_run_until(&connected, 1, 10000));
    for (int k = 0; k < 10 && zev_tcp_write_queue_count(&client) > 0; k++)
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    s = walk_all();
    cr_assert_eq(s.n, 10);
    i = seen_once(&s, &client.handle);
    cr_assert_eq(i.tcp_phase, ZEV_TCP_PHASE_CONNECTED);
    cr_assert(i.queued_bytes == 0 && i.queued == 0 && !i.requests);
    cr_assert_eq(seen_once(&s, &server.handle).connections, 1);
    cr_assert_eq(seen_once(&s, &accepted.handle).tcp_phase, ZEV_TCP_PHASE_CONNECTED);

    zev_handle_t *all[] = {&started.handle, &stopped.handle, &async.handle, &server.handle,
                           &idle.handle,    &client.handle,  &udp.handle,   &watch.handle,
                           &sig.handle,     &accepted.handle};
    for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) zev_close(all[k], NULL);
    zt_run();
    cr_assert_eq(walk_all().n, 0, "closed handles leave the table");
    close(fds[0]);
    close(fds[1]);
}

Test(walk, a_handle_is_described_from_zev_close_until_its_close_callback) {
    zev_timer_t t;
    cr_assert_eq(zev_timer_init(&zt_loop, &t), 0);
    int closed = 0;
    t.handle.data = &closed;
    cr_assert_eq(zev_close(&t.handle, zt_count_close), 0);
    zev_handle_info_t i;
    cr_assert_eq(zev_handle_info(&t.handle, &i), 0);
    cr_assert_eq(i.state, ZEV_HANDLE_CLOSING);
    cr_assert_eq(i.ref, 0, "a closing handle keeps the loop no more");
    cr_assert_eq(walk_all().n, 1, "still walked until its close callback");
    zt_run();
    cr_assert_eq(closed, 1);
    cr_assert_eq(zev_handle_info(&t.handle, &i), -EBADF);
    cr_assert_eq(walk_all().n, 0);
}

/* zt_tcp_pair closes its listener at once; its close callback waits for the accepted socket. */
Test(walk, a_server_waiting_for_its_connections_is_close_pending) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* the listener's close phase came */
    struct seen s = walk_all();
    cr_assert_eq(s.n, 3);
    int pending = 0;
    for (int k = 0; k < s.n; k++) {
        if (s.info[k].type != ZEV_TCP_SERVER) continue;
        cr_assert_eq(s.info[k].state, ZEV_HANDLE_CLOSE_PENDING);
        cr_assert_eq(s.info[k].connections, 1);
        cr_assert_eq(s.info[k].fd, -1, "its descriptor is closed already");
        pending++;
    }
    cr_assert_eq(pending, 1);
    char *text = print_to_string(ZEV_PRINT_ALL);
    assert_line(text, "[---] tcp_server fd=-1 close-pending connections=1 0x");
    free(text);
    zev_close(&a.handle, NULL);
    zev_close(&b.handle, NULL);
    zt_run();
    cr_assert_eq(walk_all().n, 0);
}

/* ---- a walk whose callback closes or opens handles ------------------------------------------ */

enum { N_TIMERS = 5, N_OPENED = 2100 }; /* 2100 > 4 blocks of 512: the directory moves too */

static zev_timer_t timers[N_TIMERS];
static zev_timer_t *opened;
static int visits, visits_closing, closes;

static void close_everything_on_first_visit(zev_handle_t *h, void *arg) {
    (void)arg;
    zev_handle_info_t i;
    cr_assert_eq(zev_handle_info(h, &i), 0);
    if (visits++ == 0) {
        cr_assert_eq(i.state, ZEV_HANDLE_OPEN);
        for (int k = 0; k < N_TIMERS; k++) cr_assert_eq(zev_close(&timers[k].handle, zt_count_close), 0);
    } else {
        cr_assert_eq(i.state, ZEV_HANDLE_CLOSING, "closed by an earlier visit, still walked");
        visits_closing++;
    }
}

Test(walk, a_callback_that_closes_every_handle_still_visits_each_once_as_closing) {
    for (int k = 0; k < N_TIMERS; k++) {
        cr_assert_eq(zev_timer_init(&zt_loop, &timers[k]), 0);
        timers[k].handle.data = &closes;
        cr_assert_eq(zev_timer_start(&timers[k], no_timer_cb, 60000, 0), 0);
    }
    cr_assert_eq(zev_loop_walk(&zt_loop, close_everything_on_first_visit, NULL), N_TIMERS);
    cr_assert_eq(visits, N_TIMERS);
    cr_assert_eq(visits_closing, N_TIMERS - 1);
    cr_assert_eq(closes, 0, "no close callback inside the walk");
    zt_run();
    cr_assert_eq(closes, N_TIMERS);
    cr_assert_eq(walk_all().n, 0);
}

static void open_many_on_first_visit(zev_handle_t *h, void *arg) {
    (void)h;
    (void)arg;
    if (visits++ > 0) return;
    for (int k = 0; k < N_OPENED; k++) cr_assert_eq(zev_timer_init(&zt_loop, &opened[k]), 0);
}

Test(walk, a_callback_that_opens_enough_handles_to_grow_the_table_is_safe) {
    opened = calloc(N_OPENED, sizeof(*opened));
    cr_assert_not_null(opened);
    for (int k = 0; k < N_TIMERS; k++) cr_assert_eq(zev_timer_init(&zt_loop, &timers[k]), 0);
    uint32_t blocks = zt_loop.handles.n_blocks;
    int n = zev_loop_walk(&zt_loop, open_many_on_first_visit, NULL);
    cr_assert_gt(zt_loop.handles.n_blocks, 4, "the table grew (from %u blocks)", blocks);
    cr_assert(n >= N_TIMERS && n <= N_TIMERS + N_OPENED, "visited %d", n);
    cr_assert_eq(count_walk(), N_TIMERS + N_OPENED);
    for (int k = 0; k < N_TIMERS; k++) zev_close(&timers[k].handle, NULL);
    for (int k = 0; k < N_OPENED; k++) zev_close(&opened[k].handle, NULL);
    zt_run();
    cr_assert_eq(count_walk(), 0);
    free(opened);
}

/* ---- the table: slots reused, no byte in a handle, -ENOMEM at init only ------------------- */

Test(walk, closed_handles_free_their_slots_for_the_next_ones) {
    enum { N = 1500 };
    zev_timer_t *t = calloc(N, sizeof(*t));
    cr_assert_not_null(t);
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < N; k++) cr_assert_eq(zev_timer_init(&zt_loop, &t[k]), 0);
        cr_assert_eq(zt_loop.handles.listed, N);
        cr_assert_eq(count_walk(), N);
        for (int k = 0; k < N; k++) zev_close(&t[k].handle, NULL);
        zt_run();
        cr_assert_eq(zt_loop.handles.listed, 0);
        cr_assert_eq(zt_loop.handles.n_blocks, (N + 1 + 511) / 512, "no block beyond the peak");
    }
    free(t);
}

Test(walk, listing_handles_adds_no_byte_to_a_handle) {
    cr_assert_eq(sizeof(zev_handle_t), 3 * sizeof(void *) + 2 * sizeof(unsigned) +
                                           sizeof(struct zev__link));
}

Test(walk, an_init_that_finds_no_memory_for_the_table_fails_with_enomem_and_leaks_nothing) {
    int fds = zt_fd_count();
    zt_use_picky_allocator(); /* the table has no block yet: the first init needs one */
    zev_timer_t t;
    zev_tcp_t tcp;
    zev_udp_t udp;
    zev_async_t async;
    cr_assert_eq(zev_timer_init(&zt_loop, &t), -ENOMEM);
    cr_assert_eq(zev_tcp_init(&zt_loop, &tcp), -ENOMEM);
    cr_assert_eq(zev_udp_init(&zt_loop, &udp, 4), -ENOMEM);
    cr_assert_eq(zev_async_init(&zt_loop, &async, no_async_cb), -ENOMEM);
    cr_assert_eq(zt_fd_count(), fds, "the UDP socket was closed again");
    cr_assert_eq(zev_close(&t.handle, NULL), -EINVAL, "not a handle");
    cr_assert_eq(zt_loop.open_handles, 0);
    zt_alloc_refuse = 0;
    cr_assert_eq(zev_udp_init(&zt_loop, &udp, 4), 0);
    cr_assert_eq(walk_all().n, 1);
    zev_close(&udp.handle, NULL);
    zt_run();
}

Test(walk, bad_arguments_and_a_closed_loop_are_refused) {
    zev_handle_info_t i;
    zev_timer_t zeroed = {0};
    cr_assert_eq(zev_loop_walk(NULL, collect, NULL), -EINVAL);
    cr_assert_eq(zev_loop_walk(&zt_loop, NULL, NULL), -EINVAL);
    cr_assert_eq(zev_handle_info(NULL, &i), -EINVAL);
    cr_assert_eq(zev_handle_info(&zeroed.handle, &i), -EINVAL);
    cr_assert_eq(zev_loop_print_handles(&zt_loop, NULL, 0), -EINVAL);
    cr_assert_eq(zev_loop_print_handles(&zt_loop, stdout, 1u << 7), -EINVAL);
    cr_assert_str_eq(zev_handle_type_name(ZEV_HANDLE_UNKNOWN), "unknown");
    zev_loop_t loop = {0};
    cr_assert_eq(zev_loop_init(&loop), 0);
    cr_assert_eq(zev_loop_close(&loop), 0);
    cr_assert_eq(zev_loop_walk(&loop, collect, NULL), -EBADF);
    cr_assert_eq(zev_loop_print_handles(&loop, stdout, 0), -EBADF);
}

/* ---- the print -------------------------------------------------------------------------------- */

Test(walk, the_print_has_one_stable_line_per_handle_then_pool_slab_and_verdict) {
    zev_tcp_server_t server;
    zt_listen(&server, on_connection, NULL);
    zev_timer_t timer;
    cr_assert_eq(zev_timer_init(&zt_loop, &timer), 0);
    cr_assert_eq(zev_timer_start(&timer, no_timer_cb, 60000, 0), 0);
    zev_udp_t udp;
    cr_assert_eq(zev_udp_init(&zt_loop, &udp, 4), 0);
    char *text = print_to_string(ZEV_PRINT_ALL);
    char line[128];
    assert_line(text, "zev loop ");
    cr_assert_not_null(strstr(text, ": 3 handles (3 open, 0 closing, 0 close-pending), 0 internal\n"),
                       "%s", text);
    snprintf(line, sizeof(line), "[RA-] tcp_server fd=%d open connections=0 0x",
             server.io.fd);
    assert_line(text, line);
    assert_line(text, "[RA-] timer      open due_in=");
    snprintf(line, sizeof(line), "[R--] udp        fd=%d open queued=0 in 0 datagrams 0x",
             zev_udp_fileno(&udp));
    assert_line(text, line);
    assert_line(text, "pool: 0 chunks referenced (65536 bytes each), 0 read area, 0 idle\n");
    assert_line(text, "slab: 0 objects in use (0 of 64 bytes, 0 of 128 bytes)\n");
    assert_line(text, "zev_loop_close: -EBUSY: 3 handles not closed\n");
    free(text);

    text = print_to_string(ZEV_PRINT_ACTIVE);
    cr_assert_null(line_starting(text, "[R--] udp"), "only active handles:\n%s", text);
    assert_line(text, "[RA-] timer");
    free(text);

    zev_close(&server.handle, NULL);
    zev_close(&timer.handle, NULL);
    text = print_to_string(ZEV_PRINT_ALL);
    assert_line(text, "[---] timer      closing due_in=0ms 0x");
    cr_assert_not_null(strstr(text, "(1 open, 2 closing, 0 close-pending)"), "%s", text);
    free(text);
    zev_close(&udp.handle, NULL);
    zt_run();
    text = print_to_string(ZEV_PRINT_ALL);
    assert_line(text, "zev_loop_close: ready\n");
    free(text);
}

/* The question the print answers: a socket left open and a buffer reference never dropped
 * both keep zev_loop_close at -EBUSY, and the print names each. */
Test(walk, the_print_explains_why_zev_loop_close_is_ebusy) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    zev_close(&b.handle, NULL);
    for (int k = 0; k < 10; k++) zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* b, then its listener */
    zev_buf_t *held = zev_buf_get(&zt_loop);
    cr_assert_not_null(held);

    cr_assert_eq(zev_loop_close(&zt_loop), -EBUSY);
    char *text = print_to_string(ZEV_PRINT_ALL);
    char line[128];
    cr_assert_not_null(strstr(text, ": 1 handle (1 open, 0 closing, 0 close-pending)"), "%s",
                       text);
    snprintf(line, sizeof(line), "[R--] tcp        fd=%d open phase=connected ",
             zev_tcp_fileno(&a));
    assert_line(text, line);
    assert_line(text, "pool: 1 chunk referenced (65536 bytes each)");
    assert_line(text, "zev_loop_close: -EBUSY: 1 handle not closed");
    cr_assert_not_null(strstr(text, ", 1 chunk referenced\n"), "%s", text);
    free(text);

    zev_close(&a.handle, NULL);
    zt_run();
    cr_assert_eq(zev_loop_close(&zt_loop), -EBUSY, "the buffer still");
    text = print_to_string(ZEV_PRINT_ALL);
    assert_line(text, "zev_loop_close: -EBUSY: 1 chunk referenced\n");
    free(text);
    zev_buf_unref(held);
    text = print_to_string(ZEV_PRINT_ALL);
    assert_line(text, "pool: 0 chunks referenced");
    assert_line(text, "zev_loop_close: ready\n");
    free(text);
}

/* A connect by name keeps a handle of the library's own open while it runs: counted, so that
 * the -EBUSY it causes is explained, but not walked. */
Test(walk, a_connect_by_name_in_flight_shows_as_internal_not_walked) {
    ZT_FAKE_DNS_OR_SKIP();
    zev_tcp_server_t server;
    int port = zt_listen(&server, on_connection, NULL);
    zev_tcp_t client;
    cr_assert_eq(zev_tcp_init(&zt_loop, &client), 0);
    cr_assert_eq(zev_tcp_connect(&client, "v4.zev.test", port, on_connect), 0);
    struct seen s = walk_all();
    cr_assert_eq(s.n, 2, "the server and the client, not the lookup's state");
    zev_handle_info_t i = seen_once(&s, &client.handle);
    cr_assert(i.tcp_phase == ZEV_TCP_PHASE_CONNECTING && i.fd == -1, "no descriptor yet");
    char *text = print_to_string(ZEV_PRINT_ALL);
    cr_assert_not_null(strstr(text, "), 1 internal\n"), "%s", text);
    assert_line(text, "[RAQ] tcp        fd=-1 open phase=connecting ");
    cr_assert_not_null(strstr(text, "-EBUSY: 3 handles not closed"), "%s", text);
    free(text);
    cr_assert(zt_run_until(&connected, 1, 20000));
    cr_assert(zt_run_until(&accepts, 1, 20000));
    zev_close(&client.handle, NULL);
    zev_close(&accepted.handle, NULL);
    zev_close(&server.handle, NULL);
    zt_run();
}
