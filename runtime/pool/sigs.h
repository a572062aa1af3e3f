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
 *   thread         (it only waits), and gets its own mask back at the end.
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

/* wf_run, between its steps (runtime.c). */
int wf__signals_create(struct wf__runtime *rt);        /* step 3 */
int wf__signals_start_watcher(struct wf__runtime *rt); /* step 9, shutdown_on_signal */
void wf__signals_stop(struct wf__runtime *rt);         /* step 12 */
void wf__signals_destroy(struct wf__runtime *rt);      /* step 13 */

#endif
