/* tests/test_http_parse.c: the request-head parser zev-http-hello uses
 * (examples/common/http_request.c), tested directly: what a request yields, every error path,
 * every split of the input into two reads (and into single bytes) giving the same results as
 * the whole, a NUL at every position, the head size cap, keep-alive rules and body skipping.
 *
 * Every piece is fed from an exactly-sized heap copy, so ASan reports any read past it.
 */
#include "http_request.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One result other than "need more", and where in the whole input it happened. */
struct event {
    int r;
    size_t at; /* stream offset after the head (DONE) or of the offending byte (error) */
    ex_http_request_t req;
};

#define MAX_EVENTS 64

struct run {
    struct event ev[MAX_EVENTS];
    size_t n;
    bool stopped; /* an error was seen: nothing more is fed */
};

/* Feed data[0..len) as one read at stream offset base, from an exact heap copy. */
static void feed(ex_http_parser_t *p, struct run *run, const char *data, size_t len, size_t base) {
    if (len == 0 || run->stopped) return;
    char *copy = malloc(len);
    cr_assert_not_null(copy);
    memcpy(copy, data, len);
    size_t off = 0;
    while (off < len) {
        size_t used = 0;
        int r = ex_http_parse(p, copy + off, len - off, &used);
        cr_assert_leq(used, len - off);
        off += used;
        if (r == EX_HTTP_NEED_MORE) {
            cr_assert_eq(off, len, "need more must take every byte");
            break;
        }
        cr_assert_lt(run->n, MAX_EVENTS);
        struct event *e = &run->ev[run->n++];
        *e = (struct event){.r = r, .at = base + off};
        if (r == EX_HTTP_DONE) e->req = p->req;
        if (r < 0) {
            run->stopped = true;
            break;
        }
    }
    free(copy);
}

/* Parse s whole with a cap of max_head. */
static struct run parse_whole(const char *s, size_t len, size_t max_head) {
    struct run run = {0};
    ex_http_parser_t p;
    ex_http_parser_init(&p, max_head);
    feed(&p, &run, s, len, 0);
    return run;
}

static void assert_same_request(const ex_http_request_t *a, const ex_http_request_t *b) {
    cr_assert_str_eq(a->method, b->method);
    cr_assert_str_eq(a->target, b->target);
    cr_assert_eq(a->target_len, b->target_len);
    cr_assert_eq(a->version_minor, b->version_minor);
    cr_assert_eq(a->keep_alive, b->keep_alive);
    cr_assert_eq(a->unframed, b->unframed);
    cr_assert_eq(a->content_length, b->content_length);
    cr_assert_eq(a->head_bytes, b->head_bytes);
}

static void assert_same_run(const struct run *a, const struct run *b, const char *what,
                            size_t split) {
    cr_assert_eq(a->n, b->n, "%s split at %zu: %zu events, whole gave %zu", what, split, b->n,
                 a->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_eq(a->ev[i].r, b->ev[i].r, "%s split at %zu: event %zu is %s, whole gave %s",
                     what, split, i, ex_http_result_name(b->ev[i].r),
                     ex_http_result_name(a->ev[i].r));
        cr_assert_eq(a->ev[i].at, b->ev[i].at, "%s split at %zu: event %zu at %zu, whole %zu", what,
                     split, i, b->ev[i].at, a->ev[i].at);
        if (a->ev[i].r == EX_HTTP_DONE) assert_same_request(&a->ev[i].req, &b->ev[i].req);
    }
}

/* Whole, split in two at every boundary, and byte by byte: the same events. */
static void assert_split_invariant(const char *s, size_t len, size_t max_head) {
    struct run whole = parse_whole(s, len, max_head);
    for (size_t k = 0; k <= len; k++) {
        struct run two = {0};
        ex_http_parser_t p;
        ex_http_parser_init(&p, max_head);
        feed(&p, &two, s, k, 0);
        feed(&p, &two, s + k, len - k, k);
        assert_same_run(&whole, &two, s, k);
    }
    struct run bytes = {0};
    ex_http_parser_t p;
    ex_http_parser_init(&p, max_head);
    for (size_t i = 0; i < len; i++) {
        feed(&p, &bytes, s + i, 1, i);
    }
    assert_same_run(&whole, &bytes, s, (size_t)-1);
}

#define LIT(s) s, sizeof(s) - 1

TestSuite(http_parse, .timeout = 60);

Test(http_parse, simple_get_yields_method_target_version_and_keep_alive) {
    struct run r = parse_whole(LIT("GET /index.html?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"), 16384);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.ev[0].r, EX_HTTP_DONE);
    const ex_http_request_t *q = &r.ev[0].req;
    cr_assert_str_eq(q->method, "GET");
    cr_assert_str_eq(q->target, "/index.html?q=1");
    cr_assert_eq(q->target_len, 15);
    cr_assert_eq(q->version_minor, 1);
    cr_assert(q->keep_alive);
    cr_assert_not(q->unframed);
    cr_assert_eq(q->content_length, 0);
    cr_assert_eq(q->head_bytes, 41);
    cr_assert_eq(r.ev[0].at, 41);
}

Test(http_parse, bare_lf_line_ends_and_leading_empty_lines_are_accepted) {
    struct run r = parse_whole(LIT("\r\n\nPUT /x HTTP/1.1\nA: b\n\n"), 16384);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.ev[0].r, EX_HTTP_DONE);
    cr_assert_str_eq(r.ev[0].req.method, "PUT");
    cr_assert_eq(r.ev[0].req.head_bytes, 3 + 16 + 5 + 1, "empty lines count in the head");
}

struct error_case {
    const char *in;
    int err;
    size_t at; /* offset of the offending byte */
};

Test(http_parse, every_error_path_reports_its_code_and_offset) {
    static const struct error_case cases[] = {
        {"a\n\n", EX_HTTP_E_METHOD, 1},
        {"\x01GET / HTTP/1.1\r\n\r\n", EX_HTTP_E_METHOD, 0},
        {" GET / HTTP/1.1\r\n\r\n", EX_HTTP_E_METHOD, 0},
        {"GE(T / HTTP/1.1\r\n\r\n", EX_HTTP_E_METHOD, 2},
        {"GET\r\n\r\n", EX_HTTP_E_METHOD, 3},
        {"ABCDEFGHIJKLMNOPQRSTUVWXY / HTTP/1.1\r\n\r\n", EX_HTTP_E_METHOD, 24},
        {"\r\r\n", EX_HTTP_E_LINE_END, 1},
        {"GET  / HTTP/1.1\r\n\r\n", EX_HTTP_E_TARGET, 4},
        {"GET /\r\n\r\n", EX_HTTP_E_TARGET, 5},
        {"GET /a\x7f HTTP/1.1\r\n\r\n", EX_HTTP_E_TARGET, 6},
        {"GET / HTTQ/1.1\r\n\r\n", EX_HTTP_E_VERSION, 9},
        {"GET / HTTP/x.1\r\n\r\n", EX_HTTP_E_VERSION, 11},
        {"GET / HTTP/1,1\r\n\r\n", EX_HTTP_E_VERSION, 12},
        {"GET / HTTP/1.x\r\n\r\n", EX_HTTP_E_VERSION, 13},
        {"GET / HTTP/1.10\r\n\r\n", EX_HTTP_E_VERSION, 14},
        {"GET / HTTP/1.1 \r\n\r\n", EX_HTTP_E_VERSION, 14},
        {"GET / HTTP/2.0\r\n\r\n", EX_HTTP_E_VERSION_MAJOR, 14},
        {"GET / HTTP/1.1\rX\n\r\n", EX_HTTP_E_LINE_END, 15},
        {"GET / HTTP/1.1\r\n: v\r\n\r\n", EX_HTTP_E_HEADER_NAME, 16},
        {"GET / HTTP/1.1\r\nHost : v\r\n\r\n", EX_HTTP_E_HEADER_NAME, 20},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", EX_HTTP_E_HEADER_NAME, 23},
        {"GET / HTTP/1.1\r\n\x80: v\r\n\r\n", EX_HTTP_E_HEADER_NAME, 16},
        {"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", EX_HTTP_E_HEADER_VALUE, 20},
        {"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", EX_HTTP_E_HEADER_VALUE, 20},
        {"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", EX_HTTP_E_LINE_END, 21},
        {"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", EX_HTTP_E_FOLDED, 22},
        {"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", EX_HTTP_E_FOLDED, 22},
        {"GET / HTTP/1.1\r\n\r\r\n", EX_HTTP_E_LINE_END, 17},
        {"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", EX_HTTP_E_CONTENT_LENGTH, 32},
        {"GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", EX_HTTP_E_CONTENT_LENGTH, 34},
        {"GET / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n", EX_HTTP_E_CONTENT_LENGTH, 33},
        {"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", EX_HTTP_E_CONTENT_LENGTH, 32},
        {"GET / HTTP/1.1\r\nContent-Length:  \r\n\r\n", EX_HTTP_E_CONTENT_LENGTH, 34},
        {"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", EX_HTTP_E_CONTENT_LENGTH,
         50},
        {"GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n", EX_HTTP_E_FRAMING, 49},
        {"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         EX_HTTP_E_FRAMING, 64},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct error_case *k = &cases[i];
        struct run r = parse_whole(k->in, strlen(k->in), 16384);
        cr_assert_eq(r.n, 1, "case %zu: %zu events", i, r.n);
        cr_assert_eq(r.ev[0].r, k->err, "case %zu ('%s'): %s, expected %s", i, k->in,
                     ex_http_result_name(r.ev[0].r), ex_http_result_name(k->err));
        cr_assert_eq(r.ev[0].at, k->at, "case %zu ('%s'): at %zu, expected %zu", i, k->in,
                     r.ev[0].at, k->at);
        cr_assert_eq(ex_http_error_status(k->err), k->err == EX_HTTP_E_VERSION_MAJOR ? 505 : 400);
        assert_split_invariant(k->in, strlen(k->in), 16384);
    }
}

Test(http_parse, errors_are_sticky) {
    ex_http_parser_t p;
    ex_http_parser_init(&p, 16384);
    size_t used;
    cr_assert_eq(ex_http_parse(&p, LIT("a\n"), &used), EX_HTTP_E_METHOD);
    cr_assert_eq(used, 1);
    cr_assert_eq(ex_http_parse(&p, LIT("GET / HTTP/1.1\r\n\r\n"), &used), EX_HTTP_E_METHOD);
    cr_assert_eq(used, 0);
    cr_assert_eq(ex_http_parse(&p, "", 0, &used), EX_HTTP_E_METHOD);
    cr_assert_eq(used, 0);
}

Test(http_parse, nul_at_every_position_of_the_head_is_an_error_there) {
    const char req[] = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: "
                       "keep-alive\r\n\r\n";
    size_t head = sizeof(req) - 1;
    for (size_t i = 0; i < head; i++) {
        char buf[sizeof(req)];
        memcpy(buf, req, head);
        buf[i] = '\0';
        struct run r = parse_whole(buf, head, 16384);
        cr_assert_eq(r.n, 1, "NUL at %zu: %zu events", i, r.n);
        cr_assert_eq(r.ev[0].r, EX_HTTP_E_NUL, "NUL at %zu: %s", i, ex_http_result_name(r.ev[0].r));
        cr_assert_eq(r.ev[0].at, i);
        assert_split_invariant(buf, head, 16384);
    }
    /* The reported overread: a NUL right after a word the old parser matched. */
    struct run r = parse_whole(LIT("GET / HTTP/1.0\0\r\n\r\n"), 16384);
    cr_assert_eq(r.ev[0].r, EX_HTTP_E_NUL);
    /* In a body a NUL is just a byte. */
    char with_body[sizeof(req) + 3];
    memcpy(with_body, req, head);
    memcpy(with_body + head, "\0\0\0", 3);
    r = parse_whole(with_body, head + 3, 16384);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.ev[0].r, EX_HTTP_DONE);
}

Test(http_parse, head_over_the_cap_is_too_large_at_the_first_byte_past_it) {
    const char req[] = "GET / HTTP/1.1\r\nA: bbbbbbbbbb\r\n\r\n"; /* 33 bytes */
    size_t n = sizeof(req) - 1;
    struct run r = parse_whole(req, n, n);
    cr_assert_eq(r.ev[0].r, EX_HTTP_DONE, "exactly the cap is fine");
    r = parse_whole(req, n, n - 1);
    cr_assert_eq(r.ev[0].r, EX_HTTP_E_TOO_LARGE);
    cr_assert_eq(r.ev[0].at, n - 1);
    cr_assert_eq(ex_http_error_status(EX_HTTP_E_TOO_LARGE), 431);
    assert_split_invariant(req, n, n - 1);
    /* Endless empty lines, or one endless header, are capped too. */
    static char crlf[4096];
    for (size_t i = 0; i < sizeof(crlf); i += 2) {
        crlf[i] = '\r';
        crlf[i + 1] = '\n';
    }
    r = parse_whole(crlf, sizeof(crlf), 1000);
    cr_assert_eq(r.ev[0].r, EX_HTTP_E_TOO_LARGE);
    cr_assert_eq(r.ev[0].at, 1000);
    static char big[8192];
    memset(big, 'v', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    r = parse_whole(big, sizeof(big), 4096);
    cr_assert_eq(r.ev[0].r, EX_HTTP_E_TOO_LARGE);
    cr_assert_eq(r.ev[0].at, 4096);
    /* The cap is per request: a second request of the same size is fine. */
    char two[2 * sizeof(req)];
    memcpy(two, req, n);
    memcpy(two + n, req, n);
    r = parse_whole(two, 2 * n, n);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.ev[1].r, EX_HTTP_DONE);
}

Test(http_parse, keep_alive_follows_version_and_connection_tokens) {
    static const struct {
        const char *in;
        bool keep;
        unsigned minor;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", true, 1},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, 1},
        {"GET / HTTP/1.1\r\nconnection:CLOSE\r\n\r\n", false, 1},
        {"GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n", false, 1},
        {"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true, 1},
        {"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n", true, 1},
        {"GET / HTTP/1.0\r\n\r\n", false, 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 0},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", false, 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n", false, 0},
        {"GET / HTTP/1.2\r\n\r\n", true, 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r = parse_whole(cases[i].in, strlen(cases[i].in), 16384);
        cr_assert_eq(r.ev[0].r, EX_HTTP_DONE, "case %zu", i);
        cr_assert_eq(r.ev[0].req.keep_alive, cases[i].keep, "case %zu: '%s'", i, cases[i].in);
        cr_assert_eq(r.ev[0].req.version_minor, cases[i].minor, "case %zu", i);
        assert_split_invariant(cases[i].in, strlen(cases[i].in), 16384);
    }
}

Test(http_parse, a_request_that_ends_the_connection_stops_the_parser) {
    const char in[] = "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    struct run r = parse_whole(LIT(in), 16384);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.ev[0].r, EX_HTTP_DONE);
    cr_assert_eq(r.ev[1].r, EX_HTTP_E_CLOSED, "the rest is not parsed");
    cr_assert_eq(r.ev[1].at, r.ev[0].at);
    assert_split_invariant(LIT(in), 16384);
}

Test(http_parse, transfer_encoding_alone_is_unframed_and_closes) {
    const char in[] =
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    struct run r = parse_whole(LIT(in), 16384);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.ev[0].r, EX_HTTP_DONE);
    cr_assert(r.ev[0].req.unframed);
    cr_assert_not(r.ev[0].req.keep_alive);
    cr_assert_eq(r.ev[1].r, EX_HTTP_E_CLOSED);
}

Test(http_parse, bodies_are_skipped_and_pipelined_requests_follow) {
    const char in[] = "POST /a HTTP/1.1\r\nContent-Length: 20\r\n\r\nGET / HTTP/1.1\r\n\r\n\r\n"
                      "GET /b HTTP/1.1\r\n\r\n"
                      "PUT /c HTTP/1.1\r\nContent-Length:\t0\t\r\n\r\n"
                      "GET /d HTTP/1.0\r\nConnection: close\r\n\r\n";
    struct run r = parse_whole(LIT(in), 16384);
    cr_assert_eq(r.n, 4);
    cr_assert_str_eq(r.ev[0].req.target, "/a");
    cr_assert_eq(r.ev[0].req.content_length, 20);
    cr_assert_str_eq(r.ev[1].req.target, "/b");
    cr_assert_str_eq(r.ev[2].req.target, "/c");
    cr_assert_eq(r.ev[2].req.content_length, 0);
    cr_assert_str_eq(r.ev[3].req.target, "/d");
    cr_assert_not(r.ev[3].req.keep_alive);
    assert_split_invariant(LIT(in), 16384);
}

Test(http_parse, long_words_are_bounded_not_overread) {
    /* A target longer than what is kept, a header name longer than what is compared, and
     * the longest method. */
    char in[600];
    size_t n = 0;
    n += (size_t)sprintf(in + n, "ABCDEFGHIJKLMNOPQRSTUVWX /");
    for (int i = 0; i < 200; i++) {
        in[n++] = 't';
    }
    n += (size_t)sprintf(in + n, " HTTP/1.1\r\nContent-Length-And-Then-Some: 5\r\n"
                                 "Connection-Close-Is-Not-This: close\r\n\r\n");
    struct run r = parse_whole(in, n, 16384);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.ev[0].r, EX_HTTP_DONE);
    cr_assert_str_eq(r.ev[0].req.method, "ABCDEFGHIJKLMNOPQRSTUVWX");
    cr_assert_eq(r.ev[0].req.target_len, 201);
    cr_assert_eq(strlen(r.ev[0].req.target), EX_HTTP_TARGET_KEEP);
    cr_assert_eq(r.ev[0].req.content_length, 0);
    cr_assert(r.ev[0].req.keep_alive);
    assert_split_invariant(in, n, 16384);
}

Test(http_parse, idle_and_body_states_are_reported) {
    ex_http_parser_t p;
    ex_http_parser_init(&p, 16384);
    size_t used;
    cr_assert(ex_http_parser_idle(&p));
    cr_assert_eq(ex_http_parse(&p, LIT("G"), &used), EX_HTTP_NEED_MORE);
    cr_assert_not(ex_http_parser_idle(&p));
    cr_assert_eq(ex_http_parse(&p, LIT("ET / HTTP/1.1\r\nContent-Length: 2\r\n\r\n"), &used),
                 EX_HTTP_DONE);
    cr_assert(ex_http_parser_in_body(&p));
    cr_assert_not(ex_http_parser_idle(&p));
    cr_assert_eq(ex_http_parse(&p, LIT("xy"), &used), EX_HTTP_NEED_MORE);
    cr_assert(ex_http_parser_idle(&p));
    cr_assert_not(ex_http_parser_in_body(&p));
}
