/* weft/core.h - starting the runtime, errors, configuration.
 *
 * Conventions for every weft function:
 *  - It returns 0 (or a documented non-negative value) on success and a
 *    negative errno on failure. Nothing is reported through errno or any
 *    thread-local: a fiber can wake on another worker thread.
 *  - A call that fails has no side effect.
 *  - "Fiber only" means the function must be called from code running in a
 *    weft task; elsewhere it fails with -EPERM.
 *  - Deadlines are absolute times on the wf_now() clock in nanoseconds.
 *    WF_FOREVER (-1) waits forever; any deadline at or before now (0 is the
 *    usual spelling) means "do not wait": the call tries once.
 */
#ifndef WEFT_CORE_H
#define WEFT_CORE_H

#include <errno.h> /* the codes every function returns, negated: -ECANCELED, -ETIMEDOUT... */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup core Runtime, configuration and errors
 * @{ */

/** Alignment for the opaque storage of public structs, spelled so that the
 * headers compile as C11 and as C++11 and later. */
#ifdef __cplusplus
#define WF_ALIGNAS(n) alignas(n)
#else
#define WF_ALIGNAS(n) _Alignas(n)
#endif

/** Wait forever (a deadline). */
#define WF_FOREVER ((int64_t)-1)

/** The body of a task: returns the task's status (0 for success, or a
 * negative errno of the task's choosing: its "exception") and may store a
 * result pointer in *result (which starts out NULL). */
typedef int (*wf_fn)(void *arg, void **result);

/** Runtime configuration. Initialise with wf_config_init(), then set fields. */
typedef struct wf_config {
    /** Worker threads. 0: one per online CPU. At most 1024. */
    unsigned workers;
    /** Default fiber stack size in bytes, rounded up to whole pages.
     * 0: 64 KiB. Between 16 KiB and 1 GiB. */
    size_t stack_size;
    /** How many fiber stacks may get a guard page of their own. Each such
     * stack costs two of the process's vm.max_map_count mappings, so past
     * this number stacks are carved from shared slabs and protected by a
     * canary checked at every switch instead (docs/architecture.md, "Stacks").
     * -1: derived from vm.max_map_count (half of the headroom: about
     * 16,000 stacks on a default machine);
     * 0: canaries only. */
    long guard_stacks;
    /** Pin worker i to CPU i modulo the online CPUs. */
    bool pin_workers;
    /* Fields below were added after the first release: they stay at the
     * end, so that the offsets of the ones above never change. */
    /** The most threads the thread pool (weft/pool.h) runs at once for
     * user calls (WF_POOL_USER), file I/O (WF_POOL_FILE) and name
     * resolution (WF_POOL_DNS): each class has its own limit, so slow calls
     * of one kind cannot starve the others. 0: the default (64 user, 16
     * file, 4 DNS). At most 1024 each. */
    unsigned pool_user_threads;
    unsigned pool_file_threads;
    unsigned pool_dns_threads;
    /** How long an idle pool thread waits for work before it exits, in
     * nanoseconds. 0: 10 seconds. Negative: never exits before shutdown. */
    int64_t pool_idle_ns;
    /** SIGINT and SIGTERM start a graceful shutdown: the first one cancels
     * the main task (its cancellation message is "SIGINT" or "SIGTERM"), a
     * second one ends the process with the signal's default action
     * (weft/signal.h, "Shutdown on a signal"). Default false. */
    bool shutdown_on_signal;
    /** The program uses process pools (weft/procpool.h): wf_run() starts
     * their zygote at its step 2, before it creates any thread, unless
     * wf_procpool_init() has done so already; if the process has other
     * threads by then, wf_run() refuses to start (-EBUSY) rather than fork
     * a threaded process. Default false: a pool can be opened only after
     * wf_procpool_init(). */
    bool procpool;
} wf_config_t;

/** Fill @p cfg with the defaults described in wf_config_t.
 * @param cfg  the configuration to fill; NULL is ignored. Never blocks. */
void wf_config_init(wf_config_t *cfg);

/** Run a weft program: start the runtime, run @p main_fn(@p arg) as the main
 * task, and when it returns cancel every task still alive, wait for them to
 * finish, and release every thread, file descriptor and memory mapping the
 * runtime made. Like asyncio.run(). Task handles and timers outlive nothing:
 * handles never given back are freed, armed timers are disarmed unfired.
 *
 * Start-up is a fixed sequence of numbered steps (runtime/runtime.c).
 *
 * @param cfg      configuration, or NULL for the defaults.
 * @param main_fn  the main task's body; required.
 * @param arg      passed to @p main_fn.
 * @param status   if not NULL, receives the main task's status: 0, the
 *                 negative errno it returned, or -ECANCELED.
 * @param result   if not NULL, receives the main task's result pointer.
 * @return 0 when the main task ran (its outcome is in *status / *result);
 *   -EINVAL   @p main_fn is NULL or a field of @p cfg is out of range;
 *   -EDEADLK  called from inside a weft runtime (a task, a timer callback,
 *             any worker or poller thread): it would block that thread
 *             until the new runtime ended; spawn a task instead;
 *   -ENOMEM   memory or mappings for the runtime could not be had;
 *   -EBUSY    cfg.procpool, and the process pool's zygote had not been
 *             started and cannot be now: the process has other threads
 *             (weft/procpool.h, wf_procpool_init());
 *   -EAGAIN   a thread could not be created (if some workers had already
 *             started, the main task, which may have begun to run, was
 *             cancelled and every task awaited before the return; *status
 *             and *result are not written);
 *   another negative errno if a kernel object (epoll, eventfd) could not
 *   be made or the SIGSEGV handler could not be installed.
 * Blocks the calling thread until the program ends. Thread-safe: separate
 * threads may run separate runtimes.
 *
 * Signal masks: the workers inherit the calling thread's signal mask
 * (block a signal in that thread before wf_run() and no worker takes it;
 * a fiber may then read it from a signalfd with wf_wait_readable()). The
 * poller, the thread pool's threads and the
 * calling thread itself, while wf_run() runs, block every asynchronous
 * signal; weft/signal.h says what catching a signal adds, and
 * cfg.shutdown_on_signal does the SIGINT/SIGTERM part for you.
 *
 * Environment: WF_STATS=1 prints each worker's and the poller's counters
 * on stderr when the runtime ends (tasks run, steals and how many were
 * from stalled victims, passes spent in a steal grace period, parks, epoll
 * harvests, poller wake-ups); WF_POLLER_NO_PWAIT2 (io.h). */
int wf_run(const wf_config_t *cfg, wf_fn main_fn, void *arg, int *status, void **result);

/** A description of an error code (exception messages). Every code a weft
 * function returns has a description of its own, true for every function
 * that returns it; other codes get the C library's (or "unknown error").
 * @param err a negative (or positive) errno value; any int is accepted.
 * @return a static string, never NULL. Never blocks; any thread. */
const char *wf_strerror(int err);

/** The number of worker threads of the running runtime.
 * @return the count, or -EPERM outside a runtime thread. Never blocks. */
int wf_workers(void);

/** The index (0 .. workers-1) of the worker running the caller right now.
 * A fiber may move between workers at any wait, so the answer is only a hint.
 * @return the index, or -EPERM outside a worker thread. */
int wf_worker_index(void);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
