/* test_task.c - spawn, join, detach, references, cancel, yield, state. */
#include "common.h"

static int ret_arg(void *arg, void **res)
{
    *res = arg;
    return 0;
}

static int ret_status(void *arg, void **res)
{
    *res = (void *)0x1234;
    return (int)(intptr_t)arg;
}

/* --- spawn and join ------------------------------------------------------ */

static int m_spawn_join(void *arg, void **res)
{
    enum { N = 100 };
    wf_task_t t[N];
    for (intptr_t i = 0; i < N; i++)
        CHECK_EQ(wf_spawn(&t[i], ret_arg, (void *)i, NULL), 0);
    for (intptr_t i = N - 1; i >= 0; i--) {
        int st = -1;
        void *rv = NULL;
        CHECK_EQ(wf_join(t[i], &st, &rv), 0);
        CHECK_EQ(st, 0);
        CHECK_EQ((intptr_t)rv, i);
    }
    /* Status and result of a failing task: its "exception". */
    wf_task_t f;
    CHECK_EQ(wf_spawn(&f, ret_status, (void *)(intptr_t)-EIO, NULL), 0);
    int st = 0;
    void *rv = NULL;
    CHECK_EQ(wf_join(f, &st, &rv), 0);
    CHECK_EQ(st, -EIO);
    CHECK(rv == (void *)0x1234);
    /* NULL outputs are allowed. */
    CHECK_EQ(wf_spawn(&f, ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_join(f, NULL, NULL), 0);
    return 0;
}

static void test_spawn_join(void **state)
{
    run_main(0, m_spawn_join, NULL);
}

/* --- bad arguments -------------------------------------------------------- */

static int m_bad_args(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(NULL, ret_arg, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_spawn(&t, NULL, NULL, NULL), -EINVAL);
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.stack_size = 1024;
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, &o), -EINVAL);
    o.stack_size = (size_t)4 << 30;
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, &o), -EINVAL);
    o = (wf_spawn_opts_t)WF_SPAWN_OPTS_INIT;
    o.worker = wf_workers();
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, &o), -EINVAL);
    o.worker = -2;
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, &o), -EINVAL);
    /* Handles that were never valid. */
    CHECK_EQ(wf_join(WF_TASK_NONE, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_join(0xdeadbeefcafeull, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_detach(12345), -EINVAL);
    CHECK_EQ(wf_cancel(~0ull), -EINVAL);
    CHECK_EQ(wf_task_ref(42), -EINVAL);
    CHECK_EQ(wf_task_state(7), -EINVAL);
    CHECK_EQ(wf_task_done(7), -EINVAL);
    CHECK_EQ(wf_task_outcome(7, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_cancelling(7), -EINVAL);
    char buf[8];
    CHECK_EQ(wf_task_name(7, buf, sizeof buf), -EINVAL);
    CHECK_EQ(wf_join_until(wf_self(), -2, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_task_name(wf_self(), NULL, 4), -EINVAL);
    CHECK_EQ(wf_task_name(wf_self(), buf, 0), -EINVAL);
    return 0;
}

static void test_bad_args(void **state)
{
    run_main(0, m_bad_args, NULL);
}

/* --- double join, join after detach, references, join self --------------- */

static int m_handles(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, ret_arg, (void *)7, NULL), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), -EINVAL); /* double join */
    CHECK_EQ(wf_detach(t), -EINVAL);

    CHECK_EQ(wf_spawn(&t, ret_arg, (void *)7, NULL), 0);
    CHECK_EQ(wf_detach(t), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), -EINVAL); /* join after detach */
    CHECK_EQ(wf_detach(t), -EINVAL);           /* double detach */

    /* Two references: two joins. */
    CHECK_EQ(wf_spawn(&t, ret_arg, (void *)9, NULL), 0);
    CHECK_EQ(wf_task_ref(t), 0);
    void *rv = NULL;
    CHECK_EQ(wf_join(t, NULL, &rv), 0);
    CHECK(rv == (void *)9);
    rv = NULL;
    CHECK_EQ(wf_join(t, NULL, &rv), 0);
    CHECK(rv == (void *)9);
    CHECK_EQ(wf_join(t, NULL, NULL), -EINVAL);

    /* A dead handle stays dead after its slot is reused by new tasks. */
    wf_task_t old = t, fresh[64];
    for (int i = 0; i < 64; i++)
        CHECK_EQ(wf_spawn(&fresh[i], ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_join(old, NULL, NULL), -EINVAL);
    for (int i = 0; i < 64; i++) {
        CHECK(fresh[i] != old);
        CHECK_EQ(wf_join(fresh[i], NULL, NULL), 0);
    }

    CHECK_EQ(wf_join(wf_self(), NULL, NULL), -EDEADLK);
    return 0;
}

static void test_handles(void **state)
{
    run_main(0, m_handles, NULL);
}

/* --- join with a deadline ------------------------------------------------- */

/* A task that runs until told to stop: joins with deadlines can rely on it
 * not being done, however slow the machine. */
static int waits_for_flag(void *arg, void **res)
{
    _Atomic int *go = arg;
    while (!atomic_load(go))
        if (wf_sleep(WF_NSEC_PER_MSEC) == -ECANCELED)
            return -ECANCELED;
    return 0;
}

static int m_join_deadline(void *arg, void **res)
{
    _Atomic int go = 0;
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, waits_for_flag, &go, NULL), 0);
    CHECK_EQ(wf_join_until(t, 0, NULL, NULL), -ETIMEDOUT); /* poll */
    int64_t t0 = wf_now();
    CHECK_EQ(wf_join_until(t, wf_deadline_in(10 * WF_NSEC_PER_MSEC), NULL, NULL), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 10 * WF_NSEC_PER_MSEC);
    CHECK_EQ(wf_task_done(t), 0);
    /* The handle is still live after a timeout. */
    atomic_store(&go, 1);
    int st = -1;
    CHECK_EQ(wf_join_until(t, WF_FOREVER, &st, NULL), 0);
    CHECK_EQ(st, 0);
    /* A finished task joins even with a deadline in the past. */
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, NULL), 0);
    while (wf_task_done(t) != 1)
        wf_yield();
    CHECK_EQ(wf_join_until(t, 0, NULL, NULL), 0);
    return 0;
}

static void test_join_deadline(void **state)
{
    run_main(0, m_join_deadline, NULL);
}

/* --- cancellation ---------------------------------------------------------- */

typedef struct {
    _Atomic int started;
    _Atomic int ran, dropped;
    int first, second, after_uncancel, yield_r;
} cancel_probe;

static int cancellable_sleeper(void *arg, void **res)
{
    cancel_probe *p = arg;
    atomic_store(&p->started, 1);
    p->first = wf_sleep(60 * WF_NSEC_PER_SEC);
    p->second = wf_sleep(WF_NSEC_PER_MSEC); /* sticky: fails again */
    p->yield_r = wf_yield();
    CHECK_EQ(wf_cancelling(wf_self()), 1);
    CHECK_EQ(wf_uncancel(), 0);
    CHECK_EQ(wf_uncancel(), 0); /* already zero: stays zero */
    p->after_uncancel = wf_sleep(WF_NSEC_PER_MSEC);
    return -ECANCELED;
}

static int never_runs(void *arg, void **res)
{
    cancel_probe *p = arg;
    atomic_store(&p->ran, 1);
    return 0;
}

static void dropped(void *arg)
{
    cancel_probe *p = arg;
    atomic_fetch_add(&p->dropped, 1);
}

static int m_cancel(void *arg, void **res)
{
    cancel_probe p = {0};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, cancellable_sleeper, &p, NULL), 0);
    CHECK(wait_flag(&p.started, 10 * WF_NSEC_PER_SEC));
    /* Wait until it is really parked, so the cancel interrupts a park. */
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(p.first, -ECANCELED);
    CHECK_EQ(p.second, -ECANCELED);
    CHECK_EQ(p.yield_r, -ECANCELED);
    CHECK_EQ(p.after_uncancel, 0);

    /* Cancelled before it ever ran: it never runs. Pin it to this worker
     * and do not yield, so it cannot start before the cancel. */
    cancel_probe q = {0};
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = wf_worker_index();
    o.drop = dropped;
    CHECK_EQ(wf_spawn(&t, never_runs, &q, &o), 0);
    CHECK_EQ(wf_task_state(t), WF_TASK_PENDING);
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_cancelling(t), 2);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(atomic_load(&q.ran), 0);
    CHECK_EQ(atomic_load(&q.dropped), 1); /* its argument was handed back */

    /* Cancelling a finished task: -EALREADY, nothing recorded. */
    CHECK_EQ(wf_spawn(&t, ret_arg, NULL, NULL), 0);
    while (wf_task_done(t) != 1)
        wf_yield();
    CHECK_EQ(wf_cancel(t), -EALREADY);
    CHECK_EQ(wf_cancelling(t), 0);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    return 0;
}

static void test_cancel(void **state)
{
    run_main(0, m_cancel, NULL);
}

/* A joiner that is cancelled keeps its handle; the task runs on. */
static int m_cancel_joiner_inner(void *arg, void **res)
{
    wf_task_t victim = (wf_task_t)(uintptr_t)arg;
    return wf_join(victim, NULL, NULL);
}

static int m_cancel_joiner(void *arg, void **res)
{
    _Atomic int go = 0;
    wf_task_t sleeper, joiner;
    CHECK_EQ(wf_spawn(&sleeper, waits_for_flag, &go, NULL), 0);
    CHECK_EQ(wf_task_ref(sleeper), 0); /* the joiner's reference */
    CHECK_EQ(wf_spawn(&joiner, m_cancel_joiner_inner, (void *)(uintptr_t)sleeper, NULL), 0);
    while (wf_task_state(joiner) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(joiner), 0);
    int st = 0;
    CHECK_EQ(wf_join(joiner, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED); /* its join returned -ECANCELED */
    /* The sleeper was not cancelled and the joiner's reference is live. */
    CHECK_EQ(wf_task_done(sleeper), 0);
    atomic_store(&go, 1);
    CHECK_EQ(wf_join(sleeper, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_join(sleeper, &st, NULL), 0);
    return 0;
}

static void test_cancel_joiner(void **state)
{
    run_main(0, m_cancel_joiner, NULL);
}

/* Self-cancel: delivered at the next wait. */
static int self_cancel(void *arg, void **res)
{
    CHECK_EQ(wf_cancel(wf_self()), 0);
    return wf_sleep(WF_NSEC_PER_SEC);
}

static int m_self_cancel(void *arg, void **res)
{
    wf_task_t t;
    int st = 0;
    CHECK_EQ(wf_spawn(&t, self_cancel, NULL, NULL), 0);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    return 0;
}

static void test_self_cancel(void **state)
{
    run_main(0, m_self_cancel, NULL);
}

/* --- yield, state, outcome, name ------------------------------------------ */

typedef struct {
    _Atomic int go;
    _Atomic int parked;
} state_probe;

static int waits_for_go(void *arg, void **res)
{
    state_probe *p = arg;
    CHECK_EQ(wf_task_state(wf_self()), WF_TASK_RUNNING);
    while (!atomic_load(&p->go))
        wf_sleep(WF_NSEC_PER_MSEC);
    *res = (void *)0x55;
    return -ENOENT;
}

static int m_state(void *arg, void **res)
{
    state_probe p = {0};
    wf_task_t t;
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.name = "a-rather-long-task-name-that-will-be-truncated";
    o.worker = wf_worker_index(); /* stays pending until we yield */
    CHECK_EQ(wf_spawn(&t, waits_for_go, &p, &o), 0);
    CHECK_EQ(wf_task_state(t), WF_TASK_PENDING);
    CHECK_EQ(wf_task_done(t), 0);
    CHECK_EQ(wf_task_outcome(t, NULL, NULL), -EAGAIN);
    char name[64];
    CHECK_EQ(wf_task_name(t, name, sizeof name), 0);
    CHECK_EQ((long)strlen(name), 31);
    CHECK(strncmp(name, o.name, 31) == 0);
    CHECK_EQ(wf_task_name(t, name, 5), 0);
    CHECK(strcmp(name, "a-ra") == 0);
    /* Until it is seen parked in its sleep, with a generous deadline (a
     * count of yields was no bound: once we moved to the other worker,
     * 100,000 of them took a few ms, which t's worker's thread may spend
     * preempted on a loaded machine). */
    int seen_parked = 0;
    int64_t give_up = wf_deadline_in(30 * WF_NSEC_PER_SEC);
    while (!seen_parked && wf_now() < give_up) {
        wf_yield();
        seen_parked = wf_task_state(t) == WF_TASK_PARKED;
    }
    CHECK(seen_parked);
    atomic_store(&p.go, 1);
    while (wf_task_done(t) != 1)
        wf_yield();
    CHECK_EQ(wf_task_state(t), WF_TASK_DONE);
    int st = 0;
    void *rv = NULL;
    CHECK_EQ(wf_task_outcome(t, &st, &rv), 0);
    CHECK_EQ(st, -ENOENT);
    CHECK(rv == (void *)0x55);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK(wf_self() != WF_TASK_NONE);
    CHECK_EQ(wf_task_name(wf_self(), name, sizeof name), 0);
    CHECK(strcmp(name, "main") == 0);
    return 0;
}

static void test_state(void **state)
{
    run_main(0, m_state, NULL);
}

/* Yield lets others run: two tasks on one worker alternate. */
typedef struct {
    _Atomic long turns;
    int last;
    int alternations;
} yield_probe;

static int yield_pinger(void *arg, void **res)
{
    yield_probe *p = arg;
    int me = wf_self() & 1 ? 1 : 2;
    for (int i = 0; i < 1000; i++) {
        if (p->last && p->last != me)
            p->alternations++;
        p->last = me;
        atomic_fetch_add(&p->turns, 1);
        CHECK_EQ(wf_yield(), 0);
    }
    return 0;
}

static int m_yield(void *arg, void **res)
{
    yield_probe p = {0};
    /* Pinned to the worker we run on, which we hold until the join: both
     * are spawned before either runs. (On worker 0 from main on worker 1,
     * a ran at once and could finish its 1000 turns alone before b came,
     * if main was preempted between the two spawns.) */
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = wf_worker_index();
    wf_task_t a, b;
    CHECK_EQ(wf_spawn(&a, yield_pinger, &p, &o), 0);
    CHECK_EQ(wf_spawn(&b, yield_pinger, &p, &o), 0);
    CHECK_EQ(wf_join(a, NULL, NULL), 0);
    CHECK_EQ(wf_join(b, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&p.turns), 2000);
    /* Both pinned to one worker: they must have interleaved. */
    CHECK(p.alternations > 500);
    return 0;
}

static void test_yield(void **state)
{
    run_main(2, m_yield, NULL);
}

/* --- pinning and stack sizes ------------------------------------------------ */

static int pinned_checker(void *arg, void **res)
{
    int want = (int)(intptr_t)arg;
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(wf_worker_index(), want);
        if (i % 3 == 0)
            wf_sleep(10 * WF_NSEC_PER_USEC);
        else
            wf_yield();
    }
    return 0;
}

static int m_pinned(void *arg, void **res)
{
    int n = wf_workers();
    wf_task_t t[64];
    int k = 0;
    for (int w = 0; w < n && k < 64; w++)
        for (int j = 0; j < 4 && k < 64; j++) {
            wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
            o.worker = w;
            CHECK_EQ(wf_spawn(&t[k++], pinned_checker, (void *)(intptr_t)w, &o), 0);
        }
    for (int i = 0; i < k; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    return 0;
}

static void test_pinned(void **state)
{
    run_main(3, m_pinned, NULL);
}

static long deep(int n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    if (n == 0)
        return pad[0];
    return deep(n - 1) + pad[0];
}

static int deep_task(void *arg, void **res)
{
    /* About 600 KiB of stack: needs the 1 MiB the spawner asked for. */
    int depth = (int)(intptr_t)arg;
    long r = deep(depth);
    wf_yield();
    *res = (void *)(intptr_t)r;
    return 0;
}

static int m_stack_size(void *arg, void **res)
{
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.stack_size = 1 << 20;
    o.name = "deep";
    wf_task_t t;
    int depth = WF_TEST_SANITIZED ? 300 : 1000;
    CHECK_EQ(wf_spawn(&t, deep_task, (void *)(intptr_t)depth, &o), 0);
    void *rv = NULL;
    CHECK_EQ(wf_join(t, NULL, &rv), 0);
    CHECK(rv != NULL);
    return 0;
}

static void test_stack_size(void **state)
{
    run_main(0, m_stack_size, NULL);
}

/* --- many workers, handle churn --------------------------------------------- */

static int m_churn(void *arg, void **res)
{
    /* Spawn/join in waves bigger than every cache, so handle slots and
     * stacks travel between workers and the global pools. */
    enum { WAVE = 5000 };
    wf_task_t *t = malloc(sizeof *t * WAVE);
    for (int round = 0; round < 20; round++) {
        for (intptr_t i = 0; i < WAVE; i++)
            CHECK_EQ(wf_spawn(&t[i], ret_arg, (void *)i, NULL), 0);
        for (intptr_t i = 0; i < WAVE; i++) {
            void *rv = NULL;
            CHECK_EQ(wf_join(t[i], NULL, &rv), 0);
            CHECK_EQ((intptr_t)rv, i);
        }
    }
    free(t);
    return 0;
}

static void test_churn(void **state)
{
    run_main(4, m_churn, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawn_join),   cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_handles),      cmocka_unit_test(test_join_deadline),
        cmocka_unit_test(test_cancel),       cmocka_unit_test(test_cancel_joiner),
        cmocka_unit_test(test_self_cancel),  cmocka_unit_test(test_state),
        cmocka_unit_test(test_yield),        cmocka_unit_test(test_pinned),
        cmocka_unit_test(test_stack_size),   cmocka_unit_test(test_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
