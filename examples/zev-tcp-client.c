/* examples/zev-tcp-client.c: connect, send stdin, print what comes back (a small netcat).
 *
 * One thread, one loop. stdin is watched with a zev_fdwatch_t: each time it is readable one
 * chunk is read into a pool buffer (zev_buf_get) and written to the socket by reference, so
 * nothing is copied. A regular file or /dev/null cannot be watched (epoll refuses them with
 * EPERM at the start; kqueue's refusal arrives as an error event), and is always ready
 * anyway: then a zero timer reads one chunk per loop iteration, so a large file never holds
 * the loop for long. Either way reading stdin pauses while the
 * socket's write queue is over its high-water mark and resumes on the drain event. At stdin's
 * EOF the client half-closes (zev_tcp_end) and keeps printing until the server ends its side.
 *
 * Received bytes go to stdout. When stdout is a pipe or a socket it is made non-blocking (and
 * put back at exit): what it does not take at once stays in the received slice (one buffer
 * reference), reading the socket stops, and a second fdwatch waits for stdout to be writable.
 * So a reader that stops reading stops the server's data at the kernel's buffers, and the
 * loop stays free (a signal still ends the program). A terminal or a file is written with
 * blocking writes, as cat does.
 *
 * The server's EOF ends our side too (zev does it after flushing, allowHalfOpen being off);
 * the program exits 0 once both sides are shut down and stdout has everything.
 *
 * Command line: docs/tcp.md.
 */
#include <zev.h>

#include "cli.h"
#include "list.h"
#include "shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: zev-tcp-client --host HOST --port N\n"
    "\n"
    "Connect to HOST:N, send stdin, and print everything received to stdout. At the end of\n"
    "stdin the sending side is shut down; the program exits 0 once the server has closed\n"
    "its side too, or 1 with the error. SIGINT or SIGTERM closes the connection and exits 0.\n"
    "\n"
    "  --host HOST   the server: a numeric IPv4 or IPv6 address, or a host name (its IPv6\n"
    "                and IPv4 addresses are tried as Happy Eyeballs does; default 127.0.0.1)\n"
    "  --port N      port of the server, 1..65535 (default 8431)\n"
    "  --help        show this help\n";

enum in_mode { IN_UNKNOWN, IN_WATCH, IN_TIMER };

struct client {
    zev_loop_t *loop;
    zev_tcp_t tcp;
    zev_fdwatch_t in_watch;  /* stdin readable (IN_WATCH) */
    zev_timer_t in_timer;    /* stdin that cannot be watched: one chunk per iteration */
    zev_fdwatch_t out_watch; /* stdout writable, while out_pending waits */
    zev_slice_t out_pending; /* what stdout did not take yet; its owner is referenced */
    enum in_mode in_mode;
    char target[EX_HOST_PORT_MAX];
    int status;     /* the exit status */
    int connected;  /* the connect succeeded: stdin is wanted */
    int in_paused;  /* the write queue is over its mark: wait for drain */
    int in_done;    /* stdin is finished (EOF passed on as zev_tcp_end) or no longer wanted */
    int got_end;    /* the server ended its side */
    int got_finish; /* our side is shut down with everything sent */
};

/* stdout's file status flags before we made it non-blocking, put back at exit; -1: untouched.
 * A pipe's or a socket's flags belong to the file description, which other processes share. */
static int stdout_saved_flags = -1;

static void restore_stdout(void) {
    if (stdout_saved_flags >= 0) fcntl(STDOUT_FILENO, F_SETFL, stdout_saved_flags);
}

/* Pipes and sockets can be watched: make them non-blocking so a stalled reader never stalls
 * the loop. A terminal or a file is left blocking (the terminal is shared with the shell). */
static void stdout_nonblocking(void) {
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) return;
    int flags = fcntl(STDOUT_FILENO, F_GETFL);
    if (flags < 0 || (flags & O_NONBLOCK)) return;
    if (fcntl(STDOUT_FILENO, F_SETFL, flags | O_NONBLOCK) < 0) return;
    stdout_saved_flags = flags;
    atexit(restore_stdout); /* ex_fatal exits too */
}

static void close_handle(zev_handle_t *h) {
    if (!zev_is_closing(h)) zev_close(h, NULL);
}

/* Everything ends here: the connection finished, failed, or a signal came. */
static void client_close(struct client *cl) {
    ex_shutdown_close();
    close_handle(&cl->in_watch.handle);
    close_handle(&cl->in_timer.handle);
    close_handle(&cl->out_watch.handle);
    zev_buf_unref(cl->out_pending.owner);
    cl->out_pending = (zev_slice_t){0};
    close_handle(&cl->tcp.handle);
}

static void client_fail(struct client *cl, int err, const char *what) {
    ex_warn(err, "%s", what);
    cl->status = EX_EXIT_FAILURE;
    client_close(cl);
}

/* Done once both sides are shut down and stdout took every byte. */
static void maybe_done(struct client *cl) {
    if (cl->got_end && cl->got_finish && !cl->out_pending.owner) client_close(cl);
}

/* ---- stdin to the socket ------------------------------------------------------------------- */

static void on_stdin_readable(zev_fdwatch_t *w, unsigned events);
static void on_stdin_timer(zev_timer_t *timer);

/* Wait for stdin: the watcher if it takes stdin, else the zero timer. 0 or a negative errno. */
static int stdin_wait(struct client *cl) {
    if (cl->in_mode != IN_TIMER) {
        int err = zev_fdwatch_start(&cl->in_watch, ZEV_FDWATCH_READABLE, on_stdin_readable);
        if (err == 0) cl->in_mode = IN_WATCH;
        if (err != -EPERM || cl->in_mode == IN_WATCH) return err;
        cl->in_mode = IN_TIMER; /* a regular file or /dev/null: always ready, read directly */
    }
    return zev_timer_start(&cl->in_timer, on_stdin_timer, 0, 0);
}

static void stdin_stop(struct client *cl) {
    zev_fdwatch_stop(&cl->in_watch);
    zev_timer_stop(&cl->in_timer);
}

static void stdin_resume(struct client *cl) {
    if (!cl->connected || cl->in_done || zev_is_closing(&cl->tcp.handle)) return;
    int err = stdin_wait(cl);
    if (err < 0) client_fail(cl, err, "watch stdin");
}

/* stdin's end: shut down our sending side once the queue is flushed (half-close). */
static void stdin_ended(struct client *cl) {
    cl->in_done = 1;
    stdin_stop(cl);
    int err = zev_tcp_end(&cl->tcp);
    if (err < 0 && err != -EPIPE) client_fail(cl, err, "end the connection");
}

/* Read one chunk of stdin and write it by reference. */
static void stdin_read(struct client *cl) {
    zev_buf_t *b = zev_buf_get(cl->loop);
    if (!b) {
        client_fail(cl, -ENOMEM, "read stdin");
        return;
    }
    ssize_t n;
    do {
        n = read(STDIN_FILENO, b->base, b->size);
    } while (n < 0 && errno == EINTR);
    int err = n < 0 ? -errno : 0;
    zev_slice_t s = {.base = b->base, .len = n > 0 ? (size_t)n : 0, .owner = b};
    int r = n > 0 ? zev_tcp_write(&cl->tcp, &s, 1, NULL, NULL) : 0;
    zev_buf_unref(b); /* the write queue holds its own reference for what it keeps */
    if (err == -EAGAIN) return; /* a non-blocking stdin that was not ready after all */
    if (err < 0) {
        client_fail(cl, err, "read stdin");
    } else if (n == 0) {
        stdin_ended(cl);
    } else if (r == 1) {
        cl->in_paused = 1; /* over the high-water mark: on_drain resumes */
        stdin_stop(cl);
    } else if (r < 0) {
        /* -EPIPE: the server ended first and zev ended our side; stdin is not wanted now. */
        cl->in_done = 1;
        stdin_stop(cl);
    }
}

/* Read one chunk directly and come back next iteration for the next one. */
static void stdin_read_direct(struct client *cl) {
    stdin_read(cl);
    if (!cl->in_done && !cl->in_paused && !zev_is_closing(&cl->in_timer.handle)) {
        zev_timer_start(&cl->in_timer, on_stdin_timer, 0, 0);
    }
}

static void on_stdin_readable(zev_fdwatch_t *w, unsigned events) {
    struct client *cl = ex_container_of(w, struct client, in_watch);
    if (events & ZEV_FDWATCH_ERROR) {
        /* kqueue reports a registration the kernel refused (a file it cannot watch) here,
         * where epoll refused it in zev_fdwatch_start: read it directly from now on. A real
         * error on stdin comes back from the read itself. */
        zev_fdwatch_stop(w);
        cl->in_mode = IN_TIMER;
        stdin_read_direct(cl);
        return;
    }
    stdin_read(cl); /* a hang-up reaches the read as EOF */
}

static void on_stdin_timer(zev_timer_t *timer) {
    stdin_read_direct(ex_container_of(timer, struct client, in_timer));
}

static void on_drain(zev_tcp_t *t) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    if (!cl->in_paused) return;
    cl->in_paused = 0;
    stdin_resume(cl);
}

/* ---- the socket to stdout ------------------------------------------------------------------ */

/* Write as much of *s as stdout takes now; advances s. 0, or a negative errno. */
static int stdout_write(zev_slice_t *s) {
    while (s->len > 0) {
        ssize_t n = write(STDOUT_FILENO, s->base, s->len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0;
        if (n < 0) return -errno;
        s->base += n;
        s->len -= (size_t)n;
    }
    return 0;
}

static void on_stdout_writable(zev_fdwatch_t *w, unsigned events) {
    (void)events; /* a reader that has gone shows as EPIPE from the write */
    struct client *cl = ex_container_of(w, struct client, out_watch);
    int err = stdout_write(&cl->out_pending);
    if (err < 0) {
        client_fail(cl, err, "write stdout");
        return;
    }
    if (cl->out_pending.len > 0) return; /* level-triggered: called again while writable */
    zev_fdwatch_stop(w);
    zev_buf_unref(cl->out_pending.owner);
    cl->out_pending = (zev_slice_t){0};
    if (!cl->got_end) zev_tcp_read_start(&cl->tcp);
    maybe_done(cl);
}

static void on_data(zev_tcp_t *t, const zev_slice_t *slice) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    zev_slice_t rest = *slice;
    int err = stdout_write(&rest);
    if (err == 0 && rest.len > 0) {
        /* stdout is full: keep the rest (the socket's pool buffer) and stop reading until
         * stdout takes it. Reading the socket always delivers pool slices here. */
        rest.owner = zev_buf_ref(rest.owner);
        cl->out_pending = rest;
        zev_tcp_read_stop(t);
        err = rest.owner ? zev_fdwatch_start(&cl->out_watch, ZEV_FDWATCH_WRITABLE,
                                             on_stdout_writable)
                         : -EINVAL;
    }
    if (err < 0) client_fail(cl, err, "write stdout");
}

/* The server ended its side: stdin is no longer wanted; zev ends ours after the flush. */
static void on_end(zev_tcp_t *t) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    cl->got_end = 1;
    cl->in_done = 1;
    stdin_stop(cl);
    maybe_done(cl);
}

static void on_finish(zev_tcp_t *t) {
    struct client *cl = ex_container_of(t, struct client, tcp);
    cl->got_finish = 1;
    maybe_done(cl);
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
    .error = on_error,
    .drain = on_drain,
    .finish = on_finish,
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
    cl->connected = 1;
    stdin_resume(cl);
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
    stdout_nonblocking();

    struct client cl = {0};
    ex_format_host_port(cl.target, sizeof(cl.target), host, port);

    zev_loop_t loop;
    int err = zev_loop_init(&loop);
    if (err < 0) ex_fatal(err, "loop init");
    cl.loop = &loop;
    err = ex_shutdown_init(&loop, close_everything, &cl);
    if (err < 0) ex_fatal(err, "install signal handlers");
    err = zev_fdwatch_init(&loop, &cl.in_watch, STDIN_FILENO);
    if (err < 0) ex_fatal(err, "watch stdin");
    err = zev_fdwatch_init(&loop, &cl.out_watch, STDOUT_FILENO);
    if (err < 0) ex_fatal(err, "watch stdout");
    zev_timer_init(&loop, &cl.in_timer);
    zev_tcp_init(&loop, &cl.tcp);
    zev_tcp_set_events(&cl.tcp, &client_events);
    err = zev_tcp_connect(&cl.tcp, host, port, on_connect); /* a name: looked up, then raced */
    if (err < 0) ex_fatal(err, "connect %s", cl.target);

    ex_run(&loop);
    return cl.status;
}
