/* src/tcp/pipe.c: zero-copy forwarding from one socket to another (Node's readable.pipe).
 *
 * The pipe slips its own event tables in front of both sockets' tables: src's data goes
 * straight to zev_tcp_write(dst) as the same slice (the queue takes a reference if the kernel
 * does not take it all at once), src pauses when dst reports it is over its high-water mark,
 * and resumes on dst's drain. Events the pipe does not handle are passed on to the tables the
 * sockets had, and the pipe finds itself from the table pointer, so it costs no field in
 * zev_tcp_t.
 */
#include "internal.h"

#include <errno.h>
#include <stddef.h>

static zev_tcp_pipe_t *pipe_of_src(zev_tcp_t *t) {
    return zev__container_of(t->events, zev_tcp_pipe_t, src_events);
}

static zev_tcp_pipe_t *pipe_of_dst(zev_tcp_t *t) {
    return zev__container_of(t->events, zev_tcp_pipe_t, dst_events);
}

static void on_src_data(zev_tcp_t *src, const zev_slice_t *slice) {
    zev_tcp_pipe_t *p = pipe_of_src(src);
    int r = zev_tcp_write(p->dst, slice, 1, NULL, NULL);
    if (r == 1) zev_tcp_read_stop(src); /* backpressure: resume on dst's drain */
}

static void on_src_end(zev_tcp_t *src) {
    zev_tcp_pipe_t *p = pipe_of_src(src);
    const zev_tcp_events_t *user = p->src_user;
    if (p->end_dst) zev_tcp_end(p->dst);
    if (user && user->end) user->end(src);
}

static void on_dst_drain(zev_tcp_t *dst) {
    zev_tcp_pipe_t *p = pipe_of_dst(dst);
    const zev_tcp_events_t *user = p->dst_user;
    zev_tcp_read_start(p->src);
    if (user && user->drain) user->drain(dst);
}

/* Pass-through events: forward to the socket's own table. */
static void src_error(zev_tcp_t *t, int err) {
    const zev_tcp_events_t *u = pipe_of_src(t)->src_user;
    if (u && u->error) u->error(t, err);
}
static void src_drain(zev_tcp_t *t) {
    const zev_tcp_events_t *u = pipe_of_src(t)->src_user;
    if (u && u->drain) u->drain(t);
}
static void src_timeout(zev_tcp_t *t) {
    const zev_tcp_events_t *u = pipe_of_src(t)->src_user;
    if (u && u->timeout) u->timeout(t);
}
static void src_finish(zev_tcp_t *t) {
    const zev_tcp_events_t *u = pipe_of_src(t)->src_user;
    if (u && u->finish) u->finish(t);
}
static void dst_data(zev_tcp_t *t, const zev_slice_t *s) {
    const zev_tcp_events_t *u = pipe_of_dst(t)->dst_user;
    if (u && u->data) u->data(t, s);
}
static void dst_end(zev_tcp_t *t) {
    const zev_tcp_events_t *u = pipe_of_dst(t)->dst_user;
    if (u && u->end) u->end(t);
}
static void dst_error(zev_tcp_t *t, int err) {
    const zev_tcp_events_t *u = pipe_of_dst(t)->dst_user;
    if (u && u->error) u->error(t, err);
}
static void dst_timeout(zev_tcp_t *t) {
    const zev_tcp_events_t *u = pipe_of_dst(t)->dst_user;
    if (u && u->timeout) u->timeout(t);
}
static void dst_finish(zev_tcp_t *t) {
    const zev_tcp_events_t *u = pipe_of_dst(t)->dst_user;
    if (u && u->finish) u->finish(t);
}

static bool is_piped(const zev_tcp_t *t) {
    return t->events && (t->events->data == on_src_data || t->events->drain == on_dst_drain);
}

int zev_tcp_pipe(zev_tcp_pipe_t *p, zev_tcp_t *src, zev_tcp_t *dst, int end_dst) {
    if (!p || !src || !dst || src == dst) return -EINVAL;
    if (!zev__handle_usable(&src->handle) || !zev__handle_usable(&dst->handle)) return -EBADF;
    if (is_piped(src) || is_piped(dst)) return -EBUSY;
    *p = (zev_tcp_pipe_t){.src = src, .dst = dst, .end_dst = end_dst};
    p->src_user = src->events;
    p->dst_user = dst->events;
    p->src_events = (zev_tcp_events_t){on_src_data, on_src_end, src_error, src_drain,
                                        src_timeout, src_finish};
    p->dst_events = (zev_tcp_events_t){dst_data, dst_end, dst_error, on_dst_drain,
                                        dst_timeout, dst_finish};
    src->events = &p->src_events;
    dst->events = &p->dst_events;
    if (zev_tcp_write_queue_size(dst) > dst->hwm) return 0; /* wait for drain */
    int err = zev_tcp_read_start(src);
    return err == -ENOTCONN ? 0 : err;
}

int zev_tcp_unpipe(zev_tcp_pipe_t *p) {
    if (!p || !p->src || !p->dst) return -EINVAL;
    if (p->src->events == &p->src_events) p->src->events = p->src_user;
    if (p->dst->events == &p->dst_events) p->dst->events = p->dst_user;
    p->src = p->dst = NULL;
    return 0;
}
