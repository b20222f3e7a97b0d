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
    ZEV__OP_ACCEPT = 7,  /* multishot accept on a listening socket: one result per connection */
};

static inline enum zev__op zev__ready_op(const struct zev__ready *e) {
    return (enum zev__op)(e->tag & 7u);
}

static inline struct zev_watcher *zev__ready_watcher(const struct zev__ready *e) {
    return (struct zev_watcher *)(e->tag & ~(uintptr_t)7u);
}

#ifdef ZEV_HAVE_IO_URING
#include <linux/io_uring.h>

/* Whether a multishot operation goes on after this result (false: its last one). */
static inline bool zev__ready_more(const struct zev__ready *e) {
    return (e->flags & IORING_CQE_F_MORE) != 0;
}

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
/* Accept on the listening w->fd, multishot: each result is a new non-blocking, close-on-exec
 * descriptor (no peer address), with IORING_CQE_F_MORE while the accept goes on. Negative
 * errno if the SQ could not take it. */
int zev__ring_accept(zev_loop_t *loop, struct zev_watcher *w);
#else
static inline bool zev__loop_completes(const zev_loop_t *loop) {
    (void)loop;
    return false;
}

static inline void zev__ring_bufs_release(zev_loop_t *loop) {
    (void)loop;
}
#endif

#endif /* ZEV_RING_H */
