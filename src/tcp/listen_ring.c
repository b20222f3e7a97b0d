/* src/tcp/listen_ring.c: a listener in completion mode, on the io_uring backend: the kernel
 * accepts (listen.c is the readiness side, and what both share).
 *
 * One multishot accept stays in flight while the listener accepts (ZEV__TCP_ACCEPT_ARMED):
 * the kernel takes each connection as its handshake completes, with no readiness event and no
 * accept4 of zev's, and posts its descriptor. Each result goes through zev__tcp_server_take, as
 * accept4's would, and spends the loop's fairness budget as one accept. The kernel ends the
 * multishot on any error (and when it must, e.g. its CQ overflowed): that result comes without
 * IORING_CQE_F_MORE, and the multishot is armed again if the listener still accepts.
 *
 * Pausing (the backoff of a shortage, an error of the listener itself) cancels it, and the
 * resume arms it again. A cancel is not immediate: descriptors the kernel accepted before it
 * took effect still come, and are served like any other (each is a connection a peer made).
 * Shedding the backlog on EMFILE also sheds what the multishot still brings (a multishot that
 * met EMFILE itself has ended). Closing ends it synchronously (zev__ring_forget): what comes
 * then is closed, never leaked.
 *
 * The peer's address is learnt only when the drop callback needs it (learn_peer): one
 * getpeername per dropped connection, no syscall per accepted one.
 *
 * The fault seam cannot fail an accept the kernel already made, so it fails the attempt
 * before it (zev__fault_result): the error is taken as accept4's would be, and the descriptor,
 * still waiting as a connection in the backlog would, is offered again, shed with the
 * backlog, or held (in pending_fd, ZEV__TCP_ACCEPT_HELD) for the resume or the next turn.
 */
#include "ring.h"
#include "tcp_internal.h"

#include <errno.h>

#ifdef ZEV_HAVE_IO_URING

int zev__tcp_server_ring_start(zev_tcp_server_t *s) {
    int err = zev__ring_accept(s->handle.loop, &s->io);
    if (err < 0) return err;
    s->handle.flags |= ZEV__TCP_RING | ZEV__TCP_ACCEPT_ARMED;
    return 0;
}

static bool ring_accepting(const zev_tcp_server_t *s) {
    unsigned f = s->handle.flags;
    return (f & ZEV__TCP_LISTENING) && !(f & (ZEV__TCP_ACCEPT_PAUSED | ZEV__H_CLOSING));
}

static void ring_cancel(zev_tcp_server_t *s) {
    unsigned f = s->handle.flags;
    if (!(f & ZEV__TCP_ACCEPT_ARMED) || (f & ZEV__TCP_ACCEPT_CANCELLING)) return;
    if (zev__ring_cancel_async(s->handle.loop, &s->io, ZEV__OP_ACCEPT) == 0)
        s->handle.flags |= ZEV__TCP_ACCEPT_CANCELLING;
}

/* on_shortage shed the backlog: descriptors the multishot accepted before the kernel would
 * have failed are part of it. */
void zev__tcp_server_ring_shed(zev_tcp_server_t *s) {
    if (!(s->handle.flags & ZEV__TCP_ACCEPT_ARMED)) return;
    s->handle.flags |= ZEV__TCP_ACCEPT_SHEDDING;
    ring_cancel(s);
}

static void shed_one(zev_tcp_server_t *s, int fd) {
    zev__sys_close(fd);
    s->stats.shed++;
    s->stats.dropped++;
}

/* One slot: a second descriptor failed by the seam while one is held is shed. */
static void hold(zev_tcp_server_t *s, int fd) {
    if (s->handle.flags & ZEV__TCP_ACCEPT_HELD) {
        shed_one(s, fd);
        return;
    }
    s->pending_fd = fd;
    s->handle.flags |= ZEV__TCP_ACCEPT_HELD;
}

/* A descriptor is about to be served: one held is older, and goes first. */
static void serve_held(zev_tcp_server_t *s, size_t *turn) {
    if (!(s->handle.flags & ZEV__TCP_ACCEPT_HELD)) return;
    s->handle.flags &= ~ZEV__TCP_ACCEPT_HELD;
    int fd = s->pending_fd;
    s->pending_fd = -1;
    (void)zev__tcp_server_take(s, fd, false, turn);
}

/* The result of an accept attempt that gave no descriptor. Returns false when the turn is
 * over. */
static bool take_ring_error(zev_tcp_server_t *s, int err, size_t *turn) {
    /* The end of a cancelled or interrupted multishot: nothing happened to a connection. */
    if (err == -ECANCELED || err == -EAGAIN) return true;
    /* Accepted while a shortage pauses the listener (before the cancel took effect): the
     * episode is already handled; a second one would only double the backoff. */
    if (zev__tcp_server_is_shortage(err) && (s->handle.flags & ZEV__TCP_ACCEPT_PAUSED)) return false;
    bool go_on = zev__tcp_server_take(s, err, false, turn);
    /* The listener's own error (not a shortage, not one connection's): arming again at once
     * would fail again at once, so back off, as readiness waits for the next edge. */
    if (!go_on && !zev__tcp_server_is_shortage(err) && ring_accepting(s)) zev__tcp_server_pause(s);
    return go_on && !zev__budget_spend(s->handle.loop, turn, 0);
}

/* A descriptor the kernel accepted (or one held), as if accept4 had just returned it. */
static void offer(zev_tcp_server_t *s, int fd) {
    size_t turn = ZEV__BUDGET_QUANTUM;
    for (bool retry = false;; retry = true) {
        unsigned f = s->handle.flags;
        if (f & (ZEV__H_CLOSING | ZEV__H_CLOSED)) {
            zev__sys_close(fd);
            return;
        }
        if (f & ZEV__TCP_ACCEPT_SHEDDING) {
            shed_one(s, fd);
            return;
        }
        if (retry && !ring_accepting(s)) {
            hold(s, fd);
            return;
        }
        int err = zev__fault_result(ZEV_SYS_ACCEPT, 0);
        if (err == 0) break;
        bool go_on = take_ring_error(s, err, &turn);
        if (zev__tcp_server_is_shortage(err) && ring_accepting(s)) { /* the backlog was shed: this one too */
            shed_one(s, fd);
            return;
        }
        if (!go_on && ring_accepting(s)) {
            hold(s, fd); /* the turn is over: the next one offers it again */
            zev__watcher_yield(s->handle.loop, &s->io, ZEV__READABLE);
            return;
        }
    }
    serve_held(s, &turn);
    if (s->handle.flags & (ZEV__H_CLOSING | ZEV__H_CLOSED)) {
        zev__sys_close(fd);
        return;
    }
    (void)zev__tcp_server_take(s, fd, false, &turn);
    (void)zev__budget_spend(s->handle.loop, &turn, 0);
}

/* Make the multishot match what the listener wants: a held descriptor offered and the
 * multishot in flight while it accepts; cancelled while paused, or while what it brings is
 * shed (a cancel that missed is asked again: see zev__tcp_server_ring_complete). */
void zev__tcp_server_ring_settle(zev_tcp_server_t *s) {
    bool accepting = ring_accepting(s);
    if (!accepting || (s->handle.flags & ZEV__TCP_ACCEPT_SHEDDING)) ring_cancel(s);
    if (!accepting) return;
    if (s->handle.flags & ZEV__TCP_ACCEPT_HELD) {
        s->handle.flags &= ~ZEV__TCP_ACCEPT_HELD;
        int fd = s->pending_fd;
        s->pending_fd = -1;
        offer(s, fd);
        if (!ring_accepting(s)) return;
    }
    if (s->handle.flags & ZEV__TCP_ACCEPT_ARMED) return; /* a cancel under way: its end arms */
    if (zev__ring_accept(s->handle.loop, &s->io) < 0) {
        zev__tcp_server_pause(s); /* the SQ could not take it: look again after a backoff */
        return;
    }
    s->handle.flags |= ZEV__TCP_ACCEPT_ARMED;
}

/* Closing: end the multishot before the descriptor goes; what comes meanwhile reaches
 * zev__tcp_server_ring_complete, which closes it (the handle is closing). */
void zev__tcp_server_ring_forget(zev_tcp_server_t *s) {
    if (!(s->handle.flags & ZEV__TCP_RING)) return;
    if (s->handle.flags & ZEV__TCP_ACCEPT_ARMED) zev__ring_forget(s->handle.loop, &s->io, 1);
    s->handle.flags &= ~(ZEV__TCP_ACCEPT_ARMED | ZEV__TCP_ACCEPT_CANCELLING);
}

void zev__tcp_server_ring_complete(zev_handle_t *h, const void *result) {
    zev_tcp_server_t *s = (zev_tcp_server_t *)h;
    const struct zev__ready *e = result;
    if (!zev__ready_more(e)) {
        h->flags &=
            ~(ZEV__TCP_ACCEPT_ARMED | ZEV__TCP_ACCEPT_CANCELLING | ZEV__TCP_ACCEPT_SHEDDING);
    } else if (h->flags & ZEV__TCP_ACCEPT_CANCELLING) {
        /* Still going after a cancel: ask again when settling (the kernel need not catch a
         * multishot that is busy posting a result). */
        h->flags &= ~ZEV__TCP_ACCEPT_CANCELLING;
    }
    if (e->res >= 0) {
        offer(s, e->res);
    } else if (!(h->flags & (ZEV__H_CLOSING | ZEV__H_CLOSED))) {
        size_t turn = ZEV__BUDGET_QUANTUM;
        (void)take_ring_error(s, e->res, &turn);
    }
    if (!(h->flags & (ZEV__H_CLOSING | ZEV__H_CLOSED))) zev__tcp_server_ring_settle(s);
}

#else /* no io_uring in this build: a listener always waits for readiness */

int zev__tcp_server_ring_start(zev_tcp_server_t *s) {
    (void)s;
    return -EOPNOTSUPP;
}

void zev__tcp_server_ring_settle(zev_tcp_server_t *s) {
    (void)s;
}

void zev__tcp_server_ring_shed(zev_tcp_server_t *s) {
    (void)s;
}

void zev__tcp_server_ring_forget(zev_tcp_server_t *s) {
    (void)s;
}

void zev__tcp_server_ring_complete(zev_handle_t *h, const void *result) {
    (void)h, (void)result;
}

#endif
