/* examples/zev-tcp-client.c: connect, send stdin, print what comes back (a small netcat).
 *
 * zev has no watcher for arbitrary descriptors, and a blocking read of stdin inside a
 * callback would stall the loop, so a helper thread reads stdin. It reads each chunk into its
 * own malloc'd buffer and hands it over through a mutex-protected queue and an async handle
 * (zev_async_send, the one thread-safe call). The loop writes the chunk by reference and
 * frees it in the write callback. At most MAX_IN_FLIGHT chunks exist at once: the reader
 * waits for a write to finish before reading more, so a slow server slows the reader down
 * instead of filling memory. At stdin's EOF the client half-closes (zev_tcp_end) and keeps
 * printing until the server ends its side too; then it exits 0. Received bytes go to stdout
 * with blocking writes: a slow stdout slows the connection down the same way.
 *
 * Command line: docs/tcp.md.
 */
#include <zev.h>

#include "cli.h"
#include "list.h"
#include "shutdown.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char usage[] =
    "usage: zev-tcp-client --host ADDR --port N\n"
    "\n"
    "Connect to ADDR:N, send stdin, and print everything received to stdout. At the end of\n"
    "stdin the sending side is shut down; the program exits 0 once the server has closed\n"
    "its side too, or 1 with the error.\n"
    "\n"
    "  --host ADDR   numeric IPv4 or IPv6 address of the server (default 127.0.0.1)\n"
    "  --port N      port of the server, 1..65535 (default 8431)\n"
    "  --help        show this help\n";

#define CHUNK_SIZE (64 * 1024)
#define MAX_IN_FLIGHT 4

struct chunk {
    struct chunk *next;
    size_t len;
    char data[CHUNK_SIZE];
};

/* The reader thread's hand-off to the loop. Fields under mu unless noted. */
struct feed {
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* in_flight fell, or stop was set */
    struct chunk *head; /* read and not yet taken by the loop */
    struct chunk *tail;
    unsigned in_flight; /* chunks allocated and not yet freed */
    int done;           /* the reader is finished: EOF, or err */
    int err;            /* a read error (negative errno), or 0 */
    int stop;           /* the loop no longer wants data */
    zev_async_t async;  /* loop thread only, except zev_async_send */
    pthread_t thread;   /* loop thread only */
    int running;        /* loop thread only: thread started and not joined */
};

struct client {
    zev_tcp_t tcp;
    struct feed feed;
    char target[EX_HOST_PORT_MAX];
    int status;      /* the exit status */
    int got_end;     /* the server ended its side */
    int got_finish;  /* our side is shut down with everything sent */
    int stdin_ended; /* stdin's EOF (or error) was passed on as zev_tcp_end */
};

/* ---- the reader thread ---------------------------------------------------------------- */

/* Read one chunk; the only point where the thread may be cancelled. */
static ssize_t read_chunk(struct chunk *c) {
    ssize_t n;
    pthread_cleanup_push(free, c);
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    do {
        n = read(STDIN_FILENO, c->data, sizeof(c->data));
    } while (n < 0 && errno == EINTR);
    if (n < 0) n = -errno;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_cleanup_pop(0);
    return n;
}

static void *read_stdin(void *arg) {
    struct feed *f = arg;
    ex_shutdown_block_in_thread();
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    for (;;) {
        pthread_mutex_lock(&f->mu);
        while (f->in_flight >= MAX_IN_FLIGHT && !f->stop) {
            pthread_cond_wait(&f->cv, &f->mu);
        }
        int stop = f->stop;
        if (!stop) f->in_flight++;
        pthread_mutex_unlock(&f->mu);
        if (stop) return NULL;

        struct chunk *c = malloc(sizeof(*c));
        ssize_t n = c ? read_chunk(c) : -ENOMEM;
        pthread_mutex_lock(&f->mu);
        if (n > 0) {
            c->next = NULL;
            c->len = (size_t)n;
            if (f->tail) {
                f->tail->next = c;
            } else {
                f->head = c;
            }
            f->tail = c;
        } else {
            free(c);
            f->in_flight--;
            f->done = 1;
            f->err = (int)n;
        }
        pthread_mutex_unlock(&f->mu);
        zev_async_send(&f->async);
        if (n <= 0) return NULL;
    }
}

/* ---- the loop side -------------------------------------------------------------------- */

static void chunk_free(struct feed *f, struct chunk *c) {
    free(c);
    pthread_mutex_lock(&f->mu);
    f->in_flight--;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Stop the reader (cancelling a read that may never return, a terminal's), join it, drop
 * what it read that was not sent, and close the hand-off. Idempotent. */
static void feed_stop(struct feed *f) {
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->running) {
        pthread_cancel(f->thread);
        pthread_join(f->thread, NULL);
        f->running = 0;
    }
    for (struct chunk *c = f->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    f->head = f->tail = NULL;
    if (!zev_is_closing(&f->async.handle)) zev_close(&f->async.handle, NULL);
}

/* Everything ends here: the connection finished, failed, or a signal came. */
static void client_close(struct client *cl) {
    feed_stop(&cl->feed);
    ex_shutdown_close();
    if (!zev_is_closing(&cl->tcp.handle)) zev_close(&cl->tcp.handle, NULL);
}

static void client_fail(struct client *cl, int err, const char *what) {
    ex_warn(err, "%s", what);
    cl->status = EX_EXIT_FAILURE;
    client_close(cl);
}

static void on_written(zev_tcp_t *t, int status, void *arg) {
    (void)status; /* a failed write also fails the connection: the error event reports it */
    struct client *cl = ex_container_of(t, struct client, tcp);
    chunk_free(&cl->feed, arg);
}

static void on_stdin(zev_async_t *a) {
    struct client *cl = ex_container_of(a, struct client, feed.async);
    struct feed *f = &cl->feed;
    pthread_mutex_lock(&f->mu);
    struct chunk *c = f->head;
    f->head = f->tail = NULL;
    int done = f->done;
    int err = f->err;
    pthread_mutex_unlock(&f->mu);

    while (c) {
        struct chunk *next = c->next;
        zev_slice_t s = zev_slice(c->data, c->len);
        /* -EPIPE once the server ended first and zev ended our side: drop the rest. */
        if (zev_tcp_write(&cl->tcp, &s, 1, on_written, c) < 0) chunk_free(f, c);
        c = next;
    }
    if (!done || cl->stdin_ended) return;
    cl->stdin_ended = 1;
    if (err < 0) {
        client_fail(cl, err, "read stdin");
        return;
    }
    zev_tcp_end(&cl->tcp);
    feed_stop(f); /* the reader has returned or is returning: join it now */
}

static int write_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) { /* a non-blocking stdout we inherited */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, -1);
            continue;
        }
        if (n < 0) return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void on_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    int err = write_all(STDOUT_FILENO, slice->base, slice->len);
    if (err < 0) client_fail(cl, err, "write stdout");
}

/* Done when the server has ended its side and ours is shut down with everything sent
 * (zev ends ours by itself after the server's EOF: allowHalfOpen is off). */
static void on_end(zev_tcp_t *t) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    cl->got_end = 1;
    if (cl->got_finish) client_close(cl);
}

static void on_finish(zev_tcp_t *t) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    cl->got_finish = 1;
    if (cl->got_end) client_close(cl);
}

static void on_error(zev_tcp_t *t, int err) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    char what[EX_HOST_PORT_MAX + 16];
    snprintf(what, sizeof(what), "connection to %s", cl->target);
    client_fail(cl, err, what);
}

static const zev_tcp_events_t client_events = {
    .data = on_data,
    .end = on_end,
    .finish = on_finish,
    .error = on_error,
};

static void on_connect(zev_tcp_t *t, int status) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    if (zev_is_closing(&t->handle)) return; /* closed by a shutdown meanwhile: nothing to do */
    char what[EX_HOST_PORT_MAX + 16];
    snprintf(what, sizeof(what), "connect %s", cl->target);
    if (status < 0) {
        client_fail(cl, status, what);
        return;
    }
    int err = zev_tcp_read_start(t);
    if (err < 0) {
        client_fail(cl, err, what);
        return;
    }
    err = -pthread_create(&cl->feed.thread, NULL, read_stdin, &cl->feed);
    if (err < 0) {
        client_fail(cl, err, "start the stdin thread");
        return;
    }
    cl->feed.running = 1;
}

static void close_everything(void *arg) {
    client_close(arg);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 8431;
    ex_args_t a;
    ex_args_init(&a, argc, argv, usage);
    while (ex_args_next(&a)) {
        if (ex_args_is(&a, "--host")) {
            host = ex_args_host(&a);
        } else if (ex_args_is(&a, "--port")) {
            port = ex_args_port(&a, 1);
        } else {
            ex_args_unknown(&a);
        }
    }
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an EPIPE to report, not a silent death */

    struct client cl = {.feed = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}};
    ex_format_host_port(cl.target, sizeof(cl.target), host, port);

    zev_loop_t loop;
    int err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    err = ex_shutdown_init(&loop, close_everything, &cl);
    if (err < 0) ex_fatal(err, "install signal handlers");
    err = zev_async_init(&loop, &cl.feed.async, on_stdin);
    if (err < 0) ex_fatal(err, "async init");
    zev_unref(&cl.feed.async.handle); /* the connection keeps the loop alive, not stdin */
    zev_tcp_init(&loop, &cl.tcp);
    zev_tcp_set_events(&cl.tcp, &client_events);
    err = zev_tcp_connect(&cl.tcp, host, port, on_connect);
    if (err < 0) ex_fatal(err, "connect %s", cl.target);

    ex_run(&loop);
    return cl.status;
}
