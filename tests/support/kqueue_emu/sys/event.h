/* tests/support/kqueue_emu/sys/event.h: a test-only <sys/event.h> for Linux.
 *
 * Declares the part of FreeBSD's kqueue(2) API that zev uses, with FreeBSD's constants and
 * struct layout, implemented over epoll by kqueue_emu.c. It exists so that the kqueue backend
 * and the whole test suite run on Linux; it is never installed or shipped. What it emulates
 * and what it leaves out is described at the top of kqueue_emu.c.
 */
#ifndef ZEV_KQUEUE_EMU_SYS_EVENT_H
#define ZEV_KQUEUE_EMU_SYS_EVENT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZEV_KQUEUE_EMULATED 1

/* Filters (the FreeBSD values). Only these four are implemented. */
#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_SIGNAL (-6) /* ident: a signal number; data: deliveries since last returned */
#define EVFILT_USER (-11)

/* Actions. */
#define EV_ADD 0x0001     /* add the knote, or modify an existing one */
#define EV_DELETE 0x0002  /* remove the knote */
#define EV_ENABLE 0x0004  /* let kevent() return the knote */
#define EV_DISABLE 0x0008 /* keep the knote but do not return it */
/* Behaviour, fixed when the knote is created. */
#define EV_ONESHOT 0x0010 /* delete the knote after its first delivery */
#define EV_CLEAR 0x0020   /* reset the knote's state after delivery (edge-triggered) */
#define EV_RECEIPT 0x0040 /* report this change in the eventlist even when it succeeds */
/* Returned. */
#define EV_ERROR 0x4000 /* the change failed; data holds the errno (0 for a receipt) */
#define EV_EOF 0x8000   /* the filter saw end of file; fflags may hold a socket error */
/* macOS's, not FreeBSD's: EVFILT_READ on a socket with urgent (out-of-band) data pending. */
#define EV_OOBAND 0x2000

/* EVFILT_USER fflags: the low 24 bits are the user's, the top two select how a change
 * combines them with the stored ones, and NOTE_TRIGGER fires the event. */
#define NOTE_FFNOP 0x00000000u
#define NOTE_FFAND 0x40000000u
#define NOTE_FFOR 0x80000000u
#define NOTE_FFCOPY 0xc0000000u
#define NOTE_FFCTRLMASK 0xc0000000u
#define NOTE_FFLAGSMASK 0x00ffffffu
#define NOTE_TRIGGER 0x01000000u

struct kevent {
    uintptr_t ident;      /* identifier: a descriptor, or any number for EVFILT_USER */
    short filter;         /* EVFILT_* */
    unsigned short flags; /* EV_* */
    unsigned int fflags;  /* filter-specific flags */
    int64_t data;         /* filter-specific data */
    void *udata;          /* passed through unchanged */
    uint64_t ext[4];      /* FreeBSD 12 extensions: passed through, unused here */
};

/* FreeBSD defines EV_SET as a macro; code written for kqueue calls it as one. */
#define EV_SET(kevp, a, b, c, d, e, f)                                                             \
    do {                                                                                           \
        *(kevp) = (struct kevent){.ident = (a),                                                    \
                                  .filter = (b),                                                   \
                                  .flags = (c),                                                    \
                                  .fflags = (d),                                                   \
                                  .data = (e),                                                     \
                                  .udata = (f),                                                    \
                                  .ext = {0}};                                                     \
    } while (0)

/* Create a queue. Returns its descriptor (close it with close()) or -1 with errno. */
int kqueue(void);
/* Apply changelist, then return up to nevents ready events, waiting up to timeout (NULL:
 * forever). Returns the number of events, 0 on timeout, or -1 with errno. */
int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
           int nevents, const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* ZEV_KQUEUE_EMU_SYS_EVENT_H */
