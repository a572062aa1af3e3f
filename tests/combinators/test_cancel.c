/* test_cancel.c - cancellation details: messages, cancelling() counts,
 * uncancel(), cancelled(); how a combinator tells its own cancellation from
 * an outside one (task groups withdraw only their own request). */
#include "combo_test.h"

typedef struct {
    _Atomic long started;
    const char *msg;
    int cancelling_seen, left_after_uncancel, r2;
} msg_ctx;

static int reader(void *arg, void **res)
{
    msg_ctx *m = arg;
    atomic_fetch_add(&m->started, 1);
    int r = wf_sleep(LONG_NS);
    CHECK_EQ(r, -ECANCELED);
    CHECK_EQ(wf_cancel_message(wf_self(), &m->msg), 0);
    m->cancelling_seen = wf_cancelling(wf_self());
    /* Withdraw one request: with two made, waits still fail. */
    m->left_after_uncancel = wf_uncancel();
    m->r2 = wf_sleep(WF_NSEC_PER_MSEC);
    wf_uncancel();
    return wf_sleep(WF_NSEC_PER_MSEC); /* now it works */
}

/* The tasks that receive two requests in a row run on the worker of the
 * task that makes them (pinned to it, as that task is): they cannot run,
 * see the first request and end, before the second is made. (Unpinned,
 * another worker ran the reader between the two: it read "first" and one
 * request, or the sleeper ended and the second cancel was -EALREADY.) */
static int messages_body(void *arg, void **res)
{
    msg_ctx m = {0};
    wf_spawn_opts_t here = WF_SPAWN_OPTS_INIT;
    here.worker = wf_worker_index();
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, reader, &m, &here), 0);
    CHECK(wait_count(&m.started, 1, LONG_NS));
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel_msg(t, "first"), 0);
    CHECK_EQ(wf_cancel_msg(t, "second"), 0); /* the latest message wins */
    CHECK_EQ(wf_cancelling(t), 2);
    int st = 1;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0); /* it uncancelled twice, then slept normally */
    CHECK(m.msg && !strcmp(m.msg, "second"));
    CHECK_EQ(m.cancelling_seen, 2);
    CHECK_EQ(m.left_after_uncancel, 1);
    CHECK_EQ(m.r2, -ECANCELED);
    /* A plain wf_cancel has no message. */
    CHECK_EQ(wf_spawn(&t, sleep_forever, NULL, &here), 0);
    CHECK_EQ(wf_cancel_msg(t, "x"), 0);
    CHECK_EQ(wf_cancel(t), 0);
    const char *msg = "unset";
    CHECK_EQ(wf_cancel_message(t, &msg), 0);
    CHECK(msg == NULL);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    return 0;
}

static int m_messages(void *arg, void **res)
{
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = 1;
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, messages_body, NULL, &o), 0);
    int st = 1;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    return 0;
}

static void test_messages(void **state)
{
    run_main(2, m_messages, NULL);
}

static int m_cancelled(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, sleep_forever, NULL, NULL), 0);
    CHECK_EQ(wf_task_cancelled(t), 0); /* not ended */
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_wait(&t, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    CHECK_EQ(wf_task_cancelled(t), 1);
    CHECK_EQ(wf_cancel_msg(t, "late"), -EALREADY); /* ended: nothing recorded */
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(wf_spawn(&t, ret_status, (void *)(intptr_t)-EIO, NULL), 0);
    CHECK_EQ(wf_wait(&t, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    CHECK_EQ(wf_task_cancelled(t), 0); /* failed, not cancelled */
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    /* Dead handles and bad input. */
    const char *msg;
    CHECK_EQ(wf_task_cancelled(t), -EINVAL);
    CHECK_EQ(wf_cancel_msg(t, "x"), -EINVAL);
    CHECK_EQ(wf_cancel_message(t, &msg), -EINVAL);
    CHECK_EQ(wf_cancel_message(wf_self(), NULL), -EINVAL);
    return 0;
}

static void test_cancelled(void **state)
{
    run_main(2, m_cancelled, NULL);
    const char *msg;
    assert_int_equal(wf_cancel_msg(1, "x"), -EPERM);
    assert_int_equal(wf_cancel_message(1, &msg), -EPERM);
    assert_int_equal(wf_task_cancelled(1), -EPERM);
}

/* A task group's own cancellation of its parent is withdrawn at the wait;
 * an outside one stays (asyncio's cancelling()/uncancel() protocol). */
static int failing_later(void *arg, void **res)
{
    wf_sleep(2 * WF_NSEC_PER_MSEC);
    return -EIO;
}

static int parent_body(void *arg, void **res)
{
    int outside = (int)(intptr_t)arg;
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, failing_later, NULL, NULL), 0);
    /* The body waits; the child's failure cancels it. */
    CHECK_EQ(wf_sleep(LONG_NS), -ECANCELED);
    CHECK_EQ(wf_cancelling(wf_self()), 1);
    if (outside)
        CHECK_EQ(wf_cancel_msg(wf_self(), "outside"), 0);
    wf_group_failure_t f[2];
    CHECK_EQ(wf_group_wait(&g, f, 2), 1);
    CHECK_EQ(f[0].status, -EIO);
    /* The group withdrew its own request only. */
    CHECK_EQ(wf_cancelling(wf_self()), outside ? 1 : 0);
    return 0;
}

static int m_group_own_cancel(void *arg, void **res)
{
    wf_task_t t;
    for (intptr_t outside = 0; outside < 2; outside++) {
        CHECK_EQ(wf_spawn(&t, parent_body, (void *)outside, NULL), 0);
        int st = 1;
        CHECK_EQ(wf_join(t, &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
    return 0;
}

static void test_group_own_cancel(void **state)
{
    run_main(2, m_group_own_cancel, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_cancelled),
        cmocka_unit_test(test_group_own_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
