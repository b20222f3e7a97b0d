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

/* An operation's CQE as the entry its owner's ops->complete receives (uring_ops.c). Every
 * CQE of an operation goes through it once, in the order the kernel posted them: a receive
 * into a buffer that the kernel fills bit by bit learns here where its bytes start. */
struct zev__ready zev__op_result(zev_loop_t *loop, const struct io_uring_cqe *c);

/* One buffer id of a ring of receive buffers. */
struct zev__ring_id {
    zev_buf_t *chunk; /* NULL: the id holds no chunk */
    uint32_t off;     /* where the kernel's next receive into it lands (incremental rings) */
    uint32_t pending; /* results read from the CQ that point into it, not yet done with */
    bool lent;        /* the kernel may still receive into it */
};

/* A ring of receive buffers: a provided-buffer ring (IORING_REGISTER_PBUF_RING) whose entries
 * are whole pool chunks. The kernel picks a lent one for each receive, and its result names
 * the id. The streams' ring is incremental where the kernel can (IOU_PBUF_RING_INC, 6.12):
 * a receive takes only the bytes it needs from the id's chunk, and the next receive goes on
 * where it stopped, so a thousand small receives share a chunk as they share epoll's read
 * area; the datagrams' ring is not (a datagram must never be cut by the end of a chunk's
 * remainder), so each datagram takes a whole chunk. The two rings number their ids apart
 * (bid_base), so a result's id alone says which ring it came from. */
struct zev__ring_bufs {
    struct io_uring_buf_ring *br; /* shared with the kernel: entries and our tail */
    size_t br_size;
    unsigned entries; /* ring capacity: the most chunks it can hold */
    uint16_t tail;
    uint16_t bgid;     /* the kernel's buffer group */
    uint16_t bid_base; /* the first id's number in results */
    bool incremental;  /* registered with IOU_PBUF_RING_INC */
    bool registered;
    struct zev__ring_id *ids;
    unsigned filled; /* ids that hold a chunk */
    unsigned start;  /* its first size, and the size it shrinks back to */
    unsigned want;   /* how many ids to keep filled (grows when the kernel runs out) */
    bool grew;       /* it ran out since the last trim (zev__ring_bufs_trim) */
    uint64_t grew_iter; /* the loop iteration it last grew in */
};

struct zev__uring_backend {
    struct zev__uring ring;
    struct zev__ready *stash; /* results read ahead by a synchronous unwatch or forget, what
                                 a wait's batch could not take, and what its budget deferred */
    unsigned n_stash;
    unsigned cap_stash;
    bool defer_in_order; /* the stash holds nothing newer than the batch being dispatched, so
                            its results may wait there (uring_defer) */
    struct zev__ready *parked; /* receive results kept while their socket's reading is paused */
    unsigned n_parked;
    unsigned cap_parked;
    struct zev__ring_bufs bufs[2]; /* by enum zev__bufs_kind (ring.h) */
    bool completion; /* sockets run in completion mode (ring.h); else readiness only */
    size_t send_zc_min; /* queued slices this long go out zero-copy; 0: never */
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
