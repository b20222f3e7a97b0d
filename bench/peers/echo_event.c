/* bench/peers/echo_event.c: a libevent TCP echo server on bufferevents.
 *
 * The idiomatic libevent 2 echo: an evconnlistener accepts, each connection gets a socket
 * bufferevent, and the read callback moves the input buffer's chains onto the output buffer
 * (evbuffer_add_buffer: no copy). libevent then writes the output from the event loop when
 * the socket is writable. The bufferevent may read and write up to 64 KiB at a time (its
 * default is 16 KiB) to match the other peers, but libevent 2.1's evbuffer_read still reads
 * at most 4096 bytes per readv (EVBUFFER_MAX_READ, settable only from 2.2 on), after a
 * FIONREAD ioctl to size it: a limit of the library, measured as such. Reading pauses while
 * more than 64 KiB of echo is unsent and resumes when the output drains (the write callback
 * fires at the low watermark, 0). On EOF the connection is freed once its output is empty.
 */
#include "peer.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

static void on_event(struct bufferevent *bev, short what, void *ctx);

/* Output drained after EOF: every echo is out, free (closes the socket, sends our FIN). */
static void free_when_flushed(struct bufferevent *bev, void *ctx) {
    (void)ctx;
    bufferevent_free(bev);
}

static void on_read(struct bufferevent *bev, void *ctx) {
    (void)ctx;
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) > PEER_HIGH_WATER) bufferevent_disable(bev, EV_READ);
}

static void on_write(struct bufferevent *bev, void *ctx) {
    (void)ctx;
    bufferevent_enable(bev, EV_READ); /* the output drained: resume if we paused */
}

static void on_event(struct bufferevent *bev, short what, void *ctx) {
    (void)ctx;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        bufferevent_setcb(bev, NULL, free_when_flushed, on_event, NULL);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *ctx) {
    (void)lev;
    (void)sa;
    (void)socklen;
    struct event_base *base = ctx;
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_set_max_single_read(bev, PEER_READ_SIZE);
    bufferevent_set_max_single_write(bev, PEER_READ_SIZE);
    bufferevent_setcb(bev, on_read, on_write, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv) {
    struct peer_args a;
    peer_parse(argc, argv, &a);
    struct event_base *base = event_base_new();
    if (!base) {
        fprintf(stderr, "echo_event: event_base_new failed\n");
        return 1;
    }
    struct evconnlistener *lev =
        evconnlistener_new_bind(base, on_accept, base, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                PEER_BACKLOG, (struct sockaddr *)&a.addr, (int)a.addr_len);
    if (!lev) {
        fprintf(stderr, "echo_event: listen %s:%d: %s\n", a.host, a.port,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return 1;
    }
    peer_print_listening(argv[0], evconnlistener_get_fd(lev));
    return event_base_dispatch(base) < 0 ? 1 : 0;
}
