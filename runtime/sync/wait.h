/* wait.h - the wait step shared by every primitive of runtime/sync.
 *
 * Each primitive is a state (a lock's owner, a semaphore's count, a queue's
 * buffer) and one or more wait lists, all under one wf__spinlock, plus
 * `nwait`: the number of wait nodes published on its lists and not yet
 * finished with. The protocol (park.h, "A WAIT" and "WAKING"), as used
 * here:
 *
 *  1. Under the lock the caller finds it must wait, and calls
 *     wf__sync_wait(): the node is published (park_begin, push, nwait++),
 *     the lock dropped, and the task parks.
 *  2. A waker, under the lock, takes nodes from the front of a list and
 *     decides them (wf__sync_wake_first / wf__sync_wake_all). Whatever it
 *     hands over (a lock, a permit, an item) it writes into the node BEFORE
 *     the deciding CAS, and counts as given only if that CAS wins: the
 *     transfer happens exactly at the CAS. A won node is uncounted (nwait--)
 *     by the waker; the woken task never touches the object again.
 *  3. A wait that ended otherwise (timeout, cancellation) took nothing: the
 *     waiter re-takes the lock, unlinks its node if a waker has not already
 *     popped it (one that popped it lost its CAS and moved on to the next
 *     node), and uncounts it itself.
 *
 * So at any moment nwait counts the tasks that may still touch the object
 * through a wait, which is what makes destroy's -EBUSY check sound; and
 * because destroy takes the lock, it also waits out a waker that is still
 * inside its critical section when the woken task (already running on
 * another worker) destroys the object. No waker touches the object after
 * its final unlock.
 */
#ifndef WF_SYNC_WAIT_H
#define WF_SYNC_WAIT_H

#include "park.h"
#include "runtime.h"

#include <errno.h>
#include <weft/time.h>

/* Objects in user storage are valid when zero-filled (the _INIT
 * initializers); a destroyed one carries this mark until re-initialised. */
#define WF__SYNC_DEAD 0xdead5e1fu

/* Zero-filled storage has a NULL list head: make it an empty list. The
 * object's lock must be held. */
static inline void wf__sync_list_ready(wf__link *l)
{
    if (wf__unlikely(!l->next))
        wf__list_init(l);
}

/* A deadline argument is WF_FOREVER or >= 0. */
static inline bool wf__sync_deadline_ok(int64_t deadline)
{
    return deadline >= WF_FOREVER;
}

/* Step 1. `lk` held; `node` on the caller's stack. Returns the commit's
 * reason. WOKEN: the lock is NOT held; the waker unlinked and uncounted the
 * node and wrote node->data. Anything else: the lock IS held again, the node
 * is unlinked and uncounted, and the caller may look at the state again
 * (re-dispatch, compute its answer) before it unlocks. */
static inline unsigned wf__sync_wait(wf__spinlock *lk, wf__link *list, uint32_t *nwait, wf__waitnode *node,
                                     wf__task *self, int64_t deadline, unsigned flags)
{
    node->task = self;
    node->seq = wf__park_begin(self, flags);
    wf__list_push_back(list, &node->link);
    (*nwait)++;
    wf__spin_unlock(lk);
    unsigned r = wf__park_commit(self, node->seq, deadline);
    if (r == WF__R_WOKEN)
        return r;
    wf__spin_lock(lk);
    if (wf__link_linked(&node->link))
        wf__list_unlink(&node->link);
    (*nwait)--;
    return r;
}

/* Step 2 for one waiter. `list`'s lock held. Decide the first node that can
 * still be woken, handing it `data`. Returns the woken task (for identity
 * only: a lock's new owner), or NULL if the list ran out; the node is
 * unlinked and uncounted. *queue gets the task to make runnable after
 * unlocking (wf__ready), or NULL when it had not yet switched out.
 * Nothing in a node is read after its deciding CAS: from then on the woken
 * task may be running, and return from the frame the node lives in. */
static inline wf__task *wf__sync_wake_first(wf__link *list, uint32_t *nwait, void *data, wf__task **queue)
{
    *queue = NULL;
    wf__link *l;
    while ((l = wf__list_pop_front(list)) != NULL) {
        wf__waitnode *nd = wf__container_of(l, wf__waitnode, link);
        wf__task *t = nd->task;
        nd->data = data; /* before the deciding CAS, which releases it */
        wf__decision d = wf__park_decide(t, nd->seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST)
            continue; /* its wait ended otherwise: it will uncount itself */
        (*nwait)--;
        if (d == WF__DECIDED_PARKED)
            *queue = t;
        return t;
    }
    return NULL;
}

/* Step 2 for every waiter of `list` (lock held): returns how many woke;
 * the tasks to make runnable are added to `out` (wf__ready_batch after
 * unlocking). */
static inline unsigned wf__sync_wake_all(wf__link *list, uint32_t *nwait, void *data, wf__batch *out)
{
    unsigned n = 0;
    wf__link *l;
    while ((l = wf__list_pop_front(list)) != NULL) {
        wf__waitnode *nd = wf__container_of(l, wf__waitnode, link);
        wf__task *t = nd->task;
        nd->data = data;
        wf__decision d = wf__park_decide(t, nd->seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST)
            continue;
        (*nwait)--;
        n++;
        if (d == WF__DECIDED_PARKED)
            wf__batch_push(out, t);
    }
    return n;
}

/* Make the tasks of a wake-up runnable: after the object's lock is dropped. */
static inline void wf__sync_ready(wf__task *t)
{
    if (t)
        wf__ready(t);
}

static inline void wf__sync_ready_batch(wf__batch *b)
{
    if (b->n)
        wf__ready_batch(b->head->rt, b);
}

#endif
