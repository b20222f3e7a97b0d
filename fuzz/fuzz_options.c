/* fuzz/fuzz_options.c: libFuzzer target for the option setters of TCP and UDP sockets.
 *
 * Real sockets, made once per process, all on loopback: a connected TCP pair (client and
 * accepted side, over 127.0.0.1), a TCP socket never connected, a udp4 socket bound to
 * 127.0.0.1 and a udp6 one bound to ::1 (skipped where ::1 is missing). No byte is sent. The
 * input is a list of operations, each a byte choosing a setter and the bytes of its values,
 * drawn so that in-range, boundary, negative and huge values all come up. Each result must be
 * exactly what include/zev/tcp.h and udp.h promise: -EINVAL out of range, 0 in range on a live
 * socket, -ENOTCONN for socket options on the TCP socket without a descriptor, and for text
 * (multicast interface) one of the documented errors. Listen options (backlog, ipv6_only,
 * reuse_port, bad ports) are tried on a fresh listener each time, closed before the next
 * operation. After each input the loop turns once without blocking, so idle timeouts set
 * with small values fire.
 */
#include "fuzz_common.h"
#include "zev.h"

#include <errno.h>
#include <limits.h>

#define MAX_OPS 64
#define TCP_MAX_HWM (1u << 30)
#define UDP_MAX_HWM (1u << 30)
#define MAX_KEEPALIVE_S 32767u

struct world {
    zev_loop_t loop;
    zev_tcp_server_t server;
    zev_tcp_t client;
    zev_tcp_t accepted;
    zev_tcp_t idle; /* initialised, never connected: no descriptor */
    zev_udp_t udp[2];
    int n_udp;
    int connected;
    int accepted_ok;
    size_t chunk_size;
};

static struct world w;

static void on_timeout(zev_tcp_t *t) {
    (void)t; /* nothing is closed for us; the next input may set another timeout */
}

static const zev_tcp_events_t events = {.timeout = on_timeout};

static void on_connection(zev_tcp_server_t *s, int status) {
    if (status < 0) return;
    if (zev_tcp_init(s->handle.loop, &w.accepted) == 0 && zev_tcp_accept(s, &w.accepted) == 0) {
        w.accepted_ok = 1;
    }
}

static void on_connect(zev_tcp_t *t, int status) {
    (void)t;
    w.connected = status == 0 ? 1 : -1;
}

static void on_listen_only(zev_tcp_server_t *s, int status) {
    (void)s;
    (void)status; /* never reached: nothing connects to the throw-away listeners */
}

static void count_close(zev_handle_t *h) {
    (*(int *)h->data)++;
}

static void die(const char *what, int err) {
    fprintf(stderr, "fuzz_options setup: %s: %s\n", what, zev_strerror(err));
    abort();
}

static void setup(void) {
    int err = zev_loop_init(&w.loop);
    if (err) die("loop", err);
    zev_buf_pool_stats_t st;
    zev_buf_pool_stats(&w.loop, &st);
    w.chunk_size = st.chunk_size;
    if ((err = zev_tcp_server_init(&w.loop, &w.server)) ||
        (err = zev_tcp_listen(&w.server, "127.0.0.1", 0, NULL, on_connection)))
        die("listen", err);
    zev_addr_info_t at;
    zev_tcp_server_address(&w.server, &at);
    if ((err = zev_tcp_init(&w.loop, &w.client)) ||
        (err = zev_tcp_connect(&w.client, "127.0.0.1", at.port, on_connect)))
        die("connect", err);
    for (int i = 0; i < 1000 && (w.connected == 0 || !w.accepted_ok); i++) {
        zev_run(&w.loop, ZEV_RUN_ONCE);
    }
    if (w.connected != 1 || !w.accepted_ok) die("loopback handshake", -ETIMEDOUT);
    zev_tcp_set_events(&w.client, &events);
    zev_tcp_set_events(&w.accepted, &events);
    if ((err = zev_tcp_init(&w.loop, &w.idle))) die("idle socket", err);
    static const struct {
        int family;
        const char *host;
    } udp[] = {{4, "127.0.0.1"}, {6, "::1"}};
    for (int i = 0; i < 2; i++) {
        zev_udp_t *u = &w.udp[w.n_udp];
        if (zev_udp_init(&w.loop, u, udp[i].family) < 0) continue;
        if (zev_udp_bind(u, udp[i].host, 0, NULL, NULL) == 0) {
            w.n_udp++;
        } else {
            zev_close(&u->handle, NULL); /* no ::1 here */
        }
    }
    zev_run(&w.loop, ZEV_RUN_NOWAIT);
}

/* An int that is often near the range a setter accepts, sometimes anything. */
static int draw_int(struct fuzz_in *in, int lo, int hi) {
    uint8_t mode = fuzz_u8(in);
    uint32_t raw = fuzz_u32(in);
    switch (mode % 5) {
    case 0:
        return lo + (int)(raw % (uint32_t)(hi - lo + 1));
    case 1:
        return lo - 1 - (int)(raw % 4);
    case 2:
        return hi + 1 + (int)(raw % 4);
    case 3:
        return (mode & 0x80) ? INT_MIN : INT_MAX;
    default:
        return (int)raw;
    }
}

/* A size: small, around a limit, or any 64-bit value. */
static uint64_t draw_size(struct fuzz_in *in, uint64_t limit) {
    uint8_t mode = fuzz_u8(in);
    uint64_t raw = fuzz_u64(in);
    switch (mode % 4) {
    case 0:
        return raw % 4;
    case 1:
        return limit - 2 + raw % 5;
    case 2:
        return raw % (limit + 1);
    default:
        return raw;
    }
}

static int64_t draw_ms(struct fuzz_in *in) {
    uint8_t mode = fuzz_u8(in);
    uint64_t raw = fuzz_u64(in);
    if (mode % 3 == 0) return (int64_t)(raw % 50); /* small: fires at the next turn */
    if (mode % 3 == 1) return (mode & 0x80) ? INT64_MIN : INT64_MAX;
    return (int64_t)raw;
}

static zev_tcp_t *pick_tcp(struct fuzz_in *in) {
    zev_tcp_t *all[] = {&w.client, &w.accepted, &w.idle};
    return all[fuzz_u8(in) % 3];
}

static int want_range(bool in_range, int ok) {
    return in_range ? ok : -EINVAL;
}

static void tcp_listen_op(struct fuzz_in *in) {
    static const char *const hosts[] = {"127.0.0.1", "::1", "not an address", "127.0.0.1%lo"};
    const char *host = hosts[fuzz_u8(in) % 4];
    uint8_t pmode = fuzz_u8(in);
    int port = pmode % 3 == 0   ? 0
               : pmode % 3 == 1 ? -(int)(fuzz_u16(in) + 1)
                                : 65536 + fuzz_u16(in);
    zev_tcp_listen_opts_t o = {
        .backlog = draw_int(in, 0, 4096),
        .ipv6_only = fuzz_u8(in) % 2 ? (int)fuzz_u32(in) : 0,
        .reuse_port = (int)fuzz_u8(in) - 128,
    };
    zev_tcp_server_t s;
    int closed = 0;
    FUZZ_CHECK(zev_tcp_server_init(&w.loop, &s) == 0);
    s.handle.data = &closed;
    int r = zev_tcp_listen(&s, host, port, &o, on_listen_only);
    zev_sockaddr_t a;
    bool parses = zev_addr_parse(&a, host, port) == 0;
    bool bad = o.backlog < 0 || !parses || (o.ipv6_only && a.sa.sa_family != AF_INET6);
    if (bad) {
        FUZZ_CHECK(r == -EINVAL);
    } else if (strcmp(host, "::1") == 0) {
        FUZZ_CHECK(r == 0 || r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT); /* no IPv6 here */
    } else {
        FUZZ_CHECK(r == 0);
    }
    if (r == 0) FUZZ_CHECK(zev_tcp_listen(&s, host, 0, NULL, on_listen_only) == -EALREADY);
    FUZZ_CHECK(zev_tcp_server_set_max_connections(&s, fuzz_u32(in), NULL) == 0);
    FUZZ_CHECK(zev_close(&s.handle, count_close) == 0);
    zev_run(&w.loop, ZEV_RUN_NOWAIT); /* s lives on this stack: finish closing it here */
    FUZZ_CHECK(closed == 1);
}

static void tcp_op(uint8_t op, struct fuzz_in *in) {
    zev_tcp_t *t = pick_tcp(in);
    bool live = t != &w.idle;
    int no_fd = live ? 0 : -ENOTCONN;
    switch (op) {
    case 0:
        FUZZ_CHECK(zev_tcp_set_nodelay(t, (int)fuzz_u32(in)) == no_fd);
        break;
    case 1: {
        int enable = (int)fuzz_u8(in) - 128;
        unsigned delay = (unsigned)draw_int(in, 0, (int)MAX_KEEPALIVE_S);
        int want = !live ? -ENOTCONN : delay > MAX_KEEPALIVE_S ? -EINVAL : 0;
        FUZZ_CHECK(zev_tcp_set_keepalive(t, enable, delay) == want);
        break;
    }
    case 2: {
        int64_t ms = draw_ms(in);
        FUZZ_CHECK(zev_tcp_set_timeout(t, ms) == want_range(ms >= 0, 0));
        break;
    }
    case 3: {
        int64_t ms = draw_ms(in);
        int want = ms < 0 ? -EINVAL : live ? -EISCONN : 0;
        FUZZ_CHECK(zev_tcp_set_connect_timeout(t, ms) == want);
        break;
    }
    case 4: {
        uint64_t bytes = draw_size(in, TCP_MAX_HWM);
        bool ok = bytes >= 1 && bytes <= TCP_MAX_HWM;
        FUZZ_CHECK(zev_tcp_set_high_water_mark(t, (size_t)bytes) == want_range(ok, 0));
        break;
    }
    case 5:
        FUZZ_CHECK(zev_tcp_set_allow_half_open(t, (int)fuzz_u32(in)) == 0);
        break;
    default:
        tcp_listen_op(in);
        break;
    }
}

static bool known_iface_error(int r) {
    return r == -EINVAL || r == -ENODEV || r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT;
}

static void udp_iface_op(zev_udp_t *u, struct fuzz_in *in) {
    static const char *const fixed[] = {NULL, "127.0.0.1", "lo", "1", "::1", "::%lo", "::"};
    char text[80];
    uint8_t pick = fuzz_u8(in);
    const char *iface = pick < 7 * 16 ? fixed[pick % 7] : fuzz_text(in, text, sizeof(text));
    int r = zev_udp_set_multicast_interface(u, iface);
    FUZZ_CHECK(r == 0 || known_iface_error(r));
    if (iface == NULL) FUZZ_CHECK(r == 0);
    if (iface && strcmp(iface, "lo") == 0) FUZZ_CHECK(r == 0);
}

static void udp_op(uint8_t op, struct fuzz_in *in) {
    if (w.n_udp == 0) return;
    zev_udp_t *u = &w.udp[fuzz_u8(in) % w.n_udp];
    switch (op) {
    case 0: {
        int ttl = draw_int(in, 1, 255);
        FUZZ_CHECK(zev_udp_set_ttl(u, ttl) == want_range(ttl >= 1 && ttl <= 255, 0));
        break;
    }
    case 1: {
        int ttl = draw_int(in, 0, 255);
        FUZZ_CHECK(zev_udp_set_multicast_ttl(u, ttl) == want_range(ttl >= 0 && ttl <= 255, 0));
        break;
    }
    case 2:
        FUZZ_CHECK(zev_udp_set_multicast_loopback(u, (int)fuzz_u32(in)) == 0);
        break;
    case 3:
        udp_iface_op(u, in);
        break;
    case 4:
        FUZZ_CHECK(zev_udp_set_broadcast(u, (int)fuzz_u32(in)) == 0);
        break;
    case 5: {
        unsigned n = (unsigned)draw_int(in, 1, ZEV_UDP_BATCH_MAX);
        FUZZ_CHECK(zev_udp_set_batch_size(u, n) == want_range(n >= 1 && n <= ZEV_UDP_BATCH_MAX, 0));
        break;
    }
    case 6: {
        uint64_t bytes = draw_size(in, w.chunk_size);
        bool ok = bytes >= 1 && bytes <= w.chunk_size;
        FUZZ_CHECK(zev_udp_set_max_datagram(u, (size_t)bytes) == want_range(ok, 0));
        break;
    }
    case 7:
    case 8: {
        uint64_t bytes = draw_size(in, INT_MAX);
        bool ok = bytes >= 1 && bytes <= INT_MAX;
        int r = op == 7 ? zev_udp_set_recv_buffer_size(u, (size_t)bytes)
                        : zev_udp_set_send_buffer_size(u, (size_t)bytes);
        FUZZ_CHECK(r == want_range(ok, 0));
        FUZZ_CHECK((op == 7 ? zev_udp_recv_buffer_size(u) : zev_udp_send_buffer_size(u)) > 0);
        break;
    }
    default: {
        uint64_t bytes = draw_size(in, UDP_MAX_HWM);
        bool ok = bytes >= 1 && bytes <= UDP_MAX_HWM;
        FUZZ_CHECK(zev_udp_set_high_water_mark(u, (size_t)bytes) == want_range(ok, 0));
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool ready;
    if (!ready) setup();
    ready = true;
    struct fuzz_in in = {data, size};
    for (int i = 0; i < MAX_OPS && in.n > 0; i++) {
        uint8_t op = fuzz_u8(&in);
        if (op < 128) {
            tcp_op(op % 7, &in);
        } else {
            udp_op((uint8_t)(op % 10), &in);
        }
    }
    zev_run(&w.loop, ZEV_RUN_NOWAIT);
    FUZZ_CHECK(w.connected == 1 && zev_tcp_fileno(&w.client) >= 0);
    return 0;
}
