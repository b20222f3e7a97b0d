/* src/reactor/wake.h: the eventfd / self-pipe wake-up channel (wake.c), for backends that
 * have no kernel-native user event. */
#ifndef ZEV_WAKE_H
#define ZEV_WAKE_H

#include "reactor_internal.h"

/* Open loop->backend->wake_fds and start loop->wake.io on the read side. Undone on failure. */
int zev__wake_start(zev_loop_t *loop);
void zev__wake_close(zev_loop_t *loop);
/* Thread-safe: make the read side readable. */
int zev__wake_signal(zev_loop_t *loop);
/* Consume every pending wake-up. */
void zev__wake_drain(zev_loop_t *loop);

#endif /* ZEV_WAKE_H */
