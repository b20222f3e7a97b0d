/* src/reactor/async.c: async handles, the one way to reach a loop from another thread.
 *
 * zev_async_send() sets the handle's pending flag and, only if no wake-up is already in
 * flight for the loop, asks the backend to wake it (one eventfd write or EVFILT_USER trigger).
 * So N sends before the loop reacts cost at most one syscall and run the callback once.
 *
 * The busy count (libuv's busy state) makes "safe from any thread" and "the memory may be
 * freed after the close callback" hold together. A sender counts itself in before it looks at
 * the handle and out after its last access (the loop pointer, the wake-up); the close
 * callback is held back while the count is not 0. Without it, another wake-up could run the
 * handle's callback, which closes it, and the close callback free it, between a sender's
 * compare-and-swap and its wake write. docs/internals.md, "Async", has the argument.
 *
 * Async-signal-safe: lock-free atomics and one write() or kevent(), and errno is kept.
 */
#include "backend.h"
#include "reactor_internal.h"

#include <errno.h>
#include <stdatomic.h>

static atomic_int *as_atomic(int *p) {
    /* zev.h declares these fields as plain int to stay C++-includable; they are only ever
     * accessed through the C11 atomic functions, here and below. */
    return (atomic_int *)p;
}

/* pending: 0 idle, 1 sent, 2 closed. Senders on other threads look only at this atomic,
 * never at the handle's flags, which the loop thread changes without synchronisation. */
enum { ASYNC_IDLE = 0, ASYNC_SENT = 1, ASYNC_CLOSED = 2 };

/* After this, a send that starts sees CLOSED and returns -EBADF without waking anyone. */
static void async_close(zev_handle_t *h) {
    zev_async_t *a = (zev_async_t *)h;
    atomic_store(as_atomic(&a->pending), ASYNC_CLOSED);
    zev__list_remove(&a->node);
}

/* Hold the close callback back while a sender is still inside zev_async_send: it may be about
 * to read the loop pointer or write the wake-up. Look again in the next iteration, which then
 * polls without blocking. A sender is inside for a few instructions and at most one syscall,
 * so this rarely costs more than one iteration, and the loop thread never spins. */
static int async_finish(zev_handle_t *h) {
    zev_async_t *a = (zev_async_t *)h;
    if (atomic_load(as_atomic(&a->busy)) == 0) return 0; /* acquire: their accesses are done */
    zev__handle_close_resume(h);
    return 1;
}

static const struct zev__handle_ops async_ops = {.close = async_close, .finish = async_finish};

int zev_async_init(zev_loop_t *loop, zev_async_t *a, zev_async_cb cb) {
    if (!loop || !a || !cb) return -EINVAL;
    if (!zev__loop_usable(loop)) return -EBADF;
    zev__debug_handle_fresh(loop, &a->handle, &async_ops);
    *a = (zev_async_t){0};
    int err = zev__handle_init(loop, &a->handle, ZEV_ASYNC, &async_ops);
    if (err < 0) return err;
    a->cb = cb;
    atomic_init(as_atomic(&a->pending), ASYNC_IDLE);
    atomic_init(as_atomic(&a->busy), 0);
    zev__list_push_back(&loop->async_handles, &a->node);
    zev__handle_start(&a->handle);
    return 0;
}

/* The sender's part, between counting itself in and out of a->busy. */
static int mark_sent_and_wake(zev_async_t *a) {
    int expected = ASYNC_IDLE;
    if (!atomic_compare_exchange_strong(as_atomic(&a->pending), &expected, ASYNC_SENT))
        return expected == ASYNC_CLOSED ? -EBADF : 0; /* closed, or already sent: coalesce */
    /* From here the loop may run the callback at any moment (another wake-up is enough), and
     * the callback may close the handle: only the busy count keeps its memory alive. */
    zev_loop_t *loop = a->handle.loop;
    if (atomic_exchange(as_atomic(&loop->async_wake_pending), 1) != 0) return 0;
    return zev__backend_wake(loop);
}

/* No debug thread check here: this is the one call made from other threads. The loop pointer
 * is read before counting in: it is written once by init, before the handle can be shared. */
int zev_async_send(zev_async_t *a) {
    if (!a || !a->handle.loop) return -EINVAL; /* NULL, or zeroed memory never initialised */
    int saved_errno = errno; /* a signal handler must leave errno as it found it */
    atomic_fetch_add(as_atomic(&a->busy), 1);
    int err = mark_sent_and_wake(a);
    atomic_fetch_sub(as_atomic(&a->busy), 1); /* release: the last access to the handle */
    errno = saved_errno;
    return err;
}

/* Run the callback of every async handle that was sent to. A callback may close any async
 * handle, so walk a detached list: closing unlinks a node from whichever list holds it, and
 * each visited node goes back to the loop's list. */
static void run_sent(zev_loop_t *loop) {
    struct zev__link todo;
    zev__list_move(&loop->async_handles, &todo);
    while (!zev__list_empty(&todo)) {
        struct zev__link *node = todo.next;
        zev__list_remove(node);
        zev__list_push_back(&loop->async_handles, node);
        zev_async_t *a = zev__container_of(node, zev_async_t, node);
        int sent = ASYNC_SENT;
        if (atomic_compare_exchange_strong(as_atomic(&a->pending), &sent, ASYNC_IDLE)) a->cb(a);
    }
}

void zev__async_dispatch(zev_loop_t *loop) {
    /* The in-flight flag stays set during the first pass, so sends made meanwhile (a thread
     * answering a callback at once) cost no syscall; the pass after clearing it picks them
     * up. A send after the clear sees the flag down and wakes the loop again: none is lost. */
    run_sent(loop);
    atomic_store(as_atomic(&loop->async_wake_pending), 0);
    run_sent(loop);
    /* Signals caught by zev's handler wake the loop the same way (signal.c); after the clear,
     * like the second pass, so a signal whose wake-up found the flag set is seen here. */
    zev__signal_dispatch(loop);
}

/* The loop's own async handles (the resolver's): not counted as open, so zev_loop_close does
 * not wait for a user to close them; zev__async_forget ends them at loop close. */
void zev__async_init_internal(zev_loop_t *loop, zev_async_t *a, zev_async_cb cb) {
    *a = (zev_async_t){0};
    a->handle.loop = loop;
    a->handle.type = ZEV_ASYNC;
    a->handle.ops = &async_ops;
    a->cb = cb;
    atomic_init(as_atomic(&a->pending), ASYNC_IDLE);
    atomic_init(as_atomic(&a->busy), 0);
    zev__list_push_back(&loop->async_handles, &a->node);
}

/* The caller guarantees no sender is left (the resolver's threads stopped sending). */
void zev__async_forget(zev_async_t *a) {
    zev__handle_set_requests(&a->handle, false);
    async_close(&a->handle);
}
