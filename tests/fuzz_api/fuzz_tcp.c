/* tests/fuzz_api/fuzz_tcp.c: the fuzzer's TCP operations and callbacks: listeners, clients
 * (to a zev listener, to a listener that never accepts, to a port that refuses), writes of
 * every slice kind, end, destroy, pause/resume, pipe and the fuzzer's own relay, timeouts.
 *
 * Every callback first checks that it may run at all (nothing but cancelled write callbacks
 * and the close callback after zev_close), then what it carries against the model, and may
 * then close its own handle or another one, so that closing is tried from inside every kind
 * of callback.
 */
#include "fuzz_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Whether the loop runs on io_uring, where a receive may be in flight into the pool when the
 * socket switches to user memory (only the public API is used here). */
static bool completes(struct fz *fz) {
    return strcmp(zev_loop_backend(&fz->loop, NULL), "io_uring") == 0;
}

/* A write (or sendfile) with a callback: what to release and check when it completes. */
struct fz_write {
    struct fz_stream *s;
    uint32_t sid;
    uint32_t seq;              /* write callbacks run in call order: this is the n-th */
    char *raw;                 /* caller memory, ours until the callback */
    zev_buf_t *held[4];        /* pool buffers we keep a reference to until the callback */
    int n_held;
    int file_fd;               /* sendfile source, or -1 */
    struct fz_stream *relay_src; /* a relayed slice of this stream's user memory */
};

static void on_data(zev_tcp_t *t, const zev_slice_t *slice);
static void on_end(zev_tcp_t *t);
static void on_error(zev_tcp_t *t, int err);
static void on_drain(zev_tcp_t *t);
static void on_timeout(zev_tcp_t *t);
static void on_finish(zev_tcp_t *t);

static const zev_tcp_events_t stream_events = {
    .data = on_data,      .end = on_end,         .error = on_error,
    .drain = on_drain,    .timeout = on_timeout, .finish = on_finish,
};

/* ---- slots ------------------------------------------------------------------------------- */

static struct fz_stream *stream_alloc(struct fz *fz) {
    for (int i = 0; i < FZ_STREAMS; i++) {
        struct fz_stream *s = &fz->streams[i];
        if (s->phase != FZ_FREE || s->pins > 0) continue;
        memset(s, 0, sizeof(*s));
        s->fz = fz;
        s->slot = i;
        s->id = ++fz->next_id;
        s->out_key = s->id;
        int err = zev_tcp_init(&fz->loop, &s->tcp);
        if (err < 0) fz_fail(fz, "zev_tcp_init: %s", zev_err_name(err));
        zev_tcp_set_events(&s->tcp, &stream_events);
        s->phase = FZ_IDLE;
        s->ref = true;
        return s;
    }
    return NULL;
}

struct fz_stream *fz_stream_pick(struct fz *fz, unsigned phases) {
    struct fz_stream *cand[FZ_STREAMS];
    int n = 0;
    for (int i = 0; i < FZ_STREAMS; i++)
        if (phases & (1u << fz->streams[i].phase)) cand[n++] = &fz->streams[i];
    return n ? cand[fz_below(fz, (unsigned)n)] : NULL;
}

static bool usable(const struct fz_stream *s) {
    return s && (s->phase == FZ_IDLE || s->phase == FZ_CONNECTING || s->phase == FZ_OPEN);
}

/* What s receives: its peer's output, or the copy kept when the peer went away. */
static bool input_of(const struct fz_stream *s, uint32_t *key, uint64_t *base) {
    if (s->peer) {
        *key = s->peer->out_key;
        *base = s->peer->out_base;
        return true;
    }
    *key = s->in_key;
    *base = s->in_base;
    return s->in_known;
}

/* ---- closing ----------------------------------------------------------------------------- */

static void drop_held(struct fz_stream *s) {
    for (int i = 0; i < s->n_held; i++) zev_buf_unref(s->held[i].owner);
    s->n_held = 0;
}

/* Forwarding from src stops (its destination or itself is closing, or it was undone). */
static void stop_forwarding(struct fz_stream *src) {
    struct fz_stream *dst = src->fwd;
    if (!dst) return;
    if (src->fwd_mode == FZ_FWD_PIPE) src->resync = true; /* the pipe took bytes we never saw */
    dst->fed_by = NULL;
    src->fwd = NULL;
    src->fwd_mode = FZ_FWD_NONE;
    drop_held(src);
    if (src->relay_paused) {
        src->relay_paused = false;
        if (usable(src) && src->reading && !src->relay_wait) zev_tcp_read_start(&src->tcp);
    }
}

static void on_stream_closed(zev_handle_t *h);

void fz_stream_close(struct fz_stream *s, const char *why) {
    struct fz *fz = s->fz;
    int err = zev_close(&s->tcp.handle, on_stream_closed);
    if (err != 0) fz_fail(fz, "zev_close(s%u) in phase %d: %s", s->id, s->phase, zev_err_name(err));
    fz_log(fz, "close s%u (%s)", s->id, why);
    s->phase = FZ_CLOSING;
    s->connect_due = false; /* a connect in flight is abandoned, callback and all */
    stop_forwarding(s);     /* zev unpipes a closing socket itself */
    if (s->fed_by) stop_forwarding(s->fed_by);
}

static void maybe_close_from_cb(struct fz_stream *s, unsigned self_one_in, const char *kind) {
    struct fz *fz = s->fz;
    if (s->phase == FZ_CLOSING || s->phase == FZ_FREE) return;
    unsigned r = fz_cb_below(fz, s->id, &s->ncb, self_one_in * 3);
    if (r == 0) {
        char why[48];
        snprintf(why, sizeof(why), "from its %s callback", kind);
        fz_stream_close(s, why);
    } else if (r == 1) {
        fz_close_random_other(fz, &s->tcp.handle);
    }
}

static void on_stream_closed(zev_handle_t *h) {
    struct fz_stream *s = (struct fz_stream *)h;
    struct fz *fz = s->fz;
    fz_log(fz, "s%u close callback", s->id);
    if (s->phase != FZ_CLOSING) fz_fail(fz, "s%u: close callback in phase %d", s->id, s->phase);
    if (s->w_done != s->w_issued)
        fz_fail(fz, "s%u: close callback before %u write callbacks", s->id,
                s->w_issued - s->w_done);
    if (zev_is_active(h)) fz_fail(fz, "s%u: zev_is_active() is 1 in its close callback", s->id);
    fz->res.closes++;
    if (s->peer) {
        /* The peer keeps checking what is still on its way from us. */
        struct fz_stream *p = s->peer;
        p->in_known = true;
        p->in_key = s->out_key;
        p->in_base = s->out_base;
        p->peer = NULL;
    }
    drop_held(s);
    s->phase = FZ_FREE;
    if (fz_cb_below(fz, s->id, &s->ncb, 8) == 0) fz_close_random_other(fz, NULL);
}

/* Every stream callback: nothing but cancellations runs after zev_close. */
static struct fz_stream *enter(zev_tcp_t *t, const char *kind) {
    struct fz_stream *s = (struct fz_stream *)t;
    struct fz *fz = s->fz;
    if (s->phase == FZ_CLOSING || s->phase == FZ_FREE)
        fz_fail(fz, "s%u: %s callback after zev_close", s->id, kind);
    return s;
}

/* ---- writing ----------------------------------------------------------------------------- */

static void on_write(zev_tcp_t *t, int status, void *arg);
static int connect_to(struct fz *fz, enum fz_target target);

static struct fz_write *write_new(struct fz_stream *s) {
    struct fz_write *w = calloc(1, sizeof(*w));
    if (!w) abort();
    w->s = s;
    w->sid = s->id;
    w->seq = s->w_issued;
    w->file_fd = -1;
    return w;
}

static void write_release(struct fz_write *w) {
    free(w->raw);
    for (int i = 0; i < w->n_held; i++) zev_buf_unref(w->held[i]);
    if (w->file_fd >= 0) close(w->file_fd);
    free(w);
}

/* After a write call: what zev_tcp_write's result means for the model. */
static bool write_taken(struct fz_stream *s, int r, bool with_cb, const char *what) {
    struct fz *fz = s->fz;
    if (s->ended && r != -EPIPE) fz_fail(fz, "s%u: %s after end returned %d, not -EPIPE", s->id, what, r);
    if (r < 0) {
        /* Any other errno is a failure zev has seen and will report in the error event. */
        if (r == -EBADF || r == -EINVAL || (r == -ENOTCONN && !s->connect_failed))
            fz_fail(fz, "s%u: %s on a live stream: %s", s->id, what, zev_err_name(r));
        return false;
    }
    if (r > 1) fz_fail(fz, "s%u: %s returned %d", s->id, what, r);
    if (r == 1) s->need_drain = true;
    if (with_cb) s->w_issued++;
    return true;
}

static size_t pick_len(struct fz *fz, size_t max) {
    unsigned r = fz_below(fz, 100);
    size_t len = r < 70 ? 1 + fz_below(fz, 2000) : r < 95 ? 1 + fz_below(fz, 16384) : 1 + fz_below(fz, 65536);
    return len < max ? len : max;
}

/* A write of 1 to 4 slices, each raw memory, a pool chunk handed over, or a pool chunk we
 * keep referenced until the callback. */
static void do_write(struct fz_stream *s) {
    struct fz *fz = s->fz;
    zev_slice_t sl[4];
    unsigned n = 1 + fz_below(fz, 4);
    struct fz_write *w = write_new(s);
    zev_buf_t *given[4];
    int n_given = 0;
    bool need_cb = false;
    uint64_t off = s->out_off;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned kind = fz_below(fz, 3);
        if (kind == 0 && !w->raw) {
            size_t len = fz_below(fz, 20) == 0 ? 1 + fz_below(fz, 262144) : pick_len(fz, 65536);
            w->raw = malloc(len);
            fz_fill(w->raw, len, s->out_key, off);
            sl[i] = zev_slice(w->raw, len);
            need_cb = true;
        } else {
            zev_buf_t *b = zev_buf_get(&fz->loop);
            if (!b) fz_fail(fz, "zev_buf_get: pool exhausted");
            size_t skip = fz_below(fz, 64);
            size_t len = pick_len(fz, b->size - skip);
            fz_fill(b->base + skip, len, s->out_key, off);
            sl[i] = (zev_slice_t){b->base + skip, len, b};
            if (kind == 2) {
                w->held[w->n_held++] = b; /* ours until the callback */
                need_cb = true;
            } else {
                given[n_given++] = b; /* zev takes its own reference if it must queue */
            }
        }
        off += sl[i].len;
        total += sl[i].len;
    }
    bool with_cb = need_cb || fz_below(fz, 2);
    int r = zev_tcp_write(&s->tcp, sl, n, with_cb ? on_write : NULL, w);
    fz_log(fz, "write s%u %u slices %zu bytes at %llu%s -> %d", s->id, n, total,
           (unsigned long long)s->out_off, with_cb ? " cb" : "", r);
    for (int i = 0; i < n_given; i++) zev_buf_unref(given[i]);
    if (write_taken(s, r, with_cb, "write")) {
        s->out_off += total;
        s->out_frozen = true;
        if (with_cb) return;
    }
    write_release(w);
}

static bool can_write(const struct fz_stream *s) {
    return (s->phase == FZ_CONNECTING || s->phase == FZ_OPEN) && !s->out_forwarded &&
           zev_tcp_write_queue_size(&s->tcp) < (2u << 20);
}

static struct fz_stream *pick_writer(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE);
    return s && can_write(s) ? s : NULL;
}

int op_write(struct fz *fz) {
    struct fz_stream *s = pick_writer(fz);
    if (!s) return 0;
    do_write(s);
    return 1;
}

/* A write with a callback and no bytes: the callback must still wait its turn. */
static void do_write_empty(struct fz_stream *s) {
    struct fz_write *w = write_new(s);
    int r = zev_tcp_write(&s->tcp, NULL, 0, on_write, w);
    fz_log(s->fz, "write s%u nothing, with a callback -> %d", s->id, r);
    if (!write_taken(s, r, true, "empty write")) write_release(w);
}

int op_write_empty(struct fz *fz) {
    struct fz_stream *s = pick_writer(fz);
    if (!s) return 0;
    do_write_empty(s);
    return 1;
}

int op_sendfile(struct fz *fz) {
    struct fz_stream *s = pick_writer(fz);
    if (!s) return 0;
    size_t len = fz_below(fz, 8) == 0 ? 0 : pick_len(fz, 65536);
    int fd = memfd_create("fz", MFD_CLOEXEC);
    if (fd < 0) fz_fail(fz, "memfd_create: %s", strerror(errno));
    char *tmp = malloc(len + 1);
    fz_fill(tmp, len, s->out_key, s->out_off);
    if (write(fd, tmp, len) != (ssize_t)len) fz_fail(fz, "filling the sendfile source failed");
    free(tmp);
    struct fz_write *w = write_new(s);
    w->file_fd = fd;
    int r = zev_tcp_sendfile(&s->tcp, fd, 0, len, on_write, w);
    fz_log(fz, "sendfile s%u %zu bytes at %llu -> %d", s->id, len, (unsigned long long)s->out_off, r);
    if (r == -ENOSYS) {
        write_release(w);
        return 1;
    }
    if (write_taken(s, r, true, "sendfile")) {
        s->out_off += len;
        s->out_frozen = true;
        return 1;
    }
    write_release(w);
    return 1;
}

static void resume_relay_source(struct fz_stream *src) {
    if (usable(src) && src->reading && !src->relay_wait && !src->relay_paused)
        zev_tcp_read_start(&src->tcp);
}

static void on_write(zev_tcp_t *t, int status, void *arg) {
    struct fz_write *w = arg;
    struct fz_stream *s = (struct fz_stream *)t;
    struct fz *fz = s->fz;
    fz_log(fz, "s%u write callback #%u: %s", s->id, w->seq, status ? zev_err_name(status) : "0");
    if (w->s != s || w->sid != s->id) fz_fail(fz, "s%u: a write callback of s%u", s->id, w->sid);
    if (s->phase == FZ_FREE) fz_fail(fz, "s%u: write callback after the close callback", s->id);
    if (s->phase == FZ_CLOSING && status != -ECANCELED && status != 0)
        fz_fail(fz, "s%u: write callback after zev_close with %s (only -ECANCELED may come)",
                s->id, zev_err_name(status));
    if (status > 0) fz_fail(fz, "s%u: write callback status %d", s->id, status);
    if (w->seq != s->w_done)
        fz_fail(fz, "s%u: write callback #%u ran when #%u was due (each once, in order)", s->id,
                w->seq, s->w_done);
    s->w_done++;
    if (status != 0) s->told = true;
    if (w->relay_src) {
        struct fz_stream *src = w->relay_src;
        src->pins--;
        src->relay_wait = false;
        resume_relay_source(src);
    }
    write_release(w);
    maybe_close_from_cb(s, 2, "write");
}

/* ---- forwarding: zev's pipe, or the fuzzer relaying in its data callback ------------------ */

void fz_stream_flush_held(struct fz_stream *s) {
    struct fz_stream *dst = s->fwd;
    for (int i = 0; i < s->n_held && s->fwd; i++) {
        int r = zev_tcp_write(&dst->tcp, &s->held[i], 1, NULL, NULL);
        if (r == 1) dst->need_drain = true;
        if (r < 0) stop_forwarding(s);
    }
    drop_held(s);
}

static void relay(struct fz_stream *s, const zev_slice_t *slice) {
    struct fz *fz = s->fz;
    struct fz_stream *dst = s->fwd;
    if (slice->owner && s->n_held < FZ_HELD && fz_cb_below(fz, s->id, &s->ncb, 3) == 0) {
        s->held[s->n_held++] = (zev_slice_t){slice->base, slice->len, zev_buf_ref(slice->owner)};
        return;
    }
    fz_stream_flush_held(s);
    if (!s->fwd) return;
    int r;
    if (slice->owner) {
        r = zev_tcp_write(&dst->tcp, slice, 1, NULL, NULL);
    } else {
        /* User memory: it must not change until the write's callback, so stop reading. */
        struct fz_write *w = write_new(dst);
        w->relay_src = s;
        r = zev_tcp_write(&dst->tcp, slice, 1, on_write, w);
        if (r >= 0) {
            dst->w_issued++;
            s->pins++;
            s->relay_wait = true;
            zev_tcp_read_stop(&s->tcp);
        } else {
            free(w);
        }
    }
    if (r == 1) {
        dst->need_drain = true;
        s->relay_paused = true;
        zev_tcp_read_stop(&s->tcp);
    }
    if (r < 0) stop_forwarding(s);
}

static bool can_feed(struct fz_stream *a) {
    uint32_t key;
    uint64_t base;
    return a && !a->fwd && !a->fwd_used && input_of(a, &key, &base) &&
           a->rx_next == zev_tcp_bytes_read(&a->tcp);
}

static bool can_be_fed(const struct fz_stream *b, const struct fz_stream *a) {
    return b && b != a && !b->out_frozen && !b->out_forwarded && !b->fed_by && b != a->peer;
}

/* src may forward to dst: src's input is known, dst has sent nothing of its own yet. */
static bool pick_forwarding(struct fz *fz, struct fz_stream **src, struct fz_stream **dst) {
    struct fz_stream *a = fz_stream_pick(fz, FZ_M_LIVE);
    struct fz_stream *b = fz_stream_pick(fz, FZ_M_LIVE);
    if (!can_feed(a) || !can_be_fed(b, a)) return false;
    *src = a;
    *dst = b;
    return true;
}

static void start_forwarding(struct fz_stream *src, struct fz_stream *dst, enum fz_fwd mode,
                             bool end_dst) {
    uint32_t key;
    uint64_t base;
    input_of(src, &key, &base);
    if (src->peer) src->peer->out_frozen = true; /* dst's content is defined by it now */
    dst->out_key = key;
    dst->out_base = base + zev_tcp_bytes_read(&src->tcp);
    dst->out_frozen = dst->out_forwarded = true;
    dst->fed_by = src;
    src->fwd = dst;
    src->fwd_mode = mode;
    src->fwd_end = end_dst;
    src->fwd_used = true;
}

/* Pipe src into dst (op_pipe, op_proxy): the model follows only a pipe the library took. */
static void pipe_streams(struct fz *fz, struct fz_stream *src, struct fz_stream *dst,
                         bool end_dst, const char *what) {
    int r = zev_tcp_pipe(&src->pipe, &src->tcp, &dst->tcp, end_dst);
    fz_log(fz, "%s s%u%s -> s%u end %d -> %d", what, src->id,
           src->user_mem ? " (user memory)" : "", dst->id, end_dst, r);
    if (r == -EBADF || r == -EINVAL || r == -EBUSY)
        fz_fail(fz, "zev_tcp_pipe(s%u, s%u): %s", src->id, dst->id, zev_err_name(r));
    if (r < 0) return; /* a failed source: the call changed nothing */
    start_forwarding(src, dst, FZ_FWD_PIPE, end_dst);
    dst->was_pipe_dst = true;
    src->reading = true;
}

int op_pipe(struct fz *fz) {
    struct fz_stream *src, *dst;
    if (!pick_forwarding(fz, &src, &dst)) return 0;
    pipe_streams(fz, src, dst, fz_below(fz, 2), "pipe");
    return 1;
}

int op_relay(struct fz *fz) {
    struct fz_stream *src, *dst;
    if (!pick_forwarding(fz, &src, &dst)) return 0;
    bool end_dst = fz_below(fz, 2);
    fz_log(fz, "relay s%u -> s%u end %d", src->id, dst->id, end_dst);
    start_forwarding(src, dst, FZ_FWD_RELAY, end_dst);
    return 1;
}

/* A proxy's usual move: connect upstream and pipe (or relay) a stream into it at once, while
 * the connect is still in flight; the source maybe reads into a small user buffer. */
int op_proxy(struct fz *fz) {
    struct fz_stream *src = fz_stream_pick(fz, FZ_M_LIVE);
    if (!can_feed(src) || !connect_to(fz, FZ_TG_SERVER)) return 0;
    struct fz_stream *dst = NULL;
    for (int i = 0; i < FZ_STREAMS; i++)
        if (fz->streams[i].id == fz->next_id) dst = &fz->streams[i];
    if (!usable(src) || !can_be_fed(dst, src)) return 1; /* the connect wrote or closed */
    if (!src->pins && !src->relay_wait && fz_below(fz, 2)) {
        size_t len = 1 + fz_below(fz, 64);
        if (zev_tcp_set_read_buffer(&src->tcp, src->ubuf, len) == 0) {
            src->pool_grace = !src->user_mem && completes(fz);
            src->user_mem = true;
            src->ubuf_len = len;
        }
    }
    bool end_dst = fz_below(fz, 2);
    if (fz_below(fz, 3) == 0) {
        fz_log(fz, "proxy: relay s%u -> s%u end %d", src->id, dst->id, end_dst);
        start_forwarding(src, dst, FZ_FWD_RELAY, end_dst);
        return 1;
    }
    pipe_streams(fz, src, dst, end_dst, "proxy: pipe");
    return 1;
}

int op_unforward(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE);
    if (!s || !s->fwd) return 0;
    if (s->fwd_mode == FZ_FWD_PIPE) {
        int r = zev_tcp_unpipe(&s->pipe);
        s->pool_grace = s->user_mem && completes(fz);
        if (r != 0) fz_fail(fz, "zev_tcp_unpipe(s%u): %s", s->id, zev_err_name(r));
    } else {
        fz_stream_flush_held(s);
    }
    fz_log(fz, "unforward s%u -> s%u", s->id, s->fwd ? s->fwd->id : 0);
    stop_forwarding(s);
    return 1;
}

int op_flush_held(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE);
    if (!s || !s->n_held) return 0;
    fz_log(fz, "flush %d held slices of s%u", s->n_held, s->id);
    fz_stream_flush_held(s);
    return 1;
}

/* ---- stream events ----------------------------------------------------------------------- */

static void check_bytes(struct fz_stream *s, const zev_slice_t *slice, uint64_t off) {
    struct fz *fz = s->fz;
    uint32_t key;
    uint64_t base;
    if (!input_of(s, &key, &base)) return;
    for (size_t i = 0; i < slice->len; i++) {
        uint8_t want = fz_pattern(key, base + off + i);
        if ((uint8_t)slice->base[i] != want)
            fz_fail(fz, "s%u: byte %llu is 0x%02x, 0x%02x was sent (content key %u from %llu)",
                    s->id, (unsigned long long)(off + i), (uint8_t)slice->base[i], want, key,
                    (unsigned long long)base);
    }
}

static void on_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct fz_stream *s = enter(t, "data");
    struct fz *fz = s->fz;
    uint64_t total = zev_tcp_bytes_read(t);
    uint64_t off = total - slice->len;
    fz_log(fz, "s%u data %zu bytes at %llu", s->id, slice->len, (unsigned long long)off);
    if (s->fwd && s->fwd_mode == FZ_FWD_PIPE)
        fz_fail(fz, "s%u: piped data reached its own data callback", s->id);
    if (s->resync) s->rx_next = off;
    s->resync = false;
    if (off != s->rx_next)
        fz_fail(fz, "s%u: data at offset %llu, expected %llu (bytes lost or repeated)", s->id,
                (unsigned long long)off, (unsigned long long)s->rx_next);
    if (s->user_mem && slice->owner == NULL) s->pool_grace = false;
    bool graced = s->user_mem && slice->owner && s->pool_grace;
    if (graced) fz_log(fz, "s%u: bytes received before the switch, from the pool", s->id);
    if (!graced && s->user_mem != (slice->owner == NULL))
        fz_fail(fz, "s%u: slice owner %p while reading into %s", s->id, (void *)slice->owner,
                s->user_mem ? "user memory" : "the pool");
    if (!graced && s->user_mem && (slice->base < s->ubuf || slice->base + slice->len > s->ubuf + s->ubuf_len))
        fz_fail(fz, "s%u: slice outside the user buffer", s->id);
    check_bytes(s, slice, off);
    s->rx_next = total;
    fz->res.bytes += slice->len;
    if (s->fwd && s->fwd_mode == FZ_FWD_RELAY) relay(s, slice);
    maybe_close_from_cb(s, 16, "data");
}

/* At EOF: if the peer finished without being told of any failure, every byte it wrote came. */
static void check_complete(struct fz_stream *s) {
    struct fz_stream *p = s->peer;
    if (!p || p->out_forwarded || !p->finished || p->told || p->failed) return;
    uint64_t got = zev_tcp_bytes_read(&s->tcp);
    if (got != p->out_off)
        fz_fail(s->fz, "s%u: EOF after %llu bytes, but s%u wrote %llu, finished, and was told of "
                "no failure", s->id, (unsigned long long)got, p->id,
                (unsigned long long)p->out_off);
}

static void on_end(zev_tcp_t *t) {
    struct fz_stream *s = enter(t, "end");
    struct fz *fz = s->fz;
    fz_log(fz, "s%u end (EOF)", s->id);
    if (s->eof) fz_fail(fz, "s%u: end event twice", s->id);
    s->eof = true;
    check_complete(s);
    if (!s->half_open) s->ended = true; /* zev ends our side after this callback */
    struct fz_stream *dst = s->fwd;
    if (dst && s->fwd_end && usable(dst)) {
        if (s->fwd_mode == FZ_FWD_RELAY) {
            fz_stream_flush_held(s);
            if (zev_tcp_end(&dst->tcp) == 0) dst->ended = true;
        } else {
            dst->ended = true; /* the pipe ended it before this callback */
        }
    }
    maybe_close_from_cb(s, 6, "end");
}

static void on_error(zev_tcp_t *t, int err) {
    struct fz_stream *s = enter(t, "error");
    struct fz *fz = s->fz;
    fz_log(fz, "s%u error %s", s->id, zev_err_name(err));
    if (s->failed) fz_fail(fz, "s%u: error event twice (or after a failed connect)", s->id);
    if (err >= 0) fz_fail(fz, "s%u: error event with %d", s->id, err);
    if (s->w_done != s->w_issued)
        fz_fail(fz, "s%u: error event before %u write callbacks (they complete first)", s->id,
                s->w_issued - s->w_done);
    s->failed = s->told = true;
    if (fz->winding_down) {
        fz_stream_close(s, "error while winding down"); /* as a user must */
        return;
    }
    maybe_close_from_cb(s, 3, "error");
}

static void on_drain(zev_tcp_t *t) {
    struct fz_stream *s = enter(t, "drain");
    fz_log(s->fz, "s%u drain", s->id);
    if (!s->need_drain && !s->was_pipe_dst)
        fz_fail(s->fz, "s%u: drain event without a write that returned 1", s->id);
    s->need_drain = false;
    if (s->fed_by && s->fed_by->relay_paused) {
        s->fed_by->relay_paused = false;
        resume_relay_source(s->fed_by);
    }
    maybe_close_from_cb(s, 8, "drain");
}

static void on_timeout(zev_tcp_t *t) {
    struct fz_stream *s = enter(t, "timeout");
    fz_log(s->fz, "s%u timeout", s->id);
    if (fz_cb_below(s->fz, s->id, &s->ncb, 4) == 0) zev_tcp_set_timeout(t, 0);
    maybe_close_from_cb(s, 6, "timeout");
}

static void on_finish(zev_tcp_t *t) {
    struct fz_stream *s = enter(t, "finish");
    struct fz *fz = s->fz;
    fz_log(fz, "s%u finish", s->id);
    if (!s->ended) fz_fail(fz, "s%u: finish without end", s->id);
    if (s->finished) fz_fail(fz, "s%u: finish twice", s->id);
    if (s->w_done != s->w_issued)
        fz_fail(fz, "s%u: finish before %u write callbacks", s->id, s->w_issued - s->w_done);
    s->finished = true;
    maybe_close_from_cb(s, 4, "finish");
}

/* ---- connecting ------------------------------------------------------------------------- */

static void check_connected(struct fz_stream *s) {
    struct fz *fz = s->fz;
    struct tcp_info ti = {0};
    socklen_t len = sizeof(ti);
    int fd = zev_tcp_fileno(&s->tcp);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        fz_fail(fz, "s%u: TCP_INFO: %s", s->id, strerror(errno));
    if (ti.tcpi_state == TCP_SYN_SENT)
        fz_fail(fz, "s%u: connect callback with status 0 while the handshake is in SYN_SENT",
                s->id);
    zev_addr_info_t info;
    int err = zev_tcp_remote_address(&s->tcp, &info);
    if (err < 0 && ti.tcpi_state != TCP_CLOSE)
        fz_fail(fz, "s%u: connect callback with status 0 but zev_tcp_remote_address: %s (TCP "
                "state %d)", s->id, zev_err_name(err), ti.tcpi_state);
    if (s->target == FZ_TG_REFUSED) fz_fail(fz, "s%u: a refused connect reported 0", s->id);
}

static void on_connect(zev_tcp_t *t, int status) {
    struct fz_stream *s = enter(t, "connect");
    struct fz *fz = s->fz;
    fz_log(fz, "s%u connect callback: %s", s->id, status ? zev_err_name(status) : "0");
    if (!s->connect_due) fz_fail(fz, "s%u: connect callback twice", s->id);
    s->connect_due = false;
    s->phase = FZ_OPEN;
    if (status == 0) {
        check_connected(s);
        fz->res.connects_ok++;
    } else {
        s->failed = s->told = s->connect_failed = true;
        if (fz->winding_down) {
            fz_stream_close(s, "connect failed while winding down");
            return;
        }
    }
    maybe_close_from_cb(s, 4, "connect");
}

/* A client to target; then, as Node users often do, maybe a write or an end at once, before
 * the connect completes. */
static int connect_to(struct fz *fz, enum fz_target target) {
    struct fz_server *sv = &fz->servers[fz_below(fz, FZ_SERVERS)];
    if (target == FZ_TG_SERVER && sv->phase != FZ_OPEN) return 0;
    struct fz_stream *s = stream_alloc(fz);
    if (!s) return 0;
    const char *host = "127.0.0.1";
    int port = target == FZ_TG_RAW ? fz->raw_port : fz->refused_port;
    s->family = 4;
    s->target = target;
    if (target == FZ_TG_SERVER) {
        port = sv->port;
        s->family = sv->family;
        if (sv->family == 6) host = "::1";
    }
    int64_t timeout = 0;
    if (fz_below(fz, 100) < (s->target == FZ_TG_RAW ? 60 : 10)) timeout = 1 + fz_below(fz, 40);
    if (timeout) zev_tcp_set_connect_timeout(&s->tcp, timeout);
    int err = zev_tcp_connect(&s->tcp, host, port, on_connect);
    static const char *const names[] = {"accepted", "listener", "stalled", "refused"};
    fz_log(fz, "connect s%u -> %s %s:%d timeout %lld -> %d", s->id, names[s->target], host, port,
           (long long)timeout, err);
    if (err != 0) fz_fail(fz, "zev_tcp_connect(s%u): %s", s->id, zev_err_name(err));
    s->phase = FZ_CONNECTING;
    s->connect_due = true;
    zev_addr_info_t local;
    if (zev_tcp_local_address(&s->tcp, &local) == 0) s->local_port = local.port;
    s->server_port = port;
    /* Node users often write or end at once, before the connect completes. */
    for (unsigned n = fz_below(fz, 3) ? 0 : 1 + fz_below(fz, 3); n > 0; n--) {
        unsigned now = fz_below(fz, 100);
        if (s->ended) break;
        if (now < 60) do_write(s);
        else if (now < 80) do_write_empty(s);
        else if (zev_tcp_end(&s->tcp) == 0) s->ended = true;
    }
    return 1;
}

int op_connect(struct fz *fz) {
    return connect_to(fz, FZ_TG_SERVER);
}

/* To the listener that never accepts: once its queue is full, the handshake stalls in
 * SYN_SENT, and everything done meanwhile meets a connect that is not over. */
int op_connect_stalled(struct fz *fz) {
    return connect_to(fz, FZ_TG_RAW);
}

int op_connect_refused(struct fz *fz) {
    return connect_to(fz, FZ_TG_REFUSED);
}

/* ---- listeners --------------------------------------------------------------------------- */

static void on_server_closed(zev_handle_t *h) {
    struct fz_server *sv = (struct fz_server *)h;
    fz_log(sv->fz, "l%u close callback", sv->id);
    if (sv->phase != FZ_CLOSING) fz_fail(sv->fz, "l%u: close callback in phase %d", sv->id, sv->phase);
    sv->fz->res.closes++;
    sv->phase = FZ_FREE;
}

void fz_server_close(struct fz_server *sv, const char *why) {
    int err = zev_close(&sv->srv.handle, on_server_closed);
    if (err != 0) fz_fail(sv->fz, "zev_close(l%u): %s", sv->id, zev_err_name(err));
    fz_log(sv->fz, "close l%u (%s)", sv->id, why);
    sv->phase = FZ_CLOSING;
}

/* The client stream whose local port is the accepted socket's peer port and that connected
 * to this listener: the kernel may give one ephemeral port to two connections that go to
 * different listeners, so the local port alone does not name the client. */
static struct fz_stream *match_client(struct fz *fz, int family, int port, int server_port) {
    for (int i = 0; i < FZ_STREAMS; i++) {
        struct fz_stream *c = &fz->streams[i];
        if (c->phase != FZ_FREE && c->target == FZ_TG_SERVER && c->family == family &&
            c->local_port == port && c->server_port == server_port && !c->peer)
            return c;
    }
    return NULL;
}

static void on_connection(zev_tcp_server_t *srv, int status) {
    struct fz_server *sv = (struct fz_server *)srv;
    struct fz *fz = sv->fz;
    fz_log(fz, "l%u connection: %d", sv->id, status);
    if (sv->phase != FZ_OPEN) fz_fail(fz, "l%u: connection callback after zev_close", sv->id);
    if (status < 0) return;
    struct fz_stream *s = fz_below(fz, 10) ? stream_alloc(fz) : NULL;
    if (!s) return; /* not accepted: zev closes it, the client sees EOF or a reset */
    int err = zev_tcp_accept(srv, &s->tcp);
    if (err != 0) fz_fail(fz, "zev_tcp_accept into s%u: %s", s->id, zev_err_name(err));
    s->phase = FZ_OPEN;
    s->target = FZ_TG_ACCEPTED;
    s->family = sv->family;
    zev_addr_info_t peer;
    struct fz_stream *c = NULL;
    if (zev_tcp_remote_address(&s->tcp, &peer) == 0) c = match_client(fz, sv->family, peer.port, sv->port);
    if (c) {
        c->peer = s;
        s->peer = c;
    }
    fz_log(fz, "accepted s%u from l%u, peer s%u", s->id, sv->id, c ? c->id : 0);
    if (fz_below(fz, 10) < 7 && zev_tcp_read_start(&s->tcp) == 0) s->reading = true;
    if (fz_cb_below(fz, sv->id, &s->ncb, 24) == 0) fz_server_close(sv, "from its connection callback");
    else if (fz_cb_below(fz, sv->id, &s->ncb, 24) == 0) fz_close_random_other(fz, &srv->handle);
}

int op_listen(struct fz *fz) {
    int i = fz->have_v6 ? (int)fz_below(fz, FZ_SERVERS) : 0;
    struct fz_server *sv = &fz->servers[i];
    if (sv->phase != FZ_FREE) return 0;
    memset(sv, 0, sizeof(*sv));
    sv->fz = fz;
    sv->id = ++fz->next_id;
    sv->slot = i;
    sv->family = i == 0 ? 4 : 6;
    zev_tcp_server_init(&fz->loop, &sv->srv);
    zev_tcp_listen_opts_t o = {.backlog = (int)fz_below(fz, 4) * 16};
    int err = zev_tcp_listen(&sv->srv, i == 0 ? "127.0.0.1" : "::1", 0, &o, on_connection);
    if (err != 0) fz_fail(fz, "zev_tcp_listen(l%u): %s", sv->id, zev_err_name(err));
    zev_addr_info_t a;
    zev_tcp_server_address(&sv->srv, &a);
    sv->port = a.port;
    sv->phase = FZ_OPEN;
    sv->ref = true;
    fz_log(fz, "listen l%u on %s port %d", sv->id, a.address, a.port);
    return 1;
}

int op_server_close(struct fz *fz) {
    struct fz_server *sv = &fz->servers[fz_below(fz, FZ_SERVERS)];
    if (sv->phase != FZ_OPEN) return 0;
    fz_server_close(sv, "op");
    return 1;
}

/* ---- the rest of a stream's calls -------------------------------------------------------- */

int op_end(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE | FZ_M_IDLE);
    if (!s) return 0;
    int r = zev_tcp_end(&s->tcp);
    fz_log(fz, "end s%u -> %d", s->id, r);
    if (s->phase == FZ_IDLE) {
        if (r != -ENOTCONN) fz_fail(fz, "end on unconnected s%u returned %d", s->id, r);
        return 1;
    }
    if (r == -ENOTCONN && s->connect_failed) return 1; /* a dead socket */
    if (r != 0) fz_fail(fz, "end s%u: %s", s->id, zev_err_name(r));
    s->ended = true;
    return 1;
}

int op_destroy(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE | FZ_M_IDLE);
    if (!s) return 0;
    fz_stream_close(s, "destroy");
    return 1;
}

int op_pause(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE);
    if (!s) return 0;
    int r = zev_tcp_read_stop(&s->tcp);
    fz_log(fz, "pause s%u -> %d", s->id, r);
    if (r != 0) fz_fail(fz, "zev_tcp_read_stop(s%u): %s", s->id, zev_err_name(r));
    s->reading = false;
    return 1;
}

int op_resume(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE);
    if (!s) return 0;
    s->reading = true;
    if (s->relay_wait || s->relay_paused) return 1; /* resumed when the relay allows */
    int r = zev_tcp_read_start(&s->tcp);
    fz_log(fz, "resume s%u -> %d", s->id, r);
    if (r > 0 || r == -EBADF || r == -EINVAL || (r == -ENOTCONN && !s->connect_failed))
        fz_fail(fz, "zev_tcp_read_start(s%u): %s", s->id, zev_err_name(r));
    return 1;
}

int op_read_buffer(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE | FZ_M_IDLE);
    if (!s || s->pins || s->relay_wait) return 0;
    size_t len = fz_below(fz, 2) ? 1 + fz_below(fz, 256) : 1 + fz_below(fz, FZ_UBUF_MAX);
    bool user = !s->user_mem;
    int r = zev_tcp_set_read_buffer(&s->tcp, user ? s->ubuf : NULL, user ? len : 0);
    fz_log(fz, "read buffer s%u %s %zu -> %d", s->id, user ? "user" : "pool", user ? len : 0, r);
    if (r != 0) fz_fail(fz, "zev_tcp_set_read_buffer(s%u): %s", s->id, zev_err_name(r));
    s->pool_grace = user && completes(fz);
    s->user_mem = user;
    s->ubuf_len = user ? len : 0;
    return 1;
}

int op_set_timeout(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE | FZ_M_IDLE);
    if (!s) return 0;
    int64_t ms = fz_below(fz, 3) ? 1 + fz_below(fz, 30) : 0;
    int r = zev_tcp_set_timeout(&s->tcp, ms);
    fz_log(fz, "set_timeout s%u %lld -> %d", s->id, (long long)ms, r);
    if (r != 0) fz_fail(fz, "zev_tcp_set_timeout(s%u): %s", s->id, zev_err_name(r));
    return 1;
}

int op_half_open(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_LIVE | FZ_M_IDLE);
    if (!s || s->eof) return 0;
    bool on = fz_below(fz, 2);
    int r = zev_tcp_set_allow_half_open(&s->tcp, on);
    fz_log(fz, "half_open s%u %d -> %d", s->id, on, r);
    if (r != 0) fz_fail(fz, "zev_tcp_set_allow_half_open(s%u): %s", s->id, zev_err_name(r));
    s->half_open = on;
    return 1;
}

/* Calls on a handle being closed fail with -EBADF and change nothing. */
int op_poke_closing(struct fz *fz) {
    struct fz_stream *s = fz_stream_pick(fz, FZ_M_CLOSING);
    if (!s) return 0;
    zev_slice_t sl = zev_slice("x", 1);
    int r[5] = {zev_tcp_write(&s->tcp, &sl, 1, NULL, NULL), zev_tcp_end(&s->tcp),
                zev_tcp_read_start(&s->tcp), zev_close(&s->tcp.handle, NULL),
                zev_tcp_set_timeout(&s->tcp, 5)};
    fz_log(fz, "poke closing s%u -> %d %d %d %d %d", s->id, r[0], r[1], r[2], r[3], r[4]);
    for (int i = 0; i < 5; i++)
        if (r[i] != -EBADF)
            fz_fail(fz, "s%u: call %d on a closing stream returned %d, not -EBADF", s->id, i, r[i]);
    return 1;
}

/* Close what cannot finish by itself, stop listening, and let every stream read. */
void fz_tcp_wind_down(struct fz *fz) {
    for (int i = 0; i < FZ_STREAMS; i++) {
        struct fz_stream *s = &fz->streams[i];
        if (!usable(s)) continue;
        fz_stream_flush_held(s);
        if (s->target == FZ_TG_RAW || s->target == FZ_TG_REFUSED || s->failed)
            fz_stream_close(s, "winding down");
    }
    /* The stalled listener goes away too, as a peer that never reads eventually does: its
     * queued connections are reset. Until then, the kernel still holds the bytes a stream
     * closed above had sent it with zero-copy (ZEV_SEND_ZC_MIN), and that stream's close
     * callback rightly waits for them (docs/tcp.md, "Zero-copy send"). */
    close(fz->raw_fd);
    fz->raw_fd = -1;
    for (int i = 0; i < FZ_SERVERS; i++)
        if (fz->servers[i].phase == FZ_OPEN) fz_server_close(&fz->servers[i], "winding down");
    for (int i = 0; i < FZ_STREAMS; i++) {
        struct fz_stream *s = &fz->streams[i];
        if (!usable(s)) continue;
        if (s->phase == FZ_IDLE) {
            fz_stream_close(s, "never connected");
            continue;
        }
        s->reading = true;
        if (!s->relay_wait && !s->relay_paused) zev_tcp_read_start(&s->tcp);
        if (fz_below(fz, 2) && !s->ended && zev_tcp_end(&s->tcp) == 0) s->ended = true;
    }
}
