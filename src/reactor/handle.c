/* src/reactor/handle.c: what every handle shares: ref/unref, active state, and deferred close.
 *
 * zev_close() stops the handle at once (its type's ops->close) and queues it; the loop's last
 * phase runs ops->finish (cancel outstanding requests) and then the user's close callback,
 * exactly once and never inside zev_close(). Types plug in through struct zev__handle_ops, so
 * this file knows no handle type.
 */
#include "reactor_internal.h"

#include <errno.h>
#include <stdlib.h>

/* The table slot (walk.c) must fit in the bits the type byte leaves: no byte is added. */
_Static_assert(offsetof(zev_handle_t, flags) == 2 * sizeof(void *) + sizeof(unsigned),
               "zev_handle_t.type and .slot share one word");

int zev__handle_init(zev_loop_t *loop, zev_handle_t *h, zev_handle_type type,
                     const struct zev__handle_ops *ops) {
    h->slot = 0;
    if (type != ZEV_HANDLE_UNKNOWN) {
        int err = zev__handle_table_add(loop, h);
        if (err < 0) return err;
    }
    h->data = NULL;
    h->loop = loop;
    h->type = (uint8_t)type;
    h->flags = ZEV__H_REF;
    h->ops = ops;
    h->queue.closing.cb = NULL;
    h->queue.closing.next = NULL;
    loop->open_handles++;
    return 0;
}

static bool counts_toward_alive(const zev_handle_t *h) {
    return (h->flags & (ZEV__H_ACTIVE | ZEV__H_REF)) == (ZEV__H_ACTIVE | ZEV__H_REF);
}

void zev__handle_start(zev_handle_t *h) {
    if (h->flags & ZEV__H_ACTIVE) return;
    h->flags |= ZEV__H_ACTIVE;
    if (counts_toward_alive(h)) h->loop->active_refs++;
}

/* The loop's counters are internal references: one too many releases would let zev_run
 * return while a handle still needs it. */
static void drop_active_ref(zev_loop_t *loop) {
    zev__debug_assert(loop->active_refs > 0, "loop->active_refs released below zero");
    loop->active_refs--;
}

void zev__handle_stop(zev_handle_t *h) {
    zev__handle_set_requests(h, false);
    if (!(h->flags & ZEV__H_ACTIVE)) return;
    if (counts_toward_alive(h)) drop_active_ref(h->loop);
    h->flags &= ~ZEV__H_ACTIVE;
}

void zev__handle_set_requests(zev_handle_t *h, bool in_flight) {
    bool now = (h->flags & ZEV__H_REQUESTS) != 0;
    if (now == in_flight) return;
    if (in_flight) {
        h->flags |= ZEV__H_REQUESTS;
        h->loop->request_handles++;
    } else {
        h->flags &= ~ZEV__H_REQUESTS;
        zev__debug_assert(h->loop->request_handles > 0, "loop->request_handles below zero");
        h->loop->request_handles--;
    }
}

int zev_ref(zev_handle_t *h) {
    if (!zev__handle_usable(h)) return zev__handle_error(h);
    if (h->flags & ZEV__H_REF) return 0;
    h->flags |= ZEV__H_REF;
    if (counts_toward_alive(h)) h->loop->active_refs++;
    return 0;
}

int zev_unref(zev_handle_t *h) {
    if (!zev__handle_usable(h)) return zev__handle_error(h);
    if (!(h->flags & ZEV__H_REF)) return 0;
    if (counts_toward_alive(h)) drop_active_ref(h->loop);
    h->flags &= ~ZEV__H_REF;
    return 0;
}

/* Node's hasRef(): false once closed. A closing handle no longer keeps the loop either. */
int zev_has_ref(const zev_handle_t *h) {
    if (!h || (h->flags & (ZEV__H_CLOSING | ZEV__H_CLOSED))) return 0;
    return (h->flags & ZEV__H_REF) ? 1 : 0;
}

int zev_is_active(const zev_handle_t *h) {
    return h && (h->flags & ZEV__H_ACTIVE) ? 1 : 0;
}

int zev_is_closing(const zev_handle_t *h) {
    return h && (h->flags & (ZEV__H_CLOSING | ZEV__H_CLOSED)) ? 1 : 0;
}

/* The close queue is a singly linked FIFO: handles only ever leave it from the front, in
 * zev__handle_run_closing, so no handle needs a back link. O(1) push. */
static void close_queue_push(zev_handle_t *h) {
    zev_loop_t *loop = h->loop;
    h->flags |= ZEV__H_CLOSE_QUEUED;
    h->queue.closing.next = NULL;
    if (loop->closing_tail) {
        loop->closing_tail->queue.closing.next = h;
    } else {
        loop->closing_head = h;
    }
    loop->closing_tail = h;
}

int zev_close(zev_handle_t *h, zev_close_cb cb) {
    if (!zev__handle_usable(h)) return zev__handle_error(h);
    h->flags |= ZEV__H_CLOSING;
    /* ops->close stops the handle's watcher, which frees the queue slot for the close. */
    if (h->ops && h->ops->close) h->ops->close(h);
    h->queue.closing.cb = cb;
    zev__handle_stop(h);
    close_queue_push(h);
    return 0;
}

void zev__handle_close_resume(zev_handle_t *h) {
    /* Still queued (its turn in this close phase has not come yet): it finishes then. */
    if (!(h->flags & ZEV__H_CLOSE_QUEUED)) close_queue_push(h);
}

void zev__handle_run_closing(zev_loop_t *loop) {
    /* Handles closed by these callbacks wait for the next iteration, which will not block. */
    zev_handle_t *due = loop->closing_head;
    loop->closing_head = loop->closing_tail = NULL;
    while (due) {
        zev_handle_t *h = due;
        due = h->queue.closing.next;
        h->queue.closing.next = NULL;
        h->flags &= ~ZEV__H_CLOSE_QUEUED;
        if (h->ops && h->ops->finish && h->ops->finish(h) != 0) continue; /* held back */
        h->flags = (h->flags & ~ZEV__H_CLOSING) | ZEV__H_CLOSED;
        zev__handle_table_remove(loop, h); /* before the callback, which may free h */
        zev__debug_assert(loop->open_handles > 0, "loop->open_handles below zero");
        loop->open_handles--;
        if (h->queue.closing.cb) h->queue.closing.cb(h);
    }
}

void zev_free_on_close(zev_handle_t *h) {
    free(h);
}
