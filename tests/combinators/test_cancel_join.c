/* test_cancel_join.c - wf_cancel_join: cancel a set, then join it all.
 * Many tasks on every worker, some ignoring their cancellation for a while
 * (wf_uncancel), some failing when cancelled, some already ended, with
 * exact counts; the deadline bound and what it does to references; the
 * caller's cancellation and an expired scope do not interrupt the wait, a
 * cleanup scope's bound does;
 * dead handles and other bad input change nothing. */
#include "combo_test.h"

#define MS WF_NSEC_PER_MSEC

enum { K_SLEEP, K_STUBBORN, K_FAIL, K_ENDED, K_KINDS };

typedef struct {
    wf_future_t *hold; /* stubborn children wait on it once uncancelled */
    const char *msg;   /* the message every cancelled child must see */
    _Atomic long started, cancelled, stubborn_waiting, stubborn_done, bad_msg;
    _Atomic int joined; /* set once the caller's wf_cancel_join returned */
} cj_ctx;

typedef struct {
    cj_ctx *c;
    int kind;
} cj_arg;

/* K_ENDED returns at once. The others sleep until cancelled, check the
 * message, then: K_SLEEP ends cancelled; K_FAIL fails with -EPIPE (a
 * failure of its own, not a cancellation); K_STUBBORN withdraws the
 * request and goes on until `hold` opens, then succeeds. */
static int cj_child(void *arg, void **res)
{
    cj_arg *a = arg;
    cj_ctx *c = a->c;
    *res = a;
    if (a->kind == K_ENDED)
        return 0;
    atomic_fetch_add(&c->started, 1);
    int r = wf_sleep(LONG_NS);
    CHECK_EQ(r, -ECANCELED);
    const char *m = "unset";
    CHECK_EQ(wf_cancel_message(wf_self(), &m), 0);
    if (m != c->msg)
        atomic_fetch_add(&c->bad_msg, 1);
    atomic_fetch_add(&c->cancelled, 1);
    switch (a->kind) {
    case K_SLEEP:
        return -ECANCELED;
    case K_FAIL:
        return -EPIPE;
    default:
        CHECK_EQ(wf_uncancel(), 0);
        atomic_fetch_add(&c->stubborn_waiting, 1);
        CHECK_EQ(wf_future_wait(c->hold, WF_FOREVER, NULL, NULL), 0);
        atomic_fetch_add(&c->stubborn_done, 1);
        return 0;
    }
}

/* Opens `hold` once `target` stubborn children wait on it, checking that
 * the caller is still inside wf_cancel_join (it cannot leave before). */
typedef struct {
    cj_ctx *c;
    long target;
} opener_arg;

static int opener(void *arg, void **res)
{
    opener_arg *o = arg;
    CHECK(wait_count(&o->c->stubborn_waiting, o->target, LONG_NS));
    CHECK_EQ(atomic_load(&o->c->joined), 0);
    gate_open(o->c->hold);
    return 0;
}

static void ctx_init(cj_ctx *c, const char *msg)
{
    memset(c, 0, sizeof *c);
    c->hold = gate_new();
    c->msg = msg;
}

static int m_many(void *arg, void **res)
{
    const size_t M = SCALED(1200);
    cj_ctx c;
    ctx_init(&c, "shutdown");
    wf_task_t *t = malloc(M * sizeof *t);
    cj_arg *args = malloc(M * sizeof *args);
    wf_outcome_t *out = malloc(M * sizeof *out);
    size_t count[K_KINDS] = {0};
    for (size_t i = 0; i < M; i++) {
        args[i] = (cj_arg){.c = &c, .kind = (int)(i % K_KINDS)};
        count[args[i].kind]++;
        CHECK_EQ(wf_spawn(&t[i], cj_child, &args[i], NULL), 0);
    }
    /* Every child is running (parked in its sleep), and the quick ones
     * have ended, before the call. */
    CHECK(wait_count(&c.started, (long)(M - count[K_ENDED]), LONG_NS));
    wf_task_t *ended = malloc(M * sizeof *ended);
    size_t ne = 0;
    for (size_t i = 0; i < M; i++)
        if (args[i].kind == K_ENDED)
            ended[ne++] = t[i];
    CHECK_EQ(wf_wait(ended, ne, WF_ALL_COMPLETED, WF_FOREVER, NULL), (int)ne);
    CHECK_EQ(wf_wait(t, M, WF_FIRST_COMPLETED, 0, NULL), (int)ne); /* the only ones */
    free(ended);
    opener_arg oa = {.c = &c, .target = (long)count[K_STUBBORN]};
    wf_task_t op;
    CHECK_EQ(wf_spawn(&op, opener, &oa, NULL), 0);

    for (size_t i = 0; i < M; i++)
        out[i] = (wf_outcome_t){.status = 1, .result = NULL};
    CHECK_EQ(wf_cancel_join(t, M, c.msg, WF_FOREVER, out), (int)count[K_FAIL]);
    atomic_store(&c.joined, 1);

    static const int want[K_KINDS] = {-ECANCELED, 0, -EPIPE, 0};
    size_t got[K_KINDS] = {0};
    for (size_t i = 0; i < M; i++) {
        CHECK_EQ(out[i].status, want[args[i].kind]);
        CHECK(out[i].result == &args[i]);
        got[args[i].kind] += out[i].status == want[args[i].kind];
        CHECK(handle_dead(t[i])); /* consumed */
    }
    for (int k = 0; k < K_KINDS; k++)
        CHECK_EQ(got[k], count[k]);
    CHECK_EQ(atomic_load(&c.cancelled), (long)(M - count[K_ENDED]));
    CHECK_EQ(atomic_load(&c.stubborn_done), (long)count[K_STUBBORN]);
    CHECK_EQ(atomic_load(&c.bad_msg), 0);
    CHECK_EQ(wf_join(op, NULL, NULL), 0);
    CHECK_EQ(wf_cancelling(wf_self()), 0);
    wf_future_release(c.hold);
    free(t);
    free(args);
    free(out);
    return 0;
}

static void test_many(void **state)
{
    run_main(4, m_many, NULL);
}

/* The deadline bounds the wait for stubborn children: -ETIMEDOUT, every
 * reference consumed, the stragglers detached and still running. (Only
 * tasks that ended before the call, or cannot end before the deadline,
 * are in these sets: which side of a deadline a task cancelled during the
 * call lands on would be a matter of timing.) */
static int m_deadline(void *arg, void **res)
{
    cj_ctx c;
    ctx_init(&c, NULL);
    cj_arg a_end = {.c = &c, .kind = K_ENDED}, a_stub = {.c = &c, .kind = K_STUBBORN};
    wf_task_t t[4];
    CHECK_EQ(wf_spawn(&t[0], cj_child, &a_end, NULL), 0);
    CHECK_EQ(wf_spawn(&t[1], cj_child, &a_end, NULL), 0);
    CHECK_EQ(wf_spawn(&t[2], cj_child, &a_stub, NULL), 0);
    CHECK_EQ(wf_spawn(&t[3], cj_child, &a_stub, NULL), 0);
    CHECK(wait_count(&c.started, 2, LONG_NS));
    CHECK_EQ(wf_wait(t, 2, WF_ALL_COMPLETED, WF_FOREVER, NULL), 2);
    wf_task_t kept = t[2];
    CHECK_EQ(wf_task_ref(kept), 0); /* a hold on one straggler */
    wf_outcome_t out[4];
    int64_t t0 = wf_now();
    CHECK_EQ(wf_cancel_join(t, 4, NULL, wf_deadline_in(20 * MS), out), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 20 * MS);
    for (int i = 0; i < 2; i++)
        CHECK(out[i].status == 0 && out[i].result == &a_end);
    for (int i = 2; i < 4; i++)
        CHECK(out[i].status == -EINPROGRESS && out[i].result == NULL);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            CHECK(handle_dead(t[i]));
    /* Both stragglers withdrew their request and run on. */
    CHECK(wait_count(&c.stubborn_waiting, 2, LONG_NS));
    CHECK_EQ(wf_task_done(kept), 0);
    CHECK_EQ(wf_cancelling(kept), 0);
    gate_open(c.hold);
    int st = 1;
    void *rv = NULL;
    CHECK_EQ(wf_join(kept, &st, &rv), 0);
    CHECK(st == 0 && rv == &a_stub);
    CHECK(wait_count(&c.stubborn_done, 2, LONG_NS)); /* the detached one ended too */
    CHECK_EQ(atomic_load(&c.bad_msg), 0);
    wf_future_release(c.hold);

    /* Deadline 0: cancel, report what has already ended, detach the rest. */
    ctx_init(&c, "now");
    CHECK_EQ(wf_spawn(&t[0], cj_child, &a_end, NULL), 0);
    CHECK_EQ(wf_spawn(&t[1], cj_child, &a_stub, NULL), 0);
    CHECK(wait_count(&c.started, 1, LONG_NS));
    CHECK_EQ(wf_wait(t, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    CHECK_EQ(wf_cancel_join(t, 2, c.msg, 0, out), -ETIMEDOUT);
    CHECK(out[0].status == 0 && out[0].result == &a_end);
    CHECK_EQ(out[1].status, -EINPROGRESS);
    CHECK(handle_dead(t[0]) && handle_dead(t[1]));
    CHECK(wait_count(&c.stubborn_waiting, 1, LONG_NS));
    gate_open(c.hold);
    CHECK(wait_count(&c.stubborn_done, 1, LONG_NS));
    CHECK_EQ(atomic_load(&c.bad_msg), 0);
    wf_future_release(c.hold);

    /* Inside a cleanup scope its bound applies too (WF_FOREVER here). */
    ctx_init(&c, NULL);
    CHECK_EQ(wf_spawn(&t[0], cj_child, &a_end, NULL), 0);
    CHECK_EQ(wf_spawn(&t[1], cj_child, &a_stub, NULL), 0);
    CHECK(wait_count(&c.started, 1, LONG_NS));
    CHECK_EQ(wf_wait(t, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    wf_timeout_t cs;
    t0 = wf_now();
    CHECK_EQ(wf_cleanup_enter_in(&cs, 20 * MS), 0);
    CHECK_EQ(wf_cancel_join(t, 2, NULL, WF_FOREVER, out), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 20 * MS);
    CHECK_EQ(wf_timeout_leave(&cs), 1);
    CHECK(out[0].status == 0 && out[1].status == -EINPROGRESS);
    CHECK(handle_dead(t[0]) && handle_dead(t[1]));
    CHECK(wait_count(&c.stubborn_waiting, 1, LONG_NS));
    gate_open(c.hold);
    CHECK(wait_count(&c.stubborn_done, 1, LONG_NS));
    wf_future_release(c.hold);
    return 0;
}

static void test_deadline(void **state)
{
    run_main(3, m_deadline, NULL);
}

/* Neither the caller's cancellation (before the call or during it) nor an
 * expired timeout scope interrupts the wait; the caller's request stays
 * pending afterwards. */
typedef struct {
    cj_ctx *c;
    int mode; /* 0: cancelled during the call; 1: cancelled before it, in an expired scope */
    int ret;
    wf_outcome_t out[3];
    int cancelling_after;
    int sleep_after;
    cj_arg a[3];
} joiner_ctx;

static int joiner(void *arg, void **res)
{
    joiner_ctx *j = arg;
    wf_task_t t[3];
    for (int i = 0; i < 3; i++) {
        j->a[i] = (cj_arg){.c = j->c, .kind = i == 1 ? K_SLEEP : K_STUBBORN};
        CHECK_EQ(wf_spawn(&t[i], cj_child, &j->a[i], NULL), 0);
    }
    CHECK(wait_count(&j->c->started, 3, LONG_NS));
    wf_timeout_t to;
    if (j->mode == 1) {
        CHECK_EQ(wf_timeout_enter(&to, 0), 0); /* already expired */
        CHECK_EQ(wf_cancel(wf_self()), 0);
    }
    j->ret = wf_cancel_join(t, 3, j->c->msg, WF_FOREVER, j->out);
    atomic_store(&j->c->joined, 1);
    j->cancelling_after = wf_cancelling(wf_self());
    j->sleep_after = wf_sleep(MS);
    if (j->mode == 1)
        CHECK_EQ(wf_timeout_leave(&to), 1);
    return 0;
}

static int m_uninterruptible(void *arg, void **res)
{
    for (int mode = 0; mode < 2; mode++) {
        cj_ctx c;
        ctx_init(&c, mode ? "before" : "during");
        joiner_ctx j = {.c = &c, .mode = mode, .ret = 1};
        wf_task_t jt;
        CHECK_EQ(wf_spawn(&jt, joiner, &j, NULL), 0);
        /* Both stubborn children have been cancelled by the call and now
         * wait for `hold`: the call cannot return before it opens. */
        CHECK(wait_count(&c.stubborn_waiting, 2, LONG_NS));
        if (mode == 0)
            CHECK_EQ(wf_cancel(jt), 0);
        CHECK_EQ(atomic_load(&c.joined), 0);
        gate_open(c.hold);
        int st = 1;
        CHECK_EQ(wf_join(jt, &st, NULL), 0);
        CHECK_EQ(st, 0);
        CHECK_EQ(j.ret, 0);
        CHECK_EQ(j.out[0].status, 0);
        CHECK_EQ(j.out[1].status, -ECANCELED);
        CHECK_EQ(j.out[2].status, 0);
        CHECK_EQ(j.cancelling_after, 1); /* the caller's request stays */
        CHECK_EQ(j.sleep_after, -ECANCELED);
        CHECK_EQ(atomic_load(&c.cancelled), 3);
        CHECK_EQ(atomic_load(&c.bad_msg), 0);
        wf_future_release(c.hold);
    }
    return 0;
}

static void test_uninterruptible(void **state)
{
    run_main(3, m_uninterruptible, NULL);
}

/* A task named twice, with two references: two requests, both given back;
 * an empty set; out may be NULL. */
static int m_duplicates(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, sleep_forever, NULL, NULL), 0);
    CHECK_EQ(wf_task_ref(t), 0);
    wf_task_t two[2] = {t, t};
    wf_outcome_t out[2];
    CHECK_EQ(wf_cancel_join(two, 2, NULL, WF_FOREVER, out), 0);
    CHECK_EQ(out[0].status, -ECANCELED);
    CHECK_EQ(out[1].status, -ECANCELED);
    CHECK(handle_dead(t));
    CHECK_EQ(wf_cancel_join(NULL, 0, NULL, WF_FOREVER, NULL), 0);
    wf_task_t u[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wf_spawn(&u[i], i ? sleep_forever : ret_status, (void *)(intptr_t)(i ? 0 : -EIO), NULL), 0);
    /* u[0] fails on its own (-EIO): counted; the cancelled ones are not.
     * (Let it end first: cancelled before it ran, it would never run.) */
    CHECK_EQ(wf_wait(u, 1, WF_ALL_COMPLETED, WF_FOREVER, NULL), 1);
    CHECK_EQ(wf_cancel_join(u, 3, NULL, WF_FOREVER, NULL), 1);
    for (int i = 0; i < 3; i++)
        CHECK(handle_dead(u[i]));
    return 0;
}

static void test_duplicates(void **state)
{
    run_main(2, m_duplicates, NULL);
}

/* Bad input: an error, nothing cancelled, consumed or written. */
static int m_bad_args(void *arg, void **res)
{
    wf_task_t t[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wf_spawn(&t[i], sleep_forever, NULL, NULL), 0);
    wf_outcome_t out[3];
    for (int i = 0; i < 3; i++)
        out[i] = (wf_outcome_t){.status = 7, .result = &out[i]};
    wf_task_t set[4] = {t[0], t[1], 0x77, t[2]}; /* a never-valid handle */
    CHECK_EQ(wf_cancel_join(set, 4, "x", WF_FOREVER, out), -EINVAL);
    set[2] = WF_TASK_NONE;
    CHECK_EQ(wf_cancel_join(set, 4, "x", WF_FOREVER, out), -EINVAL);
    /* A handle already joined. */
    wf_task_t gone;
    CHECK_EQ(wf_spawn(&gone, ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_join(gone, NULL, NULL), 0);
    set[2] = gone;
    CHECK_EQ(wf_cancel_join(set, 4, "x", WF_FOREVER, out), -EINVAL);
    /* Named twice with one reference. */
    set[2] = t[0];
    CHECK_EQ(wf_cancel_join(set, 4, "x", WF_FOREVER, out), -EINVAL);
    set[2] = wf_self();
    CHECK_EQ(wf_cancel_join(set, 4, "x", WF_FOREVER, out), -EDEADLK);
    CHECK_EQ(wf_cancel_join(NULL, 1, "x", WF_FOREVER, out), -EINVAL);
    CHECK_EQ(wf_cancel_join(t, 3, "x", -7, out), -EINVAL);
    for (int i = 0; i < 3; i++) {
        CHECK(out[i].status == 7 && out[i].result == &out[i]);
        CHECK_EQ(wf_cancelling(t[i]), 0); /* not cancelled */
        CHECK_EQ(wf_task_done(t[i]), 0);  /* live, still running */
    }
    CHECK_EQ(wf_cancel_join(t, 3, NULL, WF_FOREVER, out), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(out[i].status, -ECANCELED);
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(2, m_bad_args, NULL);
    wf_task_t t = 1;
    assert_int_equal(wf_cancel_join(&t, 1, NULL, WF_FOREVER, NULL), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_uninterruptible),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
