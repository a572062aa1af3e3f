/* test_procpool.c - jobs on the process pool (weft/procpool.h): results
 * of thousands of jobs from hundreds of fibers; inputs and outputs of 0,
 * 1, 64 KiB - 1, 64 KiB, 64 KiB + 1, 1 MiB and 64 MiB bytes; a job's own
 * status; submit, gather, wait, task groups, cancel and map (with a
 * deadline, cancelled, under an expiring timeout scope); no zombie, no
 * leaked fd after close (the process's children and /proc/self/fd counted
 * before and after). A pool's life is in test_proclife.c, failures in
 * test_procfail.c. */
#include "procpool_test.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

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
    (void)arg;
    (void)res;
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
    same_census(c0);
    return 0;
}

static void test_many(void **state)
{
    (void)state;
    run_main(0, many_main, NULL);
}

/* --- submit, gather, cancel, map ------------------------------------------------------- */

/* Holds the worker it is pinned to (no yield) until released: nothing else
 * runs there meanwhile, and that worker steals nothing. */
typedef struct {
    _Atomic int holding, release;
} hold_ctx;

static int hold_worker(void *arg, void **res)
{
    (void)res;
    hold_ctx *h = arg;
    atomic_store(&h->holding, 1);
    int64_t give_up = wf_deadline_in(LONG_NS);
    while (!atomic_load(&h->release) && wf_now() < give_up) {
    }
    return 0;
}

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
    /* Cancelled before it ever runs: the outcome is zeroed, nothing leaks.
     * The other worker is held meanwhile and this one is ours, so the task
     * cannot run between the submit and the cancel. (It could: the job
     * ended on a worker process before a preempted main cancelled it, and
     * the cancel was -EALREADY.) */
    hold_ctx h = {0};
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = 1 - wf_worker_index();
    wf_task_t ht;
    CHECK_EQ(wf_spawn(&ht, hold_worker, &h, &o), 0);
    CHECK(wait_flag(&h.holding, LONG_NS));
    CHECK_EQ(wf_procpool_submit(p, "add1", &ms, sizeof ms, WF_FOREVER, &rs, &ts), 0);
    CHECK_EQ(wf_cancel(ts), 0);
    atomic_store(&h.release, 1);
    CHECK_EQ(wf_join(ht, NULL, NULL), 0);
    CHECK_EQ(wf_join(ts, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK(rs.out == NULL && rs.len == 0);
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

int main(void)
{
    procpool_test_setup();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),  cmocka_unit_test(test_sizes),        cmocka_unit_test(test_many),
        cmocka_unit_test(test_submit), cmocka_unit_test(test_combinators), cmocka_unit_test(test_map),
        cmocka_unit_test(test_map_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
