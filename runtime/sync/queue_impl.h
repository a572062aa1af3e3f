/* queue_impl.h - the queue's state and its locked operations, shared by
 * queue.c (put, get, join, shutdown) and select.c.
 *
 * THREE SHAPES (q->mode), chosen at creation:
 *   RING        a bounded FIFO queue (asyncio.Queue(n), Go's make(chan T, n))
 *               when the build option queue_ring is on (wf__queue_use_ring,
 *               queue.c says why it is off by default): a lock-free ring
 *               (ring.h) that puts and gets use without the lock while
 *               nobody waits; the lock and the lists below only when someone
 *               must wait or be woken.
 *   LOCKED      LIFO, priority, unbounded FIFO queues, and bounded FIFO ones
 *               without the ring: every operation under the lock, on `buf`.
 *   RENDEZVOUS  Go's unbuffered channel (make(chan T)): no buffer at all; a
 *               put completes only when a getter takes its item, handed from
 *               the putter's node to the getter at the deciding CAS.
 *
 * STATE, under q->lock (the ring's words excepted, ring.h):
 *   buffer   RING: the ring; frozen (ring.h, WAIT) whenever a lock holder
 *            reads or changes it, so that it behaves as a plain buffer here.
 *            LOCKED: FIFO, a ring of `cap` pointers from `lhead`; LIFO, a
 *            stack; PRIORITY, a binary min-heap of `cap` entries, each an
 *            item and its insertion number (equal items come out in
 *            insertion order). Bounded: exactly its capacity; unbounded:
 *            16 slots, doubling.
 *   getters  tasks waiting to take an item. Non-empty only while the buffer
 *            is empty: a put offers its item to the first getter whose wait
 *            it wins before it touches the buffer.
 *   putters  tasks waiting for room (RENDEZVOUS: for a getter), each node
 *            holding its item. Non-empty only while a bounded buffer is
 *            full: a get that frees a slot pulls the first putter's item in,
 *            if it wins that putter's wait.
 *   joiners  tasks in wf_queue_join().
 *   nwait    nodes published on the three lists and not yet finished with
 *            (runtime/sync/wait.h); a select counts one per case.
 *   lput, done   puts counted under the lock (every put of a LOCKED or
 *            RENDEZVOUS queue; a RING queue's puts that went straight to a
 *            getter), and task_done() calls plus items removed by an
 *            immediate shutdown. Items put and not yet done ("unfinished",
 *            for join) = lput + (RING: every position ever claimed at the
 *            ring's tail) - done: the ring's fast path counts its puts by
 *            moving `tail`, with no counter of its own to share.
 *
 * OWNERSHIP at the deciding CAS (wait.h): a getter's node receives its item,
 * and a putter's item enters the buffer (or goes to a rendezvous getter),
 * only when the waker's CAS wins. The waker writes into the node before the
 * CAS, including `fired` ("this node is the one that happened"); when the
 * CAS loses it clears `fired` again, still under the lock. The owner of a
 * node reads `fired` under the same lock: that is how a select, whose nodes
 * on several queues share one wait, learns which case happened (exactly one
 * has `fired`). A waker skips the nodes of its own task (`self`): a select
 * with a get and a put case on one rendezvous channel must not meet itself.
 */
#ifndef WF_SYNC_QUEUE_IMPL_H
#define WF_SYNC_QUEUE_IMPL_H

#include "ring.h"
#include "wait.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <weft/queue.h>

enum { WF__QM_RING = 0, WF__QM_LOCKED = 1, WF__QM_RENDEZVOUS = 2 };

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
    /* The lock and what it guards, the fields every operation of a locked
     * queue touches first in one line (64 bytes on x86-64): a locked put or
     * get touches this line, and the buffer. mode and kind are immutable
     * (read without the lock). */
    WF_ALIGNED_CL wf__spinlock lock;
    uint8_t shut; /* 0, or 1 + wf_queue_shutdown_mode_t (the strongest so far) */
    uint8_t mode; /* WF__QM_*, immutable */
    uint8_t kind; /* wf_queue_kind_t, immutable */
    uint32_t nwait;
    size_t count; /* LOCKED: items in buf */
    size_t lhead; /* LOCKED FIFO: slot of the oldest item */
    size_t cap;   /* LOCKED: slots in buf */
    void *buf;    /* LOCKED */
    uint64_t lput, done;
    /* Under the lock too, used less often. */
    wf__link getters, putters, joiners;
    uint64_t pseq;       /* PRIORITY: next insertion number */
    wf_queue_cmp_fn cmp; /* immutable */
    size_t max;          /* immutable: capacity, 0 (RENDEZVOUS) or 1 ..
                            WF_QUEUE_MAX_CAPACITY, or WF_QUEUE_UNBOUNDED */
    /* RING: its geometry (immutable: a line nobody writes), then the
     * producers' word and the consumers' word (ring.h), each on a line of
     * its own so that the two sides do not share one. */
    WF_ALIGNED_CL wf__ring ring;
    WF_ALIGNED_CL _Atomic uint64_t tail;
    WF_ALIGNED_CL _Atomic uint64_t head;
};

_Static_assert(offsetof(struct wf_queue, done) + sizeof(uint64_t) <= WF_CACHELINE,
               "a locked operation's fields share the lock's line");

/* wf_queue_create: bounded FIFO queues as RING (true) or LOCKED (queue.c). */
extern bool wf__queue_use_ring;

/* put_locked's answer when an unbounded queue must grow first (outside the
 * lock, wf__queue_grow). */
#define WF__Q_GROW 1

#define WF__Q_INITIAL_CAP 16

static inline size_t wf__queue_esize(const struct wf_queue *q)
{
    return q->kind == WF_QUEUE_PRIORITY ? sizeof(wf__pent) : sizeof(void *);
}

/* --- the LOCKED buffer (lock held) ------------------------------------------ */

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

/* --- the buffer, whichever it is (lock held; a RING frozen) ------------------ */

/* Items in the buffer. */
static inline uint64_t wf__queue_count_locked(const struct wf_queue *q)
{
    if (q->mode == WF__QM_RING)
        return wf__ring_count_locked(&q->ring, &q->tail, &q->head);
    return q->count; /* 0 for a rendezvous channel */
}

/* There is room (count < capacity); never for a rendezvous channel. */
static inline void wf__buf_push(struct wf_queue *q, void *item)
{
    if (q->mode == WF__QM_RING) {
        wf__ring_push_locked(&q->ring, &q->tail, item);
        return; /* counted by the ring's tail */
    }
    if (q->kind == WF_QUEUE_FIFO) {
        size_t i = q->lhead + q->count;
        if (i >= q->cap)
            i -= q->cap;
        ((void **)q->buf)[i] = item;
    } else if (q->kind == WF_QUEUE_LIFO) {
        ((void **)q->buf)[q->count] = item;
    } else {
        wf__heap_push(q, item);
    }
    q->count++;
    q->lput++;
}

/* count > 0 */
static inline void *wf__buf_pop(struct wf_queue *q)
{
    if (q->mode == WF__QM_RING)
        return wf__ring_pop_locked(&q->ring, &q->head);
    void *item;
    if (q->kind == WF_QUEUE_FIFO) {
        item = ((void **)q->buf)[q->lhead];
        if (++q->lhead == q->cap)
            q->lhead = 0;
    } else if (q->kind == WF_QUEUE_LIFO) {
        item = ((void **)q->buf)[q->count - 1];
    } else {
        item = wf__heap_pop(q);
    }
    q->count--;
    return item;
}

/* Items ever put (see lput above). */
static inline uint64_t wf__queue_puts_locked(const struct wf_queue *q)
{
    uint64_t n = q->lput;
    if (q->mode == WF__QM_RING) {
        /* relaxed: any value of the word will do, it only grows (modulo
         * the wrap ring.h excludes); the lock orders our view of lput. */
        uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed) & ~WF__QW_FLAGS;
        n += wf__ring_total(&q->ring, t);
    }
    return n;
}

/* --- the ring's flags (lock held) -------------------------------------------- */

/* Entering the slow path of a RING queue: freeze it (ring.h, F1). */
static inline void wf__queue_freeze(struct wf_queue *q)
{
    if (q->mode == WF__QM_RING)
        wf__ring_freeze(&q->tail, &q->head);
}

/* Nobody waits in a put or a get: the fast path may take over again (ring.h,
 * F2). Callers thaw only after an operation that found nobody waiting,
 * rather than after every wake-up: a ping-pong through a queue would
 * otherwise freeze and thaw it on every item, 4 locked instructions each
 * time, for nothing. */
static inline void wf__queue_thaw_if_idle(struct wf_queue *q)
{
    if (q->mode == WF__QM_RING && wf__list_empty(&q->getters) && wf__list_empty(&q->putters) &&
        wf__ring_frozen(&q->tail))
        wf__ring_thaw(&q->tail, &q->head);
}

static inline bool wf__queue_nobody_waits(const struct wf_queue *q)
{
    return wf__list_empty(&q->getters) && wf__list_empty(&q->putters);
}

/* --- handing over (lock held) --------------------------------------------- */

/* Whether `list` holds a node of a task other than `self`. */
static inline bool wf__queue_has_other(const wf__link *list, const wf__task *self)
{
    for (const wf__link *l = list->next; l != list; l = l->next)
        if (wf__container_of(l, wf__qnode, n.link)->n.task != self)
            return true;
    return false;
}

/* Give `item` to the first getter (not of `self`) whose wait we win. */
static inline bool wf__queue_give(struct wf_queue *q, void *item, const wf__task *self, wf__task **wake)
{
    wf__link *l = q->getters.next;
    while (l != &q->getters) {
        wf__link *next = l->next;
        wf__qnode *nd = wf__container_of(l, wf__qnode, n.link);
        wf__task *t = nd->n.task;
        if (t == self) {
            l = next;
            continue;
        }
        wf__list_unlink(l);
        nd->n.data = item;
        nd->result = 0;
        nd->fired = true;
        wf__decision d = wf__park_decide(t, nd->n.seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST) {
            nd->fired = false; /* its wait ended otherwise: the item stays ours */
            l = next;
            continue;
        }
        q->nwait--;
        if (d == WF__DECIDED_PARKED)
            *wake = t;
        return true;
    }
    return false;
}

/* Take the item of the first putter (not of `self`) whose wait we win. */
static inline bool wf__queue_pull_putter(struct wf_queue *q, const wf__task *self, void **item, wf__task **wake)
{
    wf__link *l = q->putters.next;
    while (l != &q->putters) {
        wf__link *next = l->next;
        wf__qnode *nd = wf__container_of(l, wf__qnode, n.link);
        wf__task *t = nd->n.task;
        if (t == self) {
            l = next;
            continue;
        }
        wf__list_unlink(l);
        void *x = nd->n.data; /* read before the CAS; ours only if it wins */
        nd->result = 0;
        nd->fired = true;
        wf__decision d = wf__park_decide(t, nd->n.seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST) {
            nd->fired = false;
            l = next;
            continue;
        }
        q->nwait--;
        if (d == WF__DECIDED_PARKED)
            *wake = t;
        *item = x;
        return true;
    }
    return false;
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

/* --- the operations (lock held; a RING frozen) ---------------------------- */

/* 0 (done; *wake may name a getter to make runnable), -ESHUTDOWN, -EAGAIN
 * (a bounded queue is full; a rendezvous channel has no getter) or
 * WF__Q_GROW. `self`: the calling task (NULL outside a fiber). */
static inline int wf__queue_put_locked(struct wf_queue *q, void *item, const wf__task *self, wf__task **wake)
{
    if (wf__unlikely(q->shut))
        return -ESHUTDOWN;
    if (q->nwait && !wf__list_empty(&q->getters) && wf__queue_give(q, item, self, wake)) {
        q->lput++;
        return 0;
    }
    if (q->mode == WF__QM_RENDEZVOUS)
        return -EAGAIN;
    if (wf__likely(wf__queue_count_locked(q) < (q->mode == WF__QM_RING ? q->ring.cap : q->cap))) {
        wf__buf_push(q, item);
        return 0;
    }
    return q->max != WF_QUEUE_UNBOUNDED ? -EAGAIN : WF__Q_GROW;
}

/* 0 (done; *wake may name a putter to make runnable), -ESHUTDOWN (shut down
 * and empty) or -EAGAIN (empty; a rendezvous channel has no putter). */
static inline int wf__queue_get_locked(struct wf_queue *q, void **item, const wf__task *self, wf__task **wake)
{
    if (q->mode == WF__QM_RENDEZVOUS) {
        if (q->nwait && !wf__list_empty(&q->putters) && wf__queue_pull_putter(q, self, item, wake)) {
            q->lput++;
            return 0;
        }
    } else if (wf__likely(wf__queue_count_locked(q))) {
        *item = wf__buf_pop(q);
        void *x;
        if (q->nwait && !wf__list_empty(&q->putters) && wf__queue_pull_putter(q, self, &x, wake))
            wf__buf_push(q, x);
        return 0;
    }
    return q->shut ? -ESHUTDOWN : -EAGAIN;
}

/* Whether a put (`put`) or a get by `self` would complete (or fail with
 * -ESHUTDOWN) without waiting. An unbounded queue is always ready for a put,
 * though it may have to grow first. For a rendezvous channel the answer can
 * turn out wrong by the time the caller acts (the waiting task's wait may be
 * ending by timeout or cancellation): its put_locked / get_locked then
 * answers -EAGAIN. */
static inline bool wf__queue_ready_locked(const struct wf_queue *q, bool put, const wf__task *self)
{
    if (q->shut)
        return true;
    switch (q->mode) {
    case WF__QM_RING:
        return put ? wf__queue_count_locked(q) < q->ring.cap : wf__queue_count_locked(q) > 0;
    case WF__QM_LOCKED:
        return put ? (q->count < q->cap || q->max == WF_QUEUE_UNBOUNDED) : q->count > 0;
    default:
        return wf__queue_has_other(put ? &q->getters : &q->putters, self);
    }
}

/* Lock NOT held. Make room in a full unbounded queue: 0 (grown, or no longer
 * needed), -ENOMEM. */
int wf__queue_grow(struct wf_queue *q);

#endif
