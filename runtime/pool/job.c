/* job.c - waiting for a job, giving up on it, completing it (job.h). */
#include "job.h"
#include "park.h"
#include "pool.h"
#include "runtime.h"

#include <errno.h>
#include <sched.h>
#include <weft/time.h>

void wf__job_init(wf__job *j, void (*run)(wf__job *), void (*abandon)(wf__job *))
{
    wf__list_init(&j->link);
    atomic_init(&j->state, WF__JOB_QUEUED);
    wf__spin_init(&j->lock);
    j->abandoned = false;
    j->task = NULL;
    j->seq = 0;
    j->crew = NULL;
    j->err = 0;
    j->status = 0;
    j->result = NULL;
    j->run = run;
    j->abandon = abandon;
}

void wf__job_complete(wf__job *j)
{
    wf__spin_lock(&j->lock);
    /* release: the outcome (written by run) before DONE, for a fiber that
     * spins on the state without the lock (it takes the lock afterwards
     * all the same, see finish()). */
    atomic_store_explicit(&j->state, WF__JOB_DONE, memory_order_release);
    if (j->abandoned) {
        wf__spin_unlock(&j->lock);
        j->abandon(j); /* ours now: the fiber has gone */
        return;
    }
    wf__task *t = j->task;
    wf__decision d = WF__DECIDE_LOST;
    /* No waiter yet: the fiber is spinning or about to register, and will
     * find DONE under the lock. Otherwise decide its wait while the lock
     * keeps it from leaving (job.h, COMPLETION). */
    if (t)
        d = wf__park_decide(t, j->seq, WF__R_WOKEN);
    wf__spin_unlock(&j->lock);
    if (d == WF__DECIDED_PARKED)
        wf__ready(t); /* it cannot run, let alone end, before this */
}

/* The fiber is done with the protocol: wait until the completer has left
 * j->lock (it may still be unlocking after a decision this fiber already
 * saw), then hand back the outcome. */
static int finish(wf__job *j)
{
    wf__spin_lock(&j->lock);
    wf__spin_unlock(&j->lock);
    return j->err;
}

bool wf__job_may_spin(wf__task *self)
{
    wf__worker *w = wf__tls_worker();
    if (!w)
        return false;
    return wf__runq_maybe_empty(&w->runq) && wf__inject_maybe_empty(&w->pinned) &&
           wf__inject_maybe_empty(&self->rt->inject);
}

static void spin_for(wf__task *self, wf__job *j)
{
    int64_t start = 0;
    for (unsigned i = 0;; i++) {
        /* acquire: pairs with wf__job_complete's release of DONE. */
        if (atomic_load_explicit(&j->state, memory_order_acquire) == WF__JOB_DONE)
            return;
        if ((i & 15) == 0) {
            if (!wf__job_may_spin(self))
                return;
            int64_t now = wf_now();
            if (!start)
                start = now;
            else if (now - start >= WF__JOB_SPIN_NS)
                return;
            /* Past the first microseconds, let the pool thread have this
             * CPU if it is waiting for it (see SPINNING). */
            if (now - start >= WF__JOB_SPIN_YIELD_NS)
                sched_yield();
        }
        wf__cpu_relax();
    }
}

int wf__job_wait(wf__task *self, wf__crew *crew, wf__job *j, int64_t deadline, int mode)
{
    int r = wf__crew_submit(crew, j);
    if (r < 0)
        return r;
    spin_for(self, j);

    wf__spin_lock(&j->lock);
    if (atomic_load_explicit(&j->state, memory_order_relaxed) == WF__JOB_DONE) {
        wf__spin_unlock(&j->lock);
        return j->err;
    }
    /* Publish the waiter under the lock: the completer reads it there. */
    uint64_t seq = wf__park_begin(self, mode == WF__JOB_WHOLE ? WF__PARK_NOCANCEL : 0);
    if (mode == WF__JOB_WHOLE)
        deadline = WF_FOREVER;
    j->task = self;
    j->seq = seq;
    wf__spin_unlock(&j->lock);

    unsigned why = wf__park_commit(self, seq, deadline);
    if (why == WF__R_WOKEN)
        return finish(j);

    /* Cancelled or timed out (never in WHOLE mode: the wait ignores both). */
    wf__assert(mode != WF__JOB_WHOLE, "an uninterruptible job wait ends by its completion");
    int e = wf__park_errno(why);
    if (wf__crew_withdraw(crew, j)) {
        /* It never started, and now never will: the completer never
         * touches it. */
        j->err = e;
        j->status = e;
        j->result = NULL;
        if (mode == WF__JOB_ABANDON)
            j->abandon(j);
        return e;
    }
    wf__spin_lock(&j->lock);
    if (atomic_load_explicit(&j->state, memory_order_relaxed) == WF__JOB_DONE) {
        /* The call ended first: its outcome is returned (nothing is lost),
         * and the cancellation stays pending for the next wait. */
        wf__spin_unlock(&j->lock);
        return j->err;
    }
    if (mode == WF__JOB_ABANDON) {
        j->abandoned = true;
        j->task = NULL;
        wf__spin_unlock(&j->lock);
        return e;
    }
    /* FINISH: the call writes into the caller's memory; wait for it to the
     * end, holding off cancellation and deadlines (they have been seen: the
     * caller gets the call's outcome, and the cancellation stays pending). */
    seq = wf__park_begin(self, WF__PARK_NOCANCEL);
    j->seq = seq;
    wf__spin_unlock(&j->lock);
    why = wf__park_commit(self, seq, WF_FOREVER);
    wf__assert(why == WF__R_WOKEN, "an uninterruptible job wait ends by its completion");
    return finish(j);
}
