/* poller.h - the poller thread: one epoll instance for the whole runtime,
 * and the runtime's timekeeper while workers sleep.
 *
 * Each fd gets a record (struct wf__pollfd) the first time a task waits on
 * it, and is registered once, edge-triggered, for both directions. A record
 * holds readiness bits that an edge set while nobody waited, and at most one
 * reader and one writer wait node. The records live in a table indexed by
 * fd and are never freed while the runtime runs, so an event that races a
 * wf_fd_forget() lands on valid memory (and at worst causes one spurious
 * wake-up, which the try-first protocol absorbs).
 *
 * All tasks readied by one epoll_wait go to the inject queue in one batch,
 * and at most as many workers are woken as there are tasks.
 *
 * TIMEKEEPING. The poller sleeps until the earliest deadline among the
 * wheels of parked workers and its own wheel (timers armed from the poller
 * thread), and, while any worker is awake, at most WF__SYSMON_NS, to fire
 * the timers of a worker stuck in one long fiber. A worker about to park
 * kicks the poller (eventfd) if its own earliest deadline is before the
 * poller's planned wake-up.
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
#include "spinlock.h"
#include "task.h"
#include "timer.h"
#include <pthread.h>

#define WF__SYSMON_NS (10 * 1000 * 1000)
#define WF__FD_CHUNK_LOG2 10
#define WF__FD_CHUNK (1u << WF__FD_CHUNK_LOG2)
#define WF__FD_MAX_CHUNKS (1u << 14) /* fds below 2^24 */

enum { WF__POLL_READ = 1, WF__POLL_WRITE = 2 };

typedef struct wf__pollfd {
    wf__spinlock lock;
    int fd;
    bool registered;
    uint8_t ready; /* WF__POLL_* edges seen while nobody waited */
    wf__waitnode *waiter[2]; /* [0] reader, [1] writer */
} wf__pollfd;

typedef struct wf__poller {
    int epfd, evfd;
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
    _Atomic(wf__pollfd *) *fds;
    pthread_mutex_t fds_lock;
    wf__timers timers; /* wheel for timers armed on the poller thread */
    struct wf__runtime *rt;
} wf__poller;

int wf__poller_init(wf__poller *p, struct wf__runtime *rt);
int wf__poller_start(wf__poller *p);
void wf__poller_stop(wf__poller *p);
void wf__poller_destroy(wf__poller *p);

/* Make the poller wake up by `deadline` (recompute its plans). */
void wf__poller_kick_at(wf__poller *p, int64_t deadline);

/* Wait for direction `dir` of `fd`. Fiber only. Returns 0 or -errno. */
int wf__poller_wait(wf__poller *p, struct wf__task *self, int fd, unsigned dir, int64_t deadline);

/* Drop fd's registration and wake its waiters with -EBADF. */
int wf__poller_forget(wf__poller *p, int fd);

/* For tests: 1 if the calling thread's runtime's poller sleeps in
 * epoll_pwait2, 0 if it uses the epoll_pwait fallback, -EPERM outside a
 * runtime thread. */
int wf__poller_uses_pwait2(void);

#endif
