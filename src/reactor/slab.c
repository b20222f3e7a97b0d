/* src/reactor/slab.c: pools of fixed-size objects for the loop's small bookkeeping.
 *
 * Write-queue entries and timeout nodes come and go with every queued write or connection.
 * Taking them from a free list keeps malloc off that path: blocks of objects are allocated
 * through the loop's allocator when the list runs dry and reused afterwards. Blocks are
 * returned only at zev_loop_close. O(1) get and put.
 */
#include "reactor_internal.h"

#include <errno.h>

#define BLOCK_BYTES 8192u

/* Each block starts with a link to the previous block, then its objects. */
struct slab_block {
    struct slab_block *next;
    size_t size;
};

struct slab_free {
    struct slab_free *next;
};

#define BLOCK_HEADER ((sizeof(struct slab_block) + 63u) & ~(size_t)63u)

void zev__slab_init(struct zev__slab *slab, size_t obj_size) {
    slab->free_list = NULL;
    slab->blocks = NULL;
    slab->obj_size = obj_size;
    slab->in_use = 0;
}

static int slab_grow(zev_loop_t *loop, struct zev__slab *slab) {
    struct slab_block *b = zev__alloc(loop, BLOCK_BYTES);
    if (!b) return -ENOMEM;
    b->size = BLOCK_BYTES;
    b->next = slab->blocks;
    slab->blocks = b;
    char *obj = (char *)b + BLOCK_HEADER;
    char *end = (char *)b + BLOCK_BYTES;
    for (; obj + slab->obj_size <= end; obj += slab->obj_size) {
        struct slab_free *f = (struct slab_free *)obj;
        f->next = slab->free_list;
        slab->free_list = f;
    }
    return 0;
}

void *zev__slab_get(zev_loop_t *loop, struct zev__slab *slab) {
    if (!slab->free_list && slab_grow(loop, slab) < 0) return NULL;
    struct slab_free *f = slab->free_list;
    slab->free_list = f->next;
    slab->in_use++;
    zev__debug_unpoison(f, slab->obj_size);
    return f;
}

/* Debug builds with ASan poison all of a free object but its free-list link. */
void zev__slab_put(struct zev__slab *slab, void *obj) {
    zev__debug_assert(slab->in_use > 0, "a slab object was put back twice");
    struct slab_free *f = obj;
    f->next = slab->free_list;
    slab->free_list = f;
    slab->in_use--;
    zev__debug_poison((char *)obj + sizeof(*f), slab->obj_size - sizeof(*f));
}

int zev__slab_close(zev_loop_t *loop, struct zev__slab *slab) {
    if (slab->in_use > 0) return -EBUSY;
    struct slab_block *b = slab->blocks;
    while (b) {
        struct slab_block *next = b->next;
        zev__debug_unpoison(b, b->size); /* the allocator may reuse it unseen */
        zev__free(loop, b, b->size);
        b = next;
    }
    slab->blocks = NULL;
    slab->free_list = NULL;
    return 0;
}
