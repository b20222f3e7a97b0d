/* bench/peers/udp_echo_mmsg.c: the reference UDP echo server: epoll + recvmmsg/sendmmsg.
 *
 * Hand-written, no library: the socket is registered once (EPOLLIN|EPOLLOUT|EPOLLET); one
 * recvmmsg takes up to BATCH datagrams into static 64 KiB slots with their senders, and one
 * sendmmsg sends them all back from the same slots (no copy). If the kernel takes only part
 * of a batch, the rest waits for EPOLLOUT and receiving pauses meanwhile. A batch smaller
 * than BATCH means the queue was empty, so the recvmmsg that would only say EAGAIN is
 * skipped. Leaves the command line and the "listening on" line to peer.h.
 */
#include "peer.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#define BATCH 64

static char slots[BATCH][PEER_READ_SIZE];
static struct sockaddr_storage senders[BATCH];
static struct iovec rx_iov[BATCH];
static struct iovec tx_iov[BATCH];
static struct mmsghdr rx[BATCH];
static struct mmsghdr tx[BATCH];
static unsigned tx_count; /* datagrams of the current batch */
static unsigned tx_done;  /* of which sent */

static void setup_batch(void) {
    for (unsigned i = 0; i < BATCH; i++) {
        rx_iov[i] = (struct iovec){.iov_base = slots[i], .iov_len = sizeof(slots[i])};
        rx[i].msg_hdr = (struct msghdr){.msg_iov = &rx_iov[i], .msg_iovlen = 1};
        tx_iov[i].iov_base = slots[i];
        tx[i].msg_hdr =
            (struct msghdr){.msg_iov = &tx_iov[i], .msg_iovlen = 1, .msg_name = &senders[i]};
    }
}

/* Send what is left of the batch. 1 when all is out, 0 to wait for EPOLLOUT. */
static int flush(int fd) {
    while (tx_done < tx_count) {
        int n = sendmmsg(fd, tx + tx_done, tx_count - tx_done, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == ENOBUFS) return 0;
            /* A datagram the kernel refuses (an ICMP error reported late, say): drop it. */
            perror("udp_echo_mmsg: sendmmsg");
            n = 1;
        }
        tx_done += (unsigned)n;
    }
    tx_count = tx_done = 0;
    return 1;
}

static void on_ready(int fd) {
    if (!flush(fd)) return;
    for (;;) {
        for (unsigned i = 0; i < BATCH; i++) {
            rx[i].msg_hdr.msg_name = &senders[i];
            rx[i].msg_hdr.msg_namelen = sizeof(senders[i]);
        }
        int n = recvmmsg(fd, rx, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) perror("udp_echo_mmsg: recvmmsg");
            return;
        }
        for (int i = 0; i < n; i++) {
            tx_iov[i].iov_len = rx[i].msg_len;
            tx[i].msg_hdr.msg_namelen = rx[i].msg_hdr.msg_namelen;
        }
        tx_count = (unsigned)n;
        tx_done = 0;
        if (!flush(fd)) return;
        if (n < BATCH) return; /* drained: a new datagram raises a new edge */
    }
}

int main(int argc, char **argv) {
    struct peer_args a;
    peer_parse(argc, argv, &a);
    setup_batch();
    int fd = socket(a.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a.addr, a.addr_len) < 0) {
        perror("udp_echo_mmsg: bind");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        perror("udp_echo_mmsg: epoll");
        return 1;
    }
    peer_print_listening(argv[0], fd);
    for (;;) {
        struct epoll_event out;
        int n = epoll_wait(ep, &out, 1, -1);
        if (n < 0 && errno != EINTR) {
            perror("udp_echo_mmsg: epoll_wait");
            return 1;
        }
        if (n > 0) on_ready(fd);
    }
}
