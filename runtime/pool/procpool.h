/* procpool.h - the parent's side of a process pool (weft/procpool.h): its
 * slots, the watcher fiber that keeps a worker in each slot, and the
 * lending of workers to the fibers that run jobs.
 *
 * THE CALLER DRIVES ITS JOB. A fiber that runs a job borrows an idle
 * worker, writes the JOB frame on the worker's socket and reads the reply
 * itself, through the poller: no dispatcher fiber or thread stands between
 * them, so a job costs the two system calls and the one park of a socket
 * round trip. The thread pool needs heap job records shared with its
 * threads (job.h) because a running C call cannot be stopped, so a fiber
 * that gives up must leave the call's outcome to someone else; a process
 * can be stopped, so a fiber that gives up here (a deadline, a
 * cancellation, a bad frame) kills its worker (SIGKILL through the pidfd)
 * and returns at once, and nothing outlives its wait. What the two pools
 * share is below the job: the child crew and child.h for processes, the
 * spin-before-park rule of job.h, the sockets of runtime/net.
 *
 * A SLOT holds at most one worker, and its watcher (a task of the pool's
 * runtime) runs the worker's life in a loop:
 *   1. wait until the slot should have a worker: at once for an eager pool;
 *      for a lazy one once a job found every started worker busy; never
 *      before the back-off of failed starts (retry_at) has passed;
 *   2. start one (a pool thread asks the zygote for it: zygote.h; then the
 *      INIT frame, and the READY reply within start_timeout): a failed
 *      start is recorded for the whole pool (failing, retry_at: 10 ms
 *      doubling to 1 s) and wakes the callers waiting for a worker, which
 *      then fail with -ENOEXEC unless another start is under way;
 *   3. lend it: to the first caller waiting, or onto the idle list;
 *   4. wait for it to end (its pidfd, child.h) and reap it: a crash, or a
 *      kill or retirement by a borrower or by close;
 *   5. if a borrower holds it, hand the borrower the returncode (it waits
 *      for it after reading end of file) and wait until it gives the slot
 *      back; close the channel; go to 1.
 * Only the watcher closes a worker's channel and reaps it; a borrower uses
 * them while it holds the slot (state BUSY), and the watcher waits for the
 * slot to come back (RETURNED) before it closes anything. The watcher's
 * waits in step 5 are uninterruptible: a borrower gives the slot back
 * promptly once the worker is dead (its reads see end of file).
 *
 * LOCKING. Everything under "pool lock" is read and written under
 * p->lock; the wait lists follow runtime/sync/wait.h (a node's data is
 * what the waker hands over: a slot, or NULL for "look again").
 */
#ifndef WF_POOL_PROCPOOL_H
#define WF_POOL_PROCPOOL_H

#include "child.h"
#include "list.h"
#include "spinlock.h"
#include "sync/wait.h"
#include <weft/net.h>
#include <weft/procpool.h>

struct wf__runtime;
struct wf__task;

/* A slot's state (pool lock). */
enum {
    WF__SLOT_EMPTY = 0,    /* no worker (watcher's step 1) */
    WF__SLOT_STARTING = 1, /* step 2 */
    WF__SLOT_IDLE = 2,     /* on the idle list */
    WF__SLOT_BUSY = 3,     /* lent to a caller */
    WF__SLOT_RETURNED = 4, /* given back with a dead or doomed worker */
};

/* How a borrower gives a slot back (wf__procslot_give_back). */
enum {
    WF__BACK_IDLE = 0,   /* the worker is fine: lend it again */
    WF__BACK_RETIRE = 1, /* max_jobs_per_worker reached: its channel is shut */
    WF__BACK_KILLED = 2, /* the borrower killed it */
    WF__BACK_DEAD = 3,   /* it died holding the job; the borrower has the returncode */
};

typedef struct wf__procslot {
    wf__link idle_link; /* on the pool's idle list (pool lock) */
    struct wf_procpool *pool;
    unsigned index;
    /* The worker: written by the watcher before the slot is first lent
     * (the pool lock publishes it), left alone by it until the slot is
     * back. */
    wf__child child;
    wf_sock_t *chan;
    /* The borrower's, while BUSY: the next job number, jobs run by this
     * worker, the receive buffer (WF__PW_MSG_MAX bytes, kept). */
    uint32_t next_id;
    unsigned jobs;
    unsigned char *rx;
    /* --- pool lock --- */
    unsigned state;
    bool active;        /* the slot should have a worker (lazy pools) */
    bool counted;       /* its worker is counted in the pool's `ready` */
    bool dead;          /* the watcher reaped the worker while it was lent */
    int rc;             /* ...its returncode */
    bool shutdown_kill; /* close killed it */
    unsigned back;      /* WF__BACK_* of the last give-back */
    wf__link deathw;    /* a borrower waiting for `dead` */
    uint32_t ndeathw;
    wf__link backw;     /* the watcher waiting for the slot to come back */
    uint32_t nbackw;
} wf__procslot;

struct wf_procpool {
    wf__link link; /* on the runtime's list of open pools (wf__pool.procs_lock) */
    struct wf__runtime *rt;
    wf__spinlock lock;
    /* --- options, read-only --- */
    unsigned size;
    unsigned max_jobs;
    int init_fn; /* -1: none */
    void *init_in;
    size_t init_len;
    size_t max_output;
    int64_t start_timeout;
    /* --- pool lock --- */
    wf__link idle; /* idle slots, most recently idle first */
    unsigned nidle;
    wf__link waiters; /* callers waiting for a worker */
    uint32_t nwait;
    wf__link watchq; /* watchers in step 1 */
    uint32_t nwatchq;
    wf__link changew; /* wf_procpool_warm() and close waiting for a change */
    uint32_t nchangew;
    unsigned calls;    /* calls entered and not left (submitted tasks included) */
    unsigned wanted;   /* lazy: slots activated so far */
    unsigned ready;    /* workers lent out or idle, and fine (slot->counted) */
    unsigned starting; /* slots in step 2 */
    unsigned watchers; /* watcher tasks that have not ended */
    int closing;       /* 0, or the close mode */
    bool failing;      /* the latest start failed */
    int fail_status, fail_rc;
    unsigned fail_streak;
    int64_t retry_at;
    wf_procpool_stats_t st; /* counters (workers, ready... filled on read) */
    wf__procslot slots[];
};

/* --- helpers shared by procpool.c and procwatch.c --- */

/* Pool lock held: wake every waiter of `list` with "look again" (NULL);
 * the tasks go to `b`, made runnable after unlocking (runtime/sync/wait.h). */
static inline void wf__procpool_wake_all(wf__link *list, uint32_t *n, wf__batch *b)
{
    if (*n)
        (void)wf__sync_wake_all(list, n, NULL, b);
}

/* Pool lock held: the slot's worker can no longer take jobs: out of
 * `ready`, once. */
static inline void wf__procslot_uncount(struct wf_procpool *p, wf__procslot *s)
{
    if (s->counted) {
        s->counted = false;
        p->ready--;
    }
}

/* Close the slot's channel, if any: its watcher (once the slot is back),
 * or wf_run's end. */
static inline void wf__procslot_close_chan(wf__procslot *s)
{
    if (s->chan)
        (void)wf_sock_close(s->chan);
    s->chan = NULL;
}

/* A slot's watcher (procwatch.c): a task's body, `arg` the slot. */
int wf__procslot_watch(void *arg, void **result);

/* Pools left open when wf_run ends: closed there, after every thread has
 * stopped (wf_run's step 13): workers killed and reaped, memory freed. */
void wf__procpools_destroy(struct wf__runtime *rt);

/* --- the lending protocol (procpool.c), used by the calls (procjob.c) --- */

/* Count a call in (close waits for the count to drop to zero): 0, or
 * -ESHUTDOWN once the pool is closing. */
int wf__procpool_enter(wf_procpool_t *p);
void wf__procpool_leave(wf_procpool_t *p);

/* Borrow a ready worker, waiting for one until `deadline`. 0 with *out;
 * -ESHUTDOWN (closing with WF_PROCPOOL_CANCEL); -ENOEXEC (no worker can
 * be started: res->status and res->returncode say why); -ETIMEDOUT,
 * -ECANCELED. */
int wf__procpool_acquire(wf_procpool_t *p, struct wf__task *self, int64_t deadline, wf__procslot **out,
                         wf_procres_t *res);

/* Give the slot back (WF__BACK_*). */
void wf__procslot_give_back(wf__procslot *s, unsigned how);

/* After end of file on the channel: wait for the watcher to reap the
 * worker, until `deadline`. 0 with *rc and *by_close (close killed it);
 * -ETIMEDOUT, -ECANCELED. */
int wf__procslot_wait_death(wf__procslot *s, struct wf__task *self, int64_t deadline, int *rc, bool *by_close);

/* --- the wire's parent side (procjob.c), used by the watchers too --- */

/* A payload to send: inline bytes, or a sealed memfd for WF__PW_SHM_MIN
 * bytes and more. */
typedef struct wf__procinput {
    const void *data;
    size_t len;
    int memfd; /* -1: inline */
    void *owned; /* a copy of data the input owns (submit), or NULL */
} wf__procinput;

/* Make one from `len` bytes at `data`: a memfd from WF__PW_SHM_MIN bytes
 * on (the bytes are copied into it, on a pool thread from 1 MiB on, until
 * `deadline`); inline bytes are used in place, or copied when `copy`. 0,
 * -ENOMEM, -EMFILE, -ENFILE; -ETIMEDOUT, -ECANCELED (nothing was made). */
int wf__procinput_make(wf__procinput *in, const void *data, size_t len, bool copy, int64_t deadline);
void wf__procinput_drop(wf__procinput *in);

/* Send a frame (type, id, arg) with `in` as its payload on `chan`. As
 * wf__sock_sendmsg_fds. */
int wf__proc_send(wf_sock_t *chan, unsigned type, uint32_t id, int32_t arg, const wf__procinput *in,
                  int64_t deadline);

#endif
