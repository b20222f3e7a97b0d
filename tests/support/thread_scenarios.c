/* tests/support/thread_scenarios.c: see thread_scenarios.h. */
#include "thread_scenarios.h"

#include "zev.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

struct pingpong {
    zev_async_t async;
    atomic_int sent;
    atomic_int seen;
    int rounds;
};

static void *ping_sender(void *arg) {
    struct pingpong *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        while (atomic_load(&p->seen) < i) sched_yield();
        atomic_fetch_add(&p->sent, 1);
        zev_async_send(&p->async);
    }
    return NULL;
}

static void on_ping(zev_async_t *a) {
    struct pingpong *p = a->handle.data;
    int seen = atomic_load(&p->sent);
    atomic_store(&p->seen, seen);
    if (seen == p->rounds) zev_close(&a->handle, NULL);
}

const char *zt_async_pingpong(int rounds) {
    zev_loop_t loop;
    struct pingpong p = {.rounds = rounds};
    const char *err = NULL;
    atomic_init(&p.sent, 0);
    atomic_init(&p.seen, 0);
    if (zev_loop_init(&loop) != 0) return "loop init failed";
    zev_async_init(&loop, &p.async, on_ping);
    p.async.handle.data = &p;
    pthread_t th;
    if (pthread_create(&th, NULL, ping_sender, &p) != 0) return "pthread_create failed";
    if (zev_run(&loop, ZEV_RUN_DEFAULT) != 0) err = "run failed";
    pthread_join(th, NULL);
    if (!err && atomic_load(&p.seen) != rounds) err = "a wake-up was lost";
    if (zev_loop_close(&loop) != 0 && !err) err = "loop close failed";
    return err;
}

#define STORM_MAX_THREADS 16

struct storm {
    zev_async_t async;
    atomic_int done_threads;
    pthread_t threads[STORM_MAX_THREADS];
    int n_threads;
    int sends;
    int callbacks;
};

static void *storm_sender(void *arg) {
    struct storm *s = arg;
    for (int i = 0; i < s->sends; i++) zev_async_send(&s->async);
    /* Count first, then send: the callback this send causes is sure to see the count. */
    atomic_fetch_add(&s->done_threads, 1);
    zev_async_send(&s->async);
    return NULL;
}

static void on_storm(zev_async_t *a) {
    struct storm *s = a->handle.data;
    s->callbacks++;
    if (atomic_load(&s->done_threads) < s->n_threads) return;
    /* Join before closing: no thread may still be inside zev_async_send on this handle. */
    for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i], NULL);
    zev_close(&a->handle, NULL);
}

const char *zt_async_storm(int threads, int sends) {
    if (threads > STORM_MAX_THREADS) return "too many threads";
    zev_loop_t loop;
    struct storm s = {.n_threads = threads, .sends = sends};
    const char *err = NULL;
    atomic_init(&s.done_threads, 0);
    if (zev_loop_init(&loop) != 0) return "loop init failed";
    zev_async_init(&loop, &s.async, on_storm);
    s.async.handle.data = &s;
    for (int i = 0; i < threads; i++) pthread_create(&s.threads[i], NULL, storm_sender, &s);
    /* Returns only once the callback saw every thread's final send. */
    if (zev_run(&loop, ZEV_RUN_DEFAULT) != 0) err = "run failed";
    if (!err && s.callbacks == 0) err = "no callback ran";
    if (!err && s.callbacks >= threads * (sends + 1)) err = "sends did not coalesce";
    if (zev_loop_close(&loop) != 0 && !err) err = "loop close failed";
    return err;
}
