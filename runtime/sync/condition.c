/* condition.c - the condition variable (asyncio.Condition), bound to a lock.
 *
 * WAIT, step by step:
 *  1. Check that the caller holds the lock (only it can change that).
 *  2. Publish the wait node on the condition's list (park_begin first), then
 *     release the lock. A notify can only come from a lock holder, so it
 *     comes after step 2 and finds the node: no notification is missed.
 *  3. Park until notified, the deadline, or a cancellation.
 *  4. Re-take the lock, uncancellably (WF__PARK_NOCANCEL) and without a
 *     deadline, as asyncio does: the caller holds the lock on every return
 *     path, and a cancellation stays pending for its next wait.
 *
 * A notification is given at the deciding CAS (wait.h): notify(n) counts
 * only the waiters whose wait it won, so it wakes exactly min(n, waiters)
 * tasks, and a waiter that was timing out or being cancelled at that moment
 * neither swallows a notification nor gets one: the notifier moves on to the
 * next waiter.
 */
#include "lock.h"

typedef struct wf__cond {
    uint32_t dead;
    wf__spinlock sl;
    wf_lock_t *lock; /* the bound lock; NULL: `own` */
    uint32_t nwait;
    wf__link waiters;
    wf_lock_t own;
} wf__cond;

_Static_assert(sizeof(wf__cond) <= sizeof(wf_cond_t), "wf_cond_t storage too small");
_Static_assert(_Alignof(wf__cond) <= _Alignof(wf_cond_t), "wf_cond_t alignment");

static inline wf__cond *cond_of(wf_cond_t *c)
{
    return (wf__cond *)(void *)c->opaque;
}

static inline wf__lock *bound_lock(wf__cond *c)
{
    return wf__lock_of(c->lock ? c->lock : &c->own);
}

static bool is_dead(wf__cond *c)
{
    wf__spin_lock(&c->sl);
    bool dead = c->dead == WF__SYNC_DEAD;
    wf__spin_unlock(&c->sl);
    return dead;
}

/* Whether `self` holds the condition's lock. */
static bool holds(wf__lock *l, wf__task *self)
{
    wf__spin_lock(&l->sl);
    bool yes = l->owner == self->id && l->dead != WF__SYNC_DEAD;
    wf__spin_unlock(&l->sl);
    return yes;
}

int wf_cond_init(wf_cond_t *cv, wf_lock_t *lock)
{
    if (!cv)
        return -EINVAL;
    wf__cond *c = cond_of(cv);
    c->dead = 0;
    wf__spin_init(&c->sl);
    c->lock = lock;
    c->nwait = 0;
    wf__list_init(&c->waiters);
    wf_lock_init(&c->own);
    return 0;
}

int wf_cond_destroy(wf_cond_t *cv)
{
    if (!cv)
        return -EINVAL;
    wf__cond *c = cond_of(cv);
    wf__spin_lock(&c->sl);
    int e = 0;
    if (c->dead == WF__SYNC_DEAD)
        e = -EINVAL;
    else if (c->nwait)
        e = -EBUSY;
    else if (!c->lock)
        e = wf_lock_destroy(&c->own); /* -EBUSY while held */
    if (!e)
        c->dead = WF__SYNC_DEAD;
    wf__spin_unlock(&c->sl);
    return e;
}

wf_lock_t *wf_cond_lock(wf_cond_t *cv)
{
    if (!cv)
        return NULL;
    wf__cond *c = cond_of(cv);
    if (is_dead(c))
        return NULL;
    return c->lock ? c->lock : &c->own;
}

int wf_cond_acquire_until(wf_cond_t *cv, int64_t deadline)
{
    wf_lock_t *l = wf_cond_lock(cv);
    return l ? wf_lock_acquire_until(l, deadline) : -EINVAL;
}

int wf_cond_acquire(wf_cond_t *cv)
{
    return wf_cond_acquire_until(cv, WF_FOREVER);
}

int wf_cond_release(wf_cond_t *cv)
{
    wf_lock_t *l = wf_cond_lock(cv);
    return l ? wf_lock_release(l) : -EINVAL;
}

int wf_cond_wait_until(wf_cond_t *cv, int64_t deadline)
{
    if (!cv || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__cond *c = cond_of(cv);
    wf__lock *l = bound_lock(c);
    /* 1. */
    if (!holds(l, self))
        return is_dead(c) ? -EINVAL : -EPERM;
    /* 2. */
    wf__spin_lock(&c->sl);
    if (c->dead == WF__SYNC_DEAD) {
        wf__spin_unlock(&c->sl);
        return -EINVAL;
    }
    wf__sync_list_ready(&c->waiters);
    wf__waitnode node;
    node.task = self;
    node.data = NULL;
    node.seq = wf__park_begin(self, 0);
    wf__list_push_back(&c->waiters, &node.link);
    c->nwait++;
    wf__spin_unlock(&c->sl);
    int e = wf__lock_release(l, self);
    wf__assert(e == 0, "a condition's waiter releases the lock it holds");
    /* 3. */
    unsigned r = wf__park_commit(self, node.seq, deadline);
    if (r != WF__R_WOKEN) {
        wf__spin_lock(&c->sl);
        if (wf__link_linked(&node.link))
            wf__list_unlink(&node.link);
        c->nwait--;
        wf__spin_unlock(&c->sl);
    }
    /* 4. */
    e = wf__lock_acquire(l, self, WF_FOREVER, WF__PARK_NOCANCEL);
    wf__assert(e == 0, "a condition's waiter re-takes its lock");
    return wf__park_errno(r);
}

int wf_cond_wait(wf_cond_t *cv)
{
    return wf_cond_wait_until(cv, WF_FOREVER);
}

int wf_cond_wait_for(wf_cond_t *cv, bool (*pred)(void *arg), void *arg, int64_t deadline)
{
    if (!cv || !pred || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__cond *c = cond_of(cv);
    if (!holds(bound_lock(c), self))
        return is_dead(c) ? -EINVAL : -EPERM;
    while (!pred(arg)) {
        int e = wf_cond_wait_until(cv, deadline);
        if (e == -ETIMEDOUT)
            return pred(arg) ? 0 : e; /* one last look, with the lock held */
        if (e)
            return e;
    }
    return 0;
}

static int notify(wf_cond_t *cv, unsigned n)
{
    if (!cv)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__cond *c = cond_of(cv);
    if (!holds(bound_lock(c), self))
        return is_dead(c) ? -EINVAL : -EPERM;
    wf__batch b;
    wf__batch_init(&b);
    unsigned woken = 0;
    wf__spin_lock(&c->sl);
    if (c->dead == WF__SYNC_DEAD) {
        wf__spin_unlock(&c->sl);
        return -EINVAL;
    }
    while (woken < n && c->nwait) {
        wf__task *q;
        if (!wf__sync_wake_first(&c->waiters, &c->nwait, NULL, &q))
            break;
        woken++;
        if (q)
            wf__batch_push(&b, q);
    }
    wf__spin_unlock(&c->sl);
    wf__sync_ready_batch(&b);
    return (int)(woken > INT32_MAX ? INT32_MAX : woken);
}

int wf_cond_notify(wf_cond_t *cv, unsigned n)
{
    return notify(cv, n);
}

int wf_cond_notify_all(wf_cond_t *cv)
{
    return notify(cv, UINT32_MAX);
}
