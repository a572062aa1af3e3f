/* test_future.c - futures: completed by fibers, by timer callbacks and by
 * plain pthreads outside the runtime; awaited by fibers (deadline,
 * cancellation) and by plain threads; references. */
#include "combo_test.h"

#include <time.h>

static int m_basic(void *arg, void **res)
{
    wf_future_t *f;
    CHECK_EQ(wf_future_create(&f), 0);
    CHECK_EQ(wf_future_done(f), 0);
    int st = 1;
    void *rv = NULL;
    CHECK_EQ(wf_future_wait(f, 0, &st, &rv), -ETIMEDOUT); /* poll */
    CHECK_EQ(wf_future_set(f, -EIO, (void *)9), 0);
    CHECK_EQ(wf_future_done(f), 1);
    CHECK_EQ(wf_future_set(f, 0, NULL), -EALREADY); /* InvalidStateError */
    CHECK_EQ(wf_future_cancel(f), -EALREADY);
    CHECK_EQ(wf_future_wait(f, 0, &st, &rv), 0);
    CHECK(st == -EIO && rv == (void *)9);
    CHECK_EQ(wf_future_wait(f, WF_FOREVER, NULL, NULL), 0);
    CHECK_EQ(wf_future_release(f), 0);
    /* Cancel. */
    CHECK_EQ(wf_future_create(&f), 0);
    CHECK_EQ(wf_future_cancel(f), 0);
    CHECK_EQ(wf_future_wait(f, WF_FOREVER, &st, &rv), 0);
    CHECK(st == -ECANCELED && rv == NULL);
    CHECK_EQ(wf_future_release(f), 0);
    return 0;
}

static void test_basic(void **state)
{
    run_main(1, m_basic, NULL);
}

/* Many fibers wait, one fiber completes: every waiter gets the outcome. */
typedef struct {
    wf_future_t *f;
    _Atomic long got, started;
} waiters_ctx;

static int fiber_waiter(void *arg, void **res)
{
    waiters_ctx *w = arg;
    atomic_fetch_add(&w->started, 1);
    int st = 1;
    void *rv = NULL;
    CHECK_EQ(wf_future_wait(w->f, wf_deadline_in(LONG_NS), &st, &rv), 0);
    if (st == 0 && rv == (void *)w)
        atomic_fetch_add(&w->got, 1);
    return 0;
}

static int m_many_waiters(void *arg, void **res)
{
    enum { N = 200 };
    waiters_ctx w = {0};
    CHECK_EQ(wf_future_create(&w.f), 0);
    wf_task_t t[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_spawn(&t[i], fiber_waiter, &w, NULL), 0);
    CHECK(wait_count(&w.started, N, LONG_NS));
    CHECK_EQ(wf_future_set(w.f, 0, &w), 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&w.got), N);
    wf_future_release(w.f);
    return 0;
}

static void test_many_waiters(void **state)
{
    run_main(4, m_many_waiters, NULL);
}

/* Completed from plain pthreads: fibers parked on futures are woken
 * through the inject queue. */
typedef struct {
    wf_future_t *f;
    long delay_us;
    intptr_t value;
} completer_arg;

static void *pthread_completer(void *arg)
{
    completer_arg *c = arg;
    if (c->delay_us) {
        struct timespec ts = {0, c->delay_us * 1000};
        nanosleep(&ts, NULL);
    }
    int r = wf_future_set(c->f, 0, (void *)c->value);
    wf_future_release(c->f); /* the completer's reference */
    return (void *)(intptr_t)r;
}

static int m_from_pthread(void *arg, void **res)
{
    enum { N = 32 };
    int n = SCALED(N) < 4 ? 4 : SCALED(N);
    for (int round = 0; round < 10; round++) {
        wf_future_t *f[N];
        completer_arg ca[N];
        pthread_t th[N];
        for (int i = 0; i < n; i++) {
            CHECK_EQ(wf_future_create(&f[i]), 0);
            CHECK_EQ(wf_future_ref(f[i]), 0);
            ca[i] = (completer_arg){.f = f[i], .delay_us = (i % 4) * 200, .value = i * 10 + round};
            CHECK_EQ(pthread_create(&th[i], NULL, pthread_completer, &ca[i]), 0);
        }
        for (int i = 0; i < n; i++) {
            int st = 1;
            void *rv = NULL;
            CHECK_EQ(wf_future_wait(f[i], wf_deadline_in(LONG_NS), &st, &rv), 0);
            CHECK_EQ(st, 0);
            CHECK_EQ((intptr_t)rv, i * 10 + round);
            wf_future_release(f[i]);
        }
        for (int i = 0; i < n; i++) {
            void *r;
            pthread_join(th[i], &r);
            CHECK_EQ((intptr_t)r, 0);
        }
    }
    return 0;
}

static void test_from_pthread(void **state)
{
    run_main(2, m_from_pthread, NULL);
}

/* Plain threads wait on a future a fiber completes; one times out. */
typedef struct {
    wf_future_t *f;
    int64_t deadline;
    int ret, st;
    void *rv;
} thread_waiter_arg;

static void *pthread_waiter(void *arg)
{
    thread_waiter_arg *w = arg;
    w->ret = wf_future_wait(w->f, w->deadline, &w->st, &w->rv);
    return NULL;
}

static int m_thread_waits(void *arg, void **res)
{
    enum { N = 4 };
    wf_future_t *f;
    CHECK_EQ(wf_future_create(&f), 0);
    thread_waiter_arg wa[N + 1];
    pthread_t th[N + 1];
    for (int i = 0; i < N; i++) {
        wa[i] = (thread_waiter_arg){.f = f, .deadline = WF_FOREVER, .ret = 1};
        CHECK_EQ(pthread_create(&th[i], NULL, pthread_waiter, &wa[i]), 0);
    }
    /* One with a short deadline, on a future never completed. */
    wf_future_t *never;
    CHECK_EQ(wf_future_create(&never), 0);
    wa[N] = (thread_waiter_arg){.f = never, .deadline = wf_deadline_in(5 * WF_NSEC_PER_MSEC), .ret = 1};
    CHECK_EQ(pthread_create(&th[N], NULL, pthread_waiter, &wa[N]), 0);
    wf_sleep(2 * WF_NSEC_PER_MSEC); /* not required: either order works */
    CHECK_EQ(wf_future_set(f, -EPIPE, (void *)f), 0);
    for (int i = 0; i <= N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(wa[i].ret, 0);
        CHECK_EQ(wa[i].st, -EPIPE);
        CHECK(wa[i].rv == (void *)f);
    }
    CHECK_EQ(wa[N].ret, -ETIMEDOUT);
    wf_future_release(f);
    wf_future_release(never);
    return 0;
}

static void test_thread_waits(void **state)
{
    run_main(2, m_thread_waits, NULL);
}

/* Waiting fibers: deadline, cancellation (the future is not cancelled),
 * an enclosing scope. */
typedef struct {
    wf_future_t *f;
    int ret;
} cancel_waiter_ctx;

static int cancel_waiter(void *arg, void **res)
{
    cancel_waiter_ctx *c = arg;
    c->ret = wf_future_wait(c->f, WF_FOREVER, NULL, NULL);
    return 0;
}

static int m_deadline_cancel(void *arg, void **res)
{
    wf_future_t *f;
    CHECK_EQ(wf_future_create(&f), 0);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_future_wait(f, wf_deadline_in(5 * WF_NSEC_PER_MSEC), NULL, NULL), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 5 * WF_NSEC_PER_MSEC);
    cancel_waiter_ctx c = {.f = f, .ret = 1};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, cancel_waiter, &c, NULL), 0);
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(c.ret, -ECANCELED);
    CHECK_EQ(wf_future_done(f), 0); /* the future was not cancelled */
    wf_timeout_t to;
    CHECK_EQ(wf_timeout_enter_in(&to, 3 * WF_NSEC_PER_MSEC), 0);
    CHECK_EQ(wf_future_wait(f, WF_FOREVER, NULL, NULL), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    CHECK_EQ(wf_future_set(f, 0, NULL), 0);
    wf_future_release(f);
    return 0;
}

static void test_deadline_cancel(void **state)
{
    run_main(2, m_deadline_cancel, NULL);
}

/* A timer callback (a runtime thread outside any fiber) may complete a
 * future but not block on one. */
typedef struct {
    wf_future_t *f;
    _Atomic int wait_ret;
} timer_ctx;

static void on_timer(void *arg)
{
    timer_ctx *c = arg;
    wf_future_t *f = c->f; /* our own reference, taken for us by main */
    atomic_store(&c->wait_ret, wf_future_wait(f, 0, NULL, NULL));
    wf_future_set(f, 0, (void *)c);
    /* The completer holds a reference while it touches the future (the
     * waiter may release its own as soon as it sees the outcome). */
    wf_future_release(f);
}

static int m_timer_completes(void *arg, void **res)
{
    timer_ctx c = {.wait_ret = 1};
    CHECK_EQ(wf_future_create(&c.f), 0);
    CHECK_EQ(wf_future_ref(c.f), 0); /* the callback's */
    wf_timer_t tm = WF_TIMER_INIT;
    CHECK_EQ(wf_timer_start(&tm, wf_deadline_in(WF_NSEC_PER_MSEC), on_timer, &c), 0);
    void *rv = NULL;
    CHECK_EQ(wf_future_wait(c.f, wf_deadline_in(LONG_NS), NULL, &rv), 0);
    CHECK(rv == &c);
    CHECK_EQ(atomic_load(&c.wait_ret), -EPERM);
    wf_future_release(c.f);
    return 0;
}

static void test_timer_completes(void **state)
{
    run_main(2, m_timer_completes, NULL);
}

/* Stress: futures completed from pthreads while fibers wait with short
 * deadlines and are cancelled at random: every outcome is either the
 * value or a clean error; exact counts. */
typedef struct {
    wf_future_t *f;
    _Atomic long *ok, *timeouts, *cancels;
    int64_t deadline;
} racer_arg;

static int racer(void *arg, void **res)
{
    racer_arg *r = arg;
    void *rv = NULL;
    int e = wf_future_wait(r->f, r->deadline, NULL, &rv);
    if (e == 0 && rv == (void *)r->f)
        atomic_fetch_add(r->ok, 1);
    else if (e == -ETIMEDOUT)
        atomic_fetch_add(r->timeouts, 1);
    else if (e == -ECANCELED)
        atomic_fetch_add(r->cancels, 1);
    wf_future_release(r->f);
    return 0;
}

/* A racer cancelled before it ran. */
static void racer_drop(void *arg)
{
    racer_arg *r = arg;
    atomic_fetch_add(r->cancels, 1);
    wf_future_release(r->f);
}

static int m_stress(void *arg, void **res)
{
    enum { ROUNDS = 100, W = 8 };
    int rounds = SCALED(ROUNDS);
    _Atomic long ok = 0, timeouts = 0, cancels = 0;
    uint64_t seed = 12345;
    for (int r = 0; r < rounds; r++) {
        wf_future_t *f;
        CHECK_EQ(wf_future_create(&f), 0);
        racer_arg ra[W];
        wf_task_t t[W];
        for (int i = 0; i < W; i++) {
            wf_future_ref(f);
            uint64_t x = test_rand(&seed);
            ra[i] =
                (racer_arg){.f = f,
                            .ok = &ok,
                            .timeouts = &timeouts,
                            .cancels = &cancels,
                            .deadline = x % 3 == 0 ? wf_deadline_in((int64_t)(x % 300) * 1000) : WF_FOREVER};
            wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
            o.drop = racer_drop;
            CHECK_EQ(wf_spawn(&t[i], racer, &ra[i], &o), 0);
        }
        completer_arg ca = {.f = f, .delay_us = (long)(test_rand(&seed) % 300), .value = 0};
        ca.value = (intptr_t)f;
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, pthread_completer, &ca), 0);
        for (int i = 0; i < W; i++)
            if (test_rand(&seed) % 4 == 0)
                wf_cancel(t[i]);
        for (int i = 0; i < W; i++)
            CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
        pthread_join(th, NULL);
    }
    CHECK_EQ(atomic_load(&ok) + atomic_load(&timeouts) + atomic_load(&cancels), (long)rounds * W);
    return 0;
}

static void test_stress(void **state)
{
    run_main(4, m_stress, NULL);
}

static void test_bad_args(void **state)
{
    assert_int_equal(wf_future_create(NULL), -EINVAL);
    assert_int_equal(wf_future_ref(NULL), -EINVAL);
    assert_int_equal(wf_future_release(NULL), -EINVAL);
    assert_int_equal(wf_future_set(NULL, 0, NULL), -EINVAL);
    assert_int_equal(wf_future_cancel(NULL), -EINVAL);
    assert_int_equal(wf_future_done(NULL), -EINVAL);
    assert_int_equal(wf_future_wait(NULL, 0, NULL, NULL), -EINVAL);
    /* Outside any runtime, a future works on its own. */
    wf_future_t *f;
    assert_int_equal(wf_future_create(&f), 0);
    assert_int_equal(wf_future_set(f, 1, NULL), -EINVAL); /* positive status */
    assert_int_equal(wf_future_wait(f, -5, NULL, NULL), -EINVAL);
    assert_int_equal(wf_future_wait(f, 0, NULL, NULL), -ETIMEDOUT);
    assert_int_equal(wf_future_set(f, 0, (void *)1), 0);
    void *rv = NULL;
    assert_int_equal(wf_future_wait(f, WF_FOREVER, NULL, &rv), 0);
    assert_ptr_equal(rv, (void *)1);
    assert_int_equal(wf_future_release(f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),           cmocka_unit_test(test_many_waiters),
        cmocka_unit_test(test_from_pthread),    cmocka_unit_test(test_thread_waits),
        cmocka_unit_test(test_deadline_cancel), cmocka_unit_test(test_timer_completes),
        cmocka_unit_test(test_stress),          cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
