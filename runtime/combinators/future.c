/* future.c - futures: one-shot outcomes that any thread may complete.
 *
 * A future is a state word, an outcome, and two kinds of waiter:
 *  - fibers, on a wait list under the future's spinlock (park.h). The
 *    completer decides each node WOKEN under the lock and readies the tasks
 *    after dropping it. From a thread outside any runtime, wf__ready sends
 *    the task to its runtime's inject queue and wakes a worker; the
 *    runtime cannot be gone meanwhile, because a task parked here is alive.
 *  - plain threads, blocked on the state word itself as a futex. They count
 *    themselves in `sleepers` before looking at the state, and the
 *    completer stores the state before looking at `sleepers` (a Dekker
 *    pair, seq_cst on both sides), so a completion is never missed and the
 *    futex_wake syscall is made only when someone sleeps.
 * Everyone who touches a future holds a reference (the completer too), so
 * the futex word and the lock are alive for as long as anyone uses them.
 */
#include "combo.h"

#include <limits.h>
#include <stdlib.h>

#define FUTURE_MAGIC 0x66757475u /* "futu" */

enum { PENDING = 0, DONE = 1 };

struct wf_future {
    uint32_t magic;
    _Atomic uint32_t refs;
    wf__spinlock lock;
    _Atomic uint32_t state;    /* PENDING / DONE; the plain threads' futex */
    _Atomic uint32_t sleepers; /* plain threads blocked (or about to be) */
    int status;                /* written before state becomes DONE */
    void *result;
    wf__link waiters; /* fibers; under lock */
};

static wf_future_t *live(wf_future_t *f)
{
    return f && f->magic == FUTURE_MAGIC && atomic_load_explicit(&f->refs, memory_order_relaxed) > 0 ? f
                                                                                                     : NULL;
}

int wf_future_create(wf_future_t **out)
{
    if (!out)
        return -EINVAL;
    wf_future_t *f = malloc(sizeof *f);
    if (!f)
        return -ENOMEM;
    f->magic = FUTURE_MAGIC;
    atomic_init(&f->refs, 1);
    wf__spin_init(&f->lock);
    atomic_init(&f->state, PENDING);
    atomic_init(&f->sleepers, 0);
    f->status = 0;
    f->result = NULL;
    wf__list_init(&f->waiters);
    *out = f;
    return 0;
}

int wf_future_ref(wf_future_t *f)
{
    if (!live(f))
        return -EINVAL;
    /* relaxed: the caller holds a reference, so the future stays alive. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return 0;
}

int wf_future_release(wf_future_t *f)
{
    if (!live(f))
        return -EINVAL;
    /* acq_rel: the last releaser sees every other holder's writes before
     * it frees the memory. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        wf__assert(wf__list_empty(&f->waiters), "no fiber waits on a future nobody holds");
        f->magic = 0;
        free(f);
    }
    return 0;
}

static int complete(wf_future_t *f, int status, void *result)
{
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) != PENDING) {
        wf__spin_unlock(&f->lock);
        return -EALREADY;
    }
    f->status = status;
    f->result = result;
    /* seq_cst: publishes the outcome (release) to lock-free readers, and is
     * the completer's half of the Dekker pair with sleeping threads. */
    atomic_store_explicit(&f->state, DONE, memory_order_seq_cst);
    wf__wake_all(&f->waiters, &b);
    wf__spin_unlock(&f->lock);
    wf__task *t;
    while ((t = wf__batch_pop(&b)) != NULL)
        wf__ready(t); /* each to its own runtime */
    /* seq_cst: second half of the Dekker pair (see the header comment). */
    if (atomic_load_explicit(&f->sleepers, memory_order_seq_cst) > 0)
        wf__futex_wake(&f->state, INT_MAX);
    return 0;
}

int wf_future_set(wf_future_t *f, int status, void *result)
{
    if (!live(f) || status > 0)
        return -EINVAL;
    return complete(f, status, result);
}

int wf_future_cancel(wf_future_t *f)
{
    if (!live(f))
        return -EINVAL;
    return complete(f, -ECANCELED, NULL);
}

int wf_future_done(wf_future_t *f)
{
    if (!live(f))
        return -EINVAL;
    /* acquire: pairs with the completer's store. */
    return atomic_load_explicit(&f->state, memory_order_acquire) == DONE;
}

static int outcome(wf_future_t *f, int *status, void **result)
{
    if (status)
        *status = f->status;
    if (result)
        *result = f->result;
    return 0;
}

/* A plain thread blocks on the state word. */
static int wait_thread(wf_future_t *f, int64_t deadline, int *status, void **result)
{
    /* seq_cst: the sleeper's half of the Dekker pair. */
    atomic_fetch_add_explicit(&f->sleepers, 1, memory_order_seq_cst);
    int ret = 0;
    while (atomic_load_explicit(&f->state, memory_order_seq_cst) == PENDING) {
        int64_t left = -1;
        if (deadline != WF_FOREVER) {
            left = deadline - wf_now();
            if (left <= 0) {
                ret = -ETIMEDOUT;
                break;
            }
        }
        wf__futex_wait(&f->state, PENDING, left);
    }
    atomic_fetch_sub_explicit(&f->sleepers, 1, memory_order_relaxed);
    if (ret == 0)
        outcome(f, status, result);
    return ret;
}

int wf_future_wait(wf_future_t *f, int64_t deadline, int *status, void **result)
{
    if (!live(f) || deadline < WF_FOREVER)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self) {
        if (wf__tls_runtime() || wf__tls_worker())
            return -EPERM; /* a runtime thread outside a fiber must not block */
        return wait_thread(f, deadline, status, result);
    }
    /* acquire: pairs with the completer's store (the outcome). */
    if (atomic_load_explicit(&f->state, memory_order_acquire) == DONE)
        return outcome(f, status, result);
    wf__waitnode node;
    wf__spin_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) == DONE) {
        wf__spin_unlock(&f->lock);
        return outcome(f, status, result);
    }
    node.task = self;
    node.data = NULL;
    node.seq = wf__park_begin(self, 0);
    wf__list_push_back(&f->waiters, &node.link);
    wf__spin_unlock(&f->lock);
    unsigned r = wf__park_commit(self, node.seq, deadline);
    if (r != WF__R_WOKEN) {
        wf__spin_lock(&f->lock);
        if (wf__link_linked(&node.link))
            wf__list_unlink(&node.link);
        bool done = atomic_load_explicit(&f->state, memory_order_relaxed) == DONE;
        wf__spin_unlock(&f->lock);
        /* Our own deadline lost a race with the completion: the outcome
         * wins, as in wf_join_until. Cancellation and scopes do not. */
        if (r != WF__R_TIMEDOUT || !done)
            return wf__park_errno(r);
    }
    return outcome(f, status, result);
}
