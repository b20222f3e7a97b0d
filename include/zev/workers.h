/* zev/workers.h: many cores, one loop per thread (docs/design.md, "Threads and scale").
 * Included from <zev.h>.
 *
 * A loop and its handles belong to one thread, so a server uses n cores by running n loops on
 * n threads, each with its own listener on the same port (zev_tcp_listen_opts_t.reuse_port,
 * SO_REUSEPORT: the kernel spreads new connections over the listeners). This file starts and
 * stops such threads; the loops know nothing of each other.
 *
 * Ownership: the caller owns the zev_worker_t array and keeps it in place from
 * zev_workers_start until zev_workers_stop has returned. Nothing is allocated: each worker
 * embeds its loop, its thread id and the stop wake-up. docs/internals.md, "Many cores".
 *
 * Typical use:
 *     static int setup(zev_worker_t *w) { open a listener with reuse_port on &w->loop }
 *     static void on_stop(zev_worker_t *w) { close every handle setup opened }
 *     zev_worker_t workers[4];
 *     zev_workers_start(workers, 4, setup, on_stop, &config);   every listener is bound now
 *     ...
 *     zev_workers_stop(workers, 4);                              all threads joined
 */
#ifndef ZEV_WORKERS_H
#define ZEV_WORKERS_H

#include <pthread.h>

#define ZEV_WORKERS_MAX 1024 /* most workers one zev_workers_start may run */

typedef struct zev_worker_s zev_worker_t;

/* Runs on the worker's thread, on its new loop, before the loop runs: open listeners etc. on
 * &w->loop. Return 0, or a negative errno to fail the start; a failing setup must zev_close
 * what it opened (the worker then finishes those closes and closes its loop). */
typedef int (*zev_worker_setup_cb)(zev_worker_t *w);
/* Runs on the worker's thread once zev_workers_stop asks: close every handle setup opened
 * (and what came of them, such as accepted connections). The loop ends when none is left. */
typedef void (*zev_worker_stop_cb)(zev_worker_t *w);

struct zev_worker_s {
    /* public */
    void *data; /* the data given to zev_workers_start; the user's to change */
    /* read-only */
    zev_loop_t loop; /* this worker's loop; loop.data is the user's, per worker */
    unsigned index;  /* 0..n-1 */
    /* private */
    pthread_t thread;
    zev_async_t stop_async; /* unref'd: never keeps the loop alive by itself */
    zev_worker_setup_cb setup;
    zev_worker_stop_cb on_stop;
    pthread_mutex_t lock;   /* guards state and status between the threads */
    pthread_cond_t changed; /* state left STARTING */
    int state;              /* STARTING, RUNNING, FAILED, DONE (src/reactor/workers.c) */
    int status;             /* setup's result, then the loop's first error */
    int joinable;           /* started and not yet joined; the controlling thread's only */
};

/* Start n workers (1..ZEV_WORKERS_MAX; the array needs no initialisation), each a thread running
 * its own loop: the thread inits workers[i].loop, calls setup(&workers[i]), then runs the loop
 * until no handle is left and closes it. Setups run one at a time in index order (worker i's only
 * after worker i-1's returned), so worker 0 may listen on port 0 and publish the bound port
 * through data for the others. Returns once every setup has returned: on 0 every worker is running
 * (or, if it had nothing to do, already finished). If a setup fails, the workers already running
 * are stopped (their on_stop runs on their threads) and joined, and its error is returned;
 * likewise a negative errno from zev_loop_init or pthread_create. on_stop may be NULL for workers
 * whose handles end by themselves. -EINVAL on NULL workers/setup or n out of range. */
ZEV_EXPORT int zev_workers_start(zev_worker_t *workers, unsigned n, zev_worker_setup_cb setup,
                                 zev_worker_stop_cb on_stop, void *data);
/* Ask every worker still running to stop (its on_stop runs on its own thread, through a
 * wake-up) and join all n threads; a worker whose loop already ended is just joined. Returns 0
 * or the first worker's loop error: a zev_run failure, or -EBUSY if a handle was left open when
 * its loop ended (that loop is then left unclosed). -EINVAL on NULL or n out of range; -EBADF,
 * doing nothing, if any of the n was not started or was already joined (a second stop, a stop
 * after a failed start, zeroed workers); -EDEADLK, doing nothing, if called from one of their
 * threads. Call start and stop from one thread (or serialise them). */
ZEV_EXPORT int zev_workers_stop(zev_worker_t *workers, unsigned n);

#endif /* ZEV_WORKERS_H */
