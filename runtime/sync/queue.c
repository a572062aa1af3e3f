/* queue.c - FIFO, LIFO and priority queues, bounded or not, with
 * task_done/join and shutdown (asyncio.Queue and friends, Python 3.13).
 *
 * One spinlock guards a queue's whole state (queue_impl.h). Every put or
 * get is one short critical section; it parks only when the buffer is full
 * (put) or empty (get), and the party that later makes progress possible
 * hands the item over directly at the deciding CAS, so a waiter never has to
 * come back and compete for what it was woken for.
 *
 * Rejected designs:
 *  - A lock-free ring for the fast path with a separate waiter lock
 *    (crossbeam's array channel): fewer atomic operations per item on a big
 *    machine, but a second protocol to reconcile with shutdown, priority
 *    order, LIFO order, select and the exact hand-over at the CAS. On the
 *    2-core machine the single spinlock already keeps the lock line on one
 *    core most of the time (see bench/bench_sync.c's mpmc figures).
 *  - Waking a getter and letting it take the item from the buffer itself
 *    (asyncio's future-based getters): the item could then be taken by a
 *    newcomer first, and a getter cancelled between wake-up and take would
 *    need the "pass the wake-up on" dance asyncio does in Queue.get().
 */
#include "queue_impl.h"

#include <limits.h>
#include <stdint.h>

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
            /* Unwrap the ring: [head, cap) then [0, head). */
            size_t first = q->cap - q->head;
            memcpy(nb, src + q->head * esz, first * esz);
            memcpy((char *)nb + first * esz, src, q->head * esz);
        } else {
            memcpy(nb, src, q->count * esz);
        }
        old = q->buf;
        q->buf = nb;
        q->cap = ncap;
        q->head = 0;
        nb = NULL;
    }
    wf__spin_unlock(&q->lock);
    free(nb);
    free(old);
    return 0;
}

int wf_queue_create(wf_queue_t **out, size_t capacity, wf_queue_kind_t kind, wf_queue_cmp_fn cmp)
{
    if (!out || capacity > WF_QUEUE_MAX_CAPACITY)
        return -EINVAL;
    if (kind != WF_QUEUE_FIFO && kind != WF_QUEUE_LIFO && kind != WF_QUEUE_PRIORITY)
        return -EINVAL;
    if ((kind == WF_QUEUE_PRIORITY) != (cmp != NULL))
        return -EINVAL;
    struct wf_queue *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->kind = (uint8_t)kind;
    q->cmp = cmp;
    q->max = capacity;
    q->cap = capacity ? capacity : WF__Q_INITIAL_CAP;
    q->buf = malloc(q->cap * wf__queue_esize(q));
    if (!q->buf) {
        free(q);
        return -ENOMEM;
    }
    wf__spin_init(&q->lock);
    wf__list_init(&q->getters);
    wf__list_init(&q->putters);
    wf__list_init(&q->joiners);
    *out = q;
    return 0;
}

/* The items of a detached buffer, in no particular order, to `drop`. It
 * takes the queue's kind, not the queue: after a shutdown unlocks, a task
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
    size_t n = q->count;
    drop_items(q->kind, q->buf, q->head, q->count, q->cap, drop, arg);
    free(q->buf);
    free(q);
    if (dropped)
        *dropped = n;
    return 0;
}

static int put(wf_queue_t *q, void *item, int64_t deadline, bool try_only)
{
    if (!q || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    for (;;) {
        wf__task *wake = NULL;
        wf__spin_lock(&q->lock);
        int r = wf__queue_put_locked(q, item, &wake);
        if (wf__likely(r == 0)) {
            wf__spin_unlock(&q->lock);
            wf__sync_ready(wake);
            return 0;
        }
        if (r == WF__Q_GROW) {
            wf__spin_unlock(&q->lock);
            if ((r = wf__queue_grow(q)) != 0)
                return r;
            continue;
        }
        if (r != -EAGAIN || try_only) {
            wf__spin_unlock(&q->lock);
            return r;
        }
        wf__task *self = wf__current();
        if (!self) {
            wf__spin_unlock(&q->lock);
            return -EPERM;
        }
        wf__qnode node;
        node.n.data = item;
        node.result = 0;
        node.fired = false;
        unsigned w = wf__sync_wait(&q->lock, &q->putters, &q->nwait, &node.n, self, deadline, 0);
        if (w == WF__R_WOKEN)
            return node.result; /* in the queue, or -ESHUTDOWN */
        wf__spin_unlock(&q->lock);
        return wf__park_errno(w); /* not enqueued */
    }
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

static int get(wf_queue_t *q, void **item, int64_t deadline, bool try_only)
{
    if (!q || !item || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *wake = NULL;
    wf__spin_lock(&q->lock);
    int r = wf__queue_get_locked(q, item, &wake);
    if (wf__likely(r == 0)) {
        wf__spin_unlock(&q->lock);
        wf__sync_ready(wake);
        return 0;
    }
    if (r != -EAGAIN || try_only) {
        wf__spin_unlock(&q->lock);
        return r;
    }
    wf__task *self = wf__current();
    if (!self) {
        wf__spin_unlock(&q->lock);
        return -EPERM;
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
    wf__spin_unlock(&q->lock);
    return wf__park_errno(w); /* took nothing */
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

long wf_queue_size(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    wf__spin_lock(&q->lock);
    size_t n = q->count;
    wf__spin_unlock(&q->lock);
    return n > LONG_MAX ? LONG_MAX : (long)n;
}

long wf_queue_capacity(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    return (long)q->max; /* immutable */
}

int wf_queue_empty(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    wf__spin_lock(&q->lock);
    int e = q->count == 0;
    wf__spin_unlock(&q->lock);
    return e;
}

int wf_queue_full(wf_queue_t *q)
{
    if (!q)
        return -EINVAL;
    wf__spin_lock(&q->lock);
    int f = q->max && q->count >= q->max;
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
    if (q->unfinished == 0) {
        wf__spin_unlock(&q->lock);
        return -EINVAL;
    }
    if (--q->unfinished == 0 && q->nwait)
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
    if (q->unfinished == 0) {
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
    bool done = (w == WF__R_TIMEDOUT || w == WF__R_EXPIRED) && q->unfinished == 0;
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
    wf__batch b;
    wf__batch_init(&b);
    void *buf = NULL;
    size_t head = 0, count = 0, cap = 0;
    unsigned kind = q->kind; /* immutable */
    wf__spin_lock(&q->lock);
    if (q->shut < 1 + (unsigned)mode)
        q->shut = (uint8_t)(1 + mode);
    if (mode == WF_QUEUE_SHUTDOWN_IMMEDIATE && q->count) {
        /* Take the items out with their buffer; nothing can be put any more,
         * so the queue needs no buffer again. They count as done. */
        buf = q->buf;
        head = q->head;
        count = q->count;
        cap = q->cap;
        q->buf = NULL;
        q->cap = q->count = q->head = 0;
        q->unfinished = q->unfinished > count ? q->unfinished - count : 0;
        if (q->unfinished == 0)
            wf__sync_wake_all(&q->joiners, &q->nwait, NULL, &b);
    }
    /* Putters' items were never enqueued; getters wait only on an empty
     * buffer, so in either mode nothing is left for them. */
    wf__queue_fail_all(q, &q->getters, &b);
    wf__queue_fail_all(q, &q->putters, &b);
    wf__spin_unlock(&q->lock);
    wf__sync_ready_batch(&b);
    if (buf) {
        drop_items(kind, buf, head, count, cap, drop, arg);
        free(buf);
    }
    return count > INT32_MAX ? INT32_MAX : (int)count;
}
