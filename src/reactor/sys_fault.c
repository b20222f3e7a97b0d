/* src/reactor/sys_fault.c: fault rules and call counters behind the syscall seam. Compiled only
 * into builds configured with -Dfault_injection=true; release builds never contain it.
 * Counters are atomic because the async test sends from other threads.
 */
#include "sys_fault.h"

#include <stdatomic.h>

struct fault_rule {
    atomic_uint_fast64_t calls;
    atomic_uint_fast64_t hits;
    atomic_int armed;
    unsigned skip;
    int times; /* -1: forever */
    int err;
    size_t limit;
};

static struct fault_rule rules[ZEV_SYS__COUNT];

void zev_fault_reset(void) {
    for (int i = 0; i < ZEV_SYS__COUNT; i++) {
        atomic_store(&rules[i].armed, 0);
        atomic_store(&rules[i].calls, 0);
        atomic_store(&rules[i].hits, 0);
    }
}

static void arm(enum zev_sys id, unsigned skip, int times, int err, size_t limit) {
    struct fault_rule *r = &rules[id];
    atomic_store(&r->armed, 0);
    r->skip = skip;
    r->times = times;
    r->err = err;
    r->limit = limit;
    atomic_store(&r->armed, times != 0);
}

void zev_fault_fail(enum zev_sys id, unsigned skip, int times, int err) {
    arm(id, skip, times, err, 0);
}

void zev_fault_short(enum zev_sys id, unsigned skip, int times, size_t limit) {
    arm(id, skip, times, 0, limit);
}

uint64_t zev_fault_calls(enum zev_sys id) {
    return atomic_load(&rules[id].calls);
}

uint64_t zev_fault_hits(enum zev_sys id) {
    return atomic_load(&rules[id].hits);
}

/* Rules are armed and consumed on the loop's thread; only the counters cross threads. */
int zev__fault_hit(enum zev_sys id, size_t *limit) {
    struct fault_rule *r = &rules[id];
    atomic_fetch_add(&r->calls, 1);
    if (!atomic_load(&r->armed)) return 0;
    if (r->skip > 0) {
        r->skip--;
        return 0;
    }
    if (r->times > 0 && --r->times == 0) atomic_store(&r->armed, 0);
    atomic_fetch_add(&r->hits, 1);
    if (r->err) return -r->err;
    if (limit) *limit = r->limit;
    return 1;
}

/* Read by the resolver threads, so atomic; set by a test before its first lookup. */
static _Atomic(zev_fault_gai_fn) gai_hook;
static void (*_Atomic gai_free_hook)(struct addrinfo *);

void zev_fault_set_getaddrinfo(zev_fault_gai_fn gai, void (*free_fn)(struct addrinfo *res)) {
    atomic_store(&gai_hook, gai);
    atomic_store(&gai_free_hook, free_fn);
}

int zev__sys_getaddrinfo(const char *host, const struct addrinfo *hints, struct addrinfo **res) {
    zev_fault_gai_fn gai = atomic_load(&gai_hook);
    return gai ? gai(host, hints, res) : getaddrinfo(host, NULL, hints, res);
}

void zev__sys_freeaddrinfo(struct addrinfo *res) {
    void (*free_fn)(struct addrinfo *) = atomic_load(&gai_free_hook);
    if (free_fn) {
        free_fn(res);
    } else {
        freeaddrinfo(res);
    }
}
