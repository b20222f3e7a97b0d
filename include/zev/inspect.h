/* zev/inspect.h: what a loop holds, for a person asking "what keeps my loop running" or "why
 * does zev_loop_close say -EBUSY". Included from <zev.h>; docs/embedding.md, "Inspecting a
 * loop", sets these beside libuv's uv_walk / uv_print_all_handles and Node's
 * process._getActiveHandles().
 *
 * zev_loop_walk visits every handle the user initialised and whose close callback has not run
 * yet: open ones, and closing ones until their close callback. The library's own handles (the
 * loop's wake-up, the resolver's async, the trim timer, a connect by name's state) are not
 * visited; zev_loop_print_handles counts them. zev_handle_info describes one handle, and
 * zev_loop_print_handles writes all of them, the buffer pool and the slab to a FILE the
 * caller gives: the library prints only when asked.
 *
 * Cost: nothing per message. The loop keeps a table of open handles, one 8-byte slot per
 * handle in blocks of 512 taken through the loop's allocator at handle init (so an init may
 * fail with -ENOMEM); the handle stores its slot in bits it already had. A walk is
 * O(the most handles open at once), a print the same.
 */
#ifndef ZEV_INSPECT_H
#define ZEV_INSPECT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where a handle is in its life. A closed handle (close callback run) is in no walk. */
typedef enum {
    ZEV_HANDLE_OPEN = 0,      /* "open": initialised, not closed */
    ZEV_HANDLE_CLOSING,       /* "closing": zev_close called; the close callback runs in the
                                 next close phase (the end of this iteration or the next) */
    ZEV_HANDLE_CLOSE_PENDING, /* "close-pending": its close phase came, and the callback waits
                                 for what the handle still depends on: a TCP server for the
                                 connections it accepted, an async for a send still inside
                                 zev_async_send on another thread */
} zev_handle_state;

/* A TCP socket's phase (docs/internals.md draws them). */
typedef enum {
    ZEV_TCP_PHASE_NONE = 0,   /* not a ZEV_TCP handle */
    ZEV_TCP_PHASE_IDLE,       /* initialised; no connect or accept yet, no descriptor */
    ZEV_TCP_PHASE_CONNECTING, /* connect (or its name lookup) in flight */
    ZEV_TCP_PHASE_CONNECTED,  /* open for reading and writing */
    ZEV_TCP_PHASE_CLOSED,     /* the connect failed or the socket was closed */
} zev_tcp_phase;

/* One handle, as zev_handle_info describes it. Fields of other types than the handle's are 0. */
struct zev_handle_info_s {
    zev_handle_t *handle;
    zev_handle_type type;
    zev_handle_state state;
    int fd;       /* ZEV_TCP, ZEV_TCP_SERVER, ZEV_UDP, ZEV_FDWATCH: its descriptor; else -1
                     (and -1 before a TCP socket has one, or once it is closed) */
    int active;   /* zev_is_active: doing something (reading, listening, a timer started) */
    int ref;      /* zev_has_ref: referenced (0 from zev_close on) */
    int requests; /* requests in flight (a connect, a write, an end, a UDP send): they keep the
                     loop running even when the handle is unref'd */
    zev_tcp_phase tcp_phase; /* ZEV_TCP */
    size_t queued_bytes;     /* ZEV_TCP: bytes queued, not yet written (Node's
                                writableLength); ZEV_UDP: bytes of datagrams not yet sent */
    size_t queued_memory;    /* ZEV_TCP: memory the write queue holds, pinned chunks whole
                                (zev_tcp_write_queue_memory) */
    unsigned queued;         /* ZEV_TCP: writes whose callback is still due; ZEV_UDP:
                                datagrams not yet sent */
    unsigned connections;    /* ZEV_TCP_SERVER: connections it accepted, still open */
    int signum;              /* ZEV_SIGNAL: the signal watched, 0 while stopped */
    uint64_t due_in_ms;      /* ZEV_TIMER: ms until it fires (0 if due, or stopped) */
};

/* Called once per handle by zev_loop_walk. */
typedef void (*zev_walk_cb)(zev_handle_t *handle, void *arg);

/* Call cb(handle, arg) for every handle of the loop the user initialised whose close callback
 * has not run (open, closing or close-pending), in no promised order (libuv's uv_walk). cb may
 * call anything, zev_close included: a handle it closes, itself or one not yet visited, stays
 * in the walk and is visited (or was) with state closing, since it leaves the table only when
 * its close callback runs, which never happens inside a walk unless cb runs the loop. A handle
 * cb initialises may or may not be visited. Returns how many handles were visited; -EINVAL on
 * NULL loop or cb, -EBADF on a closed loop. */
ZEV_EXPORT int zev_loop_walk(zev_loop_t *loop, zev_walk_cb cb, void *arg);

/* Describe a handle into *out: its type, state, descriptor, active and ref'd, and the fields of
 * its type. Works from zev_close until the close callback. -EINVAL on NULL or a handle no init
 * call has seen, -EBADF once closed (its close callback ran). */
ZEV_EXPORT int zev_handle_info(const zev_handle_t *handle, zev_handle_info_t *out);

/* "timer", "async", "tcp", "tcp_server", "udp", "fdwatch", "signal"; "unknown" otherwise. */
ZEV_EXPORT const char *zev_handle_type_name(zev_handle_type type);

/* Flags for zev_loop_print_handles. */
enum {
    ZEV_PRINT_ALL = 0,         /* every handle (libuv's uv_print_all_handles) */
    ZEV_PRINT_ACTIVE = 1u << 0 /* only active handles (uv_print_active_handles) */
};

/* Write the loop's handles to out, one line each, then the buffer pool, the slab and what
 * zev_loop_close would say now (docs/embedding.md shows the format; lines start with a
 * keyword and their fields are stable, for tests and scripts):
 *     zev loop 0x...: 2 handles (1 open, 1 closing, 0 close-pending), 0 internal
 *     [RA-] tcp        fd=7 open phase=connected queued=5 in 1 writes memory=69 0x...
 *     [---] timer      fd=-1 closing due_in=0ms 0x...
 *     pool: 1 chunk referenced (65536 bytes each), 2 idle, 3 allocated
 *     slab: 1 object in use (1 of 64 bytes, 0 of 128 bytes)
 *     zev_loop_close: -EBUSY: 2 handles not closed, 1 chunk referenced, 1 slab object in use
 * Flags: [R] referenced, [A] active, [Q] requests in flight. Call it when zev_loop_close says
 * -EBUSY, or any time on the loop's thread. Returns 0, -EINVAL on NULL loop or out or unknown
 * flags, -EBADF on a closed loop, -EIO if writing to out failed. */
ZEV_EXPORT int zev_loop_print_handles(zev_loop_t *loop, FILE *out, unsigned flags);

#endif /* ZEV_INSPECT_H */
