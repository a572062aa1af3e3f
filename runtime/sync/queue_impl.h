/* queue_impl.h - the queue's state and its locked operations, shared by
 * queue.c (put, get, join, shutdown) and select.c.
 *
 * STATE, all under q->lock:
 *   buffer   FIFO: a ring of `cap` pointers from `head`; LIFO: a stack of
 *            `cap` pointers; PRIORITY: a binary min-heap of `cap` entries,
 *            each an item and its insertion number (equal items come out in
 *            insertion order). A bounded queue's buffer has exactly its
 *            capacity; an unbounded one starts at 16 slots and doubles.
 *   getters  tasks waiting to take an item. Non-empty only while the buffer
 *            is empty: a put offers its item to the first getter whose wait
 *            it wins before it touches the buffer.
 *   putters  tasks waiting for room, each node holding its item. Non-empty
 *            only while a bounded buffer is full: a get that frees a slot
 *            pulls the first putter's item in, if it wins that putter's
 *            wait.
 *   joiners  tasks in wf_queue_join().
 *   nwait    nodes published on the three lists and not yet finished with
 *            (runtime/sync/wait.h); a select counts one per case.
 *   unfinished  items put and not yet task_done()'d.
 *
 * OWNERSHIP at the deciding CAS (wait.h): a getter's node receives its item,
 * and a putter's item enters the buffer, only when the waker's CAS wins.
 * The waker writes into the node before the CAS, including `fired` ("this
 * node is the one that happened"); when the CAS loses it clears `fired`
 * again, still under the lock. The owner of a node reads `fired` under the
 * same lock: that is how a select, whose nodes on several queues share one
 * wait, learns which case happened (exactly one has `fired`).
 */
#ifndef WF_SYNC_QUEUE_IMPL_H
#define WF_SYNC_QUEUE_IMPL_H

#include "wait.h"

#include <stdlib.h>
#include <string.h>
#include <weft/queue.h>

/* A wait node of a queue: a getter's, a putter's, or a select case's. */
typedef struct wf__qnode {
    wf__waitnode n; /* n.data: the item (a putter's offer; a getter's prize) */
    int result;     /* 0, or -ESHUTDOWN: written by the waker */
    bool fired;     /* written by the waker that won, under the lock */
} wf__qnode;

typedef struct wf__pent {
    void *item;
    uint64_t seq;
} wf__pent;

struct wf_queue {
    wf__spinlock lock;
    uint8_t kind; /* wf_queue_kind_t */
    uint8_t shut; /* 0, or 1 + wf_queue_shutdown_mode_t (the strongest so far) */
    uint32_t nwait;
    size_t count;
    size_t head; /* FIFO: slot of the oldest item */
    size_t cap;  /* slots in buf */
    void *buf;
    size_t unfinished;
    uint64_t pseq; /* PRIORITY: next insertion number */
    wf_queue_cmp_fn cmp;
    size_t max; /* capacity; 0 for unbounded */
    wf__link getters, putters, joiners;
};

/* put_locked's answer when an unbounded queue must grow first (outside the
 * lock, wf__queue_grow). */
#define WF__Q_GROW 1

#define WF__Q_INITIAL_CAP 16

static inline size_t wf__queue_esize(const struct wf_queue *q)
{
    return q->kind == WF_QUEUE_PRIORITY ? sizeof(wf__pent) : sizeof(void *);
}

/* --- the buffer (lock held) --------------------------------------------- */

static inline bool wf__pent_before(const struct wf_queue *q, const wf__pent *a, const wf__pent *b)
{
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

static inline void wf__heap_push(struct wf_queue *q, void *item)
{
    wf__pent *h = q->buf;
    wf__pent e = {item, q->pseq++};
    size_t i = q->count;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!wf__pent_before(q, &e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static inline void *wf__heap_pop(struct wf_queue *q)
{
    wf__pent *h = q->buf;
    void *top = h[0].item;
    size_t n = q->count - 1; /* entries left after the pop */
    wf__pent last = h[n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && wf__pent_before(q, &h[c + 1], &h[c]))
            c++;
        if (!wf__pent_before(q, &h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (n)
        h[i] = last;
    return top;
}

/* count < cap */
static inline void wf__buf_push(struct wf_queue *q, void *item)
{
    if (wf__likely(q->kind == WF_QUEUE_FIFO)) {
        size_t i = q->head + q->count;
        if (i >= q->cap)
            i -= q->cap;
        ((void **)q->buf)[i] = item;
    } else if (q->kind == WF_QUEUE_LIFO) {
        ((void **)q->buf)[q->count] = item;
    } else {
        wf__heap_push(q, item);
    }
    q->count++;
}

/* count > 0 */
static inline void *wf__buf_pop(struct wf_queue *q)
{
    void *item;
    if (wf__likely(q->kind == WF_QUEUE_FIFO)) {
        item = ((void **)q->buf)[q->head];
        if (++q->head == q->cap)
            q->head = 0;
    } else if (q->kind == WF_QUEUE_LIFO) {
        item = ((void **)q->buf)[q->count - 1];
    } else {
        item = wf__heap_pop(q);
    }
    q->count--;
    return item;
}

/* --- handing over (lock held) --------------------------------------------- */

/* Give `item` to the first getter whose wait we win. */
static inline bool wf__queue_give(struct wf_queue *q, void *item, wf__task **wake)
{
    wf__link *l;
    while ((l = wf__list_pop_front(&q->getters)) != NULL) {
        wf__qnode *nd = wf__container_of(l, wf__qnode, n.link);
        wf__task *t = nd->n.task;
        nd->n.data = item;
        nd->result = 0;
        nd->fired = true;
        wf__decision d = wf__park_decide(t, nd->n.seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST) {
            nd->fired = false; /* its wait ended otherwise: the item stays ours */
            continue;
        }
        q->nwait--;
        if (d == WF__DECIDED_PARKED)
            *wake = t;
        return true;
    }
    return false;
}

/* A slot just freed: pull in the first putter whose wait we win. */
static inline void wf__queue_take_putter(struct wf_queue *q, wf__task **wake)
{
    wf__link *l;
    while ((l = wf__list_pop_front(&q->putters)) != NULL) {
        wf__qnode *nd = wf__container_of(l, wf__qnode, n.link);
        wf__task *t = nd->n.task;
        void *item = nd->n.data; /* read before the CAS; ours only if it wins */
        nd->result = 0;
        nd->fired = true;
        wf__decision d = wf__park_decide(t, nd->n.seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST) {
            nd->fired = false;
            continue;
        }
        q->nwait--;
        wf__buf_push(q, item);
        q->unfinished++;
        if (d == WF__DECIDED_PARKED)
            *wake = t;
        return;
    }
}

/* Fail every node of `list` with -ESHUTDOWN. */
static inline void wf__queue_fail_all(struct wf_queue *q, wf__link *list, wf__batch *out)
{
    wf__link *l;
    while ((l = wf__list_pop_front(list)) != NULL) {
        wf__qnode *nd = wf__container_of(l, wf__qnode, n.link);
        wf__task *t = nd->n.task;
        nd->result = -ESHUTDOWN;
        nd->fired = true;
        wf__decision d = wf__park_decide(t, nd->n.seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST) {
            nd->fired = false;
            continue;
        }
        q->nwait--;
        if (d == WF__DECIDED_PARKED)
            wf__batch_push(out, t);
    }
}

/* --- the operations (lock held) ------------------------------------------- */

/* 0 (done; *wake may name a getter to make runnable), -ESHUTDOWN, -EAGAIN
 * (a bounded queue is full) or WF__Q_GROW. */
static inline int wf__queue_put_locked(struct wf_queue *q, void *item, wf__task **wake)
{
    if (wf__unlikely(q->shut))
        return -ESHUTDOWN;
    if (q->nwait && !wf__list_empty(&q->getters) && wf__queue_give(q, item, wake)) {
        q->unfinished++;
        return 0;
    }
    if (wf__likely(q->count < q->cap)) {
        wf__buf_push(q, item);
        q->unfinished++;
        return 0;
    }
    return q->max ? -EAGAIN : WF__Q_GROW;
}

/* 0 (done; *wake may name a putter to make runnable), -ESHUTDOWN (shut down
 * and empty) or -EAGAIN (empty). */
static inline int wf__queue_get_locked(struct wf_queue *q, void **item, wf__task **wake)
{
    if (wf__likely(q->count)) {
        *item = wf__buf_pop(q);
        if (q->nwait && !wf__list_empty(&q->putters))
            wf__queue_take_putter(q, wake);
        return 0;
    }
    return q->shut ? -ESHUTDOWN : -EAGAIN;
}

/* Whether a put (`put`) or a get would complete (or fail with -ESHUTDOWN)
 * without waiting. An unbounded queue is always ready for a put, though it
 * may have to grow first. */
static inline bool wf__queue_ready_locked(const struct wf_queue *q, bool put)
{
    if (q->shut)
        return true;
    return put ? (q->count < q->cap || !q->max) : q->count > 0;
}

/* Lock NOT held. Make room in a full unbounded queue: 0 (grown, or no longer
 * needed), -ENOMEM. */
int wf__queue_grow(struct wf_queue *q);

#endif
