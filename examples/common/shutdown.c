/* examples/common/shutdown.c: SIGINT and SIGTERM as a clean shutdown, and the end of an
 * example's main.
 *
 * Two zev_signal_t handles on the program's loop (include/zev/signal.h) take the signals: zev
 * runs the callback in the loop, on the loop's thread, so the shutdown needs no thread, no
 * signal mask and no code in signal context. The handles stay started (and unref'd) until
 * ex_run has finished: a second signal during the shutdown is heard and ignored, as the
 * first one's work is already under way, instead of killing the process with the default
 * action. There is one loop with signals per program, so the state is one static record.
 */
#include "shutdown.h"

#include "cli.h"

#include <signal.h>

static struct {
    zev_signal_t sigs[2]; /* SIGINT, SIGTERM */
    ex_shutdown_cb cb;
    void *arg;
    int n_open;   /* handles initialised and not yet closed */
    int disarmed; /* the shutdown ran, or the program finished on its own */
    int signo;    /* the signal that asked for the shutdown, or 0 */
} shutdown_state;

static const int shutdown_signals[2] = {SIGINT, SIGTERM};

static void release_loop(void) {
    for (int i = 0; i < shutdown_state.n_open; i++) {
        zev_unref(&shutdown_state.sigs[i].handle);
    }
}

static void on_signal(zev_signal_t *sig, int signum) {
    (void)sig;
    if (shutdown_state.disarmed) return; /* already shutting down: the work is under way */
    shutdown_state.disarmed = 1;
    shutdown_state.signo = signum;
    release_loop(); /* from now on only the program's own handles keep the loop going */
    if (shutdown_state.cb) shutdown_state.cb(shutdown_state.arg);
}

int ex_shutdown_init(zev_loop_t *loop, ex_shutdown_cb cb, void *arg) {
    shutdown_state.cb = cb;
    shutdown_state.arg = arg;
    for (int i = 0; i < 2; i++) {
        zev_signal_t *s = &shutdown_state.sigs[i];
        int err = zev_signal_init(loop, s);
        if (err < 0) return err;
        shutdown_state.n_open++;
        zev_unref(&s->handle); /* never keeps the loop alive by itself */
        err = zev_signal_start(s, on_signal, shutdown_signals[i]);
        if (err < 0) return err; /* ex_run (or exit) closes what is open */
    }
    return 0;
}

void ex_shutdown_keep_alive(void) {
    if (shutdown_state.disarmed) return;
    for (int i = 0; i < shutdown_state.n_open; i++) {
        zev_ref(&shutdown_state.sigs[i].handle);
    }
}

int ex_shutdown_signal(void) {
    return shutdown_state.signo;
}

void ex_shutdown_close(void) {
    if (shutdown_state.disarmed) return;
    shutdown_state.disarmed = 1;
    release_loop();
}

/* Close the handles; the last stop puts back the default dispositions. */
static void close_signals(void) {
    for (int i = 0; i < shutdown_state.n_open; i++) {
        zev_close(&shutdown_state.sigs[i].handle, NULL);
    }
    shutdown_state.n_open = 0;
}

void ex_run(zev_loop_t *loop) {
    int err = zev_run(loop, ZEV_RUN_DEFAULT);
    if (err < 0) ex_fatal(err, "run loop");
    ex_shutdown_close();
    close_signals();
    err = zev_run(loop, ZEV_RUN_DEFAULT); /* the close callbacks just made due */
    if (err < 0) ex_fatal(err, "run loop");
    err = zev_loop_close(loop);
    if (err < 0) ex_fatal(err, "close loop");
}
