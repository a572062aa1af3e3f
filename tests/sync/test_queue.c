/* test_queue.c - queues: FIFO, LIFO and priority order, bounded and
 * unbounded, blocking and non-blocking puts and gets, deadlines, task_done /
 * join, both shutdown modes, destroy, items from a foreign thread, and the
 * central promise: cancellation never loses or duplicates an item (every
 * item produced is consumed exactly once, across workers, with producers
 * and consumers timing out and being cancelled all the time). */
#include "sync_test.h"

#include <pthread.h>

#define ITEM(i) ((void *)(uintptr_t)(i))
#define ID(p) ((long)(uintptr_t)(p))

static int cmp_long(const void *a, const void *b)
{
    long x = ID(a) / 10, y = ID(b) / 10; /* only the tens count: ties */
    return (x > y) - (x < y);
}

/* --- order ----------------------------------------------------------------- */

static int m_order(void *arg, void **res)
{
    wf_queue_t *q;
    void *v;
    /* FIFO, bounded, wrapping around its ring several times. */
    CHECK_EQ(wf_queue_create(&q, 6, WF_QUEUE_FIFO, NULL), 0);
    long next_in = 0, next_out = 0;
    for (int round = 0; round < 7; round++) {
        for (int k = 0; k < 3 + round % 3; k++)
            CHECK_EQ(wf_queue_try_put(q, ITEM(next_in++)), 0);
        while (wf_queue_size(q) > 1) {
            CHECK_EQ(wf_queue_get(q, &v), 0);
            CHECK_EQ(ID(v), next_out++);
        }
    }
    CHECK_EQ(wf_queue_get(q, &v), 0);
    CHECK_EQ(ID(v), next_out++);
    CHECK_EQ(next_in, next_out);
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);

    /* LIFO. */
    CHECK_EQ(wf_queue_create(&q, 8, WF_QUEUE_LIFO, NULL), 0);
    for (long i = 0; i < 8; i++)
        CHECK_EQ(wf_queue_put(q, ITEM(i)), 0);
    for (long i = 7; i >= 0; i--) {
        CHECK_EQ(wf_queue_try_get(q, &v), 0);
        CHECK_EQ(ID(v), i);
    }
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);

    /* Priority: smallest first by the comparison; equal ones (same tens)
     * in insertion order. */
    CHECK_EQ(wf_queue_create(&q, WF_QUEUE_UNBOUNDED, WF_QUEUE_PRIORITY, cmp_long), 0);
    long in[] = {52, 31, 90, 37, 11, 55, 30, 12, 91, 33, 58, 10};
    long out[] = {11, 12, 10, 31, 37, 30, 33, 52, 55, 58, 90, 91};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        CHECK_EQ(wf_queue_put(q, ITEM(in[i])), 0);
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        CHECK_EQ(wf_queue_get(q, &v), 0);
        CHECK_EQ(ID(v), out[i]);
    }
    /* A larger random load against a reference order. */
    uint64_t rnd = 12345;
    enum { PN = 3000 };
    long cnt[100] = {0};
    for (long i = 0; i < PN; i++) {
        long x = (long)(test_rand(&rnd) % 100) * 10;
        cnt[x / 10]++;
        CHECK_EQ(wf_queue_put(q, ITEM(x)), 0);
    }
    CHECK_EQ(wf_queue_size(q), PN);
    long prev = -1;
    for (long i = 0; i < PN; i++) {
        CHECK_EQ(wf_queue_get(q, &v), 0);
        CHECK(ID(v) >= prev);
        prev = ID(v);
        cnt[ID(v) / 10]--;
    }
    for (int i = 0; i < 100; i++)
        CHECK_EQ(cnt[i], 0);
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);

    /* Unbounded FIFO and LIFO grow from a wrapped ring without reordering. */
    for (int kind = 0; kind < 2; kind++) {
        CHECK_EQ(wf_queue_create(&q, WF_QUEUE_UNBOUNDED, kind ? WF_QUEUE_LIFO : WF_QUEUE_FIFO, NULL), 0);
        for (long i = 0; i < 10; i++)
            CHECK_EQ(wf_queue_put(q, ITEM(i)), 0);
        for (long i = 0; i < 7; i++)
            CHECK_EQ(wf_queue_get(q, &v), 0);
        for (long i = 10; i < 5000; i++)
            CHECK_EQ(wf_queue_put(q, ITEM(i)), 0);
        CHECK_EQ(wf_queue_full(q), 0);
        CHECK(wf_queue_capacity(q) == WF_QUEUE_UNBOUNDED);
        long n = wf_queue_size(q);
        CHECK_EQ(n, 5000 - 7);
        if (!kind) {
            for (long i = 7; i < 5000; i++) {
                CHECK_EQ(wf_queue_get(q, &v), 0);
                CHECK_EQ(ID(v), i);
            }
        }
        /* Success is 0 however many items are left; the count comes back
         * through the last argument. */
        size_t left = 12345;
        CHECK_EQ(wf_queue_destroy(q, NULL, NULL, &left), 0);
        CHECK_EQ(left, kind ? 5000 - 7 : 0);
    }
    return 0;
}

static void test_order(void **state)
{
    run_main(2, m_order, NULL);
}

/* --- errors -------------------------------------------------------------------- */

static void test_errors(void **state)
{
    wf_queue_t *q = NULL;
    void *v;
    assert_int_equal(wf_queue_create(NULL, 1, WF_QUEUE_FIFO, NULL), -EINVAL);
    assert_int_equal(wf_queue_create(&q, 1, (wf_queue_kind_t)7, NULL), -EINVAL);
    assert_int_equal(wf_queue_create(&q, 1, WF_QUEUE_PRIORITY, NULL), -EINVAL);
    assert_int_equal(wf_queue_create(&q, 1, WF_QUEUE_FIFO, cmp_long), -EINVAL);
    assert_int_equal(wf_queue_create(&q, WF_QUEUE_MAX_CAPACITY + 1, WF_QUEUE_FIFO, NULL), -EINVAL);
    /* 0 reads as "no buffer" to Go users and "no bound" to asyncio users:
     * refused (wf_queue_create_rendezvous / WF_QUEUE_UNBOUNDED say which). */
    assert_int_equal(wf_queue_create(&q, 0, WF_QUEUE_FIFO, NULL), -EINVAL);
    assert_int_equal(wf_queue_create(&q, 0, WF_QUEUE_LIFO, NULL), -EINVAL);
    assert_int_equal(wf_queue_create(&q, WF_QUEUE_UNBOUNDED - 1, WF_QUEUE_FIFO, NULL), -EINVAL);
    assert_int_equal(wf_queue_create_rendezvous(NULL), -EINVAL);
    assert_null(q);
    assert_int_equal(wf_queue_put(NULL, NULL), -EINVAL);
    assert_int_equal(wf_queue_get(NULL, &v), -EINVAL);
    assert_int_equal(wf_queue_size(NULL), -EINVAL);
    assert_int_equal(wf_queue_destroy(NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(wf_queue_shutdown(NULL, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), -EINVAL);
    /* Outside any runtime: the non-waiting calls work, waiting ones -EPERM. */
    assert_int_equal(wf_queue_create(&q, 1, WF_QUEUE_FIFO, NULL), 0);
    assert_int_equal(wf_queue_get(q, NULL), -EINVAL);
    assert_int_equal(wf_queue_put_until(q, NULL, -2), -EINVAL);
    assert_int_equal(wf_queue_get(q, &v), -EPERM);
    assert_int_equal(wf_queue_try_get(q, &v), -EAGAIN);
    assert_int_equal(wf_queue_put(q, ITEM(1)), 0);
    assert_int_equal(wf_queue_put(q, ITEM(2)), -EPERM); /* full: would wait */
    assert_int_equal(wf_queue_try_put(q, ITEM(2)), -EAGAIN);
    assert_int_equal(wf_queue_full(q), 1);
    assert_int_equal(wf_queue_join(q), -EPERM);
    assert_int_equal(wf_queue_shutdown(q, (wf_queue_shutdown_mode_t)5, NULL, NULL), -EINVAL);
    assert_int_equal(wf_queue_task_done(q), 0);
    assert_int_equal(wf_queue_task_done(q), -EINVAL); /* more than were put */
    assert_int_equal(wf_queue_get(q, &v), 0);
    assert_int_equal(ID(v), 1);
    assert_int_equal(wf_queue_destroy(q, NULL, NULL, NULL), 0);
}

/* --- bounded: waiting puts and gets ---------------------------------------------- */

typedef struct {
    wf_queue_t *q;
    long id;
} put_arg;

static int putter(void *arg, void **res)
{
    put_arg *p = arg;
    return wf_queue_put(p->q, ITEM(p->id));
}

static int getter(void *arg, void **res)
{
    void *v = NULL;
    int e = wf_queue_get(arg, &v);
    *res = v;
    return e;
}

static int m_bounded(void *arg, void **res)
{
    wf_queue_t *q;
    void *v;
    CHECK_EQ(wf_queue_create(&q, 2, WF_QUEUE_FIFO, NULL), 0);
    CHECK_EQ(wf_queue_capacity(q), 2);
    CHECK_EQ(wf_queue_empty(q), 1);
    CHECK_EQ(wf_queue_put(q, ITEM(1)), 0);
    CHECK_EQ(wf_queue_put(q, ITEM(2)), 0);
    CHECK_EQ(wf_queue_full(q), 1);
    CHECK_EQ(wf_queue_empty(q), 0);
    CHECK_EQ(wf_queue_try_put(q, ITEM(3)), -EAGAIN);
    CHECK_EQ(wf_queue_put_until(q, ITEM(3), 0), -ETIMEDOUT);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_queue_put_until(q, ITEM(3), wf_deadline_in(2 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 2 * WF_NSEC_PER_MSEC);
    /* Putters wait, in order; each get pulls the next one in. */
    put_arg pa[3] = {{q, 3}, {q, 4}, {q, 5}};
    wf_task_t pt[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(wf_spawn(&pt[i], putter, &pa[i], NULL), 0);
        CHECK(wait_parked(pt[i]));
    }
    size_t untouched = 777;
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, &untouched), -EBUSY);
    CHECK_EQ(untouched, 777); /* nothing changed */
    /* A cancelled putter did not enqueue. */
    CHECK_EQ(wf_cancel(pt[1]), 0);
    int st = 0;
    CHECK_EQ(wf_join(pt[1], &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_queue_size(q), 2);
    long want[] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(wf_queue_get(q, &v), 0);
        CHECK_EQ(ID(v), want[i]);
    }
    join_n(&pt[0], 1);
    join_n(&pt[2], 1);
    /* Getters wait, in order; a put goes straight to the first. */
    wf_task_t gt[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(wf_spawn(&gt[i], getter, q, NULL), 0);
        CHECK(wait_parked(gt[i]));
    }
    /* A cancelled getter took nothing. */
    CHECK_EQ(wf_cancel(gt[0]), 0);
    void *rv = ITEM(99);
    CHECK_EQ(wf_join(gt[0], &st, &rv), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK(rv == NULL);
    CHECK_EQ(wf_queue_put(q, ITEM(10)), 0);
    CHECK_EQ(wf_queue_put(q, ITEM(11)), 0);
    CHECK_EQ(wf_join(gt[1], &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(ID(rv), 10);
    CHECK_EQ(wf_join(gt[2], &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(ID(rv), 11);
    CHECK_EQ(wf_queue_size(q), 0);
    CHECK_EQ(wf_queue_get_until(q, &v, 0), -ETIMEDOUT);
    CHECK_EQ(wf_queue_try_get(q, &v), -EAGAIN);
    /* Pending cancellation: a get that finds an item succeeds (asyncio);
     * one that would wait fails. */
    CHECK_EQ(wf_queue_put(q, ITEM(7)), 0);
    wf_cancel(wf_self());
    CHECK_EQ(wf_queue_get(q, &v), 0);
    CHECK_EQ(ID(v), 7);
    CHECK_EQ(wf_queue_get(q, &v), -ECANCELED);
    wf_uncancel();
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);
    return 0;
}

static void test_bounded(void **state)
{
    run_main(2, m_bounded, NULL);
}

/* --- task_done / join ---------------------------------------------------------- */

typedef struct {
    wf_queue_t *q;
    _Atomic long done;
    _Atomic int join_returned;
} join_state;

static int slow_worker(void *arg, void **res)
{
    join_state *j = arg;
    void *v;
    int e;
    while ((e = wf_queue_get(j->q, &v)) == 0) {
        wf_sleep(50 * WF_NSEC_PER_USEC);
        /* join must not have returned while an item is unfinished. */
        if (atomic_load(&j->join_returned))
            return -1;
        atomic_fetch_add(&j->done, 1);
        if (wf_queue_task_done(j->q))
            return -2;
    }
    return e == -ESHUTDOWN ? 0 : e;
}

static int m_join(void *arg, void **res)
{
    join_state j;
    memset(&j, 0, sizeof j);
    CHECK_EQ(wf_queue_create(&j.q, 4, WF_QUEUE_FIFO, NULL), 0);
    CHECK_EQ(wf_queue_join(j.q), 0); /* nothing put: at once */
    enum { W = 3, ITEMS = 60 };
    wf_task_t t[W];
    spawn_n(t, W, slow_worker, &j, 0);
    for (long i = 0; i < ITEMS; i++)
        CHECK_EQ(wf_queue_put(j.q, ITEM(i)), 0);
    CHECK_EQ(wf_queue_join_until(j.q, 0), -ETIMEDOUT);
    CHECK_EQ(wf_queue_join(j.q), 0);
    atomic_store(&j.join_returned, 1);
    CHECK_EQ(atomic_load(&j.done), ITEMS);
    CHECK_EQ(wf_queue_task_done(j.q), -EINVAL);
    /* A join cancelled while waiting: on a queue of its own that nobody
     * serves, so the item is certainly unfinished when the join looks. */
    wf_queue_t *q2;
    CHECK_EQ(wf_queue_create(&q2, 4, WF_QUEUE_FIFO, NULL), 0);
    CHECK_EQ(wf_queue_put(q2, ITEM(1)), 0);
    wf_cancel(wf_self());
    CHECK_EQ(wf_queue_join(q2), -ECANCELED);
    wf_uncancel();
    void *v;
    CHECK_EQ(wf_queue_try_get(q2, &v), 0);
    CHECK_EQ(wf_queue_join_until(q2, 0), -ETIMEDOUT); /* taken, not done */
    CHECK_EQ(wf_queue_task_done(q2), 0);
    CHECK_EQ(wf_queue_join(q2), 0);
    CHECK_EQ(wf_queue_destroy(q2, NULL, NULL, NULL), 0);
    CHECK_EQ(wf_queue_shutdown(j.q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
    join_n(t, W);
    CHECK_EQ(wf_queue_join(j.q), 0); /* the workers marked the last one */
    CHECK_EQ(wf_queue_destroy(j.q, NULL, NULL, NULL), 0);
    return 0;
}

static void test_join(void **state)
{
    run_main(2, m_join, NULL);
}

/* --- shutdown ------------------------------------------------------------------ */

static void count_drop(void *item, void *arg)
{
    atomic_fetch_add((_Atomic long *)arg, ID(item));
}

static int joiner(void *arg, void **res)
{
    return wf_queue_join(arg);
}

static int m_shutdown(void *arg, void **res)
{
    wf_queue_t *q;
    void *v;
    int st;
    /* Graceful: waiting putters fail (not enqueued), gets drain, then fail. */
    CHECK_EQ(wf_queue_create(&q, 2, WF_QUEUE_FIFO, NULL), 0);
    CHECK_EQ(wf_queue_put(q, ITEM(1)), 0);
    CHECK_EQ(wf_queue_put(q, ITEM(2)), 0);
    put_arg pa = {q, 3};
    wf_task_t p;
    CHECK_EQ(wf_spawn(&p, putter, &pa, NULL), 0);
    CHECK(wait_parked(p));
    CHECK_EQ(wf_queue_is_shutdown(q), 0);
    CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
    CHECK_EQ(wf_queue_is_shutdown(q), 1);
    CHECK_EQ(wf_join(p, &st, NULL), 0);
    CHECK_EQ(st, -ESHUTDOWN);
    CHECK_EQ(wf_queue_put(q, ITEM(4)), -ESHUTDOWN);
    CHECK_EQ(wf_queue_try_put(q, ITEM(4)), -ESHUTDOWN);
    CHECK_EQ(wf_queue_get(q, &v), 0);
    CHECK_EQ(ID(v), 1);
    CHECK_EQ(wf_queue_try_get(q, &v), 0);
    CHECK_EQ(ID(v), 2);
    CHECK_EQ(wf_queue_get(q, &v), -ESHUTDOWN);
    CHECK_EQ(wf_queue_try_get(q, &v), -ESHUTDOWN);
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);

    /* Graceful with getters waiting on an empty queue: all fail at once. */
    CHECK_EQ(wf_queue_create(&q, WF_QUEUE_UNBOUNDED, WF_QUEUE_FIFO, NULL), 0);
    wf_task_t g[4];
    spawn_n(g, 4, getter, q, 0);
    for (int i = 0; i < 4; i++)
        CHECK(wait_parked(g[i]));
    CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(wf_join(g[i], &st, NULL), 0);
        CHECK_EQ(st, -ESHUTDOWN);
    }
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);

    /* Immediate: the items go to the drop callback, gets fail at once,
     * putters and joiners are released; shutdown again drops nothing. */
    CHECK_EQ(wf_queue_create(&q, 3, WF_QUEUE_PRIORITY, cmp_long), 0);
    CHECK_EQ(wf_queue_put(q, ITEM(100)), 0);
    CHECK_EQ(wf_queue_put(q, ITEM(20)), 0);
    CHECK_EQ(wf_queue_put(q, ITEM(3)), 0);
    CHECK_EQ(wf_queue_get(q, &v), 0); /* 3 */
    CHECK_EQ(wf_queue_task_done(q), 0);
    CHECK_EQ(wf_queue_put(q, ITEM(4000)), 0);
    pa.q = q;
    pa.id = 50000;
    CHECK_EQ(wf_spawn(&p, putter, &pa, NULL), 0);
    CHECK(wait_parked(p));
    wf_task_t jt;
    CHECK_EQ(wf_spawn(&jt, joiner, q, NULL), 0);
    CHECK(wait_parked(jt));
    _Atomic long dropped = 0;
    CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_IMMEDIATE, count_drop, &dropped), 3);
    CHECK_EQ(atomic_load(&dropped), 100 + 20 + 4000); /* not the putter's */
    CHECK_EQ(wf_join(p, &st, NULL), 0);
    CHECK_EQ(st, -ESHUTDOWN);
    CHECK_EQ(wf_join(jt, &st, NULL), 0);
    CHECK_EQ(st, 0); /* removed items count as done */
    CHECK_EQ(wf_queue_size(q), 0);
    CHECK_EQ(wf_queue_get(q, &v), -ESHUTDOWN);
    CHECK_EQ(wf_queue_put(q, ITEM(1)), -ESHUTDOWN);
    CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_IMMEDIATE, count_drop, &dropped), 0);
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);

    /* Graceful, then immediate: the second removes what the first left. */
    CHECK_EQ(wf_queue_create(&q, WF_QUEUE_UNBOUNDED, WF_QUEUE_LIFO, NULL), 0);
    for (long i = 1; i <= 5; i++)
        CHECK_EQ(wf_queue_put(q, ITEM(i)), 0);
    CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
    CHECK_EQ(wf_queue_get(q, &v), 0);
    CHECK_EQ(ID(v), 5);
    dropped = 0;
    CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_IMMEDIATE, count_drop, &dropped), 4);
    CHECK_EQ(atomic_load(&dropped), 1 + 2 + 3 + 4);
    CHECK_EQ(wf_queue_get(q, &v), -ESHUTDOWN);
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);

    /* Destroy hands what is left to its drop callback. */
    CHECK_EQ(wf_queue_create(&q, WF_QUEUE_UNBOUNDED, WF_QUEUE_FIFO, NULL), 0);
    for (long i = 1; i <= 40; i++)
        CHECK_EQ(wf_queue_put(q, ITEM(i)), 0);
    dropped = 0;
    size_t left = 0;
    CHECK_EQ(wf_queue_destroy(q, count_drop, &dropped, &left), 0);
    CHECK_EQ(left, 40);
    CHECK_EQ(atomic_load(&dropped), 40 * 41 / 2);
    return 0;
}

/* A task woken by a shutdown may destroy the queue at once, while the
 * shutdown call is still handing removed items to its drop callback. */
static int putter_destroys(void *arg, void **res)
{
    put_arg *p = arg;
    int e = wf_queue_put(p->q, ITEM(p->id));
    if (e != -ESHUTDOWN)
        return -1;
    return wf_queue_destroy(p->q, NULL, NULL, NULL) == 0 ? 0 : -2;
}

static void slow_drop(void *item, void *arg)
{
    for (int k = 0; k < 50; k++)
        atomic_fetch_add((_Atomic long *)arg, 1);
}

static int m_shutdown_then_destroy(void *arg, void **res)
{
    for (long i = 0; i < SCALED(400); i++) {
        wf_queue_t *q;
        CHECK_EQ(wf_queue_create(&q, 2, WF_QUEUE_FIFO, NULL), 0);
        CHECK_EQ(wf_queue_put(q, ITEM(1)), 0);
        CHECK_EQ(wf_queue_put(q, ITEM(2)), 0);
        put_arg pa = {q, 3};
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, putter_destroys, &pa, NULL), 0);
        CHECK(wait_parked(t));
        _Atomic long n = 0;
        CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_IMMEDIATE, slow_drop, &n), 2);
        /* q may be gone now. */
        CHECK_EQ(atomic_load(&n), 100);
        join_n(&t, 1);
    }
    return 0;
}

static void test_shutdown(void **state)
{
    run_main(2, m_shutdown, NULL);
    run_main(STRESS_WORKERS, m_shutdown_then_destroy, NULL);
}

/* --- a foreign thread feeds the queue ------------------------------------------ */

static void *feeder(void *arg)
{
    wf_queue_t *q = arg;
    for (long i = 0; i < 2000; i++)
        while (wf_queue_try_put(q, ITEM(i)) == -EAGAIN)
            sched_yield();
    return NULL;
}

static int m_foreign(void *arg, void **res)
{
    wf_queue_t *q;
    CHECK_EQ(wf_queue_create(&q, 8, WF_QUEUE_FIFO, NULL), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, feeder, q), 0);
    for (long i = 0; i < 2000; i++) {
        void *v;
        CHECK_EQ(wf_queue_get_until(q, &v, wf_deadline_in(LONG_NS)), 0);
        CHECK_EQ(ID(v), i);
    }
    pthread_join(th, NULL);
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);
    return 0;
}

static void test_foreign(void **state)
{
    run_main(2, m_foreign, NULL);
}

/* --- stress: nothing lost, nothing doubled --------------------------------------- */

typedef struct {
    wf_queue_t *q;
    long per_producer;
    int producers;
    _Atomic unsigned char *seen; /* [id]: times consumed */
    _Atomic long put_ok, put_failed, got, get_failed;
} nl_state;

typedef struct {
    nl_state *s;
    int idx;
    uint64_t seed;
} nl_arg;

static int nl_producer(void *arg, void **res)
{
    nl_arg *a = arg;
    nl_state *s = a->s;
    uint64_t rnd = a->seed;
    for (long k = 0; k < s->per_producer; k++) {
        long id = a->idx * s->per_producer + k;
        int e;
        /* A failed put did not enqueue: put the same item again. */
        while ((e = wf_queue_put_until(s->q, ITEM(id), random_deadline(&rnd))) != 0) {
            if (e != -ETIMEDOUT && e != -ECANCELED)
                return e;
            if (e == -ECANCELED)
                wf_uncancel();
            atomic_fetch_add(&s->put_failed, 1);
        }
        atomic_fetch_add(&s->put_ok, 1);
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int nl_consumer(void *arg, void **res)
{
    nl_arg *a = arg;
    nl_state *s = a->s;
    uint64_t rnd = a->seed;
    long total = (long)s->producers * s->per_producer;
    for (;;) {
        void *v = ITEM(-1);
        int e = test_rand(&rnd) % 5 == 0 ? wf_queue_try_get(s->q, &v)
                                         : wf_queue_get_until(s->q, &v, random_deadline(&rnd));
        if (e == -ESHUTDOWN)
            break;
        if (e) {
            if (e != -ETIMEDOUT && e != -ECANCELED && e != -EAGAIN)
                return e;
            if (e == -ECANCELED)
                wf_uncancel();
            atomic_fetch_add(&s->get_failed, 1);
            continue;
        }
        long id = ID(v);
        if (id < 0 || id >= total)
            return -100;
        atomic_fetch_add(&s->seen[id], 1);
        atomic_fetch_add(&s->got, 1);
        if (wf_queue_task_done(s->q))
            return -101;
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

typedef struct {
    size_t cap;
    wf_queue_kind_t kind;
} nl_config;

static int m_no_loss(void *arg, void **res)
{
    static const nl_config configs[] = {
        {1, WF_QUEUE_FIFO}, {4, WF_QUEUE_FIFO},     {WF_QUEUE_UNBOUNDED, WF_QUEUE_FIFO},
        {3, WF_QUEUE_LIFO}, {2, WF_QUEUE_PRIORITY}, {WF_QUEUE_UNBOUNDED, WF_QUEUE_PRIORITY},
    };
    enum { P = 6, C = 6 };
    long iterations = WF_TEST_SANITIZED ? 2 : 4;
    for (long it = 0; it < iterations; it++) {
        for (size_t ci = 0; ci < sizeof configs / sizeof configs[0]; ci++) {
            nl_state s;
            memset(&s, 0, sizeof s);
            s.producers = P;
            s.per_producer = SCALED(3000);
            long total = P * s.per_producer;
            s.seen = calloc((size_t)total, 1);
            CHECK_EQ(wf_queue_create(&s.q, configs[ci].cap, configs[ci].kind,
                                     configs[ci].kind == WF_QUEUE_PRIORITY ? cmp_long : NULL),
                     0);
            nl_arg a[P + C];
            wf_task_t t[P + C];
            for (int i = 0; i < P + C; i++) {
                a[i].s = &s;
                a[i].idx = i < P ? i : i - P;
                a[i].seed = (uint64_t)(it * 100 + ci * 10 + (size_t)i + 1) * 0x9E3779B97F4A7C15ull;
            }
            spawn_n(t, P, nl_producer, a, sizeof a[0]);
            spawn_n(t + P, C, nl_consumer, a + P, sizeof a[0]);
            canceller_arg ca;
            start_canceller(&ca, t, P + C, it * 31 + ci);
            join_n(t, P);
            /* Everything put: wait until it has all been processed, then
             * let the consumers go. */
            CHECK_EQ(wf_queue_join_until(s.q, wf_deadline_in(LONG_NS)), 0);
            CHECK_EQ(wf_queue_shutdown(s.q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
            join_n(t + P, C);
            stop_canceller(&ca);
            CHECK_EQ(atomic_load(&s.put_ok), total);
            CHECK_EQ(atomic_load(&s.got), total);
            long bad = 0;
            for (long i = 0; i < total; i++)
                bad += atomic_load(&s.seen[i]) != 1;
            CHECK_EQ(bad, 0);
            CHECK_EQ(wf_queue_size(s.q), 0);
            CHECK_EQ(wf_queue_destroy(s.q, NULL, NULL, NULL), 0);
            if (getenv("WF_TEST_VERBOSE"))
                fprintf(stderr,
                        "queue no-loss cap=%zu kind=%d: %ld items, %ld failed puts, %ld failed gets\n",
                        configs[ci].cap, configs[ci].kind, total, atomic_load(&s.put_failed),
                        atomic_load(&s.get_failed));
            free((void *)s.seen);
        }
    }
    return 0;
}

static void test_no_loss(void **state)
{
    run_main(STRESS_WORKERS, m_no_loss, NULL);
    run_main(2, m_no_loss, NULL);
}

/* --- stress: FIFO per producer, and shutdown in the middle of a storm ------------ */

/* Many producers and consumers on every worker, on small bounded FIFO
 * queues (the lock-free ring and its slow path, runtime/sync/ring.h), with
 * random deadlines, try_ forms and cancellations. Each consumer must see
 * each producer's items in increasing order (FIFO; a failed put is retried
 * with the same item). Half the rounds end with an immediate shutdown
 * while the producers are still putting: then every put that succeeded is
 * either consumed or handed to the drop callback, exactly once, and every
 * put that failed with -ESHUTDOWN is neither. */
enum { FP = 8, FC = 8 };

typedef struct {
    wf_queue_t *q;
    long per_producer;
    _Atomic unsigned char *seen; /* [id]: times consumed or dropped */
    _Atomic unsigned char *put;  /* [id]: 1 once its put succeeded */
    _Atomic long put_ok, got, dropped, order_errors, shut_puts;
    _Atomic int stop_at; /* immediate shutdown once this many are consumed (0: never) */
} fifo_state;

typedef struct {
    fifo_state *s;
    int idx;
    uint64_t seed;
} fifo_arg;

static int fifo_producer(void *arg, void **res)
{
    fifo_arg *a = arg;
    fifo_state *s = a->s;
    uint64_t rnd = a->seed;
    for (long k = 0; k < s->per_producer; k++) {
        long id = a->idx * s->per_producer + k;
        int e;
        for (;;) {
            e = test_rand(&rnd) % 4 == 0 ? wf_queue_try_put(s->q, ITEM(id))
                                         : wf_queue_put_until(s->q, ITEM(id), random_deadline(&rnd));
            if (e == 0 || e == -ESHUTDOWN)
                break;
            if (e != -ETIMEDOUT && e != -ECANCELED && e != -EAGAIN)
                return e;
            if (e == -ECANCELED)
                wf_uncancel();
        }
        if (e == -ESHUTDOWN) {
            atomic_fetch_add(&s->shut_puts, 1);
            break;
        }
        atomic_store(&s->put[id], 1);
        atomic_fetch_add(&s->put_ok, 1);
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static void fifo_drop(void *item, void *arg)
{
    fifo_state *s = arg;
    atomic_fetch_add(&s->seen[ID(item)], 1);
    atomic_fetch_add(&s->dropped, 1);
}

static int fifo_consumer(void *arg, void **res)
{
    fifo_arg *a = arg;
    fifo_state *s = a->s;
    uint64_t rnd = a->seed;
    long total = (long)FP * s->per_producer;
    long last[FP];
    for (int i = 0; i < FP; i++)
        last[i] = -1;
    for (;;) {
        void *v = ITEM(-1);
        int e = test_rand(&rnd) % 4 == 0 ? wf_queue_try_get(s->q, &v)
                                         : wf_queue_get_until(s->q, &v, random_deadline(&rnd));
        if (e == -ESHUTDOWN)
            break;
        if (e) {
            if (e != -ETIMEDOUT && e != -ECANCELED && e != -EAGAIN)
                return e;
            if (e == -ECANCELED)
                wf_uncancel();
            continue;
        }
        long id = ID(v);
        if (id < 0 || id >= total)
            return -100;
        long p = id / s->per_producer, k = id % s->per_producer;
        if (k <= last[p])
            atomic_fetch_add(&s->order_errors, 1);
        last[p] = k;
        atomic_fetch_add(&s->seen[id], 1);
        long got = atomic_fetch_add(&s->got, 1) + 1;
        int stop_at = atomic_load(&s->stop_at);
        if (stop_at && got == stop_at) {
            int n = wf_queue_shutdown(s->q, WF_QUEUE_SHUTDOWN_IMMEDIATE, fifo_drop, s);
            if (n < 0)
                return n;
        }
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int m_fifo_storm(void *arg, void **res)
{
    static const size_t caps[] = {1, 2, 3, 7, 64};
    long rounds = WF_TEST_SANITIZED ? 1 : 2;
    for (long it = 0; it < rounds; it++) {
        for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
            for (int shut = 0; shut < 2; shut++) {
                fifo_state s;
                memset(&s, 0, sizeof s);
                s.per_producer = SCALED(20000);
                long total = FP * s.per_producer;
                s.seen = calloc((size_t)total, 1);
                s.put = calloc((size_t)total, 1);
                if (shut)
                    atomic_store(&s.stop_at, (int)(total / 3 + (long)ci * 17));
                CHECK_EQ(wf_queue_create(&s.q, caps[ci], WF_QUEUE_FIFO, NULL), 0);
                fifo_arg a[FP + FC];
                wf_task_t t[FP + FC];
                for (int i = 0; i < FP + FC; i++) {
                    a[i].s = &s;
                    a[i].idx = i < FP ? i : i - FP;
                    a[i].seed = (uint64_t)(it * 1000 + ci * 10 + (size_t)shut * 5 + (size_t)i + 1) *
                                0x9E3779B97F4A7C15ull;
                }
                spawn_n(t, FP, fifo_producer, a, sizeof a[0]);
                spawn_n(t + FP, FC, fifo_consumer, a + FP, sizeof a[0]);
                canceller_arg ca;
                start_canceller(&ca, t, FP + FC, (uint64_t)(it * 31 + (long)ci));
                join_n(t, FP);
                if (!shut) {
                    CHECK(wait_count(&s.got, total, LONG_NS));
                    CHECK_EQ(wf_queue_shutdown(s.q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
                }
                join_n(t + FP, FC);
                stop_canceller(&ca);
                CHECK_EQ(atomic_load(&s.order_errors), 0);
                /* Every successful put came out exactly once (consumed or
                 * dropped); no failed one did. */
                long bad = 0;
                for (long i = 0; i < total; i++)
                    bad += atomic_load(&s.seen[i]) != atomic_load(&s.put[i]);
                CHECK_EQ(bad, 0);
                CHECK_EQ(atomic_load(&s.got) + atomic_load(&s.dropped), atomic_load(&s.put_ok));
                if (!shut)
                    CHECK_EQ(atomic_load(&s.put_ok), total);
                CHECK_EQ(wf_queue_size(s.q), 0);
                CHECK_EQ(wf_queue_put(s.q, ITEM(0)), -ESHUTDOWN);
                CHECK_EQ(wf_queue_destroy(s.q, NULL, NULL, NULL), 0);
                if (getenv("WF_TEST_VERBOSE"))
                    fprintf(stderr,
                            "queue fifo storm cap=%zu shut=%d: %ld put, %ld got, %ld dropped, %ld puts refused\n",
                            caps[ci], shut, atomic_load(&s.put_ok), atomic_load(&s.got), atomic_load(&s.dropped),
                            atomic_load(&s.shut_puts));
                free((void *)s.seen);
                free((void *)s.put);
            }
        }
    }
    return 0;
}

static void test_fifo_storm(void **state)
{
    run_main(STRESS_WORKERS, m_fifo_storm, NULL);
    run_main(2, m_fifo_storm, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),   cmocka_unit_test(test_errors),   cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_join),    cmocka_unit_test(test_shutdown), cmocka_unit_test(test_foreign),
        cmocka_unit_test(test_no_loss), cmocka_unit_test(test_fifo_storm),
    };
    return run_queue_groups(tests, sizeof tests / sizeof tests[0]);
}
