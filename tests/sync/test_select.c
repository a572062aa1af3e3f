/* test_select.c - select over queues: ready cases, waiting for a get or a
 * put, deadlines, cancellation, disabled cases, shut-down queues,
 * fairness among ready cases (none starves), and a stress in which every
 * select must do exactly one case: selecting producers and consumers over
 * several queues, timing out and being cancelled, and every item must come
 * out exactly once. */
#include "sync_test.h"

#include <pthread.h>

#define ITEM(i) ((void *)(uintptr_t)(i))
#define ID(p) ((long)(uintptr_t)(p))

static void set_get(wf_select_case_t *c, wf_queue_t *q)
{
    c->queue = q;
    c->op = WF_SELECT_GET;
    c->item = NULL;
    c->result = 1;
}

static void set_put(wf_select_case_t *c, wf_queue_t *q, void *item)
{
    c->queue = q;
    c->op = WF_SELECT_PUT;
    c->item = item;
    c->result = 1;
}

/* --- basics --------------------------------------------------------------- */

typedef struct {
    wf_queue_t *q;
    long id;
    int64_t delay;
} later_arg;

static int put_later(void *arg, void **res)
{
    later_arg *a = arg;
    wf_sleep(a->delay);
    return wf_queue_put(a->q, ITEM(a->id));
}

static int get_later(void *arg, void **res)
{
    later_arg *a = arg;
    wf_sleep(a->delay);
    void *v;
    int e = wf_queue_get(a->q, &v);
    *res = v;
    return e;
}

static int m_basics(void *arg, void **res)
{
    wf_queue_t *q[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wf_queue_create(&q[i], 1, WF_QUEUE_FIFO, NULL), 0);
    wf_select_case_t c[4];
    void *v;

    /* Errors. */
    CHECK_EQ(wf_select(NULL, 1), -EINVAL);
    CHECK_EQ(wf_select(c, 0), -EINVAL);
    CHECK_EQ(wf_select(c, WF_SELECT_MAX + 1), -EINVAL);
    set_get(&c[0], q[0]);
    c[0].op = (wf_select_op_t)9;
    CHECK_EQ(wf_select(c, 1), -EINVAL);
    set_get(&c[0], q[0]);
    CHECK_EQ(wf_select_until(c, 1, -2), -EINVAL);

    /* Nothing ready: a past deadline is Go's default case. */
    set_get(&c[0], q[0]);
    set_get(&c[1], q[1]);
    set_get(&c[2], q[2]);
    CHECK_EQ(wf_select_until(c, 3, 0), -ETIMEDOUT);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_select_until(c, 3, wf_deadline_in(2 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 2 * WF_NSEC_PER_MSEC);

    /* A ready get. */
    CHECK_EQ(wf_queue_put(q[1], ITEM(5)), 0);
    set_get(&c[0], q[0]);
    set_get(&c[1], q[1]);
    CHECK_EQ(wf_select(c, 2), 1);
    CHECK_EQ(c[1].result, 0);
    CHECK_EQ(ID(c[1].item), 5);
    CHECK_EQ(c[0].result, 1); /* untouched */
    /* A ready put beside a waiting get: the put happens. */
    set_get(&c[0], q[0]);
    set_put(&c[1], q[2], ITEM(6));
    CHECK_EQ(wf_select(c, 2), 1);
    CHECK_EQ(c[1].result, 0);
    CHECK_EQ(wf_queue_get(q[2], &v), 0);
    CHECK_EQ(ID(v), 6);

    /* Waiting: a put on the second queue wakes the select with that item;
     * the other queues are left as they were. */
    later_arg la = {q[1], 42, 500 * WF_NSEC_PER_USEC};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, put_later, &la, NULL), 0);
    set_get(&c[0], q[0]);
    set_get(&c[1], q[1]);
    set_get(&c[2], q[2]);
    CHECK_EQ(wf_select(c, 3), 1);
    CHECK_EQ(c[1].result, 0);
    CHECK_EQ(ID(c[1].item), 42);
    join_n(&t, 1);
    CHECK_EQ(wf_queue_put(q[0], ITEM(1)), 0);
    CHECK_EQ(wf_queue_put(q[2], ITEM(3)), 0);
    CHECK_EQ(wf_queue_size(q[0]), 1);
    CHECK_EQ(wf_queue_size(q[2]), 1);

    /* Waiting to put: both queues full; a get on q[2] pulls our item in. */
    set_put(&c[0], q[0], ITEM(100));
    set_put(&c[1], q[2], ITEM(102));
    la.q = q[2];
    CHECK_EQ(wf_spawn(&t, get_later, &la, NULL), 0);
    CHECK_EQ(wf_select(c, 2), 1);
    CHECK_EQ(c[1].result, 0);
    void *rv = NULL;
    int st = -1;
    CHECK_EQ(wf_join(t, &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(ID(rv), 3);
    CHECK_EQ(wf_queue_get(q[2], &v), 0);
    CHECK_EQ(ID(v), 102);
    CHECK_EQ(wf_queue_get(q[0], &v), 0);
    CHECK_EQ(ID(v), 1); /* q[0] never got 100 */
    CHECK_EQ(wf_queue_size(q[0]), 0);

    /* Disabled cases are never chosen; all disabled: only the deadline. */
    CHECK_EQ(wf_queue_put(q[0], ITEM(7)), 0);
    set_get(&c[0], NULL);
    set_get(&c[1], q[1]);
    CHECK_EQ(wf_select_until(c, 2, 0), -ETIMEDOUT);
    c[0].queue = q[0];
    CHECK_EQ(wf_select_until(c, 2, 0), 0);
    CHECK_EQ(ID(c[0].item), 7);
    set_get(&c[0], NULL);
    set_put(&c[1], NULL, NULL);
    CHECK_EQ(wf_select_until(c, 2, wf_deadline_in(WF_NSEC_PER_MSEC)), -ETIMEDOUT);

    /* Cancelled while waiting: nothing happened. */
    set_get(&c[0], q[0]);
    set_get(&c[1], q[1]);
    wf_cancel(wf_self());
    CHECK_EQ(wf_select(c, 2), -ECANCELED);
    wf_uncancel();
    CHECK_EQ(c[0].result, 1);
    CHECK_EQ(c[1].result, 1);
    /* ... but a ready case still happens when cancelled (asyncio). */
    CHECK_EQ(wf_queue_put(q[1], ITEM(8)), 0);
    wf_cancel(wf_self());
    CHECK_EQ(wf_select(c, 2), 1);
    wf_uncancel();

    /* A shut-down queue makes its case ready, with -ESHUTDOWN. */
    CHECK_EQ(wf_queue_shutdown(q[1], WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
    set_get(&c[0], q[0]);
    set_get(&c[1], q[1]);
    CHECK_EQ(wf_select(c, 2), 1);
    CHECK_EQ(c[1].result, -ESHUTDOWN);
    set_put(&c[1], q[1], ITEM(1));
    CHECK_EQ(wf_select(c, 2), 1);
    CHECK_EQ(c[1].result, -ESHUTDOWN);
    /* ... also while waiting. */
    set_get(&c[0], q[0]);
    set_get(&c[1], q[2]);
    CHECK_EQ(wf_queue_shutdown(q[2], WF_QUEUE_SHUTDOWN_IMMEDIATE, NULL, NULL), 0);
    CHECK_EQ(wf_select(c, 2), 1);
    CHECK_EQ(c[1].result, -ESHUTDOWN);

    for (int i = 0; i < 3; i++)
        CHECK_EQ(wf_queue_destroy(q[i], NULL, NULL, NULL), 0);
    return 0;
}

static void test_basics(void **state)
{
    run_main(2, m_basics, NULL);
    wf_queue_t *q;
    assert_int_equal(wf_queue_create(&q, 1, WF_QUEUE_FIFO, NULL), 0);
    wf_select_case_t c = {q, WF_SELECT_GET, NULL, 0};
    assert_int_equal(wf_select(&c, 1), -EPERM);
    assert_int_equal(wf_queue_destroy(q, NULL, NULL, NULL), 0);
}

/* A select woken by a shutdown while it waits, and one with many cases. */
static int shut_later(void *arg, void **res)
{
    wf_sleep(300 * WF_NSEC_PER_USEC);
    return wf_queue_shutdown(arg, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL);
}

static int m_wake_shutdown_many(void *arg, void **res)
{
    enum { N = 40 }; /* more than fit on the stack: the allocated path */
    wf_queue_t *q[N];
    wf_select_case_t c[N];
    for (int i = 0; i < N; i++) {
        CHECK_EQ(wf_queue_create(&q[i], 1, WF_QUEUE_FIFO, NULL), 0);
        set_get(&c[i], q[i]);
    }
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, shut_later, q[33], NULL), 0);
    CHECK_EQ(wf_select(c, N), 33);
    CHECK_EQ(c[33].result, -ESHUTDOWN);
    join_n(&t, 1);
    /* Nothing of ours was left behind on the other queues. */
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_queue_destroy(q[i], NULL, NULL, NULL), 0);
    return 0;
}

static void test_wake_shutdown_many(void **state)
{
    run_main(2, m_wake_shutdown_many, NULL);
}

/* --- fairness ---------------------------------------------------------------- */

static int m_fairness(void *arg, void **res)
{
    enum { K = 3, ROUNDS = 3000 };
    wf_queue_t *q[K];
    long chosen[K] = {0};
    for (int i = 0; i < K; i++) {
        CHECK_EQ(wf_queue_create(&q[i], WF_QUEUE_UNBOUNDED, WF_QUEUE_FIFO, NULL), 0);
        for (long k = 0; k < ROUNDS; k++)
            CHECK_EQ(wf_queue_put(q[i], ITEM(k)), 0);
    }
    /* All ready every time: each must be chosen about a third of the time
     * (the bound is 12 standard deviations away from a fair coin). */
    wf_select_case_t c[K];
    for (long r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < K; i++)
            set_get(&c[i], q[i]);
        int k = wf_select(c, K);
        CHECK(k >= 0 && k < K);
        if (k >= 0 && k < K)
            chosen[k]++;
    }
    for (int i = 0; i < K; i++)
        CHECK(chosen[i] > ROUNDS / K - ROUNDS / 10);
    /* Put cases too: all have room. */
    long putc[K] = {0};
    for (long r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < K; i++)
            set_put(&c[i], q[i], ITEM(r));
        int k = wf_select(c, K);
        if (k >= 0 && k < K)
            putc[k]++;
    }
    for (int i = 0; i < K; i++)
        CHECK(putc[i] > ROUNDS / K - ROUNDS / 10);
    for (int i = 0; i < K; i++)
        CHECK_EQ(wf_queue_destroy(q[i], NULL, NULL, NULL), 0);
    return 0;
}

static void test_fairness(void **state)
{
    run_main(2, m_fairness, NULL);
}

/* --- stress: exactly one case per select, nothing lost ----------------------- */

enum { SQ = 4 };

typedef struct {
    wf_queue_t *q[SQ];
    long per_producer;
    int producers;
    _Atomic unsigned char *seen;
    _Atomic long got, put_failed, get_failed;
} sel_state;

typedef struct {
    sel_state *s;
    int idx;
    uint64_t seed;
} sel_arg;

static int sel_producer(void *arg, void **res)
{
    sel_arg *a = arg;
    sel_state *s = a->s;
    uint64_t rnd = a->seed;
    wf_select_case_t c[SQ + 1];
    for (long k = 0; k < s->per_producer; k++) {
        long id = a->idx * s->per_producer + k;
        for (;;) {
            /* A random subset of the queues (one always), plus sometimes a
             * disabled case. */
            int n = 0, must = (int)(test_rand(&rnd) % SQ);
            for (int i = 0; i < SQ; i++)
                if (i == must || test_rand(&rnd) % 2)
                    set_put(&c[n++], s->q[i], ITEM(id));
            if (test_rand(&rnd) % 4 == 0)
                set_put(&c[n++], NULL, ITEM(id));
            int r = wf_select_until(c, (size_t)n, random_deadline(&rnd));
            if (r >= 0) {
                if (c[r].result != 0 || c[r].queue == NULL)
                    return -100;
                break;
            }
            if (r != -ETIMEDOUT && r != -ECANCELED)
                return r;
            if (r == -ECANCELED)
                wf_uncancel();
            atomic_fetch_add(&s->put_failed, 1);
        }
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int sel_consumer(void *arg, void **res)
{
    sel_arg *a = arg;
    sel_state *s = a->s;
    uint64_t rnd = a->seed;
    long total = (long)s->producers * s->per_producer;
    wf_select_case_t c[SQ];
    for (;;) {
        for (int i = 0; i < SQ; i++)
            set_get(&c[i], s->q[i]);
        int r = wf_select_until(c, SQ, random_deadline(&rnd));
        if (r < 0) {
            if (r != -ETIMEDOUT && r != -ECANCELED)
                return r;
            if (r == -ECANCELED)
                wf_uncancel();
            atomic_fetch_add(&s->get_failed, 1);
            continue;
        }
        if (c[r].result == -ESHUTDOWN)
            break; /* everything was consumed before the shutdown */
        long id = ID(c[r].item);
        if (c[r].result != 0 || id < 0 || id >= total)
            return -100;
        atomic_fetch_add(&s->seen[id], 1);
        atomic_fetch_add(&s->got, 1);
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int m_stress(void *arg, void **res)
{
    enum { P = 5, C = 5 };
    long iterations = WF_TEST_SANITIZED ? 2 : 6;
    for (long it = 0; it < iterations; it++) {
        sel_state s;
        memset(&s, 0, sizeof s);
        s.producers = P;
        s.per_producer = SCALED(2000);
        long total = P * s.per_producer;
        s.seen = calloc((size_t)total, 1);
        for (int i = 0; i < SQ; i++)
            CHECK_EQ(wf_queue_create(&s.q[i], 1 + (size_t)(it + i) % 3, WF_QUEUE_FIFO, NULL), 0);
        sel_arg a[P + C];
        wf_task_t t[P + C];
        for (int i = 0; i < P + C; i++) {
            a[i].s = &s;
            a[i].idx = i < P ? i : i - P;
            a[i].seed = (uint64_t)(it * 64 + i + 1) * 0x9E3779B97F4A7C15ull;
        }
        spawn_n(t, P, sel_producer, a, sizeof a[0]);
        spawn_n(t + P, C, sel_consumer, a + P, sizeof a[0]);
        canceller_arg ca;
        start_canceller(&ca, t, P + C, (uint64_t)it + 5);
        join_n(t, P);
        CHECK(wait_count(&s.got, total, LONG_NS));
        for (int i = 0; i < SQ; i++)
            CHECK_EQ(wf_queue_shutdown(s.q[i], WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
        join_n(t + P, C);
        long cancels = stop_canceller(&ca);
        CHECK_EQ(atomic_load(&s.got), total);
        long bad = 0;
        for (long i = 0; i < total; i++)
            bad += atomic_load(&s.seen[i]) != 1;
        CHECK_EQ(bad, 0);
        for (int i = 0; i < SQ; i++) {
            CHECK_EQ(wf_queue_size(s.q[i]), 0);
            CHECK_EQ(wf_queue_destroy(s.q[i], NULL, NULL, NULL), 0); /* no node left behind */
        }
        if (getenv("WF_TEST_VERBOSE"))
            fprintf(stderr,
                    "select stress: %ld items, %ld failed put selects, %ld failed get selects, %ld cancels\n",
                    total, atomic_load(&s.put_failed), atomic_load(&s.get_failed), cancels);
        free((void *)s.seen);
    }
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
        cmocka_unit_test(test_wake_shutdown_many),
        cmocka_unit_test(test_fairness),
        cmocka_unit_test(test_stress),
    };
    return run_queue_groups(tests, sizeof tests / sizeof tests[0]);
}
