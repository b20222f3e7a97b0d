/* src/tcp/read.c: reading a stream socket into the loop's buffer pool (or user memory) and
 * handing slices to the data event; EOF and half-open handling.
 *
 * Fairness: each read spends the loop's budget (bytes read plus a fixed cost, reactor_internal.h);
 * once the socket's quantum or the phase's slice is spent and data is still waiting, it yields
 * to the pending queue (the edge will not come again), and the other sockets get their turn
 * first. A short read ends the turn too (the kernel had no more), except after a hang-up or a
 * report of urgent data: see short_read_drains.
 */
#include "tcp_internal.h"

#include <errno.h>

/* Smallest tail of the shared read area worth reading into before taking a fresh chunk. */
#define MIN_READ_SPACE 4096u

int zev_tcp_read_start(zev_tcp_t *t) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    unsigned f = t->handle.flags;
    unsigned phase = zev__tcp_phase(t);
    if (phase != ZEV__TCP_CONNECTED && phase != ZEV__TCP_CONNECTING) return -ENOTCONN;
    if (f & ZEV__TCP_FAILED) return t->err;
    if (f & (ZEV__TCP_READING | ZEV__TCP_EOF)) return 0;
    t->handle.flags |= ZEV__TCP_READING;
    if (f & ZEV__TCP_RING) {
        zev__tcp_ring_read_start(t);
    } else if (phase == ZEV__TCP_CONNECTED && (f & (ZEV__TCP_READ_MISSED | ZEV__TCP_PEER_HUP))) {
        /* Bytes that arrived while not reading raised an edge that is gone: look once, next
         * iteration. A fresh socket needs no look: registering it reported what was there. */
        t->handle.flags &= ~ZEV__TCP_READ_MISSED;
        zev__watcher_feed(t->handle.loop, &t->io, ZEV__READABLE);
    }
    zev__tcp_update_active(t);
    return 0;
}

int zev_tcp_read_stop(zev_tcp_t *t) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    t->handle.flags &= ~ZEV__TCP_READING;
    zev__tcp_update_active(t);
    return 0;
}

int zev_tcp_set_read_buffer(zev_tcp_t *t, void *buf, size_t len) {
    if (!t || (buf && len == 0)) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (!buf && !t->extra) return 0; /* already reading into the pool: nothing to allocate */
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;
    size_t ignored;
    bool was_pool = !zev__tcp_user_buf(t, &ignored);
    x->user_buf = buf;
    x->user_buf_len = buf ? len : 0;
    if (buf) {
        t->handle.flags |= ZEV__TCP_USER_BUF;
    } else {
        t->handle.flags &= ~ZEV__TCP_USER_BUF;
    }
    zev__tcp_ring_read_mode(t, was_pool);
    return 0;
}

void zev__tcp_on_eof(zev_tcp_t *t) {
    t->handle.flags |= ZEV__TCP_EOF;
    t->handle.flags &= ~ZEV__TCP_READING;
    zev__tcp_update_active(t);
    if (t->handle.flags & ZEV__TCP_PIPE_SRC) zev__tcp_pipe_end(t);
    if (t->events && t->events->end) t->events->end(t);
    if (zev__tcp_closing(t)) return;
    if (!(t->handle.flags & ZEV__TCP_HALF_OPEN)) zev_tcp_end(t);
}

void zev__tcp_deliver(zev_tcp_t *t, zev_slice_t *slice) {
    t->bytes_read += (uint64_t)slice->len;
    zev__tcp_touch(t);
    if (t->handle.flags & ZEV__TCP_PIPE_SRC) {
        zev__tcp_pipe_data(t, slice);
    } else if (t->events && t->events->data) {
        t->events->data(t, slice);
    }
}

/* One read into the shared area or the user's buffer. On return slice describes the space
 * offered (len: how much was asked). Returns bytes, 0 on EOF, -errno.
 *
 * A pipe's source reads into the pool even when it has a user buffer: what dst's queue keeps
 * of a read must outlive the next read, and only a pool slice has an owner to hold it by
 * (an owner-less slice would be queued by pointer and overwritten by the next read). Nobody
 * sees the piped bytes, so where they land is zev's business; unpiping goes back to the
 * user's buffer. */
static ssize_t read_once(zev_tcp_t *t, zev_slice_t *slice) {
    size_t user_len;
    char *user = zev__tcp_user_buf(t, &user_len);
    if (user) {
        *slice = (zev_slice_t){user, user_len, NULL};
    } else {
        slice->owner = zev__buf_read_area(t->handle.loop, MIN_READ_SPACE, &slice->base,
                                          &slice->len);
        if (!slice->owner) return -ENOMEM;
    }
    return zev__sys_read(t->io.fd, slice->base, slice->len);
}

/* A short read means the kernel had no more, except in two cases, where the next read may
 * well find bytes and no new edge would come for them: after a hang-up (the EOF is still to
 * read) and while TCP urgent data is pending (a read stops at the urgent mark, short, with
 * the bytes behind the mark still queued). Both are known from the kernel's report, so the
 * common case costs no syscall to tell them apart. */
static bool short_read_drains(const zev_tcp_t *t, unsigned revents) {
    return !(revents & ZEV__ERROR) && !(t->handle.flags & (ZEV__TCP_PEER_HUP | ZEV__TCP_URGENT));
}

void zev__tcp_on_readable(zev_tcp_t *t, unsigned revents) {
    zev_loop_t *loop = t->handle.loop;
    /* Remembered, not just looked at here: the report may come while reading is paused. */
    if (revents & ZEV__URGENT) t->handle.flags |= ZEV__TCP_URGENT;
    size_t turn = ZEV__BUDGET_QUANTUM;
    for (;;) {
        if (zev__tcp_closing(t)) return;
        if (!(t->handle.flags & ZEV__TCP_READING)) {
            t->handle.flags |= ZEV__TCP_READ_MISSED; /* paused, maybe mid-stream */
            return;
        }
        zev_slice_t slice;
        ssize_t n = read_once(t, &slice);
        if (n == -EINTR) {
            if (zev__budget_spend(loop, &turn, 0)) break;
            continue;
        }
        if (n == -EAGAIN) {
            t->handle.flags &= ~ZEV__TCP_URGENT; /* past any mark: short reads drain again */
            return;
        }
        if (n < 0) {
            zev__tcp_fail(t, (int)n);
            return;
        }
        if (n == 0) {
            zev__tcp_on_eof(t);
            return;
        }
        size_t asked = slice.len;
        slice.len = (size_t)n;
        zev__tcp_deliver(t, &slice);
        if (slice.owner) zev__buf_read_done(loop, (size_t)n);
        bool turn_over = zev__budget_spend(loop, &turn, (size_t)n);
        /* A short read drained the socket: a new arrival raises a new edge, so skip the read
         * that would only say EAGAIN. */
        if ((size_t)n < asked && short_read_drains(t, revents)) return;
        if (turn_over) break;
    }
    zev__watcher_yield(loop, &t->io, ZEV__READABLE);
}
