/* tests/support/netns.c: build and drop the two-namespace test network (see netns.h). The
 * links and addresses are made with iproute2's `ip`, run in whichever namespace the thread is
 * in (a child inherits it); `ip link set ... netns /proc/PID/fd/N` moves the B end of the veth
 * pair into the namespace behind our descriptor. */
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((format(printf, 2, 3))) static int fail(struct zt_netns *ns, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ns->why, sizeof(ns->why), fmt, ap);
    va_end(ap);
    return -1;
}

/* Run one `ip` command in the current namespace, quietly. */
__attribute__((format(printf, 2, 3))) static int ip(struct zt_netns *ns, const char *fmt, ...) {
    char args[200];
    char cmd[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "ip %s >/dev/null 2>&1", args);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        return fail(ns, "netns setup: `ip %s` failed (status %d)", args, st);
    }
    return 0;
}

static int open_self_ns(void) {
    return open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
}

/* Leave the current namespace for a fresh one and keep a descriptor to it. */
static int new_ns(struct zt_netns *ns, int *fd) {
    if (unshare(CLONE_NEWNET) < 0) {
        int e = errno;
        return fail(ns, "netns unavailable: unshare(CLONE_NEWNET): %s%s", strerror(e),
                    geteuid() != 0 ? " (not running as root)" : "");
    }
    ns->moved = 1;
    *fd = open_self_ns();
    if (*fd < 0) return fail(ns, "netns setup: open /proc/self/ns/net: %s", strerror(errno));
    return ip(ns, "link set lo up");
}

static int configure_a(struct zt_netns *ns) {
    if (ip(ns, "link set " ZT_NS_A_IF " up") < 0) return -1;
    if (ip(ns, "addr add " ZT_NS_A4 "/24 brd + dev " ZT_NS_A_IF) < 0) return -1;
    if (ip(ns, "-6 addr add " ZT_NS_A6 "/64 dev " ZT_NS_A_IF " nodad") < 0) return -1;
    if (ip(ns, "route add 224.0.0.0/4 dev " ZT_NS_A_IF) < 0) return -1;
    ns->a_index = if_nametoindex(ZT_NS_A_IF);
    return 0;
}

static int configure_b(struct zt_netns *ns) {
    if (ip(ns, "link set " ZT_NS_B_IF " up") < 0) return -1;
    if (ip(ns, "addr add " ZT_NS_B4 "/24 brd + dev " ZT_NS_B_IF) < 0) return -1;
    if (ip(ns, "addr add " ZT_NS_B4_OTHER "/24 dev " ZT_NS_B_IF) < 0) return -1;
    if (ip(ns, "-6 addr add " ZT_NS_B6 "/64 dev " ZT_NS_B_IF " nodad") < 0) return -1;
    if (ip(ns, "-6 addr add " ZT_NS_B6_OTHER "/64 dev " ZT_NS_B_IF " nodad") < 0) return -1;
    if (ip(ns, "route add 224.0.0.0/4 dev " ZT_NS_B_IF) < 0) return -1;
    ns->b_index = if_nametoindex(ZT_NS_B_IF);
    return 0;
}

static int build(struct zt_netns *ns) {
    if (access("/proc/self/ns/net", R_OK) != 0) {
        return fail(ns, "netns unavailable: no /proc/self/ns/net");
    }
    if (system("command -v ip >/dev/null 2>&1") != 0) {
        return fail(ns, "netns unavailable: iproute2 `ip` not found");
    }
    ns->host_fd = open_self_ns();
    if (ns->host_fd < 0) {
        return fail(ns, "netns setup: open /proc/self/ns/net: %s", strerror(errno));
    }
    if (new_ns(ns, &ns->a_fd) < 0) return -1;
    if (ip(ns, "link add " ZT_NS_A_IF " type veth peer name " ZT_NS_B_IF) < 0) return -1;
    if (new_ns(ns, &ns->b_fd) < 0) return -1;
    zt_netns_enter(ns, 'a');
    if (ip(ns, "link set " ZT_NS_B_IF " netns /proc/%d/fd/%d", (int)getpid(), ns->b_fd) < 0) {
        return -1;
    }
    if (configure_a(ns) < 0) return -1;
    zt_netns_enter(ns, 'b');
    if (configure_b(ns) < 0) return -1;
    zt_netns_enter(ns, 'a');
    return 0;
}

int zt_netns_setup(struct zt_netns *ns) {
    memset(ns, 0, sizeof(*ns));
    ns->host_fd = ns->a_fd = ns->b_fd = -1;
    if (build(ns) < 0) {
        zt_netns_teardown(ns);
        return -1;
    }
    ns->ok = 1;
    return 0;
}

void zt_netns_enter(const struct zt_netns *ns, char which) {
    int fd = which == 'a' ? ns->a_fd : which == 'b' ? ns->b_fd : ns->host_fd;
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        fprintf(stderr, "zt_netns_enter(%c): %s\n", which, strerror(errno));
        abort(); /* a test must never carry on in the wrong namespace */
    }
}

void zt_netns_teardown(struct zt_netns *ns) {
    if (ns->moved) zt_netns_enter(ns, 'h'); /* only then: going back needs the privilege */
    if (ns->host_fd >= 0) close(ns->host_fd);
    if (ns->a_fd >= 0) close(ns->a_fd);
    if (ns->b_fd >= 0) close(ns->b_fd);
    ns->host_fd = ns->a_fd = ns->b_fd = -1;
    ns->ok = 0;
    ns->moved = 0;
}
