/* procpool.c - process pools: open, warm, close and stats; the slots'
 * watchers; lending workers to the calls (the model is in procpool.h). */
#include "procpool.h"
#include "job.h"
#include "net/sockmsg.h"
#include "pool.h"
#include "procwire.h"
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

/* Back-off between failed starts: 10 ms, doubling, at most 1 s (a failing
 * initializer costs one fork per second per slot, not a fork loop). */
#define BACKOFF_MIN_NS (10 * 1000 * 1000LL)
#define BACKOFF_MAX_NS (1000 * 1000 * 1000LL)
#define START_TIMEOUT_DEFAULT_NS (60 * WF_NSEC_PER_SEC)
#define MAX_OUTPUT_DEFAULT ((size_t)1 << 30)
#define MAX_WORKERS 1024
/* A watcher cancelled by the runtime's shutdown gives its killed worker
 * this long to be reaped before leaving it to the child crew. */
#define CLEANUP_NS (10 * WF_NSEC_PER_SEC)

/* --- small helpers (pool lock held unless said) ---------------------------------- */

static void wake_all(wf__link *list, uint32_t *n, wf__batch *b)
{
    if (*n)
        (void)wf__sync_wake_all(list, n, NULL, b);
}

static int64_t backoff_ns(unsigned streak)
{
    int64_t ns = BACKOFF_MIN_NS;
    for (unsigned i = 1; i < streak && ns < BACKOFF_MAX_NS; i++)
        ns *= 2;
    return ns < BACKOFF_MAX_NS ? ns : BACKOFF_MAX_NS;
}

/* The slot's worker can no longer take jobs: out of `ready`, once. */
static void uncount(wf_procpool_t *p, wf__procslot *s)
{
    if (s->counted) {
        s->counted = false;
        p->ready--;
    }
}

/* Kill every worker lent out, and send away every caller waiting for one:
 * close's WF_PROCPOOL_CANCEL. */
static void cancel_jobs(wf_procpool_t *p, wf__batch *b)
{
    wake_all(&p->waiters, &p->nwait, b); /* they see `closing` */
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
        wake_all(&p->changew, &p->nchangew, &b);
        wake_all(&p->watchq, &p->nwatchq, &b);
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
            wake_all(&p->watchq, &p->nwatchq, &b);
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
        uncount(p, s);
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

/* --- the watchers: step 2, starting a worker ------------------------------------------ */

/* The zygote exchange blocks: it runs on a pool thread of the child crew,
 * as a job of job.h (abandoned when the watcher is cancelled: then the
 * pool thread kills and reaps the new worker). */
typedef struct spawn_job {
    wf__job job;
    int chan; /* the parent's end of the new worker's channel */
    wf__child child;
} spawn_job;

static void spawn_run(wf__job *j)
{
    spawn_job *sj = wf__container_of(j, spawn_job, job);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        j->status = -errno; /* a pool thread: errno is this call's */
        return;
    }
    pid_t pid = 0;
    int e = wf__zygote_spawn(sv[1], &pid);
    close(sv[1]);
    if (e == 0 && (e = wf__child_init(&sj->child, pid)) != 0)
        wf__child_reap_now(&sj->child);
    if (e) {
        close(sv[0]);
        j->status = e;
        return;
    }
    sj->chan = sv[0];
    j->status = 0;
}

static void spawn_abandon(wf__job *j)
{
    spawn_job *sj = wf__container_of(j, spawn_job, job);
    if (j->err == 0 && j->status == 0) {
        wf__child_reap_now(&sj->child);
        close(sj->chan);
    }
    free(sj);
}

/* Wait for the slot's worker to end and reap it: kill it first if `kill`,
 * or once `deadline` has passed. Returns its returncode; *reaped false
 * when it could not be reaped: a cancelled wait (the runtime is ending:
 * the watcher's only canceller) kills the worker and waits CLEANUP_NS more
 * for it, and *cancelled says so. The pidfd stays open (a borrower may
 * still signal the worker through it): release_worker() closes it. */
static int await_worker(wf__procslot *s, wf__task *self, bool kill, int64_t deadline, bool *cancelled,
                        bool *reaped)
{
    if (kill)
        (void)wf__child_signal(&s->child, SIGKILL);
    int r = wf__child_wait(self, &s->child, kill ? WF_FOREVER : deadline);
    if (r == -ETIMEDOUT && !kill) {
        (void)wf__child_signal(&s->child, SIGKILL);
        r = wf__child_wait(self, &s->child, WF_FOREVER);
    }
    if (r != 0) {
        *cancelled = true;
        (void)wf__child_signal(&s->child, SIGKILL);
        wf_timeout_t cs;
        if (wf_cleanup_enter_in(&cs, CLEANUP_NS) == 0) {
            r = wf__child_wait(self, &s->child, WF_FOREVER);
            (void)wf_timeout_leave(&cs);
        }
    }
    int rc = -SIGKILL;
    *reaped = r == 0;
    if (*reaped)
        (void)wf__child_returncode(&s->child, &rc);
    return rc;
}

/* Give the slot's worker up, once nobody uses its child record: close the
 * pidfd, or (not reaped) leave the worker, killed, to the child crew. */
static void release_worker(wf_procpool_t *p, wf__procslot *s, bool reaped)
{
    if (reaped)
        wf__child_release(&s->child);
    else
        wf__child_reap_later(p->rt, &s->child);
    s->child.pid = 0;
}

/* await_worker then release_worker: for a worker that was never lent. */
static int reap_worker(wf_procpool_t *p, wf__procslot *s, wf__task *self, bool kill, int64_t deadline,
                       bool *cancelled)
{
    bool reaped;
    int rc = await_worker(s, self, kill, deadline, cancelled, &reaped);
    release_worker(p, s, reaped);
    return rc;
}

static void close_chan(wf__procslot *s)
{
    if (s->chan)
        (void)wf_sock_close(s->chan);
    s->chan = NULL;
}

/* Step 2 (procpool.h): 0 with a ready worker in the slot; -ECANCELED (the
 * watcher was cancelled: nothing is left in the slot); -ENOEXEC with
 * *status (the initializer's, or why none could be made) and *rc (how the
 * worker died starting). */
static int start_worker(wf_procpool_t *p, wf__procslot *s, wf__task *self, int *status, int *rc, bool *cancelled)
{
    *status = 0;
    *rc = 0;
    spawn_job *sj = malloc(sizeof *sj);
    if (!sj) {
        *status = -ENOMEM;
        return -ENOEXEC;
    }
    wf__job_init(&sj->job, spawn_run, spawn_abandon);
    sj->chan = -1;
    int r = wf__job_wait(self, &p->rt->pool->crews[WF__CREW_CHILD], &sj->job, WF_FOREVER, WF__JOB_ABANDON);
    if (r == -ECANCELED || r == -ETIMEDOUT) {
        *cancelled = true; /* abandoned: spawn_abandon cleans up */
        return -ECANCELED;
    }
    if (r < 0 || sj->job.status < 0) {
        *status = r < 0 ? r : sj->job.status;
        free(sj);
        return -ENOEXEC;
    }
    s->child = sj->child;
    int fd = sj->chan;
    free(sj);
    int e = wf_sock_adopt(&s->chan, fd);
    if (e) {
        close(fd);
        s->chan = NULL;
        (void)reap_worker(p, s, self, true, WF_FOREVER, cancelled);
        *status = e;
        return *cancelled ? -ECANCELED : -ENOEXEC;
    }
    s->next_id = 1;
    s->jobs = 0;

    /* INIT, then READY within the start timeout. */
    int64_t deadline = wf_deadline_in(p->start_timeout);
    wf__procinput in;
    e = wf__procinput_make(&in, p->init_in, p->init_len, false, deadline);
    if (e == 0) {
        e = wf__proc_send(s->chan, WF__PW_INIT, 0, p->init_fn, &in, deadline);
        wf__procinput_drop(&in);
    }
    wf__pw_frame f = {0};
    ssize_t got = 0;
    int fd2 = -1, nfds = 0, mflags = 0;
    if (e == 0) {
        struct iovec v = {.iov_base = &f, .iov_len = sizeof f};
        got = wf__sock_recvmsg_fds(s->chan, &v, 1, &fd2, 1, &nfds, &mflags, deadline);
        if (got > 0) {
            bool ok = wf__pw_check(&f, (size_t)got, nfds, fd2, mflags, WF__PW_READY, 0, 0, WF__PW_STATUS_MIN, 0);
            if (fd2 >= 0)
                close(fd2);
            if (ok && f.arg == 0)
                return 0; /* ready */
            e = ok ? 0 : -EPROTO;
            *status = ok ? f.arg : -EPROTO;
        } else if (got == 0 || got == -ECONNRESET) {
            e = 0; /* it died starting: its returncode says how */
        } else {
            e = (int)got;
        }
    }
    if (e == -ECANCELED) {
        close_chan(s);
        (void)reap_worker(p, s, self, true, WF_FOREVER, cancelled);
        *cancelled = true;
        return -ECANCELED;
    }
    if (e && !*status)
        *status = e; /* -ETIMEDOUT, -EPROTO, a send's error */
    /* A worker that died starting has ended (or ends: its channel is
     * closed), and its returncode is the report: reap it as it is, killing
     * it only past the start deadline. Anything else is killed (a worker
     * whose initializer refused exits by itself, but is not trusted to). */
    bool died = e == 0 && (got == 0 || got == -ECONNRESET);
    int code = reap_worker(p, s, self, !died, deadline, cancelled);
    if (died)
        *rc = code;
    close_chan(s);
    return *cancelled ? -ECANCELED : -ENOEXEC;
}

/* --- the watchers: the loop ----------------------------------------------------------- */

/* Step 1, pool lock held on entry and on return: wait until the slot
 * should have a worker. false: the watcher ends (the pool is closing and
 * no call is left that could need a worker, or it was cancelled). */
static bool wait_turn(wf_procpool_t *p, wf__procslot *s, wf__task *self)
{
    for (;;) {
        if (p->closing == WF_PROCPOOL_CANCEL || (p->closing && p->calls == 0))
            return false;
        int64_t until = WF_FOREVER;
        if (s->active) {
            if (!p->failing)
                return true;
            if (wf_now() >= p->retry_at)
                return true;
            until = p->retry_at;
        }
        wf__waitnode nd;
        nd.data = NULL;
        unsigned r = wf__sync_wait(&p->lock, &p->watchq, &p->nwatchq, &nd, self, until, 0);
        if (r == WF__R_WOKEN)
            wf__spin_lock(&p->lock);
        else if (r == WF__R_CANCELLED)
            return false;
    }
}

/* Count the end of a worker that the watcher reaped (pool lock held). */
static void count_end(wf_procpool_t *p, wf__procslot *s, unsigned was)
{
    if (s->shutdown_kill)
        p->st.kills++;
    else if (was == WF__SLOT_IDLE || s->back == WF__BACK_DEAD || s->back == WF__BACK_IDLE)
        p->st.crashes++; /* died idle, holding a job, or right after its reply */
    else if (s->back == WF__BACK_KILLED)
        p->st.kills++;
    else
        p->st.recycled++;
}

static int watcher_main(void *arg, void **result)
{
    (void)result;
    wf__procslot *s = arg;
    wf_procpool_t *p = s->pool;
    wf__task *self = wf__current();
    bool cancelled = false;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&p->lock);
    while (!cancelled && wait_turn(p, s, self)) {
        s->state = WF__SLOT_STARTING;
        p->starting++;
        p->st.starts++;
        wf__spin_unlock(&p->lock);

        /* Step 2. */
        int status, rc;
        int e = start_worker(p, s, self, &status, &rc, &cancelled);
        wf__task *q = NULL;
        wf__spin_lock(&p->lock);
        p->starting--;
        if (e) {
            s->state = WF__SLOT_EMPTY;
            if (e == -ECANCELED)
                break;
            p->st.start_failures++;
            p->failing = true;
            p->fail_status = status;
            p->fail_rc = rc;
            p->fail_streak++;
            p->retry_at = wf_now() + backoff_ns(p->fail_streak);
            /* Callers waiting look again: they fail unless another start
             * is under way. */
            wake_all(&p->waiters, &p->nwait, &b);
            wake_all(&p->changew, &p->nchangew, &b);
            wf__spin_unlock(&p->lock);
            wf__sync_ready_batch(&b);
            wf__batch_init(&b);
            wf__spin_lock(&p->lock);
            continue;
        }

        /* Step 3. */
        p->failing = false;
        p->fail_streak = 0;
        s->dead = false;
        s->shutdown_kill = false;
        s->back = WF__BACK_IDLE;
        if (p->closing == WF_PROCPOOL_CANCEL || (p->closing && p->calls == 0)) {
            /* Ready too late: nobody will use it. */
            s->shutdown_kill = true;
            s->state = WF__SLOT_RETURNED;
            (void)wf__child_signal(&s->child, SIGKILL);
        } else {
            s->counted = true;
            p->ready++;
            s->state = WF__SLOT_BUSY; /* before the hand-over: the taker owns it */
            if (!p->nwait || !wf__sync_wake_first(&p->waiters, &p->nwait, s, &q)) {
                s->state = WF__SLOT_IDLE;
                wf__list_push_front(&p->idle, &s->idle_link);
                p->nidle++;
            }
        }
        wake_all(&p->changew, &p->nchangew, &b);
        wf__spin_unlock(&p->lock);
        wf__sync_ready(q);
        wf__sync_ready_batch(&b);
        wf__batch_init(&b);

        /* Step 4. */
        bool reaped;
        rc = await_worker(s, self, false, WF_FOREVER, &cancelled, &reaped);

        /* Step 5. */
        wf__task *d = NULL;
        wf__spin_lock(&p->lock);
        uncount(p, s);
        unsigned was = s->state;
        if (was == WF__SLOT_IDLE) {
            wf__list_unlink(&s->idle_link);
            p->nidle--;
        } else if (was == WF__SLOT_BUSY) {
            s->dead = true;
            s->rc = rc;
            if (s->ndeathw)
                (void)wf__sync_wake_first(&s->deathw, &s->ndeathw, NULL, &d);
            /* A borrower still in a read or a write hears of it now: a
             * child the job forked may hold the worker's end of the
             * channel, and then no end of file would ever come. Our end
             * shut down, its calls return (end of file, -EPIPE). */
            (void)wf_sock_shutdown(s->chan, SHUT_RDWR);
            if (d) {
                wf__spin_unlock(&p->lock);
                wf__sync_ready(d);
                wf__spin_lock(&p->lock);
            }
            /* The borrower gives it back promptly: its reads see end of
             * file. Uninterruptible: it uses the channel until then. */
            while (s->state == WF__SLOT_BUSY) {
                wf__waitnode nd;
                nd.data = NULL;
                unsigned r = wf__sync_wait(&p->lock, &s->backw, &s->nbackw, &nd, self, WF_FOREVER,
                                           WF__PARK_NOCANCEL);
                if (r == WF__R_WOKEN)
                    wf__spin_lock(&p->lock);
            }
        }
        count_end(p, s, was);
        s->state = WF__SLOT_EMPTY;
        s->dead = false;
        s->shutdown_kill = false;
        wake_all(&p->changew, &p->nchangew, &b);
        wf__spin_unlock(&p->lock);
        wf__sync_ready_batch(&b);
        wf__batch_init(&b);
        /* The slot is back: nobody uses the worker's records now. */
        release_worker(p, s, reaped);
        close_chan(s);
        wf__spin_lock(&p->lock);
    }
    /* Pool lock held: the watcher's last touch of the pool (the closer
     * frees it once `watchers` is 0, after taking the lock). */
    p->watchers--;
    wake_all(&p->changew, &p->nchangew, &b);
    wf__spin_unlock(&p->lock);
    wf__sync_ready_batch(&b);
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
        int e = wf_spawn(&t, watcher_main, &p->slots[i], &so);
        if (e) {
            /* Wind down the watchers already started, then nothing is left. */
            wf__batch b;
            wf__batch_init(&b);
            wf__spin_lock(&p->lock);
            p->watchers -= n - i;
            p->closing = WF_PROCPOOL_CANCEL;
            wake_all(&p->watchq, &p->nwatchq, &b);
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
    wake_all(&p->watchq, &p->nwatchq, &b);
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
    wake_all(&p->watchq, &p->nwatchq, &b);
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
        wake_all(&p->watchq, &p->nwatchq, &b);
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
    wake_all(&p->watchq, &p->nwatchq, &b);
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
            close_chan(s);
            if (s->child.pid > 0)
                wf__child_reap_now(&s->child);
        }
        pool_free(p);
    }
}
