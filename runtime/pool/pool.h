/* pool.h - the thread pool: runtime-owned threads that run blocking calls
 * for fibers (wf_to_thread, files, DNS, a child's exit without pidfd).
 *
 * CREWS. Each class of call (user calls, file I/O, name resolution, and the
 * runtime's own waits for children) has a crew of its own: a FIFO queue of
 * jobs (job.h), the threads that serve it, and a limit on their number. A
 * crew's threads take only its jobs, so a thousand stalled DNS lookups
 * occupy the DNS crew's few threads and queue behind them, while a file read
 * finds the file crew's threads free (libuv #28: four slow lookups blocked
 * every file operation behind one shared queue of four threads).
 *
 * THREADS are started on demand: a job queued when no thread of its crew is
 * idle starts one more, up to the limit; at the limit it waits in the queue.
 * They are named wf-pool-N (the lowest N free in the runtime), block every
 * asynchronous signal (signal.c: a signal the program waits for must be
 * blocked in every runtime thread), and carry no runtime thread-locals: the
 * calls they run are ordinary C code outside the runtime (wf_spawn there is
 * -EPERM; wf_call_soon_threadsafe works, as from any foreign thread). None
 * is started before the first call: so none exists at wf_run's step 2, where
 * the process pool's zygote may be forked (runtime.c, zygote.h).
 *
 * IDLE AND RETIREMENT. A thread with nothing to do puts itself on its crew's
 * idle list (most recent first), spins for WF__POOL_SPIN_NS watching its
 * wake-up word, then sleeps on it as a futex until a submitter pops it off
 * the list and wakes it, or until the idle time (cfg.pool_idle_ns) passes:
 * then it leaves the list and exits. A thread that exits cannot join
 * itself: it joins the one that exited before it in its crew (a crew keeps
 * at most one such "zombie"), and the shutdown joins the last.
 *
 * THE WAKE-UP WORD of a thread: SPIN (idle, spinning), SLEEP (idle, in or
 * about to enter futex_wait), WOKEN. The thread moves SPIN -> SLEEP with a
 * CAS before it sleeps; a submitter, having popped it from the idle list
 * under the crew's lock, exchanges the word to WOKEN and calls futex_wake
 * only if it replaced SLEEP. So a thread caught spinning costs no system
 * call, and no wake-up is lost: a CAS that finds WOKEN does not sleep, and
 * futex_wait on SLEEP returns at once once the word is WOKEN.
 *
 * SHUTDOWN (wf_run's step 12, once every task has ended). Every fiber that
 * waited on a call has returned by then (shutdown cancels them all), so
 * each job still on a pool thread is abandoned and queues are empty. The
 * crews are closed, idle threads woken, and every thread joined: wf_run
 * waits for calls still running to return (a C call cannot be interrupted;
 * weft/pool.h says so), and their abandoned outcomes are dropped on the
 * pool threads as usual.
 */
#ifndef WF_POOL_POOL_H
#define WF_POOL_POOL_H

#include "job.h"
#include <pthread.h>
#include <weft/core.h>

/* Crews. The first three are the public classes of weft/pool.h
 * (WF_POOL_USER, WF_POOL_FILE, WF_POOL_DNS); CHILD waits for child
 * processes where pidfd_open is missing (one blocking waitid per child,
 * asyncio's ThreadedChildWatcher). */
enum { WF__CREW_USER = 0, WF__CREW_FILE = 1, WF__CREW_DNS = 2, WF__CREW_CHILD = 3, WF__CREWS = 4 };

/* How long an idle pool thread spins before it sleeps: a call that comes
 * within it costs no futex call on either side. */
#define WF__POOL_SPIN_NS (50 * 1000)
/* At most this many idle threads of a crew spin at once; the others sleep
 * at once. */
#ifndef WF__POOL_SPINNERS
#define WF__POOL_SPINNERS 1
#endif

/* Thread limits: defaults and the most a configuration may ask for. */
#define WF__POOL_USER_DEFAULT 64
#define WF__POOL_FILE_DEFAULT 16
#define WF__POOL_DNS_DEFAULT 4
#define WF__POOL_CHILD_LIMIT 1024
#define WF__POOL_LIMIT_MAX 1024
#define WF__POOL_IDLE_DEFAULT_NS (10LL * 1000 * 1000 * 1000)

enum { WF__PT_SPIN = 0, WF__PT_SLEEP = 1, WF__PT_WOKEN = 2 };

typedef struct wf__pool_thread {
    wf__link idle_link; /* on the crew's idle list, under its lock */
    wf__link all_link;  /* on the crew's list of live threads */
    struct wf__crew *crew;
    pthread_t thread;
    unsigned name; /* N of wf-pool-N */
    /* WF__PT_*: see THE WAKE-UP WORD above. */
    WF_ALIGNED_CL _Atomic uint32_t word;
} wf__pool_thread;

typedef struct wf__crew {
    wf__spinlock lock;
    /* --- under lock --- */
    wf__link queue; /* QUEUED jobs, oldest first */
    wf__link idle;  /* idle threads, most recently idle first */
    wf__link all;   /* live threads (idle or running), for the shutdown */
    unsigned queued, nidle, spinning;
    unsigned nthreads; /* live, and being started */
    unsigned peak;     /* most threads running calls at once, ever */
    unsigned limit;
    bool closing;
    wf__pool_thread *zombie; /* exited, not yet joined */
    /* Calls running: raised under lock as a thread takes a job, lowered
     * (release) as soon as the call returns, before its completion, so a
     * fiber that got the outcome reads a count without its call. */
    _Atomic unsigned running;
    /* --- read-only after init --- */
    struct wf__pool *pool;
    unsigned index;
} wf__crew;

typedef struct wf__pool {
    wf__crew crews[WF__CREWS];
    int64_t idle_ns; /* < 0: never retire */
    /* Names in use (bit N: wf-pool-N), under names_lock. */
    wf__spinlock names_lock;
    uint64_t *names;
    unsigned names_words;
    /* Child processes not yet closed (process.c), under procs_lock: killed
     * and reaped by wf_run's end (wf__processes_destroy). */
    wf__spinlock procs_lock;
    wf__link procs;
    /* Process pools not yet closed (procpool.c), under procs_lock: closed
     * by wf_run's end (wf__procpools_destroy). */
    wf__link procpools;
    struct wf__runtime *rt;
} wf__pool;

/* wf_run's step 3: allocate the pool (no thread yet). 0 or -ENOMEM / -EINVAL
 * (a limit out of range; cfg was validated in step 1, so never in
 * practice). */
int wf__pool_create(struct wf__runtime *rt, const wf_config_t *cfg);
/* Step 12: close every crew and join every thread (waiting for calls still
 * running). No fiber may submit any more (every task has ended). */
void wf__pool_stop(wf__pool *p);
/* Step 13: free it. */
void wf__pool_destroy(wf__pool *p);

/* Step 13, before the poller goes: kill and reap the children of the
 * processes never closed, close their pipes, free them (process.c). */
void wf__processes_destroy(struct wf__runtime *rt);

/* The crew for a public class (WF_POOL_*), or NULL if out of range. */
wf__crew *wf__pool_crew(wf__pool *p, int cls);

/* Queue `j` on `c`, starting or waking a thread as needed (job.c's wait
 * calls it with the fiber's wait begun). 0, -ESHUTDOWN, or -EAGAIN when no
 * thread could be started and none is alive to take the job (then j is not
 * queued). */
int wf__crew_submit(wf__crew *c, wf__job *j);

/* Take `j` out of `c`'s queue if it has not started. true: withdrawn (it
 * will never run); false: a thread has taken it (RUNNING or DONE). */
bool wf__crew_withdraw(wf__crew *c, wf__job *j);

#endif
