/* pool_test.h - helpers shared by the thread-pool tests.
 *
 * A "gate" is a future used as an event that blocking calls on pool
 * threads wait for (a plain thread may wait on a future: it blocks on its
 * state word), so a test decides when a call returns instead of guessing
 * at sleeps. Counting fds and threads of the process before and after a
 * runtime checks that nothing leaks.
 */
#ifndef WF_POOL_TEST_H
#define WF_POOL_TEST_H

#include "common.h"

#include <dirent.h>
#include <pthread.h>
#include <weft/pool.h>

/* Generous: only a broken runtime waits this long. */
#define LONG_NS (30 * WF_NSEC_PER_SEC)

static inline long fd_count(void)
{
    return count_dir("/proc/self/fd");
}

static inline long thread_count(void)
{
    return count_dir("/proc/self/task");
}

/* Threads of this process whose name starts with `prefix`. */
static inline int threads_named(const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f) && !strncmp(comm, prefix, strlen(prefix)))
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* A group setup for cmocka: one runtime that makes a pool call first, so
 * that what libc, cmocka and the sanitizers make lazily (TSan's
 * background thread, stdio buffers) exists before anything is counted. */
static int warm_call(void *arg, void **res)
{
    return 0;
}

static int warm_main(void *arg, void **res)
{
    return wf_to_thread(warm_call, NULL, NULL, NULL);
}

static inline int warm_up(void **state)
{
    (void)state;
    return wf_run(NULL, warm_main, NULL, NULL, NULL);
}

/* Run `fn` as main with `cfg` (NULL: defaults with `workers`), and check
 * that the process has the same fds and threads afterwards. */
static inline void run_counted(const wf_config_t *cfg, unsigned workers, wf_fn fn, void *arg)
{
    long fds = fd_count(), threads = thread_count();
    if (cfg)
        run_main_cfg(cfg, fn, arg);
    else
        run_main(workers, fn, arg);
    assert_int_equal(fd_count(), fds);
    assert_int_equal(thread_count(), threads);
}

/* A blocking call (runs on a pool thread) that waits for the future in
 * `arg` to be set. */
static inline int wait_gate(void *arg, void **res)
{
    int st = 0;
    int r = wf_future_wait((wf_future_t *)arg, wf_deadline_in(LONG_NS), &st, NULL);
    *res = arg;
    return r < 0 ? r : st;
}

#endif
