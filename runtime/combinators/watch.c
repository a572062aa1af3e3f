/* watch.c - the helpers the combinators share (combo.h): lookups,
 * cancellation with a message, an uninterruptible wait for a task's end,
 * and the watch over a set of tasks. */
#include "combo.h"

#include <stdlib.h>
#include <string.h>

/* --- tasks ----------------------------------------------------------------- */

void wf__await_end(wf__task *self, wf__task *t)
{
    /* acquire: pairs with wf__task_finish's release of DONE (the outcome). */
    if (atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE)
        return;
    wf__waitnode node;
    wf__spin_lock(&t->jlock);
    if (atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE) {
        wf__spin_unlock(&t->jlock);
        return;
    }
    node.task = self;
    node.data = NULL;
    node.seq = wf__park_begin(self, WF__PARK_NOCANCEL);
    wf__list_push_back(&t->joiners, &node.link);
    wf__spin_unlock(&t->jlock);
    unsigned r = wf__park_commit(self, node.seq, WF_FOREVER);
    wf__assert(r == WF__R_WOKEN, "an uninterruptible wait without deadline ends woken");
}

int wf__combo_take_all(wf__task *self, const wf_task_t *ids, size_t n, bool claim, wf__task **ts)
{
    int err = 0;
    size_t i = 0;
    for (; i < n; i++) {
        if (ids[i] == self->id) {
            err = -EDEADLK; /* the caller itself, handle or not */
            break;
        }
        err = claim ? wf__task_claim(self->rt, ids[i], &ts[i]) : wf__task_pin(self->rt, ids[i], &ts[i]);
        if (err)
            break;
    }
    if (!err)
        return 0;
    /* All or nothing: a claim given back leaves the handle as it was. */
    while (i-- > 0) {
        if (claim)
            wf__task_unclaim(ts[i]);
        else
            wf__task_unpin(ts[i]);
    }
    return err;
}

/* --- the watch ------------------------------------------------------------- */

static bool holds(const wf__watch *w, unsigned mode)
{
    switch (mode) {
    case WF__WATCH_ALL:
        return w->ndone == w->n;
    case WF__WATCH_ANY:
        return w->ndone > 0;
    case WF__WATCH_FAIL:
        return w->nfail > 0 || w->ndone == w->n;
    case WF__WATCH_EXC:
        return w->nexc > 0 || w->ndone == w->n;
    default:
        return w->ndone > w->consumed || w->consumed == w->n;
    }
}

/* w->lock held. Record task `idx` as ended; return the waiter to decide,
 * if the condition now holds. */
static void record(wf__watch *w, uint32_t idx, wf__task **wake, uint64_t *seq)
{
    int st = w->tasks[idx]->status;
    w->fired[idx] = 1;
    w->order[w->ndone++] = idx;
    if (wf__status_failed(st)) {
        if (w->nfail++ == 0)
            w->first_fail = idx;
    }
    if (wf__status_exception(st))
        w->nexc++;
    if (w->waiter && holds(w, w->mode)) {
        *wake = w->waiter;
        *seq = w->seq;
        w->waiter = NULL;
    }
}

static void on_done(wf__done_hook *h, wf__task *t)
{
    wf__watch_hook *wh = wf__container_of(h, wf__watch_hook, hook);
    wf__watch *w = wh->w;
    wf__task *wake = NULL;
    uint64_t seq = 0;
    wf__spin_lock(&w->lock);
    record(w, wh->idx, &wake, &seq);
    /* Decided under the lock: the waiter cannot leave (and free the watch)
     * before taking it. */
    wf__decision d = wake ? wf__park_decide(wake, seq, WF__R_WOKEN) : WF__DECIDE_LOST;
    wf__spin_unlock(&w->lock);
    /* Nothing of the watch is touched past this point. */
    if (d == WF__DECIDED_PARKED)
        wf__ready(wake);
}

int wf__watch_init(wf__watch *w, wf__task *const *tasks, size_t n)
{
    memset(w, 0, sizeof *w);
    wf__spin_init(&w->lock);
    w->n = (uint32_t)n;
    w->first_fail = UINT32_MAX;
    size_t each = sizeof(wf__task *) + sizeof(wf__watch_hook) + sizeof(uint32_t) + 1;
    if (n > (SIZE_MAX - 64) / each)
        return -ENOMEM;
    /* hooks first: they need the strictest alignment. */
    char *m = malloc(n ? n * each : 1);
    if (!m)
        return -ENOMEM;
    w->hooks = (wf__watch_hook *)m;
    w->tasks = (wf__task **)(m + n * sizeof(wf__watch_hook));
    w->order = (uint32_t *)(m + n * (sizeof(wf__watch_hook) + sizeof(wf__task *)));
    w->fired = (uint8_t *)(m + n * (sizeof(wf__watch_hook) + sizeof(wf__task *) + sizeof(uint32_t)));
    for (size_t i = 0; i < n; i++) {
        w->tasks[i] = tasks[i];
        w->hooks[i].hook.fn = on_done;
        w->hooks[i].w = w;
        w->hooks[i].idx = (uint32_t)i;
        w->fired[i] = 0;
    }
    return 0;
}

int wf__watch_take(wf__watch *w, wf__task *self, const wf_task_t *ids, size_t n, bool claim)
{
    /* The records go through a scratch array: wf__watch_init copies them. */
    wf__task **ts = malloc((n ? n : 1) * sizeof *ts);
    if (!ts)
        return -ENOMEM;
    int err = wf__combo_take_all(self, ids, n, claim, ts);
    if (!err && (err = wf__watch_init(w, ts, n)) < 0) {
        /* All or nothing: a claim given back leaves the handle as it was. */
        for (size_t i = 0; i < n; i++) {
            if (claim)
                wf__task_unclaim(ts[i]);
            else
                wf__task_unpin(ts[i]);
        }
    }
    free(ts);
    return err;
}

void wf__watch_arm(wf__watch *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        if (wf__task_add_hook(w->tasks[i], &w->hooks[i].hook))
            continue;
        /* Already ended: record it ourselves (no waiter yet). */
        wf__task *wake = NULL;
        uint64_t seq;
        wf__spin_lock(&w->lock);
        record(w, i, &wake, &seq);
        wf__spin_unlock(&w->lock);
    }
}

unsigned wf__watch_wait(wf__watch *w, wf__task *self, unsigned mode, int64_t deadline, unsigned flags)
{
    wf__spin_lock(&w->lock);
    w->mode = mode;
    if (holds(w, mode)) {
        wf__spin_unlock(&w->lock);
        return WF__R_WOKEN;
    }
    uint64_t seq = wf__park_begin(self, flags);
    w->waiter = self;
    w->seq = seq;
    wf__spin_unlock(&w->lock);
    unsigned r = wf__park_commit(self, seq, deadline);
    if (r != WF__R_WOKEN) {
        wf__spin_lock(&w->lock);
        if (w->waiter == self && w->seq == seq)
            w->waiter = NULL;
        /* Timed out or cancelled, but the condition may hold by now: the
         * caller looks at the counts itself. */
        wf__spin_unlock(&w->lock);
    }
    return r;
}

void wf__watch_disarm(wf__watch *w)
{
    wf__spin_lock(&w->lock);
    bool all = w->ndone == w->n; /* every hook has run (or was never added) */
    wf__spin_unlock(&w->lock);
    for (uint32_t i = 0; !all && i < w->n; i++) {
        wf__spin_lock(&w->lock);
        bool fired = w->fired[i];
        wf__spin_unlock(&w->lock);
        if (!fired && !wf__task_remove_hook(w->tasks[i], &w->hooks[i].hook)) {
            /* It ran between our look and the removal; remove_hook took
             * the task's jlock, so it has finished. */
        }
    }
    /* Acquire the last hook's release of the lock (see combo.h, step 5). */
    wf__spin_lock(&w->lock);
    w->waiter = NULL;
    wf__spin_unlock(&w->lock);
}

void wf__watch_free(wf__watch *w)
{
    free(w->hooks);
    w->hooks = NULL;
}

void wf__watch_finish(wf__watch *w, wf_outcome_t *out)
{
    /* Disarmed: `fired` is final. */
    for (uint32_t i = 0; i < w->n; i++) {
        wf__task *t = w->tasks[i];
        if (out) {
            if (w->fired[i]) {
                out[i].status = t->status;
                out[i].result = t->result;
            } else {
                out[i].status = -EINPROGRESS;
                out[i].result = NULL;
            }
        }
        wf__task_unpin(t); /* a claimed handle is consumed */
    }
    wf__watch_free(w);
}
