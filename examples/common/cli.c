/* examples/common/cli.c: flag parsing, "listening on", and error messages for the examples.
 *
 * The one piece of static state is the program name: messages may be printed from any
 * callback, and threading it through every call would only add noise to the examples.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog_name = "example";

const char *ex_prog(void) {
    return prog_name;
}

/* ---- messages ------------------------------------------------------------------------- */

__attribute__((format(printf, 2, 0))) static void vreport(int err, const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", prog_name);
    vfprintf(stderr, fmt, ap);
    if (err != 0) fprintf(stderr, ": %s (%s)", zev_err_name(err), zev_strerror(err));
    fputc('\n', stderr);
}

void ex_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(0, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help'.\n", prog_name);
    exit(EX_EXIT_USAGE);
}

void ex_fatal(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(err, fmt, ap);
    va_end(ap);
    exit(EX_EXIT_FAILURE);
}

void ex_fatal_at(int err, const char *what, const char *host, int port) {
    char where[EX_HOST_PORT_MAX];
    ex_fatal(err, "%s %s", what, ex_format_host_port(where, sizeof(where), host, port));
}

void ex_warn(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(err, fmt, ap);
    va_end(ap);
}

const char *ex_format_host_port(char *buf, size_t size, const char *host, int port) {
    if (strchr(host, ':')) {
        snprintf(buf, size, "[%s]:%d", host, port);
    } else {
        snprintf(buf, size, "%s:%d", host, port);
    }
    return buf;
}

void ex_print_listening(const zev_addr_info_t *info) {
    char text[EX_HOST_PORT_MAX];
    printf("listening on %s\n", ex_format_host_port(text, sizeof(text), info->address, info->port));
    fflush(stdout);
}

void ex_print_backend(const char *name, const char *why) {
    printf("backend: %s (%s)\n", name ? name : "unknown", why ? why : "no reason given");
    fflush(stdout);
}

/* ---- parsing -------------------------------------------------------------------------- */

int ex_parse_port(const char *text, int min, int *port) {
    size_t n = strlen(text);
    if (n == 0 || n > 5 || strspn(text, "0123456789") != n) return -1;
    int v = atoi(text);
    if (v < min || v > 65535) return -1;
    *port = v;
    return 0;
}

static int is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Host-name syntax as zev_resolve takes it: dot-separated labels of 1..63 letters, digits,
 * '-' or '_' (names in /etc/hosts use them), 253 bytes at most, an optional final dot, and a
 * last label not all digits (so "127.0.0.256" is a bad address, not a name). */
int ex_is_host_name(const char *text) {
    size_t label = 0;
    int digits_only = 1;
    size_t i = 0;
    for (; text[i]; i++) {
        if (i >= 253) return 0;
        if (text[i] == '.') {
            if (label == 0) return 0;
            if (text[i + 1] == '\0') break;
            label = 0;
            digits_only = 1;
            continue;
        }
        if (!is_name_char(text[i]) || ++label > 63) return 0;
        digits_only = digits_only && text[i] >= '0' && text[i] <= '9';
    }
    return i > 0 && !digits_only;
}

/* host_len bytes of text into host: an address of the wanted family (0: either), or a host
 * name if names is set. */
static int take_host(const char *text, size_t host_len, int family, int names, char *host) {
    if (host_len == 0 || host_len >= EX_HOST_MAX) return -1;
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    int f = zev_ip_family(host);
    if (f == 0) return names && ex_is_host_name(host) ? 0 : -1;
    return family == 0 || f == family ? 0 : -1;
}

int ex_parse_host_port(const char *text, const char *default_host, int min_port, char *host,
                       int *port, const char **why) {
    const char *port_text;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' ||
            take_host(text + 1, (size_t)(close - text - 1), 6, 0, host)) {
            *why = "expected [IPV6]:PORT";
            return -1;
        }
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon) {
            if (!default_host) {
                *why = "expected HOST:PORT";
                return -1;
            }
            snprintf(host, EX_HOST_MAX, "%s", default_host);
            port_text = text;
        } else if (strchr(text, ':') != colon) {
            *why = "write an IPv6 address in brackets: [ADDR]:PORT";
            return -1;
        } else if (take_host(text, (size_t)(colon - text), 4, 1, host)) {
            *why = "the host must be an IPv4 address or a host name";
            return -1;
        } else {
            port_text = colon + 1;
        }
    }
    if (ex_parse_port(port_text, min_port, port)) {
        *why = min_port > 0 ? "the port must be 1..65535" : "the port must be 0..65535";
        return -1;
    }
    return 0;
}

/* ---- flags ---------------------------------------------------------------------------- */

void ex_args_init(ex_args_t *a, int argc, char **argv, const char *usage) {
    *a = (ex_args_t){.argc = argc, .argv = argv, .next = 1, .usage = usage};
    if (argc > 0 && argv[0] && argv[0][0]) {
        const char *slash = strrchr(argv[0], '/');
        prog_name = slash ? slash + 1 : argv[0];
    }
}

const char *ex_args_next(ex_args_t *a) {
    if (a->inline_value) ex_usage_error("option '%s' takes no value", a->flag);
    if (a->next >= a->argc) return NULL;
    const char *arg = a->argv[a->next++];
    if (arg[0] != '-' || arg[1] == '\0') ex_usage_error("unexpected argument '%s'", arg);
    a->flag = arg;
    const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    if (eq) {
        size_t n = (size_t)(eq - arg);
        if (n >= sizeof(a->flag_buf)) ex_usage_error("unknown option '%s'", arg);
        memcpy(a->flag_buf, arg, n);
        a->flag_buf[n] = '\0';
        a->flag = a->flag_buf;
        a->inline_value = eq + 1;
    }
    if (ex_args_is(a, "--help") || ex_args_is(a, "-h")) {
        if (a->inline_value) ex_usage_error("option '%s' takes no value", a->flag);
        fputs(a->usage, stdout);
        fflush(stdout);
        exit(EX_EXIT_OK);
    }
    return a->flag;
}

int ex_args_is(const ex_args_t *a, const char *name) {
    return a->flag && strcmp(a->flag, name) == 0;
}

const char *ex_args_value(ex_args_t *a) {
    if (a->inline_value) {
        const char *v = a->inline_value;
        a->inline_value = NULL;
        return v;
    }
    if (a->next >= a->argc) ex_usage_error("option '%s' needs a value", a->flag);
    return a->argv[a->next++];
}

const char *ex_args_host(ex_args_t *a) {
    const char *v = ex_args_value(a);
    if (zev_ip_family(v) == 0 && !ex_is_host_name(v)) {
        ex_usage_error("invalid host '%s' for %s (an IPv4 or IPv6 address, or a host name)", v,
                       a->flag);
    }
    return v;
}

const char *ex_args_address(ex_args_t *a) {
    const char *v = ex_args_value(a);
    if (zev_ip_family(v) == 0) {
        ex_usage_error("invalid address '%s' for %s (a numeric IPv4 or IPv6 address)", v, a->flag);
    }
    return v;
}

int ex_args_port(ex_args_t *a, int min) {
    const char *v = ex_args_value(a);
    int port = 0;
    if (ex_parse_port(v, min, &port)) {
        ex_usage_error("invalid port '%s' for %s (expected %d..65535)", v, a->flag, min);
    }
    return port;
}

unsigned ex_args_uint(ex_args_t *a, unsigned min, unsigned max) {
    const char *v = ex_args_value(a);
    size_t n = strlen(v);
    unsigned long long x = n > 0 && n <= 10 && strspn(v, "0123456789") == n
                               ? strtoull(v, NULL, 10)
                               : (unsigned long long)max + 1;
    if (x < min || x > max) {
        ex_usage_error("invalid value '%s' for %s (expected %u..%u)", v, a->flag, min, max);
    }
    return (unsigned)x;
}

void ex_args_host_port(ex_args_t *a, const char *default_host, int min_port, char *host,
                       int *port) {
    const char *v = ex_args_value(a);
    const char *why = NULL;
    if (ex_parse_host_port(v, default_host, min_port, host, port, &why)) {
        ex_usage_error("invalid address '%s' for %s: %s", v, a->flag, why);
    }
}

void ex_args_unknown(const ex_args_t *a) {
    ex_usage_error("unknown option '%s'", a->flag);
}
