/* tests/support/sweep.c: the fault sweep's driver, guard timer and table (see sweep.h). */
#include "sweep.h"

#include "zt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int sweep_injected_err;
bool sweep_quiet_ends;

static const char *const sys_names[ZEV_SYS__COUNT] = {
    [ZEV_SYS_SOCKET] = "socket",
    [ZEV_SYS_BIND] = "bind",
    [ZEV_SYS_LISTEN] = "listen",
    [ZEV_SYS_ACCEPT] = "accept4",
    [ZEV_SYS_CONNECT] = "connect",
    [ZEV_SYS_SETSOCKOPT] = "setsockopt",
    [ZEV_SYS_GETSOCKOPT] = "getsockopt",
    [ZEV_SYS_SHUTDOWN] = "shutdown",
    [ZEV_SYS_CLOSE] = "close",
    [ZEV_SYS_READ] = "read",
    [ZEV_SYS_WRITE] = "write",
    [ZEV_SYS_READV] = "readv",
    [ZEV_SYS_WRITEV] = "writev",
    [ZEV_SYS_RECVMSG] = "recvmsg",
    [ZEV_SYS_SENDMSG] = "send/sendmsg",
    [ZEV_SYS_RECVMMSG] = "recvmmsg",
    [ZEV_SYS_SENDMMSG] = "sendmmsg",
    [ZEV_SYS_SENDFILE] = "sendfile",
    [ZEV_SYS_POLL_CREATE] = "poll_create",
    [ZEV_SYS_POLL_CTL] = "epoll_ctl/kevent",
    [ZEV_SYS_POLL_WAIT] = "epoll_wait/kevent",
    [ZEV_SYS_WAKE_OPEN] = "eventfd/pipe2",
    [ZEV_SYS_GETSOCKNAME] = "getsockname",
    [ZEV_SYS_RING_MAP] = "io_uring mmap",
    [ZEV_SYS_RING_SUBMIT] = "io_uring_enter (submit)",
};

const char *sweep_sys_name(enum zev_sys id) {
    return sys_names[id] ? sys_names[id] : "?";
}

static const char *err_label(int err) {
    return err == SWEEP_SHORT ? "short" : zev_err_name(-err);
}

void sweep_report(struct sweep_outcome *o, int status, unsigned where) {
    if (status >= 0 || o->stalled || !where) return; /* stalled: stop()'s cancellations */
    o->reported++;
    if (getenv("ZT_SWEEP_TRACE"))
        fprintf(stderr, "  report %s at 0x%x\n", zev_err_name(status), where);
    if (sweep_injected_err && status == -sweep_injected_err) {
        o->injected++;
        o->where |= where;
    }
}

unsigned sweep_allowed_where(enum zev_sys id) {
    switch (id) {
    case ZEV_SYS_SOCKET:
    case ZEV_SYS_SETSOCKOPT:
    case ZEV_SYS_GETSOCKNAME:
        return SWEEP_AT_CALL;
    case ZEV_SYS_ACCEPT:
        return SWEEP_AT_CONNECTION;
    case ZEV_SYS_CONNECT:
    case ZEV_SYS_GETSOCKOPT:
        return SWEEP_AT_CONNECT;
    case ZEV_SYS_READ:
        /* A failed read ends the socket: writes still queued are told why. On a completion
         * backend sends are in flight far more often when that happens. */
        return SWEEP_AT_ERROR | SWEEP_AT_WRITE;
    case ZEV_SYS_SHUTDOWN:
        return SWEEP_AT_ERROR;
    case ZEV_SYS_SENDMSG:
    case ZEV_SYS_SENDFILE:
        return SWEEP_AT_ERROR | SWEEP_AT_WRITE | SWEEP_AT_SEND;
    case ZEV_SYS_RECVMMSG:
    case ZEV_SYS_RECVMSG:
        return SWEEP_AT_MESSAGE;
    case ZEV_SYS_SENDMMSG:
        return SWEEP_AT_SEND;
    case ZEV_SYS_POLL_WAIT:
        return SWEEP_AT_RUN;
    default: /* registering interest fails inside whatever call or event needed it */
        return ~0u;
    }
}

void sweep_fail(struct sweep_outcome *o, const char *fmt, ...) {
    if (!o->ok) return;
    o->ok = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->why, sizeof(o->why), fmt, ap);
    va_end(ap);
}

/* ---- guard ---------------------------------------------------------------------------------- */

enum { GUARD_TICK_MS = 50, GUARD_LIMIT_TICKS = 100 };

static void guard_tick(zev_timer_t *t) {
    struct sweep_guard *g = t->handle.data;
    g->ticks++;
    g->quiet = g->progress == g->seen ? g->quiet + 1 : 0;
    g->seen = g->progress;
    bool quiet_after_error = (g->o->reported > 0 || sweep_quiet_ends) && g->quiet >= 2;
    if (!quiet_after_error && g->ticks < GUARD_LIMIT_TICKS) return;
    g->o->stalled = true;
    sweep_guard_done(g);
    g->stop(g->ctx);
}

void sweep_guard_start(struct sweep_guard *g, zev_loop_t *loop, struct sweep_outcome *o,
                       void (*stop)(void *ctx), void *ctx) {
    *g = (struct sweep_guard){.o = o, .stop = stop, .ctx = ctx};
    cr_assert_eq(zev_timer_init(loop, &g->timer), 0);
    g->timer.handle.data = g;
    cr_assert_eq(zev_timer_start(&g->timer, guard_tick, GUARD_TICK_MS, GUARD_TICK_MS), 0);
}

void sweep_guard_done(struct sweep_guard *g) {
    if (!zev_is_closing(&g->timer.handle)) zev_close(&g->timer.handle, NULL);
}

void sweep_run_loop(zev_loop_t *loop, struct sweep_outcome *o) {
    for (int i = 0; i < 20; i++) {
        int r = zev_run(loop, ZEV_RUN_DEFAULT);
        if (r == 0) return;
        sweep_report(o, r, SWEEP_AT_RUN); /* the poll failed; zev_run can be run again */
    }
    sweep_fail(o, "zev_run kept failing");
}

/* ---- driver --------------------------------------------------------------------------------- */

unsigned sweep_positions(uint64_t calls, unsigned max, unsigned *out) {
    if (calls <= max) {
        for (unsigned i = 0; i < calls; i++)
            out[i] = i + 1;
        return (unsigned)calls;
    }
    unsigned head = max / 2;
    unsigned tail = max / 4;
    unsigned mid = max - head - tail;
    unsigned n = 0;
    for (unsigned i = 1; i <= head; i++)
        out[n++] = i;
    uint64_t lo = head + 1;
    uint64_t hi = calls - tail; /* positions lo..hi are sampled evenly */
    for (unsigned i = 0; i < mid; i++)
        out[n++] = (unsigned)(lo + (hi - lo) * (i + 1) / (mid + 1));
    for (unsigned i = tail; i > 0; i--)
        out[n++] = (unsigned)(calls - i + 1);
    return n;
}

static int column(struct sweep_table *t, int err) {
    for (int i = 0; i < t->n_cols; i++) {
        if (t->cols[i] == err) return i;
    }
    cr_assert_lt(t->n_cols, SWEEP_MAX_ERRS);
    t->cols[t->n_cols] = err;
    return t->n_cols++;
}

/* The fault of the current run: armed once the loop is up, so only the scenario meets it. */
static struct {
    bool armed;
    enum zev_sys id;
    int err;
    unsigned position;
} fault;

static void arm_fault(void) {
    zev_fault_reset();
    if (!fault.armed) return;
    if (fault.err == SWEEP_SHORT) {
        zev_fault_short(fault.id, fault.position - 1, 1, 1); /* one byte, or one datagram */
    } else {
        zev_fault_fail(fault.id, fault.position - 1, 1, fault.err);
    }
}

/* One run on a fresh loop; the fault is disarmed before the loop closes. */
static void run_once(sweep_scenario_fn fn, struct sweep_outcome *o, uint64_t *calls,
                     uint64_t *hits) {
    int fds = zt_fd_count();
    zev_loop_t loop;
    int r = zev_loop_init(&loop);
    cr_assert_eq(r, 0, "zev_loop_init: %s (%d descriptors open)", zev_err_name(r), fds);
    *o = (struct sweep_outcome){.ok = true};
    arm_fault();
    fn(&loop, o);
    for (int i = 0; i < ZEV_SYS__COUNT; i++) {
        if (calls) calls[i] = zev_fault_calls((enum zev_sys)i);
        if (hits) hits[i] = zev_fault_hits((enum zev_sys)i);
    }
    zev_fault_reset();
    int err = zev_loop_close(&loop);
    if (err != 0) sweep_fail(o, "zev_loop_close: %s (a handle was left open)", zev_err_name(err));
    int now = zt_fd_count();
    if (now != fds) sweep_fail(o, "%d descriptors leaked", now - fds);
}

void sweep_count(struct sweep_table *t, sweep_scenario_fn fn) {
    struct sweep_outcome o;
    fault.armed = false;
    sweep_injected_err = 0;
    sweep_quiet_ends = false;
    run_once(fn, &o, t->clean_calls, NULL);
    cr_assert(o.ok, "%s: clean run: %s", t->title, o.why);
    cr_assert(o.complete && o.reported == 0 && !o.stalled,
              "%s: the clean run must complete without errors", t->title);
}

enum sweep_expect sweep_expect_of(enum zev_sys id, int err) {
    bool reads = id == ZEV_SYS_READ || id == ZEV_SYS_RECVMMSG || id == ZEV_SYS_RECVMSG;
    if (err == EINTR) return SWEEP_INVISIBLE;
    if (err == SWEEP_SHORT) return reads ? SWEEP_WAITS : SWEEP_INVISIBLE;
    if (err == EAGAIN && id != ZEV_SYS_CONNECT) return SWEEP_WAITS;
    return SWEEP_REPORTED;
}

/* The rules of issue 11 (see enum sweep_expect). Errors reported after the guard ended a
 * run (the cancellations of closing everything) are not counted. */
static void judge(struct sweep_outcome *o, enum sweep_expect expect, enum zev_sys id, int err) {
    if (!o->ok) return;
    /* The injected error reached one of the callbacks that own that syscall; anywhere else
     * only as the peer's natural consequence: a reset or a broken pipe also reaches the
     * other end of a connection the failure closed. */
    unsigned allowed = sweep_allowed_where(id);
    unsigned wrong = o->where & ~allowed;
    if (err == ECONNRESET || err == EPIPE) {
        wrong &= ~(unsigned)(SWEEP_AT_ERROR | SWEEP_AT_WRITE);
    }
    if (o->injected && !(o->where & allowed)) {
        sweep_fail(o, "the error reached only other callbacks (bits 0x%x)", o->where);
    }
    if (wrong) sweep_fail(o, "the error was reported at the wrong place (bits 0x%x)", wrong);
    const char *stall = o->stalled ? " (ended by the guard)" : "";
    switch (expect) {
    case SWEEP_INVISIBLE:
        if (!o->complete || o->reported) {
            sweep_fail(o, "%s%s, %d errors reported", o->complete ? "completed" : "incomplete",
                       stall, o->reported);
        }
        break;
    case SWEEP_WAITS:
        if (o->reported) sweep_fail(o, "%d errors reported%s", o->reported, stall);
        if (!o->complete && !o->stalled) sweep_fail(o, "incomplete, yet not waiting");
        break;
    case SWEEP_REPORTED:
        if (!o->complete && o->injected == 0) {
            sweep_fail(o, "incomplete%s and the error reached no callback (%d others reported)",
                       stall, o->reported);
        }
        break;
    }
}

void sweep_one(struct sweep_table *t, sweep_scenario_fn fn, enum zev_sys id, int err,
               unsigned position) {
    fault.armed = true;
    fault.id = id;
    fault.err = err;
    fault.position = position;
    sweep_injected_err = err;
    enum sweep_expect expect = sweep_expect_of(id, err);
    sweep_quiet_ends = expect == SWEEP_WAITS;
    struct sweep_outcome o;
    uint64_t hits[ZEV_SYS__COUNT];
    run_once(fn, &o, NULL, hits);
    fault.armed = false;
    sweep_injected_err = 0;
    sweep_quiet_ends = false;
    bool hit = hits[id] > 0;
    judge(&o, hit ? expect : SWEEP_INVISIBLE, id, err);
    t->runs++;
    if (!hit) {
        t->unreached++;
    } else {
        struct sweep_cell *c = &t->cells[id][column(t, err)];
        c->runs++;
        c->failures += !o.ok;
    }
    t->complete += o.complete;
    t->waited += hit && expect == SWEEP_WAITS && !o.complete;
    t->reported += o.reported > 0;
    t->stalled += o.stalled;
    if (o.ok) return;
    t->failures++;
    if (getenv("ZT_SWEEP_VERBOSE")) {
        fprintf(stderr, "FAILED %s: %s %s at call %u: %s\n", t->title, sweep_sys_name(id),
                err_label(err), position, o.why);
    }
    if (t->n_first < 4) {
        snprintf(t->first_failures[t->n_first++], sizeof(t->first_failures[0]),
                 "%s: %s %s at call %u: %s", t->title, sweep_sys_name(id), err_label(err), position,
                 o.why);
    }
}

/* Columns in a fixed order, so the tables of the scenarios line up. */
static const int col_order[] = {EINTR, EAGAIN,       ENOMEM, ENOBUFS, EMFILE,     ECONNRESET,
                                EPIPE, ECONNABORTED, ENOSPC, EIO,     SWEEP_SHORT};

void sweep_all(struct sweep_table *t, sweep_scenario_fn fn, const struct sweep_plan *plan,
               int n_plan, unsigned max_positions) {
    for (size_t i = 0; i < sizeof(col_order) / sizeof(col_order[0]); i++)
        (void)column(t, col_order[i]);
    sweep_count(t, fn);
    unsigned pos[64];
    cr_assert_leq(max_positions, 64);
    for (int p = 0; p < n_plan; p++) {
        uint64_t calls = t->clean_calls[plan[p].id];
        unsigned n = sweep_positions(calls, max_positions, pos);
        const char *only = getenv("ZT_SWEEP_ONLY"); /* one syscall, by its table name */
        if (only && strcmp(only, sweep_sys_name(plan[p].id)) != 0) continue;
        for (int e = 0; e < plan[p].n_errs; e++) {
            (void)column(t, plan[p].errs[e]);
            for (unsigned i = 0; i < n; i++)
                sweep_one(t, fn, plan[p].id, plan[p].errs[e], pos[i]);
        }
    }
}

void sweep_print(const struct sweep_table *t, FILE *f) {
    fprintf(f, "\nfault sweep: %s (%s backend); cell: runs/failures, '.': not swept\n", t->title,
            zev_backend_name());
    fprintf(f, "%-18s %6s", "syscall", "calls");
    for (int c = 0; c < t->n_cols; c++)
        fprintf(f, " %12s", err_label(t->cols[c]));
    fputc('\n', f);
    for (int id = 0; id < ZEV_SYS__COUNT; id++) {
        bool any = false;
        for (int c = 0; c < t->n_cols; c++)
            any |= t->cells[id][c].runs > 0;
        if (!any) continue;
        fprintf(f, "%-18s %6lu", sweep_sys_name((enum zev_sys)id),
                (unsigned long)t->clean_calls[id]);
        for (int c = 0; c < t->n_cols; c++) {
            const struct sweep_cell *x = &t->cells[id][c];
            char cell[24];
            if (x->runs) {
                snprintf(cell, sizeof(cell), "%u/%u", x->runs, x->failures);
            } else {
                snprintf(cell, sizeof(cell), ".");
            }
            fprintf(f, " %12s", cell);
        }
        fputc('\n', f);
    }
    fprintf(
        f,
        "%u runs: %u faults injected, %u not reached; %u completed, %u with an error "
        "reported, %u ended by the guard (%u of them waiting for an edge after EAGAIN or a short "
        "read); %u failures\n",
        t->runs, t->runs - t->unreached, t->unreached, t->complete, t->reported, t->stalled,
        t->waited, t->failures);
    for (int i = 0; i < t->n_first; i++)
        fprintf(f, "  FAILED %s\n", t->first_failures[i]);
}
