/* park.h - one way to wait.
 *
 * Everything a task waits for (a task to end, a timer, an fd, and later
 * locks, queues, futures) goes through this one mechanism, so deadlines and
 * cancellation work the same everywhere.
 *
 * THE PARK WORD. Each task has one 64-bit atomic word, task->park:
 *
 *   63 ............................ 8 | 7..6 |    5     |    4    | 3..0
 *   seq: the number of this wait       | 0    | NOCANCEL | PARKED  | reason
 *
 *   reason  IDLE (no wait), WAITING, or how the wait ended: WOKEN,
 *           TIMEDOUT, CANCELLED. It moves out of WAITING exactly once per
 *           seq, by one compare-and-swap: whoever makes that CAS "decides"
 *           the wait; every other party's CAS fails and it does nothing.
 *   PARKED  set by the scheduler once the task's fiber has completely
 *           switched out (its stack is free to be resumed anywhere). A
 *           decider that sees PARKED in the word it replaced owns the task
 *           and must make it runnable; one that did not see it leaves that
 *           to the scheduler, whose own CAS (WAITING -> WAITING|PARKED) then
 *           fails and requeues the task. This is the switch race of
 *           DESIGN.md closed with the same single atomic: a task is never
 *           queued while it still runs on its stack, and never lost.
 *   NOCANCEL the wait ignores cancellation (used by runtime-internal waits).
 *   seq     incremented at each wait. Wait-list nodes and the park timer
 *           remember the seq they were made for, so a decider holding a
 *           stale node or a late timer fails its CAS instead of waking a
 *           later wait (no ABA).
 *
 * A WAIT, step by step (see task.c's join for a complete example):
 *  1. seq = wf__park_begin(self, flags): the word becomes (seq, WAITING).
 *  2. Publish a node {task, seq} where wakers will find it (a wait list,
 *     under that list's lock).
 *  3. r = wf__park_commit(self, seq, deadline): honours a pending cancel,
 *     arms the deadline, switches away unless the wait is already decided,
 *     and returns the reason once decided and resumed.
 *  4. If r is not WOKEN, take the list's lock and unlink the node if it is
 *     still there.
 *
 * WAKING. A waker takes the list's lock, unlinks a node and calls
 * wf__park_decide(node->task, node->seq, WOKEN) while still holding the lock
 * (the node lives on the waiting fiber's stack, and the lock is what keeps
 * that fiber, and its task record, from going away: step 4 takes it). If the
 * result is WF__DECIDED_PARKED the waker must hand the task to
 * wf__ready() or a batch, which it may do after unlocking: a parked task
 * cannot run until someone queues it.
 *
 * MEMORY ORDER. The deciding CAS is acq_rel: it releases whatever the decider
 * wrote for the waiter (an item, an outcome) and the waiter's resume acquires
 * it through the run queue hand-off or by reading the word. The cancel check
 * in step 3 and wf_cancel() form a Dekker pair (store own flag, then load the
 * other's) and are seq_cst on both sides.
 */
#ifndef WF_PARK_H
#define WF_PARK_H

#include "atomic.h"
#include <stdint.h>

struct wf__task;

enum {
    WF__R_IDLE = 0,
    WF__R_WAITING = 1,
    WF__R_WOKEN = 2,
    WF__R_TIMEDOUT = 3,
    WF__R_CANCELLED = 4,
    /* Returned by the commit functions only (never stored in the word): the
     * wait timed out at the deadline of the task's timeout scope
     * (task->scope_deadline), not at its own. */
    WF__R_EXPIRED = 5,
};

#define WF__PW_REASON 0xfull
#define WF__PW_PARKED 0x10ull
#define WF__PW_NOCANCEL 0x20ull
#define WF__PW_SEQ_SHIFT 8

/* wf__park_begin flags */
#define WF__PARK_NOCANCEL 1u

/* Results of wf__park_decide. */
typedef enum {
    WF__DECIDE_LOST = 0,    /* someone else decided (or stale seq): do nothing */
    WF__DECIDED_RUNNING,    /* decided before the task switched out: nothing more to do */
    WF__DECIDED_PARKED,     /* decided a parked task: caller must make it runnable */
} wf__decision;

static inline uint64_t wf__pw_seq(uint64_t w)
{
    return w >> WF__PW_SEQ_SHIFT;
}

static inline unsigned wf__pw_reason(uint64_t w)
{
    return (unsigned)(w & WF__PW_REASON);
}

/* Step 1. Owner (the task itself) only. Returns the new wait's seq. */
uint64_t wf__park_begin(struct wf__task *self, unsigned flags);

/* Step 3. Owner only, in its fiber. deadline: WF_FOREVER, or absolute ns.
 * The task's timeout scope (task->scope_deadline) caps the deadline of any
 * cancellable wait. Returns WF__R_WOKEN, WF__R_TIMEDOUT, WF__R_EXPIRED (the
 * scope's deadline passed) or WF__R_CANCELLED. */
unsigned wf__park_commit(struct wf__task *self, uint64_t seq, int64_t deadline);

/* Step 3, handing the CPU to `target` instead of the scheduler: `target` is
 * a task whose wait the caller has just decided with WF__DECIDED_PARKED (so
 * the caller is the one that must make it runnable). If it can run on this
 * worker, the fiber switches straight to it (no run-queue trip: generators
 * and other strict hand-offs); otherwise it is queued with wf__ready and the
 * caller parks as usual. Either way the caller has discharged its duty to
 * queue `target`, even if its own wait ends before it parks. */
unsigned wf__park_commit_handoff(struct wf__task *self, uint64_t seq, int64_t deadline,
                                 struct wf__task *target);

/* The usual mapping of a commit result to a return code: 0, -ETIMEDOUT
 * (own deadline or scope), -ECANCELED. */
int wf__park_errno(unsigned reason);

/* Try to end wait `seq` of `t` with `reason`. Any thread. The caller must
 * guarantee `t` stays allocated during the call (see WAKING above). */
wf__decision wf__park_decide(struct wf__task *t, uint64_t seq, unsigned reason);

/* The scheduler's half of the switch race, run on the worker's own stack
 * right after `t` switched out to wait `seq`... it does not need the seq: it
 * sets PARKED only if the word is still WAITING. Returns true if the task is
 * now parked, false if it was decided meanwhile and must be requeued. */
bool wf__park_settle(struct wf__task *t);

/* Cancellation's half: called by wf_cancel() after counting the request. */
void wf__park_interrupt(struct wf__task *t);

#endif
