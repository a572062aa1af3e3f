/* weft/procpool.h - the process pool: CPU-bound jobs in worker processes
 * (asyncio's loop.run_in_executor(ProcessPoolExecutor(), fn, arg)).
 *
 * A pool thread (weft/pool.h) competes with the runtime's workers for the
 * cores and shares the process with them: a long computation there slows
 * every fiber, and a crash there ends the program. A job of the process
 * pool runs in a worker process instead: the call parks like any wait
 * (deadlines, timeout scopes, cancellation; run it in a task with
 * wf_procpool_submit() to gather, wait or group it), a crashed worker fails
 * only its own job, and a job past its deadline, or whose caller is
 * cancelled, is stopped for real: its worker is killed and replaced.
 *
 * JOBS are functions the program registers by name before the process
 * pool starts (wf_procpool_register()); a job takes input bytes and gives
 * output bytes and a status. Workers are copies of the program made before
 * any thread existed, so a job may use the program's functions and its
 * global data as it was at wf_procpool_init(); nothing the parent changes
 * later is seen, and nothing a job changes is seen by the parent or by the
 * next job on another worker. Inputs and outputs under 64 KiB travel in the
 * frame over the worker's socket; larger ones through shared memory
 * (memfd): a 64 MiB input costs one copy in, and a 64 MiB output none on
 * the way back (the caller's result is mapped from it).
 *
 * THE ZYGOTE. Forking a threaded program is unsafe (a child gets copies of
 * locks that other threads held), so weft forks one helper process, the
 * zygote, while the program has a single thread, and the zygote makes
 * every worker: wf_procpool_init(), once per process, early in main();
 * or cfg.procpool, which makes wf_run() do it at its start-up step 2 if
 * nothing has. The zygote keeps only stdin (then /dev/null), stdout, stderr
 * and its channel to the parent (every other descriptor is closed), so no
 * worker inherits the program's sockets, listeners, epoll or eventfds.
 * Workers are the parent's children (clone(CLONE_PARENT) in the zygote):
 * their exit is learned through a pidfd on the poller, as for
 * weft/process.h, never through SIGCHLD, and they are reaped by the
 * runtime. A worker dies with its parent (PR_SET_PDEATHSIG, and end of file
 * on its socket), and so does the zygote: a killed server leaves no
 * orphan. The zygote and the workers run in a process group of their own
 * (the terminal's ^C goes to the parent, which decides), with the default
 * action for every signal and no signal blocked.
 *
 * FAILURES, as the caller sees them (the call's return value, then the
 * outcome's fields; docs/process-pool.md has the whole table):
 *   0            the job ran: res.status is its own status, res.out/len
 *                its output;
 *   -ECHILD      the worker died while it held the job: it crashed on a
 *                signal, called abort() or exit(), or ended without a
 *                reply. res.returncode says how, as asyncio's returncode:
 *                minus the signal number when a signal killed it
 *                (-6: "killed by signal 6", SIGABRT; -11: SIGSEGV), or the
 *                exit status when it exited (3: "exited with status 3").
 *                The worker is replaced; other jobs are not affected;
 *   -ETIMEDOUT   the deadline (or an enclosing timeout scope's) passed, and
 *   -ECANCELED   the caller was cancelled, before the job ended: a job that
 *                had started has had its worker killed (SIGKILL; it is
 *                replaced); one still waiting for a worker never runs;
 *   -EPROTO      the worker broke the wire protocol (a malformed or
 *                oversized frame, a frame for another job, a bad shared
 *                memory buffer) or its output exceeded opts.max_output: the
 *                parent checks every frame, kills the worker and replaces
 *                it; nothing of the frame is used;
 *   -ENOEXEC     no worker could be started: the initializer returned an
 *                error (res.status holds it), or the worker died while it
 *                started (res.returncode says how), or the worker could
 *                not be made (res.status: -EAGAIN when the system is out
 *                of processes, -EPIPE when the zygote has gone). Start-ups
 *                are retried with a back-off (10 ms doubling to 1 s), never
 *                in a loop; while none succeeds, jobs fail this way rather
 *                than wait;
 *   -ESHUTDOWN   the pool is closing (wf_procpool_close()).
 *
 * SHUTDOWN. wf_procpool_close() waits for outstanding jobs or kills them
 * (the caller chooses) and reaps every worker: no zombie, no descriptor,
 * no mapping is left. A pool left open when wf_run() ends is closed there,
 * killing its workers.
 *
 * FORK AND THE RUNTIME. Do not fork() a program whose runtime runs (from a
 * fiber or any thread): the child gets copies of spinlocks that other
 * threads held, and may only call async-signal-safe functions until it
 * calls exec (POSIX's rule), as after any fork of a threaded program. Use
 * wf_process_spawn() (posix_spawn) or this pool. The zygote and the
 * workers belong to the process that made them: in a child of fork() the
 * process pool is not initialised (wf_procpool_init() may be called there
 * again, single-threaded). The zygote is a child of the program: a wait(2)
 * for any child, or a waitpid(-1) that reaps the pool's workers, breaks the
 * pool as it breaks weft/process.h.
 */
#ifndef WEFT_PROCPOOL_H
#define WEFT_PROCPOOL_H

#include "core.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup procpool Process pool
 * @{ */

/* --- jobs: registered before the zygote, run in a worker -------------------- */

/** Where a job writes its output. Opaque; see wf_procout_alloc(). */
typedef struct wf_procout wf_procout_t;

/** A job: runs in a worker process, plain C (no runtime there: the
 * functions that need a fiber or a runtime thread fail with -EPERM).
 * @param in   the input bytes (read-only; valid until the job returns;
 *             not NULL, also when @p len is 0).
 * @param len  their count.
 * @param out  where the output goes: wf_procout_alloc() or
 *             wf_procout_set(); none: the output is empty.
 * @return the job's status: 0, or a negative errno of its choosing (its
 *   "exception"), handed to the caller as res.status with the output. A
 *   status outside -4095..0 is reported as -ERANGE. */
typedef int (*wf_procjob_fn)(const void *in, size_t len, wf_procout_t *out);

/** Register job @p fn under @p name (copied; at most 63 bytes).
 * @return 0; -EINVAL for NULL or empty arguments or a name too long;
 *   -EEXIST if the name is taken; -EBUSY once the zygote has been started
 *   (register every job before wf_procpool_init()); -ENOMEM.
 * Thread-safe; never blocks. */
int wf_procpool_register(const char *name, wf_procjob_fn fn);

/** Start the zygote (see the top of this header): call it early in main(),
 * before any thread exists, after registering the jobs. Once per process:
 * later calls return 0 and do nothing.
 * @return 0; -EBUSY if the process has more than one thread already
 *   (counted in /proc/self/task): called too late, nothing is done, and
 *   process pools cannot be opened in this process (fork the zygote before
 *   starting threads, or before the libraries that start them); the
 *   errors of socketpair(2) and fork(2) (-EMFILE, -EAGAIN, -ENOMEM);
 *   -ECHILD if the zygote died while starting.
 * Blocks briefly (one fork and a handshake). Not from a fiber: a runtime
 * has threads (-EBUSY). */
int wf_procpool_init(void);

/** Write the job's output: a buffer of @p len bytes that the job fills and
 * that goes back to the caller when the job returns (from 64 KiB on it is
 * shared memory: nothing is copied on the way). A second call replaces the
 * first buffer. @return the buffer (not NULL, also for @p len 0); NULL for
 * NULL @p out, or when the memory could not be had (the output is then
 * empty). Worker only: valid until the job returns. */
void *wf_procout_alloc(wf_procout_t *out, size_t len);

/** wf_procout_alloc() then a copy of @p data. @return 0; -EINVAL (NULL
 * @p out, or NULL @p data with @p len > 0); -ENOMEM. */
int wf_procout_set(wf_procout_t *out, const void *data, size_t len);

/* --- pools ------------------------------------------------------------------- */

/** A process pool. Opaque. */
typedef struct wf_procpool wf_procpool_t;

/** Options of wf_procpool_open(). Fill with wf_procpool_opts_init(). */
typedef struct wf_procpool_opts {
    /** Worker processes. 0: one per online CPU. At most 1024. */
    unsigned workers;
    /** Start every worker at open (false: start them on demand, one more
     * each time a job finds every started worker busy). */
    bool eager;
    /** Replace a worker after it has run this many jobs (Python's
     * max_tasks_per_child): it exits, and a fresh copy of the zygote takes
     * its place. 0: never. */
    unsigned max_jobs_per_worker;
    /** A registered job run once in each worker before its first job
     * (Python's initializer), with @p init_input as its input; NULL: none.
     * A status other than 0 fails the worker's start (see -ENOEXEC at the
     * top). */
    const char *initializer;
    /** The initializer's input (copied by wf_procpool_open()). */
    const void *init_input;
    size_t init_len;
    /** The largest output a job may return, in bytes: a worker that sends
     * more fails its job with -EPROTO. 0: 1 GiB. */
    size_t max_output;
    /** How long a worker may take to start, its initializer included, in
     * nanoseconds: past it the worker is killed and the start counts as
     * failed. 0: 60 s. */
    int64_t start_timeout;
} wf_procpool_opts_t;

/** Fill @p o with the defaults above. NULL is ignored. */
void wf_procpool_opts_init(wf_procpool_opts_t *o);

/** Open a process pool (ProcessPoolExecutor()).
 * @param opts NULL for the defaults.
 * @return 0 with *out; -EINVAL for NULL @p out, more than 1024 workers, a
 *   negative start_timeout or init_input NULL with init_len > 0; -ENOENT if
 *   the initializer is not a registered job; -ENOTSUP when the zygote has
 *   not been started in this process (wf_procpool_init(), cfg.procpool);
 *   -ENOMEM; -EPERM not a fiber. With opts.eager the workers start in the
 *   background: wf_procpool_warm() waits for them.
 * Fiber only; does not park (unless a watcher task cannot be spawned: it
 * then waits for the ones already started to end). The pool belongs to
 * the caller's runtime. */
int wf_procpool_open(wf_procpool_t **out, const wf_procpool_opts_t *opts);

/** Start every worker not started yet, and wait until all of them are
 * ready (their initializer done).
 * @return 0; -ENOEXEC when a start failed and no worker is left starting
 *   (the pool retries with its back-off); -ETIMEDOUT; -ECANCELED;
 *   -ESHUTDOWN (closing); -EINVAL; -EXDEV (a fiber of another runtime);
 *   -EPERM not a fiber.
 * Fiber only; parks. */
int wf_procpool_warm(wf_procpool_t *p, int64_t deadline);

/** The outcome of a job (see FAILURES at the top). */
typedef struct wf_procres {
    /** The job's status (call returned 0); the initializer's (-ENOEXEC
     * after its error); the error that kept a worker from being made
     * (-ENOEXEC); else 0. */
    int status;
    /** How the worker died (-ECHILD, or -ENOEXEC when it died starting):
     * the exit status (0 to 255), or minus the signal's number; else 0. */
    int returncode;
    /** The output (call returned 0): @p len bytes, the caller's (writable)
     * until wf_procres_free(); NULL when @p len is 0. */
    void *out;
    size_t len;
} wf_procres_t;

/** Release @p r's output (memory or mapping) and zero it. NULL is ignored;
 * a zeroed outcome may be released again. Do not change out or len before
 * this call. Never blocks; any thread. */
void wf_procres_free(wf_procres_t *r);

/** Run job @p job on @p in and wait for its outcome
 * (await loop.run_in_executor(pool, job, in)).
 * @param in        the input; @p len bytes (NULL allowed when 0). It must
 *                  stay valid until the call returns.
 * @param deadline  WF_FOREVER or an absolute time: past it the job is
 *                  stopped (-ETIMEDOUT); timeout scopes apply too.
 * @param res       receives the outcome (always written: zeroed on the
 *                  errors that say nothing more).
 * @return 0, -ECHILD, -ETIMEDOUT, -ECANCELED, -EPROTO, -ENOEXEC, -ESHUTDOWN
 *   as at the top; -ENOENT no job registered by that name; -EINVAL (NULL
 *   @p p, @p job or @p res, NULL @p in with @p len > 0, a bad deadline);
 *   -ENOMEM, -EMFILE (the shared memory of a large input); -EXDEV the pool
 *   belongs to another runtime (each pool is its opener's runtime's);
 *   -EPERM not a fiber. When the job's reply arrives before a cancellation takes
 *   effect, its outcome is returned (0) and the cancellation stays pending
 *   for the caller's next wait: an outcome is never lost.
 * Fiber only; parks until the outcome (a fiber whose worker has nothing
 * else to run watches for a quick reply for up to 50 us first). */
int wf_procpool_run(wf_procpool_t *p, const char *job, const void *in, size_t len, int64_t deadline,
                    wf_procres_t *res);

/** Start job @p job on @p in in a new task and return at once with its
 * handle (loop.run_in_executor(pool, ...) as a future; the task is a
 * Future usable with wf_join_until(), wf_cancel(), wf_gather(), wf_wait(),
 * task groups). The input is copied before this returns. The task's
 * status is what wf_procpool_run() would return; its result pointer is
 * @p res, which the task fills: it must stay valid until the task has
 * ended (join it before releasing @p res's storage), and is written even
 * if the task is cancelled before it starts (-ECANCELED, zeroed).
 * @return 0 with *task (one reference); -ENOENT, -EINVAL (as
 *   wf_procpool_run(), or NULL @p task), -ESHUTDOWN, -ENOMEM, -EMFILE,
 *   -EXDEV, -EPERM not a fiber: then no task exists and @p res is zeroed.
 * Fiber only; never parks. */
int wf_procpool_submit(wf_procpool_t *p, const char *job, const void *in, size_t len, int64_t deadline,
                       wf_procres_t *res, wf_task_t *task);

/** One input of wf_procpool_map(). */
typedef struct wf_procin {
    const void *data;
    size_t len;
} wf_procin_t;

/** Run job @p job on each of the @p n inputs, at most @p window at once,
 * and wait for all of them (executor.map(), but every outcome is kept,
 * failed or not): res[i] and errs[i] are input i's outcome and the value
 * wf_procpool_run() would have returned for it, in input order.
 * @param window  jobs in flight at most; 0: twice the pool's workers.
 * @param deadline for the whole map: inputs not finished by then get
 *                -ETIMEDOUT (the running ones are stopped).
 * @return 0 when every input has its outcome (look at errs[]);
 *   -ECANCELED when the caller was cancelled, or -ETIMEDOUT when an
 *   enclosing timeout scope expired: the jobs in flight are stopped and
 *   every input not finished gets -ECANCELED (outcomes already in are
 *   kept); -ENOENT; -EINVAL (NULL @p p, @p job, @p res or @p errs,
 *   NULL @p in with @p n > 0, an input NULL with a length, a bad
 *   deadline); -ENOMEM; -EXDEV; -EPERM not a fiber. The inputs must stay
 *   valid until it returns.
 * Fiber only; parks. */
int wf_procpool_map(wf_procpool_t *p, const char *job, const wf_procin_t *in, size_t n, unsigned window,
                    int64_t deadline, wf_procres_t *res, int *errs);

/** How wf_procpool_close() treats jobs still outstanding. */
typedef enum wf_procpool_close_mode {
    /** Let every job already submitted finish (those waiting for a worker
     * too); new ones get -ESHUTDOWN (executor.shutdown(wait=True)). */
    WF_PROCPOOL_WAIT = 1,
    /** Stop them: jobs waiting for a worker fail, running ones have their
     * worker killed; both with -ESHUTDOWN (shutdown(cancel_futures=True),
     * and more: a running job is stopped too). */
    WF_PROCPOOL_CANCEL = 2,
} wf_procpool_close_mode_t;

/** Close @p p: refuse new jobs, wait for or stop the outstanding ones
 * (@p how), stop every worker and reap it, and free the pool: no process,
 * descriptor or mapping of it is left when this returns.
 * @param deadline WF_PROCPOOL_WAIT only: past it, what is still running is
 *   stopped as by WF_PROCPOOL_CANCEL.
 * @return 0; -ETIMEDOUT (WAIT: the deadline passed and jobs were stopped);
 *   -ECANCELED (the caller was cancelled while waiting: jobs were stopped);
 *   either way the pool is closed and freed. -EINVAL for NULL @p p or a
 *   bad mode or deadline (nothing is done); -EPERM not a fiber of the
 *   pool's runtime (nothing is done). Using @p p afterwards is a use after
 *   free; so is a second close.
 * Fiber only; parks until the jobs and workers are gone (killed workers go
 * within milliseconds). */
int wf_procpool_close(wf_procpool_t *p, wf_procpool_close_mode_t how, int64_t deadline);

/** A snapshot of a pool, for monitoring and tests. A worker's end is
 * counted (crashes, kills, recycled) once its watcher has reaped it, which
 * may be a little after the call that stopped it has returned. */
typedef struct wf_procpool_stats {
    unsigned workers;  /**< the pool's size */
    unsigned ready;    /**< workers started and ready (idle or busy) */
    unsigned idle;     /**< of which idle */
    unsigned starting; /**< workers being started */
    unsigned waiting;  /**< jobs waiting for a worker */
    uint64_t jobs;     /**< replies received */
    uint64_t starts;   /**< worker starts attempted */
    uint64_t start_failures; /**< of which failed */
    uint64_t crashes;  /**< workers that died holding a job (-ECHILD) or idle */
    uint64_t kills;    /**< workers killed (deadline, cancellation, protocol, close) */
    uint64_t recycled; /**< workers retired after max_jobs_per_worker */
} wf_procpool_stats_t;

/** Fill @p out with @p p's numbers. @return 0; -EINVAL for NULL. Never
 * blocks; any thread of the pool's runtime. */
int wf_procpool_stats(wf_procpool_t *p, wf_procpool_stats_t *out);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
