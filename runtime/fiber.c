/* fiber.c - switching between a worker's scheduler and a task's fiber.
 *
 * A fiber that stops either switches back to its worker's scheduler, on
 * the worker's own thread stack (Go's mcall/g0 shape), or, when the next
 * local task is ready and the tick has no periodic duty, straight to that
 * task (switch_direct: one switch instead of two). Either way the side that
 * resumes first finishes the switch (finish_switch) on a stack the stopped
 * fiber is no longer on, which is where the rule "publish only after the
 * switch" is kept: a parked fiber is made visible as parked
 * (wf__park_settle), a yielded one is queued, and a dead one's stack is
 * recycled only there.
 *
 * The context of the side that switched away travels in the transfer_t
 * returned by jump_fcontext; the data pointer is always the worker whose
 * scheduler is involved, so a fiber learns which worker resumed it from the
 * switch itself, never from a thread-local cached across the switch.
 */
#include "park.h"
#include "runtime.h"
#include "sanitizer.h"

#include <errno.h>
#include <string.h>

/* The fiber loop. A fiber (a stack and its context) runs one task per turn:
 * when the task's function returns, the loop switches back to the scheduler
 * with WF__ACT_EXIT and stays suspended right there, in the pooled stack,
 * until the stack is handed to a new task and resumed. So a task start costs
 * no make_fcontext once stacks are warm, and the sanitizers see every task's
 * frames return (a TSan fiber state can then be reused for the next task:
 * creating one clears ~770 KiB). */
static void fiber_entry(transfer_t tr);

/* Owner only. Queue `t` at the back of this worker's ring (or its pinned
 * inbox), sending overflow to the inject queue. */
static void requeue_back(wf__worker *w, wf__task *t, bool woken)
{
    if (t->pin >= 0) {
        wf__inject_push(&w->pinned, t);
        return;
    }
    if (wf__likely(wf__runq_try_push(&w->runq, t))) {
        if (!woken)
            wf__runq_mark_plain(&w->runq);
        return;
    }
    wf__batch of;
    wf__batch_init(&of);
    if (!wf__runq_push(&w->runq, t, &of)) {
        wf__inject_push_batch(&w->rt->inject, &of);
        wf__notify_work(w->rt);
    }
}

/* `t` has just switched away (its context is saved): record its depth and
 * check its canary. Runs on the stack of whoever resumed. */
static inline void after_switch_away(wf__task *t, fcontext_t ctx)
{
    t->ctx = ctx;
    wf__stack *s = t->stack;
    if ((uintptr_t)ctx < s->min_sp)
        s->min_sp = (uintptr_t)ctx;
    if (wf__unlikely(!wf__stack_canary_ok(s)))
        wf__overflow_report(t);
}

/* `t` switched away to park: make it visible as parked, or, if its wait was
 * decided while it switched, queue it to run next (nobody else will). */
static void settle_park(wf__worker *w, wf__task *t)
{
    atomic_store_explicit(&t->where, WF__WHERE_QUEUED, memory_order_relaxed);
    if (wf__park_settle(t))
        return;
    if (t->pin >= 0) {
        /* A pinned task parks only on its own worker: this one. */
        wf__inject_push(&w->pinned, t);
        return;
    }
    wf__task *old = wf__runq_put_next(&w->runq, t);
    if (old) {
        requeue_back(w, old, true);
        wf__notify_work(w->rt);
    }
}

/* Carry out what fiber `t` asked for when it switched away with `action`,
 * now that it no longer runs (its context is `ctx`). Runs on the stack of
 * whoever was switched to: the scheduler, or the next fiber. */
static void finish_switch(wf__worker *w, wf__task *t, unsigned action, fcontext_t ctx)
{
    after_switch_away(t, ctx);
    switch (action) {
    case WF__ACT_YIELD:
        atomic_store_explicit(&t->where, WF__WHERE_QUEUED, memory_order_relaxed);
        requeue_back(w, t, false);
        break;
    case WF__ACT_PARK:
        settle_park(w, t);
        break;
    case WF__ACT_EXIT: {
        wf__stack *s = t->stack;
        /* An overflow that came back up before any switch: the whole zone. */
        if (wf__unlikely(!wf__stack_canary_full_ok(s)))
            wf__overflow_report(t);
        /* The fiber loop, suspended, stays with the stack. */
        s->ctx = ctx;
        t->stack = NULL;
        t->ctx = NULL;
        wf__stack_put(&w->rt->stacks, &w->stacks, s);
        wf__task_retire(w->rt, t);
        break;
    }
    default:
        wf__panic("fiber switched away with unknown action %u", action);
    }
}

/* Every place a fiber resumes calls this with what jump_fcontext returned.
 * The data is always the worker. The context belongs to whoever switched
 * to us: the scheduler, or a fiber that switched directly to us (its action
 * is then finished here, on our side of the switch). */
static inline wf__worker *land(transfer_t tr)
{
    wf__worker *w = tr.data;
    wf__task *from = w->switch_from;
    if (wf__likely(!from)) {
        w->sched_ctx = tr.fctx;
        return w;
    }
    w->switch_from = NULL;
    finish_switch(w, from, w->from_action, tr.fctx);
    return w;
}

static void fiber_entry(transfer_t tr)
{
    wf__asan_finish_switch(NULL);
    wf__worker *w = land(tr);
    for (;;) {
        wf__task *t = w->current;
        wf__task_run(t);
        w = wf__fiber_switch_out(t, WF__ACT_EXIT);
    }
}

/* What first_run did. */
enum { FIRST_RUN_OK, FIRST_RUN_ENDED, FIRST_RUN_LATER };

/* First run of a task: give it a stack and a context. A task cancelled
 * before it ever ran does not run its body (asyncio), but it still gets a
 * fiber of its own: its drop callback and its done callbacks are user code,
 * which may wait, and must not run on the stack of whatever fiber happens
 * to be switching out (that fiber may be mid-park: a wait there would
 * corrupt its wait). wf__task_run sees fn == NULL and runs only the drop.
 * If no stack can be had, the task ends -ENOMEM without running; from a
 * fiber (`in_fiber`), that is left to the scheduler loop (FIRST_RUN_LATER),
 * so that its drop and done callbacks run where no fiber is mid-park (on
 * the scheduler's stack, outside any fiber: waits there fail with -EPERM).
 * The body never runs then, so the drop releases its argument. */
static int first_run(wf__worker *w, wf__task *t, bool in_fiber)
{
    wf__runtime *rt = w->rt;
    /* acquire: pairs with wf_cancel's increment. */
    if (atomic_load_explicit(&t->cancel, memory_order_acquire) > 0)
        t->fn = NULL;
    wf__stack *s = wf__stack_get(&rt->stacks, &w->stacks, t->stack_size);
    if (!s) {
        if (in_fiber)
            return FIRST_RUN_LATER;
        if (t->drop)
            t->drop(t->arg);
        wf__task_finish(t, -ENOMEM, NULL);
        wf__task_retire(rt, t);
        return FIRST_RUN_ENDED;
    }
    t->stack = s;
    /* A pooled stack's fiber is suspended in its loop: resume it. */
    t->ctx = s->ctx ? s->ctx : make_fcontext(s->hi, s->size, fiber_entry);
    s->ctx = NULL;
    if (WF_TSAN && !s->tsan)
        s->tsan = wf__tsan_create();
    wf__tsan_name(s->tsan, wf__task_name(t));
    atomic_store_explicit(&t->life, WF__LIFE_STARTED, memory_order_relaxed);
    return FIRST_RUN_OK;
}

void wf__fiber_run(wf__worker *w, wf__task *t)
{
    if (wf__unlikely(!t->stack) && first_run(w, t, false) != FIRST_RUN_OK)
        return;

    w->current = t;
    atomic_store_explicit(&t->where, WF__WHERE_RUNNING, memory_order_relaxed);
    void *fake = NULL;
    wf__asan_start_switch(&fake, t->stack->lo, t->stack->size);
    wf__tsan_switch(t->stack->tsan);
    transfer_t tr = jump_fcontext(t->ctx, w);
    wf__asan_finish_switch(fake);

    /* Back on the scheduler's stack. The fiber that switched back is
     * w->current: `t`, or another one that was switched to directly. */
    t = w->current;
    w->current = NULL;
    finish_switch(w, t, w->action, tr.fctx);
    w->action = WF__ACT_NONE;
}

/* Switch from fiber `from` (which asked for `action`) straight to `to`,
 * which has a context (started, or just given one by first_run). */
static wf__worker *switch_direct(wf__worker *w, wf__task *from, unsigned action, wf__task *to)
{
    w->current = to;
    w->switch_from = from;
    w->from_action = action;
    w->stats.runs++;
    atomic_store_explicit(&to->where, WF__WHERE_RUNNING, memory_order_relaxed);
    void *fake = NULL;
    wf__asan_start_switch(&fake, to->stack->lo, to->stack->size);
    wf__tsan_switch(to->stack->tsan);
    transfer_t tr = jump_fcontext(to->ctx, w);
    wf__asan_finish_switch(fake);
    return land(tr);
}

wf__worker *wf__fiber_switch_out(wf__task *t, unsigned action)
{
    wf__worker *w = wf__tls_worker();
    wf__assert(w && w->current == t, "a fiber switches out from its own worker");
    /* The fast way: the next local task, switched to directly. */
    wf__task *next = wf__sched_next_direct(w);
    if (next && (next->stack || first_run(w, next, true) == FIRST_RUN_OK))
        return switch_direct(w, t, action, next);
    if (next) /* no stack for it now: the loop ends it, or retries */
        wf__push_local(w, next);
    w->action = action;
    void *fake = NULL;
    wf__asan_start_switch(&fake, w->stack_lo, w->stack_len);
    wf__tsan_switch(w->tsan_sched);
    transfer_t tr = jump_fcontext(w->sched_ctx, w);
    /* Resumed, possibly by another worker: learn which from the switch. */
    wf__asan_finish_switch(fake);
    return land(tr);
}

bool wf__fiber_can_switch_to(wf__task *target)
{
    wf__worker *w = wf__tls_worker();
    return w && target->rt == w->rt && target->stack && (target->pin < 0 || (uint32_t)target->pin == w->index);
}

wf__worker *wf__fiber_switch_to(wf__task *self, wf__task *target)
{
    wf__worker *w = wf__tls_worker();
    wf__assert(w && w->current == self, "a fiber hands off from its own worker");
    wf__assert(wf__fiber_can_switch_to(target), "a hand-off target can run here");
    return switch_direct(w, self, WF__ACT_PARK, target);
}
