/* src/reactor/uring_ops.c: the io_uring backend's completion half: the operations sockets
 * submit (ring.h), the rings of receive buffers, and ending every operation of a socket that
 * closes.
 *
 * Receive buffers are the loop's own pool chunks, lent to the kernel through provided-buffer
 * rings: the kernel picks one when bytes arrive and the result says which, so the data
 * event's slice points straight at what the kernel wrote, owned by that chunk as on epoll
 * (zero-copy holds: nothing is copied out of the ring). Streams and datagrams have a ring
 * each. A stream receive takes only the bytes it needs and the next one goes on in the same
 * chunk (incremental consumption), so small receives from thousands of sockets share a few
 * chunks, like epoll's read area; a datagram takes a whole chunk. Once the kernel used a
 * chunk up and every result in it was delivered, the chunk goes back to its ring, or, if the
 * user kept a reference, a fresh chunk takes its place. A ring starts small and doubles when
 * the kernel reports it ran dry (-ENOBUFS), at most once per loop iteration.
 */
#include "reactor_internal.h"
#include "sys.h"
#include "uring_backend.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUF_IDS 512u       /* ids per ring; each holds at most one chunk */
/* Chunks lent at first. A stream receive takes only the bytes it needs, so two chunks serve
 * any number of small receives (one filling while the other comes back), as epoll's read area
 * does; a datagram takes a whole chunk, so that ring starts with a batch's worth (half the
 * pool's idle floor, buf.c). */
#define BUF_START_STREAM 2u
#define BUF_START_DGRAM 8u

/* Newer than some kernel headers this builds against (6.12's incremental consumption). */
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
#define ZEV_PBUF_RING_INC 2u /* IOU_PBUF_RING_INC */

/* struct io_uring_buf_reg with its flags field by name (older headers call it pad). */
struct buf_reg {
    uint64_t ring_addr;
    uint32_t ring_entries;
    uint16_t bgid;
    uint16_t flags;
    uint64_t resv[3];
};
_Static_assert(sizeof(struct buf_reg) == sizeof(struct io_uring_buf_reg), "io_uring_buf_reg");

bool zev__loop_completes(const zev_loop_t *loop) {
    return loop->backend->ops == &zev__backend_uring && zev__uring_state(loop)->completion;
}

/* ---- the buffer rings ---- */

static struct zev__ring_bufs *bufs_of(zev_loop_t *loop, enum zev__bufs_kind kind) {
    return &zev__uring_state(loop)->bufs[kind];
}

/* The ring a result's buffer id belongs to, and the id's index in it. */
static struct zev__ring_bufs *bufs_of_result(zev_loop_t *loop, const struct zev__ready *e,
                                             unsigned *index) {
    unsigned bid = e->flags >> IORING_CQE_BUFFER_SHIFT;
    struct zev__ring_bufs *rb = bufs_of(loop, bid >= BUF_IDS ? ZEV__BUFS_DGRAM : ZEV__BUFS_STREAM);
    *index = bid - rb->bid_base;
    return rb;
}

static bool has_buffer(const struct zev__ready *e) {
    return (e->flags & IORING_CQE_F_BUFFER) != 0;
}

/* Lend id i's chunk, whole: write the entry, then publish the tail (release order: the kernel
 * must see the entry before the tail that covers it). */
static void lend(struct zev__ring_bufs *rb, unsigned i) {
    struct zev__ring_id *id = &rb->ids[i];
    struct io_uring_buf *e = &rb->br->bufs[rb->tail & (rb->entries - 1)];
    e->addr = (uint64_t)(uintptr_t)id->chunk->base;
    e->len = (uint32_t)id->chunk->size;
    e->bid = (uint16_t)(rb->bid_base + i);
    id->off = 0;
    id->lent = true;
    rb->tail++;
    __atomic_store_n(&rb->br->tail, rb->tail, __ATOMIC_RELEASE);
}

static int ring_init(zev_loop_t *loop, struct zev__ring_bufs *rb, enum zev__bufs_kind kind) {
    rb->entries = BUF_IDS;
    rb->bgid = (uint16_t)kind;
    rb->bid_base = (uint16_t)(kind * BUF_IDS);
    rb->br_size = rb->entries * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, rb->br_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) return -errno;
    rb->ids = zev__alloc(loop, rb->entries * sizeof(*rb->ids));
    if (!rb->ids) {
        munmap(mem, rb->br_size);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < rb->entries; i++) rb->ids[i] = (struct zev__ring_id){0};
    rb->br = mem;
    rb->start = kind == ZEV__BUFS_STREAM ? BUF_START_STREAM : BUF_START_DGRAM;
    rb->want = rb->start;
    return 0;
}

/* The rings' memory and bookkeeping, taken when the loop starts (its fixed cost, like the
 * event array's); chunks are lent at a ring's first receive (bufs_ready). */
int zev__ring_bufs_init(zev_loop_t *loop) {
    int err = ring_init(loop, bufs_of(loop, ZEV__BUFS_STREAM), ZEV__BUFS_STREAM);
    if (err == 0) err = ring_init(loop, bufs_of(loop, ZEV__BUFS_DGRAM), ZEV__BUFS_DGRAM);
    return err;
}

static int ring_register(zev_loop_t *loop, struct zev__ring_bufs *rb, uint16_t flags) {
    struct buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)rb->br,
                          .ring_entries = rb->entries,
                          .bgid = rb->bgid,
                          .flags = flags};
    long r = syscall(__NR_io_uring_register, zev__uring_state(loop)->ring.fd,
                     IORING_REGISTER_PBUF_RING, &reg, 1);
    return r < 0 ? -errno : 0;
}

static int bufs_register(zev_loop_t *loop, struct zev__ring_bufs *rb) {
    int err = -EINVAL;
    rb->incremental = rb->bgid == ZEV__BUFS_STREAM;
    if (rb->incremental) err = ring_register(loop, rb, ZEV_PBUF_RING_INC);
    if (err == -EINVAL) { /* before 6.12: every receive takes a whole chunk */
        rb->incremental = false;
        err = ring_register(loop, rb, 0);
    }
    if (err < 0) return err;
    rb->tail = 0;
    rb->br->tail = 0;
    rb->registered = true;
    return 0;
}

/* Lend chunks to empty ids until `want` are lent. */
static void bufs_fill(zev_loop_t *loop, struct zev__ring_bufs *rb) {
    for (unsigned i = 0; i < rb->entries && rb->filled < rb->want; i++) {
        if (rb->ids[i].chunk) continue;
        zev_buf_t *c = zev_buf_get(loop);
        if (!c) return; /* memory is short: the ring makes do with what it has */
        rb->ids[i].chunk = c;
        rb->filled++;
        loop->pool.stats.lent++;
        lend(rb, i);
    }
}

static int bufs_ready(zev_loop_t *loop, enum zev__bufs_kind kind) {
    struct zev__ring_bufs *rb = bufs_of(loop, kind);
    if (!rb->registered) {
        int err = bufs_register(loop, rb);
        if (err < 0) return err;
        bufs_fill(loop, rb);
    }
    return 0;
}

/* Every receive that found the ring dry at the same moment says so: a burst of them is one
 * shortage, so the ring doubles at most once per loop iteration (doubling once per result
 * took it from 1 chunk to 512 in one batch of 64 receives). */
unsigned zev__ring_bufs_grow(zev_loop_t *loop, enum zev__bufs_kind kind) {
    struct zev__ring_bufs *rb = bufs_of(loop, kind);
    if (!rb->registered) return rb->filled;
    if (rb->grew && rb->grew_iter == loop->metrics.iterations) return rb->filled;
    rb->grew_iter = loop->metrics.iterations;
    if (rb->want < rb->entries) rb->want *= 2;
    if (rb->want > rb->entries) rb->want = rb->entries;
    rb->grew = true;
    zev__trim_arm(loop);
    bufs_fill(loop, rb);
    return rb->filled;
}

/* Every chunk leaves the ring: unregistering the group drops the kernel's entries, and the
 * chunks go back to the pool. Only with no receive in flight (the loop or the backend
 * closes). */
static void bufs_drop(zev_loop_t *loop, struct zev__ring_bufs *rb) {
    if (rb->registered) {
        struct buf_reg reg = {.bgid = rb->bgid};
        (void)syscall(__NR_io_uring_register, zev__uring_state(loop)->ring.fd,
                      IORING_UNREGISTER_PBUF_RING, &reg, 1);
        rb->registered = false;
    }
    for (unsigned i = 0; i < rb->entries; i++) {
        if (rb->ids[i].chunk) zev_buf_unref(rb->ids[i].chunk);
        rb->ids[i] = (struct zev__ring_id){0};
    }
    loop->pool.stats.lent -= rb->filled;
    rb->filled = 0;
}

/* An empty list of results that grew in a burst goes back to its first size. */
static void list_trim(zev_loop_t *loop, struct zev__ready **arr, unsigned n, unsigned *cap) {
    if (n > 0 || *cap <= ZEV__READY_LIST_START) return;
    struct zev__ready *small = zev__alloc(loop, ZEV__READY_LIST_START * sizeof(*small));
    if (!small) return;
    zev__free(loop, *arr, *cap * sizeof(**arr));
    *arr = small;
    *cap = ZEV__READY_LIST_START;
}

/* A ring shrinks only as its chunks come back: once it has not run dry for an interval, it
 * wants its first size again, and chunks returning from the data events beyond that go back
 * to the pool instead of into the ring (zev__ring_chunk_done). Taking the lent chunks back at
 * once would mean unregistering the group under armed receives, and on kernel 6.18 that
 * corrupted data: in a 6 s pingpong-50 run a receive landed in a buffer id that was no longer
 * lent (docs/internals.md). */
static bool ring_trim(struct zev__ring_bufs *rb) {
    if (rb->grew) { /* it ran dry this interval: still needed */
        rb->grew = false;
        return true;
    }
    rb->want = rb->start;
    return false;
}

bool zev__ring_bufs_trim(zev_loop_t *loop) {
    if (!zev__loop_completes(loop)) return false;
    struct zev__uring_backend *u = zev__uring_state(loop);
    list_trim(loop, &u->stash, u->n_stash, &u->cap_stash);
    list_trim(loop, &u->parked, u->n_parked, &u->cap_parked);
    bool more = ring_trim(bufs_of(loop, ZEV__BUFS_STREAM));
    more |= ring_trim(bufs_of(loop, ZEV__BUFS_DGRAM));
    return more;
}

void zev__ring_bufs_release(zev_loop_t *loop) {
    for (unsigned k = 0; k < 2; k++) {
        struct zev__ring_bufs *rb = bufs_of(loop, (enum zev__bufs_kind)k);
        if (rb->br) bufs_drop(loop, rb);
    }
}

void zev__ring_bufs_free(zev_loop_t *loop) {
    for (unsigned k = 0; k < 2; k++) {
        struct zev__ring_bufs *rb = bufs_of(loop, (enum zev__bufs_kind)k);
        if (!rb->br) continue;
        bufs_drop(loop, rb);
        zev__free(loop, rb->ids, rb->entries * sizeof(*rb->ids));
        munmap(rb->br, rb->br_size);
        *rb = (struct zev__ring_bufs){0};
    }
}

/* Where a receive's bytes start is known only here, as the CQE is read: the kernel moved its
 * receive point past them, and the next result for the same id starts there. A result keeps
 * its id's chunk in place until the owner is done with it (pending), even after the kernel
 * gave the id back. */
struct zev__ready zev__op_result(zev_loop_t *loop, const struct io_uring_cqe *c) {
    struct zev__ready e = {.tag = (uintptr_t)c->user_data, .revents = ZEV__COMPLETED,
                           .res = c->res, .flags = c->flags};
    if (!has_buffer(&e)) return e;
    unsigned i;
    struct zev__ring_bufs *rb = bufs_of_result(loop, &e, &i);
    struct zev__ring_id *id = &rb->ids[i];
    e.off = id->off;
    if (c->res > 0) id->off += (uint32_t)c->res;
    zev__debug_assert(id->chunk && id->off <= id->chunk->size, "a receive past its chunk");
    id->pending++;
    /* Without BUF_MORE the kernel is done with the id: always in a whole-chunk ring; in an
     * incremental one, once a receive used up the chunk (a result of no bytes consumed
     * nothing, so the id stays the kernel's). */
    bool kernel_done = !(c->flags & IORING_CQE_F_BUF_MORE) && (!rb->incremental || c->res > 0);
    if (kernel_done) id->lent = false;
    return e;
}

bool zev__ring_is_readiness(const struct zev__ready *e) {
    return e->res > 0 && !has_buffer(e);
}

zev_buf_t *zev__ring_chunk(zev_loop_t *loop, const struct zev__ready *e) {
    if (!has_buffer(e)) return NULL;
    unsigned i;
    return bufs_of_result(loop, e, &i)->ids[i].chunk;
}

/* Id i's chunk leaves the ring (with the ring's reference); a fresh one is lent to an empty
 * id if the ring wants more. */
static void chunk_drop(zev_loop_t *loop, struct zev__ring_bufs *rb, unsigned i) {
    zev_buf_unref(rb->ids[i].chunk);
    rb->ids[i] = (struct zev__ring_id){0};
    rb->filled--;
    loop->pool.stats.lent--;
    if (rb->registered) bufs_fill(loop, rb);
}

void zev__ring_chunk_done(zev_loop_t *loop, const struct zev__ready *e) {
    if (!has_buffer(e)) return;
    unsigned i;
    struct zev__ring_bufs *rb = bufs_of_result(loop, e, &i);
    struct zev__ring_id *id = &rb->ids[i];
    id->pending--;
    if (id->lent || id->pending > 0) return; /* the kernel or another result still uses it */
    if (!rb->registered || rb->filled > rb->want) { /* shrinking: it leaves the ring */
        chunk_drop(loop, rb, i);
        return;
    }
    if (id->chunk->refs == 1) {
        lend(rb, i); /* nobody kept it: the same chunk goes straight back */
        return;
    }
    /* The user kept it: a fresh chunk takes its id at once (O(1); a UDP echo keeps every
     * chunk until its reply is sent), and the user's references keep the old one alive. */
    zev_buf_t *fresh = zev_buf_get(loop);
    if (!fresh) {
        chunk_drop(loop, rb, i); /* memory is short: one id less */
        return;
    }
    zev_buf_unref(id->chunk);
    id->chunk = fresh;
    lend(rb, i);
}

/* ---- operations ---- */

static struct io_uring_sqe *op_sqe(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op,
                                   int *err) {
    struct io_uring_sqe *sqe = zev__uring_sqe(&zev__uring_state(loop)->ring, err);
    if (!sqe) return NULL;
    sqe->fd = w->fd;
    sqe->user_data = (uintptr_t)w | (unsigned)op;
    return sqe;
}

int zev__ring_recv(zev_loop_t *loop, struct zev_watcher *w) {
    int err = bufs_ready(loop, ZEV__BUFS_STREAM);
    if (err < 0) return err;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_RECV, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_RECV;
    sqe->flags = IOSQE_BUFFER_SELECT; /* the kernel picks a chunk when bytes arrive */
    sqe->buf_group = ZEV__BUFS_STREAM;
    return 0;
}

int zev__ring_poll_in(zev_loop_t *loop, struct zev_watcher *w) {
    int err = 0;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_RECV, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->poll32_events = EPOLLIN | EPOLLRDHUP | EPOLLPRI; /* as a readiness watcher asks */
    return 0;
}

int zev__ring_send(zev_loop_t *loop, struct zev_watcher *w, const char *base, size_t len,
                   bool linked, bool zero_copy) {
    int err = 0;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_SEND, &err);
    if (!sqe) return err;
    sqe->opcode = zero_copy ? IORING_OP_SEND_ZC : IORING_OP_SEND;
    sqe->addr = (uint64_t)(uintptr_t)base;
    sqe->len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    /* WAITALL: the kernel retries a partial send itself, so a result short of len is an
     * error, and only then is a link broken. */
    sqe->msg_flags = MSG_NOSIGNAL | MSG_WAITALL;
    if (linked) sqe->flags |= IOSQE_IO_LINK;
    return 0;
}

bool zev__ring_send_zc_wanted(const zev_loop_t *loop, size_t len) {
    size_t min = zev__uring_state(loop)->send_zc_min;
    return min > 0 && len >= min;
}

void zev__ring_set_send_zc_min(zev_loop_t *loop, size_t min) {
    if (zev__loop_completes(loop)) zev__uring_state(loop)->send_zc_min = min;
}

int zev__ring_reserve(zev_loop_t *loop, unsigned n) {
    return zev__uring_reserve(&zev__uring_state(loop)->ring, n);
}

int zev__ring_pollout(zev_loop_t *loop, struct zev_watcher *w) {
    int err = 0;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_POLLOUT, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->poll32_events = EPOLLOUT;
    return 0;
}

/* ---- results kept while a socket's reading is paused ---- */

int zev__ring_park(zev_loop_t *loop, const struct zev__ready *e) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    return zev__ready_push(loop, &u->parked, &u->n_parked, &u->cap_parked, *e);
}

bool zev__ring_unpark(zev_loop_t *loop, const struct zev_watcher *w, struct zev__ready *out) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    for (unsigned i = 0; i < u->n_parked; i++) {
        if (zev__ready_watcher(&u->parked[i]) != w) continue;
        *out = u->parked[i];
        for (unsigned j = i + 1; j < u->n_parked; j++) u->parked[j - 1] = u->parked[j];
        u->n_parked--;
        return true;
    }
    return false;
}

/* ---- stopping one operation ---- */

/* Where stopping one operation stands (zev__ring_cancel). */
struct stopping {
    zev_loop_t *loop;
    uint64_t ud; /* the operation's user_data */
    bool ended;
    bool kept;
};

/* Keep a result of the operation for later delivery (the park), unless it carries nothing. */
static void keep_result(zev_loop_t *loop, struct stopping *s, const struct zev__ready *e) {
    if (!(e->flags & IORING_CQE_F_MORE)) s->ended = true;
    /* A readiness report carries nothing: what it reported is still in the socket. */
    if (e->res == -ECANCELED || zev__ring_is_readiness(e)) return;
    if (zev__ring_park(loop, e) < 0) {
        zev__ring_chunk_done(loop, e); /* only under a failing allocator */
        return;
    }
    s->kept = true;
}

static bool stopped_op_cqe(void *ctx, const struct io_uring_cqe *c) {
    struct stopping *s = ctx;
    if (c->user_data != s->ud) return false;
    struct zev__ready e = zev__op_result(s->loop, c);
    keep_result(s->loop, s, &e);
    return true;
}

int zev__ring_cancel(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op, bool *kept) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    struct zev__backend *b = loop->backend;
    struct stopping s = {.ud = (uintptr_t)w | (unsigned)op, .loop = loop};
    /* Results read ahead: the stash, then the batch being dispatched. */
    unsigned n = 0;
    for (unsigned i = 0; i < u->n_stash; i++) {
        if (u->stash[i].tag == s.ud) {
            keep_result(loop, &s, &u->stash[i]);
            continue;
        }
        u->stash[n++] = u->stash[i];
    }
    u->n_stash = n;
    for (unsigned i = b->next_ready; i < b->n_ready; i++) {
        if (b->ready[i].tag != s.ud || !(b->ready[i].revents & ZEV__COMPLETED)) continue;
        keep_result(loop, &s, &b->ready[i]);
        b->ready[i].tag = 0; /* void: dispatch skips it */
    }
    /* The wait below is an enter of its own, and the seam may fail it like any submit. */
    int err = s.ended ? 0 : zev__fault_hit(ZEV_SYS_RING_SUBMIT, NULL);
    if (!s.ended && err == 0) err = zev__ring_cancel_async(loop, w, op);
    while (!s.ended && err == 0) err = zev__uring_reap(loop, stopped_op_cqe, &s);
    *kept = s.kept;
    return s.ended ? 0 : (err < 0 ? err : -EIO);
}

/* ---- ending a socket's operations ---- */

/* Whether a result is its operation's last. A multishot says "more to come" with
 * IORING_CQE_F_MORE; a zero-copy send's result says with it that a notification will follow,
 * which is no result: the send itself has ended, and the notification, when it comes, goes
 * to the owner like any result (its socket holds its close until then: write.c). */
static bool ends_op(const struct zev__ready *e) {
    if (e->flags & IORING_CQE_F_NOTIF) return false;
    return zev__ready_op(e) == ZEV__OP_SEND || !(e->flags & IORING_CQE_F_MORE);
}

static void hand_to_owner(struct zev_watcher *w, const struct zev__ready *e) {
    zev_handle_t *owner = zev__watcher_owner(w);
    owner->ops->complete(owner, e);
}

/* Results for w that were read already (the stash, the batch being dispatched, the parked
 * ones) go to the owner now; returns how many of them were an operation's last. */
static unsigned settle_read_ahead(zev_loop_t *loop, struct zev_watcher *w) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    struct zev__backend *b = loop->backend;
    unsigned ended = 0;
    struct zev__ready e;
    while (zev__ring_unpark(loop, w, &e)) hand_to_owner(w, &e);
    unsigned kept = 0;
    for (unsigned i = 0; i < u->n_stash; i++) {
        e = u->stash[i];
        bool its_op = (e.revents & ZEV__COMPLETED) && zev__ready_watcher(&e) == w;
        if (!its_op) {
            u->stash[kept++] = e;
            continue;
        }
        if (ends_op(&e)) ended++;
        hand_to_owner(w, &e);
    }
    u->n_stash = kept;
    for (unsigned i = b->next_ready; i < b->n_ready; i++) {
        e = b->ready[i];
        if (!(e.revents & ZEV__COMPLETED) || zev__ready_watcher(&e) != w) continue;
        b->ready[i].tag = 0; /* void: dispatch skips it */
        if (ends_op(&e)) ended++;
        hand_to_owner(w, &e);
    }
    return ended;
}

/* Where ending a socket's operations stands (zev__ring_forget). */
struct forgetting {
    zev_loop_t *loop;
    struct zev_watcher *w;
    unsigned ended; /* operations whose last result came */
};

/* zev__uring_reap's filter: w's results go to its owner, counting the last ones. */
static bool forgotten_op_cqe(void *ctx, const struct io_uring_cqe *c) {
    struct forgetting *f = ctx;
    if (!zev__ud_is_op(c->user_data) || zev__ud_watcher(c->user_data) != f->w) return false;
    struct zev__ready e = zev__op_result(f->loop, c);
    if (ends_op(&e)) f->ended++;
    hand_to_owner(f->w, &e);
    return true;
}

/* Ask the kernel to cancel w's operation of kind op (flags: IORING_ASYNC_CANCEL_ALL for every
 * one of them, as a chain of sends shares one user_data). Always by user_data, never by
 * descriptor: the kernel finds an armed request by user_data in a hash, but matching a
 * descriptor walks every request in flight, so with 10,000 sockets each close cost more than
 * the rest of the proxy's work (io_cancel_req_match was 18% of its CPU in the soak). */
static int cancel_op(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op, unsigned flags) {
    int err = 0;
    struct io_uring_sqe *sqe = zev__uring_sqe(&zev__uring_state(loop)->ring, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = (uintptr_t)w | (unsigned)op; /* the operation's user_data names it */
    sqe->cancel_flags = flags;
    sqe->user_data = (uintptr_t)w | ZEV__UD_CANCEL;
    return 0;
}

void zev__ring_forget(zev_loop_t *loop, struct zev_watcher *w, unsigned in_flight) {
    struct forgetting f = {.loop = loop, .w = w, .ended = settle_read_ahead(loop, w)};
    if (f.ended >= in_flight) return;
    if (zev__ring_reserve(loop, ZEV__OP_ACCEPT - ZEV__OP_RECV + 1) < 0) return;
    for (unsigned op = ZEV__OP_RECV; op <= ZEV__OP_ACCEPT; op++)
        (void)cancel_op(loop, w, (enum zev__op)op, IORING_ASYNC_CANCEL_ALL); /* room reserved */
    while (f.ended < in_flight) {
        if (zev__uring_reap(loop, forgotten_op_cqe, &f) < 0) return;
    }
}

/* ---- stopping one operation, asynchronously ---- */

int zev__ring_cancel_async(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op) {
    return cancel_op(loop, w, op, 0);
}

/* ---- operations of listening sockets ---- */

/* No address is asked for: a multishot accept would write every connection's peer to the same
 * place, overwritten before the results are read. */
int zev__ring_accept(zev_loop_t *loop, struct zev_watcher *w) {
    int err = 0;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_ACCEPT, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    sqe->accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    return 0;
}

/* ---- datagram operations (src/udp/ring.c) ---- */

int zev__ring_recvmsg_multishot(zev_loop_t *loop, struct zev_watcher *w, const struct msghdr *msg,
                                bool poll_first) {
    int err = bufs_ready(loop, ZEV__BUFS_DGRAM);
    if (err < 0) return err;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_RECV, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_RECVMSG;
    sqe->addr = (uint64_t)(uintptr_t)msg;
    sqe->len = 1;
    sqe->msg_flags = MSG_TRUNC; /* payloadlen is then a cut datagram's real size */
    sqe->ioprio = IORING_RECV_MULTISHOT | (poll_first ? IORING_RECVSEND_POLL_FIRST : 0);
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = ZEV__BUFS_DGRAM;
    return 0;
}

int zev__ring_sendmsg(zev_loop_t *loop, struct zev_watcher *w, const struct msghdr *msg,
                      bool link) {
    int err = 0;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_SEND, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_SENDMSG;
    sqe->addr = (uint64_t)(uintptr_t)msg;
    sqe->len = 1;
    sqe->msg_flags = MSG_NOSIGNAL;
    if (link) sqe->flags = IOSQE_IO_LINK;
    return 0;
}
