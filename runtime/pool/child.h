/* child.h - a child process that the runtime waits for and reaps: the
 * pidfd-on-the-poller technique shared by subprocesses (process.c,
 * weft/process.h) and the process pool's workers (procpool.c,
 * weft/procpool.h).
 *
 * WAITING. A child's exit is learned through a pidfd waited on through the
 * poller (pidfd_open(2), Linux 5.3): it becomes readable when the child
 * has exited, before it is reaped. Where pidfd_open is missing (ENOSYS, or
 * EPERM from a seccomp filter), a pool thread of the child crew (pool.h's
 * WF__CREW_CHILD) blocks in waitid(WNOWAIT) for it instead, asyncio's
 * ThreadedChildWatcher; WF_NO_PIDFD=1 in the environment, read when the
 * child is adopted, forces that. Neither uses SIGCHLD, which stays the
 * program's (a waitpid(-1) elsewhere in the program would steal the
 * status: the child is then reported as killed by an unknown cause, -1).
 *
 * REAPING. Exactly one party reaps a child, always under c->lock after the
 * child is known to have exited (the pidfd readable, or the pool thread's
 * waitid returned): waitpid(pid, WNOHANG). So `reaped` is exact under the
 * lock, and kill(2) under the same lock never reaches a reused pid
 * (pidfd_send_signal needs no such care). A child nobody will wait for is
 * killed and handed to the child crew, where a pool thread blocks in
 * waitpid until it is gone (wf__child_reap_later): no zombie remains, and
 * the fiber never waits. wf_run's own thread reaps what is left at its end
 * (wf__child_reap_now).
 *
 * EXIT STATUS, as asyncio's returncode: the exit code (0 to 255), or minus
 * the number of the signal that killed the child (-9 after SIGKILL).
 */
#ifndef WF_POOL_CHILD_H
#define WF_POOL_CHILD_H

#include "spinlock.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct wf__task;
struct wf__runtime;

typedef struct wf__child {
    pid_t pid;
    int pidfd; /* -1: wait through the child crew */
    wf__spinlock lock;
    bool reaped; /* under lock */
    int status;  /* the returncode, once reaped */
} wf__child;

/* Adopt `pid`, a child of this process that nobody has reaped: open its
 * pidfd (close-on-exec), or prepare to wait through the child crew. 0, or
 * pidfd_open's error other than ENOSYS and EPERM (then nothing is open and
 * the caller still owns the child). Never blocks. */
int wf__child_init(wf__child *c, pid_t pid);

/* Reap it if it has exited: true when reaped (now or before). Never
 * blocks; any thread. */
bool wf__child_try_reap(wf__child *c);

/* Fiber only: wait until the child has exited and reap it. 0 once reaped
 * (c->status is its returncode); -ETIMEDOUT, -ECANCELED (it runs on, not
 * reaped), -ENOMEM. One fiber at a time per child (the pidfd has one
 * reader slot on the poller). */
int wf__child_wait(struct wf__task *self, wf__child *c, int64_t deadline);

/* The returncode if reaped: true with *status. Any thread. */
bool wf__child_returncode(wf__child *c, int *status);

/* Send `signo` (0 <= signo < _NSIG, checked by the caller). 0; -ESRCH once
 * it has exited; kill(2)'s other errors. Never blocks; any thread. */
int wf__child_signal(wf__child *c, int signo);

/* Nobody will wait for the child: kill it (SIGKILL) unless reaped, and
 * have a pool thread of `rt`'s child crew reap it; where none can be had,
 * reap it here (a killed child goes quickly). Closes the pidfd. The
 * record may be freed afterwards. Never parks. */
void wf__child_reap_later(struct wf__runtime *rt, wf__child *c);

/* wf_run's end, every runtime thread stopped: kill (unless reaped) and
 * reap, blocking. Closes the pidfd. */
void wf__child_reap_now(wf__child *c);

/* Done with a reaped child: close its pidfd. */
void wf__child_release(wf__child *c);

/* The returncode of a wait status (waitpid's). */
int wf__child_returncode_of(int ws);

#endif
