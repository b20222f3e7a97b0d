/* tests/support/netns.h: two private network namespaces joined by a veth pair, for tests that
 * need real broadcast and multicast without a packet leaving the machine.
 *
 *   namespace A                                namespace B
 *   lo (127.0.0.1, ::1)                        lo
 *   zva  198.18.0.1/24  fd00::1/64  <-veth->   zvb  198.18.0.2/24 198.18.0.3/24
 *                                                   fd00::2/64    fd00::3/64
 *   both: route 224.0.0.0/4 via the veth end, IPv6 addresses without DAD (usable at once)
 *
 * The test process moves itself into A with unshare(CLONE_NEWNET) (Criterion runs each test in
 * its own process, so nothing else is affected) and creates B the same way, keeping a
 * descriptor to each; a socket belongs to the namespace it was created in, so a test switches
 * with zt_netns_enter() before creating it. Both namespaces are anonymous: nothing is named or
 * mounted, and the kernel destroys them, and the veth pair with them, when the last descriptor
 * and socket in them are gone, even if the test crashes. Without root, CLONE_NEWNET or the
 * `ip` tool, setup fails with a reason and the tests skip.
 */
#ifndef ZT_NETNS_H
#define ZT_NETNS_H

#define ZT_NS_A_IF "zva"
#define ZT_NS_B_IF "zvb"
#define ZT_NS_A4 "198.18.0.1"
#define ZT_NS_B4 "198.18.0.2"
#define ZT_NS_B4_OTHER "198.18.0.3"
#define ZT_NS_BCAST4 "198.18.0.255"
#define ZT_NS_A6 "fd00::1"
#define ZT_NS_B6 "fd00::2"
#define ZT_NS_B6_OTHER "fd00::3"

struct zt_netns {
    int ok;        /* 1 once both namespaces are up */
    char why[256]; /* why not, for cr_skip_test */
    int host_fd;   /* the namespace the test started in */
    int moved;     /* the thread left it (unshare succeeded) */
    int a_fd;
    int b_fd;
    unsigned a_index; /* ifindex of zva in A */
    unsigned b_index; /* ifindex of zvb in B */
};

/* Build both namespaces; on return the thread is in A. Returns 0, or -1 with ns->why set and
 * the thread back in its original namespace. */
int zt_netns_setup(struct zt_netns *ns);
/* Switch the calling thread to namespace 'a' or 'b'. */
void zt_netns_enter(const struct zt_netns *ns, char which);
/* Return to the original namespace and drop every descriptor (the namespaces then vanish once
 * the sockets in them are closed). Safe after a failed setup. */
void zt_netns_teardown(struct zt_netns *ns);

#endif
