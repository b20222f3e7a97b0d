/* src/reactor/buf.c: the loop's pool of refcounted chunks that the kernel reads into, and
 * the carving of small message slices out of shared chunks (zev_buf_alloc, at the end).
 *
 * A chunk is one allocation: a zev_buf_t header, padded to a cache line, then `size` bytes of
 * payload. The pool grows on demand and keeps released chunks on a free list, so in steady
 * state getting and releasing a chunk is a pointer swap: no allocation per message. Chunks that
 * stayed idle for a whole interval go back to the allocator past a floor (zev__buf_pool_trim,
 * run by trim.c), so a burst's memory is returned once the burst is over; the rest goes at
 * zev_loop_close. Refcounts are plain integers: a loop and its buffers belong to one thread
 * (docs/design.md, "Threads and scale").
 */
#include "reactor_internal.h"
#include "ring.h"

#include <errno.h>
#include <stdint.h>

void zev__buf_pool_init(zev_loop_t *loop, size_t chunk_size) {
    zev_buf_pool_t *pool = &loop->pool;
    *pool = (zev_buf_pool_t){0};
    pool->stats.chunk_size = chunk_size;
    pool->allocator = &loop->allocator;
    size_t keep = ZEV__POOL_IDLE_BYTES / (ZEV__BUF_HEADER + chunk_size);
    pool->idle_base = keep > 2 ? keep : 2;
}

static zev_buf_t *chunk_new(zev_buf_pool_t *pool) {
    size_t size = pool->stats.chunk_size;
    char *mem = pool->allocator->alloc(pool->allocator->ctx, ZEV__BUF_HEADER + size);
    if (!mem) return NULL;
    zev_buf_t *b = (zev_buf_t *)mem;
    b->base = mem + ZEV__BUF_HEADER;
    b->size = size;
    b->pool = pool;
    b->next_free = NULL;
    pool->stats.allocated++;
    pool->live++;
    return b;
}

zev_buf_t *zev_buf_get(zev_loop_t *loop) {
    if (!zev__loop_usable(loop)) return NULL;
    zev_buf_pool_t *pool = &loop->pool;
    zev_buf_t *b = pool->free_list;
    if (b) {
        pool->free_list = b->next_free;
        if (--pool->stats.idle < pool->idle_min) pool->idle_min = pool->stats.idle;
        b->next_free = NULL;
        zev__debug_unpoison(b->base, b->size);
    } else {
        b = chunk_new(pool);
        if (!b) return NULL;
    }
    b->refs = 1;
    b->carved = 0;
    if (++pool->stats.in_use > pool->stats.peak) pool->stats.peak = pool->stats.in_use;
    return b;
}

/* A count of 0 means the chunk is on the free list: reviving it there would let the pool hand
 * it to a second owner, so both calls refuse it and change nothing. */
zev_buf_t *zev_buf_ref(zev_buf_t *b) {
    if (!b || b->refs == 0 || b->refs == UINT32_MAX) return NULL;
    b->refs++;
    return b;
}

int zev_buf_unref(zev_buf_t *b) {
    if (!b) return 0;
    if (b->refs == 0) return -EINVAL;
    if (--b->refs > 0) return 0;
    zev_buf_pool_t *pool = b->pool;
    pool->stats.in_use--;
    b->next_free = pool->free_list;
    pool->free_list = b;
    zev__debug_poison(b->base, b->size);
    /* Above the floor: make sure a trim will look at it. Not a loop call: the pool is always
     * its loop's member. */
    if (++pool->stats.idle > pool->idle_base)
        zev__trim_arm(zev__container_of(pool, zev_loop_t, pool));
    return 0;
}

static void chunk_free(zev_buf_pool_t *pool, zev_buf_t *b) {
    pool->live--;
    zev__debug_unpoison(b->base, b->size); /* the allocator may reuse it unseen */
    pool->allocator->free(pool->allocator->ctx, b, zev__buf_footprint(b));
}

static void release_internal(zev_buf_t *b);
static bool carve_let_go(zev_loop_t *loop);

/* Chunks that were idle through the whole interval (the fewest idle seen) were not needed:
 * give back those above the floor. A use that swings, however widely, within an interval
 * never dips into them, so steady state never reaches the allocator. The highest chunks go
 * and the free list is left lowest first, so that what stays, and what is taken next, sits
 * low in malloc's heap and its top can be returned to the system. For the same reason the
 * read area lets go of its chunk if nobody holds a slice of it (the next read takes the
 * lowest idle one: a pointer swap). O(n log n) for n idle chunks, once per interval. */
bool zev__buf_pool_trim(zev_loop_t *loop) {
    zev_buf_pool_t *pool = &loop->pool;
    size_t unneeded = pool->idle_min;
    if (unneeded > pool->idle_base) {
        if (loop->read_chunk && loop->read_chunk->refs == 1) {
            release_internal(loop->read_chunk);
            loop->read_chunk = NULL;
            unneeded++;
        }
        if (carve_let_go(loop)) unneeded++;
        zev_buf_t *high = zev__sort_by_address(pool->free_list, offsetof(zev_buf_t, next_free));
        while (unneeded > pool->idle_base && high) {
            zev_buf_t *b = high;
            high = b->next_free;
            pool->stats.idle--;
            pool->stats.released++;
            unneeded--;
            chunk_free(pool, b);
        }
        pool->free_list = NULL; /* reverse what is left: lowest first */
        while (high) {
            zev_buf_t *b = high;
            high = b->next_free;
            b->next_free = pool->free_list;
            pool->free_list = b;
        }
    }
    pool->idle_min = pool->stats.idle;
    return pool->stats.idle > pool->idle_base;
}

/* An internal reference (the read area's) is released exactly once: 0 here is a bug in zev,
 * where a user's extra unref only gets -EINVAL. */
static void release_internal(zev_buf_t *b) {
    if (b) zev__debug_assert(b->refs > 0, "an internal buffer reference was released twice");
    zev_buf_unref(b);
}

int zev_buf_pool_stats(const zev_loop_t *loop, zev_buf_pool_stats_t *out) {
    if (!loop || !out) return -EINVAL;
    *out = loop->pool.stats;
    /* A completion backend's receive buffers are the pool's reserve, not anyone's data. */
    size_t lent = zev__ring_bufs_lent(loop);
    out->in_use -= lent;
    out->idle += lent;
    return 0;
}

size_t zev__buf_pool_held(const zev_loop_t *loop) {
    /* The read area and the carve chunk each carry the loop's own reference; a chunk that has
     * only that one would go back at close, so it keeps nothing busy. */
    const zev_buf_t *area = loop->read_chunk;
    const zev_buf_t *carve = loop->carve_chunk;
    size_t loop_only = (area && area->refs == 1 ? 1 : 0) + (carve && carve->refs == 1 ? 1 : 0);
    return (size_t)loop->pool.stats.in_use - loop_only;
}

int zev__buf_pool_close(zev_loop_t *loop) {
    zev_buf_pool_t *pool = &loop->pool;
    /* The read area's own reference is the loop's, not a user's: drop it first. */
    if (loop->read_chunk && loop->read_chunk->refs == 1) {
        release_internal(loop->read_chunk);
        loop->read_chunk = NULL;
    }
    carve_let_go(loop);
    if (pool->stats.in_use > 0) return -EBUSY;
    while (pool->free_list) {
        zev_buf_t *b = pool->free_list;
        pool->free_list = b->next_free;
        pool->stats.idle--;
        chunk_free(pool, b);
    }
    pool->idle_min = 0;
    return 0;
}

/* ---- the shared read area ----
 *
 * Reads from every socket of the loop land in the free tail of one chunk, loop->read_chunk,
 * which the loop holds one reference to. After the data callback, if the loop's reference is
 * the only one left, nobody kept any slice and the whole chunk is free again; otherwise the
 * bytes just read stay reserved (somebody may hold them) and the next read goes after them.
 * So an echo server reuses one hot chunk forever, and a proxy that queues slices only moves
 * on to a new chunk when the old one fills. Idle connections hold no buffer at all.
 */

zev_buf_t *zev__buf_read_area(zev_loop_t *loop, size_t min_len, char **base, size_t *len) {
    zev_buf_t *b = loop->read_chunk;
    if (!b || b->size - loop->read_off < min_len) {
        zev_buf_t *fresh = zev_buf_get(loop);
        if (!fresh) return NULL;
        release_internal(b);
        loop->read_chunk = b = fresh;
        loop->read_off = 0;
    }
    *base = b->base + loop->read_off;
    *len = b->size - loop->read_off;
    return b;
}

void zev__buf_read_done(zev_loop_t *loop, size_t used) {
    zev_buf_t *b = loop->read_chunk;
    if (!b) return;
    if (b->refs == 1) {
        loop->read_off = 0;
    } else {
        loop->read_off += (used + 15u) & ~(size_t)15u; /* keep slices 16-byte aligned */
        if (loop->read_off > b->size) loop->read_off = b->size;
    }
}

/* ---- carved slices (zev_buf_alloc) ----
 *
 * Messages formatted once for many sockets are carved one after another out of one chunk,
 * loop->carve_chunk, which the loop holds one reference to; each slice takes another. The loop
 * moves on to a fresh chunk when a message does not fit in what is left and lets go of the old
 * one, which returns to the pool once its last slice is released. If the loop's reference is
 * the only one left when a slice is asked for, nobody holds any slice and the chunk starts over
 * from its beginning: a fan-out whose writes all go straight to the kernel reuses one hot
 * chunk. A message above a quarter of a chunk that does not fit gets a chunk of its own, so
 * the tail left unused when the loop moves on is under a quarter of a chunk.
 */

enum { CARVE_ALIGN = 16 }; /* as malloc: any object may be formatted into a slice */

/* Drop the loop's reference to the carve chunk if it is the last one (trim, close). Returns
 * true if the chunk went back to the pool. */
static bool carve_let_go(zev_loop_t *loop) {
    zev_buf_t *b = loop->carve_chunk;
    if (!b || b->refs != 1) return false;
    release_internal(b);
    loop->carve_chunk = NULL;
    return true;
}

/* A fresh carved chunk with one reference, or NULL. */
static zev_buf_t *carve_chunk_get(zev_loop_t *loop) {
    zev_buf_t *b = zev_buf_get(loop);
    if (b) b->carved = 1;
    return b;
}

int zev_buf_alloc(zev_loop_t *loop, size_t len, zev_slice_t *out) {
    if (!loop || !out || len == 0) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    size_t size = loop->pool.stats.chunk_size;
    if (len > size) return -EINVAL;
    zev_buf_t *b = loop->carve_chunk;
    if (b && b->refs == 1) loop->carve_off = 0; /* no slice of it is held anywhere */
    if (!b || size - loop->carve_off < len) {
        zev_buf_t *fresh = carve_chunk_get(loop);
        if (!fresh) return -ENOMEM;
        if (len > size / 4) { /* its own chunk: keep carving the current one */
            *out = (zev_slice_t){fresh->base, len, fresh};
            return 0;
        }
        release_internal(b);
        loop->carve_chunk = b = fresh;
        loop->carve_off = 0;
    }
    if (!zev_buf_ref(b)) return -ENOMEM; /* 4 billion slices held: no more references */
    *out = (zev_slice_t){b->base + loop->carve_off, len, b};
    size_t step = (len + CARVE_ALIGN - 1) & ~(size_t)(CARVE_ALIGN - 1);
    loop->carve_off = step < size - loop->carve_off ? loop->carve_off + step : size;
    return 0;
}

/* Bytes of b from its start to p, or 0 if p is not inside it (a slice a user built by hand). */
static size_t offset_in(const zev_buf_t *b, const char *p) {
    return p >= b->base && p <= b->base + b->size ? (size_t)(p - b->base) : 0;
}

/* Why the span and not the slice alone: a socket that skips messages (its own, in a chat) can
 * hold one small slice per chunk while the rest of each chunk holds what it skipped; charged
 * only its slices' bytes it could pin a chunk per slice. Charged the span, it pays for every
 * chunk it keeps except its first and last: the queue of a stream of small messages counted
 * at Q bytes keeps at most Q plus two chunks alive (docs/embedding.md). A chunk still being
 * carved is not charged its tail: others will fill it, and the queue that moves on to a
 * large message's own chunk pays a quarter of a chunk or more for that one. */
size_t zev__buf_carve_gap(const zev_loop_t *loop, const zev_buf_t *prev, const char *prev_end,
                          const zev_buf_t *b, const char *base) {
    if (!prev) return 0;
    size_t at = offset_in(b, base);
    if (prev == b) {
        size_t prev_at = offset_in(b, prev_end);
        return at > prev_at ? at - prev_at : 0;
    }
    size_t gap = at;
    if (prev != loop->carve_chunk) gap += prev->size - offset_in(prev, prev_end);
    return gap;
}
