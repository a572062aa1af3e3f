/* task.c - tasks: spawn, join, detach, references, cancellation, yield.
 *
 * References live in the task's handle-table slot (handle.h): every public
 * call that takes a handle pins the record (or, for join, detach and
 * gather, claims one of its handles) with one compare-and-swap that also
 * checks the handle's generation, and gives the pin back when it is done.
 * A handle used at the same moment as its final release therefore either
 * keeps the record alive or gets -EINVAL; a second join of one handle
 * loses the claim and gets -EINVAL, however the two joins interleave.
 */
#include "park.h"
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Task records are recycled through a per-worker free list (owner only,
 * linked through qnext): the next spawn on that worker reuses a record that
 * is still in its cache, and malloc/free leave the spawn path. Records freed
 * by a thread that is not a worker, or past the cap, go back to the
 * allocator; so does everything under ASan, to keep its use-after-free
 * checks. */
#define TASK_CACHE_CAP 1024

static wf__task *task_alloc(wf__worker *w)
{
    if (!WF_ASAN && w && w->tfree) {
        wf__task *t = w->tfree;
        w->tfree = t->qnext;
        w->ntfree--;
        return t;
    }
    return malloc(sizeof(wf__task));
}

void wf__task_free_record(wf__task *t)
{
    free(t->name);
    wf__worker *w = wf__tls_worker();
    if (!WF_ASAN && w && w->rt == t->rt && w->ntfree < TASK_CACHE_CAP) {
        t->qnext = w->tfree;
        w->tfree = t;
        w->ntfree++;
        return;
    }
    free(t);
}

void wf__task_cache_drain(wf__worker *w)
{
    while (w->tfree) {
        wf__task *t = w->tfree;
        w->tfree = t->qnext;
        free(t);
    }
    w->ntfree = 0;
}

/* Change t's references (handle.h); the last change frees the record. */
static inline void refs(wf__task *t, int dhandles, int dpins, int drunning)
{
    wf__runtime *rt = t->rt;
    wf__worker *w = wf__tls_worker();
    wf__handle_refs(&rt->handles, w && w->rt == rt ? &w->handles : NULL, t, dhandles, dpins, drunning);
}

int wf__task_pin(wf__runtime *rt, wf_task_t id, wf__task **out)
{
    /* A task may always name itself (wf_self()), even once no handle to it
     * is left (a detached task): its running reference keeps it alive. */
    wf__task *self = wf__current();
    if (self && self->id == id) {
        int e = wf__handle_add(self, WF__REF_PIN);
        *out = e ? NULL : self;
        return e;
    }
    return wf__handle_pin(&rt->handles, id, out);
}

int wf__task_claim(wf__runtime *rt, wf_task_t id, wf__task **out)
{
    return wf__handle_claim(&rt->handles, id, out);
}

void wf__task_unpin(wf__task *t)
{
    refs(t, 0, -1, 0);
}

void wf__task_unclaim(wf__task *t)
{
    refs(t, +1, -1, 0);
}

void wf__task_unref(wf__task *t)
{
    refs(t, -1, 0, 0);
}

int wf__task_ref(wf__task *t)
{
    return wf__handle_add(t, WF__REF_HANDLE);
}

uint32_t wf__task_handles(const wf__task *t)
{
    return wf__ref_handles(atomic_load_explicit(&t->slot->word, memory_order_acquire));
}

/* Owner-only counter bump: a plain load and store, no locked instruction.
 * release: the shutdown code that reads the new count (acquire) sees the
 * task's last writes. */
static inline void count_up(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_release);
}

void wf__task_retire(wf__runtime *rt, wf__task *t)
{
    refs(t, 0, 0, -1);
    wf__worker *w = wf__tls_worker();
    wf__assert(w && w->rt == rt, "tasks are retired by their runtime's workers");
    count_up(&w->retired);
    /* During shutdown, tell the waiting wf_run thread to count again. */
    if (wf__unlikely(atomic_load_explicit(&rt->closing, memory_order_acquire))) {
        atomic_store_explicit(&rt->quiesced, 1, memory_order_release);
        wf__futex_wake(&rt->quiesced, 1);
    }
}

void wf__runtime_hold(wf__runtime *rt)
{
    /* relaxed: the caller knows the runtime is alive (threadsafe.c); it
     * counts as one more task spawned from outside until unhold. */
    atomic_fetch_add_explicit(&rt->ext_spawned, 1, memory_order_relaxed);
}

void wf__runtime_unhold(wf__runtime *rt)
{
    /* release: the holder's work in the runtime happens before the shutdown
     * code's acquire loads in wf__live see the count drop. */
    atomic_fetch_sub_explicit(&rt->ext_spawned, 1, memory_order_release);
}

uint64_t wf__live(wf__runtime *rt)
{
    /* Every retired count first, then every spawned count: a task retired
     * before the first reads was spawned before the later ones, so the
     * difference never undercounts what was alive when the first read was
     * made (acquire: later loads stay later). */
    uint64_t retired = 0, spawned;
    for (uint32_t i = 0; i < rt->nworkers; i++)
        retired += atomic_load_explicit(&rt->workers[i].retired, memory_order_acquire);
    spawned = atomic_load_explicit(&rt->ext_spawned, memory_order_acquire);
    for (uint32_t i = 0; i < rt->nworkers; i++)
        spawned += atomic_load_explicit(&rt->workers[i].spawned, memory_order_acquire);
    return spawned - retired;
}

wf__task *wf__current(void)
{
    wf__worker *w = wf__tls_worker();
    return w ? w->current : NULL;
}

/* --- wait-list helpers ------------------------------------------------- */

unsigned wf__wake_all(wf__link *list, wf__batch *out)
{
    unsigned n = 0;
    wf__link *l;
    while ((l = wf__list_pop_front(list)) != NULL) {
        wf__waitnode *nd = wf__container_of(l, wf__waitnode, link);
        wf__decision d = wf__park_decide(nd->task, nd->seq, WF__R_WOKEN);
        if (d == WF__DECIDED_PARKED)
            wf__batch_push(out, nd->task);
        n += d != WF__DECIDE_LOST;
    }
    return n;
}

wf__waitnode *wf__wake_one(wf__link *list, void *data, wf__task **queue)
{
    *queue = NULL;
    wf__link *l;
    while ((l = wf__list_pop_front(list)) != NULL) {
        wf__waitnode *nd = wf__container_of(l, wf__waitnode, link);
        /* Written before the deciding CAS, which releases it. */
        nd->data = data;
        wf__decision d = wf__park_decide(nd->task, nd->seq, WF__R_WOKEN);
        if (d == WF__DECIDE_LOST)
            continue; /* timed out or cancelled: it will find itself unlinked */
        if (d == WF__DECIDED_PARKED)
            *queue = nd->task;
        return nd;
    }
    return NULL;
}

/* --- life and death ---------------------------------------------------- */

void wf__task_finish(wf__task *t, int status, void *result)
{
    t->status = status;
    t->result = result;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&t->jlock);
    /* release: publishes status and result to joiners (acquire). Under
     * jlock, so a joiner's "not done yet, enqueue" is atomic with it. */
    atomic_store_explicit(&t->life, WF__LIFE_DONE, memory_order_release);
    wf__wake_all(&t->joiners, &b);
    wf__link *l;
    wf__after_hook *after = NULL, **tail = &after;
    while ((l = wf__list_pop_front(&t->hooks)) != NULL) {
        wf__done_hook *h = wf__container_of(l, wf__done_hook, link);
        if (h->fn) {
            h->fn(h, t);
            continue;
        }
        /* An after-hook: its run is called below, outside jlock. */
        wf__after_hook *ah = wf__container_of(h, wf__after_hook, hook);
        ah->next = NULL;
        *tail = ah;
        tail = &ah->next;
    }
    wf__spin_unlock(&t->jlock);
    wf__task *j;
    while ((j = wf__batch_pop(&b)) != NULL)
        wf__ready(j);
    while (after) {
        wf__after_hook *ah = after;
        after = ah->next; /* before run, which owns (and may free) ah */
        ah->run(ah, t);
    }
}

/* A body (or drop) returned with something of its frames still open. Only
 * the task record is read: the scope and group records lived in frames
 * that are gone, and this function's own frame may already cover them. */
static __attribute__((noinline, cold)) void exit_check(wf__task *t)
{
    if (t->groups) {
        /* Fatal: every child still holds the group, and its end will write
         * into that dead frame. */
        wf__panic("task '%s' (id %#llx) returned with a task group still open: call "
                  "wf_group_wait() before its body returns (wf_group_init, combinators.h)",
                  wf__task_name(t), (unsigned long long)t->id);
    }
    if (t->scope) {
        fprintf(stderr,
                "weft: task '%s' (id %#llx) returned inside a %s scope it entered: call "
                "wf_timeout_leave() before its body returns; the scope was dropped\n",
                wf__task_name(t), (unsigned long long)t->id, t->shield ? "cleanup" : "timeout");
        wf__timeout_unwind(t, NULL);
    }
}

void wf__task_run(wf__task *t)
{
    void *result = NULL;
    int status;
    if (wf__likely(t->fn)) {
        status = t->fn(t->arg, &result);
    } else {
        /* Cancelled before it ever ran (fiber.c, first_run): the body never
         * runs; the drop callback releases its argument. */
        if (t->drop)
            t->drop(t->arg);
        status = -ECANCELED;
    }
    /* Owner-only fields, read by their owner: one test, usually false. */
    if (wf__unlikely(t->scope || t->groups))
        exit_check(t);
    wf__task_finish(t, status, result);
}

bool wf__task_add_hook(wf__task *t, wf__done_hook *h)
{
    wf__list_init(&h->link); /* so remove_hook works even if never added */
    wf__spin_lock(&t->jlock);
    bool live = atomic_load_explicit(&t->life, memory_order_acquire) != WF__LIFE_DONE;
    if (live)
        wf__list_push_back(&t->hooks, &h->link);
    wf__spin_unlock(&t->jlock);
    return live;
}

bool wf__task_remove_hook(wf__task *t, wf__done_hook *h)
{
    wf__spin_lock(&t->jlock);
    bool linked = wf__link_linked(&h->link);
    if (linked)
        wf__list_unlink(&h->link);
    wf__spin_unlock(&t->jlock);
    return linked;
}

/* --- public API -------------------------------------------------------- */

int wf_spawn(wf_task_t *out, wf_fn fn, void *arg, const wf_spawn_opts_t *opts)
{
    return wf__spawn_refs(out, NULL, fn, arg, opts, WF__REF_HANDLE);
}

int wf__spawn_refs(wf_task_t *out, wf__task **rec, wf_fn fn, void *arg, const wf_spawn_opts_t *opts,
                   uint64_t refs)
{
    if (!out || !fn)
        return -EINVAL;
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    size_t stack = rt->stacks.default_size;
    int pin = -1;
    const char *name = NULL;
    void (*drop_fn)(void *) = NULL;
    if (opts) {
        if (opts->stack_size) {
            if (opts->stack_size < WF__STACK_MIN || opts->stack_size > WF__STACK_MAX)
                return -EINVAL;
            stack = wf__stack_round(&rt->stacks, opts->stack_size);
        }
        if (opts->worker != -1) {
            if (opts->worker < 0 || (uint32_t)opts->worker >= rt->nworkers)
                return -EINVAL;
            pin = opts->worker;
        }
        if (opts->name)
            name = opts->name;
        drop_fn = opts->drop;
    }
    wf__worker *w = wf__tls_worker();
    if (w && w->rt != rt)
        w = NULL;
    wf__task *t = task_alloc(w);
    if (!t)
        return -ENOMEM;
    t->ctx = NULL;
    t->stack = NULL;
    t->qnext = NULL;
    atomic_init(&t->park, 0);
    atomic_init(&t->life, WF__LIFE_PENDING);
    /* A task spawned while the runtime shuts down starts cancelled. */
    atomic_init(&t->cancel, atomic_load_explicit(&rt->closing, memory_order_acquire) ? 1 : 0);
    atomic_init(&t->where, WF__WHERE_QUEUED);
    atomic_init(&t->settling, 0);
    t->pin = (int16_t)pin;
    t->stack_size = (uint32_t)stack;
    t->fn = fn;
    t->arg = arg;
    t->drop = drop_fn;
    t->rt = rt;
    t->result = NULL;
    t->status = 0;
    wf__spin_init(&t->jlock);
    wf__list_init(&t->joiners);
    wf__list_init(&t->hooks);
    t->scope_deadline = INT64_MAX;
    t->scope = NULL;
    t->shield = 0;
    t->groups = NULL;
    atomic_init(&t->cancel_msg, NULL);
    t->name = NULL;
    if (name) {
        /* Named tasks are for humans; the copy costs an allocation only
         * when a name is given. */
        size_t n = strnlen(name, WF__TASK_NAME_MAX - 1);
        if (!(t->name = malloc(n + 1))) {
            wf__task_free_record(t);
            return -ENOMEM;
        }
        memcpy(t->name, name, n);
        t->name[n] = '\0';
    }

    if (!wf__handle_alloc(&rt->handles, w ? &w->handles : NULL, t, refs)) {
        wf__task_free_record(t);
        return -ENOMEM;
    }
    if (w)
        count_up(&w->spawned);
    else
        atomic_fetch_add_explicit(&rt->ext_spawned, 1, memory_order_release);
    *out = t->id;
    if (rec)
        *rec = t; /* alive: the caller holds `refs` */
    wf__schedule_new(rt, t);
    return 0;
}

int wf_join_until(wf_task_t id, int64_t deadline, int *status, void **result)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (deadline < WF_FOREVER)
        return -EINVAL;
    if (id == self->id)
        return -EDEADLK; /* the caller itself, whether or not a handle to it is left */
    wf__task *t;
    /* The common case, a task that has already ended and whose handle is
     * the caller's last reference, costs one CAS (and the release). */
    wf__runtime *rt = self->rt;
    int e = wf__handle_claim_or_last(&rt->handles, id, &t);
    if (e == 1) {
        if (status)
            *status = t->status;
        if (result)
            *result = t->result;
        wf__worker *w = wf__tls_worker();
        wf__handle_free_owned(&rt->handles, w && w->rt == rt ? &w->handles : NULL, t);
        return 0;
    }
    if (e)
        return e;
    e = wf__join_claimed(self, t, deadline);
    if (e) {
        wf__task_unclaim(t); /* the handle stays the caller's */
        return e;
    }
    if (status)
        *status = t->status;
    if (result)
        *result = t->result;
    wf__task_unpin(t); /* the claimed handle is consumed */
    return 0;
}

int wf__join_claimed(wf__task *self, wf__task *t, int64_t deadline)
{
    /* acquire: pairs with wf__task_finish's release of DONE (the outcome). */
    if (atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE)
        return 0;
    wf__waitnode node;
    wf__spin_lock(&t->jlock);
    if (atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE) {
        wf__spin_unlock(&t->jlock);
        return 0;
    }
    node.task = self;
    node.data = NULL;
    node.seq = wf__park_begin(self, 0);
    wf__list_push_back(&t->joiners, &node.link);
    wf__spin_unlock(&t->jlock);
    unsigned r = wf__park_commit(self, node.seq, deadline);
    if (r == WF__R_WOKEN)
        return 0;
    wf__spin_lock(&t->jlock);
    if (wf__link_linked(&node.link))
        wf__list_unlink(&node.link);
    wf__spin_unlock(&t->jlock);
    if (r != WF__R_TIMEDOUT)
        return wf__park_errno(r); /* cancelled, or the scope expired */
    /* Timed out; but if it ended meanwhile, the outcome wins. */
    return atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE ? 0 : -ETIMEDOUT;
}

int wf_join(wf_task_t id, int *status, void **result)
{
    return wf_join_until(id, WF_FOREVER, status, result);
}

int wf_detach(wf_task_t id)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_claim(rt, id, &t);
    if (e)
        return e;
    wf__task_unpin(t);
    return 0;
}

int wf_task_ref(wf_task_t id)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    /* A detached task naming itself has no handle to copy. */
    e = wf__task_handles(t) ? wf__task_ref(t) : -EINVAL;
    wf__task_unpin(t);
    return e;
}

bool wf__task_cancel(wf__task *t, const char *msg)
{
    if (atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE)
        return false;
    /* release: the task reads its message (acquire) after its wait was
     * cancelled by the increment below, which comes after this store. */
    atomic_store_explicit(&t->cancel_msg, msg, memory_order_release);
    /* seq_cst: the canceller's half of the Dekker pair with the settle of
     * the task's wait (count first, then look at the park word; park.h,
     * "NO CANCEL IS LOST"). */
    atomic_fetch_add_explicit(&t->cancel, 1, memory_order_seq_cst);
    wf__park_interrupt(t);
    return true;
}

int wf_cancel(wf_task_t id)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    e = wf__task_cancel(t, NULL) ? 0 : -EALREADY;
    wf__task_unpin(t);
    return e;
}

int wf_cancelling(wf_task_t id)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    int n = (int)atomic_load_explicit(&t->cancel, memory_order_relaxed);
    wf__task_unpin(t);
    return n;
}

int wf_uncancel(void)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    uint32_t c = atomic_load_explicit(&self->cancel, memory_order_relaxed);
    while (c > 0) {
        if (atomic_compare_exchange_weak_explicit(&self->cancel, &c, c - 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return (int)(c - 1);
    }
    return 0;
}

int wf_yield(void)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__fiber_switch_out(self, WF__ACT_YIELD);
    /* Inside a cleanup scope a pending cancellation is held off. */
    return atomic_load_explicit(&self->cancel, memory_order_relaxed) > 0 && !self->shield ? -ECANCELED : 0;
}

wf_task_t wf_self(void)
{
    wf__task *self = wf__current();
    return self ? self->id : WF_TASK_NONE;
}

static int state_of(wf__task *t)
{
    uint32_t life = atomic_load_explicit(&t->life, memory_order_acquire);
    if (life == WF__LIFE_DONE)
        return WF_TASK_DONE;
    if (life == WF__LIFE_PENDING)
        return WF_TASK_PENDING;
    uint64_t w = atomic_load_explicit(&t->park, memory_order_acquire);
    if ((w & WF__PW_PARKED) && wf__pw_reason(w) == WF__R_WAITING)
        return WF_TASK_PARKED;
    if (atomic_load_explicit(&t->where, memory_order_relaxed) == WF__WHERE_RUNNING)
        return WF_TASK_RUNNING;
    return WF_TASK_RUNNABLE;
}

int wf_task_state(wf_task_t id)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    int st = state_of(t);
    wf__task_unpin(t);
    return st;
}

int wf_task_done(wf_task_t id)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    int done = atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE;
    wf__task_unpin(t);
    return done;
}

int wf_task_outcome(wf_task_t id, int *status, void **result)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    if (atomic_load_explicit(&t->life, memory_order_acquire) != WF__LIFE_DONE) {
        e = -EAGAIN;
    } else {
        if (status)
            *status = t->status;
        if (result)
            *result = t->result;
    }
    wf__task_unpin(t);
    return e;
}

int wf_task_name(wf_task_t id, char *buf, size_t len)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    if (!buf || !len)
        return -EINVAL;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    const char *name = wf__task_name(t);
    size_t i = 0;
    for (; i + 1 < len && name[i]; i++)
        buf[i] = name[i];
    buf[i] = '\0';
    wf__task_unpin(t);
    return 0;
}
