/* park.c - the wait mechanism; the protocol is described in park.h. */
#include "park.h"
#include "runtime.h"

#include <errno.h>
#include <weft/time.h>

static inline uint64_t word(uint64_t seq, unsigned reason, uint64_t flags)
{
    return (seq << WF__PW_SEQ_SHIFT) | reason | flags;
}

uint64_t wf__park_begin(wf__task *self, unsigned flags)
{
    /* relaxed: only the owner writes a word that is not WAITING. */
    uint64_t w = atomic_load_explicit(&self->park, memory_order_relaxed);
    uint64_t seq = wf__pw_seq(w) + 1;
    uint64_t nw = word(seq, WF__R_WAITING, (flags & WF__PARK_NOCANCEL) ? WF__PW_NOCANCEL : 0);
    /* seq_cst: the owner's half of the Dekker pair with wf_cancel (store
     * WAITING here, load the cancel count in commit). */
    atomic_store_explicit(&self->park, nw, memory_order_seq_cst);
    return seq;
}

wf__decision wf__park_decide(wf__task *t, uint64_t seq, unsigned reason)
{
    uint64_t w = atomic_load_explicit(&t->park, memory_order_acquire);
    for (;;) {
        if (wf__pw_seq(w) != seq || wf__pw_reason(w) != WF__R_WAITING)
            return WF__DECIDE_LOST;
        if (reason == WF__R_CANCELLED && (w & WF__PW_NOCANCEL))
            return WF__DECIDE_LOST;
        uint64_t nw = word(seq, reason, w & WF__PW_NOCANCEL); /* PARKED cleared */
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

bool wf__park_settle(wf__task *t)
{
    uint64_t w = atomic_load_explicit(&t->park, memory_order_relaxed);
    for (;;) {
        if (wf__pw_reason(w) != WF__R_WAITING)
            return false;
        /* release: the fiber is off its stack and t->ctx is saved; a decider
         * that sees PARKED (acquire) may queue it for any worker. */
        if (atomic_compare_exchange_weak_explicit(&t->park, &w, w | WF__PW_PARKED, memory_order_release,
                                                  memory_order_relaxed))
            return true;
    }
}

/* The owner decides its own wait (cancel pending, deadline already past).
 * The word cannot be PARKED: the owner is running. Returns the reason the
 * wait ended with, ours or a decider's that got there first (that decider
 * saw no PARKED bit, so it will not queue us: we simply go on). */
static unsigned self_decide(wf__task *self, uint64_t seq, unsigned reason)
{
    wf__decision d = wf__park_decide(self, seq, reason);
    if (d != WF__DECIDE_LOST)
        return reason;
    return wf__pw_reason(atomic_load_explicit(&self->park, memory_order_acquire));
}

/* The common body of the two commits. `target`: a task to hand the CPU to
 * (wf__park_commit_handoff), or NULL to switch to the scheduler. */
static unsigned commit(wf__task *self, uint64_t seq, int64_t deadline, wf__task *target)
{
    uint64_t w = atomic_load_explicit(&self->park, memory_order_relaxed);
    wf__assert(wf__pw_seq(w) == seq, "park_commit follows its own park_begin");
    bool cancellable = !(w & WF__PW_NOCANCEL);

    /* The timeout scope caps every cancellable wait. */
    bool by_scope = false;
    if (cancellable && self->scope_deadline != INT64_MAX &&
        (deadline < 0 || self->scope_deadline < deadline)) {
        deadline = self->scope_deadline;
        by_scope = true;
    }

    unsigned r;
    bool armed = false;
    struct wf__timer tm; /* lives in this frame, which outlasts the wait */
    /* 1. A pending cancellation ends the wait before it starts. seq_cst:
     * the second half of the Dekker pair begun in wf__park_begin. */
    if (cancellable && atomic_load_explicit(&self->cancel, memory_order_seq_cst) > 0) {
        r = self_decide(self, seq, WF__R_CANCELLED);
        goto decided;
    }

    /* 2. The deadline. */
    if (deadline >= 0) {
        int64_t now = wf_now();
        if (deadline <= now) {
            r = self_decide(self, seq, WF__R_TIMEDOUT);
            goto decided;
        }
        wf__worker *wk = wf__tls_worker();
        wf__timer_arm_park(&wk->timers, &tm, self, seq, deadline, now);
        armed = true;
    }

    /* 3. Switch away unless someone already decided (then nobody queues
     * us: the decider saw no PARKED bit). The scheduler, or the hand-off
     * target, settles the park after the switch and requeues us if it was
     * decided meanwhile. */
    if (wf__pw_reason(atomic_load_explicit(&self->park, memory_order_acquire)) == WF__R_WAITING) {
        if (target && wf__fiber_can_switch_to(target)) {
            wf__fiber_switch_to(self, target);
            target = NULL;
        } else {
            if (target)
                wf__ready(target);
            target = NULL;
            wf__fiber_switch_out(self, WF__ACT_PARK);
        }
    }

    /* 4. Decided and running again. Disarming takes the wheel's lock, so a
     * timer firing concurrently is finished with us when it returns. */
    if (armed)
        wf__timer_disarm_park(&tm);
    r = wf__pw_reason(atomic_load_explicit(&self->park, memory_order_acquire));
decided:
    /* A target we did not switch to is still ours to queue. */
    if (target)
        wf__ready(target);
    wf__assert(r == WF__R_WOKEN || r == WF__R_TIMEDOUT || r == WF__R_CANCELLED, "a park returns decided");
    return r == WF__R_TIMEDOUT && by_scope ? WF__R_EXPIRED : r;
}

unsigned wf__park_commit(wf__task *self, uint64_t seq, int64_t deadline)
{
    return commit(self, seq, deadline, NULL);
}

unsigned wf__park_commit_handoff(wf__task *self, uint64_t seq, int64_t deadline, wf__task *target)
{
    return commit(self, seq, deadline, target);
}

int wf__park_errno(unsigned reason)
{
    switch (reason) {
    case WF__R_WOKEN:
        return 0;
    case WF__R_CANCELLED:
        return -ECANCELED;
    default:
        return -ETIMEDOUT;
    }
}

void wf__park_interrupt(wf__task *t)
{
    /* seq_cst: the canceller's half of the Dekker pair (its count increment
     * comes first). */
    uint64_t w = atomic_load_explicit(&t->park, memory_order_seq_cst);
    if (wf__pw_reason(w) != WF__R_WAITING || (w & WF__PW_NOCANCEL))
        return;
    if (wf__park_decide(t, wf__pw_seq(w), WF__R_CANCELLED) == WF__DECIDED_PARKED)
        wf__ready(t);
}
