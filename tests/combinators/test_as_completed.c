/* test_as_completed.c - the as_completed iterator: order of completion,
 * tasks already ended, the overall deadline, exhaustion, references. */
#include "combo_test.h"

enum { N = 5 };

/* Children each parked on their own gate, released in a chosen order. */
typedef struct {
    wf_future_t *gate[N];
    child_spec spec[N];
    wf_task_t t[N];
    _Atomic long started;
} ordered;

static void spawn_ordered(ordered *o)
{
    atomic_store(&o->started, 0);
    for (int i = 0; i < N; i++) {
        o->gate[i] = gate_new();
        o->spec[i] = (child_spec){.gate = o->gate[i], .status = -i, .started = &o->started};
        CHECK_EQ(wf_spawn(&o->t[i], child_body, &o->spec[i], NULL), 0);
    }
}

static void free_ordered(ordered *o)
{
    for (int i = 0; i < N; i++)
        wf_future_release(o->gate[i]);
}

static int index_of(ordered *o, wf_task_t t)
{
    for (int i = 0; i < N; i++)
        if (o->t[i] == t)
            return i;
    return -1;
}

static int m_order(void *arg, void **res)
{
    ordered o;
    spawn_ordered(&o);
    wf_as_completed_t *it;
    CHECK_EQ(wf_as_completed_start(&it, o.t, N, WF_FOREVER), 0);
    static const int order[N] = {3, 0, 4, 1, 2};
    for (int k = 0; k < N; k++) {
        gate_open(o.gate[order[k]]);
        wf_task_t t = 0;
        CHECK_EQ(wf_as_completed_next(it, &t), 1);
        CHECK_EQ(index_of(&o, t), order[k]);
        /* The handed-back reference is the caller's: join gives the
         * outcome at once. */
        int st = 1;
        void *rv = NULL;
        CHECK_EQ(wf_join(t, &st, &rv), 0);
        CHECK_EQ(st, -order[k]);
        CHECK(rv == &o.spec[order[k]]);
    }
    wf_task_t t;
    CHECK_EQ(wf_as_completed_next(it, &t), 0); /* exhausted */
    CHECK_EQ(wf_as_completed_next(it, &t), 0);
    CHECK_EQ(wf_as_completed_end(it), 0);
    /* The caller's own references were not touched. */
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_join(o.t[i], NULL, NULL), 0);
    free_ordered(&o);
    return 0;
}

static void test_order(void **state)
{
    run_main(3, m_order, NULL);
}

static int m_already_done(void *arg, void **res)
{
    ordered o;
    spawn_ordered(&o);
    /* Two end before the iteration starts, in a known order. */
    gate_open(o.gate[2]);
    CHECK_EQ(wf_wait(&o.t[2], 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    gate_open(o.gate[1]);
    CHECK_EQ(wf_wait(&o.t[1], 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    wf_as_completed_t *it;
    /* Deadline 0: ended tasks are still handed back; then -ETIMEDOUT. */
    CHECK_EQ(wf_as_completed_start(&it, o.t, N, 0), 0);
    wf_task_t a, b, c;
    CHECK_EQ(wf_as_completed_next(it, &a), 1);
    CHECK_EQ(wf_as_completed_next(it, &b), 1);
    /* Already-ended tasks come in the order of the array. */
    CHECK_EQ(index_of(&o, a), 1);
    CHECK_EQ(index_of(&o, b), 2);
    CHECK_EQ(wf_as_completed_next(it, &c), -ETIMEDOUT);
    CHECK_EQ(wf_as_completed_next(it, &c), -ETIMEDOUT);
    /* One that ends after the deadline is still handed back. */
    gate_open(o.gate[4]);
    CHECK_EQ(wf_wait(&o.t[4], 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    CHECK_EQ(wf_as_completed_next(it, &c), 1);
    CHECK_EQ(index_of(&o, c), 4);
    /* End with two never handed out (still running): their references go
     * with the iterator, and nothing is cancelled. */
    CHECK_EQ(wf_as_completed_end(it), 0);
    CHECK_EQ(wf_join(a, NULL, NULL), 0);
    CHECK_EQ(wf_join(b, NULL, NULL), 0);
    CHECK_EQ(wf_join(c, NULL, NULL), 0);
    CHECK_EQ(wf_task_done(o.t[0]), 0);
    CHECK_EQ(wf_cancelling(o.t[0]), 0);
    gate_open(o.gate[0]);
    gate_open(o.gate[3]);
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_join(o.t[i], NULL, NULL), 0);
    free_ordered(&o);
    return 0;
}

static void test_already_done(void **state)
{
    run_main(2, m_already_done, NULL);
}

static int m_deadline(void *arg, void **res)
{
    ordered o;
    spawn_ordered(&o);
    wf_as_completed_t *it;
    int64_t t0 = wf_now();
    CHECK_EQ(wf_as_completed_start(&it, o.t, N, wf_deadline_in(10 * WF_NSEC_PER_MSEC)), 0);
    wf_task_t t;
    CHECK_EQ(wf_as_completed_next(it, &t), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 10 * WF_NSEC_PER_MSEC);
    CHECK_EQ(wf_as_completed_end(it), 0);
    for (int i = 0; i < N; i++)
        gate_open(o.gate[i]);
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_join(o.t[i], NULL, NULL), 0);
    free_ordered(&o);
    /* The empty iteration. */
    CHECK_EQ(wf_as_completed_start(&it, NULL, 0, WF_FOREVER), 0);
    CHECK_EQ(wf_as_completed_next(it, &t), 0);
    CHECK_EQ(wf_as_completed_end(it), 0);
    return 0;
}

static void test_deadline(void **state)
{
    run_main(2, m_deadline, NULL);
}

/* Two fibers on one iterator: the second is refused; a cancelled next
 * leaves the iterator usable. */
typedef struct {
    wf_as_completed_t *it;
    int ret;
    wf_task_t got;
} nexter_ctx;

static int nexter(void *arg, void **res)
{
    nexter_ctx *n = arg;
    n->ret = wf_as_completed_next(n->it, &n->got);
    return 0;
}

static int m_busy_and_cancel(void *arg, void **res)
{
    ordered o;
    spawn_ordered(&o);
    nexter_ctx n = {.ret = 7};
    CHECK_EQ(wf_as_completed_start(&n.it, o.t, N, WF_FOREVER), 0);
    wf_task_t nt;
    CHECK_EQ(wf_spawn(&nt, nexter, &n, NULL), 0);
    while (wf_task_state(nt) != WF_TASK_PARKED)
        wf_yield();
    wf_task_t t;
    CHECK_EQ(wf_as_completed_next(n.it, &t), -EBUSY);
    CHECK_EQ(wf_as_completed_end(n.it), -EBUSY);
    CHECK_EQ(wf_cancel(nt), 0);
    CHECK_EQ(wf_join(nt, NULL, NULL), 0);
    CHECK_EQ(n.ret, -ECANCELED);
    gate_open(o.gate[0]);
    CHECK_EQ(wf_as_completed_next(n.it, &t), 1);
    CHECK_EQ(t, o.t[0]);
    CHECK_EQ(wf_detach(t), 0);
    CHECK_EQ(wf_as_completed_end(n.it), 0);
    for (int i = 1; i < N; i++)
        gate_open(o.gate[i]);
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_join(o.t[i], NULL, NULL), 0);
    free_ordered(&o);
    return 0;
}

static void test_busy_and_cancel(void **state)
{
    run_main(2, m_busy_and_cancel, NULL);
}

static int m_bad_args(void *arg, void **res)
{
    wf_as_completed_t *it;
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_as_completed_start(NULL, &t, 1, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_as_completed_start(&it, NULL, 1, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_as_completed_start(&it, &t, 1, -9), -EINVAL);
    wf_task_t bad[2] = {t, 0x999};
    CHECK_EQ(wf_as_completed_start(&it, bad, 2, WF_FOREVER), -EINVAL);
    wf_task_t me[2] = {t, wf_self()};
    CHECK_EQ(wf_as_completed_start(&it, me, 2, WF_FOREVER), -EDEADLK);
    CHECK_EQ(wf_as_completed_next(NULL, &t), -EINVAL);
    CHECK_EQ(wf_as_completed_end(NULL), -EINVAL);
    CHECK_EQ(wf_as_completed_start(&it, &t, 1, WF_FOREVER), 0);
    CHECK_EQ(wf_as_completed_next(it, NULL), -EINVAL);
    CHECK_EQ(wf_as_completed_end(it), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(1, m_bad_args, NULL);
    wf_as_completed_t *it;
    wf_task_t t = 1;
    assert_int_equal(wf_as_completed_start(&it, &t, 1, 0), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),    cmocka_unit_test(test_already_done),
        cmocka_unit_test(test_deadline), cmocka_unit_test(test_busy_and_cancel),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
