/* examples/common/http_request.h: a streaming HTTP/1.x request-head parser for servers exposed
 * to hostile peers (zev-http-hello; fuzz/fuzz_http_request.c).
 *
 * Pure: no I/O, no allocation, no clock; it keeps a few dozen bytes of state and never buffers
 * the request. Feed it bytes in whatever pieces the reads deliver; it reads each byte once,
 * only inside the range it was given, whatever the bytes are (NUL included). It reports
 * "need more", "a request head is complete" (method, target, version, keep-alive, body
 * length, bytes of the head), or an error code that maps to a status (400, 431, 505). A body
 * framed by Content-Length is skipped on the following calls, so the next request follows.
 * Answering, timeouts and the socket are the server's business.
 *
 * Grammar (RFC 9112, strict where leniency lets a peer smuggle or overread): a request line
 * "METHOD SP TARGET SP HTTP/D.D", header lines "name: value" with token names, CRLF or bare
 * LF line ends, empty lines before a request ignored (counted in the head). Rejected: NUL
 * anywhere in the head, control bytes, a lone CR, whitespace before a colon, folded lines,
 * Content-Length that is not one decimal number (or given twice), Content-Length together
 * with Transfer-Encoding, a head longer than the cap. A request with Transfer-Encoding alone is
 * complete but unframed: keep_alive is false, the caller answers and closes.
 *
 * Typical use:
 *     ex_http_parser_init(&p, 16384);
 *     while (len > 0) {
 *         size_t used;
 *         int r = ex_http_parse(&p, data, len, &used);
 *         data += used, len -= used;
 *         if (r == EX_HTTP_NEED_MORE) break;
 *         if (r < 0) { answer(ex_http_error_status(r)); close; break; }
 *         answer(&p.req);   (r == EX_HTTP_DONE)
 *         if (!p.req.keep_alive) { close after the answer; break; }
 *     }
 */
#ifndef EX_HTTP_REQUEST_H
#define EX_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results of ex_http_parse: >= 0 progress, < 0 an error (sticky: later calls repeat it). */
enum {
    EX_HTTP_NEED_MORE = 0,          /* every byte given was taken; feed more */
    EX_HTTP_DONE = 1,               /* a request head is complete: see parser.req */
    EX_HTTP_E_NUL = -1,             /* a NUL byte in the head */
    EX_HTTP_E_METHOD = -2,          /* not a request line: no token method followed by one space */
    EX_HTTP_E_TARGET = -3,          /* empty target, or a control byte or CR/LF in it */
    EX_HTTP_E_VERSION = -4,         /* the version is not HTTP/DIGIT.DIGIT */
    EX_HTTP_E_VERSION_MAJOR = -5,   /* HTTP/2.0 and the like: 505 */
    EX_HTTP_E_LINE_END = -6,        /* CR not followed by LF */
    EX_HTTP_E_HEADER_NAME = -7,     /* empty name, non-token byte, or space before ':' */
    EX_HTTP_E_HEADER_VALUE = -8,    /* a control byte in a value */
    EX_HTTP_E_FOLDED = -9,          /* obsolete line folding (a line starting with SP/HTAB) */
    EX_HTTP_E_CONTENT_LENGTH = -10, /* not one decimal number, or above 2^63 */
    EX_HTTP_E_FRAMING = -11,        /* Content-Length twice, or with Transfer-Encoding */
    EX_HTTP_E_TOO_LARGE = -12,      /* the head passed the cap: 431 */
    EX_HTTP_E_CLOSED = -13,         /* fed after a request with keep_alive false */
};

#define EX_HTTP_METHOD_MAX 24  /* longer methods are EX_HTTP_E_METHOD */
#define EX_HTTP_TARGET_KEEP 64 /* bytes of the target kept; target_len has the rest */
#define EX_HTTP_TOKEN_KEEP 20  /* bytes of a header name or Connection token compared */

typedef struct {
    char method[EX_HTTP_METHOD_MAX + 1];  /* NUL-terminated */
    char target[EX_HTTP_TARGET_KEEP + 1]; /* its first bytes, NUL-terminated */
    size_t target_len;                    /* the whole target's length */
    unsigned version_minor;               /* HTTP/1.<minor> */
    bool keep_alive;                      /* another request may follow on the connection */
    bool unframed;                        /* Transfer-Encoding: the body cannot be skipped */
    uint64_t content_length;              /* body bytes the parser will skip next */
    size_t head_bytes;                    /* request line and headers, last LF included */
} ex_http_request_t;

typedef struct {
    /* read-only: the last complete request, valid after EX_HTTP_DONE until the next call */
    ex_http_request_t req;
    /* private */
    ex_http_request_t cur; /* the request being read */
    size_t max_head;
    uint64_t body_left;
    int err; /* sticky result once an error (or the end) was reached */
    uint8_t state;
    uint8_t field;   /* which header's value is being read */
    uint8_t sub;     /* the value's own small state (Content-Length, Connection) */
    uint8_t tok_len; /* bytes of tok seen, saturating at 255 */
    char tok[EX_HTTP_TOKEN_KEEP];
    uint8_t method_len;
    uint8_t seen; /* headers seen: Content-Length, Transfer-Encoding */
    uint8_t conn; /* Connection tokens seen: close, keep-alive */
    unsigned major;
} ex_http_parser_t;

/* Start a parser for a connection; max_head caps the request line plus headers (bytes, > 0;
 * Node's default is 16384). */
void ex_http_parser_init(ex_http_parser_t *p, size_t max_head);
/* Parse data[0..len). *used gets the bytes taken: all of them for EX_HTTP_NEED_MORE, up to
 * and including the head's last LF for EX_HTTP_DONE, the bytes before the offending one for
 * an error. Never reads outside data[0..len). */
int ex_http_parse(ex_http_parser_t *p, const char *data, size_t len, size_t *used);
/* 1 if no byte of a next request (nor of a body) has been seen: the connection is idle. */
bool ex_http_parser_idle(const ex_http_parser_t *p);
/* 1 while skipping a request body. */
bool ex_http_parser_in_body(const ex_http_parser_t *p);
/* The HTTP status for an error result: 431, 505, or 400. */
int ex_http_error_status(int err);
/* A short name for a result ("need more", "NUL byte", ...), for messages and tests. */
const char *ex_http_result_name(int r);

#endif /* EX_HTTP_REQUEST_H */
