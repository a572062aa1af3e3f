/* procjob.c - running jobs on a process pool: wf_procpool_run (the caller
 * drives its job over the worker's socket: procpool.h), _submit (the same
 * in a task), _map (a window of those), and the parent's half of the wire
 * (procwire.h).
 *
 * A JOB, step by step (wf__proc_call):
 *   1. Count the call in (close waits for it) and borrow a worker: an idle
 *      one, or wait for one (procpool.c lends it).
 *   2. Send the JOB frame: the input inline, or its sealed memfd.
 *   3. Read the reply: first without parking while the caller's worker has
 *      nothing else to run (job.h, SPINNING: up to PROC_SPIN_NS), then
 *      through the poller until the deadline.
 *   4. Check it (wf__pw_check) and take the output: a copy of an inline
 *      payload, or a private mapping of the memfd (no copy).
 *   5. Give the worker back: to the next caller, or retire it after
 *      max_jobs_per_worker jobs (its channel is shut: it exits).
 * What goes wrong, and what the caller gets:
 *   end of file, or a reset, at 2 or 3     the worker died: wait for its
 *                                          returncode (the watcher reaps
 *                                          it), -ECHILD;
 *   a deadline or cancellation at 2 or 3   kill it (SIGKILL), -ETIMEDOUT /
 *                                          -ECANCELED at once;
 *   a bad frame at 4                       kill it, -EPROTO;
 *   close(WF_PROCPOOL_CANCEL) killed it    -ESHUTDOWN.
 * A killed worker is given back as such; its watcher reaps and replaces
 * it. The caller never waits for a killed worker to go.
 */
#include "job.h"
#include "net/sockmsg.h"
#include "pool.h"
#include "procpool.h"
#include "procwire.h"
#include "runtime.h"
#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/combinators.h>
#include <weft/time.h>

/* How long a caller whose worker is otherwise idle looks for the reply
 * before it parks (step 3). A process's round trip is longer than a pool
 * thread's (job.h's 20 us): two processes must each be scheduled. */
#define PROC_SPIN_NS (50 * 1000)
/* Inputs from this size on are copied into their memfd on a pool thread
 * (wf__procinput_make): about 100 us of copying, the cost of which starts
 * to matter to the other fibers of the caller's worker, against 10 us or so
 * for the hand-off. */
#define PROC_OFFLOAD_MIN ((size_t)1 << 20)

/* --- inputs --------------------------------------------------------------------------- */

static __attribute__((noinline)) int sys_memfd(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    return fd < 0 ? -errno : fd;
}

static __attribute__((noinline)) ssize_t sys_pwrite(int fd, const void *b, size_t n, off_t at)
{
    ssize_t r = pwrite(fd, b, n, at);
    return r < 0 ? -errno : r;
}

static __attribute__((noinline)) int sys_seal(int fd)
{
    return fcntl(fd, F_ADD_SEALS, WF__PW_SEALS | F_SEAL_SEAL) < 0 ? -errno : 0;
}

/* Make a sealed memfd holding data[0, len): *fd, or -errno. */
static int memfd_fill(const void *data, size_t len, int *out)
{
    /* Written into the memfd (the kernel copies into its pages: nothing is
     * mapped or faulted here), then sealed, as the worker checks. */
    int fd = sys_memfd("wf-procpool-in");
    if (fd < 0)
        return fd;
    size_t done = 0;
    while (done < len) {
        ssize_t r = sys_pwrite(fd, (const char *)data + done, len - done, (off_t)done);
        if (r == -EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            return r < 0 ? (int)r : -EIO;
        }
        done += (size_t)r;
    }
    int e = sys_seal(fd);
    if (e) {
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

/* A large input is copied on a pool thread of the file crew (it is a
 * write into a file): copying 64 MiB takes tens of milliseconds, which the
 * caller's worker thread would otherwise not give to its other fibers. In
 * FINISH mode (job.h): the copy reads the caller's buffer, so once started
 * it is waited for to its end. */
typedef struct fill_job {
    wf__job job;
    const void *data;
    size_t len;
    int fd;
} fill_job;

static void fill_run(wf__job *j)
{
    fill_job *f = wf__container_of(j, fill_job, job);
    j->status = memfd_fill(f->data, f->len, &f->fd);
}

static void fill_abandon(wf__job *j)
{
    (void)j; /* never called in FINISH mode */
}

int wf__procinput_make(wf__procinput *in, const void *data, size_t len, bool copy, int64_t deadline)
{
    in->data = data;
    in->len = len;
    in->memfd = -1;
    in->owned = NULL;
    if (len < WF__PW_SHM_MIN) {
        if (copy && len) {
            if (!(in->owned = malloc(len)))
                return -ENOMEM;
            memcpy(in->owned, data, len);
            in->data = in->owned;
        }
        return 0;
    }
    int e;
    wf__task *self = wf__current();
    if (self && len >= PROC_OFFLOAD_MIN) {
        fill_job f = {.data = data, .len = len, .fd = -1};
        wf__job_init(&f.job, fill_run, fill_abandon);
        e = wf__job_wait(self, &self->rt->pool->crews[WF__CREW_FILE], &f.job, deadline, WF__JOB_FINISH);
        if (e == 0)
            e = f.job.status;
        in->memfd = f.fd;
    } else {
        e = memfd_fill(data, len, &in->memfd);
    }
    if (e == 0)
        in->data = NULL;
    return e;
}

void wf__procinput_drop(wf__procinput *in)
{
    if (in->memfd >= 0)
        close(in->memfd);
    in->memfd = -1;
    free(in->owned);
    in->owned = NULL;
}

int wf__proc_send(wf_sock_t *chan, unsigned type, uint32_t id, int32_t arg, const wf__procinput *in,
                  int64_t deadline)
{
    wf__pw_frame f = {.magic = WF__PW_MAGIC,
                      .type = (uint16_t)type,
                      .flags = in->memfd >= 0 ? WF__PW_SHM : 0,
                      .id = id,
                      .arg = arg,
                      .len = in->len};
    struct iovec v[2] = {{.iov_base = &f, .iov_len = sizeof f}, {.iov_base = (void *)in->data, .iov_len = 0}};
    int cnt = 1;
    if (in->memfd < 0 && in->len) {
        v[1].iov_len = in->len;
        cnt = 2;
    }
    return wf__sock_sendmsg_fds(chan, v, cnt, &in->memfd, in->memfd >= 0 ? 1 : 0, deadline);
}

/* --- outcomes ------------------------------------------------------------------------- */

void wf_procres_free(wf_procres_t *r)
{
    if (!r)
        return;
    /* The size says which: outputs from WF__PW_SHM_MIN on are mappings
     * of the worker's memfd, smaller ones are malloc'ed copies. */
    if (r->out) {
        if (r->len >= WF__PW_SHM_MIN)
            munmap(r->out, r->len);
        else
            free(r->out);
    }
    memset(r, 0, sizeof *r);
}

/* Step 4's output: from the inline payload `data`, or the memfd `fd`. */
static int take_output(wf_procres_t *res, const void *data, size_t len, int fd)
{
    res->out = NULL;
    res->len = 0;
    if (!len)
        return 0;
    if (fd >= 0) {
        /* Private: the caller may write into its result; the memfd is
         * sealed, so the worker can no longer change or shrink it. */
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            return -ENOMEM;
        /* Map every page now, in one call, rather than one fault at a time
         * when the caller reads them. MAP_POPULATE would copy each page
         * of a private writable mapping (it breaks copy-on-write);
         * MADV_POPULATE_READ (Linux 5.14) maps them as they are, and a
         * page is copied only if the caller writes it. Older kernels say
         * EINVAL, and fault as usual. */
        (void)madvise(m, len, MADV_POPULATE_READ);
        res->out = m;
    } else {
        if (!(res->out = malloc(len)))
            return -ENOMEM;
        memcpy(res->out, data, len);
    }
    res->len = len;
    return 0;
}

/* --- one job ------------------------------------------------------------------------------ */

/* Step 3: one read of the reply into the slot's buffer, spinning first. */
static ssize_t read_reply(wf__task *self, wf__procslot *s, int *fd, int *nfds, int *mflags, int64_t deadline)
{
    struct iovec v = {.iov_base = s->rx, .iov_len = WF__PW_MSG_MAX};
    if (deadline != 0 && wf__job_may_spin(self)) {
        int64_t start = wf_now();
        for (;;) {
            ssize_t r = wf__sock_recvmsg_fds(s->chan, &v, 1, fd, 1, nfds, mflags, 0);
            if (r != -ETIMEDOUT)
                return r; /* the reply, end of file, an error or a cancellation */
            int64_t t = wf_now() - start;
            if (t >= PROC_SPIN_NS || !wf__job_may_spin(self))
                break;
            /* Past the first microseconds, let the worker process have
             * this CPU if it is waiting for it (job.h, SPINNING). */
            if (t >= WF__JOB_SPIN_YIELD_NS)
                sched_yield();
            else
                wf__cpu_relax();
        }
        /* Spun for nothing, or a timeout scope already expired: the real
         * wait says which. */
    }
    return wf__sock_recvmsg_fds(s->chan, &v, 1, fd, 1, nfds, mflags, deadline);
}

/* The worker went away under the job (end of file at step 2 or 3). */
static int worker_died(wf__task *self, wf__procslot *s, int64_t deadline, wf_procres_t *res)
{
    /* Also for a worker that merely closed its channel: it is done for. */
    (void)wf__child_signal(&s->child, SIGKILL);
    int rc = 0;
    bool by_close = false;
    int e = wf__procslot_wait_death(s, self, deadline, &rc, &by_close);
    if (e) {
        wf__procslot_give_back(s, WF__BACK_KILLED);
        return e;
    }
    wf__procslot_give_back(s, WF__BACK_DEAD);
    if (by_close)
        return -ESHUTDOWN;
    res->returncode = rc;
    return -ECHILD;
}

/* Stop the job: kill its worker and give it back (the watcher replaces
 * it). */
static int kill_worker(wf__procslot *s, int e)
{
    (void)wf__child_signal(&s->child, SIGKILL);
    wf__procslot_give_back(s, WF__BACK_KILLED);
    return e;
}

/* Steps 2-5 with the borrowed slot `s`. */
static int exchange(wf_procpool_t *p, wf__task *self, wf__procslot *s, int fn, const wf__procinput *in,
                    int64_t deadline, wf_procres_t *res)
{
    if (!s->rx && !(s->rx = malloc(WF__PW_MSG_MAX))) {
        wf__procslot_give_back(s, WF__BACK_IDLE);
        return -ENOMEM;
    }
    uint32_t id = s->next_id++;
    int e = wf__proc_send(s->chan, WF__PW_JOB, id, fn, in, deadline);
    if (e == -EPIPE || e == -ECONNRESET)
        return worker_died(self, s, deadline, res);
    if (e)
        return kill_worker(s, e); /* -ETIMEDOUT, -ECANCELED, or the socket's error */

    int fd = -1, nfds = 0, mflags = 0;
    ssize_t got = read_reply(self, s, &fd, &nfds, &mflags, deadline);
    if (got == 0 || got == -ECONNRESET)
        return worker_died(self, s, deadline, res);
    if (got < 0)
        return kill_worker(s, (int)got);
    wf__pw_frame f;
    memcpy(&f, s->rx, (size_t)got < sizeof f ? (size_t)got : sizeof f);
    bool ok = wf__pw_check(&f, (size_t)got, nfds, fd, mflags, WF__PW_RESULT, id, p->max_output, WF__PW_STATUS_MIN, 0);
    if (!ok) {
        if (fd >= 0)
            close(fd);
        return kill_worker(s, -EPROTO);
    }
    e = take_output(res, s->rx + sizeof f, (size_t)f.len, (f.flags & WF__PW_SHM) ? fd : -1);
    if (fd >= 0)
        close(fd);
    res->status = e ? 0 : f.arg;
    wf__spin_lock(&p->lock);
    p->st.jobs++;
    wf__spin_unlock(&p->lock);
    /* Step 5. */
    if (p->max_jobs && ++s->jobs >= p->max_jobs) {
        /* End of file for the worker: it exits 0, and is replaced. */
        (void)wf_sock_shutdown(s->chan, SHUT_WR);
        wf__procslot_give_back(s, WF__BACK_RETIRE);
    } else {
        wf__procslot_give_back(s, WF__BACK_IDLE);
    }
    return e;
}

/* A whole job: enter, borrow, exchange, leave. `entered`: the call was
 * counted in already (submit counts it when the task is made). */
static int proc_call(wf_procpool_t *p, wf__task *self, int fn, const wf__procinput *in, int64_t deadline,
                     wf_procres_t *res, bool entered)
{
    memset(res, 0, sizeof *res);
    int e = entered ? 0 : wf__procpool_enter(p);
    if (e)
        return e;
    wf__procslot *s = NULL;
    e = wf__procpool_acquire(p, self, deadline, &s, res);
    if (e == 0)
        e = exchange(p, self, s, fn, in, deadline, res);
    wf__procpool_leave(p);
    return e;
}

int wf_procpool_run(wf_procpool_t *p, const char *job, const void *in, size_t len, int64_t deadline,
                    wf_procres_t *res)
{
    if (res)
        memset(res, 0, sizeof *res);
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!p || !job || !res || (!in && len) || deadline < WF_FOREVER)
        return -EINVAL;
    if (p->rt != self->rt)
        return -EXDEV;
    int fn = wf__procjob_find(job);
    if (fn < 0)
        return fn;
    wf__procinput pin;
    int e = wf__procinput_make(&pin, in, len, false, deadline);
    if (e)
        return e;
    e = proc_call(p, self, fn, &pin, deadline, res, false);
    wf__procinput_drop(&pin);
    return e;
}

/* --- submit: the same in a task ---------------------------------------------------------- */

typedef struct submit_ctx {
    wf_procpool_t *p;
    int fn;
    wf__procinput in;
    int64_t deadline;
    wf_procres_t *res;
} submit_ctx;

static int submit_body(void *arg, void **result)
{
    submit_ctx *c = arg;
    *result = c->res;
    int e = proc_call(c->p, wf__current(), c->fn, &c->in, c->deadline, c->res, true);
    wf__procinput_drop(&c->in);
    free(c);
    return e;
}

/* Cancelled before it ran: the call was counted in at submit. */
static void submit_drop(void *arg)
{
    submit_ctx *c = arg;
    wf__procpool_leave(c->p);
    wf__procinput_drop(&c->in);
    free(c);
}

int wf_procpool_submit(wf_procpool_t *p, const char *job, const void *in, size_t len, int64_t deadline,
                       wf_procres_t *res, wf_task_t *task)
{
    if (res)
        memset(res, 0, sizeof *res);
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!p || !job || !res || !task || (!in && len) || deadline < WF_FOREVER)
        return -EINVAL;
    if (p->rt != self->rt)
        return -EXDEV;
    int fn = wf__procjob_find(job);
    if (fn < 0)
        return fn;
    submit_ctx *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->p = p;
    c->fn = fn;
    c->deadline = deadline;
    c->res = res;
    int e = wf__procinput_make(&c->in, in, len, true, deadline);
    if (e) {
        free(c);
        return e;
    }
    /* Counted in now: a pool closed with WF_PROCPOOL_WAIT serves the jobs
     * submitted before, and is not freed under a task yet to run. */
    if ((e = wf__procpool_enter(p)) != 0) {
        wf__procinput_drop(&c->in);
        free(c);
        return e;
    }
    wf_spawn_opts_t so = WF_SPAWN_OPTS_INIT;
    so.name = "procpool-job";
    so.drop = submit_drop;
    e = wf_spawn(task, submit_body, c, &so);
    if (e) {
        wf__procpool_leave(p);
        wf__procinput_drop(&c->in);
        free(c);
    }
    return e;
}

/* --- map: a window of jobs ------------------------------------------------------------------ */

typedef struct map_ctx {
    wf_procpool_t *p;
    int fn;
    const wf_procin_t *in;
    size_t n;
    int64_t deadline;
    wf_procres_t *res;
    int *errs;
    _Atomic size_t next;    /* the next input to take */
    _Atomic bool cancelled; /* the mapper was cancelled: take no more */
} map_ctx;

static int map_body(void *arg, void **result)
{
    (void)result;
    map_ctx *m = arg;
    wf__task *self = wf__current();
    for (;;) {
        /* relaxed: a counter of its own; the inputs are read-only. */
        size_t i = atomic_fetch_add_explicit(&m->next, 1, memory_order_relaxed);
        if (i >= m->n)
            break;
        if (atomic_load_explicit(&m->cancelled, memory_order_relaxed)) {
            m->errs[i] = -ECANCELED; /* the mapper gave up: not run */
            continue;
        }
        wf__procinput pin;
        int e = wf__procinput_make(&pin, m->in[i].data, m->in[i].len, false, m->deadline);
        if (e == 0) {
            e = proc_call(m->p, self, m->fn, &pin, m->deadline, &m->res[i], false);
            wf__procinput_drop(&pin);
        } else {
            memset(&m->res[i], 0, sizeof m->res[i]);
        }
        m->errs[i] = e;
    }
    return 0;
}

int wf_procpool_map(wf_procpool_t *p, const char *job, const wf_procin_t *in, size_t n, unsigned window,
                    int64_t deadline, wf_procres_t *res, int *errs)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!p || !job || !res || !errs || (!in && n) || deadline < WF_FOREVER)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!in[i].data && in[i].len)
            return -EINVAL;
    if (p->rt != self->rt)
        return -EXDEV;
    int fn = wf__procjob_find(job);
    if (fn < 0)
        return fn;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        errs[i] = -ECANCELED; /* until its job says otherwise */
    }
    if (n == 0)
        return 0;
    if (window == 0)
        window = 2 * p->size;
    if (window > n)
        window = (unsigned)n;
    map_ctx m = {.p = p, .fn = fn, .in = in, .n = n, .deadline = deadline, .res = res, .errs = errs};
    atomic_init(&m.next, 0);
    atomic_init(&m.cancelled, false);
    wf_task_t *t = malloc(window * sizeof *t);
    if (!t)
        return -ENOMEM;
    wf_spawn_opts_t so = WF_SPAWN_OPTS_INIT;
    so.name = "procpool-map";
    unsigned started = 0;
    int e = 0;
    for (; started < window; started++)
        if ((e = wf_spawn(&t[started], map_body, &m, &so)) != 0)
            break;
    if (started == 0) {
        free(t);
        return e;
    }
    /* Join the helpers. Cancelled meanwhile (or an enclosing timeout scope
     * expired): stop them (their jobs are killed), then wait for them
     * uninterruptibly, since they use this frame (they end within moments
     * of their cancellation). */
    int ret = 0;
    for (unsigned i = 0; i < started; i++) {
        int r = wf_join(t[i], NULL, NULL);
        if (r != 0 && !ret) {
            ret = r; /* -ECANCELED, or -ETIMEDOUT (a timeout scope) */
            atomic_store_explicit(&m.cancelled, true, memory_order_relaxed);
            for (unsigned k = i; k < started; k++)
                (void)wf_cancel(t[k]);
        }
        if (r != 0) {
            wf_timeout_t cs;
            /* A cleanup scope bounded far beyond what a killed job takes:
             * the helpers cannot be left behind (this frame is theirs). */
            while (wf_cleanup_enter_in(&cs, 3600 * WF_NSEC_PER_SEC) == 0) {
                r = wf_join(t[i], NULL, NULL);
                (void)wf_timeout_leave(&cs);
                if (r != -ETIMEDOUT)
                    break;
            }
        }
    }
    free(t);
    return ret;
}
