/* tests/support/kqueue_emu/emu_threads.h: the kqueue emulation's multi-threaded scenarios.
 *
 * Run by the Criterion suite (tests/test_kqueue_emu.c) and, under ThreadSanitizer, where
 * Criterion cannot start (see tests/support/thread_scenarios.h), by tests/kqueue_emu_tsan.c.
 * Each returns NULL on success or a short description of what went wrong, and releases
 * everything it took. A lost wake-up shows as a kevent() timing out after 5 s.
 */
#ifndef KQ_EMU_THREADS_H
#define KQ_EMU_THREADS_H

/* A thread triggers a user event `rounds` times, each after the blocked owner saw the last. */
const char *kq_emu_wake_pingpong(int rounds);
/* `threads` threads trigger `triggers` times each at once; triggers coalesce, none is lost. */
const char *kq_emu_trigger_storm(int threads, int triggers);
/* A thread adds and deletes a descriptor knote and triggers, `rounds` times, while the owner
 * is blocked in kevent(), then triggers a second user event to say it is done; every event
 * reported belongs to a live knote. */
const char *kq_emu_changes_while_blocked(int rounds);
/* `rounds` times, a thread sends SIGUSR2 to itself while the owner is blocked in kevent() on
 * an EVFILT_SIGNAL knote (SIGUSR2 ignored): the recording handler wakes it, data is 1. */
const char *kq_emu_signal_from_another_thread(int rounds);
/* A thread keeps sending SIGUSR1 to the owner, whose handler triggers a user event with
 * kevent() (as zev_async_send does), while the owner calls kevent() `calls` times: never a
 * deadlock on the emulation's lock. */
const char *kq_emu_trigger_from_a_signal_handler(int calls);

#endif
