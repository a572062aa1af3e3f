/* test_lock.c - the fair lock: ownership rules, errors, deadlines,
 * cancellation, arrival-order fairness, and an exact-count stress across
 * workers with timeouts and cancellations. */
#include "sync_test.h"

#include <pthread.h>

/* --- basics and errors ------------------------------------------------------ */

static int other_releases(void *arg, void **res)
{
    return wf_lock_release(arg) == -EPERM ? 0 : -1;
}

static int other_tries(void *arg, void **res)
{
    return wf_lock_try_acquire(arg) == -EAGAIN ? 0 : -1;
}

static int m_basics(void *arg, void **res)
{
    wf_lock_t l = WF_LOCK_INIT; /* zero storage is an unlocked lock */
    CHECK_EQ(wf_lock_locked(&l), 0);
    CHECK_EQ(wf_lock_release(&l), -EPERM); /* not held */
    CHECK_EQ(wf_lock_acquire(&l), 0);
    CHECK_EQ(wf_lock_locked(&l), 1);
    CHECK_EQ(wf_lock_acquire(&l), -EDEADLK);
    CHECK_EQ(wf_lock_try_acquire(&l), -EDEADLK);
    CHECK_EQ(wf_lock_destroy(&l), -EBUSY); /* held */
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, other_releases, &l, NULL), 0);
    int st = -1;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_spawn(&t, other_tries, &l, NULL), 0);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_lock_locked(&l), 1); /* the failed release changed nothing */
    CHECK_EQ(wf_lock_release(&l), 0);
    CHECK_EQ(wf_lock_release(&l), -EPERM);
    CHECK_EQ(wf_lock_try_acquire(&l), 0);
    CHECK_EQ(wf_lock_release(&l), 0);

    /* Bad arguments. */
    CHECK_EQ(wf_lock_init(NULL), -EINVAL);
    CHECK_EQ(wf_lock_acquire(NULL), -EINVAL);
    CHECK_EQ(wf_lock_acquire_until(&l, -2), -EINVAL);
    CHECK_EQ(wf_lock_release(NULL), -EINVAL);
    CHECK_EQ(wf_lock_locked(NULL), -EINVAL);
    CHECK_EQ(wf_lock_destroy(NULL), -EINVAL);

    /* Destroyed: every call is -EINVAL until re-initialised. */
    CHECK_EQ(wf_lock_destroy(&l), 0);
    CHECK_EQ(wf_lock_destroy(&l), -EINVAL);
    CHECK_EQ(wf_lock_acquire(&l), -EINVAL);
    CHECK_EQ(wf_lock_try_acquire(&l), -EINVAL);
    CHECK_EQ(wf_lock_locked(&l), -EINVAL);
    CHECK_EQ(wf_lock_init(&l), 0);
    CHECK_EQ(wf_lock_acquire(&l), 0);
    CHECK_EQ(wf_lock_release(&l), 0);
    CHECK_EQ(wf_lock_destroy(&l), 0);
    return 0;
}

static void test_basics(void **state)
{
    run_main(2, m_basics, NULL);
}

static void *outside_thread(void *arg)
{
    wf_lock_t *l = arg;
    /* Outside the runtime: waiting and owning need a fiber. */
    intptr_t ok = wf_lock_acquire(l) == -EPERM && wf_lock_try_acquire(l) == -EPERM &&
                  wf_lock_release(l) == -EPERM && wf_lock_locked(l) == 0;
    return (void *)ok;
}

static void test_outside_fiber(void **state)
{
    wf_lock_t l;
    assert_int_equal(wf_lock_init(&l), 0);
    pthread_t th;
    void *ok = NULL;
    assert_int_equal(pthread_create(&th, NULL, outside_thread, &l), 0);
    assert_int_equal(pthread_join(th, &ok), 0);
    assert_true(ok != NULL);
    assert_int_equal(wf_lock_destroy(&l), 0);
}

/* --- deadlines and cancellation -------------------------------------------- */

static int acquire_forever(void *arg, void **res)
{
    return wf_lock_acquire(arg);
}

static int try_acquire(void *arg, void **res)
{
    return wf_lock_try_acquire(arg);
}

static int m_deadline_cancel(void *arg, void **res)
{
    wf_lock_t l = WF_LOCK_INIT;
    CHECK_EQ(wf_lock_acquire(&l), 0);
    wf_task_t t;
    int st = 0;
    CHECK_EQ(wf_spawn(&t, try_acquire, &l, NULL), 0);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -EAGAIN);

    /* A waiter cancelled while parked gets -ECANCELED and does not own it. */
    CHECK_EQ(wf_spawn(&t, acquire_forever, &l, NULL), 0);
    CHECK(wait_parked(t));
    CHECK_EQ(wf_lock_destroy(&l), -EBUSY); /* held, and waited for */
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_lock_release(&l), 0);
    CHECK_EQ(wf_lock_locked(&l), 0); /* nobody got it */

    /* A free lock is taken even with a deadline in the past. */
    CHECK_EQ(wf_lock_acquire_until(&l, 0), 0);
    /* Hand it to a waiter, which ends still holding it. */
    CHECK_EQ(wf_spawn(&t, acquire_forever, &l, NULL), 0);
    CHECK(wait_parked(t));
    CHECK_EQ(wf_lock_release(&l), 0);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_lock_locked(&l), 1);
    /* Held by someone else for good: timed waits time out. */
    int64_t t0 = wf_now();
    CHECK_EQ(wf_lock_acquire_until(&l, wf_deadline_in(2 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 2 * WF_NSEC_PER_MSEC);
    CHECK_EQ(wf_lock_acquire_until(&l, 0), -ETIMEDOUT);
    CHECK_EQ(wf_lock_try_acquire(&l), -EAGAIN);
    CHECK_EQ(wf_lock_destroy(&l), -EBUSY);

    /* A cancelled task can still take a free lock (asyncio), and a pending
     * cancellation fails a wait at once. */
    wf_lock_t m = WF_LOCK_INIT;
    CHECK_EQ(wf_cancel(wf_self()), 0);
    CHECK_EQ(wf_lock_acquire(&m), 0);
    CHECK_EQ(wf_lock_acquire(&l), -ECANCELED);
    CHECK_EQ(wf_uncancel(), 0);
    CHECK_EQ(wf_lock_release(&m), 0);
    CHECK_EQ(wf_lock_destroy(&m), 0);
    return 0;
}

static void test_deadline_cancel(void **state)
{
    run_main(2, m_deadline_cancel, NULL);
}

/* --- fairness: waiters acquire in arrival order ----------------------------- */

#define FAIR_N 12

typedef struct {
    wf_lock_t lock;
    int order[FAIR_N * 2];
    int n;
} fair_state;

typedef struct {
    fair_state *fs;
    int idx;
} fair_arg;

static int fair_waiter(void *arg, void **res)
{
    fair_arg *a = arg;
    for (int round = 0; round < 2; round++) {
        if (wf_lock_acquire(&a->fs->lock))
            return -1;
        a->fs->order[a->fs->n++] = a->idx;
        /* Release and re-acquire at once: a fair lock puts us at the back. */
        if (wf_lock_release(&a->fs->lock))
            return -1;
    }
    return 0;
}

static int m_fairness(void *arg, void **res)
{
    bool one_worker = wf_workers() == 1;
    fair_state fs;
    memset(&fs, 0, sizeof fs);
    CHECK_EQ(wf_lock_init(&fs.lock), 0);
    CHECK_EQ(wf_lock_acquire(&fs.lock), 0);
    fair_arg a[FAIR_N];
    wf_task_t t[FAIR_N];
    for (int i = 0; i < FAIR_N; i++) {
        a[i].fs = &fs;
        a[i].idx = i;
        CHECK_EQ(wf_spawn(&t[i], fair_waiter, &a[i], NULL), 0);
        CHECK(wait_parked(t[i])); /* now queued: arrival order is i */
    }
    CHECK_EQ(wf_lock_release(&fs.lock), 0);
    join_n(t, FAIR_N);
    CHECK_EQ(fs.n, 2 * FAIR_N);
    /* The first round goes exactly in arrival order. Each waiter then
     * re-queues at once, behind everyone still waiting: nobody gets a
     * second turn before all had their first, and on one worker the
     * second round repeats the order exactly. */
    int seen[FAIR_N] = {0};
    for (int i = 0; i < FAIR_N; i++)
        CHECK_EQ(fs.order[i], i);
    for (int i = FAIR_N; i < 2 * FAIR_N; i++) {
        CHECK(fs.order[i] >= 0 && fs.order[i] < FAIR_N);
        seen[fs.order[i]]++;
        if (one_worker)
            CHECK_EQ(fs.order[i], i - FAIR_N);
    }
    for (int i = 0; i < FAIR_N; i++)
        CHECK_EQ(seen[i], 1);
    CHECK_EQ(wf_lock_destroy(&fs.lock), 0);
    return 0;
}

static void test_fairness(void **state)
{
    run_main(1, m_fairness, NULL);
    run_main(2, m_fairness, NULL);
    run_main(STRESS_WORKERS, m_fairness, NULL);
}

/* --- a woken waiter may destroy and free the lock at once ------------------- */

typedef struct {
    wf_lock_t *l;
    _Atomic int parked;
} free_arg;

static int taker_frees(void *arg, void **res)
{
    wf_lock_t *l = arg;
    if (wf_lock_acquire(l) || wf_lock_release(l))
        return -1;
    /* The releaser may still be inside its release on another worker:
     * destroy waits it out, so freeing right after is safe (ASan checks). */
    if (wf_lock_destroy(l))
        return -2;
    free(l);
    return 0;
}

static int m_destroy_after_wake(void *arg, void **res)
{
    long rounds = SCALED(2000);
    for (long i = 0; i < rounds; i++) {
        wf_lock_t *l = malloc(sizeof *l);
        CHECK(l != NULL);
        wf_lock_init(l);
        CHECK_EQ(wf_lock_acquire(l), 0);
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, taker_frees, l, NULL), 0);
        if (i % 2)
            CHECK(wait_parked(t)); /* else: release may come before it waits */
        CHECK_EQ(wf_lock_release(l), 0);
        int st = -1;
        CHECK_EQ(wf_join(t, &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
    return 0;
}

static void test_destroy_after_wake(void **state)
{
    run_main(STRESS_WORKERS, m_destroy_after_wake, NULL);
}

/* --- stress: mutual exclusion with exact counts ---------------------------- */

typedef struct {
    wf_lock_t lock;
    long counter;       /* only touched with the lock held */
    _Atomic int inside; /* 1 while someone is in the critical section */
    _Atomic long acquired, timedout, cancelled, overlaps;
    long iters;
} stress_state;

typedef struct {
    stress_state *s;
    uint64_t seed;
} stress_arg;

static int stress_worker(void *arg, void **res)
{
    stress_arg *a = arg;
    stress_state *s = a->s;
    uint64_t rnd = a->seed;
    for (long i = 0; i < s->iters; i++) {
        int r;
        switch (test_rand(&rnd) % 4) {
        case 0:
            r = wf_lock_try_acquire(&s->lock);
            if (r == -EAGAIN)
                continue;
            break;
        case 1:
            r = wf_lock_acquire_until(&s->lock,
                                      wf_deadline_in((int64_t)(test_rand(&rnd) % 20) * WF_NSEC_PER_USEC));
            break;
        default:
            r = wf_lock_acquire(&s->lock);
        }
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&s->timedout, 1);
            continue;
        }
        if (r == -ECANCELED) {
            atomic_fetch_add(&s->cancelled, 1);
            wf_uncancel();
            continue;
        }
        if (r != 0)
            return r;
        if (atomic_exchange(&s->inside, 1))
            atomic_fetch_add(&s->overlaps, 1);
        s->counter++;
        if (test_rand(&rnd) % 8 == 0)
            wf_yield(); /* hold it across a switch sometimes */
        atomic_store(&s->inside, 0);
        atomic_fetch_add(&s->acquired, 1);
        if (wf_lock_release(&s->lock))
            return -100;
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int m_stress(void *arg, void **res)
{
    enum { N = 48 };
    stress_state *s = calloc(1, sizeof *s);
    wf_lock_init(&s->lock);
    s->iters = SCALED(4000);
    stress_arg a[N];
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        a[i].s = s;
        a[i].seed = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    }
    spawn_n(t, N, stress_worker, a, sizeof a[0]);
    canceller_arg ca;
    start_canceller(&ca, t, N, 42);
    join_n(t, N);
    long cancels = stop_canceller(&ca);
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr, "lock stress: %ld acquired, %ld timed out, %ld cancelled waits, %ld cancels\n",
                atomic_load(&s->acquired), atomic_load(&s->timedout), atomic_load(&s->cancelled), cancels);
    CHECK_EQ(atomic_load(&s->overlaps), 0);
    CHECK_EQ(s->counter, atomic_load(&s->acquired));
    CHECK_EQ(wf_lock_locked(&s->lock), 0);
    CHECK_EQ(wf_lock_destroy(&s->lock), 0); /* no waiter left behind */
    CHECK(atomic_load(&s->acquired) > 0);
    free(s);
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
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_outside_fiber),
        cmocka_unit_test(test_deadline_cancel),
        cmocka_unit_test(test_fairness),
        cmocka_unit_test(test_destroy_after_wake),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
