/* examples/common/cli.h: what every example program's command line shares: flag parsing with
 * exact error messages, "listening on HOST:PORT", and error reports with the errno name.
 *
 * Exit statuses are the same for every example: 0 success, 1 a failure at run time
 * (ex_fatal), 2 a bad command line (ex_usage_error). The program name in messages is the
 * basename of argv[0], taken by ex_args_init. Signals and shutdown live in shutdown.h.
 *
 * Typical use:
 *     ex_args_t a;
 *     ex_args_init(&a, argc, argv, USAGE);
 *     while (ex_args_next(&a)) {
 *         if (ex_args_is(&a, "--host")) host = ex_args_host(&a);
 *         else if (ex_args_is(&a, "--port")) port = ex_args_port(&a, 0);
 *         else ex_args_unknown(&a);
 *     }
 */
#ifndef EX_CLI_H
#define EX_CLI_H

#include <zev.h>

#include <stddef.h>
#include <stdnoreturn.h>

enum { EX_EXIT_OK = 0, EX_EXIT_FAILURE = 1, EX_EXIT_USAGE = 2 };

/* Room for a host as given on the command line: a host name (253 bytes at most) or an
 * address text. */
#define EX_HOST_MAX 256
/* Room for "[HOST]:65535". */
#define EX_HOST_PORT_MAX (EX_HOST_MAX + 8)

/* The program's name for messages ("zev-echo-server"); "example" before ex_args_init. */
const char *ex_prog(void);

/* ---- flags ---------------------------------------------------------------------------- */

typedef struct {
    int argc;
    char **argv;
    int next;                 /* index of the next argv entry */
    const char *usage;        /* printed to stdout by --help / -h */
    const char *flag;         /* the current flag ("--port") */
    char flag_buf[64];        /* the flag's name when given as "--port=N" */
    const char *inline_value; /* the N of "--port=N", until a getter takes it */
} ex_args_t;

/* Start parsing; sets the program name. usage is the full --help text (ends in '\n'). */
void ex_args_init(ex_args_t *a, int argc, char **argv, const char *usage);
/* The next flag, or NULL at the end. Handles --help and -h itself (usage on stdout, exit 0).
 * Exits 2 on a positional argument or a value given to a flag that takes none. */
const char *ex_args_next(ex_args_t *a);
/* 1 if the current flag is name. */
int ex_args_is(const ex_args_t *a, const char *name);
/* The current flag's value ("--flag V" or "--flag=V"); exits 2 if it is missing. */
const char *ex_args_value(ex_args_t *a);
/* A numeric IPv4 or IPv6 address or a host name (resolved later: names.h, or by
 * zev_tcp_connect); exits 2 on text that is neither. */
const char *ex_args_host(ex_args_t *a);
/* A numeric IPv4 or IPv6 address only (a multicast group); exits 2 otherwise. */
const char *ex_args_address(ex_args_t *a);
/* A port min..65535 (min is 0 where 0 means ephemeral, else 1); exits 2 otherwise. */
int ex_args_port(ex_args_t *a, int min);
/* A decimal integer min..max; exits 2 otherwise. */
unsigned ex_args_uint(ex_args_t *a, unsigned min, unsigned max);
/* "HOST:PORT" (HOST an IPv4 address or a host name), "[IPV6]:PORT", or "PORT" alone if
 * default_host is not NULL (then host is default_host). host gets EX_HOST_MAX bytes.
 * Exits 2 on anything else. */
void ex_args_host_port(ex_args_t *a, const char *default_host, int min_port, char *host, int *port);
/* Report the current flag as unknown; exits 2. */
noreturn void ex_args_unknown(const ex_args_t *a);

/* ---- parsing without exiting (for programs with their own syntax) ---------------------- */

/* 1 if text has the syntax of a host name (not whether it resolves), else 0. */
int ex_is_host_name(const char *text);
/* Parse a decimal port min..65535 into *port. 0 or -1 (bad text or range). */
int ex_parse_port(const char *text, int min, int *port);
/* Parse "[HOST:]PORT" as ex_args_host_port does. 0, or -1 with *why set to a reason. */
int ex_parse_host_port(const char *text, const char *default_host, int min_port, char *host,
                       int *port, const char **why);
/* "127.0.0.1:8431" or "[::1]:8431" into buf (EX_HOST_PORT_MAX bytes); returns buf. */
const char *ex_format_host_port(char *buf, size_t size, const char *host, int port);

/* ---- messages ------------------------------------------------------------------------- */

/* Print "listening on HOST:PORT" (IPv6 in brackets) on stdout and flush it. */
void ex_print_listening(const zev_addr_info_t *info);
/* Print "backend: NAME (HOW)" on stdout and flush it: what zev_loop_backend says a loop runs
 * and how it was chosen, so a benchmark can check that ZEV_BACKEND took effect. */
void ex_print_backend(const char *name, const char *why);
/* "PROG: MESSAGE\nTry 'PROG --help'." on stderr, exit 2. */
noreturn void ex_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROG: WHAT: ENAME (text)" on stderr (just "PROG: WHAT" if err is 0), exit 1. err is a
 * negative errno as zev returns them. */
noreturn void ex_fatal(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ex_fatal for a failure at an address: "PROG: WHAT HOST:PORT: ENAME (text)", exit 1. */
noreturn void ex_fatal_at(int err, const char *what, const char *host, int port);
/* As ex_fatal without exiting: for failures that end one connection, not the program. */
void ex_warn(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* EX_CLI_H */
