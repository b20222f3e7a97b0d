/* tests/fuzz_api/fuzz.c: one fuzz run: the operation table, the step loop, the checks made
 * after every step, winding down, and the failure report. The operations themselves live in
 * fuzz_tcp.c and fuzz_misc.c; docs/testing.md explains the whole.
 */
#include "fuzz_internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- randomness ------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* xorshift64*: the sequence of operations. */
uint64_t fz_rand(struct fz *fz) {
    uint64_t x = fz->prng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    fz->prng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

unsigned fz_below(struct fz *fz, unsigned n) {
    return n ? (unsigned)(fz_rand(fz) % n) : 0;
}

unsigned fz_cb_below(struct fz *fz, uint32_t id, uint64_t *ncb, unsigned n) {
    uint64_t x = splitmix64(fz->opt.seed ^ ((uint64_t)id << 32) ^ splitmix64((*ncb)++));
    return n ? (unsigned)(x % n) : 0;
}

/* The byte at offset off of a stream whose content key is key. Any lost, repeated or
 * reordered byte lands at an offset where a different byte was due. */
uint8_t fz_pattern(uint32_t key, uint64_t off) {
    uint64_t x = ((uint64_t)key << 40) ^ off;
    x *= 0x9E3779B97F4A7C15ull;
    return (uint8_t)(x >> 56 ^ x >> 29);
}

void fz_fill(char *dst, size_t len, uint32_t key, uint64_t off) {
    for (size_t i = 0; i < len; i++) dst[i] = (char)fz_pattern(key, off + i);
}

/* ---- the log and the failure report ----------------------------------------------------- */

void fz_log(struct fz *fz, const char *fmt, ...) {
    char *line = fz->log[fz->log_next++ % FZ_LOG_LINES];
    int n = snprintf(line, FZ_LOG_LINE, "%5u ", fz->op_no);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, FZ_LOG_LINE - (size_t)n, fmt, ap);
    va_end(ap);
    if (fz->opt.verbose) fprintf(stderr, "%s\n", line);
}

static const char *phase_name(enum fz_phase p) {
    static const char *const names[] = {"free", "idle", "connecting", "open", "closing"};
    return names[p];
}

static size_t dump_state(struct fz *fz, char *out, size_t cap) {
    size_t n = 0;
    for (int i = 0; i < FZ_STREAMS && n < cap; i++) {
        struct fz_stream *s = &fz->streams[i];
        if (s->phase == FZ_FREE) continue;
        n += (size_t)snprintf(out + n, cap - n,
                              "  s%u %s%s%s%s%s%s%s writes %u/%u out %llu read %llu active %d\n",
                              s->id, phase_name(s->phase), s->ref ? "" : " unref'd",
                              s->ended ? " ended" : "", s->finished ? " finished" : "",
                              s->eof ? " eof" : "", s->failed ? " failed" : "",
                              s->connect_due ? " connect-due" : "", s->w_done, s->w_issued,
                              (unsigned long long)s->out_off,
                              (unsigned long long)zev_tcp_bytes_read(&s->tcp),
                              zev_is_active(&s->tcp.handle));
    }
    return n < cap ? n : cap;
}

_Noreturn void fz_fail(struct fz *fz, const char *fmt, ...) {
    enum { CAP = FZ_LOG_LINES * (FZ_LOG_LINE + 1) + 8192 };
    char *r = malloc(CAP);
    if (!r) abort();
    size_t n = (size_t)snprintf(r, CAP, "api_fuzz FAILED: seed %llu, backend %s, op %u: ",
                                (unsigned long long)fz->opt.seed, zev_backend_name(), fz->op_no);
    va_list ap;
    va_start(ap, fmt);
    n += (size_t)vsnprintf(r + n, CAP - n, fmt, ap);
    va_end(ap);
    n += (size_t)snprintf(r + n, CAP - n, "\nlive streams:\n");
    n += dump_state(fz, r + n, CAP - n);
    n += (size_t)snprintf(r + n, CAP - n, "last operations and callbacks:\n");
    unsigned first = fz->log_next > FZ_LOG_LINES ? fz->log_next - FZ_LOG_LINES : 0;
    for (unsigned i = first; i < fz->log_next && n < CAP; i++)
        n += (size_t)snprintf(r + n, CAP - n, "  %s\n", fz->log[i % FZ_LOG_LINES]);
    if (n < CAP)
        snprintf(r + n, CAP - n, "reproduce: fuzz_api --seed %llu --ops %u%s%s\n",
                 (unsigned long long)fz->opt.seed, fz->opt.max_ops,
                 fz->opt.weights ? " --weights " : "", fz->opt.weights ? fz->opt.weights : "");
    if (fz->opt.progress) *fz->opt.progress = fz->res;
    if (fz->opt.on_fail) fz->opt.on_fail(r, fz->opt.ctx);
    fputs(r, stderr);
    abort();
}

/* ---- liveness: what the model says about zev_loop_alive -------------------------------- */

/* Requests in flight (libuv's active requests) keep the loop alive even on unref'd handles:
 * an owed connect callback, owed write or send callbacks, an end not yet finished, and a
 * close callback not yet run. Returns how many; describes the first in why. */
static int model_requests(struct fz *fz, char *why, size_t cap) {
    int n = 0;
    for (int i = 0; i < FZ_STREAMS; i++) {
        struct fz_stream *s = &fz->streams[i];
        const char *what = NULL;
        if (s->phase == FZ_CLOSING) {
            what = "its close callback is due";
        } else if (s->phase == FZ_CONNECTING || s->phase == FZ_OPEN) {
            if (s->connect_due) {
                what = "its connect callback is due";
            } else if (s->w_issued != s->w_done) {
                what = "write callbacks are due";
            } else if (s->ended && !s->finished && !s->failed) {
                what = "its end has not finished";
            }
        }
        if (what && n++ == 0)
            snprintf(why, cap, "stream s%u (%s%s): %s", s->id, phase_name(s->phase),
                     s->ref ? "" : ", unref'd", what);
    }
    for (int i = 0; i < FZ_UDPS; i++) {
        struct fz_udp *u = &fz->udps[i];
        const char *what = u->phase == FZ_CLOSING      ? "its close callback is due"
                           : u->s_issued != u->s_done ? "send callbacks are due"
                                                      : NULL;
        if (what && u->phase != FZ_FREE && n++ == 0)
            snprintf(why, cap, "udp u%u%s: %s", u->id, u->ref ? "" : " (unref'd)", what);
    }
    for (int i = 0; i < FZ_TIMERS; i++) {
        if (fz->timers[i].phase == FZ_CLOSING && n++ == 0)
            snprintf(why, cap, "timer t%u: its close callback is due", fz->timers[i].id);
    }
    return n;
}

/* Referenced handles that are certainly active: a listener, a started timer, a receiving
 * UDP socket. (A reading stream is left out: a pipe pauses and resumes it on its own.) */
static bool model_surely_active(struct fz *fz, char *why, size_t cap) {
    for (int i = 0; i < FZ_SERVERS; i++) {
        struct fz_server *sv = &fz->servers[i];
        if (sv->phase == FZ_OPEN && sv->ref) {
            snprintf(why, cap, "listener l%u is listening and referenced", sv->id);
            return true;
        }
    }
    for (int i = 0; i < FZ_TIMERS; i++) {
        struct fz_timer *t = &fz->timers[i];
        if (t->phase == FZ_OPEN && t->ref && t->started) {
            snprintf(why, cap, "timer t%u is started and referenced", t->id);
            return true;
        }
    }
    for (int i = 0; i < FZ_UDPS; i++) {
        struct fz_udp *u = &fz->udps[i];
        if (u->phase == FZ_OPEN && u->ref && u->receiving) {
            snprintf(why, cap, "udp u%u is receiving and referenced", u->id);
            return true;
        }
    }
    return false;
}

static bool model_empty(const struct fz *fz) {
    for (int i = 0; i < FZ_STREAMS; i++)
        if (fz->streams[i].phase != FZ_FREE) return false;
    for (int i = 0; i < FZ_SERVERS; i++)
        if (fz->servers[i].phase != FZ_FREE) return false;
    for (int i = 0; i < FZ_TIMERS; i++)
        if (fz->timers[i].phase != FZ_FREE) return false;
    for (int i = 0; i < FZ_UDPS; i++)
        if (fz->udps[i].phase != FZ_FREE) return false;
    return true;
}

/* A handle that zev_close was called on is inactive at once and until its memory is reused;
 * an open handle's ref agrees with the model. */
static void check_handle(struct fz *fz, const zev_handle_t *h, enum fz_phase phase, bool ref,
                         const char *kind, uint32_t id) {
    if (phase == FZ_FREE) return;
    if (phase == FZ_CLOSING) {
        if (zev_is_active(h))
            fz_fail(fz, "%s%u: zev_is_active() is 1 after zev_close", kind, id);
        if (!zev_is_closing(h)) fz_fail(fz, "%s%u: zev_is_closing() is 0 after zev_close", kind, id);
        return;
    }
    if (zev_has_ref(h) != (int)ref)
        fz_fail(fz, "%s%u: zev_has_ref() is %d, the model says %d", kind, id, zev_has_ref(h), ref);
}

/* The checks made between steps (never inside a callback, where the library is mid-way). */
static void check_step(struct fz *fz, const char *where) {
    for (int i = 0; i < FZ_STREAMS; i++) {
        struct fz_stream *s = &fz->streams[i];
        check_handle(fz, &s->tcp.handle, s->phase, s->ref, "stream s", s->id);
    }
    for (int i = 0; i < FZ_SERVERS; i++) {
        struct fz_server *sv = &fz->servers[i];
        check_handle(fz, &sv->srv.handle, sv->phase, sv->ref, "listener l", sv->id);
    }
    for (int i = 0; i < FZ_TIMERS; i++) {
        struct fz_timer *t = &fz->timers[i];
        check_handle(fz, &t->timer.handle, t->phase, t->ref, "timer t", t->id);
    }
    for (int i = 0; i < FZ_UDPS; i++) {
        struct fz_udp *u = &fz->udps[i];
        check_handle(fz, &u->udp.handle, u->phase, u->ref, "udp u", u->id);
    }
    int alive = zev_loop_alive(&fz->loop);
    char why[200] = "";
    if (model_requests(fz, why, sizeof(why)) > 0 && !alive)
        fz_fail(fz, "after %s: zev_loop_alive() is 0 but %s", where, why);
    if (model_surely_active(fz, why, sizeof(why)) && !alive)
        fz_fail(fz, "after %s: zev_loop_alive() is 0 but %s", where, why);
    if (model_empty(fz) && alive)
        fz_fail(fz, "after %s: zev_loop_alive() is 1 with every handle closed", where);
}

/* ---- closing from inside callbacks ------------------------------------------------------- */

void fz_close_random_other(struct fz *fz, const zev_handle_t *not) {
    zev_handle_t *cand[FZ_STREAMS + FZ_SERVERS + FZ_TIMERS + FZ_UDPS];
    int n = 0;
    for (int i = 0; i < FZ_STREAMS; i++) {
        struct fz_stream *s = &fz->streams[i];
        if (s->phase != FZ_FREE && s->phase != FZ_CLOSING && &s->tcp.handle != not)
            cand[n++] = &s->tcp.handle;
    }
    for (int i = 0; i < FZ_SERVERS; i++)
        if (fz->servers[i].phase == FZ_OPEN && &fz->servers[i].srv.handle != not)
            cand[n++] = &fz->servers[i].srv.handle;
    for (int i = 0; i < FZ_TIMERS; i++)
        if (fz->timers[i].phase == FZ_OPEN && &fz->timers[i].timer.handle != not)
            cand[n++] = &fz->timers[i].timer.handle;
    for (int i = 0; i < FZ_UDPS; i++)
        if (fz->udps[i].phase == FZ_OPEN && &fz->udps[i].udp.handle != not)
            cand[n++] = &fz->udps[i].udp.handle;
    if (n == 0) return;
    zev_handle_t *h = cand[(fz->res.closes + fz->log_next) % (unsigned)n];
    switch (h->type) {
    case ZEV_TCP: fz_stream_close((struct fz_stream *)h, "from another's callback"); break;
    case ZEV_TCP_SERVER: fz_server_close((struct fz_server *)h, "from a callback"); break;
    case ZEV_TIMER: fz_timer_close((struct fz_timer *)h, "from a callback"); break;
    case ZEV_UDP: fz_udp_close((struct fz_udp *)h, "from a callback"); break;
    default: break;
    }
}

/* ---- running the loop, bounded ------------------------------------------------------------ */

/* Fires every 2 ms while the loop runs. It is unref'd, so it never keeps the loop alive, but
 * it bounds every blocking poll, so a run can always be stopped on time. */
static void on_guard(zev_timer_t *t) {
    struct fz *fz = t->handle.data;
    uint64_t now = zev_hrtime();
    if (now >= fz->run_deadline_ns || now >= fz->hard_deadline_ns) {
        fz->stopped_by_guard = true;
        zev_stop(&fz->loop);
    }
}

/* zev_run(DEFAULT) for at most ms. Returns zev_run's result; stopped_by_guard says whether
 * the deadline ended it. */
static int run_for(struct fz *fz, unsigned ms) {
    fz->stopped_by_guard = false;
    fz->run_deadline_ns = zev_hrtime() + (uint64_t)ms * 1000000u;
    int r = zev_run(&fz->loop, ZEV_RUN_DEFAULT);
    if (r < 0) fz_fail(fz, "zev_run(DEFAULT): %s", zev_err_name(r));
    return r;
}

static int op_run_once(struct fz *fz) {
    fz->run_deadline_ns = UINT64_MAX;
    int r = zev_run(&fz->loop, ZEV_RUN_ONCE);
    fz_log(fz, "run ONCE -> %d", r);
    if (r < 0) fz_fail(fz, "zev_run(ONCE): %s", zev_err_name(r));
    return 1;
}

/* Run until the loop says nothing referenced is left (or 5 ms pass). When zev_run returns 0
 * the model must agree: no request in flight, nothing referenced active. */
static int op_run_default(struct fz *fz) {
    int r = run_for(fz, 5);
    fz_log(fz, "run DEFAULT -> %d%s", r, fz->stopped_by_guard ? " (stopped at 5 ms)" : "");
    char why[200];
    if (r == 0 && model_requests(fz, why, sizeof(why)) > 0)
        fz_fail(fz, "zev_run(DEFAULT) returned 0 but %s", why);
    if (r == 0 && model_surely_active(fz, why, sizeof(why)))
        fz_fail(fz, "zev_run(DEFAULT) returned 0 but %s", why);
    return 1;
}

/* ---- the operation table ----------------------------------------------------------------- */

struct fz_op {
    const char *name;
    int (*run)(struct fz *fz); /* 0: nothing to do it on, nothing done */
    unsigned weight;
};

static const struct fz_op ops[] = {
    {"listen", op_listen, 3},          {"connect", op_connect, 6},
    {"connect_stalled", op_connect_stalled, 3}, {"connect_refused", op_connect_refused, 1},
    {"write", op_write, 22},           {"write_empty", op_write_empty, 3},
    {"sendfile", op_sendfile, 3},      {"end", op_end, 5},
    {"destroy", op_destroy, 5},        {"pause", op_pause, 4},
    {"resume", op_resume, 7},          {"pipe", op_pipe, 3},
    {"relay", op_relay, 3},            {"proxy", op_proxy, 3},            {"unforward", op_unforward, 1},
    {"flush_held", op_flush_held, 2},  {"read_buffer", op_read_buffer, 3},
    {"set_timeout", op_set_timeout, 2}, {"half_open", op_half_open, 1},
    {"server_close", op_server_close, 1}, {"poke_closing", op_poke_closing, 2},
    {"timer_start", op_timer_start, 3}, {"timer_stop", op_timer_stop, 1},
    {"udp_open", op_udp_open, 2},      {"udp_send", op_udp_send, 5},
    {"udp_recv", op_udp_recv, 2},      {"ref", op_ref, 2},
    {"unref", op_unref, 3},            {"unref_all", op_unref_all, 1},
    {"run_once", op_run_once, 6},      {"run_default", op_run_default, 2},
};

enum { N_OPS = sizeof(ops) / sizeof(ops[0]) };
_Static_assert(N_OPS <= sizeof(((struct fz *)0)->weights) / sizeof(unsigned), "weights[] fits");

/* The table's weights, then the overrides "name=w,name=w". */
static void set_weights(struct fz *fz) {
    for (size_t i = 0; i < N_OPS; i++) fz->weights[i] = ops[i].weight;
    for (const char *p = fz->opt.weights; p && *p;) {
        size_t len = strcspn(p, "=");
        char *end;
        unsigned long w = p[len] == '=' ? strtoul(p + len + 1, &end, 10) : 0;
        size_t i = 0;
        while (i < N_OPS && (strlen(ops[i].name) != len || strncmp(ops[i].name, p, len) != 0)) i++;
        if (i == N_OPS || p[len] != '=' || (*end && *end != ','))
            fz_fail(fz, "bad weights \"%s\" (name=w,name=w; names as in fuzz.c's table)", p);
        fz->weights[i] = (unsigned)w;
        p = *end ? end + 1 : end;
    }
}

static const struct fz_op *pick_op(struct fz *fz) {
    unsigned total = 0;
    for (size_t i = 0; i < N_OPS; i++) total += fz->weights[i];
    unsigned r = fz_below(fz, total);
    for (size_t i = 0;; i++) {
        if (r < fz->weights[i]) return &ops[i];
        r -= fz->weights[i];
    }
}

/* ---- setup and teardown ------------------------------------------------------------------ */

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* A plain socket bound to 127.0.0.1:0; listening with backlog 0 if asked. Returns the fd. */
static int raw_socket(struct fz *fz, int backlog, int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        (backlog >= 0 && listen(fd, backlog) < 0) ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        fz_fail(fz, "raw socket: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return fd;
}

static bool v6_loopback_works(void) {
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void setup(struct fz *fz) {
    int err = zev_loop_init(&fz->loop);
    if (err < 0) fz_fail(fz, "zev_loop_init: %s", zev_err_name(err));
    zev_timer_init(&fz->loop, &fz->guard);
    fz->guard.handle.data = fz;
    zev_timer_start(&fz->guard, on_guard, 2, 2);
    zev_unref(&fz->guard.handle);
    fz->raw_fd = raw_socket(fz, 0, &fz->raw_port);
    fz->refused_fd = raw_socket(fz, -1, &fz->refused_port);
    fz->have_v6 = v6_loopback_works();
}

/* Wind down in two rounds. First, as a careful user would: close what can never finish
 * (connects to the stalled listener...), let every peer read, unref everything, and run: the
 * loop must keep going exactly while requests are in flight, then return 0 with none left.
 * Then close everything and check that every close callback ran and the loop is empty. */
static void wind_down(struct fz *fz) {
    fz->winding_down = true;
    fz->op_no++;
    fz_log(fz, "-- winding down");
    fz_tcp_wind_down(fz);
    for (int i = 0; i < FZ_TIMERS; i++)
        if (fz->timers[i].phase == FZ_OPEN) fz_timer_close(&fz->timers[i], "winding down");
    op_unref_all(fz);
    check_step(fz, "winding down");
    int r = run_for(fz, 3000);
    char why[200];
    if (fz->stopped_by_guard && model_requests(fz, why, sizeof(why)) > 0)
        fz_fail(fz, "winding down: still alive after 3 s: %s", why);
    if (fz->stopped_by_guard) fz_fail(fz, "winding down: zev_run did not return in 3 s");
    if (r != 0) fz_fail(fz, "winding down: zev_run returned %d", r);
    if (model_requests(fz, why, sizeof(why)) > 0)
        fz_fail(fz, "winding down: zev_run returned 0 but %s", why);
    check_step(fz, "the wind-down run");

    fz->op_no++;
    fz_log(fz, "-- closing everything");
    for (int i = 0; i < FZ_STREAMS; i++)
        if (fz->streams[i].phase != FZ_FREE && fz->streams[i].phase != FZ_CLOSING)
            fz_stream_close(&fz->streams[i], "the end");
    for (int i = 0; i < FZ_SERVERS; i++)
        if (fz->servers[i].phase == FZ_OPEN) fz_server_close(&fz->servers[i], "the end");
    for (int i = 0; i < FZ_UDPS; i++)
        if (fz->udps[i].phase == FZ_OPEN) fz_udp_close(&fz->udps[i], "the end");
    check_step(fz, "closing everything");
    r = run_for(fz, 3000);
    if (fz->stopped_by_guard)
        fz_fail(fz, "after closing everything: zev_run did not return in 3 s (alive %d)",
                zev_loop_alive(&fz->loop));
    if (r != 0) fz_fail(fz, "after closing everything: zev_run returned %d", r);
    if (!model_empty(fz)) fz_fail(fz, "after closing everything: a close callback never ran");
    check_step(fz, "the final run");
}

static void teardown(struct fz *fz, int fds_before) {
    zev_close(&fz->guard.handle, NULL);
    zev_run(&fz->loop, ZEV_RUN_NOWAIT);
    int err = zev_loop_close(&fz->loop);
    if (err != 0) fz_fail(fz, "zev_loop_close: %s", zev_err_name(err));
    if (fz->raw_fd >= 0) close(fz->raw_fd); /* winding down closes it */
    close(fz->refused_fd);
    int fds = count_fds();
    if (fds != fds_before) fz_fail(fz, "%d descriptors leaked", fds - fds_before);
}

int fz_run(const struct fz_options *opts, struct fz_result *result) {
    struct fz *fz = calloc(1, sizeof(*fz));
    if (!fz) return -ENOMEM;
    fz->opt = *opts;
    if (!fz->opt.max_ops) fz->opt.max_ops = 2000;
    if (!fz->opt.max_ms) fz->opt.max_ms = 20000;
    fz->prng = splitmix64(fz->opt.seed) | 1;
    fz->t_start_ns = zev_hrtime();
    fz->hard_deadline_ns = fz->t_start_ns + (uint64_t)fz->opt.max_ms * 1000000u;
    /* Operations stop at 60% of the bound; winding down has the rest (two 3 s runs at most,
     * usually milliseconds). */
    uint64_t ops_until = fz->t_start_ns + (uint64_t)fz->opt.max_ms * 600000u;
    int fds_before = count_fds();
    set_weights(fz);
    setup(fz);
    while (fz->op_no < fz->opt.max_ops) {
        if (zev_hrtime() >= ops_until) {
            fz->res.out_of_time = 1;
            break;
        }
        fz->op_no++;
        const struct fz_op *op = pick_op(fz);
        if (op->run(fz)) fz->res.ops++;
        check_step(fz, op->name);
        zev_run(&fz->loop, ZEV_RUN_NOWAIT);
        check_step(fz, "a NOWAIT run");
    }
    wind_down(fz);
    teardown(fz, fds_before);
    if (result) *result = fz->res;
    free(fz);
    return 0;
}
