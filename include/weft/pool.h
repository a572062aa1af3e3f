/* weft/pool.h - the thread pool: running blocking calls off the workers
 * (asyncio.to_thread, loop.run_in_executor; tokio's spawn_blocking).
 *
 * A fiber must never block its worker thread in a system call or a long
 * computation: every other fiber queued on that worker would wait. A call
 * that blocks (a library without an asynchronous interface, a regular
 * file, a CPU-heavy step) runs on a pool thread instead, and the fiber
 * parks until it returns. The wait is an ordinary weft wait: deadlines,
 * timeout scopes, cancellation, gather, wait and task groups apply to it
 * as to any other (run the call in a task to gather several).
 *
 * THREADS. The pool's threads belong to the runtime: none exists until the
 * first call; they are started on demand, named wf-pool-N, leave after
 * cfg.pool_idle_ns without work (10 s by default), and are all joined by
 * wf_run() before it returns. Each class of call (wf_pool_class_t) has its
 * own threads and its own limit (cfg.pool_user_threads,
 * pool_file_threads, pool_dns_threads): at the limit, further calls of
 * that class wait in a FIFO queue, while other classes are not affected. So
 * a flood of stalled name lookups cannot delay a file read (libuv's issue
 * #28). Pool threads block every asynchronous signal, and the calls they
 * run are outside the runtime: there, wf_spawn() and the other calls that
 * need a runtime thread fail with -EPERM; a call may still enter the runtime
 * through a wf_runtime_t handle (wf_call_soon_threadsafe()).
 *
 * A RUNNING C CALL CANNOT BE INTERRUPTED. When the caller is cancelled, or
 * its deadline passes, while the call runs, the caller returns at once
 * (-ECANCELED, -ETIMEDOUT) and the call goes on running to its end on its
 * pool thread, where its outcome is handed to the drop callback
 * (wf_offload_opts_t.drop) instead of the caller. Everything the call uses
 * must therefore outlive the caller's frame in that case: pass heap memory
 * and free it in drop. A call still queued when its caller gives up never
 * runs. To stop a running call, make it stop by itself (a deadline of its
 * own on the system calls it makes, a flag it checks).
 *
 * SHUTDOWN. When the main task returns, wf_run() cancels every task; their
 * calls are abandoned as above. wf_run() then waits for every call still
 * running to return, and for its drop callback, before it joins the pool's
 * threads and returns itself: a call that never returns keeps wf_run()
 * from returning (asyncio.run() waits for its default executor the same
 * way).
 */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup pool Thread pool
 * @{ */

/** The classes of blocking calls, each with its own threads and limit. */
typedef enum wf_pool_class {
    WF_POOL_USER = 0, /**< the program's calls (wf_to_thread()); default 64 threads */
    WF_POOL_FILE = 1, /**< file I/O (weft/fs.h); default 16 threads */
    WF_POOL_DNS = 2,  /**< name resolution (weft/dns.h); default 4 threads */
} wf_pool_class_t;

/** The number of classes. */
#define WF_POOL_CLASSES 3

/** Options for wf_run_in_executor(). Start from WF_OFFLOAD_OPTS_INIT. */
typedef struct wf_offload_opts {
    /** Which class's threads run the call. */
    wf_pool_class_t pool;
    /** When the caller stops waiting: WF_FOREVER, or an absolute time on
     * wf_now(); an enclosing timeout scope caps it as usual. */
    int64_t deadline;
    /** Called exactly once, and only, when the caller stopped waiting
     * (cancelled, or past its deadline: the call returned -ECANCELED or
     * -ETIMEDOUT): with the function's status and result when it returns
     * (on the pool thread that ran it), or with the caller's error and NULL
     * if it never started (on the caller's thread, before the caller
     * returns). Its job is to free @p arg and @p result. It must not block
     * for long, and must not call functions that need a runtime thread.
     * NULL: nothing is called (then @p arg must outlive any call that may
     * still run, and @p result is leaked). */
    void (*drop)(void *arg, int status, void *result);
} wf_offload_opts_t;

#define WF_OFFLOAD_OPTS_INIT                                                                                 \
    {                                                                                                        \
        WF_POOL_USER, WF_FOREVER, NULL                                                                       \
    }

/** Run @p fn(@p arg, &result) on a pool thread and wait for it
 * (loop.run_in_executor(executor, fn, arg); tokio::task::spawn_blocking).
 *
 * @param opts    class, deadline and drop callback; NULL for the defaults
 *                (WF_POOL_USER, WF_FOREVER, no drop).
 * @param fn      the blocking function: it returns a status (0, or a
 *                negative errno of its choosing) and may store a result
 *                pointer in *result (which starts out NULL). Required.
 * @param arg     passed to @p fn. It must stay valid until @p fn returns,
 *                which may be after this call returns (see the top of this
 *                header and opts->drop).
 * @param status  if not NULL, receives @p fn's status when this returns 0.
 * @param result  if not NULL, receives @p fn's result when this returns 0;
 *                it is then the caller's.
 * @return 0 when @p fn ran and returned (its status may still be an error:
 *   that is @p fn's own);
 *   -ECANCELED  the caller was cancelled first: @p fn never ran, or runs on
 *               and its outcome goes to opts->drop;
 *   -ETIMEDOUT  the deadline (or an enclosing timeout scope's) passed
 *               first; the same;
 *   -EINVAL     NULL @p fn, a class out of range, or a deadline below
 *               WF_FOREVER;
 *   -EAGAIN     no thread of the class could be started and none is alive
 *               (nothing ran; drop is not called);
 *   -ENOMEM     (nothing ran; drop is not called);
 *   -EPERM      not called from a fiber.
 * If @p fn returns before the caller's cancellation or deadline takes
 * effect, its outcome is returned with 0 and the cancellation stays
 * pending for the caller's next wait: an outcome is never lost.
 * Fiber only; parks until @p fn returns (a fiber whose worker has nothing
 * else to run watches for a quick result for up to 20 us first). */
int wf_run_in_executor(const wf_offload_opts_t *opts, wf_fn fn, void *arg, int *status, void **result);

/** wf_run_in_executor() with the defaults (asyncio.to_thread(fn, arg)):
 * the user class, no deadline but the timeout scopes', no drop callback.
 * Returns as wf_run_in_executor(). Fiber only; parks. */
int wf_to_thread(wf_fn fn, void *arg, int *status, void **result);

/** A snapshot of one class of the pool, for monitoring and tests. */
typedef struct wf_pool_stats {
    unsigned limit;   /**< the most threads the class may have */
    unsigned threads; /**< threads alive (running a call or idle) */
    unsigned idle;    /**< of which idle */
    unsigned running; /**< calls running now */
    unsigned queued;  /**< calls waiting for a thread */
    unsigned peak;    /**< the most calls that ever ran at once */
} wf_pool_stats_t;

/** Fill @p out with class @p cls's numbers.
 * @return 0; -EINVAL for NULL @p out or a class out of range; -EPERM
 * outside a runtime thread. Never blocks. */
int wf_pool_stats(wf_pool_class_t cls, wf_pool_stats_t *out);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
