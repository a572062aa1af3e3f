/* inject.h - the shared inject queue: tasks made runnable by threads that are
 * not workers (the poller, timer callbacks on the poller, foreign threads),
 * overflow from full local rings, and tasks spawned or woken when a worker's
 * own queue is not the right place.
 *
 * A spinlock-protected FIFO linked through task->qnext, plus an atomic
 * length that workers read without the lock to skip an empty queue. Batches
 * go in and out under one lock acquisition.
 */
#ifndef WF_INJECT_H
#define WF_INJECT_H

#include "spinlock.h"
#include "task.h"

typedef struct wf__inject {
    wf__spinlock lock;
    wf__task *head, *tail;
    /* Written under the lock; read without it as an emptiness hint
     * (relaxed: a worker that misses a concurrent push is covered by the
     * pusher's notify, see idle.h). */
    WF_ALIGNED_CL _Atomic size_t len;
} wf__inject;

void wf__inject_init(wf__inject *q);

static inline bool wf__inject_maybe_empty(wf__inject *q)
{
    return atomic_load_explicit(&q->len, memory_order_relaxed) == 0;
}

void wf__inject_push_batch(wf__inject *q, wf__batch *b);
void wf__inject_push(wf__inject *q, wf__task *t);

/* Take up to `max` tasks into `out`. Returns how many were taken. */
unsigned wf__inject_pop_batch(wf__inject *q, unsigned max, wf__batch *out);

#endif
