/* sigs.h - signal masks of the runtime's threads, and the runtime's side of
 * weft/signal.h (signal.c).
 *
 * THE MASKS (weft/signal.h says it for users):
 *   workers        inherit the mask of the thread that called wf_run, plus
 *                  SIGINT and SIGTERM with cfg.shutdown_on_signal; every
 *                  signal a fiber asks for (wf_signal_open, a handler) is
 *                  added to each worker's mask by a task pinned to it
 *                  before the request returns.
 *   the poller,    block every asynchronous signal from birth
 *   pool threads,  (wf__sigset_async): they run no user code that could
 *   shutdown       want one (the poller's timer callbacks and the pool's
 *   watcher        calls are not signal handlers' business).
 *   wf_run's own   blocks every asynchronous signal while the runtime runs
 *   thread         (it only waits), from before the first thread starts,
 *                  and gets its own mask back at the end.
 * Threads get their mask at birth (pthread_attr_setsigmask_np, or by
 * inheriting the creator's), never from a change made after they start: a
 * signal sent meanwhile would find them unblocked.
 * So a signal that weft has asked for is blocked in every thread weft owns,
 * and stays pending for the signalfd until a fiber reads it.
 *
 * Synchronous signals (a fault: SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
 * SIGSYS) are never blocked: blocked, a fault kills the process at once,
 * and the stack-overflow reporter needs SIGSEGV/SIGBUS. SIGABRT stays
 * unblocked too (abort() must work everywhere).
 */
#ifndef WF_POOL_SIGS_H
#define WF_POOL_SIGS_H

#include <signal.h>
#include <stdbool.h>

struct wf__runtime;
struct wf__sigstate;

/* Every signal but the synchronous ones above (and SIGKILL and SIGSTOP,
 * which nobody can block). */
void wf__sigset_async(sigset_t *s);

/* Whether weft can catch `signo` for a fiber: a valid number that is not
 * synchronous, not SIGKILL/SIGSTOP, and not one of glibc's own (32, 33). */
bool wf__signo_catchable(int signo);

/* wf_run's steps (runtime.c), on its own thread. */
/* Step 3: allocate the state (no fd, no thread). 0 or -ENOMEM. */
int wf__signals_create(struct wf__runtime *rt);
/* Step 8, before any thread starts: keep the caller's mask, block every
 * asynchronous signal in this thread (so that the poller and the watcher
 * inherit that), and fill *workers with the mask the workers start with:
 * the caller's, plus SIGINT and SIGTERM under cfg.shutdown_on_signal. */
void wf__signals_prepare(struct wf__runtime *rt, sigset_t *workers);
/* Step 9: start the shutdown watcher (a no-op without the option). 0, or a
 * negative errno (signalfd, eventfd, pthread_create). */
int wf__signals_start_watcher(struct wf__runtime *rt);
/* Step 12: stop and join the watcher. */
void wf__signals_stop(struct wf__runtime *rt);
/* Step 13: drop deliveries nobody consumed, close the fds, free what is
 * left, and give this thread its caller's mask back. */
void wf__signals_destroy(struct wf__runtime *rt);

/* The mask a child process starts with: wf_run's caller's. */
void wf__signals_child_mask(struct wf__runtime *rt, sigset_t *out);

#endif
