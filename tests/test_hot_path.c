/* tests/test_hot_path.c: what one echoed message costs, counted rather than timed (built with
 * -Dfault_injection, whose syscall seam counts every call).
 *
 * In steady state a TCP echo must make no epoll_ctl and no allocation per message: sockets are
 * registered once (edge-triggered, both directions), reads land in the loop's shared read
 * area, and a write the kernel takes whole needs no queue entry. Timing would be noisy on a
 * shared machine; these counts are exact. The same for UDP: a datagram echoed from the
 * receive callback costs no epoll_ctl and no allocation either.
 */
#include "reactor_internal.h"
#include "ring.h"
#include "sys_fault.h"
#include "tcp_pair.h"
#include "zt.h"

#include <string.h>

#define MESSAGE 64
/* Long enough for every chunk to turn over twice (a 64 KiB chunk holds 512 round trips'
 * bytes), so the pool is in its steady state: a zero-copy send (ZEV_SEND_ZC_MIN) keeps its
 * chunk until the kernel's notification, which takes one chunk more than a copy. */
#define WARM_UP 1200
#define MEASURED 2000

static void hot_setup(void) {
    zev_fault_reset();
    zt_setup();
}

static void hot_teardown(void) {
    zev_fault_reset();
    zt_teardown();
}

TestSuite(hot_path, .init = hot_setup, .fini = hot_teardown, .timeout = 30);

/* Every allocation the loop makes goes through its allocator: count them (the default is
 * malloc/free, so forwarding to them keeps blocks allocated before the swap valid). */
static unsigned long loop_allocs;

static void *counting_alloc(void *ctx, size_t size) {
    (void)ctx;
    loop_allocs++;
    return malloc(size);
}

static void counting_free(void *ctx, void *p, size_t size) {
    (void)ctx;
    (void)size;
    free(p);
}

/* ---- TCP ---------------------------------------------------------------------------------- */

static char message[MESSAGE];
static size_t received; /* bytes of the current round trip back at the client */
static int round_trips;
static int target;

static void send_message(zev_tcp_t *client) {
    zev_slice_t s = {message, sizeof(message), NULL};
    cr_assert_eq(zev_tcp_write(client, &s, 1, NULL, NULL), 0);
}

static void client_data(zev_tcp_t *t, const zev_slice_t *slice) {
    received += slice->len;
    if (received < MESSAGE) return;
    cr_assert_eq(received, MESSAGE, "one message in flight: the echo never runs ahead");
    received = 0;
    if (++round_trips < target) send_message(t);
}

static void server_data(zev_tcp_t *t, const zev_slice_t *slice) {
    cr_assert_eq(zev_tcp_write(t, slice, 1, NULL, NULL), 0, "by reference, under the HWM");
}

static const zev_tcp_events_t client_events = {.data = client_data};
static const zev_tcp_events_t server_events = {.data = server_data};

/* Run round trips until `want` more are done (bounded by zt_run_until's time limit). */
static void ping_pong(zev_tcp_t *client, int want) {
    target = round_trips + want;
    send_message(client);
    cr_assert_eq(zt_run_until(&round_trips, target, 10000), 1, "%d of %d round trips",
                 round_trips, target);
}

Test(hot_path, a_tcp_echo_makes_no_epoll_ctl_and_no_allocation_per_message) {
    memset(message, 'x', sizeof(message));
    zev_tcp_t client, server;
    zt_tcp_pair(&client, &server);
    zev_tcp_set_events(&client, &client_events);
    zev_tcp_set_events(&server, &server_events);
    zev_tcp_read_start(&client);
    zev_tcp_read_start(&server);
    ping_pong(&client, WARM_UP); /* the read area's chunk and any one-time setup */

    zev_allocator_t saved = zt_loop.allocator;
    zt_loop.allocator = (zev_allocator_t){counting_alloc, counting_free, NULL};
    loop_allocs = 0;
    uint64_t ctl_before = zev_fault_calls(ZEV_SYS_POLL_CTL);
    uint64_t reads_before = zev_fault_calls(ZEV_SYS_READ);
    uint64_t sends_before = zev_fault_calls(ZEV_SYS_SENDMSG);
    ping_pong(&client, MEASURED);
    uint64_t ctl = zev_fault_calls(ZEV_SYS_POLL_CTL) - ctl_before;
    uint64_t reads = zev_fault_calls(ZEV_SYS_READ) - reads_before;
    uint64_t sends = zev_fault_calls(ZEV_SYS_SENDMSG) - sends_before;
    zt_loop.allocator = saved;

    cr_assert_eq(ctl, 0, "%llu epoll_ctl for %d messages", (unsigned long long)ctl, MEASURED);
    cr_assert_eq(loop_allocs, 0, "%lu allocations for %d messages", loop_allocs, MEASURED);
    /* Per round trip: one read and one sendmsg on each side, and no read that finds nothing
     * (a short read means drained). io_uring's poll flags every arrival as urgent too
     * (EPOLLPRI), and urgent data is read to EAGAIN: one empty read more per message. In
     * completion mode a read is a receive submitted and a sendmsg a send submitted (the
     * seam counts them so), and no receive ever finds nothing. */
    const char *backend = zev_loop_backend(&zt_loop, NULL);
    bool poll_form = strcmp(backend, "io_uring") == 0 && !zev__loop_completes(&zt_loop);
    unsigned reads_per_message = poll_form ? 2 : 1;
    cr_assert_eq(reads, 2 * reads_per_message * MEASURED, "%llu reads on %s",
                 (unsigned long long)reads, backend);
    cr_assert_eq(sends, 2 * MEASURED, "%llu sendmsg", (unsigned long long)sends);

    zev_close(&client.handle, NULL);
    zev_close(&server.handle, NULL);
    zt_run();
}

/* ---- UDP ---------------------------------------------------------------------------------- */

static int udp_round_trips;
static int udp_target;

static void udp_client_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                               const zev_udp_rinfo_t *rinfo) {
    (void)rinfo;
    cr_assert_eq(status, 0);
    cr_assert_eq(msg->len, MESSAGE);
    if (++udp_round_trips < udp_target) {
        zev_slice_t s = {message, sizeof(message), NULL};
        cr_assert_eq(zev_udp_send(u, &s, 1, NULL, 0, NULL, NULL), 0);
    }
}

static void udp_server_message(zev_udp_t *u, int status, const zev_slice_t *msg,
                               const zev_udp_rinfo_t *rinfo) {
    cr_assert_eq(status, 0);
    cr_assert_eq(zev_udp_send_addr(u, msg, 1, rinfo->addr, NULL, NULL), 0);
}

static void udp_ping_pong(zev_udp_t *client, int want) {
    udp_target = udp_round_trips + want;
    zev_slice_t s = {message, sizeof(message), NULL};
    cr_assert_eq(zev_udp_send(client, &s, 1, NULL, 0, NULL, NULL), 0);
    cr_assert_eq(zt_run_until(&udp_round_trips, udp_target, 10000), 1, "%d of %d round trips",
                 udp_round_trips, udp_target);
}

Test(hot_path, a_udp_echo_makes_no_epoll_ctl_and_no_allocation_per_datagram) {
    memset(message, 'u', sizeof(message));
    zev_udp_t server, client;
    cr_assert_eq(zev_udp_init(&zt_loop, &server, 4), 0);
    cr_assert_eq(zev_udp_init(&zt_loop, &client, 4), 0);
    cr_assert_eq(zev_udp_bind(&server, "127.0.0.1", 0, NULL, NULL), 0);
    zev_addr_info_t at;
    cr_assert_eq(zev_udp_local_address(&server, &at), 0);
    cr_assert_eq(zev_udp_connect(&client, "127.0.0.1", at.port), 0);
    cr_assert_eq(zev_udp_recv_start(&server, udp_server_message), 0);
    cr_assert_eq(zev_udp_recv_start(&client, udp_client_message), 0);
    udp_ping_pong(&client, WARM_UP);

    zev_allocator_t saved = zt_loop.allocator;
    zt_loop.allocator = (zev_allocator_t){counting_alloc, counting_free, NULL};
    loop_allocs = 0;
    uint64_t ctl_before = zev_fault_calls(ZEV_SYS_POLL_CTL);
    udp_ping_pong(&client, MEASURED);
    uint64_t ctl = zev_fault_calls(ZEV_SYS_POLL_CTL) - ctl_before;
    zt_loop.allocator = saved;

    cr_assert_eq(ctl, 0, "%llu epoll_ctl for %d datagrams", (unsigned long long)ctl, MEASURED);
    cr_assert_eq(loop_allocs, 0, "%lu allocations for %d datagrams", loop_allocs, MEASURED);

    zev_close(&client.handle, NULL);
    zev_close(&server.handle, NULL);
    zt_run();
}
