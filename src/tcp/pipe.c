/* src/tcp/pipe.c: zero-copy forwarding from one socket to another (Node's readable.pipe).
 *
 * src's bytes go to zev_tcp_write(dst) as the very slice the kernel read into; the write
 * queue takes a reference only for what the kernel does not take at once. So src always
 * reads into the pool while piped, even if it has a user read buffer (see read.c). When dst reports it
 * is over its high-water mark, src pauses; dst's drain resumes it. The read and write paths
 * call the three hooks below when a socket is piped, so no event table is swapped.
 */
#include "tcp_internal.h"

#include <errno.h>

void zev__tcp_pipe_data(zev_tcp_t *src, const zev_slice_t *slice) {
    zev_tcp_pipe_t *p = src->extra->pipe_out;
    int r = zev_tcp_write(p->dst, slice, 1, NULL, NULL);
    if (r == 1) zev_tcp_read_stop(src); /* backpressure: resumed by dst's drain */
    /* dst cannot take it (ended, failed, closed): these bytes would be lost, so say so on
     * src, whose data they are. */
    if (r < 0) zev__tcp_fail(src, r);
}

void zev__tcp_pipe_end(zev_tcp_t *src) {
    zev_tcp_pipe_t *p = src->extra->pipe_out;
    if (p->end_dst) zev_tcp_end(p->dst);
}

void zev__tcp_pipe_drain(zev_tcp_t *dst) {
    zev_tcp_read_start(dst->extra->pipe_in->src);
}

void zev__tcp_pipe_detach(zev_tcp_t *t) {
    struct zev__tcp_extra *x = t->extra;
    if (!x) return;
    if (x->pipe_out) zev_tcp_unpipe(x->pipe_out);
    if (x->pipe_in) zev_tcp_unpipe(x->pipe_in);
}

int zev_tcp_pipe(zev_tcp_pipe_t *p, zev_tcp_t *src, zev_tcp_t *dst, int end_dst) {
    if (!p || !src || !dst || src == dst) return -EINVAL;
    if (!zev__handle_usable(&src->handle)) return zev__handle_error(&src->handle);
    if (!zev__handle_usable(&dst->handle)) return zev__handle_error(&dst->handle);
    if (src->handle.loop != dst->handle.loop) return -EINVAL; /* a loop is one thread's */
    if ((src->extra && src->extra->pipe_out) || (dst->extra && dst->extra->pipe_in))
        return -EBUSY;
    /* A source that failed will never read: say why instead of piping nothing. */
    if (src->handle.flags & ZEV__TCP_FAILED) return src->err;
    struct zev__tcp_extra *sx = zev__tcp_extra_get(src);
    struct zev__tcp_extra *dx = sx ? zev__tcp_extra_get(dst) : NULL;
    if (!dx) return -ENOMEM; /* an extra already taken stays with its socket until close */
    *p = (zev_tcp_pipe_t){.src = src, .dst = dst, .end_dst = end_dst};
    sx->pipe_out = p;
    dx->pipe_in = p;
    src->handle.flags |= ZEV__TCP_PIPE_SRC;
    if (zev__tcp_wq_pressure(dst) > dx->hwm) return 0; /* wait for drain */
    /* A connecting source starts reading once connected. An idle one (never connected)
     * keeps the pipe and reads once the user starts it after connecting. Any other refusal
     * undoes the pipe: a failed call changes nothing. */
    int err = zev_tcp_read_start(src);
    if (err == -ENOTCONN) return 0;
    if (err < 0) zev_tcp_unpipe(p);
    return err;
}

/* While p is piped both sockets have their extra state: only close frees it, and close
 * unpipes first. */
int zev_tcp_unpipe(zev_tcp_pipe_t *p) {
    if (!p || !p->src || !p->dst) return -EINVAL;
    p->src->extra->pipe_out = NULL;
    p->src->handle.flags &= ~ZEV__TCP_PIPE_SRC;
    zev__tcp_ring_read_mode(p->src, true); /* back to the user's buffer, if one is set */
    p->dst->extra->pipe_in = NULL;
    p->src = p->dst = NULL;
    return 0;
}
