/* tests/test_tcp_read.c: the read path's idea of "drained". A short read usually means the
 * kernel has nothing more, and zev then skips the read that would only say EAGAIN; these
 * tests cover where that is not so: a read that stops at a TCP urgent mark. */
#include "tcp_pair.h"
#include "zt.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_read, .init = zt_setup, .fini = zt_teardown, .timeout = 20);

struct urgent_case {
    zev_tcp_server_t s;
    zev_tcp_t conn;
    int accepted;
    char got[16];
    int n_got;
};

static void on_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct urgent_case *u = t->handle.data;
    cr_assert_leq((size_t)u->n_got + slice->len, sizeof(u->got));
    memcpy(u->got + u->n_got, slice->base, slice->len);
    u->n_got += (int)slice->len;
}

static const zev_tcp_events_t data_events = {.data = on_data};

static void on_connection(zev_tcp_server_t *s, int status) {
    struct urgent_case *u = s->handle.data;
    cr_assert_eq(status, 0);
    zev_tcp_init(s->handle.loop, &u->conn);
    cr_assert_eq(zev_tcp_accept(s, &u->conn), 0);
    u->conn.handle.data = u;
    zev_tcp_set_events(&u->conn, &data_events);
    u->accepted++;
}

/* Wait (bounded) until the receiver has acknowledged every byte the peer sent: the loop must
 * then find them all there at once, as when a peer's bytes arrive before the loop gets round
 * to reading. (The receiver's FIONREAD would not do: without SO_OOBINLINE Linux counts only
 * up to the urgent mark.) */
static void wait_acked(int peer) {
    int unacked = -1;
    for (int i = 0; i < 2000 && unacked != 0; i++) {
        cr_assert_eq(ioctl(peer, TIOCOUTQ, &unacked), 0);
        if (unacked != 0) usleep(1000);
    }
    cr_assert_eq(unacked, 0, "the peer's bytes reached us: %d unacknowledged", unacked);
}

/* The peer sends "ab", an urgent "x" (MSG_OOB) and "cd" before the loop reads. A read stops
 * at the urgent mark, short: taking that for "drained" would strand "cd" until the peer sends
 * again, which it never does here. With SO_OOBINLINE the urgent byte arrives in its place;
 * without it, it stays out of band (zev never reads MSG_OOB) and only the rest arrives. */
static void urgent_data_case(int oob_inline, int paused) {
    struct urgent_case u = {0};
    int peer = zt_raw_connect_nodelay(zt_listen(&u.s, on_connection, &u));
    cr_assert_eq(zt_run_until(&u.accepted, 1, 5000), 1);
    int fd = zev_tcp_fileno(&u.conn);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &oob_inline, sizeof(oob_inline)), 0);
    if (!paused) cr_assert_eq(zev_tcp_read_start(&u.conn), 0);
    for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* settle: nothing to read */

    cr_assert_eq(send(peer, "ab", 2, 0), 2);
    cr_assert_eq(send(peer, "x", 1, MSG_OOB), 1);
    cr_assert_eq(send(peer, "cd", 2, 0), 2);
    wait_acked(peer);
    if (paused) {
        /* The kernel's report comes while not reading; the resume must not lose it. */
        for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        cr_assert_eq(u.n_got, 0);
        cr_assert_eq(zev_tcp_read_start(&u.conn), 0);
    }
    const char *want = oob_inline ? "abxcd" : "abcd";
    int want_len = (int)strlen(want);
    zt_run_until(&u.n_got, want_len, 2000);
    cr_assert_eq(u.n_got, want_len, "inline %d, paused %d: got %d bytes \"%.*s\"", oob_inline,
                 paused, u.n_got, u.n_got, u.got);
    cr_assert_eq(memcmp(u.got, want, (size_t)want_len), 0, "got \"%.*s\"", u.n_got, u.got);
    cr_assert_eq(zev_tcp_bytes_read(&u.conn), (uint64_t)want_len);

    close(peer);
    zev_close(&u.conn.handle, NULL);
    zev_close(&u.s.handle, NULL);
    zt_run();
}

Test(tcp_read, bytes_after_an_urgent_mark_are_delivered_without_oobinline) {
    urgent_data_case(0, 0);
}

Test(tcp_read, bytes_after_an_urgent_mark_are_delivered_with_oobinline) {
    urgent_data_case(1, 0);
}

Test(tcp_read, bytes_after_an_urgent_mark_are_delivered_after_a_resume) {
    urgent_data_case(0, 1);
    urgent_data_case(1, 1);
}

/* ---- switching where bytes land while a receive waits ------------------------------------ */

struct switch_case {
    zev_tcp_server_t s;
    zev_tcp_t conn;
    int accepted;
    char got[64];
    int n_got;
    int from_user; /* data events whose slice lay in the buffer set at the time */
    char *user;
    size_t user_len;
};

static void on_switch_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct switch_case *c = t->handle.data;
    cr_assert_leq((size_t)c->n_got + slice->len, sizeof(c->got));
    if (c->user && slice->base >= c->user && slice->base + slice->len <= c->user + c->user_len)
        c->from_user++;
    else
        cr_assert_not_null(slice->owner, "not in the user's buffer: a pool slice");
    memcpy(c->got + c->n_got, slice->base, slice->len);
    c->n_got += (int)slice->len;
}

static const zev_tcp_events_t switch_events = {.data = on_switch_data};

static void on_switch_connection(zev_tcp_server_t *s, int status) {
    struct switch_case *c = s->handle.data;
    cr_assert_eq(status, 0);
    zev_tcp_init(s->handle.loop, &c->conn);
    cr_assert_eq(zev_tcp_accept(s, &c->conn), 0);
    c->conn.handle.data = c;
    zev_tcp_set_events(&c->conn, &switch_events);
    c->accepted++;
}

static void close_switch_case(struct switch_case *c, int peer) {
    close(peer);
    zev_close(&c->conn.handle, NULL);
    zev_close(&c->s.handle, NULL);
    zt_run();
}

/* On io_uring a socket reading into user memory must not hand that memory to the kernel: a
 * receive armed into buffer A would write there after the user switched to B and took A
 * back. Bytes sent after the switch land in B, and A stays as it was. */
Test(tcp_read, bytes_after_a_switch_of_user_buffer_never_land_in_the_old_one) {
    struct switch_case c = {0};
    c.s.handle.data = &c;
    int peer = zt_raw_connect_nodelay(zt_listen(&c.s, on_switch_connection, &c));
    cr_assert(zt_run_until(&c.accepted, 1, 5000));
    char old_buf[32], new_buf[32];
    memset(old_buf, '.', sizeof(old_buf));
    cr_assert_eq(zev_tcp_set_read_buffer(&c.conn, old_buf, sizeof(old_buf)), 0);
    cr_assert_eq(zev_tcp_read_start(&c.conn), 0);
    for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* whatever waits is armed */
    c.user = new_buf;
    c.user_len = sizeof(new_buf);
    cr_assert_eq(zev_tcp_set_read_buffer(&c.conn, new_buf, sizeof(new_buf)), 0);
    cr_assert_eq(write(peer, "hello", 5), 5);
    cr_assert(zt_run_until(&c.n_got, 5, 5000));
    cr_assert_eq(memcmp(c.got, "hello", 5), 0);
    cr_assert_eq(c.from_user, 1, "delivered from the buffer set when it arrived");
    for (size_t i = 0; i < sizeof(old_buf); i++) cr_assert_eq(old_buf[i], '.', "byte %zu", i);
    close_switch_case(&c, peer);
}

/* Bytes the kernel already took into the pool when the socket switches to user memory come
 * first (from the pool, on io_uring); later bytes land in the user's buffer. None is lost or
 * repeated, and the order holds. */
Test(tcp_read, a_switch_to_user_memory_with_bytes_in_flight_loses_and_repeats_none) {
    struct switch_case c = {0};
    c.s.handle.data = &c;
    int peer = zt_raw_connect_nodelay(zt_listen(&c.s, on_switch_connection, &c));
    cr_assert(zt_run_until(&c.accepted, 1, 5000));
    cr_assert_eq(zev_tcp_read_start(&c.conn), 0);
    for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* a pool receive waits */
    cr_assert_eq(write(peer, "abc", 3), 3);
    wait_acked(peer); /* on io_uring the receive has taken them by now */
    char buf[32];
    c.user = buf;
    c.user_len = sizeof(buf);
    cr_assert_eq(zev_tcp_set_read_buffer(&c.conn, buf, sizeof(buf)), 0);
    cr_assert_eq(c.n_got, 0, "nothing is delivered inside the call");
    cr_assert(zt_run_until(&c.n_got, 3, 5000));
    cr_assert_eq(write(peer, "def", 3), 3);
    cr_assert(zt_run_until(&c.n_got, 6, 5000));
    cr_assert_eq(c.n_got, 6);
    cr_assert_eq(memcmp(c.got, "abcdef", 6), 0);
    cr_assert_geq(c.from_user, 1, "the bytes sent after the switch landed in the user's buffer");
    close_switch_case(&c, peer);
}
