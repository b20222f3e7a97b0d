/* tests/test_fdwatch.c: zev_fdwatch_t, the watcher for descriptors the user owns, on pipes and
 * socketpairs: the level-triggered contract (a descriptor left unread keeps firing, a drained
 * one stops), edge mode, hang-up and errors, changing events and stopping or closing inside
 * the callback, a descriptor closed after stop, ref/unref, -EEXIST and -EBADF. */
#include "zt.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(fdwatch, .init = zt_setup, .fini = zt_teardown, .timeout = 10);

enum action { NOTHING, DRAIN, STOP, CLOSE, ONLY_READABLE, CLOSE_OTHER, TO_EDGE };

struct probe {
    zev_fdwatch_t w;
    int calls;
    unsigned last;
    unsigned seen; /* every event reported since the test reset it */
    enum action action;
    struct probe *other;
    int closed;
};

static void on_events(zev_fdwatch_t *w, unsigned events) {
    struct probe *p = (struct probe *)w;
    p->calls++;
    p->last = events;
    p->seen |= events;
    char buf[256];
    switch (p->action) {
    case NOTHING:
        break;
    case DRAIN:
        while (read(zev_fdwatch_fd(w), buf, sizeof(buf)) > 0) {
        }
        break;
    case STOP:
        cr_assert_eq(zev_fdwatch_stop(w), 0);
        break;
    case CLOSE:
        w->handle.data = &p->closed;
        cr_assert_eq(zev_close(&w->handle, zt_count_close), 0);
        break;
    case ONLY_READABLE:
        cr_assert_eq(zev_fdwatch_start(w, ZEV_FDWATCH_READABLE, on_events), 0);
        break;
    case CLOSE_OTHER:
        p->other->w.handle.data = &p->other->closed;
        cr_assert_eq(zev_close(&p->other->w.handle, zt_count_close), 0);
        break;
    case TO_EDGE:
        cr_assert_eq(zev_fdwatch_start(w, ZEV_FDWATCH_READABLE | ZEV_FDWATCH_EDGE, on_events), 0);
        break;
    }
}

/* One iteration that never blocks; the watcher (referenced and active) makes it poll. */
static void iterate(int n) {
    for (int i = 0; i < n; i++) {
        zev_run(&zt_loop, ZEV_RUN_NOWAIT);
    }
}

static void start(struct probe *p, int fd, unsigned events, enum action action) {
    cr_assert_eq(zev_fdwatch_init(&zt_loop, &p->w, fd), 0);
    p->action = action;
    cr_assert_eq(zev_fdwatch_start(&p->w, events, on_events), 0);
}

static void close_probe(struct probe *p) {
    if (!zev_is_closing(&p->w.handle)) zev_close(&p->w.handle, NULL);
    zt_run();
}

static void make_pipe(int p[2]) {
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void make_pair(int sv[2]) {
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void close_both(int fds[2]) {
    close(fds[0]);
    close(fds[1]);
}

/* ---- when the callback fires again ---- */

Test(fdwatch, a_pipe_left_unread_fires_in_every_iteration) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    start(&p, fds[0], ZEV_FDWATCH_READABLE, NOTHING);
    iterate(3);
    cr_assert_eq(p.calls, 0, "nothing written yet");
    cr_assert_eq(write(fds[1], "x", 1), 1);
    iterate(5);
    cr_assert_eq(p.calls, 5, "level-triggered: once per iteration while data is unread");
    cr_assert_eq(p.last, ZEV_FDWATCH_READABLE);
    close_probe(&p);
    close_both(fds);
}

Test(fdwatch, a_drained_pipe_stops_firing_until_new_data) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    start(&p, fds[0], ZEV_FDWATCH_READABLE, DRAIN);
    cr_assert_eq(write(fds[1], "abc", 3), 3);
    iterate(4);
    cr_assert_eq(p.calls, 1, "drained in the first callback");
    cr_assert_eq(write(fds[1], "d", 1), 1);
    iterate(4);
    cr_assert_eq(p.calls, 2);
    close_probe(&p);
    close_both(fds);
}

Test(fdwatch, edge_mode_fires_once_per_new_data_even_if_left_unread) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    start(&p, fds[0], ZEV_FDWATCH_READABLE | ZEV_FDWATCH_EDGE, NOTHING);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    iterate(4);
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(write(fds[1], "y", 1), 1);
    iterate(4);
    cr_assert_eq(p.calls, 2);
    close_probe(&p);
    close_both(fds);
}

Test(fdwatch, switching_to_edge_mode_in_the_callback_reports_pending_data_once_more) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    start(&p, fds[0], ZEV_FDWATCH_READABLE, TO_EDGE);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    iterate(5);
    /* The level event, then the new edge registration's report of what is already there. */
    cr_assert_eq(p.calls, 2);
    close_probe(&p);
    close_both(fds);
}

/* ---- writable, hang-up, errors, changing events ---- */

Test(fdwatch, writable_fires_while_wanted_and_narrowing_in_the_callback_stops_it) {
    int sv[2];
    make_pair(sv);
    struct probe p = {0};
    start(&p, sv[0], ZEV_FDWATCH_READABLE | ZEV_FDWATCH_WRITABLE, ONLY_READABLE);
    iterate(4);
    cr_assert_eq(p.calls, 1, "writable once, then only readable is wanted");
    cr_assert_eq(p.last, ZEV_FDWATCH_WRITABLE);
    p.action = NOTHING;
    cr_assert_eq(write(sv[1], "x", 1), 1);
    iterate(1);
    cr_assert_eq(p.calls, 2);
    cr_assert_eq(p.last, ZEV_FDWATCH_READABLE);
    cr_assert_eq(zev_fdwatch_start(&p.w, ZEV_FDWATCH_READABLE | ZEV_FDWATCH_WRITABLE, on_events),
                 0);
    for (int i = 0; i < 2; i++) {
        p.seen = 0;
        iterate(1);
        /* epoll reports both in one callback; kqueue has a filter per direction, so two. */
        cr_assert_eq(p.seen, ZEV_FDWATCH_READABLE | ZEV_FDWATCH_WRITABLE,
                     "widened again: readable and writable in each iteration");
    }
    close_probe(&p);
    close_both(sv);
}

Test(fdwatch, a_peer_hang_up_is_disconnect_and_readable_until_stopped) {
    int sv[2];
    make_pair(sv);
    struct probe p = {0};
    start(&p, sv[0], ZEV_FDWATCH_READABLE | ZEV_FDWATCH_DISCONNECT, NOTHING);
    iterate(2);
    cr_assert_eq(p.calls, 0);
    close(sv[1]);
    iterate(3);
    cr_assert_eq(p.calls, 3, "a hang-up holds: level-triggered, it fires every iteration");
    cr_assert(p.last & ZEV_FDWATCH_DISCONNECT);
    cr_assert(p.last & ZEV_FDWATCH_READABLE);
    char c;
    cr_assert_eq(read(sv[0], &c, 1), 0, "the callback's read meets the EOF");
    cr_assert_eq(zev_fdwatch_stop(&p.w), 0);
    iterate(2);
    cr_assert_eq(p.calls, 3);
    close_probe(&p);
    close(sv[0]);
}

Test(fdwatch, disconnect_is_not_reported_unless_wanted) {
    int sv[2];
    make_pair(sv);
    struct probe p = {0};
    start(&p, sv[0], ZEV_FDWATCH_READABLE, STOP);
    close(sv[1]);
    iterate(2);
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.last, ZEV_FDWATCH_READABLE, "the EOF is readable, the hang-up not asked for");
    close_probe(&p);
    close(sv[0]);
}

Test(fdwatch, a_pipe_whose_writer_closed_is_readable_for_the_eof) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    start(&p, fds[0], ZEV_FDWATCH_READABLE, STOP);
    close(fds[1]);
    iterate(2);
    cr_assert_eq(p.calls, 1);
    cr_assert(p.last & ZEV_FDWATCH_READABLE);
    close_probe(&p);
    close(fds[0]);
}

Test(fdwatch, a_pipe_whose_reader_is_gone_is_writable_so_the_write_meets_epipe) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    start(&p, fds[1], ZEV_FDWATCH_WRITABLE, STOP);
    close(fds[0]);
    iterate(2);
    cr_assert_eq(p.calls, 1);
    cr_assert(p.last & ZEV_FDWATCH_WRITABLE);
    cr_assert_eq(p.last & ~(unsigned)(ZEV_FDWATCH_WRITABLE | ZEV_FDWATCH_ERROR), 0,
                 "nothing unwanted but the error bit (epoll reports EPOLLERR here)");
    close_probe(&p);
    close(fds[1]);
}

/* ---- stop and close from callbacks ---- */

Test(fdwatch, stop_inside_the_callback_ends_the_callbacks) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    start(&p, fds[0], ZEV_FDWATCH_READABLE, STOP);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    iterate(3);
    cr_assert_eq(p.calls, 1);
    cr_assert_not(zev_is_active(&p.w.handle));
    p.action = NOTHING;
    cr_assert_eq(zev_fdwatch_start(&p.w, ZEV_FDWATCH_READABLE, on_events), 0);
    iterate(1);
    cr_assert_eq(p.calls, 2, "restarted: the unread byte is reported again");
    close_probe(&p);
    close_both(fds);
}

Test(fdwatch, close_inside_the_callback_leaves_the_descriptor_open) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    start(&p, fds[0], ZEV_FDWATCH_READABLE, CLOSE);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    zt_run();
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.closed, 1);
    cr_assert_geq(fcntl(fds[0], F_GETFD), 0, "zev never closes the user's descriptor");
    close_both(fds);
}

Test(fdwatch, a_callback_closing_another_ready_watcher_keeps_its_event_from_it) {
    int a[2];
    int b[2];
    make_pipe(a);
    make_pipe(b);
    struct probe pa = {0};
    struct probe pb = {0};
    start(&pa, a[0], ZEV_FDWATCH_READABLE, CLOSE_OTHER);
    start(&pb, b[0], ZEV_FDWATCH_READABLE, CLOSE_OTHER);
    pa.other = &pb;
    pb.other = &pa;
    cr_assert_eq(write(a[1], "x", 1), 1);
    cr_assert_eq(write(b[1], "y", 1), 1);
    iterate(1);
    cr_assert_eq(pa.calls + pb.calls, 1, "whichever ran first closed the other");
    cr_assert_eq(pa.closed + pb.closed, 1);
    close_probe(pa.calls ? &pa : &pb);
    close_both(a);
    close_both(b);
}

Test(fdwatch, a_descriptor_closed_after_stop_is_never_touched_again) {
    int a[2];
    int b[2];
    make_pipe(a);
    struct probe pa = {0};
    start(&pa, a[0], ZEV_FDWATCH_READABLE, NOTHING);
    cr_assert_eq(zev_fdwatch_stop(&pa.w), 0);
    int number = a[0];
    close_both(a);
    /* A new file under the same number, watched by another watcher. */
    make_pipe(b);
    if (b[0] != number) {
        cr_assert_eq(dup2(b[0], number), number);
        close(b[0]);
        b[0] = number;
    }
    struct probe pb = {0};
    start(&pb, b[0], ZEV_FDWATCH_READABLE, DRAIN);
    zev_close(&pa.w.handle, NULL); /* must not deregister the number again */
    cr_assert_eq(write(b[1], "x", 1), 1);
    iterate(2);
    cr_assert_eq(pb.calls, 1, "the new file's registration survived");
    cr_assert_eq(pa.calls, 0);
    close_probe(&pb);
    close_both(b);
}

/* ---- ref, errors ---- */

Test(fdwatch, a_started_watcher_keeps_the_loop_alive_until_unref) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    cr_assert_eq(zev_fdwatch_init(&zt_loop, &p.w, fds[0]), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0, "initialised but not started");
    cr_assert_eq(zev_fdwatch_start(&p.w, ZEV_FDWATCH_READABLE, on_events), 0);
    cr_assert(zev_is_active(&p.w.handle));
    cr_assert_eq(zev_loop_alive(&zt_loop), 1);
    cr_assert_eq(zev_unref(&p.w.handle), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    cr_assert_eq(zev_run(&zt_loop, ZEV_RUN_DEFAULT), 0);
    cr_assert_eq(zev_ref(&p.w.handle), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 1);
    cr_assert_eq(zev_fdwatch_stop(&p.w), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
    close_probe(&p);
    close_both(fds);
}

Test(fdwatch, a_second_watcher_on_the_same_descriptor_is_eexist) {
    int fds[2];
    make_pipe(fds);
    struct probe p = {0};
    struct probe q = {0};
    start(&p, fds[0], ZEV_FDWATCH_READABLE, NOTHING);
    cr_assert_eq(zev_fdwatch_init(&zt_loop, &q.w, fds[0]), 0);
    cr_assert_eq(zev_fdwatch_start(&q.w, ZEV_FDWATCH_READABLE, on_events), -EEXIST);
    cr_assert_not(zev_is_active(&q.w.handle));
    cr_assert_eq(zev_fdwatch_stop(&p.w), 0);
    cr_assert_eq(zev_fdwatch_start(&q.w, ZEV_FDWATCH_READABLE, on_events), 0, "free again");
    zev_close(&p.w.handle, NULL);
    close_probe(&q);
    close_both(fds);
}

Test(fdwatch, a_bad_descriptor_is_ebadf_and_bad_arguments_are_einval) {
    int fds[2];
    make_pipe(fds);
    zev_fdwatch_t w;
    cr_assert_eq(zev_fdwatch_init(&zt_loop, &w, -1), -EBADF);
    cr_assert_eq(zev_fdwatch_init(NULL, &w, fds[0]), -EINVAL);
    cr_assert_eq(zev_fdwatch_init(&zt_loop, NULL, fds[0]), -EINVAL);
    cr_assert_eq(zev_fdwatch_start(NULL, ZEV_FDWATCH_READABLE, on_events), -EINVAL);
    cr_assert_eq(zev_fdwatch_stop(NULL), -EINVAL);
    cr_assert_eq(zev_fdwatch_fd(NULL), -EINVAL);

    cr_assert_eq(zev_fdwatch_init(&zt_loop, &w, fds[0]), 0);
    cr_assert_eq(zev_fdwatch_fd(&w), fds[0]);
    cr_assert_eq(zev_fdwatch_start(&w, ZEV_FDWATCH_READABLE, NULL), -EINVAL);
    cr_assert_eq(zev_fdwatch_start(&w, 0, on_events), -EINVAL);
    cr_assert_eq(zev_fdwatch_start(&w, ZEV_FDWATCH_EDGE, on_events), -EINVAL);
    cr_assert_eq(zev_fdwatch_start(&w, ZEV_FDWATCH_DISCONNECT, on_events), -EINVAL);
    cr_assert_eq(zev_fdwatch_start(&w, ZEV_FDWATCH_READABLE | 0x100, on_events), -EINVAL);
    close_both(fds);
    cr_assert_eq(zev_fdwatch_start(&w, ZEV_FDWATCH_READABLE, on_events), -EBADF,
                 "the descriptor was closed before the start");
    cr_assert_not(zev_is_active(&w.handle));
    cr_assert_eq(zev_close(&w.handle, NULL), 0);
    cr_assert_eq(zev_fdwatch_start(&w, ZEV_FDWATCH_READABLE, on_events), -EBADF);
    cr_assert_eq(zev_fdwatch_stop(&w), -EBADF);
    zt_run();
    int closed_number = fds[0];
    cr_assert_eq(zev_fdwatch_init(&zt_loop, &w, closed_number), -EBADF);
}
