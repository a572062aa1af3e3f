/* test_event.c - the event: set wakes every waiter (even if cleared again
 * before they run), wait on a set event returns at once, deadlines,
 * cancellation, set from outside any fiber (a timer callback, a foreign
 * thread), and a stress of many rounds across workers with exact counts. */
#include "sync_test.h"

#include <pthread.h>

typedef struct {
    wf_event_t ev;
    _Atomic long woke;
} ev_state;

static int waiter(void *arg, void **res)
{
    ev_state *s = arg;
    int e = wf_event_wait(&s->ev);
    if (e == 0)
        atomic_fetch_add(&s->woke, 1);
    return e;
}

static int m_basics(void *arg, void **res)
{
    ev_state s;
    memset(&s, 0, sizeof s); /* WF_EVENT_INIT */
    CHECK_EQ(wf_event_is_set(&s.ev), 0);
    CHECK_EQ(wf_event_wait_until(&s.ev, 0), -ETIMEDOUT);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_event_wait_until(&s.ev, wf_deadline_in(2 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 2 * WF_NSEC_PER_MSEC);

    enum { N = 10 };
    wf_task_t t[N];
    spawn_n(t, N, waiter, &s, 0);
    for (int i = 0; i < N; i++)
        CHECK(wait_parked(t[i]));
    CHECK_EQ(wf_event_destroy(&s.ev), -EBUSY);
    /* Set then clear at once: every waiter was decided by the set. */
    CHECK_EQ(wf_event_set(&s.ev), N);
    CHECK_EQ(wf_event_clear(&s.ev), 0);
    join_n(t, N);
    CHECK_EQ(atomic_load(&s.woke), N);
    CHECK_EQ(wf_event_is_set(&s.ev), 0);
    /* Set: waits return at once, repeatedly, until cleared. */
    CHECK_EQ(wf_event_set(&s.ev), 0);
    CHECK_EQ(wf_event_set(&s.ev), 0);
    CHECK_EQ(wf_event_is_set(&s.ev), 1);
    CHECK_EQ(wf_event_wait(&s.ev), 0);
    CHECK_EQ(wf_event_wait_until(&s.ev, 0), 0);
    /* Cancellation: a parked waiter fails, nothing else changes. */
    CHECK_EQ(wf_event_clear(&s.ev), 0);
    wf_task_t c;
    CHECK_EQ(wf_spawn(&c, waiter, &s, NULL), 0);
    CHECK(wait_parked(c));
    CHECK_EQ(wf_cancel(c), 0);
    int st = 0;
    CHECK_EQ(wf_join(c, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_event_destroy(&s.ev), 0);
    /* Errors. */
    CHECK_EQ(wf_event_set(&s.ev), -EINVAL);
    CHECK_EQ(wf_event_wait(&s.ev), -EINVAL);
    CHECK_EQ(wf_event_is_set(&s.ev), -EINVAL);
    CHECK_EQ(wf_event_destroy(&s.ev), -EINVAL);
    CHECK_EQ(wf_event_set(NULL), -EINVAL);
    CHECK_EQ(wf_event_wait_until(NULL, 0), -EINVAL);
    CHECK_EQ(wf_event_init(&s.ev), 0);
    CHECK_EQ(wf_event_wait_until(&s.ev, -3), -EINVAL);
    CHECK_EQ(wf_event_destroy(&s.ev), 0);
    return 0;
}

static void test_basics(void **state)
{
    run_main(2, m_basics, NULL);
    wf_event_t ev = WF_EVENT_INIT;
    assert_int_equal(wf_event_wait(&ev), -EPERM);
}

/* --- set from outside fibers -------------------------------------------------- */

static void set_cb(void *arg)
{
    wf_event_set(arg);
}

static void *set_thread(void *arg)
{
    ev_state *s = arg;
    /* Most likely after the waiter has parked; if not, it finds the flag
     * set. Either order must work. */
    usleep(2000);
    wf_event_set(&s->ev);
    return NULL;
}

static int m_outside(void *arg, void **res)
{
    ev_state s;
    memset(&s, 0, sizeof s);
    wf_timer_t tm = WF_TIMER_INIT;
    CHECK_EQ(wf_timer_start(&tm, wf_deadline_in(WF_NSEC_PER_MSEC), set_cb, &s.ev), 0);
    CHECK_EQ(wf_event_wait_until(&s.ev, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_event_clear(&s.ev), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, set_thread, &s), 0);
    CHECK_EQ(wf_event_wait_until(&s.ev, wf_deadline_in(LONG_NS)), 0);
    pthread_join(th, NULL);
    CHECK_EQ(wf_event_destroy(&s.ev), 0);
    return 0;
}

static void test_outside(void **state)
{
    run_main(2, m_outside, NULL);
}

/* --- stress: rounds of waiters and setters across workers ---------------------- */

typedef struct {
    wf_event_t go[2];
    _Atomic long waits_ok, waits_failed;
    _Atomic int arrived;
    long rounds;
    int n;
} rounds_state;

typedef struct {
    rounds_state *s;
    uint64_t seed;
} rounds_arg;

/* Each round r: wait on go[r%2] (sometimes with a deadline, sometimes
 * cancelled by the canceller); the main task sets it once all arrived. */
static int rounds_worker(void *arg, void **res)
{
    rounds_arg *a = arg;
    rounds_state *s = a->s;
    uint64_t rnd = a->seed;
    for (long r = 0; r < s->rounds; r++) {
        wf_event_t *ev = &s->go[r % 2];
        atomic_fetch_add(&s->arrived, 1);
        int e;
        do {
            int64_t dl = test_rand(&rnd) % 2
                             ? wf_deadline_in((int64_t)(test_rand(&rnd) % 50) * WF_NSEC_PER_USEC)
                             : WF_FOREVER;
            e = wf_event_wait_until(ev, dl);
            if (e == -ECANCELED)
                wf_uncancel();
            if (e)
                atomic_fetch_add(&s->waits_failed, 1);
        } while (e == -ETIMEDOUT || e == -ECANCELED);
        if (e)
            return e;
        atomic_fetch_add(&s->waits_ok, 1);
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int m_stress(void *arg, void **res)
{
    enum { N = 32 };
    rounds_state *s = calloc(1, sizeof *s);
    s->rounds = SCALED(400);
    s->n = N;
    rounds_arg a[N];
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        a[i].s = s;
        a[i].seed = (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    }
    spawn_n(t, N, rounds_worker, a, sizeof a[0]);
    canceller_arg ca;
    start_canceller(&ca, t, N, 7);
    for (long r = 0; r < s->rounds; r++) {
        /* Everyone has passed round r-1 and arrived at round r's event;
         * nobody can reach round r+1's before round r's is set, so that one
         * can be cleared now. */
        while (atomic_load(&s->arrived) < N * (r + 1))
            wf_yield();
        wf_event_clear(&s->go[(r + 1) % 2]);
        CHECK(wf_event_set(&s->go[r % 2]) >= 0);
    }
    join_n(t, N);
    stop_canceller(&ca);
    CHECK_EQ(atomic_load(&s->waits_ok), N * s->rounds);
    CHECK_EQ(wf_event_destroy(&s->go[0]), 0);
    CHECK_EQ(wf_event_destroy(&s->go[1]), 0);
    free(s);
    return 0;
}

static void test_stress(void **state)
{
    run_main(STRESS_WORKERS, m_stress, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_outside),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
