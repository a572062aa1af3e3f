/* job.h - a unit of blocking work that a fiber hands to a runtime-owned
 * worker, and the protocol by which the fiber waits for it, gives up on it,
 * and the worker completes it.
 *
 * The thread pool's crews (pool.h) are the workers. The process pool
 * (procpool.h) needs no such record for its own jobs, and says why: a
 * process can be stopped, so a fiber that gives up kills its worker and
 * nothing outlives its wait. It uses this protocol for what does block a
 * thread: asking the zygote for a worker, and copying a large input into
 * its memfd (FINISH mode); and it shares the spinning rule below.
 *
 * WHY A HEAP RECORD. A fiber that is cancelled, or whose deadline passes,
 * while its call runs returns at once; the call cannot be interrupted (it
 * is C code blocked in the kernel, or busy), so it finishes later, on the
 * worker, when nobody waits. The record it writes its outcome into must
 * outlive the fiber's frame. So a job is shared by the fiber and the worker
 * and owned, at any moment, by exactly one of them:
 *
 *   submitted      the fiber owns it (it waits; a QUEUED job may be
 *                  withdrawn from its queue by the fiber)
 *   completed      the fiber owns it again (it reads the outcome, frees it)
 *   abandoned      the worker owns it: when the call returns, the job's
 *                  `abandon` callback runs on the worker, once, and frees it
 *                  (the thread pool calls the user's drop callback there)
 *
 * STATES (j->state): QUEUED (in a queue, not started) -> RUNNING (a worker
 * took it: under the queue's lock) -> DONE (the outcome is written: under
 * j->lock). Withdrawal is QUEUED -> removed, under the queue's lock, so a
 * job is withdrawn or run, never both.
 *
 * COMPLETION (wf__job_complete, on the worker). Under j->lock: mark DONE; if
 * the fiber abandoned the job, run `abandon` after unlocking; otherwise
 * decide the fiber's wait WOKEN (park.h) while still holding the lock.
 * The lock is what keeps the waiting task alive during the decision: a
 * fiber whose wait ended another way (cancelled, timed out) takes j->lock
 * before it leaves, so it cannot return, end and be freed while a completer
 * is still inside wf__park_decide on its record (the same rule as a wait
 * list's lock, park.h "WAKING"). A decision that finds the task parked
 * queues it with wf__ready after the unlock: from a pool thread that is the
 * runtime's inject queue, one push and at most one worker wake-up, and a
 * worker woken for one completion takes every completion queued meanwhile
 * (idle.h: a woken searcher chains to the next only when there is more),
 * so completions reach the workers in batches without a futex call each.
 *
 * THE FIBER'S SIDE (wf__job_wait), two modes:
 *   WF__JOB_ABANDON  a cancellation or a deadline ends the wait at once. A
 *                    QUEUED job is withdrawn and `abandon` runs right there
 *                    (never started: j->err says why); a RUNNING one is
 *                    marked abandoned under j->lock; a DONE one (the call
 *                    won the race) is returned as if the wait had not ended:
 *                    nothing is lost, and the cancellation stays pending for
 *                    the task's next wait.
 *   WF__JOB_FINISH   for calls that write into the caller's memory (file
 *                    reads into a user buffer): a QUEUED job is withdrawn as
 *                    above, but a RUNNING one is waited for to the end,
 *                    uninterruptibly, and its outcome returned. The fiber
 *                    always owns the job afterwards, so the record may live
 *                    on its stack; `abandon` is never called.
 *   WF__JOB_WHOLE    the job is waited for to the end from the start,
 *                    ignoring cancellation, timeout scopes and the deadline
 *                    (closing a file: it must not be left half done). The
 *                    fiber owns the job afterwards.
 *
 * SPINNING BEFORE PARKING. A call that a pool thread picks up at once often
 * ends within a microsecond or two (an empty call, a read from the page
 * cache), far less than a worker's sleep and wake-up (futex calls of
 * several microseconds each on a VM). While the caller's worker has nothing
 * else to run (its run queue, its pinned inbox and the inject queue all
 * empty), the fiber watches the job's state for up to WF__JOB_SPIN_NS
 * before it parks, yielding its CPU at each look after the first 2 us (a
 * pool thread sharing the core then runs). The wait is still one park: the
 * spin happens between
 * wf__park_begin and wf__park_commit, so a completion during it decides the
 * wait WOKEN before the switch (commit then returns without switching), and
 * a cancellation decides it CANCELLED just the same.
 */
#ifndef WF_POOL_JOB_H
#define WF_POOL_JOB_H

#include "atomic.h"
#include "list.h"
#include "spinlock.h"
#include "task.h"

enum { WF__JOB_QUEUED = 0, WF__JOB_RUNNING = 1, WF__JOB_DONE = 2 };

/* wf__job_wait modes */
enum { WF__JOB_ABANDON = 0, WF__JOB_FINISH = 1, WF__JOB_WHOLE = 2 };

/* How long a fiber whose worker is idle watches its job before parking
 * (see SPINNING above). About two futex round trips on the development VM:
 * longer spins only burn CPU that the pool thread may need (2 cores). */
#define WF__JOB_SPIN_NS (20 * 1000)
/* After this much of it, the spin yields its CPU at each look: on a
 * machine with more runnable threads than cores, the pool thread that runs
 * the call may be waiting for this very CPU, and a spin that only burns it
 * turns every call into a time slice (seen: 150 us per 64 KiB read, with
 * both spinning threads on one core of the loaded 2-core VM). */
#ifndef WF__JOB_SPIN_YIELD_NS
#define WF__JOB_SPIN_YIELD_NS (2 * 1000)
#endif

struct wf__crew;

typedef struct wf__job {
    wf__link link; /* in its crew's queue (the crew's lock) */
    /* QUEUED / RUNNING / DONE. Written under the crew's lock (-> RUNNING)
     * or j->lock (-> DONE) with release; read with acquire by the spinning
     * fiber, which then reads the outcome. */
    _Atomic uint32_t state;
    wf__spinlock lock;
    bool abandoned; /* under lock: the fiber stopped waiting */
    wf__task *task; /* under lock: the waiting fiber */
    uint64_t seq;   /* under lock: its wait */
    struct wf__crew *crew;
    /* Why the call never ran: 0 (it ran), -ECANCELED / -ETIMEDOUT
     * (withdrawn), -EAGAIN (no thread could be started for it). */
    int err;
    /* The outcome, written by `run` on the worker. */
    int status;
    void *result;
    /* Runs the call on the worker; writes status and result. */
    void (*run)(struct wf__job *j);
    /* WF__JOB_ABANDON only: the fiber has gone; release the job (on the
     * worker after `run`, or in the fiber if it was withdrawn unstarted,
     * with err set). Must not block. */
    void (*abandon)(struct wf__job *j);
} wf__job;

/* May this fiber spin for a result instead of parking at once? Only when
 * its worker would otherwise be idle: its run queue, its pinned inbox and
 * the inject queue are empty (SPINNING above; the process pool watches its
 * worker's reply by the same rule). */
bool wf__job_may_spin(struct wf__task *self);

/* Fill the protocol's fields (the caller sets run, abandon and its own). */
void wf__job_init(wf__job *j, void (*run)(wf__job *), void (*abandon)(wf__job *));

/* Fiber only. Queue `j` on `crew` and wait for it until `deadline`
 * (WF_FOREVER, or absolute ns; timeout scopes and cancellation apply).
 * Returns:
 *   0            the call ran; its outcome is in j; the caller owns j.
 *   -ECANCELED, -ETIMEDOUT
 *                ABANDON mode: the caller stopped waiting, and j belongs to
 *                the worker (its `abandon` runs, or has run, exactly once).
 *                FINISH mode: j was withdrawn before it started (nothing
 *                happened); the caller owns j. Never in WHOLE mode.
 *   -EAGAIN      no pool thread could be started and none runs (nothing
 *                happened); the caller owns j.
 *   -ESHUTDOWN   the pool is shutting down; the caller owns j. */
int wf__job_wait(struct wf__task *self, struct wf__crew *crew, wf__job *j, int64_t deadline, int mode);

/* Worker side: the call has run (or, with j->err set, never will): hand
 * the outcome to the waiting fiber, or to `abandon`. Not one access to j
 * after this returns. */
void wf__job_complete(wf__job *j);

#endif
