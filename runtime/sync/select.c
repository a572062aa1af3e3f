/* select.c - wait for the first of several queue operations (Go's select).
 *
 * One task, one wait, one node per case. All the nodes carry the same
 * (task, seq), so the first waker to win the deciding CAS on any of them
 * decides the whole select: its case happens (its item is handed over at
 * that CAS, queue_impl.h), and every other waker's CAS on the other nodes
 * fails, so they take and give nothing. The node that happened is the one
 * with `fired` set, read under its queue's lock.
 *
 * THE STEPS:
 *  1. Shuffle the enabled cases (Go's pollorder): when several are ready,
 *     each is equally likely to be chosen, so none starves.
 *  2. Try each case once, in that order, one queue lock at a time (a
 *     bounded FIFO queue's lock-free fast path first, ring.h); the first
 *     that can proceed now does, and the select returns.
 *  3. Otherwise begin the wait and publish the nodes, one queue lock at a
 *     time. A case may have become ready since step 2: then the select
 *     decides its own wait (the CAS every waker would make). If it wins, no
 *     published node can fire any more and it does that case itself. If it
 *     loses to a waker, that waker's case has happened: stop publishing.
 *     (If it loses to a cancellation, the ready case is still done, as
 *     step 2 would have: a cancelled task may still complete what needs no
 *     waiting.) A rendezvous case can look ready and then not happen: the
 *     partner it saw waiting had its wait end (timeout, cancellation) just
 *     before our hand-over's CAS. Our own wait is then decided with nothing
 *     done: unpublish (step 5) and start over from step 2; the partner is
 *     leaving, so this ends.
 *  4. If every node is published, park until decided.
 *  5. Visit every published node under its queue's lock: unlink it if it
 *     is still linked, uncount it unless it fired (the waker that fired it
 *     uncounted it), and note which fired.
 * Queue locks are never nested, so select cannot deadlock with anything.
 */
#include "queue_impl.h"

#define SMALL 16

static _Thread_local uint64_t rng_state;

/* xorshift64*, seeded per thread from the clock. Used within one step,
 * never across a park (the task may resume on another thread). */
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    if (wf__unlikely(!x))
        x = (uint64_t)wf_now() * 0x9E3779B97F4A7C15ull | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Do case `c` on its locked queue (a ring frozen), which is ready
 * (wf__queue_ready_locked). Returns 0 or -ESHUTDOWN (the case's result),
 * -ENOMEM (an unbounded queue could not grow) or -EAGAIN (a rendezvous
 * channel whose waiting partner's wait ended meanwhile): then the case did
 * not happen. The lock is held again on return. */
static int do_case_locked(wf_select_case_t *c, wf__task *self, wf__task **wake)
{
    struct wf_queue *q = c->queue;
    if (c->op == WF_SELECT_GET)
        return wf__queue_get_locked(q, &c->item, self, wake);
    for (;;) {
        int r = wf__queue_put_locked(q, c->item, self, wake);
        if (r != WF__Q_GROW)
            return r;
        wf__spin_unlock(&q->lock);
        r = wf__queue_grow(q);
        wf__spin_lock(&q->lock);
        if (r)
            return r;
    }
}

/* Step 2 for one case: -EAGAIN if it would have to wait. */
static int try_case(wf_select_case_t *c, wf__task *self)
{
    struct wf_queue *q = c->queue;
    bool put = c->op == WF_SELECT_PUT;
    if (q->mode == WF__QM_RING) {
        /* The fast path: its -EAGAIN (full / empty with no flag) is exact. */
        int r = put ? wf__ring_put(&q->ring, &q->tail, &q->head, c->item)
                    : wf__ring_get(&q->ring, &q->head, &q->tail, &c->item);
        if (r != WF__RING_SLOW)
            return r;
    }
    wf__task *wake = NULL;
    wf__spin_lock(&q->lock);
    wf__queue_freeze(q);
    bool idle = wf__queue_nobody_waits(q);
    int r = -EAGAIN;
    if (wf__queue_ready_locked(q, put, self))
        r = do_case_locked(c, self, &wake);
    if (idle)
        wf__queue_thaw_if_idle(q);
    wf__spin_unlock(&q->lock);
    wf__sync_ready(wake);
    return r;
}

int wf_select_until(wf_select_case_t *cases, size_t n, int64_t deadline)
{
    if (!cases || n == 0 || n > WF_SELECT_MAX || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (cases[i].queue && cases[i].op != WF_SELECT_GET && cases[i].op != WF_SELECT_PUT)
            return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;

    uint16_t order_small[SMALL];
    wf__qnode nodes_small[SMALL];
    uint16_t *order = order_small;
    wf__qnode *nodes = nodes_small;
    void *mem = NULL;
    if (n > SMALL) {
        mem = malloc(n * (sizeof *order + sizeof *nodes) + sizeof *nodes);
        if (!mem)
            return -ENOMEM;
        nodes = mem;
        order = (uint16_t *)(nodes + n + 1);
    }

    /* 1. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (cases[i].queue)
            order[m++] = (uint16_t)i;
    for (size_t k = m; k > 1; k--) {
        size_t j = rnd() % k;
        uint16_t t = order[k - 1];
        order[k - 1] = order[j];
        order[j] = t;
    }

    for (;;) {
        int ret = -EAGAIN;
        /* 2. */
        for (size_t k = 0; k < m && ret == -EAGAIN; k++) {
            wf_select_case_t *c = &cases[order[k]];
            int r = try_case(c, self);
            if (r == -ENOMEM) {
                ret = r;
            } else if (r != -EAGAIN) {
                c->result = r;
                ret = order[k];
            }
        }
        if (ret != -EAGAIN) {
            free(mem);
            return ret;
        }

        /* 3. */
        uint64_t seq = wf__park_begin(self, 0);
        size_t published = 0;
        int chosen = -1;
        bool fired_early = false, again = false;
        for (size_t k = 0; k < m; k++) {
            wf_select_case_t *c = &cases[order[k]];
            struct wf_queue *q = c->queue;
            bool put = c->op == WF_SELECT_PUT;
            wf__spin_lock(&q->lock);
            /* A node is about to be published: the ring must be frozen
             * (ring.h, NO LOST WAKE-UP), and it must be to look at it. */
            wf__queue_freeze(q);
            if (wf__queue_ready_locked(q, put, self)) {
                if (wf__park_decide(self, seq, WF__R_WOKEN) == WF__DECIDE_LOST &&
                    wf__pw_reason(atomic_load_explicit(&self->park, memory_order_acquire)) == WF__R_WOKEN) {
                    /* acquire: a waker's CAS decided us; what it wrote into its
                     * node is read under that queue's lock in step 5. */
                    wf__queue_thaw_if_idle(q);
                    wf__spin_unlock(&q->lock);
                    fired_early = true;
                    break;
                }
                wf__task *wake = NULL;
                int r = do_case_locked(c, self, &wake);
                wf__queue_thaw_if_idle(q);
                wf__spin_unlock(&q->lock);
                wf__sync_ready(wake);
                if (r == -ENOMEM) {
                    ret = r;
                } else if (r == -EAGAIN) {
                    /* A rendezvous partner's wait ended under us. Our own
                     * wait is decided: unpublish and start over. */
                    again = true;
                } else {
                    c->result = r;
                    chosen = order[k];
                }
                break;
            }
            wf__qnode *nd = &nodes[k];
            nd->n.task = self;
            nd->n.seq = seq;
            nd->n.data = put ? c->item : NULL;
            nd->result = 0;
            nd->fired = false;
            wf__list_push_back(put ? &q->putters : &q->getters, &nd->n.link);
            q->nwait++;
            wf__spin_unlock(&q->lock);
            published = k + 1;
        }

        /* 4. */
        unsigned why = WF__R_WOKEN;
        if (chosen < 0 && ret == -EAGAIN && !fired_early && !again)
            why = wf__park_commit(self, seq, deadline);

        /* 5. */
        int fired = -1;
        for (size_t k = 0; k < published; k++) {
            wf_select_case_t *c = &cases[order[k]];
            struct wf_queue *q = c->queue;
            wf__qnode *nd = &nodes[k];
            wf__spin_lock(&q->lock);
            if (wf__link_linked(&nd->n.link))
                wf__list_unlink(&nd->n.link);
            if (nd->fired) {
                wf__assert(fired < 0 && chosen < 0 && !again, "one select case happens");
                fired = order[k];
                c->result = nd->result;
                if (c->op == WF_SELECT_GET && nd->result == 0)
                    c->item = nd->n.data;
            } else {
                q->nwait--;
            }
            wf__queue_thaw_if_idle(q);
            wf__spin_unlock(&q->lock);
        }
        if (again && fired < 0)
            continue;
        free(mem);
        if (chosen >= 0)
            return chosen;
        if (fired >= 0)
            return fired;
        if (ret != -EAGAIN)
            return ret; /* -ENOMEM */
        wf__assert(why != WF__R_WOKEN, "a woken select has a fired case");
        return wf__park_errno(why);
    }
}

int wf_select(wf_select_case_t *cases, size_t n)
{
    return wf_select_until(cases, n, WF_FOREVER);
}
