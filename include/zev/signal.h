/* zev/signal.h: signal handles (libuv's uv_signal, Node's process.on('SIGINT'), libev's
 * ev_signal). Included from <zev.h>; docs/embedding.md maps it to Node, libuv and libev and
 * explains the choices.
 *
 * A handle watches one signal number; any number of handles, in one loop or in several loops
 * of the process, may watch the same signal, and every started one hears it. The callback
 * runs in the loop, on the loop's thread, never in signal context. Signals caught before the
 * loop looks coalesce: a handle's callback runs once per iteration that found its signal
 * caught, however many times it arrived; none is lost while the loop is not iterating (the
 * next iteration reports it).
 *
 * How: on epoll builds, while a signal has started handles zev installs its own handler
 * (sigaction, SA_RESTART, every signal blocked while it runs), which marks the signal caught
 * in each loop that wants it and wakes those loops through their async wake-up; on kqueue
 * builds an EVFILT_SIGNAL knote per loop records the signal and zev installs a handler that
 * does nothing (so the default action, often "terminate", does not happen). When the last
 * handle of a signal, over every loop, stops, the disposition found at the first start is put
 * back. zev never changes the signal mask: a signal blocked in every thread is never
 * delivered, so it never reaches a handle; leave it unblocked in at least one thread (any:
 * the handler wakes the loops from whichever thread the kernel picks).
 *
 * Process-wide state (the only in zev): the previous disposition and a handle count per
 * signal, and the list of loops that have started handles, behind a lock-free spinlock that
 * the signal handler also takes (the threads changing it block signals meanwhile). Signal
 * numbers 1..64 are accepted, except those sigaction refuses (SIGKILL, SIGSTOP: -EINVAL).
 */
#ifndef ZEV_SIGNAL_H
#define ZEV_SIGNAL_H

typedef struct zev_signal_s zev_signal_t;
typedef void (*zev_signal_cb)(zev_signal_t *sig, int signum);

struct zev_signal_s {
    zev_handle_t handle;
    /* read-only */
    int signum; /* the signal watched; 0 while stopped */
    /* private */
    int oneshot;
    unsigned pass; /* the loop's dispatch pass that last visited or started it */
    zev_signal_cb cb;
    struct zev__link node; /* in loop->signal_handles while started */
};

/* Initialise a signal handle (stopped). -EINVAL on NULL, -EBADF on a closed loop, -ENOMEM
 * (the loop's handle table, zev/inspect.h). */
ZEV_EXPORT int zev_signal_init(zev_loop_t *loop, zev_signal_t *sig);
/* Run cb in the loop each iteration signum was caught, until stopped; a started handle is
 * moved to the new signal. The first handle of a signal in the process installs zev's
 * handler. -EINVAL on NULL cb or a signal number outside 1..64 or refused by sigaction,
 * -EBADF if closed. */
ZEV_EXPORT int zev_signal_start(zev_signal_t *sig, zev_signal_cb cb, int signum);
/* As zev_signal_start, but the handle stops itself just before its first callback. */
ZEV_EXPORT int zev_signal_start_oneshot(zev_signal_t *sig, zev_signal_cb cb, int signum);
/* Stop the handle; the last stopped handle of a signal puts back the disposition found at the
 * first start. Stopping a stopped handle is fine. -EINVAL on NULL, -EBADF if closed. */
ZEV_EXPORT int zev_signal_stop(zev_signal_t *sig);

#endif /* ZEV_SIGNAL_H */
