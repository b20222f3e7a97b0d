/* src/reactor/budget.c: the fairness budget, the one mechanism that keeps any single phase of
 * an iteration short, whoever does the work (TCP reads and writes, accepts, UDP batches).
 *
 * Two limits, both in reactor_internal.h with the reasons for their values (and in
 * docs/internals.md, "Fairness"):
 * - per owner and turn, a quantum of cost (bytes moved plus a fixed cost per operation): an
 *   owner that spends it yields (zev__watcher_yield) and waits behind the others;
 * - per phase (the pending phase, the dispatch of a poll's events), a time slice and a byte
 *   cap: once either is used up, owners stop at their next operation, and ready watchers the
 *   dispatch has not reached yet are fed to the pending queue instead of run (poll.c).
 * Spending is a few additions (reactor_internal.h, inline); the clock is read here only
 * after every ZEV__BUDGET_CHECK_BYTES of cost, so an iteration that does little never reads
 * it at all, and a busy one reads it about once per two 64 KiB reads or 32 small messages.
 */
#include "reactor_internal.h"

void zev__budget_begin(zev_loop_t *loop, uint64_t now_ns) {
    loop->budget = (struct zev__budget){
        .deadline_ns = now_ns + ZEV__BUDGET_SLICE_NS,
        .next_check = ZEV__BUDGET_CHECK_BYTES,
    };
}

void zev__budget_check(zev_loop_t *loop) {
    struct zev__budget *b = &loop->budget;
    b->next_check = b->spent + ZEV__BUDGET_CHECK_BYTES;
    if (b->spent >= ZEV__BUDGET_PHASE_BYTES || zev_hrtime() >= b->deadline_ns) b->over = 1;
}
