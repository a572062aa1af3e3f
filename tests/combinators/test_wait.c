/* test_wait.c - wf_wait (asyncio.wait): FIRST_COMPLETED, FIRST_EXCEPTION,
 * ALL_COMPLETED, deadlines, cancels nothing, consumes nothing. */
#include "wait_set.h"

static int m_first_completed(void *arg, void **res)
{
    set_ctx c;
    spawn_set(&c, 4, 0);
    bool done[N];
    CHECK_EQ(wf_wait(c.t, N, WF_FIRST_COMPLETED, WF_FOREVER, done), 1);
    for (int i = 0; i < N; i++)
        CHECK_EQ(done[i], i == 4);
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
    /* A task that ends cancelled is not an exception: wait goes on. */
    spawn_set(&c, -1, 0);
    CHECK(wait_count(&c.started, N, LONG_NS));
    CHECK_EQ(wf_cancel(c.t[1]), 0);
    CHECK_EQ(wf_wait(&c.t[1], 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    bool done[N];
    CHECK_EQ(wf_wait(c.t, N, WF_FIRST_EXCEPTION, wf_deadline_in(5 * WF_NSEC_PER_MSEC), done), 1);
    CHECK(done[1]);
    CHECK_EQ(wf_task_cancelled(c.t[1]), 1);
    /* One that raises ends the wait. */
    wf_task_t t[N + 1];
    for (int i = 0; i < N; i++)
        t[i] = c.t[i];
    CHECK_EQ(wf_spawn(&t[N], ret_status, (void *)(intptr_t)-EIO, NULL), 0);
    bool done2[N + 1];
    CHECK_EQ(wf_wait(t, N + 1, WF_FIRST_EXCEPTION, WF_FOREVER, done2), 2);
    CHECK(done2[1] && done2[N]);
    int st = 0;
    CHECK_EQ(wf_join(t[N], &st, NULL), 0);
    CHECK_EQ(st, -EIO);
    /* Without any exception it is ALL_COMPLETED. */
    gate_open(c.gate);
    CHECK_EQ(wf_wait(c.t, N, WF_FIRST_EXCEPTION, WF_FOREVER, done), N);
    for (int i = 0; i < N; i++) {
        CHECK(done[i]);
        CHECK_EQ(wf_join(c.t[i], &st, NULL), 0);
        CHECK_EQ(st, i == 1 ? -ECANCELED : 0);
    }
    wf_future_release(c.gate);
    return 0;
}

static void test_first_exception(void **state)
{
    run_main(2, m_first_exception, NULL);
}

static int m_all_completed(void *arg, void **res)
{
    enum { M = 100 };
    wf_task_t t[M];
    for (intptr_t i = 0; i < M; i++)
        CHECK_EQ(wf_spawn(&t[i], i % 7 ? ret_arg : ret_status, (void *)(i % 7 ? i : -EIO), NULL), 0);
    bool done[M];
    CHECK_EQ(wf_wait(t, M, WF_ALL_COMPLETED, WF_FOREVER, done), M);
    /* Again: already-finished tasks, deadline 0. */
    CHECK_EQ(wf_wait(t, M, WF_ALL_COMPLETED, 0, done), M);
    CHECK_EQ(wf_wait(t, M, WF_FIRST_COMPLETED, 0, NULL), M);
    for (intptr_t i = 0; i < M; i++) {
        CHECK(done[i]);
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
    bool done[N];
    /* Deadline 0: nothing has ended, nothing waits, nothing is cancelled. */
    CHECK_EQ(wf_wait(c.t, N, WF_FIRST_COMPLETED, 0, done), 0);
    for (int i = 0; i < N; i++)
        CHECK(!done[i]);
    /* A deadline that passes is not an error either. */
    int64_t t0 = wf_now();
    CHECK_EQ(wf_wait(c.t, N, WF_ALL_COMPLETED, wf_deadline_in(10 * WF_NSEC_PER_MSEC), done), 0);
    CHECK(wf_now() - t0 >= 10 * WF_NSEC_PER_MSEC);
    finish_set(&c, -1, 0, -1);
    return 0;
}

static void test_deadline(void **state)
{
    run_main(2, m_deadline, NULL);
}

/* The waiting task is cancelled, or its scope expires: an error, and the
 * tasks are untouched. */
typedef struct {
    set_ctx *c;
    int ret;
} waiter_ctx;

static int waiter(void *arg, void **res)
{
    waiter_ctx *w = arg;
    bool done[N] = {0};
    w->ret = wf_wait(w->c->t, N, WF_ALL_COMPLETED, WF_FOREVER, done);
    for (int i = 0; i < N; i++)
        CHECK(!done[i]); /* nothing written */
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

    wf_timeout_t to;
    CHECK_EQ(wf_timeout_enter_in(&to, 5 * WF_NSEC_PER_MSEC), 0);
    CHECK_EQ(wf_wait(c.t, N, WF_ALL_COMPLETED, WF_FOREVER, NULL), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    finish_set(&c, -1, 0, -1);
    return 0;
}

static void test_cancel_and_scope(void **state)
{
    run_main(2, m_cancel_and_scope, NULL);
}

static int m_bad_args(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_wait(&t, 0, WF_ALL_COMPLETED, WF_FOREVER, NULL), -EINVAL); /* empty set */
    CHECK_EQ(wf_wait(NULL, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), -EINVAL);
    CHECK_EQ(wf_wait(&t, 1, 0, WF_FOREVER, NULL), -EINVAL);
    CHECK_EQ(wf_wait(&t, 1, 4, WF_FOREVER, NULL), -EINVAL);
    CHECK_EQ(wf_wait(&t, 1, WF_ALL_COMPLETED, -7, NULL), -EINVAL);
    wf_task_t dead = 0x77;
    CHECK_EQ(wf_wait(&dead, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), -EINVAL);
    wf_task_t me = wf_self();
    CHECK_EQ(wf_wait(&me, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), -EDEADLK);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(1, m_bad_args, NULL);
    wf_task_t t = 1;
    assert_int_equal(wf_wait(&t, 1, WF_ALL_COMPLETED, 0, NULL), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_completed),  cmocka_unit_test(test_first_exception),
        cmocka_unit_test(test_all_completed),    cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancel_and_scope), cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
