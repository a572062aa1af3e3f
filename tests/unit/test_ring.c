/* test_ring.c - white-box tests of the bounded FIFO queue's ring
 * (runtime/sync/ring.h), without a runtime: its geometry (any capacity, laps
 * and wrap-around), the fast paths' answers (full, empty, shut down, go to
 * the slow path), freezing and the lock holder's operations; then a storm of
 * plain threads, more than there are cores, putting and getting through the
 * fast paths while lock holders freeze the ring, work on it frozen, and thaw
 * it at random: every item must come out exactly once, in order per
 * producer for each consumer, and a frozen ring's count must be exact.
 *
 * The storm plays the queue's slow path the way queue.c does (take the
 * spinlock, freeze, do the operation on the frozen ring), except that
 * nobody parks: an operation that cannot proceed unlocks and retries. */
#include "common.h"
#include "spinlock.h"
#include "sync/ring.h"

#include <pthread.h>

#define ITEM(i) ((void *)(uintptr_t)(i))
#define ID(p) ((long)(uintptr_t)(p))

typedef struct {
    WF_ALIGNED_CL _Atomic uint64_t tail;
    WF_ALIGNED_CL _Atomic uint64_t head;
    WF_ALIGNED_CL wf__ring r;
    wf__spinlock lock;
} test_ring;

static void tr_init(test_ring *t, size_t cap)
{
    atomic_init(&t->tail, 0);
    atomic_init(&t->head, 0);
    wf__spin_init(&t->lock);
    wf__qslot *slots = malloc(cap * sizeof *slots);
    assert_non_null(slots);
    wf__ring_init(&t->r, cap, slots);
}

static void tr_fini(test_ring *t)
{
    free(t->r.slots);
}

/* --- one thread ------------------------------------------------------------------ */

static void test_basics(void **state)
{
    static const size_t caps[] = {1, 2, 3, 5, 7, 8, 9, 1000, 1024};
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        size_t cap = caps[ci];
        test_ring t;
        tr_init(&t, cap);
        void *v;
        assert_int_equal(wf__ring_get(&t.r, &t.head, &t.tail, &v), -EAGAIN);
        long in = 0, out = 0;
        /* Many laps, with the fill level moving up and down. */
        for (int round = 0; round < 50; round++) {
            size_t fill = (size_t)(round * 7) % (cap + 1);
            while (wf__ring_count_snapshot(&t.r, &t.head, &t.tail) < fill)
                assert_int_equal(wf__ring_put(&t.r, &t.tail, &t.head, ITEM(in++)), 0);
            if (fill == cap)
                assert_int_equal(wf__ring_put(&t.r, &t.tail, &t.head, ITEM(-1)), -EAGAIN);
            while (wf__ring_count_snapshot(&t.r, &t.head, &t.tail) > fill / 2) {
                assert_int_equal(wf__ring_get(&t.r, &t.head, &t.tail, &v), 0);
                assert_int_equal(ID(v), out++);
            }
        }
        while (wf__ring_get(&t.r, &t.head, &t.tail, &v) == 0)
            assert_int_equal(ID(v), out++);
        assert_int_equal(in, out);
        /* total() counts every position ever passed. */
        uint64_t tl = atomic_load(&t.tail), hd = atomic_load(&t.head);
        assert_int_equal(wf__ring_total(&t.r, tl), (uint64_t)in);
        assert_int_equal(wf__ring_total(&t.r, hd), (uint64_t)out);

        /* Frozen: the fast paths go to the slow path; the lock holder's
         * operations work and keep the ring frozen; thawing restores the
         * fast paths. */
        assert_true(cap >= 1);
        assert_int_equal(wf__ring_put(&t.r, &t.tail, &t.head, ITEM(in++)), 0);
        wf__ring_freeze(&t.tail, &t.head);
        assert_true(wf__ring_frozen(&t.tail));
        assert_int_equal(wf__ring_put(&t.r, &t.tail, &t.head, ITEM(-1)), WF__RING_SLOW);
        assert_int_equal(wf__ring_get(&t.r, &t.head, &t.tail, &v), WF__RING_SLOW);
        assert_int_equal(wf__ring_count_locked(&t.r, &t.tail, &t.head), 1);
        assert_int_equal(ID(wf__ring_pop_locked(&t.r, &t.head)), out++);
        for (size_t k = 0; k < cap; k++)
            wf__ring_push_locked(&t.r, &t.tail, ITEM(in++));
        assert_int_equal(wf__ring_count_locked(&t.r, &t.tail, &t.head), cap);
        assert_true(wf__ring_frozen(&t.tail));
        wf__ring_thaw(&t.tail, &t.head);
        assert_false(wf__ring_frozen(&t.tail));
        assert_int_equal(wf__ring_put(&t.r, &t.tail, &t.head, ITEM(-1)), -EAGAIN);
        while (wf__ring_get(&t.r, &t.head, &t.tail, &v) == 0)
            assert_int_equal(ID(v), out++);
        assert_int_equal(in, out);

        /* Shut down: an empty ring answers -ESHUTDOWN to a get, and a put
         * goes to the slow path (where the queue fails it). */
        atomic_fetch_or(&t.tail, WF__QW_SHUT);
        assert_int_equal(wf__ring_get(&t.r, &t.head, &t.tail, &v), -ESHUTDOWN);
        assert_int_equal(wf__ring_put(&t.r, &t.tail, &t.head, ITEM(-1)), WF__RING_SLOW);
        tr_fini(&t);
    }
}

/* --- the storm ------------------------------------------------------------------- */

enum { MAXP = 4, MAXC = 4 };

typedef struct {
    test_ring t;
    long per_producer;
    int producers, consumers;
    _Atomic unsigned char *seen;
    _Atomic long got;
    _Atomic int stop;
    _Atomic long bad_order, bad_count, slow_ops, freezes;
} storm;

typedef struct {
    storm *s;
    int idx;
    uint64_t seed;
} storm_arg;

/* The slow path of a put: 0, or -EAGAIN (full: retry). */
static int slow_put(storm *s, void *item, uint64_t *rnd)
{
    test_ring *t = &s->t;
    wf__spin_lock(&t->lock);
    wf__ring_freeze(&t->tail, &t->head);
    uint64_t n = wf__ring_count_locked(&t->r, &t->tail, &t->head);
    if (n > t->r.cap)
        atomic_fetch_add(&s->bad_count, 1);
    int e = -EAGAIN;
    if (n < t->r.cap) {
        wf__ring_push_locked(&t->r, &t->tail, item);
        e = 0;
    }
    if (test_rand(rnd) % 4) /* sometimes leave it frozen for others */
        wf__ring_thaw(&t->tail, &t->head);
    wf__spin_unlock(&t->lock);
    atomic_fetch_add_explicit(&s->slow_ops, 1, memory_order_relaxed);
    return e;
}

static int slow_get(storm *s, void **item, uint64_t *rnd)
{
    test_ring *t = &s->t;
    wf__spin_lock(&t->lock);
    wf__ring_freeze(&t->tail, &t->head);
    uint64_t n = wf__ring_count_locked(&t->r, &t->tail, &t->head);
    if (n > t->r.cap)
        atomic_fetch_add(&s->bad_count, 1);
    int e = -EAGAIN;
    if (n > 0) {
        *item = wf__ring_pop_locked(&t->r, &t->head);
        e = 0;
    }
    if (test_rand(rnd) % 4)
        wf__ring_thaw(&t->tail, &t->head);
    wf__spin_unlock(&t->lock);
    atomic_fetch_add_explicit(&s->slow_ops, 1, memory_order_relaxed);
    return e;
}

static void *producer(void *arg)
{
    storm_arg *a = arg;
    storm *s = a->s;
    uint64_t rnd = a->seed;
    for (long k = 0; k < s->per_producer; k++) {
        void *item = ITEM((long)a->idx * s->per_producer + k);
        for (;;) {
            int e = test_rand(&rnd) % 16 == 0 ? WF__RING_SLOW
                                              : wf__ring_put(&s->t.r, &s->t.tail, &s->t.head, item);
            if (e == WF__RING_SLOW || (e == -EAGAIN && test_rand(&rnd) % 2))
                e = slow_put(s, item, &rnd);
            if (e == 0)
                break;
            sched_yield();
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    storm_arg *a = arg;
    storm *s = a->s;
    uint64_t rnd = a->seed;
    long total = (long)s->producers * s->per_producer;
    long last[MAXP];
    for (int i = 0; i < MAXP; i++)
        last[i] = -1;
    while (atomic_load(&s->got) < total) {
        void *v;
        int e = test_rand(&rnd) % 16 == 0 ? WF__RING_SLOW : wf__ring_get(&s->t.r, &s->t.head, &s->t.tail, &v);
        if (e == WF__RING_SLOW || (e == -EAGAIN && test_rand(&rnd) % 2))
            e = slow_get(s, &v, &rnd);
        if (e) {
            sched_yield();
            continue;
        }
        long id = ID(v);
        if (id < 0 || id >= total) {
            atomic_fetch_add(&s->bad_order, 1000000);
            continue;
        }
        long p = id / s->per_producer, k = id % s->per_producer;
        if (k <= last[p])
            atomic_fetch_add(&s->bad_order, 1);
        last[p] = k;
        atomic_fetch_add(&s->seen[id], 1);
        atomic_fetch_add(&s->got, 1);
    }
    return NULL;
}

/* Freezes the ring at random moments and holds it frozen (unlocked) for a
 * while, so that the fast paths keep running into WAIT. */
static void *freezer(void *arg)
{
    storm_arg *a = arg;
    storm *s = a->s;
    uint64_t rnd = a->seed;
    while (!atomic_load(&s->stop)) {
        wf__spin_lock(&s->t.lock);
        wf__ring_freeze(&s->t.tail, &s->t.head);
        uint64_t n = wf__ring_count_locked(&s->t.r, &s->t.tail, &s->t.head);
        if (n > s->t.r.cap)
            atomic_fetch_add(&s->bad_count, 1);
        wf__spin_unlock(&s->t.lock);
        atomic_fetch_add(&s->freezes, 1);
        for (unsigned i = test_rand(&rnd) % 2000; i; i--)
            wf__cpu_relax();
        wf__spin_lock(&s->t.lock);
        wf__ring_thaw(&s->t.tail, &s->t.head);
        wf__spin_unlock(&s->t.lock);
        for (unsigned i = test_rand(&rnd) % 4000; i; i--)
            wf__cpu_relax();
    }
    return NULL;
}

static void run_storm(size_t cap, int producers, int consumers, long per_producer, uint64_t seed)
{
    storm s;
    memset(&s, 0, sizeof s);
    tr_init(&s.t, cap);
    s.per_producer = per_producer;
    s.producers = producers;
    s.consumers = consumers;
    long total = producers * per_producer;
    s.seen = calloc((size_t)total, 1);
    assert_non_null(s.seen);
    storm_arg a[MAXP + MAXC + 1];
    pthread_t th[MAXP + MAXC + 1];
    int n = producers + consumers + 1;
    for (int i = 0; i < n; i++) {
        a[i].s = &s;
        a[i].idx = i < producers ? i : i - producers;
        a[i].seed = (seed * 64 + (uint64_t)i + 1) * 0x9E3779B97F4A7C15ull;
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL,
                                        i < producers ? producer : i < producers + consumers ? consumer : freezer,
                                        &a[i]),
                         0);
    for (int i = 0; i < producers + consumers; i++)
        pthread_join(th[i], NULL);
    atomic_store(&s.stop, 1);
    pthread_join(th[n - 1], NULL);
    assert_int_equal(atomic_load(&s.got), total);
    assert_int_equal(atomic_load(&s.bad_order), 0);
    assert_int_equal(atomic_load(&s.bad_count), 0);
    long bad = 0;
    for (long i = 0; i < total; i++)
        bad += atomic_load(&s.seen[i]) != 1;
    assert_int_equal(bad, 0);
    assert_int_equal(wf__ring_count_snapshot(&s.t.r, &s.t.head, &s.t.tail), 0);
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr, "ring storm cap=%zu %dP/%dC: %ld items, %ld slow operations, %ld freezes\n", cap,
                producers, consumers, total, atomic_load(&s.slow_ops), atomic_load(&s.freezes));
    free((void *)s.seen);
    tr_fini(&s.t);
}

static void test_storm(void **state)
{
    static const size_t caps[] = {1, 2, 3, 8, 1000};
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        run_storm(caps[ci], 4, 4, SCALED(4000), ci);
        run_storm(caps[ci], 3, 1, SCALED(4000), ci + 100); /* one consumer: FIFO per producer, exactly */
        run_storm(caps[ci], 1, 3, SCALED(6000), ci + 200);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_storm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
