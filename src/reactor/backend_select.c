/* src/reactor/backend_select.c: which backend a loop runs, chosen when the loop starts.
 *
 * The loop's options name one, or leave it to $ZEV_BACKEND, or to the readiness backend the
 * build has (epoll on Linux, kqueue on the BSDs and macOS). io_uring may be compiled in and
 * still refused by this kernel (too old, the kernel.io_uring_disabled sysctl, a seccomp
 * profile such as Docker's default): the loop then runs the built-in backend, and
 * zev_loop_backend says why, so a benchmark or a server log never mislabels what ran.
 */
#include "backend.h"
#include "reactor_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *zev_backend_name(void) {
    return zev__backend_builtin.name;
}

const char *zev_loop_backend(const zev_loop_t *loop, const char **why) {
    if (!zev__loop_usable(loop)) return NULL;
    if (why) *why = loop->backend->why;
    return loop->backend->ops->name;
}

static const char *const kind_names[] = {
    [ZEV_BACKEND_EPOLL] = "epoll", [ZEV_BACKEND_KQUEUE] = "kqueue", [ZEV_BACKEND_IO_URING] = "io_uring"};

/* The backend $ZEV_BACKEND names: DEFAULT if unset or empty, -EINVAL if no backend's name. */
static int kind_from_env(zev_backend_kind *kind) {
    const char *v = getenv("ZEV_BACKEND");
    *kind = ZEV_BACKEND_DEFAULT;
    if (!v || !*v) return 0;
    for (int k = ZEV_BACKEND_EPOLL; k <= ZEV_BACKEND_IO_URING; k++) {
        if (strcmp(v, kind_names[k]) == 0) {
            *kind = (zev_backend_kind)k;
            return 0;
        }
    }
    return -EINVAL;
}

/* The ops that run kind in this build, or NULL if it was not compiled in. */
static const struct zev__backend_ops *ops_for(zev_backend_kind kind) {
    if (strcmp(zev__backend_builtin.name, kind_names[kind]) == 0) return &zev__backend_builtin;
#ifdef ZEV_HAVE_IO_URING
    if (kind == ZEV_BACKEND_IO_URING) return &zev__backend_uring;
#endif
    return NULL;
}

/* Why io_uring_setup's errno usually happens, for the fallback line. */
static const char *refusal_hint(int err) {
    switch (err) {
    case -ENOSYS: return ", kernel built without io_uring";
    case -EPERM: return ", blocked by seccomp or the kernel.io_uring_disabled sysctl";
    case -EINVAL: return ", kernel older than 6.0";
    default: return "";
    }
}

/* Errors that mean "io_uring cannot run here" and so fall back to epoll. Others (-EMFILE,
 * -ENOMEM) are the process's condition, which epoll would meet as well: they are returned. */
static bool unavailable(int err) {
    return err == -ENOSYS || err == -EPERM || err == -EACCES || err == -EINVAL ||
           err == -EOPNOTSUPP;
}

static size_t state_size(unsigned max_events) {
    return sizeof(struct zev__backend) + sizeof(struct zev__ready) * max_events;
}

static int start(zev_loop_t *loop, const struct zev__backend_ops *ops) {
    struct zev__backend *b = loop->backend;
    b->ops = ops;
    b->fd = -1;
    b->wake_fds[0] = b->wake_fds[1] = -1;
    return ops->init(loop);
}

int zev__backend_open(zev_loop_t *loop, unsigned max_events, zev_backend_kind asked) {
    bool from_options = asked != ZEV_BACKEND_DEFAULT;
    if (!from_options) {
        int err = kind_from_env(&asked);
        if (err < 0) return err;
    }
    struct zev__backend *b = zev__alloc(loop, state_size(max_events));
    if (!b) return -ENOMEM;
    *b = (struct zev__backend){.ready = (struct zev__ready *)(b + 1), .max_events = max_events};
    loop->backend = b;

    const struct zev__backend_ops *ops = asked ? ops_for(asked) : &zev__backend_builtin;
    int err = ops ? start(loop, ops) : -ENOSYS;
    if (asked == ZEV_BACKEND_DEFAULT) {
        snprintf(b->why, sizeof(b->why), "built-in default");
    } else if (err == 0) {
        snprintf(b->why, sizeof(b->why), "%s%s", from_options ? "options" : "ZEV_BACKEND=",
                 from_options ? "" : kind_names[asked]);
    } else if (ops != &zev__backend_builtin && (!ops || unavailable(err))) {
        /* What was asked is not here: the built-in backend runs, and says why. */
        snprintf(b->why, sizeof(b->why), "%s unavailable (%s%s%s); using %s", kind_names[asked],
                 ops ? "setup failed: " : "not built in",
                 ops ? zev_err_name(err) : "", ops ? refusal_hint(err) : "",
                 zev__backend_builtin.name);
        err = start(loop, &zev__backend_builtin);
    }
    if (err < 0) {
        zev__free(loop, b, state_size(max_events));
        loop->backend = NULL;
    }
    return err;
}

void zev__backend_close(zev_loop_t *loop) {
    struct zev__backend *b = loop->backend;
    if (!b) return;
    b->ops->close(loop);
    zev__free(loop, b, state_size(b->max_events));
    loop->backend = NULL;
}
