/* procwatch.c - the watchers of a process pool's slots: the task that
 * starts a slot's worker, lends it, waits for its end, reaps it, and starts
 * the next (procpool.h, "A SLOT"). */
#include "job.h"
#include "net/sockmsg.h"
#include "pool.h"
#include "procpool.h"
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
#include <weft/time.h>

/* Back-off between failed starts: 10 ms, doubling, at most 1 s (a failing
 * initializer costs one fork per second per slot, not a fork loop). */
#define BACKOFF_MIN_NS (10 * 1000 * 1000LL)
#define BACKOFF_MAX_NS (1000 * 1000 * 1000LL)
/* A watcher cancelled by the runtime's shutdown gives its killed worker
 * this long to be reaped before leaving it to the child crew. */
#define CLEANUP_NS (10 * WF_NSEC_PER_SEC)

static int64_t backoff_ns(unsigned streak)
{
    int64_t ns = BACKOFF_MIN_NS;
    for (unsigned i = 1; i < streak && ns < BACKOFF_MAX_NS; i++)
        ns *= 2;
    return ns < BACKOFF_MAX_NS ? ns : BACKOFF_MAX_NS;
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
        wf__procslot_close_chan(s);
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
    wf__procslot_close_chan(s);
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

int wf__procslot_watch(void *arg, void **result)
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
            wf__procpool_wake_all(&p->waiters, &p->nwait, &b);
            wf__procpool_wake_all(&p->changew, &p->nchangew, &b);
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
        wf__procpool_wake_all(&p->changew, &p->nchangew, &b);
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
        wf__procslot_uncount(p, s);
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
        wf__procpool_wake_all(&p->changew, &p->nchangew, &b);
        wf__spin_unlock(&p->lock);
        wf__sync_ready_batch(&b);
        wf__batch_init(&b);
        /* The slot is back: nobody uses the worker's records now. */
        release_worker(p, s, reaped);
        wf__procslot_close_chan(s);
        wf__spin_lock(&p->lock);
    }
    /* Pool lock held: the watcher's last touch of the pool (the closer
     * frees it once `watchers` is 0, after taking the lock). */
    p->watchers--;
    wf__procpool_wake_all(&p->changew, &p->nchangew, &b);
    wf__spin_unlock(&p->lock);
    wf__sync_ready_batch(&b);
    return 0;
}
