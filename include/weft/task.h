/* weft/task.h - tasks: spawn, join, detach, cancel, yield.
 *
 * A task runs a wf_fn on a fiber of its own and ends with an outcome: a
 * status (0, -ECANCELED, or the negative errno the function returned) and a
 * result pointer. A task is named by a handle, a wf_task_t. Handles are
 * counted references: wf_spawn() gives you one, wf_task_ref() makes another,
 * and each must be given back exactly once, by wf_join() (which waits for the
 * outcome) or wf_detach() (which does not). A handle that has been given back
 * is dead, and every call made with it fails cleanly with -EINVAL: a double
 * join, or a join after detach, is reported, never undefined behaviour.
 *
 * Cancellation is sticky, as in Trio (asyncio delivers one CancelledError
 * and then lets the task wait again): wf_cancel() asks a task to stop; the
 * request is delivered at the task's current or next wait, which returns
 * -ECANCELED, and it stays in force (every later wait fails the same way)
 * until the task ends or withdraws it with wf_uncancel(). Cleanup that must
 * still wait (a flush, a close) runs inside a cleanup scope
 * (wf_cleanup_enter, combinators.h), which holds the request off for a
 * bounded time. A task cancelled before it first runs never runs its body
 * (its status is -ECANCELED); wf_spawn_opts_t.drop lets its argument be
 * released then.
 *
 * Lifetime mistakes are reported when a task's body returns: a timeout or
 * cleanup scope still entered (a warning on stderr naming the task; the
 * scopes are dropped and the task ends normally), or a task group opened
 * with wf_group_init() and never waited (fatal: the children would write
 * into the body's dead stack frame; the report names the task, then the
 * process aborts, as for a stack overflow).
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup task Tasks
 * @{ */

/** A task handle: an opaque 64-bit value (index and generation). */
typedef uint64_t wf_task_t;

/** Not a task. wf_self() returns it outside a fiber. */
#define WF_TASK_NONE ((wf_task_t)0)

/** Options for wf_spawn(). Start from WF_SPAWN_OPTS_INIT. */
typedef struct wf_spawn_opts {
    /** Name shown in overflow reports and task dumps (copied, truncated to
     * 31 bytes). NULL: "task". */
    const char *name;
    /** Stack size in bytes; 0: the runtime's default. Between 16 KiB and
     * 1 GiB. A size other than the default is rounded up to a power of two
     * (the size classes of the stack pool: any number of distinct sizes
     * works; the extra virtual space costs no memory until touched). */
    size_t stack_size;
    /** Worker the task is pinned to for its whole life, or -1 for any. A
     * pinned task is never stolen. */
    int worker;
    /** Called with `arg` instead of the body when the task is cancelled
     * before it ever ran (then the body never runs), so that an argument
     * the body would have released is released. NULL: nothing is called.
     * It runs in the task's own fiber, cancelled: its waits fail with
     * -ECANCELED unless it enters a cleanup scope (wf_cleanup_enter). It
     * is also called when the task can never start because no stack could
     * be allocated (the task ends -ENOMEM); it then runs outside any fiber,
     * where waits fail with -EPERM. */
    void (*drop)(void *arg);
} wf_spawn_opts_t;

#define WF_SPAWN_OPTS_INIT {NULL, 0, -1, NULL}

/** Start a task running @p fn(@p arg) (asyncio.create_task).
 *
 * The new task is queued on the caller's worker and may run on any worker
 * (unless pinned). @param out receives the handle (one reference); required.
 * @param fn the body; required. @param opts NULL for defaults.
 * @return 0; -EINVAL for a NULL @p out or @p fn, a stack size out of range or
 * a worker index out of range; -ENOMEM; -EPERM when called outside a runtime
 * thread. During shutdown of the runtime the new task starts cancelled.
 * Never blocks. Callable from fibers and from timer callbacks. */
int wf_spawn(wf_task_t *out, wf_fn fn, void *arg, const wf_spawn_opts_t *opts);

/** Wait for a task to end and collect its outcome (await task). On success
 * the caller's reference is given back, so the handle is dead afterwards.
 * @param status receives the task's status (may be NULL).
 * @param result receives the task's result (may be NULL).
 * @return 0 when the task has ended (its outcome is in *status / *result);
 *   -EINVAL   @p t is not a live handle (never valid, already joined or
 *             detached);
 *   -EDEADLK  a task joining itself;
 *   -ECANCELED the caller was cancelled while waiting (the handle stays live
 *             and the task keeps running);
 *   -EPERM    not called from a fiber.
 * Fiber only; blocks until the task ends. */
int wf_join(wf_task_t t, int *status, void **result);

/** wf_join() with a deadline. @return as wf_join(), plus -ETIMEDOUT when the
 * deadline passed first (the handle stays live). A deadline of 0 polls. */
int wf_join_until(wf_task_t t, int64_t deadline, int *status, void **result);

/** Give back a reference without waiting: the task runs on, and its outcome
 * is dropped when it ends (unless another reference still holds it).
 * @return 0; -EINVAL if @p t is not a live handle; -EPERM outside a runtime
 * thread. Never blocks. */
int wf_detach(wf_task_t t);

/** Take another reference to a task, to be given back by its own wf_join()
 * or wf_detach(). The same wf_task_t value stands for every reference.
 * @return 0; -EINVAL if @p t is not a live handle; -EOVERFLOW the task
 * already has the most references a handle can count (65,535; nothing
 * changes); -EPERM outside a runtime thread. Never blocks. */
int wf_task_ref(wf_task_t t);

/** Ask a task to stop (Task.cancel()). The task's current wait, if it is
 * parked in a cancellable one, returns -ECANCELED at once, and so does every
 * later wait until it ends or calls wf_uncancel(). Each call counts one
 * request (see wf_cancelling()). A task may cancel itself.
 * @return 0 when the request was made; -EALREADY when the task had already
 * ended (nothing is recorded); -EINVAL for a dead handle; -EPERM outside a
 * runtime thread. Never blocks. */
int wf_cancel(wf_task_t t);

/** The number of pending cancellation requests of a task (Task.cancelling()).
 * @return the count (>= 0); -EINVAL for a dead handle; -EPERM outside a
 * runtime thread. */
int wf_cancelling(wf_task_t t);

/** Withdraw one cancellation request from the calling task (Task.uncancel()).
 * When the count reaches zero, waits stop failing with -ECANCELED.
 * @return the number of requests left (>= 0); -EPERM outside a fiber. */
int wf_uncancel(void);

/** Let other tasks run: the caller goes to the back of its worker's run queue
 * (asyncio.sleep(0)). @return 0; -ECANCELED if a cancellation is pending
 * (checked after the yield); -EPERM outside a fiber. */
int wf_yield(void);

/** The calling task's handle (asyncio.current_task()). It is not a new
 * reference. @return the handle, or WF_TASK_NONE outside a fiber. */
wf_task_t wf_self(void);

/** Task states reported by wf_task_state(). */
typedef enum wf_task_state {
    WF_TASK_PENDING = 0, /**< spawned, not yet started */
    WF_TASK_RUNNABLE,    /**< started, waiting in a run queue */
    WF_TASK_RUNNING,     /**< on a worker's CPU right now */
    WF_TASK_PARKED,      /**< waiting for something (a lock, a timer, a task) */
    WF_TASK_DONE,        /**< ended; the outcome is available */
} wf_task_state_t;

/** A task's state, as a snapshot. @return a wf_task_state_t value (>= 0),
 * or -EINVAL for a dead handle, -EPERM outside a runtime thread. */
int wf_task_state(wf_task_t t);

/** Whether a task has ended (Task.done()). @return 1 ended, 0 not yet,
 * -EINVAL dead handle, -EPERM outside a runtime thread. */
int wf_task_done(wf_task_t t);

/** Read a finished task's outcome without giving the handle back
 * (Task.result() / Task.exception()).
 * @return 0 with *status / *result filled (either may be NULL); -EAGAIN if
 * the task has not ended (asyncio's InvalidStateError); -EINVAL for a dead
 * handle; -EPERM outside a runtime thread. Never blocks. */
int wf_task_outcome(wf_task_t t, int *status, void **result);

/** Copy a task's name into @p buf (NUL-terminated, truncated to @p len).
 * @return 0; -EINVAL for a dead handle, NULL @p buf or zero @p len; -EPERM
 * outside a runtime thread. */
int wf_task_name(wf_task_t t, char *buf, size_t len);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
