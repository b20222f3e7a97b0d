/* examples/zev-http-hello.c: a minimal HTTP/1.1 keep-alive server that answers every request
 * with "Hello, World!" (the classic wrk target), safe to expose to hostile peers.
 *
 * The response is a static const array written by reference, so a request costs no
 * allocation and no copy. Requests are not buffered: the streaming parser in
 * examples/common/http_request.c reads each byte once, wherever the reads split the request,
 * and skips Content-Length bodies. Requests completed by one read are answered with one
 * gathered write of up to MAX_BATCH response slices.
 *
 * What a hostile peer meets (defaults as Node's http server; docs/tcp.md):
 * - a head over --max-header-size gets 431, anything that is not a request 400 (505 for
 *   HTTP/2+), then our side is ended after the answer; what the peer still sends is read and
 *   dropped until its EOF or LINGER_MS (nginx's lingering close), so closing with unread bytes
 *   does not reset the connection before the peer has read the answer;
 * - a head not complete --headers-timeout after it started (or after the connection opened)
 *   gets 408 and a close; an idle keep-alive connection is closed after --keep-alive-timeout;
 *   a peer that stops reading its answers is closed after --headers-timeout too;
 * - while the write queue is above its high-water mark (zev_tcp_write returned 1) no further
 *   pipelined request is answered: reading stops and the unparsed rest of the read is kept
 *   (one buffer reference) until the drain event. Memory per connection stays at the mark,
 *   one read, and one batch of answers.
 * Timeouts are checked by one sweep timer per server (as Node does), so a connection costs
 * no timer operation per request; a close may come up to one sweep period late.
 */
#include <zev.h>

#include "cli.h"
#include "http_request.h"
#include "list.h"
#include "names.h"
#include "shutdown.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static const char usage[] =
    "usage: zev-http-hello [--host HOST] [--port N] [--max-header-size BYTES]\n"
    "                      [--headers-timeout MS] [--keep-alive-timeout MS]\n"
    "\n"
    "Answer every HTTP request with 'Hello, World!' (HTTP/1.1 keep-alive, pipelining).\n"
    "\n"
    "  --host HOST                address to listen on: IPv4, IPv6, or a host name resolved\n"
    "                             once at start to its first address (default 127.0.0.1)\n"
    "  --port N                   port to listen on, 0 for an ephemeral one (default 8431)\n"
    "  --max-header-size BYTES    request line and headers larger than this get 431\n"
    "                             (default 16384, as Node)\n"
    "  --headers-timeout MS       a request head not complete in MS gets 408 and a close; a peer\n"
    "                             not reading its answers for MS is closed (default 60000, as\n"
    "                             Node; 0: no limit)\n"
    "  --keep-alive-timeout MS    close a connection idle between requests for MS (default\n"
    "                             5000, as Node; 0: no limit)\n"
    "  --help                     show this help\n"
    "\n"
    "Prints 'listening on HOST:PORT' once ready; SIGINT or SIGTERM closes every connection\n"
    "and exits 0.\n";

/* ---- responses: static, written by reference -------------------------------------------- */

#define HELLO_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
static const char resp_keep_alive[] = HELLO_HEAD "\r\nHello, World!";
static const char resp_keep_alive_10[] = HELLO_HEAD "Connection: keep-alive\r\n\r\nHello, World!";
static const char resp_close[] = HELLO_HEAD "Connection: close\r\n\r\nHello, World!";
#define ERROR_RESPONSE(status)                                                                     \
    "HTTP/1.1 " status "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
static const char resp_400[] = ERROR_RESPONSE("400 Bad Request");
static const char resp_408[] = ERROR_RESPONSE("408 Request Timeout");
static const char resp_431[] = ERROR_RESPONSE("431 Request Header Fields Too Large");
static const char resp_505[] = ERROR_RESPONSE("505 HTTP Version Not Supported");

#define STATIC_SLICE(s) zev_slice((s), sizeof(s) - 1)

/* ---- server and connections ------------------------------------------------------------- */

struct config {
    size_t max_head;
    uint64_t headers_timeout_ms;    /* 0: none */
    uint64_t keep_alive_timeout_ms; /* 0: none */
};

struct server {
    zev_tcp_server_t tcp;
    zev_timer_t sweep; /* enforces every connection's deadline */
    ex_link_t conns;
    struct config cfg;
};

/* What a connection's deadline is waiting for. */
enum wait { W_NONE, W_HEAD, W_BODY, W_IDLE, W_STALL, W_LINGER };

/* After the last answer is out, how long to wait for the peer's EOF (nginx's
 * lingering_timeout). */
#define LINGER_MS 5000

struct conn {
    zev_tcp_t tcp;
    ex_link_t link;
    struct server *srv;
    ex_http_parser_t parse;
    zev_slice_t held;     /* the unparsed rest of a read while paused; owner is referenced */
    uint64_t deadline_ms; /* loop time at which `wait` gives up; 0: never */
    uint8_t wait;         /* enum wait */
    bool paused;          /* answering stopped: the write queue is above the mark */
    bool ending;          /* the last answer is queued: later bytes are dropped */
    bool finished;        /* our side is shut down */
    bool peer_ended;      /* the peer's EOF came */
};

#define MAX_BATCH 64

static void conn_closed(zev_handle_t *h) {
    struct conn *c = ex_container_of(h, struct conn, tcp.handle);
    zev_buf_unref(c->held.owner); /* NULL is fine */
    ex_list_remove(&c->link);
    free(c);
}

static void conn_close(struct conn *c) {
    if (!zev_is_closing(&c->tcp.handle)) zev_close(&c->tcp.handle, conn_closed);
}

/* Start waiting for w, with the timeout that belongs to it. */
static void set_wait(struct conn *c, enum wait w) {
    const struct config *cfg = &c->srv->cfg;
    uint64_t ms = w == W_IDLE     ? cfg->keep_alive_timeout_ms
                  : w == W_LINGER ? LINGER_MS
                                  : cfg->headers_timeout_ms;
    c->wait = (uint8_t)w;
    c->deadline_ms = w == W_NONE || ms == 0 ? 0 : zev_now(c->tcp.handle.loop) + ms;
}

/* After a read was parsed: the head timer runs from a request's first byte and is not
 * renewed by later bytes (a slowloris peer trickles them); a body renews it at every read. */
static void update_wait(struct conn *c) {
    if (c->paused || c->ending) {
        set_wait(c, W_STALL);
    } else if (ex_http_parser_idle(&c->parse)) {
        set_wait(c, W_IDLE);
    } else if (ex_http_parser_in_body(&c->parse)) {
        set_wait(c, W_BODY);
    } else if (c->wait != W_HEAD) {
        set_wait(c, W_HEAD);
    }
}

/* The answer to the request just parsed. */
static zev_slice_t answer(struct conn *c) {
    const ex_http_request_t *r = &c->parse.req;
    if (!r->keep_alive) {
        c->ending = true;
        return STATIC_SLICE(resp_close);
    }
    if (r->version_minor == 0) return STATIC_SLICE(resp_keep_alive_10);
    return STATIC_SLICE(resp_keep_alive);
}

static zev_slice_t error_answer(struct conn *c, int err) {
    c->ending = true;
    switch (ex_http_error_status(err)) {
    case 431:
        return STATIC_SLICE(resp_431);
    case 505:
        return STATIC_SLICE(resp_505);
    default:
        return STATIC_SLICE(resp_400);
    }
}

/* Write a batch of answers: 0, 1 above the mark, or -1 if the connection was closed. */
static int send_answers(struct conn *c, const zev_slice_t *out, unsigned n) {
    if (n == 0) return 0;
    int r = zev_tcp_write(&c->tcp, out, n, NULL, NULL);
    if (r < 0) {
        conn_close(c);
        return -1;
    }
    return r;
}

/* Stop answering until drain; keep rest (a part of owner's bytes) for then. */
static void pause_answering(struct conn *c, const char *rest, size_t len, zev_buf_t *owner) {
    c->paused = true;
    zev_tcp_read_stop(&c->tcp);
    if (len > 0) c->held = (zev_slice_t){(char *)rest, len, zev_buf_ref(owner)};
}

/* The last answer is queued: shut our side down once it is out (on_finish takes over). Reading
 * goes on (resumed if paused) so the peer's EOF is seen; its bytes are dropped. */
static void end_connection(struct conn *c) {
    if (zev_tcp_end(&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    zev_tcp_read_start(&c->tcp);
}

/* Parse and answer data[0..len), which owner keeps alive (NULL: only during this call, and
 * then answering cannot pause in the middle; zev's pool reads always have an owner). */
static void serve(struct conn *c, const char *data, size_t len, zev_buf_t *owner) {
    zev_slice_t out[MAX_BATCH];
    unsigned n_out = 0;
    size_t off = 0;
    while (off < len && !c->ending) {
        size_t used;
        int r = ex_http_parse(&c->parse, data + off, len - off, &used);
        off += used;
        if (r == EX_HTTP_NEED_MORE) break;
        out[n_out++] = r == EX_HTTP_DONE ? answer(c) : error_answer(c, r);
        if (n_out < MAX_BATCH && !c->ending) continue;
        r = send_answers(c, out, n_out);
        n_out = 0;
        if (r < 0) return;
        if (r == 1 && !c->ending && owner) {
            pause_answering(c, data + off, len - off, owner);
            break;
        }
    }
    int r = send_answers(c, out, n_out);
    if (r < 0) return;
    if (c->ending) {
        end_connection(c);
    } else if (r == 1 && !c->paused) {
        pause_answering(c, NULL, 0, NULL);
    }
    update_wait(c);
}

static void on_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct conn *c = ex_container_of(t, struct conn, tcp);
    if (c->ending) return; /* lingering: dropped, and the deadline is not renewed */
    serve(c, slice->base, slice->len, slice->owner);
}

/* The queue fell under the mark: answer what was kept, then read again. */
static void on_drain(zev_tcp_t *t) {
    struct conn *c = ex_container_of(t, struct conn, tcp);
    if (!c->paused || c->ending) return;
    c->paused = false;
    zev_slice_t rest = c->held;
    c->held = (zev_slice_t){0};
    if (rest.len > 0) {
        serve(c, rest.base, rest.len, rest.owner); /* may pause again, with its own ref */
        zev_buf_unref(rest.owner);
    }
    if (zev_is_closing(&t->handle) || c->paused || c->ending) return;
    zev_tcp_read_start(t);
    update_wait(c);
}

/* Our side is shut down: close once the peer has ended too, else linger for its EOF. */
static void on_finish(zev_tcp_t *t) {
    struct conn *c = ex_container_of(t, struct conn, tcp);
    c->finished = true;
    if (c->peer_ended) {
        conn_close(c);
    } else {
        set_wait(c, W_LINGER);
    }
}

/* The peer's EOF: zev ends our side after the queued answers (allow_half_open is off), and
 * finish then closes; a lingering connection closes now. */
static void on_end(zev_tcp_t *t) {
    struct conn *c = ex_container_of(t, struct conn, tcp);
    c->peer_ended = true;
    if (c->finished) conn_close(c);
}

static void on_error(zev_tcp_t *t, int err) {
    (void)err;
    conn_close(ex_container_of(t, struct conn, tcp));
}

static const zev_tcp_events_t conn_events = {
    .data = on_data,
    .end = on_end,
    .drain = on_drain,
    .finish = on_finish,
    .error = on_error,
};

/* A deadline passed. A head that is late gets 408 if the kernel takes it at once (nothing
 * queued); every other wait just closes, as Node and nginx do. */
static void expire(struct conn *c) {
    if (c->wait == W_HEAD && zev_tcp_write_queue_size(&c->tcp) == 0) {
        zev_slice_t s = STATIC_SLICE(resp_408);
        zev_tcp_write(&c->tcp, &s, 1, NULL, NULL);
    }
    conn_close(c);
}

/* O(connections) per period; the period is a quarter of the shortest timeout, at most 1 s. */
static void on_sweep(zev_timer_t *timer) {
    struct server *srv = ex_container_of(timer, struct server, sweep);
    uint64_t now = zev_now(timer->handle.loop);
    for (ex_link_t *n = srv->conns.next; n != &srv->conns; n = n->next) {
        struct conn *c = ex_container_of(n, struct conn, link);
        if (c->deadline_ms != 0 && now >= c->deadline_ms && !zev_is_closing(&c->tcp.handle)) {
            expire(c);
        }
    }
}

static int64_t sweep_period_ms(const struct config *cfg) {
    uint64_t shortest = cfg->headers_timeout_ms;
    uint64_t ka = cfg->keep_alive_timeout_ms;
    if (shortest == 0 || (ka != 0 && ka < shortest)) shortest = ka;
    if (shortest == 0) return 0;
    uint64_t period = shortest / 4;
    if (period < 1) period = 1;
    if (period > 1000) period = 1000;
    return (int64_t)period;
}

static void on_connection(zev_tcp_server_t *s, int status) {
    struct server *srv = ex_container_of(s, struct server, tcp);
    if (status < 0) {
        ex_warn(status, "accept");
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        ex_warn(-ENOMEM, "accept");
        return;
    }
    ex_list_init(&c->link);
    c->srv = srv;
    ex_http_parser_init(&c->parse, srv->cfg.max_head);
    zev_tcp_init(s->handle.loop, &c->tcp);
    int err = zev_tcp_accept(s, &c->tcp);
    if (err < 0) {
        ex_warn(err, "accept");
        conn_close(c);
        return;
    }
    ex_list_push(&srv->conns, &c->link);
    zev_tcp_set_events(&c->tcp, &conn_events);
    zev_tcp_set_nodelay(&c->tcp, 1); /* small answers: never wait for Nagle */
    zev_tcp_read_start(&c->tcp);
    set_wait(c, W_HEAD); /* a silent new connection is a head that never comes */
}

static void close_everything(void *arg) {
    struct server *srv = arg;
    zev_close(&srv->tcp.handle, NULL);
    zev_close(&srv->sweep.handle, NULL);
    for (ex_link_t *n = srv->conns.next; n != &srv->conns; n = n->next) {
        conn_close(ex_container_of(n, struct conn, link));
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 8431;
    struct config cfg = {
        .max_head = 16384, .headers_timeout_ms = 60000, .keep_alive_timeout_ms = 5000};
    ex_args_t a;
    ex_args_init(&a, argc, argv, usage);
    while (ex_args_next(&a)) {
        if (ex_args_is(&a, "--host")) {
            host = ex_args_host(&a);
        } else if (ex_args_is(&a, "--port")) {
            port = ex_args_port(&a, 0);
        } else if (ex_args_is(&a, "--max-header-size")) {
            cfg.max_head = ex_args_uint(&a, 1, 1u << 30);
        } else if (ex_args_is(&a, "--headers-timeout")) {
            cfg.headers_timeout_ms = ex_args_uint(&a, 0, 1u << 31);
        } else if (ex_args_is(&a, "--keep-alive-timeout")) {
            cfg.keep_alive_timeout_ms = ex_args_uint(&a, 0, 1u << 31);
        } else {
            ex_args_unknown(&a);
        }
    }

    char addr[ZEV_ADDR_TEXT_MAX];
    int err = ex_resolve_text(host, 0, addr);
    if (err < 0) ex_fatal_at(err, "listen", host, port);

    zev_loop_t loop;
    err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    struct server srv = {.cfg = cfg};
    ex_list_init(&srv.conns);
    zev_tcp_server_init(&loop, &srv.tcp);
    zev_timer_init(&loop, &srv.sweep);
    int64_t period = sweep_period_ms(&cfg);
    if (period > 0) {
        zev_timer_start(&srv.sweep, on_sweep, period, period);
        zev_unref(&srv.sweep.handle); /* the listener keeps the loop alive, not the sweep */
    }
    err = ex_shutdown_init(&loop, close_everything, &srv);
    if (err < 0) ex_fatal(err, "install signal handlers");

    err = zev_tcp_listen(&srv.tcp, addr, port, NULL, on_connection);
    if (err < 0) ex_fatal_at(err, "listen", host, port);
    zev_addr_info_t bound;
    err = zev_tcp_server_address(&srv.tcp, &bound);
    if (err < 0) ex_fatal(err, "server address");
    ex_print_listening(&bound);

    ex_run(&loop);
    return EX_EXIT_OK;
}
