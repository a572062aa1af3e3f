/* cancel.c - cancellation details (Task.cancel(msg), Task.cancelled()) and
 * shield (asyncio.shield).
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
