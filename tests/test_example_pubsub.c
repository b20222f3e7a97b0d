/* tests/test_example_pubsub.c: zev-pubsub run as a child process with plain POSIX clients:
 * lines fan out in order to every other client, a partial line waits for its newline, an
 * over-long line ends its sender, a subscriber that never reads is dropped past --max-queue
 * while the server's memory stays bounded, and --idle-timeout counts input only. The helpers
 * are in tests/support/examples.h.
 */
#include "examples.h"
#include "zt.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(example_pubsub, .init = examples_setup, .fini = examples_teardown, .timeout = 60);

/* Start zev-pubsub on host with extra args; the port to *port and the sockets it holds with
 * nobody connected (its listener) to *base. */
static struct child *start_pubsub(const char *host, const char *const *extra, int *port,
                                  int *base) {
    const char *args[16] = {"--host", host[0] == '[' ? "::1" : host, "--port", "0"};
    int n = 4;
    for (; extra && *extra && n < 15; extra++) args[n++] = *extra;
    args[n] = NULL;
    struct child *srv = start_server("zev-pubsub", args, host, port);
    *base = child_sockets(srv);
    return srv;
}

/* Connect n clients and wait until the server has accepted all of them, so that every line
 * sent afterwards reaches all of them. */
static void connect_clients(struct child *srv, const char *host, int port, int base, int *fds,
                            int n) {
    for (int i = 0; i < n; i++) fds[i] = connect_to(host, port);
    wait_child_sockets(srv, base + n, "clients accepted");
}

static void send_text(int fd, const char *text) {
    size_t len = strlen(text);
    cr_assert_eq(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len, "send: %s", strerror(errno));
}

/* Nothing waiting on fd right now (what was sent to it has been read). */
static void assert_nothing_waiting(int fd, const char *who) {
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    cr_assert(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "%s had more: %zd", who, r);
}

Test(example_pubsub, pubsub_fans_lines_out_in_order_to_the_others_and_not_to_the_sender) {
    int port, base;
    struct child *srv = start_pubsub("[::1]", NULL, &port, &base);
    enum { CLIENTS = 3, LINES = 200 };
    int fds[CLIENTS];
    connect_clients(srv, "::1", port, base, fds, CLIENTS);
    /* Interleaved: client 0's first line, client 1's first line, ... */
    for (int j = 0; j < LINES; j++) {
        for (int i = 0; i < CLIENTS; i++) {
            char line[32];
            snprintf(line, sizeof(line), "%d:%d\n", i, j);
            send_text(fds[i], line);
        }
    }
    static char buf[CLIENTS * LINES * 16];
    for (int i = 0; i < CLIENTS; i++) {
        int want = (CLIENTS - 1) * LINES;
        read_until_count(fds[i], buf, sizeof(buf), "\n", want);
        int next[CLIENTS] = {0};
        int got = 0;
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"), got++) {
            int from, seq;
            cr_assert_eq(sscanf(line, "%d:%d", &from, &seq), 2, "client %d got '%s'", i, line);
            cr_assert_neq(from, i, "client %d got its own line back", i);
            cr_assert_eq(seq, next[from], "client %d: %d's lines out of order", i, from);
            next[from]++;
        }
        cr_assert_eq(got, want);
    }
    for (int i = 0; i < CLIENTS; i++) assert_nothing_waiting(fds[i], "a client");
    close_all(fds, CLIENTS);
    stop_clean(srv);
}

/* "hel" must not go out before its newline: a complete line from another client, sent after
 * it, arrives alone; "lo\n" then completes it. */
Test(example_pubsub, pubsub_holds_a_partial_line_until_its_newline) {
    int port, base;
    struct child *srv = start_pubsub("127.0.0.1", NULL, &port, &base);
    int fds[3];
    connect_clients(srv, "127.0.0.1", port, base, fds, 3);
    send_text(fds[0], "hel");
    char line[64];
    for (int i = 0; i < 3; i++) {
        send_text(fds[1], "ping\n");
        read_line(fds[2], line, sizeof(line));
        cr_assert_str_eq(line, "ping", "the partial line went out early");
        usleep(20000); /* give the partial line time to be read, if it were to go out */
    }
    send_text(fds[0], "lo\n");
    read_line(fds[2], line, sizeof(line));
    cr_assert_str_eq(line, "hello");
    for (int i = 0; i < 3; i++) read_line(fds[0], line, sizeof(line)); /* the pings */
    cr_assert_str_eq(line, "ping");
    read_line(fds[1], line, sizeof(line));
    cr_assert_str_eq(line, "hello", "the other client got the completed line too");
    close_all(fds, 3);
    stop_clean(srv);
}

/* --max-line 64: 63 bytes and the newline pass; a line that passes 64 bytes (here over two
 * sends, no newline) gets the error line and EOF, reaches nobody, and the others go on. */
Test(example_pubsub, pubsub_ends_a_client_that_sends_an_over_long_line) {
    int port, base;
    struct child *srv =
        start_pubsub("127.0.0.1", (const char *const[]){"--max-line", "64", NULL}, &port, &base);
    int fds[3];
    connect_clients(srv, "127.0.0.1", port, base, fds, 3);
    char longest[66];
    memset(longest, 'x', 63);
    strcpy(longest + 63, "\n");
    send_text(fds[0], longest);
    char line[128];
    read_line(fds[1], line, sizeof(line));
    cr_assert_eq(strlen(line), 63, "the longest line passes");
    send_text(fds[0], "0123456789012345678901234567890123456789");
    send_text(fds[0], "0123456789012345678901234567890123456789\n");
    char all[256];
    read_until_closed(fds[0], all, sizeof(all));
    cr_assert_str_eq(all, "zev-pubsub: line too long\n");
    wait_child_sockets(srv, base + 2, "the sender is gone");
    send_text(fds[2], "still here\n");
    read_line(fds[1], line, sizeof(line));
    cr_assert_str_eq(line, "still here", "nothing of the long line went out");
    read_line(fds[2], line, sizeof(line));
    cr_assert_eq(strlen(line), 63);
    close_all(fds, 3);
    stop_clean(srv);
}

/* One client publishes 16 MiB in 1 KiB lines; one reads everything, one never reads. The
 * silent one is dropped once its queue passes --max-queue (256 KiB), the reader gets every
 * line in order, and the server's memory stays far under what it has relayed. */
Test(example_pubsub, pubsub_drops_a_subscriber_that_never_reads_and_its_memory_stays_bounded) {
    int port, base;
    struct child *srv = start_pubsub(
        "127.0.0.1", (const char *const[]){"--max-queue", "262144", NULL}, &port, &base);
    int fds[3];
    int small = 4096;
    connect_clients(srv, "127.0.0.1", port, base, fds, 3);
    int pub = fds[0], reader = fds[1], silent = fds[2];
    setsockopt(silent, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    long before = child_rss_kib(srv);
    enum { LINE = 1024, BATCH = 32, BATCHES = 512 };
    static char out[BATCH * LINE], in[BATCH * LINE];
    int dropped_at = -1;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            char *l = out + i * LINE;
            memset(l, 'a' + b % 26, LINE - 1);
            snprintf(l, 16, "%08d", b * BATCH + i);
            l[8] = ' ';
            l[LINE - 1] = '\n';
        }
        cr_assert_eq(send(pub, out, sizeof(out), MSG_NOSIGNAL), (ssize_t)sizeof(out));
        /* The reader takes each batch whole before the next: its queue stays small. */
        cr_assert_eq(read_exact(reader, in, sizeof(in)), sizeof(in), "batch %d", b);
        cr_assert_eq(memcmp(in, out, sizeof(in)), 0, "batch %d arrived changed or reordered", b);
        if (dropped_at < 0 && child_sockets(srv) == base + 2) dropped_at = b;
    }
    long during = child_rss_kib(srv);
    cr_log_info("relayed %d KiB; dropped after batch %d; RSS %ld KiB before, %ld KiB after",
                BATCHES * BATCH, dropped_at, before, during);
    cr_assert_geq(dropped_at, 0, "the silent subscriber was never dropped");
    cr_assert_lt(during - before, 8 * 1024, "RSS grew by %ld KiB", during - before);
    expect_reset(silent);
    assert_nothing_waiting(pub, "the publisher");
    close_all(fds, 3);
    stop_clean(srv);
}

/* --idle-timeout 500 counts input only: a client that only receives is closed while lines
 * keep coming to it; the one that talks every 20 ms stays. */
Test(example_pubsub, pubsub_idle_timeout_closes_a_silent_client_even_while_it_receives) {
    int port, base;
    struct child *srv = start_pubsub(
        "127.0.0.1", (const char *const[]){"--idle-timeout", "500", NULL}, &port, &base);
    int fds[2];
    connect_clients(srv, "127.0.0.1", port, base, fds, 2);
    int talker = fds[0], listener = fds[1];
    int sent = 0;
    bool closed = false;
    char buf[4096];
    size_t got = 0;
    while (!closed && sent < 500) { /* 10 s at most */
        send_text(talker, "news\n");
        sent++;
        usleep(20000);
        for (;;) {
            ssize_t r = recv(listener, buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0) {
                got += (size_t)r;
                continue;
            }
            closed = r == 0 || (r < 0 && errno == ECONNRESET);
            break;
        }
    }
    cr_assert(closed, "still open after %d lines", sent);
    cr_assert_geq(got, 5 * 5, "it was receiving: %zu bytes", got);
    wait_child_sockets(srv, base + 1, "the talker stays");
    close(talker);
    close(listener);
    stop_clean(srv);
}

Test(example_pubsub, pubsub_help_and_a_bad_flag) {
    struct child *c = spawn("zev-pubsub", (const char *const[]){"--help", NULL}, false);
    char out[2048];
    read_all(c->out, out, sizeof(out));
    cr_assert(strstr(out, "--max-queue BYTES") && strstr(out, "--idle-timeout MS"), "%s", out);
    cr_assert_eq(wait_exit(c), 0);
    c = spawn("zev-pubsub", (const char *const[]){"--max-line", "65537", NULL}, false);
    read_all(c->err, out, sizeof(out));
    cr_assert(strstr(out, "Try 'zev-pubsub --help'."), "%s", out);
    cr_assert_eq(wait_exit(c), 2);
}
