/* poller.h - the poller thread: the runtime's timekeeper while workers
 * sleep, its sysmon, and the one thread that blocks in the runtime's epoll
 * (pollfd.h) -- but only while every worker sleeps.
 *
 * WHO TURNS I/O EVENTS INTO WAKE-UPS. Readiness events wait in the kernel's
 * ready list of the hub's epoll until somebody asks for them:
 *   - While any worker is awake, the workers do: a worker out of work
 *     harvests the epoll without blocking before it searches peers or
 *     parks, and every worker harvests on its fairness tick (every 61
 *     scheduling ticks, tokio's event_interval) even when busy. A harvested
 *     task goes to the harvesting worker's own ring: no thread hop, no
 *     futex, no inject queue (sched.c, find_task).
 *   - While every worker sleeps, the poller thread blocks in the epoll
 *     ("watching"), turns what it gets into one batch for the inject queue,
 *     and wakes as many workers as the batch has tasks (and are asleep).
 *   - While workers are awake the poller does not block in the epoll: it
 *     sleeps on a private epoll that holds only its eventfd (so it is not
 *     woken by every readiness event and does not steal events from the
 *     workers), and on each sysmon round (at most every WF__SYSMON_NS)
 *     harvests the epoll itself, without blocking, so events cannot wait
 *     longer than that for workers stuck in long fibers (Go's sysmon polls
 *     the network when nobody has for 10 ms).
 * The hand-over between the two is a Dekker pair (seq_cst on both sides):
 * the poller stores watching = false, then loads the idle state (idle.h);
 * the last worker to park makes the idle state say "all parked" (an RMW),
 * then loads `watching`, and kicks the poller (eventfd) if it is false.
 * Either the poller sees every worker parked and watches, or that worker
 * sees the poller not watching and kicks it, which makes it look again.
 *
 * TIMEKEEPING. The poller sleeps until the earliest deadline among the
 * wheels of parked workers and its own wheel (timers armed from the poller
 * thread), and, while any worker is awake, at most WF__SYSMON_NS, to fire
 * the timers of a worker stuck in one long fiber. A worker about to park
 * kicks the poller (eventfd) if its own earliest deadline is before the
 * poller's planned wake-up. Callback timers (wf_timer_start) fired by the
 * poller run on its thread: a slow callback delays the poller's other
 * duties (other timers, the watch while every worker sleeps), which is why
 * time.h asks callbacks to be short and to spawn a task for real work.
 *
 * SLEEPING. The poller sleeps in epoll_pwait2 (nanosecond timeouts). Where
 * that system call is missing (kernels before 5.11, seccomp filters that
 * refuse it, valgrind 3.19) it fails with ENOSYS or EPERM: the poller falls
 * back to epoll_pwait with its timeout in milliseconds, rounded up so that
 * no timer fires early, and remembers it for the rest of the process.
 * WF_POLLER_NO_PWAIT2=1 in the environment (read at each wf_run's start)
 * forces the fallback.
 */
#ifndef WF_POLLER_H
#define WF_POLLER_H

#include "atomic.h"
#include "pollfd.h"
#include "task.h"
#include "timer.h"
#include <pthread.h>

#define WF__SYSMON_NS (10 * 1000 * 1000)

typedef struct wf__poller_stats {
    uint64_t rounds;   /* times the poller came back from a sleep */
    uint64_t watches;  /* of which, sleeps in the hub's epoll (all parked) */
    uint64_t events;   /* fd events it dispatched (watching or sysmon) */
} wf__poller_stats;

typedef struct wf__poller {
    wf__pollhub *hub; /* the runtime's epoll and fd records (pollfd.h) */
    int ctl_epfd;     /* the private epoll: only evfd (sleeps while workers run) */
    int evfd;         /* kicks; registered in both epolls */
    pthread_t thread;
    bool started;
    _Atomic bool stop;
    /* Whether the poller sleeps in epoll_pwait2 (else epoll_pwait, ms).
     * Set at init; cleared by the poller thread if the call turns out to be
     * missing. */
    _Atomic bool use_pwait2;
    /* When the poller plans to wake up next (ns; INT64_MAX: not before an
     * event). Lowered by kickers with CAS before they write the eventfd. */
    WF_ALIGNED_CL _Atomic int64_t wake_at;
    /* Set while the poller sleeps with no sysmon bound (every worker was
     * parked): a worker that wakes up then kicks it. */
    _Atomic bool deep_sleep;
    /* Set while the poller sleeps (or is about to) in the hub's epoll; the
     * Dekker pair with the last worker to park (top of this header). */
    _Atomic bool watching;
    wf__timers timers; /* wheel for timers armed on the poller thread */
    wf__poller_stats stats; /* poller thread only; read after it stopped */
    struct wf__runtime *rt;
} wf__poller;

int wf__poller_init(wf__poller *p, struct wf__runtime *rt);
int wf__poller_start(wf__poller *p);
void wf__poller_stop(wf__poller *p);
void wf__poller_destroy(wf__poller *p);

/* Make the poller wake up by `deadline` (recompute its plans). */
void wf__poller_kick_at(wf__poller *p, int64_t deadline);

/* The last worker to park calls this (after its idle RMW and a full
 * fence): make sure the poller watches the epoll if anything is registered
 * (the Dekker pair at the top of this header). */
void wf__poller_watch_io(wf__poller *p);

/* For tests: 1 if the calling thread's runtime's poller sleeps in
 * epoll_pwait2, 0 if it uses the epoll_pwait fallback, -EPERM outside a
 * runtime thread. */
int wf__poller_uses_pwait2(void);

#endif
