/* src/reactor/workers.c: n loops on n threads, started and stopped together (zev/workers.h).
 *
 * Each worker thread owns its loop from zev_loop_init to zev_loop_close; what the loops do is
 * the user's setup and stop callbacks' business. Other threads touch only a worker's state and
 * status, under its mutex, and its stop async. The async is sent with that mutex held and only
 * while the state is RUNNING; the worker sets DONE under the same mutex before it closes the
 * async and the loop, so no send can be inside the loop's wake-up when the wake-up descriptor
 * is closed.
 *
 * Why setups run one after another: with SO_REUSEPORT, worker 0 usually binds port 0 and the
 * others must learn the port the kernel picked before they bind it; and a setup that fails
 * (EADDRINUSE) should end the start before more threads are made. Running setup i only after
 * setup i-1 returned gives both with no locking in user code: the hand-off through the mutex
 * makes everything setup i-1 wrote visible to setup i. It costs start-up time only (one thread
 * creation and one setup after another), never throughput.
 */
#include "reactor_internal.h"

#include <errno.h>
#include <pthread.h>

enum {
    WORKER_STARTING = 0, /* thread created, setup not yet returned */
    WORKER_RUNNING,      /* setup succeeded: the loop runs, the stop async may be sent */
    WORKER_FAILED,       /* loop init or setup failed: status holds why */
    WORKER_DONE          /* the loop ended: nobody may send the stop async any more */
};

/* Set the state (and the first error) and wake the starting thread. */
static void publish(zev_worker_t *w, int state, int err) {
    pthread_mutex_lock(&w->lock);
    w->state = state;
    if (err < 0 && w->status == 0) w->status = err;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

static void on_stop_async(zev_async_t *a) {
    zev_worker_t *w = a->handle.data;
    if (w->on_stop) w->on_stop(w);
    zev_close(&a->handle, NULL);
}

/* zev_run returns 1 after a callback's zev_stop: the worker's contract is to run until no
 * handle is left, so run again. */
static int run_until_empty(zev_loop_t *loop) {
    int r;
    do {
        r = zev_run(loop, ZEV_RUN_DEFAULT);
    } while (r > 0);
    return r;
}

/* After the loop ended (or setup failed): close the stop async, finish due close callbacks,
 * close the loop. A loop with a handle still open stays unclosed and reports -EBUSY. */
static int finish(zev_worker_t *w) {
    if (!zev_is_closing(&w->stop_async.handle)) zev_close(&w->stop_async.handle, NULL);
    int err = run_until_empty(&w->loop);
    if (err < 0) return err;
    return zev_loop_close(&w->loop);
}

static void *worker_main(void *arg) {
    zev_worker_t *w = arg;
    int err = zev_loop_init(&w->loop);
    if (err < 0) {
        publish(w, WORKER_FAILED, err);
        return NULL;
    }
    /* Cannot fail on a fresh loop with valid arguments. */
    zev_async_init(&w->loop, &w->stop_async, on_stop_async);
    w->stop_async.handle.data = w;
    zev_unref(&w->stop_async.handle);

    err = w->setup(w);
    if (err < 0) {
        publish(w, WORKER_FAILED, err);
        finish(w); /* the start reports setup's error, not this one */
        return NULL;
    }
    publish(w, WORKER_RUNNING, 0);

    err = run_until_empty(&w->loop);
    publish(w, WORKER_DONE, err);
    publish(w, WORKER_DONE, finish(w));
    return NULL;
}

/* Start worker w's thread and wait until its setup returned. 0, or the setup's (or loop
 * init's, or pthread's) error with the thread joined and nothing left. */
static int start_one(zev_worker_t *w) {
    int err = -pthread_mutex_init(&w->lock, NULL);
    if (err < 0) return err;
    err = -pthread_cond_init(&w->changed, NULL);
    if (err < 0) goto destroy_lock;
    err = -pthread_create(&w->thread, NULL, worker_main, w);
    if (err < 0) goto destroy_cond;

    pthread_mutex_lock(&w->lock);
    while (w->state == WORKER_STARTING) {
        pthread_cond_wait(&w->changed, &w->lock);
    }
    err = w->state == WORKER_FAILED ? w->status : 0;
    pthread_mutex_unlock(&w->lock);
    if (err < 0) {
        pthread_join(w->thread, NULL);
        goto destroy_cond;
    }
    w->joinable = 1;
    return 0;

destroy_cond:
    pthread_cond_destroy(&w->changed);
destroy_lock:
    pthread_mutex_destroy(&w->lock);
    return err;
}

/* Ask all n to stop first, so they shut down in parallel, then join each. Returns the first
 * worker's loop error. */
static int stop_and_join(zev_worker_t *workers, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        zev_worker_t *w = &workers[i];
        pthread_mutex_lock(&w->lock);
        if (w->state == WORKER_RUNNING) zev_async_send(&w->stop_async);
        pthread_mutex_unlock(&w->lock);
    }
    int first_err = 0;
    for (unsigned i = 0; i < n; i++) {
        zev_worker_t *w = &workers[i];
        pthread_join(w->thread, NULL);
        w->joinable = 0;
        if (w->status < 0 && first_err == 0) first_err = w->status; /* joined: no race */
        pthread_cond_destroy(&w->changed);
        pthread_mutex_destroy(&w->lock);
    }
    return first_err;
}

int zev_workers_start(zev_worker_t *workers, unsigned n, zev_worker_setup_cb setup,
                      zev_worker_stop_cb on_stop, void *data) {
    if (!workers || !setup || n == 0 || n > ZEV_WORKERS_MAX) return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        workers[i] = (zev_worker_t){.data = data, .index = i, .setup = setup, .on_stop = on_stop};
    }
    for (unsigned i = 0; i < n; i++) {
        int err = start_one(&workers[i]);
        if (err < 0) {
            stop_and_join(workers, i);
            return err;
        }
    }
    return 0;
}

int zev_workers_stop(zev_worker_t *workers, unsigned n) {
    if (!workers || n == 0 || n > ZEV_WORKERS_MAX) return -EINVAL;
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < n; i++) {
        if (!workers[i].joinable) return -EBADF;
        if (pthread_equal(workers[i].thread, self)) return -EDEADLK;
    }
    return stop_and_join(workers, n);
}
