/* wait.c - wf_wait and wf_wait_split (asyncio.wait), wf_wait_for
 * (asyncio.wait_for) and the as_completed iterator, all on the watch
 * (combo.h) or on a join. */
#include "combo.h"

#include <stdlib.h>
#include <string.h>

/* --- wait ------------------------------------------------------------------ */

/* What wf_wait and wf_wait_split share: check the input, pin the tasks
 * (asyncio.wait leaves them to the caller: nothing is consumed), watch
 * them and wait for `when`. Returns 0 with `w` disarmed and the tasks
 * still pinned, so the caller may read the records (report, then call
 * wf__watch_finish); or an error, with nothing held and nothing written. */
static int wait_begin(const wf_task_t *ids, size_t n, int when, int64_t deadline, wf__watch *w)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (n == 0 || !ids || n >= UINT32_MAX || deadline < WF_FOREVER)
        return -EINVAL;
    unsigned mode;
    switch (when) {
    case WF_FIRST_COMPLETED:
        mode = WF__WATCH_ANY;
        break;
    case WF_FIRST_EXCEPTION:
        mode = WF__WATCH_EXC;
        break;
    case WF_ALL_COMPLETED:
        mode = WF__WATCH_ALL;
        break;
    default:
        return -EINVAL;
    }
    int err = wf__watch_take(w, self, ids, n, false);
    if (err)
        return err;
    wf__watch_arm(w);
    unsigned r = wf__watch_wait(w, self, mode, deadline, 0);
    wf__watch_disarm(w);
    if (r == WF__R_CANCELLED || r == WF__R_EXPIRED) {
        wf__watch_finish(w, NULL);
        return r == WF__R_CANCELLED ? -ECANCELED : -ETIMEDOUT;
    }
    /* Woken, or our own deadline: the caller reports what has ended. */
    return 0;
}

int wf_wait(const wf_task_t *ids, size_t n, int when, int64_t deadline, bool *done)
{
    wf__watch w;
    int err = wait_begin(ids, n, when, deadline, &w);
    if (err)
        return err;
    /* Disarmed: `fired` and `ndone` are final. */
    if (done)
        for (uint32_t i = 0; i < w.n; i++)
            done[i] = w.fired[i];
    int ret = (int)w.ndone;
    wf__watch_finish(&w, NULL);
    return ret;
}

int wf_wait_split(const wf_task_t *ids, size_t n, int when, int64_t deadline, wf_task_t *done,
                  wf_task_t *pending)
{
    wf__watch w;
    int err = wait_begin(ids, n, when, deadline, &w);
    if (err)
        return err;
    /* The handles come from the pinned records, not from ids[], which
     * done or pending may be overwriting (the in-place loop idiom). */
    size_t nd = 0, np = 0;
    for (uint32_t i = 0; i < w.n; i++) {
        wf_task_t id = w.tasks[i]->id;
        if (w.fired[i]) {
            if (done)
                done[nd] = id;
            nd++;
        } else {
            if (pending)
                pending[np] = id;
            np++;
        }
    }
    wf__assert(nd == w.ndone, "wait_split: every task is done or pending");
    wf__watch_finish(&w, NULL);
    return (int)nd;
}

/* --- wait_for ---------------------------------------------------------------- */

int wf_wait_for(wf_task_t id, int64_t deadline, int *status, void **result)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (deadline < WF_FOREVER)
        return -EINVAL;
    if (id == self->id)
        return -EDEADLK; /* the caller itself, whether or not a handle to it is left */
    wf__task *t;
    int e = wf__task_claim(self->rt, id, &t);
    if (e)
        return e;
    /* -ETIMEDOUT for its own deadline and for an expired scope alike. */
    int r = wf__join_claimed(self, t, deadline);
    int st;
    if (r == 0) {
        st = t->status;
    } else {
        /* Cancel the task (passing on the caller's message if the caller
         * was cancelled) and wait for it to end: no outcome is left
         * behind, and the handle is consumed either way. */
        const char *msg =
            r == -ECANCELED ? atomic_load_explicit(&self->cancel_msg, memory_order_acquire) : NULL;
        wf__task_cancel(t, msg);
        wf__await_end(self, t);
        st = t->status;
        if (r != -ECANCELED)
            r = st == -ECANCELED ? -ETIMEDOUT : 0;
    }
    if (status)
        *status = st;
    if (result)
        *result = t->result;
    wf__task_unpin(t);
    return r;
}

/* --- as_completed -------------------------------------------------------------- */

#define AC_MAGIC 0x61736370u /* "ascp" */

struct wf_as_completed {
    uint32_t magic;
    _Atomic uint32_t busy; /* a fiber is in next() or end() */
    int64_t deadline;
    wf__runtime *rt;
    wf__watch w;
    uint8_t handed[]; /* n flags: the reference went to the caller */
};

int wf_as_completed_start(wf_as_completed_t **itp, const wf_task_t *ids, size_t n, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!itp || (n && !ids) || n >= UINT32_MAX || deadline < WF_FOREVER)
        return -EINVAL;
    wf_as_completed_t *it = malloc(sizeof *it + n);
    if (!it)
        return -ENOMEM;
    /* The pins taken here are the iterator's own references: they keep
     * every record alive while its hooks are registered, whatever the
     * caller does with its handles, and unlike handles no join or detach
     * of the caller's can consume them (a double join of one of these
     * tasks is -EINVAL, not a use after free at the end). A pin becomes
     * the caller's new handle when the task is handed out. */
    int err = wf__watch_take(&it->w, self, ids, n, false);
    if (err) {
        free(it);
        return err;
    }
    it->magic = AC_MAGIC;
    atomic_init(&it->busy, 0);
    it->deadline = deadline;
    it->rt = self->rt;
    memset(it->handed, 0, n);
    wf__watch_arm(&it->w);
    *itp = it;
    return 0;
}

static bool enter(wf_as_completed_t *it)
{
    uint32_t zero = 0;
    /* acquire: pairs with the release in leave(), so a fiber entering sees
     * the previous user's updates to the iterator (consumed, handed). */
    return atomic_compare_exchange_strong_explicit(&it->busy, &zero, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static void leave(wf_as_completed_t *it)
{
    atomic_store_explicit(&it->busy, 0, memory_order_release);
}

int wf_as_completed_next(wf_as_completed_t *it, wf_task_t *task)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!it || it->magic != AC_MAGIC || !task)
        return -EINVAL;
    if (!enter(it))
        return -EBUSY;
    wf__watch *w = &it->w;
    unsigned r = wf__watch_wait(w, self, WF__WATCH_MORE, it->deadline, 0);
    int ret;
    wf__spin_lock(&w->lock);
    if (w->consumed < w->ndone) {
        /* One has ended (even if the wait timed out meanwhile): hand it
         * over, the iterator's pin turned into a handle for the caller (one
         * RMW; the count never reaches 0 on the way). */
        uint32_t idx = w->order[w->consumed++];
        it->handed[idx] = 1;
        *task = w->tasks[idx]->id;
        wf__task_unclaim(w->tasks[idx]);
        ret = 1;
    } else if (w->consumed == w->n) {
        ret = 0;
    } else {
        ret = r == WF__R_CANCELLED ? -ECANCELED : -ETIMEDOUT;
    }
    wf__spin_unlock(&w->lock);
    leave(it);
    return ret;
}

int wf_as_completed_end(wf_as_completed_t *it)
{
    if (!wf__tls_runtime())
        return -EPERM;
    if (!it || it->magic != AC_MAGIC)
        return -EINVAL;
    if (!enter(it))
        return -EBUSY;
    wf__watch_disarm(&it->w);
    for (uint32_t i = 0; i < it->w.n; i++)
        if (!it->handed[i])
            wf__task_unpin(it->w.tasks[i]);
    it->magic = 0;
    wf__watch_free(&it->w);
    free(it);
    return 0;
}
