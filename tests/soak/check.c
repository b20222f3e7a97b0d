/* tests/soak/check.c: what every part of the soak checks bytes and counts failures with: the
 * stream pattern, CRC32C, the random numbers and the error counts by name (see soak.h).
 */
#include "soak.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

unsigned char soak_pattern[SOAK_PATTERN_PERIOD + SOAK_CHUNK];

uint64_t soak_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t soak_rand_range(uint64_t *state, uint64_t lo, uint64_t hi) {
    return lo + soak_rand(state) % (hi - lo + 1);
}

static void crc_table_init(void);

/* Also fills the CRC table: soak.c calls this before any other thread starts, so no thread
 * ever writes the table while another reads it. */
void soak_pattern_init(uint64_t seed) {
    crc_table_init();
    uint64_t s = seed | 1;
    for (size_t i = 0; i < SOAK_PATTERN_PERIOD; i++)
        soak_pattern[i] = (unsigned char)soak_rand(&s);
    for (size_t i = SOAK_PATTERN_PERIOD; i < sizeof(soak_pattern); i++) {
        soak_pattern[i] = soak_pattern[i - SOAK_PATTERN_PERIOD];
    }
}

uint64_t soak_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- CRC32C (Castagnoli) ------------------------------------------------------------------- */

static uint32_t crc_table[256];

static void crc_table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The crc32 instruction takes 8 bytes a cycle or so: the soak checks every byte it moves, and
 * a table-driven CRC would make the client, not the servers, the bottleneck. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                         size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t soak_crc32c(uint32_t crc, const void *p, size_t n) {
    crc = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("sse4.2")) return ~crc_hw(crc, p, n);
#endif
    return ~crc_sw(crc, p, n);
}

/* ---- errors by name ------------------------------------------------------------------------ */

void soak_error_add(struct soak_errors *e, int kind) {
    if (kind < 0) kind = -kind;
    if (kind >= SOAK_ERR_N) kind = 0;
    e->n[kind]++;
}

uint64_t soak_errors_total(const struct soak_errors *e) {
    uint64_t t = 0;
    for (int i = 0; i < SOAK_ERR_N; i++)
        t += e->n[i];
    return t;
}

static const char *error_name(int kind, char *buf, size_t len) {
    switch (kind) {
    case SOAK_ERR_EARLY_EOF:
        return "early-EOF";
    case SOAK_ERR_STALLED:
        return "stalled";
    case SOAK_ERR_MISMATCH:
        return "mismatch";
    case SOAK_ERR_EXTRA:
        return "extra-bytes";
    case SOAK_ERR_CHECKSUM:
        return "checksum";
    case SOAK_ERR_PROBE_TIMEOUT:
        return "probe-timeout";
    case ECONNRESET:
        return "ECONNRESET";
    case EPIPE:
        return "EPIPE";
    case ECONNREFUSED:
        return "ECONNREFUSED";
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case EADDRNOTAVAIL:
        return "EADDRNOTAVAIL";
    case ECONNABORTED:
        return "ECONNABORTED";
    case EMFILE:
        return "EMFILE";
    case ENFILE:
        return "ENFILE";
    case ENOBUFS:
        return "ENOBUFS";
    case ENOMEM:
        return "ENOMEM";
    case ENOTCONN:
        return "ENOTCONN";
    case EHOSTUNREACH:
        return "EHOSTUNREACH";
    default:
        snprintf(buf, len, "errno-%d", kind);
        return buf;
    }
}

void soak_errors_format(const struct soak_errors *e, char *out, size_t len) {
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < SOAK_ERR_N; i++) {
        if (!e->n[i] || used >= len) continue;
        char buf[32];
        int w = snprintf(out + used, len - used, "%s%s=%llu", used ? " " : "",
                         error_name(i, buf, sizeof(buf)), (unsigned long long)e->n[i]);
        if (w > 0) used += (size_t)w;
    }
    if (!used) snprintf(out, len, "none");
}
