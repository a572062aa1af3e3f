/* test_wait_for.c - wf_wait_for (asyncio.wait_for): in time, timeout
 * cancels and awaits, deadline 0, the caller's cancellation propagates,
 * a task that ignores cancellation, shield, scopes, references. */
#include "combo_test.h"

static int m_in_time(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, ret_arg, (void *)42, NULL), 0);
    int st = -1;
    void *rv = NULL;
    CHECK_EQ(wf_wait_for(t, wf_deadline_in(LONG_NS), &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ((intptr_t)rv, 42);
    CHECK(handle_dead(t));
    /* A failing task: its status, not an error of the call. */
    CHECK_EQ(wf_spawn(&t, ret_status, (void *)(intptr_t)-EIO, NULL), 0);
    CHECK_EQ(wf_wait_for(t, WF_FOREVER, &st, NULL), 0);
    CHECK_EQ(st, -EIO);
    /* Deadline 0 on a task that has ended returns its outcome. */
    CHECK_EQ(wf_spawn(&t, ret_arg, (void *)7, NULL), 0);
    CHECK_EQ(wf_task_ref(t), 0);
    CHECK_EQ(wf_wait(&t, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    CHECK_EQ(wf_detach(t), 0);
    CHECK_EQ(wf_wait_for(t, 0, &st, &rv), 0);
    CHECK(st == 0 && (intptr_t)rv == 7);
    return 0;
}

static void test_in_time(void **state)
{
    run_main(2, m_in_time, NULL);
}

static int m_timeout(void *arg, void **res)
{
    _Atomic long cancelled = 0, started = 0;
    wf_future_t *gate = gate_new();
    child_spec spec = {.gate = gate, .cancelled = &cancelled, .started = &started};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, child_body, &spec, NULL), 0);
    CHECK(wait_count(&started, 1, LONG_NS));
    int st = 0;
    int64_t t0 = wf_now();
    CHECK_EQ(wf_wait_for(t, wf_deadline_in(10 * WF_NSEC_PER_MSEC), &st, NULL), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 10 * WF_NSEC_PER_MSEC);
    CHECK_EQ(st, -ECANCELED);
    /* Awaited: it had ended before the return, and the handle is spent. */
    CHECK_EQ(atomic_load(&cancelled), 1);
    CHECK(handle_dead(t));
    /* Deadline 0 on a running task: cancelled at once. */
    CHECK_EQ(wf_spawn(&t, child_body, &spec, NULL), 0);
    CHECK_EQ(wf_wait_for(t, 0, &st, NULL), -ETIMEDOUT);
    CHECK_EQ(st, -ECANCELED);
    wf_future_release(gate);
    return 0;
}

static void test_timeout(void **state)
{
    run_main(2, m_timeout, NULL);
}

/* A task that catches its cancellation and returns a value anyway: the
 * value is returned (asyncio returns what the task returned). */
static int stubborn(void *arg, void **res)
{
    _Atomic long *started = arg;
    atomic_fetch_add(started, 1);
    int r = wf_sleep(3600 * WF_NSEC_PER_SEC);
    if (r == -ECANCELED) {
        wf_uncancel();
        *res = (void *)99;
        return 0;
    }
    return r;
}

static int m_ignores_cancel(void *arg, void **res)
{
    _Atomic long started = 0;
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, stubborn, &started, NULL), 0);
    CHECK(wait_count(&started, 1, LONG_NS));
    int st = -1;
    void *rv = NULL;
    CHECK_EQ(wf_wait_for(t, wf_deadline_in(5 * WF_NSEC_PER_MSEC), &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ((intptr_t)rv, 99);
    return 0;
}

static void test_ignores_cancel(void **state)
{
    run_main(2, m_ignores_cancel, NULL);
}

/* The caller is cancelled: the task is cancelled too, with the message. */
typedef struct {
    wf_task_t child;
    int ret, st;
} waiter_ctx;

static int waiter(void *arg, void **res)
{
    waiter_ctx *w = arg;
    w->ret = wf_wait_for(w->child, WF_FOREVER, &w->st, NULL);
    return 0;
}

static int m_caller_cancelled(void *arg, void **res)
{
    _Atomic long cancelled = 0, started = 0;
    wf_future_t *gate = gate_new();
    child_spec spec = {.gate = gate, .cancelled = &cancelled, .started = &started};
    waiter_ctx w = {.ret = 1};
    CHECK_EQ(wf_spawn(&w.child, child_body, &spec, NULL), 0);
    CHECK(wait_count(&started, 1, LONG_NS));
    wf_task_t wt;
    CHECK_EQ(wf_spawn(&wt, waiter, &w, NULL), 0);
    while (wf_task_state(wt) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel_msg(wt, "bye"), 0);
    CHECK_EQ(wf_join(wt, NULL, NULL), 0);
    CHECK_EQ(w.ret, -ECANCELED);
    CHECK_EQ(w.st, -ECANCELED);
    CHECK_EQ(atomic_load(&cancelled), 1);
    CHECK(spec.seen_msg && !strcmp(spec.seen_msg, "bye"));
    CHECK(handle_dead(w.child));
    wf_future_release(gate);
    return 0;
}

static void test_caller_cancelled(void **state)
{
    run_main(3, m_caller_cancelled, NULL);
}

static int m_shield(void *arg, void **res)
{
    _Atomic long ran = 0, cancelled = 0;
    wf_future_t *gate = gate_new();
    child_spec spec = {.gate = gate, .ran = &ran, .cancelled = &cancelled};
    wf_task_t t, s;
    CHECK_EQ(wf_spawn(&t, child_body, &spec, NULL), 0);
    CHECK_EQ(wf_shield(t, &s), 0);
    int st = 0;
    CHECK_EQ(wf_wait_for(s, wf_deadline_in(5 * WF_NSEC_PER_MSEC), &st, NULL), -ETIMEDOUT);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_task_done(t), 0); /* untouched, still running */
    CHECK_EQ(wf_cancelling(t), 0);
    gate_open(gate);
    void *rv = NULL;
    CHECK_EQ(wf_join(t, &st, &rv), 0);
    CHECK(st == 0 && rv == &spec);
    CHECK_EQ(atomic_load(&ran), 1);
    CHECK_EQ(atomic_load(&cancelled), 0);
    wf_future_release(gate);
    return 0;
}

static void test_shield(void **state)
{
    run_main(2, m_shield, NULL);
}

static int m_scope(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, sleep_forever, NULL, NULL), 0);
    wf_timeout_t to;
    CHECK_EQ(wf_timeout_enter_in(&to, 5 * WF_NSEC_PER_MSEC), 0);
    int st = 0;
    /* The scope's deadline is earlier than the call's: it wins. */
    CHECK_EQ(wf_wait_for(t, wf_deadline_in(LONG_NS), &st, NULL), -ETIMEDOUT);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    return 0;
}

static void test_scope(void **state)
{
    run_main(2, m_scope, NULL);
}

static int m_bad_args(void *arg, void **res)
{
    CHECK_EQ(wf_wait_for(0x1234, WF_FOREVER, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_wait_for(wf_self(), WF_FOREVER, NULL, NULL), -EDEADLK);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_wait_for(t, -3, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_wait_for(t, WF_FOREVER, NULL, NULL), 0);
    CHECK_EQ(wf_wait_for(t, WF_FOREVER, NULL, NULL), -EINVAL); /* spent */
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(1, m_bad_args, NULL);
    assert_int_equal(wf_wait_for(1, WF_FOREVER, NULL, NULL), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_time),        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_ignores_cancel), cmocka_unit_test(test_caller_cancelled),
        cmocka_unit_test(test_shield),         cmocka_unit_test(test_scope),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
