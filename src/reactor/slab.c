/* src/reactor/slab.c: pools of fixed-size objects for the loop's small bookkeeping.
 *
 * Write-queue entries and timeout nodes come and go with every queued write or connection.
 * Taking them from a free list keeps malloc off that path: blocks of objects are allocated
 * through the loop's allocator when the list runs dry and reused afterwards. O(1) get and put.
 *
 * Giving memory back (zev__slab_trim, run by trim.c once per interval): an object does not
 * know its block (a write-queue entry fills all of its 64 bytes), so put cannot tell when a
 * block has emptied. Put only notices that use fell under a quarter of the capacity and asks
 * for a trim (one compare). If use then stayed that low for a whole interval, a sweep sorts
 * the free list and the blocks by address, counts the free objects of each block and frees
 * the blocks that are wholly free, highest first: O(F log F) for F free objects, at most once
 * per interval. With nothing in use it just keeps the blocks it needs and rebuilds their free
 * list. A sweep leaves room for twice the interval's peak and no fixed floor: a kept block
 * high in malloc's heap would stop the heap from shrinking. One that freed nothing (objects
 * scattered over many blocks) waits until use halves before it is asked for again.
 */
#include "reactor_internal.h"

#include <errno.h>
#include <stdint.h>

#define BLOCK_BYTES 8192u

struct slab_link {
    struct slab_link *next;
};

/* Each block starts with a link to the previous block, then its objects. */
struct slab_block {
    struct slab_link link;
    size_t size;
};

#define BLOCK_HEADER ((sizeof(struct slab_block) + 63u) & ~(size_t)63u)

void zev__slab_init(struct zev__slab *slab, size_t obj_size) {
    *slab = (struct zev__slab){.obj_size = obj_size};
}

static size_t per_block(const struct zev__slab *slab) {
    return (BLOCK_BYTES - BLOCK_HEADER) / slab->obj_size;
}

/* Push every object of block b onto the free list. */
static void block_carve(struct zev__slab *slab, struct slab_block *b) {
    char *obj = (char *)b + BLOCK_HEADER;
    char *end = (char *)b + BLOCK_BYTES;
    for (; obj + slab->obj_size <= end; obj += slab->obj_size) {
        struct slab_link *f = (struct slab_link *)obj;
        f->next = slab->free_list;
        slab->free_list = f;
    }
}

static void block_free(struct zev__slab *slab, struct slab_block *b) {
    zev__debug_unpoison(b, b->size); /* the allocator may reuse it unseen */
    zev__free(slab->loop, b, b->size);
    slab->n_blocks--;
}

static int slab_grow(zev_loop_t *loop, struct zev__slab *slab) {
    struct slab_block *b = zev__alloc(loop, BLOCK_BYTES);
    if (!b) return -ENOMEM;
    b->size = BLOCK_BYTES;
    b->link.next = slab->blocks;
    slab->blocks = b;
    slab->loop = loop;
    slab->n_blocks++;
    slab->sweep_below = slab->n_blocks * per_block(slab) / 4 + 1;
    block_carve(slab, b);
    return 0;
}

void *zev__slab_get(zev_loop_t *loop, struct zev__slab *slab) {
    if (!slab->free_list && slab_grow(loop, slab) < 0) return NULL;
    struct slab_link *f = slab->free_list;
    slab->free_list = f->next;
    if (++slab->in_use > slab->peak) slab->peak = slab->in_use;
    zev__debug_unpoison(f, slab->obj_size);
    return f;
}

/* ---- the sweep ---- */

/* Bottom-up merge sort on the list's own links: O(n log n), no memory. */
void *zev__sort_by_address(void *list, size_t link_off) {
    for (size_t width = 1;; width *= 2) {
        char *head = NULL;
        char **tail = &head;
        size_t merges = 0;
        char *p = list;
        while (p) {
            merges++;
            char *q = p;
            size_t p_len = 0;
            while (q && p_len < width) {
                q = *(char **)(q + link_off);
                p_len++;
            }
            size_t q_len = width;
            while (p_len > 0 || (q_len > 0 && q)) {
                char *take;
                if (p_len == 0 || (q_len > 0 && q && (uintptr_t)q > (uintptr_t)p)) {
                    take = q;
                    q = *(char **)(q + link_off);
                    q_len--;
                } else {
                    take = p;
                    p = *(char **)(p + link_off);
                    p_len--;
                }
                *tail = take;
                tail = (char **)(take + link_off);
            }
            p = q;
        }
        *tail = NULL;
        list = head;
        if (merges <= 1) return list;
    }
}

static struct slab_link *sort_by_address(struct slab_link *list) {
    return zev__sort_by_address(list, offsetof(struct slab_link, next));
}

/* Whether one more wholly free block may go: room for twice the interval's peak stays. */
static bool may_free_block(const struct zev__slab *slab) {
    return slab->n_blocks > 0 && (slab->n_blocks - 1) * per_block(slab) >= 2 * slab->peak;
}

/* Nothing in use: keep the lowest blocks (the keep), free the others, rebuild the free list.
 * O(B log B) for B blocks. */
static void sweep_idle(struct zev__slab *slab) {
    struct slab_block *b = (struct slab_block *)sort_by_address(slab->blocks);
    slab->blocks = NULL;
    slab->free_list = NULL;
    struct slab_link **tail = (struct slab_link **)&slab->blocks;
    while (b) {
        struct slab_block *next = (struct slab_block *)b->link.next;
        if (may_free_block(slab)) {
            block_free(slab, b);
        } else {
            *tail = &b->link;
            tail = &b->link.next;
            block_carve(slab, b);
        }
        b = next;
    }
    *tail = NULL;
}

/* Some in use: walk the blocks and the free objects, both from the highest address down, and
 * free each block whose objects are all free. The lists stay in that order afterwards. */
static void sweep_sorted(struct zev__slab *slab) {
    struct slab_link *blocks = sort_by_address(slab->blocks);
    struct slab_link *free_obj = sort_by_address(slab->free_list);
    struct slab_link *kept_blocks = NULL;
    struct slab_link **block_tail = &kept_blocks;
    struct slab_link *kept_free = NULL;
    struct slab_link **free_tail = &kept_free;
    size_t full = per_block(slab);
    while (blocks) {
        struct slab_block *b = (struct slab_block *)blocks;
        blocks = blocks->next;
        struct slab_link *run = free_obj;
        struct slab_link **run_end = &run;
        size_t n = 0;
        while (free_obj && (uintptr_t)free_obj > (uintptr_t)b) {
            run_end = &free_obj->next;
            free_obj = free_obj->next;
            n++;
        }
        if (n == full && may_free_block(slab)) {
            block_free(slab, b);
            continue;
        }
        if (n > 0) {
            *free_tail = run;
            free_tail = run_end;
        }
        *block_tail = &b->link;
        block_tail = &b->link.next;
    }
    zev__debug_assert(free_obj == NULL, "a free slab object lies outside every block");
    *free_tail = NULL;
    *block_tail = NULL;
    slab->blocks = kept_blocks;
    slab->free_list = kept_free;
}

bool zev__slab_trim(struct zev__slab *slab) {
    if (slab->n_blocks > 0 && slab->peak < slab->sweep_below) {
        size_t before = slab->n_blocks;
        if (slab->in_use == 0) {
            sweep_idle(slab);
        } else {
            sweep_sorted(slab);
        }
        /* Objects scattered over many blocks can leave nothing to free: ask again only once
         * use has halved, not every interval. */
        size_t quarter = slab->n_blocks * per_block(slab) / 4 + 1;
        slab->sweep_below = slab->n_blocks < before ? quarter : slab->peak / 2;
    }
    slab->peak = slab->in_use;
    /* Look again next interval while use is low: it may stay low for the whole of it. */
    return slab->n_blocks > 0 && slab->in_use < slab->sweep_below;
}

/* Debug builds with ASan poison all of a free object but its free-list link. */
void zev__slab_put(struct zev__slab *slab, void *obj) {
    zev__debug_assert(slab->in_use > 0, "a slab object was put back twice");
    struct slab_link *f = obj;
    f->next = slab->free_list;
    slab->free_list = f;
    slab->in_use--;
    zev__debug_poison((char *)obj + sizeof(*f), slab->obj_size - sizeof(*f));
    if (slab->in_use < slab->sweep_below) zev__trim_arm(slab->loop);
}

int zev__slab_close(zev_loop_t *loop, struct zev__slab *slab) {
    if (slab->in_use > 0) return -EBUSY;
    slab->loop = loop;
    struct slab_block *b = slab->blocks;
    while (b) {
        struct slab_block *next = (struct slab_block *)b->link.next;
        block_free(slab, b);
        b = next;
    }
    slab->blocks = NULL;
    slab->free_list = NULL;
    slab->peak = 0;
    slab->sweep_below = 0;
    return 0;
}
