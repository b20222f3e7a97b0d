/* src/reactor/backend.h: the whole contract between the loop and a kernel readiness API.
 *
 * One backend per build, picked by meson: backend_epoll.c or backend_kqueue.c. A backend knows
 * watchers (fd + wanted events, delivered with zev__watcher_dispatch) and nothing about TCP or
 * UDP. Its state lives in the loop's backend_* fields, sized at init. See docs/internals.md,
 * "Backends".
 */
#ifndef ZEV_BACKEND_H
#define ZEV_BACKEND_H

#include "reactor_internal.h"

/* Create the kernel object and the wake-up channel; register loop->wake.io. */
int zev__backend_init(zev_loop_t *loop);
void zev__backend_close(zev_loop_t *loop);
/* Register w->fd for events (ZEV__READABLE | ZEV__WRITABLE), edge-triggered. Called once per
 * watcher, or again to widen the set. */
int zev__backend_watch(zev_loop_t *loop, struct zev_watcher *w, unsigned events);
/* Forget w, and drop any of its events still waiting in the batch being dispatched. */
void zev__backend_unwatch(zev_loop_t *loop, struct zev_watcher *w);
/* Wait up to timeout_ms (-1: forever, 0: not at all) and run the ready watchers' callbacks.
 * EINTR is retried. Returns the number of events or a negative errno. */
int zev__backend_poll(zev_loop_t *loop, int timeout_ms);
/* Wake a loop blocked in zev__backend_poll. The one thread-safe call. */
int zev__backend_wake(zev_loop_t *loop);
/* "epoll" or "kqueue". */
const char *zev__backend_name(void);

#endif /* ZEV_BACKEND_H */
