/* test_condition.c - the condition variable: lock rules, notify(n) waking
 * exactly n, notify_all, wait_for with a predicate, the lock held on every
 * return (cancellation and timeout included), and a stress whose books
 * must balance exactly: every notification a notifier was told it gave is
 * one wait that returned 0, with waiters timing out and being cancelled
 * all the while. */
#include "sync_test.h"

typedef struct {
    wf_cond_t c;
    _Atomic long woke, failed;
    _Atomic int holding_after; /* waiters that found they hold the lock */
} cv_state;

static int cv_waiter(void *arg, void **res)
{
    cv_state *s = arg;
    if (wf_cond_acquire(&s->c))
        return -1;
    int e = wf_cond_wait(&s->c);
    if (e == 0)
        atomic_fetch_add(&s->woke, 1);
    else
        atomic_fetch_add(&s->failed, 1);
    /* Whatever the outcome, we hold the lock again. */
    if (wf_lock_locked(wf_cond_lock(&s->c)) == 1 && wf_cond_release(&s->c) == 0)
        atomic_fetch_add(&s->holding_after, 1);
    return e;
}

static int other_notifies(void *arg, void **res)
{
    cv_state *s = arg;
    return wf_cond_notify(&s->c, 1) == -EPERM && wf_cond_wait(&s->c) == -EPERM ? 0 : -1;
}

static int m_notify_exact(void *arg, void **res)
{
    cv_state s;
    memset(&s, 0, sizeof s); /* WF_COND_INIT: a lock of its own */
    /* Without the lock: -EPERM, nothing happens. */
    CHECK_EQ(wf_cond_wait(&s.c), -EPERM);
    CHECK_EQ(wf_cond_notify(&s.c, 1), -EPERM);
    CHECK_EQ(wf_cond_notify_all(&s.c), -EPERM);

    enum { N = 8 };
    wf_task_t t[N];
    spawn_n(t, N, cv_waiter, &s, 0);
    for (int i = 0; i < N; i++)
        CHECK(wait_parked(t[i]));
    /* The waiters released the lock: we can take it. */
    CHECK_EQ(wf_cond_acquire(&s.c), 0);
    wf_task_t o;
    CHECK_EQ(wf_spawn(&o, other_notifies, &s, NULL), 0);
    join_n(&o, 1);
    CHECK_EQ(wf_cond_destroy(&s.c), -EBUSY);
    /* notify(1) wakes exactly one. */
    CHECK_EQ(wf_cond_notify(&s.c, 1), 1);
    CHECK_EQ(wf_cond_release(&s.c), 0);
    CHECK(wait_count(&s.woke, 1, LONG_NS));
    /* Let it finish; the others are still parked. */
    int parked = 0;
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 100; k++)
            wf_yield();
        parked += wf_task_state(t[i]) == WF_TASK_PARKED;
    }
    CHECK_EQ(parked, N - 1);
    CHECK_EQ(atomic_load(&s.woke), 1);
    /* notify(3) wakes exactly three; notify(0) none. */
    CHECK_EQ(wf_cond_acquire(&s.c), 0);
    CHECK_EQ(wf_cond_notify(&s.c, 0), 0);
    CHECK_EQ(wf_cond_notify(&s.c, 3), 3);
    CHECK_EQ(wf_cond_release(&s.c), 0);
    CHECK(wait_count(&s.woke, 4, LONG_NS));
    /* notify_all wakes the rest; more than there are is fine. */
    CHECK_EQ(wf_cond_acquire(&s.c), 0);
    CHECK_EQ(wf_cond_notify_all(&s.c), N - 4);
    CHECK_EQ(wf_cond_notify(&s.c, 5), 0);
    CHECK_EQ(wf_cond_release(&s.c), 0);
    join_n(t, N);
    CHECK_EQ(atomic_load(&s.woke), N);
    CHECK_EQ(atomic_load(&s.holding_after), N);
    CHECK_EQ(wf_cond_destroy(&s.c), 0);
    CHECK_EQ(wf_cond_notify(&s.c, 1), -EINVAL);
    CHECK(wf_cond_lock(&s.c) == NULL);
    return 0;
}

static void test_notify_exact(void **state)
{
    run_main(2, m_notify_exact, NULL);
    run_main(STRESS_WORKERS, m_notify_exact, NULL);
}

/* --- cancellation and deadlines: the lock is held on return --------------- */

static int m_cancel_timeout(void *arg, void **res)
{
    wf_lock_t lock = WF_LOCK_INIT;
    cv_state s;
    memset(&s, 0, sizeof s);
    CHECK_EQ(wf_cond_init(&s.c, &lock), 0);
    CHECK(wf_cond_lock(&s.c) == &lock);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, cv_waiter, &s, NULL), 0);
    CHECK(wait_parked(t));
    /* Hold the lock while cancelling: the waiter's wait ends, and it must
     * then wait (uncancellably) for the lock we hold. */
    CHECK_EQ(wf_lock_acquire(&lock), 0);
    CHECK_EQ(wf_cancel(t), 0);
    for (int k = 0; k < 200; k++)
        wf_yield();
    CHECK_EQ(wf_task_done(t), 0);         /* still waiting for the lock */
    CHECK_EQ(wf_cond_notify(&s.c, 1), 0); /* it no longer waits on the condition */
    CHECK_EQ(wf_lock_release(&lock), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(atomic_load(&s.holding_after), 1);

    /* A deadline: -ETIMEDOUT, lock held. */
    CHECK_EQ(wf_lock_acquire(&lock), 0);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_cond_wait_until(&s.c, wf_deadline_in(2 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 2 * WF_NSEC_PER_MSEC);
    CHECK_EQ(wf_lock_locked(&lock), 1);
    CHECK_EQ(wf_cond_wait_until(&s.c, 0), -ETIMEDOUT);
    CHECK_EQ(wf_cond_wait_until(&s.c, -9), -EINVAL);
    /* A pending cancellation: -ECANCELED at once, lock held. */
    wf_cancel(wf_self());
    CHECK_EQ(wf_cond_wait(&s.c), -ECANCELED);
    wf_uncancel();
    CHECK_EQ(wf_lock_release(&lock), 0);
    CHECK_EQ(wf_cond_destroy(&s.c), 0);
    CHECK_EQ(wf_lock_destroy(&lock), 0); /* a bound lock is not the condition's */
    return 0;
}

static void test_cancel_timeout(void **state)
{
    run_main(2, m_cancel_timeout, NULL);
}

/* --- wait_for ----------------------------------------------------------------- */

typedef struct {
    wf_cond_t c;
    int value;
    _Atomic long evaluations;
} pred_state;

static bool value_is_3(void *arg)
{
    pred_state *p = arg;
    atomic_fetch_add(&p->evaluations, 1);
    return p->value == 3;
}

static int bumper(void *arg, void **res)
{
    pred_state *p = arg;
    for (int i = 0; i < 3; i++) {
        wf_cond_acquire(&p->c);
        p->value++;
        wf_cond_notify_all(&p->c);
        wf_cond_release(&p->c);
        wf_sleep(100 * WF_NSEC_PER_USEC);
    }
    return 0;
}

static int m_wait_for(void *arg, void **res)
{
    pred_state p;
    memset(&p, 0, sizeof p);
    CHECK_EQ(wf_cond_init(&p.c, NULL), 0);
    CHECK_EQ(wf_cond_wait_for(&p.c, value_is_3, &p, WF_FOREVER), -EPERM);
    CHECK_EQ(wf_cond_acquire(&p.c), 0);
    CHECK_EQ(wf_cond_wait_for(&p.c, NULL, &p, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_cond_wait_for(&p.c, value_is_3, &p, 0), -ETIMEDOUT);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, bumper, &p, NULL), 0);
    CHECK_EQ(wf_cond_wait_for(&p.c, value_is_3, &p, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(p.value, 3);
    CHECK(atomic_load(&p.evaluations) >= 2);
    /* Already true: no wait at all. */
    CHECK_EQ(wf_cond_wait_for(&p.c, value_is_3, &p, 0), 0);
    CHECK_EQ(wf_cond_destroy(&p.c), -EBUSY); /* its own lock is held */
    CHECK_EQ(wf_cond_release(&p.c), 0);
    join_n(&t, 1);
    CHECK_EQ(wf_cond_destroy(&p.c), 0);
    return 0;
}

static void test_wait_for(void **state)
{
    run_main(2, m_wait_for, NULL);
}

/* --- stress: the books of notifications ------------------------------------- */

typedef struct {
    wf_cond_t c;
    _Atomic int stop;
    _Atomic long notified; /* sum of what notify returned */
    _Atomic long woken;    /* waits that returned 0 */
    _Atomic long gaveup;
    _Atomic long not_holding;
    long rounds;
} books;

typedef struct {
    books *b;
    uint64_t seed;
} books_arg;

static int books_waiter(void *arg, void **res)
{
    books_arg *a = arg;
    books *b = a->b;
    uint64_t rnd = a->seed;
    wf_lock_t *l = wf_cond_lock(&b->c);
    while (!atomic_load(&b->stop)) {
        int e = wf_lock_acquire(l);
        if (e == -ECANCELED) {
            wf_uncancel();
            continue;
        }
        if (e)
            return e;
        if (atomic_load(&b->stop)) {
            wf_lock_release(l);
            break;
        }
        int64_t dl = test_rand(&rnd) % 2 ? wf_deadline_in((int64_t)(test_rand(&rnd) % 40) * WF_NSEC_PER_USEC)
                                         : WF_FOREVER;
        e = wf_cond_wait_until(&b->c, dl);
        if (e == 0)
            atomic_fetch_add(&b->woken, 1);
        else
            atomic_fetch_add(&b->gaveup, 1);
        if (e == -ECANCELED)
            wf_uncancel();
        if (wf_lock_release(l) != 0)
            atomic_fetch_add(&b->not_holding, 1);
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int books_notifier(void *arg, void **res)
{
    books_arg *a = arg;
    books *b = a->b;
    uint64_t rnd = a->seed;
    wf_lock_t *l = wf_cond_lock(&b->c);
    for (long i = 0; i < b->rounds; i++) {
        if (wf_lock_acquire(l))
            return -1;
        int k = test_rand(&rnd) % 5 == 0 ? wf_cond_notify_all(&b->c)
                                         : wf_cond_notify(&b->c, 1 + test_rand(&rnd) % 3);
        if (k < 0)
            return k;
        atomic_fetch_add(&b->notified, k);
        wf_lock_release(l);
        if (test_rand(&rnd) % 2)
            wf_yield();
    }
    return 0;
}

static int m_stress(void *arg, void **res)
{
    enum { W = 24, NT = 4 };
    books *b = calloc(1, sizeof *b);
    wf_cond_init(&b->c, NULL);
    b->rounds = SCALED(6000);
    books_arg a[W + NT];
    wf_task_t t[W + NT];
    for (int i = 0; i < W + NT; i++) {
        a[i].b = b;
        a[i].seed = (uint64_t)(i + 3) * 0x9E3779B97F4A7C15ull;
    }
    spawn_n(t, W, books_waiter, a, sizeof a[0]);
    spawn_n(t + W, NT, books_notifier, a + W, sizeof a[0]);
    canceller_arg ca;
    start_canceller(&ca, t, W, 5); /* waiters only */
    join_n(t + W, NT);
    /* Stop: set the flag, then wake until every waiter is out. */
    atomic_store(&b->stop, 1);
    wf_lock_t *l = wf_cond_lock(&b->c);
    for (int i = 0; i < W; i++) {
        while (wf_task_done(t[i]) == 0) {
            wf_lock_acquire(l);
            atomic_fetch_add(&b->notified, wf_cond_notify_all(&b->c));
            wf_lock_release(l);
            wf_yield();
        }
    }
    join_n(t, W);
    stop_canceller(&ca);
    CHECK_EQ(atomic_load(&b->notified), atomic_load(&b->woken));
    CHECK_EQ(atomic_load(&b->not_holding), 0);
    CHECK(atomic_load(&b->woken) > 0);
    CHECK_EQ(wf_cond_destroy(&b->c), 0);
    free(b);
    return 0;
}

static void test_stress(void **state)
{
    run_main(STRESS_WORKERS, m_stress, NULL);
    run_main(1, m_stress, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_exact),
        cmocka_unit_test(test_cancel_timeout),
        cmocka_unit_test(test_wait_for),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
