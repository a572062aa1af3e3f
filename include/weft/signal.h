/* weft/signal.h - Unix signals for fibers (loop.add_signal_handler,
 * tokio::signal::unix::signal).
 *
 * A signal handler cannot do much: it interrupts any thread at any
 * instruction, and may call only async-signal-safe functions. weft turns a
 * signal into an ordinary event instead: a fiber waits for it with
 * wf_signal_wait() (a deadline and cancellation apply, as to any wait), or a
 * handler function runs as a new task for each delivery (it may wait,
 * lock, spawn...).
 *
 * HOW. The signal is blocked in every thread of the runtime, and read from
 * a signalfd that the poller waits on; one internal task reads it and hands
 * each delivery to the subscriptions and the handler of its number. A
 * blocked signal that nobody has read stays pending in the kernel, so none
 * is lost between two waits: each subscription counts the deliveries it has
 * not consumed yet. But the kernel keeps at most one pending instance of a
 * classic signal (below SIGRTMIN): several sent before weft reads them
 * count as one. Real-time signals are queued each.
 *
 * SIGNAL MASKS. The runtime's threads inherit the signal mask of the thread
 * that calls wf_run(), with these changes:
 *  - workers: each signal caught through this header is added to every
 *    worker's mask before the call that asked for it returns (a task
 *    pinned to each worker blocks it there); and SIGINT and SIGTERM with
 *    cfg.shutdown_on_signal, from the start.
 *  - the poller, the pool's threads and the shutdown watcher block every
 *    asynchronous signal (all but SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
 *    SIGSYS and SIGABRT) from the start.
 *  - the thread that called wf_run() blocks every asynchronous signal
 *    while the runtime runs (it only waits), and gets its own mask back
 *    before wf_run() returns.
 * So the process's handlers (sigaction) for signals weft does not catch run
 * on a worker, as before. A signal weft catches stays blocked in the
 * runtime's threads until wf_run() returns, even once its last subscription
 * and handler are gone (tokio's rule too): deliveries with nobody to take
 * them are read and dropped. THREADS THE PROGRAM STARTS ITSELF must block a
 * signal weft catches (pthread_sigmask, or start them from a thread that
 * blocked it), or the kernel may deliver it to them instead, with its
 * default action (for most signals, the end of the process). Signals sent
 * to one thread (pthread_kill, tgkill) are not seen; send them to the
 * process (kill, the terminal's ^C). Children spawned through
 * weft/process.h start with the mask of wf_run()'s caller.
 *
 * SHUTDOWN ON A SIGNAL. With cfg.shutdown_on_signal (weft/core.h), SIGINT
 * and SIGTERM belong to the runtime (this header refuses them: -EBUSY): a
 * runtime-owned thread (wf-signals) reads them. The first cancels the main
 * task, with the cancellation message "SIGINT" or "SIGTERM"
 * (wf_cancel_message()), so it can clean up; when it returns, wf_run()
 * cancels the other tasks as usual. A second one, while the program is
 * still running or shutting down, ends the process at once with that
 * signal's default action (asyncio.run() and a second ^C). A signal that
 * arrives once wf_run() has joined its threads is delivered when its caller
 * gets its mask back, with the action the program chose (by default, the
 * end of the process).
 *
 * At wf_run()'s end, signals caught through this header that nobody
 * consumed are dropped, and subscriptions left open are freed.
 */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup signal Signals
 * @{ */

/** A subscription to one signal (tokio's Signal stream). Opaque. */
typedef struct wf_signal wf_signal_t;

/** Start catching signal @p signo and subscribe to its deliveries
 * (tokio::signal::unix::signal). Every delivery from now on is counted in
 * the subscription until wf_signal_wait() consumes it.
 * @return 0 with *out; -EINVAL for NULL @p out or a signal that cannot be
 *   caught (SIGKILL, SIGSTOP, the fault signals SIGSEGV, SIGBUS, SIGFPE,
 *   SIGILL, SIGTRAP, SIGSYS, and SIGABRT, glibc's own 32 and 33, numbers out
 *   of range); -EBUSY for SIGINT and SIGTERM under
 *   cfg.shutdown_on_signal; -ENOMEM; -EMFILE and signalfd(2)'s other
 *   errors; -ECANCELED if cancelled while the signal was being blocked in
 *   the workers (nothing subscribed; the signal may stay blocked); -EPERM
 *   not a fiber.
 * Fiber only; parks (the first time a signal is caught: until every worker
 * has blocked it). */
int wf_signal_open(wf_signal_t **out, int signo);

/** Wait for the next delivery of @p s's signal, or consume one that came
 * since the last call.
 * @return 0 (one delivery consumed); -ETIMEDOUT; -ECANCELED; -EINVAL for
 *   NULL @p s or a bad deadline; -EBUSY if another fiber is waiting on
 *   @p s; -EXDEV if @p s belongs to another runtime; -EPERM not a fiber.
 * Fiber only; parks until a delivery, the deadline or cancellation. */
int wf_signal_wait(wf_signal_t *s, int64_t deadline);

/** End the subscription and free it; deliveries not consumed are dropped.
 * The signal stays caught (see SIGNAL MASKS).
 * @return 0; -EINVAL for NULL; -EBUSY while a fiber waits on it (nothing
 *   is done); -EXDEV if @p s belongs to another runtime; -EPERM outside a
 *   runtime thread. Never blocks. */
int wf_signal_close(wf_signal_t *s);

/** Run @p fn(@p arg) as a new task each time signal @p signo is delivered
 * (loop.add_signal_handler). A handler already set for @p signo is
 * replaced. The tasks are detached: their outcomes are dropped; they are
 * cancelled with the others at wf_run()'s end. @p arg must stay valid as
 * long as handler tasks may run (after wf_signal_remove_handler(), tasks
 * already started run on).
 * @return 0; -EINVAL for NULL @p fn or a signal that cannot be caught (as
 *   wf_signal_open()); -EBUSY for SIGINT and SIGTERM under
 *   cfg.shutdown_on_signal; -ENOMEM; -ECANCELED; -EPERM not a fiber.
 * Fiber only; parks (the first time a signal is caught). */
int wf_signal_add_handler(int signo, wf_fn fn, void *arg);

/** Stop running a handler for @p signo (loop.remove_signal_handler). The
 * signal stays caught: deliveries nobody takes are dropped.
 * @return 0 when a handler was removed; -ENOENT when none was set;
 *   -EINVAL for a signal number out of range; -EPERM outside a runtime
 *   thread. Never blocks. */
int wf_signal_remove_handler(int signo);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
