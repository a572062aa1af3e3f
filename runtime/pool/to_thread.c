/* to_thread.c - wf_run_in_executor, wf_to_thread, wf_pool_stats: the
 * program's own blocking calls on the pool (weft/pool.h). */
#include "pool.h"
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <weft/pool.h>

typedef struct offload {
    wf__job job;
    wf_fn fn;
    void *arg;
    void (*drop)(void *arg, int status, void *result);
} offload;

static void offload_run(wf__job *j)
{
    offload *o = wf__container_of(j, offload, job);
    j->result = NULL;
    j->status = o->fn(o->arg, &j->result);
}

/* The caller has gone: the outcome (or, never run, the caller's error)
 * goes to the user's drop callback. */
static void offload_abandon(wf__job *j)
{
    offload *o = wf__container_of(j, offload, job);
    if (o->drop)
        o->drop(o->arg, j->err ? j->err : j->status, j->err ? NULL : j->result);
    free(o);
}

int wf_run_in_executor(const wf_offload_opts_t *opts, wf_fn fn, void *arg, int *status, void **result)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    if (opts)
        o = *opts;
    if (!fn || o.deadline < WF_FOREVER)
        return -EINVAL;
    wf__crew *crew = wf__pool_crew(self->rt->pool, (int)o.pool);
    if (!crew)
        return -EINVAL;
    offload *job = malloc(sizeof *job);
    if (!job)
        return -ENOMEM;
    wf__job_init(&job->job, offload_run, offload_abandon);
    job->fn = fn;
    job->arg = arg;
    job->drop = o.drop;
    int r = wf__job_wait(self, crew, &job->job, o.deadline, WF__JOB_ABANDON);
    if (r == -ECANCELED || r == -ETIMEDOUT)
        return r; /* the job is the pool's: offload_abandon frees it */
    if (r == 0) {
        if (status)
            *status = job->job.status;
        if (result)
            *result = job->job.result;
    }
    free(job);
    return r;
}

int wf_to_thread(wf_fn fn, void *arg, int *status, void **result)
{
    return wf_run_in_executor(NULL, fn, arg, status, result);
}

int wf_pool_stats(wf_pool_class_t cls, wf_pool_stats_t *out)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    wf__crew *c = out ? wf__pool_crew(rt->pool, (int)cls) : NULL;
    if (!c)
        return -EINVAL;
    wf__spin_lock(&c->lock);
    out->limit = c->limit;
    out->threads = c->nthreads;
    out->idle = c->nidle;
    /* acquire: pairs with the release lowering in pool.c. */
    out->running = atomic_load_explicit(&c->running, memory_order_acquire);
    out->queued = c->queued;
    out->peak = c->peak;
    wf__spin_unlock(&c->lock);
    return 0;
}
