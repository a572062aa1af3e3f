/* test_rwlock.c - the readers-writer lock: sharing, exclusion, ownership
 * errors, writers not starved (nor readers), a departing head writer that
 * lets the readers behind it in, and a stress with invariants checked on
 * every entry. */
#include "sync_test.h"

static int rd_forever(void *arg, void **res)
{
    int e = wf_rwlock_read_acquire(arg);
    if (e)
        return e;
    return wf_rwlock_read_release(arg);
}

static int wr_forever(void *arg, void **res)
{
    int e = wf_rwlock_write_acquire(arg);
    if (e)
        return e;
    return wf_rwlock_write_release(arg);
}

static int wr_other_release(void *arg, void **res)
{
    return wf_rwlock_write_release(arg) == -EPERM ? 0 : -1;
}

static int m_basics(void *arg, void **res)
{
    wf_rwlock_t rw = WF_RWLOCK_INIT;
    CHECK_EQ(wf_rwlock_state(&rw), 0);
    CHECK_EQ(wf_rwlock_read_release(&rw), -EPERM);
    CHECK_EQ(wf_rwlock_write_release(&rw), -EPERM);
    /* Readers share. */
    CHECK_EQ(wf_rwlock_read_acquire(&rw), 0);
    CHECK_EQ(wf_rwlock_try_read_acquire(&rw), 0);
    CHECK_EQ(wf_rwlock_state(&rw), 2);
    CHECK_EQ(wf_rwlock_try_write_acquire(&rw), -EAGAIN);
    CHECK_EQ(wf_rwlock_write_acquire_until(&rw, 0), -ETIMEDOUT);
    CHECK_EQ(wf_rwlock_destroy(&rw), -EBUSY);
    CHECK_EQ(wf_rwlock_read_release(&rw), 0);
    CHECK_EQ(wf_rwlock_read_release(&rw), 0);
    CHECK_EQ(wf_rwlock_read_release(&rw), -EPERM);
    /* A writer excludes everyone, itself included. */
    CHECK_EQ(wf_rwlock_write_acquire(&rw), 0);
    CHECK_EQ(wf_rwlock_state(&rw), WF_RWLOCK_WRITER);
    CHECK_EQ(wf_rwlock_write_acquire(&rw), -EDEADLK);
    CHECK_EQ(wf_rwlock_read_acquire(&rw), -EDEADLK);
    CHECK_EQ(wf_rwlock_try_read_acquire(&rw), -EDEADLK);
    CHECK_EQ(wf_rwlock_read_release(&rw), -EPERM);
    wf_task_t t;
    int st = -1;
    CHECK_EQ(wf_spawn(&t, wr_other_release, &rw, NULL), 0);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_rwlock_write_release(&rw), 0);
    CHECK_EQ(wf_rwlock_state(&rw), 0);
    /* Errors. */
    CHECK_EQ(wf_rwlock_read_acquire(NULL), -EINVAL);
    CHECK_EQ(wf_rwlock_write_acquire_until(&rw, -5), -EINVAL);
    CHECK_EQ(wf_rwlock_destroy(&rw), 0);
    CHECK_EQ(wf_rwlock_read_acquire(&rw), -EINVAL);
    CHECK_EQ(wf_rwlock_state(&rw), -EINVAL);
    CHECK_EQ(wf_rwlock_destroy(&rw), -EINVAL);
    CHECK_EQ(wf_rwlock_init(&rw), 0);
    CHECK_EQ(wf_rwlock_destroy(&rw), 0);
    return 0;
}

static void test_basics(void **state)
{
    run_main(2, m_basics, NULL);
    /* Outside a fiber: -EPERM, nothing changes. */
    wf_rwlock_t rw;
    assert_int_equal(wf_rwlock_init(&rw), 0);
    assert_int_equal(wf_rwlock_read_acquire(&rw), -EPERM);
    assert_int_equal(wf_rwlock_write_release(&rw), -EPERM);
    assert_int_equal(wf_rwlock_state(&rw), 0);
    assert_int_equal(wf_rwlock_destroy(&rw), 0);
}

/* Writers are not starved: a waiting writer holds back later readers. */
static int m_writer_not_starved(void *arg, void **res)
{
    wf_rwlock_t rw = WF_RWLOCK_INIT;
    CHECK_EQ(wf_rwlock_read_acquire(&rw), 0);
    wf_task_t w, r2;
    CHECK_EQ(wf_spawn(&w, wr_forever, &rw, NULL), 0);
    CHECK(wait_parked(w));
    /* A new reader must queue behind the writer. */
    CHECK_EQ(wf_rwlock_try_read_acquire(&rw), -EAGAIN);
    CHECK_EQ(wf_spawn(&r2, rd_forever, &rw, NULL), 0);
    CHECK(wait_parked(r2));
    CHECK_EQ(wf_rwlock_state(&rw), 1);
    CHECK_EQ(wf_rwlock_destroy(&rw), -EBUSY);
    /* The last reader leaves: the writer goes, then the queued reader. */
    CHECK_EQ(wf_rwlock_read_release(&rw), 0);
    join_n(&w, 1);
    join_n(&r2, 1);
    CHECK_EQ(wf_rwlock_state(&rw), 0);
    CHECK_EQ(wf_rwlock_destroy(&rw), 0);
    return 0;
}

/* Readers are not starved either: a reader that waits is served before a
 * writer that came later. */
typedef struct {
    wf_rwlock_t rw;
    int order[3];
    _Atomic int n;
} order_state;

static int ordered_reader(void *arg, void **res)
{
    order_state *os = arg;
    int e = wf_rwlock_read_acquire(&os->rw);
    if (e)
        return e;
    os->order[atomic_fetch_add(&os->n, 1)] = 'r';
    return wf_rwlock_read_release(&os->rw);
}

static int ordered_writer(void *arg, void **res)
{
    order_state *os = arg;
    int e = wf_rwlock_write_acquire(&os->rw);
    if (e)
        return e;
    os->order[atomic_fetch_add(&os->n, 1)] = 'w';
    return wf_rwlock_write_release(&os->rw);
}

static int m_reader_not_starved(void *arg, void **res)
{
    order_state os;
    memset(&os, 0, sizeof os);
    wf_rwlock_init(&os.rw);
    CHECK_EQ(wf_rwlock_write_acquire(&os.rw), 0);
    wf_task_t r, w;
    CHECK_EQ(wf_spawn(&r, ordered_reader, &os, NULL), 0);
    CHECK(wait_parked(r));
    CHECK_EQ(wf_spawn(&w, ordered_writer, &os, NULL), 0);
    CHECK(wait_parked(w));
    CHECK_EQ(wf_rwlock_write_release(&os.rw), 0);
    join_n(&r, 1);
    join_n(&w, 1);
    CHECK_EQ(atomic_load(&os.n), 2);
    CHECK_EQ(os.order[0], 'r');
    CHECK_EQ(os.order[1], 'w');
    CHECK_EQ(wf_rwlock_destroy(&os.rw), 0);
    return 0;
}

/* A writer at the head of the queue that gives up (deadline or
 * cancellation) lets in the readers it was holding back. */
typedef struct {
    wf_rwlock_t *rw;
    int64_t ns;
} short_arg;

static int wr_short(void *arg, void **res)
{
    short_arg *a = arg;
    int e = wf_rwlock_write_acquire_until(a->rw, wf_deadline_in(a->ns));
    return e == -ETIMEDOUT ? 0 : -1;
}

/* Yield until `t` is parked or done; true if parked. */
static bool parked_or_done(wf_task_t t)
{
    for (;;) {
        int st = wf_task_state(t);
        if (st == WF_TASK_PARKED || st == WF_TASK_DONE)
            return st == WF_TASK_PARKED;
        wf_yield();
    }
}

static int m_head_writer_leaves(void *arg, void **res)
{
    /* how 0: the writer times out; its deadline must fall after the reader
     * queued behind it, which a slow (sanitized) run may miss: then the
     * scenario is retried with a longer deadline. how 1: cancelled. */
    int64_t ns = 2 * WF_NSEC_PER_MSEC;
    for (int how = 0; how < 2;) {
        wf_rwlock_t rw = WF_RWLOCK_INIT;
        CHECK_EQ(wf_rwlock_read_acquire(&rw), 0);
        short_arg sa = {&rw, ns};
        wf_task_t w, r2;
        if (how)
            CHECK_EQ(wf_spawn(&w, wr_forever, &rw, NULL), 0);
        else
            CHECK_EQ(wf_spawn(&w, wr_short, &sa, NULL), 0);
        bool queued = parked_or_done(w);
        CHECK_EQ(wf_spawn(&r2, rd_forever, &rw, NULL), 0);
        queued = parked_or_done(r2) && queued;
        CHECK(queued || how == 0);
        if (how) {
            CHECK_EQ(wf_cancel(w), 0);
            int st = 0;
            CHECK_EQ(wf_join(w, &st, NULL), 0);
            CHECK_EQ(st, -ECANCELED);
        } else {
            join_n(&w, 1);
        }
        /* We still hold our read lock: r2 got in beside us. */
        join_n(&r2, 1);
        CHECK_EQ(wf_rwlock_state(&rw), 1);
        CHECK_EQ(wf_rwlock_read_release(&rw), 0);
        CHECK_EQ(wf_rwlock_destroy(&rw), 0);
        if (queued)
            how++;
        else
            ns *= 2;
    }
    return 0;
}

static void test_policy(void **state)
{
    run_main(2, m_writer_not_starved, NULL);
    run_main(2, m_reader_not_starved, NULL);
    run_main(2, m_head_writer_leaves, NULL);
}

/* --- stress ------------------------------------------------------------------ */

typedef struct {
    wf_rwlock_t rw;
    _Atomic int readers, writers;
    _Atomic long reads, writes, violations, gaveup;
    long shared; /* written by writers only */
    long iters;
} rw_stress;

typedef struct {
    rw_stress *s;
    uint64_t seed;
} rw_arg;

static int rw_worker(void *arg, void **res)
{
    rw_arg *a = arg;
    rw_stress *s = a->s;
    uint64_t rnd = a->seed;
    for (long i = 0; i < s->iters; i++) {
        bool write = test_rand(&rnd) % 4 == 0;
        int64_t dl = test_rand(&rnd) % 3 == 0
                         ? wf_deadline_in((int64_t)(test_rand(&rnd) % 30) * WF_NSEC_PER_USEC)
                         : WF_FOREVER;
        int e = write ? wf_rwlock_write_acquire_until(&s->rw, dl) : wf_rwlock_read_acquire_until(&s->rw, dl);
        if (e == -ETIMEDOUT || e == -ECANCELED) {
            atomic_fetch_add(&s->gaveup, 1);
            if (e == -ECANCELED)
                wf_uncancel();
            continue;
        }
        if (e)
            return e;
        if (write) {
            if (atomic_fetch_add(&s->writers, 1) != 0 || atomic_load(&s->readers) != 0)
                atomic_fetch_add(&s->violations, 1);
            s->shared++;
            if (test_rand(&rnd) % 8 == 0)
                wf_yield();
            atomic_fetch_sub(&s->writers, 1);
            atomic_fetch_add(&s->writes, 1);
            if (wf_rwlock_write_release(&s->rw))
                return -100;
        } else {
            atomic_fetch_add(&s->readers, 1);
            if (atomic_load(&s->writers) != 0)
                atomic_fetch_add(&s->violations, 1);
            long v = s->shared;
            (void)v;
            if (test_rand(&rnd) % 8 == 0)
                wf_yield();
            atomic_fetch_sub(&s->readers, 1);
            atomic_fetch_add(&s->reads, 1);
            if (wf_rwlock_read_release(&s->rw))
                return -101;
        }
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int m_stress(void *arg, void **res)
{
    enum { N = 40 };
    rw_stress *s = calloc(1, sizeof *s);
    wf_rwlock_init(&s->rw);
    s->iters = SCALED(3000);
    rw_arg a[N];
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        a[i].s = s;
        a[i].seed = 0x2545F4914F6CDD1Dull * (uint64_t)(i + 7);
    }
    spawn_n(t, N, rw_worker, a, sizeof a[0]);
    canceller_arg ca;
    start_canceller(&ca, t, N, 99);
    join_n(t, N);
    stop_canceller(&ca);
    CHECK_EQ(atomic_load(&s->violations), 0);
    CHECK_EQ(s->shared, atomic_load(&s->writes));
    CHECK_EQ(atomic_load(&s->reads) + atomic_load(&s->writes) + atomic_load(&s->gaveup), N * s->iters);
    CHECK_EQ(wf_rwlock_state(&s->rw), 0);
    CHECK_EQ(wf_rwlock_destroy(&s->rw), 0);
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
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
