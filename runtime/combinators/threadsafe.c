/* threadsafe.c - entering a runtime from threads outside it
 * (asyncio.run_coroutine_threadsafe, loop.call_soon_threadsafe).
 *
 * HANDLES. A wf_runtime_t is a number (generation << 32 | index + 1) into
 * a process-wide registry of "portals", under one mutex. A number that was
 * given back, never issued, or is stale fails the lookup, so a thread can
 * never reach freed memory through a handle. The registry is the one piece
 * of process-global state in weft: the handles must outlive the runtime
 * they name, so they cannot live in it. Its traffic is a lookup per
 * cross-thread submission.
 *
 * PORTALS. One per wf_runtime_get(): { lock, rt, closed, a completion hook
 * on the runtime's main task, two references (the handle's and the hook's)
 * }. When main returns, the hook closes the portal (under its lock) and
 * drops its reference; wf_runtime_release drops the handle's (removing the
 * hook first if main is still running, so handles taken and given back
 * during a long program do not pile up on main).
 *
 * KEEPING THE RUNTIME ALIVE ("holding"). A submitter, under the portal's
 * lock, checks that it is open and holds the runtime (wf__runtime_hold,
 * task.h): it counts as one more live task, and wf_run's shutdown waits for
 * the live count to reach zero (runtime.c, step 11). While it holds, the
 * runtime cannot be destroyed, so the thread may spawn, cancel and drop
 * references in it. Why it is safe:
 *   1. An open portal means main has not finished, so the runtime is alive
 *      and main itself still counts as live when we add ours.
 *   2. The hook closes the portal under the same lock, so once closed, no
 *      hold can start; holds taken before are counted, and shutdown waits
 *      for them.
 *   3. Giving the hold back is one atomic decrement and nothing after it:
 *      the moment the count can read zero, wf_run may free the runtime. The
 *      shutdown loop re-counts every 10 ms, so it notices without a
 *      wake-up (a task's retire also wakes it; we cannot, since we may not
 *      touch the runtime after the decrement).
 *
 * SUBMITTING. The thread briefly sets its thread-locals to the runtime (as
 * wf_run does to spawn main), so wf_spawn, wf_cancel and friends find it:
 * with no worker, a new task goes to the inject queue and wakes a worker.
 */
#include "combo.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct portal {
    wf__spinlock lock;
    bool closed;     /* main has ended: no more holds */
    wf__runtime *rt; /* valid while !closed, or while holding */
    _Atomic uint32_t refs;
    wf__done_hook hook; /* on rt->main_task */
} portal;

/* --- the registry ------------------------------------------------------------ */

typedef struct slot {
    uint32_t gen; /* generation of the live handle; bumped when given back */
    uint32_t next_free;
    portal *p; /* NULL: free */
} slot;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static slot *reg_slots;
static uint32_t reg_cap, reg_used, reg_free = UINT32_MAX;

/* reg_lock held. */
static slot *reg_get(wf_runtime_t h)
{
    uint32_t idx = (uint32_t)h, gen = (uint32_t)(h >> 32);
    if (idx == 0 || idx > reg_used)
        return NULL;
    slot *s = &reg_slots[idx - 1];
    return s->p && s->gen == gen ? s : NULL;
}

/* reg_lock held. Returns 0 when out of memory or handles. */
static wf_runtime_t reg_add(portal *p)
{
    uint32_t idx;
    if (reg_free != UINT32_MAX) {
        idx = reg_free;
        reg_free = reg_slots[idx].next_free;
    } else {
        if (reg_used == reg_cap) {
            uint32_t cap = reg_cap ? reg_cap * 2 : 16;
            if (cap > (1u << 30))
                return 0;
            slot *ns = realloc(reg_slots, cap * sizeof *ns);
            if (!ns)
                return 0;
            reg_slots = ns;
            reg_cap = cap;
        }
        idx = reg_used++;
        reg_slots[idx].gen = 0;
    }
    slot *s = &reg_slots[idx];
    if (++s->gen == 0)
        s->gen = 1;
    s->p = p;
    return ((wf_runtime_t)s->gen << 32) | (idx + 1);
}

/* reg_lock held. */
static void reg_remove(slot *s)
{
    s->p = NULL;
    s->next_free = reg_free;
    reg_free = (uint32_t)(s - reg_slots);
}

/* --- portals ------------------------------------------------------------------- */

static void portal_unref(portal *p)
{
    /* acq_rel: the last one sees the other holder's writes before freeing. */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        free(p);
}

/* Main has ended (under main's jlock, on a worker). */
static void on_main_done(wf__done_hook *h, wf__task *main)
{
    portal *p = wf__container_of(h, portal, hook);
    wf__spin_lock(&p->lock);
    p->closed = true;
    wf__spin_unlock(&p->lock);
    portal_unref(p);
}

/* Look the handle up and start holding its runtime. Returns 0 with *rtp,
 * or -EINVAL / -ESHUTDOWN. */
static int hold(wf_runtime_t h, wf__runtime **rtp)
{
    pthread_mutex_lock(&reg_lock);
    slot *s = reg_get(h);
    if (!s) {
        pthread_mutex_unlock(&reg_lock);
        return -EINVAL;
    }
    portal *p = s->p;
    int ret = 0;
    wf__spin_lock(&p->lock);
    if (p->closed) {
        ret = -ESHUTDOWN;
    } else {
        *rtp = p->rt;
        /* The portal's lock orders this against the closing hook. */
        wf__runtime_hold(p->rt);
    }
    wf__spin_unlock(&p->lock);
    pthread_mutex_unlock(&reg_lock);
    return ret;
}

static void unhold(wf__runtime *rt)
{
    /* Not one access to rt after this (point 3). */
    wf__runtime_unhold(rt);
}

int wf_runtime_get(wf_runtime_t *out)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    if (!out)
        return -EINVAL;
    portal *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    wf__spin_init(&p->lock);
    p->closed = false;
    p->rt = rt;
    atomic_init(&p->refs, 2);
    p->hook.fn = on_main_done;
    pthread_mutex_lock(&reg_lock);
    wf_runtime_t h = reg_add(p);
    pthread_mutex_unlock(&reg_lock);
    if (!h) {
        free(p);
        return -ENOMEM;
    }
    /* main_task is alive until wf_run's last step, after every runtime
     * thread has stopped. */
    if (!wf__task_add_hook(rt->main_task, &p->hook)) {
        pthread_mutex_lock(&reg_lock);
        reg_remove(reg_get(h));
        pthread_mutex_unlock(&reg_lock);
        free(p);
        return -ESHUTDOWN;
    }
    *out = h;
    return 0;
}

int wf_runtime_release(wf_runtime_t h)
{
    pthread_mutex_lock(&reg_lock);
    slot *s = reg_get(h);
    if (!s) {
        pthread_mutex_unlock(&reg_lock);
        return -EINVAL;
    }
    portal *p = s->p;
    reg_remove(s);
    pthread_mutex_unlock(&reg_lock);

    /* If main still runs, take the hook off it (holding the runtime, so
     * main's record stays alive), and drop the hook's reference for it. */
    wf__spin_lock(&p->lock);
    wf__runtime *rt = p->closed ? NULL : p->rt;
    if (rt)
        wf__runtime_hold(rt); /* as hold() */
    wf__spin_unlock(&p->lock);
    if (rt) {
        if (wf__task_remove_hook(rt->main_task, &p->hook))
            portal_unref(p); /* the hook will never run */
        unhold(rt);
    }
    portal_unref(p);
    return 0;
}

/* --- submitting ------------------------------------------------------------------ */

/* Whether this thread may borrow `rt`'s thread-locals: it belongs to no
 * runtime. *own: it is a thread of `rt` itself (no borrowing needed). */
static int may_enter(wf__runtime *rt, bool *own)
{
    wf__runtime *cur = wf__tls_runtime();
    *own = cur == rt;
    return cur && cur != rt ? -EPERM : 0;
}

typedef struct waiter {
    wf__done_hook hook;
    _Atomic uint32_t done; /* futex word */
    int status;
    void *result;
} waiter;

/* The submitted task has ended (under its jlock, on a worker). */
static void on_task_done(wf__done_hook *h, wf__task *t)
{
    waiter *w = wf__container_of(h, waiter, hook);
    w->status = t->status;
    w->result = t->result;
    /* release: publishes the outcome to the blocked thread (acquire). The
     * thread then takes t's jlock (remove_hook) before leaving, so this
     * wake-up is over before `w`, on its stack, goes away. */
    atomic_store_explicit(&w->done, 1, memory_order_release);
    wf__futex_wake(&w->done, 1);
}

/* Block until w->done, or the deadline. Returns false on timeout. */
static bool block(waiter *w, int64_t deadline)
{
    while (!atomic_load_explicit(&w->done, memory_order_acquire)) {
        int64_t left = -1;
        if (deadline != WF_FOREVER) {
            left = deadline - wf_now();
            if (left <= 0)
                return false;
        }
        wf__futex_wait(&w->done, 0, left);
    }
    return true;
}

int wf_run_threadsafe(wf_runtime_t h, wf_fn fn, void *arg, int64_t deadline, int *status, void **result)
{
    if (wf__tls_runtime())
        return -EPERM;
    if (!fn || deadline < WF_FOREVER)
        return -EINVAL;
    wf__runtime *rt;
    int r = hold(h, &rt);
    if (r < 0)
        return r;
    wf__tls_set(rt, NULL);
    /* Our reference is a pin: the task detaching itself cannot take it. */
    wf_task_t id;
    wf__task *t;
    r = wf__spawn_refs(&id, &t, fn, arg, NULL, WF__REF_PIN);
    if (r < 0) {
        wf__tls_set(NULL, NULL);
        unhold(rt);
        return r;
    }
    waiter w;
    w.hook.fn = on_task_done;
    atomic_init(&w.done, 0);
    w.status = 0;
    w.result = NULL;
    if (!wf__task_add_hook(t, &w.hook)) {
        w.status = t->status;
        w.result = t->result;
        atomic_store_explicit(&w.done, 1, memory_order_relaxed);
    }
    /* The thread-locals are only needed for calls into the runtime; do not
     * leave them set while blocked. */
    wf__tls_set(NULL, NULL);
    bool timed_out = !block(&w, deadline);
    if (timed_out) {
        wf__task_cancel(t, NULL); /* alive: we still hold our pin */
        block(&w, WF_FOREVER);
    }
    wf__task_remove_hook(t, &w.hook); /* the hook has finished with w */
    wf__task_unpin(t);
    unhold(rt);
    if (status)
        *status = w.status;
    if (result)
        *result = w.result;
    return timed_out && w.status == -ECANCELED ? -ETIMEDOUT : 0;
}

int wf_call_soon_threadsafe(wf_runtime_t h, wf_fn fn, void *arg, void (*drop)(void *arg))
{
    if (!fn)
        return -EINVAL;
    wf__runtime *rt;
    int r = hold(h, &rt);
    if (r < 0)
        return r;
    bool own;
    r = may_enter(rt, &own);
    if (r == 0) {
        if (!own)
            wf__tls_set(rt, NULL);
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.drop = drop;
        wf_task_t id;
        r = wf_spawn(&id, fn, arg, &o);
        if (r == 0)
            wf_detach(id);
        if (!own)
            wf__tls_set(NULL, NULL);
    }
    unhold(rt);
    return r;
}
