/* test_shield.c - wf_shield (asyncio.shield): the caller's cancellation
 * does not reach the shielded task, the caller still gets -ECANCELED, the
 * shielded task outlives its cancelled caller; outcomes pass through. */
#include "combo_test.h"

/* A caller that awaits a shielded task through wait_for, and is cancelled. */
typedef struct {
    wf_task_t inner;
    int ret, st;
} caller_ctx;

static int caller(void *arg, void **res)
{
    caller_ctx *c = arg;
    wf_task_t s;
    CHECK_EQ(wf_shield(c->inner, &s), 0);
    c->ret = wf_wait_for(s, WF_FOREVER, &c->st, NULL);
    return c->ret;
}

static int m_outlives_caller(void *arg, void **res)
{
    _Atomic long ran = 0, cancelled = 0, started = 0;
    wf_future_t *gate = gate_new();
    child_spec spec = {
        .gate = gate, .status = 5 - 5, .ran = &ran, .cancelled = &cancelled, .started = &started};
    caller_ctx c = {.ret = 1};
    CHECK_EQ(wf_spawn(&c.inner, child_body, &spec, NULL), 0);
    CHECK(wait_count(&started, 1, LONG_NS));
    wf_task_t ct;
    CHECK_EQ(wf_spawn(&ct, caller, &c, NULL), 0);
    while (wf_task_state(ct) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(ct), 0);
    int st = 0;
    CHECK_EQ(wf_join(ct, &st, NULL), 0);
    /* The caller got its cancellation... */
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(c.ret, -ECANCELED);
    CHECK_EQ(c.st, -ECANCELED); /* the shield's outcome */
    /* ...and the shielded task, which outlived it, was never cancelled. */
    CHECK_EQ(wf_task_done(c.inner), 0);
    CHECK_EQ(wf_cancelling(c.inner), 0);
    gate_open(gate);
    void *rv = NULL;
    CHECK_EQ(wf_join(c.inner, &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK(rv == &spec);
    CHECK_EQ(atomic_load(&ran), 1);
    CHECK_EQ(atomic_load(&cancelled), 0);
    wf_future_release(gate);
    return 0;
}

static void test_outlives_caller(void **state)
{
    run_main(3, m_outlives_caller, NULL);
}

static int m_outcome_passes(void *arg, void **res)
{
    /* Success and failure pass through the shield. */
    wf_task_t t, s;
    CHECK_EQ(wf_spawn(&t, ret_status, (void *)(intptr_t)-EIO, NULL), 0);
    CHECK_EQ(wf_shield(t, &s), 0);
    int st = 0;
    void *rv = NULL;
    CHECK_EQ(wf_join(s, &st, &rv), 0);
    CHECK_EQ(st, -EIO);
    CHECK_EQ((intptr_t)rv, 0x5a5a);
    CHECK_EQ(wf_join(t, &st, NULL), 0); /* the caller's reference is intact */
    CHECK_EQ(st, -EIO);
    /* A task that has already ended. */
    CHECK_EQ(wf_spawn(&t, ret_arg, (void *)3, NULL), 0);
    CHECK_EQ(wf_wait(&t, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    CHECK_EQ(wf_shield(t, &s), 0);
    CHECK_EQ(wf_join(s, &st, &rv), 0);
    CHECK(st == 0 && rv == (void *)3);
    CHECK_EQ(wf_detach(t), 0);
    /* Cancelling the inner task itself cancels it, and so the shield. */
    CHECK_EQ(wf_spawn(&t, sleep_forever, NULL, NULL), 0);
    CHECK_EQ(wf_shield(t, &s), 0);
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(s, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    return 0;
}

static void test_outcome_passes(void **state)
{
    run_main(2, m_outcome_passes, NULL);
}

/* Cancel the shield directly, before and after it runs: the inner task is
 * untouched and no reference leaks (ASan's leak check sees the records). */
static int m_cancel_shield(void *arg, void **res)
{
    enum { N = 50 };
    _Atomic long ran = 0, cancelled = 0;
    wf_future_t *gate = gate_new();
    child_spec spec = {.gate = gate, .ran = &ran, .cancelled = &cancelled};
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        CHECK_EQ(wf_spawn(&t[i], child_body, &spec, NULL), 0);
        wf_task_t s;
        CHECK_EQ(wf_shield(t[i], &s), 0);
        if (i % 2)
            wf_yield(); /* let some shields start and park */
        CHECK_EQ(wf_cancel(s), 0);
        int st = 0;
        CHECK_EQ(wf_join(s, &st, NULL), 0);
        CHECK_EQ(st, -ECANCELED);
    }
    gate_open(gate);
    for (int i = 0; i < N; i++) {
        int st = 1;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
    CHECK_EQ(atomic_load(&ran), N);
    CHECK_EQ(atomic_load(&cancelled), 0);
    wf_future_release(gate);
    return 0;
}

static void test_cancel_shield(void **state)
{
    run_main(2, m_cancel_shield, NULL);
}

static int m_bad_args(void *arg, void **res)
{
    wf_task_t s;
    CHECK_EQ(wf_shield(0x4242, &s), -EINVAL);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_shield(t, NULL), -EINVAL);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(wf_shield(t, &s), -EINVAL); /* spent */
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(1, m_bad_args, NULL);
    wf_task_t s;
    assert_int_equal(wf_shield(1, &s), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outlives_caller),
        cmocka_unit_test(test_outcome_passes),
        cmocka_unit_test(test_cancel_shield),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
