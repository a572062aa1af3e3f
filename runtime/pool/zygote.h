/* zygote.h - the process pool's registry of jobs and its zygote: the one
 * helper process, forked while the program has a single thread, that makes
 * every worker (weft/procpool.h, "THE ZYGOTE").
 *
 * ONCE PER PROCESS. The zygote is forked by wf_procpool_init() (or by
 * wf_run()'s step 2 under cfg.procpool), never by a runtime: two runtimes
 * in two threads share it, and a program with threads of its own calls
 * the init before starting them. wf_procpool_init() counts the threads of
 * the process and refuses (-EBUSY) when there is more than one: forking
 * then could copy a lock another thread holds. The registry of jobs is
 * frozen at that moment, so the parent, the zygote and every worker see
 * the same table (the zygote is a copy of the parent), and jobs are named
 * on the wire by their index in it.
 *
 * A WORKER, step by step:
 *   1. The parent (a pool thread: the exchange blocks) makes a socket pair
 *      for the worker's channel and sends one end to the zygote with a
 *      SPAWN request, under a process-wide mutex (requests and replies pair
 *      up in order on the one channel).
 *   2. The zygote clones itself with CLONE_PARENT, so the worker is a child
 *      of the parent process, which can wait for it through a pidfd and
 *      reap it like any child (child.h), and replies with its pid.
 *   3. The worker sets PR_SET_PDEATHSIG (and exits if the parent is already
 *      gone), moves its channel to fd 3 over the zygote's, closes every
 *      other fd but 0, 1 and 2, and waits for its INIT frame
 *      (procwire.h).
 *   4. The parent opens the worker's pidfd (no race with a reused pid: the
 *      worker is its unreaped child) and hands the channel to the pool.
 * The worker is a raw clone(2), not glibc's fork(): glibc's cached thread
 * id of the worker's main thread is still the zygote's (pthread mutexes
 * work, since the value is consistent within the process, and raise() and
 * abort() ask the kernel; but a job should not share priority-inheritance
 * or robust mutexes between threads it starts).
 */
#ifndef WF_POOL_ZYGOTE_H
#define WF_POOL_ZYGOTE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <weft/procpool.h>

/* The index of the job registered as `name`, or -ENOENT (-EINVAL for
 * NULL). Lock-free once the zygote runs (the table is frozen then). */
int wf__procjob_find(const char *name);

/* The job at `index` (0 <= index < count), or NULL. */
wf_procjob_fn wf__procjob_fn(int index);
int wf__procjob_count(void);

/* Has this process (not a copy from a fork) started the zygote? (It may
 * have died since: spawns then fail with -EPIPE.) Lock-free. */
bool wf__zygote_ready(void);

/* Step 1-2: have the zygote make a worker whose channel is `worker_end`
 * (the caller closes it afterwards). 0 with *pid, or -errno: -ENOTSUP no
 * zygote, -EPIPE the zygote has gone, -ETIMEDOUT it did not answer within
 * 30 s (it is then killed), clone(2)'s errors from the zygote (-EAGAIN,
 * -ENOMEM). Blocks: a pool thread's call. */
int wf__zygote_spawn(int worker_end, pid_t *pid);

/* The zygote's pid, or -ESRCH (tests). */
pid_t wf__zygote_pid(void);

/* Step 3, in the new worker (procworker.c): serve frames on fd `chan`
 * until end of file. Never returns. */
_Noreturn void wf__procworker_main(int chan);

/* In a worker: its channel's fd (elsewhere -1), and the number of the JOB
 * it runs (0 in the initializer): for tests that send bad frames on
 * purpose. */
int wf__procworker_channel(void);
uint32_t wf__procworker_job_id(void);

#endif
