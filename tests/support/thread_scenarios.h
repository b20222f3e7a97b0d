/* tests/support/thread_scenarios.h: multi-threaded scenarios shared by the Criterion suites
 * (test_async.c, test_workers.c) and the ThreadSanitizer runner (tsan_threads.c). Criterion itself cannot start
 * under TSan (its fixed-address arena collides with TSan's shadow memory; Criterion issue 274),
 * so the TSan build runs these same functions from a plain main(). Each returns 0 on success
 * or a short description of what went wrong, and releases everything it took. */
#ifndef ZT_THREAD_SCENARIOS_H
#define ZT_THREAD_SCENARIOS_H

/* A thread sends `rounds` wake-ups, each waiting until the loop saw the previous one. */
const char *zt_async_pingpong(int rounds);
/* `threads` threads send `sends` wake-ups each at once; all must be seen, and coalesced. */
const char *zt_async_storm(int threads, int sends);
/* `rounds` times: a fresh heap handle, sent to once by a thread while another thread keeps
 * waking the loop; its callback closes it and the close callback frees it. Every round's
 * callback runs once; no sender touches freed memory (ASan, TSan). */
const char *zt_async_close_and_free_while_sending(int rounds);
/* zev_workers_start `workers` (1..4) echo servers on one SO_REUSEPORT port (worker 0 binds port
 * 0, the others reuse it), open `connections` (1..64) to it one after another from this
 * thread, each echoing a few bytes, then zev_workers_stop: every connection served once, each
 * worker on a thread of its own, every on_stop run, a second stop -EBADF. */
const char *zt_workers_echo(unsigned workers, int connections);
/* Three workers; the second's setup fails with a real EADDRINUSE (no SO_REUSEPORT on the first
 * worker's port): the start returns it, the first worker was stopped (its on_stop ran) and
 * joined, the third's setup never ran, and a stop then is -EBADF. */
const char *zt_workers_setup_fails(void);
/* `rounds` times on a fresh loop: `lookups` (1..64) numeric lookups (no name service, no
 * packet) on the resolver threads, every third cancelled at once and one cancelled from inside
 * another's callback; every callback runs exactly once, then zev_loop_close joins the threads. */
const char *zt_resolve_cancel_storm(int rounds, int lookups);

/* signal_scenarios.c. The loop runs on this thread with a SIGUSR1 handle; a thread sends
 * `rounds` signals, alternately to the loop's thread and to itself, each once the previous was
 * heard: every one reaches the callback once, on the loop's thread; SIG_DFL is back after. */
const char *zt_signal_to_loop_and_other_threads(int rounds);
/* Two threads each run a loop with two SIGUSR2 handles (one is stopped and started again in
 * every callback); `rounds` times this thread sends SIGUSR2 to the process and waits until
 * both loops heard it: each hears every one once; SIG_DFL is back after. */
const char *zt_signal_two_loops_two_threads(int rounds);
/* A thread sends `signals` SIGUSR1 to the loop's thread, whose handler calls zev_async_send:
 * the loop runs through them (no deadlock on any wake-up path) and the last send closes it. */
const char *zt_async_send_from_a_signal_handler(int signals);

#endif
