/* src/reactor/internal.h: what the reactor shares between its files and offers to src/tcp and
 * src/udp. TCP and UDP never call a backend: they start and stop I/O watchers declared here.
 */
#ifndef ZEV_REACTOR_INTERNAL_H
#define ZEV_REACTOR_INTERNAL_H

#include "zev.h"

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
    return loop && (loop->state == ZEV__LOOP_READY || loop->state == ZEV__LOOP_RUNNING);
}

void *zev__alloc(zev_loop_t *loop, size_t size);
void zev__free(zev_loop_t *loop, void *ptr, size_t size);

/* Called by the backend around its kernel wait: counts events and time blocked. */
void zev__loop_account_poll(zev_loop_t *loop, uint64_t blocked_ns, unsigned n_events);

/* ---- handles ---- */

enum {
    ZEV__H_REF = 1u << 0,
    ZEV__H_ACTIVE = 1u << 1,
    ZEV__H_CLOSING = 1u << 2,
    ZEV__H_CLOSED = 1u << 3,
    /* bits from 1u << 8 up belong to the handle type */
};

void zev__handle_init(zev_loop_t *loop, zev_handle_t *h, zev_handle_type type,
                      const struct zev__handle_ops *ops);
/* Mark active/inactive, keeping loop->active_refs in step. Idempotent. */
void zev__handle_start(zev_handle_t *h);
void zev__handle_stop(zev_handle_t *h);
/* Run due close callbacks (the last phase of an iteration). */
void zev__handle_run_closing(zev_loop_t *loop);

static inline bool zev__handle_usable(const zev_handle_t *h) {
    return h && !(h->flags & (ZEV__H_CLOSING | ZEV__H_CLOSED));
}

/* ---- I/O watchers: edge-triggered fd interest ---- */

enum {
    ZEV__READABLE = 1u << 0,
    ZEV__WRITABLE = 1u << 1,
    ZEV__HANGUP = 1u << 2, /* peer closed its side (EPOLLRDHUP / EV_EOF on read) */
    ZEV__ERROR = 1u << 3,  /* socket error pending (EPOLLERR / EV_EOF with fflags) */
};

enum {
    ZEV__W_REGISTERED = 1u << 0, /* known to the backend */
};

/* Watchers are edge-triggered: after a READABLE event the owner reads until EAGAIN, or stops
 * early (its fairness budget) and calls zev__watcher_feed() so the rest is read next
 * iteration. Likewise a WRITABLE event comes once per transition to writable. */
void zev__watcher_init(struct zev_watcher *w, int fd, zev__io_cb cb);
/* Register interest in events (once; later calls only widen it). May fail with -errno. */
int zev__watcher_start(zev_loop_t *loop, struct zev_watcher *w, unsigned events);
/* Forget the watcher: no further event, including ones already fetched in this batch. */
void zev__watcher_stop(zev_loop_t *loop, struct zev_watcher *w);
/* Run the watcher's callback with revents in the next iteration's pending phase. */
void zev__watcher_feed(zev_loop_t *loop, struct zev_watcher *w, unsigned revents);
/* Run the watchers fed in the previous iteration. */
void zev__watcher_run_pending(zev_loop_t *loop);

/* ---- timers (heap.c, timer.c) ---- */

void zev__timer_heap_insert(zev_loop_t *loop, zev_timer_t *t);
void zev__timer_heap_remove(zev_loop_t *loop, zev_timer_t *t);
/* Smallest (deadline, seq), or NULL. */
static inline zev_timer_t *zev__timer_heap_min(const zev_loop_t *loop) {
    return loop->timer_root;
}
/* Run every timer due at loop->now_ms that was started before this call; returns how many. */
unsigned zev__timer_run_due(zev_loop_t *loop);
/* Milliseconds until the nearest timer, -1 if none. */
int zev__timer_next_timeout(const zev_loop_t *loop);

/* ---- async (async.c) ---- */

/* Run the callbacks of every async handle that was sent to. Called by the wake watcher. */
void zev__async_dispatch(zev_loop_t *loop);

/* ---- buffer pool (buf.c) ---- */

void zev__buf_pool_init(zev_loop_t *loop, size_t chunk_size);
/* Returns the pool's free chunks to the allocator; -EBUSY if chunks are still referenced. */
int zev__buf_pool_close(zev_loop_t *loop);

#endif /* ZEV_REACTOR_INTERNAL_H */
