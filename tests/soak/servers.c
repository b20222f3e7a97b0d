/* tests/soak/servers.c: the servers under soak, as processes: start one and learn its port,
 * read its descriptors and peak memory from /proc, stop it with SIGTERM and judge its exit.
 *
 * A server's stdout is a pipe (its "listening on HOST:PORT" line gives the port it bound with
 * --port 0); its stderr is a memfd, read back at the end, so warnings are shown without a pipe
 * that could fill up and block it. PR_SET_PDEATHSIG kills it if zev-soak dies first, so no
 * run leaves a server behind. Servers are only ever signalled by the PID fork() returned.
 */
#include "soak.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 5000

static void sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Read the first line from fd within timeout_ms. */
static int read_line(int fd, char *line, size_t len, unsigned timeout_ms) {
    size_t used = 0;
    uint64_t deadline = soak_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (used + 1 < len) {
        uint64_t now = soak_now_ns();
        if (now >= deadline) return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
        if (r < 0 && errno != EINTR) return -1;
        if (r <= 0) continue;
        ssize_t n = read(fd, line + used, 1); /* a byte at a time: stop right at the newline */
        if (n <= 0) return -1;
        if (line[used] == '\n') break;
        used++;
    }
    line[used] = '\0';
    return 0;
}

static void child_exec(int out_w, int log_fd, char *const argv[]) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (dup2(out_w, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0) _exit(127);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int server_start(struct server *s, const char *name, char *const argv[]) {
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->pid = -1;
    int out[2];
    s->log_fd = memfd_create(name, MFD_CLOEXEC);
    if (s->log_fd < 0 || pipe2(out, O_CLOEXEC) < 0) {
        perror("zev-soak: memfd/pipe");
        return -1;
    }
    s->out_fd = out[0];
    s->pid = fork();
    if (s->pid < 0) {
        perror("zev-soak: fork");
        return -1;
    }
    if (s->pid == 0) child_exec(out[1], s->log_fd, argv);
    close(out[1]);
    char line[256];
    const char *colon;
    if (read_line(s->out_fd, line, sizeof(line), START_TIMEOUT_MS) < 0 ||
        strncmp(line, "listening on ", 13) != 0 || !(colon = strrchr(line, ':'))) {
        fprintf(stderr, "zev-soak: %s did not say 'listening on HOST:PORT' within %d ms\n", name,
                START_TIMEOUT_MS);
        server_print_log(s, 20);
        return -1;
    }
    s->port = atoi(colon + 1);
    int fds = server_fd_count(s);
    s->fds_start = fds < 0 ? 0 : (unsigned)fds;
    return 0;
}

int server_fd_count(const struct server *s) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)s->pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n;
}

/* A server closes a connection when it processes the FIN or RST, a little after our close();
 * poll until the count is back, and keep what it ended at. */
void server_settle_fds(struct server *s, unsigned timeout_ms) {
    for (unsigned waited = 0;; waited += 20) {
        int n = server_fd_count(s);
        s->fds_end = n < 0 ? 0 : (unsigned)n;
        if (s->fds_end == s->fds_start || waited >= timeout_ms) return;
        sleep_ms(20);
    }
}

/* utime and stime, fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the
 * command name (which may itself hold spaces). */
static void read_cpu(struct server *s) {
    char path[64];
    char buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (p &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
        s->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
}

void server_read_usage(struct server *s) {
    read_cpu(s);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kib;
        if (sscanf(line, "VmHWM: %llu kB", &kib) == 1) s->hwm_kib = kib;
    }
    fclose(f);
}

int server_stop(struct server *s, unsigned timeout_ms) {
    if (s->pid <= 0) return -1;
    uint64_t t0 = soak_now_ns();
    kill(s->pid, SIGTERM);
    int status = 0;
    pid_t r = 0;
    for (unsigned waited = 0; r == 0 && waited < timeout_ms; waited += 2) {
        r = waitpid(s->pid, &status, WNOHANG);
        if (r == 0) sleep_ms(2);
    }
    s->exit_ms = (double)(soak_now_ns() - t0) / 1e6;
    if (r == 0) { /* still running: it ignored SIGTERM; do not leave it behind */
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        s->exited = 0;
    } else {
        s->exited = r == s->pid;
    }
    s->exit_status = status;
    s->pid = -1;
    close(s->out_fd);
    return s->exited && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

unsigned server_print_log(const struct server *s, unsigned max_lines) {
    char buf[4096];
    char line[512];
    size_t used = 0;
    unsigned lines = 0;
    off_t at = 0;
    ssize_t n;
    while ((n = pread(s->log_fd, buf, sizeof(buf), at)) > 0) {
        at += n;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (used + 1 < sizeof(line)) line[used++] = buf[i];
                continue;
            }
            line[used] = '\0';
            if (lines++ < max_lines) fprintf(stderr, "    %s: %s\n", s->name, line);
            used = 0;
        }
    }
    return lines;
}
