/* fuzz/fuzz_http_request.c: libFuzzer target for zev-http-hello's request parser
 * (examples/common/http_request.c; link that file and include examples/common).
 *
 * Each input is parsed twice: whole, and split in two at a point taken from its first bytes
 * (each part copied into an exactly-sized heap block, so ASan reports any read past a part).
 * Both runs must report the same sequence of results at the same stream offsets and the same
 * requests, and every result must keep the parser's own promises (need-more takes every byte,
 * an error never moves on). The head cap comes from the input too, so the 431 path is
 * reached with short inputs.
 */
#include "http_request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENTS 256

struct event {
    int r;
    size_t at;
    ex_http_request_t req;
};

struct run {
    struct event ev[MAX_EVENTS];
    size_t n;
    int stopped;
};

static void check(int ok) {
    if (!ok) abort();
}

/* Feed data[0..len) at stream offset base from an exact heap copy. */
static void feed(ex_http_parser_t *p, struct run *run, const uint8_t *data, size_t len,
                 size_t base) {
    if (len == 0 || run->stopped) return;
    char *copy = malloc(len);
    if (!copy) return;
    memcpy(copy, data, len);
    size_t off = 0;
    while (off < len && run->n < MAX_EVENTS) {
        size_t used = (size_t)-1;
        int r = ex_http_parse(p, copy + off, len - off, &used);
        check(used <= len - off);
        off += used;
        if (r == EX_HTTP_NEED_MORE) {
            check(off == len);
            break;
        }
        struct event *e = &run->ev[run->n++];
        memset(e, 0, sizeof(*e));
        e->r = r;
        e->at = base + off;
        if (r == EX_HTTP_DONE) {
            e->req = p->req;
            check(strlen(e->req.method) > 0 && strlen(e->req.method) <= EX_HTTP_METHOD_MAX);
            check(strlen(e->req.target) <= EX_HTTP_TARGET_KEEP);
            check(e->req.head_bytes > 0);
            continue;
        }
        check(r < 0 && r >= EX_HTTP_E_CLOSED);
        check(ex_http_error_status(r) >= 400);
        size_t again = 1;
        check(ex_http_parse(p, copy + off, len - off, &again) == r && again == 0);
        run->stopped = 1;
        break;
    }
    free(copy);
}

static int same_request(const ex_http_request_t *a, const ex_http_request_t *b) {
    return strcmp(a->method, b->method) == 0 && strcmp(a->target, b->target) == 0 &&
           a->target_len == b->target_len && a->version_minor == b->version_minor &&
           a->keep_alive == b->keep_alive && a->unframed == b->unframed &&
           a->content_length == b->content_length && a->head_bytes == b->head_bytes;
}

static struct run whole;
static struct run split;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    /* Byte 0-1: the split point; byte 2: the cap (small caps reach the 431 path). */
    size_t cut = ((size_t)data[0] << 8 | data[1]);
    size_t cap = data[2] < 128 ? (size_t)data[2] + 1 : 16384;
    data += 3;
    size -= 3;
    cut = size ? cut % (size + 1) : 0;

    ex_http_parser_t p;
    memset(&whole, 0, sizeof(whole));
    ex_http_parser_init(&p, cap);
    feed(&p, &whole, data, size, 0);

    memset(&split, 0, sizeof(split));
    ex_http_parser_init(&p, cap);
    feed(&p, &split, data, cut, 0);
    feed(&p, &split, data + cut, size - cut, cut);

    /* A run cut short by MAX_EVENTS proves nothing about the rest. */
    if (whole.n == MAX_EVENTS || split.n == MAX_EVENTS) return 0;
    check(whole.n == split.n);
    for (size_t i = 0; i < whole.n; i++) {
        check(whole.ev[i].r == split.ev[i].r);
        check(whole.ev[i].at == split.ev[i].at);
        if (whole.ev[i].r == EX_HTTP_DONE) check(same_request(&whole.ev[i].req, &split.ev[i].req));
    }
    return 0;
}
