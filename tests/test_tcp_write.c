/* tests/test_tcp_write.c: the write queue: order, callbacks, backpressure and drain, end and
 * half-close, destroy with queued writes, peer reset, idle timeout, and the per-iteration
 * budget that keeps a socket that always has more to write from holding the loop. */
#include "tcp_pair.h"
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tcp_write, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

struct sink {
    uint8_t *got;
    size_t n_got;
    size_t cap;
    int ends;
    int errors;
    int last_error;
    int drains;
    int finishes;
    int timeouts;
};

static void sink_data(zev_tcp_t *t, const zev_slice_t *s) {
    struct sink *k = t->handle.data;
    if (k->got) {
        cr_assert_leq(k->n_got + s->len, k->cap);
        memcpy(k->got + k->n_got, s->base, s->len); /* the test's own check, not zev's path */
    }
    k->n_got += s->len;
}

static void sink_end(zev_tcp_t *t) {
    ((struct sink *)t->handle.data)->ends++;
}

static void sink_error(zev_tcp_t *t, int err) {
    struct sink *k = t->handle.data;
    k->errors++;
    k->last_error = err;
}

static void sink_drain(zev_tcp_t *t) {
    ((struct sink *)t->handle.data)->drains++;
}

static void sink_finish(zev_tcp_t *t) {
    ((struct sink *)t->handle.data)->finishes++;
}

static void sink_timeout(zev_tcp_t *t) {
    ((struct sink *)t->handle.data)->timeouts++;
}

static const zev_tcp_events_t sink_events = {sink_data,  sink_end,     sink_error,
                                             sink_drain, sink_timeout, sink_finish};

/* A connected pair, each side recording its events into its own sink. */
static void sink_pair(zev_tcp_t *a, zev_tcp_t *b, struct sink *ka, struct sink *kb) {
    zt_tcp_pair(a, b);
    a->handle.data = ka;
    b->handle.data = kb;
    zev_tcp_set_events(a, &sink_events);
    zev_tcp_set_events(b, &sink_events);
}

static int write_statuses[64];
static int write_order[64];
static int n_writes_done;

static void record_write(zev_tcp_t *t, int status, void *arg) {
    (void)t;
    write_statuses[n_writes_done] = status;
    write_order[n_writes_done] = (int)(intptr_t)arg;
    n_writes_done++;
}

static void close_pair(zev_tcp_t *a, zev_tcp_t *b) {
    zev_close(&a->handle, NULL);
    zev_close(&b->handle, NULL);
    zt_run();
}

/* Close t so that its peer sees a reset: SO_LINGER 0 makes close() send a RST. */
static void close_with_reset(zev_tcp_t *t) {
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    setsockopt(zev_tcp_fileno(t), SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
    zev_close(&t->handle, NULL);
}

static uint8_t *pattern(size_t n, unsigned seed) {
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 31u + seed) ^ (i >> 8));
    return p;
}

Test(tcp_write, callbacks_run_later_in_order_and_bytes_arrive_in_order) {
    zev_tcp_t a, b;
    struct sink k = {0};
    zt_tcp_pair(&a, &b);
    uint8_t *src = pattern(3 * 100000, 1);
    k.got = malloc(3 * 100000);
    k.cap = 3 * 100000;
    b.handle.data = &k;
    zev_tcp_set_events(&b, &sink_events);
    zev_tcp_read_start(&b);
    n_writes_done = 0;
    for (int i = 0; i < 3; i++) {
        zev_slice_t s[2] = {zev_slice(src + i * 100000, 50000),
                            zev_slice(src + i * 100000 + 50000, 50000)};
        cr_assert_geq(zev_tcp_write(&a, s, 2, record_write, (void *)(intptr_t)i), 0);
        cr_assert_eq(n_writes_done, 0, "never inside the write call");
    }
    while (k.n_got < 3 * 100000) zev_run(&zt_loop, ZEV_RUN_ONCE);
    while (n_writes_done < 3) zev_run(&zt_loop, ZEV_RUN_ONCE);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(write_statuses[i], 0);
        cr_assert_eq(write_order[i], i);
    }
    cr_assert_eq(memcmp(k.got, src, k.cap), 0);
    cr_assert_eq(zev_tcp_bytes_written(&a), 300000);
    cr_assert_eq(zev_tcp_bytes_read(&b), 300000);
    cr_assert_eq(zev_tcp_write_queue_size(&a), 0);
    cr_assert_eq(zev_tcp_write_queue_count(&a), 0);
    free(src);
    free(k.got);
    close_pair(&a, &b);
}

Test(tcp_write, high_water_mark_and_drain_with_a_paused_reader) {
    zev_tcp_t a, b;
    struct sink ka = {0}, kb = {0};
    sink_pair(&a, &b, &ka, &kb);
    zev_tcp_set_high_water_mark(&a, 64 * 1024);
    enum { CHUNK = 256 * 1024 };
    uint8_t *buf = pattern(CHUNK, 2);
    /* b does not read: the kernel buffers fill, then zev's queue grows past the mark. */
    int r = 0;
    int writes = 0;
    while (r == 0 && writes < 64) {
        zev_slice_t s = zev_slice(buf, CHUNK);
        r = zev_tcp_write(&a, &s, 1, NULL, NULL);
        writes++;
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    }
    cr_assert_eq(r, 1, "a write reports the queue above the high-water mark");
    cr_assert_gt(zev_tcp_write_queue_size(&a), 64 * 1024);
    cr_assert_eq(ka.drains, 0);
    size_t total = (size_t)writes * CHUNK;
    zev_tcp_read_start(&b); /* resume the reader: the queue drains */
    while (kb.n_got < total) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(ka.drains, 1, "one drain per crossing");
    cr_assert_eq(zev_tcp_write_queue_size(&a), 0);
    free(buf);
    close_pair(&a, &b);
}

Test(tcp_write, destroy_completes_queued_writes_with_ecanceled) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = pattern(CHUNK, 3);
    n_writes_done = 0;
    for (int i = 0; i < 8; i++) {
        zev_slice_t s = zev_slice(buf, CHUNK);
        zev_tcp_write(&a, &s, 1, record_write, (void *)(intptr_t)i);
    }
    cr_assert_gt(zev_tcp_write_queue_size(&a), 0, "8 MiB cannot all fit in the kernel");
    zev_close(&a.handle, NULL);
    cr_assert_eq(n_writes_done, 0, "not inside zev_close");
    zev_close(&b.handle, NULL);
    zt_run();
    cr_assert_eq(n_writes_done, 8, "every write told");
    int cancelled = 0;
    for (int i = 0; i < 8; i++) {
        cr_assert(write_statuses[i] == 0 || write_statuses[i] == -ECANCELED);
        cancelled += write_statuses[i] == -ECANCELED;
        cr_assert_eq(write_order[i], i);
    }
    cr_assert_gt(cancelled, 0);
    free(buf);
}

/* The queue mixes finished writes waiting for their callback (DONE) and unsent bytes, in call
 * order: a write sent whole, one the kernel took only part of, one queued behind it, and an
 * empty write with a callback, which must still wait for everything before it. */
Test(tcp_write, finished_and_unsent_writes_complete_in_call_order) {
    zev_tcp_t a, b;
    struct sink k = {0};
    zt_tcp_pair(&a, &b);
    enum { BIG = 32 << 20, SMALL = 10, TOTAL = BIG + 2 * SMALL }; /* BIG cannot fit the kernel */
    uint8_t *src = pattern(TOTAL, 5);
    k.got = malloc(TOTAL);
    k.cap = TOTAL;
    b.handle.data = &k;
    zev_tcp_set_events(&b, &sink_events); /* b does not read yet: the kernel fills up */
    n_writes_done = 0;
    zev_slice_t first = zev_slice(src, SMALL);
    zev_slice_t big = zev_slice(src + SMALL, BIG);
    zev_slice_t last = zev_slice(src + SMALL + BIG, SMALL);
    cr_assert_eq(zev_tcp_write(&a, &first, 1, record_write, (void *)0), 0);
    cr_assert_eq(zev_tcp_write_queue_size(&a), 0, "sent whole: only its callback waits");
    cr_assert_eq(zev_tcp_write(&a, &big, 1, record_write, (void *)1), 1);
    cr_assert_eq(zev_tcp_write(&a, &last, 1, record_write, (void *)2), 1);
    cr_assert_eq(zev_tcp_write(&a, NULL, 0, record_write, (void *)3), 1);
    cr_assert_eq(zev_tcp_write_queue_count(&a), 4);
    cr_assert_eq(n_writes_done, 0, "never inside the write call");
    zev_tcp_read_start(&b);
    while (n_writes_done < 4 || k.n_got < TOTAL) zev_run(&zt_loop, ZEV_RUN_ONCE);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(write_statuses[i], 0);
        cr_assert_eq(write_order[i], i);
    }
    cr_assert_eq(memcmp(k.got, src, TOTAL), 0, "bytes in call order");
    cr_assert_eq(zev_tcp_write_queue_count(&a), 0);
    free(src);
    free(k.got);
    close_pair(&a, &b);
}

Test(tcp_write, write_after_end_is_epipe_and_queues_nothing) {
    zev_tcp_t a, b;
    struct sink kb = {0}, ka = {0};
    sink_pair(&a, &b, &ka, &kb);
    zev_tcp_set_allow_half_open(&b, 1);
    zev_tcp_read_start(&b);
    zev_slice_t s = zev_slice("last words", 10);
    cr_assert_eq(zev_tcp_write(&a, &s, 1, NULL, NULL), 0);
    cr_assert_eq(zev_tcp_end(&a), 0);
    cr_assert_eq(zev_tcp_end(&a), 0, "idempotent");
    cr_assert_eq(zev_tcp_write(&a, &s, 1, NULL, NULL), -EPIPE);
    cr_assert_eq(zev_tcp_write_queue_size(&a), 0);
    while (!kb.ends) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(kb.n_got, 10);
    cr_assert_eq(ka.finishes, 1, "finish after the queue flushed and our side shut down");
    close_pair(&a, &b);
}

Test(tcp_write, half_close_both_ways_with_allow_half_open) {
    zev_tcp_t a, b;
    struct sink ka = {0}, kb = {0};
    sink_pair(&a, &b, &ka, &kb);
    zev_tcp_set_allow_half_open(&b, 1);
    zev_tcp_read_start(&a);
    zev_tcp_read_start(&b);
    zev_tcp_end(&a);
    while (!kb.ends) zev_run(&zt_loop, ZEV_RUN_ONCE);
    /* b saw EOF but, half-open, can still talk to a, which still reads. */
    zev_slice_t s = zev_slice("after your end", 14);
    cr_assert_eq(zev_tcp_write(&b, &s, 1, NULL, NULL), 0);
    while (ka.n_got < 14) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(ka.ends, 0);
    zev_tcp_end(&b);
    while (!ka.ends) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(kb.finishes, 1);
    cr_assert_eq(ka.finishes, 1);
    close_pair(&a, &b);
}

Test(tcp_write, without_half_open_eof_ends_our_side_after_flushing) {
    zev_tcp_t a, b;
    struct sink ka = {0}, kb = {0};
    sink_pair(&a, &b, &ka, &kb);
    zev_tcp_read_start(&a);
    zev_tcp_read_start(&b);
    zev_tcp_end(&a);
    while (!ka.ends) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(kb.ends, 1);
    cr_assert_eq(kb.finishes, 1, "b ended automatically (allowHalfOpen off)");
    close_pair(&a, &b);
}

Test(tcp_write, a_peer_reset_is_econnreset_in_error_and_write_callbacks) {
    zev_tcp_t a, b;
    struct sink ka = {0};
    zt_tcp_pair(&a, &b);
    a.handle.data = &ka;
    zev_tcp_set_events(&a, &sink_events);
    zev_tcp_read_start(&a);
    close_with_reset(&b);
    while (!ka.errors && !ka.ends) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(ka.errors, 1);
    cr_assert_eq(ka.last_error, -ECONNRESET, "%s", zev_err_name(ka.last_error));
    zev_slice_t s = zev_slice("x", 1);
    cr_assert_eq(zev_tcp_write(&a, &s, 1, NULL, NULL), -ECONNRESET, "failed sockets say why");
    zev_close(&a.handle, NULL);
    zt_run();
}

/* The peer resets while a write is half sent and two more wait behind it. On io_uring the
 * three are one chain of linked sends: the first ends short (the bytes it sent before the
 * reset) and the kernel cancels the two linked behind it, so two results are still to come
 * for a chain whose first entry is no longer in flight. Each write is told once, in order,
 * with an error; the error event comes once; the close waits for every send to answer. */
Test(tcp_write, a_reset_in_the_middle_of_a_chain_of_writes_tells_each_write_once) {
    zev_tcp_t a, b;
    struct sink ka = {0};
    zt_tcp_pair(&a, &b);
    a.handle.data = &ka;
    zev_tcp_set_events(&a, &sink_events);
    n_writes_done = 0;
    /* Fill the kernel's buffers past zev (nothing is queued in zev meanwhile). */
    static char filler[65536];
    while (send(zev_tcp_fileno(&a), filler, sizeof(filler), MSG_DONTWAIT) > 0) {
    }
    /* Three writes in one call: one chain of three linked sends on io_uring. */
    static char first[60000], more[1000];
    zev_slice_t s[3] = {zev_slice(first, sizeof(first)), zev_slice(more, sizeof(more)),
                        zev_slice(more, sizeof(more))};
    cr_assert_geq(zev_tcp_write(&a, s, 3, record_write, (void *)1), 0);
    zev_slice_t s4 = zev_slice(more, sizeof(more));
    cr_assert_geq(zev_tcp_write(&a, &s4, 1, record_write, (void *)2), 0);
    for (int i = 0; i < 5; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT); /* the sends wait for room */
    /* Room for part of the first slice, then the reset. */
    size_t drained = 0;
    for (int i = 0; i < 200 && drained < 20000; i++) {
        ssize_t r = recv(zev_tcp_fileno(&b), filler, 20000 - drained, MSG_DONTWAIT);
        if (r > 0) drained += (size_t)r;
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        usleep(1000);
    }
    for (int i = 0; i < 20; i++) {
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
        usleep(1000);
    }
    cr_assert_eq(n_writes_done, 0, "the first write is still being sent");
    close_with_reset(&b);
    for (int i = 0; i < 2000 && (n_writes_done < 2 || !ka.errors); i++)
        zev_run(&zt_loop, ZEV_RUN_ONCE);
    for (int i = 0; i < 10; i++) zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    cr_assert_eq(n_writes_done, 2, "each write told once");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(write_order[i], i + 1, "in order");
        cr_assert_lt(write_statuses[i], 0, "write %d: %s", i + 1, zev_err_name(write_statuses[i]));
    }
    cr_assert_eq(ka.errors, 1, "the error event once");
    zev_close(&a.handle, NULL);
    zt_run();
}

Test(tcp_write, writing_to_a_reset_peer_never_raises_sigpipe) {
    zev_tcp_t a, b;
    struct sink ka = {0};
    zt_tcp_pair(&a, &b);
    a.handle.data = &ka;
    zev_tcp_set_events(&a, &sink_events);
    close_with_reset(&b);
    zt_run();
    n_writes_done = 0;
    zev_slice_t s = zev_slice("ping", 4);
    /* Criterion reports a SIGPIPE as a crash; the error must arrive as a status instead. */
    for (int i = 0; i < 3 && !ka.errors; i++) {
        zev_tcp_write(&a, &s, 1, record_write, NULL);
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    }
    while (!ka.errors) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert(ka.last_error == -ECONNRESET || ka.last_error == -EPIPE, "%s",
              zev_err_name(ka.last_error));
    zev_close(&a.handle, NULL);
    zt_run();
    for (int i = 0; i < n_writes_done; i++) cr_assert_leq(write_statuses[i], 0);
}

/* Write 4 bytes from `from` every 10 ms for 400 ms, running the loop between writes. */
static void write_ticks_for_400ms(zev_tcp_t *from) {
    uint64_t start = zev_hrtime();
    while (zev_hrtime() - start < 400000000u) {
        zev_slice_t s = zev_slice("tick", 4);
        zev_tcp_write(from, &s, 1, NULL, NULL);
        usleep(10000);
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    }
}

Test(tcp_write, idle_timeout_fires_after_silence_and_is_pushed_back_by_activity) {
    zev_tcp_t a, b;
    struct sink ka = {0}, kb = {0};
    sink_pair(&a, &b, &ka, &kb);
    zev_tcp_read_start(&b);
    cr_assert_eq(zev_tcp_set_timeout(&b, 250), 0);
    /* Keep b busy for 400 ms: a write every 10 ms. No timeout may fire meanwhile. */
    write_ticks_for_400ms(&a);
    cr_assert_eq(kb.timeouts, 0, "activity pushed the deadline back");
    while (!kb.timeouts) zev_run(&zt_loop, ZEV_RUN_ONCE);
    cr_assert_eq(kb.timeouts, 1);
    cr_assert_eq(zev_tcp_set_timeout(&b, 0), 0);
    close_pair(&a, &b);
}

/* Node's setTimeout counts writes too, so a chat client that only receives never timed out:
 * with ZEV_TCP_TIMEOUT_READ only input counts. b keeps writing to a (every write reaches the
 * kernel) and still times out; reads from a then push the deadline back as usual. */
Test(tcp_write, idle_timeout_counting_reads_only_fires_on_a_socket_that_only_writes) {
    zev_tcp_t a, b;
    struct sink ka = {0}, kb = {0};
    sink_pair(&a, &b, &ka, &kb);
    zev_tcp_read_start(&a);
    zev_tcp_read_start(&b);
    cr_assert_eq(zev_tcp_set_timeout_ex(&b, 100, 2), -EINVAL, "unknown flag");
    cr_assert_eq(zev_tcp_set_timeout_ex(&b, 100, ZEV_TCP_TIMEOUT_READ), 0);
    int writes = 0;
    for (; writes < 2000 && !kb.timeouts; writes++) {
        zev_slice_t s = zev_slice("news", 4);
        cr_assert_eq(zev_tcp_write(&b, &s, 1, NULL, NULL), 0);
        usleep(5000);
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    }
    cr_assert_eq(kb.timeouts, 1, "timed out after %d writes", writes);
    cr_assert_gt(ka.n_got, 0, "the writes went out meanwhile");
    /* Input counts: a's writes keep b from timing out again for 400 ms. */
    cr_assert_eq(zev_tcp_set_timeout_ex(&b, 250, ZEV_TCP_TIMEOUT_READ), 0);
    write_ticks_for_400ms(&a);
    cr_assert_eq(kb.timeouts, 1, "reads pushed the deadline back");
    /* Back to Node's rule: writes count again. */
    cr_assert_eq(zev_tcp_set_timeout(&b, 250), 0);
    write_ticks_for_400ms(&b);
    cr_assert_eq(kb.timeouts, 1, "writes pushed the deadline back");
    cr_assert_eq(zev_tcp_set_timeout(&b, 0), 0);
    close_pair(&a, &b);
}

/* ---- a write callback that keeps writing must not hold the loop ---- */

static zev_timer_t other_work;
static int keep_writing;
static int writes_done;
static int timer_fired;

static void stop_writing(zev_timer_t *tm) {
    (void)tm;
    timer_fired++;
    keep_writing = 0;
}

/* Writes again from its own callback (arg: the slice, or NULL for a write of nothing) until
 * the timer, started by the first callback and so due in the next iteration, stops it. */
static void write_again(zev_tcp_t *t, int status, void *arg) {
    cr_assert_eq(status, 0);
    if (writes_done++ == 0) zev_timer_start(&other_work, stop_writing, 0, 0);
    if (!keep_writing) return;
    const zev_slice_t *s = arg;
    cr_assert_geq(zev_tcp_write(t, s, s ? 1 : 0, write_again, arg), 0);
}

static void start_write_chain(zev_tcp_t *a, const zev_slice_t *s) {
    cr_assert_eq(zev_timer_init(&zt_loop, &other_work), 0);
    keep_writing = 1;
    writes_done = timer_fired = 0;
    cr_assert_geq(zev_tcp_write(a, s, s ? 1 : 0, write_again, (void *)s), 0);
}

/* Finish the chain: the write in flight when the timer fired completes, then nothing more. */
static void end_write_chain(zev_tcp_t *a) {
    while (zev_tcp_write_queue_count(a) > 0) zev_run(&zt_loop, ZEV_RUN_ONCE);
    zev_close(&other_work.handle, NULL);
}

Test(tcp_write, a_chain_of_empty_writes_lets_a_timer_run) {
    zev_tcp_t a, b;
    zt_tcp_pair(&a, &b);
    start_write_chain(&a, NULL);
    cr_assert(zt_run_until(&timer_fired, 1, 10000));
    cr_assert_gt(writes_done, 1, "the chain ran");
    end_write_chain(&a);
    close_pair(&a, &b);
}

struct fast_reader {
    int fd;
    size_t n;
};

static void *read_until_eof(void *arg) {
    struct fast_reader *r = arg;
    static char buf[256 * 1024];
    ssize_t n;
    while ((n = read(r->fd, buf, sizeof(buf))) > 0) r->n += (size_t)n;
    return NULL;
}

static int connected;

static void note_connected(zev_tcp_t *t, int status) {
    (void)t;
    cr_assert_eq(status, 0);
    connected = 1;
}

/* A reader on its own thread takes the bytes as fast as they come, so the kernel seldom (if
 * ever) says EAGAIN: only a budget per iteration lets the timer run. */
Test(tcp_write, a_write_callback_that_keeps_writing_to_a_fast_reader_lets_a_timer_run) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&addr, &len), 0);
    zev_tcp_t a;
    cr_assert_eq(zev_tcp_init(&zt_loop, &a), 0);
    connected = 0;
    cr_assert_eq(zev_tcp_connect(&a, "127.0.0.1", ntohs(addr.sin_port), note_connected), 0);
    cr_assert(zt_run_until(&connected, 1, 10000));
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 10000), 1);
    struct fast_reader r = {.fd = accept(lfd, NULL, NULL)};
    cr_assert_geq(r.fd, 0);
    pthread_t reader;
    cr_assert_eq(pthread_create(&reader, NULL, read_until_eof, &r), 0);

    static char chunk[16]; /* small: the reader keeps ahead, so the kernel is never full */
    zev_slice_t s = zev_slice(chunk, sizeof(chunk));
    start_write_chain(&a, &s);
    cr_assert(zt_run_until(&timer_fired, 1, 10000));
    cr_assert_gt(writes_done, 1, "the chain ran");
    end_write_chain(&a);
    cr_assert_eq(zev_tcp_end(&a), 0);
    zt_run();
    pthread_join(reader, NULL);
    cr_assert_eq(r.n, zev_tcp_bytes_written(&a), "every byte arrived");
    cr_assert_eq(r.n, (size_t)writes_done * sizeof(chunk));
    close(r.fd);
    close(lfd);
    zev_close(&a.handle, NULL);
    zt_run();
}
