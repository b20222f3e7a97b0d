/* examples/common/shutdown.h: SIGINT and SIGTERM as a clean shutdown, and the end of main.
 *
 * Two signal handles (zev_signal_t) on the program's loop take the signals; their callback
 * runs on the loop's thread, where the work (closing listeners and connections) belongs. The
 * handles are unref'd: they never keep the loop alive by themselves, so zev_run() returns as
 * soon as the program's own handles are closed. No thread is started and the signal mask is
 * left alone. Flag parsing and messages live in cli.h.
 *
 * Typical use:
 *     ex_shutdown_init(&loop, close_everything, &server);   before "listening on"
 *     ex_run(&loop);                                         returns once all is closed
 *     return 0;
 */
#ifndef EX_SHUTDOWN_H
#define EX_SHUTDOWN_H

#include <zev.h>

typedef void (*ex_shutdown_cb)(void *arg);

/* Catch SIGINT and SIGTERM: the first one runs cb(arg) on the loop's thread, where it should
 * close every handle the program opened; later ones are ignored. Call once, before printing
 * "listening on". 0, or a negative errno. */
int ex_shutdown_init(zev_loop_t *loop, ex_shutdown_cb cb, void *arg);
/* Make the signal handles keep the loop alive until a signal came: for a main loop that has
 * nothing else to wait for, because the work runs on other threads (zev_workers). */
void ex_shutdown_keep_alive(void);
/* The signal that asked for the shutdown, or 0 if none came. */
int ex_shutdown_signal(void);
/* Stop acting on signals: for a program that finishes on its own (a client whose connection
 * ended). Idempotent; later signals are then ignored until ex_run returns. */
void ex_shutdown_close(void);
/* Run the loop until nothing is left, close the signal handles (the default dispositions are
 * back), run the last close callbacks and close the loop. Prints the error and exits 1 if the
 * loop fails or a handle was left open. */
void ex_run(zev_loop_t *loop);

#endif /* EX_SHUTDOWN_H */
