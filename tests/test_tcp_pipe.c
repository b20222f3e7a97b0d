/* tests/test_tcp_pipe.c: pipe/unpipe with backpressure, sendfile ordered with other writes,
 * and reading into user memory. */
#include "tcp_pair.h"
#include "zt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_pipe, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

struct sink {
    uint8_t *got;
    size_t n;
    size_t cap;
    int ends;
    int errors;
};

static void sink_data(zev_tcp_t *t, const zev_slice_t *s) {
    struct sink *k = t->handle.data;
    if (k->got) {
        cr_assert_leq(k->n + s->len, k->cap);
        memcpy(k->got + k->n, s->base, s->len);
    }
    k->n += s->len;
}

static void sink_end(zev_tcp_t *t) {
    ((struct sink *)t->handle.data)->ends++;
}

static void sink_error(zev_tcp_t *t, int err) {
    (void)err;
    ((struct sink *)t->handle.data)->errors++;
}

static const zev_tcp_events_t sink_events = {.data = sink_data, .end = sink_end,
                                             .error = sink_error};

static void close_all(zev_tcp_t **t, int n) {
    for (int i = 0; i < n; i++) zev_close(&t[i]->handle, NULL);
    zt_run();
}

Test(tcp_pipe, forwards_everything_pausing_the_source_while_dst_is_full) {
    /* a -> b ==pipe==> c -> d: d stops reading for a while, so c's queue passes its mark and
     * b must pause; then d resumes and every byte arrives in order. */
    zev_tcp_t a, b, c, d;
    zt_tcp_pair(&a, &b);
    zt_tcp_pair(&c, &d);
    enum { N = 8 << 20 };
    uint8_t *src = malloc(N);
    for (size_t i = 0; i < N; i++) src[i] = (uint8_t)(i ^ (i >> 11));
    struct sink kd = {.got = malloc(N), .cap = N};
    d.handle.data = &kd;
    zev_tcp_set_events(&d, &sink_events);
    zev_tcp_set_high_water_mark(&c, 64 * 1024);
    zev_tcp_pipe_t p;
    cr_assert_eq(zev_tcp_pipe(&p, &b, &c, 1), 0);
    zev_tcp_pipe_t p2;
    cr_assert_eq(zev_tcp_pipe(&p2, &b, &d, 1), -EBUSY, "b already feeds a pipe");
    zev_slice_t s = zev_slice(src, N);
    zev_tcp_write(&a, &s, 1, NULL, NULL);
    zev_tcp_end(&a);
    int paused_seen = 0;
    for (int i = 0; i < 200; i++) {
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        if (!zev_is_active(&b.handle) || zev_tcp_write_queue_size(&c) > 64 * 1024) paused_seen = 1;
    }
    cr_assert(paused_seen, "c went over its mark while d was not reading");
    cr_assert_lt(zev_tcp_write_queue_size(&c), 4u << 20, "b paused: c's queue stays bounded");
    zev_tcp_read_start(&d);
    while (!kd.ends) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(kd.n, N);
    cr_assert_eq(memcmp(kd.got, src, N), 0);
    free(src);
    free(kd.got);
    zev_tcp_t *all[] = {&a, &b, &c, &d};
    close_all(all, 4);
}

Test(tcp_pipe, unpipe_stops_forwarding_and_end_dst_zero_keeps_dst_open) {
    zev_tcp_t a, b, c, d;
    zt_tcp_pair(&a, &b);
    zt_tcp_pair(&c, &d);
    struct sink kb = {0}, kd = {0};
    b.handle.data = &kb;
    d.handle.data = &kd;
    zev_tcp_set_events(&b, &sink_events);
    zev_tcp_set_events(&d, &sink_events);
    zev_tcp_read_start(&d);
    zev_tcp_pipe_t p;
    cr_assert_eq(zev_tcp_pipe(&p, &b, &c, 0), 0);
    zev_slice_t s = zev_slice("piped", 5);
    zev_tcp_write(&a, &s, 1, NULL, NULL);
    while (kd.n < 5) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(kb.n, 0, "piped data does not reach b's own data event");
    cr_assert_eq(zev_tcp_unpipe(&p), 0);
    cr_assert_eq(zev_tcp_unpipe(&p), -EINVAL, "unpiped already");
    zev_slice_t s2 = zev_slice("own", 3);
    zev_tcp_write(&a, &s2, 1, NULL, NULL);
    while (kb.n < 3) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(kd.n, 5, "nothing more forwarded");
    /* Re-pipe with end_dst = 0: a's end reaches b but c is not ended. */
    cr_assert_eq(zev_tcp_pipe(&p, &b, &c, 0), 0);
    zev_tcp_end(&a);
    while (!kb.ends) zev_run(&zt_loop, ZEV_RUN_ONCE);
    for (int i = 0; i < 5; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(kd.ends, 0, "dst not ended");
    zev_tcp_t *all[] = {&a, &b, &c, &d};
    close_all(all, 4);
}

static int order[4];
static int n_done;

static void record(zev_tcp_t *t, int status, void *arg) {
    (void)t;
    cr_assert_eq(status, 0);
    order[n_done++] = (int)(intptr_t)arg;
}

Test(tcp_pipe, sendfile_is_ordered_with_the_other_writes) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    FILE *f = tmpfile();
    char body[10000];
    for (size_t i = 0; i < sizeof(body); i++) body[i] = (char)('a' + i % 26);
    fwrite(body, 1, sizeof(body), f);
    fflush(f);
    struct sink kb = {.got = malloc(20000), .cap = 20000};
    b.handle.data = &kb;
    zev_tcp_set_events(&b, &sink_events);
    zev_tcp_read_start(&b);
    zev_slice_t head = zev_slice("HEAD", 4), tail = zev_slice("TAIL", 4);
    n_done = 0;
    zev_tcp_write(&a, &head, 1, record, (void *)1);
    int r = zev_tcp_sendfile(&a, fileno(f), 100, 5000, record, (void *)2);
    cr_assert_geq(r, 0, "%s", zev_err_name(r));
    zev_tcp_write(&a, &tail, 1, record, (void *)3);
    while (kb.n < 5008) zev_run(&zt_loop, ZEV_RUN_ONCE);
    while (n_done < 3) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(memcmp(kb.got, "HEAD", 4), 0);
    cr_assert_eq(memcmp(kb.got + 4, body + 100, 5000), 0);
    cr_assert_eq(memcmp(kb.got + 5004, "TAIL", 4), 0);
    cr_assert_eq(order[0], 1);
    cr_assert_eq(order[1], 2);
    cr_assert_eq(order[2], 3);
    cr_assert_eq(zev_tcp_sendfile(&a, -1, 0, 1, NULL, NULL), -EINVAL);
    fclose(f);
    free(kb.got);
    zev_tcp_t *all[] = {&a, &b};
    close_all(all, 2);
}

static char user_mem[16];
static int user_slices;

static void user_data(zev_tcp_t *t, const zev_slice_t *s) {
    (void)t;
    cr_assert_null(s->owner, "user memory has no owner");
    cr_assert(s->base >= user_mem && s->base + s->len <= user_mem + sizeof(user_mem));
    user_slices++;
}

Test(tcp_pipe, reads_can_land_in_user_memory) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    static const zev_tcp_events_t ev = {.data = user_data};
    zev_tcp_set_events(&b, &ev);
    cr_assert_eq(zev_tcp_set_read_buffer(&b, user_mem, 0), -EINVAL);
    cr_assert_eq(zev_tcp_set_read_buffer(&b, user_mem, sizeof(user_mem)), 0);
    zev_tcp_read_start(&b);
    zev_slice_t s = zev_slice("0123456789abcdefghijklmnopqrstuvwxyz", 36);
    zev_tcp_write(&a, &s, 1, NULL, NULL);
    while (zev_tcp_bytes_read(&b) < 36) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_geq(user_slices, 3, "36 bytes through a 16-byte buffer");
    zev_tcp_t *all[] = {&a, &b};
    close_all(all, 2);
}

/* A pipe whose source reads into a small user buffer, towards a destination that stops
 * reading for a while: what dst's queue still holds must not be overwritten by src's next
 * read (the queued slices have no owner to keep them). Every byte arrives, in order. */
Test(tcp_pipe, pipe_from_a_user_buffer_to_a_slow_destination_keeps_every_byte) {
    zev_tcp_t a, b, c, d;
    zt_tcp_pair(&a, &b);
    zt_tcp_pair(&c, &d);
    enum { N = 4 << 20 };
    static char user_buf[4096];
    uint8_t *src = malloc(N);
    /* Not periodic in 4 KiB, so a chunk written twice or out of place shows. */
    for (size_t i = 0; i < N; i++) src[i] = (uint8_t)((i * 2654435761u) >> 13 ^ (i >> 12));
    struct sink kd = {.got = malloc(N), .cap = N};
    d.handle.data = &kd;
    zev_tcp_set_events(&d, &sink_events);
    /* Small fixed kernel buffers on the c -> d path, so dst backs up well before 4 MiB on
     * any machine (loopback autotuning alone can take megabytes). */
    int small = 64 * 1024;
    setsockopt(zev_tcp_fileno(&c), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(zev_tcp_fileno(&d), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    cr_assert_eq(zev_tcp_set_read_buffer(&b, user_buf, sizeof(user_buf)), 0);
    zev_tcp_pipe_t p;
    cr_assert_eq(zev_tcp_pipe(&p, &b, &c, 1), 0);
    zev_slice_t s = zev_slice(src, N);
    zev_tcp_write(&a, &s, 1, NULL, NULL);
    zev_tcp_end(&a);
    /* d does not read: c's kernel buffers fill and its queue holds bytes b read. */
    for (int i = 0; i < 200; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_gt(zev_tcp_write_queue_size(&c), 0, "dst really was backed up");
    zev_tcp_read_start(&d);
    while (!kd.ends) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(kd.n, N);
    size_t first_bad = 0;
    while (first_bad < N && kd.got[first_bad] == src[first_bad]) first_bad++;
    cr_assert_eq(first_bad, N, "bytes differ from offset %zu", first_bad);
    free(src);
    free(kd.got);
    zev_tcp_t *all[] = {&a, &b, &c, &d};
    close_all(all, 4);
}

Test(tcp_pipe, pipe_between_sockets_of_two_loops_is_einval) {
    zev_loop_t other;
    cr_assert_eq(zev_loop_init(&other), 0);
    zev_tcp_t here, there;
    zev_tcp_init(&zt_loop, &here);
    zev_tcp_init(&other, &there);
    zev_tcp_pipe_t p;
    cr_assert_eq(zev_tcp_pipe(&p, &here, &there, 1), -EINVAL);
    cr_assert_eq(zev_tcp_pipe(&p, &there, &here, 1), -EINVAL);
    cr_assert_null(here.extra, "nothing was taken for a refused pipe");
    cr_assert_null(there.extra);
    zev_close(&here.handle, NULL);
    zev_close(&there.handle, NULL);
    zt_run();
    cr_assert_eq(zev_run(&other, ZEV_RUN_DEFAULT), 0);
    cr_assert_eq(zev_loop_close(&other), 0);
}

static int refused_calls;

static void no_connection(zev_tcp_server_t *s, int status) {
    (void)s;
    (void)status;
}

static void count_refused(zev_tcp_t *t, int status) {
    (void)t;
    cr_assert_eq(status, -ECONNREFUSED);
    refused_calls++;
}

/* Found by the API fuzzer: piping from a socket whose connect failed returned the failure but
 * left the pipe in place, so the source stayed "piped" (a second pipe said -EBUSY) and its
 * destination kept a pipe_in that nothing would ever feed. A refused pipe changes nothing. */
Test(tcp_pipe, pipe_from_a_failed_source_returns_the_error_and_leaves_no_pipe) {
    zev_tcp_server_t srv;
    int port = zt_listen(&srv, no_connection, NULL);
    zev_close(&srv.handle, NULL); /* nobody listens on port any more: refused */
    zt_run();
    zev_tcp_t src, dst, dst2;
    zev_tcp_init(&zt_loop, &src);
    zev_tcp_init(&zt_loop, &dst);
    zev_tcp_init(&zt_loop, &dst2);
    refused_calls = 0;
    cr_assert_eq(zev_tcp_connect(&src, "127.0.0.1", port, count_refused), 0);
    cr_assert(zt_run_until(&refused_calls, 1, 10000));
    zev_tcp_pipe_t p, p2;
    cr_assert_eq(zev_tcp_pipe(&p, &src, &dst, 1), -ECONNREFUSED);
    cr_assert_eq(zev_tcp_pipe(&p2, &src, &dst2, 1), -ECONNREFUSED, "not -EBUSY: no pipe left");
    cr_assert_eq(zev_tcp_pipe(&p2, &dst2, &dst, 1), 0, "dst is free to be fed by another pipe");
    zev_tcp_unpipe(&p2);
    zev_close(&src.handle, NULL);
    zev_close(&dst.handle, NULL);
    zev_close(&dst2.handle, NULL);
    zt_run();
}
