/* cancel.c - cancellation details (Task.cancel(msg), Task.cancelled()),
 * cancelling and joining a set of tasks (wf_cancel_join), and shield
 * (asyncio.shield).
 *
 * SHIELD. wf_join() already keeps the joiner's cancellation away from the
 * task it joins, but gather, wait_for and task groups cancel what they
 * await. A shield is a small task standing between them and the real one:
 * it joins the real task and ends with its outcome; when the shield is
 * cancelled, its join returns -ECANCELED, it gives back its reference and
 * ends with -ECANCELED at once, and the real task runs on untouched. This is
 * asyncio's outer future, made a task so that every combinator can take it.
 */
#include "combo.h"

int wf_cancel_msg(wf_task_t id, const char *msg)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    e = wf__task_cancel(t, msg) ? 0 : -EALREADY;
    wf__task_unpin(t);
    return e;
}

int wf_cancel_message(wf_task_t id, const char **msg)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    if (!msg)
        return -EINVAL;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    /* acquire: pairs with the canceller's release store of the message. */
    *msg = atomic_load_explicit(&t->cancel_msg, memory_order_acquire);
    wf__task_unpin(t);
    return 0;
}

int wf_task_cancelled(wf_task_t id)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    /* acquire: pairs with wf__task_finish's release (the status). */
    int r = atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE && t->status == -ECANCELED;
    wf__task_unpin(t);
    return r;
}

/* --- cancel_join ------------------------------------------------------------- */

/* One call, step by step (gather.c's steps, with the cancellation first):
 *  1. Claim one handle per entry, all or nothing: a dead handle (or a task
 *     named more often than the caller holds handles) fails the call
 *     before anything is cancelled or consumed.
 *  2. Arm a watch over the tasks, then make one cancellation request per
 *     entry (an ended task records none).
 *  3. Park, ignoring the caller's cancellation and its timeout scopes
 *     (WF__PARK_NOCANCEL), until every task has ended or `deadline` passes.
 *     Inside a cleanup scope (timeout.c) the park is the scope's kind
 *     instead (flags 0: park_begin makes it NOCANCEL | SHIELD), which
 *     ignores cancellation too but obeys the cleanup's own bound.
 *  4. Disarm, report, and complete the claims: every handle is consumed,
 *     and a task still running (the deadline passed) is thereby detached.
 */
int wf_cancel_join(const wf_task_t *ids, size_t n, const char *msg, int64_t deadline, wf_outcome_t *out)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if ((n && !ids) || n >= UINT32_MAX || deadline < WF_FOREVER)
        return -EINVAL;
    if (n == 0)
        return 0;

    /* Step 1. */
    wf__watch w;
    int err = wf__watch_take(&w, self, ids, n, true);
    if (err)
        return err;

    /* Step 2. The claims keep every record alive. */
    wf__watch_arm(&w);
    for (uint32_t i = 0; i < w.n; i++)
        wf__task_cancel(w.tasks[i], msg);

    /* Step 3. Whatever it returns (woken, our deadline, or a cleanup
     * scope's), disarm decides: a deadline that passed as the last task
     * ended still counts every task ended. */
    unsigned flags = self->shield ? 0 : WF__PARK_NOCANCEL;
    (void)wf__watch_wait(&w, self, WF__WATCH_ALL, deadline, flags);

    /* Step 4. Disarmed: fired, ndone and nexc are final. */
    wf__watch_disarm(&w);
    int ret = w.ndone == w.n ? (int)w.nexc : -ETIMEDOUT;
    wf__watch_finish(&w, out);
    return ret;
}

/* --- shield ------------------------------------------------------------------ */

static int shield_body(void *arg, void **result)
{
    wf_task_t inner = (wf_task_t)(uintptr_t)arg;
    int st = 0;
    void *rv = NULL;
    int r = wf_join(inner, &st, &rv);
    if (r == 0) {
        *result = rv;
        return st;
    }
    /* The shield was cancelled: the inner task runs on without us. */
    wf_detach(inner);
    return -ECANCELED;
}

/* The shield was cancelled before it ever ran. */
static void shield_drop(void *arg)
{
    wf_detach((wf_task_t)(uintptr_t)arg);
}

int wf_shield(wf_task_t id, wf_task_t *out)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    if (!out)
        return -EINVAL;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    _Static_assert(sizeof(wf_task_t) <= sizeof(uintptr_t), "a handle travels in a pointer");
    /* The shield's own handle (none to copy for a detached task naming
     * itself). */
    e = wf__task_handles(t) ? wf__task_ref(t) : -EINVAL;
    wf__task_unpin(t);
    if (e)
        return e;
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.name = "shield";
    o.drop = shield_drop;
    int r = wf_spawn(out, shield_body, (void *)(uintptr_t)id, &o);
    if (r < 0)
        wf__task_unref(t);
    return r;
}
