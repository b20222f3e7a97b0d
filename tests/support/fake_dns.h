/* tests/support/fake_dns.h: a stand-in for getaddrinfo behind the seam (test builds with
 * -Dfault_injection), so that name tests send no packet anywhere: made-up names under
 * ".zev.test" answer from a table, every other name is EAI_NONAME. And /etc/hosts lookups,
 * for tests that let the real getaddrinfo answer only names this machine lists there.
 *
 *   dual.zev.test   ::1 then 127.0.0.1        v4.zev.test    127.0.0.1
 *   v6.zev.test     ::1                       four.zev.test  ::1, ::1, 127.0.0.1, 127.0.0.1
 *   again.zev.test  EAI_AGAIN                 fail.zev.test  EAI_FAIL
 *   memory.zev.test EAI_MEMORY                system.zev.test EAI_SYSTEM with errno EMFILE
 *   block.zev.test  blocks until zt_fake_dns_release(), then answers 127.0.0.1
 */
#ifndef ZT_FAKE_DNS_H
#define ZT_FAKE_DNS_H

#include "zev.h"

#include <stdbool.h>

/* Route the resolver threads' getaddrinfo to the table (process-wide; Criterion runs each
 * test in its own process). False in a build without the seam: skip the test then. */
bool zt_fake_dns_install(void);
/* Install it or skip the calling test with a message. */
#define ZT_FAKE_DNS_OR_SKIP()                                                                  \
    do {                                                                                       \
        if (!zt_fake_dns_install()) cr_skip_test("needs -Dfault_injection (the getaddrinfo seam)"); \
    } while (0)
/* Lookups answered so far, lookups inside block.zev.test now, answers freed so far. */
int zt_fake_dns_calls(void);
int zt_fake_dns_blocked(void);
int zt_fake_dns_frees(void);
/* Wait (at most ms) until n lookups are blocked. Returns true if they are. */
bool zt_fake_dns_wait_blocked(int n, int ms);
/* Let every blocked lookup (and later ones) answer. */
void zt_fake_dns_release(void);
/* Wait (at most ms) until n answers were freed. */
bool zt_fake_dns_wait_frees(int n, int ms);

/* A cancelled lookup's late answer is freed by the loop's next look at its resolver, or at
 * the latest by zev_loop_close (or its detached thread): close loop (it must close), wait (at
 * most ms) until n answers were freed, and initialise loop again for the fixture. */
bool zt_fake_dns_close_loop_and_wait_frees(zev_loop_t *loop, int n, int ms);

/* /etc/hosts maps name to the numeric address text addr (as written there). */
bool zt_hosts_has(const char *name, const char *addr);

#endif
