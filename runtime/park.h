/* park.h - one way to wait.
 *
 * Everything a task waits for (a task to end, a timer, an fd, and later
 * locks, queues, futures) goes through this one mechanism, so deadlines and
 * cancellation work the same everywhere.
 *
 * THE PARK WORD. Each task has one 64-bit atomic word, task->park:
 *
 *   63 ............................ 8 |  7 |   6    |    5     |    4    | 3..0
 *   seq: the number of this wait       | 0  | SHIELD | NOCANCEL | PARKED  | reason
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
 *           fails and requeues the task. This closes the switch race (a
 *           wake-up that arrives while the fiber is still switching out)
 *           with the same single atomic: a task is never
 *           queued while it still runs on its stack, and never lost.
 *   NOCANCEL the wait ignores cancellation (used by runtime-internal waits).
 *   SHIELD  set with NOCANCEL for a wait inside a cleanup scope
 *           (timeout.c): it ignores cancellation like an internal wait but,
 *           unlike one, obeys the task's scope deadline (the cleanup
 *           scope's own bound).
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
 * it through the run queue hand-off or by reading the word. Cancellation is a
 * Dekker pair, seq_cst on both sides, between wf_cancel() (count the request,
 * then load the word) and the settle (the CAS that sets PARKED, then load the
 * count): "NO CANCEL IS LOST" below. So step 1 is a plain store and the
 * cancel check in step 3 only an early-out, and a park costs one locked
 * instruction of its own (the settle's CAS) besides the decider's.
 */
#ifndef WF_PARK_H
#define WF_PARK_H

#include "atomic.h"
#include "task.h"
#include <sched.h>
#include <stdint.h>

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
#define WF__PW_SHIELD 0x40ull
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

static inline uint64_t wf__pw_word(uint64_t seq, unsigned reason, uint64_t flags)
{
    return (seq << WF__PW_SEQ_SHIFT) | reason | flags;
}

/* Step 1. Owner (the task itself) only. Returns the new wait's seq.
 * Inline, as wf__park_decide: both are a few instructions on every park
 * and wake of every primitive. */
static inline uint64_t wf__park_begin(struct wf__task *self, unsigned flags)
{
    /* relaxed: only the owner writes a word that is not WAITING. */
    uint64_t w = atomic_load_explicit(&self->park, memory_order_relaxed);
    uint64_t seq = wf__pw_seq(w) + 1;
    uint64_t fl = 0;
    if (flags & WF__PARK_NOCANCEL)
        fl = WF__PW_NOCANCEL;
    else if (wf__unlikely(self->shield))
        fl = WF__PW_NOCANCEL | WF__PW_SHIELD; /* inside a cleanup scope */
    uint64_t nw = wf__pw_word(seq, WF__R_WAITING, fl);
    /* release, a plain store (no locked instruction): the owner's half of
     * the Dekker pair with cancellation is not this store but the settle's
     * seq_cst CAS (wf__park_settle, "NO CANCEL IS LOST"). Wakers find the
     * wait through a node published next under the list's lock, and the
     * park timer is armed later under the wheel's lock, so neither needs
     * more; release is for a canceller that reads WAITING here: it must
     * also see the owner's earlier wf_uncancel (wf__park_interrupt). */
    atomic_store_explicit(&self->park, nw, memory_order_release);
    return seq;
}

/* Try to end wait `seq` of `t` with `reason`. Any thread. The caller must
 * guarantee `t` stays allocated during the call (see WAKING above). */
static inline wf__decision wf__park_decide(struct wf__task *t, uint64_t seq, unsigned reason)
{
    uint64_t w = atomic_load_explicit(&t->park, memory_order_acquire);
    for (;;) {
        if (wf__pw_seq(w) != seq || wf__pw_reason(w) != WF__R_WAITING)
            return WF__DECIDE_LOST;
        if (reason == WF__R_CANCELLED && (w & WF__PW_NOCANCEL))
            return WF__DECIDE_LOST;
        uint64_t nw = wf__pw_word(seq, reason, w & (WF__PW_NOCANCEL | WF__PW_SHIELD)); /* PARKED cleared */
        /* acq_rel: release publishes what the decider wrote for the waiter
         * (a node's data, an outcome); acquire pairs with the scheduler's
         * release in settle, so a decider that finds PARKED sees the fiber's
         * saved context before it queues the task. A failed CAS (the
         * scheduler set PARKED meanwhile) retries with the new word. */
        if (atomic_compare_exchange_weak_explicit(&t->park, &w, nw, memory_order_acq_rel,
                                                  memory_order_acquire))
            return (w & WF__PW_PARKED) ? WF__DECIDED_PARKED : WF__DECIDED_RUNNING;
    }
}

/* Step 3. Owner only, in its fiber. deadline: WF_FOREVER, or absolute ns.
 * The task's timeout scope (task->scope_deadline) caps the deadline of any
 * cancellable wait. Returns WF__R_WOKEN, WF__R_TIMEDOUT, WF__R_EXPIRED (the
 * scope's deadline passed) or WF__R_CANCELLED. */
unsigned wf__park_commit(struct wf__task *self, uint64_t seq, int64_t deadline);

/* Step 3, handing the CPU to `target` instead of the scheduler. No
 * primitive uses it: it was kept for the rendezvous channel, which turned
 * out not to need it (runtime/sync/queue.c: a put or get there either
 * completes without parking or parks with nobody to hand the CPU to; the
 * partner it wakes lands in the next slot, and the direct switch of the
 * next park runs it, one switch either way). test_park's hand-off
 * ping-pong keeps it exercised. `target` is
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

/* The scheduler's half of the switch race, run on the worker's own stack
 * right after `t` switched out to wait `seq`... it does not need the seq: it
 * sets PARKED only if the word is still WAITING. It is also the owner's half
 * of the cancellation Dekker pair: a cancellable wait found with a request
 * pending once PARKED is set is decided CANCELLED here. Returns true if the
 * task is now parked (someone else will queue it), false if its wait was
 * decided meanwhile, or here, and the caller must requeue it. Inline: it
 * runs on every park, in fiber.c's finish_switch.
 *
 * NO CANCEL IS LOST. A canceller (wf_cancel, the combinators, shutdown)
 * increments t->cancel (C, a seq_cst RMW), then loads the park word (L, a
 * seq_cst load, in wf__park_interrupt) and decides the wait CANCELLED if it
 * finds it WAITING. The owner's half of this Dekker pair is here, on the
 * far side of the switch: the CAS that sets PARKED (P, seq_cst), then a
 * load of t->cancel (R, seq_cst). All four are in the single total order S
 * of seq_cst operations, which agrees with program order: P before R, C
 * before L. Suppose R misses the increment, reading a value older than C's
 * in t->cancel's modification order: then R is coherence-ordered before C,
 * so R precedes C in S, and P < R < C < L in S. P modifies the park word
 * and precedes the seq_cst load L in S, so L cannot read a value older than
 * P's (L would be coherence-ordered before P and precede it in S): L reads
 * this wait's WAITING|PARKED, or a decision made after P. In the first case
 * the canceller decides the wait, finds PARKED and queues the task; in the
 * second the wait has ended anyway. So the settle sees the request, or the
 * canceller sees the parked wait, or both (and one CAS wins): a cancellable
 * wait never sleeps through a pending request.
 *   This is why wf__park_begin's store of WAITING needs no fence (it was a
 * seq_cst store, a locked instruction): P is an RMW on the same word, so it
 * reads that store or a decision after it. The owner's check of the count
 * in commit, before it switches, is now only an early-out that saves the
 * switch; the settle runs for every wait that switches out (fiber.c,
 * finish_switch: after wf__fiber_switch_out, and on the hand-off target's
 * side after wf__fiber_switch_to).
 *
 * LIFETIME. Once P has published PARKED, a decider on another thread may
 * queue the task, another worker may resume it, and the task may end and be
 * freed: R, and a decision after it, would touch freed memory. So the
 * settler raises t->settling before P and lowers it (release) after its
 * last access, and the task, once resumed, waits in wf__park_settled()
 * until it reads 0 (acquire) before it does anything else. The raise is sequenced before P
 * and every resumption happens after P (the decider that queued the task
 * read P's value with its acquire CAS, or the settler queued it itself), so
 * the resumed task reads the raise or the lowering: the settler's accesses
 * happen before everything the task does next, its end included. The
 * window is a few instructions on the settler's thread, and one wait has
 * one settler: the task cannot park again before it has passed
 * wf__park_settled(). */
static inline bool wf__park_settle(struct wf__task *t)
{
    /* relaxed: the word's flags are the owner's, and the owner is switched
     * out; a decision made meanwhile shows in the CAS below. */
    uint64_t w = atomic_load_explicit(&t->park, memory_order_relaxed);
    bool cancellable = !(w & WF__PW_NOCANCEL);
    /* relaxed: P below is a release and orders it first; see LIFETIME. */
    if (cancellable)
        atomic_store_explicit(&t->settling, 1, memory_order_relaxed);
    for (;;) {
        if (wf__pw_reason(w) != WF__R_WAITING) {
            /* Decided while it switched: it is ours to queue, and nobody can
             * resume it before we do (relaxed: we queue it after this). */
            atomic_store_explicit(&t->settling, 0, memory_order_relaxed);
            return false;
        }
        /* seq_cst: P in "NO CANCEL IS LOST" above. It is also a release:
         * the fiber is off its stack and t->ctx is saved; a decider that
         * sees PARKED (acquire) may queue it for any worker. */
        if (atomic_compare_exchange_weak_explicit(&t->park, &w, w | WF__PW_PARKED, memory_order_seq_cst,
                                                  memory_order_relaxed))
            break;
    }
    if (!cancellable)
        return true;
    bool parked = true;
    /* seq_cst: R in "NO CANCEL IS LOST". If a request is pending we decide
     * the wait ourselves; winning a PARKED word makes the task ours to
     * queue (the caller requeues it, as for a wait decided during the
     * switch). Losing means another decider won after P and queues it.
     * The owner withdraws requests only itself, never during a wait, so a
     * count above 0 here is a request this wait must honour. */
    if (atomic_load_explicit(&t->cancel, memory_order_seq_cst) > 0)
        parked = wf__park_decide(t, wf__pw_seq(w), WF__R_CANCELLED) != WF__DECIDED_PARKED;
    /* release: our last access to t; see LIFETIME. */
    atomic_store_explicit(&t->settling, 0, memory_order_release);
    return parked;
}

/* The resumed owner's half of LIFETIME above (park.c's commit, right after
 * the switch): wait until the settler of the wait it just came back from no
 * longer touches the record. */
static inline void wf__park_settled(struct wf__task *self)
{
    /* acquire: pairs with the settler's release store of 0. */
    for (unsigned n = 0; atomic_load_explicit(&self->settling, memory_order_acquire); n++) {
        if (n < 128)
            wf__cpu_relax();
        else
            sched_yield(); /* the settler's thread was preempted */
    }
}

/* Cancellation's half: called by wf_cancel() after counting the request. */
void wf__park_interrupt(struct wf__task *t);

#endif
