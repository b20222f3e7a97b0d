/* src/reactor/uring.c: setting up, filling and entering an io_uring (uring.h).
 *
 * Setup asks for the features zev relies on and tells an old kernel apart from a refusal:
 * SUBMIT_ALL (5.18: one bad SQE does not stop the ones behind it), COOP_TASKRUN and
 * TASKRUN_FLAG (6.0: completions are not pushed by interrupting the loop's thread; the kernel
 * raises IORING_SQ_TASKRUN instead, and the next enter collects them), and the single mmap
 * and no-drop CQ (both 5.5). Anything older fails with -EINVAL and the loop falls back to
 * epoll.
 */
#include "uring.h"

#include "sys.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int sys_setup(unsigned entries, struct io_uring_params *p) {
    int f = zev__fault_hit(ZEV_SYS_POLL_CREATE, NULL);
    if (f < 0) return f;
    long fd = syscall(__NR_io_uring_setup, entries, p);
    return fd < 0 ? -errno : (int)fd;
}

static int sys_enter(int fd, unsigned to_submit, unsigned wait_nr, unsigned flags, void *arg,
                     size_t arg_size) {
    long r = syscall(__NR_io_uring_enter, fd, to_submit, wait_nr, flags, arg, arg_size);
    return r < 0 ? -errno : (int)r;
}

static void *map(int fd, size_t size, off_t offset) {
    int f = zev__fault_hit(ZEV_SYS_RING_MAP, NULL);
    if (f < 0) {
        errno = -f;
        return MAP_FAILED;
    }
    return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
}

/* Point the struct at the kernel's fields inside the mapped rings. */
static void locate(struct zev__uring *r, const struct io_uring_params *p) {
    char *ring = r->ring_mem;
    r->sq_khead = (unsigned *)(ring + p->sq_off.head);
    r->sq_ktail = (unsigned *)(ring + p->sq_off.tail);
    r->sq_kflags = (unsigned *)(ring + p->sq_off.flags);
    r->sq_array = (unsigned *)(ring + p->sq_off.array);
    r->sq_mask = *(unsigned *)(ring + p->sq_off.ring_mask);
    r->sq_entries = p->sq_entries;
    r->sq_tail = *r->sq_ktail;
    r->cq_khead = (unsigned *)(ring + p->cq_off.head);
    r->cq_ktail = (unsigned *)(ring + p->cq_off.tail);
    r->cq_mask = *(unsigned *)(ring + p->cq_off.ring_mask);
    r->cq_entries = p->cq_entries;
    r->cqes = (struct io_uring_cqe *)(ring + p->cq_off.cqes);
    /* SQ slot i always names SQE i: zev fills SQEs in ring order. */
    for (unsigned i = 0; i < r->sq_entries; i++) r->sq_array[i] = i;
}

int zev__uring_setup(struct zev__uring *r, unsigned sq_entries, unsigned cq_entries) {
    *r = (struct zev__uring){.fd = -1};
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_CLAMP;
    p.cq_entries = cq_entries;
    int fd = sys_setup(sq_entries, &p);
    if (fd < 0) return fd;
    int err = -EINVAL; /* a kernel without these features is too old for zev */
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP) ||
        !(p.features & IORING_FEAT_EXT_ARG))
        goto close_fd;
    r->fd = fd;
    r->features = p.features;
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    r->ring_size = sq_size > cq_size ? sq_size : cq_size;
    r->ring_mem = map(fd, r->ring_size, IORING_OFF_SQ_RING);
    if (r->ring_mem == MAP_FAILED) {
        err = -errno;
        goto close_fd;
    }
    r->sqe_size = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqe_mem = map(fd, r->sqe_size, IORING_OFF_SQES);
    if (r->sqe_mem == MAP_FAILED) {
        err = -errno;
        munmap(r->ring_mem, r->ring_size);
        goto close_fd;
    }
    r->sqes = r->sqe_mem;
    locate(r, &p);
    return 0;

close_fd:
    zev__sys_close(fd);
    *r = (struct zev__uring){.fd = -1};
    return err;
}

void zev__uring_close(struct zev__uring *r) {
    if (r->fd < 0) return;
    munmap(r->sqe_mem, r->sqe_size);
    munmap(r->ring_mem, r->ring_size);
    zev__sys_close(r->fd); /* the kernel cancels whatever is still in flight */
    *r = (struct zev__uring){.fd = -1};
}

/* Submit without waiting (the SQ is full, or a caller needs its SQEs in the kernel now). */
static int submit(struct zev__uring *r) {
    int f = zev__fault_hit(ZEV_SYS_RING_SUBMIT, NULL);
    if (f < 0) return f;
    __atomic_store_n(r->sq_ktail, r->sq_tail, __ATOMIC_RELEASE);
    int n;
    do {
        n = sys_enter(r->fd, zev__uring_unsubmitted(r), 0, 0, NULL, 0);
    } while (n == -EINTR);
    return n < 0 ? n : 0;
}

int zev__uring_reserve(struct zev__uring *r, unsigned n) {
    if (n > r->sq_entries) return -EINVAL;
    if (zev__uring_unsubmitted(r) + n <= r->sq_entries) return 0;
    int err = submit(r);
    if (err < 0) return err;
    return zev__uring_unsubmitted(r) + n <= r->sq_entries ? 0 : -EBUSY;
}

struct io_uring_sqe *zev__uring_sqe(struct zev__uring *r, int *err) {
    if (zev__uring_unsubmitted(r) >= r->sq_entries) {
        *err = submit(r);
        if (*err < 0) return NULL;
        if (zev__uring_unsubmitted(r) >= r->sq_entries) {
            *err = -EBUSY; /* the kernel took none: out of memory for requests */
            return NULL;
        }
    }
    struct io_uring_sqe *sqe = &r->sqes[r->sq_tail & r->sq_mask];
    memset(sqe, 0, sizeof(*sqe));
    r->sq_tail++;
    return sqe;
}

int zev__uring_enter(struct zev__uring *r, unsigned wait_nr, int timeout_ms) {
    __atomic_store_n(r->sq_ktail, r->sq_tail, __ATOMIC_RELEASE);
    unsigned flags = IORING_ENTER_GETEVENTS;
    struct __kernel_timespec ts;
    struct io_uring_getevents_arg arg = {.sigmask_sz = _NSIG / 8};
    void *argp = NULL;
    size_t arg_size = 0;
    if (timeout_ms > 0 && wait_nr > 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        arg.ts = (uint64_t)(uintptr_t)&ts;
        flags |= IORING_ENTER_EXT_ARG;
        argp = &arg;
        arg_size = sizeof(arg);
    }
    int n = sys_enter(r->fd, zev__uring_unsubmitted(r), wait_nr, flags, argp, arg_size);
    if (n >= 0 || n == -ETIME || n == -EBUSY || n == -EAGAIN) return 0;
    if (n == -EINTR && zev__uring_cq_ready(r) > 0) return 0;
    return n;
}
