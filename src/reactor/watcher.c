/* src/reactor/watcher.c: I/O watchers, the loop's unit of fd interest, and the pending queue.
 *
 * A watcher is registered with the backend once; after that, wanting to write costs nothing.
 * Because readiness is edge-triggered, an owner that stops early (its fairness budget, or a
 * resume after pause) queues itself in the pending queue; the loop runs that queue in the next
 * iteration and polls without blocking while it is non-empty. The queue has two lists: watchers
 * fed (no turn yet: a resume, a deferred result, an event the dispatch did not reach in its
 * slice) run before watchers that yielded after using their quantum, so a busy owner never
 * makes a newly ready one wait behind it; see docs/internals.md, "Fairness".
 *
 * Stale events. A callback may stop a watcher whose event is later in the batch being
 * dispatched (it closed that handle, or a connect failed). The event must not reach it, nor
 * reach it once it is started again within the batch. As nginx does, each registration
 * carries the watcher's instance bit in bit 0 of the kernel's data pointer (a watcher is at
 * least 4-aligned: it follows its owner's zev_handle_t); stopping flips the bit, and the
 * dispatcher drops an event whose bit differs. That is O(1) per stop, where scanning the rest
 * of the batch was O(batch). It is sound because nothing frees a watcher within a batch:
 * handle memory is the user's only after its close callback, and close callbacks run after
 * dispatch; so a tag in the batch still names the same watcher.
 *
 * One bit tells two registrations apart, not three: stop, start, stop, start within one batch
 * would flip the bit back and revive the first registration's events. So a stop flips only if
 * the previous flip is known to be behind the batch: FLIPPED is set by a flip and cleared when
 * an event of the newer registration is delivered (which proves that registration is the one
 * the batch was fetched with). A stop that finds FLIPPED still set voids the watcher's entries
 * in the rest of the batch instead, O(batch), as before; it takes a second stop before any
 * event of the restarted registration arrived, which zev itself never does. See
 * docs/internals.md, "Stale events".
 */
#include "backend.h"
#include "reactor_internal.h"

/* The event and flag bits are stored in bytes. */
_Static_assert((ZEV__READABLE | ZEV__WRITABLE | ZEV__HANGUP | ZEV__ERROR) <= UINT8_MAX,
               "event bits fit struct zev_watcher's uint8_t fields");
_Static_assert((ZEV__W_REGISTERED | ZEV__W_PENDING | ZEV__W_INSTANCE | ZEV__W_FLIPPED |
                ZEV__W_PRIORITY) <= UINT8_MAX,
               "watcher flags fit a byte");
/* The instance bit lives in bit 0 of a watcher's address. */
_Static_assert(_Alignof(struct zev_watcher) >= 2, "a watcher's address has a free low bit");
/* zev__watcher_dispatch finds a watcher's owner just before it; the loop's own one too. */
_Static_assert(offsetof(struct zev__wake, io) == sizeof(zev_handle_t),
               "the wake-up watcher follows its handle");

void zev__watcher_init(struct zev_watcher *w, int fd) {
    w->fd = fd;
    w->events = 0;
    w->flags = 0;
    w->revents = 0;
}

/* Make w's events already in the batch stale (see the top of this file). */
static void retire_batch_events(zev_loop_t *loop, struct zev_watcher *w) {
    if (w->flags & ZEV__W_FLIPPED) {
        zev__loop_drop_ready(loop, w);
        return;
    }
    w->flags ^= ZEV__W_INSTANCE;
    w->flags |= ZEV__W_FLIPPED;
}

int zev__watcher_start(zev_loop_t *loop, struct zev_watcher *w, unsigned events) {
    if ((w->flags & ZEV__W_REGISTERED) && (w->events & events) == events) return 0;
    int err = loop->backend->ops->watch(loop, w, w->events | events);
    if (err < 0) return err;
    w->events = (uint8_t)(w->events | events);
    w->flags |= ZEV__W_REGISTERED;
    return 0;
}

void zev__watcher_stop(zev_loop_t *loop, struct zev_watcher *w) {
    if (w->flags & ZEV__W_PENDING) {
        zev__list_remove(&zev__watcher_owner(w)->queue.pending);
        w->flags &= (uint8_t)~ZEV__W_PENDING;
    }
    w->revents = 0;
    if (!(w->flags & ZEV__W_REGISTERED)) return;
    loop->backend->ops->unwatch(loop, w);
    w->flags &= (uint8_t)~ZEV__W_REGISTERED;
    w->events = 0;
    retire_batch_events(loop, w);
}

/* Queue w on list (a watcher already pending keeps its place and gains revents). */
static void enqueue(struct zev_watcher *w, unsigned revents, struct zev__link *list) {
    zev_handle_t *owner = zev__watcher_owner(w);
    /* A closing owner's queue slot belongs to the close queue: nothing is delivered any more. */
    if (owner->flags & (ZEV__H_CLOSING | ZEV__H_CLOSED)) return;
    w->revents = (uint8_t)(w->revents | revents);
    if (w->flags & ZEV__W_PENDING) return;
    w->flags |= ZEV__W_PENDING;
    zev__list_push_back(list, &owner->queue.pending);
}

void zev__watcher_feed(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    enqueue(w, revents, &loop->pending_watchers);
}

void zev__watcher_yield(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    bool first = (w->flags & ZEV__W_PRIORITY) != 0;
    enqueue(w, revents, first ? &loop->pending_watchers : &loop->pending_yielded);
}

/* Give turns to the watchers on list, from its head, while the phase's budget lasts (and at
 * least one turn). Those it does not reach go back to the head, ahead of any queued
 * meanwhile: they have waited longest. A watcher fed or yielding while this runs waits for
 * the next pass. A callback may stop any watcher in `due`; stopping unlinks it, so it is
 * never run. */
static void run_list(zev_loop_t *loop, struct zev__link *list) {
    struct zev__link due;
    zev__list_move(list, &due);
    bool first = true;
    while (!zev__list_empty(&due) && (first || !loop->budget.over)) {
        first = false;
        struct zev__link *node = due.next;
        zev__list_remove(node);
        zev_handle_t *owner = zev__container_of(node, zev_handle_t, queue.pending);
        struct zev_watcher *w = (struct zev_watcher *)(owner + 1); /* right after its owner */
        w->flags &= (uint8_t)~ZEV__W_PENDING;
        unsigned revents = w->revents;
        w->revents = 0;
        zev__watcher_dispatch(loop, w, revents);
    }
    zev__list_splice_front(list, &due);
}

void zev__watcher_run_pending(zev_loop_t *loop) {
    run_list(loop, &loop->pending_watchers);
    run_list(loop, &loop->pending_yielded);
}
