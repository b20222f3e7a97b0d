/* fuzz/fuzz_kqueue_emu.c: libFuzzer target for the test-only kqueue emulation
 * (tests/support/kqueue_emu), which the kqueue build of zev runs on.
 *
 * Each input gets a fresh queue and eight descriptors: a pipe (both ends), a socket pair, an
 * eventfd, a UDP socket and a TCP listener on 127.0.0.1, and a TCP socket that may connect to
 * that listener. The input is a list of operations: a change list of 1 to 8 random kevents
 * (EVFILT_READ/WRITE/USER or a bad filter; any mix of EV_ADD, DELETE, ENABLE, DISABLE,
 * ONESHOT, CLEAR, RECEIPT and EOF; NOTE_* fflags; descriptors, user idents and bad idents) with
 * an eventlist of random room, waits with a zero timeout, and I/O that changes readiness
 * (writes, reads, shutdown, close, a new descriptor taking a closed one's number, connect,
 * accept). Only loopback traffic, bounded by the input's length.
 *
 * A model of the knotes, following the semantics kqueue_emu.c states at its top, predicts each
 * change's result exactly (the EV_ERROR entries, or -1 and the errno when the eventlist has no
 * room). Every event returned must belong to a knote that exists, is enabled, has that udata
 * and, for EVFILT_USER, is triggered with the model's fflags and data; none twice in a call; a
 * deleted or disabled filter, or one on a closed descriptor, never fires. No event is lost: a
 * level-triggered enabled knote whose descriptor was ready before a wait that still had room is
 * returned by it. At the end the queue's state is reclaimed (nothing leaks; LeakSanitizer
 * checks every input).
 */
#include "fuzz_common.h"

#include <sys/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Emulation-only: number of queue states allocated (kqueue_emu.c). */
int kqueue_emu_live_queues(void);

#define N_SLOTS 8
#define MAX_CHANGES 8
#define MAX_EVENTS 16
#define MAX_USERS 32
#define MAX_OPS 48
#define KEPT (EV_ONESHOT | EV_CLEAR | EV_RECEIPT)

enum { PIPE_R, PIPE_W, PAIR_A, PAIR_B, EVENT_FD, UDP, LISTENER, CLIENT };

struct mknote {
    bool exists;
    bool disabled;
    unsigned short kept; /* EV_ONESHOT | EV_CLEAR | EV_RECEIPT, fixed at creation */
    void *udata;
    bool triggered;      /* EVFILT_USER */
    unsigned int fflags; /* EVFILT_USER */
    int64_t data;        /* EVFILT_USER */
};

struct slot {
    int fd;    /* -1 once closed */
    int numfd; /* the number it had, still used as an ident after close */
    bool sock; /* a socket: readable with 0 bytes and no EV_EOF while an error is pending */
    struct mknote rd;
    struct mknote wr;
};

struct user {
    uintptr_t ident;
    struct mknote kn;
};

struct world {
    int kq;
    struct slot s[N_SLOTS];
    struct user users[MAX_USERS];
    int n_users;
    struct sockaddr_in udp_addr;
    struct sockaddr_in tcp_addr;
    uintptr_t next_tag; /* udata of the next change: unique, so results match changes */
};

static const struct timespec zero_ts = {0, 0};
static bool trace; /* ZEV_FUZZ_TRACE=1: print every kevent() call, to read a saved crash */

static void trace_call(const char *what, const struct kevent *ch, int n, int room, int got,
                       const struct kevent *out) {
    if (!trace) return;
    fprintf(stderr, "%s: %d changes, room %d -> %d (errno %d)\n", what, n, room, got, errno);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, "  change ident %ju filter %d flags %#x fflags %#x data %jd udata %p\n",
                (uintmax_t)ch[i].ident, ch[i].filter, ch[i].flags, ch[i].fflags,
                (intmax_t)ch[i].data, ch[i].udata);
    }
    for (int i = 0; i < got; i++) {
        fprintf(stderr, "  out ident %ju filter %d flags %#x fflags %#x data %jd udata %p\n",
                (uintmax_t)out[i].ident, out[i].filter, out[i].flags, out[i].fflags,
                (intmax_t)out[i].data, out[i].udata);
    }
}

/* ---- setup ---- */

static int bound_socket(int type, struct sockaddr_in *sa) {
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(*sa);
    FUZZ_CHECK(bind(fd, (struct sockaddr *)sa, len) == 0);
    FUZZ_CHECK(getsockname(fd, (struct sockaddr *)sa, &len) == 0);
    return fd;
}

static void open_world(struct world *w) {
    memset(w, 0, sizeof(*w));
    w->kq = kqueue();
    FUZZ_CHECK(w->kq >= 0);
    /* The previous input's queue had this number; its state went when kqueue() reused it. */
    FUZZ_CHECK(kqueue_emu_live_queues() == 1);
    int p[2];
    FUZZ_CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    w->s[PIPE_R].fd = p[0];
    w->s[PIPE_W].fd = p[1];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p) == 0);
    w->s[PAIR_A].fd = p[0];
    w->s[PAIR_B].fd = p[1];
    w->s[EVENT_FD].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    FUZZ_CHECK(w->s[EVENT_FD].fd >= 0);
    w->s[UDP].fd = bound_socket(SOCK_DGRAM, &w->udp_addr);
    w->s[LISTENER].fd = bound_socket(SOCK_STREAM, &w->tcp_addr);
    FUZZ_CHECK(listen(w->s[LISTENER].fd, 4) == 0);
    w->s[CLIENT].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(w->s[CLIENT].fd >= 0);
    for (int i = 0; i < N_SLOTS; i++) {
        w->s[i].numfd = w->s[i].fd;
        w->s[i].sock = i >= PAIR_A && i != EVENT_FD;
    }
    if (trace) {
        fprintf(stderr,
                "kq %d; fds: pipe %d %d, pair %d %d, eventfd %d, udp %d, listener %d, "
                "client %d\n",
                w->kq, w->s[0].fd, w->s[1].fd, w->s[2].fd, w->s[3].fd, w->s[4].fd, w->s[5].fd,
                w->s[6].fd, w->s[7].fd);
    }
}

static void close_slot(struct world *w, int i) {
    if (w->s[i].fd < 0) return;
    close(w->s[i].fd);
    w->s[i].fd = -1;
    /* Closing a descriptor drops its knotes. */
    w->s[i].rd.exists = false;
    w->s[i].wr.exists = false;
}

static void close_world(struct world *w) {
    for (int i = 0; i < N_SLOTS; i++) {
        close_slot(w, i);
    }
    close(w->kq);
    /* kevent() on the closed queue reclaims its state: nothing may be left. */
    errno = 0;
    FUZZ_CHECK(kevent(w->kq, NULL, 0, NULL, 0, &zero_ts) == -1 && errno == EBADF);
    FUZZ_CHECK(kqueue_emu_live_queues() == 0);
}

/* ---- the model ---- */

static struct slot *slot_of(struct world *w, uintptr_t ident) {
    for (int i = 0; i < N_SLOTS; i++) {
        if (w->s[i].fd >= 0 && (uintptr_t)w->s[i].fd == ident) return &w->s[i];
    }
    return NULL;
}

static struct mknote *user_of(struct world *w, uintptr_t ident, bool create) {
    for (int i = 0; i < w->n_users; i++) {
        if (w->users[i].ident == ident) return &w->users[i].kn;
    }
    if (!create) return NULL;
    FUZZ_CHECK(w->n_users < MAX_USERS);
    w->users[w->n_users].ident = ident;
    memset(&w->users[w->n_users].kn, 0, sizeof(struct mknote));
    return &w->users[w->n_users++].kn;
}

static void create(struct mknote *kn, const struct kevent *c) {
    *kn = (struct mknote){
        .exists = true,
        .disabled = (c->flags & EV_DISABLE) && !(c->flags & EV_ENABLE),
        .kept = c->flags & KEPT,
        .udata = c->udata,
    };
}

static void modify(struct mknote *kn, const struct kevent *c) {
    if (c->flags & EV_ENABLE) {
        kn->disabled = false;
    } else if (c->flags & EV_DISABLE) {
        kn->disabled = true;
    }
    kn->udata = c->udata;
}

static int model_fd_change(struct world *w, const struct kevent *c) {
    struct slot *s = c->ident <= INT_MAX ? slot_of(w, c->ident) : NULL;
    if (!s) return EBADF; /* closed, never ours, or too big to be a descriptor */
    struct mknote *kn = c->filter == EVFILT_READ ? &s->rd : &s->wr;
    if (!kn->exists) {
        if (!(c->flags & EV_ADD)) return ENOENT;
        create(kn, c);
        return 0;
    }
    if (c->flags & EV_DELETE) {
        kn->exists = false;
        return 0;
    }
    modify(kn, c);
    return 0;
}

/* FreeBSD's filt_usertouch, as the emulation does it. */
static void touch_user(struct mknote *kn, const struct kevent *c) {
    unsigned int ff = c->fflags & NOTE_FFLAGSMASK;
    switch (c->fflags & NOTE_FFCTRLMASK) {
    case NOTE_FFAND:
        kn->fflags &= ff;
        break;
    case NOTE_FFOR:
        kn->fflags |= ff;
        break;
    case NOTE_FFCOPY:
        kn->fflags = ff;
        break;
    default:
        break;
    }
    kn->data = c->data;
    if (c->fflags & NOTE_TRIGGER) kn->triggered = true;
    if (c->flags & EV_CLEAR) kn->triggered = false;
}

static int model_user_change(struct world *w, const struct kevent *c) {
    struct mknote *kn = user_of(w, c->ident, false);
    if (!kn || !kn->exists) {
        if (!(c->flags & EV_ADD)) return ENOENT;
        kn = user_of(w, c->ident, true);
        create(kn, c);
        kn->fflags = c->fflags & NOTE_FFLAGSMASK;
        kn->data = c->data;
        kn->triggered = (c->fflags & NOTE_TRIGGER) != 0;
        return 0;
    }
    if (c->flags & EV_DELETE) {
        kn->exists = false;
        return 0;
    }
    modify(kn, c);
    touch_user(kn, c);
    return 0;
}

static int model_change(struct world *w, const struct kevent *c) {
    if (c->filter == EVFILT_READ || c->filter == EVFILT_WRITE) return model_fd_change(w, c);
    if (c->filter == EVFILT_USER) return model_user_change(w, c);
    return EINVAL;
}

/* The knote an event names, or NULL. */
static struct mknote *knote_of(struct world *w, const struct kevent *ev) {
    if (ev->filter == EVFILT_USER) return user_of(w, ev->ident, false);
    if (ev->filter != EVFILT_READ && ev->filter != EVFILT_WRITE) return NULL;
    struct slot *s = ev->ident <= INT_MAX ? slot_of(w, ev->ident) : NULL;
    if (!s) return NULL;
    return ev->filter == EVFILT_READ ? &s->rd : &s->wr;
}

/* ---- readiness, as the emulation's filters define it ---- */

static bool ready(int fd, bool rd) {
    struct pollfd p = {.fd = fd, .events = rd ? POLLIN | POLLRDHUP | POLLPRI : POLLOUT};
    if (poll(&p, 1, 0) != 1) return false;
    short want = rd ? POLLIN | POLLRDHUP | POLLHUP | POLLERR : POLLOUT | POLLHUP | POLLERR;
    return (p.revents & want) != 0;
}

struct snapshot {
    bool rd[N_SLOTS];
    bool wr[N_SLOTS];
};

static void take_snapshot(const struct world *w, struct snapshot *snap) {
    for (int i = 0; i < N_SLOTS; i++) {
        snap->rd[i] = w->s[i].fd >= 0 && ready(w->s[i].fd, true);
        snap->wr[i] = w->s[i].fd >= 0 && ready(w->s[i].fd, false);
    }
}

/* ---- checking what kevent() returned ---- */

static void check_event(struct world *w, const struct kevent *ev) {
    FUZZ_CHECK(!(ev->flags & EV_ERROR));
    struct mknote *kn = knote_of(w, ev);
    FUZZ_CHECK(kn != NULL && kn->exists && !kn->disabled); /* never a deleted or disabled one */
    FUZZ_CHECK(ev->udata == kn->udata);
    FUZZ_CHECK((ev->flags & KEPT) == kn->kept);
    if (ev->filter == EVFILT_USER) {
        FUZZ_CHECK(kn->triggered);
        FUZZ_CHECK(ev->fflags == kn->fflags && ev->data == kn->data);
        FUZZ_CHECK((ev->flags & ~KEPT) == 0);
        if (kn->kept & EV_CLEAR) kn->triggered = false;
    } else {
        FUZZ_CHECK((ev->flags & ~(KEPT | EV_EOF | EV_OOBAND)) == 0);
        bool eof = (ev->flags & EV_EOF) != 0;
        bool sock = slot_of(w, ev->ident)->sock;
        FUZZ_CHECK(ev->data >= 1 || (ev->filter == EVFILT_READ && (eof || sock)));
    }
    if (kn->kept & EV_ONESHOT) kn->exists = false;
}

static bool reported(const struct kevent *out, int n, uintptr_t ident, short filter) {
    for (int i = 0; i < n; i++) {
        if (out[i].ident == ident && out[i].filter == filter) return true;
    }
    return false;
}

static void check_events(struct world *w, const struct kevent *out, int n, int room,
                         const struct snapshot *before) {
    FUZZ_CHECK(n >= 0 && n <= room);
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(!reported(out, i, out[i].ident, out[i].filter)); /* once per call */
        check_event(w, &out[i]);
    }
    if (n == room) return; /* full: the rest may wait for the next call */
    /* Nothing lost: a level-triggered knote whose descriptor was ready was returned. */
    for (int i = 0; i < N_SLOTS; i++) {
        const struct slot *s = &w->s[i];
        if (s->fd < 0) continue;
        const struct mknote *k[2] = {&s->rd, &s->wr};
        const bool was[2] = {before->rd[i], before->wr[i]};
        const short filter[2] = {EVFILT_READ, EVFILT_WRITE};
        for (int j = 0; j < 2; j++) {
            if (!k[j]->exists || k[j]->disabled || (k[j]->kept & EV_CLEAR) || !was[j]) continue;
            FUZZ_CHECK(reported(out, n, (uintptr_t)s->fd, filter[j]));
        }
    }
}

/* ---- operations ---- */

static uintptr_t draw_ident(struct world *w, struct fuzz_in *in, short filter) {
    uint8_t t = fuzz_u8(in) % 16;
    if (t < N_SLOTS) return (uintptr_t)w->s[t].numfd; /* maybe closed since */
    if (t < 12 && filter == EVFILT_USER) return t - N_SLOTS;
    static const uintptr_t bad[] = {(uintptr_t)INT_MAX + 1, UINTPTR_MAX, INT_MAX, 100000};
    return bad[t % 4];
}

static short draw_filter(struct fuzz_in *in) {
    uint8_t f = fuzz_u8(in);
    switch (f % 8) {
    case 0:
    case 1:
    case 2:
        return EVFILT_READ;
    case 3:
    case 4:
        return EVFILT_WRITE;
    case 5:
    case 6:
        return EVFILT_USER;
    default:
        /* Every kqueue filter is negative: a positive number is none, whatever filters the
         * emulation learns later (0 is left out: FreeBSD skips such a change silently). */
        return (short)(1 + fuzz_u8(in) % 127);
    }
}

static void draw_change(struct world *w, struct fuzz_in *in, struct kevent *c) {
    short filter = draw_filter(in);
    uintptr_t ident = draw_ident(w, in, filter);
    uint8_t fl = fuzz_u8(in);
    unsigned short flags = (unsigned short)((fl & 0x7f) | ((fl & 0x80) ? EV_EOF : 0));
    unsigned int fflags = filter == EVFILT_USER ? fuzz_u32(in) : 0;
    int64_t data = (int8_t)fuzz_u8(in);
    EV_SET(c, ident, filter, flags, fflags, data, (void *)++w->next_tag);
}

static void op_changes(struct world *w, struct fuzz_in *in) {
    struct kevent ch[MAX_CHANGES];
    int n = 1 + fuzz_u8(in) % MAX_CHANGES;
    for (int i = 0; i < n; i++) {
        draw_change(w, in, &ch[i]);
    }
    uint8_t r = fuzz_u8(in);
    int room = r < 192 ? n + r % (MAX_EVENTS - n + 1) : r % (n + 1); /* mostly enough room */
    struct snapshot before;
    take_snapshot(w, &before);
    struct kevent out[MAX_EVENTS];
    errno = 0;
    int got = kevent(w->kq, ch, n, out, room, &zero_ts);
    trace_call("changes", ch, n, room, got, out);
    /* Predict: changes in order; failed or EV_RECEIPT ones take an entry while there is room;
     * one that finds none ends the call: -1 and its errno if it failed (the entries already
     * written do not count, as in FreeBSD's kqueue_kevent), else the entries so far. */
    int entries = 0;
    int want_errno = 0;
    for (int i = 0; i < n; i++) {
        int err = model_change(w, &ch[i]);
        if (trace) fprintf(stderr, "  model: change %d -> %d\n", i, err);
        if (err == 0 && !(ch[i].flags & EV_RECEIPT)) continue;
        if (entries == room) {
            want_errno = err;
            break;
        }
        if (got > entries) {
            const struct kevent *e = &out[entries];
            FUZZ_CHECK(e->flags == EV_ERROR && e->data == err);
            FUZZ_CHECK(e->ident == ch[i].ident && e->filter == ch[i].filter);
            FUZZ_CHECK(e->udata == ch[i].udata);
        }
        entries++;
    }
    if (want_errno) {
        FUZZ_CHECK(got == -1 && errno == want_errno);
        return;
    }
    if (entries > 0 || room == 0) {
        FUZZ_CHECK(got == entries); /* reported changes come back alone */
        return;
    }
    check_events(w, out, got, room, &before);
}

static void op_wait(struct world *w, struct fuzz_in *in) {
    int room = fuzz_u8(in) % (MAX_EVENTS + 1);
    struct snapshot before;
    take_snapshot(w, &before);
    struct kevent out[MAX_EVENTS];
    int got = kevent(w->kq, NULL, 0, out, room, &zero_ts);
    trace_call("wait", NULL, 0, room, got, out);
    check_events(w, out, got, room, &before);
}

/* Write a few bytes somewhere, or fill a pipe / socket pair up. Results are not checked:
 * this only moves readiness around. */
static void op_write(struct world *w, struct fuzz_in *in) {
    static const char bytes[4096];
    uint8_t what = fuzz_u8(in);
    size_t len = 1 + fuzz_u8(in) % 64;
    int i = (int)(what % N_SLOTS);
    int fd = w->s[i].fd;
    if (fd < 0) return;
    if (i == EVENT_FD) {
        uint64_t one = 1;
        (void)!write(fd, &one, sizeof(one));
    } else if (i == UDP) {
        (void)!sendto(fd, bytes, len, 0, (const struct sockaddr *)&w->udp_addr,
                      sizeof(w->udp_addr));
    } else if (what & 0x80) {
        for (int k = 0; k < 1024 && write(fd, bytes, sizeof(bytes)) > 0; k++) {
        }
    } else {
        (void)!send(fd, bytes, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

static void op_read(struct world *w, struct fuzz_in *in) {
    char buf[8192];
    uint8_t what = fuzz_u8(in);
    int i = (int)(what % N_SLOTS);
    int fd = w->s[i].fd;
    if (fd < 0) return;
    if (i == LISTENER) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0) close(c);
        return;
    }
    int rounds = (what & 0x80) ? 64 : 1; /* drain, or take one bite */
    for (int k = 0; k < rounds && read(fd, buf, sizeof(buf)) > 0; k++) {
    }
}

static void op_other(struct world *w, struct fuzz_in *in) {
    uint8_t what = fuzz_u8(in);
    int i = (int)(fuzz_u8(in) % N_SLOTS);
    if (trace) fprintf(stderr, "other %d on slot %d (fd %d)\n", what % 4, i, w->s[i].fd);
    switch (what % 4) {
    case 0:
        if (w->s[i].fd >= 0) (void)shutdown(w->s[i].fd, (int)(fuzz_u8(in) % 3));
        break;
    case 1:
        close_slot(w, i);
        break;
    case 2:
        /* A new descriptor, most likely under a closed one's number: the old knotes must not
         * come back to life on it. It is a socket, not an eventfd: the emulation tells files
         * apart by (st_dev, st_ino), and every eventfd shares one anonymous inode, so a knote
         * of a closed eventfd does survive on a new one (docs/testing.md, "Fuzzing"). */
        if (w->s[i].fd < 0) {
            w->s[i].fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            FUZZ_CHECK(w->s[i].fd >= 0);
            w->s[i].numfd = w->s[i].fd;
            w->s[i].sock = true;
        }
        break;
    default:
        if (w->s[CLIENT].fd >= 0) {
            (void)connect(w->s[CLIENT].fd, (const struct sockaddr *)&w->tcp_addr,
                          sizeof(w->tcp_addr));
        }
        break;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* writes to a pipe whose reader was closed: EPIPE instead */
    const char *t = getenv("ZEV_FUZZ_TRACE");
    trace = t && *t == '1';
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct world w;
    open_world(&w);
    struct fuzz_in in = {data, size};
    for (int k = 0; k < MAX_OPS && in.n > 0; k++) {
        uint8_t op = fuzz_u8(&in);
        switch (op % 8) {
        case 0:
        case 1:
        case 2:
            op_changes(&w, &in);
            break;
        case 3:
        case 4:
            op_wait(&w, &in);
            break;
        case 5:
            op_write(&w, &in);
            break;
        case 6:
            op_read(&w, &in);
            break;
        default:
            op_other(&w, &in);
            break;
        }
    }
    close_world(&w);
    return 0;
}
