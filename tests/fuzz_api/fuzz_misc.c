/* tests/fuzz_api/fuzz_misc.c: the fuzzer's timers, UDP sockets, and ref/unref of any handle.
 *
 * A datagram carries a 12-byte header (sender id, sequence, length) and then the sender's
 * pattern for that sequence, so a receiver checks every byte of whatever arrives. Loopback
 * UDP may still drop, so only content, never delivery, is checked; each send callback runs
 * exactly once, in order, and after close only as a cancellation.
 */
#include "fuzz_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- timers ------------------------------------------------------------------------------ */

static void on_timer_closed(zev_handle_t *h) {
    struct fz_timer *t = (struct fz_timer *)h;
    fz_log(t->fz, "t%u close callback", t->id);
    if (t->phase != FZ_CLOSING) fz_fail(t->fz, "t%u: close callback in phase %d", t->id, t->phase);
    t->fz->res.closes++;
    t->phase = FZ_FREE;
}

void fz_timer_close(struct fz_timer *t, const char *why) {
    int err = zev_close(&t->timer.handle, on_timer_closed);
    if (err != 0) fz_fail(t->fz, "zev_close(t%u): %s", t->id, zev_err_name(err));
    fz_log(t->fz, "close t%u (%s)", t->id, why);
    t->phase = FZ_CLOSING;
    t->started = false;
}

static void on_timer(zev_timer_t *timer) {
    struct fz_timer *t = (struct fz_timer *)timer;
    struct fz *fz = t->fz;
    fz_log(fz, "t%u fires", t->id);
    if (t->phase != FZ_OPEN) fz_fail(fz, "t%u: timer callback after zev_close", t->id);
    if (!t->started) fz_fail(fz, "t%u: timer callback while stopped", t->id);
    if (!t->repeating) t->started = false;
    uint64_t ncb = fz->log_next;
    unsigned r = fz_cb_below(fz, t->id, &ncb, 8);
    if (r == 0) fz_timer_close(t, "from its callback");
    else if (r == 1) fz_close_random_other(fz, &timer->handle);
}

int op_timer_start(struct fz *fz) {
    struct fz_timer *t = &fz->timers[fz_below(fz, FZ_TIMERS)];
    if (t->phase == FZ_CLOSING) return 0;
    if (t->phase == FZ_FREE) {
        memset(t, 0, sizeof(*t));
        t->fz = fz;
        t->id = ++fz->next_id;
        zev_timer_init(&fz->loop, &t->timer);
        t->phase = FZ_OPEN;
        t->ref = true;
    }
    int64_t after = fz_below(fz, 9);
    int64_t repeat = fz_below(fz, 3) == 0 ? 1 + fz_below(fz, 5) : 0;
    int err = zev_timer_start(&t->timer, on_timer, after, repeat);
    fz_log(fz, "timer t%u start %lld repeat %lld -> %d", t->id, (long long)after,
           (long long)repeat, err);
    if (err != 0) fz_fail(fz, "zev_timer_start(t%u): %s", t->id, zev_err_name(err));
    t->started = true;
    t->repeating = repeat > 0;
    return 1;
}

int op_timer_stop(struct fz *fz) {
    struct fz_timer *t = &fz->timers[fz_below(fz, FZ_TIMERS)];
    if (t->phase != FZ_OPEN) return 0;
    if (fz_below(fz, 3) == 0) {
        fz_timer_close(t, "op");
        return 1;
    }
    int err = zev_timer_stop(&t->timer);
    fz_log(fz, "timer t%u stop -> %d", t->id, err);
    if (err != 0) fz_fail(fz, "zev_timer_stop(t%u): %s", t->id, zev_err_name(err));
    t->started = false;
    return 1;
}

/* ---- UDP --------------------------------------------------------------------------------- */

struct fz_send {
    struct fz_udp *u;
    uint32_t uid, seq;
    size_t len;
    char *raw;
    zev_buf_t *held;
};

enum { HDR = 12 };

static void on_udp_closed(zev_handle_t *h) {
    struct fz_udp *u = (struct fz_udp *)h;
    fz_log(u->fz, "u%u close callback", u->id);
    if (u->phase != FZ_CLOSING) fz_fail(u->fz, "u%u: close callback in phase %d", u->id, u->phase);
    if (u->s_done != u->s_issued)
        fz_fail(u->fz, "u%u: close callback before %u send callbacks", u->id,
                u->s_issued - u->s_done);
    u->fz->res.closes++;
    u->phase = FZ_FREE;
}

void fz_udp_close(struct fz_udp *u, const char *why) {
    int err = zev_close(&u->udp.handle, on_udp_closed);
    if (err != 0) fz_fail(u->fz, "zev_close(u%u): %s", u->id, zev_err_name(err));
    fz_log(u->fz, "close u%u (%s)", u->id, why);
    u->phase = FZ_CLOSING;
}

static uint32_t get32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void on_message(zev_udp_t *udp, int status, const zev_slice_t *msg,
                       const zev_udp_rinfo_t *rinfo) {
    struct fz_udp *u = (struct fz_udp *)udp;
    struct fz *fz = u->fz;
    if (u->phase != FZ_OPEN) fz_fail(fz, "u%u: message callback after zev_close", u->id);
    if (status != 0) {
        fz_log(fz, "u%u receive error %s", u->id, zev_err_name(status));
        return;
    }
    if (msg->len < HDR || !rinfo || rinfo->size != msg->len)
        fz_fail(fz, "u%u: datagram of %zu bytes without our header", u->id, msg->len);
    uint32_t from = get32(msg->base), seq = get32(msg->base + 4), len = get32(msg->base + 8);
    fz_log(fz, "u%u message from u%u #%u, %zu bytes", u->id, from, seq, msg->len);
    if (len != msg->len) fz_fail(fz, "u%u: datagram u%u #%u has %zu bytes, %u were sent", u->id, from, seq, msg->len, len);
    for (size_t i = HDR; i < msg->len; i++)
        if ((uint8_t)msg->base[i] != fz_pattern(from ^ 0x5A5A5A5Au, ((uint64_t)seq << 20) + i))
            fz_fail(fz, "u%u: datagram u%u #%u: byte %zu differs", u->id, from, seq, i);
    fz->res.bytes += msg->len;
    unsigned r = fz_cb_below(fz, u->id, &u->ncb, 32);
    if (r == 0) fz_udp_close(u, "from its message callback");
    else if (r == 1) fz_close_random_other(fz, &udp->handle);
}

static void on_send(zev_udp_t *udp, int status, void *arg) {
    struct fz_udp *u = (struct fz_udp *)udp;
    struct fz_send *snd = arg;
    struct fz *fz = u->fz;
    fz_log(fz, "u%u send callback #%u: %d", u->id, snd->seq, status);
    if (snd->u != u || snd->uid != u->id) fz_fail(fz, "u%u: a send callback of u%u", u->id, snd->uid);
    if (u->phase == FZ_FREE) fz_fail(fz, "u%u: send callback after the close callback", u->id);
    if (u->phase == FZ_CLOSING && status != -ECANCELED && status < 0)
        fz_fail(fz, "u%u: send callback after zev_close with %s", u->id, zev_err_name(status));
    if (status >= 0 && (size_t)status != snd->len)
        fz_fail(fz, "u%u: send #%u reported %d bytes of %zu", u->id, snd->seq, status, snd->len);
    if (u->s_done >= u->s_issued) fz_fail(fz, "u%u: more send callbacks than sends", u->id);
    u->s_done++;
    free(snd->raw);
    zev_buf_unref(snd->held);
    free(snd);
    if (u->phase == FZ_OPEN && fz_cb_below(fz, u->id, &u->ncb, 16) == 0)
        fz_udp_close(u, "from its send callback");
}

int op_udp_open(struct fz *fz) {
    struct fz_udp *u = &fz->udps[fz_below(fz, FZ_UDPS)];
    if (u->phase != FZ_FREE) return 0;
    memset(u, 0, sizeof(*u));
    u->fz = fz;
    u->id = ++fz->next_id;
    u->family = fz->have_v6 && fz_below(fz, 2) ? 6 : 4;
    int err = zev_udp_init(&fz->loop, &u->udp, u->family);
    if (err != 0) fz_fail(fz, "zev_udp_init(u%u): %s", u->id, zev_err_name(err));
    u->phase = FZ_OPEN;
    u->ref = true;
    err = zev_udp_bind(&u->udp, u->family == 4 ? "127.0.0.1" : "::1", 0, NULL, NULL);
    if (err != 0) fz_fail(fz, "zev_udp_bind(u%u): %s", u->id, zev_err_name(err));
    zev_addr_info_t a;
    zev_udp_local_address(&u->udp, &a);
    u->port = a.port;
    if (fz_below(fz, 10) < 7) {
        zev_udp_recv_start(&u->udp, on_message);
        u->receiving = true;
    }
    fz_log(fz, "udp u%u bound to port %d%s", u->id, u->port, u->receiving ? ", receiving" : "");
    return 1;
}

int op_udp_recv(struct fz *fz) {
    struct fz_udp *u = &fz->udps[fz_below(fz, FZ_UDPS)];
    if (u->phase != FZ_OPEN) return 0;
    int err = u->receiving ? zev_udp_recv_stop(&u->udp) : zev_udp_recv_start(&u->udp, on_message);
    fz_log(fz, "u%u recv %s -> %d", u->id, u->receiving ? "stop" : "start", err);
    if (err != 0) fz_fail(fz, "u%u: recv start/stop: %s", u->id, zev_err_name(err));
    u->receiving = !u->receiving;
    return 1;
}

int op_udp_send(struct fz *fz) {
    struct fz_udp *u = &fz->udps[fz_below(fz, FZ_UDPS)];
    struct fz_udp *to = &fz->udps[fz_below(fz, FZ_UDPS)];
    if (u->phase != FZ_OPEN || to->phase != FZ_OPEN || to->family != u->family) return 0;
    struct fz_send *snd = calloc(1, sizeof(*snd));
    snd->u = u;
    snd->uid = u->id;
    snd->seq = u->seq++;
    snd->len = HDR + fz_below(fz, 2000);
    char *p;
    if (fz_below(fz, 2)) {
        p = snd->raw = malloc(snd->len);
    } else {
        snd->held = zev_buf_get(&fz->loop);
        p = snd->held->base;
    }
    uint32_t hdr[3] = {u->id, snd->seq, (uint32_t)snd->len};
    memcpy(p, hdr, HDR);
    for (size_t i = HDR; i < snd->len; i++)
        p[i] = (char)fz_pattern(u->id ^ 0x5A5A5A5Au, ((uint64_t)snd->seq << 20) + i);
    zev_slice_t sl = {p, snd->len, snd->held};
    bool with_cb = snd->raw || fz_below(fz, 2);
    int r = zev_udp_send(&u->udp, &sl, 1, to->family == 4 ? "127.0.0.1" : "::1", to->port,
                         with_cb ? on_send : NULL, snd);
    fz_log(fz, "udp send u%u -> u%u #%u %zu bytes%s -> %d", u->id, to->id, snd->seq, snd->len,
           with_cb ? " cb" : "", r);
    if (r < 0 && r != -ENOMEM) fz_fail(fz, "zev_udp_send(u%u): %s", u->id, zev_err_name(r));
    if (r >= 0 && with_cb) {
        u->s_issued++;
        return 1;
    }
    free(snd->raw);
    zev_buf_unref(snd->held);
    free(snd);
    return 1;
}

/* ---- ref and unref, on any open handle ---------------------------------------------------- */

struct fz_any {
    zev_handle_t *h;
    bool *ref;
    uint32_t id;
};

static int open_handles(struct fz *fz, struct fz_any *out) {
    int n = 0;
    for (int i = 0; i < FZ_STREAMS; i++) {
        struct fz_stream *s = &fz->streams[i];
        if (s->phase != FZ_FREE && s->phase != FZ_CLOSING)
            out[n++] = (struct fz_any){&s->tcp.handle, &s->ref, s->id};
    }
    for (int i = 0; i < FZ_SERVERS; i++)
        if (fz->servers[i].phase == FZ_OPEN)
            out[n++] = (struct fz_any){&fz->servers[i].srv.handle, &fz->servers[i].ref,
                                       fz->servers[i].id};
    for (int i = 0; i < FZ_TIMERS; i++)
        if (fz->timers[i].phase == FZ_OPEN)
            out[n++] = (struct fz_any){&fz->timers[i].timer.handle, &fz->timers[i].ref,
                                       fz->timers[i].id};
    for (int i = 0; i < FZ_UDPS; i++)
        if (fz->udps[i].phase == FZ_OPEN)
            out[n++] = (struct fz_any){&fz->udps[i].udp.handle, &fz->udps[i].ref, fz->udps[i].id};
    return n;
}

static int set_ref(struct fz *fz, const struct fz_any *a, bool ref) {
    int err = ref ? zev_ref(a->h) : zev_unref(a->h);
    fz_log(fz, "%s #%u -> %d", ref ? "ref" : "unref", a->id, err);
    if (err != 0) fz_fail(fz, "zev_%sref(#%u): %s", ref ? "" : "un", a->id, zev_err_name(err));
    *a->ref = ref;
    return 1;
}

static int ref_one(struct fz *fz, bool ref) {
    struct fz_any all[FZ_STREAMS + FZ_SERVERS + FZ_TIMERS + FZ_UDPS];
    int n = open_handles(fz, all);
    return n ? set_ref(fz, &all[fz_below(fz, (unsigned)n)], ref) : 0;
}

int op_ref(struct fz *fz) {
    return ref_one(fz, true);
}

int op_unref(struct fz *fz) {
    return ref_one(fz, false);
}

/* With everything unref'd, only requests in flight may keep the loop alive. */
int op_unref_all(struct fz *fz) {
    struct fz_any all[FZ_STREAMS + FZ_SERVERS + FZ_TIMERS + FZ_UDPS];
    int n = open_handles(fz, all);
    for (int i = 0; i < n; i++) set_ref(fz, &all[i], false);
    return 1;
}
