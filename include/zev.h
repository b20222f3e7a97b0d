/* zev.h: the public API of zev, a zero-copy reactor over epoll and kqueue.
 *
 * Sections, in order: version and export macro, errors, the private building blocks of handles
 * (list link, I/O watcher, the handle struct), loop, common handle calls, timer, async.
 * Buffers and addresses live in zev/buf.h and zev/addr.h; watching any descriptor and
 * signal handles (after async) in zev/fdwatch.h and zev/signal.h; TCP and UDP in zev/tcp.h and
 * zev/udp.h; one loop per thread on many cores in zev/workers.h; walking and printing a loop's
 * open handles in zev/inspect.h; all are included from here, so users include only <zev.h>.
 *
 * Conventions (docs/design.md explains them):
 * - Calls return 0 or a non-negative count on success and a negative errno on failure.
 * - The user owns every handle's memory; handles may be embedded in the user's structs. The
 *   library never frees user memory. After zev_close()'s callback the memory may be reused.
 * - A loop and its handles belong to one thread; only zev_async_send() is thread-safe (not
 *   even zev_stop(): from another thread, send to an async handle whose callback stops).
 * - A handle call on zeroed memory that no init call has seen returns -EINVAL. Initialising
 *   memory that still holds an open handle (its close callback not yet run) loses it: debug
 *   builds (-Ddebug_checks) abort with a message then; zev_loop_init on a live loop is -EBUSY.
 * - Struct fields are grouped: public (the user's to read and write), read-only (the user may
 *   read), private (do not touch; the layout may change between versions).
 */
#ifndef ZEV_H
#define ZEV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version and export macro ----------------------------------------------------------- */

#define ZEV_VERSION_MAJOR 0
#define ZEV_VERSION_MINOR 1
#define ZEV_VERSION_PATCH 0

#if defined(__GNUC__) || defined(__clang__)
#define ZEV_EXPORT __attribute__((visibility("default")))
#else
#define ZEV_EXPORT
#endif

/* "0.1.0": the version the library was built as (may differ from the header's). */
ZEV_EXPORT const char *zev_version(void);

/* ---- errors ----------------------------------------------------------------------------- */

/* Text for a negative errno returned by zev ("address already in use"); for a code outside
 * zev's table, the system's text. "unknown error" only if neither knows it. Never NULL. */
ZEV_EXPORT const char *zev_strerror(int err);
/* The errno's symbolic name ("EADDRINUSE"); for a code outside zev's table, the C library's
 * name where it offers one (glibc); "UNKNOWN" if no name is known. */
ZEV_EXPORT const char *zev_err_name(int err);

/* Name-lookup failures (getaddrinfo's EAI_* codes, zev_resolve and zev_tcp_connect by name).
 * Returned negated like errnos (-ZEV_EAI_NONAME) and outside the errno range (libuv's
 * numbers). Other EAI_* codes map to errnos: EAI_MEMORY to -ENOMEM, EAI_SYSTEM to the errno,
 * bad hints to -EINVAL. */
enum {
    ZEV_EAI_AGAIN = 3001,  /* "EAI_AGAIN": temporary failure (no answer from the DNS server) */
    ZEV_EAI_FAIL = 3004,   /* "EAI_FAIL": permanent failure of the lookup */
    ZEV_EAI_NONAME = 3008, /* "ENOTFOUND" as Node names it: no such host, or no address for it */
};

/* ---- intrusive list link (private: embedded in handles, managed by the library) ---------- */

struct zev__link {
    struct zev__link *prev;
    struct zev__link *next;
};

/* ---- I/O watcher (private: the loop's unit of fd interest, embedded in TCP/UDP handles) -- */

typedef struct zev_loop_s zev_loop_t;
struct zev_watcher;
typedef void (*zev__io_cb)(zev_loop_t *loop, struct zev_watcher *w, unsigned revents);

/* A watcher has no callback and no queue link of its own: it is always the member right after
 * its owner's zev_handle_t, the owner's ops->io receives its events, and the owner's queue
 * slot links it into the pending queue (see src/reactor/watcher.c). */
struct zev_watcher {
    int fd;
    uint8_t events;  /* ZEV__READABLE | ZEV__WRITABLE registered with the backend */
    uint8_t flags;   /* ZEV__W_* state bits (ZEV__W_PENDING: in the pending queue) */
    uint8_t revents; /* events fed for the pending phase */
};

/* ---- handle: the first member of every handle type (the calls are below the loop) -------- */

typedef enum {
    ZEV_HANDLE_UNKNOWN = 0,
    ZEV_TIMER,
    ZEV_ASYNC,
    ZEV_TCP,
    ZEV_TCP_SERVER,
    ZEV_UDP,
    ZEV_FDWATCH,
    ZEV_SIGNAL
} zev_handle_type;

typedef struct zev_handle_s zev_handle_t;
typedef void (*zev_close_cb)(zev_handle_t *handle);
typedef struct zev_handle_info_s zev_handle_info_t; /* zev/inspect.h */

/* Per-type behaviour; private, set by each handle type's init. */
struct zev__handle_ops {
    void (*close)(zev_handle_t *handle);  /* stop I/O now, inside zev_close */
    /* Deferred, before the close cb: cancel requests. Returns 0 when done, 1 to hold the close
     * callback back until the type calls zev__handle_close_resume (a server waiting for its
     * connections to close). */
    int (*finish)(zev_handle_t *handle);
    /* Types that own an I/O watcher (the member right after the handle): its events. */
    zev__io_cb io;
    /* zev_handle_info: fill the fields that belong to the type (may be NULL). */
    void (*inspect)(const zev_handle_t *handle, zev_handle_info_t *out);
    /* Completion backends (io_uring): an operation the type submitted has a result
     * (struct zev__ready, src/reactor/backend.h). NULL for types that only use readiness. */
    void (*complete)(zev_handle_t *handle, const void *result);
};

/* The first member of every handle. Pass &h->handle to the calls below. */
struct zev_handle_s {
    /* public */
    void *data;
    /* read-only */
    zev_loop_t *loop;
    uint8_t type; /* a zev_handle_type */
    /* private */
    /* Its place in the loop's handle table (0: none, an internal handle), in the 24 bits
     * beside type so that listing every handle costs no byte here (src/reactor/walk.c). */
    unsigned slot : 24;
    unsigned flags; /* ZEV__H_* */
    const struct zev__handle_ops *ops;
    /* A handle waits in at most one of the loop's queues: while open, its watcher (if it has
     * one) may wait in the pending queue; once closed, the handle waits in the close queue,
     * and its watcher was stopped first. So the two queues share one slot. */
    union {
        struct zev__link pending; /* open: its watcher is in loop->pending_watchers */
        struct {
            zev_close_cb cb;
            zev_handle_t *next; /* in the loop's close queue (a FIFO) */
        } closing;
    } queue;
};

/* private: the loop's own wake-up watcher and the internal handle that owns it, so that its
 * events are dispatched like every other watcher's. Never counted as open, never closed. */
struct zev__wake {
    zev_handle_t handle;
    struct zev_watcher io;
};

/* ---- allocator hook ------------------------------------------------------------------------ */

/* Where the loop gets memory: the backend's event array at init; buffer-pool chunks and slab
 * blocks (write-queue entries, sockets' extra state) lazily, when first needed, then reused.
 * What stays unused for zev_loop_options_t.idle_ms goes back (the pool keeps 1 MiB); the
 * rest at zev_loop_close. Never per message in steady state. Defaults to malloc/free. */
typedef struct {
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *ptr, size_t size);
    void *ctx;
} zev_allocator_t;

#include "zev/buf.h"
#include "zev/addr.h"

/* ---- loop --------------------------------------------------------------------------------- */

typedef enum {
    ZEV_RUN_DEFAULT = 0, /* until stopped or no active referenced handle is left */
    ZEV_RUN_ONCE,        /* one iteration; blocks for I/O or a timer only if no callback ran */
    ZEV_RUN_NOWAIT       /* one iteration, never blocking */
} zev_run_mode;

/* Counters for people who study or benchmark the loop. Monotonic since init. */
typedef struct {
    uint64_t iterations;     /* loop iterations run */
    uint64_t polls;          /* calls into the kernel wait (epoll_wait / kevent) */
    uint64_t wakeups;        /* polls that returned at least one event */
    uint64_t events;         /* I/O events dispatched to watchers */
    uint64_t max_events;     /* most events returned by one poll */
    uint64_t blocked_ns;     /* time spent inside the kernel wait */
    uint64_t timers_fired;   /* timer callbacks run */
    uint64_t zc_sends;       /* io_uring: sends that went out zero-copy (SEND_ZC) and whose
                                memory the kernel held until its notification
                                (zev_loop_options_t.send_zc_min) */
} zev_loop_metrics_t;

/* Which kernel interface a loop drives (zev_loop_options_t.backend, zev_loop_backend). */
typedef enum {
    ZEV_BACKEND_DEFAULT = 0, /* the ZEV_BACKEND environment variable if set, else the readiness
                                backend the library was built with (epoll or kqueue) */
    ZEV_BACKEND_EPOLL,       /* Linux readiness: epoll, edge-triggered */
    ZEV_BACKEND_KQUEUE,      /* BSD and macOS readiness: kqueue */
    ZEV_BACKEND_IO_URING     /* Linux completion: io_uring (kernel 6.0 or later); falls back to
                                epoll when unavailable, and zev_loop_backend says why */
} zev_backend_kind;

typedef struct {
    zev_allocator_t allocator;    /* zeroed: malloc/free */
    unsigned max_events;          /* events fetched per poll; 0: 1024 */
    size_t buf_size;              /* bytes per pool chunk, 256..ZEV_BUF_SIZE_MAX; 0: 64 KiB */
    unsigned idle_ms;             /* pool chunks and slab blocks left unused this long go back
                                     to the allocator (past 1 MiB of chunks); 0: 1000 */
    zev_backend_kind backend;     /* ZEV_BACKEND_DEFAULT: see above. A backend this build or
                                     this kernel cannot run falls back to the built-in one */
    size_t send_zc_min;           /* io_uring completion mode only: a queued TCP write slice of
                                     at least this many bytes goes out with zero-copy send
                                     (SEND_ZC), and its write callback runs once the kernel let
                                     go of its memory (docs/tcp.md, "Zero-copy send"); 0: the
                                     ZEV_SEND_ZC_MIN environment variable if set, else never,
                                     the default (slower than a copy on loopback and on NICs
                                     that cannot send from user pages: docs/internals.md) */
} zev_loop_options_t;

/* private: an entry of the loop's timer heap. Timers and the loop itself (to give idle memory
 * back) embed one; sockets borrow one from the loop's slab for their idle and connect
 * timeouts. */
struct zev__timer_node {
    uint64_t deadline_ms;
    uint64_t start_seq;
    struct zev__timer_node *child; /* pairing heap links (src/reactor/heap.c) */
    struct zev__timer_node *next;
    struct zev__timer_node *prev;  /* previous sibling, or the parent for a first child */
    void (*fire)(zev_loop_t *loop, struct zev__timer_node *node);
};

struct zev__backend;
struct zev__resolver;

/* private: the loop's table of open handles, for zev_loop_walk (src/reactor/walk.c). A slot
 * holds a handle's address, or, when free, the next free slot's index (odd: index << 1 | 1). */
struct zev__handle_table {
    uintptr_t **blocks; /* ZEV__TABLE_BLOCK slots each, through the loop's allocator */
    uint32_t n_blocks;
    uint32_t cap_blocks; /* room in blocks[] */
    uint32_t free_head;  /* the first free slot; 0: none (slot 0 is never used) */
    uint32_t listed;     /* handles in the table */
};

/* private: a pool of fixed-size objects (write-queue entries, timeout nodes), grown in blocks
 * through the allocator and reused; blocks idle for an interval go back (src/reactor/slab.c,
 * trim.c), the rest at zev_loop_close. */
struct zev__slab {
    void *free_list;
    void *blocks;
    size_t obj_size;
    size_t in_use;
    size_t n_blocks;
    size_t peak;        /* most objects in use since the last trim */
    size_t sweep_below; /* use under this asks for a trim and lets it sweep (slab.c) */
    zev_loop_t *loop;   /* whose allocator the blocks came from (set by the first block) */
};

/* private: the fairness budget of the phase being run (src/reactor/budget.c). */
struct zev__budget {
    uint64_t deadline_ns; /* the phase's time slice ends here */
    size_t spent;         /* cost spent in the phase: bytes plus a fixed cost per operation */
    size_t next_check;    /* read the clock once spent reaches this */
    unsigned over;        /* the slice or the phase's byte cap is used up */
};

struct zev_loop_s {
    /* public */
    void *data;
    /* read-only */
    zev_loop_metrics_t metrics;
    /* private */
    unsigned state;                  /* ZEV__LOOP_* */
    unsigned stop_flag;
    uintptr_t run_thread;            /* debug checks: the thread inside zev_run, else 0 */
    uint64_t now_ms;
    unsigned active_refs;            /* handles that are active and referenced */
    unsigned request_handles;        /* handles with requests in flight, referenced or not */
    unsigned open_handles;           /* initialised and not yet fully closed */
    struct zev__handle_table handles; /* the user's open handles, for zev_loop_walk */
    zev_handle_t *closing_head;      /* handles whose close callback is due, in close order */
    zev_handle_t *closing_tail;
    struct zev__link pending_watchers; /* fed: no turn yet (resumes, deferred events) */
    struct zev__link pending_yielded;  /* had a turn and used their quantum */
    struct zev__budget budget;
    struct zev__link async_handles;
    struct zev__timer_node *timer_root; /* pairing min-heap of armed timer nodes */
    size_t timer_count;
    uint64_t timer_seq;              /* start order, breaks deadline ties */
    zev_allocator_t allocator;
    struct zev__backend *backend;    /* kernel interface state, allocated at init */
    struct zev__wake wake;
    int async_wake_pending;          /* atomic: a wake-up is in flight */
    zev_buf_pool_t pool;
    zev_buf_t *read_chunk;           /* shared landing area for reads (buf.c) */
    size_t read_off;
    zev_buf_t *carve_chunk;          /* where zev_buf_alloc carves slices (buf.c) */
    size_t carve_off;
    struct zev__slab slab;           /* 64-byte objects */
    struct zev__slab slab_large;     /* 128-byte objects */
    struct zev__resolver *resolver;  /* name lookups' threads, started by the first (resolve.c) */
    struct zev__link fdwatches;      /* started zev_fdwatch_t (fdwatch.c: -EEXIST check) */
    struct zev__link signal_handles; /* started zev_signal_t, in start order (signal.c) */
    uint64_t signal_wanted;          /* bit signum-1: a handle here is started for it */
    uint64_t signal_caught;          /* atomic: bit signum-1 caught, not yet dispatched */
    unsigned signal_pass;            /* dispatch passes run (signal.c) */
    zev_loop_t *signal_next;         /* in the process-wide list of loops with signals */
    struct zev__wake signal_io;      /* kqueue: where EVFILT_SIGNAL events arrive */
    struct zev__timer_node trim_node; /* gives idle memory back (src/reactor/trim.c) */
    unsigned trim_ms;                /* its interval: zev_loop_options_t.idle_ms */
};

/* Initialise a loop in memory the caller owns. -EINVAL if loop is NULL, -EBUSY if it holds a
 * loop already initialised and not yet closed (zev_loop_close it first), or a backend errno
 * (-EMFILE, -ENOMEM). */
ZEV_EXPORT int zev_loop_init(zev_loop_t *loop);
/* As zev_loop_init with options (opts may be NULL). -EINVAL on NULL loop or bad options,
 * -EBUSY on a live loop. */
ZEV_EXPORT int zev_loop_init_ex(zev_loop_t *loop, const zev_loop_options_t *opts);
/* Release the loop's resources. -EBUSY while any handle is open, a close callback is due, a
 * name lookup's callback is due, or the user still holds a buffer reference (zev_buf_ref/
 * zev_buf_get without the unref): the loop stays usable, so release and retry. Joins the
 * resolver threads; one still inside a cancelled getaddrinfo is detached instead, and frees
 * its answer and exits on its own when the call returns (it never touches the loop again). -EBADF if already closed; -EINVAL on NULL. */
ZEV_EXPORT int zev_loop_close(zev_loop_t *loop);
/* Run the loop. Returns 1 if referenced active handles remain (more to do), 0 if not;
 * -EINVAL on NULL or bad mode, -EBADF on a closed loop, -EBUSY if called from inside run,
 * or a negative errno the kernel wait failed with (never EINTR, which is retried). */
ZEV_EXPORT int zev_run(zev_loop_t *loop, zev_run_mode mode);
/* Make zev_run return after the current iteration. Not thread-safe: call it on the loop's
 * thread; from another, zev_async_send to a handle whose callback calls zev_stop.
 * -EINVAL on NULL, -EBADF if closed. */
ZEV_EXPORT int zev_stop(zev_loop_t *loop);
/* 1 if the loop has referenced active handles, handles with requests in flight (connect,
 * write, end, UDP send: even unref'd ones), or due close callbacks; else 0. */
ZEV_EXPORT int zev_loop_alive(const zev_loop_t *loop);
/* Cached monotonic time in ms, updated once per iteration; 0 on NULL. */
ZEV_EXPORT uint64_t zev_now(const zev_loop_t *loop);
/* Refresh the cached time now (a long callback may want this before starting timers). */
ZEV_EXPORT void zev_update_time(zev_loop_t *loop);
/* Monotonic clock in nanoseconds, uncached. */
ZEV_EXPORT uint64_t zev_hrtime(void);
/* Copy the loop's counters into *out. -EINVAL on NULL. */
ZEV_EXPORT int zev_loop_metrics(const zev_loop_t *loop, zev_loop_metrics_t *out);
/* "epoll" or "kqueue": the readiness backend this library was built with. */
ZEV_EXPORT const char *zev_backend_name(void);
/* The backend this loop runs: "epoll", "kqueue" or "io_uring"; NULL on NULL or a closed
 * loop. If why is not NULL, *why gets one line saying how it was chosen ("built-in default",
 * "ZEV_BACKEND=io_uring", "options", or the reason a requested io_uring fell back, such as
 * "io_uring unavailable (io_uring_setup: EPERM, blocked by seccomp or the
 * kernel.io_uring_disabled sysctl); using epoll"). The text lives as long as the loop. */
ZEV_EXPORT const char *zev_loop_backend(const zev_loop_t *loop, const char **why);

/* ---- common handle calls ------------------------------------------------------------------ */

/* Close a handle: stops it now; cb (may be NULL) runs exactly once from the loop, never
 * inside this call; after it the memory may be freed. -EBADF if already closing or closed,
 * -EINVAL on NULL or a handle no init call has seen (zeroed memory), as every handle call. */
ZEV_EXPORT int zev_close(zev_handle_t *handle, zev_close_cb cb);
/* Make an active handle keep zev_run going (the default). -EINVAL on NULL, -EBADF once
 * closing. */
ZEV_EXPORT int zev_ref(zev_handle_t *handle);
/* Let zev_run return while this handle stays usable (Node's unref): only its waiting (reads,
 * listening) is given up; requests in flight (a connect, a write, an end, a UDP send) still
 * keep zev_run going until their callbacks ran. Errors as zev_ref. */
ZEV_EXPORT int zev_unref(zev_handle_t *handle);
/* 1 if referenced, 0 if not, on NULL, and from zev_close on (Node's hasRef()). */
ZEV_EXPORT int zev_has_ref(const zev_handle_t *handle);
/* 1 if the handle is doing something (timer started, TCP reading/listening...), else 0. */
ZEV_EXPORT int zev_is_active(const zev_handle_t *handle);
/* 1 from zev_close until the handle is fully closed and after, else 0. */
ZEV_EXPORT int zev_is_closing(const zev_handle_t *handle);
/* A close callback that calls free(handle): for a handle malloc'd alone, or as the first
 * member of a malloc'd struct. Use it instead of casting free to zev_close_cb. */
ZEV_EXPORT void zev_free_on_close(zev_handle_t *handle);

/* ---- timer -------------------------------------------------------------------------------- */

typedef struct zev_timer_s zev_timer_t;
typedef void (*zev_timer_cb)(zev_timer_t *timer);

struct zev_timer_s {
    zev_handle_t handle;
    /* private */
    struct zev__timer_node node;
    zev_timer_cb cb;
    uint64_t repeat_ms;
};

/* Initialise a timer. -EINVAL on NULL, -EBADF on a closed loop, -ENOMEM if the loop's handle
 * table could not grow (as every handle init: zev/inspect.h). */
ZEV_EXPORT int zev_timer_init(zev_loop_t *loop, zev_timer_t *timer);
/* Start (or restart) a timer: cb after timeout_ms, then every repeat_ms if non-zero.
 * O(log n), never allocates. -EINVAL on NULL timer/cb or negative times, -EBADF if closed. */
ZEV_EXPORT int zev_timer_start(zev_timer_t *timer, zev_timer_cb cb, int64_t timeout_ms,
                               int64_t repeat_ms);
/* Stop a timer; stopping a stopped timer is fine. -EINVAL on NULL, -EBADF if closed. */
ZEV_EXPORT int zev_timer_stop(zev_timer_t *timer);
/* Restart a repeating timer with its repeat as timeout; stop it if repeat is 0.
 * -EINVAL if it was never started, -EBADF if closed. */
ZEV_EXPORT int zev_timer_again(zev_timer_t *timer);
/* Set the repeat interval used from the next expiry on. -EINVAL on NULL or negative. */
ZEV_EXPORT int zev_timer_set_repeat(zev_timer_t *timer, int64_t repeat_ms);
/* The repeat interval in ms; 0 on NULL. */
ZEV_EXPORT uint64_t zev_timer_get_repeat(const zev_timer_t *timer);
/* Milliseconds until the timer fires (0 if due or inactive). */
ZEV_EXPORT uint64_t zev_timer_get_due_in(const zev_timer_t *timer);

/* ---- async: the one thread-safe wake-up ----------------------------------------------------- */

typedef struct zev_async_s zev_async_t;
typedef void (*zev_async_cb)(zev_async_t *async);

struct zev_async_s {
    zev_handle_t handle;
    /* private */
    zev_async_cb cb;
    int pending; /* atomic: idle, sent or closed */
    int busy;    /* atomic: senders inside zev_async_send; the close callback waits for 0 */
    struct zev__link node; /* in loop->async_handles */
};

/* Initialise an async handle; it is active (keeps the loop running) until closed or unref'd.
 * -EINVAL on NULL loop/async/cb, -EBADF on a closed loop, -ENOMEM (the handle table). */
ZEV_EXPORT int zev_async_init(zev_loop_t *loop, zev_async_t *async, zev_async_cb cb);
/* Wake the loop and run the callback there; safe from any thread, and async-signal-safe on
 * every backend and wake-up (eventfd, self-pipe, EVFILT_USER): a signal handler may call it
 * (lock-free atomics and one write() or kevent(); errno is kept), though zev_signal_t does
 * that job for you. Sends before the callback runs coalesce into one call. A send still inside this call holds the close callback back, so the
 * handle may be freed in it; a send must not start once the close callback may have run.
 * -EINVAL on NULL or a never-initialised handle, -EBADF once closing. */
ZEV_EXPORT int zev_async_send(zev_async_t *async);

#include "zev/fdwatch.h"
#include "zev/signal.h"
#include "zev/tcp.h"
#include "zev/udp.h"
#include "zev/workers.h"
#include "zev/inspect.h"

#ifdef __cplusplus
}
#endif

#endif /* ZEV_H */
