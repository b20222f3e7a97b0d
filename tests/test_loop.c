/* tests/test_loop.c: loop life, run modes, stop, alive, time and metrics. */
#include "zt.h"

#include <errno.h>

TestSuite(loop, .init = zt_setup, .fini = zt_teardown, .timeout = 10);

Test(loop, run_with_nothing_to_do_returns_zero_at_once) {
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_ONCE), 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_NOWAIT), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
}
