/* weft/combinators.h - gather, wait, wait_for, as_completed, timeout scopes,
 * shield, cancellation details, done callbacks, task groups, futures and
 * cross-thread entry: asyncio's task toolbox (asyncio-task.html) for C.
 *
 * Translation rules. An exception is a task's negative status;
 * CancelledError is -ECANCELED; TimeoutError is -ETIMEDOUT. Where asyncio
 * takes a timeout, weft takes an absolute deadline (core.h): WF_FOREVER,
 * or a wf_now() time; wf_deadline_in() makes one from a delay.
 *
 * References (task.h). Each call below says what it does with the caller's
 * task handles:
 *   wf_gather          consumes one reference per task (it awaits them);
 *   wf_wait_for        consumes the reference whenever the task has ended
 *                      (0, -ETIMEDOUT, -ECANCELED);
 *   wf_wait, wf_wait_split  consume nothing;
 *   wf_as_completed_*  consumes nothing; each task it hands back comes
 *                      with a new reference of its own;
 *   wf_cancel_join     consumes one reference per task on success and on
 *                      -ETIMEDOUT (tasks still running are detached);
 *   wf_shield          consumes nothing; returns a new handle;
 *   wf_group_spawn     the group holds its own reference; `out` (optional)
 *                      receives one for the caller;
 *   done callbacks     consume nothing.
 * A call that fails with -EINVAL, -EPERM, -EDEADLK or -ENOMEM consumes
 * nothing and has no other effect.
 */
#ifndef WEFT_COMBINATORS_H
#define WEFT_COMBINATORS_H

#include "task.h"
#include "time.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup gather gather, wait, wait_for, as_completed
 * @{ */

/** One task's outcome, as wf_join() reports it. */
typedef struct wf_outcome {
    /** The task's status: 0, its negative errno, or -ECANCELED; or
     * -EINPROGRESS when the task had not ended when the call returned (it
     * was detached and runs on). */
    int status;
    /** The task's result pointer (NULL with -EINPROGRESS). */
    void *result;
} wf_outcome_t;

/** wf_gather() flag: wait for every task and report every outcome, failed
 * or not (asyncio.gather(..., return_exceptions=True)). */
#define WF_GATHER_COLLECT 1u
/** wf_gather() flag, fail-fast mode only: when a task fails, cancel the
 * others and wait for them to end before returning (so no task outlives
 * the call), instead of letting them run on. */
#define WF_GATHER_CANCEL_ON_FAILURE 2u

/** Await a set of tasks (asyncio.gather). Consumes one reference to each
 * task, whatever it returns (except the input errors below).
 *
 * Fail-fast mode (flags 0, asyncio's default): returns as soon as a task
 * fails (any non-zero status, -ECANCELED included); the other tasks keep
 * running, detached, and their out[] entries say -EINPROGRESS (or, with
 * WF_GATHER_CANCEL_ON_FAILURE, they are cancelled and awaited first, and
 * out[] holds their final outcomes).
 * Collect mode (WF_GATHER_COLLECT): waits for every task.
 *
 * Cancelling the caller (or its deadline, or an enclosing timeout scope,
 * passing) cancels every task that has not ended (with the caller's
 * cancellation message) and waits for them all to end before returning;
 * out[] then holds every final outcome. A shielded task (wf_shield) is not
 * reached by this.
 *
 * @param tasks  the handles; the same task may appear several times when
 *               the caller holds that many references to it.
 * @param n      number of handles; 0 returns 0 at once.
 * @param flags  0, WF_GATHER_COLLECT, or WF_GATHER_CANCEL_ON_FAILURE.
 * @param deadline  WF_FOREVER, or when to give up as if cancelled.
 * @param out    NULL, or n entries that receive the outcomes in the order
 *               of @p tasks (filled on every non-negative return and on
 *               -ECANCELED / -ETIMEDOUT).
 * @param first_failed  NULL, or receives the index of the first task seen
 *               failing, or SIZE_MAX if none failed (written whenever
 *               @p out is).
 * @return in fail-fast mode 0 (every task succeeded) or 1 (a task failed:
 *   see *first_failed); in collect mode the number of tasks whose status is
 *   not 0;
 *   -ECANCELED  the caller was cancelled (the tasks were cancelled too);
 *   -ETIMEDOUT  the deadline, or an enclosing timeout scope's, passed (the
 *               tasks were cancelled);
 *   -EINVAL     NULL @p tasks with n > 0, unknown or conflicting flags, a
 *               negative deadline other than WF_FOREVER, a dead handle, or a
 *               task named more times than the caller holds references;
 *   -EDEADLK    the caller is among the tasks;
 *   -ENOMEM;
 *   -EPERM      not called from a fiber.
 * Fiber only; blocks. */
int wf_gather(const wf_task_t *tasks, size_t n, unsigned flags, int64_t deadline, wf_outcome_t *out,
              size_t *first_failed);

/** When wf_wait() returns (asyncio.FIRST_COMPLETED and friends). */
typedef enum wf_wait_when {
    WF_FIRST_COMPLETED = 1, /**< when any task ends */
    WF_FIRST_EXCEPTION = 2, /**< when any task fails with a status other
                                 than -ECANCELED; else when all end */
    WF_ALL_COMPLETED = 3,   /**< when every task has ended */
} wf_wait_when_t;

/** Wait for some or all of a set of tasks (asyncio.wait). Cancels nothing
 * and consumes no reference; the tasks are only watched.
 * @param tasks, n  the handles (n > 0).
 * @param when      a wf_wait_when_t.
 * @param deadline  WF_FOREVER, or when to stop waiting; reaching it is not
 *                  an error (asyncio returns (done, pending) too).
 * @param done      NULL, or n flags: done[i] is true if tasks[i] had ended
 *                  when the call returned (the rest are pending).
 * @return the number of tasks that had ended (0 .. n);
 *   -ECANCELED  the caller was cancelled (nothing is written);
 *   -ETIMEDOUT  an enclosing timeout scope expired (nothing is written);
 *   -EINVAL     n == 0, NULL @p tasks, a bad @p when or deadline, a dead
 *               handle;
 *   -EDEADLK    the caller is among the tasks; -ENOMEM; -EPERM not a fiber.
 * Fiber only; blocks until the condition holds or the deadline passes. */
int wf_wait(const wf_task_t *tasks, size_t n, int when, int64_t deadline, bool *done);

/** wf_wait() that splits the set in two, as asyncio's
 * `done, pending = await asyncio.wait(tasks, ...)`: the handles of the
 * tasks that had ended when the call returned go to @p done, the others to
 * @p pending, each in the order of @p tasks. Waits, cancels and consumes
 * exactly as wf_wait() (no reference is consumed or created: the handles
 * written are the caller's own, copied).
 * @param tasks, n, when, deadline  as wf_wait().
 * @param done     NULL, or room for n handles: receives the k ended ones
 *                 (k is the return value).
 * @param pending  NULL, or room for n handles: receives the n - k others.
 *                 @p done and @p pending must not overlap each other, but
 *                 either may be @p tasks itself, which makes the usual
 *                 loop `while (n) { k = wf_wait_split(p, n, WF_FIRST_COMPLETED,
 *                 dl, d, p); ...; n -= k; }` work in place.
 * @return k, the number of tasks that had ended (0 .. n); errors as
 *   wf_wait(), on which nothing is written:
 *   -ECANCELED  the caller was cancelled;
 *   -ETIMEDOUT  an enclosing timeout scope expired;
 *   -EINVAL     n == 0, NULL @p tasks, a bad @p when or deadline, a dead
 *               handle;
 *   -EDEADLK    the caller is among the tasks; -ENOMEM; -EPERM not a fiber.
 * Fiber only; blocks until the condition holds or the deadline passes. */
int wf_wait_split(const wf_task_t *tasks, size_t n, int when, int64_t deadline, wf_task_t *done,
                  wf_task_t *pending);

/** Await one task with a deadline (asyncio.wait_for). If the deadline (or
 * an enclosing timeout scope's) passes first, the task is cancelled and
 * awaited, and the call returns -ETIMEDOUT; if the caller is cancelled, the
 * task is cancelled too (with the caller's message) and awaited, and the
 * call returns -ECANCELED. Either way the task has ended when this returns
 * and the reference is consumed; *status / *result receive its outcome on
 * all three returns, so nothing it produced is lost. A task that ends with
 * a status other than -ECANCELED after the timeout (it finished first, or
 * ignored the cancellation) is reported as a success: 0 with its outcome.
 * wf_wait_for(wf_shield(t)) times out without cancelling t.
 * @return 0 (outcome in *status / *result); -ETIMEDOUT; -ECANCELED;
 *   -EINVAL dead handle or bad deadline; -EDEADLK the caller itself;
 *   -EPERM not a fiber. Fiber only; blocks. */
int wf_wait_for(wf_task_t t, int64_t deadline, int *status, void **result);

/** An iterator over tasks in the order they end (asyncio.as_completed). */
typedef struct wf_as_completed wf_as_completed_t;

/** Start an as_completed iteration over @p n tasks with an overall
 * deadline. The iterator takes its own reference to each task; the
 * caller's references stay the caller's.
 * @param it  receives the iterator; give it back with wf_as_completed_end().
 * @return 0; -EINVAL NULL @p it, NULL @p tasks with n > 0, a dead handle, a
 *   bad deadline; -EDEADLK the caller is among the tasks; -ENOMEM;
 *   -EPERM not a fiber. n == 0 is allowed (the iteration is empty).
 * Fiber only; never blocks. */
int wf_as_completed_start(wf_as_completed_t **it, const wf_task_t *tasks, size_t n, int64_t deadline);

/** The next task to end. Tasks that have already ended are handed back at
 * once, in the order they ended, even after the deadline.
 * @param task  receives the task's handle, with a new reference that the
 *              caller gives back (wf_join() returns its outcome at once).
 * @return 1 a task was handed back; 0 every task has been handed back;
 *   -ETIMEDOUT the overall deadline (or an enclosing scope's) passed and no
 *   ended task is waiting; -ECANCELED the caller was cancelled (the
 *   iterator stays usable); -EBUSY another fiber is in next on this
 *   iterator; -EINVAL NULL or ended iterator, NULL @p task; -EPERM not a
 *   fiber. Fiber only; blocks. */
int wf_as_completed_next(wf_as_completed_t *it, wf_task_t *task);

/** End the iteration: gives back the iterator's references to the tasks
 * not handed out, and frees it. Cancels nothing.
 * @return 0; -EINVAL NULL; -EBUSY a fiber is in next on it; -EPERM
 * outside a runtime thread. Never blocks. */
int wf_as_completed_end(wf_as_completed_t *it);

/** @} */

/** @defgroup timeout Timeout scopes (asyncio.timeout / timeout_at)
 *
 * A scope gives the code between wf_timeout_enter() and wf_timeout_leave()
 * a deadline: once it passes, every cancellable wait of the task (a join, a
 * sleep, an I/O wait, a lock...) fails with -ETIMEDOUT at once, and keeps
 * failing that way until the scope is left. Scopes nest per task: the
 * earliest deadline of the scopes the task is in wins. Unlike asyncio, no
 * cancellation is involved, so a scope never confuses its own expiry with
 * an outside wf_cancel().
 *
 * The storage is the caller's, usually a local variable of the function
 * that enters the scope; it must stay valid until the scope is left, and a
 * scope must be left before that function returns. Scopes are left in the
 * reverse order of entry; leaving an outer scope while an inner one is open
 * is refused with -EBUSY and changes nothing.
 * @{ */

/** Storage for a timeout scope. */
typedef struct wf_timeout {
    WF_ALIGNAS(16) unsigned char opaque[48];
} wf_timeout_t;

/** Enter a scope with an absolute @p deadline (timeout_at(when));
 * WF_FOREVER: no deadline yet (timeout(None)), see wf_timeout_reschedule().
 * A deadline already past makes the next wait fail at once.
 * @return 0; -EINVAL NULL @p tm, a negative deadline other than
 * WF_FOREVER; -EBUSY @p tm is already entered; -EPERM not a fiber.
 * Fiber only; never blocks. */
int wf_timeout_enter(wf_timeout_t *tm, int64_t deadline);

/** Enter a scope expiring @p ns nanoseconds from now (asyncio.timeout);
 * a negative @p ns: no deadline. Returns as wf_timeout_enter(). */
int wf_timeout_enter_in(wf_timeout_t *tm, int64_t ns);

/** Leave the innermost scope (the end of `async with timeout(...)`).
 * @return 1 if the scope expired (its deadline passed before it was left,
 *   so a wait inside it may have failed with -ETIMEDOUT), 0 if not;
 *   -EBUSY @p tm is not the innermost scope (leave those first; nothing
 *   changes); -EINVAL @p tm is not one of the caller's open scopes;
 *   -EPERM not a fiber. Fiber only; never blocks. */
int wf_timeout_leave(wf_timeout_t *tm);

/** Move the deadline of one of the caller's open scopes
 * (Timeout.reschedule); WF_FOREVER removes it. Takes effect at the next
 * wait.
 * @return 0; -EALREADY the scope has already expired (asyncio refuses
 *   too); -EINVAL not an open scope of the caller, or a bad deadline;
 *   -EPERM not a fiber. Fiber only. */
int wf_timeout_reschedule(wf_timeout_t *tm, int64_t deadline);

/** Read a scope's deadline (Timeout.when); works on the caller's open
 * scopes and on scopes the caller has left.
 * @return 0 with *deadline (WF_FOREVER: none); -EINVAL NULL arguments or
 *   not a scope; -EPERM not a fiber. */
int wf_timeout_when(const wf_timeout_t *tm, int64_t *deadline);

/** Whether a scope has expired (Timeout.expired): its deadline has
 * passed. Works on the caller's open scopes and on scopes the caller has
 * left.
 * @return 1 or 0; -EINVAL not a scope; -EPERM not a fiber. */
int wf_timeout_expired(const wf_timeout_t *tm);

/** Enter a cleanup scope: a timeout scope that also holds off
 * cancellation (Trio's CancelScope(shield=True) with move_on_after).
 *
 * Cancellation in weft is sticky: after the first -ECANCELED every wait
 * fails at once until wf_uncancel(). That is what a task being told to
 * stop needs, but it also makes the waits of its cleanup fail: a flush, a
 * goodbye message, a wf_join of a helper. Inside a cleanup scope the
 * task's waits (and wf_yield) ignore cancellation, and the deadlines of
 * the scopes around it no longer apply; only @p deadline (and timeout
 * scopes entered inside) bound them: once it passes, waits fail with
 * -ETIMEDOUT, so a cleanup never hangs the task. A request that arrives
 * or is pending meanwhile is not lost: it stays pending, and the first
 * wait after wf_timeout_leave() fails with -ECANCELED.
 *
 * The pattern (see docs/api.md, "Cleanup under cancellation"):
 * @code
 *   int e = do_work(conn);              // -ECANCELED: told to stop
 *   wf_timeout_t cs;
 *   wf_cleanup_enter_in(&cs, 2 * WF_NSEC_PER_SEC);
 *   flush_and_close(conn);              // its waits work again, 2 s at most
 *   wf_timeout_leave(&cs);              // the cancellation is back
 *   return e;
 * @endcode
 * Its deadline does not shorten the waits the runtime makes uninterruptible
 * because they must outlast the tasks they wait for: wf_group_wait() once
 * it has cancelled its children, and the waits of wf_gather() and
 * wf_wait_for() for tasks they have cancelled (wf_cancel_join() obeys it,
 * detaching what is left). Those end when the tasks end.
 *
 * Leave it with wf_timeout_leave() (1 if its deadline passed); it obeys
 * the same storage and nesting rules as a timeout scope, and
 * wf_timeout_reschedule/_when/_expired work on it.
 * @param deadline  absolute; WF_FOREVER is refused: a cleanup is bounded.
 * @return 0; -EINVAL NULL @p tm or a deadline that is WF_FOREVER or
 *   negative (wf_timeout_reschedule() also refuses WF_FOREVER for it);
 *   -EBUSY @p tm is already entered; -EPERM not a fiber.
 * Fiber only; never blocks. Usable in a task's drop callback (which runs
 * cancelled, in the task's own fiber: its waits fail with -ECANCELED
 * unless inside a cleanup scope). */
int wf_cleanup_enter(wf_timeout_t *tm, int64_t deadline);

/** wf_cleanup_enter() with a deadline @p ns nanoseconds from now; a
 * negative @p ns is refused with -EINVAL. */
int wf_cleanup_enter_in(wf_timeout_t *tm, int64_t ns);

/** @} */

/** @defgroup cancel Cancellation details and shield
 * @{ */

/** wf_cancel() with a message (Task.cancel(msg)): the task reads it with
 * wf_cancel_message(). @p msg is not copied: it must stay valid while the
 * task may read it (a string literal is the usual choice); NULL is a
 * request without a message. Each call counts one request (wf_cancelling).
 * @return 0; -EALREADY the task had ended; -EINVAL dead handle; -EPERM
 * outside a runtime thread. Never blocks. */
int wf_cancel_msg(wf_task_t t, const char *msg);

/** The message of the latest cancellation request made to @p t (the
 * argument of its CancelledError), or NULL if that request had none.
 * @return 0 with *msg; -EINVAL dead handle or NULL @p msg; -EPERM outside
 * a runtime thread. */
int wf_cancel_message(wf_task_t t, const char **msg);

/** Whether a task has ended cancelled (Task.cancelled()): its status is
 * -ECANCELED. @return 1, 0 (not ended, or ended otherwise); -EINVAL dead
 * handle; -EPERM outside a runtime thread. */
int wf_task_cancelled(wf_task_t t);

/** Cancel a set of tasks and join them all: the cleanup that asyncio
 * spells `for t in tasks: t.cancel(msg)` then
 * `await asyncio.gather(*tasks, return_exceptions=True)`, and what a task
 * group does at its exit.
 *
 * Every entry first gets one cancellation request with @p msg (as
 * wf_cancel_msg(); a task that has already ended gets none, and is simply
 * joined). The call then waits until every task has ended, or until
 * @p deadline passes. That wait is not interruptible: neither the caller's
 * cancellation (which stays pending, for its next wait) nor an enclosing
 * timeout scope, even one already expired, ends it; only @p deadline
 * bounds it, so that a task ignoring its cancellation (wf_uncancel) cannot
 * hold the caller longer than the caller chose. Inside a cleanup scope
 * (wf_cleanup_enter) that scope's deadline, and those of timeout scopes
 * entered inside it, bound it too, as they bound every wait there.
 *
 * References: on 0 or more and on -ETIMEDOUT, every reference named in
 * @p tasks is consumed, one per entry (as wf_join). With -ETIMEDOUT the
 * tasks that had not ended are thereby detached: they run on, still
 * cancelled, their out[] entries say -EINPROGRESS, and their handles are
 * dead (wf_task_ref() one beforehand to keep a hold on it). On every other
 * error nothing is consumed, nothing is cancelled, and nothing is written.
 *
 * Dead handles: an entry that is not a live handle (never valid, already
 * joined or detached, WF_TASK_NONE), or a task named more times than the
 * caller holds references, fails the whole call with -EINVAL before any
 * task is cancelled: a dead handle in a cleanup set means the caller's
 * bookkeeping is wrong, and skipping it would hide that. Remove joined
 * tasks from the set instead.
 *
 * @param tasks  the handles; a task named k times (the caller holding k
 *               references) gets k requests and gives back k references.
 * @param n      number of handles; 0 returns 0 at once.
 * @param msg    the cancellation message (not copied: it must stay valid
 *               while the tasks may read it), or NULL for none.
 * @param deadline  WF_FOREVER, or when to stop waiting (0: cancel, then
 *               report only the tasks that have already ended).
 * @param out    NULL, or n entries that receive the outcomes in the order
 *               of @p tasks (written on 0 or more and on -ETIMEDOUT).
 * @return the number of tasks whose status is neither 0 nor -ECANCELED
 *   (those that failed on their own; 0 when all ended cancelled or
 *   succeeded): every task has ended;
 *   -ETIMEDOUT  @p deadline (or, inside a cleanup scope, a scope's
 *               deadline) passed first (see References above);
 *   -EINVAL     NULL @p tasks with n > 0, a negative deadline other than
 *               WF_FOREVER, a dead handle, or a task named more times
 *               than the caller holds references;
 *   -EDEADLK    the caller is among the tasks;
 *   -ENOMEM;
 *   -EPERM      not called from a fiber.
 * Fiber only; blocks (uninterruptibly, up to @p deadline). */
int wf_cancel_join(const wf_task_t *tasks, size_t n, const char *msg, int64_t deadline, wf_outcome_t *out);

/** Shield a task from cancellation that travels through awaiting
 * combinators (asyncio.shield). @p out receives a new task, the shield,
 * that ends with @p t's outcome; cancelling the shield (directly, or
 * because wf_gather, wf_wait_for or a task group cancels what it awaits)
 * ends the shield with -ECANCELED at once while @p t runs on untouched.
 * Cancelling @p t itself still cancels it (and so the shield). The caller
 * keeps its reference to @p t; the shield holds its own until @p t ends or
 * the shield is cancelled. Costs one small task.
 * @return 0; -EINVAL NULL @p out or dead handle; -ENOMEM; -EPERM outside a
 * runtime thread. Never blocks. */
int wf_shield(wf_task_t t, wf_task_t *out);

/** @} */

/** @defgroup callbacks Done callbacks
 * @{ */

/** A done callback: @p t has ended with @p status and @p result. The id is
 * not a reference: it stays usable only while someone holds one. The
 * callback runs once, on a worker thread, outside the runtime's locks, but
 * possibly on the stack of the task that just ended: it must not block or
 * wait; it may spawn, cancel, detach, start timers and complete futures. */
typedef void (*wf_done_fn)(wf_task_t t, int status, void *result, void *arg);

/** Call @p fn(t, status, result, @p arg) once @p t ends
 * (Task.add_done_callback). Callbacks run in the order they were added. If
 * the task has already ended, @p fn runs at once, on the caller, before
 * this returns.
 * @return 0; -EINVAL NULL @p fn or dead handle; -ENOMEM; -EPERM outside a
 * runtime thread. Never blocks (other than for @p fn run at once). */
int wf_task_add_done_callback(wf_task_t t, wf_done_fn fn, void *arg);

/** Remove every callback (fn, arg) of @p t that has not started
 * (Task.remove_done_callback). @return the number removed (0 when they
 * have run or are running); -EINVAL NULL @p fn or dead handle; -EPERM
 * outside a runtime thread. Never blocks. */
int wf_task_remove_done_callback(wf_task_t t, wf_done_fn fn, void *arg);

/** @} */

/** @defgroup group Task groups (asyncio.TaskGroup)
 *
 * A group is entered by its parent task with wf_group_init() and left with
 * wf_group_wait(), which waits for every child. The first child to fail
 * (a status other than 0 and -ECANCELED) cancels the other children, and
 * the parent too if it has not reached wf_group_wait() yet (so its body
 * stops at its next wait; the group withdraws that request when the parent
 * reaches wf_group_wait(), as asyncio's uncancel()). wf_group_wait()
 * reports every failure as a list of (task id, status, result, arg, name):
 * C's stand-in for an ExceptionGroup. Children that ended cancelled are not failures. A
 * parent cancelled from outside (before or during wf_group_wait) cancels
 * the children; so does an expiring timeout scope around the wait.
 *
 * The storage is the caller's; it must stay valid until wf_group_wait()
 * returns, and wf_group_wait() must be called before the parent returns.
 * Once it has returned, the group is finished (re-initialise to reuse).
 * @{ */

/** Storage for a task group. */
typedef struct wf_group {
    WF_ALIGNAS(16) unsigned char opaque[128];
} wf_group_t;

/** Size of wf_group_failure_t.name, the NUL included: room for a whole
 * task name (wf_spawn_opts_t.name keeps at most 31 bytes). */
#define WF_GROUP_FAILURE_NAME_MAX 32

/** One failed child, as wf_group_wait() reports it. The record identifies
 * the child by itself, so it is enough even when the caller kept no
 * handle: the name and arg the child was spawned with, and its id.
 * Layout: task, status and result keep their earlier offsets; arg and
 * name follow them, and the struct grew from 24 to 64 bytes on LP64, so
 * code built against an older header must be rebuilt (README.md,
 * "Versions and the ABI"). */
typedef struct wf_group_failure {
    /** The child's id: the value of its handle, unique to this child. An
     * identifier, not a reference: it compares equal to a handle the
     * caller kept through wf_group_spawn's `out` (and works with calls
     * then, until that reference is given back); without one it is dead
     * once wf_group_wait() returns, and calls with it fail with -EINVAL. */
    wf_task_t task;
    int status;   /**< its status (negative, not -ECANCELED) */
    void *result; /**< its result pointer */
    void *arg;    /**< the `arg` it was spawned with (wf_group_spawn) */
    /** Its name: wf_group_spawn's opts->name, or "task" when there was
     * none (as wf_task_name() reports it), truncated to
     * WF_GROUP_FAILURE_NAME_MAX - 1 bytes, NUL-terminated, the rest of
     * the array zeroed. */
    char name[WF_GROUP_FAILURE_NAME_MAX];
} wf_group_failure_t;

/** Open a group whose parent is the calling task (async with TaskGroup()).
 * @return 0; -EINVAL NULL @p g; -EBUSY @p g is already an open group of
 * the caller; -EPERM not a fiber. Fiber only; never blocks. */
int wf_group_init(wf_group_t *g);

/** Spawn a child into the group (TaskGroup.create_task). Any fiber of the
 * runtime may do so (children too) while the group is open.
 * @param out  NULL, or receives a handle (a new reference for the caller);
 *             the group holds its own reference either way.
 * @param fn, arg, opts  as wf_spawn().
 * @return 0; -ESHUTDOWN the group is shutting down (a child failed, it was
 *   cancelled, or the parent is leaving it: nothing is spawned); -EINVAL
 *   NULL @p g / @p fn, not an open group, bad @p opts; -ENOMEM; -EPERM
 *   outside a runtime thread. Never blocks. */
int wf_group_spawn(wf_group_t *g, wf_task_t *out, wf_fn fn, void *arg, const wf_spawn_opts_t *opts);

/** Cancel the group as a whole: every child is cancelled, no child can be
 * spawned any more, and wf_group_wait() returns -ECANCELED if no child
 * failed. The parent itself is not cancelled.
 * @return 0; -EINVAL not an open group; -EPERM outside a runtime thread.
 * Any fiber or timer callback; never blocks. */
int wf_group_cancel(wf_group_t *g);

/** Leave the group: wait until every child has ended (TaskGroup's
 * __aexit__), give back the group's references, and report the failures.
 * @param failures, cap  room for up to @p cap failures (NULL if 0), in the
 *                  order the children failed; each names its child (id,
 *                  arg, name) whether or not the caller kept a handle.
 * @return the number of failed children (may exceed @p cap) when any
 *   failed; else 0, or -ECANCELED if the parent was cancelled from outside
 *   or the group was cancelled (wf_group_cancel), or -ETIMEDOUT if an
 *   enclosing timeout scope expired. On all of these the group is finished.
 *   -EINVAL  not an open group, NULL @p failures with cap > 0, or the
 *            caller is not the parent (nothing changes);
 *   -EPERM   not a fiber.
 * Fiber only (the parent); blocks, and once it has cancelled the children
 * (failure, cancellation, timeout) it waits for them without interruption. */
int wf_group_wait(wf_group_t *g, wf_group_failure_t *failures, size_t cap);

/** @} */

/** @defgroup future Futures
 *
 * A future is a one-shot outcome (status, result) that any thread can
 * complete: a fiber, a timer callback, the poller, or a plain pthread that
 * is not part of the runtime. Fibers wait for it with a deadline (parking,
 * cancellation-aware); plain threads may block on it too. Futures are
 * reference counted: every party that may touch one (the waiters and the
 * completer) holds a reference, so whoever finishes last frees it. Using a
 * future after giving back one's last reference is undefined, like free().
 * @{ */

/** A future (opaque). */
typedef struct wf_future wf_future_t;

/** Create a pending future with one reference. Any thread.
 * @return 0; -EINVAL NULL @p out; -ENOMEM. Never blocks. */
int wf_future_create(wf_future_t **out);

/** Take another reference. Any thread. @return 0; -EINVAL NULL or not a
 * live future. */
int wf_future_ref(wf_future_t *f);

/** Give back a reference; the last one frees the future. Any thread.
 * @return 0; -EINVAL NULL or not a live future. */
int wf_future_release(wf_future_t *f);

/** Complete the future (set_result when @p status is 0, set_exception when
 * negative), waking every waiter. Any thread, including non-runtime
 * threads. @return 0; -EALREADY it was already completed or cancelled
 * (asyncio's InvalidStateError; nothing changes); -EINVAL NULL, not a live
 * future, or a positive @p status. Never blocks. */
int wf_future_set(wf_future_t *f, int status, void *result);

/** Cancel the future (Future.cancel): complete it with -ECANCELED.
 * @return 0; -EALREADY already completed; -EINVAL. Any thread. */
int wf_future_cancel(wf_future_t *f);

/** Wait for the future's outcome (await fut / fut.result(timeout)). A
 * waiter's cancellation ends its own wait with -ECANCELED and does not
 * cancel the future (call wf_future_cancel() for that).
 * @param deadline  WF_FOREVER, or when to give up (0: poll).
 * @return 0 with *status / *result (either may be NULL): the outcome,
 *   -ECANCELED in *status if the future was cancelled;
 *   -ETIMEDOUT  the deadline (or an enclosing timeout scope's) passed;
 *   -ECANCELED  the waiting fiber was cancelled;
 *   -EINVAL     NULL or not a live future, bad deadline;
 *   -EPERM      a runtime thread outside a fiber (a worker's scheduler, a
 *               timer callback, the poller) must not block.
 * In a fiber it parks; in a non-runtime thread it blocks the thread. */
int wf_future_wait(wf_future_t *f, int64_t deadline, int *status, void **result);

/** Whether the future is complete (Future.done). @return 1 or 0; -EINVAL.
 * Any thread. */
int wf_future_done(wf_future_t *f);

/** @} */

/** @defgroup threadsafe Entering the runtime from other threads
 *
 * A plain thread (not a worker or the poller of a runtime) reaches a
 * runtime through a handle obtained inside it with wf_runtime_get().
 * Handles are numbers checked on every use, never pointers: a handle given
 * back, never valid, or whose runtime has finished is answered with an
 * error, never a crash.
 *
 * Lifetime: a handle works while the runtime's main task runs. Once main
 * has returned (wf_run is shutting down) or the runtime is gone, every call
 * with the handle fails with -ESHUTDOWN, but the handle stays valid until
 * given back with wf_runtime_release(), which works at any time, before or
 * after wf_run() returns. A submission accepted before the shutdown began
 * keeps the runtime from finishing until it has been handed its task:
 * such a task starts cancelled if shutdown has begun (its `drop` then
 * runs), and a thread blocked in wf_run_threadsafe() is answered when its
 * task ends (-ECANCELED in *status if shutdown cancelled it).
 * @{ */

/** A handle on a running runtime, for other threads. 0 is never valid. */
typedef uint64_t wf_runtime_t;

/** Get a handle on the caller's runtime. @return 0; -EINVAL NULL @p out;
 * -ESHUTDOWN the main task has already returned; -ENOMEM; -EPERM outside a
 * runtime thread. Never blocks. */
int wf_runtime_get(wf_runtime_t *out);

/** Give back a handle. Any thread, any time (also after wf_run returned).
 * @return 0; -EINVAL not a live handle (never valid, or already given
 * back). Never blocks for long. */
int wf_runtime_release(wf_runtime_t rt);

/** From a thread outside the runtime, run @p fn(@p arg) as a task and
 * block until it ends (asyncio.run_coroutine_threadsafe(...).result()). If
 * @p deadline passes first, the task is cancelled and awaited (as
 * wf_wait_for), so @p arg is no longer in use when this returns.
 * @return 0 with the task's *status / *result (either may be NULL);
 *   -ETIMEDOUT  the deadline passed and the task ended cancelled (its
 *               outcome is still written);
 *   -ESHUTDOWN  the runtime is shutting down or gone: nothing ran;
 *   -EINVAL     not a live handle, NULL @p fn, bad deadline;
 *   -ENOMEM;
 *   -EPERM      called from a runtime thread (a fiber would block its
 *               worker: spawn and join instead).
 * Blocks the calling thread. */
int wf_run_threadsafe(wf_runtime_t rt, wf_fn fn, void *arg, int64_t deadline, int *status, void **result);

/** From any thread, start @p fn(@p arg) as a detached task and return at
 * once (loop.call_soon_threadsafe). If the task is cancelled before it runs
 * (shutdown), @p drop(@p arg) is called instead (when not NULL), so exactly
 * one of fn and drop gets @p arg.
 * @return 0; -ESHUTDOWN the runtime is shutting down or gone (neither is
 * called); -EINVAL not a live handle, NULL @p fn; -ENOMEM; -EPERM a thread
 * of another runtime. Never blocks for long. */
int wf_call_soon_threadsafe(wf_runtime_t rt, wf_fn fn, void *arg, void (*drop)(void *arg));

/** @} */

#ifdef __cplusplus
}
#endif
#endif
