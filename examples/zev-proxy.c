/* examples/zev-proxy.c: a TCP proxy that forwards each accepted connection to one target.
 *
 * Each accepted connection gets one malloc'd pair: the client socket, a socket connected to
 * the target, and two zev_tcp_pipe_t, one per direction. A pipe writes every slice its
 * source reads to its destination by reference (zero-copy), pauses the source while the
 * destination is over its high-water mark, and ends the destination when the source ends.
 * Both sockets allow half-open connections, so a client that shuts down its sending side
 * still gets the rest of the answer; the pair closes once both directions have finished
 * (both sockets saw 'finish'), or at once on an error (a reset) on either side. A target
 * given by name is looked up for each connection by zev_tcp_connect, which races its IPv6 and
 * IPv4 addresses (Happy Eyeballs), after one check at start that the name resolves.
 *
 * Exposed to hostile peers (defaults as nginx's proxy_connect_timeout and
 * proxy_read_timeout, 60 s; docs/tcp.md):
 * - the pipes start at once, while the target is still connecting: the client is read (its
 *   bytes queue on the connecting socket, pausing at the high-water mark), so a client that
 *   leaves before the target answers is seen at once and frees both sockets;
 * - --connect-timeout fails a connect the target never completes (for a target given by
 *   name, the lookup and the raced attempts of zev_tcp_connect count in it);
 * - --idle-timeout closes the pair when either socket has seen no I/O for that long (a
 *   stopped target, or a client that went silent).
 *
 * Command line: docs/tcp.md.
 */
#include <zev.h>

#include "cli.h"
#include "list.h"
#include "names.h"
#include "shutdown.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static const char usage[] =
    "usage: zev-proxy --listen [HOST:]PORT --to HOST:PORT [--connect-timeout MS]\n"
    "                 [--idle-timeout MS]\n"
    "\n"
    "Forward every connection accepted on --listen to --to, both ways, without copying.\n"
    "\n"
    "  --listen [HOST:]PORT   where to listen (default 127.0.0.1:8431; port 0: ephemeral)\n"
    "  --to HOST:PORT         the target (required)\n"
    "  --host HOST            same as the HOST of --listen\n"
    "  --port N               same as the PORT of --listen\n"
    "  --connect-timeout MS   give up a connect to the target after MS (default 60000, as\n"
    "                         nginx; 0: the kernel's limit)\n"
    "  --idle-timeout MS      close both sides when either has had no I/O for MS\n"
    "                         (default 60000, as nginx; 0: no limit)\n"
    "  --help                 show this help\n"
    "\n"
    "HOST is an IPv4 address, [IPv6] in brackets ([::1]:8080), or a host name. --listen's\n"
    "name is resolved once at start to its first address; --to's is checked at start and\n"
    "looked up again for each connection, its IPv6 and IPv4 addresses raced as Happy\n"
    "Eyeballs does. Prints 'listening on ADDRESS:PORT' once ready, then 'backend: NAME (HOW)'\n"
    "(ZEV_BACKEND=io_uring|epoll picks it); SIGINT or SIGTERM closes every connection and\n"
    "exits 0.\n";

struct proxy {
    zev_tcp_server_t tcp;
    const char *to_host; /* as given: a name is looked up per connection */
    int to_port;
    char target_text[EX_HOST_PORT_MAX];
    ex_link_t pairs;            /* live pairs, for shutdown */
    int64_t connect_timeout_ms; /* 0: the kernel's */
    int64_t idle_timeout_ms;    /* 0: none */
};

struct pair {
    zev_tcp_t client;    /* accepted from the listener */
    zev_tcp_t upstream;  /* connected to the target */
    zev_tcp_pipe_t up;   /* client -> upstream */
    zev_tcp_pipe_t down; /* upstream -> client */
    ex_link_t link;
    struct proxy *proxy;
    unsigned finished; /* sockets whose sending side is shut down */
    unsigned open;     /* sockets not yet closed; the last close frees the pair */
    int connected;     /* the target completed the handshake */
};

static void socket_closed(zev_handle_t *h) {
    struct pair *p = h->data;
    if (--p->open > 0) return;
    ex_list_remove(&p->link);
    free(p);
}

static void pair_close(struct pair *p) {
    if (!zev_is_closing(&p->client.handle)) zev_close(&p->client.handle, socket_closed);
    if (!zev_is_closing(&p->upstream.handle)) zev_close(&p->upstream.handle, socket_closed);
}

/* A failure on one side reaches the other as a reset, never as a clean end of stream that
 * would pass for a complete answer (or request). */
static void pair_reset(struct pair *p) {
    if (!zev_is_closing(&p->client.handle)) zev_tcp_close_reset(&p->client, socket_closed);
    if (!zev_is_closing(&p->upstream.handle)) zev_tcp_close_reset(&p->upstream, socket_closed);
    pair_close(p); /* whichever close_reset could not do (a socket with no descriptor yet) */
}

/* One direction is done: its destination has sent everything and shut down. */
static void on_finish(zev_tcp_t *t) {
    struct pair *p = t->handle.data;
    if (++p->finished == 2) pair_close(p);
}

static void on_error(zev_tcp_t *t, int err) {
    (void)err; /* resets are routine for a proxy; either side failing resets both */
    pair_reset(t->handle.data);
}

/* A peer's EOF. Once connected it is a half-close that the pipe passes on. Before, a client
 * that sent nothing has left (a FIN from close() and from shutdown() look alike, but with
 * nothing to forward there is nothing to wait for): free both sides now instead of when the
 * connect gives up. A client that sent bytes first keeps its request, bounded by the connect
 * timeout. */
static void on_end(zev_tcp_t *t) {
    struct pair *p = t->handle.data;
    if (t == &p->client && !p->connected && zev_tcp_bytes_read(t) == 0) pair_close(p);
}

static void on_timeout(zev_tcp_t *t) {
    pair_close(t->handle.data);
}

/* The pipes take the data; only the ends of the two directions concern the pair. */
static const zev_tcp_events_t pair_events = {
    .end = on_end, .finish = on_finish, .error = on_error, .timeout = on_timeout};

static void on_upstream_connect(zev_tcp_t *t, int status) {
    struct pair *p = t->handle.data;
    if (zev_is_closing(&t->handle)) return; /* closed by a shutdown meanwhile: nothing to do */
    if (status < 0) {
        ex_warn(status, "connect %s", p->proxy->target_text);
        pair_reset(p);
        return;
    }
    p->connected = 1;
    zev_tcp_set_nodelay(&p->upstream, 1);
}

/* Connect to the target and start both pipes now: the client's bytes queue on the connecting
 * socket, the target's side starts reading once connected. 0 or a negative errno. */
static int pair_start(struct pair *p) {
    struct proxy *px = p->proxy;
    int err = 0;
    if (px->idle_timeout_ms > 0) {
        err = zev_tcp_set_timeout(&p->client, px->idle_timeout_ms);
        if (err == 0) err = zev_tcp_set_timeout(&p->upstream, px->idle_timeout_ms);
    }
    if (err == 0 && px->connect_timeout_ms > 0) {
        err = zev_tcp_set_connect_timeout(&p->upstream, px->connect_timeout_ms);
    }
    if (err == 0) {
        err = zev_tcp_connect(&p->upstream, px->to_host, px->to_port, on_upstream_connect);
    }
    if (err < 0) {
        ex_warn(err, "connect %s", px->target_text);
        return err;
    }
    err = zev_tcp_pipe(&p->up, &p->client, &p->upstream, 1);
    if (err == 0) err = zev_tcp_pipe(&p->down, &p->upstream, &p->client, 1);
    if (err < 0) ex_warn(err, "pipe");
    return err;
}

static void on_connection(zev_tcp_server_t *s, int status) {
    struct proxy *px = s->handle.data;
    if (status < 0) {
        ex_warn(status, "accept");
        return;
    }
    struct pair *p = calloc(1, sizeof(*p));
    if (!p) {
        ex_warn(-ENOMEM, "accept");
        return;
    }
    ex_list_init(&p->link);
    p->proxy = px;
    p->open = 2;
    zev_loop_t *loop = s->handle.loop;
    zev_tcp_init(loop, &p->client);
    zev_tcp_init(loop, &p->upstream);
    p->client.handle.data = p;
    p->upstream.handle.data = p;
    int err = zev_tcp_accept(s, &p->client);
    if (err < 0) {
        ex_warn(err, "accept");
        pair_close(p);
        return;
    }
    ex_list_push(&px->pairs, &p->link);
    zev_tcp_set_events(&p->client, &pair_events);
    zev_tcp_set_events(&p->upstream, &pair_events);
    /* Only the pipes end a socket: each direction finishes on its own. */
    zev_tcp_set_allow_half_open(&p->client, 1);
    zev_tcp_set_allow_half_open(&p->upstream, 1);
    zev_tcp_set_nodelay(&p->client, 1);
    if (pair_start(p) < 0) pair_close(p);
}

static void close_everything(void *arg) {
    struct proxy *px = arg;
    zev_close(&px->tcp.handle, NULL);
    for (ex_link_t *n = px->pairs.next; n != &px->pairs; n = n->next) {
        pair_close(ex_container_of(n, struct pair, link));
    }
}

int main(int argc, char **argv) {
    char listen_host[EX_HOST_MAX] = "127.0.0.1";
    int listen_port = 8431;
    char to_host[EX_HOST_MAX];
    int to_port = 0;
    int have_to = 0;
    unsigned connect_timeout_ms = 60000;
    unsigned idle_timeout_ms = 60000;

    ex_args_t a;
    ex_args_init(&a, argc, argv, usage);
    while (ex_args_next(&a)) {
        if (ex_args_is(&a, "--listen")) {
            ex_args_host_port(&a, "127.0.0.1", 0, listen_host, &listen_port);
        } else if (ex_args_is(&a, "--to")) {
            ex_args_host_port(&a, NULL, 1, to_host, &to_port);
            have_to = 1;
        } else if (ex_args_is(&a, "--host")) {
            snprintf(listen_host, sizeof(listen_host), "%s", ex_args_host(&a));
        } else if (ex_args_is(&a, "--port")) {
            listen_port = ex_args_port(&a, 0);
        } else if (ex_args_is(&a, "--connect-timeout")) {
            connect_timeout_ms = ex_args_uint(&a, 0, 1u << 31);
        } else if (ex_args_is(&a, "--idle-timeout")) {
            idle_timeout_ms = ex_args_uint(&a, 0, 1u << 31);
        } else {
            ex_args_unknown(&a);
        }
    }
    if (!have_to) ex_usage_error("missing --to HOST:PORT");

    struct proxy px = {.to_host = to_host,
                       .to_port = to_port,
                       .connect_timeout_ms = connect_timeout_ms,
                       .idle_timeout_ms = idle_timeout_ms};
    ex_list_init(&px.pairs);
    ex_format_host_port(px.target_text, sizeof(px.target_text), to_host, to_port);
    /* A target that does not resolve now is a mistake to report now (nginx's "host not found
     * in upstream"), not on every connection. */
    zev_sockaddr_t unused;
    int err = ex_resolve(to_host, to_port, 0, &unused);
    if (err < 0) ex_fatal(err, "target %s", px.target_text);
    char listen_addr[ZEV_ADDR_TEXT_MAX];
    err = ex_resolve_text(listen_host, 0, listen_addr);
    if (err < 0) ex_fatal_at(err, "listen", listen_host, listen_port);

    zev_loop_t loop;
    err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    zev_tcp_server_init(&loop, &px.tcp);
    px.tcp.handle.data = &px;
    err = ex_shutdown_init(&loop, close_everything, &px);
    if (err < 0) ex_fatal(err, "install signal handlers");

    err = zev_tcp_listen(&px.tcp, listen_addr, listen_port, NULL, on_connection);
    if (err < 0) ex_fatal_at(err, "listen", listen_host, listen_port);
    zev_addr_info_t bound;
    err = zev_tcp_server_address(&px.tcp, &bound);
    if (err < 0) ex_fatal(err, "server address");
    ex_print_listening(&bound);
    const char *why = NULL;
    const char *name = zev_loop_backend(&loop, &why);
    ex_print_backend(name, why);

    ex_run(&loop);
    return EX_EXIT_OK;
}
