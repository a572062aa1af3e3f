/* task.h - the task record: a fiber (stack + saved context), its place in
 * the scheduler, its wait, and its outcome.
 *
 * LIFE (task->life), who owns what:
 *   PENDING  spawned, never run. No stack yet: stacks are taken when a task
 *            first runs, so a million queued tasks cost a million records,
 *            not a million stacks. Owned by whichever queue holds it.
 *   STARTED  has a fiber (a stack with its context). While it runs, the worker
 *            running it owns the stack; while parked, nobody does until a
 *            decider (park.h) queues it; while queued, the queue does.
 *   DONE     the body returned; status and result are final (published with
 *            release, read with acquire). The stack is recycled by the
 *            scheduler after the last switch away from it.
 *
 * REFERENCES live in the task's handle-table slot (handle.h): handles,
 * pins (calls in progress) and the runtime's running reference, all in one
 * atomic word, so a lookup and the last release can never miss each other.
 * The last one to go frees the slot and the record.
 */
#ifndef WF_TASK_H
#define WF_TASK_H

#include "atomic.h"
#include "fcontext.h"
#include "list.h"
#include "spinlock.h"
#include "timer.h"
#include <weft/task.h>

struct wf__stack;
struct wf__runtime;

enum { WF__LIFE_PENDING = 0, WF__LIFE_STARTED = 1, WF__LIFE_DONE = 2 };

/* What the task is doing, for wf_task_state() and dumps only (relaxed). */
enum { WF__WHERE_QUEUED = 0, WF__WHERE_RUNNING = 1, WF__WHERE_PARKED = 2 };

#define WF__TASK_NAME_MAX 32

typedef struct wf__task {
    /* --- switching and scheduling: hot --- */
    fcontext_t ctx;          /* saved context; valid while not running */
    struct wf__stack *stack; /* NULL until first run */
    struct wf__task *qnext;  /* link in the inject queue or a batch */
    _Atomic uint64_t park;   /* the park word, park.h */
    _Atomic uint32_t life;   /* WF__LIFE_* */
    _Atomic uint32_t cancel;  /* pending cancellation requests */
    _Atomic uint8_t where;    /* WF__WHERE_*, advisory */
    /* 1 while a settler reads this task after publishing PARKED (park.h,
     * wf__park_settle): the task, once resumed, waits for 0 before it goes
     * on, so the record outlives the settler's last access. */
    _Atomic uint8_t settling;
    int16_t pin;              /* worker index, or -1 */
    uint32_t stack_size;
    wf_fn fn;
    void *arg;
    void (*drop)(void *arg); /* instead of fn if cancelled before start */
    struct wf__runtime *rt;
    uint64_t id;           /* this task's handle value */
    struct wf__slot *slot; /* its handle-table slot: the references */
    /* --- outcome: written by the task before DONE --- */
    void *result;
    int status;
    /* --- waiting --- */
    wf__spinlock jlock; /* protects joiners and hooks */
    wf__link joiners;   /* wf__waitnode of tasks joining this one */
    wf__link hooks;     /* wf__done_hook run when the task ends */
    /* Timeout scopes (owner only): the earliest deadline of the scopes the
     * task is inside (INT64_MAX: none) caps every cancellable wait (park.h),
     * and the innermost scope, for the scope code's own bookkeeping. */
    int64_t scope_deadline;
    void *scope;
    /* Open cleanup scopes (owner only, timeout.c): while nonzero, the
     * task's waits hold off cancellation (park.h, SHIELD). */
    uint32_t shield;
    /* Task groups opened by the task and not yet waited (owner only,
     * group.c): reported if the task returns with one open. */
    void *groups;
    /* The message of the latest cancellation request (Task.cancel(msg)). */
    _Atomic(const char *) cancel_msg;
    /* --- debugging --- */
    char *name; /* a copy of the name given at spawn, or NULL: "task" */
} wf__task;

static inline const char *wf__task_name(const wf__task *t)
{
    return t->name ? t->name : "task";
}

/* A node a task puts on a wait list. Lives on the waiting fiber's stack. */
typedef struct wf__waitnode {
    wf__link link;
    wf__task *task;
    uint64_t seq;
    void *data; /* primitive-specific: an item handed over, a flag */
} wf__waitnode;

/* Something to run when a task ends (gather, wait, futures, callbacks):
 * registered with wf__task_add_hook, run exactly once, under the task's
 * jlock, on the thread that finishes the task. It must be short and must
 * not block, take a task's jlock, or call wf__task_add_hook/remove_hook. */
typedef struct wf__done_hook {
    wf__link link;
    void (*fn)(struct wf__done_hook *h, struct wf__task *t);
} wf__done_hook;

/* A hook whose work must not run under the task's jlock because it calls
 * user code (done callbacks). Set hook.fn = NULL and `run`, then register
 * &ah->hook with wf__task_add_hook. When the task ends, wf__task_finish
 * unlinks it under jlock (with the ordinary hooks) and, after releasing
 * jlock and readying the joiners, calls ah->run(ah, t) once on the
 * finishing thread (the ended task's fiber, or the scheduler for a task
 * that never ran). wf__task_remove_hook removes it while it is still
 * linked (true: run will never be called); false means run is about to
 * run, running or done, and `ah` belongs to run. */
typedef struct wf__after_hook {
    wf__done_hook hook; /* hook.fn == NULL marks an after-hook */
    struct wf__after_hook *next; /* wf__task_finish's private list */
    void (*run)(struct wf__after_hook *ah, struct wf__task *t);
} wf__after_hook;

/* A list of tasks about to be made runnable, linked through qnext. */
typedef struct wf__batch {
    wf__task *head, *tail;
    unsigned n;
} wf__batch;

static inline void wf__batch_init(wf__batch *b)
{
    b->head = b->tail = NULL;
    b->n = 0;
}

static inline void wf__batch_push(wf__batch *b, wf__task *t)
{
    t->qnext = NULL;
    if (b->tail)
        b->tail->qnext = t;
    else
        b->head = t;
    b->tail = t;
    b->n++;
}

static inline wf__task *wf__batch_pop(wf__batch *b)
{
    wf__task *t = b->head;
    if (t) {
        b->head = t->qnext;
        if (!b->head)
            b->tail = NULL;
        b->n--;
    }
    return t;
}

/* Wake every node of `list` (lock held by the caller) for reason WOKEN,
 * appending tasks that must be queued to `out`. Returns how many woke. */
unsigned wf__wake_all(wf__link *list, wf__batch *out);

/* Wake the first node of `list` that can still be woken, handing it `data`
 * (stored in node->data before the deciding CAS). Returns the node (already
 * unlinked) or NULL; `*queue` gets the task to make runnable, or NULL. */
wf__waitnode *wf__wake_one(wf__link *list, void *data, wf__task **queue);

/* Register `h` on `t`. Returns false if `t` has already ended (then `h`
 * is not registered and the caller acts on the outcome itself). Never call
 * it while holding another lock that a hook might take. */
bool wf__task_add_hook(wf__task *t, wf__done_hook *h);

/* Unregister `h` if it has not run. Returns true if it was removed (it will
 * never run), false if it already ran. Once this returns, `h` is not in
 * use by the runtime and may be freed. */
bool wf__task_remove_hook(wf__task *t, wf__done_hook *h);

/* Pin the task named by `id` for the duration of a call (handle.h: any
 * live handle, or the caller itself, which may always name itself). 0 and
 * *out, or -EINVAL (dead or invalid handle) or -EOVERFLOW (too many calls
 * in flight on one task). Give the pin back with wf__task_unpin. */
int wf__task_pin(struct wf__runtime *rt, uint64_t id, wf__task **out);

/* Claim one of the handles of `id` for a call that consumes it (join,
 * detach, gather): as wf__task_pin, but -EINVAL also when no handle is left
 * to consume. The call ends with wf__task_unpin (the handle is consumed)
 * or wf__task_unclaim (it is given back: the call failed). */
int wf__task_claim(struct wf__runtime *rt, uint64_t id, wf__task **out);
void wf__task_unpin(wf__task *t);
/* wf_spawn, with the new task's references chosen: WF__REF_HANDLE (the
 * caller's handle), WF__REF_PIN (a runtime holder's own reference, given
 * back with wf__task_unpin: no join or detach can consume it), or both
 * added. `rec` (optional) receives the record. */
int wf__spawn_refs(wf_task_t *out, wf__task **rec, wf_fn fn, void *arg, const wf_spawn_opts_t *opts,
                   uint64_t refs);
void wf__task_unclaim(wf__task *t);

/* Add one handle to `t`, which the caller keeps alive (a pin or a handle
 * of its own): 0, or -EOVERFLOW past 65535 handles. Given back with
 * wf__task_unref. */
int wf__task_ref(wf__task *t);

/* Drop one handle; the last reference frees the record. */
void wf__task_unref(wf__task *t);

/* The number of live handles to `t` (a snapshot). */
uint32_t wf__task_handles(const wf__task *t);

/* Wait (cancellably, until `deadline`) for `t`, which the caller has
 * pinned or claimed, to end: 0 once it has (its outcome is readable),
 * -ETIMEDOUT, -ECANCELED. */
int wf__join_claimed(wf__task *self, wf__task *t, int64_t deadline);

/* Request cancellation of `t` (kept alive by the caller) with `msg`: false
 * if it has already ended. */
bool wf__task_cancel(wf__task *t, const char *msg);

/* Keep `rt` from finishing (wf_run's shutdown waits for it as for one more
 * live task) while a thread outside it submits work; the caller must know
 * the runtime is alive (combinators/threadsafe.c). unhold gives it back and
 * touches nothing after: the runtime may be freed as soon as it returns. */
void wf__runtime_hold(struct wf__runtime *rt);
void wf__runtime_unhold(struct wf__runtime *rt);

/* Free a record (the handle table calls it once nothing refers to it). */
void wf__task_free_record(wf__task *t);

/* The task running on this thread, or NULL (scheduler context, foreign
 * thread). */
/* Drop the task's timeout scopes down to `to` (one of its scopes, or NULL)
 * without touching the ones above it, whose frames are gone (a generator
 * body that returned inside a scope); timeout.c. Owner only. */
void wf__timeout_unwind(wf__task *self, void *to);

wf__task *wf__current(void);

/* Run a task's body on the current fiber: call fn, publish the outcome,
 * wake the joiners. Returns; the fiber's loop then switches away. */
void wf__task_run(wf__task *t);

#endif
