/* procpool_test.h - what the process-pool tests share: the jobs they
 * register (every test binary registers them all before
 * wf_procpool_init(), in its main), a page shared with every worker, and
 * counts of the process's descriptors and children.
 *
 * SHARED PAGE. `shared` is mapped MAP_SHARED|MAP_ANONYMOUS before the
 * zygote is forked, so the zygote and every worker see the same page as
 * the parent: workers count their initializers there, and a test can tell
 * a worker when to go on. */
#ifndef WF_PROCPOOL_TEST_H
#define WF_PROCPOOL_TEST_H

#include "common.h"

#include <dirent.h>
#include <pthread.h>
#include <weft/procpool.h>

#include "pool/zygote.h"

/* Generous: only a broken pool waits this long. */
#define LONG_NS (60 * WF_NSEC_PER_SEC)

typedef struct shared_page {
    _Atomic long init_runs;   /* initializers run (init_flaky, init_ok) */
    _Atomic long flaky_fails; /* init_flaky fails this many times first */
    _Atomic long gate;        /* "wait_gate" jobs wait for it to be nonzero */
    _Atomic long in_gate;     /* jobs waiting at the gate */
    _Atomic long grandchild;  /* the pid the "fork_abort" job forked */
} shared_page;

extern shared_page *shared;

/* Register every test job, map the shared page, start the zygote: first
 * thing in main (asserts on failure). */
void procpool_test_setup(void);

static inline long fd_count(void)
{
    return count_dir("/proc/self/fd");
}

/* Children of this process (every thread's, zombies included), in pids[]
 * (up to max); the count. */
int children(int *pids, int max);

/* The process's descriptors and children, for before/after comparisons
 * (CHECKs: in fibers). */
typedef struct census {
    long fds;
    int kids;
} census;

static inline census take_census(void)
{
    census c = {fd_count(), children(NULL, 0)};
    return c;
}

static inline void same_census(census a)
{
    CHECK_EQ(fd_count(), a.fds);
    CHECK_EQ(children(NULL, 0), a.kids);
}

/* /proc/<pid>/status's Threads, or -1. */
int threads_of(int pid);

/* The zygote's threads: 1. Under TSan, 2: TSan's runtime starts its own
 * background thread in every child of fork() (checked with a plain
 * fork(): the child has it at once), so the zygote has it too; it is not
 * a thread of the program's (workers, cloned from the zygote's one
 * thread, have 1). */
#if defined(__SANITIZE_THREAD__)
#define ZYGOTE_THREADS 2
#else
#define ZYGOTE_THREADS 1
#endif

/* Whether /proc/<pid> exists (a zombie counts). */
bool pid_exists(int pid);

/* A pool with `workers` workers (eager) and defaults otherwise, warmed:
 * every worker ready. */
wf_procpool_t *open_pool(unsigned workers);

/* Run `job` on a 4-byte little-endian integer; the outcome's int (or the
 * negative status) in *out. */
int run_int(wf_procpool_t *p, const char *job, int32_t arg, int64_t deadline, int32_t *out);

/* The pid of a worker (job "pid"). */
int worker_pid(wf_procpool_t *p);

#endif
