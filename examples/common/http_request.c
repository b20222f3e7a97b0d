/* examples/common/http_request.c: the streaming request-head parser (http_request.h).
 *
 * One byte at a time through a small state machine, so a request split anywhere by the reads
 * parses exactly as when whole; bodies are skipped in bulk. Every byte is looked at only
 * through data[i] with i < len, and the few words the parser compares (header names,
 * Connection tokens, "HTTP/") are held in fixed arrays compared by explicit length: there is
 * no string literal to run past, whatever the peer sends.
 */
#include "http_request.h"

#include <string.h>

enum state {
    S_START,    /* before a request line; empty lines allowed */
    S_START_CR, /* CR of an empty line before a request */
    S_METHOD,
    S_TARGET0, /* first byte of the target */
    S_TARGET,
    S_VERSION, /* "HTTP/": sub counts the bytes matched */
    S_V_MAJOR,
    S_V_DOT,
    S_V_MINOR,
    S_V_END, /* after the minor digit: CR or LF */
    S_RL_CR, /* CR ending the request line */
    S_LINE,  /* start of a header line, or of the empty line ending the head */
    S_NAME,
    S_VALUE,
    S_VALUE_CR,
    S_END_CR, /* CR of the empty line ending the head */
    S_BODY,
    S_OVER, /* an error, or a request that ends the connection: p->err is repeated */
};

enum field { F_OTHER, F_CONTENT_LENGTH, F_TRANSFER_ENCODING, F_CONNECTION };
enum { SEEN_LENGTH = 1, SEEN_TE = 2 };
enum { CONN_CLOSE = 1, CONN_KEEP_ALIVE = 2 };
/* Content-Length value: OWS, digits, OWS. */
enum { CL_LEAD, CL_DIGITS, CL_TRAIL };

/* Not a result: the byte was taken and the head goes on. */
#define STEP_OK 2

static bool is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c) {
    return c == ' ' || c == '\t';
}

/* Visible ASCII, or a byte >= 0x80 (obs-text, passed through as nginx does). */
static bool is_visible(unsigned char c) {
    return (c > 0x20 && c < 0x7f) || c >= 0x80;
}

static unsigned char lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static void tok_reset(ex_http_parser_t *p) {
    p->tok_len = 0;
}

static void tok_push(ex_http_parser_t *p, unsigned char c) {
    if (p->tok_len < EX_HTTP_TOKEN_KEEP) p->tok[p->tok_len] = (char)lower(c);
    if (p->tok_len < 255) p->tok_len++;
}

/* The token is exactly word (lower case); compares only bytes the token holds. */
static bool tok_is(const ex_http_parser_t *p, const char *word) {
    size_t n = strlen(word);
    return p->tok_len == n && n <= EX_HTTP_TOKEN_KEEP && memcmp(p->tok, word, n) == 0;
}

static void begin_request(ex_http_parser_t *p) {
    memset(&p->cur, 0, sizeof(p->cur));
    p->method_len = 0;
    p->seen = 0;
    p->conn = 0;
    p->major = 0;
    p->state = S_START;
}

void ex_http_parser_init(ex_http_parser_t *p, size_t max_head) {
    memset(p, 0, sizeof(*p));
    p->max_head = max_head > 0 ? max_head : 1;
    begin_request(p);
}

bool ex_http_parser_idle(const ex_http_parser_t *p) {
    return p->state == S_START && p->cur.head_bytes == 0;
}

bool ex_http_parser_in_body(const ex_http_parser_t *p) {
    return p->state == S_BODY;
}

/* ---- request line ------------------------------------------------------------------------ */

static int step_start(ex_http_parser_t *p, unsigned char c) {
    if (p->state == S_START_CR) {
        if (c != '\n') return EX_HTTP_E_LINE_END;
        p->state = S_START;
        return STEP_OK;
    }
    if (c == '\r') {
        p->state = S_START_CR;
        return STEP_OK;
    }
    if (c == '\n') return STEP_OK;
    if (!is_tchar(c)) return EX_HTTP_E_METHOD;
    p->state = S_METHOD;
    p->cur.method[p->method_len++] = (char)c;
    return STEP_OK;
}

static int step_method(ex_http_parser_t *p, unsigned char c) {
    if (c == ' ') {
        p->state = S_TARGET0;
        return STEP_OK;
    }
    if (!is_tchar(c) || p->method_len == EX_HTTP_METHOD_MAX) return EX_HTTP_E_METHOD;
    p->cur.method[p->method_len++] = (char)c;
    return STEP_OK;
}

static int step_target(ex_http_parser_t *p, unsigned char c) {
    if (c == ' ' && p->state == S_TARGET) {
        p->state = S_VERSION;
        p->sub = 0;
        return STEP_OK;
    }
    if (!is_visible(c)) return EX_HTTP_E_TARGET;
    if (p->cur.target_len < EX_HTTP_TARGET_KEEP) p->cur.target[p->cur.target_len] = (char)c;
    p->cur.target_len++;
    p->state = S_TARGET;
    return STEP_OK;
}

static int step_version(ex_http_parser_t *p, unsigned char c) {
    static const char http[5] = {'H', 'T', 'T', 'P', '/'};
    switch (p->state) {
    case S_VERSION:
        if (p->sub >= sizeof(http) || c != (unsigned char)http[p->sub]) return EX_HTTP_E_VERSION;
        if (++p->sub == sizeof(http)) p->state = S_V_MAJOR;
        return STEP_OK;
    case S_V_MAJOR:
        if (c < '0' || c > '9') return EX_HTTP_E_VERSION;
        p->major = c - '0';
        p->state = S_V_DOT;
        return STEP_OK;
    case S_V_DOT:
        if (c != '.') return EX_HTTP_E_VERSION;
        p->state = S_V_MINOR;
        return STEP_OK;
    case S_V_MINOR:
        if (c < '0' || c > '9') return EX_HTTP_E_VERSION;
        p->cur.version_minor = c - '0';
        p->state = S_V_END;
        return STEP_OK;
    case S_V_END:
        if (c != '\r' && c != '\n') return EX_HTTP_E_VERSION;
        if (p->major != 1) return EX_HTTP_E_VERSION_MAJOR;
        p->state = c == '\r' ? S_RL_CR : S_LINE;
        return STEP_OK;
    default: /* S_RL_CR */
        if (c != '\n') return EX_HTTP_E_LINE_END;
        p->state = S_LINE;
        return STEP_OK;
    }
}

/* ---- headers ----------------------------------------------------------------------------- */

static int head_complete(ex_http_parser_t *p) {
    if ((p->seen & SEEN_LENGTH) && (p->seen & SEEN_TE)) return EX_HTTP_E_FRAMING;
    ex_http_request_t *r = &p->cur;
    r->unframed = (p->seen & SEEN_TE) != 0;
    if (r->version_minor == 0) {
        r->keep_alive = (p->conn & CONN_KEEP_ALIVE) && !(p->conn & CONN_CLOSE);
    } else {
        r->keep_alive = !(p->conn & CONN_CLOSE);
    }
    if (r->unframed) r->keep_alive = false;
    p->req = *r;
    uint64_t body = r->content_length;
    bool keep = r->keep_alive;
    begin_request(p);
    if (!keep) {
        p->state = S_OVER;
        p->err = EX_HTTP_E_CLOSED;
    } else if (body > 0) {
        p->state = S_BODY;
        p->body_left = body;
    }
    return EX_HTTP_DONE;
}

static int step_line(ex_http_parser_t *p, unsigned char c) {
    if (p->state == S_END_CR) return c == '\n' ? head_complete(p) : EX_HTTP_E_LINE_END;
    if (c == '\r') {
        p->state = S_END_CR;
        return STEP_OK;
    }
    if (c == '\n') return head_complete(p);
    if (is_ows(c)) return EX_HTTP_E_FOLDED;
    if (!is_tchar(c)) return EX_HTTP_E_HEADER_NAME;
    tok_reset(p);
    tok_push(p, c);
    p->state = S_NAME;
    return STEP_OK;
}

static int end_name(ex_http_parser_t *p) {
    p->field = F_OTHER;
    if (tok_is(p, "content-length")) {
        if (p->seen & SEEN_LENGTH) return EX_HTTP_E_FRAMING; /* which one frames the body? */
        p->seen |= SEEN_LENGTH;
        p->field = F_CONTENT_LENGTH;
    } else if (tok_is(p, "transfer-encoding")) {
        p->seen |= SEEN_TE;
        p->field = F_TRANSFER_ENCODING;
    } else if (tok_is(p, "connection")) {
        p->field = F_CONNECTION;
    }
    p->sub = CL_LEAD;
    tok_reset(p);
    p->state = S_VALUE;
    return STEP_OK;
}

static int step_name(ex_http_parser_t *p, unsigned char c) {
    if (c == ':') return end_name(p);
    if (!is_tchar(c)) return EX_HTTP_E_HEADER_NAME; /* a space before ':' included (RFC 9112) */
    tok_push(p, c);
    return STEP_OK;
}

static int length_byte(ex_http_parser_t *p, unsigned char c) {
    uint64_t *n = &p->cur.content_length;
    if (is_ows(c)) {
        if (p->sub == CL_DIGITS) p->sub = CL_TRAIL;
        return STEP_OK;
    }
    if (c < '0' || c > '9' || p->sub == CL_TRAIL) return EX_HTTP_E_CONTENT_LENGTH;
    if (*n > (UINT64_C(1) << 63) / 10) return EX_HTTP_E_CONTENT_LENGTH;
    *n = *n * 10 + (uint64_t)(c - '0');
    p->sub = CL_DIGITS;
    return STEP_OK;
}

static void end_connection_token(ex_http_parser_t *p) {
    if (tok_is(p, "close")) p->conn |= CONN_CLOSE;
    if (tok_is(p, "keep-alive")) p->conn |= CONN_KEEP_ALIVE;
    tok_reset(p);
}

static int end_value(ex_http_parser_t *p) {
    if (p->field == F_CONTENT_LENGTH && p->sub == CL_LEAD) return EX_HTTP_E_CONTENT_LENGTH;
    if (p->field == F_CONNECTION) end_connection_token(p);
    p->state = S_LINE;
    return STEP_OK;
}

static int step_value(ex_http_parser_t *p, unsigned char c) {
    if (p->state == S_VALUE_CR) return c == '\n' ? end_value(p) : EX_HTTP_E_LINE_END;
    if (c == '\r') {
        p->state = S_VALUE_CR;
        return STEP_OK;
    }
    if (c == '\n') return end_value(p);
    if (!is_ows(c) && !is_visible(c)) return EX_HTTP_E_HEADER_VALUE;
    if (p->field == F_CONTENT_LENGTH) return length_byte(p, c);
    if (p->field == F_CONNECTION) {
        if (is_ows(c) || c == ',') {
            end_connection_token(p);
        } else {
            tok_push(p, c);
        }
    }
    return STEP_OK;
}

/* ---- driver ------------------------------------------------------------------------------ */

/* One byte of the head: STEP_OK, EX_HTTP_DONE, or an error. */
static int step(ex_http_parser_t *p, unsigned char c) {
    if (++p->cur.head_bytes > p->max_head) return EX_HTTP_E_TOO_LARGE;
    if (c == '\0') return EX_HTTP_E_NUL;
    switch (p->state) {
    case S_START:
    case S_START_CR:
        return step_start(p, c);
    case S_METHOD:
        return step_method(p, c);
    case S_TARGET0:
    case S_TARGET:
        return step_target(p, c);
    case S_LINE:
    case S_END_CR:
        return step_line(p, c);
    case S_NAME:
        return step_name(p, c);
    case S_VALUE:
    case S_VALUE_CR:
        return step_value(p, c);
    default:
        return step_version(p, c);
    }
}

int ex_http_parse(ex_http_parser_t *p, const char *data, size_t len, size_t *used) {
    size_t i = 0;
    while (i < len && p->state != S_OVER) {
        if (p->state == S_BODY) {
            size_t skip = len - i < p->body_left ? len - i : (size_t)p->body_left;
            i += skip;
            p->body_left -= skip;
            if (p->body_left == 0) p->state = S_START;
            continue;
        }
        int r = step(p, (unsigned char)data[i]);
        if (r < 0) {
            p->state = S_OVER;
            p->err = r;
            break;
        }
        i++;
        if (r == EX_HTTP_DONE) {
            *used = i;
            return EX_HTTP_DONE;
        }
    }
    *used = i;
    return p->state == S_OVER ? p->err : EX_HTTP_NEED_MORE;
}

int ex_http_error_status(int err) {
    switch (err) {
    case EX_HTTP_E_TOO_LARGE:
        return 431;
    case EX_HTTP_E_VERSION_MAJOR:
        return 505;
    default:
        return 400;
    }
}

const char *ex_http_result_name(int r) {
    static const char *const names[] = {
        "need more",           "request complete", "NUL byte",
        "bad method",          "bad target",       "bad version",
        "unsupported version", "CR without LF",    "bad header name",
        "bad header value",    "folded header",    "bad Content-Length",
        "ambiguous framing",   "head too large",   "connection closed",
    };
    int i = r >= 0 ? r : 1 - r;
    if (i < 0 || (size_t)i >= sizeof(names) / sizeof(names[0])) return "unknown";
    return names[i];
}
