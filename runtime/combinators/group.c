/* group.c - task groups (asyncio.TaskGroup).
 *
 * A group is a count of children and a list of child records, one per
 * spawn, under the group's spinlock. Each child carries a completion hook
 * (task.h) that runs under the child's jlock when it ends:
 *   1. record the outcome; count it;
 *   2. if it failed (status not 0 nor -ECANCELED): append it to the failure
 *      list; if it is the first, abort: cancel every other child that has
 *      a task, and the parent if it has not reached wf_group_wait yet
 *      (remembered in parent_cancel_requested, withdrawn by the wait);
 *   3. if that was the last child and the parent is parked in the wait,
 *      decide it WOKEN (under the group's lock; the parent cannot leave
 *      the wait, and the group's storage, without taking that lock).
 * Cancelling from the hook is safe: deciding a wait and readying a task
 * take neither a jlock nor the group's lock, and the group holds a
 * reference to every child.
 *
 * Lock order: a child's jlock, then the group's lock. wf_group_spawn never
 * holds the group's lock while it registers a hook.
 *
 * Spawning, step by step (the child may run, and even end, at once):
 *   1. Under the lock: refuse if the group is aborting or closed; else
 *      count the child and link its record, with no task yet.
 *   2. Spawn. On failure, unlink and uncount it (waking a waiting parent if
 *      that was the last one) and report the error: nothing happened.
 *   3. Under the lock: publish the task in the record, and read whether an
 *      abort happened meanwhile (it could not cancel a record without a
 *      task): if so, cancel it ourselves. Exactly one of the two cancels.
 *   4. Register the hook; if the child has already ended, run the hook's
 *      work ourselves.
 */
#include "combo.h"

#include <stdlib.h>
#include <string.h>

#define GROUP_OPEN 0x67727570u /* "grup" */
#define GROUP_DONE 0x646f6e65u /* "done" */

typedef struct child {
    wf__done_hook hook;
    wf__link link; /* in group->children */
    struct group *g;
    wf__task *t;         /* NULL until spawned (step 3) */
    struct child *fnext; /* failure list, in order of failure */
    int status;
    void *result;
    bool done;
} child;

typedef struct group {
    /* Relaxed atomic: a spawn from another fiber may read it while the
     * parent finishes the group; the lock orders everything else. */
    _Atomic uint32_t magic;
    wf__spinlock lock;
    /* Under lock: */
    bool aborting;  /* a child failed, or cancel/timeout: no more spawns */
    bool cancelled; /* wf_group_cancel was called */
    bool waiting;   /* the parent is in wf_group_wait */
    bool closed;    /* the wait saw every child end */
    bool parent_cancel_requested;
    uint32_t nchildren, ndone, nfailed;
    wf__task *parent;
    wf__task *waiter; /* the parent, parked in the wait */
    uint64_t seq;
    wf__link children;
    child *fhead, *ftail;
    /* The parent's open groups, innermost first, from parent->groups
     * (owner only): what the parent's exit check looks at (task.c). */
    struct group *open_next;
} group;

_Static_assert(sizeof(group) <= sizeof(wf_group_t), "wf_group_t storage too small");
_Static_assert(WF__TASK_NAME_MAX <= WF_GROUP_FAILURE_NAME_MAX, "a failure record holds a whole task name");
_Static_assert(_Alignof(group) <= _Alignof(wf_group_t), "wf_group_t alignment");

static group *open_group(wf_group_t *gu)
{
    group *g = (group *)(void *)gu;
    return g && atomic_load_explicit(&g->magic, memory_order_relaxed) == GROUP_OPEN ? g : NULL;
}

/* g->lock held. Cancel every child that has a task and has not ended. */
static void abort_locked(group *g)
{
    g->aborting = true;
    for (wf__link *l = g->children.next; l != &g->children; l = l->next) {
        child *c = wf__container_of(l, child, link);
        if (c->t && !c->done)
            wf__task_cancel(c->t, NULL);
    }
}

/* The hook's work (steps 1-3 above); also run by spawn for a child that
 * ended before its hook could be registered. */
static void child_ended(child *c, wf__task *t)
{
    group *g = c->g;
    wf__task *wake = NULL;
    uint64_t seq = 0;
    wf__spin_lock(&g->lock);
    c->done = true;
    c->status = t->status;
    c->result = t->result;
    g->ndone++;
    if (wf__status_exception(c->status)) {
        c->fnext = NULL;
        if (g->ftail)
            g->ftail->fnext = c;
        else
            g->fhead = c;
        g->ftail = c;
        if (g->nfailed++ == 0 && !g->aborting) {
            abort_locked(g);
            if (!g->waiting && !g->parent_cancel_requested) {
                g->parent_cancel_requested = true;
                wf__task_cancel(g->parent, NULL);
            }
        }
    }
    if (g->waiter && g->ndone == g->nchildren) {
        wake = g->waiter;
        seq = g->seq;
        g->waiter = NULL;
    }
    wf__decision d = wake ? wf__park_decide(wake, seq, WF__R_WOKEN) : WF__DECIDE_LOST;
    wf__spin_unlock(&g->lock);
    /* Nothing of the group is touched past this point. */
    if (d == WF__DECIDED_PARKED)
        wf__ready(wake);
}

static void on_child_done(wf__done_hook *h, wf__task *t)
{
    child_ended(wf__container_of(h, child, hook), t);
}

int wf_group_init(wf_group_t *gu)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!gu)
        return -EINVAL;
    group *g = (group *)(void *)gu;
    if (atomic_load_explicit(&g->magic, memory_order_relaxed) == GROUP_OPEN && g->parent == self)
        return -EBUSY;
    atomic_store_explicit(&g->magic, GROUP_OPEN, memory_order_relaxed);
    wf__spin_init(&g->lock);
    g->aborting = g->cancelled = g->waiting = g->closed = false;
    g->parent_cancel_requested = false;
    g->nchildren = g->ndone = g->nfailed = 0;
    g->parent = self;
    g->waiter = NULL;
    g->seq = 0;
    wf__list_init(&g->children);
    g->fhead = g->ftail = NULL;
    g->open_next = self->groups;
    self->groups = g;
    return 0;
}

/* Take `g` off its parent's list of open groups (the parent, at the end of
 * the wait). Groups are usually left innermost first: the head. */
static void unlink_open(wf__task *self, group *g)
{
    for (group **p = (group **)&self->groups; *p; p = &(*p)->open_next) {
        if (*p == g) {
            *p = g->open_next;
            return;
        }
    }
}

int wf_group_spawn(wf_group_t *gu, wf_task_t *out, wf_fn fn, void *arg, const wf_spawn_opts_t *opts)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    group *g = open_group(gu);
    if (!g || !fn || g->parent->rt != rt)
        return -EINVAL;
    child *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->hook.fn = on_child_done;
    c->g = g;
    c->t = NULL;
    c->fnext = NULL;
    c->status = 0;
    c->result = NULL;
    c->done = false;

    /* Step 1. */
    wf__spin_lock(&g->lock);
    if (g->aborting || g->closed) {
        wf__spin_unlock(&g->lock);
        free(c);
        return -ESHUTDOWN;
    }
    g->nchildren++;
    wf__list_push_back(&g->children, &c->link);
    wf__spin_unlock(&g->lock);

    /* Step 2. */
    /* The group's own reference is a pin, not a handle: the caller's join
     * or detach (even a double one, even the child detaching itself) can
     * only consume the caller's handle (`out`), never the group's, so the
     * record outlives the group's use of it. */
    wf_task_t id;
    wf__task *t;
    int r = wf__spawn_refs(&id, &t, fn, arg, opts, WF__REF_PIN | (out ? WF__REF_HANDLE : 0));
    if (r < 0) {
        wf__task *wake = NULL;
        uint64_t seq = 0;
        wf__spin_lock(&g->lock);
        wf__list_unlink(&c->link);
        g->nchildren--;
        if (g->waiter && g->ndone == g->nchildren) {
            wake = g->waiter;
            seq = g->seq;
            g->waiter = NULL;
        }
        wf__decision d = wake ? wf__park_decide(wake, seq, WF__R_WOKEN) : WF__DECIDE_LOST;
        wf__spin_unlock(&g->lock);
        if (d == WF__DECIDED_PARKED)
            wf__ready(wake);
        free(c);
        return r;
    }
    if (out)
        *out = id;

    /* Step 3. */
    wf__spin_lock(&g->lock);
    c->t = t;
    bool cancel_now = g->aborting;
    wf__spin_unlock(&g->lock);
    if (cancel_now)
        wf__task_cancel(t, NULL);

    /* Step 4. */
    if (!wf__task_add_hook(t, &c->hook))
        child_ended(c, t);
    return 0;
}

int wf_group_cancel(wf_group_t *gu)
{
    if (!wf__tls_runtime())
        return -EPERM;
    group *g = open_group(gu);
    if (!g)
        return -EINVAL;
    wf__spin_lock(&g->lock);
    if (g->closed) {
        wf__spin_unlock(&g->lock);
        return -EINVAL;
    }
    g->cancelled = true;
    abort_locked(g);
    wf__spin_unlock(&g->lock);
    return 0;
}

/* Park the parent until every child has ended. Returns the commit's
 * reason, or WF__R_WOKEN when they have. */
static unsigned wait_children(group *g, wf__task *self, unsigned flags)
{
    wf__spin_lock(&g->lock);
    if (g->ndone == g->nchildren) {
        g->closed = true; /* under the same lock as the count: no spawn after */
        wf__spin_unlock(&g->lock);
        return WF__R_WOKEN;
    }
    uint64_t seq = wf__park_begin(self, flags);
    g->waiter = self;
    g->seq = seq;
    wf__spin_unlock(&g->lock);
    unsigned r = wf__park_commit(self, seq, WF_FOREVER);
    if (r != WF__R_WOKEN) {
        wf__spin_lock(&g->lock);
        if (g->waiter == self && g->seq == seq)
            g->waiter = NULL;
        wf__spin_unlock(&g->lock);
    }
    return r;
}

int wf_group_wait(wf_group_t *gu, wf_group_failure_t *failures, size_t cap)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    group *g = open_group(gu);
    if (!g || g->parent != self || (cap && !failures))
        return -EINVAL;

    wf__spin_lock(&g->lock);
    g->waiting = true;
    bool requested = g->parent_cancel_requested;
    g->parent_cancel_requested = false;
    wf__spin_unlock(&g->lock);
    /* Withdraw our own request (asyncio's uncancel()); what is left came
     * from outside. */
    if (requested)
        wf_uncancel();
    int outcome = 0;
    unsigned flags = 0;
    /* A cancellation held off by a cleanup scope stays held off here. */
    if (atomic_load_explicit(&self->cancel, memory_order_relaxed) > 0 && !self->shield) {
        outcome = -ECANCELED;
        flags = WF__PARK_NOCANCEL;
        wf__spin_lock(&g->lock);
        abort_locked(g);
        wf__spin_unlock(&g->lock);
    }
    for (;;) {
        unsigned r = wait_children(g, self, flags);
        if (r == WF__R_WOKEN) {
            /* Woken by the last child; loop to close under the lock. */
            wf__spin_lock(&g->lock);
            bool all = g->ndone == g->nchildren;
            if (all)
                g->closed = true;
            wf__spin_unlock(&g->lock);
            if (all)
                break;
            continue;
        }
        /* Cancelled from outside, or a timeout scope expired. */
        outcome = r == WF__R_CANCELLED ? -ECANCELED : -ETIMEDOUT;
        flags = WF__PARK_NOCANCEL;
        wf__spin_lock(&g->lock);
        abort_locked(g);
        wf__spin_unlock(&g->lock);
    }

    /* Every child has ended and every hook has run (closed was set under
     * the lock after the last one): the records are ours. */
    size_t k = 0;
    for (child *c = g->fhead; c; c = c->fnext) {
        if (k < cap) {
            /* The group's reference keeps the record, its name and arg
             * (both fixed at spawn) alive until the unref below: the
             * failure identifies the child even if nobody else held it. */
            wf_group_failure_t *f = &failures[k];
            f->task = c->t->id;
            f->status = c->status;
            f->result = c->result;
            f->arg = c->t->arg;
            const char *name = wf__task_name(c->t);
            size_t len = strnlen(name, sizeof f->name - 1);
            memcpy(f->name, name, len);
            memset(f->name + len, 0, sizeof f->name - len);
        }
        k++;
    }
    int nfailed = (int)g->nfailed;
    bool cancelled = g->cancelled;
    wf__link *l;
    while ((l = wf__list_pop_front(&g->children)) != NULL) {
        child *c = wf__container_of(l, child, link);
        wf__task_unpin(c->t);
        free(c);
    }
    atomic_store_explicit(&g->magic, GROUP_DONE, memory_order_relaxed);
    unlink_open(self, g);
    if (nfailed > 0)
        return nfailed;
    if (outcome == 0 && cancelled)
        outcome = -ECANCELED;
    return outcome;
}
