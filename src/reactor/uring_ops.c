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
#define BUF_RING_START 16u     /* chunks lent at first */
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

static int bufs_register(zev_loop_t *loop, struct zev__ring_bufs *rb) {
    if (!rb->br) {
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
    }
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
    bufs_fill(loop, rb);
}

void zev__ring_bufs_release(zev_loop_t *loop) {
    struct zev__ring_bufs *rb = bufs_of(loop);
    if (!rb->br) return;
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
    rb->filled = 0;
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

zev_buf_t *zev__ring_chunk(zev_loop_t *loop, const struct zev__ready *e) {
    return has_buffer(e) ? bufs_of(loop)->chunk[buffer_id(e)] : NULL;
}

/* The id's chunk leaves the ring (with the ring's reference); a fresh one is lent in its
 * place. */
zev_buf_t *zev__ring_chunk_take(zev_loop_t *loop, const struct zev__ready *e) {
    if (!has_buffer(e)) return NULL;
    struct zev__ring_bufs *rb = bufs_of(loop);
    unsigned bid = buffer_id(e);
    zev_buf_t *c = rb->chunk[bid];
    rb->chunk[bid] = NULL;
    rb->filled--;
    if (rb->registered) bufs_fill(loop, rb);
    return c;
}

void zev__ring_chunk_done(zev_loop_t *loop, const struct zev__ready *e) {
    if (!has_buffer(e)) return;
    struct zev__ring_bufs *rb = bufs_of(loop);
    unsigned bid = buffer_id(e);
    zev_buf_t *c = rb->chunk[bid];
    if (c->refs == 1 && rb->registered) {
        lend(rb, bid, c); /* nobody kept it: the same chunk goes straight back */
        return;
    }
    zev_buf_unref(zev__ring_chunk_take(loop, e)); /* the user's references keep it alive */
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

int zev__ring_recv(zev_loop_t *loop, struct zev_watcher *w, char *base, size_t len) {
    int err = base ? 0 : bufs_ready(loop);
    if (err < 0) return err;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_RECV, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_RECV;
    if (base) {
        sqe->addr = (uint64_t)(uintptr_t)base;
        sqe->len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    } else {
        sqe->flags = IOSQE_BUFFER_SELECT; /* the kernel picks a chunk when bytes arrive */
        sqe->buf_group = BUF_GROUP;
    }
    return 0;
}

int zev__ring_send(zev_loop_t *loop, struct zev_watcher *w, const char *base, size_t len) {
    int err = 0;
    struct io_uring_sqe *sqe = op_sqe(loop, w, ZEV__OP_SEND, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_SEND;
    sqe->addr = (uint64_t)(uintptr_t)base;
    sqe->len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    sqe->msg_flags = MSG_NOSIGNAL;
    return 0;
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

/* ---- datagram operations (src/udp/ring.c) ---- */

int zev__ring_cancel(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op) {
    int err = 0;
    struct io_uring_sqe *sqe = zev__uring_sqe(&zev__uring_state(loop)->ring, &err);
    if (!sqe) return err;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = (uintptr_t)w | (unsigned)op; /* the user_data of the request to cancel */
    sqe->user_data = (uintptr_t)w | ZEV__UD_CANCEL;
    return 0;
}

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

size_t zev__ring_bufs_lent(const zev_loop_t *loop) {
    if (!loop->backend || loop->backend->ops != &zev__backend_uring || !loop->backend->priv) {
        return 0;
    }
    const struct zev__uring_backend *u = zev__uring_state(loop);
    size_t holding = 0; /* parked results keep their chunks until delivered */
    for (unsigned i = 0; i < u->n_parked; i++) {
        if (has_buffer(&u->parked[i])) holding++;
    }
    return u->bufs.filled > holding ? u->bufs.filled - holding : 0;
}

/* zev__ring_chunk_done in O(1) for a chunk the user kept: a fresh chunk takes its own id, where
 * zev__ring_chunk_take's refill scans the ids for an empty one (a UDP echo keeps every chunk
 * until its reply is sent, so that scan would run per datagram). */
void zev__ring_chunk_recycle(zev_loop_t *loop, const struct zev__ready *e) {
    if (!has_buffer(e)) return;
    struct zev__ring_bufs *rb = bufs_of(loop);
    unsigned bid = buffer_id(e);
    zev_buf_t *c = rb->chunk[bid];
    zev_buf_t *fresh = c->refs > 1 && rb->registered ? zev_buf_get(loop) : NULL;
    if (!fresh) {
        zev__ring_chunk_done(loop, e);
        return;
    }
    rb->chunk[bid] = fresh;
    lend(rb, bid, fresh);
    zev_buf_unref(c); /* the user's references keep it alive */
}
