/* combo.h - what the combinators share: looking tasks up, cancelling with a
 * message, waiting for a task's end without consuming anything, and the
 * "watch", which learns the completions of a set of tasks.
 *
 * THE WATCH. gather, wait and as_completed wait for a set of tasks with one
 * park of the waiting task and no polling:
 *  1. wf__watch_init: one run-once completion hook per task (task.h).
 *  2. wf__watch_arm: register the hooks. A task that has already ended is
 *     recorded at once, in the order of the array.
 *  3. Each hook, on the thread that finishes its task, under the task's
 *     jlock: takes the watch's lock, appends the task's index to `order`
 *     (so the order is the order of completion), counts it, and if the
 *     waiter's condition (the watch's `mode`) now holds, decides the waiter
 *     WOKEN and readies it after dropping the watch's lock.
 *  4. wf__watch_wait: under the watch's lock, returns at once if the
 *     condition holds, else publishes itself as the waiter and parks (park.h);
 *     the condition is re-checked under the lock every time, so a
 *     completion can never be missed between the check and the park.
 *  5. wf__watch_disarm: remove the hooks that have not run. remove_hook
 *     takes the task's jlock, so once it returns, that hook is finished; a
 *     hook that has run marked `fired` under the watch's lock, and its last
 *     touch of the watch is that lock's release, which the final lock/unlock
 *     of disarm acquires. After disarm nobody refers to the watch's memory.
 * The caller holds a reference to every task from init to disarm (its own
 * handles, or references the combinator took), so hooks are only ever
 * registered and removed on live records.
 */
#ifndef WF_COMBO_H
#define WF_COMBO_H

#include "park.h"
#include "runtime.h"

#include <errno.h>
#include <stddef.h>
#include <weft/combinators.h>

/* --- tasks ----------------------------------------------------------------- */

/* Handles are pinned or claimed with wf__task_pin / wf__task_claim and
 * cancelled with wf__task_cancel (task.h). */

/* Wait, without being interruptible by cancellation or timeout scopes,
 * until `t` has ended. Consumes nothing. Fiber only (self). Used after a
 * combinator has cancelled `t` and must not return before it ends. */
void wf__await_end(wf__task *self, wf__task *t);

/* Whether a status counts as a failure / an exception (asyncio's
 * FIRST_EXCEPTION ignores cancelled tasks). */
static inline bool wf__status_failed(int st)
{
    return st != 0;
}
static inline bool wf__status_exception(int st)
{
    return st != 0 && st != -ECANCELED;
}

/* Pin (claim = false) or claim (true) the n tasks named by ids[] into
 * ts[], all or nothing: -EINVAL for a dead handle (or, when claiming, one
 * with fewer handles left than it appears in ids[]), -EDEADLK for the
 * caller itself, -EOVERFLOW (task.h); on failure nothing is taken. */
int wf__combo_take_all(wf__task *self, const wf_task_t *ids, size_t n, bool claim, wf__task **ts);

/* --- the watch ------------------------------------------------------------- */

enum {
    WF__WATCH_ALL = 0, /* every task has ended */
    WF__WATCH_ANY,     /* at least one has ended */
    WF__WATCH_FAIL,    /* one failed (status != 0), or all ended */
    WF__WATCH_EXC,     /* one raised (status not 0 nor -ECANCELED), or all ended */
    WF__WATCH_MORE,    /* ndone > `consumed` (as_completed: one not yet handed out) */
};

struct wf__watch;

typedef struct wf__watch_hook {
    wf__done_hook hook;
    struct wf__watch *w;
    uint32_t idx;
} wf__watch_hook;

typedef struct wf__watch {
    wf__spinlock lock;
    uint32_t n;
    /* Under lock: */
    uint32_t ndone, nfail, nexc;
    uint32_t consumed;   /* WF__WATCH_MORE: how many of `order` were taken */
    uint32_t first_fail; /* index of the first task seen failing, or UINT32_MAX */
    unsigned mode;
    wf__task *waiter; /* the parked waiter, or NULL */
    uint64_t seq;
    /* Arrays of n (one allocation): */
    wf__task **tasks;
    wf__watch_hook *hooks;
    uint32_t *order; /* indices, in order of completion */
    uint8_t *fired;  /* 1 once the task's completion is recorded */
} wf__watch;

/* Allocate the arrays for `n` tasks (the records, in `tasks`, are copied).
 * Returns 0 or -ENOMEM. */
int wf__watch_init(wf__watch *w, wf__task *const *tasks, size_t n);
/* What every combinator over handles starts with: pin (claim = false) or
 * claim (true) the n tasks named by ids[] (wf__combo_take_all) and init `w`
 * over them (step 1). All or nothing: returns 0, or wf__combo_take_all's
 * error or -ENOMEM with nothing taken and nothing of `w` to free. */
int wf__watch_take(wf__watch *w, wf__task *self, const wf_task_t *ids, size_t n, bool claim);
/* Register every hook (step 2). */
void wf__watch_arm(wf__watch *w);
/* Park until `mode` holds, the deadline passes, or (unless `flags` has
 * WF__PARK_NOCANCEL) the caller is cancelled. Returns WF__R_WOKEN when the
 * condition holds (possibly without parking), else the commit's reason. */
unsigned wf__watch_wait(wf__watch *w, wf__task *self, unsigned mode, int64_t deadline, unsigned flags);
/* Step 5. */
void wf__watch_disarm(wf__watch *w);
/* Free the arrays (after disarm). */
void wf__watch_free(wf__watch *w);
/* What a combinator that took its tasks with wf__watch_take ends with,
 * after disarm: write each task's outcome to out[i] when `out` is not NULL
 * (-EINPROGRESS and NULL for a task whose end was not recorded), give every
 * task back (a claimed handle is thereby consumed, and a task still running
 * detached) and free the arrays. */
void wf__watch_finish(wf__watch *w, wf_outcome_t *out);

#endif
