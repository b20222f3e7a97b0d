/* src/reactor/adopt.c: taking in a socket someone else opened (systemd's socket activation, a
 * parent process, a library): check that it is the kind of socket the handle expects, and
 * give it the flags zev's own sockets are born with. TCP and UDP decide what to do with it.
 */
#include "reactor_internal.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

/* Whether a stream socket listens. Where SO_ACCEPTCONN is missing, a listener is the one whose
 * getpeername fails and which accepts nothing; zev assumes no such system. */
static int is_listening(int fd, bool *out) {
    int v;
    int err = zev__sys_getsockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN, &v);
    *out = v != 0;
    return err;
}

int zev__sock_describe(int fd, int type, struct zev__sock_kind *out) {
    if (fd < 0) return -EBADF;
    int got; /* SO_TYPE answers EBADF for a closed descriptor, ENOTSOCK for a pipe or file */
    int err = zev__sys_getsockopt_int(fd, SOL_SOCKET, SO_TYPE, &got);
    if (err < 0) return err;
    if (got != type) return -EINVAL;
    socklen_t len = sizeof(out->local);
    err = zev__sys_getsockname(fd, &out->local.sa, &len);
    if (err < 0) return err;
    int family = out->local.sa.sa_family;
    if (family != AF_INET && family != AF_INET6) return -EAFNOSUPPORT;
    out->listening = false;
    if (type == SOCK_STREAM) {
        err = is_listening(fd, &out->listening);
        if (err < 0) return err;
    }
    len = sizeof(out->peer);
    err = zev__sys_getpeername(fd, &out->peer.sa, &len);
    if (err < 0 && err != -ENOTCONN) return err;
    out->connected = err == 0;
    return 0;
}

/* What zev__sys_socket gives its own sockets: never block the loop, never leak into a child
 * the user starts. */
int zev__sock_own(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return -errno;
    return 0;
}
