/* runq.c - the stealing side of the local run queue (runq.h). */
#include "runq.h"

void wf__runq_init(wf__runq *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    atomic_init(&q->plain_end, 0);
    atomic_init(&q->next, NULL);
    for (uint32_t i = 0; i < WF__RUNQ_CAP; i++)
        atomic_init(&q->ring[i], NULL);
}

wf__task *wf__runq_steal_into(wf__runq *victim, wf__runq *dst)
{
    /* dst is the caller's own queue: its tail is ours to write. */
    uint32_t dtail = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    uint32_t dhead = atomic_load_explicit(&dst->head, memory_order_acquire);
    wf__assert(dtail == dhead, "a thief steals only into an empty queue");

    uint32_t n;
    for (;;) {
        /* acquire on both: head pairs with other consumers' release CAS;
         * tail pairs with the owner's release store, which publishes the
         * slots and the tasks' fields. */
        uint32_t h = atomic_load_explicit(&victim->head, memory_order_acquire);
        uint32_t tl = atomic_load_explicit(&victim->tail, memory_order_acquire);
        n = tl - h;
        n -= n / 2;
        if (n == 0)
            return NULL;
        if (n > WF__RUNQ_CAP / 2)
            continue; /* head and tail read at different moments: reread */
        for (uint32_t i = 0; i < n; i++) {
            wf__task *t = atomic_load_explicit(&victim->ring[(h + i) & WF__RUNQ_MASK],
                                               memory_order_relaxed);
            atomic_store_explicit(&dst->ring[(dtail + i) & WF__RUNQ_MASK], t, memory_order_relaxed);
        }
        /* acq_rel: claiming the run frees the victim's slots (release) and
         * orders our reads of them before anyone reuses them. */
        if (atomic_compare_exchange_strong_explicit(&victim->head, &h, h + n, memory_order_acq_rel,
                                                    memory_order_relaxed))
            break;
    }
    /* Keep the last stolen task to run now; publish the rest in dst. */
    n--;
    wf__task *run = atomic_load_explicit(&dst->ring[(dtail + n) & WF__RUNQ_MASK], memory_order_relaxed);
    if (n) {
        atomic_store_explicit(&dst->tail, dtail + n, memory_order_release);
        wf__runq_mark_plain(dst); /* stolen: spread further at once if need be */
    }
    return run;
}

wf__task *wf__runq_steal_next(wf__runq *victim)
{
    wf__task *t = atomic_load_explicit(&victim->next, memory_order_acquire);
    /* acquire on success: pairs with the owner's acq_rel exchange that put
     * the task there. */
    if (t && atomic_compare_exchange_strong_explicit(&victim->next, &t, NULL, memory_order_acquire,
                                                     memory_order_relaxed))
        return t;
    return NULL;
}
