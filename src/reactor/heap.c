/* src/reactor/heap.c: the timer min-heap, a pairing heap threaded through the timers.
 *
 * Keyed by (deadline, start sequence), so equal deadlines fire in start order. Intrusive: the
 * links live in the timer node, so starting a timer never allocates and never fails. Costs: insert
 * O(1), remove-min and remove O(log n) amortized. docs/internals.md compares this with libuv's
 * intrusive binary heap and libev's 4-ary array heap.
 */
#include "reactor_internal.h"

static bool node_less(const struct zev__timer_node *a, const struct zev__timer_node *b) {
    if (a->deadline_ms != b->deadline_ms) return a->deadline_ms < b->deadline_ms;
    return a->start_seq < b->start_seq;
}

/* Join two detached heaps; the larger root becomes the first child of the smaller. */
static struct zev__timer_node *meld(struct zev__timer_node *a, struct zev__timer_node *b) {
    if (node_less(b, a)) {
        struct zev__timer_node *tmp = a;
        a = b;
        b = tmp;
    }
    b->prev = a;
    b->next = a->child;
    if (a->child) a->child->prev = b;
    a->child = b;
    return a;
}

/* The classic two passes over a sibling list: meld neighbours left to right, then fold the
 * pairs right to left. Iterative, so a million siblings cost no stack. */
static struct zev__timer_node *merge_pairs(struct zev__timer_node *first) {
    if (!first) return NULL;
    struct zev__timer_node *pairs = NULL; /* melded pairs, newest first, chained through next */
    while (first) {
        struct zev__timer_node *a = first;
        struct zev__timer_node *b = a->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b) {
            b->next = b->prev = NULL;
            a = meld(a, b);
        }
        a->next = pairs;
        pairs = a;
    }
    struct zev__timer_node *root = pairs;
    pairs = pairs->next;
    root->next = NULL;
    while (pairs) {
        struct zev__timer_node *next = pairs->next;
        pairs->next = NULL;
        root = meld(root, pairs);
        pairs = next;
    }
    root->prev = NULL;
    return root;
}

bool zev__timer_node_armed(const zev_loop_t *loop, const struct zev__timer_node *t) {
    return t->prev != NULL || loop->timer_root == t;
}

void zev__timer_heap_insert(zev_loop_t *loop, struct zev__timer_node *t) {
    t->child = t->next = t->prev = NULL;
    loop->timer_root = loop->timer_root ? meld(loop->timer_root, t) : t;
    loop->timer_count++;
}

void zev__timer_heap_remove(zev_loop_t *loop, struct zev__timer_node *t) {
    if (t == loop->timer_root) {
        loop->timer_root = merge_pairs(t->child);
    } else {
        /* Cut t's subtree out of its sibling list, then meld its children back in. */
        if (t->prev->child == t) {
            t->prev->child = t->next;
        } else {
            t->prev->next = t->next;
        }
        if (t->next) t->next->prev = t->prev;
        struct zev__timer_node *sub = merge_pairs(t->child);
        if (sub) loop->timer_root = meld(loop->timer_root, sub);
    }
    t->child = t->next = t->prev = NULL;
    loop->timer_count--;
}
