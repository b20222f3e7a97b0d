/* src/reactor/trim.c: giving idle memory back to the allocator.
 *
 * Pool chunks and slab blocks are kept for reuse so that steady state allocates nothing; kept
 * for ever, a burst would leave the process at its peak. Which memory is idle is a question of
 * time, not of count: a UDP socket takes a whole batch of chunks per receive pass and gives
 * them all back, so its use swings from none to 32 chunks many times a second, and any count
 * watermark inside that swing would allocate and free on every pass. So once per interval
 * (zev_loop_options_t.idle_ms, 1 s by default) the loop looks at what was never needed during
 * it: chunks that stayed idle the whole interval go back, down to a floor of 1 MiB of chunks
 * (buf.c); a slab whose use stayed under a quarter of its capacity frees its wholly free
 * blocks, keeping room for twice its peak (slab.c). That is the hysteresis: use that comes
 * back within an interval finds its memory still there, and only memory unused for a full
 * interval costs an allocation when it is wanted again.
 *
 * The timer is a bare heap node, armed when idle chunks pass the floor or a slab's use falls
 * under a quarter of its capacity, and again after a trim only while that still holds. It
 * never keeps zev_run going; a quiet loop wakes a few times after a burst, then sleeps.
 */
#include "reactor_internal.h"
#include "ring.h"

static void trim_fire(zev_loop_t *loop, struct zev__timer_node *n) {
    bool more = zev__buf_pool_trim(loop);
    more |= zev__slab_trim(&loop->slab);
    more |= zev__slab_trim(&loop->slab_large);
    more |= zev__ring_bufs_trim(loop); /* io_uring: receive chunks lent to the kernel */
    if (more) zev__timer_node_start(loop, n, loop->trim_ms);
}

void zev__trim_init(zev_loop_t *loop, unsigned idle_ms) {
    loop->trim_ms = idle_ms ? idle_ms : ZEV__TRIM_MS;
    loop->trim_node.fire = trim_fire;
}

void zev__trim_arm(zev_loop_t *loop) {
    if (!zev__timer_node_armed(loop, &loop->trim_node))
        zev__timer_node_start(loop, &loop->trim_node, loop->trim_ms);
}
