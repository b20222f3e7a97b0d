/* tests/test_tcp_chunks.c: where received bytes land in the loop's chunks.
 *
 * A data event's slice points into a pool chunk the loop received into: epoll's read area, or
 * on io_uring a chunk of the kernel's buffer ring. Small receives share a chunk one after the
 * other (an idle server's memory does not grow with its connections), and a slice the user
 * keeps is never written over while later bytes fill the rest of the same chunk. On io_uring
 * the kernel moves its own receive point through the chunk (IOU_PBUF_RING_INC) and the loop
 * learns where each receive landed only from the order of the results, so these are the
 * meeting points where a wrong offset would show: bytes read from the wrong place, or a kept
 * slice overwritten.
 */
#include "tcp_pair.h"
#include "zt.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_chunks, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

enum { MAX_KEPT = 8, MAX_CLIENTS = 32 };

/* The server side of one connection: every byte it got, checked against the pattern the
 * client sends, and the first slices kept (a reference and where they pointed). */
struct reader {
    zev_tcp_t t;
    size_t got;
    unsigned seed; /* the client's pattern */
    int wrong;     /* bytes that differed from the pattern */
    int keep;      /* keep this many of the first slices */
    zev_slice_t kept[MAX_KEPT];
    int n_kept;
};

static unsigned char pattern_byte(unsigned seed, size_t i) {
    return (unsigned char)(seed * 131u + i * 7u + i / 251u);
}

static void fill_pattern(unsigned char *p, size_t len, unsigned seed, size_t from) {
    for (size_t i = 0; i < len; i++) p[i] = pattern_byte(seed, from + i);
}

static int differences(const zev_slice_t *s, unsigned seed, size_t from) {
    int wrong = 0;
    for (size_t i = 0; i < s->len; i++)
        wrong += (unsigned char)s->base[i] != pattern_byte(seed, from + i);
    return wrong;
}

static void on_reader_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct reader *r = t->handle.data;
    r->wrong += differences(slice, r->seed, r->got);
    if (r->n_kept < r->keep) {
        zev_buf_ref(slice->owner);
        r->kept[r->n_kept++] = *slice;
    }
    r->got += slice->len;
}

static const zev_tcp_events_t reader_events = {.data = on_reader_data};

struct server {
    zev_tcp_server_t s;
    struct reader readers[MAX_CLIENTS];
    int accepted;
    int keep; /* each reader keeps this many first slices */
};

static void on_connection(zev_tcp_server_t *s, int status) {
    struct server *srv = s->handle.data;
    cr_assert_eq(status, 0);
    cr_assert_lt(srv->accepted, MAX_CLIENTS);
    struct reader *r = &srv->readers[srv->accepted];
    r->seed = (unsigned)srv->accepted + 1;
    r->keep = srv->keep;
    zev_tcp_init(s->handle.loop, &r->t);
    cr_assert_eq(zev_tcp_accept(s, &r->t), 0);
    r->t.handle.data = r;
    zev_tcp_set_events(&r->t, &reader_events);
    cr_assert_eq(zev_tcp_read_start(&r->t), 0);
    srv->accepted++;
}

/* Send len bytes of the reader's pattern, starting at byte `from` of it. */
static void send_pattern(int fd, unsigned seed, size_t from, size_t len) {
    unsigned char buf[16384];
    while (len > 0) {
        size_t n = len < sizeof(buf) ? len : sizeof(buf);
        fill_pattern(buf, n, seed, from);
        ssize_t w = send(fd, buf, n, 0);
        cr_assert_gt(w, 0, "send: %s", strerror(errno));
        from += (size_t)w;
        len -= (size_t)w;
    }
}

static void run_until_got(struct reader *r, size_t want) {
    for (int i = 0; i < 20000 && r->got < want; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(r->got, want, "received %zu of %zu bytes", r->got, want);
}

static void close_server(struct server *srv, int *fds, int n) {
    for (int i = 0; i < n; i++) close(fds[i]);
    for (int i = 0; i < srv->accepted; i++) {
        struct reader *r = &srv->readers[i];
        for (int k = 0; k < r->n_kept; k++) zev_buf_unref(r->kept[k].owner);
        zev_close(&r->t.handle, NULL);
    }
    zev_close(&srv->s.handle, NULL);
    zt_run();
}

static void start(struct server *srv, int keep, int *fds, int n) {
    srv->keep = keep;
    int port = zt_listen(&srv->s, on_connection, srv);
    for (int i = 0; i < n; i++) fds[i] = zt_raw_connect_nodelay(port);
    for (int i = 0; i < 2000 && srv->accepted < n; i++) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(srv->accepted, n);
}

/* Three small messages, each read before the next is sent: they land one after the other in
 * the same chunk (the first two are kept meanwhile), never at the same place. (On io_uring
 * each starts exactly where the one before ended: the kernel's receive point.) */
Test(tcp_chunks, small_receives_share_one_chunk_one_after_another) {
    static struct server srv;
    int fd;
    start(&srv, 3, &fd, 1);
    struct reader *r = &srv.readers[0];
    size_t sent = 0;
    for (int m = 0; m < 3; m++) {
        send_pattern(fd, r->seed, sent, 100);
        sent += 100;
        run_until_got(r, sent);
    }
    cr_assert_eq(r->n_kept, 3, "one slice per message");
    for (int k = 1; k < 3; k++) {
        cr_assert_eq(r->kept[k].owner, r->kept[0].owner, "message %d shares the chunk", k);
        cr_assert_geq(r->kept[k].base, r->kept[k - 1].base + r->kept[k - 1].len,
                      "message %d lands after the one before", k);
    }
    cr_assert_eq(r->wrong, 0);
    close_server(&srv, &fd, 1);
}

/* The first slice is kept while 300 KiB more arrive in messages of many sizes: the rest of its
 * chunk fills, the chunk runs out, others follow. Every byte is read from where it landed,
 * and the kept slice still holds what it held. */
Test(tcp_chunks, a_kept_slice_is_never_written_over_while_its_chunk_fills) {
    static struct server srv;
    int fd;
    start(&srv, 1, &fd, 1);
    struct reader *r = &srv.readers[0];
    send_pattern(fd, r->seed, 0, 1000);
    run_until_got(r, 1000);
    cr_assert_eq(r->n_kept, 1);
    size_t sent = 1000;
    for (size_t len = 1; sent < 300 * 1024; len = len * 3 % 9001 + 1) {
        send_pattern(fd, r->seed, sent, len);
        sent += len;
        if (len % 4 == 0) run_until_got(r, sent); /* now and then read before sending on */
    }
    run_until_got(r, sent);
    cr_assert_eq(r->wrong, 0, "every byte read from where it landed");
    cr_assert_eq(differences(&r->kept[0], r->seed, 0), 0, "the kept slice is intact");
    close_server(&srv, &fd, 1);
}

/* Thirty-two clients send 16 KiB each before the loop runs: on io_uring the ring's first chunk
 * runs out and the receives behind it fail with -ENOBUFS in one batch. That is one shortage:
 * the ring once doubled for each of those results and reached its 512 chunks (32 MiB lent
 * for 512 KiB of data). Every byte arrives, from the right place, and the ring stays small. */
Test(tcp_chunks, a_burst_that_finds_the_ring_dry_grows_it_once_not_once_per_receive) {
    static struct server srv;
    int fds[MAX_CLIENTS];
    start(&srv, 0, fds, MAX_CLIENTS);
    enum { EACH = 16 * 1024 };
    for (int i = 0; i < MAX_CLIENTS; i++) send_pattern(fds[i], srv.readers[i].seed, 0, EACH);
    for (int i = 0; i < MAX_CLIENTS; i++) run_until_got(&srv.readers[i], EACH);
    for (int i = 0; i < MAX_CLIENTS; i++) cr_assert_eq(srv.readers[i].wrong, 0, "reader %d", i);
    zev_buf_pool_stats_t st;
    cr_assert_eq(zev_buf_pool_stats(&zt_loop, &st), 0);
    cr_assert_leq(st.lent, 16, "%llu chunks lent to the kernel for %d KiB of data",
                  (unsigned long long)st.lent, MAX_CLIENTS * EACH / 1024);
    close_server(&srv, fds, MAX_CLIENTS);
}

/* Reader 0 pauses with a receive in flight; its peer's 1000 bytes land in the shared chunk
 * and wait there (on io_uring the result is kept for the resume). Meanwhile reader 1 takes
 * 300 KiB through the same ring: the kernel uses that chunk up and moves on. The chunk must
 * not go back into the ring while the kept result still points into it, or the kernel would
 * write reader 1's bytes over reader 0's. On the resume reader 0 gets its bytes intact. */
Test(tcp_chunks, a_paused_sockets_kept_bytes_survive_other_sockets_using_up_their_chunk) {
    static struct server srv;
    int fds[2];
    start(&srv, 0, fds, 2);
    struct reader *paused = &srv.readers[0], *busy = &srv.readers[1];
    for (int i = 0; i < 3; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* receives are armed */
    cr_assert_eq(zev_tcp_read_stop(&paused->t), 0);
    send_pattern(fds[0], paused->seed, 0, 1000);
    for (int i = 0; i < 5; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(paused->got, 0, "paused: nothing delivered");
    size_t sent = 0;
    while (sent < 300 * 1024) {
        send_pattern(fds[1], busy->seed, sent, 16384);
        sent += 16384;
        run_until_got(busy, sent);
    }
    cr_assert_eq(busy->wrong, 0);
    cr_assert_eq(zev_tcp_read_start(&paused->t), 0);
    run_until_got(paused, 1000);
    cr_assert_eq(paused->wrong, 0, "the kept bytes were not written over");
    close_server(&srv, fds, 2);
}
