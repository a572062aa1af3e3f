/* test_gather.c - wf_gather (asyncio.gather): fail fast, collect, cancel on
 * failure, cancellation and deadlines, references, edges. */
#include "combo_test.h"

/* --- success, results in order, references consumed ------------------------ */

static int m_basic(void *arg, void **res)
{
    enum { N = 64 };
    wf_task_t t[N];
    for (intptr_t i = 0; i < N; i++)
        CHECK_EQ(wf_spawn(&t[i], ret_arg, (void *)i, NULL), 0);
    wf_outcome_t out[N];
    size_t ff = 7;
    CHECK_EQ(wf_gather(t, N, 0, WF_FOREVER, out, &ff), 0);
    CHECK_EQ(ff, SIZE_MAX);
    for (intptr_t i = 0; i < N; i++) {
        CHECK_EQ(out[i].status, 0);
        CHECK_EQ((intptr_t)out[i].result, i);
        CHECK(handle_dead(t[i]));
    }
    /* Collect mode, NULL outputs. */
    for (intptr_t i = 0; i < N; i++)
        CHECK_EQ(wf_spawn(&t[i], ret_arg, (void *)i, NULL), 0);
    CHECK_EQ(wf_gather(t, N, WF_GATHER_COLLECT, WF_FOREVER, NULL, NULL), 0);
    for (int i = 0; i < N; i++)
        CHECK(handle_dead(t[i]));
    /* The empty set. */
    ff = 3;
    CHECK_EQ(wf_gather(NULL, 0, 0, WF_FOREVER, NULL, &ff), 0);
    CHECK_EQ(ff, SIZE_MAX);
    return 0;
}

static void test_basic(void **state)
{
    run_main(4, m_basic, NULL);
}

/* --- tasks that have already ended ---------------------------------------------- */

static int m_already_done(void *arg, void **res)
{
    enum { N = 16 };
    wf_task_t t[N];
    for (intptr_t i = 0; i < N; i++)
        CHECK_EQ(
            wf_spawn(&t[i], i == 5 ? ret_status : ret_arg, i == 5 ? (void *)(intptr_t)-EIO : (void *)i, NULL),
            0);
    /* Wait for all of them to end without consuming anything. */
    CHECK_EQ(wf_wait(t, N, WF_ALL_COMPLETED, WF_FOREVER, NULL), N);
    wf_outcome_t out[N];
    size_t ff;
    /* Deadline 0 with everything done: no timeout, every outcome. */
    CHECK_EQ(wf_gather(t, N, WF_GATHER_COLLECT, 0, out, &ff), 1);
    CHECK_EQ(ff, 5);
    CHECK_EQ(out[5].status, -EIO);
    CHECK_EQ((intptr_t)out[5].result, 0x5a5a);
    for (intptr_t i = 0; i < N; i++)
        if (i != 5)
            CHECK(out[i].status == 0 && (intptr_t)out[i].result == i);
    return 0;
}

static void test_already_done(void **state)
{
    run_main(2, m_already_done, NULL);
}

/* --- fail fast: the others keep running ----------------------------------------- */

static int m_fail_fast(void *arg, void **res)
{
    enum { N = 8 };
    wf_future_t *gate = gate_new();
    _Atomic long ran = 0, cancelled = 0;
    child_spec spec[N];
    wf_task_t t[N];
    /* Keep a second reference to each, to see them end later. */
    wf_task_t keep[N];
    for (int i = 0; i < N; i++) {
        spec[i] = (child_spec){
            .gate = i == 3 ? NULL : gate, .status = i == 3 ? -EIO : 0, .ran = &ran, .cancelled = &cancelled};
        CHECK_EQ(wf_spawn(&t[i], child_body, &spec[i], NULL), 0);
        keep[i] = t[i];
        CHECK_EQ(wf_task_ref(t[i]), 0);
    }
    wf_outcome_t out[N];
    size_t ff = 0;
    CHECK_EQ(wf_gather(t, N, 0, WF_FOREVER, out, &ff), 1);
    CHECK_EQ(ff, 3);
    CHECK_EQ(out[3].status, -EIO);
    CHECK(out[3].result == &spec[3]);
    for (int i = 0; i < N; i++)
        if (i != 3)
            CHECK_EQ(out[i].status, -EINPROGRESS);
    /* The others were not cancelled and finish when released. */
    CHECK_EQ(atomic_load(&cancelled), 0);
    gate_open(gate);
    for (int i = 0; i < N; i++) {
        int st = -1;
        CHECK_EQ(wf_join(keep[i], &st, NULL), 0);
        CHECK_EQ(st, i == 3 ? -EIO : 0);
    }
    CHECK_EQ(atomic_load(&ran), N);
    CHECK_EQ(atomic_load(&cancelled), 0);
    wf_future_release(gate);
    return 0;
}

static void test_fail_fast(void **state)
{
    run_main(3, m_fail_fast, NULL);
}

/* --- fail fast, cancelling the rest ---------------------------------------------------- */

static int m_cancel_on_failure(void *arg, void **res)
{
    enum { N = 10 };
    wf_future_t *gate = gate_new();
    _Atomic long ran = 0, cancelled = 0, started = 0;
    child_spec spec[N];
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        spec[i] = (child_spec){.gate = i == 7 ? NULL : gate,
                               .status = i == 7 ? -EPIPE : 0,
                               .ran = &ran,
                               .cancelled = &cancelled,
                               .started = &started};
        CHECK_EQ(wf_spawn(&t[i], child_body, &spec[i], NULL), 0);
    }
    wf_outcome_t out[N];
    size_t ff = 0;
    CHECK_EQ(wf_gather(t, N, WF_GATHER_CANCEL_ON_FAILURE, WF_FOREVER, out, &ff), 1);
    CHECK_EQ(ff, 7);
    /* Every other child was cancelled and awaited before the return. */
    for (int i = 0; i < N; i++)
        CHECK_EQ(out[i].status, i == 7 ? -EPIPE : -ECANCELED);
    /* Those that had started saw the cancellation in their wait; the
     * others never ran. */
    CHECK_EQ(atomic_load(&ran), 1);
    CHECK_EQ(atomic_load(&cancelled), atomic_load(&started) - 1);
    wf_future_release(gate);
    return 0;
}

static void test_cancel_on_failure(void **state)
{
    run_main(4, m_cancel_on_failure, NULL);
}

/* --- collect: every outcome, failures counted ---------------------------------------------- */

static int m_collect(void *arg, void **res)
{
    enum { N = 12 };
    wf_task_t t[N];
    for (intptr_t i = 0; i < N; i++) {
        if (i % 3 == 0)
            CHECK_EQ(wf_spawn(&t[i], ret_status, (void *)(intptr_t) - (EIO + (int)i), NULL), 0);
        else
            CHECK_EQ(wf_spawn(&t[i], ret_arg, (void *)i, NULL), 0);
    }
    wf_outcome_t out[N];
    size_t ff = SIZE_MAX;
    CHECK_EQ(wf_gather(t, N, WF_GATHER_COLLECT, WF_FOREVER, out, &ff), 4);
    CHECK(ff < N && ff % 3 == 0);
    for (intptr_t i = 0; i < N; i++) {
        if (i % 3 == 0)
            CHECK_EQ(out[i].status, -(EIO + (int)i));
        else
            CHECK(out[i].status == 0 && (intptr_t)out[i].result == i);
    }
    return 0;
}

static void test_collect(void **state)
{
    run_main(2, m_collect, NULL);
}

/* --- deadlines: 0, and one that passes ------------------------------------------------------ */

static int m_deadline(void *arg, void **res)
{
    enum { N = 6 };
    wf_future_t *gate = gate_new();
    _Atomic long ran = 0, cancelled = 0;
    child_spec spec[N];
    wf_task_t t[N];
    _Atomic long started = 0;
    for (int pass = 0; pass < 2; pass++) {
        atomic_store(&cancelled, 0);
        atomic_store(&started, 0);
        for (int i = 0; i < N; i++) {
            spec[i] = (child_spec){.gate = gate, .ran = &ran, .cancelled = &cancelled, .started = &started};
            CHECK_EQ(wf_spawn(&t[i], child_body, &spec[i], NULL), 0);
        }
        if (pass == 1)
            CHECK(wait_count(&started, N, LONG_NS)); /* all parked on the gate */
        int64_t dl = pass == 0 ? 0 : wf_deadline_in(20 * WF_NSEC_PER_MSEC);
        wf_outcome_t out[N];
        CHECK_EQ(wf_gather(t, N, WF_GATHER_COLLECT, dl, out, NULL), -ETIMEDOUT);
        for (int i = 0; i < N; i++) {
            CHECK_EQ(out[i].status, -ECANCELED);
            CHECK(handle_dead(t[i]));
        }
        /* Children that had started saw the cancellation; those that had
         * not never ran (pass 0 may have either). */
        if (pass == 1)
            CHECK_EQ(atomic_load(&cancelled), N);
    }
    CHECK_EQ(atomic_load(&ran), 0);
    wf_future_release(gate);
    return 0;
}

static void test_deadline(void **state)
{
    run_main(2, m_deadline, NULL);
}

/* --- cancelling the gather cancels its children, with the message ---------------------------- */

typedef struct {
    wf_future_t *gate;
    wf_future_t *started;
    child_spec spec[5];
    wf_outcome_t out[5];
    int ret;
    _Atomic long cancelled, nstarted;
    wf_task_t inner; /* shielded task (test_shielded_child) */
} gatherer_ctx;

static int gatherer(void *arg, void **res)
{
    gatherer_ctx *g = arg;
    wf_task_t t[5];
    for (int i = 0; i < 5; i++) {
        g->spec[i] = (child_spec){.gate = g->gate, .cancelled = &g->cancelled, .started = &g->nstarted};
        CHECK_EQ(wf_spawn(&t[i], child_body, &g->spec[i], NULL), 0);
    }
    wf_future_set(g->started, 0, NULL);
    g->ret = wf_gather(t, 5, 0, WF_FOREVER, g->out, NULL);
    return g->ret;
}

static int m_cancel_gather(void *arg, void **res)
{
    gatherer_ctx g = {.gate = gate_new(), .started = gate_new()};
    wf_task_t gt;
    CHECK_EQ(wf_spawn(&gt, gatherer, &g, NULL), 0);
    CHECK_EQ(wf_future_wait(g.started, WF_FOREVER, NULL, NULL), 0);
    /* Wait until the children wait on their gate and the gatherer is
     * parked in the gather. */
    CHECK(wait_count(&g.nstarted, 5, LONG_NS));
    while (wf_task_state(gt) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel_msg(gt, "stop it"), 0);
    int st = 0;
    CHECK_EQ(wf_join(gt, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(g.ret, -ECANCELED);
    CHECK_EQ(atomic_load(&g.cancelled), 5);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(g.out[i].status, -ECANCELED);
        CHECK(g.spec[i].seen_msg && !strcmp(g.spec[i].seen_msg, "stop it"));
    }
    wf_future_release(g.gate);
    wf_future_release(g.started);
    return 0;
}

static void test_cancel_gather(void **state)
{
    run_main(4, m_cancel_gather, NULL);
}

/* --- a shielded child outlives the cancelled gather ------------------------------------------- */

static int shielded_gatherer(void *arg, void **res)
{
    gatherer_ctx *g = arg;
    wf_task_t s;
    CHECK_EQ(wf_shield(g->inner, &s), 0);
    wf_future_set(g->started, 0, NULL);
    g->ret = wf_gather(&s, 1, 0, WF_FOREVER, g->out, NULL);
    return 0;
}

static int m_shielded_child(void *arg, void **res)
{
    gatherer_ctx g = {.gate = gate_new(), .started = gate_new()};
    _Atomic long ran = 0, cancelled = 0;
    child_spec spec = {.gate = g.gate, .status = 0, .ran = &ran, .cancelled = &cancelled};
    CHECK_EQ(wf_spawn(&g.inner, child_body, &spec, NULL), 0);
    wf_task_t gt;
    CHECK_EQ(wf_spawn(&gt, shielded_gatherer, &g, NULL), 0);
    CHECK_EQ(wf_future_wait(g.started, WF_FOREVER, NULL, NULL), 0);
    while (wf_task_state(gt) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(gt), 0);
    CHECK_EQ(wf_join(gt, NULL, NULL), 0);
    CHECK_EQ(g.ret, -ECANCELED);
    CHECK_EQ(g.out[0].status, -ECANCELED); /* the shield */
    /* The inner task was not touched: it runs on and succeeds. */
    CHECK_EQ(wf_task_done(g.inner), 0);
    CHECK_EQ(wf_cancelling(g.inner), 0);
    gate_open(g.gate);
    int st = -1;
    void *rv = NULL;
    CHECK_EQ(wf_join(g.inner, &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK(rv == &spec);
    CHECK_EQ(atomic_load(&ran), 1);
    CHECK_EQ(atomic_load(&cancelled), 0);
    wf_future_release(g.gate);
    wf_future_release(g.started);
    return 0;
}

static void test_shielded_child(void **state)
{
    run_main(2, m_shielded_child, NULL);
}

/* --- a child fails while the gathering task is being cancelled --------------------------------- */

typedef struct {
    wf_future_t *go;
    int ret;
    wf_outcome_t out[3];
    size_t ff;
} race_ctx;

static int failing_child(void *arg, void **res)
{
    race_ctx *r = arg;
    wf_future_wait(r->go, WF_FOREVER, NULL, NULL);
    return -EIO; /* fails whether or not it was cancelled */
}

static int race_gatherer(void *arg, void **res)
{
    race_ctx *r = arg;
    wf_task_t t[3];
    CHECK_EQ(wf_spawn(&t[0], failing_child, r, NULL), 0);
    CHECK_EQ(wf_spawn(&t[1], sleep_forever, NULL, NULL), 0);
    CHECK_EQ(wf_spawn(&t[2], sleep_forever, NULL, NULL), 0);
    r->ret = wf_gather(t, 3, 0, WF_FOREVER, r->out, &r->ff);
    return 0;
}

static int m_fail_while_cancelled(void *arg, void **res)
{
    int iters = SCALED(200), fails = 0, cancels = 0;
    for (int i = 0; i < iters; i++) {
        race_ctx r = {.go = gate_new(), .ret = 12345};
        wf_task_t gt;
        CHECK_EQ(wf_spawn(&gt, race_gatherer, &r, NULL), 0);
        /* Once the gatherer parks, it is in the gather. */
        while (wf_task_state(gt) != WF_TASK_PARKED)
            wf_yield();
        /* Both at once, from here: the child's failure and the cancel,
         * the child given a varying head start (it runs on any worker). */
        gate_open(r.go);
        for (int k = 0; k < i % 3; k++)
            wf_yield();
        wf_cancel(gt);
        CHECK_EQ(wf_join(gt, NULL, NULL), 0);
        if (r.ret == 1) {
            /* The failure won: fail fast returns it at once; the
             * sleepers run on, detached, until the runtime shuts down. */
            CHECK_EQ(r.ff, 0);
            CHECK_EQ(r.out[0].status, -EIO);
            fails++;
        } else {
            CHECK_EQ(r.ret, -ECANCELED);
            /* Cancelled: every child has ended, the failing one with its
             * own status or -ECANCELED if it never ran. */
            CHECK(r.out[0].status == -EIO || r.out[0].status == -ECANCELED);
            CHECK_EQ(r.out[1].status, -ECANCELED);
            CHECK_EQ(r.out[2].status, -ECANCELED);
            cancels++;
        }
        wf_future_release(r.go);
    }
    CHECK_EQ(fails + cancels, iters);
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr, "fail_while_cancelled: the failure won %d times, the cancel %d\n", fails, cancels);
    return 0;
}

static void test_fail_while_cancelled(void **state)
{
    run_main(4, m_fail_while_cancelled, NULL);
}

/* --- an enclosing timeout scope ------------------------------------------------------------------ */

static int m_scope(void *arg, void **res)
{
    wf_timeout_t to;
    wf_task_t t[2];
    CHECK_EQ(wf_spawn(&t[0], ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_spawn(&t[1], sleep_forever, NULL, NULL), 0);
    CHECK_EQ(wf_timeout_enter_in(&to, 10 * WF_NSEC_PER_MSEC), 0);
    wf_outcome_t out[2];
    CHECK_EQ(wf_gather(t, 2, WF_GATHER_COLLECT, WF_FOREVER, out, NULL), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    CHECK_EQ(out[0].status, 0);
    CHECK_EQ(out[1].status, -ECANCELED);
    return 0;
}

static void test_scope(void **state)
{
    run_main(2, m_scope, NULL);
}

/* --- bad input changes nothing ---------------------------------------------------------------------- */

static int m_bad_args(void *arg, void **res)
{
    wf_task_t t[3];
    for (intptr_t i = 0; i < 3; i++)
        CHECK_EQ(wf_spawn(&t[i], ret_arg, (void *)i, NULL), 0);
    wf_task_t bad[3] = {t[0], 0xdeadbeefull, t[2]};
    CHECK_EQ(wf_gather(bad, 3, 0, WF_FOREVER, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_gather(NULL, 2, 0, WF_FOREVER, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_gather(t, 3, 99, WF_FOREVER, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_gather(t, 3, WF_GATHER_COLLECT | WF_GATHER_CANCEL_ON_FAILURE, WF_FOREVER, NULL, NULL),
             -EINVAL);
    CHECK_EQ(wf_gather(t, 3, 0, -5, NULL, NULL), -EINVAL);
    /* The same task twice with one reference. */
    wf_task_t dup[2] = {t[1], t[1]};
    CHECK_EQ(wf_gather(dup, 2, 0, WF_FOREVER, NULL, NULL), -EINVAL);
    wf_task_t me[2] = {t[0], wf_self()};
    CHECK_EQ(wf_gather(me, 2, 0, WF_FOREVER, NULL, NULL), -EDEADLK);
    /* Nothing was consumed: with a second reference, the duplicate works. */
    CHECK_EQ(wf_task_ref(t[1]), 0);
    wf_outcome_t out[2];
    CHECK_EQ(wf_gather(dup, 2, 0, WF_FOREVER, out, NULL), 0);
    CHECK(out[0].result == (void *)1 && out[1].result == (void *)1);
    CHECK(handle_dead(t[1]));
    CHECK_EQ(wf_join(t[0], NULL, NULL), 0);
    CHECK_EQ(wf_join(t[2], NULL, NULL), 0);
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(2, m_bad_args, NULL);
    wf_task_t t = 1;
    assert_int_equal(wf_gather(&t, 1, 0, WF_FOREVER, NULL, NULL), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_already_done),
        cmocka_unit_test(test_fail_fast),
        cmocka_unit_test(test_cancel_on_failure),
        cmocka_unit_test(test_collect),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancel_gather),
        cmocka_unit_test(test_shielded_child),
        cmocka_unit_test(test_fail_while_cancelled),
        cmocka_unit_test(test_scope),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
