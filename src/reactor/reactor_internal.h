/* src/reactor/internal.h: what the reactor shares between its files and offers to src/tcp and
 * src/udp. TCP and UDP never call a backend: they start and stop I/O watchers declared here.
 */
#ifndef ZEV_REACTOR_INTERNAL_H
#define ZEV_REACTOR_INTERNAL_H

#include "debug.h"
#include "zev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- intrusive doubly linked list (circular, with a sentinel head) ---- */

static inline void zev__list_init(struct zev__link *head) {
    head->prev = head;
    head->next = head;
}

static inline bool zev__list_empty(const struct zev__link *head) {
    return head->next == head;
}

static inline void zev__list_push_back(struct zev__link *head, struct zev__link *node) {
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

/* Unlink node and point it at itself, so removing it again is harmless. */
static inline void zev__list_remove(struct zev__link *node) {
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node;
    node->next = node;
}

static inline bool zev__list_linked(const struct zev__link *node) {
    return node->next != node;
}

/* Move every node of from to the front of head, in order; from ends empty. O(1). */
static inline void zev__list_splice_front(struct zev__link *head, struct zev__link *from) {
    if (from->next == from) return;
    struct zev__link *first = from->next;
    struct zev__link *last = from->prev;
    last->next = head->next;
    head->next->prev = last;
    head->next = first;
    first->prev = head;
    from->next = from;
    from->prev = from;
}

/* Move every node of from onto the (empty) list to; from ends empty. O(1). */
static inline void zev__list_move(struct zev__link *from, struct zev__link *to) {
    if (zev__list_empty(from)) {
        zev__list_init(to);
        return;
    }
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    zev__list_init(from);
}

#define zev__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- loop ---- */

enum {
    ZEV__LOOP_UNINIT = 0,
    ZEV__LOOP_READY = 0x7a657601, /* "zev\1": catches most uses of a never-initialised loop */
    ZEV__LOOP_RUNNING,
    ZEV__LOOP_CLOSED
};

static inline bool zev__loop_usable(const zev_loop_t *loop) {
    if (!loop) return false;
    zev__debug_loop_thread(loop);
    return loop->state == ZEV__LOOP_READY || loop->state == ZEV__LOOP_RUNNING;
}

void *zev__alloc(zev_loop_t *loop, size_t size);
void zev__free(zev_loop_t *loop, void *ptr, size_t size);

/* ---- handles ---- */

enum {
    ZEV__H_REF = 1u << 0,
    ZEV__H_ACTIVE = 1u << 1,
    ZEV__H_CLOSING = 1u << 2,
    ZEV__H_CLOSED = 1u << 3,
    ZEV__H_CLOSE_QUEUED = 1u << 4, /* in the loop's close queue (h->queue.closing) */
    ZEV__H_REQUESTS = 1u << 5,     /* has requests in flight (counted in loop->request_handles) */
    /* bits from 1u << 8 up belong to the handle type */
};

/* Make h an open handle of loop. Every type but ZEV_HANDLE_UNKNOWN (the library's own handles,
 * counted as open but never walked) takes a slot in the loop's handle table, which may need a
 * block from the allocator: -ENOMEM then, and h is untouched and not open. */
int zev__handle_init(zev_loop_t *loop, zev_handle_t *h, zev_handle_type type,
                     const struct zev__handle_ops *ops);
/* Mark active/inactive, keeping loop->active_refs in step. Idempotent. Stopping also ends
 * the handle's requests (below). */
void zev__handle_start(zev_handle_t *h);
void zev__handle_stop(zev_handle_t *h);
/* The one rule for requests in flight (a connect, a queued write, an end waiting for its
 * shutdown, a UDP send): while a handle has any, the loop stays alive even if the handle is
 * unref'd, as libuv's requests and Node's pending writes do. unref only lets the loop exit
 * while the handle merely waits (reads, listens). TCP and UDP report here whenever their
 * queues change; idempotent, O(1). */
void zev__handle_set_requests(zev_handle_t *h, bool in_flight);
/* Queue a held-back close (see zev__handle_ops.finish) to complete in the next close phase. */
void zev__handle_close_resume(zev_handle_t *h);
/* Run due close callbacks (the last phase of an iteration). */
void zev__handle_run_closing(zev_loop_t *loop);

/* ---- the table of open handles (walk.c) ---- */

enum { ZEV__TABLE_BLOCK = 512 }; /* slots per block: 4 KiB */

/* Give h a slot (sets h->slot). O(1); -ENOMEM if a block could not be had, or past 2^24 - 1
 * handles listed at once. */
int zev__handle_table_add(zev_loop_t *loop, zev_handle_t *h);
/* Free h's slot, if it has one. O(1). */
void zev__handle_table_remove(zev_loop_t *loop, zev_handle_t *h);
/* At zev_loop_close, once no handle is open: give the table's memory back. */
void zev__handle_table_close(zev_loop_t *loop);

/* The guard of every call on an existing handle, in this form:
 *     if (!zev__handle_usable(h)) return zev__handle_error(h);
 * A handle of zeroed memory that no init call has seen has no loop: -EINVAL, never a NULL
 * dereference. Closing or closed: -EBADF. Debug builds also check that an open handle's loop
 * is live (catches memory overwritten or a loop closed under it) and the calling thread. */
static inline bool zev__handle_usable(const zev_handle_t *h) {
    if (!h || !h->loop) return false;
    if (h->flags & (ZEV__H_CLOSING | ZEV__H_CLOSED)) return false;
    zev__debug_assert(zev__loop_usable(h->loop),
                      "an open handle's loop is not initialised (handle memory overwritten, or "
                      "the loop closed before the handle)");
    return true;
}

static inline int zev__handle_error(const zev_handle_t *h) {
    return !h || !h->loop ? -EINVAL : -EBADF;
}

/* Debug builds: an init call on memory that still holds an open handle of this loop (never
 * closed, or its close callback not yet run) would drop it from the loop's lists. The memory
 * is read before init zeroes it, so this is a heuristic and a debug check only: stack garbage
 * often holds a pointer to the loop, but hardly also the type's ops pointer beside it. */
static inline void zev__debug_handle_fresh(const zev_loop_t *loop, const zev_handle_t *h,
                                           const struct zev__handle_ops *ops) {
    zev__debug_assert(h->loop != loop || h->ops != ops || (h->flags & ZEV__H_CLOSED),
                      "init on a handle that is still open (close it and wait for its close "
                      "callback first)");
}

/* ---- I/O watchers: edge-triggered fd interest ---- */

enum {
    ZEV__READABLE = 1u << 0,
    ZEV__WRITABLE = 1u << 1,
    ZEV__HANGUP = 1u << 2, /* peer closed its side (EPOLLRDHUP / EV_EOF on read) */
    ZEV__ERROR = 1u << 3,  /* socket error pending (EPOLLERR / EV_EOF with fflags) */
    ZEV__URGENT = 1u << 4, /* TCP urgent data pending (EPOLLPRI / EV_OOBAND), with READABLE */
};

enum {
    ZEV__W_REGISTERED = 1u << 0, /* known to the backend */
    ZEV__W_PENDING = 1u << 1,    /* in loop->pending_watchers, through its owner's queue slot */
    /* Stale events (watcher.c): the instance bit travels with every registration, in bit 0
     * of the kernel's data, and flips when the watcher is stopped; FLIPPED says it flipped
     * and no event of a registration made since has been delivered yet. */
    ZEV__W_INSTANCE = 1u << 2,
    ZEV__W_FLIPPED = 1u << 3,
    /* Register level-triggered (no EPOLLET, no EV_CLEAR): the kernel reports the condition
     * again on every wait while it holds. Only zev_fdwatch_t sets it (fdwatch.c); TCP and UDP
     * stay edge-triggered. Set before the first start; changing it needs a stop first. */
    ZEV__W_LEVEL = 1u << 4,
    /* Run as soon as its event is fetched, even past the phase's slice, and never queued
     * behind owners that used their quantum: the loop's wake-up (async callbacks, and so the
     * examples' signals) and listeners. Their own turns are short: a wake-up runs the async
     * callbacks once, a listener accepts at most a quantum's worth. */
    ZEV__W_PRIORITY = 1u << 5,
};

/* Watchers are edge-triggered: after a READABLE event the owner reads until EAGAIN, or stops
 * early (its fairness budget) and calls zev__watcher_feed() so the rest is read next
 * iteration. Likewise a WRITABLE event comes once per transition to writable.
 *
 * A watcher stores no callback and no link: it must be the member right after its owner's
 * zev_handle_t (each owning type asserts that with _Static_assert); the owner's ops->io gets
 * its events, and the owner's queue slot (shared with the close queue) links it into the
 * pending queue. That saves three pointers in every socket. An owner's ops->close must stop
 * its watcher, which frees the slot for the close queue. */
void zev__watcher_init(struct zev_watcher *w, int fd);
/* Register interest in events (once; later calls only widen it). May fail with -errno. */
int zev__watcher_start(zev_loop_t *loop, struct zev_watcher *w, unsigned events);
/* Forget the watcher: no further event, including ones already fetched in this batch or
 * waiting in the pending queue. */
void zev__watcher_stop(zev_loop_t *loop, struct zev_watcher *w);
/* Run the watcher's callback with revents in the next iteration's pending phase, before any
 * owner that yielded: for work that has had no turn yet (a resume, a deferred result, an
 * event the dispatch did not reach). A watcher already pending keeps its place. */
void zev__watcher_feed(zev_loop_t *loop, struct zev_watcher *w, unsigned revents);
/* Its owner used its turn (zev__budget_spend said so) and has more to do: queue it behind
 * every other pending watcher. A priority watcher is fed instead. */
void zev__watcher_yield(zev_loop_t *loop, struct zev_watcher *w, unsigned revents);
/* The pending phase: watchers fed, then watchers that yielded, each list from its head until
 * the phase's budget is spent (at least one turn each); the rest keep their places. */
void zev__watcher_run_pending(zev_loop_t *loop);
/* Watchers are waiting in the pending queue. */
static inline bool zev__watcher_any_pending(const zev_loop_t *loop) {
    return !zev__list_empty(&loop->pending_watchers) ||
           !zev__list_empty(&loop->pending_yielded);
}

/* A watcher's owner: the handle just before it in memory. */
static inline zev_handle_t *zev__watcher_owner(struct zev_watcher *w) {
    return (zev_handle_t *)((char *)w - sizeof(zev_handle_t));
}

/* Deliver revents to w's owner. */
static inline void zev__watcher_dispatch(zev_loop_t *loop, struct zev_watcher *w,
                                         unsigned revents) {
    zev__watcher_owner(w)->ops->io(loop, w, revents);
}

/* ---- the fairness budget (budget.c; docs/internals.md, "Fairness") ---- */

/* Why these numbers. A phase's slice of 2 ms keeps an iteration (two budgeted phases, plus
 * timers and close callbacks) near 5 ms under any load, so timers, accepts and wake-ups are
 * late by a few ms at worst, while the cost of ending a phase early, one extra poll that does
 * not block, stays below 1% of a 2 ms slice. The byte cap of 8 MiB per phase is a backstop
 * for a coarse clock (about 2 ms of loopback copying). A turn's quantum of 256 KiB is four
 * 64 KiB reads (libuv reads up to 32 times, but a single read there is small) or 64 small
 * operations, the count zev used before bytes were counted. An operation's own cost, 4 KiB,
 * stands for the syscall and the callback it runs: a stream of one-byte reads is not free. */
#define ZEV__BUDGET_SLICE_NS 2000000u
enum {
    ZEV__BUDGET_QUANTUM = 256 * 1024,
    ZEV__BUDGET_OP_COST = 4 * 1024,
    ZEV__BUDGET_PHASE_BYTES = 8 * 1024 * 1024,
    ZEV__BUDGET_CHECK_BYTES = 128 * 1024,
};

/* Start a phase's budget: a fresh slice from now_ns. */
void zev__budget_begin(zev_loop_t *loop, uint64_t now_ns);
/* Read the clock and test the phase's limits (out of line: the rare part of spending). */
void zev__budget_check(zev_loop_t *loop);

/* An owner's turn starts with `size_t turn = ZEV__BUDGET_QUANTUM;` and spends after every
 * operation (a read, a send, an accept, a batch, a write callback) what it moved. Returns
 * true, with *turn set to 0, once the turn is over: the quantum is spent or the phase's
 * slice is. The owner then stops and yields (zev__watcher_yield) if it has more to do. A few
 * additions and compares: the clock is read only every ZEV__BUDGET_CHECK_BYTES of cost. */
static inline bool zev__budget_spend(zev_loop_t *loop, size_t *turn, size_t bytes) {
    struct zev__budget *b = &loop->budget;
    size_t cost = bytes + ZEV__BUDGET_OP_COST;
    b->spent += cost;
    if (b->spent >= b->next_check) zev__budget_check(loop);
    *turn = *turn > cost && !b->over ? *turn - cost : 0;
    return *turn == 0;
}

/* ---- timer nodes (heap.c, timer.c) ---- */

void zev__timer_heap_insert(zev_loop_t *loop, struct zev__timer_node *n);
void zev__timer_heap_remove(zev_loop_t *loop, struct zev__timer_node *n);
bool zev__timer_node_armed(const zev_loop_t *loop, const struct zev__timer_node *n);
/* Smallest (deadline, seq), or NULL. */
static inline struct zev__timer_node *zev__timer_heap_min(const zev_loop_t *loop) {
    return loop->timer_root;
}
/* Arm (or re-arm) n to fire after timeout_ms: n->fire(loop, n) runs once, disarmed. */
void zev__timer_node_start(zev_loop_t *loop, struct zev__timer_node *n, uint64_t timeout_ms);
void zev__timer_node_stop(zev_loop_t *loop, struct zev__timer_node *n);
/* Fire every node due at loop->now_ms that was armed before this call; returns how many. */
unsigned zev__timer_run_due(zev_loop_t *loop);
/* Milliseconds until the nearest node, -1 if none. */
int zev__timer_next_timeout(const zev_loop_t *loop);

/* ---- async (async.c) ---- */

/* Run the callbacks of every async handle that was sent to. Called by the wake watcher. */
void zev__async_dispatch(zev_loop_t *loop);

/* An async handle of the loop itself: sent to like any, never counted as an open handle. */
void zev__async_init_internal(zev_loop_t *loop, zev_async_t *a, zev_async_cb cb);
/* End an internal async handle; no sender may be inside zev_async_send on it any more. */
void zev__async_forget(zev_async_t *a);

/* ---- name lookups (resolve.c) ---- */

/* host is text a lookup may be asked for: a syntactically valid host name, 1..253 bytes. */
bool zev__resolve_name_valid(const char *host);
/* Forget a lookup in flight without its callback (its owner is going away): a job not yet
 * started is freed, one inside getaddrinfo is freed when it returns. No-op if none. */
void zev__resolve_abandon(zev_resolve_t *req);
/* Lookups whose callback is still due (zev_loop_print_handles). */
unsigned zev__resolver_in_flight(const zev_loop_t *loop);
/* At zev_loop_close: -EBUSY while a lookup's callback is due; else stop the threads (join the
 * idle ones, detach one still inside getaddrinfo) and free what the loop holds. */
int zev__resolver_close(zev_loop_t *loop);

/* ---- signals (signal.c) ---- */

/* Run the callbacks of this loop's signal handles whose signal was caught since the last
 * call. Called from the wake-up dispatch (the handler path) and from the kqueue backend's
 * EVFILT_SIGNAL events. */
void zev__signal_dispatch(zev_loop_t *loop);

/* ---- buffer pool (buf.c) ---- */

/* A chunk is one allocation: its header, padded to a cache line, then its payload. */
#define ZEV__BUF_HEADER ((sizeof(zev_buf_t) + 63u) & ~(size_t)63u)

/* The bytes a chunk holds from the allocator: what a reference to any slice of it keeps. */
static inline size_t zev__buf_footprint(const zev_buf_t *b) {
    return ZEV__BUF_HEADER + b->size;
}

/* Idle chunks the pool keeps however long they stay unused (at least two chunks). */
enum { ZEV__POOL_IDLE_BYTES = 1 << 20 };

void zev__buf_pool_init(zev_loop_t *loop, size_t chunk_size);
/* Give back the chunks that stayed idle since the last trim, down to the floor. Returns true
 * while idle chunks remain above the floor (trim.c). */
bool zev__buf_pool_trim(zev_loop_t *loop);
/* Returns the pool's free chunks to the allocator; -EBUSY if chunks are still referenced. */
int zev__buf_pool_close(zev_loop_t *loop);
/* Chunks that keep zev__buf_pool_close at -EBUSY: referenced by anyone but the loop's own
 * read area or carve chunk alone (the user's references, write and send queues). O(1). */
size_t zev__buf_pool_held(const zev_loop_t *loop);
/* A write queue holds a slice of carved chunk b starting at base, right after a slice of
 * carved chunk prev ending at prev_end (prev NULL: nothing unsent before it). Returns the
 * chunk memory that holding it newly keeps alive beyond the slice's own bytes: the gap since
 * prev in the same chunk, or the lead-in of b plus the tail of prev left behind (unless prev is
 * still being carved). O(1). */
size_t zev__buf_carve_gap(const zev_loop_t *loop, const zev_buf_t *prev, const char *prev_end,
                          const zev_buf_t *b, const char *base);

/* The shared read area: every socket's reads land in the tail of one pool chunk. Get the
 * free tail (at least min_len bytes, or a fresh chunk); NULL when memory is exhausted. */
zev_buf_t *zev__buf_read_area(zev_loop_t *loop, size_t min_len, char **base, size_t *len);
/* After the data callback: if nobody else holds the chunk, its whole space is free again;
 * otherwise the used bytes stay reserved for whoever took a reference. */
void zev__buf_read_done(zev_loop_t *loop, size_t used);

/* Debug builds: slices a write or send receives belong to this loop's pool and are still
 * referenced (a released chunk may already carry someone else's bytes). O(n). */
static inline void zev__debug_slices(const zev_loop_t *loop, const zev_slice_t *s, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        const zev_buf_t *b = s[i].owner;
        zev__debug_assert(!b || (b->pool == &loop->pool && b->refs > 0),
                          "a slice's buffer belongs to another loop or was already released");
    }
}

/* ---- addresses (addr.c) ---- */

/* The port of an AF_INET or AF_INET6 address, in host order; 0 for any other family. Without
 * formatting the address text (zev_addr_info does that): cheap enough for every datagram. */
static inline int zev__addr_port(const zev_sockaddr_t *a) {
    if (a->sa.sa_family == AF_INET) return ntohs(a->in4.sin_port);
    if (a->sa.sa_family == AF_INET6) return ntohs(a->in6.sin6_port);
    return 0;
}

/* ---- adopting a socket opened elsewhere (adopt.c) ---- */
struct zev__sock_kind {
    zev_sockaddr_t local;
    zev_sockaddr_t peer; /* when connected */
    bool listening;
    bool connected;
};
/* Check that fd is an open IPv4 or IPv6 socket of type (SOCK_STREAM, SOCK_DGRAM) and describe
 * it in *out; changes nothing. -EBADF (closed or negative), -ENOTSOCK (not a socket), -EINVAL
 * (another type), -EAFNOSUPPORT (another family: AF_UNIX...). */
int zev__sock_describe(int fd, int type, struct zev__sock_kind *out);
/* Make a socket being adopted non-blocking and close-on-exec, as zev's own are. */
int zev__sock_own(int fd);

/* ---- slab (slab.c): fixed-size objects, reused without allocation in steady state ---- */

enum { ZEV__SLAB_SMALL = 64, ZEV__SLAB_LARGE = 128 };

void zev__slab_init(struct zev__slab *slab, size_t obj_size);
/* One object of slab->obj_size bytes, uninitialised; NULL if memory is exhausted. */
void *zev__slab_get(zev_loop_t *loop, struct zev__slab *slab);
/* Put an object back. O(1); asks for a trim when use falls under a quarter of the capacity. */
void zev__slab_put(struct zev__slab *slab, void *obj);
/* Release every block; -EBUSY if objects are still in use. */
int zev__slab_close(zev_loop_t *loop, struct zev__slab *slab);
/* Give back wholly free blocks if use stayed under a quarter of the capacity since the last
 * trim, keeping room for twice that use. Returns true if it should look again next interval
 * (use is still low). */
bool zev__slab_trim(struct zev__slab *slab);

/* ---- giving idle memory back (trim.c) ---- */

/* Sort a NULL-terminated singly linked list (its link at link_off in each node) by address,
 * highest first; returns the new head. Freeing from the top keeps the low memory, which lets
 * malloc shrink its heap. O(n log n), no memory (slab.c). */
void *zev__sort_by_address(void *list, size_t link_off);

enum { ZEV__TRIM_MS = 1000 }; /* the default zev_loop_options_t.idle_ms */

void zev__trim_init(zev_loop_t *loop, unsigned idle_ms);
/* Make sure a trim runs within the interval (something rose above its floor). O(1) when
 * already armed, O(log timers) otherwise. */
void zev__trim_arm(zev_loop_t *loop);

#endif /* ZEV_REACTOR_INTERNAL_H */
