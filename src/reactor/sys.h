/* src/reactor/sys.h: the syscall seam (docs/design.md, "Fault injection").
 *
 * Every syscall on zev's I/O path goes through one of these wrappers. They return what the
 * syscall returns on success and a negative errno on failure (never -1 with errno), so callers
 * convert nowhere else. In a build with -Dfault_injection=true, zev__fault_hit() (sys_fault.c)
 * lets a test fail the Nth call with a chosen errno, shorten a transfer, and count calls; in
 * other builds it is an inline "return 0" and every wrapper compiles to the plain call.
 */
#ifndef ZEV_SYS_H
#define ZEV_SYS_H

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef __linux__
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <time.h>
#endif

/* Syscalls the seam knows by number. Tests name them in sys_fault.h. */
enum zev_sys {
    ZEV_SYS_SOCKET,
    ZEV_SYS_BIND,
    ZEV_SYS_LISTEN,
    ZEV_SYS_ACCEPT,
    ZEV_SYS_CONNECT,
    ZEV_SYS_SETSOCKOPT,
    ZEV_SYS_GETSOCKOPT,
    ZEV_SYS_SHUTDOWN,
    ZEV_SYS_CLOSE,
    ZEV_SYS_READ,
    ZEV_SYS_WRITE,
    ZEV_SYS_READV,
    ZEV_SYS_WRITEV,
    ZEV_SYS_RECVMSG,
    ZEV_SYS_SENDMSG, /* sendmsg, or send for one buffer */
    ZEV_SYS_RECVMMSG,
    ZEV_SYS_SENDMMSG,
    ZEV_SYS_SENDFILE,
    ZEV_SYS_POLL_CREATE, /* epoll_create1 / kqueue / io_uring_setup */
    ZEV_SYS_POLL_CTL,    /* epoll_ctl / kevent with only a changelist / io_uring: a poll SQE */
    ZEV_SYS_POLL_WAIT,   /* epoll_wait / kevent with an eventlist */
    ZEV_SYS_WAKE_OPEN,   /* eventfd / pipe2 */
    ZEV_SYS_GETSOCKNAME, /* getsockname / getpeername */
    ZEV_SYS_RING_MAP,    /* io_uring: mapping the rings after io_uring_setup */
    ZEV_SYS_RING_SUBMIT, /* io_uring_enter that only submits (the wait is ZEV_SYS_POLL_WAIT) */
    ZEV_SYS__COUNT
};

#ifdef ZEV_FAULT_INJECTION
/* 0: run the call. Negative: fail it with that errno. Positive: run it, but move at most
 * *limit bytes (or messages, for the mmsg calls). Counts every call. */
int zev__fault_hit(enum zev_sys id, size_t *limit);
#else
static inline int zev__fault_hit(enum zev_sys id, size_t *limit) {
    (void)id;
    (void)limit;
    return 0;
}
#endif

/* The seam for a call the kernel made on zev's behalf (an io_uring operation's result): the
 * call is already done, so a test's failure replaces its result. Returns res, or the injected
 * negative errno (counted as a call of id either way); on a change the caller undoes what the
 * kernel did (closes an accepted descriptor). */
static inline int zev__fault_result(enum zev_sys id, int res) {
    int f = zev__fault_hit(id, NULL);
    return f < 0 ? f : res;
}

/* getaddrinfo, called on the resolver's threads (resolve.c). A test build lets a test answer
 * instead (zev_fault_set_getaddrinfo): lookups of made-up names, failures, a lookup that
 * blocks, with no packet sent anywhere. Returns getaddrinfo's code (0 or EAI_*). */
#ifdef ZEV_FAULT_INJECTION
int zev__sys_getaddrinfo(const char *host, const struct addrinfo *hints, struct addrinfo **res);
void zev__sys_freeaddrinfo(struct addrinfo *res);
#else
static inline int zev__sys_getaddrinfo(const char *host, const struct addrinfo *hints,
                                       struct addrinfo **res) {
    return getaddrinfo(host, NULL, hints, res);
}

static inline void zev__sys_freeaddrinfo(struct addrinfo *res) {
    freeaddrinfo(res);
}
#endif

static inline int zev__sys_result(long r) {
    return r < 0 ? -errno : (int)r;
}

static inline ssize_t zev__sys_sresult(ssize_t r) {
    return r < 0 ? -errno : r;
}

/* Shrink an iovec array in place so it covers at most limit bytes; returns the new count.
 * Only used when a test asked for a short transfer; copies descriptors, never payload. */
static inline int zev__iov_clamp(struct iovec *iov, int n, size_t limit) {
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len >= limit) {
            iov[i].iov_len = limit;
            return i + 1;
        }
        limit -= iov[i].iov_len;
    }
    return n;
}

static inline int zev__sys_socket(int domain, int type, int protocol) {
    int f = zev__fault_hit(ZEV_SYS_SOCKET, NULL);
    if (f < 0) return f;
#ifdef SOCK_NONBLOCK
    return zev__sys_result(socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
#else
    int fd = socket(domain, type, protocol);
    if (fd < 0) return -errno;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
#endif
}

static inline int zev__sys_bind(int fd, const struct sockaddr *sa, socklen_t len) {
    int f = zev__fault_hit(ZEV_SYS_BIND, NULL);
    return f < 0 ? f : zev__sys_result(bind(fd, sa, len));
}

static inline int zev__sys_listen(int fd, int backlog) {
    int f = zev__fault_hit(ZEV_SYS_LISTEN, NULL);
    return f < 0 ? f : zev__sys_result(listen(fd, backlog));
}

/* accept, returning a non-blocking close-on-exec descriptor. */
static inline int zev__sys_accept(int fd, struct sockaddr *sa, socklen_t *len) {
    int f = zev__fault_hit(ZEV_SYS_ACCEPT, NULL);
    if (f < 0) return f;
#ifdef __linux__
    return zev__sys_result(accept4(fd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC));
#else
    int c = accept(fd, sa, len);
    if (c < 0) return -errno;
    if (fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(c, F_SETFD, FD_CLOEXEC) < 0) {
        int err = -errno;
        close(c);
        return err;
    }
    return c;
#endif
}

static inline int zev__sys_connect(int fd, const struct sockaddr *sa, socklen_t len) {
    int f = zev__fault_hit(ZEV_SYS_CONNECT, NULL);
    return f < 0 ? f : zev__sys_result(connect(fd, sa, len));
}

static inline int zev__sys_setsockopt(int fd, int level, int name, const void *v, socklen_t n) {
    int f = zev__fault_hit(ZEV_SYS_SETSOCKOPT, NULL);
    return f < 0 ? f : zev__sys_result(setsockopt(fd, level, name, v, n));
}

/* The common case: an int-valued option. */
static inline int zev__sys_setsockopt_int(int fd, int level, int name, int value) {
    return zev__sys_setsockopt(fd, level, name, &value, sizeof(value));
}

/* SO_REUSEPORT on, or -ENOTSUP where the system has no such option. */
static inline int zev__sys_reuse_port(int fd) {
#ifdef SO_REUSEPORT
    return zev__sys_setsockopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
#else
    (void)fd;
    return -ENOTSUP;
#endif
}

static inline int zev__sys_getsockopt(int fd, int level, int name, void *v, socklen_t *n) {
    int f = zev__fault_hit(ZEV_SYS_GETSOCKOPT, NULL);
    return f < 0 ? f : zev__sys_result(getsockopt(fd, level, name, v, n));
}

/* An int-valued option into *out (0 on failure). 0 or a negative errno. */
static inline int zev__sys_getsockopt_int(int fd, int level, int name, int *out) {
    socklen_t len = sizeof(*out);
    *out = 0;
    return zev__sys_getsockopt(fd, level, name, out, &len);
}

static inline int zev__sys_getsockname(int fd, struct sockaddr *sa, socklen_t *len) {
    int f = zev__fault_hit(ZEV_SYS_GETSOCKNAME, NULL);
    return f < 0 ? f : zev__sys_result(getsockname(fd, sa, len));
}

static inline int zev__sys_getpeername(int fd, struct sockaddr *sa, socklen_t *len) {
    int f = zev__fault_hit(ZEV_SYS_GETSOCKNAME, NULL);
    return f < 0 ? f : zev__sys_result(getpeername(fd, sa, len));
}

static inline int zev__sys_shutdown(int fd, int how) {
    int f = zev__fault_hit(ZEV_SYS_SHUTDOWN, NULL);
    return f < 0 ? f : zev__sys_result(shutdown(fd, how));
}

/* close is not retried on EINTR: on Linux and the BSDs the descriptor is gone either way. */
static inline int zev__sys_close(int fd) {
    int f = zev__fault_hit(ZEV_SYS_CLOSE, NULL);
    int r = zev__sys_result(close(fd));
    return f < 0 ? f : r; /* an injected failure still releases the fd: no test may leak */
}

static inline ssize_t zev__sys_read(int fd, void *buf, size_t len) {
    size_t limit = len;
    int f = zev__fault_hit(ZEV_SYS_READ, &limit);
    if (f < 0) return f;
    return zev__sys_sresult(read(fd, buf, f > 0 && limit < len ? limit : len));
}

static inline ssize_t zev__sys_write(int fd, const void *buf, size_t len) {
    size_t limit = len;
    int f = zev__fault_hit(ZEV_SYS_WRITE, &limit);
    if (f < 0) return f;
    return zev__sys_sresult(write(fd, buf, f > 0 && limit < len ? limit : len));
}

/* readv/writev take a mutable iov so a test's short transfer can clamp it. */
static inline ssize_t zev__sys_readv(int fd, struct iovec *iov, int n) {
    size_t limit = 0;
    int f = zev__fault_hit(ZEV_SYS_READV, &limit);
    if (f < 0) return f;
    if (f > 0) n = zev__iov_clamp(iov, n, limit);
    return zev__sys_sresult(readv(fd, iov, n));
}

static inline ssize_t zev__sys_writev(int fd, struct iovec *iov, int n) {
    size_t limit = 0;
    int f = zev__fault_hit(ZEV_SYS_WRITEV, &limit);
    if (f < 0) return f;
    if (f > 0) n = zev__iov_clamp(iov, n, limit);
    return zev__sys_sresult(writev(fd, iov, n));
}

static inline ssize_t zev__sys_recvmsg(int fd, struct msghdr *msg, int flags) {
    size_t limit = 0;
    int f = zev__fault_hit(ZEV_SYS_RECVMSG, &limit);
    if (f < 0) return f;
    if (f > 0) msg->msg_iovlen = zev__iov_clamp(msg->msg_iov, (int)msg->msg_iovlen, limit);
    return zev__sys_sresult(recvmsg(fd, msg, flags));
}

/* One buffer with no address or ancillary data goes out with send(): the same send to the
 * kernel's TCP or UDP, without copying a msghdr and an iovec in first (about 1% of an echo
 * server's CPU per message). Either way it counts as ZEV_SYS_SENDMSG. */
static inline ssize_t zev__sys_sendmsg(int fd, struct msghdr *msg, int flags) {
    size_t limit = 0;
    int f = zev__fault_hit(ZEV_SYS_SENDMSG, &limit);
    if (f < 0) return f;
    if (f > 0) msg->msg_iovlen = zev__iov_clamp(msg->msg_iov, (int)msg->msg_iovlen, limit);
    if (msg->msg_iovlen == 1 && !msg->msg_name && !msg->msg_control) {
        const struct iovec *one = msg->msg_iov;
        return zev__sys_sresult(send(fd, one->iov_base, one->iov_len, flags));
    }
    return zev__sys_sresult(sendmsg(fd, msg, flags));
}

#ifdef __linux__
static inline int zev__sys_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags) {
    size_t limit = 0;
    int f = zev__fault_hit(ZEV_SYS_RECVMMSG, &limit);
    if (f < 0) return f;
    if (f > 0 && limit < n) n = limit ? (unsigned)limit : 1;
    return zev__sys_result(recvmmsg(fd, v, n, flags, NULL));
}

static inline int zev__sys_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags) {
    size_t limit = 0;
    int f = zev__fault_hit(ZEV_SYS_SENDMMSG, &limit);
    if (f < 0) return f;
    if (f > 0 && limit < n) n = limit ? (unsigned)limit : 1;
    return zev__sys_result(sendmmsg(fd, v, n, flags));
}

/* sendfile has no MSG_NOSIGNAL: on a socket that can no longer send it raises SIGPIPE, whose
 * default action kills the process, and the library must not change the process's signal
 * disposition. So SIGPIPE is blocked on this thread for the call, and the one an EPIPE queued
 * is taken before unblocking (unless the caller had SIGPIPE blocked already: then it is
 * theirs). Two sigmask calls per sendfile, which moves a whole file region at a time. */
static inline ssize_t zev__sendfile_nosigpipe(int out_fd, int in_fd, off_t *offset,
                                              size_t count) {
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    ssize_t r = zev__sys_sresult(sendfile(out_fd, in_fd, offset, count));
    if (r == -EPIPE && !sigismember(&old, SIGPIPE)) {
        const struct timespec now = {0, 0};
        (void)sigtimedwait(&pipe_only, NULL, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

static inline ssize_t zev__sys_sendfile(int out_fd, int in_fd, off_t *offset, size_t count) {
    size_t limit = count;
    int f = zev__fault_hit(ZEV_SYS_SENDFILE, &limit);
    if (f < 0) return f;
    return zev__sendfile_nosigpipe(out_fd, in_fd, offset, f > 0 && limit < count ? limit : count);
}
#endif

#endif /* ZEV_SYS_H */
