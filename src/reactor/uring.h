/* src/reactor/uring.h: the io_uring rings, spoken to with the kernel's own header and three
 * syscalls (io_uring_setup, io_uring_enter, mmap), no liburing.
 *
 * Two rings are shared with the kernel. The submission queue (SQ): zev writes request
 * entries (SQEs) and moves the tail; the kernel consumes them at the next io_uring_enter and
 * moves the head. The completion queue (CQ): the kernel writes results (CQEs) and moves the
 * tail; zev reads them and moves the head. A head or tail the other side moves is read with
 * acquire order, one this side moves is written with release order: that is the whole
 * protocol. docs/internals.md, "The completion loop", draws it.
 */
#ifndef ZEV_URING_H
#define ZEV_URING_H

#include <linux/io_uring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zev__uring {
    int fd;
    unsigned features; /* IORING_FEAT_* the kernel offered */
    /* submission queue */
    unsigned *sq_khead; /* the kernel's: consumed up to here */
    unsigned *sq_ktail; /* ours: published up to here */
    unsigned *sq_kflags; /* IORING_SQ_CQ_OVERFLOW, IORING_SQ_TASKRUN */
    unsigned *sq_array;
    unsigned sq_mask;
    unsigned sq_entries;
    unsigned sq_tail; /* ours: written up to here, published at the next enter */
    struct io_uring_sqe *sqes;
    /* completion queue */
    unsigned *cq_khead; /* ours: read up to here */
    unsigned *cq_ktail; /* the kernel's: written up to here */
    unsigned cq_mask;
    unsigned cq_entries;
    struct io_uring_cqe *cqes;
    /* the mappings */
    void *ring_mem;
    size_t ring_size;
    void *sqe_mem;
    size_t sqe_size;
};

/* Create a ring with sq_entries submission slots and cq_entries completion slots (powers of
 * two). Negative errno: what io_uring_setup said (-ENOSYS, -EPERM: unavailable here), or the
 * mapping's. */
int zev__uring_setup(struct zev__uring *r, unsigned sq_entries, unsigned cq_entries);
void zev__uring_close(struct zev__uring *r);

/* A zeroed SQE to fill, submitted at the next enter. When the SQ is full, what is queued is
 * submitted first. NULL (with *err) if that submission failed. */
struct io_uring_sqe *zev__uring_sqe(struct zev__uring *r, int *err);
/* Make room for n SQEs to be queued with no submission between them (submitting what is
 * queued if need be). 0, or a negative errno. */
int zev__uring_reserve(struct zev__uring *r, unsigned n);

/* Submit what is queued and wait for at least wait_nr completions, at most timeout_ms (-1:
 * no limit). Returns 0 or a negative errno; a timeout, a busy CQ (-EBUSY) and an interrupted
 * wait with completions to read are 0: the caller reads the CQ either way. */
int zev__uring_enter(struct zev__uring *r, unsigned wait_nr, int timeout_ms);

/* SQEs written and not yet taken by the kernel. */
static inline unsigned zev__uring_unsubmitted(const struct zev__uring *r) {
    return r->sq_tail - __atomic_load_n(r->sq_khead, __ATOMIC_ACQUIRE);
}

/* Whether the kernel holds completions it has not put in the CQ yet (the CQ overflowed, or
 * deferred work is waiting for the next enter): only an enter brings them. */
static inline bool zev__uring_kernel_has_more(const struct zev__uring *r) {
    return (__atomic_load_n(r->sq_kflags, __ATOMIC_RELAXED) &
            (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)) != 0;
}

/* CQEs ready to read, and the i-th of them. */
static inline unsigned zev__uring_cq_ready(const struct zev__uring *r) {
    return __atomic_load_n(r->cq_ktail, __ATOMIC_ACQUIRE) - *r->cq_khead;
}

static inline const struct io_uring_cqe *zev__uring_cqe(const struct zev__uring *r, unsigned i) {
    return &r->cqes[(*r->cq_khead + i) & r->cq_mask];
}

/* Give n read CQEs back to the kernel. */
static inline void zev__uring_cq_advance(struct zev__uring *r, unsigned n) {
    __atomic_store_n(r->cq_khead, *r->cq_khead + n, __ATOMIC_RELEASE);
}

#endif /* ZEV_URING_H */
