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

/* The loop's two rings of receive buffers: streams take what they need of a chunk, datagrams
 * a whole chunk each (uring_backend.h). The value is the kernel's buffer group. */
enum zev__bufs_kind {
    ZEV__BUFS_STREAM = 0,
    ZEV__BUFS_DGRAM = 1,
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
/* Receive on w->fd into the loop's buffer ring: the kernel picks a chunk when bytes arrive.
 * Negative errno if the SQ could not take it. */
int zev__ring_recv(zev_loop_t *loop, struct zev_watcher *w);
/* A one-shot readiness report for reading (a receive into user memory reads at delivery,
 * into the buffer set then). Its result, a poll mask, comes as a ZEV__OP_RECV result with no
 * buffer (IORING_CQE_F_BUFFER clear) and res > 0. */
int zev__ring_poll_in(zev_loop_t *loop, struct zev_watcher *w);
/* Whether a ZEV__OP_RECV result is zev__ring_poll_in's report (res: the poll mask). */
bool zev__ring_is_readiness(const struct zev__ready *e);
/* Send base..base+len (the bytes stay untouched until the result), with MSG_NOSIGNAL; linked:
 * the next operation submitted runs only after this one succeeded whole. zero_copy: SEND_ZC,
 * the kernel sends from these pages; a result with IORING_CQE_F_MORE says it still holds
 * them, and a second CQE with the same user_data and IORING_CQE_F_NOTIF says when it let go
 * (the bytes stay untouched until then). */
int zev__ring_send(zev_loop_t *loop, struct zev_watcher *w, const char *base, size_t len,
                   bool linked, bool zero_copy);
/* Whether a send of len queued bytes goes zero-copy (zev_loop_options_t.send_zc_min). */
bool zev__ring_send_zc_wanted(const zev_loop_t *loop, size_t len);
/* Set the loop's zero-copy threshold (0: never). */
void zev__ring_set_send_zc_min(zev_loop_t *loop, size_t min);
/* Room for n operations in the submission queue without submitting between them (a chain of
 * links must go in with one enter): submits what waits if need be. TCP's and UDP's chains
 * both take it. 0, or the submission's negative errno. */
int zev__ring_reserve(zev_loop_t *loop, unsigned n);
/* A one-shot wait for room to write on w->fd (sendfile, which has no SQE here). */
int zev__ring_pollout(zev_loop_t *loop, struct zev_watcher *w);
/* Synchronous: stop w's operation of kind op. Results it had (bytes received before the
 * cancel took) are parked for the owner to take with zev__ring_unpark; *kept says if any
 * was. No callback runs. 0 once the operation ended; a negative errno if it could not be
 * stopped (the enter failed): it is still running, and its results come as usual. */
int zev__ring_cancel(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op, bool *kept);
/* Ask the kernel to stop w's operation of kind op, with the next enter; its remaining
 * results, the last one -ECANCELED unless it ended first, come as usual. */
int zev__ring_cancel_async(zev_loop_t *loop, struct zev_watcher *w, enum zev__op op);
/* Synchronous: cancel every operation on w->fd and hand the results to the owner until
 * in_flight of them have ended; no result names w afterwards. */
void zev__ring_forget(zev_loop_t *loop, struct zev_watcher *w, unsigned in_flight);
/* The chunk a receive result landed in (NULL for a receive into user memory); its bytes
 * start at e->off. Once the owner is done with the result, zev__ring_chunk_done: when the
 * kernel and every other result are done with the chunk too, it goes back to the ring, the
 * same chunk if nobody kept a reference, else a fresh one in its place. */
zev_buf_t *zev__ring_chunk(zev_loop_t *loop, const struct zev__ready *e);
void zev__ring_chunk_done(zev_loop_t *loop, const struct zev__ready *e);
/* The kernel ran out of buffers (-ENOBUFS) in the ring of this kind: lend it more chunks.
 * Returns how many chunks that ring holds now (0: none could be had). */
unsigned zev__ring_bufs_grow(zev_loop_t *loop, enum zev__bufs_kind kind);
/* Keep a receive result that came while its socket's reading is paused, and take it back on
 * resume (false: none kept). */
int zev__ring_park(zev_loop_t *loop, const struct zev__ready *e);
bool zev__ring_unpark(zev_loop_t *loop, const struct zev_watcher *w, struct zev__ready *out);
/* The buffer ring's memory, at loop start in completion mode. Negative errno. */
int zev__ring_bufs_init(zev_loop_t *loop);
/* Give the ring's chunks back to the pool (the loop is closing; no receive is in flight).
 * The ring lends again at the next receive, if the loop goes on after -EBUSY. */
void zev__ring_bufs_release(zev_loop_t *loop);
/* Release, and free the ring's memory (the backend closes). */
void zev__ring_bufs_free(zev_loop_t *loop);
/* The idle-memory trim (trim.c): a ring that grew and did not run dry for an interval goes
 * back to its first size. True if it should be looked at again next interval. */
bool zev__ring_bufs_trim(zev_loop_t *loop);
/* Accept on the listening w->fd, multishot: each result is a new non-blocking, close-on-exec
 * descriptor (no peer address), with IORING_CQE_F_MORE while the accept goes on. Negative
 * errno if the SQ could not take it. */
int zev__ring_accept(zev_loop_t *loop, struct zev_watcher *w);
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
#else
static inline bool zev__loop_completes(const zev_loop_t *loop) {
    (void)loop;
    return false;
}

static inline void zev__ring_set_send_zc_min(zev_loop_t *loop, size_t min) {
    (void)loop, (void)min;
}

static inline void zev__ring_bufs_release(zev_loop_t *loop) {
    (void)loop;
}

static inline bool zev__ring_bufs_trim(zev_loop_t *loop) {
    (void)loop;
    return false;
}
#endif

#endif /* ZEV_RING_H */
