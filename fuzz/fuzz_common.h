/* fuzz/fuzz_common.h: what every libFuzzer target under fuzz/ shares: reading typed values
 * from the input, and failing loudly when an invariant breaks.
 *
 * A target reads its input front to back through a fuzz_in; once the bytes run out every read
 * returns zeros, so any input, however short, is a complete test case. A broken invariant
 * prints what failed and aborts, which libFuzzer reports as a crash and saves the input.
 */
#ifndef ZEV_FUZZ_COMMON_H
#define ZEV_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in) {
    uint16_t hi = fuzz_u8(in);
    return (uint16_t)(hi << 8 | fuzz_u8(in));
}

static inline uint32_t fuzz_u32(struct fuzz_in *in) {
    uint32_t hi = fuzz_u16(in);
    return hi << 16 | fuzz_u16(in);
}

static inline uint64_t fuzz_u64(struct fuzz_in *in) {
    uint64_t hi = fuzz_u32(in);
    return hi << 32 | fuzz_u32(in);
}

/* Copy up to cap - 1 bytes of text, stopping after a NUL or a newline (which is dropped), into
 * out as a C string. Newlines let a seed file hold several strings, one a line. */
static inline const char *fuzz_text(struct fuzz_in *in, char *out, size_t cap) {
    size_t len = 0;
    while (in->n > 0 && len + 1 < cap) {
        uint8_t c = fuzz_u8(in);
        if (c == '\0' || c == '\n') break;
        out[len++] = (char)c;
    }
    out[len] = '\0';
    return out;
}

static inline void fuzz_fail(const char *what, const char *file, int line) {
    fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
    abort();
}

/* The one macro: it needs the text and the line of the failed condition. */
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))

#endif
