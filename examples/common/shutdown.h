/* examples/common/shutdown.h: SIGINT and SIGTERM as a clean shutdown, and the end of main.
 *
 * The signals are blocked in every thread and taken by a helper thread with sigwait(), which
 * sends to an async handle: the work (closing listeners and connections) runs on the loop's
 * thread, and no code runs in signal context. The async is unref'd: it never keeps the loop
 * alive by itself, so zev_run() returns as soon as the program's own handles are closed. Flag
 * parsing and messages live in cli.h.
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
 * close every handle the program opened; the helper closes its own handle first. Call once,
 * before starting threads and before printing "listening on". 0, or a negative errno. */
int ex_shutdown_init(zev_loop_t *loop, ex_shutdown_cb cb, void *arg);
/* Make the helper's handle keep the loop alive until a signal came: for a main loop that has
 * nothing else to wait for, because the work runs on other threads (zev_workers). */
void ex_shutdown_keep_alive(void);
/* The signal that asked for the shutdown, or 0 if none came. */
int ex_shutdown_signal(void);
/* Close the helper's handle if it is still open: for a program that finishes on its own (a
 * client whose connection ended). Idempotent; later signals are then ignored. */
void ex_shutdown_close(void);
/* Block SIGINT and SIGTERM in the calling thread. Threads started after ex_shutdown_init
 * inherit the block already; this is for threads started before it. */
void ex_shutdown_block_in_thread(void);
/* Run the loop until nothing is left, close the helper's handle, run the last close callbacks
 * and close the loop. Prints the error and exits 1 if the loop fails or a handle was left
 * open. */
void ex_run(zev_loop_t *loop);

#endif /* EX_SHUTDOWN_H */
