/* procpool.c - process pools: open, warm, close and stats; lending workers
 * to the calls (the model is in procpool.h; the slots' watchers are in
 * procwatch.c). */
#include "procpool.h"
#include "pool.h"
#include "runtime.h"
#include "sync/wait.h"
#include "zygote.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/combinators.h>
#include <weft/task.h>
#include <weft/time.h>

#define START_TIMEOUT_DEFAULT_NS (60 * WF_NSEC_PER_SEC)
#define MAX_OUTPUT_DEFAULT ((size_t)1 << 30)
#define MAX_WORKERS 1024

/* --- small helpers (pool lock held) ------------------------------------------------ */

/* Kill every worker lent out, and send away every caller waiting for one:
 * close's WF_PROCPOOL_CANCEL. */
static void cancel_jobs(wf_procpool_t *p, wf__batch *b)
{
    wf__procpool_wake_all(&p->waiters, &p->nwait, b); /* they see `closing` */
    for (unsigned i = 0; i < p->size; i++) {
        wf__procslot *s = &p->slots[i];
        if (s->state == WF__SLOT_BUSY && !s->dead && !s->shutdown_kill) {
            s->shutdown_kill = true;
            (void)wf__child_signal(&s->child, SIGKILL);
        }
    }
}

/* --- the calls' side: entering, borrowing, giving back ----------------------------- */

int wf__procpool_enter(wf_procpool_t *p)
{
    wf__spin_lock(&p->lock);
    int e = p->closing ? -ESHUTDOWN : 0;
    if (!e)
        p->calls++;
    wf__spin_unlock(&p->lock);
    return e;
}

void wf__procpool_leave(wf_procpool_t *p)
{
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&p->lock);
    if (--p->calls == 0 && p->closing) {
        /* The closer waits for this; watchers stop restarting workers. */
        wf__procpool_wake_all(&p->changew, &p->nchangew, &b);
        wf__procpool_wake_all(&p->watchq, &p->nwatchq, &b);
    }
    wf__spin_unlock(&p->lock);
    wf__sync_ready_batch(&b);
}

int wf__procpool_acquire(wf_procpool_t *p, wf__task *self, int64_t deadline, wf__procslot **out, wf_procres_t *res)
{
    wf__spin_lock(&p->lock);
    for (;;) {
        if (p->closing == WF_PROCPOOL_CANCEL) {
            wf__spin_unlock(&p->lock);
            return -ESHUTDOWN;
        }
        if (p->nidle) {
            wf__procslot *s = wf__container_of(wf__list_pop_front(&p->idle), wf__procslot, idle_link);
            p->nidle--;
            s->state = WF__SLOT_BUSY;
            wf__spin_unlock(&p->lock);
            *out = s;
            return 0;
        }
        /* No worker can be had: the latest start failed, none is being
         * started and none is alive. Fail rather than wait for a retry. */
        if (p->failing && p->starting == 0 && p->ready == 0) {
            res->status = p->fail_status;
            res->returncode = p->fail_rc;
            wf__spin_unlock(&p->lock);
            return -ENOEXEC;
        }
        /* A lazy pool starts one more worker for each caller that would
         * wait, while the workers coming up (active slots without a ready
         * worker) do not cover the callers waiting, this one included. */
        if (p->wanted < p->size && p->wanted - p->ready <= p->nwait) {
            p->slots[p->wanted++].active = true;
            wf__batch b;
            wf__batch_init(&b);
            wf__procpool_wake_all(&p->watchq, &p->nwatchq, &b);
            wf__spin_unlock(&p->lock);
            wf__sync_ready_batch(&b);
            wf__spin_lock(&p->lock);
            continue;
        }
        wf__waitnode nd;
        nd.data = NULL;
        unsigned r = wf__sync_wait(&p->lock, &p->waiters, &p->nwait, &nd, self, deadline, 0);
        if (r == WF__R_WOKEN) {
            if (nd.data) {
                *out = nd.data; /* handed over BUSY (give_back, the watcher) */
                return 0;
            }
            wf__spin_lock(&p->lock); /* look again: a failure, or closing */
            continue;
        }
        wf__spin_unlock(&p->lock);
        return wf__park_errno(r);
    }
}

void wf__procslot_give_back(wf__procslot *s, unsigned how)
{
    wf_procpool_t *p = s->pool;
    wf__task *q = NULL, *w = NULL;
    wf__spin_lock(&p->lock);
    s->back = how;
    if (how == WF__BACK_IDLE && !s->dead) {
        /* Straight to the first caller waiting, still BUSY; else idle. */
        if (!p->nwait || !wf__sync_wake_first(&p->waiters, &p->nwait, s, &q)) {
            s->state = WF__SLOT_IDLE;
            wf__list_push_front(&p->idle, &s->idle_link);
            p->nidle++;
        }
    } else {
        s->state = WF__SLOT_RETURNED;
        wf__procslot_uncount(p, s);
        if (s->nbackw)
            (void)wf__sync_wake_first(&s->backw, &s->nbackw, NULL, &w);
    }
    wf__spin_unlock(&p->lock);
    wf__sync_ready(q);
    wf__sync_ready(w);
}

int wf__procslot_wait_death(wf__procslot *s, wf__task *self, int64_t deadline, int *rc, bool *by_close)
{
    wf_procpool_t *p = s->pool;
    wf__spin_lock(&p->lock);
    while (!s->dead) {
        wf__waitnode nd;
        nd.data = NULL;
        unsigned r = wf__sync_wait(&p->lock, &s->deathw, &s->ndeathw, &nd, self, deadline, 0);
        if (r != WF__R_WOKEN) {
            wf__spin_unlock(&p->lock);
            return wf__park_errno(r);
        }
        wf__spin_lock(&p->lock);
    }
    *rc = s->rc;
    *by_close = s->shutdown_kill;
    wf__spin_unlock(&p->lock);
    return 0;
}

/* --- open, warm, stats, close --------------------------------------------------------- */

void wf_procpool_opts_init(wf_procpool_opts_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
}

static void track(wf_procpool_t *p)
{
    wf__pool *pool = p->rt->pool;
    wf__spin_lock(&pool->procs_lock);
    wf__list_push_back(&pool->procpools, &p->link);
    wf__spin_unlock(&pool->procs_lock);
}

static void untrack(wf_procpool_t *p)
{
    wf__pool *pool = p->rt->pool;
    wf__spin_lock(&pool->procs_lock);
    wf__list_unlink(&p->link);
    wf__spin_unlock(&pool->procs_lock);
}

static void pool_free(wf_procpool_t *p)
{
    for (unsigned i = 0; i < p->size; i++)
        free(p->slots[i].rx);
    free(p->init_in);
    free(p);
}

/* Pool lock held: wait, uninterruptibly, until every watcher has ended. */
static void wait_watchers(wf_procpool_t *p, wf__task *self)
{
    while (p->watchers) {
        wf__waitnode nd;
        nd.data = NULL;
        if (wf__sync_wait(&p->lock, &p->changew, &p->nchangew, &nd, self, WF_FOREVER, WF__PARK_NOCANCEL) ==
            WF__R_WOKEN)
            wf__spin_lock(&p->lock);
    }
}

int wf_procpool_open(wf_procpool_t **out, const wf_procpool_opts_t *opts)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf_procpool_opts_t o;
    wf_procpool_opts_init(&o);
    if (opts)
        o = *opts;
    if (!out || o.workers > MAX_WORKERS || o.start_timeout < 0 || (!o.init_input && o.init_len))
        return -EINVAL;
    if (!wf__zygote_ready())
        return -ENOTSUP;
    int init_fn = -1;
    if (o.initializer && (init_fn = wf__procjob_find(o.initializer)) < 0)
        return init_fn;
    unsigned n = o.workers;
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)(c > MAX_WORKERS ? MAX_WORKERS : c) : 1;
    }
    wf_procpool_t *p = calloc(1, sizeof *p + n * sizeof(wf__procslot));
    if (!p)
        return -ENOMEM;
    if (o.init_len) {
        if (!(p->init_in = malloc(o.init_len))) {
            free(p);
            return -ENOMEM;
        }
        memcpy(p->init_in, o.init_input, o.init_len);
    }
    p->rt = self->rt;
    wf__spin_init(&p->lock);
    wf__list_init(&p->link);
    wf__list_init(&p->idle);
    wf__list_init(&p->waiters);
    wf__list_init(&p->watchq);
    wf__list_init(&p->changew);
    p->size = n;
    p->max_jobs = o.max_jobs_per_worker;
    p->init_fn = init_fn;
    p->init_len = o.init_len;
    p->max_output = o.max_output ? o.max_output : MAX_OUTPUT_DEFAULT;
    p->start_timeout = o.start_timeout ? o.start_timeout : START_TIMEOUT_DEFAULT_NS;
    p->wanted = o.eager ? n : 0;
    p->watchers = n;
    for (unsigned i = 0; i < n; i++) {
        wf__procslot *s = &p->slots[i];
        s->pool = p;
        s->index = i;
        s->child.pid = 0;
        s->child.pidfd = -1;
        wf__list_init(&s->idle_link);
        wf__list_init(&s->deathw);
        wf__list_init(&s->backw);
        s->state = WF__SLOT_EMPTY;
        s->active = o.eager;
    }
    wf_spawn_opts_t so = WF_SPAWN_OPTS_INIT;
    so.name = "wf-procpool";
    for (unsigned i = 0; i < n; i++) {
        wf_task_t t;
        int e = wf_spawn(&t, wf__procslot_watch, &p->slots[i], &so);
        if (e) {
            /* Wind down the watchers already started, then nothing is left. */
            wf__batch b;
            wf__batch_init(&b);
            wf__spin_lock(&p->lock);
            p->watchers -= n - i;
            p->closing = WF_PROCPOOL_CANCEL;
            wf__procpool_wake_all(&p->watchq, &p->nwatchq, &b);
            wf__spin_unlock(&p->lock);
            wf__sync_ready_batch(&b);
            wf__spin_lock(&p->lock);
            wait_watchers(p, self);
            wf__spin_unlock(&p->lock);
            pool_free(p);
            return e;
        }
        (void)wf_detach(t); /* `watchers` counts them */
    }
    track(p);
    *out = p;
    return 0;
}

int wf_procpool_warm(wf_procpool_t *p, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!p || deadline < WF_FOREVER)
        return -EINVAL;
    if (p->rt != self->rt)
        return -EXDEV;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&p->lock);
    if (p->closing) {
        wf__spin_unlock(&p->lock);
        return -ESHUTDOWN;
    }
    while (p->wanted < p->size)
        p->slots[p->wanted++].active = true;
    wf__procpool_wake_all(&p->watchq, &p->nwatchq, &b);
    uint64_t failures = p->st.start_failures;
    wf__spin_unlock(&p->lock);
    wf__sync_ready_batch(&b);
    wf__spin_lock(&p->lock);
    int e = 0;
    for (;;) {
        if (p->ready == p->size)
            break;
        if (p->closing) {
            e = -ESHUTDOWN;
            break;
        }
        /* A start failed since we came, and none is under way. */
        if (p->st.start_failures != failures && p->starting == 0) {
            e = -ENOEXEC;
            break;
        }
        wf__waitnode nd;
        nd.data = NULL;
        unsigned r = wf__sync_wait(&p->lock, &p->changew, &p->nchangew, &nd, self, deadline, 0);
        if (r != WF__R_WOKEN) {
            e = wf__park_errno(r);
            break;
        }
        wf__spin_lock(&p->lock);
    }
    wf__spin_unlock(&p->lock);
    return e;
}

int wf_procpool_stats(wf_procpool_t *p, wf_procpool_stats_t *out)
{
    if (!p || !out)
        return -EINVAL;
    wf__spin_lock(&p->lock);
    *out = p->st;
    out->workers = p->size;
    out->ready = p->ready;
    out->idle = p->nidle;
    out->starting = p->starting;
    out->waiting = p->nwait;
    wf__spin_unlock(&p->lock);
    return 0;
}

int wf_procpool_close(wf_procpool_t *p, wf_procpool_close_mode_t how, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self || (p && p->rt != self->rt))
        return -EPERM;
    if (!p || (how != WF_PROCPOOL_WAIT && how != WF_PROCPOOL_CANCEL) || deadline < WF_FOREVER)
        return -EINVAL;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&p->lock);
    if (p->closing) {
        wf__spin_unlock(&p->lock);
        return -EBUSY; /* another fiber is closing it */
    }
    p->closing = how;
    if (how == WF_PROCPOOL_CANCEL)
        cancel_jobs(p, &b);
    wf__procpool_wake_all(&p->watchq, &p->nwatchq, &b);
    wf__spin_unlock(&p->lock);
    wf__sync_ready_batch(&b);
    wf__batch_init(&b);

    /* Wait for the calls: WAIT until the deadline (or a cancellation),
     * then as CANCEL, uninterruptibly (killed workers go at once). */
    int ret = 0;
    wf__spin_lock(&p->lock);
    while (p->calls) {
        bool cancel = p->closing == WF_PROCPOOL_CANCEL;
        wf__waitnode nd;
        nd.data = NULL;
        unsigned r = wf__sync_wait(&p->lock, &p->changew, &p->nchangew, &nd, self,
                                   cancel ? WF_FOREVER : deadline, cancel ? WF__PARK_NOCANCEL : 0);
        if (r == WF__R_WOKEN) {
            wf__spin_lock(&p->lock);
            continue;
        }
        ret = wf__park_errno(r);
        p->closing = WF_PROCPOOL_CANCEL;
        cancel_jobs(p, &b);
        wf__procpool_wake_all(&p->watchq, &p->nwatchq, &b);
        wf__spin_unlock(&p->lock);
        wf__sync_ready_batch(&b);
        wf__batch_init(&b);
        wf__spin_lock(&p->lock);
    }
    /* No call left: every worker goes; its watcher reaps it and ends. */
    for (unsigned i = 0; i < p->size; i++) {
        wf__procslot *s = &p->slots[i];
        if (s->state == WF__SLOT_IDLE && !s->shutdown_kill) {
            s->shutdown_kill = true;
            (void)wf__child_signal(&s->child, SIGKILL);
        }
    }
    wf__procpool_wake_all(&p->watchq, &p->nwatchq, &b);
    wf__spin_unlock(&p->lock);
    wf__sync_ready_batch(&b);
    wf__spin_lock(&p->lock);
    wait_watchers(p, self);
    wf__spin_unlock(&p->lock);
    untrack(p);
    pool_free(p);
    return ret;
}

void wf__procpools_destroy(wf__runtime *rt)
{
    wf__pool *pool = rt->pool;
    if (!pool)
        return;
    /* Every runtime thread has stopped, and every task has ended (the
     * watchers reaped their workers or left them to the child crew, whose
     * threads have been joined): what is left is memory, and whatever a
     * watcher could not clean up. */
    wf__link *l;
    while ((l = wf__list_pop_front(&pool->procpools)) != NULL) {
        wf_procpool_t *p = wf__container_of(l, wf_procpool_t, link);
        for (unsigned i = 0; i < p->size; i++) {
            wf__procslot *s = &p->slots[i];
            wf__procslot_close_chan(s);
            if (s->child.pid > 0)
                wf__child_reap_now(&s->child);
        }
        pool_free(p);
    }
}
