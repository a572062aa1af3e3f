/* barrier.c - the barrier (asyncio.Barrier, with threading.Barrier's rule
 * that a party leaving early breaks it).
 *
 * State: parties, how many have arrived this round, the broken flag and the
 * waiting parties (each node carries its arrival index and, once decided,
 * its outcome), under one spinlock.
 *
 * A ROUND. Parties arrive and wait. The last arrival "trips" the barrier: it
 * pops every waiting node, writes its outcome (the arrival index) into it
 * and decides it, then starts the next round (count = 0) before anyone runs,
 * so asyncio's "draining" state is not needed: a woken party that comes
 * straight back waits for the next round.
 *
 * LEAVING. A party whose wait ends by cancellation or deadline looks, under
 * the lock, at its node's outcome:
 *   - still undecided: it left before the round tripped; it breaks the
 *     barrier (every waiter fails with -EPIPE) and returns its own error;
 *   - an index: the round tripped at the same moment (the tripper lost the
 *     CAS to the timer or the canceller, but had already counted this party
 *     in): it passed, and returns its index like everybody else of the round;
 *   - -EPIPE: the barrier was broken meanwhile; it returns its own error.
 * Exactly one story holds for each round: it trips for all its parties, or
 * it breaks for all of them.
 */
#include "wait.h"

#include <limits.h>
#include <weft/sync.h>

typedef struct wf__barrier {
    uint32_t dead;
    wf__spinlock sl;
    uint32_t parties; /* 0 only in storage never initialised */
    uint32_t count;   /* arrived this round */
    uint32_t broken;
    uint32_t nwait;
    wf__link waiters; /* bar_node */
} wf__barrier;

_Static_assert(sizeof(wf__barrier) <= sizeof(wf_barrier_t), "wf_barrier_t storage too small");
_Static_assert(_Alignof(wf__barrier) <= _Alignof(wf_barrier_t), "wf_barrier_t alignment");

#define UNDECIDED INT_MIN

typedef struct bar_node {
    wf__waitnode n;
    int index;
    int outcome; /* UNDECIDED, an index, or -EPIPE: written under the lock */
} bar_node;

static inline wf__barrier *bar_of(wf_barrier_t *b)
{
    return (wf__barrier *)(void *)b->opaque;
}

static inline bool usable(wf__barrier *b)
{
    return b->dead != WF__SYNC_DEAD && b->parties;
}

/* Lock held. Pop every waiter, giving each its index (trip) or -EPIPE. */
static void release_all(wf__barrier *b, bool trip, wf__batch *out)
{
    wf__link *l;
    while (b->nwait && (l = wf__list_pop_front(&b->waiters)) != NULL) {
        bar_node *nd = wf__container_of(l, bar_node, n.link);
        wf__task *t = nd->n.task;
        nd->outcome = trip ? nd->index : -EPIPE; /* before the CAS */
        wf__decision d = wf__park_decide(t, nd->n.seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST)
            continue; /* leaving: it reads its outcome under the lock */
        b->nwait--;
        if (d == WF__DECIDED_PARKED)
            wf__batch_push(out, t);
    }
    b->count = 0;
}

int wf_barrier_init(wf_barrier_t *bb, unsigned parties)
{
    if (!bb || parties == 0 || parties > INT32_MAX)
        return -EINVAL;
    wf__barrier *b = bar_of(bb);
    b->dead = 0;
    wf__spin_init(&b->sl);
    b->parties = parties;
    b->count = 0;
    b->broken = 0;
    b->nwait = 0;
    wf__list_init(&b->waiters);
    return 0;
}

int wf_barrier_destroy(wf_barrier_t *bb)
{
    if (!bb)
        return -EINVAL;
    wf__barrier *b = bar_of(bb);
    wf__spin_lock(&b->sl);
    int e = 0;
    if (!usable(b))
        e = -EINVAL;
    else if (b->nwait)
        e = -EBUSY;
    else
        b->dead = WF__SYNC_DEAD;
    wf__spin_unlock(&b->sl);
    return e;
}

int wf_barrier_wait_until(wf_barrier_t *bb, int64_t deadline)
{
    if (!bb || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__barrier *b = bar_of(bb);
    wf__batch out;
    wf__batch_init(&out);
    wf__spin_lock(&b->sl);
    if (!usable(b)) {
        wf__spin_unlock(&b->sl);
        return -EINVAL;
    }
    if (b->broken) {
        wf__spin_unlock(&b->sl);
        return -EPIPE;
    }
    int index = (int)b->count++;
    if (b->count == b->parties) {
        release_all(b, true, &out);
        wf__spin_unlock(&b->sl);
        wf__sync_ready_batch(&out);
        return index;
    }
    bar_node node;
    node.n.data = NULL;
    node.index = index;
    node.outcome = UNDECIDED;
    unsigned r = wf__sync_wait(&b->sl, &b->waiters, &b->nwait, &node.n, self, deadline, 0);
    if (r == WF__R_WOKEN)
        return node.outcome;
    int result = wf__park_errno(r);
    if (node.outcome == UNDECIDED) {
        /* Left before the round tripped: the barrier breaks. */
        b->broken = 1;
        release_all(b, false, &out);
    } else if (node.outcome >= 0) {
        result = node.outcome; /* tripped at the same moment: passed */
    }
    wf__spin_unlock(&b->sl);
    wf__sync_ready_batch(&out);
    return result;
}

int wf_barrier_wait(wf_barrier_t *b)
{
    return wf_barrier_wait_until(b, WF_FOREVER);
}

static int break_or_reset(wf_barrier_t *bb, bool broken)
{
    if (!bb)
        return -EINVAL;
    wf__barrier *b = bar_of(bb);
    wf__batch out;
    wf__batch_init(&out);
    wf__spin_lock(&b->sl);
    if (!usable(b)) {
        wf__spin_unlock(&b->sl);
        return -EINVAL;
    }
    b->broken = broken;
    release_all(b, false, &out);
    wf__spin_unlock(&b->sl);
    wf__sync_ready_batch(&out);
    return 0;
}

int wf_barrier_abort(wf_barrier_t *b)
{
    return break_or_reset(b, true);
}

int wf_barrier_reset(wf_barrier_t *b)
{
    return break_or_reset(b, false);
}

static int query(wf_barrier_t *bb, int what)
{
    if (!bb)
        return -EINVAL;
    wf__barrier *b = bar_of(bb);
    wf__spin_lock(&b->sl);
    int v = -EINVAL;
    if (usable(b))
        v = what == 0 ? (int)b->parties : what == 1 ? (int)b->count : (int)b->broken;
    wf__spin_unlock(&b->sl);
    return v;
}

int wf_barrier_parties(wf_barrier_t *b)
{
    return query(b, 0);
}

int wf_barrier_n_waiting(wf_barrier_t *b)
{
    return query(b, 1);
}

int wf_barrier_broken(wf_barrier_t *b)
{
    return query(b, 2);
}
