/* examples/zev-http-hello.c: a minimal HTTP/1.1 keep-alive server that answers every request
 * with "Hello, World!" (the classic wrk target).
 *
 * The response is a static const array written by reference, so a request costs no
 * allocation and no copy. Requests are not buffered either: a small per-connection state
 * machine (struct http_parse) reads each byte once, wherever the reads happen to split the
 * request, and notes only what decides the answer: the end of the headers, Connection
 * close/keep-alive, HTTP/1.0, and a Content-Length body to skip. Every request completed by
 * one read is answered with one gathered write of that many response slices.
 *
 * Not supported (answered, then the connection is closed): chunked request bodies. Malformed
 * headers get a 400 and a close. Command line: docs/tcp.md.
 */
#include <zev.h>

#include "cli.h"
#include "list.h"
#include "shutdown.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static const char usage[] =
    "usage: zev-http-hello [--host ADDR] [--port N]\n"
    "\n"
    "Answer every HTTP request with 'Hello, World!' (HTTP/1.1 keep-alive, pipelining).\n"
    "\n"
    "  --host ADDR   numeric IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
    "  --port N      port to listen on, 0 for an ephemeral one (default 8431)\n"
    "  --help        show this help\n"
    "\n"
    "Prints 'listening on HOST:PORT' once ready; SIGINT or SIGTERM closes every connection\n"
    "and exits 0.\n";

/* ---- responses: static, written by reference -------------------------------------------- */

#define HELLO_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
static const char resp_keep_alive[] = HELLO_HEAD "\r\nHello, World!";
static const char resp_keep_alive_10[] = HELLO_HEAD "Connection: keep-alive\r\n\r\nHello, World!";
static const char resp_close[] = HELLO_HEAD "Connection: close\r\n\r\nHello, World!";
static const char resp_bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";

/* ---- the request parser ---------------------------------------------------------------- */

/* Literals matched case-insensitively, one bit each, as bytes stream past. */
static const char *const header_names[] = {"connection", "content-length", "transfer-encoding"};
enum { H_CONNECTION = 1, H_CONTENT_LENGTH = 2, H_TRANSFER_ENCODING = 4, H_ALL = 7 };
static const char *const value_tokens[] = {"close", "keep-alive", "http/1.0"};
enum { T_CLOSE = 1, T_KEEP_ALIVE = 2, T_HTTP10 = 4, T_ALL = 7 };

enum phase { P_REQUEST_LINE, P_NAME, P_VALUE, P_BODY };

/* Per-request facts. */
enum { R_HTTP10 = 1, R_CLOSE = 2, R_KEEP_ALIVE = 4, R_UNSUPPORTED = 8, R_BAD = 16, R_LENGTH = 32 };

struct http_parse {
    uint64_t content_length; /* of the request being read */
    uint64_t body_left;      /* body bytes still to skip */
    uint8_t phase;
    uint8_t header;    /* H_* bit of the header whose value is being read, or 0 */
    uint8_t mask;      /* literals the current name or token may still be */
    uint8_t len;       /* bytes of the current name or token, saturating at 255 */
    uint8_t line_used; /* the current line has a byte other than CR */
    uint8_t facts;     /* R_* */
};

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Narrow mask to the literals whose byte at p->len is c. */
static void match_byte(struct http_parse *p, const char *const *lits, int n, char c) {
    c = lower(c);
    for (int i = 0; i < n; i++) {
        unsigned bit = 1u << i;
        if ((p->mask & bit) && lits[i][p->len] != c) p->mask &= (uint8_t)~bit;
    }
    if (p->len < 255) p->len++;
}

/* The literal (bit) the finished name or token is, or 0. */
static unsigned matched(const struct http_parse *p, const char *const *lits, int n) {
    for (int i = 0; i < n; i++) {
        unsigned bit = 1u << i;
        if ((p->mask & bit) && lits[i][p->len] == '\0') return bit;
    }
    return 0;
}

static void start_token(struct http_parse *p, uint8_t all) {
    p->mask = all;
    p->len = 0;
}

static void end_value_token(struct http_parse *p) {
    if (p->header == H_CONNECTION && p->len > 0) {
        unsigned t = matched(p, value_tokens, 2);
        if (t == T_CLOSE) p->facts |= R_CLOSE;
        if (t == T_KEEP_ALIVE) p->facts |= R_KEEP_ALIVE;
    }
    start_token(p, T_ALL);
}

static void value_byte(struct http_parse *p, char c) {
    if (p->header == H_CONTENT_LENGTH) {
        if (c == ' ' || c == '\t') return;
        if (c < '0' || c > '9' || p->content_length > (UINT64_MAX - 9) / 10) {
            p->facts |= R_BAD;
            return;
        }
        p->content_length = p->content_length * 10 + (uint64_t)(c - '0');
    } else if (p->header == H_CONNECTION) {
        if (c == ' ' || c == '\t' || c == ',') {
            end_value_token(p);
        } else {
            match_byte(p, value_tokens, 2, c);
        }
    }
}

/* A line ended. Returns true if it was the empty line that ends the request's headers. */
static bool end_line(struct http_parse *p) {
    bool used = p->line_used;
    p->line_used = 0;
    switch (p->phase) {
    case P_REQUEST_LINE:
        if (!used) return false; /* blank lines before a request are allowed */
        if (matched(p, value_tokens, 3) == T_HTTP10) p->facts |= R_HTTP10;
        break;
    case P_NAME:
        if (!used) return true;
        p->facts |= R_BAD; /* a header line without ':' */
        break;
    case P_VALUE:
        end_value_token(p);
        break;
    }
    p->phase = P_NAME;
    p->header = 0;
    start_token(p, H_ALL);
    return false;
}

static void header_byte(struct http_parse *p, char c) {
    p->line_used = 1;
    switch (p->phase) {
    case P_REQUEST_LINE: /* only the last word (the version) matters */
        if (c == ' ') {
            start_token(p, T_ALL);
        } else {
            match_byte(p, value_tokens, 3, c);
        }
        break;
    case P_NAME:
        if (c != ':') {
            match_byte(p, header_names, 3, c);
            break;
        }
        p->header = (uint8_t)matched(p, header_names, 3);
        if (p->header == H_TRANSFER_ENCODING) p->facts |= R_UNSUPPORTED;
        if (p->header == H_CONTENT_LENGTH) {
            if (p->facts & R_LENGTH) p->facts |= R_BAD; /* two lengths: which one frames it? */
            p->facts |= R_LENGTH;
        }
        p->phase = P_VALUE;
        start_token(p, T_ALL);
        break;
    case P_VALUE:
        value_byte(p, c);
        break;
    }
}

static void parse_reset(struct http_parse *p) {
    *p = (struct http_parse){.phase = P_REQUEST_LINE, .mask = T_ALL};
}

/* ---- connections ---------------------------------------------------------------------- */

struct server {
    zev_tcp_server_t tcp;
    ex_link_t conns;
};

struct conn {
    zev_tcp_t tcp;
    ex_link_t link;
    struct http_parse parse;
    bool closing_after; /* answered a request that ends the connection: ignore the rest */
};

static void conn_closed(zev_handle_t *h) {
    struct conn *c = ex_container_of(h, struct conn, tcp.handle);
    ex_list_remove(&c->link);
    free(c);
}

static void conn_close(zev_tcp_t *t) {
    if (!zev_is_closing(&t->handle)) zev_close(&t->handle, conn_closed);
}

/* The answer to the request whose headers just ended; sets closing_after when it is the
 * last one on this connection. */
static zev_slice_t answer(struct conn *c) {
    unsigned f = c->parse.facts;
    if (f & R_BAD) {
        c->closing_after = true;
        return zev_slice(resp_bad, sizeof(resp_bad) - 1);
    }
    bool keep = (f & R_HTTP10) ? (f & R_KEEP_ALIVE) != 0 : !(f & R_CLOSE);
    if (!keep || (f & R_UNSUPPORTED)) {
        c->closing_after = true;
        return zev_slice(resp_close, sizeof(resp_close) - 1);
    }
    if (f & R_HTTP10) return zev_slice(resp_keep_alive_10, sizeof(resp_keep_alive_10) - 1);
    return zev_slice(resp_keep_alive, sizeof(resp_keep_alive) - 1);
}

/* Send the batch of answers; false if the connection was closed. */
static bool send_answers(struct conn *c, const zev_slice_t *out, unsigned n) {
    if (n == 0) return true;
    int r = zev_tcp_write(&c->tcp, out, n, NULL, NULL);
    if (r < 0) {
        conn_close(&c->tcp);
        return false;
    }
    if (r == 1) zev_tcp_read_stop(&c->tcp); /* a client that pipelines but does not read */
    return true;
}

#define MAX_BATCH 64

static void on_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct conn *c = ex_container_of(t, struct conn, tcp);
    struct http_parse *p = &c->parse;
    zev_slice_t out[MAX_BATCH];
    unsigned n_out = 0;
    const char *s = slice->base;
    const char *end = s + slice->len;
    while (s < end && !c->closing_after) {
        if (p->phase == P_BODY) {
            size_t skip = (size_t)(end - s) < p->body_left ? (size_t)(end - s) : p->body_left;
            s += skip;
            p->body_left -= skip;
            if (p->body_left == 0) parse_reset(p);
            continue;
        }
        char ch = *s++;
        if (ch == '\r') continue;
        if (ch != '\n') {
            header_byte(p, ch);
            continue;
        }
        if (!end_line(p)) continue;
        out[n_out++] = answer(c);
        uint64_t body = p->content_length;
        parse_reset(p);
        if (body > 0) {
            p->phase = P_BODY;
            p->body_left = body;
        }
        if (n_out == MAX_BATCH) {
            if (!send_answers(c, out, n_out)) return;
            n_out = 0;
        }
    }
    if (!send_answers(c, out, n_out)) return;
    if (c->closing_after) {
        zev_tcp_read_stop(t);
        zev_tcp_end(t); /* finish closes it once the answer is out */
    }
}

static void on_drain(zev_tcp_t *t) {
    struct conn *c = ex_container_of(t, struct conn, tcp);
    if (!c->closing_after) zev_tcp_read_start(t);
}

static void on_finish(zev_tcp_t *t) {
    conn_close(t);
}

static void on_error(zev_tcp_t *t, int err) {
    (void)err;
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
        ex_warn(status, "accept");
        return;
    }
    struct conn *c = malloc(sizeof(*c));
    if (!c) {
        ex_warn(-ENOMEM, "accept");
        return;
    }
    ex_list_init(&c->link);
    parse_reset(&c->parse);
    c->closing_after = false;
    zev_tcp_init(s->handle.loop, &c->tcp);
    int err = zev_tcp_accept(s, &c->tcp);
    if (err < 0) {
        ex_warn(err, "accept");
        conn_close(&c->tcp);
        return;
    }
    ex_list_push(&srv->conns, &c->link);
    zev_tcp_set_events(&c->tcp, &conn_events);
    zev_tcp_set_nodelay(&c->tcp, 1); /* small answers: never wait for Nagle */
    zev_tcp_read_start(&c->tcp);
}

static void close_everything(void *arg) {
    struct server *srv = arg;
    zev_close(&srv->tcp.handle, NULL);
    for (ex_link_t *n = srv->conns.next; n != &srv->conns; n = n->next) {
        conn_close(&ex_container_of(n, struct conn, link)->tcp);
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 8431;
    ex_args_t a;
    ex_args_init(&a, argc, argv, usage);
    while (ex_args_next(&a)) {
        if (ex_args_is(&a, "--host")) {
            host = ex_args_host(&a);
        } else if (ex_args_is(&a, "--port")) {
            port = ex_args_port(&a, 0);
        } else {
            ex_args_unknown(&a);
        }
    }

    zev_loop_t loop;
    int err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    struct server srv;
    ex_list_init(&srv.conns);
    zev_tcp_server_init(&loop, &srv.tcp);
    err = ex_shutdown_init(&loop, close_everything, &srv);
    if (err < 0) ex_fatal(err, "install signal handlers");

    err = zev_tcp_listen(&srv.tcp, host, port, NULL, on_connection);
    if (err < 0) {
        char where[EX_HOST_PORT_MAX];
        ex_fatal(err, "listen %s", ex_format_host_port(where, sizeof(where), host, port));
    }
    zev_addr_info_t bound;
    err = zev_tcp_server_address(&srv.tcp, &bound);
    if (err < 0) ex_fatal(err, "server address");
    ex_print_listening(&bound);

    ex_run(&loop);
    return EX_EXIT_OK;
}
