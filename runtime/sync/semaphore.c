/* semaphore.c - Semaphore and BoundedSemaphore.
 *
 * State: the free permits, the bound (WF_SEM_VALUE_MAX when unbounded) and a
 * FIFO of waiters, under one spinlock. As for the lock, a release hands its
 * permit straight to the first waiter whose wait it wins and only adds to
 * the count when nobody can take it, so value > 0 implies nobody waits, and
 * permits go out in arrival order (asyncio's Semaphore is FIFO-fair too
 * since 3.11). A bounded semaphore checks its bound only when the permit
 * would go to the count: a release that feeds a waiter cannot overflow.
 */
#include "wait.h"

#include <weft/sync.h>

typedef struct wf__sem {
    uint32_t dead;
    wf__spinlock sl;
    uint32_t value;
    uint32_t max;
    uint32_t nwait;
    wf__link waiters;
} wf__sem;

_Static_assert(sizeof(wf__sem) <= sizeof(wf_sem_t), "wf_sem_t storage too small");
_Static_assert(_Alignof(wf__sem) <= _Alignof(wf_sem_t), "wf_sem_t alignment");

static inline wf__sem *sem_of(wf_sem_t *s)
{
    return (wf__sem *)(void *)s->opaque;
}

static int init(wf_sem_t *ss, unsigned value, unsigned max)
{
    if (!ss || value > WF_SEM_VALUE_MAX)
        return -EINVAL;
    wf__sem *s = sem_of(ss);
    s->dead = 0;
    wf__spin_init(&s->sl);
    s->value = value;
    s->max = max;
    s->nwait = 0;
    wf__list_init(&s->waiters);
    return 0;
}

int wf_sem_init(wf_sem_t *s, unsigned value)
{
    return init(s, value, WF_SEM_VALUE_MAX);
}

int wf_sem_init_bounded(wf_sem_t *s, unsigned value)
{
    return init(s, value, value);
}

int wf_sem_destroy(wf_sem_t *ss)
{
    if (!ss)
        return -EINVAL;
    wf__sem *s = sem_of(ss);
    wf__spin_lock(&s->sl);
    int e = 0;
    if (s->dead == WF__SYNC_DEAD)
        e = -EINVAL;
    else if (s->nwait)
        e = -EBUSY;
    else
        s->dead = WF__SYNC_DEAD;
    wf__spin_unlock(&s->sl);
    return e;
}

int wf_sem_acquire_until(wf_sem_t *ss, int64_t deadline)
{
    if (!ss || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__sem *s = sem_of(ss);
    wf__spin_lock(&s->sl);
    if (s->dead == WF__SYNC_DEAD) {
        wf__spin_unlock(&s->sl);
        return -EINVAL;
    }
    if (s->value > 0) {
        s->value--;
        wf__spin_unlock(&s->sl);
        return 0;
    }
    wf__waitnode node;
    node.data = NULL;
    unsigned r = wf__sync_wait(&s->sl, &s->waiters, &s->nwait, &node, self, deadline, 0);
    if (r == WF__R_WOKEN)
        return 0; /* the releaser handed us its permit */
    wf__spin_unlock(&s->sl);
    return wf__park_errno(r);
}

int wf_sem_acquire(wf_sem_t *s)
{
    return wf_sem_acquire_until(s, WF_FOREVER);
}

int wf_sem_try_acquire(wf_sem_t *ss)
{
    if (!ss)
        return -EINVAL;
    wf__sem *s = sem_of(ss);
    wf__spin_lock(&s->sl);
    int e = 0;
    if (s->dead == WF__SYNC_DEAD)
        e = -EINVAL;
    else if (s->value > 0)
        s->value--;
    else
        e = -EAGAIN;
    wf__spin_unlock(&s->sl);
    return e;
}

int wf_sem_release(wf_sem_t *ss)
{
    if (!ss)
        return -EINVAL;
    wf__sem *s = sem_of(ss);
    wf__task *q = NULL;
    wf__spin_lock(&s->sl);
    int e = 0;
    if (s->dead == WF__SYNC_DEAD)
        e = -EINVAL;
    else if (s->nwait && wf__sync_wake_first(&s->waiters, &s->nwait, NULL, &q))
        ; /* handed over */
    else if (s->value >= s->max)
        e = -EOVERFLOW;
    else
        s->value++;
    wf__spin_unlock(&s->sl);
    wf__sync_ready(q);
    return e;
}

int wf_sem_value(wf_sem_t *ss)
{
    if (!ss)
        return -EINVAL;
    wf__sem *s = sem_of(ss);
    wf__spin_lock(&s->sl);
    int e = s->dead == WF__SYNC_DEAD ? -EINVAL : (int)s->value;
    wf__spin_unlock(&s->sl);
    return e;
}

int wf_sem_locked(wf_sem_t *ss)
{
    if (!ss)
        return -EINVAL;
    wf__sem *s = sem_of(ss);
    wf__spin_lock(&s->sl);
    int e = s->dead == WF__SYNC_DEAD ? -EINVAL : s->value == 0;
    wf__spin_unlock(&s->sl);
    return e;
}
