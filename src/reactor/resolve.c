/* src/reactor/resolve.c: host names to addresses without blocking the loop (zev_resolve).
 *
 * getaddrinfo blocks (it reads files and may wait seconds for a DNS server), so it runs on a
 * small pool of threads the loop owns: none until the first lookup, then one more each time a
 * job waits with no idle thread, up to RESOLVE_THREADS. Besides the many-loops helper
 * (workers.c), these are the only threads zev ever starts. They block every signal, so a
 * signal meant for the process never lands on them.
 *
 * A job travels: the loop thread queues it (waiting) → a thread takes it and calls
 * getaddrinfo with the lock released → the thread queues the answer (done) and sends the
 * resolver's internal async handle → the loop thread converts the answer and runs the user's
 * callback. Only the job crosses threads, and only under the lock; the user's request never
 * does, so cancelling is a loop-thread affair: the request lets go of its job (job->req =
 * NULL) and gets -ECANCELED from the next async dispatch, while a job still waiting is freed
 * at once and one inside getaddrinfo is freed when it comes back.
 *
 * Shutdown (zev_loop_close) must not block for a lookup nobody wants any more: idle threads
 * are joined; a thread still inside getaddrinfo is detached, and when the call returns it
 * sees `stop`, frees its job and exits. The resolver's state is shared with such threads, so
 * it is reference-counted (the loop plus every live thread) and comes from malloc, as do the
 * jobs: the loop's allocator may be gone by the time a detached thread lets go.
 */
#include "reactor_internal.h"
#include "sys.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

enum { RESOLVE_THREADS = 4, RESOLVE_NAME_MAX = 253 };

struct zev__resolve_job {
    struct zev__link link; /* in waiting or done (under the lock), unlinked while running */
    zev_resolve_t *req;    /* loop thread only: NULL once cancelled or abandoned */
    struct addrinfo *res;  /* the thread's answer */
    int eai;               /* getaddrinfo's return */
    int sys_errno;         /* errno, when eai is EAI_SYSTEM */
    int family;            /* AF_UNSPEC, AF_INET or AF_INET6 */
    bool taken;            /* under the lock: a thread took it off the waiting list */
    char host[];
};

struct resolver_thread {
    struct zev__resolver *r;
    pthread_t tid;
    bool started; /* under the lock */
    bool busy;    /* under the lock: inside getaddrinfo */
};

struct zev__resolver {
    pthread_mutex_t lock;
    pthread_cond_t work;
    /* under the lock */
    struct zev__link waiting;
    struct zev__link done;
    unsigned n_waiting;
    unsigned idle;    /* threads waiting for work */
    unsigned refs;    /* the loop (until it closes) plus every live thread */
    bool stop;        /* the loop closed: send nothing, take nothing */
    struct resolver_thread threads[RESOLVE_THREADS];
    /* loop thread only */
    zev_async_t async;           /* sent when a job is done or a cancel is due */
    struct zev__link cancelled;  /* requests whose -ECANCELED is due */
    unsigned in_flight;          /* requests whose callback is due: keep the loop alive */
};

static void free_job(struct zev__resolve_job *job) {
    if (job->res) zev__sys_freeaddrinfo(job->res);
    free(job);
}

static void release(struct zev__resolver *r) {
    pthread_mutex_lock(&r->lock);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (!last) return;
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->work);
    free(r);
}

static void lookup(struct zev__resolve_job *job) {
    struct addrinfo hints = {.ai_family = job->family, .ai_socktype = SOCK_STREAM};
    job->eai = zev__sys_getaddrinfo(job->host, &hints, &job->res);
    job->sys_errno = job->eai == EAI_SYSTEM ? errno : 0;
    if (job->eai != 0) job->res = NULL;
}

/* Returns with the lock held and a job, or NULL once the loop has stopped the pool. */
static struct zev__resolve_job *next_job(struct zev__resolver *r) {
    while (!r->stop && zev__list_empty(&r->waiting)) {
        r->idle++;
        pthread_cond_wait(&r->work, &r->lock);
        r->idle--;
    }
    if (r->stop) return NULL;
    struct zev__link *node = r->waiting.next;
    zev__list_remove(node);
    r->n_waiting--;
    struct zev__resolve_job *job = zev__container_of(node, struct zev__resolve_job, link);
    job->taken = true;
    return job;
}

static void *thread_main(void *arg) {
    struct resolver_thread *self = arg;
    struct zev__resolver *r = self->r;
    pthread_mutex_lock(&r->lock);
    struct zev__resolve_job *job;
    while ((job = next_job(r)) != NULL) {
        self->busy = true;
        pthread_mutex_unlock(&r->lock);
        lookup(job);
        pthread_mutex_lock(&r->lock);
        self->busy = false;
        if (r->stop) { /* the loop is gone: nobody wants the answer */
            free_job(job);
            break;
        }
        zev__list_push_back(&r->done, &job->link);
        /* Sent under the lock: the loop sets `stop` under it before it closes its wake-up. */
        zev_async_send(&r->async);
    }
    pthread_mutex_unlock(&r->lock);
    release(r);
    return NULL;
}

/* Under the lock: one more thread if a job waits with nobody idle to take it. A failure is
 * fatal only when no thread at all runs (the job would wait forever). */
static int grow(struct zev__resolver *r) {
    if (r->n_waiting <= r->idle) return 0;
    struct resolver_thread *slot = NULL;
    unsigned running = 0;
    for (unsigned i = 0; i < RESOLVE_THREADS; i++) {
        if (r->threads[i].started) {
            running++;
        } else if (!slot) {
            slot = &r->threads[i];
        }
    }
    if (!slot) return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits it */
    *slot = (struct resolver_thread){.r = r};
    int err = pthread_create(&slot->tid, NULL, thread_main, slot);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) return running ? 0 : -err;
    slot->started = true;
    r->refs++;
    return 0;
}

static void on_async(zev_async_t *a);

static struct zev__resolver *resolver_get(zev_loop_t *loop) {
    if (loop->resolver) return loop->resolver;
    struct zev__resolver *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    if (pthread_mutex_init(&r->lock, NULL) != 0) goto free_r;
    if (pthread_cond_init(&r->work, NULL) != 0) goto destroy_lock;
    zev__list_init(&r->waiting);
    zev__list_init(&r->done);
    zev__list_init(&r->cancelled);
    r->refs = 1;
    zev__async_init_internal(loop, &r->async, on_async);
    loop->resolver = r;
    return r;

destroy_lock:
    pthread_mutex_destroy(&r->lock);
free_r:
    free(r);
    return NULL;
}

static void update_in_flight(struct zev__resolver *r, int delta) {
    r->in_flight = (unsigned)((int)r->in_flight + delta);
    zev__handle_set_requests(&r->async.handle, r->in_flight > 0);
}

static int family_of(int family) {
    if (family == 0) return AF_UNSPEC;
    if (family == 4) return AF_INET;
    if (family == 6) return AF_INET6;
    return -1;
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static bool is_name_char(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '_';
}

/* Labels of 1..63 letters, digits, '-' or '_' (found in /etc/hosts files), an optional final
 * dot, and a last label that is not all digits (RFC 1123): so text that merely fails to be an
 * address ("127.0.0.256", "::1::2") is refused here and never reaches a DNS server. */
bool zev__resolve_name_valid(const char *host) {
    size_t label = 0;
    bool numeric = true;
    size_t i = 0;
    for (; host[i]; i++) {
        if (i >= RESOLVE_NAME_MAX) return false;
        if (host[i] == '.') {
            if (label == 0) return false;
            if (host[i + 1] == '\0') break; /* the root's dot */
            label = 0;
            numeric = true;
            continue;
        }
        if (!is_name_char(host[i]) || ++label > 63) return false;
        numeric = numeric && is_digit(host[i]);
    }
    return i > 0 && !numeric;
}

int zev_resolve(zev_loop_t *loop, zev_resolve_t *req, const char *host, int port, int family,
                zev_resolve_cb cb) {
    if (!loop || !req || !host || !cb || port < 0 || port > 65535) return -EINVAL;
    if (family_of(family) < 0) return -EINVAL;
    if (!zev_ip_family(host) && !zev__resolve_name_valid(host)) return -EINVAL;
    size_t len = strlen(host);
    if (!zev__loop_usable(loop)) return -EBADF;
    struct zev__resolver *r = resolver_get(loop);
    if (!r) return -ENOMEM;
    struct zev__resolve_job *job = malloc(sizeof(*job) + len + 1);
    if (!job) return -ENOMEM;
    *job = (struct zev__resolve_job){.req = req, .family = family_of(family)};
    memcpy(job->host, host, len + 1); /* zero-copy-ok: a host name, not payload */

    pthread_mutex_lock(&r->lock);
    zev__list_push_back(&r->waiting, &job->link);
    r->n_waiting++;
    int err = grow(r);
    if (err < 0) {
        zev__list_remove(&job->link);
        r->n_waiting--;
    } else {
        pthread_cond_signal(&r->work);
    }
    pthread_mutex_unlock(&r->lock);
    if (err < 0) {
        free(job);
        return err;
    }
    *req = (zev_resolve_t){.data = req->data, .loop = loop, .cb = cb, .job = job, .port = port};
    zev__list_init(&req->cancelled);
    update_in_flight(r, 1);
    return 0;
}

/* Let go of req's job: freed now if no thread took it, else by whoever sees it next. */
static void detach_job(struct zev__resolver *r, zev_resolve_t *req) {
    struct zev__resolve_job *job = req->job;
    req->job = NULL;
    job->req = NULL;
    pthread_mutex_lock(&r->lock);
    bool waiting = !job->taken;
    if (waiting) {
        zev__list_remove(&job->link);
        r->n_waiting--;
    }
    pthread_mutex_unlock(&r->lock);
    if (waiting) free_job(job);
}

int zev_resolve_cancel(zev_resolve_t *req) {
    if (!req || !req->loop) return -EINVAL;
    if (!req->job) return -EALREADY;
    struct zev__resolver *r = req->loop->resolver;
    detach_job(r, req);
    zev__list_push_back(&r->cancelled, &req->cancelled);
    zev_async_send(&r->async);
    return 0;
}

void zev__resolve_abandon(zev_resolve_t *req) {
    if (!req->job) return;
    struct zev__resolver *r = req->loop->resolver;
    detach_job(r, req);
    update_in_flight(r, -1);
}

/* getaddrinfo's codes as zev errors (zev.h: outside the errno range, or an errno). */
static int eai_error(int eai, int sys_errno) {
    switch (eai) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#if defined(EAI_ADDRFAMILY) && (!defined(EAI_NODATA) || EAI_ADDRFAMILY != EAI_NODATA)
    case EAI_ADDRFAMILY:
#endif
        return -ZEV_EAI_NONAME;
    case EAI_AGAIN:
        return -ZEV_EAI_AGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : -ZEV_EAI_FAIL;
    case EAI_BADFLAGS:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE:
        return -EINVAL;
    default:
        return -ZEV_EAI_FAIL;
    }
}

static size_t count_addrs(const struct addrinfo *ai) {
    size_t n = 0;
    for (; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) n++;
    }
    return n;
}

/* Run req's callback with the job's answer, as an array from the loop's allocator. */
static void deliver(zev_loop_t *loop, zev_resolve_t *req, const struct zev__resolve_job *job) {
    int status = job->eai ? eai_error(job->eai, job->sys_errno) : 0;
    size_t n = status == 0 ? count_addrs(job->res) : 0;
    if (status == 0 && n == 0) status = -ZEV_EAI_NONAME;
    zev_sockaddr_t *addrs = n ? zev__alloc(loop, n * sizeof(*addrs)) : NULL;
    if (n && !addrs) {
        status = -ENOMEM;
        n = 0;
    }
    size_t i = 0;
    for (const struct addrinfo *ai = job->res; ai && i < n; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        addrs[i] = (zev_sockaddr_t){0};
        if (ai->ai_family == AF_INET) {
            addrs[i].in4 = *(const struct sockaddr_in *)ai->ai_addr;
            addrs[i].in4.sin_port = htons((uint16_t)req->port);
        } else {
            addrs[i].in6 = *(const struct sockaddr_in6 *)ai->ai_addr;
            addrs[i].in6.sin6_port = htons((uint16_t)req->port);
        }
        i++;
    }
    req->cb(req, status, addrs, n);
    zev__free(loop, addrs, n * sizeof(*addrs));
}

/* Answers first, then cancellations. Any callback may start or cancel lookups: a job whose
 * request let go meanwhile has req NULL and is only freed. */
static void on_async(zev_async_t *a) {
    struct zev__resolver *r = zev__container_of(a, struct zev__resolver, async);
    zev_loop_t *loop = a->handle.loop;
    struct zev__link done;
    pthread_mutex_lock(&r->lock);
    zev__list_move(&r->done, &done);
    pthread_mutex_unlock(&r->lock);
    while (!zev__list_empty(&done)) {
        struct zev__resolve_job *job = zev__container_of(done.next, struct zev__resolve_job, link);
        zev__list_remove(&job->link);
        zev_resolve_t *req = job->req;
        if (req) {
            req->job = NULL;
            update_in_flight(r, -1);
            deliver(loop, req, job);
        }
        free_job(job);
    }
    while (!zev__list_empty(&r->cancelled)) {
        zev_resolve_t *req = zev__container_of(r->cancelled.next, zev_resolve_t, cancelled);
        zev__list_remove(&req->cancelled);
        update_in_flight(r, -1);
        req->cb(req, -ECANCELED, NULL, 0);
    }
}

unsigned zev__resolver_in_flight(const zev_loop_t *loop) {
    return loop->resolver ? loop->resolver->in_flight : 0;
}

int zev__resolver_close(zev_loop_t *loop) {
    struct zev__resolver *r = loop->resolver;
    if (!r) return 0;
    if (r->in_flight > 0) return -EBUSY;
    struct zev__link done;
    bool join[RESOLVE_THREADS];
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    zev__list_move(&r->done, &done);
    for (unsigned i = 0; i < RESOLVE_THREADS; i++) {
        join[i] = r->threads[i].started && !r->threads[i].busy;
        /* A busy thread is inside getaddrinfo, maybe for seconds: let it finish alone. */
        if (r->threads[i].started && r->threads[i].busy) pthread_detach(r->threads[i].tid);
    }
    pthread_cond_broadcast(&r->work);
    pthread_mutex_unlock(&r->lock);
    for (unsigned i = 0; i < RESOLVE_THREADS; i++) {
        if (join[i]) pthread_join(r->threads[i].tid, NULL);
    }
    while (!zev__list_empty(&done)) { /* answers of cancelled lookups, not yet looked at */
        struct zev__resolve_job *job = zev__container_of(done.next, struct zev__resolve_job, link);
        zev__list_remove(&job->link);
        free_job(job);
    }
    zev__async_forget(&r->async);
    loop->resolver = NULL;
    release(r);
    return 0;
}
