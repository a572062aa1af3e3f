/* gather.c - wf_gather (asyncio.gather), on the watch (combo.h).
 *
 * One call, step by step:
 *  1. Claim one handle per entry (handle.h): all or nothing, so nothing
 *     is consumed or changed if one is dead or already consumed.
 *  2. Arm a watch over the tasks and park until the mode's condition holds:
 *     all ended (collect), or all ended / one failed (fail fast).
 *  3. If the wait ended otherwise (cancelled, deadline, scope), or a task
 *     failed and the caller asked for it, cancel every task that has not
 *     ended and wait, uninterruptibly, until they all have.
 *  4. Disarm, report the outcomes, and complete the claims (the handles
 *     are consumed): tasks still running (fail fast) are thereby detached.
 */
#include "combo.h"

/* Cancel every watched task that has not ended. */
static void cancel_rest(wf__watch *w, const char *msg)
{
    for (uint32_t i = 0; i < w->n; i++) {
        wf__spin_lock(&w->lock);
        bool fired = w->fired[i];
        wf__spin_unlock(&w->lock);
        if (!fired)
            wf__task_cancel(w->tasks[i], msg); /* alive: we hold a reference */
    }
}

int wf_gather(const wf_task_t *ids, size_t n, unsigned flags, int64_t deadline, wf_outcome_t *out,
              size_t *first_failed)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if ((flags & ~(WF_GATHER_COLLECT | WF_GATHER_CANCEL_ON_FAILURE)) ||
        (flags == (WF_GATHER_COLLECT | WF_GATHER_CANCEL_ON_FAILURE)))
        return -EINVAL;
    if (deadline < WF_FOREVER || (n && !ids) || n >= UINT32_MAX)
        return -EINVAL;
    if (n == 0) {
        if (first_failed)
            *first_failed = SIZE_MAX;
        return 0;
    }

    /* Step 1: claim one handle per entry (a task listed twice needs two),
     * all or nothing. */
    wf__watch w;
    int err = wf__watch_take(&w, self, ids, n, true);
    if (err)
        return err;

    /* Step 2. */
    wf__watch_arm(&w);
    bool collect = flags & WF_GATHER_COLLECT;
    unsigned r = wf__watch_wait(&w, self, collect ? WF__WATCH_ALL : WF__WATCH_FAIL, deadline, 0);
    int ret = 0;
    if (r == WF__R_TIMEDOUT) {
        /* Our own deadline: if everything ended meanwhile, that wins. */
        wf__spin_lock(&w.lock);
        bool ended = w.ndone == w.n || (!collect && w.nfail > 0);
        wf__spin_unlock(&w.lock);
        if (ended)
            r = WF__R_WOKEN;
    }

    /* Step 3. */
    if (r != WF__R_WOKEN) {
        ret = r == WF__R_CANCELLED ? -ECANCELED : -ETIMEDOUT;
        const char *msg =
            r == WF__R_CANCELLED ? atomic_load_explicit(&self->cancel_msg, memory_order_acquire) : NULL;
        cancel_rest(&w, msg);
        wf__watch_wait(&w, self, WF__WATCH_ALL, WF_FOREVER, WF__PARK_NOCANCEL);
    } else if (!collect && (flags & WF_GATHER_CANCEL_ON_FAILURE)) {
        wf__spin_lock(&w.lock);
        bool failed = w.nfail > 0;
        wf__spin_unlock(&w.lock);
        if (failed) {
            cancel_rest(&w, NULL);
            wf__watch_wait(&w, self, WF__WATCH_ALL, WF_FOREVER, WF__PARK_NOCANCEL);
        }
    }

    /* Step 4. */
    wf__watch_disarm(&w);
    if (ret == 0)
        ret = collect ? (int)w.nfail : (w.nfail > 0);
    if (first_failed)
        *first_failed = w.first_fail == UINT32_MAX ? SIZE_MAX : w.first_fail;
    wf__watch_finish(&w, out);
    return ret;
}
