/* examples/zev-udp-echo.c: a UDP echo server: every datagram goes back to its sender unchanged.
 *
 * Datagrams are read in batches (recvmmsg) into the loop's pool, and each is sent back by
 * reference: the bytes stay in the pool chunk the kernel wrote them into; if the kernel cannot
 * take the reply at once, the send queue holds a reference on that chunk until it can. Nothing
 * is copied or allocated per datagram. When the queue passes its high-water mark, receiving
 * pauses until the drain callback (backpressure, as the TCP echo server does).
 *
 * Command line and messages: docs/udp.md. Shared CLI helpers: examples/common.
 */
#include <zev.h>

#include "cli.h"
#include "names.h"
#include "shutdown.h"

#include <errno.h>

static const char usage[] =
    "usage: zev-udp-echo [--host HOST] [--port N]\n"
    "\n"
    "Send every UDP datagram received back to its sender, unchanged.\n"
    "\n"
    "  --host HOST    address to bind: IPv4, IPv6, or a host name resolved once at start\n"
    "                 to its first address (default 127.0.0.1)\n"
    "  --port N       port to bind, 0 for an ephemeral one (default 41234)\n"
    "  --help         show this help\n"
    "\n"
    "Prints 'listening on HOST:PORT' once bound, then 'backend: NAME (HOW)': the kernel\n"
    "interface the loop runs (ZEV_BACKEND=io_uring|epoll picks it); SIGINT or SIGTERM closes\n"
    "the socket and exits 0.\n";

static void on_sent(zev_udp_t *u, int status, void *arg) {
    (void)u;
    (void)arg;
    if (status < 0) ex_warn(status, "echo"); /* one datagram lost; the server goes on */
}

static void on_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                       const zev_udp_rinfo_t *from) {
    if (!msg) {
        ex_warn(status, "receive");
        if (status == -ENOMEM) zev_udp_recv_start(u, on_message); /* zev stopped: try again */
        return;
    }
    if (status == -EMSGSIZE) {
        ex_warn(status, "datagram of %zu bytes not echoed", from->size); /* never half of one */
        return;
    }
    int r = zev_udp_send_addr(u, msg, 1, from->addr, on_sent, NULL);
    if (r == 1) {
        zev_udp_recv_stop(u); /* the queue is over its mark: resumed by on_drain */
    } else if (r < 0) {
        ex_warn(r, "echo");
    }
}

static void on_drain(zev_udp_t *u) {
    zev_udp_recv_start(u, on_message);
}

static void on_listening(zev_udp_t *u) {
    zev_addr_info_t bound;
    int err = zev_udp_local_address(u, &bound);
    if (err < 0) ex_fatal(err, "local address");
    ex_print_listening(&bound);
    const char *why = NULL;
    const char *name = zev_loop_backend(u->handle.loop, &why);
    ex_print_backend(name, why);
}

static void close_everything(void *arg) {
    zev_udp_t *u = arg;
    if (!zev_is_closing(&u->handle)) zev_close(&u->handle, NULL);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 41234;

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

    char addr[ZEV_ADDR_TEXT_MAX];
    int err = ex_resolve_text(host, 0, addr);
    if (err < 0) ex_fatal_at(err, "bind", host, port);

    zev_loop_t loop;
    err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    zev_udp_t udp;
    err = zev_udp_init(&loop, &udp, zev_ip_family(addr));
    if (err < 0) ex_fatal(err, "socket");
    zev_udp_set_drain_cb(&udp, on_drain);
    err = ex_shutdown_init(&loop, close_everything, &udp);
    if (err < 0) ex_fatal(err, "install signal handlers");

    err = zev_udp_bind(&udp, addr, port, NULL, on_listening);
    if (err < 0) ex_fatal_at(err, "bind", host, port);
    err = zev_udp_recv_start(&udp, on_message);
    if (err < 0) ex_fatal(err, "receive");

    ex_run(&loop);
    return EX_EXIT_OK;
}
