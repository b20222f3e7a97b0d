/* src/reactor/backend_uring.c: the io_uring backend's readiness half, with the same contract
 * as backend_epoll.c (backend.h), so every handle type runs on it unchanged.
 *
 * A watcher is one multishot poll request (IORING_OP_POLL_ADD with IORING_POLL_ADD_MULTI):
 * the kernel posts a CQE each time the fd becomes ready, as EPOLLET would report it, until
 * the request is removed. A level-triggered watcher (fdwatch.c) is a one-shot poll, armed
 * again each time its CQE is read, so the condition is reported again on every wait while it
 * holds. Registration costs no syscall: the SQE goes in with the next wait's io_uring_enter,
 * which both submits and waits.
 *
 * What epoll gives for free and a ring does not is the end of a registration: after
 * epoll_ctl(DEL) the kernel never names the watcher again, and the watcher's memory can go
 * back to the user after its close callback. A poll request lives on until its removal is
 * processed, and its last CQE may come later. So unwatch is synchronous: it submits
 * IORING_OP_POLL_REMOVE and reads the CQ until the request's last CQE (the one without
 * IORING_CQE_F_MORE) has come, keeping the other CQEs it meets for the next wait (the stash).
 * That costs one io_uring_enter per unwatch, where epoll costs one epoll_ctl.
 *
 * The CQE's user_data says what it is about. Watchers are 8-aligned (they follow a
 * zev_handle_t), so the low three bits are free: bit 0 is the instance bit (watcher.c), and
 * bits 1-2 the kind of request. See docs/internals.md, "The completion loop".
 */
#include "backend.h"
#include "epoll_events.h"
#include "reactor_internal.h"
#include "sys.h"
#include "uring_backend.h"
#include "wake.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

_Static_assert(sizeof(zev_handle_t) % 8 == 0, "a watcher after its handle is 8-aligned");

#define SQ_ENTRIES 256u
#define CQ_MIN_ENTRIES 4096u

/* EPOLLPRI is asked for, as on epoll, so urgent data is seen (read.c then reads to EAGAIN).
 * io_uring's poll reports it with every arrival of plain TCP data too (kernel 6.18), so on
 * this backend each short read is followed by one that finds nothing; see docs/internals.md,
 * "The completion loop". */
static unsigned poll_mask(unsigned events) {
    unsigned mask = 0;
    if (events & ZEV__READABLE) mask |= EPOLLIN | EPOLLRDHUP | EPOLLPRI;
    if (events & ZEV__WRITABLE) mask |= EPOLLOUT;
    return mask;
}

/* Queue w's poll request for events. */
static int arm(zev_loop_t *loop, struct zev_watcher *w, unsigned events) {
    int err = 0;
    struct io_uring_sqe *sqe = zev__uring_sqe(&zev__uring_state(loop)->ring, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = w->fd;
    sqe->poll32_events = poll_mask(events);
    /* Level: one shot, armed again when read (take_cqe). Edge: multishot, which the kernel
     * runs edge-triggered unless asked for IORING_POLL_ADD_LEVEL. */
    sqe->len = (w->flags & ZEV__W_LEVEL) ? 0 : IORING_POLL_ADD_MULTI;
    sqe->user_data = zev__watcher_tag(w);
    return 0;
}

/* Turn one CQE into a ready entry; false if there is nothing to deliver. A poll that ended
 * while its watcher still wants it (a level watcher's one shot, or a multishot the kernel
 * dropped, as it does when the CQ overflows) is armed again first. An operation's result
 * always goes to its owner, even a cancellation: it may carry a buffer to give back. */
bool zev__uring_take_cqe(zev_loop_t *loop, const struct io_uring_cqe *c, struct zev__ready *out) {
    uint64_t ud = c->user_data;
    if (zev__ud_is_op(ud)) {
        *out = zev__op_result(loop, c);
        return true;
    }
    if (!zev__ud_is_poll(ud)) return false; /* removals and cancellations */
    struct zev_watcher *w = zev__ud_watcher(ud);
    bool current = (w->flags & ZEV__W_REGISTERED) && zev__watcher_tag(w) == ud;
    bool ended = !(c->flags & IORING_CQE_F_MORE);
    if (ended && current && c->res >= 0) (void)arm(loop, w, w->events);
    if (c->res == 0 || c->res == -ECANCELED) return false;
    *out = (struct zev__ready){.tag = (uintptr_t)ud};
    /* A poll that failed (the fd was not pollable): the owner's next call meets the error,
     * as its next read would after epoll_ctl refused the fd. */
    out->revents = c->res > 0 ? zev__epoll_revents((uint32_t)c->res)
                              : ZEV__ERROR | ZEV__READABLE | ZEV__WRITABLE;
    return true;
}

int zev__ready_reserve(zev_loop_t *loop, struct zev__ready **arr, unsigned *cap,
                       unsigned want) {
    if (want <= *cap) return 0;
    struct zev__ready *grown = zev__alloc(loop, want * sizeof(*grown));
    if (!grown) return -ENOMEM;
    for (unsigned i = 0; i < *cap; i++) grown[i] = (*arr)[i];
    zev__free(loop, *arr, *cap * sizeof(**arr));
    *arr = grown;
    *cap = want;
    return 0;
}

int zev__ready_push(zev_loop_t *loop, struct zev__ready **arr, unsigned *n, unsigned *cap,
                    struct zev__ready e) {
    if (*n == *cap) {
        int err = zev__ready_reserve(loop, arr, cap, *cap ? *cap * 2 : ZEV__READY_LIST_START);
        if (err < 0) return err;
    }
    (*arr)[(*n)++] = e;
    return 0;
}

/* Forget w's entries in the stash: after unwatch the kernel never names it again, and
 * neither does the stash. */
static void stash_purge(struct zev__uring_backend *u, const struct zev_watcher *w) {
    unsigned kept = 0;
    for (unsigned i = 0; i < u->n_stash; i++) {
        const struct zev__ready *e = &u->stash[i];
        bool its_poll = !(e->revents & ZEV__COMPLETED) && zev__tag_watcher(e->tag) == w;
        if (!its_poll) u->stash[kept++] = *e;
    }
    u->n_stash = kept;
}

static int uring_init(zev_loop_t *loop) {
    struct zev__backend *b = loop->backend;
    struct zev__uring_backend *u = zev__alloc(loop, sizeof(*u));
    if (!u) return -ENOMEM;
    *u = (struct zev__uring_backend){0};
    unsigned cq = CQ_MIN_ENTRIES;
    while (cq < 2 * b->max_events) cq *= 2;
    int err = zev__uring_setup(&u->ring, SQ_ENTRIES, cq);
    if (err < 0) goto free_state;
    b->priv = u;
    b->fd = u->ring.fd;
    /* Sockets submit their own receives and sends (completion mode, ring.h), unless
     * ZEV_URING_COMPLETION=0 asks for readiness only: the poll form, for comparison. */
    const char *mode = getenv("ZEV_URING_COMPLETION");
    u->completion = !(mode && mode[0] == '0');
    /* Zero-copy sends from this many bytes up, for runs that compare them (the loop option,
     * when set, wins: zev_loop_init_ex). Text that is not a number leaves them off. */
    const char *zc_min = getenv("ZEV_SEND_ZC_MIN");
    if (zc_min && *zc_min) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(zc_min, &end, 10);
        if (errno == 0 && *end == '\0' && zc_min[0] != '-') u->send_zc_min = (size_t)v;
    }
    /* The lists results wait in, at their first size: a fixed cost, taken now. */
    err = zev__ready_reserve(loop, &u->stash, &u->cap_stash, ZEV__READY_LIST_START);
    if (err == 0)
        err = zev__ready_reserve(loop, &u->parked, &u->cap_parked, ZEV__READY_LIST_START);
    if (err == 0 && u->completion) err = zev__ring_bufs_init(loop);
    if (err < 0) goto close_ring;
    err = zev__wake_start(loop);
    if (err < 0) goto close_ring;
    return 0;

close_ring:
    zev__ring_bufs_free(loop);
    zev__free(loop, u->stash, u->cap_stash * sizeof(*u->stash));
    zev__free(loop, u->parked, u->cap_parked * sizeof(*u->parked));
    zev__uring_close(&u->ring);
    b->priv = NULL;
    b->fd = -1;
free_state:
    zev__free(loop, u, sizeof(*u));
    return err;
}

static void uring_close(zev_loop_t *loop) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    zev__wake_close(loop);
    zev__ring_bufs_free(loop);
    zev__uring_close(&u->ring);
    zev__free(loop, u->stash, u->cap_stash * sizeof(*u->stash));
    zev__free(loop, u->parked, u->cap_parked * sizeof(*u->parked));
    zev__free(loop, u, sizeof(*u));
    loop->backend->priv = NULL;
    loop->backend->fd = -1;
}

static void uring_unwatch(zev_loop_t *loop, struct zev_watcher *w);

static int uring_watch(zev_loop_t *loop, struct zev_watcher *w, unsigned events) {
    int err = zev__fault_hit(ZEV_SYS_POLL_CTL, NULL);
    if (err < 0) return err;
    /* Widening the set: the request is replaced (rare: fdwatch and UDP register once). */
    if (w->flags & ZEV__W_REGISTERED) uring_unwatch(loop, w);
    return arm(loop, w, events);
}

int zev__uring_reap(zev_loop_t *loop, bool (*mine)(void *ctx, const struct io_uring_cqe *c),
                    void *ctx) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    int err = zev__uring_enter(&u->ring, 1, -1);
    if (err < 0 && err != -EINTR) return err;
    unsigned n = zev__uring_cq_ready(&u->ring);
    for (unsigned i = 0; i < n; i++) {
        const struct io_uring_cqe *c = zev__uring_cqe(&u->ring, i);
        struct zev__ready e;
        if (mine(ctx, c) || !zev__uring_take_cqe(loop, c, &e)) continue;
        /* -ENOMEM: only under a failing allocator */
        (void)zev__ready_push(loop, &u->stash, &u->n_stash, &u->cap_stash, e);
        u->defer_in_order = false; /* newer than the batch: no deferral may go behind it */
    }
    zev__uring_cq_advance(&u->ring, n);
    return 0;
}

/* Where the removal of one watcher's poll stands (see uring_unwatch). */
struct removal {
    const struct zev_watcher *w;
    bool removed;    /* the POLL_REMOVE's own CQE came */
    int remove_res;  /* its result: 0, -ENOENT (no such poll: it had ended), -EALREADY */
    bool poll_ended; /* the poll's last CQE came */
};

/* zev__uring_reap's filter: the poll's CQEs and its removal's end the wait; the poll's
 * events are dropped (the watcher is being stopped). */
static bool removal_cqe(void *ctx, const struct io_uring_cqe *c) {
    struct removal *r = ctx;
    if (zev__ud_watcher(c->user_data) != r->w || zev__ud_is_op(c->user_data)) return false;
    if ((c->user_data & 7u) == ZEV__UD_REMOVE) {
        r->removed = true;
        r->remove_res = c->res;
    } else if (!(c->flags & IORING_CQE_F_MORE)) {
        r->poll_ended = true;
    }
    return true;
}

static bool removal_done(const struct removal *r) {
    return r->removed && (r->poll_ended || r->remove_res == -ENOENT);
}

static int queue_removal(struct zev__uring *ring, struct zev_watcher *w) {
    int err = 0;
    struct io_uring_sqe *sqe = zev__uring_sqe(ring, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_POLL_REMOVE;
    sqe->addr = zev__watcher_tag(w);
    sqe->user_data = (uintptr_t)w | ZEV__UD_REMOVE;
    return 0;
}

/* Synchronous, as epoll_ctl(DEL) is: when this returns, no CQE will name w again. Every other
 * CQE met on the way is kept in the stash for the next wait. A removal that finds the poll
 * busy posting an event (-EALREADY) is asked again: the kernel does not promise to end a
 * multishot request it could not catch. A failure to enter the ring (other than an
 * interruption) leaves the poll to the ring's own teardown. */
static void uring_unwatch(zev_loop_t *loop, struct zev_watcher *w) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    stash_purge(u, w);
    if (queue_removal(&u->ring, w) < 0) return;
    struct removal r = {.w = w};
    while (!removal_done(&r)) {
        if (zev__uring_reap(loop, removal_cqe, &r) < 0) return;
        if (r.removed && r.remove_res == -EALREADY && !r.poll_ended) {
            r.removed = false;
            if (queue_removal(&u->ring, w) < 0) return;
        }
    }
}

/* Hand the stash to the ready list first: it holds what unwatch read ahead. */
static unsigned take_stash(struct zev__uring_backend *u, struct zev__ready *ready, unsigned max) {
    unsigned n = u->n_stash < max ? u->n_stash : max;
    for (unsigned i = 0; i < n; i++) ready[i] = u->stash[i];
    for (unsigned i = n; i < u->n_stash; i++) u->stash[i - n] = u->stash[i];
    u->n_stash -= n;
    return n;
}

/* A multishot poll posts one CQE per wake-up, where epoll reports a ready fd once per wait:
 * data and an ACK arriving together make two CQEs, and the second would cost a read that
 * finds nothing. So a poll event joins an entry of the same registration among the last few
 * of the batch (bursts come together; a wider search would cost more than the read). */
#define MERGE_WINDOW 16u

static bool merged_into_batch(struct zev__ready *ready, unsigned n) {
    const struct zev__ready *e = &ready[n];
    if (e->revents & ZEV__COMPLETED) return false;
    unsigned from = n > MERGE_WINDOW ? n - MERGE_WINDOW : 0;
    for (unsigned i = n; i-- > from;) {
        if (ready[i].tag == e->tag && !(ready[i].revents & ZEV__COMPLETED)) {
            ready[i].revents |= e->revents;
            return true;
        }
    }
    return false;
}

static int uring_wait(zev_loop_t *loop, int timeout_ms) {
    struct zev__backend *b = loop->backend;
    struct zev__uring_backend *u = zev__uring_state(loop);
    struct zev__uring *ring = &u->ring;
    int err = zev__fault_hit(ZEV_SYS_POLL_WAIT, NULL);
    if (err < 0) return err;
    unsigned n = take_stash(u, b->ready, b->max_events);
    bool block = timeout_ms != 0 && n == 0 && zev__uring_cq_ready(ring) == 0;
    /* The one syscall of an iteration: submit what the last one queued, and wait. With
     * nothing to submit, CQEs already there and nothing held back, none is needed. */
    if (block || zev__uring_unsubmitted(ring) > 0 || zev__uring_kernel_has_more(ring)) {
        err = zev__uring_enter(ring, block ? 1 : 0, block ? timeout_ms : 0);
        if (err < 0 && n == 0) return err;
    }
    unsigned avail = zev__uring_cq_ready(ring);
    unsigned used = 0;
    while (used < avail && n < b->max_events) {
        if (zev__uring_take_cqe(loop, zev__uring_cqe(ring, used), &b->ready[n]) &&
            !merged_into_batch(b->ready, n))
            n++;
        used++;
    }
    /* What the batch cannot take waits in the stash, not in the CQ: a CQ left full overflows
     * at the next enter, and the kernel then ends every multishot, a listener's accept
     * included, which stops accepting until its last result is read, behind all of these.
     * (Room first: reading a CQE is not idempotent, so none is read that cannot be kept.) */
    unsigned want = u->n_stash + (avail - used);
    if (want > u->cap_stash && want < 2 * u->cap_stash) want = 2 * u->cap_stash; /* amortised */
    if (used < avail && zev__ready_reserve(loop, &u->stash, &u->cap_stash, want) == 0) {
        for (; used < avail; used++) {
            if (zev__uring_take_cqe(loop, zev__uring_cqe(ring, used), &u->stash[u->n_stash]))
                u->n_stash++;
        }
    }
    zev__uring_cq_advance(ring, used);
    u->defer_in_order = u->n_stash == 0;
    return (int)n;
}

/* A result the phase's budget has no room for waits in the stash, which the next wait reads
 * first; but only while nothing newer waits there (what the batch could not take, what a
 * synchronous end read ahead). Behind newer results it would wait a whole backlog more, and
 * come after a later result of its own socket: then it is dispatched now, and the batch,
 * at most max_events, bounds the phase instead. */
static int uring_defer(zev_loop_t *loop, const struct zev__ready *e) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    if (!u->defer_in_order) return -EAGAIN;
    return zev__ready_push(loop, &u->stash, &u->n_stash, &u->cap_stash, *e);
}

const struct zev__backend_ops zev__backend_uring = {
    .name = "io_uring",
    .init = uring_init,
    .close = uring_close,
    .watch = uring_watch,
    .unwatch = uring_unwatch,
    .wait = uring_wait,
    .wake = zev__wake_signal,
    .defer = uring_defer,
};
