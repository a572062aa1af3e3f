/* queue.c - FIFO, LIFO and priority queues, bounded or not, and rendezvous
 * channels, with task_done/join and shutdown (asyncio.Queue and friends,
 * Python 3.13; Go's channels).
 *
 * With the build option queue_ring, a bounded FIFO queue puts and gets on a
 * lock-free ring while nobody waits (ring.h: producers and consumers share no
 * line but the item's slot; off by default, see wf__queue_use_ring below);
 * every other shape, and every operation that must wait or wake someone,
 * takes the queue's spinlock (queue_impl.h). A waiting operation parks only when the
 * buffer is full (put) or empty (get), and the party that later makes
 * progress possible hands the item over directly at the deciding CAS, so a
 * waiter never has to come back and compete for what it was woken for.
 *
 * Rejected designs:
 *  - One spinlock around every operation (this file until 2026-12): simple,
 *    but every item moved the lock's line between the producer's and the
 *    consumer's cores (mpmc on 2 workers swung between 22 and 110 M items/s
 *    with where the scheduler put the tasks; docs/benchmarks.md).
 *  - The ring with a separate waiter count checked after each put (a Dekker
 *    pair: the put's CAS, then a seq_cst load of "getters waiting"; the
 *    getter's registration, then a seq_cst load of tail): the same fast
 *    path, but a getter woken that way must take the item from the ring
 *    itself, where a newcomer can take it first, and a woken getter that is
 *    cancelled before it looks must pass the wake-up on (asyncio's
 *    Queue.get dance). Freezing the ring's ends instead (ring.h, WAIT) keeps
 *    the hand-over at the CAS and the arrival order of waiters, and needs
 *    no fence: the registration and the puts meet in one word's
 *    modification order.
 *  - A state word counting items and waiters together (a semaphore in front
 *    of the ring): one line that every put and every get writes, the line
 *    this design exists to avoid.
 *  - Waking a getter and letting it take the item from the buffer itself
 *    (asyncio's future-based getters): see above.
 */
#include "queue_impl.h"
#include "wf_config.h"

#include <limits.h>
#include <stdint.h>

/* Whether a bounded FIFO queue made from now on is a RING (ring.h) or a
 * LOCKED buffer. The build option queue_ring sets the default; tests flip it
 * to run every queue test against both (tests/sync). Read only by
 * wf_queue_create: a queue keeps the shape it was made with.
 *
 * WHY THE LOCKED BUFFER BY DEFAULT (measured on the 2-core development VM,
 * docs/benchmarks.md, 2026-12-06): the ring costs more per operation on one
 * core (a bare-C loop of 1,024 puts then 1,024 gets: 7.4 ns an item against
 * 4.4 for a spinlock and a buffer; weft-bench mpmc on 1 worker: 124 against
 * 144 M items/s), and across the two vCPUs the spinlock's backoff lets one
 * core run both ends of the queue while the other waits, which the ring
 * never does: mpmc on 2 workers, 16 interleaved single runs each, spanned
 * 36-148 M/s (median about 128) with the lock and 17-126 (median about 108)
 * with the ring. The ring's point, producers and consumers on different
 * cores not sharing a line, did not show on two cores; it is kept, tested
 * both ways, for measuring on a many-core machine. */
bool wf__queue_use_ring = WF_QUEUE_RING;

int wf__queue_grow(struct wf_queue *q)
{
    wf__spin_lock(&q->lock);
    size_t oldcap = q->cap;
    bool need = !q->shut && q->count == q->cap;
    wf__spin_unlock(&q->lock);
    if (!need)
        return 0;
    size_t esz = wf__queue_esize(q);
    if (oldcap > SIZE_MAX / 2 / esz)
        return -ENOMEM;
    size_t ncap = oldcap ? oldcap * 2 : WF__Q_INITIAL_CAP;
    void *nb = malloc(ncap * esz);
    if (!nb)
        return -ENOMEM;
    void *old = NULL;
    wf__spin_lock(&q->lock);
    /* Someone else may have grown it, or it may have been shut down (an
     * immediate shutdown takes the buffer away): then our buffer goes. */
    if (!q->shut && q->cap == oldcap && q->count == q->cap) {
        char *src = q->buf;
        if (q->kind == WF_QUEUE_FIFO) {
            /* Unwrap the ring: [lhead, cap) then [0, lhead). */
            size_t first = q->cap - q->lhead;
            memcpy(nb, src + q->lhead * esz, first * esz);
            memcpy((char *)nb + first * esz, src, q->lhead * esz);
        } else {
            memcpy(nb, src, q->count * esz);
        }
        old = q->buf;
        q->buf = nb;
        q->cap = ncap;
        q->lhead = 0;
        nb = NULL;
    }
    wf__spin_unlock(&q->lock);
    free(nb);
    free(old);
    return 0;
}

/* A queue record, with `extra` bytes after it (a ring's slots: one
 * allocation per queue). */
static struct wf_queue *queue_new(size_t max, wf_queue_kind_t kind, wf_queue_cmp_fn cmp, size_t extra)
{
    struct wf_queue *q;
    if (extra > SIZE_MAX - sizeof *q || posix_memalign((void **)&q, WF_CACHELINE, sizeof *q + extra))
        return NULL;
    memset(q, 0, sizeof *q);
    q->kind = (uint8_t)kind;
    q->cmp = cmp;
    q->max = max;
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    wf__spin_init(&q->lock);
    wf__list_init(&q->getters);
    wf__list_init(&q->putters);
    wf__list_init(&q->joiners);
    return q;
}

int wf_queue_create(wf_queue_t **out, size_t capacity, wf_queue_kind_t kind, wf_queue_cmp_fn cmp)
{
    if (!out || capacity == 0 || (capacity > WF_QUEUE_MAX_CAPACITY && capacity != WF_QUEUE_UNBOUNDED))
        return -EINVAL;
    if (kind != WF_QUEUE_FIFO && kind != WF_QUEUE_LIFO && kind != WF_QUEUE_PRIORITY)
        return -EINVAL;
    if ((kind == WF_QUEUE_PRIORITY) != (cmp != NULL))
        return -EINVAL;
    bool ring = kind == WF_QUEUE_FIFO && capacity != WF_QUEUE_UNBOUNDED && wf__queue_use_ring;
    struct wf_queue *q = queue_new(capacity, kind, cmp, ring ? capacity * sizeof(wf__qslot) : 0);
    if (!q)
        return -ENOMEM;
    if (ring) {
        q->mode = WF__QM_RING;
        wf__ring_init(&q->ring, capacity, (wf__qslot *)(q + 1));
    } else {
        q->mode = WF__QM_LOCKED;
        q->cap = capacity != WF_QUEUE_UNBOUNDED ? capacity : WF__Q_INITIAL_CAP;
        q->buf = malloc(q->cap * wf__queue_esize(q));
        if (!q->buf) {
            free(q);
            return -ENOMEM;
        }
    }
    *out = q;
    return 0;
}

int wf_queue_create_rendezvous(wf_queue_t **out)
{
    if (!out)
        return -EINVAL;
    struct wf_queue *q = queue_new(0, WF_QUEUE_FIFO, NULL, 0);
    if (!q)
        return -ENOMEM;
    q->mode = WF__QM_RENDEZVOUS;
    *out = q;
    return 0;
}

/* The items of a detached LOCKED buffer, in no particular order, to `drop`.
 * It takes the queue's kind, not the queue: after a shutdown unlocks, a task
 * it woke may already have destroyed the queue. */
static void drop_items(unsigned kind, void *buf, size_t head, size_t count, size_t cap, wf_queue_drop_fn drop,
                       void *arg)
{
    if (!drop)
        return;
    for (size_t k = 0; k < count; k++) {
        if (kind == WF_QUEUE_PRIORITY) {
            drop(((wf__pent *)buf)[k].item, arg);
        } else {
            size_t i = kind == WF_QUEUE_FIFO ? (head + k) % cap : k;
            drop(((void **)buf)[i], arg);
        }
    }
}

int wf_queue_destroy(wf_queue_t *q, wf_queue_drop_fn drop, void *arg, size_t *dropped)
{
    if (!q)
        return -EINVAL;
    /* Taking the lock also waits out a waker still inside its critical
     * section after waking the task that now destroys the queue. */
    wf__spin_lock(&q->lock);
    bool busy = q->nwait != 0;
    wf__spin_unlock(&q->lock);
    if (busy)
        return -EBUSY;
    size_t n;
    if (q->mode == WF__QM_RING) {
        /* Nobody else uses the queue now (the caller's promise), so every
         * slot between head and tail is settled. */
        const wf__ring *r = &q->ring;
        uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire) & ~WF__QW_FLAGS;
        uint64_t t = atomic_load_explicit(&q->tail, memory_order_acquire) & ~WF__QW_FLAGS;
        n = (size_t)(wf__ring_total(r, t) - wf__ring_total(r, h));
        for (uint64_t p = h; drop && p != t; p = wf__ring_next(r, p))
            drop(r->slots[wf__ring_index(r, p)].item, arg); /* the slots go with q */
    } else {
        n = q->count;
        drop_items(q->kind, q->buf, q->lhead, q->count, q->cap, drop, arg);
        free(q->buf);
    }
    free(q);
    if (dropped)
        *dropped = n;
    return 0;
}

/* Take a queue's lock from put or get, noting contention for the
 * scheduler (wf__note_contention) when another core holds it. */
static inline void lock_queue(wf_queue_t *q)
{
    if (wf__unlikely(!wf__spin_trylock(&q->lock))) {
        wf__note_contention();
        wf__spin_lock_hot(&q->lock);
    }
}

/* The slow path's common ending, after an operation that did not wait:
 * thaw a ring that nobody waited on (`idle`: only ever true for a ring;
 * wf__queue_thaw_if_idle), unlock, make the woken task runnable. */
static inline void finish_locked(struct wf_queue *q, bool idle, wf__task *wake)
{
    if (idle)
        wf__queue_thaw_if_idle(q);
    wf__spin_unlock(&q->lock);
    wf__sync_ready(wake);
}

/* The slow path of a put (every put of a queue that is not a ring): under
 * the lock, a ring frozen. */
static inline int put_slow(wf_queue_t *q, void *item, int64_t deadline, bool try_only)
{
    for (;;) {
        wf__task *wake = NULL;
        lock_queue(q);
        bool idle = false;
        if (q->mode == WF__QM_RING) {
            wf__queue_freeze(q);
            idle = wf__queue_nobody_waits(q);
        }
        /* self NULL: a plain put never meets a node of its own task (only a
         * select publishes nodes and then puts, select.c). */
        int r = wf__queue_put_locked(q, item, NULL, &wake);
        if (wf__likely(r == 0)) {
            finish_locked(q, idle, wake);
            return 0;
        }
        if (r == WF__Q_GROW) {
            wf__spin_unlock(&q->lock);
            if ((r = wf__queue_grow(q)) != 0)
                return r;
            continue;
        }
        if (r != -EAGAIN || try_only) {
            finish_locked(q, idle, NULL);
            return r;
        }
        wf__task *self = wf__current();
        if (!self) {
            finish_locked(q, idle, NULL);
            return -EPERM;
        }
        wf__qnode node;
        node.n.data = item;
        node.result = 0;
        node.fired = false;
        unsigned w = wf__sync_wait(&q->lock, &q->putters, &q->nwait, &node.n, self, deadline, 0);
        if (w == WF__R_WOKEN)
            return node.result; /* in the queue (taken, for a rendezvous), or -ESHUTDOWN */
        finish_locked(q, true, NULL);
        return wf__park_errno(w); /* not enqueued */
    }
}

static inline int put(wf_queue_t *q, void *item, int64_t deadline, bool try_only)
{
    if (!q || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    if (wf__likely(q->mode == WF__QM_RING)) {
        int r = wf__ring_put(&q->ring, &q->tail, &q->head, item);
        if (wf__likely(r == 0))
            return 0;
        if (r == -EAGAIN && try_only)
            return -EAGAIN; /* full, and nobody waits (no flag) */
    }
    return put_slow(q, item, deadline, try_only);
}

int wf_queue_put_until(wf_queue_t *q, void *item, int64_t deadline)
{
    return put(q, item, deadline, false);
}

int wf_queue_put(wf_queue_t *q, void *item)
{
    return put(q, item, WF_FOREVER, false);
}

int wf_queue_try_put(wf_queue_t *q, void *item)
{
    return put(q, item, WF_FOREVER, true);
}

/* The slow path of a get, as put_slow. */
static inline int get_slow(wf_queue_t *q, void **item, int64_t deadline, bool try_only)
{
    wf__task *wake = NULL;
    lock_queue(q);
    bool idle = false;
    if (q->mode == WF__QM_RING) {
        wf__queue_freeze(q);
        idle = wf__queue_nobody_waits(q);
    }
    int r = wf__queue_get_locked(q, item, NULL, &wake); /* NULL: as in put */
    if (wf__likely(r == 0)) {
        finish_locked(q, idle, wake);
        return 0;
    }
    wf__task *self = r == -EAGAIN && !try_only ? wf__current() : NULL;
    if (!self) {
        finish_locked(q, idle, NULL);
        return r != -EAGAIN || try_only ? r : -EPERM;
    }
    wf__qnode node;
    node.n.data = NULL;
    node.result = 0;
    node.fired = false;
    unsigned w = wf__sync_wait(&q->lock, &q->getters, &q->nwait, &node.n, self, deadline, 0);
    if (w == WF__R_WOKEN) {
        if (node.result == 0)
            *item = node.n.data;
        return node.result;
    }
    finish_locked(q, true, NULL);
    return wf__park_errno(w); /* took nothing */
}

static inline int get(wf_queue_t *q, void **item, int64_t deadline, bool try_only)
{
    if (!q || !item || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    if (wf__likely(q->mode == WF__QM_RING)) {
        int r = wf__ring_get(&q->ring, &q->head, &q->tail, item);
        if (wf__likely(r == 0))
            return 0;
        if (r == -ESHUTDOWN || (r == -EAGAIN && try_only))
            return r; /* empty, and nobody waits (no flag) */
    }
    return get_slow(q, item, deadline, try_only);
}

int wf_queue_get_until(wf_queue_t *q, void **item, int64_t deadline)
{
    return get(q, item, deadline, false);
}

int wf_queue_get(wf_queue_t *q, void **item)
{
    return get(q, item, WF_FOREVER, false);
}

int wf_queue_try_get(wf_queue_t *q, void **item)
{
    return get(q, item, WF_FOREVER, true);
}

/* --- observers ------------------------------------------------------------- */

/* Items now, as a snapshot. */
static uint64_t snapshot_count(struct wf_queue *q)
{
    if (q->mode == WF__QM_RING)
        return wf__ring_count_snapshot(&q->ring, &q->head, &q->tail);
    wf__spin_lock(&q->lock);
    size_t n = q->count;
    wf__spin_unlock(&q->lock);
    return n;
}

long wf_queue_size(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    uint64_t n = snapshot_count(q);
    return n > LONG_MAX ? LONG_MAX : (long)n;
}

long wf_queue_capacity(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    return (long)q->max; /* immutable; WF_QUEUE_UNBOUNDED is LONG_MAX */
}

int wf_queue_empty(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    return snapshot_count(q) == 0;
}

int wf_queue_full(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    if (q->mode == WF__QM_RING)
        return wf__ring_count_snapshot(&q->ring, &q->head, &q->tail) >= q->ring.cap;
    wf__spin_lock(&q->lock);
    int f;
    if (q->mode == WF__QM_RENDEZVOUS)
        f = wf__list_empty(&q->getters); /* a put would wait for a getter */
    else
        f = q->max != WF_QUEUE_UNBOUNDED && q->count >= q->max;
    wf__spin_unlock(&q->lock);
    return f;
}

int wf_queue_is_shutdown(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    wf__spin_lock(&q->lock);
    int s = q->shut != 0;
    wf__spin_unlock(&q->lock);
    return s;
}

/* --- task_done / join ------------------------------------------------------ */

int wf_queue_task_done(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&q->lock);
    uint64_t puts = wf__queue_puts_locked(q);
    if (q->done == puts) {
        wf__spin_unlock(&q->lock);
        return -EINVAL;
    }
    if (++q->done == puts && q->nwait)
        wf__sync_wake_all(&q->joiners, &q->nwait, NULL, &b);
    wf__spin_unlock(&q->lock);
    wf__sync_ready_batch(&b);
    return 0;
}

int wf_queue_join_until(wf_queue_t *q, int64_t deadline)
{
    if (!q || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__spin_lock(&q->lock);
    if (q->done == wf__queue_puts_locked(q)) {
        wf__spin_unlock(&q->lock);
        return 0;
    }
    wf__waitnode node;
    node.data = NULL;
    unsigned w = wf__sync_wait(&q->lock, &q->joiners, &q->nwait, &node, self, deadline, 0);
    if (w == WF__R_WOKEN)
        return 0;
    /* Timed out (its own deadline or a scope's); but if the last task_done
     * came meanwhile, it wins. */
    bool done = (w == WF__R_TIMEDOUT || w == WF__R_EXPIRED) && q->done == wf__queue_puts_locked(q);
    wf__spin_unlock(&q->lock);
    return done ? 0 : wf__park_errno(w);
}

int wf_queue_join(wf_queue_t *q)
{
    return wf_queue_join_until(q, WF_FOREVER);
}

/* --- shutdown -------------------------------------------------------------- */

int wf_queue_shutdown(wf_queue_t *q, wf_queue_shutdown_mode_t mode, wf_queue_drop_fn drop, void *arg)
{
    if (!q || (mode != WF_QUEUE_SHUTDOWN_GRACEFUL && mode != WF_QUEUE_SHUTDOWN_IMMEDIATE))
        return -EINVAL;
    bool immediate = mode == WF_QUEUE_SHUTDOWN_IMMEDIATE;
    wf__batch b;
    wf__batch_init(&b);
    void *buf = NULL;
    size_t head = 0, count = 0, cap = 0;
    unsigned kind = q->kind; /* immutable */
    /* A ring's items are copied out under the lock and dropped after it (a
     * task woken here may destroy the queue as soon as we unlock): `out`,
     * sized from a snapshot first, from the capacity if the ring filled up
     * meanwhile. */
    void **out = NULL;
    size_t outcap = 0;
    if (q->mode == WF__QM_RING && immediate && drop) {
        outcap = (size_t)wf__ring_count_snapshot(&q->ring, &q->head, &q->tail);
        if (outcap && !(out = malloc(outcap * sizeof *out)))
            return -ENOMEM;
    }
    wf__spin_lock(&q->lock);
    wf__queue_freeze(q);
    if (q->mode == WF__QM_RING && immediate && drop) {
        size_t n = (size_t)wf__queue_count_locked(q);
        if (n > outcap) {
            /* Nothing is changed yet; thawing is safe (lists unchanged). */
            wf__queue_thaw_if_idle(q);
            wf__spin_unlock(&q->lock);
            free(out);
            outcap = (size_t)q->ring.cap;
            if (!(out = malloc(outcap * sizeof *out)))
                return -ENOMEM;
            wf__spin_lock(&q->lock);
            wf__queue_freeze(q);
        }
    }
    if (q->shut < 1 + (unsigned)mode)
        q->shut = (uint8_t)(1 + mode);
    if (q->mode == WF__QM_RING) {
        /* Every later fast-path put fails over to the slow path (and
         * -ESHUTDOWN); every get that finds the ring empty answers
         * -ESHUTDOWN (ring.h, SHUT). relaxed: as F1. */
        atomic_fetch_or_explicit(&q->tail, WF__QW_SHUT, memory_order_relaxed);
        if (immediate) {
            /* The ring is frozen: nobody else moves its ends. */
            count = (size_t)wf__queue_count_locked(q);
            for (size_t k = 0; k < count; k++) {
                void *x = wf__buf_pop(q);
                if (out)
                    out[k] = x;
            }
        }
    } else if (immediate && q->count) {
        /* Take the items out with their buffer; nothing can be put any more,
         * so the queue needs no buffer again. */
        buf = q->buf;
        head = q->lhead;
        count = q->count;
        cap = q->cap;
        q->buf = NULL;
        q->cap = q->count = q->lhead = 0;
    }
    if (count) {
        /* Removed items count as done. */
        q->done += count;
        if (q->done == wf__queue_puts_locked(q))
            wf__sync_wake_all(&q->joiners, &q->nwait, NULL, &b);
    }
    /* Putters' items were never enqueued; getters wait only on an empty
     * buffer, so in either mode nothing is left for them. */
    wf__queue_fail_all(q, &q->getters, &b);
    wf__queue_fail_all(q, &q->putters, &b);
    wf__queue_thaw_if_idle(q);
    wf__spin_unlock(&q->lock);
    wf__sync_ready_batch(&b);
    if (buf) {
        drop_items(kind, buf, head, count, cap, drop, arg);
        free(buf);
    }
    if (out) {
        for (size_t k = 0; k < count; k++)
            drop(out[k], arg);
        free(out);
    }
    return count > INT32_MAX ? INT32_MAX : (int)count;
}
