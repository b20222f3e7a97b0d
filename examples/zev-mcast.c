/* examples/zev-mcast.c: a multicast listener or sender, IPv4 or IPv6, any-source or
 * source-specific.
 *
 * --listen binds the group's port on every address of its family (with SO_REUSEADDR, so
 * several listeners can share it), joins the group (only for --source's traffic if given) on
 * --iface, and prints each datagram's text on its own line; with --count it leaves after that
 * many. --send sends TEXT once to the group from --iface (and from address --source if given,
 * which is how a test plays an allowed or a foreign source) with --ttl and --loopback.
 *
 * Command line and messages: docs/udp.md. Shared CLI helpers: examples/common.
 */
#include <zev.h>

#include "cli.h"
#include "names.h"
#include "shutdown.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: zev-mcast --group G --port P [--iface NAME] [--source S]\n"
    "                 (--listen [--count N] | --send TEXT) [--ttl N] [--loopback 0|1]\n"
    "\n"
    "Listen to a multicast group and print each message on its own line, or send one.\n"
    "\n"
    "  --group G        IPv4 or IPv6 multicast group (numeric)\n"
    "  --port P         port (listening: 0 for an ephemeral one)\n"
    "  --iface NAME     interface: a name, an index or an address of it (default: the\n"
    "                   kernel's choice)\n"
    "  --source S       listening: only S's traffic (source-specific); sending: from S.\n"
    "                   An address of the group's family, or a host name resolved once at\n"
    "                   start to its first address of that family\n"
    "  --listen         print every message received, one per line\n"
    "  --count N        with --listen: exit after N messages (default 0: never)\n"
    "  --send TEXT      send TEXT to the group once\n"
    "  --ttl N          multicast TTL / hop limit, 0..255 (default 1)\n"
    "  --loopback 0|1   whether this host's own listeners get what is sent (default 1)\n"
    "  --help           show this help\n"
    "\n"
    "The listener prints 'listening on GROUP:PORT' once it has joined; SIGINT or SIGTERM\n"
    "leaves the group, closes the socket and exits 0.\n";

struct mcast {
    zev_udp_t udp;
    const char *group;
    const char *iface;
    const char *source;
    char where[EX_HOST_PORT_MAX];
    int port;
    unsigned count; /* messages to wait for; 0: forever */
    unsigned received;
    int err;
};

static void close_socket(struct mcast *m) {
    if (!zev_is_closing(&m->udp.handle)) zev_close(&m->udp.handle, NULL);
    ex_shutdown_close();
}

static void close_everything(void *arg) {
    close_socket(arg);
}

/* ---- listener ---- */

static void on_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                       const zev_udp_rinfo_t *from) {
    struct mcast *m = u->handle.data;
    if (!msg) {
        ex_warn(status, "receive");
        return;
    }
    if (status == -EMSGSIZE) {
        ex_warn(status, "message of %zu bytes skipped", from->size);
        return;
    }
    fwrite(msg->base, 1, msg->len, stdout);
    putchar('\n');
    fflush(stdout);
    if (m->count && ++m->received == m->count) close_socket(m);
}

static int join(struct mcast *m) {
    if (m->source) return zev_udp_add_source_membership(&m->udp, m->source, m->group, m->iface);
    return zev_udp_add_membership(&m->udp, m->group, m->iface);
}

static void listen_group(struct mcast *m) {
    zev_udp_bind_opts_t opts = {.reuse_addr = 1};
    int err = zev_udp_bind(&m->udp, NULL, m->port, &opts, NULL);
    if (err < 0) ex_fatal(err, "bind port %d", m->port);
    err = join(m);
    if (err < 0) {
        ex_fatal(err, "join %s%s%s", m->group, m->source ? " from " : "",
                 m->source ? m->source : "");
    }
    err = zev_udp_recv_start(&m->udp, on_message);
    if (err < 0) ex_fatal(err, "receive");
    zev_addr_info_t bound;
    err = zev_udp_local_address(&m->udp, &bound);
    if (err < 0) ex_fatal(err, "local address");
    snprintf(bound.address, sizeof(bound.address), "%s", m->group);
    ex_print_listening(&bound); /* the group and the port it was joined on */
}

/* ---- sender ---- */

static void on_sent(zev_udp_t *u, int status, void *arg) {
    struct mcast *m = arg;
    (void)u;
    if (status < 0 && status != -ECANCELED) m->err = status;
    close_socket(m);
}

static void send_text(struct mcast *m, const char *text, int ttl, int loopback) {
    int err = 0;
    if (m->source) err = zev_udp_bind(&m->udp, m->source, 0, NULL, NULL);
    if (err < 0) ex_fatal(err, "bind %s", m->source);
    if (m->iface) err = zev_udp_set_multicast_interface(&m->udp, m->iface);
    if (err < 0) ex_fatal(err, "multicast interface %s", m->iface);
    err = zev_udp_set_multicast_ttl(&m->udp, ttl);
    if (err < 0) ex_fatal(err, "multicast TTL %d", ttl);
    err = zev_udp_set_multicast_loopback(&m->udp, loopback);
    if (err < 0) ex_fatal(err, "multicast loopback");
    zev_slice_t s = zev_slice(text, strlen(text));
    err = zev_udp_send(&m->udp, &s, 1, m->group, m->port, on_sent, m);
    if (err < 0) ex_fatal(err, "send %s", m->where);
}

int main(int argc, char **argv) {
    struct mcast m = {0};
    char source_addr[ZEV_ADDR_TEXT_MAX];
    int have_port = 0;
    int listen = 0;
    const char *text = NULL;
    int ttl = 1;
    int loopback = 1;

    ex_args_t a;
    ex_args_init(&a, argc, argv, usage);
    while (ex_args_next(&a)) {
        if (ex_args_is(&a, "--group")) {
            m.group = ex_args_address(&a);
        } else if (ex_args_is(&a, "--port")) {
            m.port = ex_args_port(&a, 0);
            have_port = 1;
        } else if (ex_args_is(&a, "--iface")) {
            m.iface = ex_args_value(&a);
        } else if (ex_args_is(&a, "--source")) {
            m.source = ex_args_host(&a);
        } else if (ex_args_is(&a, "--listen")) {
            listen = 1;
        } else if (ex_args_is(&a, "--count")) {
            m.count = ex_args_uint(&a, 0, 1u << 30);
        } else if (ex_args_is(&a, "--send")) {
            text = ex_args_value(&a);
        } else if (ex_args_is(&a, "--ttl")) {
            ttl = (int)ex_args_uint(&a, 0, 255);
        } else if (ex_args_is(&a, "--loopback")) {
            loopback = (int)ex_args_uint(&a, 0, 1);
        } else {
            ex_args_unknown(&a);
        }
    }
    if (!m.group) ex_usage_error("--group G is required");
    if (!have_port) ex_usage_error("--port P is required");
    if (listen == (text != NULL)) ex_usage_error("give exactly one of --listen and --send");
    if (text && m.port == 0) ex_usage_error("--send needs a port other than 0");
    ex_format_host_port(m.where, sizeof(m.where), m.group, m.port);
    if (m.source && !zev_ip_family(m.source)) {
        int err = ex_resolve_text(m.source, zev_ip_family(m.group), source_addr);
        if (err < 0) ex_fatal(err, "source %s", m.source);
        m.source = source_addr;
    }

    zev_loop_t loop;
    int err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    err = zev_udp_init(&loop, &m.udp, zev_ip_family(m.group));
    if (err < 0) ex_fatal(err, "socket");
    m.udp.handle.data = &m;
    err = ex_shutdown_init(&loop, close_everything, &m);
    if (err < 0) ex_fatal(err, "install signal handlers");

    if (listen) {
        listen_group(&m);
    } else {
        send_text(&m, text, ttl, loopback);
    }
    ex_run(&loop); /* closing the socket leaves the group */
    if (m.err) ex_fatal(m.err, "send %s", m.where);
    return EX_EXIT_OK;
}
