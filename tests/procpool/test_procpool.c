/* test_procpool.c - the process pool (weft/procpool.h): results of
 * thousands of jobs from hundreds of fibers; inputs and outputs of 0, 1,
 * 64 KiB - 1, 64 KiB and 64 MiB bytes; a job's own status; submit, gather,
 * cancel and map; max_jobs_per_worker; lazy and eager pools; shutdown
 * waiting or cancelling; no zombie, no leaked fd after close (the
 * process's children and /proc/self/fd counted before and after); the
 * workers' and the zygote's descriptors and threads. Failures are in
 * test_procfail.c. */
#include "procpool_test.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* Children and fds of the process, for before/after comparisons. */
typedef struct {
    long fds;
    int kids;
} census;

static census take_census(void)
{
    census c = {fd_count(), children(NULL, 0)};
    return c;
}

static void same_census(census a)
{
    census b = take_census();
    CHECK_EQ(b.fds, a.fds);
    CHECK_EQ(b.kids, a.kids);
}

/* --- basics -------------------------------------------------------------------- */

static int basic_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(2);
    CHECK(p != NULL);
    if (!p)
        return 0;
    int32_t v = 0;
    CHECK_EQ(run_int(p, "add1", 41, WF_FOREVER, &v), 0);
    CHECK_EQ(v, 42);
    /* The job's own status, with its output. */
    wf_procres_t r;
    int32_t st = -EACCES;
    CHECK_EQ(wf_procpool_run(p, "status", &st, sizeof st, WF_FOREVER, &r), 0);
    CHECK_EQ(r.status, -EACCES);
    CHECK_EQ(r.len, 2);
    CHECK(r.out && !memcmp(r.out, "st", 2));
    wf_procres_free(&r);
    CHECK(r.out == NULL && r.len == 0);
    wf_procres_free(&r); /* again: harmless */
    /* A positive status is reported as -ERANGE. */
    st = 7;
    CHECK_EQ(wf_procpool_run(p, "status", &st, sizeof st, WF_FOREVER, &r), 0);
    CHECK_EQ(r.status, -ERANGE);
    wf_procres_free(&r);
    /* Unknown job, bad arguments. */
    CHECK_EQ(wf_procpool_run(p, "nope", NULL, 0, WF_FOREVER, &r), -ENOENT);
    CHECK_EQ(wf_procpool_run(p, "echo", NULL, 5, WF_FOREVER, &r), -EINVAL);
    CHECK_EQ(wf_procpool_run(p, "echo", NULL, 0, -2, &r), -EINVAL);
    CHECK_EQ(wf_procpool_run(NULL, "echo", NULL, 0, WF_FOREVER, &r), -EINVAL);
    CHECK_EQ(wf_procpool_run(p, "echo", NULL, 0, WF_FOREVER, NULL), -EINVAL);
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.workers, 2);
    CHECK_EQ(s.ready, 2);
    CHECK_EQ(s.jobs, 3);
    CHECK_EQ(s.crashes, 0);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_basic(void **state)
{
    (void)state;
    run_main(2, basic_main, NULL);
}

/* --- sizes: 0, 1, 64 KiB - 1, 64 KiB, 64 KiB + 1, 64 MiB ------------------------ */

static bool pattern_ok(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(i * 7 + 3))
            return false;
    return true;
}

static int sizes_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    const size_t sizes[] = {0, 1, 65535, 65536, 65537, 1 << 20, 64u << 20};
    unsigned char *buf = malloc(64u << 20);
    CHECK(buf != NULL);
    for (size_t i = 0; i < (64u << 20); i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        /* Echo: n bytes in, n bytes out. */
        wf_procres_t r;
        CHECK_EQ(wf_procpool_run(p, "echo", n ? buf : NULL, n, wf_deadline_in(LONG_NS), &r), 0);
        CHECK_EQ(r.status, 0);
        CHECK_EQ(r.len, n);
        CHECK(n == 0 ? r.out == NULL : (r.out && pattern_ok(r.out, n)));
        /* The result is the caller's, writable. */
        if (n)
            ((unsigned char *)r.out)[n - 1] ^= 1;
        wf_procres_free(&r);
        /* Hash: n bytes in, 16 out. */
        CHECK_EQ(wf_procpool_run(p, "hash", buf, n, wf_deadline_in(LONG_NS), &r), 0);
        CHECK_EQ(r.len, 16);
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 1099511628211ull;
        uint64_t got[2] = {0, 0};
        if (r.len == 16)
            memcpy(got, r.out, 16);
        CHECK(got[0] == h);
        CHECK_EQ(got[1], n);
        wf_procres_free(&r);
        /* Make: 4 bytes in, n out. */
        int32_t want = (int32_t)n;
        CHECK_EQ(wf_procpool_run(p, "make", &want, sizeof want, wf_deadline_in(LONG_NS), &r), 0);
        CHECK_EQ(r.len, n);
        CHECK(n == 0 || (r.out && pattern_ok(r.out, n)));
        wf_procres_free(&r);
    }
    free(buf);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_sizes(void **state)
{
    (void)state;
    run_main(2, sizes_main, NULL);
}

/* --- many jobs from many fibers ----------------------------------------------------- */

#define MANY_FIBERS SCALED(200)
#define MANY_PER SCALED(20)

typedef struct {
    wf_procpool_t *p;
    _Atomic long done;
    int id;
} many_ctx;

static int many_fiber(void *arg, void **res)
{
    (void)res;
    many_ctx *c = arg;
    int me = atomic_fetch_add(&c->done, 0) * 0; /* keep the compiler quiet */
    (void)me;
    uint64_t seed = (uint64_t)(uintptr_t)&me | 1;
    for (int i = 0; i < MANY_PER; i++) {
        /* A varying input: sizes from 0 to 300 bytes of varying content. */
        unsigned char in[300];
        size_t n = (size_t)(test_rand(&seed) % sizeof in);
        for (size_t k = 0; k < n; k++)
            in[k] = (unsigned char)test_rand(&seed);
        wf_procres_t r;
        int e = wf_procpool_run(c->p, "echo", in, n, wf_deadline_in(LONG_NS), &r);
        CHECK_EQ(e, 0);
        CHECK_EQ(r.len, n);
        CHECK(n == 0 || (r.out && !memcmp(r.out, in, n)));
        wf_procres_free(&r);
        int32_t v = 0;
        CHECK_EQ(run_int(c->p, "add1", (int32_t)(n + (size_t)i), wf_deadline_in(LONG_NS), &v), 0);
        CHECK_EQ(v, (int32_t)(n + (size_t)i) + 1);
    }
    atomic_fetch_add(&c->done, 1);
    return 0;
}

static int many_main(void *arg, void **res)
{
    (void)res;
    bool count = arg == NULL; /* not with another runtime beside */
    census c0 = take_census();
    many_ctx c = {.p = open_pool(3)};
    if (!c.p)
        return 0;
    atomic_init(&c.done, 0);
    wf_task_t *t = malloc(MANY_FIBERS * sizeof *t);
    for (int i = 0; i < MANY_FIBERS; i++)
        CHECK_EQ(wf_spawn(&t[i], many_fiber, &c, NULL), 0);
    for (int i = 0; i < MANY_FIBERS; i++) {
        int st = -1;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
    free(t);
    CHECK_EQ(atomic_load(&c.done), MANY_FIBERS);
    wf_procpool_stats_t s;
    CHECK_EQ(wf_procpool_stats(c.p, &s), 0);
    CHECK_EQ(s.jobs, 2 * MANY_FIBERS * MANY_PER);
    CHECK_EQ(s.starts, 3);
    CHECK_EQ(s.crashes + s.kills + s.recycled, 0);
    CHECK_EQ(wf_procpool_close(c.p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    if (count)
        same_census(c0);
    return 0;
}

static void test_many(void **state)
{
    (void)state;
    run_main(0, many_main, NULL);
}

/* --- submit, gather, cancel, map ------------------------------------------------------- */

static int submit_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    enum { N = 16 };
    wf_procres_t r[N];
    wf_task_t t[N];
    for (int32_t i = 0; i < N; i++) {
        int32_t in = i * 10;
        CHECK_EQ(wf_procpool_submit(p, "add1", &in, sizeof in, WF_FOREVER, &r[i], &t[i]), 0);
        in = -1; /* the input was copied */
    }
    wf_outcome_t out[N];
    CHECK_EQ(wf_gather(t, N, 0, WF_FOREVER, out, NULL), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(out[i].status, 0);
        CHECK(out[i].result == &r[i]);
        int32_t v = -1;
        if (r[i].len == 4)
            memcpy(&v, r[i].out, 4);
        CHECK_EQ(v, i * 10 + 1);
        wf_procres_free(&r[i]);
    }
    /* A submitted job cancelled while it runs: its worker is killed. */
    int32_t ms = 60000;
    wf_procres_t rs;
    wf_task_t ts;
    CHECK_EQ(wf_procpool_submit(p, "sleep", &ms, sizeof ms, WF_FOREVER, &rs, &ts), 0);
    /* Let it reach a worker: the pool's stats show it busy. */
    wf_procpool_stats_t s;
    int64_t until = wf_deadline_in(LONG_NS);
    do {
        wf_sleep(WF_NSEC_PER_MSEC);
        CHECK_EQ(wf_procpool_stats(p, &s), 0);
    } while (s.idle == 2 && wf_now() < until);
    CHECK_EQ(s.idle, 1);
    CHECK_EQ(wf_cancel(ts), 0);
    int st = 0;
    CHECK_EQ(wf_join_until(ts, wf_deadline_in(LONG_NS), &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    /* With a deadline, through wf_join_until. */
    CHECK_EQ(wf_procpool_submit(p, "sleep", &ms, sizeof ms, wf_deadline_in(50 * WF_NSEC_PER_MSEC), &rs, &ts), 0);
    CHECK_EQ(wf_join_until(ts, wf_deadline_in(LONG_NS), &st, NULL), 0);
    CHECK_EQ(st, -ETIMEDOUT);
    /* Cancelled before it ever runs: the outcome is zeroed, nothing leaks. */
    CHECK_EQ(wf_procpool_submit(p, "add1", &ms, sizeof ms, WF_FOREVER, &rs, &ts), 0);
    CHECK_EQ(wf_cancel(ts), 0);
    CHECK_EQ(wf_join(ts, &st, NULL), 0);
    CHECK(st == -ECANCELED || st == 0);
    wf_procres_free(&rs);
    /* Bad arguments: no task. */
    CHECK_EQ(wf_procpool_submit(p, "nope", NULL, 0, WF_FOREVER, &rs, &ts), -ENOENT);
    CHECK_EQ(wf_procpool_submit(p, "add1", NULL, 0, WF_FOREVER, &rs, NULL), -EINVAL);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_submit(void **state)
{
    (void)state;
    run_main(2, submit_main, NULL);
}

/* Jobs as tasks in the combinators: wait for the first to complete, and a
 * task group whose child's job crashes (the group cancels the siblings,
 * whose workers are killed). */
typedef struct {
    wf_procpool_t *p;
    const char *job;
    int32_t arg;
} grp_child;

static int grp_body(void *arg, void **res)
{
    (void)res;
    grp_child *c = arg;
    int32_t v;
    return run_int(c->p, c->job, c->arg, WF_FOREVER, &v);
}

static int combo_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(3);
    if (!p)
        return 0;
    /* asyncio.wait(FIRST_COMPLETED): a quick job beside two slow ones. */
    int32_t slow = 60000, quick = 1;
    wf_procres_t r[3];
    wf_task_t t[3];
    CHECK_EQ(wf_procpool_submit(p, "sleep", &slow, sizeof slow, WF_FOREVER, &r[0], &t[0]), 0);
    CHECK_EQ(wf_procpool_submit(p, "sleep", &quick, sizeof quick, WF_FOREVER, &r[1], &t[1]), 0);
    CHECK_EQ(wf_procpool_submit(p, "sleep", &slow, sizeof slow, WF_FOREVER, &r[2], &t[2]), 0);
    bool done[3];
    CHECK_EQ(wf_wait(t, 3, WF_FIRST_COMPLETED, wf_deadline_in(LONG_NS), done), 1);
    CHECK(!done[0] && done[1] && !done[2]);
    int st = -1;
    CHECK_EQ(wf_join(t[1], &st, NULL), 0);
    CHECK_EQ(st, 0);
    wf_procres_free(&r[1]);
    /* The pending ones are cancelled: their workers are killed. */
    CHECK_EQ(wf_cancel(t[0]), 0);
    CHECK_EQ(wf_cancel(t[2]), 0);
    CHECK_EQ(wf_join(t[0], &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_join(t[2], &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_procpool_warm(p, wf_deadline_in(LONG_NS)), 0);

    /* A task group: one child's job crashes, the group fails with it and
     * cancels the others, whose jobs are stopped. */
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    grp_child kids[3] = {{p, "sleep", 60000}, {p, "abort", 0}, {p, "sleep", 60000}};
    /* The sleepers first, so that they hold their workers. */
    CHECK_EQ(wf_group_spawn(&g, NULL, grp_body, &kids[0], NULL), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, grp_body, &kids[2], NULL), 0);
    wf_procpool_stats_t s;
    int64_t until = wf_deadline_in(LONG_NS);
    do {
        wf_sleep(WF_NSEC_PER_MSEC);
        wf_procpool_stats(p, &s);
    } while (s.idle > 1 && wf_now() < until);
    CHECK_EQ(wf_group_spawn(&g, NULL, grp_body, &kids[1], NULL), 0);
    wf_group_failure_t f[3];
    CHECK_EQ(wf_group_wait(&g, f, 3), 1);
    CHECK_EQ(f[0].status, -ECHILD);
    CHECK(f[0].arg == &kids[1]);
    CHECK_EQ(wf_procpool_warm(p, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_procpool_stats(p, &s), 0);
    CHECK_EQ(s.crashes, 1);
    CHECK_EQ(s.kills, 4);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_combinators(void **state)
{
    (void)state;
    run_main(2, combo_main, NULL);
}

static int map_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    wf_procpool_t *p = open_pool(2);
    if (!p)
        return 0;
    enum { N = 100 };
    int32_t v[N];
    wf_procin_t in[N];
    for (int i = 0; i < N; i++) {
        v[i] = i;
        in[i].data = &v[i];
        in[i].len = sizeof v[i];
    }
    /* Every seventh input is a status job (a failure of its own), the
     * rest add1: results in input order. */
    wf_procres_t r[N];
    int errs[N];
    CHECK_EQ(wf_procpool_map(p, "add1", in, N, 8, WF_FOREVER, r, errs), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(errs[i], 0);
        int32_t got = -1;
        if (r[i].len == 4)
            memcpy(&got, r[i].out, 4);
        CHECK_EQ(got, i + 1);
        wf_procres_free(&r[i]);
    }
    /* Failures reported per input: "exit" with the input as status, 0 for
     * even inputs (exit(0) is still a death without a reply). */
    enum { M = 6 };
    CHECK_EQ(wf_procpool_map(p, "exit", in, M, 0, WF_FOREVER, r, errs), 0);
    for (int i = 0; i < M; i++) {
        CHECK_EQ(errs[i], -ECHILD);
        CHECK_EQ(r[i].returncode, i);
    }
    /* A deadline for the whole map. */
    int32_t ms[4] = {5000, 5000, 5000, 5000};
    wf_procin_t sl[4];
    for (int i = 0; i < 4; i++) {
        sl[i].data = &ms[i];
        sl[i].len = sizeof ms[i];
    }
    int64_t t0 = wf_now();
    CHECK_EQ(wf_procpool_map(p, "sleep", sl, 4, 2, wf_deadline_in(100 * WF_NSEC_PER_MSEC), r, errs), 0);
    CHECK(wf_now() - t0 < 4 * WF_NSEC_PER_SEC);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(errs[i], -ETIMEDOUT);
    /* Empty, and bad arguments. */
    CHECK_EQ(wf_procpool_map(p, "add1", NULL, 0, 0, WF_FOREVER, r, errs), 0);
    CHECK_EQ(wf_procpool_map(p, "nope", in, N, 0, WF_FOREVER, r, errs), -ENOENT);
    CHECK_EQ(wf_procpool_map(p, "add1", in, N, 0, WF_FOREVER, NULL, errs), -EINVAL);
    CHECK_EQ(wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_map(void **state)
{
    (void)state;
    run_main(2, map_main, NULL);
}

/* A map whose caller is cancelled: the jobs in flight are stopped, the
 * rest never run, and nothing is left behind. */
typedef struct {
    wf_procpool_t *p;
    int rc;
    int errs[20];
    wf_procres_t r[20];
} mapc_ctx;

static int mapc_task(void *arg, void **res)
{
    (void)res;
    mapc_ctx *m = arg;
    static int32_t ms = 60000;
    wf_procin_t in[20];
    for (int i = 0; i < 20; i++) {
        in[i].data = &ms;
        in[i].len = sizeof ms;
    }
    m->rc = wf_procpool_map(m->p, "sleep", in, 20, 3, WF_FOREVER, m->r, m->errs);
    return 0;
}

static int mapc_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    census c0 = take_census();
    mapc_ctx m = {.p = open_pool(3)};
    if (!m.p)
        return 0;
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, mapc_task, &m, NULL), 0);
    wf_procpool_stats_t s;
    int64_t until = wf_deadline_in(LONG_NS);
    do {
        wf_sleep(WF_NSEC_PER_MSEC);
        wf_procpool_stats(m.p, &s);
    } while (s.idle > 0 && wf_now() < until);
    CHECK_EQ(s.idle, 0);
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(m.rc, -ECANCELED);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(m.errs[i], -ECANCELED);
    CHECK_EQ(wf_procpool_warm(m.p, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_procpool_stats(m.p, &s), 0);
    CHECK_EQ(s.kills, 3);
    /* Under a timeout scope that expires: the same, with -ETIMEDOUT. */
    static int32_t ms = 60000;
    wf_procin_t in[20];
    for (int i = 0; i < 20; i++) {
        in[i].data = &ms;
        in[i].len = sizeof ms;
    }
    wf_timeout_t tm;
    /* 1 s: ample for the three jobs to reach their workers first. */
    CHECK_EQ(wf_timeout_enter_in(&tm, WF_NSEC_PER_SEC), 0);
    CHECK_EQ(wf_procpool_map(m.p, "sleep", in, 20, 3, WF_FOREVER, m.r, m.errs), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&tm), 1);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(m.errs[i], -ECANCELED);
    CHECK_EQ(wf_procpool_warm(m.p, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_procpool_stats(m.p, &s), 0);
    CHECK_EQ(s.kills, 6);
    CHECK_EQ(wf_procpool_close(m.p, WF_PROCPOOL_WAIT, WF_FOREVER), 0);
    same_census(c0);
    return 0;
}

static void test_map_cancel(void **state)
{
    (void)state;
    run_main(2, mapc_main, NULL);
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
    run_main_cfg(&cfg, basic_main, NULL);
    assert_int_equal(wf__zygote_pid(), z);
}

/* Two runtimes in two threads, each with a pool: one zygote serves both. */
static void *runtime_thread(void *arg)
{
    (void)arg;
    run_main(1, many_main, arg);
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
        cmocka_unit_test(test_zygote),     cmocka_unit_test(test_basic),      cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_many),       cmocka_unit_test(test_submit),     cmocka_unit_test(test_combinators),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_map_cancel), cmocka_unit_test(test_recycle),    cmocka_unit_test(test_lazy),
        cmocka_unit_test(test_init),       cmocka_unit_test(test_shutdown),   cmocka_unit_test(test_leftover),
        cmocka_unit_test(test_fds),        cmocka_unit_test(test_two_runtimes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
