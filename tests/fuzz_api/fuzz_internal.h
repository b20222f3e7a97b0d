/* tests/fuzz_api/fuzz_internal.h: the fuzzer's reference model, shared by its three files:
 * fuzz.c (the run, the checks, the operation table), fuzz_tcp.c (streams and listeners) and
 * fuzz_misc.c (timers, UDP, ref/unref).
 *
 * The model is one small struct per handle, in fixed slot arrays. A slot is FREE until an
 * operation initialises a handle in it, and FREE again once the handle's close callback ran.
 * The bytes a stream sends are a pattern of (key, offset), so a receiver checks every byte at
 * its offset without storing anything: see fz_pattern().
 */
#ifndef FUZZ_INTERNAL_H
#define FUZZ_INTERNAL_H

#include "fuzz.h"

#include <zev.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { FZ_STREAMS = 20, FZ_SERVERS = 2, FZ_TIMERS = 3, FZ_UDPS = 4, FZ_HELD = 8 };
enum { FZ_UBUF_MAX = 4096, FZ_LOG_LINES = 160, FZ_LOG_LINE = 120 };

enum fz_phase { FZ_FREE = 0, FZ_IDLE, FZ_CONNECTING, FZ_OPEN, FZ_CLOSING };
enum fz_target { FZ_TG_ACCEPTED = 0, FZ_TG_SERVER, FZ_TG_RAW, FZ_TG_REFUSED };
enum fz_fwd { FZ_FWD_NONE = 0, FZ_FWD_PIPE, FZ_FWD_RELAY };

struct fz;

/* One TCP stream (a client or an accepted connection) and what the model knows of it. */
struct fz_stream {
    zev_tcp_t tcp; /* first member: the handle's address is the slot's */
    struct fz *fz;
    uint32_t id; /* unique in the run; 0: slot never used */
    int slot;
    enum fz_phase phase;
    enum fz_target target;
    int family;     /* 4 or 6 */
    int local_port; /* clients: with server_port, to match the accepted side */
    int server_port; /* clients: the listener's port they connected to */
    int pins;       /* relayed raw writes still reading ubuf: the slot is not reused */
    uint64_t ncb;   /* callbacks so far: feeds the callbacks' own random choices */

    bool ref, half_open, reading, user_mem;
    /* Switched to user memory on a completion backend: bytes the kernel had already received
     * into the pool may still come from there, until the first slice of user memory. */
    bool pool_grace;
    bool connect_due;                     /* a connect callback is owed */
    bool ended, finished, eof, failed;    /* end() called / finish / peer EOF / error seen */
    bool connect_failed;                  /* a dead socket: calls may say -ENOTCONN */
    bool told;                            /* a write of ours was reported lost */
    bool need_drain, was_pipe_dst;
    uint32_t w_issued, w_done;            /* writes with a callback; callbacks run */

    /* What it sends: byte o is fz_pattern(out_key, out_base + o). */
    uint32_t out_key;
    uint64_t out_base;
    uint64_t out_off;   /* own bytes handed to write/sendfile */
    bool out_frozen;    /* the description above is in use: never change it again */
    bool out_forwarded; /* its bytes come from a pipe or relay, not its own writes */
    struct fz_stream *fed_by;

    /* What it receives: its peer's output, cached here once the peer is gone. */
    struct fz_stream *peer;
    bool in_known;
    uint32_t in_key;
    uint64_t in_base;
    uint64_t rx_next; /* offset the next data callback must start at */
    bool resync;      /* a pipe consumed bytes: the next offset is taken as is */

    /* Forwarding what it receives to another stream. */
    struct fz_stream *fwd;
    enum fz_fwd fwd_mode;
    bool fwd_end, fwd_used, relay_wait, relay_paused;
    zev_tcp_pipe_t pipe;
    int n_held;
    zev_slice_t held[FZ_HELD]; /* pool slices kept with a reference, to forward later */

    size_t ubuf_len;
    char ubuf[FZ_UBUF_MAX]; /* user memory it may read into */
};

struct fz_server {
    zev_tcp_server_t srv;
    struct fz *fz;
    uint32_t id;
    int slot;
    enum fz_phase phase; /* FZ_OPEN: listening */
    int family;
    int port;
    bool ref;
};

struct fz_timer {
    zev_timer_t timer;
    struct fz *fz;
    uint32_t id;
    int slot;
    enum fz_phase phase;
    bool ref, started, repeating;
};

struct fz_udp {
    zev_udp_t udp;
    struct fz *fz;
    uint32_t id;
    int slot;
    enum fz_phase phase;
    int family;
    int port; /* 0 until bound */
    bool ref, receiving;
    uint32_t s_issued, s_done, seq;
    uint64_t ncb;
};

struct fz {
    struct fz_options opt;
    struct fz_result res;
    zev_loop_t loop;
    zev_timer_t guard; /* unref'd: bounds blocking runs, never keeps the loop alive */
    unsigned weights[40]; /* per operation, from the table or fz_options.weights */
    uint64_t prng;
    uint32_t next_id;
    unsigned op_no;
    uint64_t t_start_ns, hard_deadline_ns, run_deadline_ns;
    bool stopped_by_guard, have_v6, winding_down;
    int raw_fd, raw_port;         /* listen(fd, 0), never accepted: connects stall */
    int refused_fd, refused_port; /* bound, not listening: connects are refused */
    struct fz_stream streams[FZ_STREAMS];
    struct fz_server servers[FZ_SERVERS];
    struct fz_timer timers[FZ_TIMERS];
    struct fz_udp udps[FZ_UDPS];
    unsigned log_next;
    char log[FZ_LOG_LINES][FZ_LOG_LINE];
};

/* ---- fuzz.c: randomness, the log, failure ---- */
uint64_t fz_rand(struct fz *fz);
unsigned fz_below(struct fz *fz, unsigned n);
/* A callback's own choice: derived from the seed, the handle and its callback count, so that
 * callbacks do not shift the sequence of operations. */
unsigned fz_cb_below(struct fz *fz, uint32_t id, uint64_t *ncb, unsigned n);
uint8_t fz_pattern(uint32_t key, uint64_t off);
void fz_fill(char *dst, size_t len, uint32_t key, uint64_t off);
void fz_log(struct fz *fz, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void fz_fail(struct fz *fz, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Close any one open handle other than `not` (a callback closing another handle). */
void fz_close_random_other(struct fz *fz, const zev_handle_t *not);

/* ---- fuzz_tcp.c ---- */
struct fz_stream *fz_stream_pick(struct fz *fz, unsigned phases);
void fz_stream_close(struct fz_stream *s, const char *why);
void fz_server_close(struct fz_server *sv, const char *why);
int op_listen(struct fz *fz);
int op_connect(struct fz *fz);
int op_connect_stalled(struct fz *fz);
int op_connect_refused(struct fz *fz);
int op_write(struct fz *fz);
int op_write_empty(struct fz *fz);
int op_sendfile(struct fz *fz);
int op_end(struct fz *fz);
int op_destroy(struct fz *fz);
int op_pause(struct fz *fz);
int op_resume(struct fz *fz);
int op_pipe(struct fz *fz);
int op_relay(struct fz *fz);
int op_proxy(struct fz *fz);
int op_unforward(struct fz *fz);
int op_flush_held(struct fz *fz);
int op_read_buffer(struct fz *fz);
int op_set_timeout(struct fz *fz);
int op_half_open(struct fz *fz);
int op_server_close(struct fz *fz);
int op_poke_closing(struct fz *fz);
void fz_tcp_wind_down(struct fz *fz);
void fz_stream_flush_held(struct fz_stream *s);

/* ---- fuzz_misc.c ---- */
void fz_timer_close(struct fz_timer *t, const char *why);
void fz_udp_close(struct fz_udp *u, const char *why);
int op_timer_start(struct fz *fz);
int op_timer_stop(struct fz *fz);
int op_udp_open(struct fz *fz);
int op_udp_send(struct fz *fz);
int op_udp_recv(struct fz *fz);
int op_ref(struct fz *fz);
int op_unref(struct fz *fz);
int op_unref_all(struct fz *fz);

/* Phase sets for fz_stream_pick. */
enum {
    FZ_M_IDLE = 1u << FZ_IDLE,
    FZ_M_CONNECTING = 1u << FZ_CONNECTING,
    FZ_M_OPEN = 1u << FZ_OPEN,
    FZ_M_LIVE = (1u << FZ_CONNECTING) | (1u << FZ_OPEN),
    FZ_M_CLOSING = 1u << FZ_CLOSING,
};

#endif
