/* tests/support/thread_scenarios.c: see thread_scenarios.h. */
#include "thread_scenarios.h"

#include "zev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct pingpong {
    zev_async_t async;
    atomic_int sent;
    atomic_int seen;
    int rounds;
};

static void *ping_sender(void *arg) {
    struct pingpong *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        while (atomic_load(&p->seen) < i) sched_yield();
        atomic_fetch_add(&p->sent, 1);
        zev_async_send(&p->async);
    }
    return NULL;
}

static void on_ping(zev_async_t *a) {
    struct pingpong *p = a->handle.data;
    int seen = atomic_load(&p->sent);
    atomic_store(&p->seen, seen);
    if (seen == p->rounds) zev_close(&a->handle, NULL);
}

const char *zt_async_pingpong(int rounds) {
    zev_loop_t loop;
    struct pingpong p = {.rounds = rounds};
    const char *err = NULL;
    atomic_init(&p.sent, 0);
    atomic_init(&p.seen, 0);
    if (zev_loop_init(&loop) != 0) return "loop init failed";
    zev_async_init(&loop, &p.async, on_ping);
    p.async.handle.data = &p;
    pthread_t th;
    if (pthread_create(&th, NULL, ping_sender, &p) != 0) return "pthread_create failed";
    if (zev_run(&loop, ZEV_RUN_DEFAULT) != 0) err = "run failed";
    pthread_join(th, NULL);
    if (!err && atomic_load(&p.seen) != rounds) err = "a wake-up was lost";
    if (zev_loop_close(&loop) != 0 && !err) err = "loop close failed";
    return err;
}

#define STORM_MAX_THREADS 16

struct storm {
    zev_async_t async;
    atomic_int done_threads;
    pthread_t threads[STORM_MAX_THREADS];
    int n_threads;
    int sends;
    int callbacks;
};

static void *storm_sender(void *arg) {
    struct storm *s = arg;
    for (int i = 0; i < s->sends; i++) zev_async_send(&s->async);
    /* Count first, then send: the callback this send causes is sure to see the count. */
    atomic_fetch_add(&s->done_threads, 1);
    zev_async_send(&s->async);
    return NULL;
}

static void on_storm(zev_async_t *a) {
    struct storm *s = a->handle.data;
    s->callbacks++;
    if (atomic_load(&s->done_threads) < s->n_threads) return;
    /* Join before closing: no thread may still be inside zev_async_send on this handle. */
    for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i], NULL);
    zev_close(&a->handle, NULL);
}

const char *zt_async_storm(int threads, int sends) {
    if (threads > STORM_MAX_THREADS) return "too many threads";
    zev_loop_t loop;
    struct storm s = {.n_threads = threads, .sends = sends};
    const char *err = NULL;
    atomic_init(&s.done_threads, 0);
    if (zev_loop_init(&loop) != 0) return "loop init failed";
    zev_async_init(&loop, &s.async, on_storm);
    s.async.handle.data = &s;
    for (int i = 0; i < threads; i++) pthread_create(&s.threads[i], NULL, storm_sender, &s);
    /* Returns only once the callback saw every thread's final send. */
    if (zev_run(&loop, ZEV_RUN_DEFAULT) != 0) err = "run failed";
    if (!err && s.callbacks == 0) err = "no callback ran";
    if (!err && s.callbacks >= threads * (sends + 1)) err = "sends did not coalesce";
    if (zev_loop_close(&loop) != 0 && !err) err = "loop close failed";
    return err;
}

/* ---- async: the callback closes and frees the handle while its sender is still inside ---- */

/* Each round the loop thread allocates a handle and hands it to the sender thread, which sends
 * to it exactly once: the handle's callback runs only because of that send, so the send has
 * started by then, and the callback closes it and the close callback frees it. A second
 * thread hammers another handle so that the loop is often woken by someone else: then the
 * callback can run between the sender's compare-and-swap and its wake-up, and only the busy
 * count keeps the sender's last accesses off freed memory (ASan, TSan). */
struct close_race {
    zev_async_t noise;
    zev_loop_t *loop;
    _Atomic(zev_async_t *) slot; /* the next handle to send to once; NULL: none yet */
    atomic_int finished;         /* every round done: the threads leave */
    atomic_int send_failed;
    int rounds;
    int freed;
    int callbacks;
};

static void *race_sender(void *arg) {
    struct close_race *r = arg;
    while (!atomic_load(&r->finished)) {
        zev_async_t *a = atomic_exchange(&r->slot, NULL);
        if (!a) {
            sched_yield();
            continue;
        }
        if (zev_async_send(a) != 0) atomic_store(&r->send_failed, 1);
        /* a may be freed from here on: never touched again */
    }
    return NULL;
}

static void *race_noise(void *arg) {
    struct close_race *r = arg;
    while (!atomic_load(&r->finished)) zev_async_send(&r->noise);
    return NULL;
}

static void on_race_noise(zev_async_t *a) {
    (void)a;
}

static void race_publish(struct close_race *r);

static void race_freed(zev_handle_t *h) {
    struct close_race *r = h->data;
    free(h);
    if (++r->freed < r->rounds) {
        race_publish(r);
        return;
    }
    atomic_store(&r->finished, 1);
    zev_close(&r->noise.handle, NULL);
}

static void on_race_victim(zev_async_t *a) {
    struct close_race *r = a->handle.data;
    r->callbacks++;
    zev_close(&a->handle, race_freed);
}

static void race_publish(struct close_race *r) {
    zev_async_t *a = malloc(sizeof(*a));
    if (!a || zev_async_init(r->loop, a, on_race_victim) != 0) {
        free(a);
        atomic_store(&r->send_failed, 1);
        atomic_store(&r->finished, 1);
        zev_close(&r->noise.handle, NULL);
        return;
    }
    a->handle.data = r;
    atomic_store(&r->slot, a);
}

const char *zt_async_close_and_free_while_sending(int rounds) {
    zev_loop_t loop;
    struct close_race r = {.loop = &loop, .rounds = rounds};
    const char *err = NULL;
    atomic_init(&r.slot, NULL);
    atomic_init(&r.finished, 0);
    atomic_init(&r.send_failed, 0);
    if (zev_loop_init(&loop) != 0) return "loop init failed";
    zev_async_init(&loop, &r.noise, on_race_noise);
    race_publish(&r);
    pthread_t sender;
    pthread_t noise;
    if (pthread_create(&sender, NULL, race_sender, &r) != 0) return "pthread_create failed";
    if (pthread_create(&noise, NULL, race_noise, &r) != 0) return "pthread_create failed";
    if (zev_run(&loop, ZEV_RUN_DEFAULT) != 0) err = "run failed";
    atomic_store(&r.finished, 1);
    pthread_join(sender, NULL);
    pthread_join(noise, NULL);
    if (!err && atomic_load(&r.send_failed)) err = "a send to an open handle failed";
    if (!err && (r.callbacks != rounds || r.freed != rounds)) err = "a round was lost";
    if (zev_loop_close(&loop) != 0 && !err) err = "loop close failed";
    return err;
}

/* ---- workers: n echo loops on one SO_REUSEPORT port ------------------------------------- */

#define ECHO_MAX_WORKERS 4
#define ECHO_MAX_CONNS 64

struct echo_conn {
    zev_tcp_t tcp;
    int used;
};

/* One worker's state, touched only on its thread until zev_workers_stop joined it (or, for
 * what setup writes, until zev_workers_start returned): plain fields, no atomics. That is
 * the hand-off TSan checks here. */
struct echo_worker {
    zev_tcp_server_t server;
    struct echo_conn conns[ECHO_MAX_CONNS];
    pthread_t thread; /* setup's */
    int port;         /* the port its listener bound */
    int handled;      /* connections accepted */
    int wrong_thread; /* a callback ran on a thread other than setup's */
};

struct echo_shared {
    struct echo_worker per[ECHO_MAX_WORKERS];
    int port;                   /* worker 0's port, for the next setups (no lock: in order) */
    int setups;                 /* setups run, one at a time */
    atomic_int stops;           /* on_stops run on all the workers' threads at once */
    int reuse_port_after_first; /* 0: later workers bind without SO_REUSEPORT (must fail) */
};

static struct echo_worker *echo_worker_of(zev_loop_t *loop) {
    return loop->data;
}

static void echo_check_thread(struct echo_worker *ew) {
    if (!pthread_equal(pthread_self(), ew->thread)) ew->wrong_thread = 1;
}

static void echo_conn_closed(zev_handle_t *h) {
    struct echo_conn *c = h->data;
    c->used = 0;
}

static void echo_conn_close(zev_tcp_t *t) {
    if (!zev_is_closing(&t->handle)) zev_close(&t->handle, echo_conn_closed);
}

static void echo_data(zev_tcp_t *t, const zev_slice_t *slice) {
    echo_check_thread(echo_worker_of(t->handle.loop));
    if (zev_tcp_write(t, slice, 1, NULL, NULL) < 0) echo_conn_close(t);
}

static void echo_error(zev_tcp_t *t, int err) {
    (void)err;
    echo_conn_close(t);
}

static const zev_tcp_events_t echo_events = {
    .data = echo_data, .finish = echo_conn_close, .error = echo_error};

static void echo_connection(zev_tcp_server_t *server, int status) {
    struct echo_worker *ew = echo_worker_of(server->handle.loop);
    echo_check_thread(ew);
    if (status < 0) return;
    struct echo_conn *c = NULL;
    for (int i = 0; i < ECHO_MAX_CONNS && !c; i++) {
        if (!ew->conns[i].used) c = &ew->conns[i];
    }
    if (!c) return; /* not accepted: zev closes it, and the client reports it */
    zev_tcp_init(server->handle.loop, &c->tcp);
    c->used = 1;
    c->tcp.handle.data = c;
    if (zev_tcp_accept(server, &c->tcp) < 0) {
        echo_conn_close(&c->tcp);
        return;
    }
    ew->handled++;
    zev_tcp_set_events(&c->tcp, &echo_events);
    zev_tcp_read_start(&c->tcp);
}

static int echo_setup(zev_worker_t *w) {
    struct echo_shared *s = w->data;
    struct echo_worker *ew = &s->per[w->index];
    s->setups++;
    ew->thread = pthread_self();
    w->loop.data = ew;
    zev_tcp_server_init(&w->loop, &ew->server);
    zev_tcp_listen_opts_t opts = {.reuse_port = w->index == 0 || s->reuse_port_after_first};
    int err = zev_tcp_listen(&ew->server, "127.0.0.1", s->port, &opts, echo_connection);
    if (err < 0) {
        zev_close(&ew->server.handle, NULL); /* a failing setup closes what it opened */
        return err;
    }
    zev_addr_info_t bound;
    err = zev_tcp_server_address(&ew->server, &bound);
    if (err < 0) {
        zev_close(&ew->server.handle, NULL);
        return err;
    }
    ew->port = bound.port;
    if (w->index == 0) s->port = bound.port; /* the next setups reuse it */
    return 0;
}

static void echo_stop(zev_worker_t *w) {
    struct echo_shared *s = w->data;
    struct echo_worker *ew = &s->per[w->index];
    echo_check_thread(ew);
    atomic_fetch_add(&s->stops, 1);
    zev_close(&ew->server.handle, NULL);
    for (int i = 0; i < ECHO_MAX_CONNS; i++) {
        if (ew->conns[i].used) echo_conn_close(&ew->conns[i].tcp);
    }
}

/* One connection: send a line, read the same bytes back, close. */
static const char *echo_once(int port, int i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "socket failed";
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    const char *err = NULL;
    char out[32];
    char in[32];
    int n = snprintf(out, sizeof(out), "connection %d", i);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        err = "connect failed";
    } else if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n) {
        err = "send failed";
    }
    int got = 0;
    while (!err && got < n) {
        ssize_t r = recv(fd, in + got, sizeof(in) - (size_t)got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) err = "the echo did not come back";
        if (r > 0) got += (int)r;
    }
    if (!err && (got != n || memcmp(in, out, (size_t)n) != 0)) err = "the echo differs";
    close(fd);
    return err;
}

/* After a successful start: every listener on one port, each setup on its own thread. */
static const char *echo_check_started(const struct echo_shared *s, unsigned n) {
    if (s->setups != (int)n) return "not every setup ran";
    for (unsigned i = 0; i < n; i++) {
        const struct echo_worker *ew = &s->per[i];
        if (ew->port == 0 || ew->port != s->port) return "a worker bound another port";
        if (pthread_equal(ew->thread, pthread_self())) return "a setup ran on the caller";
        for (unsigned j = 0; j < i; j++) {
            if (pthread_equal(ew->thread, s->per[j].thread)) return "two setups shared a thread";
        }
    }
    return NULL;
}

const char *zt_workers_echo(unsigned n, int connections) {
    if (n == 0 || n > ECHO_MAX_WORKERS) return "1..4 workers";
    if (connections < 1 || connections > ECHO_MAX_CONNS) return "1..64 connections";
    struct echo_shared *s = calloc(1, sizeof(*s));
    if (!s) return "out of memory";
    atomic_init(&s->stops, 0);
    s->reuse_port_after_first = 1;
    zev_worker_t workers[ECHO_MAX_WORKERS];
    int err = zev_workers_start(workers, n, echo_setup, echo_stop, s);
    if (err != 0) {
        free(s);
        return "zev_workers_start failed";
    }
    const char *fail = echo_check_started(s, n);
    for (int i = 0; i < connections && !fail; i++) {
        fail = echo_once(s->port, i);
    }

    err = zev_workers_stop(workers, n);
    if (!fail && err != 0) fail = "zev_workers_stop failed";
    int handled = 0;
    for (unsigned i = 0; i < n; i++) {
        handled += s->per[i].handled;
        if (!fail && s->per[i].wrong_thread) fail = "a callback ran on another thread";
    }
    if (!fail && handled != connections) fail = "not every connection was served once";
    if (!fail && atomic_load(&s->stops) != (int)n) fail = "an on_stop did not run";
    if (!fail && zev_workers_stop(workers, n) != -EBADF) fail = "a second stop was not EBADF";
    free(s);
    return fail;
}

const char *zt_workers_setup_fails(void) {
    struct echo_shared *s = calloc(1, sizeof(*s));
    if (!s) return "out of memory";
    atomic_init(&s->stops, 0);
    s->reuse_port_after_first = 0;
    zev_worker_t workers[3];
    const char *fail = NULL;
    int err = zev_workers_start(workers, 3, echo_setup, echo_stop, s);
    if (err == 0) zev_workers_stop(workers, 3);
    if (err != -EADDRINUSE) fail = "the start did not return the setup's EADDRINUSE";
    if (!fail && s->setups != 2) fail = "setups did not stop at the failing one";
    if (!fail && atomic_load(&s->stops) != 1) fail = "the running worker's on_stop ran not once";
    if (!fail && zev_workers_stop(workers, 3) != -EBADF) fail = "a stop after it was not EBADF";
    free(s);
    return fail;
}

/* ---- resolver threads: lookups, cancels, close ---- */

struct storm_lookups {
    zev_resolve_t reqs[64];
    int calls[64];
    int bad;
    int n;
};

static void on_storm_lookup(zev_resolve_t *req, int status, const zev_sockaddr_t *addrs,
                            size_t n) {
    struct storm_lookups *s = req->loop->data;
    int i = (int)(req - s->reqs);
    s->calls[i]++;
    bool cancelled = i % 3 == 0 || i == 1;
    if (cancelled ? status != -ECANCELED && status != 0 : status != 0 || n != 1 || !addrs) {
        s->bad++;
    }
    /* Lookup 1 is cancelled from here, if it has not answered yet. */
    if (i == 2 && s->n > 1) zev_resolve_cancel(&s->reqs[1]);
}

static const char *resolve_round(int lookups) {
    zev_loop_t loop;
    if (zev_loop_init(&loop) != 0) return "zev_loop_init failed";
    struct storm_lookups *s = calloc(1, sizeof(*s));
    if (!s) return "out of memory";
    s->n = lookups;
    loop.data = s;
    const char *err = NULL;
    for (int i = 0; i < lookups && !err; i++) {
        if (zev_resolve(&loop, &s->reqs[i], i % 2 ? "127.0.0.1" : "::1", 80, 0,
                        on_storm_lookup) != 0)
            err = "zev_resolve failed";
        if (!err && i % 3 == 0 && zev_resolve_cancel(&s->reqs[i]) != 0) err = "cancel failed";
    }
    if (zev_run(&loop, ZEV_RUN_DEFAULT) != 0 && !err) err = "zev_run did not end";
    for (int i = 0; i < lookups && !err; i++) {
        if (s->calls[i] != 1) err = "a lookup's callback did not run exactly once";
    }
    if (!err && s->bad) err = "a lookup got a wrong status";
    if (zev_loop_close(&loop) != 0 && !err) err = "zev_loop_close failed";
    free(s);
    return err;
}

const char *zt_resolve_cancel_storm(int rounds, int lookups) {
    if (lookups < 1 || lookups > 64) return "bad arguments";
    for (int r = 0; r < rounds; r++) {
        const char *err = resolve_round(lookups);
        if (err) return err;
    }
    return NULL;
}
