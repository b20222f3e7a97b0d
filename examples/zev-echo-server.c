/* examples/zev-echo-server.c: a TCP echo server, and the server the benchmarks measure.
 *
 * Every received slice is written straight back by reference: the bytes stay in the loop's
 * pool chunk that the kernel read them into, and the write queue holds a reference only for
 * what the kernel does not take at once. So the only allocation is one struct per connection
 * (malloc'd on accept, freed in the close callback) and nothing is copied. When a peer sends
 * faster than it reads, the write reports the high-water mark and reading pauses until the
 * drain event (Node's backpressure). On the peer's EOF zev ends our side once everything is
 * flushed, and the finish event closes the connection.
 *
 * Threads: one loop on the main thread by default, which also takes SIGINT/SIGTERM through
 * signal handles (examples/common/shutdown.h): the whole server is one thread. With
 * --threads N > 1 it runs on zev_workers (include/zev/workers.h), one loop per thread, each
 * with its own listener sharing the port through SO_REUSEPORT; the main thread's loop then
 * only holds the signal handles, whose callback stops the workers (zev's signal handler wakes
 * the main loop from whichever thread the kernel delivers the signal to). The same per-loop
 * code runs either way: serve opens a loop's listener, close_server closes it and its
 * connections.
 *
 * Command line and messages: docs/tcp.md. Shared CLI helpers: examples/common.
 */
#include <zev.h>

#include "cli.h"
#include "list.h"
#include "names.h"
#include "shutdown.h"

#include <errno.h>
#include <stdlib.h>

static const char usage[] =
    "usage: zev-echo-server [--host HOST] [--port N] [--max-connections N] [--backlog N]\n"
    "                       [--threads N]\n"
    "\n"
    "Echo every byte received back to its sender.\n"
    "\n"
    "  --host HOST            address to listen on: IPv4, IPv6, or a host name resolved\n"
    "                         once at start to its first address (default 127.0.0.1)\n"
    "  --port N               port to listen on, 0 for an ephemeral one (default 8431)\n"
    "  --max-connections N    close connections beyond N at once (default 0: no limit)\n"
    "  --backlog N            listen backlog (default 511)\n"
    "  --threads N            event loops, one per thread, each with its own listener on the\n"
    "                         port (SO_REUSEPORT); 1..64 (default 1: the main thread only).\n"
    "                         --max-connections then counts per thread\n"
    "  --help                 show this help\n"
    "\n"
    "Prints 'listening on HOST:PORT' once ready, then 'backend: NAME (HOW)': the kernel\n"
    "interface the loops run (ZEV_BACKEND=io_uring|epoll picks it); SIGINT or SIGTERM closes\n"
    "every connection and exits 0.\n";

/* One per loop (per worker thread). */
struct server {
    zev_tcp_server_t tcp;
    ex_link_t conns; /* live connections, for shutdown */
};

/* The whole program's: written by main before the workers start and by each worker's setup,
 * which run one after another (see zev_workers_start), so no lock is needed. */
struct app {
    const char *host;             /* as given: a name or an address, for messages */
    char addr[ZEV_ADDR_TEXT_MAX]; /* host resolved once at start: what every loop listens on */
    int port; /* once worker 0 listens: the port it bound, which the others reuse */
    unsigned max_connections;
    zev_tcp_listen_opts_t opts;
    struct server *servers; /* [threads] */
    zev_worker_t *workers;  /* [threads] */
    unsigned threads;
    int listen_failed;     /* the failing setup's zev_tcp_listen failed: name the address */
    zev_addr_info_t bound; /* worker 0's address, for "listening on" */
    const char *backend;   /* worker 0's loop's, for "backend:" (zev_loop_backend) */
    const char *backend_why;
};

struct conn {
    zev_tcp_t tcp;
    ex_link_t link;
};

static void conn_closed(zev_handle_t *h) {
    struct conn *c = ex_container_of(h, struct conn, tcp.handle);
    ex_list_remove(&c->link);
    free(c);
}

static void conn_close(zev_tcp_t *t) {
    if (!zev_is_closing(&t->handle)) zev_close(&t->handle, conn_closed);
}

static void on_data(zev_tcp_t *t, const zev_slice_t *slice) {
    int r = zev_tcp_write(t, slice, 1, NULL, NULL);
    if (r == 1) {
        zev_tcp_read_stop(t); /* over the high-water mark: resumed by on_drain */
    } else if (r < 0) {
        conn_close(t);
    }
}

static void on_drain(zev_tcp_t *t) {
    zev_tcp_read_start(t);
}

/* Our side is shut down after the peer's EOF and every echoed byte is out: done. */
static void on_finish(zev_tcp_t *t) {
    conn_close(t);
}

static void on_error(zev_tcp_t *t, int err) {
    (void)err; /* a peer that resets is routine for an echo server */
    conn_close(t);
}

static const zev_tcp_events_t conn_events = {
    .data = on_data,
    .drain = on_drain,
    .finish = on_finish,
    .error = on_error,
};

static void on_connection(zev_tcp_server_t *s, int status) {
    struct server *srv = ex_container_of(s, struct server, tcp);
    if (status < 0) {
        ex_warn(status, "accept"); /* EMFILE: zev sheds one connection and pauses accepting */
        return;
    }
    struct conn *c = malloc(sizeof(*c));
    if (!c) {
        ex_warn(-ENOMEM, "accept"); /* not accepted: zev closes it */
        return;
    }
    ex_list_init(&c->link);
    zev_tcp_init(s->handle.loop, &c->tcp);
    int err = zev_tcp_accept(s, &c->tcp);
    if (err < 0) {
        ex_warn(err, "accept");
        conn_close(&c->tcp); /* an initialised handle is open until closed, even unused */
        return;
    }
    ex_list_push(&srv->conns, &c->link);
    zev_tcp_set_events(&c->tcp, &conn_events);
    zev_tcp_read_start(&c->tcp);
}

/* Listen on loop as server index (0 first: with port 0 it picks the port the others reuse).
 * 0 or a negative errno; on failure the listener is closed and app->listen_failed says whether
 * zev_tcp_listen was the step that failed. */
static int serve(struct app *app, unsigned index, zev_loop_t *loop) {
    struct server *srv = &app->servers[index];
    ex_list_init(&srv->conns);
    zev_tcp_server_init(loop, &srv->tcp);
    zev_tcp_server_set_max_connections(&srv->tcp, app->max_connections, NULL);
    int err = zev_tcp_listen(&srv->tcp, app->addr, app->port, &app->opts, on_connection);
    app->listen_failed = err < 0;
    zev_addr_info_t bound;
    if (err == 0) err = zev_tcp_server_address(&srv->tcp, &bound);
    if (err < 0) {
        zev_close(&srv->tcp.handle, NULL); /* the loop's owner finishes the close */
        return err;
    }
    if (index == 0) {
        /* Asked here, on the loop's own thread: zev_loop_backend is a loop call. */
        app->backend = zev_loop_backend(loop, &app->backend_why);
        app->bound = bound;
        app->port = bound.port; /* port 0 asked for an ephemeral one: the others take it too */
    }
    return 0;
}

/* Stop accepting and close every connection; the loop then ends. */
static void close_server(struct server *srv) {
    zev_close(&srv->tcp.handle, NULL);
    for (ex_link_t *n = srv->conns.next; n != &srv->conns; n = n->next) {
        conn_close(&ex_container_of(n, struct conn, link)->tcp);
    }
}

/* ---- one loop, on the main thread ---------------------------------------------------------- */

static void close_everything(void *arg) {
    struct app *app = arg;
    close_server(&app->servers[0]);
}

/* ---- --threads N > 1: zev_workers --------------------------------------------------------- */

/* A worker's setup, on its thread. */
static int start_worker(zev_worker_t *w) {
    return serve(w->data, w->index, &w->loop);
}

/* On the worker's thread, once zev_workers_stop asks. */
static void stop_worker(zev_worker_t *w) {
    struct app *app = w->data;
    close_server(&app->servers[w->index]);
}

/* SIGINT/SIGTERM, on the main loop: each worker closes everything; wait for all of them. */
static void stop_workers(void *arg) {
    struct app *app = arg;
    int err = zev_workers_stop(app->workers, app->threads);
    if (err < 0) ex_fatal(err, "stop workers");
}

int main(int argc, char **argv) {
    struct app app = {.host = "127.0.0.1", .port = 8431, .threads = 1};

    ex_args_t a;
    ex_args_init(&a, argc, argv, usage);
    while (ex_args_next(&a)) {
        if (ex_args_is(&a, "--host")) {
            app.host = ex_args_host(&a);
        } else if (ex_args_is(&a, "--port")) {
            app.port = ex_args_port(&a, 0);
        } else if (ex_args_is(&a, "--max-connections")) {
            app.max_connections = ex_args_uint(&a, 0, 1u << 30);
        } else if (ex_args_is(&a, "--backlog")) {
            app.opts.backlog = (int)ex_args_uint(&a, 1, 1u << 20);
        } else if (ex_args_is(&a, "--threads")) {
            app.threads = ex_args_uint(&a, 1, 64);
        } else {
            ex_args_unknown(&a);
        }
    }
    /* One listener needs no SO_REUSEPORT, and without it a second server on a taken port
     * still fails with EADDRINUSE. */
    app.opts.reuse_port = app.threads > 1;
    app.servers = calloc(app.threads, sizeof(*app.servers));
    app.workers = calloc(app.threads, sizeof(*app.workers));
    if (!app.servers || !app.workers) ex_fatal(-ENOMEM, "allocate %u loops", app.threads);

    int err = ex_resolve_text(app.host, 0, app.addr);
    if (err < 0) ex_fatal_at(err, "listen", app.host, app.port);

    zev_loop_t loop;
    err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    if (app.threads == 1) {
        err = serve(&app, 0, &loop);
        if (err < 0 && app.listen_failed) ex_fatal_at(err, "listen", app.host, app.port);
        if (err < 0) ex_fatal(err, "server address");
        err = ex_shutdown_init(&loop, close_everything, &app);
        if (err < 0) ex_fatal(err, "install signal handlers");
    } else {
        /* The main thread's loop only waits for the signals; the workers do the serving. */
        err = ex_shutdown_init(&loop, stop_workers, &app);
        if (err < 0) ex_fatal(err, "install signal handlers");
        ex_shutdown_keep_alive();
        err = zev_workers_start(app.workers, app.threads, start_worker, stop_worker, &app);
        if (err < 0 && app.listen_failed) ex_fatal_at(err, "listen", app.host, app.port);
        if (err < 0) ex_fatal(err, "start workers");
    }
    ex_print_listening(&app.bound);
    /* Every loop reads ZEV_BACKEND the same way: the first serving one speaks for all. */
    ex_print_backend(app.backend, app.backend_why);

    ex_run(&loop);
    free(app.servers);
    free(app.workers);
    return EX_EXIT_OK;
}
