/* test_semaphore.c - Semaphore and BoundedSemaphore: counting, the bound,
 * FIFO hand-over, deadlines, cancellation, and a stress whose permits must
 * all be accounted for (none lost to a cancelled or timed-out waiter). */
#include "sync_test.h"

#include <pthread.h>

static int acq(void *arg, void **res)
{
    return wf_sem_acquire(arg);
}

static int m_basics(void *arg, void **res)
{
    wf_sem_t s;
    CHECK_EQ(wf_sem_init(&s, 2), 0);
    CHECK_EQ(wf_sem_value(&s), 2);
    CHECK_EQ(wf_sem_locked(&s), 0);
    CHECK_EQ(wf_sem_acquire(&s), 0);
    CHECK_EQ(wf_sem_try_acquire(&s), 0);
    CHECK_EQ(wf_sem_locked(&s), 1);
    CHECK_EQ(wf_sem_try_acquire(&s), -EAGAIN);
    CHECK_EQ(wf_sem_acquire_until(&s, 0), -ETIMEDOUT);
    CHECK_EQ(wf_sem_acquire_until(&s, wf_deadline_in(WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK_EQ(wf_sem_value(&s), 0);
    /* A waiter gets the next release directly; the count stays 0. */
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, acq, &s, NULL), 0);
    CHECK(wait_parked(t));
    CHECK_EQ(wf_sem_destroy(&s), -EBUSY);
    CHECK_EQ(wf_sem_release(&s), 0);
    CHECK_EQ(wf_sem_value(&s), 0);
    join_n(&t, 1);
    /* A cancelled waiter takes nothing. */
    CHECK_EQ(wf_spawn(&t, acq, &s, NULL), 0);
    CHECK(wait_parked(t));
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_sem_release(&s), 0);
    CHECK_EQ(wf_sem_value(&s), 1);
    /* Unbounded: releases past the initial value are fine. */
    CHECK_EQ(wf_sem_release(&s), 0);
    CHECK_EQ(wf_sem_release(&s), 0);
    CHECK_EQ(wf_sem_value(&s), 3);
    CHECK_EQ(wf_sem_destroy(&s), 0);
    CHECK_EQ(wf_sem_release(&s), -EINVAL);
    CHECK_EQ(wf_sem_acquire(&s), -EINVAL);
    CHECK_EQ(wf_sem_value(&s), -EINVAL);

    /* Bounded: a release past the initial value is an error, not an
     * increment; one that feeds a waiter is fine. */
    CHECK_EQ(wf_sem_init_bounded(&s, 1), 0);
    CHECK_EQ(wf_sem_release(&s), -EOVERFLOW);
    CHECK_EQ(wf_sem_value(&s), 1);
    CHECK_EQ(wf_sem_acquire(&s), 0);
    CHECK_EQ(wf_spawn(&t, acq, &s, NULL), 0);
    CHECK(wait_parked(t));
    CHECK_EQ(wf_sem_release(&s), 0); /* to the waiter */
    join_n(&t, 1);
    CHECK_EQ(wf_sem_release(&s), 0); /* the waiter's permit back: value 1 */
    CHECK_EQ(wf_sem_release(&s), -EOVERFLOW);
    CHECK_EQ(wf_sem_value(&s), 1);
    CHECK_EQ(wf_sem_destroy(&s), 0);

    CHECK_EQ(wf_sem_init(NULL, 1), -EINVAL);
    CHECK_EQ(wf_sem_init(&s, WF_SEM_VALUE_MAX + 1u), -EINVAL);
    CHECK_EQ(wf_sem_init(&s, WF_SEM_VALUE_MAX), 0);
    CHECK_EQ(wf_sem_release(&s), -EOVERFLOW);
    CHECK_EQ(wf_sem_acquire_until(&s, -2), -EINVAL);
    CHECK_EQ(wf_sem_destroy(&s), 0);
    return 0;
}

static void *foreign_release(void *arg)
{
    /* Most likely after the acquire below has parked; if not, it simply
     * finds the permit. Either order must work. */
    usleep(2000);
    return (void *)(intptr_t)wf_sem_release(arg);
}

static int m_foreign(void *arg, void **res)
{
    wf_sem_t s;
    wf_sem_init(&s, 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_release, &s), 0);
    CHECK_EQ(wf_sem_acquire_until(&s, wf_deadline_in(LONG_NS)), 0);
    void *r;
    pthread_join(th, &r);
    CHECK_EQ((intptr_t)r, 0);
    CHECK_EQ(wf_sem_destroy(&s), 0);
    return 0;
}

static void test_basics(void **state)
{
    run_main(2, m_basics, NULL);
    run_main(2, m_foreign, NULL);
    wf_sem_t s;
    wf_sem_init(&s, 1);
    assert_int_equal(wf_sem_acquire(&s), -EPERM); /* waiting needs a fiber */
    assert_int_equal(wf_sem_try_acquire(&s), 0);  /* but trying does not */
    assert_int_equal(wf_sem_release(&s), 0);
    assert_int_equal(wf_sem_destroy(&s), 0);
}

/* --- FIFO order ------------------------------------------------------------------ */

typedef struct {
    wf_sem_t s;
    int order[16];
    _Atomic int n;
} fifo_state;

typedef struct {
    fifo_state *f;
    int idx;
} fifo_arg;

static int fifo_waiter(void *arg, void **res)
{
    fifo_arg *a = arg;
    int e = wf_sem_acquire(&a->f->s);
    if (e)
        return e;
    a->f->order[atomic_fetch_add(&a->f->n, 1)] = a->idx;
    return 0;
}

static int m_fifo(void *arg, void **res)
{
    enum { N = 10 };
    fifo_state f;
    memset(&f, 0, sizeof f);
    wf_sem_init(&f.s, 0);
    fifo_arg a[N];
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        a[i].f = &f;
        a[i].idx = i;
        CHECK_EQ(wf_spawn(&t[i], fifo_waiter, &a[i], NULL), 0);
        CHECK(wait_parked(t[i]));
    }
    /* One permit at a time, each to the next in line. */
    for (int i = 0; i < N; i++) {
        CHECK_EQ(wf_sem_release(&f.s), 0);
        join_n(&t[i], 1);
        CHECK_EQ(f.order[i], i);
    }
    CHECK_EQ(wf_sem_value(&f.s), 0);
    CHECK_EQ(wf_sem_destroy(&f.s), 0);
    return 0;
}

static void test_fifo(void **state)
{
    run_main(2, m_fifo, NULL);
}

/* --- stress: every permit accounted for -------------------------------------- */

typedef struct {
    wf_sem_t s;
    _Atomic int in_use;
    _Atomic long over, acquired, gaveup;
    unsigned permits;
    long iters;
} sem_stress;

typedef struct {
    sem_stress *s;
    uint64_t seed;
} sem_arg;

static int sem_worker(void *arg, void **res)
{
    sem_arg *a = arg;
    sem_stress *s = a->s;
    uint64_t rnd = a->seed;
    for (long i = 0; i < s->iters; i++) {
        int e;
        switch (test_rand(&rnd) % 3) {
        case 0:
            e = wf_sem_try_acquire(&s->s);
            break;
        case 1:
            e = wf_sem_acquire_until(&s->s,
                                     wf_deadline_in((int64_t)(test_rand(&rnd) % 30) * WF_NSEC_PER_USEC));
            break;
        default:
            e = wf_sem_acquire(&s->s);
        }
        if (e) {
            if (e != -EAGAIN && e != -ETIMEDOUT && e != -ECANCELED)
                return e;
            if (e == -ECANCELED)
                wf_uncancel();
            atomic_fetch_add(&s->gaveup, 1);
            continue;
        }
        if (atomic_fetch_add(&s->in_use, 1) >= (int)s->permits)
            atomic_fetch_add(&s->over, 1);
        if (test_rand(&rnd) % 4 == 0)
            wf_yield();
        atomic_fetch_sub(&s->in_use, 1);
        atomic_fetch_add(&s->acquired, 1);
        if (wf_sem_release(&s->s))
            return -100;
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int m_stress(void *arg, void **res)
{
    enum { N = 40 };
    sem_stress *s = calloc(1, sizeof *s);
    s->permits = 3;
    wf_sem_init_bounded(&s->s, s->permits); /* a lost or doubled permit shows */
    s->iters = SCALED(4000);
    sem_arg a[N];
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        a[i].s = s;
        a[i].seed = (uint64_t)(i + 11) * 0x9E3779B97F4A7C15ull;
    }
    spawn_n(t, N, sem_worker, a, sizeof a[0]);
    canceller_arg ca;
    start_canceller(&ca, t, N, 3);
    join_n(t, N);
    stop_canceller(&ca);
    CHECK_EQ(atomic_load(&s->over), 0);
    CHECK_EQ(atomic_load(&s->acquired) + atomic_load(&s->gaveup), N * s->iters);
    CHECK_EQ(wf_sem_value(&s->s), (int)s->permits); /* every permit came back */
    CHECK_EQ(wf_sem_destroy(&s->s), 0);
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
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
