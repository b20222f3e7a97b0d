/* zev/fdwatch.h: watch any descriptor the user owns (libuv's uv_poll, libev's ev_io, redis
 * ae's file events): stdin, a pipe, a timerfd, a library's own socket (libpq, c-ares,
 * libcurl). Included from <zev.h>; docs/embedding.md maps it to Node, libuv and libev.
 *
 * The watcher only waits: it never reads, writes or closes the descriptor, which stays the
 * user's. Stop (or close) the watcher before closing the descriptor: after the stop, zev never
 * touches that number again.
 *
 * When the callback fires again. By default a watcher is level-triggered, as libuv's: while a
 * wanted condition holds, the callback runs once in every loop iteration (data left unread
 * keeps it firing; draining to EAGAIN stops it; a writable socket fires every iteration, so
 * want WRITABLE only while there is something to write). The kernel does the re-check (the
 * descriptor is registered without EPOLLET / EV_CLEAR), so this costs no extra syscall.
 * With ZEV_FDWATCH_EDGE the callback runs once per change of state instead (new data arrived,
 * the socket became writable again): then read or write until EAGAIN, or an event is lost.
 * A hang-up or an error, once it happened, holds forever: in level mode the callback keeps
 * firing until the watcher is stopped.
 */
#ifndef ZEV_FDWATCH_H
#define ZEV_FDWATCH_H

/* Events: wanted in zev_fdwatch_start, reported to the callback. */
enum {
    ZEV_FDWATCH_READABLE = 1u << 0,   /* data to read, or EOF, or a connection to accept */
    ZEV_FDWATCH_WRITABLE = 1u << 1,   /* room to write */
    ZEV_FDWATCH_DISCONNECT = 1u << 2, /* the peer closed its side (EPOLLRDHUP / EV_EOF);
                                       * wanted together with READABLE */
    ZEV_FDWATCH_ERROR = 1u << 3,      /* reported only, always: an error is pending (a
                                       * socket's SO_ERROR, a pipe whose reader has gone) */
    ZEV_FDWATCH_EDGE = 1u << 4        /* start flag: fire once per change, not per iteration */
};

typedef struct zev_fdwatch_s zev_fdwatch_t;
/* events: the wanted ones that hold, plus ZEV_FDWATCH_ERROR when an error is pending. After a
 * hang-up or an error the wanted READABLE / WRITABLE come with it, so the callback's read or
 * write meets the EOF or the error. */
typedef void (*zev_fdwatch_cb)(zev_fdwatch_t *watch, unsigned events);

struct zev_fdwatch_s {
    zev_handle_t handle;
    /* private */
    struct zev_watcher io; /* right after the handle (see struct zev_watcher) */
    unsigned events;       /* wanted ZEV_FDWATCH_* and the EDGE flag */
    zev_fdwatch_cb cb;
    struct zev__link node; /* in loop->fdwatches while started */
};

/* Initialise a watcher for fd, which stays the caller's (never closed by zev). -EINVAL on
 * NULL, -EBADF on a closed loop or if fd is not an open descriptor, -ENOMEM (the loop's handle
 * table, zev/inspect.h). */
ZEV_EXPORT int zev_fdwatch_init(zev_loop_t *loop, zev_fdwatch_t *watch, int fd);
/* Start watching for events (READABLE and/or WRITABLE, maybe DISCONNECT and EDGE), or change
 * the events of a started watcher (inside its callback too). -EINVAL on NULL cb or without
 * READABLE or WRITABLE or with DISCONNECT but not READABLE, -EBADF if closed or fd was closed,
 * -EEXIST if another watcher of this loop watches fd (on epoll: or a zev socket does), or the
 * kernel's errno (-EPERM: a regular file, which epoll cannot watch). */
ZEV_EXPORT int zev_fdwatch_start(zev_fdwatch_t *watch, unsigned events, zev_fdwatch_cb cb);
/* Stop watching; no callback runs after this, even for events already fetched. Stopping a
 * stopped watcher is fine. -EINVAL on NULL, -EBADF if closed. */
ZEV_EXPORT int zev_fdwatch_stop(zev_fdwatch_t *watch);
/* The descriptor given to zev_fdwatch_init; -EINVAL on NULL. */
ZEV_EXPORT int zev_fdwatch_fd(const zev_fdwatch_t *watch);

#endif /* ZEV_FDWATCH_H */
