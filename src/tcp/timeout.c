/* src/tcp/timeout.c: a socket's idle timeout (Node's setTimeout) and connect timeout.
 *
 * Neither costs a heap operation per read or write. Activity only stamps last_active_ms; when
 * the node fires it compares the stamp with the clock and, if the socket was busy, re-arms for
 * the rest of the period. So a busy socket touches the heap about once per timeout period.
 * The node lives in the socket's extra state (struct zev__tcp_extra), taken from the loop's
 * slab when a timeout is first set and returned when the socket closes.
 */
#include "tcp_internal.h"

#include <errno.h>

void zev__tcp_timeout_fire(zev_loop_t *loop, struct zev__timer_node *n) {
    struct zev__tcp_extra *x = zev__container_of(n, struct zev__tcp_extra, node);
    zev_tcp_t *t = x->socket;
    if (x->connecting) {
        t->err = -ETIMEDOUT;
        t->handle.flags |= ZEV__TCP_CONNECT_DUE;
        zev__tcp_on_connect_result(t);
        return;
    }
    uint64_t idle = loop->now_ms - x->last_active_ms;
    if (idle < x->idle_ms) {
        zev__timer_node_start(loop, n, x->idle_ms - idle);
        return;
    }
    /* Fires once per idle period: the next activity re-arms it (zev__tcp_touch). The callback
     * may close t, which frees x: touch neither after it. */
    if (t->events && t->events->timeout) t->events->timeout(t);
}

void zev__tcp_touch(zev_tcp_t *t) {
    struct zev__tcp_extra *x = t->extra;
    if (!x || x->connecting || !x->idle_ms) return;
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
    x->connecting = true;
    zev__timer_node_start(t->handle.loop, &x->node, x->connect_ms);
}

void zev__tcp_timeout_connect_ended(zev_tcp_t *t) {
    struct zev__tcp_extra *x = t->extra;
    if (!x) return;
    x->connecting = false;
    zev__timer_node_stop(t->handle.loop, &x->node);
    if (x->idle_ms) arm_idle(t, x);
}

int zev_tcp_set_timeout(zev_tcp_t *t, int64_t ms) {
    if (!t || ms < 0) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return zev__handle_error(&t->handle);
    if (ms == 0 && !t->extra) return 0; /* already none: nothing to allocate */
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;
    x->idle_ms = (uint64_t)ms;
    if (x->connecting) return 0; /* takes over once connected */
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
    if (t->handle.flags & (ZEV__TCP_CONNECTING | ZEV__TCP_CONNECTED)) return -EISCONN;
    if (ms == 0 && !t->extra) return 0;
    struct zev__tcp_extra *x = zev__tcp_extra_get(t);
    if (!x) return -ENOMEM;
    x->connect_ms = (uint64_t)ms;
    return 0;
}
