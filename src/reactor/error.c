/* src/reactor/error.c: names and texts for every negative errno zev can return.
 *
 * A table rather than strerror(): strerror is not thread-safe everywhere, its texts differ by
 * platform, and zev_err_name needs the symbol anyway. A linear scan is fine: this is for
 * messages, not hot paths. A switch would not compile where a platform aliases two codes
 * (EAGAIN == EWOULDBLOCK, ENOTSUP == EOPNOTSUPP on Linux): here the first entry wins, so
 * ENOTSUP is named "EOPNOTSUPP" on Linux and "ENOTSUP" on the BSDs, where the two differ.
 *
 * A code the table lacks (an errno a user callback passes through, say) still gets the
 * system's name and text where the C library offers them without shared state (glibc's
 * strerrorname_np and strerrordesc_np, found by meson); elsewhere strerror() gives the text.
 */
#include "zev.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

struct err_entry {
    int code;
    const char *name;
    const char *text;
};

static const struct err_entry errors[] = {
    {EPERM, "EPERM", "operation not permitted"},
    {ENOENT, "ENOENT", "no such file or directory"},
    {EINTR, "EINTR", "interrupted system call"},
    {EIO, "EIO", "i/o error"},
    {ENXIO, "ENXIO", "no such device or address"},
    {E2BIG, "E2BIG", "argument list too long"},
    {EBADF, "EBADF", "bad file descriptor or closed handle"},
    {EAGAIN, "EAGAIN", "resource temporarily unavailable"},
    {ENOMEM, "ENOMEM", "not enough memory"},
    {EACCES, "EACCES", "permission denied"},
    {EFAULT, "EFAULT", "bad address in system call argument"},
    {EBUSY, "EBUSY", "resource busy or locked"},
    {EEXIST, "EEXIST", "already exists"},
    {ENODEV, "ENODEV", "no such device"},
    {EINVAL, "EINVAL", "invalid argument"},
    {ENFILE, "ENFILE", "file table overflow"},
    {EMFILE, "EMFILE", "too many open files"},
    {ENOSPC, "ENOSPC", "no space left on device"},
    {ESPIPE, "ESPIPE", "invalid seek"},
    {EPIPE, "EPIPE", "broken pipe"},
    {ERANGE, "ERANGE", "result too large"},
    {ENOSYS, "ENOSYS", "function not implemented"},
    {ENOTSOCK, "ENOTSOCK", "socket operation on non-socket"},
    {EDESTADDRREQ, "EDESTADDRREQ", "destination address required"},
    {EMSGSIZE, "EMSGSIZE", "message too long"},
    {EPROTOTYPE, "EPROTOTYPE", "protocol wrong type for socket"},
    {ENOPROTOOPT, "ENOPROTOOPT", "protocol not available"},
    {EPROTONOSUPPORT, "EPROTONOSUPPORT", "protocol not supported"},
    {EOPNOTSUPP, "EOPNOTSUPP", "operation not supported on socket"},
    {ENOTSUP, "ENOTSUP", "operation not supported"},
    {EAFNOSUPPORT, "EAFNOSUPPORT", "address family not supported"},
    {EADDRINUSE, "EADDRINUSE", "address already in use"},
    {EADDRNOTAVAIL, "EADDRNOTAVAIL", "address not available"},
    {ENETDOWN, "ENETDOWN", "network is down"},
    {ENETUNREACH, "ENETUNREACH", "network is unreachable"},
    {ECONNABORTED, "ECONNABORTED", "software caused connection abort"},
    {ECONNRESET, "ECONNRESET", "connection reset by peer"},
    {ENOBUFS, "ENOBUFS", "no buffer space available"},
    {EISCONN, "EISCONN", "socket is already connected"},
    {ENOTCONN, "ENOTCONN", "socket is not connected"},
    {ESHUTDOWN, "ESHUTDOWN", "cannot send after transport endpoint shutdown"},
    {ETIMEDOUT, "ETIMEDOUT", "connection timed out"},
    {ECONNREFUSED, "ECONNREFUSED", "connection refused"},
    {EHOSTDOWN, "EHOSTDOWN", "host is down"},
    {EHOSTUNREACH, "EHOSTUNREACH", "host is unreachable"},
    {EALREADY, "EALREADY", "connection already in progress"},
    {EINPROGRESS, "EINPROGRESS", "operation in progress"},
    {ECANCELED, "ECANCELED", "operation canceled"},
    {EOVERFLOW, "EOVERFLOW", "value too large for defined data type"},
    {EILSEQ, "EILSEQ", "illegal byte sequence"},
    {ELOOP, "ELOOP", "too many symbolic links encountered"},
    {ENAMETOOLONG, "ENAMETOOLONG", "name too long"},
    {ENOTDIR, "ENOTDIR", "not a directory"},
    {EISDIR, "EISDIR", "illegal operation on a directory"},
    {EROFS, "EROFS", "read-only file system"},
    {ETXTBSY, "ETXTBSY", "text file is busy"},
    {EFBIG, "EFBIG", "file too large"},
    {EDEADLK, "EDEADLK", "resource deadlock avoided"},
    {EPROTO, "EPROTO", "protocol error"},
#ifdef ENONET
    {ENONET, "ENONET", "machine is not on the network"},
#endif
    /* Name lookups (zev.h): codes outside the errno range, named as Node names them. */
    {ZEV_EAI_AGAIN, "EAI_AGAIN", "temporary failure in name resolution"},
    {ZEV_EAI_FAIL, "EAI_FAIL", "permanent failure in name resolution"},
    {ZEV_EAI_NONAME, "ENOTFOUND", "host name not found"},
};

static const struct err_entry *find(int err) {
    int code = err < 0 ? -err : err;
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        if (errors[i].code == code) return &errors[i];
    }
    return NULL;
}

static const char *system_name(int code) {
#ifdef ZEV_HAVE_STRERRORNAME_NP
    return strerrorname_np(code);
#else
    (void)code;
    return NULL;
#endif
}

/* strerror() is the fallback: not required to be thread-safe, but the BSDs and macOS return
 * their static table entry for every code they know. */
static const char *system_text(int code) {
#ifdef ZEV_HAVE_STRERRORDESC_NP
    return strerrordesc_np(code);
#else
    return strerror(code);
#endif
}

const char *zev_err_name(int err) {
    const struct err_entry *e = find(err);
    if (e) return e->name;
    const char *name = system_name(err < 0 ? -err : err);
    return name ? name : "UNKNOWN";
}

const char *zev_strerror(int err) {
    if (err == 0) return "success";
    const struct err_entry *e = find(err);
    if (e) return e->text;
    const char *text = system_text(err < 0 ? -err : err);
    return text ? text : "unknown error";
}

const char *zev_version(void) {
    return ZEV_VERSION_TEXT;
}
