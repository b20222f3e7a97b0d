/* src/reactor/ring.h: operations a socket hands to a completion backend (io_uring), and the
 * buffers the kernel receives into.
 *
 * On a readiness backend a socket is told "you can read" and calls read(); here it asks once
 * "receive into the loop's buffers, and keep doing so" and is later told "these bytes are in
 * chunk N". Each result comes back as a struct zev__ready with revents ZEV__COMPLETED, the
 * operation's kind in the tag's low bits, and goes to the owner's ops->complete, in the order
 * the kernel finished them. See docs/internals.md, "The completion loop".
 */
#ifndef ZEV_RING_H
#define ZEV_RING_H

#include "backend.h"

#include <sys/socket.h>
#include <sys/uio.h>

/* An operation's kind, in bits 0-2 of its user_data (a watcher is 8-aligned). */
enum zev__op {
    ZEV__OP_RECV = 4,    /* receive: multishot into the buffer ring, or once into user memory */
    ZEV__OP_SEND = 5,    /* send or sendmsg of the write queue's head */
    ZEV__OP_POLLOUT = 6, /* one-shot wait for room to write (what a sendfile needs) */
};

static inline enum zev__op zev__ready_op(const struct zev__ready *e) {
    return (enum zev__op)(e->tag & 7u);
}

static inline struct zev_watcher *zev__ready_watcher(const struct zev__ready *e) {
    return (struct zev_watcher *)(e->tag & ~(uintptr_t)7u);
}

#ifdef ZEV_HAVE_IO_URING
/* Whether the loop runs a completion backend: sockets then submit operations instead of
 * waiting for readiness. */
bool zev__loop_completes(const zev_loop_t *loop);
/* Receive on w->fd: into the loop's buffer ring, multishot (base NULL), or once into
 * base..base+len. Negative errno if the SQ could not take it. */
int zev__ring_recv(zev_loop_t *loop, struct zev_watcher *w, char *base, size_t len);
/* Send base..base+len (the bytes stay untouched until the result), with MSG_NOSIGNAL. */
int zev__ring_send(zev_loop_t *loop, struct zev_watcher *w, const char *base, size_t len);
/* A one-shot wait for room to write on w->fd (sendfile, which has no SQE here). */
int zev__ring_pollout(zev_loop_t *loop, struct zev_watcher *w);
/* Ask the kernel to stop w's operation of kind op; its last result comes later. */
int zev__ring_cancel(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op);
/* Synchronous: cancel every operation on w->fd and hand the results to the owner until
 * in_flight of them have ended; no result names w afterwards. */
void zev__ring_forget(zev_loop_t *loop, struct zev_watcher *w, unsigned in_flight);
/* The chunk a receive result landed in (NULL for a receive into user memory), and its
 * return to the ring once the data event is over: the same chunk if nobody kept a
 * reference, else a fresh one in its place. */
zev_buf_t *zev__ring_chunk(zev_loop_t *loop, const struct zev__ready *e);
void zev__ring_chunk_done(zev_loop_t *loop, const struct zev__ready *e);
/* The chunk leaves the ring with its reference; a fresh chunk takes its place. */
zev_buf_t *zev__ring_chunk_take(zev_loop_t *loop, const struct zev__ready *e);
/* The kernel ran out of buffers (-ENOBUFS): lend it more chunks. */
void zev__ring_bufs_grow(zev_loop_t *loop);
/* Keep a receive result that came while its socket's reading is paused, and take it back on
 * resume (false: none kept). */
int zev__ring_park(zev_loop_t *loop, const struct zev__ready *e);
bool zev__ring_unpark(zev_loop_t *loop, const struct zev_watcher *w, struct zev__ready *out);
/* Give the ring's chunks back to the pool (the loop is closing; no receive is in flight). */
void zev__ring_bufs_release(zev_loop_t *loop);
/* zev__ring_chunk_done, O(1) when the user kept the chunk (its id gets a fresh one at once). */
void zev__ring_chunk_recycle(zev_loop_t *loop, const struct zev__ready *e);
/* Chunks lent to the kernel and not holding a result: the pool's reserve, which
 * zev_buf_pool_stats counts as idle rather than in use (no user holds them). */
size_t zev__ring_bufs_lent(const zev_loop_t *loop);
/* Datagram sockets (src/udp/ring.c). A multishot recvmsg on w->fd into the buffer ring: each
 * result's chunk starts with a struct io_uring_recvmsg_out, then msg->msg_namelen bytes of
 * the sender's address, then the payload. msg is read when the SQE is submitted (the next
 * enter): it must live until then. poll_first: wait for readability before the first try. */
int zev__ring_recvmsg_multishot(zev_loop_t *loop, struct zev_watcher *w, const struct msghdr *msg,
                                bool poll_first);
/* A sendmsg of msg (read at submission, like the one above; the bytes stay untouched until
 * the result). link: the next SQE written starts only after this one ended, and is
 * cancelled (-ECANCELED) if this one failed. */
int zev__ring_sendmsg(zev_loop_t *loop, struct zev_watcher *w, const struct msghdr *msg, bool link);
/* SQEs that can be written before the SQ is full: a linked chain longer than this would be
 * split by the submission zev__uring_sqe makes when it finds the SQ full. */
unsigned zev__ring_sq_room(const zev_loop_t *loop);
#else
static inline bool zev__loop_completes(const zev_loop_t *loop) {
    (void)loop;
    return false;
}

static inline void zev__ring_bufs_release(zev_loop_t *loop) {
    (void)loop;
}

static inline size_t zev__ring_bufs_lent(const zev_loop_t *loop) {
    (void)loop;
    return 0;
}
#endif

#endif /* ZEV_RING_H */
