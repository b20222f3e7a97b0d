/* examples/zev-pubsub.c: a line-based fan-out (chat) server. Every line a client sends goes
 * to every other connected client, in the order the server read it.
 *
 * One message, many sockets: each complete line is copied once into a slice carved by
 * zev_buf_alloc, and that one slice is written to every subscriber by reference. Many lines
 * share one pool chunk, which goes back to the pool when the last subscriber's queue lets go
 * of its last line; nothing is allocated per line once the pool is warm (a client's partial
 * line waits in a buffer of its own, grown on demand and kept until it disconnects).
 *
 * Limits, so that no client can make the server grow: a line is at most --max-line bytes with
 * its newline (a longer one gets an error line and the connection is ended); a subscriber
 * whose write queue holds more than --max-queue bytes of memory (zev_tcp_write_queue_memory,
 * which counts what a queue keeps alive) is dropped with a reset; --idle-timeout closes a
 * client that sent nothing for that long, however much it receives (ZEV_TCP_TIMEOUT_READ).
 * docs/embedding.md ("One message, many sockets") says what a slow subscriber can pin.
 *
 * Command line and messages: docs/tcp.md. Shared CLI helpers: examples/common.
 */
#include <zev.h>

#include "cli.h"
#include "list.h"
#include "shutdown.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: zev-pubsub [--host ADDR] [--port N] [--max-queue BYTES] [--idle-timeout MS]\n"
    "                  [--max-line BYTES]\n"
    "\n"
    "Send every line a client sends to every other connected client, in order.\n"
    "\n"
    "  --host ADDR            numeric IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
    "  --port N               port to listen on, 0 for an ephemeral one (default 8431)\n"
    "  --max-queue BYTES      drop (reset) a client whose write queue holds more than BYTES\n"
    "                         of memory (default 1048576)\n"
    "  --idle-timeout MS      close a client that sent nothing for MS milliseconds, even\n"
    "                         while it receives (default 0: never)\n"
    "  --max-line BYTES       longest line, newline included, 1..65536; a client that sends\n"
    "                         a longer one gets an error line and is disconnected\n"
    "                         (default 65536)\n"
    "  --help                 show this help\n"
    "\n"
    "Prints 'listening on HOST:PORT' once ready; SIGINT or SIGTERM closes every connection\n"
    "and exits 0.\n";

/* A carved slice is at most one pool chunk: 64 KiB with the loop's default chunk size. */
#define MAX_LINE_LIMIT (64u * 1024u)

struct server {
    zev_loop_t *loop;
    zev_tcp_server_t tcp;
    ex_link_t clients; /* every connected client, in connection order */
    size_t max_queue;
    unsigned idle_ms;
    size_t max_line;
};

struct client {
    zev_tcp_t tcp;
    ex_link_t link;
    struct server *srv;
    int ending;      /* its side is being ended: no more lines to it */
    char *partial;   /* the start of a line whose newline has not come yet */
    size_t partial_len;
    size_t partial_cap;
};

static void client_closed(zev_handle_t *h) {
    struct client *c = ex_container_of(h, struct client, tcp.handle);
    ex_list_remove(&c->link);
    free(c->partial);
    free(c);
}

static void client_close(struct client *c) {
    if (!zev_is_closing(&c->tcp.handle)) zev_close(&c->tcp.handle, client_closed);
}

/* Drop a subscriber that fell too far behind: a reset frees its queued lines (and the
 * kernel's copy) at once, where an orderly close would wait for a peer that does not read. */
static void client_drop(struct client *c) {
    if (zev_is_closing(&c->tcp.handle)) return;
    if (zev_tcp_close_reset(&c->tcp, client_closed) < 0) client_close(c);
}

/* The client broke a rule: tell it why, stop reading and end our side once its queue is out
 * (finish then closes it). It receives no more lines meanwhile. */
static void client_refuse(struct client *c, const char *why) {
    c->ending = 1;
    zev_tcp_read_stop(&c->tcp);
    zev_slice_t s = zev_slice(why, strlen(why)); /* static text: outlives the write */
    if (zev_tcp_write(&c->tcp, &s, 1, NULL, NULL) < 0 || zev_tcp_end(&c->tcp) < 0)
        client_close(c);
}

static void deliver(struct client *c, const zev_slice_t *line) {
    if (c->ending || zev_is_closing(&c->tcp.handle)) return;
    int r = zev_tcp_write(&c->tcp, line, 1, NULL, NULL);
    if (r < 0) {
        client_close(c);
    } else if (zev_tcp_write_queue_memory(&c->tcp) > c->srv->max_queue) {
        client_drop(c);
    }
}

/* Format the line (what waited in from's partial buffer, then rest) once into one carved
 * slice and write that slice to every other client. */
static void publish(struct client *from, const char *rest, size_t rest_len) {
    struct server *srv = from->srv;
    zev_slice_t line;
    int err = zev_buf_alloc(srv->loop, from->partial_len + rest_len, &line);
    if (err < 0) {
        ex_warn(err, "buffer for a line");
        client_close(from);
        return;
    }
    if (from->partial_len) memcpy(line.base, from->partial, from->partial_len);
    memcpy(line.base + from->partial_len, rest, rest_len);
    from->partial_len = 0;
    for (ex_link_t *n = srv->clients.next; n != &srv->clients; n = n->next) {
        struct client *to = ex_container_of(n, struct client, link);
        if (to != from) deliver(to, &line);
    }
    zev_buf_unref(line.owner); /* the queues that still need it hold their own references */
}

/* Keep the start of a line until its newline comes; 0, or -ENOMEM. */
static int keep_partial(struct client *c, const char *p, size_t n) {
    if (c->partial_len + n > c->partial_cap) {
        size_t cap = c->partial_cap ? c->partial_cap : 256;
        while (cap < c->partial_len + n) cap *= 2;
        char *grown = realloc(c->partial, cap);
        if (!grown) return -ENOMEM;
        c->partial = grown;
        c->partial_cap = cap;
    }
    memcpy(c->partial + c->partial_len, p, n);
    c->partial_len += n;
    return 0;
}

static const char too_long[] = "zev-pubsub: line too long\n";

static void on_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct client *c = ex_container_of(t, struct client, tcp);
    size_t max = c->srv->max_line;
    const char *p = slice->base;
    size_t n = slice->len;
    while (n > 0 && !c->ending && !zev_is_closing(&t->handle)) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        /* Without its newline, a line that already fills the limit can only grow past it. */
        if (c->partial_len + take > max || (!nl && c->partial_len + take == max)) {
            client_refuse(c, too_long);
            return;
        }
        if (!nl) {
            if (keep_partial(c, p, take) < 0) {
                ex_warn(-ENOMEM, "buffer for a partial line");
                client_close(c);
            }
            return;
        }
        publish(c, p, take);
        p += take;
        n -= take;
    }
}

/* The client ended its side: zev ends ours once its queue is out; no more lines to it. A
 * partial line without its newline is dropped. */
static void on_end(zev_tcp_t *t) {
    ex_container_of(t, struct client, tcp)->ending = 1;
}

static void on_finish(zev_tcp_t *t) {
    client_close(ex_container_of(t, struct client, tcp));
}

static void on_error(zev_tcp_t *t, int err) {
    (void)err; /* a client that resets is routine */
    client_close(ex_container_of(t, struct client, tcp));
}

static void on_timeout(zev_tcp_t *t) {
    client_close(ex_container_of(t, struct client, tcp));
}

static const zev_tcp_events_t client_events = {
    .data = on_data,
    .end = on_end,
    .finish = on_finish,
    .error = on_error,
    .timeout = on_timeout,
};

static void on_connection(zev_tcp_server_t *s, int status) {
    struct server *srv = ex_container_of(s, struct server, tcp);
    if (status < 0) {
        ex_warn(status, "accept");
        return;
    }
    struct client *c = calloc(1, sizeof(*c));
    if (!c) {
        ex_warn(-ENOMEM, "accept"); /* not accepted: zev closes it */
        return;
    }
    c->srv = srv;
    ex_list_init(&c->link);
    zev_tcp_init(srv->loop, &c->tcp);
    int err = zev_tcp_accept(s, &c->tcp);
    if (err == 0 && srv->idle_ms)
        err = zev_tcp_set_timeout_ex(&c->tcp, srv->idle_ms, ZEV_TCP_TIMEOUT_READ);
    if (err < 0) {
        ex_warn(err, "accept");
        client_close(c); /* an initialised handle is open until closed, even unused */
        return;
    }
    ex_list_push(&srv->clients, &c->link);
    zev_tcp_set_nodelay(&c->tcp, 1); /* a line goes out now, not after the previous one's ACK */
    zev_tcp_set_events(&c->tcp, &client_events);
    zev_tcp_read_start(&c->tcp);
}

/* SIGINT/SIGTERM: stop accepting and close every client; the loop then ends. */
static void close_everything(void *arg) {
    struct server *srv = arg;
    zev_close(&srv->tcp.handle, NULL);
    for (ex_link_t *n = srv->clients.next; n != &srv->clients; n = n->next)
        client_close(ex_container_of(n, struct client, link));
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 8431;
    struct server srv = {.max_queue = 1u << 20, .max_line = MAX_LINE_LIMIT};

    ex_args_t a;
    ex_args_init(&a, argc, argv, usage);
    while (ex_args_next(&a)) {
        if (ex_args_is(&a, "--host")) {
            host = ex_args_host(&a);
        } else if (ex_args_is(&a, "--port")) {
            port = ex_args_port(&a, 0);
        } else if (ex_args_is(&a, "--max-queue")) {
            srv.max_queue = ex_args_uint(&a, 1, 1u << 30);
        } else if (ex_args_is(&a, "--idle-timeout")) {
            srv.idle_ms = ex_args_uint(&a, 0, 24u * 3600u * 1000u);
        } else if (ex_args_is(&a, "--max-line")) {
            srv.max_line = ex_args_uint(&a, 1, MAX_LINE_LIMIT);
        } else {
            ex_args_unknown(&a);
        }
    }

    zev_loop_t loop;
    int err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    srv.loop = &loop;
    ex_list_init(&srv.clients);
    err = ex_shutdown_init(&loop, close_everything, &srv);
    if (err < 0) ex_fatal(err, "install signal handlers");

    zev_tcp_server_init(&loop, &srv.tcp);
    err = zev_tcp_listen(&srv.tcp, host, port, NULL, on_connection);
    zev_addr_info_t bound;
    if (err == 0) err = zev_tcp_server_address(&srv.tcp, &bound);
    if (err < 0) {
        char where[EX_HOST_PORT_MAX];
        ex_fatal(err, "listen %s", ex_format_host_port(where, sizeof(where), host, port));
    }
    ex_print_listening(&bound);

    ex_run(&loop);
    return EX_EXIT_OK;
}
