/* generator.c - generators: a task that yields values to its consumer.
 *
 * The generator runs on a task of its own, but strictly in turn with its
 * consumer, as a Python generator does: the consumer's next() wakes it and
 * waits; its yield() wakes the consumer and waits. Each side decides the
 * other's wait under the record's spinlock and, since that wait was parked
 * (WF__DECIDED_PARKED: the decider owns the task), hands the CPU straight
 * to it with wf__park_commit_handoff: one direct fiber switch per hand-over,
 * no run queue, both fibers on the consumer's worker.
 *
 * STATE (struct wf_gen, under `lock`):
 *   gwait      the generator's node while it waits for a request (in its
 *              prologue or in a yield), else NULL.
 *   cwait      the node of the task waiting on the generator: a consumer in
 *              next() waiting for a value, or a closer waiting for the end.
 *   requested  a next() asked for a value that has not been yielded yet;
 *              tells the prologue whether to start the body at once.
 *   pending    a value yielded while nobody waited for it (the consumer's
 *              next() gave up by deadline or cancellation): the next next()
 *              returns it without waking the generator. Nothing is lost.
 *   closing, done, status   the end of the story.
 *
 * A NEXT: take a pending value if there is one; else wake the generator if
 * it waits (it may instead be running already: not started yet, or busy on
 * the value a previous next() gave up on), publish cwait, and wait.
 * A YIELD: if a consumer waits in next(), hand it the value (written into
 * its node before the deciding CAS); if that CAS loses or nobody waits, keep
 * the value as pending. Then publish gwait and wait for the next request.
 * A yield that ends by cancellation takes back a pending value that was
 * never collected and reports it undelivered (-ECANCELED); one whose value
 * was delivered returns 0 and the close is seen at the generator's next
 * wait (gen.h, OWNERSHIP OF VALUES).
 * A CLOSE: mark closing (so no yield delivers and a prologue does not start
 * the body). If the body runs, cancel the task so that its waits fail; if
 * it has not started, wake its prologue, which then calls the drop callback
 * in the generator's own fiber (where it may close an upstream generator)
 * instead of the body. Wait uncancellably for the end, then take the lock
 * once more before freeing: the generator's last act is to unlock after
 * publishing `done`, and it never touches the record after that. Only a
 * task that never ran at all (cancelled by the runtime's shutdown) has its
 * drop called by the runtime, outside any fiber (gen_drop).
 */
#include "wait.h"

#include <stdlib.h>
#include <weft/gen.h>

enum { C_VALUE = 1, C_END = 2 };

typedef struct gen_cnode {
    wf__waitnode n; /* n.data: the value */
    int kind;       /* C_VALUE or C_END, written by the decider */
    int status;     /* C_END: the generator's status */
} gen_cnode;

struct wf_gen {
    wf__spinlock lock;
    bool requested, has_pending, closing, done;
    bool body_started; /* the prologue let the body run */
    int status;
    void *pending;
    wf__waitnode *gwait;
    gen_cnode *cwait;
    wf__task *gtask; /* set by the generator's own task when it starts */
    wf_task_t gid;
    wf_gen_fn fn;
    void *arg;
    void (*udrop)(void *arg);
};

/* The generator has ended with `status`: publish it and wake whoever
 * waits. The last thing the generator's side does with `g`. */
static void finish(wf_gen_t *g, int status)
{
    wf__task *wake = NULL;
    wf__spin_lock(&g->lock);
    g->done = true;
    g->status = status;
    gen_cnode *c = g->cwait;
    if (c) {
        g->cwait = NULL;
        wf__task *t = c->n.task;
        c->kind = C_END;
        c->status = status;
        if (wf__park_decide(t, c->n.seq, WF__R_WOKEN) == WF__DECIDED_PARKED)
            wake = t;
    }
    wf__spin_unlock(&g->lock);
    wf__sync_ready(wake);
}

/* The task was cancelled before it ever ran (the runtime calls this instead
 * of gen_main, outside any fiber). */
static void gen_drop(void *arg)
{
    wf_gen_t *g = arg;
    if (g->udrop)
        g->udrop(g->arg);
    finish(g, -ECANCELED);
}

static int gen_main(void *arg, void **res)
{
    wf_gen_t *g = arg;
    wf__task *self = wf__current();
    wf__spin_lock(&g->lock);
    g->gtask = self;
    /* The prologue: the body starts at the first request, not before. */
    unsigned r = WF__R_WOKEN;
    if (!g->requested && !g->closing) {
        wf__waitnode node;
        node.task = self;
        node.data = NULL;
        node.seq = wf__park_begin(self, 0);
        g->gwait = &node;
        wf__spin_unlock(&g->lock);
        r = wf__park_commit(self, node.seq, WF_FOREVER);
        wf__spin_lock(&g->lock);
        if (r != WF__R_WOKEN && g->gwait == &node)
            g->gwait = NULL;
    }
    bool run = !g->closing && r == WF__R_WOKEN;
    g->body_started = run;
    wf__spin_unlock(&g->lock);
    int status;
    if (run) {
        status = g->fn(g, g->arg);
        if (status > 0)
            status = -ERANGE; /* would read as "a value" in wf_gen_next */
    } else {
        /* Closed before the body ran: it never will. */
        if (g->udrop)
            g->udrop(g->arg);
        status = -ECANCELED;
    }
    finish(g, status);
    return status;
}

int wf_gen_create(wf_gen_t **out, wf_gen_fn fn, void *arg, const wf_spawn_opts_t *opts)
{
    if (!out || !fn)
        return -EINVAL;
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    if (opts)
        o = *opts;
    if (!o.name)
        o.name = "generator";
    wf_gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    wf__spin_init(&g->lock);
    g->fn = fn;
    g->arg = arg;
    g->udrop = o.drop;
    o.drop = gen_drop;
    int e = wf_spawn(&g->gid, gen_main, g, &o);
    if (e) {
        free(g);
        return e;
    }
    *out = g;
    return 0;
}

int wf_gen_next_until(wf_gen_t *g, void **value, int64_t deadline)
{
    if (!g || !value || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__spin_lock(&g->lock);
    int e = 0;
    if (self == g->gtask)
        e = -EDEADLK;
    else if (g->cwait || g->closing)
        e = -EBUSY;
    if (e) {
        wf__spin_unlock(&g->lock);
        return e;
    }
    if (g->has_pending) {
        *value = g->pending;
        g->has_pending = false;
        wf__spin_unlock(&g->lock);
        return 1;
    }
    if (g->done) {
        e = g->status;
        wf__spin_unlock(&g->lock);
        return e;
    }
    /* A cancelled consumer does not drive the generator: waiting would fail
     * anyway. relaxed: a hint; the commit below makes the real check. */
    if (atomic_load_explicit(&self->cancel, memory_order_relaxed) > 0) {
        wf__spin_unlock(&g->lock);
        return -ECANCELED;
    }
    wf__task *target = NULL;
    wf__waitnode *gw = g->gwait;
    if (gw) {
        /* Wake the generator. If the CAS loses, its wait ended otherwise
         * (it was cancelled): it is running, and will finish. */
        g->gwait = NULL;
        wf__task *t = gw->task;
        if (wf__park_decide(t, gw->seq, WF__R_WOKEN) == WF__DECIDED_PARKED)
            target = t;
    }
    g->requested = true;
    gen_cnode node;
    node.n.task = self;
    node.n.data = NULL;
    node.kind = 0;
    node.status = 0;
    node.n.seq = wf__park_begin(self, 0);
    g->cwait = &node;
    wf__spin_unlock(&g->lock);
    unsigned r = target ? wf__park_commit_handoff(self, node.n.seq, deadline, target)
                        : wf__park_commit(self, node.n.seq, deadline);
    if (wf__likely(r == WF__R_WOKEN)) {
        if (node.kind == C_VALUE) {
            *value = node.n.data;
            return 1;
        }
        return node.status;
    }
    /* Gave up. If the generator took our node meanwhile (and lost its CAS),
     * it kept its value as pending, or published the end: nothing lost. */
    wf__spin_lock(&g->lock);
    if (g->cwait == &node)
        g->cwait = NULL;
    wf__spin_unlock(&g->lock);
    return wf__park_errno(r);
}

int wf_gen_next(wf_gen_t *g, void **value)
{
    return wf_gen_next_until(g, value, WF_FOREVER);
}

int wf_gen_yield(wf_gen_t *g, void *value)
{
    if (!g)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__spin_lock(&g->lock);
    if (self != g->gtask) {
        wf__spin_unlock(&g->lock);
        return -EPERM;
    }
    /* Closed (or the runtime is shutting down): deliver nothing. relaxed: a
     * close sets `closing` under the lock first; the cancel count covers
     * the runtime's own cancellation, and the commit re-checks it. */
    if (g->closing || atomic_load_explicit(&self->cancel, memory_order_relaxed) > 0) {
        wf__spin_unlock(&g->lock);
        return -ECANCELED;
    }
    g->requested = false;
    bool delivered = false;
    wf__task *target = NULL;
    gen_cnode *c = g->cwait;
    if (c) {
        g->cwait = NULL;
        wf__task *t = c->n.task;
        c->n.data = value; /* before the deciding CAS, which releases it */
        c->kind = C_VALUE;
        wf__decision d = wf__park_decide(t, c->n.seq, WF__R_WOKEN);
        delivered = d != WF__DECIDE_LOST;
        if (d == WF__DECIDED_PARKED)
            target = t;
    }
    if (!delivered) {
        g->pending = value;
        g->has_pending = true;
    }
    wf__waitnode node;
    node.task = self;
    node.data = NULL;
    node.seq = wf__park_begin(self, 0);
    g->gwait = &node;
    wf__spin_unlock(&g->lock);
    unsigned r = target ? wf__park_commit_handoff(self, node.seq, WF_FOREVER, target)
                        : wf__park_commit(self, node.seq, WF_FOREVER);
    if (wf__likely(r == WF__R_WOKEN))
        return 0; /* asked for the next value: ours was collected */
    wf__spin_lock(&g->lock);
    if (g->gwait == &node)
        g->gwait = NULL;
    bool taken_back = !delivered && g->has_pending;
    if (taken_back)
        g->has_pending = false;
    wf__spin_unlock(&g->lock);
    return taken_back ? -ECANCELED : 0;
}

int wf_gen_close(wf_gen_t *g, int *status)
{
    if (!g)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__spin_lock(&g->lock);
    int e = 0;
    if (self == g->gtask)
        e = -EDEADLK;
    else if (g->cwait || g->closing)
        e = -EBUSY;
    if (e) {
        wf__spin_unlock(&g->lock);
        return e;
    }
    if (!g->done) {
        g->closing = true;
        if (g->body_started) {
            /* Interrupt the body wherever it waits. -EALREADY if it has just
             * ended: fine. Our handle keeps the task record alive until the
             * wf_detach below. */
            wf__spin_unlock(&g->lock);
            (void)wf_cancel(g->gid);
            wf__spin_lock(&g->lock);
        } else if (g->gwait) {
            /* Parked in its prologue: wake it; seeing `closing`, it calls
             * the drop callback in its own fiber and ends without running
             * the body. (Not yet there: it will see `closing` when it is.) */
            wf__waitnode *gw = g->gwait;
            g->gwait = NULL;
            wf__task *t = gw->task;
            if (wf__park_decide(t, gw->seq, WF__R_WOKEN) == WF__DECIDED_PARKED) {
                wf__spin_unlock(&g->lock);
                wf__ready(t);
                wf__spin_lock(&g->lock);
            }
        }
        if (!g->done) {
            gen_cnode node;
            node.n.task = self;
            node.n.data = NULL;
            node.kind = 0;
            node.status = 0;
            node.n.seq = wf__park_begin(self, WF__PARK_NOCANCEL);
            g->cwait = &node;
            wf__spin_unlock(&g->lock);
            unsigned r = wf__park_commit(self, node.n.seq, WF_FOREVER);
            wf__assert(r == WF__R_WOKEN, "an uncancellable wait without deadline ends woken");
            /* Wait out finish()'s unlock before freeing. */
            wf__spin_lock(&g->lock);
        }
    }
    int st = g->status;
    wf__spin_unlock(&g->lock);
    if (status)
        *status = st;
    (void)wf_detach(g->gid);
    free(g);
    return 0;
}
