/* generator.c - generators: a body on a stack of its own, run by whichever
 * task asks it for a value (Python's async generators).
 *
 * A generator is not a task. It is a stack and a saved context; the task
 * that calls wf_gen_next() switches onto that stack and runs the body there,
 * as itself, until the body yields or returns; wf_gen_yield() switches back.
 * This is what Python does (an async generator's frame runs inside the
 * awaiting task), and it is what makes a value cheap: one jump_fcontext each
 * way and one atomic exchange (the `busy` flag), no park word, no spinlock,
 * no run queue. While the body runs it is the consumer's task in every
 * respect: wf_self() is the consumer, a cancellation of the consumer fails
 * the body's waits, a body that sleeps parks the consumer's task (which may
 * then be resumed on another worker, still on the generator's stack).
 *
 * THE STACK SWAP. A task's record names the stack it runs on (t->stack); the
 * scheduler's switches, the sanitizer annotations, the canary checks and the
 * SIGSEGV handler all read it. gen_jump() points it at the stack being
 * switched to before every jump, so a task parked inside a body is resumed
 * on the body's stack with the right annotations, and an overflow in a body
 * is reported against the body's stack. Nested generators (a pipeline: the
 * consumer runs the tokenizer, which runs the cleaner, which runs the
 * reader) nest these swaps: each generator remembers the stack and context
 * of whoever resumed it last (`caller_stack`, `caller`), a stack discipline.
 *
 * OWNERSHIP. `busy` (set by one atomic exchange) makes one task at a time
 * the generator's driver: it alone touches the rest of the record until it
 * clears `busy` (release; the next driver's exchange acquires), so the
 * record needs no lock, and a second driver gets -EBUSY instead of two
 * tasks resuming one context.
 *
 * CLOSE resumes a body suspended in a yield with -ECANCELED (GeneratorExit
 * at the yield); the body cleans up and returns, in the closer's task. A
 * body that never started never runs: the `drop` option gets its argument.
 *
 * REJECTED: a generator as a task of its own, handing the CPU over with a
 * direct fiber switch (weft's first version). Each hand-over then decides a
 * wait (park word CAS), publishes one (seq_cst store), settles the other
 * side (CAS) and takes a spinlock: ~120 ns a value on this machine against
 * ~30 ns now, and the semantics were further from Python's (cancelling the
 * consumer did not reach the body).
 */
#include "park.h"
#include "runtime.h"
#include "sanitizer.h"
#include "stack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/combinators.h>
#include <weft/gen.h>

struct wf_gen {
    /* busy: 1 while a task drives the generator (runs it, closes it).
     * driver: that task, for telling -EDEADLK from -EBUSY; written by the
     * driver, read by anyone, hence atomic (relaxed: a diagnosis only). */
    atomic_int busy;
    _Atomic(wf__task *) driver;
    /* Owned by the driver of the moment. */
    wf__runtime *rt;
    /* The body's stack; NULL before the first run and after the end.
     * Atomic (relaxed) only for wf_gen_yield's misuse check. */
    _Atomic(wf__stack *) stack;
    fcontext_t ctx;      /* the body's saved context while it is suspended */
    fcontext_t caller;   /* the context to return to at a yield or the end */
    wf__stack *caller_stack;
    void *caller_scope;  /* the driver's innermost timeout scope at the resume */
    void *value;         /* what the body yielded */
    int status;          /* the body's return value, once done */
    bool started, done, closing;
    size_t stack_size;
    wf_gen_fn fn;
    void *arg;
    void (*drop)(void *arg);
    char name[32];
};

static void gen_entry(transfer_t tr);

/* Jump from the stack `self` runs on to `to`, whose context is `ctx`;
 * returns what the other side passed when it jumps back. The side that
 * jumps points the task at the stack it jumps to. Both sides run as
 * `self`'s task on one worker, one at a time: nothing here needs an atomic.
 * `leaving_body`: the stack we leave is a generator's, whose depth (for the
 * watermark trim) and canary only we look at; a driver's own stack gets
 * both from the scheduler's switches. */
static inline transfer_t gen_jump(wf__task *self, wf__stack *to, fcontext_t ctx, void *data, bool leaving_body)
{
    if (leaving_body) {
        wf__stack *from = self->stack;
        uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
        if (sp < from->min_sp)
            from->min_sp = sp;
        if (wf__unlikely(!wf__stack_canary_ok(from)))
            wf__overflow_report(self);
    }
    self->stack = to;
    void *fake = NULL;
    wf__asan_start_switch(&fake, to->lo, to->size);
    wf__tsan_switch(to->tsan);
    transfer_t r = jump_fcontext(ctx, data);
    wf__asan_finish_switch(fake);
    return r;
}

/* Give the generator its stack and a fresh context (first run). */
static int gen_start(wf_gen_t *g)
{
    wf__worker *w = wf__tls_worker();
    wf__stack *s = wf__stack_get(&g->rt->stacks, w ? &w->stacks : NULL, g->stack_size);
    if (!s)
        return -ENOMEM;
    /* A pooled stack may hold a suspended fiber loop (fiber.c); we start a
     * fresh context on it instead, so the frames of that loop are dropped:
     * their ASan poisoning goes, and (TSan) so does the fiber state that
     * still has them on its shadow stack. gen_release() does the same
     * before the stack goes back. */
    s->ctx = NULL;
    wf__asan_unpoison(s->lo, s->size);
    if (WF_TSAN) {
        wf__tsan_destroy(s->tsan);
        s->tsan = wf__tsan_create();
        wf__tsan_name(s->tsan, g->name);
    }
    atomic_store_explicit(&g->stack, s, memory_order_relaxed);
    g->ctx = make_fcontext(s->hi, s->size, gen_entry);
    g->started = true;
    return 0;
}

/* Give the stack back (the body has returned, or never will run again). */
static void gen_release(wf_gen_t *g)
{
    wf__stack *s = atomic_load_explicit(&g->stack, memory_order_relaxed);
    if (!s)
        return;
    atomic_store_explicit(&g->stack, NULL, memory_order_relaxed);
    s->ctx = NULL; /* no fiber loop waits there: the next user starts one */
    wf__asan_unpoison(s->lo, s->size);
    if (WF_TSAN) {
        wf__tsan_destroy(s->tsan);
        s->tsan = NULL; /* fiber.c's first_run makes a fresh one */
    }
    wf__worker *w = wf__tls_worker();
    wf__stack_put(&g->rt->stacks, w && w->rt == g->rt ? &w->stacks : NULL, s);
}

/* The body's side of a hand-over: jump back to the caller with the state
 * already recorded in `g`; returns when the generator is resumed. The
 * caller of the moment is whoever resumed us last. */
static void to_caller(wf_gen_t *g, wf__task *self)
{
    transfer_t tr = gen_jump(self, g->caller_stack, g->caller, g, true);
    g->caller = tr.fctx; /* the next driver's context */
}

static void gen_entry(transfer_t tr)
{
    wf__asan_finish_switch(NULL);
    wf_gen_t *g = tr.data;
    g->caller = tr.fctx;
    int status = g->fn(g, g->arg);
    if (status > 0)
        status = -ERANGE; /* would read as "a value" in wf_gen_next */
    g->status = status;
    g->done = true;
    wf__task *self = wf__current();
    /* Timeout scopes the body left open lived in its frames, gone now:
     * drop them, so the driver's scope stack is its own again, and say so
     * (a lifetime mistake, as a task body's: task.c, exit_check). */
    if (self->scope != g->caller_scope) {
        fprintf(stderr,
                "weft: a generator body driven by task '%s' (id %#llx) returned inside a timeout "
                "scope it entered: call wf_timeout_leave() before it returns; the scope was dropped\n",
                wf__task_name(self), (unsigned long long)self->id);
        wf__timeout_unwind(self, g->caller_scope);
    }
    /* The last jump off this stack: it is never resumed, and the driver
     * gives it back. A NULL save tells ASan this fiber is gone. */
    wf__stack *to = g->caller_stack;
    self->stack = to;
    wf__asan_start_switch(NULL, to->lo, to->size);
    wf__tsan_switch(to->tsan);
    jump_fcontext(g->caller, g);
    wf__panic("a finished generator was resumed");
}

/* Run the body until its next yield or its end, as `self`. */
static void resume(wf_gen_t *g, wf__task *self)
{
    g->caller_stack = self->stack;
    g->caller_scope = self->scope;
    transfer_t tr = gen_jump(self, atomic_load_explicit(&g->stack, memory_order_relaxed), g->ctx, g, false);
    g->ctx = tr.fctx;
}

/* Become the driver: -EBUSY / -EDEADLK when someone (perhaps the caller,
 * from inside the body) already is. */
static int take(wf_gen_t *g, wf__task *self)
{
    /* acquire: the previous driver's writes to the record (its release in
     * give_back) happen before ours. */
    if (atomic_exchange_explicit(&g->busy, 1, memory_order_acquire)) {
        wf__task *d = atomic_load_explicit(&g->driver, memory_order_relaxed);
        return d == self ? -EDEADLK : -EBUSY;
    }
    atomic_store_explicit(&g->driver, self, memory_order_relaxed);
    return 0;
}

static void give_back(wf_gen_t *g)
{
    atomic_store_explicit(&g->driver, NULL, memory_order_relaxed);
    /* release: our writes to the record before the next driver's acquire. */
    atomic_store_explicit(&g->busy, 0, memory_order_release);
}

int wf_gen_create(wf_gen_t **out, wf_gen_fn fn, void *arg, const wf_spawn_opts_t *opts)
{
    if (!out || !fn)
        return -EINVAL;
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    size_t stack = rt->stacks.default_size;
    const char *name = "generator";
    void (*drop)(void *) = NULL;
    if (opts) {
        if (opts->stack_size) {
            if (opts->stack_size < WF__STACK_MIN || opts->stack_size > WF__STACK_MAX)
                return -EINVAL;
            stack = wf__stack_round(&rt->stacks, opts->stack_size);
        }
        /* The body runs in its consumer's task, wherever that runs. */
        if (opts->worker != -1)
            return -EINVAL;
        if (opts->name)
            name = opts->name;
        drop = opts->drop;
    }
    wf_gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    atomic_init(&g->busy, 0);
    atomic_init(&g->driver, NULL);
    g->rt = rt;
    g->stack_size = stack;
    g->fn = fn;
    g->arg = arg;
    g->drop = drop;
    strncpy(g->name, name, sizeof g->name - 1);
    *out = g;
    return 0;
}

static inline int gen_next(wf_gen_t *g, void **value, int64_t deadline)
{
    if (!g || !value || deadline < WF_FOREVER)
        return -EINVAL;
    wf__worker *w = wf__tls_worker();
    wf__task *self = w ? w->current : NULL;
    if (!self)
        return -EPERM;
    if (self->rt != g->rt)
        return -EXDEV;
    int e = take(g, self);
    if (e)
        return e;
    if (g->done) {
        e = g->status;
        give_back(g);
        return e;
    }
    if (!g->started && (e = gen_start(g)) != 0) {
        give_back(g);
        return e;
    }
    /* The deadline caps the body's waits for this value: a timeout scope
     * around the resume (asyncio.timeout around anext()); the caller's own
     * scopes still hold too. */
    wf_timeout_t tm;
    bool scoped = deadline != WF_FOREVER && wf_timeout_enter(&tm, deadline) == 0;
    resume(g, self);
    if (scoped)
        (void)wf_timeout_leave(&tm);
    if (g->done) {
        gen_release(g);
        e = g->status;
    } else {
        *value = g->value;
        e = 1;
    }
    give_back(g);
    return e;
}

int wf_gen_next_until(wf_gen_t *g, void **value, int64_t deadline)
{
    return gen_next(g, value, deadline);
}

int wf_gen_next(wf_gen_t *g, void **value)
{
    return gen_next(g, value, WF_FOREVER);
}

int wf_gen_yield(wf_gen_t *g, void *value)
{
    if (!g)
        return -EINVAL;
    /* Only the body, running: then we are on its stack (no other code ever
     * is), and the task running us is its driver. Checking the stack
     * pointer spares a thread-local lookup on every value. `stack` is read
     * relaxed: a misuse from another task may race with the driver's
     * writes, and any value it reads other than ours rejects, correctly. */
    wf__stack *s = atomic_load_explicit(&g->stack, memory_order_relaxed);
    char *sp = __builtin_frame_address(0);
    if (!s || sp < s->lo || sp >= s->hi)
        return -EPERM;
    wf__task *self = atomic_load_explicit(&g->driver, memory_order_relaxed);
    if (g->closing)
        return -EPIPE; /* closed already: nothing is delivered */
    /* A scope entered in the body and still open would leak into the
     * consumer's code (its frame is on our stack): refuse (PEP 789). */
    if (self->scope != g->caller_scope)
        return -EBUSY;
    g->value = value;
    to_caller(g, self);
    /* Resumed: by a next (another value wanted) or by a close. The driver
     * may be another task than before. */
    return g->closing ? -ECANCELED : 0;
}

int wf_gen_close(wf_gen_t *g, int *status)
{
    if (!g)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (self->rt != g->rt)
        return -EXDEV;
    int e = take(g, self);
    if (e)
        return e;
    g->closing = true;
    if (!g->started) {
        /* Never ran: it never will. */
        if (g->drop)
            g->drop(g->arg);
        g->status = -ECANCELED;
        g->done = true;
    } else if (!g->done) {
        /* Suspended in a yield: that yield returns -ECANCELED, the body
         * cleans up and returns. A body that yields again gets -EPIPE; one
         * that keeps yielding regardless would never let us go (a bug in
         * the body, as in Python, where it raises RuntimeError). */
        while (!g->done)
            resume(g, self);
        gen_release(g);
    }
    if (status)
        *status = g->status;
    /* No give_back: nobody may touch `g` from here on. */
    free(g);
    return 0;
}
