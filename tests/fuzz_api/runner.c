/* tests/fuzz_api/runner.c: the stand-alone API fuzzer (scripts/fuzz-api runs it).
 *
 *   fuzz_api --seed N [--ops N] [--verbose]     one seed, in this process: a reproduction
 *   fuzz_api --seconds S [--first-seed N]       random seeds for S seconds, each in a child
 *
 * Each seed of a timed run runs in its own child process with an alarm, so a crash, a
 * sanitizer report or a hang is caught and reported with its seed. Stops at the first
 * failing seed (--keep-going: carry on) and prints seeds, operations and operations/s.
 */
#include "fuzz.h"

#include <zev.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct fz_result progress; /* a failing seed's counts, filled by fz_run */

/* In a child, ctx points at the pipe to the parent: the counts of a failing seed still go
 * there, so that operations/s counts every operation done. */
static _Noreturn void fail_exit(const char *report, void *ctx) {
    fputs(report, stderr);
    fflush(stderr);
    if (ctx) {
        const int *fd = ctx;
        ssize_t n = write(*fd, &progress, sizeof(progress));
        (void)n;
    }
    _exit(1);
}

static void usage(void) {
    fprintf(stderr, "usage: fuzz_api [--seed N | --seconds S [--first-seed N] [--keep-going]]\n"
                    "                [--ops N] [--max-ms MS] [--weights name=w,...] [--verbose]\n");
    exit(2);
}

/* One seed in a child. Returns 0 if it passed; fills *res from the child's pipe. */
static int run_child(const struct fz_options *o, struct fz_result *res) {
    int fds[2];
    if (pipe(fds) < 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        alarm(o->max_ms / 1000 + 15); /* the engine bounds itself; this catches a hang in it */
        struct fz_result r = {0};
        struct fz_options child = *o;
        child.ctx = &fds[1];
        child.progress = &progress;
        fz_run(&child, &r);
        ssize_t n = write(fds[1], &r, sizeof(r));
        _exit(n == (ssize_t)sizeof(r) ? 0 : 3);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], res, sizeof(*res));
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "api_fuzz FAILED: seed %" PRIu64 ": killed by signal %d (%s)%s\n"
                "reproduce: fuzz_api --seed %" PRIu64 " --ops %u%s%s\n",
                o->seed, WTERMSIG(status), strsignal(WTERMSIG(status)),
                WTERMSIG(status) == SIGALRM ? ": the run hung" : "", o->seed, o->max_ops,
                o->weights ? " --weights " : "", o->weights ? o->weights : "");
        return 1;
    }
    if (n != (ssize_t)sizeof(*res)) *res = (struct fz_result){0};
    return (WEXITSTATUS(status) == 0 && n == (ssize_t)sizeof(*res)) ? 0 : 1;
}

int main(int argc, char **argv) {
    struct fz_options o = {.max_ops = 2000, .max_ms = 20000, .on_fail = fail_exit};
    int one_seed = 0, keep_going = 0;
    double seconds = 0;
    uint64_t first = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) {
            o.verbose = 1;
        } else if (!strcmp(a, "--keep-going")) {
            keep_going = 1;
        } else if (!v) {
            usage();
        } else if (!strcmp(a, "--seed")) {
            o.seed = strtoull(v, NULL, 0);
            one_seed = 1;
            i++;
        } else if (!strcmp(a, "--first-seed")) {
            first = strtoull(v, NULL, 0);
            i++;
        } else if (!strcmp(a, "--seconds")) {
            seconds = atof(v);
            i++;
        } else if (!strcmp(a, "--ops")) {
            o.max_ops = (unsigned)strtoul(v, NULL, 0);
            i++;
        } else if (!strcmp(a, "--weights")) {
            o.weights = v;
            i++;
        } else if (!strcmp(a, "--max-ms")) {
            o.max_ms = (unsigned)strtoul(v, NULL, 0);
            i++;
        } else {
            usage();
        }
    }
    /* SIGPIPE keeps its default action: zev promises never to raise it, and a seed that does
     * must die of it and be reported. */
    if (one_seed) {
        struct fz_result r;
        uint64_t t0 = zev_hrtime();
        fz_run(&o, &r);
        double s = (double)(zev_hrtime() - t0) / 1e9;
        printf("fuzz_api: %s: seed %" PRIu64 " passed: %u ops, %" PRIu64 " bytes checked, "
               "%u connects, %u closes in %.2f s%s\n", zev_backend_name(), o.seed, r.ops,
               r.bytes, r.connects_ok, r.closes, s, r.out_of_time ? " (hit the time bound)" : "");
        return 0;
    }
    if (seconds <= 0) usage();
    uint64_t t0 = zev_hrtime(), ops = 0, seeds = 0, failures = 0;
    uint64_t end = t0 + (uint64_t)(seconds * 1e9);
    for (uint64_t seed = first; zev_hrtime() < end; seed++) {
        o.seed = seed;
        struct fz_result r = {0};
        int bad = run_child(&o, &r);
        seeds++;
        ops += r.ops;
        if (bad) {
            failures++;
            if (!keep_going) break;
        }
    }
    double s = (double)(zev_hrtime() - t0) / 1e9;
    printf("fuzz_api: %s: %" PRIu64 " seeds, %" PRIu64 " ops in %.1f s (%.0f ops/s), "
           "%" PRIu64 " failed\n", zev_backend_name(), seeds, ops, s, (double)ops / s, failures);
    return failures ? 1 : 0;
}
