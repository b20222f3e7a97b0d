/* src/reactor/walk.c: the loop's table of open handles, walking it (zev_loop_walk), and what
 * one handle says about itself (zev_handle_info). Printing is print.c's; each handle type
 * fills its own fields through ops->inspect, so this file knows no type.
 *
 * Why a table and not a list: a doubly linked list through every handle would cost 16 bytes
 * in each, and an idle connection is mostly its zev_tcp_t (120 bytes: a 144-byte malloc
 * chunk with a user's list link, 160 with 16 more). The table costs one 8-byte slot per open
 * handle, in blocks of ZEV__TABLE_BLOCK taken through the loop's allocator when a handle init
 * finds no free slot (once per 512 inits at most, never per message), and the handle keeps its
 * slot's index in the 24 bits its type left free (an enum of 4 bytes became a byte). Add and remove are
 * O(1): free slots form a list threaded through the slots themselves (a free slot holds the
 * next one's index, tagged odd; a handle's address is even). Slots are reused lowest first,
 * so the table stays as large as the most handles ever open at once, until zev_loop_close.
 *
 * A handle enters at init and leaves when its close callback is about to run, so a walk sees
 * open, closing and close-pending handles. Internal handles (type ZEV_HANDLE_UNKNOWN: a
 * connect by name's state) are counted as open but never listed; the loop's wake-up, the
 * resolver's async and the trim timer are not even counted.
 */
#include "reactor_internal.h"

#include <errno.h>

enum {
    FREE_TAG = 1,
    MAX_SLOTS = 1u << 24, /* what 24 bits of zev_handle_t.slot can name */
    FIRST_BLOCKS = 4,     /* first room in blocks[]: 2048 handles before it doubles */
};

static uintptr_t *slot_at(const struct zev__handle_table *t, uint32_t i) {
    return &t->blocks[i / ZEV__TABLE_BLOCK][i % ZEV__TABLE_BLOCK];
}

static bool slot_holds_handle(uintptr_t v) {
    return v != 0 && !(v & FREE_TAG);
}

static void push_free(struct zev__handle_table *t, uint32_t i) {
    *slot_at(t, i) = ((uintptr_t)t->free_head << 1) | FREE_TAG;
    t->free_head = i;
}

/* Room for one more block's address: double blocks[]. Copies block addresses, never
 * payload; O(blocks), once per doubling. */
static int grow_directory(zev_loop_t *loop, struct zev__handle_table *t) {
    uint32_t cap = t->cap_blocks ? t->cap_blocks * 2 : FIRST_BLOCKS;
    uintptr_t **dir = zev__alloc(loop, cap * sizeof(*dir));
    if (!dir) return -ENOMEM;
    for (uint32_t i = 0; i < t->n_blocks; i++)
        dir[i] = t->blocks[i];
    zev__free(loop, t->blocks, t->cap_blocks * sizeof(*dir));
    t->blocks = dir;
    t->cap_blocks = cap;
    return 0;
}

/* A new block of free slots, lowest first on the free list. Slot 0 is never handed out, so
 * that a handle's slot 0 means "not listed". */
static int grow(zev_loop_t *loop, struct zev__handle_table *t) {
    if ((size_t)(t->n_blocks + 1) * ZEV__TABLE_BLOCK > MAX_SLOTS) return -ENOMEM;
    if (t->n_blocks == t->cap_blocks) {
        int err = grow_directory(loop, t);
        if (err < 0) return err;
    }
    uintptr_t *block = zev__alloc(loop, ZEV__TABLE_BLOCK * sizeof(*block));
    if (!block) return -ENOMEM;
    uint32_t first = t->n_blocks * ZEV__TABLE_BLOCK;
    t->blocks[t->n_blocks++] = block;
    block[0] = 0;
    for (uint32_t i = ZEV__TABLE_BLOCK; i-- > 0;) {
        if (first + i != 0) push_free(t, first + i);
    }
    return 0;
}

int zev__handle_table_add(zev_loop_t *loop, zev_handle_t *h) {
    struct zev__handle_table *t = &loop->handles;
    if (t->free_head == 0) {
        int err = grow(loop, t);
        if (err < 0) return err;
    }
    uint32_t i = t->free_head;
    uintptr_t *slot = slot_at(t, i);
    t->free_head = (uint32_t)(*slot >> 1);
    *slot = (uintptr_t)h;
    h->slot = i;
    t->listed++;
    return 0;
}

void zev__handle_table_remove(zev_loop_t *loop, zev_handle_t *h) {
    struct zev__handle_table *t = &loop->handles;
    if (h->slot == 0) return;
    zev__debug_assert(*slot_at(t, h->slot) == (uintptr_t)h,
                      "a handle's table slot holds another handle (memory overwritten?)");
    push_free(t, h->slot);
    h->slot = 0;
    t->listed--;
}

void zev__handle_table_close(zev_loop_t *loop) {
    struct zev__handle_table *t = &loop->handles;
    for (uint32_t i = 0; i < t->n_blocks; i++) {
        zev__free(loop, t->blocks[i], ZEV__TABLE_BLOCK * sizeof(uintptr_t));
    }
    zev__free(loop, t->blocks, t->cap_blocks * sizeof(*t->blocks));
    *t = (struct zev__handle_table){0};
}

/* By index, reading the table afresh at every step: cb may init handles (the table may grow
 * and its directory move) and close them (they stay listed until their close callback). Even
 * a cb that runs the loop only frees slots, which are then skipped: no block is freed before
 * zev_loop_close, and the walk stops if cb got that far. */
int zev_loop_walk(zev_loop_t *loop, zev_walk_cb cb, void *arg) {
    if (!loop || !cb) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    int visited = 0;
    for (uint32_t i = 1; i < loop->handles.n_blocks * ZEV__TABLE_BLOCK; i++) {
        uintptr_t v = *slot_at(&loop->handles, i);
        if (!slot_holds_handle(v)) continue;
        visited++;
        cb((zev_handle_t *)v, arg);
        if (loop->state == ZEV__LOOP_CLOSED) break; /* cb closed everything, ran, closed */
    }
    return visited;
}

static zev_handle_state state_of(const zev_handle_t *h) {
    if (!(h->flags & ZEV__H_CLOSING)) return ZEV_HANDLE_OPEN;
    return (h->flags & ZEV__H_CLOSE_QUEUED) ? ZEV_HANDLE_CLOSING : ZEV_HANDLE_CLOSE_PENDING;
}

int zev_handle_info(const zev_handle_t *h, zev_handle_info_t *out) {
    if (!h || !h->loop || !out) return -EINVAL;
    if (h->flags & ZEV__H_CLOSED) return -EBADF;
    /* A watcher always follows its owner's handle (zev__watcher_owner). */
    const struct zev_watcher *w = (const struct zev_watcher *)(h + 1);
    *out = (zev_handle_info_t){
        .handle = (zev_handle_t *)h,
        .type = (zev_handle_type)h->type,
        .state = state_of(h),
        .fd = h->ops && h->ops->io ? w->fd : -1,
        .active = zev_is_active(h),
        .ref = zev_has_ref(h),
        .requests = (h->flags & ZEV__H_REQUESTS) != 0,
    };
    if (h->ops && h->ops->inspect) h->ops->inspect(h, out);
    return 0;
}

const char *zev_handle_type_name(zev_handle_type type) {
    switch (type) {
    case ZEV_TIMER:
        return "timer";
    case ZEV_ASYNC:
        return "async";
    case ZEV_TCP:
        return "tcp";
    case ZEV_TCP_SERVER:
        return "tcp_server";
    case ZEV_UDP:
        return "udp";
    case ZEV_FDWATCH:
        return "fdwatch";
    case ZEV_SIGNAL:
        return "signal";
    case ZEV_HANDLE_UNKNOWN:
        break;
    }
    return "unknown";
}
