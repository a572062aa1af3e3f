/* test_procfail.c - the process pool when things go wrong: a job that
 * calls abort(), one that segfaults, one that exit(3)s, one that ends
 * without a reply, one that loops forever (deadline), one that hangs while
 * its caller is cancelled, each with its clear error while the pool keeps
 * serving; workers that send malformed, oversized, truncated frames, frames
 * for another job, descriptors where none belongs, unsealed or lying shared
 * memory (-EPROTO, nothing of them used, no descriptor leaked); outputs over
 * the limit; a failing, crashing, hanging and flaky initializer (no fork
 * loop); the storm: 1,000 jobs of which a random third crash, hang past a
 * deadline or are cancelled, mixed with good ones; a parent killed with
 * busy workers (no orphan left); wf_procpool_init() after a thread exists;
 * the zygote gone. Every fd and child counted before and after. The suite
 * runs again with WF_NO_PIDFD=1 (workers waited for by pool threads). */
#include "procpool_test.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

/* Wait until the pool has every worker ready again (replacements done). */
static void settle(wf_procpool_t *p)
{
    CHECK_EQ(wf_procpool_warm(p, wf_deadline_in(LONG_NS)), 0);
}

static void check_serves(wf_procpool_t *p)
{
    int32_t v = 0;
    CHECK_EQ(run_int(p, "add1", 99, wf_deadline_in(LONG_NS), &v), 0);
    CHECK_EQ(v, 100);
}

/* --- deaths -------------------------------------------------------------------- */

static int deaths_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    static const struct {
        const char *job;
        int32_t arg;
        int rc;
    } cases[] = {
        {"abort", 0, -SIGABRT},  {"segv", 0, -SIGSEGV},        {"exit", 3, 3},
        {"exit", 0, 0},          {"vanish", 0, 0},             {"kill_self", SIGTERM, -SIGTERM},
        {"kill_self", SIGKILL, -SIGKILL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wf_procres_t r;
        int32_t a = cases[i].arg;
        int e = wf_procpool_run(p, cases[i].job, &a, sizeof a, wf_deadline_in(LONG_NS), &r);
        CHECK_EQ(e, -ECHILD);
        if (r.returncode != cases[i].rc)
            fprintf(stderr, "job %s(%d): returncode %d, want %d\n", cases[i].job, a, r.returncode, cases[i].rc);
        CHECK_EQ(r.returncode, cases[i].rc);
        CHECK(r.out == NULL && r.len == 0 && r.status == 0);
        /* The pool keeps serving, at full size. */
        check_serves(p);
        settle(p);
    }
    /* A worker that dies while a child it forked holds its channel: no end
     * of file comes, and still the job fails at once with how it died. */
    wf_procres_t r;
    int64_t t0 = wf_now();
    CHECK_EQ(wf_procpool_run(p, "fork_abort", NULL, 0, wf_deadline_in(LONG_NS), &r), -ECHILD);
    CHECK_EQ(r.returncode, -SIGABRT);
    CHECK(wf_now() - t0 < 10 * WF_NSEC_PER_SEC);
    pid_t gc = (pid_t)atomic_load(&shared->grandchild);
    CHECK(gc > 0);
    if (gc > 0)
        kill(gc, SIGKILL); /* not ours to reap: init's */
    check_serves(p);
    settle(p);
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.crashes, 8);
    CHECK_EQ(s.kills, 0);
    CHECK_EQ(s.starts, 2 + 8);
    CHECK_EQ(s.ready, 2);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_deaths(void **state)
{
    (void)state;
    run_main(2, deaths_main, NULL);
}

/* --- stopped jobs: deadline, cancellation, timeout scope ---------------------------- */

typedef struct {
    wf_procpool_t *p;
    const char *job;
    int e;
} hang_ctx;

static int hang_task(void *arg, void **res)
{
    (void)res;
    hang_ctx *h = arg;
    int32_t v;
    h->e = run_int(h->p, h->job, 0, WF_FOREVER, &v);
    return 0;
}

static void wait_busy(wf_procpool_t *p, unsigned idle)
{
    wf_procpool_stats_t s;
    int64_t until = wf_deadline_in(LONG_NS);
    do {
        wf_sleep(WF_NSEC_PER_MSEC);
        wf_procpool_stats(p, &s);
    } while (s.idle > idle && wf_now() < until);
    CHECK_EQ(s.idle, idle);
}

static int stopped_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    /* A CPU loop past its deadline: -ETIMEDOUT, promptly. */
    int64_t dl = wf_deadline_in(200 * WF_NSEC_PER_MSEC);
    int32_t v;
    CHECK_EQ(run_int(p, "spin", 0, dl, &v), -ETIMEDOUT);
    CHECK(wf_now() - dl < 5 * WF_NSEC_PER_SEC);
    check_serves(p);
    settle(p);
    /* A hang whose caller is cancelled. */
    hang_ctx h = {.p = p, .job = "hang", .e = 1};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, hang_task, &h, NULL), 0);
    wait_busy(p, 1);
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(h.e, -ECANCELED);
    check_serves(p);
    /* A hang under a timeout scope. */
    wf_timeout_t tm;
    CHECK_EQ(wf_timeout_enter_in(&tm, 100 * WF_NSEC_PER_MSEC), 0);
    CHECK_EQ(run_int(p, "hang", 0, WF_FOREVER, &v), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&tm), 1);
    /* Deadline 0: tries at once, stops the job. */
    CHECK_EQ(run_int(p, "hang", 0, 0, &v), -ETIMEDOUT);
    settle(p);
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.kills, 4);
    CHECK_EQ(s.crashes, 0);
    CHECK_EQ(s.ready, 2);
    /* Every killed worker was reaped: the children are the pool's two. */
    CHECK_EQ(children(NULL, 0), c0.kids + 2);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_stopped(void **state)
{
    (void)state;
    run_main(2, stopped_main, NULL);
}

/* --- the wire: bad frames -------------------------------------------------------------- */

enum { BAD_KINDS = 13 }; /* procpool_common.c's job_bad */

static int frames_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(1);
    if (!p)
        return 0;
    for (int32_t k = 0; k < BAD_KINDS; k++) {
        long fds = fd_count();
        wf_procres_t r;
        int e = wf_procpool_run(p, "bad", &k, sizeof k, wf_deadline_in(LONG_NS), &r);
        if (e != -EPROTO)
            fprintf(stderr, "bad frame kind %d: %s\n", k, wf_strerror(e));
        CHECK_EQ(e, -EPROTO);
        CHECK(r.out == NULL && r.len == 0);
        settle(p);
        /* No descriptor that came with the frame was kept. */
        CHECK_EQ(fd_count(), fds);
        check_serves(p);
    }
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.kills, BAD_KINDS);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);

    /* Outputs over max_output, inline and shared. */
    wf_procpool_opts_t o;
    wf_procpool_opts_init(&o);
    o.workers = 1;
    o.max_output = 100;
    CHECK_EQ(wf_procpool_open(&p, &o), 0);
    int32_t n = 100;
    wf_procres_t r;
    CHECK_EQ(wf_procpool_run(p, "make", &n, sizeof n, WF_FOREVER, &r), 0);
    CHECK_EQ(r.len, 100);
    wf_procres_free(&r);
    n = 101;
    CHECK_EQ(wf_procpool_run(p, "make", &n, sizeof n, WF_FOREVER, &r), -EPROTO);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    o.max_output = 200 * 1024;
    CHECK_EQ(wf_procpool_open(&p, &o), 0);
    n = 200 * 1024;
    CHECK_EQ(wf_procpool_run(p, "make", &n, sizeof n, WF_FOREVER, &r), 0);
    wf_procres_free(&r);
    n = 200 * 1024 + 1;
    CHECK_EQ(wf_procpool_run(p, "make", &n, sizeof n, WF_FOREVER, &r), -EPROTO);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_frames(void **state)
{
    (void)state;
    run_main(2, frames_main, NULL);
}

/* --- initializers that fail ------------------------------------------------------------- */

static wf_procpool_t *open_init(unsigned workers, const char *init, int64_t start_timeout)
{
    wf_procpool_opts_t o;
    wf_procpool_opts_init(&o);
    o.workers = workers;
    o.eager = true;
    o.initializer = init;
    o.start_timeout = start_timeout;
    wf_procpool_t *p = NULL;
    CHECK_EQ(wf_procpool_open(&p, &o), 0);
    return p;
}

static int initfail_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    /* An initializer that returns an error: jobs fail with it, at once,
     * while the pool retries with a back-off instead of a fork loop. */
    long runs0 = atomic_load(&shared->init_runs);
    wf_procpool_t *p = open_init(2, "init_fail", 0);
    if (!p)
        return 0;
    CHECK_EQ(wf_procpool_warm(p, wf_deadline_in(LONG_NS)), -ENOEXEC);
    int64_t t0 = wf_now();
    long fails = 0;
    while (wf_now() - t0 < 300 * WF_NSEC_PER_MSEC) {
        wf_procres_t r;
        int e = wf_procpool_run(p, "add1", &fails, 4, wf_deadline_in(LONG_NS), &r);
        CHECK_EQ(e, -ENOEXEC);
        CHECK_EQ(r.status, -EACCES);
        CHECK_EQ(r.returncode, 0);
        fails++;
        wf_sleep(WF_NSEC_PER_MSEC);
    }
    CHECK(fails > 10);
    /* 300 ms of back-off (10, 20, 40, 80, 160 ms) allows about six starts
     * per slot; a fork loop would make thousands. */
    long runs = atomic_load(&shared->init_runs) - runs0;
    CHECK(runs >= 2);
    CHECK(runs <= 16);
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.start_failures, s.starts - s.starting);
    CHECK_EQ(s.ready, 0);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);

    /* An initializer that crashes: its worker's death is the report. */
    p = open_init(1, "init_crash", 0);
    if (!p)
        return 0;
    wf_procres_t r;
    CHECK_EQ(wf_procpool_run(p, "add1", &fails, 4, wf_deadline_in(LONG_NS), &r), -ENOEXEC);
    CHECK_EQ(r.returncode, -SIGABRT);
    CHECK_EQ(r.status, 0);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_CANCEL, WF_FOREVER), 0);
    same_census(c0);

    /* An initializer that hangs past the start timeout. */
    p = open_init(1, "hang", 100 * WF_NSEC_PER_MSEC);
    if (!p)
        return 0;
    CHECK_EQ(wf_procpool_run(p, "add1", &fails, 4, wf_deadline_in(LONG_NS), &r), -ENOEXEC);
    CHECK_EQ(r.status, -ETIMEDOUT);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_CANCEL, WF_FOREVER), 0);
    same_census(c0);

    /* A flaky one: three failures, then the pool recovers by itself. */
    atomic_store(&shared->flaky_fails, 3);
    p = open_init(1, "init_flaky", 0);
    if (!p)
        return 0;
    int64_t until = wf_deadline_in(LONG_NS);
    int e;
    int32_t v = 0;
    while ((e = run_int(p, "add1", 1, until, &v)) == -ENOEXEC && wf_now() < until)
        wf_sleep(5 * WF_NSEC_PER_MSEC);
    CHECK_EQ(e, 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.start_failures, 3);
    CHECK_EQ(s.ready, 1);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_initfail(void **state)
{
    (void)state;
    run_main(2, initfail_main, NULL);
}

/* --- the storm -------------------------------------------------------------------------------- */

#define STORM_JOBS SCALED(1000)
#define STORM_FIBERS 50

enum { GOOD, CRASH, HANG, CANCEL };

typedef struct {
    wf_procpool_t *p;
    _Atomic long next;
    _Atomic long n[4];     /* jobs of each kind */
    _Atomic long right[4]; /* ...whose outcome was the right one */
} storm_ctx;

typedef struct {
    wf_procpool_t *p;
    int e;
} cancel_ctx;

static int cancel_victim(void *arg, void **res)
{
    (void)res;
    cancel_ctx *c = arg;
    int32_t v;
    c->e = run_int(c->p, "hang", 0, WF_FOREVER, &v);
    return 0;
}

static int storm_fiber(void *arg, void **res)
{
    (void)res;
    storm_ctx *c = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&seed;
    long i;
    while ((i = atomic_fetch_add(&c->next, 1)) < STORM_JOBS) {
        uint64_t x = test_rand(&seed);
        /* A random third bad: crash, hang past a deadline, cancelled. */
        int kind = x % 3 ? GOOD : (int)(1 + (x / 3) % 3);
        atomic_fetch_add(&c->n[kind], 1);
        bool right = false;
        if (kind == GOOD) {
            unsigned char in[64];
            size_t n = (size_t)(x >> 8) % sizeof in;
            for (size_t k = 0; k < n; k++)
                in[k] = (unsigned char)(i + (long)k);
            wf_procres_t r;
            int e = wf_procpool_run(c->p, "echo", in, n, wf_deadline_in(LONG_NS), &r);
            right = e == 0 && r.status == 0 && r.len == n && (n == 0 || !memcmp(r.out, in, n));
            if (!right)
                fprintf(stderr, "storm good job: %s, len %zu of %zu\n", wf_strerror(e), r.len, n);
            wf_procres_free(&r);
        } else if (kind == CRASH) {
            static const char *const jobs[] = {"abort", "segv", "exit"};
            static const int rcs[] = {-SIGABRT, -SIGSEGV, 7};
            int which = (int)((x >> 8) % 3);
            int32_t a = 7;
            wf_procres_t r;
            int e = wf_procpool_run(c->p, jobs[which], &a, sizeof a, wf_deadline_in(LONG_NS), &r);
            right = e == -ECHILD && r.returncode == rcs[which];
            if (!right)
                fprintf(stderr, "storm crash %s: %s, returncode %d\n", jobs[which], wf_strerror(e), r.returncode);
        } else if (kind == HANG) {
            int32_t v;
            int e = run_int(c->p, "hang", 0, wf_deadline_in((20 + (int64_t)((x >> 8) % 60)) * WF_NSEC_PER_MSEC), &v);
            right = e == -ETIMEDOUT;
            if (!right)
                fprintf(stderr, "storm hang: %s\n", wf_strerror(e));
        } else {
            cancel_ctx cc = {.p = c->p, .e = 1};
            wf_task_t t;
            CHECK_EQ(wf_spawn(&t, cancel_victim, &cc, NULL), 0);
            /* Cancelled while waiting for a worker or while running. */
            wf_sleep((int64_t)((x >> 8) % 20) * WF_NSEC_PER_MSEC);
            CHECK_EQ(wf_cancel(t), 0);
            int st = 0;
            CHECK_EQ(wf_join(t, &st, NULL), 0);
            /* Stopped in its job, or cancelled before its body ran. */
            right = cc.e == -ECANCELED || (cc.e == 1 && st == -ECANCELED);
            if (!right)
                fprintf(stderr, "storm cancel: %s\n", wf_strerror(cc.e));
        }
        if (right)
            atomic_fetch_add(&c->right[kind], 1);
    }
    return 0;
}

static int storm_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    storm_ctx c = {.p = open_pool(4)};
    if (!c.p)
        return 0;
    atomic_init(&c.next, 0);
    wf_task_t t[STORM_FIBERS];
    for (int i = 0; i < STORM_FIBERS; i++)
        CHECK_EQ(wf_spawn(&t[i], storm_fiber, &c, NULL), 0);
    for (int i = 0; i < STORM_FIBERS; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    long total = 0;
    for (int k = 0; k < 4; k++) {
        CHECK_EQ(atomic_load(&c.right[k]), atomic_load(&c.n[k]));
        total += atomic_load(&c.n[k]);
    }
    CHECK_EQ(total, STORM_JOBS);
    /* Afterwards: full size, every death counted, no zombie. */
    settle(c.p);
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_stats(c.p, &s), 0);
    CHECK_EQ(s.ready, 4);
    CHECK_EQ(s.idle, 4);
    CHECK_EQ(s.jobs, atomic_load(&c.n[GOOD]));
    CHECK_EQ(s.crashes, atomic_load(&c.n[CRASH]));
    /* A hang or a cancellation kills its worker if it had one (it may
     * have timed out or been cancelled while waiting for a worker). */
    CHECK(s.kills <= (uint64_t)(atomic_load(&c.n[HANG]) + atomic_load(&c.n[CANCEL])));
    CHECK_EQ(s.starts, 4 + s.crashes + s.kills);
    CHECK_EQ(children(NULL, 0), c0.kids + 4);
    check_serves(c.p);
    CHECK_EQ(wf_procpool_close(c.p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr, "storm: %ld good, %ld crashes, %ld hangs, %ld cancelled; %llu kills\n",
                atomic_load(&c.n[GOOD]), atomic_load(&c.n[CRASH]), atomic_load(&c.n[HANG]),
                atomic_load(&c.n[CANCEL]), (unsigned long long)s.kills);
    return 0;
}

static void test_storm(void **state)
{
    (void)state;
    run_main(0, storm_main, NULL);
}

/* --- processes of their own: a killed parent, a late init, a lost zygote -------------------- */

/* This test binary: argv[0] (under valgrind, /proc/self/exe would be
 * valgrind's tool). */
static const char *self_path = "/proc/self/exe";

/* Run this test binary with `mode`; its stdout into out (NUL-terminated);
 * returns the wait status. */
static int run_self(const char *mode, char *out, size_t cap, bool kill_after_line)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {"test_procfail", (char *)mode, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, self_path, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    size_t n = 0;
    for (;;) {
        struct pollfd pf = {.fd = fds[0], .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 60000), 1);
        ssize_t r = read(fds[0], out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = 0;
        if (kill_after_line && memchr(out, '\n', n)) {
            kill(pid, SIGKILL);
            break;
        }
    }
    out[n] = 0;
    close(fds[0]);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    return ws;
}

/* Wait (60 s at most) until process `pid`, not our child, has gone: its
 * pidfd becomes readable (or, without pidfd_open, as under valgrind 3.19,
 * /proc/<pid> goes away or shows a zombie). */
static bool gone(int pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, 60000);
        close(fd);
        return r == 1;
    }
    if (errno == ESRCH)
        return true;
    for (int ms = 0; ms < 60000; ms++) {
        char path[64], st[512] = {0};
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            return true;
        bool zombie = fgets(st, sizeof st, f) && strstr(st, ") Z ");
        fclose(f);
        if (zombie)
            return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* The parent is killed while its workers are busy (one in a CPU loop, one
 * hung): the zygote and every worker go too. */
static int orphan_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_procpool_t *p = open_pool(3);
    int pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = worker_pid(p);
    hang_ctx h1 = {.p = p, .job = "spin"}, h2 = {.p = p, .job = "hang"};
    wf_task_t t1, t2;
    wf_spawn(&t1, hang_task, &h1, NULL);
    wf_spawn(&t2, hang_task, &h2, NULL);
    wait_busy(p, 1);
    printf("%d %d %d %d\n", (int)wf__zygote_pid(), pids[0], pids[1], pids[2]);
    fflush(stdout);
    wf_sleep(LONG_NS);
    return 0;
}

static void test_orphans(void **state)
{
    (void)state;
    char out[256];
    int ws = run_self("--orphan", out, sizeof out, true);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    int pids[4];
    assert_int_equal(sscanf(out, "%d %d %d %d", &pids[0], &pids[1], &pids[2], &pids[3]), 4);
    for (int i = 0; i < 4; i++) {
        assert_true(pids[i] > 0);
        assert_true(gone(pids[i]));
    }
}

static void *idle_thread(void *arg)
{
    (void)arg;
    pause();
    return NULL;
}

static int late_open_main(void *arg, void **res)
{
    (void)res;
    wf_procpool_t *p;
    *(int *)arg = wf_procpool_open(&p, NULL);
    return 0;
}

/* In a fresh process that has started a thread: the init refuses, and so
 * do wf_run under cfg.procpool and wf_procpool_open. Prints the codes. */
static int late_child(void)
{
    pthread_t t;
    pthread_create(&t, NULL, idle_thread, NULL);
    int e1 = wf_procpool_init();
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.procpool = true;
    int e3 = 1;
    int e2 = wf_run(&cfg, late_open_main, &e3, NULL, NULL);
    cfg.procpool = false;
    int e4 = wf_run(&cfg, late_open_main, &e3, NULL, NULL);
    printf("%d %d %d %d\n", e1, e2, e4, e3);
    return 0;
}

static void test_late_init(void **state)
{
    (void)state;
    char out[256];
    int ws = run_self("--late", out, sizeof out, false);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    int e[4];
    assert_int_equal(sscanf(out, "%d %d %d %d", &e[0], &e[1], &e[2], &e[3]), 4);
    assert_int_equal(e[0], -EBUSY);
    assert_int_equal(e[1], -EBUSY);
    assert_int_equal(e[2], 0);
    assert_int_equal(e[3], -ENOTSUP);
}

/* The zygote killed: workers already made go on serving; new ones cannot
 * be made (-ENOEXEC, status -EPIPE); nothing hangs. */
static int lost_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_procpool_t *p = open_pool(1);
    int32_t v = 0;
    int ok1 = run_int(p, "add1", 1, wf_deadline_in(LONG_NS), &v) == 0 && v == 2;
    pid_t z = wf__zygote_pid();
    kill(z, SIGKILL);
    int ok2 = run_int(p, "add1", 2, wf_deadline_in(LONG_NS), &v) == 0 && v == 3;
    wf_procres_t r;
    int e = wf_procpool_run(p, "abort", NULL, 0, wf_deadline_in(LONG_NS), &r);
    int e2 = wf_procpool_run(p, "add1", &v, 4, wf_deadline_in(LONG_NS), &r);
    printf("%d %d %d %d %d\n", ok1, ok2, e, e2, r.status);
    wf_procpool_close(p, WF_PROCPOOL_CANCEL, WF_FOREVER);
    return 0;
}

static void test_zygote_lost(void **state)
{
    (void)state;
    char out[256];
    int ws = run_self("--lost", out, sizeof out, false);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    int v[5];
    assert_int_equal(sscanf(out, "%d %d %d %d %d", &v[0], &v[1], &v[2], &v[3], &v[4]), 5);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 1);
    assert_int_equal(v[2], -ECHILD);
    assert_int_equal(v[3], -ENOEXEC);
    assert_int_equal(v[4], -EPIPE);
}

/* A program that started with stdin and stderr closed: the zygote's
 * channel took one of their numbers; no worker may have it there (a job
 * writing to stderr would write into its channel). */
static int closed_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_procpool_t *p = open_pool(1);
    int pid = worker_pid(p);
    int ok = pid > 0;
    for (int fd = 0; fd < 3 && ok; fd++) {
        char path[64], link[256] = {0};
        snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
        ok = readlink(path, link, sizeof link - 1) > 0 && (fd == 1 || !strcmp(link, "/dev/null"));
    }
    int32_t v = 0;
    ok = ok && run_int(p, "add1", 5, wf_deadline_in(LONG_NS), &v) == 0 && v == 6;
    wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER);
    printf("%s\n", ok ? "ok" : "bad");
    return 0;
}

static void test_closed_stdio(void **state)
{
    (void)state;
    char out[256];
    int ws = run_self("--closed-stdio", out, sizeof out, false);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_string_equal(out, "ok\n");
}

int main(int argc, char **argv)
{
    if (strchr(argv[0], '/'))
        self_path = argv[0];
    if (argc > 1 && !strcmp(argv[1], "--late"))
        return late_child();
    if (argc > 1 && !strcmp(argv[1], "--closed-stdio")) {
        close(0);
        close(2);
        procpool_test_setup();
        int st = 0;
        return wf_run(NULL, closed_main, NULL, &st, NULL) ? 1 : 0;
    }
    procpool_test_setup();
    if (argc > 1 && !strcmp(argv[1], "--orphan")) {
        int st = 0;
        return wf_run(NULL, orphan_main, NULL, &st, NULL) ? 1 : 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--lost")) {
        int st = 0;
        return wf_run(NULL, lost_main, NULL, &st, NULL) ? 1 : 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deaths),   cmocka_unit_test(test_stopped),    cmocka_unit_test(test_frames),
        cmocka_unit_test(test_initfail), cmocka_unit_test(test_storm),      cmocka_unit_test(test_orphans),
        cmocka_unit_test(test_late_init), cmocka_unit_test(test_zygote_lost), cmocka_unit_test(test_closed_stdio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
