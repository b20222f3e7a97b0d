/* src/reactor/epoll_events.h: epoll's event bits as the loop's, shared by the two Linux
 * backends (io_uring's poll requests report the same bits as epoll_wait). */
#ifndef ZEV_EPOLL_EVENTS_H
#define ZEV_EPOLL_EVENTS_H

#include "reactor_internal.h"

#include <stdint.h>
#include <sys/epoll.h>

static inline unsigned zev__epoll_revents(uint32_t e) {
    unsigned r = 0;
    if (e & EPOLLIN) r |= ZEV__READABLE;
    if (e & EPOLLOUT) r |= ZEV__WRITABLE;
    if (e & (EPOLLRDHUP | EPOLLHUP)) r |= ZEV__HANGUP | ZEV__READABLE;
    if (e & EPOLLERR) r |= ZEV__ERROR | ZEV__READABLE | ZEV__WRITABLE;
    if (e & EPOLLPRI) r |= ZEV__URGENT | ZEV__READABLE;
    return r;
}

#endif /* ZEV_EPOLL_EVENTS_H */
