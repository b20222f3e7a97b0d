/* src/reactor/print.c: zev_loop_print_handles, the answer to "what keeps my loop from closing":
 * every listed handle (walk.c), then the buffer pool, the slab, and what zev_loop_close would
 * say now, written to the FILE the caller gives. The library writes nowhere else, and only
 * when asked. docs/embedding.md shows the format; tests read its key lines, so change it only
 * with them.
 */
#include "reactor_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

struct printer {
    FILE *out;
    unsigned flags;      /* ZEV_PRINT_* */
    unsigned n_state[3]; /* handles by zev_handle_state */
    bool failed;         /* a write to out failed */
};

__attribute__((format(printf, 2, 3))) static void put(struct printer *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(p->out, fmt, ap) < 0) p->failed = true;
    va_end(ap);
}

static const char *plural(size_t n) {
    return n == 1 ? "" : "s";
}

static const char *state_name(zev_handle_state s) {
    static const char *const names[] = {"open", "closing", "close-pending"};
    return names[s];
}

static const char *phase_name(zev_tcp_phase phase) {
    static const char *const names[] = {"none", "idle", "connecting", "connected", "closed"};
    return names[phase];
}

static void count_one(zev_handle_t *h, void *arg) {
    struct printer *p = arg;
    zev_handle_info_t i;
    if (zev_handle_info(h, &i) == 0) p->n_state[i.state]++;
}

/* The fields of the handle's own type. */
static void put_type_fields(struct printer *p, const zev_handle_info_t *i) {
    switch (i->type) {
    case ZEV_TCP:
        put(p, " phase=%s queued=%zu in %u write%s memory=%zu", phase_name(i->tcp_phase),
            i->queued_bytes, i->queued, plural(i->queued), i->queued_memory);
        break;
    case ZEV_TCP_SERVER:
        put(p, " connections=%u", i->connections);
        break;
    case ZEV_UDP:
        put(p, " queued=%zu in %u datagram%s", i->queued_bytes, i->queued, plural(i->queued));
        break;
    case ZEV_TIMER:
        put(p, " due_in=%llums", (unsigned long long)i->due_in_ms);
        break;
    case ZEV_SIGNAL:
        put(p, " signum=%d", i->signum);
        break;
    default:
        break;
    }
}

/* [RAQ] type fd=N state fields address: the flags as libuv's uv_print_all_handles has them
 * (R referenced, A active), plus Q for requests in flight. fd only for types that have one. */
static void put_one(zev_handle_t *h, void *arg) {
    struct printer *p = arg;
    zev_handle_info_t i;
    if (zev_handle_info(h, &i) < 0) return;
    if ((p->flags & ZEV_PRINT_ACTIVE) && !i.active) return;
    put(p, "[%c%c%c] %-10s", i.ref ? 'R' : '-', i.active ? 'A' : '-', i.requests ? 'Q' : '-',
        zev_handle_type_name(i.type));
    if (h->ops && h->ops->io) put(p, " fd=%d", i.fd);
    put(p, " %s", state_name(i.state));
    put_type_fields(p, &i);
    put(p, " %p\n", (void *)h);
}

static void put_pool_and_slab(struct printer *p, const zev_loop_t *loop) {
    const zev_buf_pool_stats_t *s = &loop->pool.stats;
    size_t held = zev__buf_pool_held(loop);
    put(p, "pool: %zu chunk%s referenced (%zu bytes each), %zu read area, %llu idle\n", held,
        plural(held), s->chunk_size, (size_t)(s->in_use - s->lent) - held,
        (unsigned long long)s->idle);
    if (s->lent) put(p, "pool: %llu lent to the kernel to receive into\n",
                     (unsigned long long)s->lent);
    size_t small = loop->slab.in_use;
    size_t large = loop->slab_large.in_use;
    put(p, "slab: %zu object%s in use (%zu of %d bytes, %zu of %d bytes)\n", small + large,
        plural(small + large), small, ZEV__SLAB_SMALL, large, ZEV__SLAB_LARGE);
}

/* "zev_loop_close: -EBUSY: 2 handles not closed, 1 chunk referenced": the reasons, if any. */
static void put_reason(struct printer *p, unsigned *n, size_t count, const char *noun,
                       const char *what) {
    if (count == 0) return;
    put(p, "%s%zu %s%s %s", (*n)++ ? ", " : " -EBUSY: ", count, noun, plural(count), what);
}

/* What zev_loop_close checks, in its order (loop.c), each with its count. */
static void put_verdict(struct printer *p, const zev_loop_t *loop) {
    unsigned n = 0;
    put(p, "zev_loop_close:");
    if (loop->state == ZEV__LOOP_RUNNING) put(p, "%sinside zev_run", n++ ? ", " : " -EBUSY: ");
    put_reason(p, &n, loop->open_handles, "handle", "not closed");
    put_reason(p, &n, loop->slab.in_use + loop->slab_large.in_use, "slab object", "in use");
    put_reason(p, &n, zev__resolver_in_flight(loop), "lookup", "due");
    put_reason(p, &n, zev__buf_pool_held(loop), "chunk", "referenced");
    put(p, "%s\n", n ? "" : " ready");
}

int zev_loop_print_handles(zev_loop_t *loop, FILE *out, unsigned flags) {
    if (!loop || !out || (flags & ~(unsigned)ZEV_PRINT_ACTIVE)) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    struct printer p = {.out = out, .flags = flags};
    zev_loop_walk(loop, count_one, &p);
    unsigned listed = loop->handles.listed;
    put(&p, "zev loop %p (%s): %u handle%s (%u open, %u closing, %u close-pending), %u internal\n",
        (void *)loop, zev_loop_backend(loop, NULL), listed, plural(listed), p.n_state[ZEV_HANDLE_OPEN],
        p.n_state[ZEV_HANDLE_CLOSING], p.n_state[ZEV_HANDLE_CLOSE_PENDING],
        loop->open_handles - listed);
    zev_loop_walk(loop, put_one, &p);
    put_pool_and_slab(&p, loop);
    put_verdict(&p, loop);
    if (fflush(out) != 0) p.failed = true;
    return p.failed ? -EIO : 0;
}
