/* src/reactor/sys_fault.h: the test side of the syscall seam (built with -Dfault_injection).
 *
 * A rule makes calls of one syscall misbehave: after `skip` good calls, the next `times` calls
 * (-1: all of them) fail with -err, or, with err == 0, move at most `limit` bytes (messages for
 * recvmmsg/sendmmsg). Calls are counted whether or not a rule is set. Rules and counters are
 * process-wide because a syscall has no loop to hang them on; they exist only in test builds.
 */
#ifndef ZEV_SYS_FAULT_H
#define ZEV_SYS_FAULT_H

#include "sys.h"

#include <stdint.h>

/* Forget every rule and zero every counter. */
void zev_fault_reset(void);
/* Fail calls of id with -err (err > 0: pass EINTR, not -EINTR). */
void zev_fault_fail(enum zev_sys id, unsigned skip, int times, int err);
/* Shorten calls of id to at most limit bytes or messages. */
void zev_fault_short(enum zev_sys id, unsigned skip, int times, size_t limit);
/* Calls of id since the last reset, including failed ones. */
uint64_t zev_fault_calls(enum zev_sys id);
/* Calls of id that a rule failed or shortened. */
uint64_t zev_fault_hits(enum zev_sys id);

/* Answer the resolver threads' getaddrinfo calls with gai and free their answers with
 * free_fn (both NULL: the real calls). Set it before the first lookup; it is process-wide. */
typedef int (*zev_fault_gai_fn)(const char *host, const struct addrinfo *hints,
                                struct addrinfo **res);
void zev_fault_set_getaddrinfo(zev_fault_gai_fn gai, void (*free_fn)(struct addrinfo *res));

#endif /* ZEV_SYS_FAULT_H */
