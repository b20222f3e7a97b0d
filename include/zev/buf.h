/* zev/buf.h: refcounted buffers and slices, the zero-copy currency of zev (docs/design.md,
 * "Buffers: the zero-copy contract").
 *
 * The loop owns a pool of fixed-size chunks. The kernel reads straight into a chunk; callbacks
 * get a slice (pointer, length, owning chunk) that is valid during the callback. To keep the
 * bytes longer, take a reference with zev_buf_ref() and drop it with zev_buf_unref(). A slice
 * with owner NULL is raw memory that the caller keeps alive until the call that took it is
 * complete. zev_loop_close returns -EBUSY while the user still holds a reference. Included
 * from <zev.h>.
 */
#ifndef ZEV_BUF_H
#define ZEV_BUF_H

#include <stddef.h>
#include <stdint.h>

/* The largest chunk a loop accepts (zev_loop_options_t.buf_size): 64 MiB. */
#define ZEV_BUF_SIZE_MAX (64u * 1024u * 1024u)

typedef struct zev_buf_s zev_buf_t;
typedef struct zev_buf_pool_s zev_buf_pool_t;

struct zev_buf_s {
    /* read-only */
    char *base;
    size_t size;
    /* private */
    uint32_t refs;
    uint32_t carved; /* 1: zev_buf_alloc shares it out, so a write queue counts the bytes of
                        a queued slice of it, not the whole chunk (src/tcp/write.c) */
    zev_buf_pool_t *pool;
    zev_buf_t *next_free;
};

/* A view of bytes: base..base+len, kept alive by owner (NULL: raw caller memory). */
typedef struct {
    char *base;
    size_t len;
    zev_buf_t *owner;
} zev_slice_t;

typedef struct {
    size_t chunk_size; /* bytes of payload per chunk */
    uint64_t allocated;  /* chunks obtained from the allocator so far */
    uint64_t in_use;     /* chunks with at least one reference, except those lent to the
                            io_uring backend's receive ring and holding no result yet */
    uint64_t peak;       /* most chunks in use at once */
    uint64_t idle;       /* chunks kept unreferenced for reuse, and those lent to the ring */
    uint64_t released;   /* idle chunks given back to the allocator before zev_loop_close */
} zev_buf_pool_stats_t;

struct zev_buf_pool_s {
    /* private */
    zev_buf_pool_stats_t stats;
    zev_buf_t *free_list;
    const zev_allocator_t *allocator;
    size_t live;      /* allocated minus returned to the allocator; for leak checks at close */
    size_t idle_base; /* idle chunks always kept: ZEV__POOL_IDLE_BYTES' worth */
    size_t idle_min;  /* fewest idle chunks since the last trim: those nobody needed */
};

/* Take a chunk from the loop's pool with one reference; NULL if memory is exhausted. */
ZEV_EXPORT zev_buf_t *zev_buf_get(struct zev_loop_s *loop);
/* Take one more reference; returns buf. NULL (and nothing changes) if buf is NULL, already
 * released (count 0: the pool may have handed the chunk to someone else), or at UINT32_MAX. */
ZEV_EXPORT zev_buf_t *zev_buf_ref(zev_buf_t *buf);
/* Drop a reference; the last one returns the chunk to its pool, which keeps it for reuse (or
 * gives it back to the allocator once idle for zev_loop_options_t.idle_ms, past a floor). 0,
 * also for NULL; -EINVAL if the count is already 0 (one unref too many), changing nothing. */
ZEV_EXPORT int zev_buf_unref(zev_buf_t *buf);
/* Carve len bytes (1..the chunk size) for a message formatted once and written to many
 * sockets: out gets them (uninitialised, 16-byte aligned) with owner holding one reference for
 * you; write the slice anywhere, then zev_buf_unref(out->owner). Small slices share one chunk,
 * which returns to the pool when the last of them is released; no allocation once the pool is
 * warm. A queued slice counts its own bytes toward a socket's high-water mark, though it keeps
 * its whole chunk alive (docs/embedding.md, "One message, many sockets"). -EINVAL on NULL, 0
 * or a len above the chunk size, -EBADF on a closed loop, -ENOMEM. */
ZEV_EXPORT int zev_buf_alloc(struct zev_loop_s *loop, size_t len, zev_slice_t *out);
/* Pool counters. -EINVAL on NULL. */
ZEV_EXPORT int zev_buf_pool_stats(const struct zev_loop_s *loop, zev_buf_pool_stats_t *out);
/* A slice of raw memory the caller keeps alive until the taking call completes. */
static inline zev_slice_t zev_slice(const void *base, size_t len) {
    zev_slice_t s = {(char *)base, len, NULL};
    return s;
}

#endif /* ZEV_BUF_H */
