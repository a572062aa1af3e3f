/* test_cleanup.c - cleanup scopes (wf_cleanup_enter) and the lifetime
 * reports at task exit (a scope left entered, a group never waited). */
#include "common.h"

#include <sys/wait.h>

#define LONG_NS (60 * WF_NSEC_PER_SEC) /* generous: never reached when right */

/* --- cleanup after a cancellation ----------------------------------------- */

typedef struct shared {
    wf_event_t go;    /* set by main once every task is cancelled */
    wf_event_t never; /* never set */
    _Atomic long cleaned;
} shared;

static int cleaner(void *arg, void **res)
{
    (void)res;
    shared *sh = arg;
    /* Parked forever until cancelled. */
    CHECK_EQ(wf_event_wait(&sh->never), -ECANCELED);
    /* Sticky: a plain wait fails at once. */
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), -ECANCELED);
    CHECK_EQ(wf_yield(), -ECANCELED);

    wf_timeout_t cs;
    CHECK_EQ(wf_cleanup_enter_in(&cs, LONG_NS), 0);
    /* Waits work again: a sleep, a yield, an event that another task sets. */
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), 0);
    CHECK_EQ(wf_yield(), 0);
    CHECK_EQ(wf_event_wait(&sh->go), 0);
    CHECK_EQ(wf_timeout_leave(&cs), 0);

    /* Back outside: the request is still pending, nothing was lost. */
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), -ECANCELED);
    CHECK_EQ(wf_cancelling(wf_self()), 1);
    atomic_fetch_add(&sh->cleaned, 1);
    return -ECANCELED;
}

static int m_cleanup_after_cancel(void *arg, void **res)
{
    (void)arg;
    (void)res;
    enum { N = 200 };
    shared sh;
    CHECK_EQ(wf_event_init(&sh.go), 0);
    CHECK_EQ(wf_event_init(&sh.never), 0);
    atomic_init(&sh.cleaned, 0);
    wf_task_t t[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_spawn(&t[i], cleaner, &sh, NULL), 0);
    for (int i = 0; i < N; i++) {
        int64_t end = wf_now() + LONG_NS;
        while (wf_task_state(t[i]) != WF_TASK_PARKED && wf_now() < end)
            wf_yield();
        CHECK_EQ(wf_cancel(t[i]), 0);
    }
    CHECK(wf_event_set(&sh.go) >= 0);
    for (int i = 0; i < N; i++) {
        int st = 1;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        CHECK_EQ(st, -ECANCELED);
    }
    CHECK_EQ(atomic_load(&sh.cleaned), N);
    wf_event_destroy(&sh.go);
    wf_event_destroy(&sh.never);
    return 0;
}

static void test_cleanup_after_cancel(void **state)
{
    (void)state;
    run_main(0, m_cleanup_after_cancel, NULL);
}

/* --- the scope's own deadline bounds the cleanup ---------------------------- */

static int m_cleanup_deadline(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_event_t never;
    CHECK_EQ(wf_event_init(&never), 0);
    CHECK_EQ(wf_cancel(wf_self()), 0);
    CHECK_EQ(wf_event_wait(&never), -ECANCELED);
    wf_timeout_t cs;
    int64_t start = wf_now();
    CHECK_EQ(wf_cleanup_enter_in(&cs, 20 * WF_NSEC_PER_MSEC), 0);
    /* Nobody sets it: the cleanup's deadline ends the wait, not a hang. */
    CHECK_EQ(wf_event_wait(&never), -ETIMEDOUT);
    CHECK(wf_now() - start >= 20 * WF_NSEC_PER_MSEC);
    CHECK_EQ(wf_timeout_expired(&cs), 1);
    CHECK_EQ(wf_timeout_leave(&cs), 1);
    CHECK_EQ(wf_event_wait(&never), -ECANCELED);
    CHECK_EQ(wf_uncancel(), 0);
    wf_event_destroy(&never);
    return 0;
}

static void test_cleanup_deadline(void **state)
{
    (void)state;
    run_main(2, m_cleanup_deadline, NULL);
}

/* --- an expired timeout scope around it does not cut the cleanup short ------ */

static int m_cleanup_outer_expired(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_timeout_t outer, cs, inner;
    CHECK_EQ(wf_timeout_enter(&outer, wf_now()), 0); /* already past */
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), -ETIMEDOUT);
    CHECK_EQ(wf_cleanup_enter_in(&cs, LONG_NS), 0);
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), 0);
    /* A timeout scope inside the cleanup still applies. */
    CHECK_EQ(wf_timeout_enter(&inner, wf_now()), 0);
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&inner), 1);
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), 0);
    CHECK_EQ(wf_timeout_leave(&cs), 0);
    /* Out again: the outer scope's expiry is back. */
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&outer), 1);
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), 0);
    return 0;
}

static void test_cleanup_outer_expired(void **state)
{
    (void)state;
    run_main(2, m_cleanup_outer_expired, NULL);
}

/* --- a cancel that arrives during the cleanup waits for its end ------------- */

typedef struct during {
    wf_event_t entered, done;
    _Atomic int result;
} during;

static int in_cleanup(void *arg, void **res)
{
    (void)res;
    during *d = arg;
    wf_timeout_t cs;
    CHECK_EQ(wf_cleanup_enter_in(&cs, LONG_NS), 0);
    CHECK(wf_event_set(&d->entered) >= 0);
    atomic_store(&d->result, wf_event_wait(&d->done));
    CHECK_EQ(wf_timeout_leave(&cs), 0);
    CHECK_EQ(wf_yield(), -ECANCELED);
    return 0;
}

static int m_cancel_during(void *arg, void **res)
{
    (void)arg;
    (void)res;
    for (int i = 0; i < SCALED(200); i++) {
        during d;
        CHECK_EQ(wf_event_init(&d.entered), 0);
        CHECK_EQ(wf_event_init(&d.done), 0);
        atomic_init(&d.result, 1);
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, in_cleanup, &d, NULL), 0);
        CHECK_EQ(wf_event_wait(&d.entered), 0);
        CHECK_EQ(wf_cancel(t), 0); /* maybe before its wait, maybe during */
        CHECK(wf_event_set(&d.done) >= 0);
        int st = 1;
        CHECK_EQ(wf_join(t, &st, NULL), 0);
        CHECK_EQ(st, 0);
        CHECK_EQ(atomic_load(&d.result), 0); /* woken by the set, not cancelled */
        wf_event_destroy(&d.entered);
        wf_event_destroy(&d.done);
    }
    return 0;
}

static void test_cancel_during(void **state)
{
    (void)state;
    run_main(0, m_cancel_during, NULL);
}

/* --- a group waited inside a cleanup scope is not aborted ------------------- */

static int child_sleeps(void *arg, void **res)
{
    (void)res;
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), 0);
    atomic_fetch_add((_Atomic long *)arg, 1);
    return 0;
}

static int m_group_in_cleanup(void *arg, void **res)
{
    (void)arg;
    (void)res;
    _Atomic long ran;
    atomic_init(&ran, 0);
    CHECK_EQ(wf_cancel(wf_self()), 0);
    wf_timeout_t cs;
    CHECK_EQ(wf_cleanup_enter_in(&cs, LONG_NS), 0);
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    for (int i = 0; i < 16; i++)
        CHECK_EQ(wf_group_spawn(&g, NULL, child_sleeps, &ran, NULL), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), 0);
    CHECK_EQ(atomic_load(&ran), 16);
    CHECK_EQ(wf_timeout_leave(&cs), 0);
    CHECK_EQ(wf_uncancel(), 0);
    return 0;
}

static void test_group_in_cleanup(void **state)
{
    (void)state;
    run_main(2, m_group_in_cleanup, NULL);
}

/* --- a drop callback that waits ----------------------------------------------- */

typedef struct dropped {
    _Atomic int plain, scoped, calls;
} dropped;

static int never_body(void *arg, void **res)
{
    (void)arg;
    (void)res;
    CHECK(0); /* cancelled before it ran: must not run */
    return 0;
}

static dropped drops;

static void waiting_drop(void *arg)
{
    (void)arg;
    atomic_store(&drops.plain, wf_sleep(WF_NSEC_PER_MSEC));
    wf_timeout_t cs;
    int e = wf_cleanup_enter_in(&cs, LONG_NS);
    atomic_store(&drops.scoped, e ? e : wf_sleep(WF_NSEC_PER_MSEC));
    if (!e)
        (void)wf_timeout_leave(&cs);
    atomic_fetch_add(&drops.calls, 1);
}

static int m_drop_cleanup(void *arg, void **res)
{
    (void)arg;
    (void)res;
    for (int i = 0; i < SCALED(100); i++) {
        atomic_store(&drops.plain, 1);
        atomic_store(&drops.scoped, 1);
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.worker = wf_worker_index(); /* pinned to us, who keep running: not started */
        o.drop = waiting_drop;
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, never_body, NULL, &o), 0);
        CHECK_EQ(wf_cancel(t), 0);
        int st = 1;
        CHECK_EQ(wf_join(t, &st, NULL), 0);
        CHECK_EQ(st, -ECANCELED);
        CHECK_EQ(atomic_load(&drops.plain), -ECANCELED);
        CHECK_EQ(atomic_load(&drops.scoped), 0);
    }
    CHECK_EQ(atomic_load(&drops.calls), SCALED(100));
    return 0;
}

static void test_drop_cleanup(void **state)
{
    (void)state;
    run_main(2, m_drop_cleanup, NULL);
}

/* --- bad input ---------------------------------------------------------------- */

static int m_bad_input(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_timeout_t cs;
    CHECK_EQ(wf_cleanup_enter(NULL, wf_deadline_in(WF_NSEC_PER_SEC)), -EINVAL);
    CHECK_EQ(wf_cleanup_enter(&cs, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_cleanup_enter(&cs, -7), -EINVAL);
    CHECK_EQ(wf_cleanup_enter_in(&cs, -1), -EINVAL);
    CHECK_EQ(wf_timeout_leave(&cs), -EINVAL); /* refusals entered nothing */
    CHECK_EQ(wf_cleanup_enter_in(&cs, LONG_NS), 0);
    CHECK_EQ(wf_cleanup_enter_in(&cs, LONG_NS), -EBUSY);
    CHECK_EQ(wf_timeout_reschedule(&cs, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_timeout_reschedule(&cs, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_timeout_leave(&cs), 0);
    CHECK_EQ(wf_timeout_leave(&cs), -EINVAL);
    return 0;
}

static void test_bad_input(void **state)
{
    (void)state;
    wf_timeout_t cs;
    assert_int_equal(wf_cleanup_enter_in(&cs, WF_NSEC_PER_SEC), -EPERM); /* not a fiber */
    run_main(1, m_bad_input, NULL);
}

/* --- lifetime reports at task exit ------------------------------------------ */

static wf_event_t hold; /* never set: a group child that outlives its parent */

static int scope_leaker(void *arg, void **res)
{
    (void)arg;
    (void)res;
    static wf_timeout_t tm; /* static: the report must not need it anyway */
    CHECK_EQ(wf_timeout_enter_in(&tm, LONG_NS), 0);
    return 0; /* returns inside the scope */
}

static int group_leaker_child(void *arg, void **res)
{
    (void)arg;
    (void)res;
    (void)wf_event_wait(&hold);
    return 0;
}

static int group_leaker(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, group_leaker_child, NULL, NULL), 0);
    return 0; /* returns without wf_group_wait */
}

static int m_leak(void *arg, void **res)
{
    (void)res;
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.name = "leaky-one";
    wf_task_t t;
    CHECK_EQ(wf_event_init(&hold), 0);
    CHECK_EQ(wf_spawn(&t, (wf_fn)arg, NULL, &o), 0);
    int st = 1;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    /* The leaked scope was dropped: our own waits are unaffected. */
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), 0);
    return 0;
}

/* The child process of run_child: m_leak(body) on two workers. */
static int leak_child(void *body)
{
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    int st = 1;
    int e = wf_run(&cfg, m_leak, body, &st, NULL);
    return e == 0 && st == 0 && atomic_load(&check_failures) == 0 ? 0 : 3;
}

/* Run m_leak(body) in a child process; return its stderr and wait status. */
static char *run_child(wf_fn body, int *wstatus)
{
    return run_child_stderr(leak_child, (void *)body, wstatus);
}

static void test_exit_report_scope(void **state)
{
    (void)state;
    int ws = 0;
    char *out = run_child(scope_leaker, &ws);
    if (!strstr(out, "task 'leaky-one'") || !strstr(out, "returned inside a timeout scope"))
        fprintf(stderr, "child printed: %s\n", out);
    assert_non_null(strstr(out, "task 'leaky-one'"));
    assert_non_null(strstr(out, "returned inside a timeout scope"));
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0); /* a warning, not fatal */
    free(out);
}

static void test_exit_report_group(void **state)
{
    (void)state;
    int ws = 0;
    char *out = run_child(group_leaker, &ws);
    if (!strstr(out, "task 'leaky-one'") || !strstr(out, "task group still open"))
        fprintf(stderr, "child printed: %s\n", out);
    assert_non_null(strstr(out, "task 'leaky-one'"));
    assert_non_null(strstr(out, "returned with a task group still open"));
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGABRT);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cleanup_after_cancel),
        cmocka_unit_test(test_cleanup_deadline),
        cmocka_unit_test(test_cleanup_outer_expired),
        cmocka_unit_test(test_cancel_during),
        cmocka_unit_test(test_group_in_cleanup),
        cmocka_unit_test(test_drop_cleanup),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_exit_report_scope),
        cmocka_unit_test(test_exit_report_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
