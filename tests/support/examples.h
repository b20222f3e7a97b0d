/* tests/support/examples.h: helpers of the example suites (tests/test_example*.c), which run the
 * example programs as child processes exactly as users run them and check them from outside
 * with plain POSIX sockets (an independent peer).
 *
 * Every suite uses the fixture examples_setup/examples_teardown: the teardown kills (by pid)
 * and reaps every child the test started and did not reap. Every wait is bounded by
 * IO_TIMEOUT_MS; every helper fails the test (a Criterion assertion) rather than return an
 * error. All traffic stays on 127.0.0.1 and ::1, on ephemeral ports.
 */
#ifndef ZT_EXAMPLES_H
#define ZT_EXAMPLES_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define IO_TIMEOUT_MS 10000
/* The most sockets hanging_target uses to fill an accept queue. */
#define MAX_FILLS 8

struct child {
    pid_t pid; /* 0 once reaped */
    int in;    /* write end of its stdin, or -1 */
    int out;   /* read end of its stdout */
    int err;   /* read end of its stderr */
};

/* The arguments of a server on an ephemeral port: {"--port", "0", NULL}. */
extern const char *const ephemeral[];

/* ---- child processes ---- */

/* Fixture: ignore SIGPIPE, forget the previous test's children. */
void examples_setup(void);
/* Fixture: kill and reap the children this test started and did not reap; close their pipes. */
void examples_teardown(void);
/* Close *fd if it is open and set it to -1. */
void close_fd(int *fd);
/* Start ZT_EXAMPLES_DIR/prog with args (NULL-terminated); stdin a pipe if with_stdin, else
 * /dev/null. */
struct child *spawn(const char *prog, const char *const *args, bool with_stdin);
/* As spawn with stdin_fd (which this closes in the test) as the child's stdin. */
struct child *spawn_stdin_fd(const char *prog, const char *const *args, int stdin_fd);
/* As spawn (stdin /dev/null), in a network namespace of its own with only a loopback that is
 * down: whatever the child tries to send cannot leave the machine. */
struct child *spawn_isolated(const char *prog, const char *const *args);
/* Whether this process may create network namespaces (spawn_isolated works). */
bool can_isolate(void);
/* Wait for the child to exit and return its exit status; kill it and fail on a timeout. */
int wait_exit(struct child *c);
/* Send sig to the child and expect a clean exit 0. */
void stop_with(struct child *c, int sig);
/* Stop with SIGTERM, expecting exit 0 and nothing on stderr (no sanitizer report). */
void stop_clean(struct child *srv);
/* Start a server; return the port of its "listening on HOST:PORT" line (host: "[::1]"...). */
struct child *start_server(const char *prog, const char *const *args, const char *host,
                           int *port_out);
/* Open socket descriptors of a running child, from /proc. */
int child_sockets(const struct child *c);
/* Poll until the child has want sockets open; fail (naming what) after IO_TIMEOUT_MS. */
void wait_child_sockets(const struct child *c, int want, const char *what);
/* Threads of a running child, from /proc/PID/task. */
int child_threads(const struct child *c);
/* VmRSS of a running child in KiB. */
long child_rss_kib(const struct child *c);

/* ---- reading ---- */

/* Read fd until EOF as a string (at most cap - 1 bytes); returns the length. */
size_t read_all(int fd, char *buf, size_t cap);
/* Read exactly n bytes (fewer only at EOF). */
size_t read_exact(int fd, char *buf, size_t n);
/* Read one line from fd (without the '\n'); fail at EOF before it. */
void read_line(int fd, char *buf, size_t cap);
/* Read until needle has appeared count times (or EOF), as a string; returns bytes read. */
size_t read_until_count(int fd, char *buf, size_t cap, const char *needle, int count);
/* Read until the peer closes (EOF or reset) or cap - 1 bytes, as a string; fail if still open. */
size_t read_until_closed(int fd, char *buf, size_t cap);
/* Read from fd until it ends, which must be a reset (ECONNRESET), not an orderly EOF. */
void expect_reset(int fd);

/* ---- a plain POSIX peer ---- */

/* A blocking TCP socket connected to host ("127.0.0.1" or "::1") and port. */
int connect_to(const char *host, int port);
/* Send out (then SHUT_WR if shut) while reading back until EOF or cap bytes; returns bytes read. */
size_t exchange(int fd, const char *out, size_t n_out, bool shut, char *in, size_t cap);
/* Close with a reset (SO_LINGER 0) instead of a FIN. */
void close_with_reset(int fd);
/* A 127.0.0.1 port that refuses connections: *holder is bound to it but does not listen. */
int refusing_port(int *holder);
/* A listener on 127.0.0.1 with this backlog, for a test to play a target; address to addr. */
int plain_listener(int backlog, struct sockaddr_in *addr);
/* Accept one connection within IO_TIMEOUT_MS. */
int accept_one(int listener);
/* A listener whose full accept queue drops every SYN (port to *port, fillers to fills). */
int hanging_target(int *port, int fills[MAX_FILLS], int *n_fills);
/* Close the n descriptors of fds. */
void close_all(int *fds, int n);
/* n bytes of a recognisable pattern, malloc'd; the caller frees it. */
char *pattern(size_t n);

#endif
