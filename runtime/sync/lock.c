/* lock.c - the fair lock (asyncio.Lock).
 *
 * State: the owner task (NULL when free) and a FIFO of waiters, under one
 * spinlock. A release never frees the lock while someone waits: it hands
 * ownership to the first waiter whose wait it wins (wait.h, step 2), so the
 * lock is acquired in arrival order and the new owner is decided by the same
 * CAS that wakes it. Hence the invariant: a free lock has no waiter (a
 * release pops every node it loses to a timeout or a cancellation).
 *
 * The owner is recorded by task id (a handle value, which is never reused,
 * unlike a record's address), read from the waiter's record before the CAS:
 * after it, the woken task may run, and even end and be freed.
 *
 * Rejected: letting a release free the lock and the woken waiter compete for
 * it again (Go's normal mode; "barging"). It is faster under contention on
 * a real SMP machine, but it is not FIFO fairness, and a
 * fiber that releases and re-acquires in a loop would starve the rest.
 */
#include "lock.h"

int wf__lock_acquire(wf__lock *l, wf__task *self, int64_t deadline, unsigned flags)
{
    wf__spin_lock(&l->sl);
    if (wf__unlikely(l->dead == WF__SYNC_DEAD)) {
        wf__spin_unlock(&l->sl);
        return -EINVAL;
    }
    if (wf__likely(!l->owner)) {
        l->owner = self->id;
        wf__spin_unlock(&l->sl);
        return 0;
    }
    if (l->owner == self->id) {
        wf__spin_unlock(&l->sl);
        return -EDEADLK;
    }
    wf__sync_list_ready(&l->waiters);
    wf__waitnode node;
    node.data = NULL;
    unsigned r = wf__sync_wait(&l->sl, &l->waiters, &l->nwait, &node, self, deadline, flags);
    if (r == WF__R_WOKEN)
        return 0; /* the releaser made us the owner */
    wf__spin_unlock(&l->sl);
    return wf__park_errno(r);
}

int wf__lock_release(wf__lock *l, wf__task *self)
{
    wf__spin_lock(&l->sl);
    if (wf__unlikely(l->dead == WF__SYNC_DEAD)) {
        wf__spin_unlock(&l->sl);
        return -EINVAL;
    }
    if (l->owner != self->id) {
        wf__spin_unlock(&l->sl);
        return -EPERM;
    }
    /* Hand it to the first waiter whose wait we win (wait.h, step 2). */
    wf__task *q = NULL;
    l->owner = 0;
    wf__link *n;
    while (l->nwait && (n = wf__list_pop_front(&l->waiters)) != NULL) {
        wf__waitnode *nd = wf__container_of(n, wf__waitnode, link);
        wf__task *t = nd->task;
        uint64_t id = t->id;
        wf__decision d = wf__park_decide(t, nd->seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST)
            continue; /* it is leaving: it uncounts itself */
        l->nwait--;
        l->owner = id;
        if (d == WF__DECIDED_PARKED)
            q = t;
        break;
    }
    wf__spin_unlock(&l->sl);
    wf__sync_ready(q);
    return 0;
}

/* --- public API -------------------------------------------------------- */

int wf_lock_init(wf_lock_t *lk)
{
    if (!lk)
        return -EINVAL;
    wf__lock *l = wf__lock_of(lk);
    l->dead = 0;
    wf__spin_init(&l->sl);
    l->owner = 0;
    l->nwait = 0;
    wf__list_init(&l->waiters);
    return 0;
}

int wf_lock_destroy(wf_lock_t *lk)
{
    if (!lk)
        return -EINVAL;
    wf__lock *l = wf__lock_of(lk);
    wf__spin_lock(&l->sl);
    int e = 0;
    if (l->dead == WF__SYNC_DEAD)
        e = -EINVAL;
    else if (l->owner || l->nwait)
        e = -EBUSY;
    else
        l->dead = WF__SYNC_DEAD;
    wf__spin_unlock(&l->sl);
    return e;
}

int wf_lock_acquire_until(wf_lock_t *lk, int64_t deadline)
{
    if (!lk || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    return wf__lock_acquire(wf__lock_of(lk), self, deadline, 0);
}

int wf_lock_acquire(wf_lock_t *lk)
{
    return wf_lock_acquire_until(lk, WF_FOREVER);
}

int wf_lock_try_acquire(wf_lock_t *lk)
{
    if (!lk)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__lock *l = wf__lock_of(lk);
    wf__spin_lock(&l->sl);
    int e = 0;
    if (l->dead == WF__SYNC_DEAD)
        e = -EINVAL;
    else if (!l->owner)
        l->owner = self->id;
    else
        e = l->owner == self->id ? -EDEADLK : -EAGAIN;
    wf__spin_unlock(&l->sl);
    return e;
}

int wf_lock_release(wf_lock_t *lk)
{
    if (!lk)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    return wf__lock_release(wf__lock_of(lk), self);
}

int wf_lock_locked(wf_lock_t *lk)
{
    if (!lk)
        return -EINVAL;
    wf__lock *l = wf__lock_of(lk);
    wf__spin_lock(&l->sl);
    int e = l->dead == WF__SYNC_DEAD ? -EINVAL : l->owner != 0;
    wf__spin_unlock(&l->sl);
    return e;
}
