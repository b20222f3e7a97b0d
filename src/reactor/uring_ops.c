/* src/reactor/uring_ops.c: the io_uring backend's completion half: the operations sockets
 * submit (ring.h), the ring of receive buffers, and ending every operation of a socket that
 * closes.
 *
 * Receive buffers are the loop's own pool chunks, lent to the kernel through a provided-buffer
 * ring: the kernel picks one when bytes arrive and the result says which, so the data event's
 * slice points straight at what the kernel wrote, owned by that chunk as on epoll (zero-copy
 * holds: nothing is copied out of the ring). After the data event the chunk goes back to the
 * ring, or, if the user kept a reference, a fresh chunk takes its place. The ring starts with
 * a few chunks and doubles when the kernel reports it ran dry (-ENOBUFS).
 */
#include "reactor_internal.h"
#include "uring_backend.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUF_RING_ENTRIES 1024u /* ids; each holds at most one chunk */
#define BUF_RING_START 8u      /* chunks lent at first: half the pool's idle floor (buf.c) */
#define BUF_GROUP 0

bool zev__loop_completes(const zev_loop_t *loop) {
    return loop->backend->ops == &zev__backend_uring && zev__uring_state(loop)->completion;
}

/* ---- the buffer ring ---- */

static struct zev__ring_bufs *bufs_of(zev_loop_t *loop) {
    return &zev__uring_state(loop)->bufs;
}

/* Lend chunk as buffer id bid: write the entry, then publish the tail (release order: the
 * kernel must see the entry before the tail that covers it). */
static void lend(struct zev__ring_bufs *rb, unsigned bid, zev_buf_t *chunk) {
    struct io_uring_buf *e = &rb->br->bufs[rb->tail & (rb->entries - 1)];
    e->addr = (uint64_t)(uintptr_t)chunk->base;
    e->len = (uint32_t)chunk->size;
    e->bid = (uint16_t)bid;
    rb->tail++;
    __atomic_store_n(&rb->br->tail, rb->tail, __ATOMIC_RELEASE);
}

/* The ring's memory and bookkeeping, taken when the loop starts (its fixed cost, like the
 * event array's); chunks are lent at the first receive (bufs_ready). */
int zev__ring_bufs_init(zev_loop_t *loop) {
    struct zev__ring_bufs *rb = bufs_of(loop);
    rb->entries = BUF_RING_ENTRIES;
    rb->br_size = rb->entries * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, rb->br_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) return -errno;
    rb->chunk = zev__alloc(loop, rb->entries * sizeof(*rb->chunk));
    if (!rb->chunk) {
        munmap(mem, rb->br_size);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < rb->entries; i++) rb->chunk[i] = NULL;
    rb->br = mem;
    rb->want = BUF_RING_START;
    return 0;
}

static int bufs_register(zev_loop_t *loop, struct zev__ring_bufs *rb) {
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)rb->br,
                                   .ring_entries = rb->entries,
                                   .bgid = BUF_GROUP};
    long r = syscall(__NR_io_uring_register, zev__uring_state(loop)->ring.fd,
                     IORING_REGISTER_PBUF_RING, &reg, 1);
    if (r < 0) return -errno;
    rb->tail = 0;
    rb->br->tail = 0;
    rb->registered = true;
    return 0;
}

/* Lend chunks to empty ids until `want` are lent. */
static void bufs_fill(zev_loop_t *loop, struct zev__ring_bufs *rb) {
    for (unsigned bid = 0; bid < rb->entries && rb->filled < rb->want; bid++) {
        if (rb->chunk[bid]) continue;
        zev_buf_t *c = zev_buf_get(loop);
        if (!c) return; /* memory is short: the ring makes do with what it has */
        rb->chunk[bid] = c;
        rb->filled++;
        loop->pool.stats.lent++;
        lend(rb, bid, c);
    }
}

static int bufs_ready(zev_loop_t *loop) {
    struct zev__ring_bufs *rb = bufs_of(loop);
    if (!rb->registered) {
        int err = bufs_register(loop, rb);
        if (err < 0) return err;
        bufs_fill(loop, rb);
    }
    return 0;
}

void zev__ring_bufs_grow(zev_loop_t *loop) {
    struct zev__ring_bufs *rb = bufs_of(loop);
    if (!rb->registered) return;
    if (rb->want < rb->entries) rb->want *= 2;
    if (rb->want > rb->entries) rb->want = rb->entries;
    rb->grew = true;
    zev__trim_arm(loop);
    bufs_fill(loop, rb);
}

/* Every chunk leaves the ring: unregistering the group drops the kernel's entries, and the
 * chunks go back to the pool. Only with no receive in flight (the loop or the backend
 * closes). */
static void bufs_drop(zev_loop_t *loop, struct zev__ring_bufs *rb) {
    if (rb->registered) {
        struct io_uring_buf_reg reg = {.bgid = BUF_GROUP};
        (void)syscall(__NR_io_uring_register, zev__uring_state(loop)->ring.fd,
                      IORING_UNREGISTER_PBUF_RING, &reg, 1);
        rb->registered = false;
    }
    for (unsigned i = 0; i < rb->entries; i++) {
        if (rb->chunk[i]) zev_buf_unref(rb->chunk[i]);
        rb->chunk[i] = NULL;
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

/* The ring shrinks only as its chunks come back: once it has not run dry for an interval, it
 * wants its first size again, and chunks returning from the data events beyond that go back
 * to the pool instead of into the ring (zev__ring_chunk_done). Taking the lent chunks back at
 * once would mean unregistering the group under armed receives, and on kernel 6.18 that
 * corrupted data: in a 6 s pingpong-50 run a receive landed in a buffer id that was no longer
 * lent (docs/internals.md). */
bool zev__ring_bufs_trim(zev_loop_t *loop) {
    if (!zev__loop_completes(loop)) return false;
    struct zev__uring_backend *u = zev__uring_state(loop);
    list_trim(loop, &u->stash, u->n_stash, &u->cap_stash);
    list_trim(loop, &u->parked, u->n_parked, &u->cap_parked);
    struct zev__ring_bufs *rb = bufs_of(loop);
    if (rb->grew) { /* it ran dry this interval: still needed */
        rb->grew = false;
        return true;
    }
    rb->want = BUF_RING_START;
    return false;
}

void zev__ring_bufs_release(zev_loop_t *loop) {
    struct zev__ring_bufs *rb = bufs_of(loop);
    if (rb->br) bufs_drop(loop, rb);
}

void zev__ring_bufs_free(zev_loop_t *loop) {
    struct zev__ring_bufs *rb = bufs_of(loop);
    if (!rb->br) return;
    bufs_drop(loop, rb);
    zev__free(loop, rb->chunk, rb->entries * sizeof(*rb->chunk));
    munmap(rb->br, rb->br_size);
    *rb = (struct zev__ring_bufs){0};
}

static bool has_buffer(const struct zev__ready *e) {
    return (e->flags & IORING_CQE_F_BUFFER) != 0;
}

static unsigned buffer_id(const struct zev__ready *e) {
    return e->flags >> IORING_CQE_BUFFER_SHIFT;
}

bool zev__ring_is_readiness(const struct zev__ready *e) {
    return e->res > 0 && !has_buffer(e);
}

zev_buf_t *zev__ring_chunk(zev_loop_t *loop, const struct zev__ready *e) {
    return has_buffer(e) ? bufs_of(loop)->chunk[buffer_id(e)] : NULL;
}

/* The id's chunk leaves the ring (with the ring's reference); a fresh one is lent in its
 * place. */
static zev_buf_t *chunk_take(zev_loop_t *loop, const struct zev__ready *e) {
    if (!has_buffer(e)) return NULL;
    struct zev__ring_bufs *rb = bufs_of(loop);
    unsigned bid = buffer_id(e);
    zev_buf_t *c = rb->chunk[bid];
    rb->chunk[bid] = NULL;
    rb->filled--;
    loop->pool.stats.lent--;
    if (rb->registered) bufs_fill(loop, rb);
    return c;
}

void zev__ring_chunk_done(zev_loop_t *loop, const struct zev__ready *e) {
    if (!has_buffer(e)) return;
    struct zev__ring_bufs *rb = bufs_of(loop);
    unsigned bid = buffer_id(e);
    zev_buf_t *c = rb->chunk[bid];
    if (!rb->registered || rb->filled > rb->want) { /* shrinking: it leaves the ring */
        zev_buf_unref(chunk_take(loop, e));
        return;
    }
    if (c->refs == 1) {
        lend(rb, bid, c); /* nobody kept it: the same chunk goes straight back */
        return;
    }
    /* The user kept it: a fresh chunk takes its id at once (O(1); a UDP echo keeps every
     * chunk until its reply is sent), and the user's references keep the old one alive. */
    zev_buf_t *fresh = zev_buf_get(loop);
    if (!fresh) {
        zev_buf_unref(chunk_take(loop, e)); /* memory is short: one id less */
        return;
    }
    rb->chunk[bid] = fresh;
    lend(rb, bid, fresh);
    zev_buf_unref(c);
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
    int err = bufs_ready(loop);
    if (err < 0) return err;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_RECV, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_RECV;
    sqe->flags = IOSQE_BUFFER_SELECT; /* the kernel picks a chunk when bytes arrive */
    sqe->buf_group = BUF_GROUP;
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
                   bool linked) {
    int err = 0;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_SEND, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_SEND;
    sqe->addr = (uint64_t)(uintptr_t)base;
    sqe->len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    /* WAITALL: the kernel retries a partial send itself, so a result short of len is an
     * error, and only then is a link broken. */
    sqe->msg_flags = MSG_NOSIGNAL | MSG_WAITALL;
    if (linked) sqe->flags |= IOSQE_IO_LINK;
    return 0;
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
    struct zev__ready e = zev__op_result(c);
    keep_result(s->loop, s, &e);
    return true;
}

bool zev__ring_cancel(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op) {
    struct zev__uring_backend *u = zev__uring_state(loop);
    struct zev__backend *b = loop->backend;
    struct stopping s = {.ud = (uintptr_t)w | (unsigned)op, .loop = loop};
    /* Results read ahead: the stash, then the batch being dispatched. */
    unsigned kept = 0;
    for (unsigned i = 0; i < u->n_stash; i++) {
        if (u->stash[i].tag == s.ud) {
            keep_result(loop, &s, &u->stash[i]);
            continue;
        }
        u->stash[kept++] = u->stash[i];
    }
    u->n_stash = kept;
    for (unsigned i = b->next_ready; i < b->n_ready; i++) {
        if (b->ready[i].tag != s.ud || !(b->ready[i].revents & ZEV__COMPLETED)) continue;
        keep_result(loop, &s, &b->ready[i]);
        b->ready[i].tag = 0; /* void: dispatch skips it */
    }
    if (s.ended || zev__ring_cancel_async(loop, w, op) < 0) return s.kept;
    while (!s.ended) {
        if (zev__uring_reap(loop, stopped_op_cqe, &s) < 0) break;
    }
    return s.kept;
}

/* ---- ending a socket's operations ---- */

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
        if (!(e.flags & IORING_CQE_F_MORE)) ended++;
        hand_to_owner(w, &e);
    }
    u->n_stash = kept;
    for (unsigned i = b->next_ready; i < b->n_ready; i++) {
        e = b->ready[i];
        if (!(e.revents & ZEV__COMPLETED) || zev__ready_watcher(&e) != w) continue;
        b->ready[i].tag = 0; /* void: dispatch skips it */
        if (!(e.flags & IORING_CQE_F_MORE)) ended++;
        hand_to_owner(w, &e);
    }
    return ended;
}

/* Where ending a socket's operations stands (zev__ring_forget). */
struct forgetting {
    struct zev_watcher *w;
    unsigned ended; /* operations whose last result came */
};

/* zev__uring_reap's filter: w's results go to its owner, counting the last ones. */
static bool forgotten_op_cqe(void *ctx, const struct io_uring_cqe *c) {
    struct forgetting *f = ctx;
    if (!zev__ud_is_op(c->user_data) || zev__ud_watcher(c->user_data) != f->w) return false;
    struct zev__ready e = zev__op_result(c);
    if (!(c->flags & IORING_CQE_F_MORE)) f->ended++;
    hand_to_owner(f->w, &e);
    return true;
}

void zev__ring_forget(zev_loop_t *loop, struct zev_watcher *w, unsigned in_flight) {
    struct forgetting f = {.w = w, .ended = settle_read_ahead(loop, w)};
    if (f.ended >= in_flight) return;
    int err = 0;
    struct io_uring_sqe *sqe = zev__uring_sqe(&zev__uring_state(loop)->ring, &err);
    if (!sqe) return;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = w->fd;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    sqe->user_data = (uintptr_t)w | ZEV__UD_CANCEL;
    while (f.ended < in_flight) {
        if (zev__uring_reap(loop, forgotten_op_cqe, &f) < 0) return;
    }
}

/* ---- stopping one operation, asynchronously ---- */

int zev__ring_cancel_async(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op) {
    int err = 0;
    struct io_uring_sqe *sqe = zev__uring_sqe(&zev__uring_state(loop)->ring, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = (uintptr_t)w | (unsigned)op; /* the operation's user_data names it */
    sqe->user_data = (uintptr_t)w | ZEV__UD_CANCEL;
    return 0;
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
    int err = bufs_ready(loop);
    if (err < 0) return err;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_RECV, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_RECVMSG;
    sqe->addr = (uint64_t)(uintptr_t)msg;
    sqe->len = 1;
    sqe->msg_flags = MSG_TRUNC; /* payloadlen is then a cut datagram's real size */
    sqe->ioprio = IORING_RECV_MULTISHOT | (poll_first ? IORING_RECVSEND_POLL_FIRST : 0);
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
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

unsigned zev__ring_sq_room(const zev_loop_t *loop) {
    const struct zev__uring *r = &zev__uring_state(loop)->ring;
    return r->sq_entries - zev__uring_unsubmitted(r);
}
