/* examples/common/shutdown.c: signals to an async handle, and the end of an example's main.
 *
 * SIGINT and SIGTERM are blocked in every thread and taken by one helper thread with
 * sigwait(), which then calls zev_async_send() like any other thread. No code runs in signal
 * context at all, so nothing here depends on what is async-signal-safe in a given backend.
 * Signal dispositions are process-wide, so the state is too: one static record.
 */
#include "shutdown.h"

#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static struct {
    zev_async_t async;
    ex_shutdown_cb cb;
    void *arg;
    int open;
    int thread_started;
    pthread_t thread;
    atomic_int signo;
    atomic_int stopping;
} shutdown_state;

static void shutdown_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

static void *signal_thread(void *unused) {
    (void)unused;
    sigset_t set;
    shutdown_signals(&set);
    for (;;) {
        int signo = 0;
        if (sigwait(&set, &signo) != 0) continue;
        if (atomic_load(&shutdown_state.stopping)) return NULL;
        int none = 0;
        atomic_compare_exchange_strong(&shutdown_state.signo, &none, signo);
        zev_async_send(&shutdown_state.async); /* -EBADF once closed: nothing to do then */
    }
}

static void on_shutdown(zev_async_t *async) {
    (void)async;
    ex_shutdown_close();
    if (shutdown_state.cb) shutdown_state.cb(shutdown_state.arg);
}

int ex_shutdown_init(zev_loop_t *loop, ex_shutdown_cb cb, void *arg) {
    shutdown_state.cb = cb;
    shutdown_state.arg = arg;
    int err = zev_async_init(loop, &shutdown_state.async, on_shutdown);
    if (err < 0) return err;
    shutdown_state.open = 1;
    zev_unref(&shutdown_state.async.handle);

    /* Blocked here, and so in every thread started from now on; only sigwait() takes them. */
    sigset_t set;
    shutdown_signals(&set);
    err = -pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (err == 0) err = -pthread_create(&shutdown_state.thread, NULL, signal_thread, NULL);
    if (err < 0) {
        ex_shutdown_close();
        return err;
    }
    shutdown_state.thread_started = 1;
    return 0;
}

void ex_shutdown_keep_alive(void) {
    if (shutdown_state.open) zev_ref(&shutdown_state.async.handle);
}

int ex_shutdown_signal(void) {
    return atomic_load(&shutdown_state.signo);
}

void ex_shutdown_close(void) {
    if (!shutdown_state.open) return;
    shutdown_state.open = 0;
    zev_close(&shutdown_state.async.handle, NULL);
}

void ex_shutdown_block_in_thread(void) {
    sigset_t set;
    shutdown_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Wake the signal thread with a signal of its own and wait for it, so no thread can be inside
 * zev_async_send when the loop is closed. */
static void stop_signal_thread(void) {
    if (!shutdown_state.thread_started) return;
    shutdown_state.thread_started = 0;
    atomic_store(&shutdown_state.stopping, 1);
    pthread_kill(shutdown_state.thread, SIGTERM);
    pthread_join(shutdown_state.thread, NULL);
}

void ex_run(zev_loop_t *loop) {
    int err = zev_run(loop, ZEV_RUN_DEFAULT);
    if (err < 0) ex_fatal(err, "run loop");
    ex_shutdown_close();
    stop_signal_thread();
    err = zev_run(loop, ZEV_RUN_DEFAULT); /* the close callbacks just made due */
    if (err < 0) ex_fatal(err, "run loop");
    err = zev_loop_close(loop);
    if (err < 0) ex_fatal(err, "close loop");
}
