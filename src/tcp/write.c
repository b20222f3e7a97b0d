/* src/tcp/write.c: the write queue. Slices go to the kernel by reference, never copied.
 *
 * With nothing unsent, a write goes straight to one sendmsg (a gathered write, like writev,
 * but with MSG_NOSIGNAL so a vanished peer is an EPIPE, never a SIGPIPE). What the kernel did
 * not take is queued as slab entries pointing at the caller's bytes; when the socket turns
 * writable, one sendmsg covers every queued slice up to IOV_MAX, and partial writes move the
 * entries forward exactly. A write callback always runs from the loop, so an entry marked DONE
 * stays in the queue until then. docs/internals.md draws the queue's states.
 *
 * Accounting: the high-water mark compares the memory the queue holds (t->wq_held, see
 * entry_charge), not only its unsent bytes, so that a peer that never reads costs a bounded
 * amount however the writer slices its data.
 *
 * While the socket connects, writes, end and sendfile only queue: nothing is sent and nothing
 * is fed, since a fed event must never pass for the kernel's answer to the connect
 * (connect.c). The first flush runs once connected, after the connect callback.
 */
#include "ring.h"
#include "tcp_internal.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif
#define FLUSH_IOV (IOV_MAX < 1024 ? IOV_MAX : 1024)

static struct zev__wentry *entry_new(zev_tcp_t *t) {
    struct zev__wentry *e = zev__slab_get(t->handle.loop, &t->handle.loop->slab);
    if (!e) return NULL;
    *e = (struct zev__wentry){.file_fd = -1};
    return e;
}

/* The queue is circular through its tail (tail->next is the head), so the socket keeps one
 * pointer for both ends. O(1) append and pop. */
static void entry_append(zev_tcp_t *t, struct zev__wentry *e) {
    if (t->wq_tail) {
        e->next = t->wq_tail->next;
        t->wq_tail->next = e;
    } else {
        e->next = e;
    }
    t->wq_tail = e;
}

/* Ask for a flush pass from the loop. Only a connected socket is fed: while connecting, the
 * connect's success starts the first flush. */
static void flush_later(zev_tcp_t *t) {
    if (zev__tcp_phase(t) == ZEV__TCP_CONNECTED)
        zev__watcher_feed(t->handle.loop, &t->io, ZEV__WRITABLE);
}

/* Whether an entry is charged its unsent bytes, which then leave the charge as they are sent:
 * raw memory, and slices carved by zev_buf_alloc. A carved chunk is shared by many messages
 * and its slices by many sockets, so charging each queued copy the whole chunk would make one
 * small message put every slow subscriber over the mark at once. */
static bool charged_by_bytes(const struct zev__wentry *e) {
    return e->base && (!e->owner || e->owner->carved);
}

/* What an unsent entry holds: itself, plus its unsent bytes (charged_by_bytes; a carved slice
 * also its gap, below), or, for another pool slice, the whole chunk, since any slice of it
 * keeps all of it. A chunk is counted once for a run of consecutive entries that share it (PIN
 * on the first; passed on as entries finish): cheap, and it is how slices of one read queue
 * up. The same chunk queued again after another owner's slice is counted again:
 * conservative. A file region holds only its entry. O(1). */
static size_t entry_charge(const struct zev__wentry *e) {
    size_t held = sizeof(*e);
    if (charged_by_bytes(e)) {
        held += e->len + (e->owner ? e->gap : 0);
    } else if (e->flags & ZEV__WE_PIN) {
        held += zev__buf_footprint(e->owner);
    }
    return held;
}

/* Charge a new unsent entry, about to be appended: a pool slice pins its chunk unless the
 * tail (the entry before it) already holds the same one; a carved slice after another unsent
 * one is also charged the chunk memory between them (zev__buf_carve_gap), so that a socket
 * holding one slice here and there still pays for the chunks it keeps. */
static void entry_charge_new(zev_tcp_t *t, struct zev__wentry *e) {
    const struct zev__wentry *prev = t->wq_tail;
    if (prev && (prev->flags & ZEV__WE_DONE)) prev = NULL; /* charges nothing any more */
    bool by_bytes = charged_by_bytes(e);
    if (e->owner && !by_bytes && (!prev || prev->owner != e->owner)) e->flags |= ZEV__WE_PIN;
    if (e->owner && by_bytes && prev && prev->owner && prev->owner->carved)
        e->gap = zev__buf_carve_gap(t->handle.loop, prev->owner, prev->base + prev->len,
                                    e->owner, e->base);
    t->wq_held += entry_charge(e);
}

static void entry_free(zev_tcp_t *t, struct zev__wentry *e) {
    zev_buf_unref(e->owner);
    zev__slab_put(&t->handle.loop->slab, e);
}

/* Unlink the head of a non-empty queue. */
static struct zev__wentry *entry_pop(zev_tcp_t *t) {
    struct zev__wentry *tail = t->wq_tail;
    struct zev__wentry *e = tail->next;
    if (e == tail) {
        t->wq_tail = NULL;
    } else {
        tail->next = e->next;
    }
    return e;
}

/* The entry after e in queue order; NULL after the tail. */
static struct zev__wentry *entry_next(const zev_tcp_t *t, const struct zev__wentry *e) {
    return e == t->wq_tail ? NULL : e->next;
}

static ssize_t send_iov(zev_tcp_t *t, struct iovec *iov, int n) {
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
#ifdef MSG_NOSIGNAL
    int flags = MSG_NOSIGNAL;
#else
    int flags = 0; /* SO_NOSIGPIPE was set on the socket instead */
#endif
    for (;;) {
        ssize_t r = zev__sys_sendmsg(t->io.fd, &msg, flags);
        if (r != -EINTR) return r;
    }
}

static void account_written(zev_tcp_t *t, size_t n) {
    t->bytes_written += n;
    zev__tcp_touch_write(t);
}

/* Queue the part of slices[] past `skip` bytes; the last entry carries the callback. A write
 * that was sent whole but has a callback gets one DONE entry, so the callback runs later. */
static int queue_rest(zev_tcp_t *t, const zev_slice_t *slices, unsigned n, size_t skip,
                      zev_tcp_write_cb cb, void *arg) {
    struct zev__wentry *last = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (skip >= slices[i].len) {
            skip -= slices[i].len;
            continue;
        }
        struct zev__wentry *e = entry_new(t);
        if (!e) return -ENOMEM;
        e->base = slices[i].base + skip;
        e->len = slices[i].len - skip;
        e->owner = zev_buf_ref(slices[i].owner);
        skip = 0;
        entry_charge_new(t, e);
        entry_append(t, e);
        last = e;
    }
    if (!cb) return 0;
    if (!last) {
        last = entry_new(t);
        if (!last) return -ENOMEM;
        last->flags = ZEV__WE_DONE;
        entry_append(t, last);
        flush_later(t);
    }
    last->flags |= ZEV__WE_LAST;
    last->cb = cb;
    last->arg = arg;
    t->wq_writes++;
    return 0;
}

static int check_writable(const zev_tcp_t *t) {
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    unsigned f = t->handle.flags;
    if (f & (ZEV__TCP_ENDING | ZEV__TCP_SHUT)) return -EPIPE;
    if (f & ZEV__TCP_FAILED) return t->err < 0 ? t->err : -EPIPE;
    unsigned phase = zev__tcp_phase(t);
    if (phase != ZEV__TCP_CONNECTED && phase != ZEV__TCP_CONNECTING) return -ENOTCONN;
    return 0;
}

static int after_queueing(zev_tcp_t *t) {
    zev__tcp_update_active(t);
    /* Most writes leave nothing queued: only then is the mark (maybe in t->extra) looked at. */
    size_t held = zev__tcp_wq_pressure(t);
    if (held > 0 && held > zev__tcp_hwm(t)) {
        t->handle.flags |= ZEV__TCP_NEED_DRAIN;
        return 1;
    }
    return 0;
}

/* Whether a write with nothing queued goes straight to sendmsg. Always on a readiness
 * backend. In completion mode only if a slice is raw memory (no owner): a caller may reuse
 * that as soon as the write is sent, with no callback to wait for, which a send submitted
 * for later would break. Owned slices are held by reference until their send's result. */
static bool sends_now(const zev_tcp_t *t, const zev_slice_t *slices, unsigned n) {
    if (!(t->handle.flags & ZEV__TCP_RING)) return true;
    for (unsigned i = 0; i < n; i++) {
        if (!slices[i].owner && slices[i].len > 0) return true;
    }
    return false;
}

int zev_tcp_write(zev_tcp_t *t, const zev_slice_t *slices, unsigned n, zev_tcp_write_cb cb,
                  void *arg) {
    if (!t || (n > 0 && !slices)) return -EINVAL;
    int err = check_writable(t);
    if (err < 0) return err;
    zev__debug_slices(t->handle.loop, slices, n);
    for (unsigned i = 0; i < n; i++) {
        if (!slices[i].base && slices[i].len > 0) return -EINVAL;
    }

    size_t sent = 0;
    /* wq_held is 0 exactly when nothing is left unsent (finished entries are not in it). */
    if (t->wq_held == 0 && zev__tcp_phase(t) == ZEV__TCP_CONNECTED && n > 0 &&
        sends_now(t, slices, n)) {
        struct iovec iov[64];
        int n_iov = 0;
        size_t total = 0;
        for (unsigned i = 0; i < n; i++) {
            total += slices[i].len;
            if (slices[i].len == 0 || n_iov == 64) continue; /* the rest is queued below */
            iov[n_iov].iov_base = slices[i].base;
            iov[n_iov].iov_len = slices[i].len;
            n_iov++;
        }
        ssize_t r = n_iov ? send_iov(t, iov, n_iov) : 0;
        if (r >= 0) {
            sent = (size_t)r;
            account_written(t, sent);
            /* Short: flush the rest from the loop, where EAGAIN (not a guess) says when the
             * kernel is full. */
            if (sent < total) zev__watcher_feed(t->handle.loop, &t->io, ZEV__WRITABLE);
        } else if (r != -EAGAIN) {
            zev__tcp_fail(t, (int)r); /* reported from the loop; this write fails with it */
        }
    }
    err = queue_rest(t, slices, n, sent, cb, arg);
    if (err < 0) {
        zev__tcp_fail(t, err);
        return err;
    }
    zev__tcp_ring_send_next(t);
    return after_queueing(t);
}

int zev_tcp_sendfile(zev_tcp_t *t, int fd, off_t offset, size_t len, zev_tcp_write_cb cb,
                     void *arg) {
#ifdef __linux__
    if (!t || fd < 0 || offset < 0) return -EINVAL;
    int err = check_writable(t);
    if (err < 0) return err;
    struct zev__wentry *e = entry_new(t);
    if (!e) return -ENOMEM;
    e->file_fd = fd;
    e->file_off = offset;
    e->len = len;
    e->flags = ZEV__WE_LAST | (len == 0 ? ZEV__WE_DONE : 0);
    e->cb = cb;
    e->arg = arg;
    if (cb) t->wq_writes++;
    if (len > 0) entry_charge_new(t, e);
    entry_append(t, e);
    /* Ordered behind everything queued: the flush sends it when its turn comes. */
    flush_later(t);
    return after_queueing(t);
#else
    (void)t, (void)fd, (void)offset, (void)len, (void)cb, (void)arg;
    return -ENOSYS;
#endif
}

static void complete(zev_tcp_t *t, struct zev__wentry *e, int status) {
    zev_tcp_write_cb cb = e->cb;
    void *arg = e->arg;
    bool counted = (e->flags & ZEV__WE_LAST) && cb;
    entry_free(t, e);
    if (counted) {
        t->wq_writes--;
        cb(t, status, arg);
    }
}

/* A sent entry lets go of its charge and its chunk; the chunk's charge passes to the next
 * entry if that one holds the same chunk. */
static void entry_sent(zev_tcp_t *t, struct zev__wentry *e) {
    struct zev__wentry *next = entry_next(t, e);
    if ((e->flags & ZEV__WE_PIN) && next && next->owner == e->owner) {
        e->flags &= ~ZEV__WE_PIN;
        next->flags |= ZEV__WE_PIN;
    }
    t->wq_held -= entry_charge(e);
    e->flags |= ZEV__WE_DONE;
    if (e->flags & (ZEV__WE_ZC_WAIT | ZEV__WE_ZC_HELD)) return; /* the kernel reads them still */
    zev_buf_unref(e->owner); /* sent: the bytes are no longer needed */
    e->owner = NULL;
}

/* A finished write whose bytes the kernel may still read (a zero-copy send): its callback
 * waits, and so do the ones behind it. */
static bool zc_held(const struct zev__wentry *e) {
    return (e->flags & (ZEV__WE_ZC_WAIT | ZEV__WE_ZC_HELD)) != 0;
}

/* Mark fully sent entries; a write's last entry stays (DONE) until its callback runs. */
static void advance(zev_tcp_t *t, size_t n) {
    struct zev__wentry *e = zev__tcp_wq_head(t);
    while (e && n > 0) {
        if (e->flags & ZEV__WE_DONE) {
            e = entry_next(t, e);
            continue;
        }
        size_t take = n < e->len ? n : e->len;
        if (charged_by_bytes(e)) t->wq_held -= take;
        e->len -= take;
        if (e->base) e->base += take;
        n -= take;
        if (e->len == 0) entry_sent(t, e);
        e = entry_next(t, e);
    }
}

/* One gathered send over the unsent entries at the head. Returns bytes, -EAGAIN, -errno. */
static ssize_t send_queued(zev_tcp_t *t) {
    struct iovec iov[FLUSH_IOV];
    int n = 0;
    for (struct zev__wentry *e = zev__tcp_wq_head(t); e && n < FLUSH_IOV; e = entry_next(t, e)) {
        if (e->flags & ZEV__WE_DONE) continue;
        if (!e->base) break; /* a file region: sent on its own */
        iov[n].iov_base = e->base;
        iov[n].iov_len = e->len;
        n++;
    }
    return n ? send_iov(t, iov, n) : 0;
}

#ifdef __linux__
static ssize_t send_file_entry(zev_tcp_t *t, struct zev__wentry *e) {
    for (;;) {
        ssize_t r = zev__sys_sendfile(t->io.fd, e->file_fd, &e->file_off, e->len);
        if (r == 0 && e->len > 0) return -EIO; /* the file is shorter than promised */
        if (r != -EINTR) return r;
    }
}
#endif

/* Run callbacks of finished writes at the head, each an operation of the turn's budget.
 * Returns false if the socket was closed or failed. */
static bool complete_done(zev_tcp_t *t, size_t *turn) {
    struct zev__wentry *head;
    while (*turn > 0 && (head = zev__tcp_wq_head(t)) && (head->flags & ZEV__WE_DONE) &&
           !zc_held(head)) {
        zev__budget_spend(t->handle.loop, turn, 0);
        complete(t, entry_pop(t), 0);
        if (zev__tcp_closing(t) || t->handle.flags & ZEV__TCP_FAILED) return false;
    }
    return true;
}

static void maybe_shutdown(zev_tcp_t *t);

static void after_flush(zev_tcp_t *t) {
    maybe_shutdown(t);
    if (zev__tcp_closing(t)) return;
    if ((t->handle.flags & ZEV__TCP_NEED_DRAIN) && zev__tcp_wq_pressure(t) <= zev__tcp_hwm(t)) {
        t->handle.flags &= ~ZEV__TCP_NEED_DRAIN;
        if (t->extra && t->extra->pipe_in) zev__tcp_pipe_drain(t);
        if (!zev__tcp_closing(t) && t->events && t->events->drain) t->events->drain(t);
    }
    if (!zev__tcp_closing(t)) zev__tcp_update_active(t);
}

/* ---- completion mode (ring.c): the queue's head goes out as a chain of linked sends ----
 *
 * Each unsent entry at the head becomes one SEND, linked to the next (IOSQE_IO_LINK) so the
 * kernel runs them in queue order, and MSG_WAITALL so a send ends only when all its bytes are
 * in the socket (or on an error, which breaks the chain: the sends behind it end with
 * -ECANCELED and go out again). A chain stops after RING_CHAIN entries or once it holds a
 * high-water mark's worth of memory, and the next one is submitted when its last result has
 * come. Each result belongs to the first entry still marked SUBMITTED: results of a chain
 * come in the order the kernel ran its sends.
 *
 * Zero-copy (zev_loop_options_t.send_zc_min): an entry that long goes out as SEND_ZC, and the
 * kernel sends from its pages, which it holds past the send's result until a notification
 * (when the peer acknowledged them). Until then the entry keeps its bytes (its owner
 * reference; raw memory is the caller's until the callback), and its callback waits. A
 * notification names the socket, not the send, and need not come in send order, so none is
 * released before all have come: a chain goes zero-copy only when no notification is due,
 * which bounds what waits to one chain, and each notification marks the first entry still
 * waiting as HELD; the last one releases them all. A failure's report (its cancellations,
 * then the error event) and a close's callback wait for it too (stream.c): the kernel may
 * send those bytes after the descriptor is closed. */
#ifdef ZEV_HAVE_IO_URING
#define RING_CHAIN 16

static struct zev__wentry *first_unsent(const zev_tcp_t *t) {
    struct zev__wentry *e = zev__tcp_wq_head(t);
    while (e && (e->flags & ZEV__WE_DONE)) e = entry_next(t, e);
    return e;
}

/* The entry the next send result belongs to: the first whose send is in flight. One chain is
 * in flight at a time and its results come in the order of its sends, so this is usually the
 * first unsent entry. Not after a send that ended short (a reset in the middle of it): that
 * entry keeps its unsent rest and is no longer in flight, while the sends linked behind it
 * are still to answer (-ECANCELED, the kernel broke the link). The chain started at the
 * entry that was first unsent then, so its sends lie within RING_CHAIN entries of it. */
static struct zev__wentry *first_submitted(const zev_tcp_t *t) {
    struct zev__wentry *e = first_unsent(t);
    for (unsigned i = 0; e && i < RING_CHAIN; i++, e = entry_next(t, e)) {
        if (e->flags & ZEV__WE_SUBMITTED) return e;
    }
    return NULL;
}

/* The entries in flight: how many, and the memory they hold. */
static size_t in_flight(const zev_tcp_t *t, unsigned *n) {
    size_t held = 0;
    *n = 0;
    for (struct zev__wentry *e = first_submitted(t); e && (e->flags & ZEV__WE_SUBMITTED);
         e = entry_next(t, e)) {
        held += entry_charge(e);
        (*n)++;
    }
    return held;
}

unsigned zev__tcp_ring_sends_in_flight(const zev_tcp_t *t) {
    unsigned n;
    (void)in_flight(t, &n);
    return n;
}

/* The entries a zero-copy notification may be due for: the finished ones at the head, then
 * (a zero-copy send cut short, or cancelled behind one) a chain's worth of unsent ones. */
static struct zev__wentry *first_zc_waiting(const zev_tcp_t *t) {
    unsigned unsent = 0;
    for (struct zev__wentry *e = zev__tcp_wq_head(t); e && unsent < RING_CHAIN;
         e = entry_next(t, e)) {
        if (e->flags & ZEV__WE_ZC_WAIT) return e;
        if (!(e->flags & ZEV__WE_DONE)) unsent++;
    }
    return NULL;
}

bool zev__tcp_ring_zc_due(const zev_tcp_t *t) {
    return (t->handle.flags & ZEV__TCP_RING) && first_zc_waiting(t);
}

/* Every notification came: the entries let go of their bytes, and what waited for that runs:
 * a held-back close, a failure's cancellations, or the callbacks and the next sends. */
static void zc_release(zev_tcp_t *t) {
    unsigned unsent = 0;
    for (struct zev__wentry *e = zev__tcp_wq_head(t); e && unsent < RING_CHAIN;
         e = entry_next(t, e)) {
        e->flags &= ~ZEV__WE_ZC_HELD;
        if (!(e->flags & ZEV__WE_DONE)) {
            unsent++;
        } else if (e->owner) {
            zev_buf_unref(e->owner); /* as entry_sent would have */
            e->owner = NULL;
        }
    }
    if (zev__tcp_closing(t)) {
        /* Once tcp_close is over (its descriptor gone), tcp_finish may be holding the close:
         * it goes on. Inside tcp_close (ending the operations brought this notification)
         * the close is not queued yet, and its finish will find nothing due. */
        if (t->io.fd < 0) {
            zev__handle_set_requests(&t->handle, false);
            zev__handle_close_resume(&t->handle);
        }
        return;
    }
    if (t->handle.flags & ZEV__TCP_FAILED) {
        /* The failure's report waited for this (stream.c): it runs from the loop. */
        if (!(t->handle.flags & ZEV__TCP_REPORTED))
            zev__watcher_feed(t->handle.loop, &t->io, ZEV__ERROR);
        return;
    }
    zev__tcp_flush(t);
}

void zev__tcp_ring_zc_notified(zev_tcp_t *t) {
    struct zev__wentry *e = first_zc_waiting(t);
    zev__debug_assert(e != NULL, "a zero-copy notification with none due");
    if (!e) return;
    e->flags = (e->flags & ~ZEV__WE_ZC_WAIT) | ZEV__WE_ZC_HELD;
    if (!first_zc_waiting(t)) zc_release(t);
}

/* Up to a mark's worth of sends in flight count as the kernel's, as bytes in the socket's
 * send buffer do on a readiness backend (a chain holds about that much: chain_pick). A
 * single send larger than that is counted beyond the mark, so a write the kernel cannot
 * take still returns 1. */
size_t zev__tcp_wq_pressure(const zev_tcp_t *t) {
    unsigned n;
    size_t flying = in_flight(t, &n);
    size_t hwm = zev__tcp_hwm(t);
    return zev__tcp_wq_held(t) - (flying < hwm ? flying : hwm);
}

/* A file region at the head: sendfile has no SQE here, so it runs now and waits for room
 * with a one-shot poll when the socket is full. */
static int ring_send_file(zev_tcp_t *t, struct zev__wentry *e) {
#ifdef __linux__
    ssize_t r = send_file_entry(t, e);
    if (r >= 0) {
        account_written(t, (size_t)r);
        advance(t, (size_t)r);
        flush_later(t);
        return 0;
    }
    if (r != -EAGAIN) return (int)r;
    int err = zev__ring_pollout(t->handle.loop, &t->io);
    if (err == 0) t->handle.flags |= ZEV__TCP_RING_SEND;
    return err;
#else
    (void)t, (void)e;
    return -ENOSYS;
#endif
}

/* Which entries the next chain takes: at most RING_CHAIN, up to the first file region, and
 * stopping once it holds a mark's worth. limit: bytes the fault seam lets through (a short
 * send must end the chain, or the rest of its entry would go out after the next one). */
static unsigned chain_pick(zev_tcp_t *t, struct zev__wentry *e, size_t limit,
                           struct zev__wentry *chain[RING_CHAIN], size_t len[RING_CHAIN]) {
    unsigned n = 0;
    size_t held = 0;
    while (e && e->base && n < RING_CHAIN && held < zev__tcp_hwm(t) && limit > 0) {
        chain[n] = e;
        len[n] = e->len < limit ? e->len : limit;
        limit -= len[n];
        held += entry_charge(e);
        n++;
        e = entry_next(t, e);
    }
    return n;
}

void zev__tcp_ring_send_next(zev_tcp_t *t) {
    unsigned f = t->handle.flags;
    if ((f & (ZEV__TCP_RING | ZEV__TCP_RING_SEND | ZEV__TCP_FAILED)) != ZEV__TCP_RING) return;
    if (zev__tcp_phase(t) != ZEV__TCP_CONNECTED || zev__tcp_closing(t)) return;
    struct zev__wentry *e = first_unsent(t);
    if (!e) return;
    int err;
    if (!e->base) {
        err = ring_send_file(t, e);
    } else {
        /* The seam sees a chain as one sendmsg, as the readiness flush's gathered send. */
        size_t limit = 0;
        do err = zev__fault_hit(ZEV_SYS_SENDMSG, &limit); while (err == -EINTR);
        if (err == 0) limit = SIZE_MAX;
        struct zev__wentry *chain[RING_CHAIN];
        size_t len[RING_CHAIN];
        unsigned n = err < 0 ? 0 : chain_pick(t, e, limit, chain, len);
        zev_loop_t *loop = t->handle.loop;
        if (n > 0) err = zev__ring_reserve(loop, n); /* a chain never straddles two enters */
        /* Zero-copy only while no notification is due (the section's comment). */
        bool zc_free = zev__ring_send_zc_wanted(loop, SIZE_MAX) && !first_zc_waiting(t);
        for (unsigned i = 0; i < n && err >= 0; i++) {
            bool zc = zc_free && zev__ring_send_zc_wanted(loop, len[i]);
            err = zev__ring_send(loop, &t->io, chain[i]->base, len[i], i + 1 < n, zc);
            if (err >= 0) chain[i]->flags |= ZEV__WE_SUBMITTED;
            if (err >= 0 && zc) chain[i]->flags |= ZEV__WE_ZC_SENDING | ZEV__WE_ZC_WAIT;
        }
        if (err == -EAGAIN) err = zev__ring_pollout(loop, &t->io); /* an injected EAGAIN */
        /* A send or a wait for room in flight: no other until its result (a second chain
         * would send again what the first still carries). */
        if (err >= 0) t->handle.flags |= ZEV__TCP_RING_SEND;
    }
    if (err < 0) zev__tcp_fail(t, err);
}

/* A send's result, for the first entry in flight. A closing or failed socket still counts
 * what was sent, so a write whose bytes went out is told 0, never cancelled. */
void zev__tcp_ring_sent(zev_tcp_t *t, int res, bool notice_due) {
    struct zev__wentry *e = first_submitted(t);
    if (!e) return;
    e->flags &= ~ZEV__WE_SUBMITTED;
    /* Every zero-copy send the kernel took gets a notification, even one cancelled because
     * the send linked before it failed: its result then lacks IORING_CQE_F_MORE (6.18), so
     * the flag cannot be the count. Only a send refused outright has none. */
    bool zc = (e->flags & ZEV__WE_ZC_SENDING) != 0;
    e->flags &= ~ZEV__WE_ZC_SENDING;
    if (zc && !notice_due && res != -ECANCELED) e->flags &= ~ZEV__WE_ZC_WAIT;
    if (notice_due && res > 0) t->handle.loop->metrics.zc_sends++;
    /* Bytes are only ever sent by the first unsent entry's send: a link runs the next send
     * only after this one sent everything. */
    zev__debug_assert(res <= 0 || e == first_unsent(t), "a send result past the unsent head");
    if (res > 0) {
        account_written(t, (size_t)res);
        advance(t, (size_t)res);
    }
    bool live = !zev__tcp_closing(t) && !(t->handle.flags & ZEV__TCP_FAILED);
    /* The chain's first error is the socket's, at once: the sends linked behind it end
     * -ECANCELED (the link broken), which says nothing of the socket. Waiting for the chain's
     * last result to judge lost the error, and the chain went out again and again. */
    if (live && res < 0 && res != -ECANCELED) zev__tcp_fail(t, res);
    if (first_submitted(t)) return; /* the chain's later sends are still to answer */
    t->handle.flags &= ~ZEV__TCP_RING_SEND;
    if (zev__tcp_closing(t) || (t->handle.flags & ZEV__TCP_FAILED)) return;
    zev__tcp_flush(t); /* what a short send left, and what the broken link cancelled */
}

/* Run the callbacks of finished writes, send what is next, then the shutdown and drain
 * checks, as the readiness flush does. */
static void ring_flush(zev_tcp_t *t) {
    size_t turn = ZEV__BUDGET_QUANTUM;
    if (!complete_done(t, &turn)) return;
    struct zev__wentry *head = zev__tcp_wq_head(t);
    if (head && (head->flags & ZEV__WE_DONE) && !zc_held(head)) { /* past the turn */
        zev__watcher_yield(t->handle.loop, &t->io, ZEV__WRITABLE);
        return;
    }
    zev__tcp_ring_send_next(t);
    after_flush(t);
}
#else /* no completion backend in this build: no socket is ever in completion mode */
void zev__tcp_ring_send_next(zev_tcp_t *t) {
    (void)t;
}

unsigned zev__tcp_ring_sends_in_flight(const zev_tcp_t *t) {
    (void)t;
    return 0;
}

size_t zev__tcp_wq_pressure(const zev_tcp_t *t) {
    return zev__tcp_wq_held(t);
}

void zev__tcp_ring_sent(zev_tcp_t *t, int res, bool notice_due) {
    (void)t, (void)res, (void)notice_due;
}

void zev__tcp_ring_zc_notified(zev_tcp_t *t) {
    (void)t;
}

bool zev__tcp_ring_zc_due(const zev_tcp_t *t) {
    (void)t;
    return false;
}

static void ring_flush(zev_tcp_t *t) {
    (void)t;
}
#endif

/* Fairness: a callback that writes again to a peer that reads fast never meets EAGAIN, so
 * each send (its bytes and a fixed cost) and each write callback spends the loop's budget
 * (reactor_internal.h); once the turn is over, the rest waits (yielded: no edge will come for
 * it), after the other sockets and the timers, as reads do. */
void zev__tcp_flush(zev_tcp_t *t) {
    if (zev__tcp_phase(t) != ZEV__TCP_CONNECTED) return;
    if (t->handle.flags & ZEV__TCP_RING) {
        ring_flush(t);
        return;
    }
    size_t turn = ZEV__BUDGET_QUANTUM;
    for (;;) {
        if (!complete_done(t, &turn)) return;
        struct zev__wentry *head = zev__tcp_wq_head(t);
        if (!head) break;
        if (turn == 0) {
            zev__watcher_yield(t->handle.loop, &t->io, ZEV__WRITABLE);
            break;
        }
        ssize_t r;
#ifdef __linux__
        r = head->base ? send_queued(t) : send_file_entry(t, head);
#else
        r = send_queued(t);
#endif
        if (r == -EAGAIN) break;
        if (r < 0) {
            zev__tcp_fail(t, (int)r);
            return;
        }
        account_written(t, (size_t)r);
        advance(t, (size_t)r);
        zev__budget_spend(t->handle.loop, &turn, (size_t)r);
        /* A short send usually means the kernel is full, but only EAGAIN proves it (and arms
         * the next edge): go round once more rather than risk waiting for nothing. */
    }
    after_flush(t);
}

void zev__tcp_cancel_writes(zev_tcp_t *t, int err) {
    /* The kernel still reads bytes of some entries: the close and the failure report wait
     * for the last notification before they come here (stream.c). */
    zev__debug_assert(!zev__tcp_ring_zc_due(t), "writes cancelled under a zero-copy send");
    /* Detach first: a callback may write again (and fail fast) while we walk. */
    struct zev__wentry *tail = t->wq_tail;
    t->wq_tail = NULL;
    t->wq_held = 0;
    if (!tail) return;
    struct zev__wentry *e = tail->next;
    tail->next = NULL; /* open the circle: walk from the head to the tail */
    while (e) {
        struct zev__wentry *next = e->next;
        /* A callback may close the socket: from then on the rest are cancellations, as they
         * would be from the close itself, never a failure reported after zev_close. */
        int status = zev__tcp_closing(t) ? -ECANCELED : err;
        complete(t, e, (e->flags & ZEV__WE_DONE) ? 0 : status);
        e = next;
    }
}

/* Shut our side down if end() was asked and nothing is left to send. */
static void maybe_shutdown(zev_tcp_t *t) {
    unsigned f = t->handle.flags;
    if (!(f & ZEV__TCP_ENDING) || (f & ZEV__TCP_SHUT)) return;
    if (zev__tcp_phase(t) != ZEV__TCP_CONNECTED) return;
    if (!zev__tcp_wq_empty(t)) return;
    t->handle.flags |= ZEV__TCP_SHUT;
    int err = zev__sys_shutdown(t->io.fd, SHUT_WR);
    if (err < 0 && err != -ENOTCONN) {
        zev__tcp_fail(t, err);
        return;
    }
    zev__tcp_update_active(t);
    if (t->events && t->events->finish) t->events->finish(t);
}

int zev_tcp_end(zev_tcp_t *t) {
    if (!t) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    unsigned phase = zev__tcp_phase(t);
    if (phase != ZEV__TCP_CONNECTED && phase != ZEV__TCP_CONNECTING) return -ENOTCONN;
    if (t->handle.flags & ZEV__TCP_ENDING) return 0;
    t->handle.flags |= ZEV__TCP_ENDING;
    /* Shut down (and emit finish) from the loop, never inside this call; while connecting,
     * after the connect callback. */
    flush_later(t);
    zev__tcp_update_active(t);
    return 0;
}

size_t zev_tcp_write_queue_size(const zev_tcp_t *t) {
    if (!t) return 0;
    size_t unsent = 0;
    for (const struct zev__wentry *e = zev__tcp_wq_head(t); e; e = entry_next(t, e)) {
        if (!(e->flags & ZEV__WE_DONE)) unsent += e->len;
    }
    return unsent;
}

size_t zev_tcp_write_queue_memory(const zev_tcp_t *t) {
    return t ? zev__tcp_wq_held(t) : 0;
}

/* ---- try-write: the kernel takes what it can now, nothing is queued ---- */

/* Only with nothing unsent may bytes skip the queue, or they would overtake it. The test is
 * the one zev_tcp_write's direct path makes (wq_held is 0 exactly when nothing is unsent);
 * finished writes whose callback is still due do not count: their bytes are out. */
static int check_try_write(const zev_tcp_t *t) {
    int err = check_writable(t);
    if (err < 0) return err;
    if (zev__tcp_phase(t) == ZEV__TCP_CONNECTING) return -EAGAIN;
    return t->wq_held == 0 ? 0 : -EAGAIN;
}

/* One sendmsg over at most 64 slices, as zev_tcp_write's direct path; no callback, no entry,
 * no fed event. A failure is returned, not recorded: the caller decides (the next read or
 * write meets it too). */
int zev_tcp_try_write(zev_tcp_t *t, const zev_slice_t *slices, unsigned n) {
    if (!t || (n > 0 && !slices)) return -EINVAL;
    int err = check_try_write(t);
    if (err < 0) return err;
    zev__debug_slices(t->handle.loop, slices, n);
    struct iovec iov[64];
    int n_iov = 0;
    size_t room = INT_MAX; /* the count must fit the return value */
    for (unsigned i = 0; i < n && n_iov < 64 && room > 0; i++) {
        if (!slices[i].base && slices[i].len > 0) return -EINVAL;
        if (slices[i].len == 0) continue;
        size_t len = slices[i].len < room ? slices[i].len : room;
        iov[n_iov].iov_base = slices[i].base;
        iov[n_iov].iov_len = len;
        room -= len;
        n_iov++;
    }
    if (n_iov == 0) return 0;
    ssize_t r = send_iov(t, iov, n_iov);
    if (r < 0) return (int)r;
    account_written(t, (size_t)r);
    return (int)r;
}
