/* src/reactor/wake.c: the descriptor a backend polls to be woken from another thread.
 *
 * Linux uses an eventfd (one fd, one 8-byte write, and writes coalesce in its counter). The
 * portable fallback, also selectable with -Dwakeup=pipe, is the classic self-pipe: a
 * non-blocking pipe whose read end the backend watches. kqueue builds with EVFILT_USER need
 * neither. Either way, the wake watcher drains the descriptor and runs async handles.
 */
#include "backend.h"
#include "reactor_internal.h"
#include "sys.h"
#include "wake.h"

#include <errno.h>
#include <stdint.h>

#if defined(__linux__) && !defined(ZEV_WAKE_PIPE)
#include <sys/eventfd.h>
#define USE_EVENTFD 1
#else
#define USE_EVENTFD 0
#endif

static void on_wake(zev_loop_t *loop, struct zev_watcher *w, unsigned revents) {
    (void)w;
    (void)revents;
    zev__wake_drain(loop);
    zev__async_dispatch(loop);
}

static const struct zev__handle_ops wake_ops = {.io = on_wake};

static int open_fds(int fds[2]) {
    int f = zev__fault_hit(ZEV_SYS_WAKE_OPEN, NULL);
    if (f < 0) return f;
#if USE_EVENTFD
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -errno;
    fds[0] = fd;
    fds[1] = fd;
    return 0;
#else
    if (pipe(fds) < 0) return -errno;
    for (int i = 0; i < 2; i++) {
        if (fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) < 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
            int err = -errno;
            close(fds[0]);
            close(fds[1]);
            return err;
        }
    }
    return 0;
#endif
}

int zev__wake_start(zev_loop_t *loop) {
    int err = open_fds(loop->backend->wake_fds);
    if (err < 0) return err;
    loop->wake.handle.ops = &wake_ops;
    zev__watcher_init(&loop->wake.io, loop->backend->wake_fds[0]);
    loop->wake.io.flags |= ZEV__W_PRIORITY; /* async callbacks never wait behind busy sockets */
    err = zev__watcher_start(loop, &loop->wake.io, ZEV__READABLE);
    if (err < 0) zev__wake_close(loop);
    return err;
}

void zev__wake_close(zev_loop_t *loop) {
    int *fds = loop->backend->wake_fds;
    if (fds[0] < 0) return;
    zev__sys_close(fds[0]);
    if (fds[1] != fds[0]) zev__sys_close(fds[1]);
    fds[0] = fds[1] = -1;
}

int zev__wake_signal(zev_loop_t *loop) {
#if USE_EVENTFD
    uint64_t one = 1;
    const void *msg = &one;
    size_t len = sizeof(one);
#else
    const void *msg = "";
    size_t len = 1;
#endif
    for (;;) {
        ssize_t n = zev__sys_write(loop->backend->wake_fds[1], msg, len);
        if (n >= 0 || n == -EAGAIN) return 0; /* a full pipe will wake the loop anyway */
        if (n != -EINTR) return (int)n;
    }
}

void zev__wake_drain(zev_loop_t *loop) {
    char buf[64];
    for (;;) {
        ssize_t n = zev__sys_read(loop->backend->wake_fds[0], buf, sizeof(buf));
        if (n == -EINTR) continue;
        if (n <= 0 || USE_EVENTFD) return; /* one read resets an eventfd */
    }
}
