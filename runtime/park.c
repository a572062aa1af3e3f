/* park.c - the wait mechanism; the protocol is described in park.h. */
#include "park.h"
#include "runtime.h"

#include <errno.h>
#include <weft/time.h>

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
 * (wf__park_commit_handoff), or NULL to switch to the scheduler. Inlined
 * into both: a call less on every park. */
static inline __attribute__((always_inline)) unsigned commit(wf__task *self, uint64_t seq, int64_t deadline,
                                                             wf__task *target)
{
    uint64_t w = atomic_load_explicit(&self->park, memory_order_relaxed);
    wf__assert(wf__pw_seq(w) == seq, "park_commit follows its own park_begin");
    bool cancellable = !(w & WF__PW_NOCANCEL);
    /* Runtime-internal waits (NOCANCEL without SHIELD) obey neither
     * cancellation nor scopes; a shielded one obeys its scopes. */
    bool scoped = cancellable || (w & WF__PW_SHIELD);

    /* The timeout scope caps every scoped wait. */
    bool by_scope = false;
    if (scoped && self->scope_deadline != INT64_MAX &&
        (deadline < 0 || self->scope_deadline < deadline)) {
        deadline = self->scope_deadline;
        by_scope = true;
    }

    unsigned r;
    bool armed = false;
    struct wf__timer tm; /* lives in this frame, which outlasts the wait */
    /* 1. A pending cancellation ends the wait before it starts. relaxed:
     * an early-out only, which saves a switch when the count is already
     * visible (always so when the task cancelled itself); a cancel this
     * load misses is caught by the settle (wf__park_settle). */
    if (cancellable && atomic_load_explicit(&self->cancel, memory_order_relaxed) > 0) {
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
        wf__park_settled(self);
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
    /* seq_cst: L, the canceller's half of the Dekker pair with the settle
     * (its count increment C comes first; see "NO CANCEL IS LOST" in park.h,
     * above wf__park_settle). */
    uint64_t w = atomic_load_explicit(&t->park, memory_order_seq_cst);
    if (wf__pw_reason(w) != WF__R_WAITING || (w & WF__PW_NOCANCEL))
        return;
    /* Is a request still pending? Ours may already have been seen and
     * withdrawn: the owner can notice the count (commit's early-out) and
     * wf_uncancel it, then begin the wait we have just read, between our
     * increment and our load; ending that wait would deliver one request
     * twice. The owner withdraws requests only itself, never during a wait,
     * and the WAITING store (wf__park_begin) and PARKED CAS (settle) are
     * releases that the load above acquires: every withdrawal made before
     * this wait began happens before this load. So 0 means every request so
     * far was consumed before the wait; more than 0 means one is pending and
     * stays so until the wait ends, which it must then do cancelled.
     * acquire: for that happens-before edge's sake, on the count's side. */
    if (atomic_load_explicit(&t->cancel, memory_order_acquire) == 0)
        return;
    if (wf__park_decide(t, wf__pw_seq(w), WF__R_CANCELLED) == WF__DECIDED_PARKED)
        wf__ready(t);
}
