/* test_proclife.c - a process pool's life (weft/procpool.h): the zygote
 * (forked before any thread, one thread, once per process, shared by two
 * runtimes in two threads); workers' and the zygote's descriptors from
 * /proc (none of the parent's sockets, listener, epoll, eventfds, pidfds);
 * max_jobs_per_worker; lazy and eager starts; the initializer; shutdown
 * waiting, cancelling, and past its deadline; a pool left open when
 * wf_run ends. Every fd and child of the process counted before and after.
 * The jobs themselves are in test_procpool.c, failures in
 * test_procfail.c. */
#include "procpool_test.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* Some jobs on a pool of 2: results right, nothing left. `arg` non-NULL:
 * another runtime runs beside (its pool's fds and children would be
 * counted too, so the process-wide census is the caller's). */
static int jobs_main(void *arg, void **res)
{
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    for (int32_t i = 0; i < SCALED(2000); i++) {
        int32_t v = 0;
        CHECK_EQ(run_int(p, "add1", i, wf_deadline_in(LONG_NS), &v), 0);
        CHECK_EQ(v, i + 1);
    }
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    if (!arg)
        same_census(c0);
    return 0;
}

/* --- worker lifetime: max jobs, lazy start, initializer ------------------------------------- */

static int recycle_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_opts_t o;
    wf_procpool_opts_init(&o);
    o.workers = 1;
    o.max_jobs_per_worker = 3;
    wf_procpool_t *p;
    CHECK_EQ(wf_procpool_open(&p, &o), 0);
    int pids[9];
    for (int i = 0; i < 9; i++)
        pids[i] = worker_pid(p);
    for (int i = 0; i < 9; i++) {
        CHECK(pids[i] > 0);
        /* A new worker every three jobs. */
        if (i % 3)
            CHECK_EQ(pids[i], pids[i - 1]);
        else if (i)
            CHECK(pids[i] != pids[i - 1]);
    }
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_warm(p, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.recycled, 3);
    CHECK_EQ(s.starts, 4);
    CHECK_EQ(s.crashes + s.kills, 0);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_recycle(void **state)
{
    (void)state;
    run_main(2, recycle_main, NULL);
}

static int lazy_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_opts_t o;
    wf_procpool_opts_init(&o);
    o.workers = 4;
    wf_procpool_t *p;
    CHECK_EQ(wf_procpool_open(&p, &o), 0);
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.starts, 0); /* nothing before the first job */
    CHECK_EQ(s.ready, 0);
    CHECK_EQ(c0.kids, children(NULL, 0));
    /* One job at a time needs one worker. */
    for (int i = 0; i < 5; i++)
        CHECK(worker_pid(p) > 0);
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.starts, 1);
    CHECK_EQ(s.ready, 1);
    /* Warm starts the others. */
    CHECK_EQ(wf_procpool_warm(p, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.ready, 4);
    CHECK_EQ(s.starts, 4);
    CHECK_EQ(children(NULL, 0), c0.kids + 4);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_lazy(void **state)
{
    (void)state;
    run_main(2, lazy_main, NULL);
}

static int init_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    long runs0 = atomic_load(&shared->init_runs);
    wf_procpool_opts_t o;
    wf_procpool_opts_init(&o);
    o.workers = 3;
    o.eager = true;
    o.initializer = "init_ok";
    int32_t iv = 1234;
    o.init_input = &iv;
    o.init_len = sizeof iv;
    wf_procpool_t *p;
    CHECK_EQ(wf_procpool_open(&p, &o), 0);
    iv = 0; /* copied at open */
    CHECK_EQ(wf_procpool_warm(p, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(atomic_load(&shared->init_runs) - runs0, 3); /* once per worker */
    for (int i = 0; i < 6; i++) {
        int32_t v = 0;
        CHECK_EQ(run_int(p, "init_value", 0, WF_FOREVER, &v), 0);
        CHECK_EQ(v, 1234);
    }
    CHECK_EQ(atomic_load(&shared->init_runs) - runs0, 3);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    /* Unknown initializer; bad options. */
    o.initializer = "nope";
    CHECK_EQ(wf_procpool_open(&p, &o), -ENOENT);
    o.initializer = NULL;
    o.workers = 1025;
    CHECK_EQ(wf_procpool_open(&p, &o), -EINVAL);
    o.workers = 1;
    o.start_timeout = -1;
    CHECK_EQ(wf_procpool_open(&p, &o), -EINVAL);
    o.start_timeout = 0;
    o.init_input = NULL;
    o.init_len = 3;
    CHECK_EQ(wf_procpool_open(&p, &o), -EINVAL);
    CHECK_EQ(wf_procpool_open(NULL, NULL), -EINVAL);
    same_census(c0);
    return 0;
}

static void test_init(void **state)
{
    (void)state;
    run_main(2, init_main, NULL);
}

/* --- shutdown ----------------------------------------------------------------------------- */

typedef struct {
    wf_procpool_t *p;
    int32_t ms;
    int e;
    int32_t v;
} job_ctx;

static int sleep_task(void *arg, void **res)
{
    (void)res;
    job_ctx *j = arg;
    j->e = run_int(j->p, "sleep", j->ms, WF_FOREVER, &j->v);
    return 0;
}

static int shutdown_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    /* WAIT: four jobs on two workers (two running, two waiting) all end. */
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    job_ctx j[4];
    wf_task_t t[4];
    for (int i = 0; i < 4; i++) {
        j[i] = (job_ctx){.p = p, .ms = 50 + i, .e = 1};
        CHECK_EQ(wf_spawn(&t[i], sleep_task, &j[i], NULL), 0);
    }
    wf_procpool_stats_t s;
    int64_t until = wf_deadline_in(LONG_NS);
    do {
        wf_sleep(WF_NSEC_PER_MSEC);
        wf_procpool_stats(p, &s);
    } while ((s.idle > 0 || s.waiting < 2) && wf_now() < until);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
        CHECK_EQ(j[i].e, 0);
        CHECK_EQ(j[i].v, 50 + i);
    }
    same_census(c0);

    /* CANCEL: running jobs killed, waiting ones refused, all -ESHUTDOWN,
     * at once (they would sleep a minute). */
    p = open_pool(2);
    if (!p)
        return 0;
    for (int i = 0; i < 4; i++) {
        j[i] = (job_ctx){.p = p, .ms = 60000, .e = 1};
        CHECK_EQ(wf_spawn(&t[i], sleep_task, &j[i], NULL), 0);
    }
    until = wf_deadline_in(LONG_NS);
    do {
        wf_sleep(WF_NSEC_PER_MSEC);
        wf_procpool_stats(p, &s);
    } while ((s.idle > 0 || s.waiting < 2) && wf_now() < until);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_CANCEL, WF_FOREVER), 0);
    CHECK(wf_now() - t0 < 10 * WF_NSEC_PER_SEC);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
        CHECK_EQ(j[i].e, -ESHUTDOWN);
    }
    same_census(c0);

    /* WAIT with a deadline: past it, as CANCEL, and -ETIMEDOUT. */
    p = open_pool(1);
    if (!p)
        return 0;
    j[0] = (job_ctx){.p = p, .ms = 60000, .e = 1};
    CHECK_EQ(wf_spawn(&t[0], sleep_task, &j[0], NULL), 0);
    until = wf_deadline_in(LONG_NS);
    do {
        wf_sleep(WF_NSEC_PER_MSEC);
        wf_procpool_stats(p, &s);
    } while (s.idle > 0 && wf_now() < until);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, wf_deadline_in(50 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK_EQ(wf_join(t[0], NULL, NULL), 0);
    CHECK_EQ(j[0].e, -ESHUTDOWN);
    same_census(c0);

    /* Bad arguments change nothing. */
    p = open_pool(1);
    if (!p)
        return 0;
    CHECK_EQ(wf_procpool_close(p, 0, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, -5), -EINVAL);
    CHECK_EQ(wf_procpool_close(NULL, WF_PROCPOOL_WAIT, WF_FOREVER), -EINVAL);
    int32_t v = 0;
    CHECK_EQ(run_int(p, "add1", 1, WF_FOREVER, &v), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_CANCEL, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_shutdown(void **state)
{
    (void)state;
    run_main(2, shutdown_main, NULL);
}

/* A pool left open when wf_run ends: closed there, its busy worker
 * killed, nothing left. */
static int leftover_main(void *arg, void **res)
{
    (void)res;
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    *(int *)arg = worker_pid(p);
    static job_ctx j;
    j = (job_ctx){.p = p, .ms = 60000, .e = 1};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, sleep_task, &j, NULL), 0);
    CHECK_EQ(wf_detach(t), 0);
    wf_procpool_stats_t s;
    int64_t until = wf_deadline_in(LONG_NS);
    do {
        wf_sleep(WF_NSEC_PER_MSEC);
        wf_procpool_stats(p, &s);
    } while (s.idle > 1 && wf_now() < until);
    return 0;
}

static void test_leftover(void **state)
{
    (void)state;
    census c0 = take_census();
    int pid = 0;
    int64_t t0 = wf_now();
    run_main(2, leftover_main, &pid);
    assert_true(wf_now() - t0 < 30 * WF_NSEC_PER_SEC);
    assert_true(pid > 0);
    assert_false(pid_exists(pid));
    assert_int_equal(fd_count(), c0.fds);
    assert_int_equal(children(NULL, 0), c0.kids);
}

/* --- what a worker and the zygote hold --------------------------------------------------------- */

/* The (dev, inode) of each of the parent's descriptors. */
static int parent_files(struct stat *st, int max)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        if (n < max && stat(path, &st[n]) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* Check pid's descriptors: exactly 0, 1, 2 and (a worker) 3; none of them
 * the parent's except 1 and 2 (stdout, stderr); 0 is /dev/null. */
static void check_fds_of(int pid, const struct stat *pst, int pn)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d)
        return;
    int seen = 0;
    /* Under valgrind every process also holds valgrind's own descriptors,
     * which it keeps above the descriptor limit it shows the program. */
    struct rlimit rl;
    long limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : 1024;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd >= limit)
            continue;
        CHECK(fd >= 0 && fd <= 3);
        if (fd > 3)
            continue;
        seen |= 1 << fd;
        char path[600], link[300] = {0};
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        CHECK_EQ(stat(path, &st), 0);
        if (readlink(path, link, sizeof link - 1) < 0)
            link[0] = 0;
        if (fd == 0)
            CHECK(!strcmp(link, "/dev/null"));
        if (fd == 3)
            CHECK(!strncmp(link, "socket:", 7));
        /* 1 and 2 are the parent's stdout and stderr, and 0 may be the
         * same /dev/null as the parent's stdin; the rest never. */
        if (fd == 3) {
            for (int k = 0; k < pn; k++)
                CHECK(!(st.st_dev == pst[k].st_dev && st.st_ino == pst[k].st_ino));
        }
        /* Never an epoll, an eventfd, a pidfd, a signalfd or a listener. */
        CHECK(!strstr(link, "eventpoll") && !strstr(link, "eventfd") && !strstr(link, "pidfd") &&
              !strstr(link, "signalfd"));
    }
    closedir(d);
    CHECK_EQ(seen, 0xf);
}

static int fds_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    /* The parent holds sockets, a listener, its epoll and eventfds (the
     * runtime's), a pidfd per worker: none may reach a worker. */
    wf_sock_t *l = NULL, *a = NULL, *b = NULL;
    CHECK_EQ(wf_tcp_listen(&l, "127.0.0.1", 0, NULL), 0);
    CHECK_EQ(wf_socketpair(&a, &b, SOCK_STREAM), 0);
    int plain = open("/dev/zero", O_RDONLY); /* not close-on-exec */
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    struct stat pst[256];
    int pn = parent_files(pst, 256);
    CHECK(pn > 8);
    for (int i = 0; i < 4; i++) {
        int pid = worker_pid(p);
        CHECK(pid > 0);
        check_fds_of(pid, pst, pn);
        CHECK_EQ(threads_of(pid), 1);
    }
    int z = wf__zygote_pid();
    CHECK(z > 0);
    check_fds_of(z, pst, pn);
    CHECK_EQ(threads_of(z), ZYGOTE_THREADS);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    close(plain);
    wf_sock_close(l);
    wf_sock_close(a);
    wf_sock_close(b);
    return 0;
}

static void test_fds(void **state)
{
    (void)state;
    run_main(2, fds_main, NULL);
}

/* The zygote was started before any thread: it has one, and it is this
 * process's child from before the first runtime. */
static void test_zygote(void **state)
{
    (void)state;
    pid_t z = wf__zygote_pid();
    assert_true(z > 0);
    assert_int_equal(threads_of(z), ZYGOTE_THREADS);
    int kids[64];
    int n = children(kids, 64);
    bool found = false;
    for (int i = 0; i < n && i < 64; i++)
        found |= kids[i] == z;
    assert_true(found);
    /* Once per process: again is a no-op, registering is over. */
    assert_int_equal(wf_procpool_init(), 0);
    assert_int_equal(wf__zygote_pid(), z);
    assert_int_equal(wf_procpool_register("late", (wf_procjob_fn)NULL), -EINVAL);
    assert_int_equal(wf_procpool_register("late2", (wf_procjob_fn)(uintptr_t)1), -EBUSY);
    /* wf_run with cfg.procpool finds it running. */
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 1;
    cfg.procpool = true;
    run_main_cfg(&cfg, jobs_main, NULL);
    assert_int_equal(wf__zygote_pid(), z);
}

/* Two runtimes in two threads, each with a pool: one zygote serves both. */
static void *runtime_thread(void *arg)
{
    (void)arg;
    run_main(1, jobs_main, arg);
    return NULL;
}

static void test_two_runtimes(void **state)
{
    (void)state;
    census c0 = take_census();
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, runtime_thread, (void *)1), 0);
    assert_int_equal(pthread_create(&b, NULL, runtime_thread, (void *)1), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(fd_count(), c0.fds);
    assert_int_equal(children(NULL, 0), c0.kids);
}

int main(void)
{
    procpool_test_setup();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zygote),   cmocka_unit_test(test_recycle),  cmocka_unit_test(test_lazy),
        cmocka_unit_test(test_init),     cmocka_unit_test(test_shutdown), cmocka_unit_test(test_leftover),
        cmocka_unit_test(test_fds),      cmocka_unit_test(test_two_runtimes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
