/* src/tcp/timeout.c: a socket's idle timeout (Node's setTimeout) and connect timeout.
 *
 * Neither costs a heap operation per read or write. Activity only stamps last_active_ms; when
 * the node fires it compares the stamp with the clock and, if the socket was busy, re-arms for
 * the rest of the period. So a busy socket touches the heap about once per timeout period.
 * The node is borrowed from the loop's slab only while a timeout is set.
 */
#include "internal.h"

#include <errno.h>

static struct zev__tcp_timeout *timeout_of(const zev_tcp_t *t) {
    return t->idle ? zev__container_of(t->idle, struct zev__tcp_timeout, node) : NULL;
}

static void timeout_fire(zev_loop_t *loop, struct zev__timer_node *n) {
    struct zev__tcp_timeout *to = zev__container_of(n, struct zev__tcp_timeout, node);
    zev_tcp_t *t = to->socket;
    if (to->connecting) {
        t->err = -ETIMEDOUT;
        t->handle.flags |= ZEV__TCP_CONNECT_DUE;
        zev__tcp_on_connect_result(t);
        return;
    }
    uint64_t idle = loop->now_ms - to->last_active_ms;
    if (idle < to->idle_ms) {
        zev__timer_node_start(loop, n, to->idle_ms - idle);
        return;
    }
    /* Fires once per idle period: the next activity re-arms it (zev__tcp_touch). */
    if (t->events && t->events->timeout) t->events->timeout(t);
}

static struct zev__tcp_timeout *timeout_get(zev_tcp_t *t) {
    struct zev__tcp_timeout *to = timeout_of(t);
    if (to) return to;
    zev_loop_t *loop = t->handle.loop;
    to = zev__slab_get(loop, &loop->slab_large);
    if (!to) return NULL;
    *to = (struct zev__tcp_timeout){0};
    to->node.fire = timeout_fire;
    to->socket = t;
    t->idle = &to->node;
    return to;
}

void zev__tcp_timeout_clear(zev_tcp_t *t) {
    if (!t->idle) return;
    zev_loop_t *loop = t->handle.loop;
    zev__timer_node_stop(loop, t->idle);
    zev__slab_put(&loop->slab_large, timeout_of(t));
    t->idle = NULL;
}

void zev__tcp_touch(zev_tcp_t *t) {
    struct zev__tcp_timeout *to = timeout_of(t);
    if (!to || to->connecting || !to->idle_ms) return;
    zev_loop_t *loop = t->handle.loop;
    to->last_active_ms = loop->now_ms;
    if (!zev__timer_node_armed(loop, &to->node)) zev__timer_node_start(loop, &to->node, to->idle_ms);
}

static void arm_idle(zev_tcp_t *t, struct zev__tcp_timeout *to) {
    zev_loop_t *loop = t->handle.loop;
    to->last_active_ms = loop->now_ms;
    zev__timer_node_start(loop, &to->node, to->idle_ms);
}

void zev__tcp_timeout_connect_started(zev_tcp_t *t) {
    struct zev__tcp_timeout *to = timeout_of(t);
    if (!to || !to->connect_ms) return;
    to->connecting = 1;
    zev__timer_node_start(t->handle.loop, &to->node, to->connect_ms);
}

void zev__tcp_timeout_connect_ended(zev_tcp_t *t) {
    struct zev__tcp_timeout *to = timeout_of(t);
    if (!to) return;
    to->connecting = 0;
    zev__timer_node_stop(t->handle.loop, &to->node);
    if (to->idle_ms) {
        arm_idle(t, to);
    } else {
        zev__tcp_timeout_clear(t);
    }
}

int zev_tcp_set_timeout(zev_tcp_t *t, int64_t ms) {
    if (!t || ms < 0) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return -EBADF;
    if (ms == 0 && !t->idle) return 0;
    struct zev__tcp_timeout *to = timeout_get(t);
    if (!to) return -ENOMEM;
    to->idle_ms = (uint64_t)ms;
    if (to->connecting) return 0; /* takes over once connected */
    if (ms == 0) {
        zev__timer_node_stop(t->handle.loop, &to->node);
        if (!to->connect_ms || (t->handle.flags & ZEV__TCP_CONNECTED)) zev__tcp_timeout_clear(t);
        return 0;
    }
    arm_idle(t, to);
    return 0;
}

int zev_tcp_set_connect_timeout(zev_tcp_t *t, int64_t ms) {
    if (!t || ms < 0) return -EINVAL;
    if (!zev__handle_usable(&t->handle)) return -EBADF;
    if (t->handle.flags & (ZEV__TCP_CONNECTING | ZEV__TCP_CONNECTED)) return -EISCONN;
    if (ms == 0 && !t->idle) return 0;
    struct zev__tcp_timeout *to = timeout_get(t);
    if (!to) return -ENOMEM;
    to->connect_ms = (uint64_t)ms;
    return 0;
}
