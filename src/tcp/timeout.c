/* src/tcp/timeout.c: a socket's idle timeout (Node's setTimeout) and connect timeout.
 *
 * The idle timeout counts reads and writes, as Node's, or reads only (ZEV_TCP_TIMEOUT_READ:
 * read.c stamps with zev__tcp_touch, write.c with zev__tcp_touch_write, which skips it).
 *
 * Neither costs a heap operation per read or write. Activity only stamps last_active_ms; when
 * the node fires it compares the stamp with the clock and, if the socket was busy, re-arms for
 * the rest of the period. So a busy socket touches the heap about once per timeout period.
 * The node lives in the socket's extra state (struct zev__tcp_extra), taken from the loop's
 * slab when a timeout is first set and returned when the socket closes. When the node fires,
 * stream.c asks zev__tcp_timeout_expired which timeout that was and runs what follows.
 */
#include "tcp_internal.h"

#include <errno.h>

/* The node times the connect while one runs and a connect timeout was set (it can only be set
 * before connecting); otherwise it is the idle timeout's. */
static bool times_connect(const zev_tcp_t *t, const struct zev__tcp_extra *x) {
    return zev__tcp_phase(t) == ZEV__TCP_CONNECTING && x->connect_ms;
}

enum zev__tcp_timeout zev__tcp_timeout_expired(zev_tcp_t *t) {
    struct zev__tcp_extra *x = t->extra;
    if (times_connect(t, x)) return ZEV__TCP_TIMEOUT_CONNECT;
    zev_loop_t *loop = t->handle.loop;
    uint64_t idle = loop->now_ms - x->last_active_ms;
    if (idle < x->idle_ms) {
        zev__timer_node_start(loop, &x->node, x->idle_ms - idle);
        return ZEV__TCP_TIMEOUT_NONE;
    }
    return ZEV__TCP_TIMEOUT_IDLE;
}

void zev__tcp_touch(zev_tcp_t *t) {
    struct zev__tcp_extra *x = t->extra;
    if (!x || !x->idle_ms || times_connect(t, x)) return;
    zev_loop_t *loop = t->handle.loop;
    x->last_active_ms = loop->now_ms;
    if (!zev__timer_node_armed(loop, &x->node)) zev__timer_node_start(loop, &x->node, x->idle_ms);
}

static void arm_idle(zev_tcp_t *t, struct zev__tcp_extra *x) {
    zev_loop_t *loop = t->handle.loop;
    x->last_active_ms = loop->now_ms;
    zev__timer_node_start(loop, &x->node, x->idle_ms);
}

void zev__tcp_timeout_connect_started(zev_tcp_t *t) {
    struct zev__tcp_extra *x = t->extra;
    if (!x || !x->connect_ms) return;
    zev__timer_node_start(t->handle.loop, &x->node, x->connect_ms);
}

/* Called once the phase has left CONNECTING. */
void zev__tcp_timeout_connect_ended(zev_tcp_t *t) {
    struct zev__tcp_extra *x = t->extra;
    if (!x) return;
    zev__timer_node_stop(t->handle.loop, &x->node);
    if (x->idle_ms && zev__tcp_phase(t) == ZEV__TCP_CONNECTED) arm_idle(t, x);
}

int zev_tcp_set_timeout(zev_tcp_t *t, int64_t ms) {
    return zev_tcp_set_timeout_ex(t, ms, 0);
}

int zev_tcp_set_timeout_ex(zev_tcp_t *t, int64_t ms, unsigned flags) {
    if (!t || ms < 0 || (flags & ~(unsigned)ZEV_TCP_TIMEOUT_READ)) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (ms == 0 && !t->extra) return 0; /* already none: nothing to allocate */
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;
    x->idle_ms = (uint64_t)ms;
    /* A handle flag, not extra state: the write path tests it with the flags it has loaded,
     * and the extra state has no byte to spare. */
    t->handle.flags &= ~(unsigned)ZEV__TCP_IDLE_READS;
    if (flags & ZEV_TCP_TIMEOUT_READ) t->handle.flags |= ZEV__TCP_IDLE_READS;
    if (times_connect(t, x)) return 0; /* takes over once connected */
    if (ms == 0) {
        zev__timer_node_stop(t->handle.loop, &x->node);
        return 0;
    }
    arm_idle(t, x);
    return 0;
}

int zev_tcp_set_connect_timeout(zev_tcp_t *t, int64_t ms) {
    if (!t || ms < 0) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (zev__tcp_phase(t) != ZEV__TCP_IDLE) return -EISCONN;
    if (ms == 0 && !t->extra) return 0;
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;
    x->connect_ms = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms; /* 49 days is no limit */
    return 0;
}
