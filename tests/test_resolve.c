/* tests/test_resolve.c: name lookups off the loop's thread (zev_resolve). No test sends a
 * packet: real lookups ask only for names /etc/hosts lists (skipped otherwise), and every
 * other name goes to the fake getaddrinfo behind the seam (support/fake_dns.h). */
#include "fake_dns.h"
#include "thread_scenarios.h"
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <time.h>

TestSuite(resolve, .init = zt_setup, .fini = zt_teardown, .timeout = 30);

static int calls;
static int last_status;
static size_t last_n;
static zev_addr_info_t first; /* the first address of the last answer */
static char order[16];        /* 'c' per callback, in order, tagged by req->data */

static void on_resolved(zev_resolve_t *req, int status, const zev_sockaddr_t *addrs, size_t n) {
    cr_assert_eq(req->loop, &zt_loop);
    calls++;
    last_status = status;
    last_n = n;
    if (n > 0) cr_assert_eq(zev_addr_info(&addrs[0], &first), 0);
    if (req->data) strncat(order, (const char *)req->data, sizeof(order) - strlen(order) - 1);
}

static int threads_now(void) {
    return zt_dir_entries("/proc/self/task");
}

/* A joined thread may linger in /proc a moment after pthread_join returns. */
static bool threads_back_to(int n) {
    for (int i = 0; i < 500 && threads_now() != n; i++) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return threads_now() == n;
}

Test(resolve, localhost_resolves_to_loopback_from_etc_hosts) {
    if (!zt_hosts_has("localhost", "127.0.0.1")) cr_skip_test("/etc/hosts has no 127.0.0.1 localhost");
    zev_resolve_t req = {0};
    cr_assert_eq(zev_resolve(&zt_loop, &req, "localhost", 8080, 4, on_resolved), 0);
    cr_assert_eq(calls, 0, "the callback never runs inside zev_resolve");
    zt_run();
    cr_assert_eq(calls, 1);
    cr_assert_eq(last_status, 0, "%s", zev_err_name(last_status));
    cr_assert_geq(last_n, 1);
    cr_assert_str_eq(first.address, "127.0.0.1");
    cr_assert_eq(first.family, 4);
    cr_assert_eq(first.port, 8080, "every address carries the port asked for");
}

Test(resolve, numeric_text_resolves_without_a_name_service) {
    zev_resolve_t req = {0};
    cr_assert_eq(zev_resolve(&zt_loop, &req, "::1", 443, 0, on_resolved), 0);
    zt_run();
    cr_assert_eq(calls, 1);
    cr_assert_eq(last_status, 0);
    cr_assert_eq(last_n, 1);
    cr_assert_str_eq(first.address, "::1");
    cr_assert_eq(first.port, 443);
}

Test(resolve, family_filters_the_answer) {
    ZT_FAKE_DNS_OR_SKIP();
    zev_resolve_t req = {0};
    cr_assert_eq(zev_resolve(&zt_loop, &req, "dual.zev.test", 1, 4, on_resolved), 0);
    zt_run();
    cr_assert_eq(last_status, 0);
    cr_assert_eq(last_n, 1);
    cr_assert_str_eq(first.address, "127.0.0.1");
    cr_assert_eq(zev_resolve(&zt_loop, &req, "dual.zev.test", 1, 0, on_resolved), 0);
    zt_run();
    cr_assert_eq(last_n, 2, "both families, in getaddrinfo's order");
    cr_assert_str_eq(first.address, "::1");
    cr_assert_eq(zev_resolve(&zt_loop, &req, "v4.zev.test", 1, 6, on_resolved), 0);
    zt_run();
    cr_assert_eq(last_status, -ZEV_EAI_NONAME, "no address of the family asked for");
    cr_assert_eq(calls, 3);
    cr_assert_eq(zt_fake_dns_frees(), 2, "every answer freed (the third had none)");
}

/* getaddrinfo's failures as named zev errors, Node's names (ENOTFOUND, EAI_AGAIN). */
static int status_of(const char *host) {
    zev_resolve_t req = {0};
    int before = calls;
    cr_assert_eq(zev_resolve(&zt_loop, &req, host, 80, 0, on_resolved), 0);
    zt_run();
    cr_assert_eq(calls, before + 1);
    cr_assert_eq(last_n, 0);
    return last_status;
}

Test(resolve, lookup_failures_map_to_named_errors) {
    ZT_FAKE_DNS_OR_SKIP();
    cr_assert_eq(status_of("nowhere.zev.test"), -ZEV_EAI_NONAME);
    cr_assert_eq(status_of("again.zev.test"), -ZEV_EAI_AGAIN);
    cr_assert_eq(status_of("fail.zev.test"), -ZEV_EAI_FAIL);
    cr_assert_eq(status_of("memory.zev.test"), -ENOMEM);
    cr_assert_eq(status_of("system.zev.test"), -EMFILE, "EAI_SYSTEM carries its errno");
    cr_assert_str_eq(zev_err_name(-ZEV_EAI_NONAME), "ENOTFOUND");
    cr_assert_str_eq(zev_err_name(-ZEV_EAI_AGAIN), "EAI_AGAIN");
    cr_assert_str_eq(zev_err_name(-ZEV_EAI_FAIL), "EAI_FAIL");
    cr_assert_str_eq(zev_strerror(-ZEV_EAI_NONAME), "host name not found");
    cr_assert_gt(ZEV_EAI_AGAIN, 200, "outside the errno range");
}

Test(resolve, bad_arguments_and_bad_names_are_refused_at_once) {
    zev_resolve_t req = {0};
    cr_assert_eq(zev_resolve(NULL, &req, "localhost", 1, 0, on_resolved), -EINVAL);
    cr_assert_eq(zev_resolve(&zt_loop, NULL, "localhost", 1, 0, on_resolved), -EINVAL);
    cr_assert_eq(zev_resolve(&zt_loop, &req, NULL, 1, 0, on_resolved), -EINVAL);
    cr_assert_eq(zev_resolve(&zt_loop, &req, "localhost", 1, 0, NULL), -EINVAL);
    cr_assert_eq(zev_resolve(&zt_loop, &req, "localhost", 70000, 0, on_resolved), -EINVAL);
    cr_assert_eq(zev_resolve(&zt_loop, &req, "localhost", 1, 5, on_resolved), -EINVAL);
    /* Text that is neither an address nor a host name never reaches a name service. */
    const char *bad[] = {"", "::1::2", "127.0.0.256", "a..b", ".a", "a b", "a/b", "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(bad[i], "-") == 0) continue; /* a lone hyphen is a (silly) valid label */
        cr_assert_eq(zev_resolve(&zt_loop, &req, bad[i], 1, 0, on_resolved), -EINVAL, "%s",
                     bad[i]);
    }
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    for (size_t i = 60; i < sizeof(long_name) - 1; i += 61) long_name[i] = '.';
    cr_assert_eq(zev_resolve(&zt_loop, &req, long_name, 1, 0, on_resolved), -EINVAL,
                 "over 253 bytes");
    cr_assert_eq(zev_resolve_cancel(NULL), -EINVAL);
    cr_assert_eq(zt_loop.resolver, NULL, "a refused lookup started nothing");
    zt_run();
    cr_assert_eq(calls, 0);
}

Test(resolve, no_thread_until_the_first_lookup_and_none_after_close) {
    ZT_FAKE_DNS_OR_SKIP();
    int base = threads_now();
    zev_timer_t timer;
    zev_timer_init(&zt_loop, &timer);
    zev_close(&timer.handle, NULL);
    zt_run();
    cr_assert_eq(threads_now(), base, "a loop alone starts no thread");
    zev_resolve_t req = {0};
    cr_assert_eq(zev_resolve(&zt_loop, &req, "v4.zev.test", 1, 0, on_resolved), 0);
    zt_run();
    cr_assert_eq(calls, 1);
    cr_assert_eq(threads_now(), base + 1, "one lookup, one thread");
    cr_assert_eq(zev_loop_close(&zt_loop), 0);
    cr_assert(threads_back_to(base), "zev_loop_close joined the resolver thread");
    cr_assert_eq(zev_loop_init(&zt_loop), 0); /* for the fixture's close */
}

Test(resolve, threads_are_bounded_and_every_lookup_answers) {
    ZT_FAKE_DNS_OR_SKIP();
    int base = threads_now();
    zev_resolve_t reqs[10];
    for (int i = 0; i < 10; i++) {
        reqs[i] = (zev_resolve_t){0};
        cr_assert_eq(zev_resolve(&zt_loop, &reqs[i], "block.zev.test", 1, 0, on_resolved), 0);
    }
    cr_assert(zt_fake_dns_wait_blocked(4, 10000), "four threads take four lookups");
    cr_assert_leq(threads_now(), base + 4, "at most four resolver threads");
    cr_assert_eq(zt_fake_dns_blocked(), 4);
    zt_fake_dns_release();
    zt_run();
    cr_assert_eq(calls, 10);
    cr_assert_eq(last_status, 0);
    cr_assert_eq(zt_fake_dns_calls(), 10);
}

Test(resolve, cancel_gives_ecanceled_and_a_running_lookup_is_freed_when_it_returns) {
    ZT_FAKE_DNS_OR_SKIP();
    zev_resolve_t running = {.data = "r"};
    zev_resolve_t other = {.data = "o"};
    cr_assert_eq(zev_resolve(&zt_loop, &running, "block.zev.test", 1, 0, on_resolved), 0);
    cr_assert_eq(zev_resolve(&zt_loop, &other, "v4.zev.test", 1, 0, on_resolved), 0);
    cr_assert(zt_fake_dns_wait_blocked(1, 10000));
    cr_assert_eq(zev_resolve_cancel(&running), 0);
    cr_assert_eq(calls, 0, "never inside zev_resolve_cancel");
    cr_assert_eq(zev_resolve_cancel(&running), -EALREADY, "its -ECANCELED is already due");
    zt_run(); /* ends although getaddrinfo still blocks: the cancelled lookup is no request */
    cr_assert_eq(calls, 2);
    cr_assert(strchr(order, 'r') && strchr(order, 'o'));
    cr_assert_eq(zt_fake_dns_blocked(), 1, "the cancelled lookup is still inside getaddrinfo");
    cr_assert_eq(zev_resolve_cancel(&other), -EALREADY, "its callback ran");
    zt_fake_dns_release();
    cr_assert(zt_fake_dns_close_loop_and_wait_frees(&zt_loop, 2, 10000), "the late answer was freed");
    cr_assert_eq(calls, 2, "no callback for the cancelled lookup's late answer");
}

static int cancel_statuses[2];
static int n_cancel;

static void on_cancelled(zev_resolve_t *req, int status, const zev_sockaddr_t *addrs,
                         size_t n) {
    cr_assert_null(addrs);
    cr_assert_eq(n, 0);
    cancel_statuses[n_cancel++] = status;
    zev_resolve_t *next = req->data;
    if (next) cr_assert_eq(zev_resolve_cancel(next), 0, "a callback may cancel another lookup");
}

Test(resolve, a_waiting_lookup_is_cancelled_before_any_thread_takes_it) {
    ZT_FAKE_DNS_OR_SKIP();
    zev_resolve_t blockers[4];
    for (int i = 0; i < 4; i++) {
        blockers[i] = (zev_resolve_t){0};
        cr_assert_eq(zev_resolve(&zt_loop, &blockers[i], "block.zev.test", 1, 0, on_resolved), 0);
    }
    cr_assert(zt_fake_dns_wait_blocked(4, 10000));
    zev_resolve_t second = {0};
    zev_resolve_t waiting = {.data = &second};
    cr_assert_eq(zev_resolve(&zt_loop, &waiting, "v4.zev.test", 1, 0, on_cancelled), 0);
    cr_assert_eq(zev_resolve(&zt_loop, &second, "v4.zev.test", 1, 0, on_cancelled), 0);
    cr_assert_eq(zev_resolve_cancel(&waiting), 0);
    cr_assert(zt_run_until(&n_cancel, 2, 10000), "both cancelled before any thread is free");
    zt_fake_dns_release();
    zt_run();
    cr_assert_eq(n_cancel, 2);
    cr_assert_eq(cancel_statuses[0], -ECANCELED);
    cr_assert_eq(cancel_statuses[1], -ECANCELED);
    cr_assert_eq(calls, 4);
    cr_assert_eq(zt_fake_dns_calls(), 4, "the cancelled lookups never reached getaddrinfo");
}

Test(resolve, loop_close_is_ebusy_while_a_callback_is_due) {
    ZT_FAKE_DNS_OR_SKIP();
    zev_resolve_t req = {0};
    cr_assert_eq(zev_resolve(&zt_loop, &req, "v4.zev.test", 1, 0, on_resolved), 0);
    cr_assert_eq(zev_loop_alive(&zt_loop), 1, "a lookup in flight keeps the loop alive");
    cr_assert_eq(zev_loop_close(&zt_loop), -EBUSY);
    zt_run();
    cr_assert_eq(calls, 1);
    cr_assert_eq(zev_loop_alive(&zt_loop), 0);
}

Test(resolve, loop_close_does_not_wait_for_a_cancelled_lookup_stuck_in_getaddrinfo) {
    ZT_FAKE_DNS_OR_SKIP();
    int base = threads_now();
    zev_resolve_t stuck = {0};
    zev_resolve_t done = {0};
    cr_assert_eq(zev_resolve(&zt_loop, &stuck, "block.zev.test", 1, 0, on_resolved), 0);
    cr_assert_eq(zev_resolve(&zt_loop, &done, "v4.zev.test", 1, 0, on_resolved), 0);
    cr_assert(zt_fake_dns_wait_blocked(1, 10000));
    zt_run_until(&calls, 1, 10000); /* the other thread answers and goes idle */
    cr_assert_eq(zev_resolve_cancel(&stuck), 0);
    zt_run();
    cr_assert_eq(calls, 2);
    cr_assert_eq(zev_loop_close(&zt_loop), 0, "returns while getaddrinfo still blocks");
    cr_assert_eq(zt_fake_dns_blocked(), 1);
    zt_fake_dns_release();
    cr_assert(zt_fake_dns_wait_frees(2, 10000), "the detached thread freed the late answer");
    cr_assert(threads_back_to(base), "and exited");
    cr_assert_eq(zev_loop_init(&zt_loop), 0); /* for the fixture's close */
}

Test(resolve, lookups_cancels_and_close_across_threads) {
    const char *err = zt_resolve_cancel_storm(5, 32);
    cr_assert_null(err, "%s", err);
}
