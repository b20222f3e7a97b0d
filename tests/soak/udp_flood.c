/* tests/soak/udp_flood.c: one UDP socket keeping `window` datagrams in flight to an echo
 * server, every echo checked byte for byte.
 *
 * Datagram n carries a header (its number, its length, the CRC32C of its payload) and a
 * payload of 16..1400 bytes cut from the pattern at a key derived from n, so an echo is
 * checked whole without storing what was sent. A ring remembers when each number in flight
 * was sent; an echo whose number is not in flight is late (it came after being counted
 * dropped) or corrupt. UDP may drop (a full receive buffer on either side), so drops are
 * reported, not failed: a datagram counts as dropped when its echo has not come DROP_MS after
 * it was sent, and its place in the window goes to a new one. The socket is connect()ed, so
 * only the server's datagrams reach it. Sending is capped at `rate` datagrams a second (a
 * token bucket refilled by the tick), so the flood presses the UDP server hard without taking
 * the whole machine from the TCP servers on a small one.
 */
#include "soak.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING 4096u /* > window: a number's slot is not reused while it may be in flight */
#define MAX_WINDOW 1024u
#define DROP_MS 1000u /* far above any queueing delay seen: a drop is a real loss */
#define MIN_PAYLOAD 16u
#define MAX_PAYLOAD 1400u

struct header {
    uint64_t seq;
    uint32_t len; /* payload bytes */
    uint32_t crc; /* CRC32C of the payload */
};

struct udp_flood {
    uint8_t kind; /* SOAK_KIND_UDP: first, for the epoll dispatch in soak.c */
    int fd;
    unsigned window;
    unsigned in_flight;
    double rate;   /* datagrams per second */
    double tokens; /* datagrams that may be sent now, at most one window's worth */
    uint64_t refill_ns;
    int stopping;
    uint64_t next_seq;
    uint64_t key;           /* from the seed: where in the pattern payloads are cut */
    uint64_t oldest;        /* every number below it is echoed or counted dropped */
    uint64_t ring[RING];    /* seq + 1 while in flight, else 0 */
    uint64_t sent_ns[RING]; /* when it was sent */
    unsigned char buf[sizeof(struct header) + MAX_PAYLOAD + 64];
    struct udp_stats st;
};

static const unsigned char *payload_of(const struct udp_flood *u, uint64_t seq) {
    return soak_pattern + (u->key + seq * 7919u) % SOAK_PATTERN_PERIOD;
}

static size_t payload_len(uint64_t seq) {
    uint64_t s = seq * 0x9E3779B97F4A7C15ull + 1;
    return (size_t)soak_rand_range(&s, MIN_PAYLOAD, MAX_PAYLOAD);
}

static void send_more(struct udp_flood *u) {
    /* The span oldest..next_seq must fit the ring, even while one old datagram holds it. */
    while (!u->stopping && u->in_flight < u->window && u->next_seq - u->oldest < RING &&
           u->tokens >= 1) {
        uint64_t seq = u->next_seq;
        size_t len = payload_len(seq);
        struct header h = {
            .seq = seq, .len = (uint32_t)len, .crc = soak_crc32c(0, payload_of(u, seq), len)};
        memcpy(u->buf, &h, sizeof(h));
        memcpy(u->buf + sizeof(h), payload_of(u, seq), len);
        ssize_t w = send(u->fd, u->buf, sizeof(h) + len, 0);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) soak_error_add(&u->st.errors, errno); /* ECONNREFUSED... */
            return; /* EAGAIN: EPOLLOUT brings us back; an error: the tick does */
        }
        u->next_seq++;
        u->tokens -= 1;
        u->ring[seq % RING] = seq + 1;
        u->sent_ns[seq % RING] = soak_now_ns();
        u->in_flight++;
        u->st.sent++;
        u->st.bytes_sent += (uint64_t)w;
    }
}

/* One echo of n bytes in u->buf. */
static void take_echo(struct udp_flood *u, size_t n) {
    struct header h;
    if (n < sizeof(h)) {
        u->st.corrupt++;
        return;
    }
    memcpy(&h, u->buf, sizeof(h));
    size_t len = n - sizeof(h);
    if (h.len != len || len != payload_len(h.seq) ||
        memcmp(u->buf + sizeof(h), payload_of(u, h.seq), len) != 0 ||
        soak_crc32c(0, u->buf + sizeof(h), len) != h.crc) {
        u->st.corrupt++;
        return;
    }
    if (u->ring[h.seq % RING] != h.seq + 1) {
        if (h.seq < u->next_seq) {
            u->st.late++;
        } else {
            u->st.corrupt++; /* a number never sent */
        }
        return;
    }
    u->ring[h.seq % RING] = 0;
    u->in_flight--;
    u->st.echoed++;
    u->st.bytes_echoed += n;
}

void udp_flood_event(struct udp_flood *u, uint32_t events) {
    if (events & (EPOLLIN | EPOLLERR)) {
        for (;;) {
            ssize_t n = recv(u->fd, u->buf, sizeof(u->buf), 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN) {
                    soak_error_add(&u->st.errors, errno);
                    continue; /* a reported ICMP error; the queue may hold more */
                }
                break;
            }
            take_echo(u, (size_t)n);
        }
    }
    send_more(u);
}

void udp_flood_tick(struct udp_flood *u, uint64_t now_ns) {
    /* Sent in number order, so the oldest unanswered one is the first to time out. */
    while (u->oldest < u->next_seq) {
        unsigned i = (unsigned)(u->oldest % RING);
        if (u->ring[i]) {
            /* now_ns may predate the send (taken before this batch): no subtraction. */
            if (u->sent_ns[i] + (uint64_t)DROP_MS * 1000000u > now_ns) break;
            u->ring[i] = 0;
            u->in_flight--;
            u->st.dropped++;
        }
        u->oldest++;
    }
    u->tokens += u->rate * (double)(now_ns - u->refill_ns) / 1e9;
    if (u->tokens > u->window) u->tokens = u->window;
    u->refill_ns = now_ns;
    send_more(u);
}

void udp_flood_stop(struct udp_flood *u) {
    u->stopping = 1;
}

unsigned udp_flood_in_flight(const struct udp_flood *u) {
    return u->in_flight;
}

const struct udp_stats *udp_flood_stats(const struct udp_flood *u) {
    return &u->st;
}

struct udp_flood *udp_flood_new(int ep, const struct sockaddr_in *to, unsigned window,
                                unsigned rate, uint64_t seed) {
    if (window > MAX_WINDOW) window = MAX_WINDOW;
    struct udp_flood *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->kind = SOAK_KIND_UDP;
    u->window = window;
    u->rate = rate;
    u->refill_ns = soak_now_ns();
    u->key = seed % SOAK_PATTERN_PERIOD;
    u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) goto free_u;
    if (connect(u->fd, (const struct sockaddr *)to, sizeof(*to)) < 0) goto close_fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = u};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, u->fd, &ev) < 0) goto close_fd;
    return u;
close_fd:
    close(u->fd);
free_u:
    free(u);
    return NULL;
}

void udp_flood_free(struct udp_flood *u) {
    if (!u) return;
    close(u->fd);
    free(u);
}
