/* inject.c - the shared inject queue (inject.h). */
#include "inject.h"

void wf__inject_init(wf__inject *q)
{
    wf__spin_init(&q->lock);
    q->head = q->tail = NULL;
    atomic_init(&q->len, 0);
}

void wf__inject_push_batch(wf__inject *q, wf__batch *b)
{
    if (!b->n)
        return;
    wf__spin_lock(&q->lock);
    if (q->tail)
        q->tail->qnext = b->head;
    else
        q->head = b->head;
    q->tail = b->tail;
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + b->n,
                          memory_order_relaxed);
    wf__spin_unlock(&q->lock);
    wf__batch_init(b);
}

void wf__inject_push(wf__inject *q, wf__task *t)
{
    wf__batch b;
    wf__batch_init(&b);
    wf__batch_push(&b, t);
    wf__inject_push_batch(q, &b);
}

unsigned wf__inject_pop_batch(wf__inject *q, unsigned max, wf__batch *out)
{
    if (wf__inject_maybe_empty(q))
        return 0;
    unsigned n = 0;
    wf__spin_lock(&q->lock);
    while (n < max && q->head) {
        wf__task *t = q->head;
        q->head = t->qnext;
        wf__batch_push(out, t);
        n++;
    }
    if (!q->head)
        q->tail = NULL;
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - n,
                          memory_order_relaxed);
    wf__spin_unlock(&q->lock);
    return n;
}
