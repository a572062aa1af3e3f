/* test_threads.c - every runtime thread carries a name: "wf-worker-N" for
 * each worker, "wf-poller" for the poller (as ps, top and gdb show them).
 * Read from /proc/self/task/ * /comm inside a running runtime. */
#include "common.h"

#include <dirent.h>
#include <fcntl.h>

typedef struct {
    unsigned workers;
    int poller;       /* threads named wf-poller */
    int worker[64];   /* threads named wf-worker-<i>, by i */
    int worker_extra; /* wf-worker-<i> with i out of range, or malformed */
} names;

static int read_names(names *n)
{
    memset(n->worker, 0, sizeof n->worker);
    n->poller = n->worker_extra = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* a thread that just ended */
        if (!fgets(comm, sizeof comm, f))
            comm[0] = 0;
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
        unsigned i;
        char tail;
        if (!strcmp(comm, "wf-poller"))
            n->poller++;
        else if (sscanf(comm, "wf-worker-%u%c", &i, &tail) == 1 && i < n->workers && i < 64)
            n->worker[i]++;
        else if (!strncmp(comm, "wf-worker", 9))
            n->worker_extra++;
    }
    closedir(d);
    return 0;
}

static int on_worker(void *arg, void **res)
{
    *res = (void *)(intptr_t)wf_worker_index();
    return 0;
}

static int m_names(void *arg, void **res)
{
    unsigned workers = (unsigned)(uintptr_t)arg;
    CHECK_EQ(wf_workers(), (int)workers);
    /* Each thread names itself first thing. A task pinned to worker i has
     * run once worker i's thread runs; the poller is named before wf_run
     * starts the workers (poller.c, wf__poller_start). A wait on a fresh
     * pipe's write end is through the poller's epoll. */
    for (unsigned i = 0; i < workers; i++) {
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.worker = (int)i;
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, on_worker, NULL, &o), 0);
        void *where = NULL;
        CHECK_EQ(wf_join(t, NULL, &where), 0);
        CHECK_EQ((intptr_t)where, (intptr_t)i);
    }
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(wf_wait_writable(p[1], wf_deadline_in(30 * WF_NSEC_PER_SEC)), 0);
    CHECK_EQ(wf_fd_close(p[0]), 0);
    CHECK_EQ(wf_fd_close(p[1]), 0);

    names n = {.workers = workers};
    CHECK_EQ(read_names(&n), 0);
    CHECK_EQ(n.poller, 1);
    for (unsigned i = 0; i < workers && i < 64; i++)
        CHECK_EQ(n.worker[i], 1);
    CHECK_EQ(n.worker_extra, 0);
    return 0;
}

static void test_names_1(void **state)
{
    run_main(1, m_names, (void *)(uintptr_t)1);
}

static void test_names_2(void **state)
{
    run_main(2, m_names, (void *)(uintptr_t)2);
}

static void test_names_12(void **state)
{
    /* Two-digit indices, and more workers than cores. */
    run_main(12, m_names, (void *)(uintptr_t)12);
}

/* Once wf_run has returned, no runtime thread is left. */
static void test_names_gone(void **state)
{
    names n = {.workers = 64};
    assert_int_equal(read_names(&n), 0);
    assert_int_equal(n.poller, 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(n.worker[i], 0);
    assert_int_equal(n.worker_extra, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_1),
        cmocka_unit_test(test_names_2),
        cmocka_unit_test(test_names_12),
        cmocka_unit_test(test_names_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
