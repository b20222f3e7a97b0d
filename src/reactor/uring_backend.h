/* src/reactor/uring_backend.h: the io_uring backend's state, shared by its readiness half
 * (backend_uring.c) and its operations and buffer ring (uring_ops.c). */
#ifndef ZEV_URING_BACKEND_H
#define ZEV_URING_BACKEND_H

#include "backend.h"
#include "ring.h"
#include "uring.h"

/* user_data's low three bits (a watcher is 8-aligned): a watcher's poll has bits 1-2 clear
 * (bit 0 is its instance bit); the rest name requests. */
enum {
    ZEV__UD_REMOVE = 2, /* removal of a watcher's poll (synchronous unwatch) */
    ZEV__UD_CANCEL = 3, /* a cancellation; its own result is of no interest */
    /* 4..7: enum zev__op (ring.h) */
};

static inline bool zev__ud_is_poll(uint64_t ud) {
    return (ud & 6u) == 0;
}

static inline bool zev__ud_is_op(uint64_t ud) {
    return (ud & 7u) >= ZEV__OP_RECV && (ud & 7u) <= ZEV__OP_ACCEPT;
}

static inline struct zev_watcher *zev__ud_watcher(uint64_t ud) {
    return (struct zev_watcher *)(uintptr_t)(ud & ~(uint64_t)7);
}

/* An operation's CQE as the entry its owner's ops->complete receives. */
static inline struct zev__ready zev__op_result(const struct io_uring_cqe *c) {
    return (struct zev__ready){.tag = (uintptr_t)c->user_data, .revents = ZEV__COMPLETED,
                               .res = c->res, .flags = c->flags};
}

/* The kernel's receive buffers: a provided-buffer ring (IORING_REGISTER_PBUF_RING) whose
 * entries are whole pool chunks. Buffer id i is chunk[i]; the kernel picks a free one for each
 * receive, and its result names the id. */
struct zev__ring_bufs {
    struct io_uring_buf_ring *br; /* shared with the kernel: entries and our tail */
    size_t br_size;
    unsigned entries; /* ring capacity: the most chunks it can hold */
    uint16_t tail;
    bool registered;
    zev_buf_t **chunk; /* by buffer id; NULL: the id holds no chunk */
    unsigned filled;   /* ids that hold a chunk */
    unsigned want;     /* how many ids to keep filled (grows when the kernel runs out) */
    bool grew;         /* it ran out since the last trim (zev__ring_bufs_trim) */
};

struct zev__uring_backend {
    struct zev__uring ring;
    struct zev__ready *stash; /* results read ahead by a synchronous unwatch or forget */
    unsigned n_stash;
    unsigned cap_stash;
    struct zev__ready *parked; /* receive results kept while their socket's reading is paused */
    unsigned n_parked;
    unsigned cap_parked;
    struct zev__ring_bufs bufs;
    bool completion; /* sockets run in completion mode (ring.h); else readiness only */
};

static inline struct zev__uring_backend *zev__uring_state(const zev_loop_t *loop) {
    return loop->backend->priv;
}

/* (backend_uring.c) One CQE as a ready entry; false if nothing is to be delivered. */
bool zev__uring_take_cqe(zev_loop_t *loop, const struct io_uring_cqe *c, struct zev__ready *out);
/* Enter the ring, waiting for at least one CQE, and read every CQE there: each goes to
 * mine(ctx, c) first, and those it does not take are kept in the stash for the next wait.
 * The synchronous ends of a registration (unwatch, zev__ring_forget) loop on it. 0, or the
 * enter's negative errno (an interruption is 0). */
int zev__uring_reap(zev_loop_t *loop, bool (*mine)(void *ctx, const struct io_uring_cqe *c),
                    void *ctx);
/* The stash and the parked list start with room for this many results (and go back to it
 * when the idle-memory trim finds them empty). */
#define ZEV__READY_LIST_START 64u

/* Make room for want entries in a growable array of ready entries (the first n are kept). */
int zev__ready_reserve(zev_loop_t *loop, struct zev__ready **arr, unsigned *cap,
                       unsigned want);
/* Append to a growable array of ready entries (the stash, the parked list). */
int zev__ready_push(zev_loop_t *loop, struct zev__ready **arr, unsigned *n, unsigned *cap,
                    struct zev__ready e);

#endif /* ZEV_URING_BACKEND_H */
