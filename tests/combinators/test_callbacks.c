/* test_callbacks.c - done callbacks (Task.add_done_callback): run once
 * with the outcome, in order, at once for an ended task, removable, from
 * any worker; many tasks, exact counts. */
#include "combo_test.h"

typedef struct {
    _Atomic long calls;
    _Atomic long order_bad;
    _Atomic long last; /* the tag of the last callback run */
    wf_task_t task;
    int status;
    void *result;
} cb_ctx;

static void record_cb(wf_task_t t, int status, void *result, void *arg)
{
    cb_ctx *c = arg;
    c->task = t;
    c->status = status;
    c->result = result;
    atomic_fetch_add(&c->calls, 1);
}

typedef struct {
    _Atomic long *seq;
    long tag;
    _Atomic long *bad;
} order_arg;

static void order_cb(wf_task_t t, int status, void *result, void *arg)
{
    order_arg *o = arg;
    long prev = atomic_fetch_add(o->seq, 1);
    if (prev != o->tag)
        atomic_fetch_add(o->bad, 1);
}

static int m_basic(void *arg, void **res)
{
    wf_future_t *gate = gate_new();
    child_spec spec = {.gate = gate, .status = -EIO};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, child_body, &spec, NULL), 0);
    cb_ctx c = {0};
    CHECK_EQ(wf_task_add_done_callback(t, record_cb, &c), 0);
    _Atomic long seq = 0, bad = 0;
    order_arg oa[5];
    for (int i = 0; i < 5; i++) {
        oa[i] = (order_arg){.seq = &seq, .tag = i, .bad = &bad};
        CHECK_EQ(wf_task_add_done_callback(t, order_cb, &oa[i]), 0);
    }
    CHECK_EQ(atomic_load(&c.calls), 0);
    gate_open(gate);
    int st;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    /* The callbacks run on the finishing thread after the joiners are
     * woken: wait for them. */
    CHECK(wait_count(&seq, 5, LONG_NS));
    CHECK(wait_count(&c.calls, 1, LONG_NS));
    CHECK_EQ(atomic_load(&bad), 0);
    CHECK_EQ(c.task, t);
    CHECK_EQ(c.status, -EIO);
    CHECK(c.result == &spec);
    wf_future_release(gate);
    return 0;
}

static void test_basic(void **state)
{
    run_main(2, m_basic, NULL);
}

static int m_already_done(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, ret_arg, (void *)77, NULL), 0);
    CHECK_EQ(wf_wait(&t, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    cb_ctx c = {0};
    CHECK_EQ(wf_task_add_done_callback(t, record_cb, &c), 0);
    /* Run at once, before the call returned. */
    CHECK_EQ(atomic_load(&c.calls), 1);
    CHECK(c.status == 0 && c.result == (void *)77);
    CHECK_EQ(wf_task_remove_done_callback(t, record_cb, &c), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    return 0;
}

static void test_already_done(void **state)
{
    run_main(1, m_already_done, NULL);
}

static int m_remove(void *arg, void **res)
{
    wf_future_t *gate = gate_new();
    child_spec spec = {.gate = gate};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, child_body, &spec, NULL), 0);
    cb_ctx a = {0}, b = {0};
    CHECK_EQ(wf_task_add_done_callback(t, record_cb, &a), 0);
    CHECK_EQ(wf_task_add_done_callback(t, record_cb, &b), 0);
    CHECK_EQ(wf_task_add_done_callback(t, record_cb, &a), 0);
    /* Every (fn, arg) match goes; others stay. */
    CHECK_EQ(wf_task_remove_done_callback(t, record_cb, &a), 2);
    CHECK_EQ(wf_task_remove_done_callback(t, record_cb, &a), 0);
    gate_open(gate);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK(wait_count(&b.calls, 1, LONG_NS));
    CHECK_EQ(atomic_load(&a.calls), 0);
    wf_future_release(gate);
    return 0;
}

static void test_remove(void **state)
{
    run_main(2, m_remove, NULL);
}

/* A callback may spawn, detach and complete futures. */
static void spawn_cb(wf_task_t t, int status, void *result, void *arg)
{
    wf_future_t *f = arg;
    wf_task_t n;
    if (wf_spawn(&n, ret_arg, NULL, NULL) == 0)
        wf_detach(n);
    wf_future_set(f, status, result);
    wf_future_release(f);
}

static int m_from_callback(void *arg, void **res)
{
    wf_future_t *f = gate_new();
    wf_future_ref(f); /* the callback's reference */
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, ret_arg, (void *)5, NULL), 0);
    CHECK_EQ(wf_task_add_done_callback(t, spawn_cb, f), 0);
    CHECK_EQ(wf_detach(t), 0); /* callbacks do not need a reference */
    int st = 1;
    void *rv = NULL;
    CHECK_EQ(wf_future_wait(f, wf_deadline_in(LONG_NS), &st, &rv), 0);
    CHECK(st == 0 && rv == (void *)5);
    wf_future_release(f);
    return 0;
}

static void test_from_callback(void **state)
{
    run_main(2, m_from_callback, NULL);
}

/* Many tasks on every worker, two callbacks each, some removed, some
 * tasks cancelled before they run: every remaining callback runs exactly
 * once. */
static void count_cb(wf_task_t t, int status, void *result, void *arg)
{
    atomic_fetch_add((_Atomic long *)arg, 1);
}

static void never_cb(wf_task_t t, int status, void *result, void *arg)
{
    atomic_fetch_add((_Atomic long *)arg, 1000000);
}

static int m_many(void *arg, void **res)
{
    enum { N = 2000 };
    int n = SCALED(N);
    _Atomic long count = 0;
    wf_task_t *t = malloc(sizeof *t * (size_t)n);
    long expected = 0;
    for (int i = 0; i < n; i++) {
        CHECK_EQ(wf_spawn(&t[i], i % 3 ? ret_arg : sleep_forever, NULL, NULL), 0);
        CHECK_EQ(wf_task_add_done_callback(t[i], count_cb, &count), 0);
        CHECK_EQ(wf_task_add_done_callback(t[i], never_cb, &count), 0);
        int removed = wf_task_remove_done_callback(t[i], never_cb, &count);
        CHECK(removed == 0 || removed == 1);
        /* A task that ended first has already run both. */
        expected += removed ? 1 : 1000001;
        if (i % 3 == 0)
            CHECK_EQ(wf_cancel(t[i]), 0);
    }
    for (int i = 0; i < n; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    CHECK(wait_count(&count, expected, LONG_NS));
    CHECK_EQ(atomic_load(&count), expected);
    free(t);
    return 0;
}

static void test_many(void **state)
{
    run_main(4, m_many, NULL);
}

static int m_bad_args(void *arg, void **res)
{
    cb_ctx c = {0};
    CHECK_EQ(wf_task_add_done_callback(0x31, record_cb, &c), -EINVAL);
    CHECK_EQ(wf_task_add_done_callback(wf_self(), NULL, &c), -EINVAL);
    CHECK_EQ(wf_task_remove_done_callback(0x31, record_cb, &c), -EINVAL);
    CHECK_EQ(wf_task_remove_done_callback(wf_self(), NULL, &c), -EINVAL);
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(1, m_bad_args, NULL);
    assert_int_equal(wf_task_add_done_callback(1, record_cb, NULL), -EPERM);
    assert_int_equal(wf_task_remove_done_callback(1, record_cb, NULL), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),  cmocka_unit_test(test_already_done),
        cmocka_unit_test(test_remove), cmocka_unit_test(test_from_callback),
        cmocka_unit_test(test_many),   cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
