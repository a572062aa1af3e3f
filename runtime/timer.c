/* timer.c - the timer service (timer.h) and the public callback timers. */
#include "timer.h"
#include "park.h"
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>

void wf__timers_init(wf__timers *ts, wf__runtime *rt, int64_t now)
{
    wf__spin_init(&ts->lock);
    atomic_init(&ts->next, INT64_MAX);
    ts->rt = rt;
    wf__wheel_init(&ts->wheel, now);
}

/* Lock held. Keep the published bound a lower bound of the truth. */
static inline void lower_next(wf__timers *ts, int64_t deadline)
{
    if (deadline < atomic_load_explicit(&ts->next, memory_order_relaxed))
        atomic_store_explicit(&ts->next, deadline, memory_order_relaxed);
}

static void arm(wf__timers *ts, struct wf__timer *tm, int64_t deadline, int64_t now)
{
    wf__spin_lock(&ts->lock);
    wf__wheel_insert(&ts->wheel, &tm->node, deadline, now);
    /* Under the lock; readers that find it without the lock then lock
     * `ts` and look again. */
    atomic_store_explicit(&tm->home, ts, memory_order_relaxed);
    lower_next(ts, deadline);
    wf__spin_unlock(&ts->lock);
}

void wf__timer_arm_park(wf__timers *ts, struct wf__timer *tm, wf__task *t, uint64_t seq, int64_t deadline,
                        int64_t now)
{
    tm->kind = WF__TIMER_PARK;
    tm->u.seq = seq;
    tm->arg = t;
    arm(ts, tm, deadline, now);
}

void wf__timer_disarm_park(struct wf__timer *tm)
{
    /* acquire: pairs with the firer's final release store of NULL, after
     * which it no longer touches the timer or the task. */
    wf__timers *ts = atomic_load_explicit(&tm->home, memory_order_acquire);
    if (!ts)
        return;
    wf__spin_lock(&ts->lock);
    if (atomic_load_explicit(&tm->home, memory_order_relaxed) == ts) {
        wf__wheel_remove(&ts->wheel, &tm->node);
        atomic_store_explicit(&tm->home, NULL, memory_order_relaxed);
    }
    wf__spin_unlock(&ts->lock);
}

void wf__timers_shutdown(wf__timers *ts)
{
    wf__spin_lock(&ts->lock);
    for (unsigned l = 0; l < WF__WHEEL_LEVELS; l++)
        for (unsigned sl = 0; sl < WF__WHEEL_SLOTS; sl++) {
            wf__link *n;
            while ((n = wf__list_pop_front(&ts->wheel.slots[l][sl])) != NULL) {
                struct wf__timer *tm = wf__container_of(n, struct wf__timer, node.link);
                atomic_store_explicit(&tm->home, NULL, memory_order_release);
            }
            ts->wheel.occupied[l] = 0;
        }
    ts->wheel.count = 0;
    atomic_store_explicit(&ts->next, INT64_MAX, memory_order_relaxed);
    wf__spin_unlock(&ts->lock);
}

typedef struct {
    wf_timer_fn fn;
    void *arg;
} callback;

unsigned wf__timers_run(wf__timers *ts, int64_t now, wf__batch *woken)
{
    callback local[32], *cbs = local;
    size_t ncb = 0, cap = sizeof local / sizeof local[0];
    unsigned fired = 0;
    wf__link due;
    wf__list_init(&due);

    wf__spin_lock(&ts->lock);
    wf__wheel_expire(&ts->wheel, now, &due);
    wf__link *l;
    while ((l = wf__list_pop_front(&due)) != NULL) {
        struct wf__timer *tm = wf__container_of(l, struct wf__timer, node.link);
        fired++;
        if (tm->kind == WF__TIMER_PARK) {
            wf__task *t = tm->arg;
            if (wf__park_decide(t, tm->u.seq, WF__R_TIMEDOUT) == WF__DECIDED_PARKED)
                wf__batch_push(woken, t);
            /* release, and the last touch: the task may disarm and go. */
            atomic_store_explicit(&tm->home, NULL, memory_order_release);
            continue;
        }
        if (ncb == cap) {
            callback *bigger = malloc(2 * cap * sizeof *bigger);
            if (!bigger) {
                /* Out of memory: put it back to fire on the next look. */
                wf__wheel_insert(&ts->wheel, &tm->node, tm->node.deadline, now);
                fired--;
                continue;
            }
            for (size_t i = 0; i < ncb; i++)
                bigger[i] = cbs[i];
            if (cbs != local)
                free(cbs);
            cbs = bigger;
            cap *= 2;
        }
        cbs[ncb].fn = tm->u.fn;
        cbs[ncb].arg = tm->arg;
        ncb++;
        /* release, and the last touch of the user's storage: from here the
         * timer counts as not armed and may be reused or freed. */
        atomic_store_explicit(&tm->home, NULL, memory_order_release);
    }
    atomic_store_explicit(&ts->next, wf__wheel_next(&ts->wheel), memory_order_relaxed);
    wf__spin_unlock(&ts->lock);

    if (ncb) {
        /* A callback is user code that may spawn, from outside any task:
         * nothing alive would keep shutdown waiting for the new task. So
         * the batch holds the runtime like a submission from another
         * thread, then looks at `sealed`: seq_cst RMW, then seq_cst load,
         * one half of a Dekker pair with quiesce (runtime.c), which stores
         * sealed and then counts the live tasks. Either quiesce counts our
         * hold (and waits for it, and for what the callbacks spawn), or we
         * see the seal and the callbacks do not run: from then on armed
         * timers never fire, as the shutdown steps promise. One locked
         * instruction per batch of callbacks, none for park timers. */
        wf__runtime *rt = ts->rt;
        atomic_fetch_add_explicit(&rt->ext_spawned, 1, memory_order_seq_cst);
        if (!atomic_load_explicit(&rt->sealed, memory_order_seq_cst))
            for (size_t i = 0; i < ncb; i++)
                cbs[i].fn(cbs[i].arg);
        wf__runtime_unhold(rt);
    }
    if (cbs != local)
        free(cbs);
    return fired;
}

/* --- public callback timers ------------------------------------------- */

int wf_timer_start(wf_timer_t *tmu, int64_t deadline, wf_timer_fn fn, void *arg)
{
    if (!tmu || !fn || deadline < 0)
        return -EINVAL;
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    struct wf__timer *tm = (struct wf__timer *)(void *)tmu;
    if (atomic_load_explicit(&tm->home, memory_order_acquire))
        return -EBUSY;
    wf__worker *w = wf__tls_worker();
    wf__timers *ts = w ? &w->timers : &rt->poller.timers;
    tm->kind = WF__TIMER_CALLBACK;
    tm->u.fn = fn;
    tm->arg = arg;
    arm(ts, tm, deadline, wf_now());
    return 0;
}

int wf_timer_cancel(wf_timer_t *tmu)
{
    if (!tmu)
        return -EINVAL;
    struct wf__timer *tm = (struct wf__timer *)(void *)tmu;
    for (;;) {
        wf__timers *ts = atomic_load_explicit(&tm->home, memory_order_acquire);
        if (!ts)
            return -EALREADY;
        wf__spin_lock(&ts->lock);
        if (atomic_load_explicit(&tm->home, memory_order_relaxed) == ts) {
            wf__wheel_remove(&ts->wheel, &tm->node);
            atomic_store_explicit(&tm->home, NULL, memory_order_relaxed);
            wf__spin_unlock(&ts->lock);
            return 0;
        }
        wf__spin_unlock(&ts->lock);
        /* It fired (or its callback re-armed it elsewhere): look again. */
    }
}
