/* test_timeout.c - timeout scopes (asyncio.timeout / timeout_at): expiry,
 * nesting (inner first, outer first), reschedule, when/expired, deadline 0,
 * out-of-order leave, misuse. */
#include "combo_test.h"

#define MS WF_NSEC_PER_MSEC

static int m_expire(void *arg, void **res)
{
    wf_timeout_t to;
    int64_t t0 = wf_now();
    CHECK_EQ(wf_timeout_enter_in(&to, 10 * MS), 0);
    CHECK_EQ(wf_timeout_expired(&to), 0);
    /* A sleep longer than the scope is cut at the scope's deadline. */
    CHECK_EQ(wf_sleep(LONG_NS), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 10 * MS);
    CHECK(wf_now() - t0 < LONG_NS);
    /* Every later wait fails the same way until the scope is left. */
    CHECK_EQ(wf_sleep(MS), -ETIMEDOUT);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, sleep_forever, NULL, NULL), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_expired(&to), 1);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    /* Outside the scope, waits work again. (A join of a task that has
     * already ended does not wait, so it succeeds even inside an expired
     * scope, as `await done_task` does not suspend in asyncio.) */
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(wf_sleep(MS), 0);
    /* After leaving, the scope can still be read. */
    CHECK_EQ(wf_timeout_expired(&to), 1);
    int64_t when = 0;
    CHECK_EQ(wf_timeout_when(&to, &when), 0);
    CHECK(when > t0);
    return 0;
}

static void test_expire(void **state)
{
    run_main(2, m_expire, NULL);
}

static int m_not_expired(void *arg, void **res)
{
    wf_timeout_t to;
    CHECK_EQ(wf_timeout_enter_in(&to, LONG_NS), 0);
    CHECK_EQ(wf_sleep(MS), 0);
    CHECK_EQ(wf_timeout_leave(&to), 0);
    CHECK_EQ(wf_timeout_expired(&to), 0);
    /* No deadline at all (timeout(None)). */
    CHECK_EQ(wf_timeout_enter(&to, WF_FOREVER), 0);
    int64_t when = 0;
    CHECK_EQ(wf_timeout_when(&to, &when), 0);
    CHECK_EQ(when, WF_FOREVER);
    CHECK_EQ(wf_sleep(MS), 0);
    CHECK_EQ(wf_timeout_leave(&to), 0);
    return 0;
}

static void test_not_expired(void **state)
{
    run_main(1, m_not_expired, NULL);
}

static int m_deadline_zero(void *arg, void **res)
{
    wf_timeout_t to;
    CHECK_EQ(wf_timeout_enter(&to, 0), 0);
    CHECK_EQ(wf_yield(), 0); /* a yield is not a wait */
    CHECK_EQ(wf_sleep(MS), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    /* A scope whose deadline passed without any wait still expired. */
    CHECK_EQ(wf_timeout_enter(&to, wf_now()), 0);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    return 0;
}

static void test_deadline_zero(void **state)
{
    run_main(1, m_deadline_zero, NULL);
}

/* Nested, the inner one expires first: only the inner one reports it, and
 * the outer scope's waits work again after the inner is left. */
static int m_nested_inner_first(void *arg, void **res)
{
    wf_timeout_t outer, inner;
    CHECK_EQ(wf_timeout_enter_in(&outer, LONG_NS), 0);
    CHECK_EQ(wf_timeout_enter_in(&inner, 5 * MS), 0);
    CHECK_EQ(wf_sleep(LONG_NS), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_expired(&inner), 1);
    CHECK_EQ(wf_timeout_expired(&outer), 0);
    CHECK_EQ(wf_timeout_leave(&inner), 1);
    CHECK_EQ(wf_sleep(MS), 0);
    CHECK_EQ(wf_timeout_leave(&outer), 0);
    return 0;
}

static void test_nested_inner_first(void **state)
{
    run_main(1, m_nested_inner_first, NULL);
}

/* Nested, the outer one expires first: the inner code's waits fail; the
 * inner scope did not expire, the outer did. */
static int m_nested_outer_first(void *arg, void **res)
{
    wf_timeout_t outer, inner;
    int64_t t0 = wf_now();
    CHECK_EQ(wf_timeout_enter_in(&outer, 5 * MS), 0);
    CHECK_EQ(wf_timeout_enter_in(&inner, LONG_NS), 0);
    CHECK_EQ(wf_sleep(LONG_NS), -ETIMEDOUT);
    CHECK(wf_now() - t0 < LONG_NS);
    CHECK_EQ(wf_timeout_leave(&inner), 0);
    /* Still inside the expired outer scope. */
    CHECK_EQ(wf_sleep(MS), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&outer), 1);
    CHECK_EQ(wf_sleep(MS), 0);
    return 0;
}

static void test_nested_outer_first(void **state)
{
    run_main(1, m_nested_outer_first, NULL);
}

static int m_reschedule(void *arg, void **res)
{
    wf_timeout_t to;
    /* Postpone before it fires: the wait succeeds. */
    CHECK_EQ(wf_timeout_enter_in(&to, WF_NSEC_PER_SEC), 0);
    CHECK_EQ(wf_timeout_reschedule(&to, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_sleep(5 * MS), 0);
    /* Bring it forward: the next wait is cut. */
    int64_t dl = wf_deadline_in(3 * MS);
    CHECK_EQ(wf_timeout_reschedule(&to, dl), 0);
    int64_t when = 0;
    CHECK_EQ(wf_timeout_when(&to, &when), 0);
    CHECK_EQ(when, dl);
    CHECK_EQ(wf_sleep(LONG_NS), -ETIMEDOUT);
    /* Once expired, it cannot be moved. */
    CHECK_EQ(wf_timeout_reschedule(&to, wf_deadline_in(LONG_NS)), -EALREADY);
    CHECK_EQ(wf_timeout_when(&to, &when), 0);
    CHECK_EQ(when, dl);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    /* From no deadline to one, and back; an outer scope rescheduled while
     * an inner one is open. */
    wf_timeout_t outer, inner;
    CHECK_EQ(wf_timeout_enter(&outer, WF_FOREVER), 0);
    CHECK_EQ(wf_timeout_enter(&inner, WF_FOREVER), 0);
    CHECK_EQ(wf_timeout_reschedule(&outer, wf_deadline_in(3 * MS)), 0);
    CHECK_EQ(wf_sleep(LONG_NS), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&inner), 0);
    CHECK_EQ(wf_timeout_leave(&outer), 1);
    CHECK_EQ(wf_timeout_enter_in(&outer, WF_NSEC_PER_SEC), 0);
    CHECK_EQ(wf_timeout_reschedule(&outer, WF_FOREVER), 0);
    CHECK_EQ(wf_sleep(5 * MS), 0);
    CHECK_EQ(wf_timeout_leave(&outer), 0);
    return 0;
}

static void test_reschedule(void **state)
{
    run_main(1, m_reschedule, NULL);
}

/* A waiter in the scope is cancelled: -ECANCELED, not -ETIMEDOUT (the
 * scope does not confuse the two). */
static int scoped_sleeper(void *arg, void **res)
{
    wf_timeout_t to;
    CHECK_EQ(wf_timeout_enter_in(&to, LONG_NS), 0);
    int r = wf_sleep(LONG_NS);
    CHECK_EQ(wf_timeout_leave(&to), 0);
    return r;
}

static int m_cancel_inside(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, scoped_sleeper, NULL, NULL), 0);
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    return 0;
}

static void test_cancel_inside(void **state)
{
    run_main(2, m_cancel_inside, NULL);
}

/* Scopes are per task: another task's waits are not capped. */
static int other_task(void *arg, void **res)
{
    wf_timeout_t *to = arg;
    CHECK_EQ(wf_timeout_leave(to), -EINVAL); /* not ours */
    CHECK_EQ(wf_timeout_reschedule(to, 0), -EINVAL);
    CHECK_EQ(wf_timeout_expired(to), -EINVAL);
    return wf_sleep(300 * MS);
}

static int m_misuse(void *arg, void **res)
{
    wf_timeout_t outer, inner, never;
    memset(&never, 0, sizeof never);
    CHECK_EQ(wf_timeout_enter(NULL, 0), -EINVAL);
    CHECK_EQ(wf_timeout_enter(&outer, -2), -EINVAL);
    CHECK_EQ(wf_timeout_enter_in(&outer, 5 * MS), 0);
    CHECK_EQ(wf_timeout_enter(&outer, 0), -EBUSY); /* already entered */
    CHECK_EQ(wf_timeout_enter_in(&inner, LONG_NS), 0);
    /* Leaving out of order is refused and changes nothing. */
    CHECK_EQ(wf_timeout_leave(&outer), -EBUSY);
    CHECK_EQ(wf_timeout_leave(&never), -EINVAL);
    CHECK_EQ(wf_timeout_expired(&never), -EINVAL);
    int64_t w;
    CHECK_EQ(wf_timeout_when(&never, &w), -EINVAL);
    CHECK_EQ(wf_timeout_when(&inner, NULL), -EINVAL);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, other_task, &outer, NULL), 0);
    int st = 1;
    CHECK_EQ(wf_join(t, &st, NULL), -ETIMEDOUT); /* our outer scope: 5 ms */
    CHECK_EQ(wf_timeout_leave(&inner), 0);
    CHECK_EQ(wf_timeout_leave(&outer), 1);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);                             /* the other task slept its full 300 ms */
    CHECK_EQ(wf_timeout_leave(&outer), -EINVAL); /* left already */
    CHECK_EQ(wf_timeout_reschedule(&outer, 0), -EINVAL);
    return 0;
}

static void test_misuse(void **state)
{
    run_main(2, m_misuse, NULL);
    wf_timeout_t to;
    assert_int_equal(wf_timeout_enter(&to, 0), -EPERM);
    assert_int_equal(wf_timeout_leave(&to), -EPERM);
    assert_int_equal(wf_timeout_expired(&to), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expire),
        cmocka_unit_test(test_not_expired),
        cmocka_unit_test(test_deadline_zero),
        cmocka_unit_test(test_nested_inner_first),
        cmocka_unit_test(test_nested_outer_first),
        cmocka_unit_test(test_reschedule),
        cmocka_unit_test(test_cancel_inside),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
