/* src/reactor/heap.c: the timer min-heap, a pairing heap threaded through the timers.
 *
 * Keyed by (deadline, start sequence), so equal deadlines fire in start order. Intrusive: the
 * links live in zev_timer_t, so starting a timer never allocates and never fails. Costs: insert
 * O(1), remove-min and remove O(log n) amortized. docs/internals.md compares this with libuv's
 * intrusive binary heap and libev's 4-ary array heap.
 */
#include "internal.h"

static bool timer_less(const zev_timer_t *a, const zev_timer_t *b) {
    if (a->deadline_ms != b->deadline_ms) return a->deadline_ms < b->deadline_ms;
    return a->start_seq < b->start_seq;
}

/* Join two detached heaps; the larger root becomes the first child of the smaller. */
static zev_timer_t *meld(zev_timer_t *a, zev_timer_t *b) {
    if (timer_less(b, a)) {
        zev_timer_t *tmp = a;
        a = b;
        b = tmp;
    }
    b->heap_prev = a;
    b->heap_next = a->heap_child;
    if (a->heap_child) a->heap_child->heap_prev = b;
    a->heap_child = b;
    return a;
}

/* The classic two passes over a sibling list: meld neighbours left to right, then fold the
 * pairs right to left. Iterative, so a million siblings cost no stack. */
static zev_timer_t *merge_pairs(zev_timer_t *first) {
    if (!first) return NULL;
    zev_timer_t *pairs = NULL; /* melded pairs, newest first, chained through heap_next */
    while (first) {
        zev_timer_t *a = first;
        zev_timer_t *b = a->heap_next;
        first = b ? b->heap_next : NULL;
        a->heap_next = a->heap_prev = NULL;
        if (b) {
            b->heap_next = b->heap_prev = NULL;
            a = meld(a, b);
        }
        a->heap_next = pairs;
        pairs = a;
    }
    zev_timer_t *root = pairs;
    pairs = pairs->heap_next;
    root->heap_next = NULL;
    while (pairs) {
        zev_timer_t *next = pairs->heap_next;
        pairs->heap_next = NULL;
        root = meld(root, pairs);
        pairs = next;
    }
    root->heap_prev = NULL;
    return root;
}

void zev__timer_heap_insert(zev_loop_t *loop, zev_timer_t *t) {
    t->heap_child = t->heap_next = t->heap_prev = NULL;
    loop->timer_root = loop->timer_root ? meld(loop->timer_root, t) : t;
    loop->timer_count++;
}

void zev__timer_heap_remove(zev_loop_t *loop, zev_timer_t *t) {
    if (t == loop->timer_root) {
        loop->timer_root = merge_pairs(t->heap_child);
    } else {
        /* Cut t's subtree out of its sibling list, then meld its children back in. */
        if (t->heap_prev->heap_child == t) {
            t->heap_prev->heap_child = t->heap_next;
        } else {
            t->heap_prev->heap_next = t->heap_next;
        }
        if (t->heap_next) t->heap_next->heap_prev = t->heap_prev;
        zev_timer_t *sub = merge_pairs(t->heap_child);
        if (sub) loop->timer_root = meld(loop->timer_root, sub);
    }
    t->heap_child = t->heap_next = t->heap_prev = NULL;
    loop->timer_count--;
}
