/* test_wait_split.c - wf_wait_split (done, pending = asyncio.wait(...)):
 * FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED, deadlines, the in-place
 * loop over many tasks on every worker, the waiter cancelled or its scope
 * expiring, bad input; it consumes nothing and writes nothing on error. */
#include "wait_set.h"

/* A handle value no task has. */
#define SENTINEL ((wf_task_t)0x5e5e5e5eull)

static void fill(wf_task_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = SENTINEL;
}

static bool untouched(const wf_task_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != SENTINEL)
            return false;
    return true;
}

static int m_first_completed(void *arg, void **res)
{
    set_ctx c;
    spawn_set(&c, 4, 0);
    wf_task_t done[N], pending[N];
    fill(done, N);
    fill(pending, N);
    CHECK_EQ(wf_wait_split(c.t, N, WF_FIRST_COMPLETED, WF_FOREVER, done, pending), 1);
    CHECK_EQ(done[0], c.t[4]);
    CHECK(untouched(done + 1, N - 1));
    /* The pending ones in input order. */
    int k = 0;
    for (int i = 0; i < N; i++)
        if (i != 4)
            CHECK_EQ(pending[k++], c.t[i]);
    CHECK(untouched(pending + k, N - k));
    /* Either side may be left out. */
    CHECK_EQ(wf_wait_split(c.t, N, WF_FIRST_COMPLETED, WF_FOREVER, NULL, pending), 1);
    CHECK_EQ(wf_wait_split(c.t, N, WF_FIRST_COMPLETED, WF_FOREVER, done, NULL), 1);
    CHECK_EQ(done[0], c.t[4]);
    CHECK_EQ(wf_wait_split(c.t, N, WF_FIRST_COMPLETED, WF_FOREVER, NULL, NULL), 1);
    finish_set(&c, 4, 0, -1);
    return 0;
}

static void test_first_completed(void **state)
{
    run_main(3, m_first_completed, NULL);
}

static int m_first_exception(void *arg, void **res)
{
    set_ctx c;
    /* A task that ends cancelled is not an exception: the wait goes on
     * (here until its deadline). */
    spawn_set(&c, -1, 0);
    CHECK(wait_count(&c.started, N, LONG_NS));
    CHECK_EQ(wf_cancel(c.t[1]), 0);
    CHECK_EQ(wf_wait(&c.t[1], 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    wf_task_t done[N + 1], pending[N + 1];
    CHECK_EQ(wf_wait_split(c.t, N, WF_FIRST_EXCEPTION, wf_deadline_in(5 * WF_NSEC_PER_MSEC), done, pending),
             1);
    CHECK_EQ(done[0], c.t[1]);
    for (int i = 0, k = 0; i < N; i++)
        if (i != 1)
            CHECK_EQ(pending[k++], c.t[i]);
    /* One that raises ends the wait; done lists t[1] and the raiser in
     * input order. */
    wf_task_t t[N + 1];
    for (int i = 0; i < N; i++)
        t[i] = c.t[i];
    CHECK_EQ(wf_spawn(&t[N], ret_status, (void *)(intptr_t)-EIO, NULL), 0);
    CHECK_EQ(wf_wait_split(t, N + 1, WF_FIRST_EXCEPTION, WF_FOREVER, done, pending), 2);
    CHECK_EQ(done[0], t[1]);
    CHECK_EQ(done[1], t[N]);
    for (int i = 0, k = 0; i < N; i++)
        if (i != 1)
            CHECK_EQ(pending[k++], t[i]);
    int st = 0;
    CHECK_EQ(wf_join(t[N], &st, NULL), 0);
    CHECK_EQ(st, -EIO);
    /* Without any exception it is ALL_COMPLETED. */
    gate_open(c.gate);
    fill(pending, N);
    CHECK_EQ(wf_wait_split(c.t, N, WF_FIRST_EXCEPTION, WF_FOREVER, done, pending), N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(done[i], c.t[i]);
    CHECK(untouched(pending, N));
    finish_set(&c, -1, 0, 1);
    return 0;
}

static void test_first_exception(void **state)
{
    run_main(2, m_first_exception, NULL);
}

static int m_all_completed(void *arg, void **res)
{
    enum { M = 100 };
    wf_task_t t[M], done[M], pending[M];
    for (intptr_t i = 0; i < M; i++)
        CHECK_EQ(wf_spawn(&t[i], i % 7 ? ret_arg : ret_status, (void *)(i % 7 ? i : -EIO), NULL), 0);
    fill(pending, M);
    CHECK_EQ(wf_wait_split(t, M, WF_ALL_COMPLETED, WF_FOREVER, done, pending), M);
    CHECK(untouched(pending, M));
    for (int i = 0; i < M; i++)
        CHECK_EQ(done[i], t[i]);
    /* Again, on tasks that have all ended, with deadline 0. */
    CHECK_EQ(wf_wait_split(t, M, WF_FIRST_COMPLETED, 0, done, pending), M);
    for (intptr_t i = 0; i < M; i++) {
        int st = 1;
        void *rv = NULL;
        CHECK_EQ(wf_join(t[i], &st, &rv), 0);
        if (i % 7)
            CHECK(st == 0 && (intptr_t)rv == i);
        else
            CHECK_EQ(st, -EIO);
    }
    return 0;
}

static void test_all_completed(void **state)
{
    run_main(4, m_all_completed, NULL);
}

static int m_deadline(void *arg, void **res)
{
    set_ctx c;
    spawn_set(&c, -1, 0);
    wf_task_t done[N], pending[N];
    /* Deadline 0: nothing has ended, nothing waits, nothing is cancelled. */
    fill(done, N);
    CHECK_EQ(wf_wait_split(c.t, N, WF_FIRST_COMPLETED, 0, done, pending), 0);
    CHECK(untouched(done, N));
    for (int i = 0; i < N; i++)
        CHECK_EQ(pending[i], c.t[i]);
    /* A deadline that passes is not an error either. */
    int64_t t0 = wf_now();
    fill(pending, N);
    CHECK_EQ(wf_wait_split(c.t, N, WF_ALL_COMPLETED, wf_deadline_in(10 * WF_NSEC_PER_MSEC), done, pending),
             0);
    CHECK(wf_now() - t0 >= 10 * WF_NSEC_PER_MSEC);
    for (int i = 0; i < N; i++)
        CHECK_EQ(pending[i], c.t[i]);
    finish_set(&c, -1, 0, -1);
    return 0;
}

static void test_deadline(void **state)
{
    run_main(2, m_deadline, NULL);
}

/* asyncio's loop, in place, over many tasks on every worker:
 *     pending = tasks
 *     while pending:
 *         done, pending = await asyncio.wait(pending, return_when=FIRST_COMPLETED)
 * Every task is handed back exactly once, and the handles stay ours. */
typedef struct {
    wf_future_t *gate;
    _Atomic long started;
} loop_ctx;

typedef struct {
    loop_ctx *c;
    intptr_t idx;
} loop_arg;

static int loop_child(void *arg, void **res)
{
    loop_arg *a = arg;
    atomic_fetch_add(&a->c->started, 1);
    /* Half wait for the gate, so some rounds find several pending. */
    if (a->idx % 2)
        CHECK_EQ(wf_future_wait(a->c->gate, WF_FOREVER, NULL, NULL), 0);
    for (intptr_t i = 0; i < a->idx % 5; i++)
        wf_yield();
    *res = (void *)a->idx;
    return a->idx % 3 ? 0 : -EIO;
}

static int opener(void *arg, void **res)
{
    loop_ctx *c = arg;
    gate_open(c->gate);
    return 0;
}

static int m_loop(void *arg, void **res)
{
    const size_t M = SCALED(600);
    loop_ctx c = {.gate = gate_new()};
    wf_task_t *pending = malloc(M * sizeof *pending);
    wf_task_t *done = malloc(M * sizeof *done);
    loop_arg *args = malloc(M * sizeof *args);
    unsigned char *seen = calloc(M, 1);
    for (size_t i = 0; i < M; i++) {
        args[i] = (loop_arg){.c = &c, .idx = (intptr_t)i};
        CHECK_EQ(wf_spawn(&pending[i], loop_child, &args[i], NULL), 0);
    }
    size_t n = M, rounds = 0, handed = 0, failed = 0;
    bool opened = false;
    wf_task_t op = WF_TASK_NONE;
    while (n) {
        int k = wf_wait_split(pending, n, WF_FIRST_COMPLETED, WF_FOREVER, done, pending);
        CHECK(k >= 1 && (size_t)k <= n);
        if (k < 1)
            break;
        rounds++;
        for (int j = 0; j < k; j++) {
            int st = 1;
            void *rv = NULL;
            CHECK_EQ(wf_task_done(done[j]), 1);
            CHECK_EQ(wf_join(done[j], &st, &rv), 0); /* our reference, untouched */
            size_t idx = (size_t)(intptr_t)rv;
            CHECK(idx < M);
            if (idx < M) {
                CHECK_EQ(seen[idx], 0);
                seen[idx] = 1;
                CHECK_EQ(st, idx % 3 ? 0 : -EIO);
            }
            failed += st != 0;
            handed++;
        }
        n -= (size_t)k;
        /* The still pending ones are live and have not ended... or have
         * ended since: either way they are ours. */
        for (size_t j = 0; j < n; j++)
            CHECK(wf_task_done(pending[j]) >= 0);
        /* Once every ungated child is out, the rest wait on the gate:
         * let another fiber (on any worker) open it. */
        if (!opened && n == M / 2) {
            CHECK_EQ(wf_spawn(&op, opener, &c, NULL), 0);
            opened = true;
        }
    }
    CHECK_EQ(handed, M);
    CHECK_EQ(failed, (M + 2) / 3);
    CHECK(rounds >= 2);
    CHECK(opened);
    if (opened)
        CHECK_EQ(wf_join(op, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&c.started), (long)M);
    wf_future_release(c.gate);
    free(pending);
    free(done);
    free(args);
    free(seen);
    return 0;
}

static void test_loop(void **state)
{
    run_main(4, m_loop, NULL);
}

/* The waiting task is cancelled, or its scope expires: an error, nothing
 * written, and the tasks are untouched. */
typedef struct {
    set_ctx *c;
    int ret;
} waiter_ctx;

static int waiter(void *arg, void **res)
{
    waiter_ctx *w = arg;
    wf_task_t done[N], pending[N];
    fill(done, N);
    fill(pending, N);
    w->ret = wf_wait_split(w->c->t, N, WF_ALL_COMPLETED, WF_FOREVER, done, pending);
    CHECK(untouched(done, N));
    CHECK(untouched(pending, N));
    return 0;
}

static int m_cancel_and_scope(void *arg, void **res)
{
    set_ctx c;
    spawn_set(&c, -1, 0);
    waiter_ctx w = {.c = &c, .ret = 1};
    wf_task_t wt;
    CHECK_EQ(wf_spawn(&wt, waiter, &w, NULL), 0);
    while (wf_task_state(wt) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(wt), 0);
    CHECK_EQ(wf_join(wt, NULL, NULL), 0);
    CHECK_EQ(w.ret, -ECANCELED);

    wf_task_t done[N], pending[N];
    fill(done, N);
    fill(pending, N);
    wf_timeout_t to;
    CHECK_EQ(wf_timeout_enter_in(&to, 5 * WF_NSEC_PER_MSEC), 0);
    CHECK_EQ(wf_wait_split(c.t, N, WF_ALL_COMPLETED, WF_FOREVER, done, pending), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    CHECK(untouched(done, N));
    CHECK(untouched(pending, N));
    finish_set(&c, -1, 0, -1);
    return 0;
}

static void test_cancel_and_scope(void **state)
{
    run_main(2, m_cancel_and_scope, NULL);
}

static int m_bad_args(void *arg, void **res)
{
    wf_task_t t[2];
    CHECK_EQ(wf_spawn(&t[0], ret_arg, NULL, NULL), 0);
    wf_task_t done[2], pending[2];
    fill(done, 2);
    fill(pending, 2);
    CHECK_EQ(wf_wait_split(t, 0, WF_ALL_COMPLETED, WF_FOREVER, done, pending), -EINVAL); /* empty set */
    CHECK_EQ(wf_wait_split(NULL, 1, WF_ALL_COMPLETED, WF_FOREVER, done, pending), -EINVAL);
    CHECK_EQ(wf_wait_split(t, 1, 0, WF_FOREVER, done, pending), -EINVAL);
    CHECK_EQ(wf_wait_split(t, 1, 4, WF_FOREVER, done, pending), -EINVAL);
    CHECK_EQ(wf_wait_split(t, 1, WF_ALL_COMPLETED, -7, done, pending), -EINVAL);
    t[1] = 0x77; /* dead, after a live one: nothing is written either */
    CHECK_EQ(wf_wait_split(t, 2, WF_ALL_COMPLETED, WF_FOREVER, done, pending), -EINVAL);
    t[1] = wf_self();
    CHECK_EQ(wf_wait_split(t, 2, WF_ALL_COMPLETED, WF_FOREVER, done, pending), -EDEADLK);
    CHECK(untouched(done, 2));
    CHECK(untouched(pending, 2));
    CHECK_EQ(wf_join(t[0], NULL, NULL), 0);
    CHECK_EQ(wf_wait_split(t, 1, WF_ALL_COMPLETED, WF_FOREVER, done, pending), -EINVAL); /* joined */
    CHECK(untouched(done, 2));
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(1, m_bad_args, NULL);
    wf_task_t t = 1, d = SENTINEL, p = SENTINEL;
    assert_int_equal(wf_wait_split(&t, 1, WF_ALL_COMPLETED, 0, &d, &p), -EPERM);
    assert_true(d == SENTINEL && p == SENTINEL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_completed),
        cmocka_unit_test(test_first_exception),
        cmocka_unit_test(test_all_completed),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_loop),
        cmocka_unit_test(test_cancel_and_scope),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
