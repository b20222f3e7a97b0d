/* tests/support/sweep.h: the driver of the fault sweep (tests/test_fault_sweep.c).
 *
 * A scenario is a function that sets up handles on a fresh loop, runs it to the end and says
 * what happened. The driver runs it once clean to count the calls it makes of each syscall,
 * then once per (syscall, error, call position): it arms one fault through the syscall seam
 * (src/reactor/sys_fault.h), runs the scenario on a fresh loop, and checks what every run must
 * end with: the scenario's own verdict, no buffer reference left, zev_loop_close() == 0 and no
 * descriptor leaked. It tallies a table of syscalls x errors (runs / failures) printed to
 * stderr. Leaks of memory are LeakSanitizer's job when the process exits.
 */
#ifndef ZT_SWEEP_H
#define ZT_SWEEP_H

#include "sys_fault.h"
#include "zev.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SWEEP_SHORT 0 /* "error" of a fault that shortens a transfer instead of failing it */

/* What a scenario saw. ok is set by the scenario's own checks; why says what broke. */
struct sweep_outcome {
    bool ok;
    bool complete;  /* every byte (datagram) arrived and was checked */
    int reported;   /* errors delivered to callbacks or returned by API calls */
    int injected;   /* how many of those were the injected errno itself */
    unsigned where; /* SWEEP_AT_* bits: where the injected errno was reported */
    bool stalled;   /* the guard timer had to end the run */
    char why[160];
};

/* Run one scenario on loop (already initialised); fill o. */
typedef void (*sweep_scenario_fn)(zev_loop_t *loop, struct sweep_outcome *o);

/* A syscall and the errors it can plausibly return (SWEEP_SHORT: a short count). */
struct sweep_plan {
    enum zev_sys id;
    int errs[8];
    int n_errs;
};

enum { SWEEP_MAX_ERRS = 16 };

struct sweep_cell {
    unsigned runs;     /* runs in which the fault was injected */
    unsigned failures; /* of those, runs that broke a rule */
};

struct sweep_table {
    const char *title;
    int cols[SWEEP_MAX_ERRS]; /* the errors, in order of first use */
    int n_cols;
    struct sweep_cell cells[ZEV_SYS__COUNT][SWEEP_MAX_ERRS];
    uint64_t clean_calls[ZEV_SYS__COUNT];
    unsigned runs, unreached, failures, complete, reported, stalled, waited;
    char first_failures[4][240];
    int n_first;
};

/* Positions (1-based call numbers) to fault for a syscall called `calls` times in the clean
 * run: all of them up to max, else the first max/2, the last max/4 and evenly spaced ones in
 * between; deterministic. Returns how many were written to out (at most max). */
unsigned sweep_positions(uint64_t calls, unsigned max, unsigned *out);
/* Count calls of one clean run of fn into t->clean_calls; it must complete. */
void sweep_count(struct sweep_table *t, sweep_scenario_fn fn);
/* Run fn with err injected at the position-th call of id, check it, record it in t. */
void sweep_one(struct sweep_table *t, sweep_scenario_fn fn, enum zev_sys id, int err,
               unsigned position);
/* The whole sweep of one scenario: every plan entry, every sampled position. */
void sweep_all(struct sweep_table *t, sweep_scenario_fn fn, const struct sweep_plan *plan,
               int n_plan, unsigned max_positions);
/* Print the table to f. */
void sweep_print(const struct sweep_table *t, FILE *f);
/* Name of a seam entry ("accept4", "read", ...). */
const char *sweep_sys_name(enum zev_sys id);

/* Ends a run that stopped moving: every callback bumps progress; a tick that finds none
 * after an error was reported ends the run (some documented paths wait for the next arrival,
 * which never comes in a finished scenario); with no error reported it waits up to 5 s, then
 * ends the run as stalled, which the driver counts as a failure. stop closes every handle. */
struct sweep_guard {
    zev_timer_t timer;
    uint64_t progress;
    uint64_t seen;
    int ticks;
    int quiet;
    struct sweep_outcome *o;
    void (*stop)(void *ctx);
    void *ctx;
};

void sweep_guard_start(struct sweep_guard *g, zev_loop_t *loop, struct sweep_outcome *o,
                       void (*stop)(void *ctx), void *ctx);
/* Close the guard's timer once the scenario is over (idempotent). */
void sweep_guard_done(struct sweep_guard *g);
/* Run loop until nothing is alive; a failed zev_run (a poll error) is a reported error. */
void sweep_run_loop(zev_loop_t *loop, struct sweep_outcome *o);
/* Where an error was reported. */
enum {
    SWEEP_AT_CALL = 1u << 0,       /* returned by an API call */
    SWEEP_AT_RUN = 1u << 1,        /* returned by zev_run */
    SWEEP_AT_CONNECTION = 1u << 2, /* a listener's connection callback */
    SWEEP_AT_CONNECT = 1u << 3,    /* a connect callback */
    SWEEP_AT_ERROR = 1u << 4,      /* a socket's error event */
    SWEEP_AT_WRITE = 1u << 5,      /* a write callback */
    SWEEP_AT_MESSAGE = 1u << 6,    /* a UDP message callback */
    SWEEP_AT_SEND = 1u << 7,       /* a UDP send callback */
};

/* Record an error a callback or call reported, and where (SWEEP_AT_*; 0: counted already). */
void sweep_report(struct sweep_outcome *o, int status, unsigned where);
/* Where a failure of syscall id may be reported: the right callbacks. */
unsigned sweep_allowed_where(enum zev_sys id);
/* Record a broken rule (the first one is kept). */
void sweep_fail(struct sweep_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The error the current run injects (0: none or a short count), for sweep_report. */
extern int sweep_injected_err;

/* What a run with a fault must end with, beside the rules every run keeps.
 *   INVISIBLE: everything delivered, nothing reported (EINTR, retried; a short send, resumed;
 *              and any run the fault never reached).
 *   WAITS:     nothing reported, and either everything delivered or the run stopped moving
 *              (EAGAIN; a short read). A kernel says EAGAIN, or reads short, only when it has
 *              nothing more (or no room), and raises a new readiness edge when that changes;
 *              zev, edge-triggered like every epoll/kqueue reactor, waits for that edge. An
 *              injected one raises no edge, so where the scenario sends nothing more the run
 *              waits for ever: the guard ends it, which is the documented behaviour.
 *   REPORTED:  everything delivered, or the injected error reached a callback (or the caller)
 *              as itself. */
enum sweep_expect { SWEEP_INVISIBLE, SWEEP_WAITS, SWEEP_REPORTED };

enum sweep_expect sweep_expect_of(enum zev_sys id, int err);

/* Set while the current run's fault is one after which waiting is allowed (the guard then
 * ends a run that stopped moving after two quiet ticks). */
extern bool sweep_quiet_ends;

#endif
