/* src/tcp/tcp_internal.h: what the TCP files share. A stream socket's life is one phase (below)
 * plus flag bits for independent facts, both in its handle's flags (docs/internals.md draws
 * the phases and the write-queue states); the write queue is a circular singly linked list of
 * slab entries reached through its tail; rare state sits in one large-slab object, struct
 * zev__tcp_extra. */
#ifndef ZEV_TCP_INTERNAL_H
#define ZEV_TCP_INTERNAL_H

#include "reactor_internal.h"
#include "sys.h"

/* A stream socket's phase: two bits of zev_handle_t.flags, read with zev__tcp_phase().
 *
 *   IDLE ──connect()──► CONNECTING ──the kernel: connected──► CONNECTED ◄── accept()
 *                            └──── refused, timed out, failed ──► CLOSED ◄── zev_close()
 *
 * One rule holds in every phase: an event the library feeds itself (a flush asked for, a read
 * to resume, a failure to report) means that work and nothing else. So while connecting
 * nothing is fed that could pass for the kernel's answer: writes, end and sendfile only queue,
 * and the connect ends only on a kernel event, on connect()'s own synchronous answer
 * (ZEV__TCP_CONNECT_DUE), on the connect timeout, or on a recorded failure (connect.c). */
enum {
    ZEV__TCP_IDLE = 0u << 8,       /* initialised; a descriptor only if bound or adopted, unwatched */
    ZEV__TCP_CONNECTING = 1u << 8, /* connect() started; its answer is not known */
    ZEV__TCP_CONNECTED = 2u << 8,  /* open for reading and writing */
    ZEV__TCP_CLOSED = 3u << 8,     /* the connect failed or the handle closed: no more I/O */
    ZEV__TCP_PHASE = 3u << 8,      /* the mask */
};

static inline unsigned zev__tcp_phase(const zev_tcp_t *t) {
    return t->handle.flags & ZEV__TCP_PHASE;
}

static inline void zev__tcp_set_phase(zev_tcp_t *t, unsigned phase) {
    t->handle.flags = (t->handle.flags & ~(unsigned)ZEV__TCP_PHASE) | phase;
}

/* Handle flag bits owned by TCP (zev_handle_t.flags, above the phase): independent facts. */
enum {
    ZEV__TCP_READING = 1u << 10,
    ZEV__TCP_ENDING = 1u << 11,      /* end() asked: shut down once the queue is empty */
    ZEV__TCP_SHUT = 1u << 12,        /* our side is shut down */
    ZEV__TCP_EOF = 1u << 13,         /* the peer's EOF was read */
    ZEV__TCP_FAILED = 1u << 14,      /* t->err is set; reported once */
    ZEV__TCP_REPORTED = 1u << 15,    /* the failure reached the callbacks */
    ZEV__TCP_HALF_OPEN = 1u << 16,   /* allowHalfOpen */
    ZEV__TCP_NEED_DRAIN = 1u << 17,  /* a write returned 1: emit drain when under the HWM */
    ZEV__TCP_LISTENING = 1u << 18,   /* servers */
    ZEV__TCP_ACCEPT_PAUSED = 1u << 19,
    ZEV__TCP_CONNECT_DUE = 1u << 20, /* connect() answered at once (t->err): report it */
    ZEV__TCP_PEER_HUP = 1u << 21,    /* the kernel reported the peer's FIN: read up to the EOF */
    ZEV__TCP_READ_MISSED = 1u << 22, /* a readable edge came while not reading: look on resume */
    /* Mirrors of extra state that the read path tests per read, so that it looks only at the
     * flags it has loaded anyway, never at t->extra. */
    ZEV__TCP_PIPE_SRC = 1u << 23, /* t->extra->pipe_out is set */
    ZEV__TCP_USER_BUF = 1u << 24, /* t->extra->user_buf is set */
    ZEV__TCP_URGENT = 1u << 25,   /* the kernel reported urgent data: read until EAGAIN */
    ZEV__TCP_FD_SHORT = 1u << 26, /* servers: out of descriptors since the last accept */
    ZEV__TCP_IDLE_READS = 1u << 27, /* the idle timeout counts reads only (timeout.c) */
    /* Completion mode (ring.c): a connected socket on io_uring submits operations instead of
     * waiting for readiness; its watcher is not registered, only fed. */
    ZEV__TCP_RING = 1u << 28,
    ZEV__TCP_RING_RECV = 1u << 29,   /* a receive is in flight */
    ZEV__TCP_RING_SEND = 1u << 30,   /* a send, or a wait for room, is in flight */
};
/* A receive result waits for the reading to resume (bit 31: past an enum's int range). */
#define ZEV__TCP_RING_PARKED (1u << 31)
/* A listener in completion mode (ZEV__TCP_RING, listen.c) gives stream-only bits its own
 * meanings. */
#define ZEV__TCP_ACCEPT_ARMED ZEV__TCP_RING_RECV      /* the multishot accept is in flight */
#define ZEV__TCP_ACCEPT_CANCELLING ZEV__TCP_RING_SEND /* a cancel of it was asked for */
#define ZEV__TCP_ACCEPT_HELD ZEV__TCP_RING_PARKED     /* pending_fd waits for the next turn */
#define ZEV__TCP_ACCEPT_SHEDDING ZEV__TCP_EOF /* what the multishot still brings is shed */

/* Fairness is the loop's budget (reactor_internal.h), spent by read.c, write.c and listen.c. */
enum { ZEV__TCP_DEFAULT_HWM = 64 * 1024 };

/* Write-queue entry: one slice (or file region) still to send, or a finished write whose
 * callback is due. Exactly ZEV__SLAB_SMALL bytes. */
struct zev__wentry {
    struct zev__wentry *next;
    char *base;           /* unsent bytes; NULL for a file region */
    size_t len;           /* unsent bytes left */
    zev_buf_t *owner;     /* reference held while queued, or NULL */
    zev_tcp_write_cb cb;  /* on the last entry of a write */
    void *arg;
    int file_fd;          /* sendfile source, or -1 */
    unsigned flags;       /* ZEV__WE_* */
    union {
        off_t file_off;   /* a file region: where the rest starts */
        size_t gap;       /* a carved slice: chunk memory charged beyond len (write.c) */
    };
};

enum {
    ZEV__WE_LAST = 1u << 0, /* the last entry of its write: completing it completes the write */
    ZEV__WE_DONE = 1u << 1, /* fully written; only the callback is left */
    ZEV__WE_PIN = 1u << 2,  /* counts its owner chunk in wq_held for the run of entries after
                               it that share that chunk (write.c) */
    ZEV__WE_SUBMITTED = 1u << 3, /* completion mode: its send is in flight (write.c, ring) */
    /* Zero-copy sends (write.c): the kernel may still read the entry's bytes after its send's
     * result, until a notification. Notifications name the socket, not the send, so the
     * entries wait for every one of them before any is released. */
    ZEV__WE_ZC_WAIT = 1u << 4, /* sent zero-copy; a notification is still due for it */
    ZEV__WE_ZC_HELD = 1u << 5, /* a notification came in its place; released with the rest */
    ZEV__WE_ZC_SENDING = 1u << 6, /* its send in flight is a zero-copy one */
};

/* A socket's rare state: one object from the loop's large slab, taken on first need
 * (zev__tcp_extra_get) and returned when the socket closes. t->extra NULL means every field
 * has its default: no timeout, no pipe, no connect in progress, no user read buffer, the
 * default high-water mark. */
struct zev__tcp_extra {
    struct zev__timer_node node; /* the idle or connect timeout, armed while one runs */
    zev_tcp_t *socket;           /* the owner, for the node's fire callback */
    uint64_t last_active_ms;     /* activity stamp for the idle timeout */
    uint64_t idle_ms;            /* Node's setTimeout; 0: none */
    struct zev__tcp_name *name;  /* connecting by name: the lookup and the attempts, or NULL */
    struct zev_tcp_pipe_s *pipe_out; /* the pipe this socket feeds, or NULL */
    struct zev_tcp_pipe_s *pipe_in;  /* the pipe that feeds this socket, or NULL */
    zev_tcp_connect_cb connect_cb;
    char *user_buf;              /* read into user memory instead of the pool */
    size_t user_buf_len;
    uint32_t connect_ms;         /* connect timeout (lookup and attempts); 0: the kernel's */
    uint32_t hwm;                /* write-queue high-water mark in bytes */
};

_Static_assert(sizeof(struct zev__tcp_extra) <= ZEV__SLAB_LARGE,
               "a socket's extra state fits one large slab object");

/* The extra state, allocated (with defaults) if t has none yet; NULL when memory is
 * exhausted. */
struct zev__tcp_extra *zev__tcp_extra_get(zev_tcp_t *t);
/* Disarm its timer node and return it to the slab (the socket is closing). */
void zev__tcp_extra_free(zev_tcp_t *t);

static inline size_t zev__tcp_hwm(const zev_tcp_t *t) {
    return t->extra ? t->extra->hwm : ZEV__TCP_DEFAULT_HWM;
}

/* ---- the write queue: circular through its tail, so one pointer reaches both ends ---- */

/* The memory the queue holds, as the high-water mark counts it: wq_held (unsent entries with
 * their raw bytes or pinned chunks) plus one entry per write whose callback is still due, the
 * entries of finished writes included. O(1). */
static inline size_t zev__tcp_wq_held(const zev_tcp_t *t) {
    return t->wq_held + (size_t)t->wq_writes * sizeof(struct zev__wentry);
}

/* What the high-water mark compares: zev__tcp_wq_held, less what completion mode has handed
 * to the kernel already (its sends in flight hold their bytes as the socket's send buffer
 * does on a readiness backend; at most one mark's worth, write.c). */
size_t zev__tcp_wq_pressure(const zev_tcp_t *t);

static inline struct zev__wentry *zev__tcp_wq_head(const zev_tcp_t *t) {
    return t->wq_tail ? t->wq_tail->next : NULL;
}

static inline bool zev__tcp_wq_empty(const zev_tcp_t *t) {
    return t->wq_tail == NULL;
}

/* stream.c: a socket's life and the one entry point for its events, which it hands to the
 * parts below by phase. */
void zev__tcp_io(zev_loop_t *loop, struct zev_watcher *w, unsigned revents);
/* Record a failure: reported once, from the loop, to the error event and queued writes (to
 * the connect callback while connecting). */
void zev__tcp_fail(zev_tcp_t *t, int err);
/* Recompute whether the socket keeps the loop alive (reading, connecting or writing); a closing
 * socket never does again. */
void zev__tcp_update_active(zev_tcp_t *t);
/* Attach an open, connected-or-connecting fd to t and register it with the loop. */
int zev__tcp_attach(zev_tcp_t *t, int fd);
static inline bool zev__tcp_closing(const zev_tcp_t *t) {
    return (t->handle.flags & (ZEV__H_CLOSING | ZEV__H_CLOSED)) != 0;
}

/* connect.c: the connecting phase. */
/* The connect's answer carried by revents (or recorded at connect()): 0 or -errno; -EINPROGRESS
 * if this is no answer. */
int zev__tcp_connect_result(zev_tcp_t *t, unsigned revents);
/* What the kernel says of fd's handshake after an event on it (SO_ERROR): 0, -EINPROGRESS
 * (not over yet), or -errno. Shared by connect.c and eyeballs.c's attempts. */
int zev__tcp_handshake_status(int fd, unsigned revents);
/* End the connecting phase with status and run the connect callback. Returns true if the
 * socket is now connected and still open (the caller goes on with what waited for it). */
bool zev__tcp_connect_finish(zev_tcp_t *t, int status);

/* eyeballs.c: connecting by name (the phase is CONNECTING, with no descriptor until an
 * attempt wins; connect.c finishes it as usual). */
/* Start looking host up for a connect to port; t is idle and has its extra state. */
int zev__tcp_name_start(zev_tcp_t *t, const char *host, int port);
/* The connect ended or t is closing: abandon the lookup and every attempt, silently. */
void zev__tcp_name_end(zev_tcp_t *t);

/* read.c */
void zev__tcp_on_readable(zev_tcp_t *t, unsigned revents);
/* Bytes arrived in slice: count them and hand them to the pipe or the data event. */
void zev__tcp_deliver(zev_tcp_t *t, zev_slice_t *slice);
/* The peer's EOF was read. */
void zev__tcp_on_eof(zev_tcp_t *t);
/* The user buffer reads go to, or NULL for the pool (a pipe's source always reads into the
 * pool). */
static inline char *zev__tcp_user_buf(const zev_tcp_t *t, size_t *len) {
    if ((t->handle.flags & (ZEV__TCP_USER_BUF | ZEV__TCP_PIPE_SRC)) != ZEV__TCP_USER_BUF)
        return NULL;
    *len = t->extra->user_buf_len;
    return t->extra->user_buf;
}

/* listen.c, shared with listen_ring.c: one accepted descriptor (or accept4's error, as a
 * negative fd) taken as accept4's would be; false when the turn of accepting is over. */
bool zev__tcp_server_take(zev_tcp_server_t *s, int fd, bool peer_known, size_t *turn);
/* Whether an accept error is a shortage of descriptors or memory (EMFILE, ENOBUFS, ...). */
bool zev__tcp_server_is_shortage(int err);
/* Stop accepting for a backoff (its timer resumes). */
void zev__tcp_server_pause(zev_tcp_server_t *s);

/* listen_ring.c: a listener in completion mode (io_uring); no-ops in other builds. Start the
 * multishot accept (-EOPNOTSUPP where there is no io_uring); make it match what the listener
 * wants; shed what it still brings; end it synchronously (closing); an accept result
 * (ops->complete). */
int zev__tcp_server_ring_start(zev_tcp_server_t *s);
void zev__tcp_server_ring_settle(zev_tcp_server_t *s);
void zev__tcp_server_ring_shed(zev_tcp_server_t *s);
void zev__tcp_server_ring_forget(zev_tcp_server_t *s);
void zev__tcp_server_ring_complete(zev_handle_t *h, const void *result);

/* ring.c: completion mode (io_uring). Every call is a no-op unless the socket is in it. */
/* Attach an accepted or adopted, connected fd: completion mode on a completion backend,
 * else registered as zev__tcp_attach does. */
int zev__tcp_attach_connected(zev_tcp_t *t, int fd);
/* The connect succeeded: leave readiness for completion mode (if the loop completes). */
void zev__tcp_ring_begin(zev_tcp_t *t);
/* Reading (re)started: deliver what was kept while paused, keep a receive in flight. */
void zev__tcp_ring_read_start(zev_tcp_t *t);
/* The fed READABLE of a socket in completion mode (stream.c): the same, from the loop. */
void zev__tcp_ring_resume(zev_tcp_t *t);
/* ops->complete: an operation's result. */
void zev__tcp_ring_complete(zev_handle_t *h, const void *result);
/* End every operation in flight, synchronously (closing, or failed before the queued
 * writes are cancelled: the kernel must be done with their bytes). */
void zev__tcp_ring_forget(zev_tcp_t *t);
/* write.c, completion mode: submit a send of the queue's first unsent bytes unless one is in
 * flight; a send's result. */
void zev__tcp_ring_send_next(zev_tcp_t *t);
/* notice_due: IORING_CQE_F_MORE on the result of a zero-copy send, whose notification
 * (zev__tcp_ring_zc_notified) says when the kernel let go of its bytes. */
void zev__tcp_ring_sent(zev_tcp_t *t, int res, bool notice_due);
void zev__tcp_ring_zc_notified(zev_tcp_t *t);
/* Whether a zero-copy send's notification is still due: the queue's entries (their bytes)
 * must stay until it came, through a failure or a close. */
bool zev__tcp_ring_zc_due(const zev_tcp_t *t);
/* Where bytes land changed: was_pool says whether they landed in the pool before. */
void zev__tcp_ring_read_mode(zev_tcp_t *t, bool was_pool);
/* Sends in flight (the entries marked SUBMITTED). */
unsigned zev__tcp_ring_sends_in_flight(const zev_tcp_t *t);

/* write.c */
void zev__tcp_flush(zev_tcp_t *t);
/* Complete every queued write with err and free the entries. */
void zev__tcp_cancel_writes(zev_tcp_t *t, int err);

/* timeout.c */
/* Stamp activity for the idle timeout: one store, plus a heap insert only if it had fired. */
void zev__tcp_touch(zev_tcp_t *t);
/* The same for a write, which does not count if the timeout counts reads only. */
static inline void zev__tcp_touch_write(zev_tcp_t *t) {
    if (!(t->handle.flags & ZEV__TCP_IDLE_READS)) zev__tcp_touch(t);
}
/* The connect started / ended: time it if asked, then switch to the idle timeout if set. */
void zev__tcp_timeout_connect_started(zev_tcp_t *t);
void zev__tcp_timeout_connect_ended(zev_tcp_t *t);
enum zev__tcp_timeout { ZEV__TCP_TIMEOUT_NONE, ZEV__TCP_TIMEOUT_IDLE, ZEV__TCP_TIMEOUT_CONNECT };
/* The extra state's timer node fired: which timeout is due (NONE: the socket was busy, and
 * the node is re-armed for the rest of the idle period). */
enum zev__tcp_timeout zev__tcp_timeout_expired(zev_tcp_t *t);

/* listen.c */
void zev__tcp_server_connection_closed(zev_tcp_server_t *s);

/* pipe.c: hooks the read and write paths call for piped sockets */
void zev__tcp_pipe_data(zev_tcp_t *src, const zev_slice_t *slice);
void zev__tcp_pipe_end(zev_tcp_t *src);
void zev__tcp_pipe_drain(zev_tcp_t *dst);
/* Unpipe whatever t takes part in (it is closing). */
void zev__tcp_pipe_detach(zev_tcp_t *t);

#endif /* ZEV_TCP_INTERNAL_H */
