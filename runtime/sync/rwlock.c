/* rwlock.c - the readers-writer lock.
 *
 * State: the writer (its task id, as for the lock; 0 if none), the number of read locks held, and
 * one FIFO of waiters, each marked reader or writer, under one spinlock.
 *
 * Policy (tokio's RwLock, which is a FIFO semaphore underneath): a request
 * is granted at once only if it is compatible with the holders AND nobody
 * waits; otherwise it queues. dispatch() serves the queue from the front:
 * a writer when the lock is completely free; a reader whenever no writer
 * holds it, and then the readers right behind it too, up to the next writer.
 * So a waiting writer holds back readers that come after it (writers are not
 * starved), and a waiting reader is not overtaken by writers that come after
 * it (readers are not starved either).
 *
 * As everywhere in runtime/sync, the grant happens at the deciding CAS: the
 * writer field or the reader count is updated only when the CAS wins. A
 * waiter that leaves (timeout, cancellation) may have been what blocked the
 * ones behind it (a writer at the head while readers hold the lock), so it
 * runs dispatch() on its way out.
 */
#include "wait.h"

#include <weft/sync.h>

typedef struct wf__rwlock {
    uint32_t dead;
    wf__spinlock sl;
    uint64_t writer;
    uint32_t readers;
    uint32_t nwait;
    wf__link waiters; /* rw_node */
} wf__rwlock;

_Static_assert(sizeof(wf__rwlock) <= sizeof(wf_rwlock_t), "wf_rwlock_t storage too small");
_Static_assert(_Alignof(wf__rwlock) <= _Alignof(wf_rwlock_t), "wf_rwlock_t alignment");

typedef struct rw_node {
    wf__waitnode n;
    bool write;
} rw_node;

static inline wf__rwlock *rw_of(wf_rwlock_t *rw)
{
    return (wf__rwlock *)(void *)rw->opaque;
}

/* Lock held. Grant what the front of the queue allows; tasks to queue go
 * to `b`. */
static void dispatch(wf__rwlock *l, wf__batch *b)
{
    while (l->nwait && !l->writer && !wf__list_empty(&l->waiters)) {
        rw_node *nd = wf__container_of(l->waiters.next, rw_node, n.link);
        bool write = nd->write;
        if (write && l->readers)
            return; /* the writer at the head waits for the readers */
        wf__task *t = nd->n.task;
        uint64_t id = t->id; /* before the CAS: after it, it may run and end */
        wf__list_unlink(&nd->n.link);
        wf__decision d = wf__park_decide(t, nd->n.seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST)
            continue; /* it is leaving: it uncounts itself */
        l->nwait--;
        if (write)
            l->writer = id;
        else
            l->readers++;
        if (d == WF__DECIDED_PARKED)
            wf__batch_push(b, t);
    }
}

static int acquire(wf_rwlock_t *rw, bool write, int64_t deadline, bool try_only)
{
    if (!rw || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__rwlock *l = rw_of(rw);
    wf__spin_lock(&l->sl);
    if (l->dead == WF__SYNC_DEAD) {
        wf__spin_unlock(&l->sl);
        return -EINVAL;
    }
    if (l->writer == self->id) {
        wf__spin_unlock(&l->sl);
        return -EDEADLK;
    }
    /* nwait also counts waiters on their way out (popped by a dispatch they
     * beat): only the list says whether someone is queued ahead. */
    bool queued = l->nwait && !wf__list_empty(&l->waiters);
    bool free_now = !l->writer && !queued && (!write || !l->readers);
    if (free_now) {
        if (write)
            l->writer = self->id;
        else
            l->readers++;
        wf__spin_unlock(&l->sl);
        return 0;
    }
    if (try_only) {
        wf__spin_unlock(&l->sl);
        return -EAGAIN;
    }
    wf__sync_list_ready(&l->waiters);
    rw_node node;
    node.n.data = NULL;
    node.write = write;
    unsigned r = wf__sync_wait(&l->sl, &l->waiters, &l->nwait, &node.n, self, deadline, 0);
    if (r == WF__R_WOKEN)
        return 0;
    /* We may have been the writer at the head holding back readers. */
    wf__batch b;
    wf__batch_init(&b);
    dispatch(l, &b);
    wf__spin_unlock(&l->sl);
    wf__sync_ready_batch(&b);
    return wf__park_errno(r);
}

static int release(wf_rwlock_t *rw, bool write)
{
    if (!rw)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__rwlock *l = rw_of(rw);
    wf__spin_lock(&l->sl);
    int e = 0;
    if (l->dead == WF__SYNC_DEAD)
        e = -EINVAL;
    else if (write ? l->writer != self->id : l->readers == 0)
        e = -EPERM;
    if (e) {
        wf__spin_unlock(&l->sl);
        return e;
    }
    if (write)
        l->writer = 0;
    else
        l->readers--;
    wf__batch b;
    wf__batch_init(&b);
    dispatch(l, &b);
    wf__spin_unlock(&l->sl);
    wf__sync_ready_batch(&b);
    return 0;
}

/* --- public API -------------------------------------------------------- */

int wf_rwlock_init(wf_rwlock_t *rw)
{
    if (!rw)
        return -EINVAL;
    wf__rwlock *l = rw_of(rw);
    l->dead = 0;
    wf__spin_init(&l->sl);
    l->writer = 0;
    l->readers = 0;
    l->nwait = 0;
    wf__list_init(&l->waiters);
    return 0;
}

int wf_rwlock_destroy(wf_rwlock_t *rw)
{
    if (!rw)
        return -EINVAL;
    wf__rwlock *l = rw_of(rw);
    wf__spin_lock(&l->sl);
    int e = 0;
    if (l->dead == WF__SYNC_DEAD)
        e = -EINVAL;
    else if (l->writer || l->readers || l->nwait)
        e = -EBUSY;
    else
        l->dead = WF__SYNC_DEAD;
    wf__spin_unlock(&l->sl);
    return e;
}

int wf_rwlock_read_acquire_until(wf_rwlock_t *rw, int64_t deadline)
{
    return acquire(rw, false, deadline, false);
}

int wf_rwlock_read_acquire(wf_rwlock_t *rw)
{
    return acquire(rw, false, WF_FOREVER, false);
}

int wf_rwlock_try_read_acquire(wf_rwlock_t *rw)
{
    return acquire(rw, false, WF_FOREVER, true);
}

int wf_rwlock_read_release(wf_rwlock_t *rw)
{
    return release(rw, false);
}

int wf_rwlock_write_acquire_until(wf_rwlock_t *rw, int64_t deadline)
{
    return acquire(rw, true, deadline, false);
}

int wf_rwlock_write_acquire(wf_rwlock_t *rw)
{
    return acquire(rw, true, WF_FOREVER, false);
}

int wf_rwlock_try_write_acquire(wf_rwlock_t *rw)
{
    return acquire(rw, true, WF_FOREVER, true);
}

int wf_rwlock_write_release(wf_rwlock_t *rw)
{
    return release(rw, true);
}

int wf_rwlock_state(wf_rwlock_t *rw)
{
    if (!rw)
        return -EINVAL;
    wf__rwlock *l = rw_of(rw);
    wf__spin_lock(&l->sl);
    int e = l->dead == WF__SYNC_DEAD ? -EINVAL : l->writer ? WF_RWLOCK_WRITER : (int)l->readers;
    wf__spin_unlock(&l->sl);
    return e;
}
