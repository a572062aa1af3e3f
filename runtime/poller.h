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
 *   - While every worker sleeps, the poller thread watches the epoll: it
 *     sleeps in a private epoll of its own that holds its eventfd and the
 *     hub's epoll as one more file, registered EPOLLONESHOT ("the watch").
 *     The first readiness event makes the hub's epoll readable, which
 *     wakes the poller once; it wakes one sleeping worker (a futex), which
 *     harvests the events itself into its own ring, as a worker out of
 *     work always does, and wakes one more worker per 8 tasks it found.
 *     The poller makes no epoll_wait on the hub and touches no fd record
 *     here: the hand-off costs one futex wake-up, and the tasks start on
 *     the worker that harvested them (no inject queue).
 *   - While workers are awake the watch is not armed, so readiness events
 *     do not wake the poller (nor does it steal them from the workers); it
 *     sleeps for its timers and sysmon only, and on each sysmon round (at
 *     most every WF__SYSMON_NS) harvests the epoll itself, without
 *     blocking, so events cannot wait longer than that for workers stuck
 *     in long fibers (Go's sysmon polls the network when nobody has for
 *     10 ms).
 * Arming is an epoll_ctl(EPOLL_CTL_MOD) of the watch, made by the last
 * worker to park, instead of waking the poller to decide (that cost one
 * more context switch per idle period: an eventfd kick, the poller waking
 * to look, then waking again for the event). If events are ready already,
 * the kernel reports the watch at once. The one shot is spent by the
 * report; the poller, after a round in which the watch fired, looks at the
 * idle state and re-arms it itself if every worker is still parked. That
 * look and the last parker's arming form a Dekker pair: the worker's idle
 * RMW (seq_cst) comes before its epoll_ctl (a full barrier in the kernel),
 * the poller's epoll calls before its seq_cst load of the idle state;
 * either the poller sees every worker parked and arms, or the worker arms
 * after the report was spent. Arming twice is harmless.
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
    uint64_t watches;  /* of which, woken by the watch (all parked) */
    uint64_t events;   /* fd events it dispatched (watching or sysmon) */
} wf__poller_stats;

typedef struct wf__poller {
    wf__pollhub *hub; /* the runtime's epoll and fd records (pollfd.h) */
    int ctl_epfd;     /* the private epoll: only evfd (sleeps while workers run) */
    int evfd;         /* kicks; registered in both epolls */
    pthread_t thread;
    bool started;
    _Atomic uint32_t running; /* futex: the thread has named itself and runs */
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
 * fence): arm the watch if anything is registered (the Dekker pair at the
 * top of this header). */
void wf__poller_watch_io(wf__poller *p);

/* For tests: 1 if the calling thread's runtime's poller sleeps in
 * epoll_pwait2, 0 if it uses the epoll_pwait fallback, -EPERM outside a
 * runtime thread. */
int wf__poller_uses_pwait2(void);

#endif
