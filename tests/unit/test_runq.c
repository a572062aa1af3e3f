/* test_runq.c - white-box tests of a worker's local run queue (runtime/runq.h,
 * runtime/runq.c): the bounded ring, its overflow path, the next slot, and
 * stealing; then a multi-threaded stress in which every task must be
 * consumed exactly once.
 *
 * Built twice (tests/unit/meson.build): against the default ring, and as
 * test_runq_tiny with runq.c compiled in with WF_RUNQ_LOG2=2, a 4-slot ring
 * on which the overflow and steal-half paths run all the time. Everything
 * here is written in terms of WF__RUNQ_CAP.
 *
 * The tasks are zeroed wf__task records used only for their addresses (and
 * qnext, which wf__batch_push writes); a task's id is its index in the pool.
 */
#include "common.h"
#include "runq.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#ifdef WF_TEST_RUNQ_TINY
_Static_assert(WF__RUNQ_CAP == 4, "the tiny variant must be built with WF_RUNQ_LOG2=2");
#endif

#define CAP WF__RUNQ_CAP
#define HALF (WF__RUNQ_CAP / 2)

static wf__task *pool;
static size_t pool_n;

static wf__task *T(size_t i)
{
    assert_true(i < pool_n);
    return &pool[i];
}

static size_t id_of(const wf__task *t)
{
    return (size_t)(t - pool);
}

static int setup_pool(void **state)
{
    pool_n = 4 * CAP + 64;
    pool = calloc(pool_n, sizeof *pool);
    return pool ? 0 : -1;
}

static int teardown_pool(void **state)
{
    free(pool);
    pool = NULL;
    return 0;
}

static wf__runq *new_runq(uint32_t start)
{
    wf__runq *q = aligned_alloc(_Alignof(wf__runq), sizeof(wf__runq));
    assert_non_null(q);
    wf__runq_init(q);
    /* White box: start the free-running counters anywhere, so tests also
     * cross the 2^32 wrap. */
    atomic_store(&q->head, start);
    atomic_store(&q->tail, start);
    atomic_store(&q->plain_end, start);
    return q;
}

/* Counter starts the ring tests run from: zero, mid-ring, and just before
 * the 32-bit counters wrap. */
static const uint32_t starts[] = {0, 1, CAP / 2 + 1, CAP - 1, 1000003, UINT32_MAX - CAP,
                                  UINT32_MAX - 1, UINT32_MAX};
#define NSTARTS (sizeof starts / sizeof starts[0])

/* --- ring --------------------------------------------------------------- */

static void test_fifo(void **state)
{
    for (size_t si = 0; si < NSTARTS; si++) {
        wf__runq *q = new_runq(starts[si]);
        wf__batch of;
        wf__batch_init(&of);
        assert_null(wf__runq_pop(q));
        assert_true(wf__runq_maybe_empty(q));
        for (size_t i = 0; i < CAP; i++) {
            assert_true(wf__runq_push(q, T(i), &of));
            assert_int_equal(wf__runq_len(q), i + 1);
            assert_false(wf__runq_maybe_empty(q));
        }
        assert_int_equal(of.n, 0);
        for (size_t i = 0; i < CAP; i++)
            assert_ptr_equal(wf__runq_pop(q), T(i));
        assert_null(wf__runq_pop(q));
        assert_int_equal(wf__runq_len(q), 0);
        assert_true(wf__runq_maybe_empty(q));

        /* Random interleaving over many laps against a model FIFO. */
        uint64_t rng = 0x5eed + si;
        size_t model[2 * CAP], mh = 0, mt = 0, next_id = 0;
        for (int step = 0; step < 20000; step++) {
            if ((test_rand(&rng) & 1) && mt - mh < CAP) {
                size_t id = next_id++ % pool_n;
                assert_true(wf__runq_push(q, T(id), &of));
                model[mt++ % (2 * CAP)] = id;
            } else {
                wf__task *t = wf__runq_pop(q);
                if (mh == mt) {
                    assert_null(t);
                } else {
                    assert_non_null(t);
                    assert_int_equal(id_of(t), model[mh++ % (2 * CAP)]);
                }
            }
            assert_int_equal(wf__runq_len(q), mt - mh);
        }
        free(q);
    }
}

static void check_batch(wf__batch *b, const size_t *ids, unsigned n)
{
    assert_int_equal(b->n, n);
    unsigned i = 0;
    for (wf__task *t = b->head; t; t = t->qnext, i++) {
        assert_true(i < n);
        assert_int_equal(id_of(t), ids[i]);
        if (!t->qnext)
            assert_ptr_equal(b->tail, t);
    }
    assert_int_equal(i, n);
}

static void test_overflow(void **state)
{
    for (size_t si = 0; si < NSTARTS; si++) {
        for (size_t pre = 0; pre < CAP + 2; pre++) {
            /* `pre` pushes and pops first, so the ring's head sits anywhere. */
            wf__runq *q = new_runq(starts[si]);
            wf__batch of;
            wf__batch_init(&of);
            for (size_t i = 0; i < pre; i++) {
                assert_true(wf__runq_push(q, T(0), &of));
                assert_ptr_equal(wf__runq_pop(q), T(0));
            }
            for (size_t i = 0; i < CAP; i++)
                assert_true(wf__runq_push(q, T(1 + i), &of));
            assert_int_equal(wf__runq_len(q), CAP);
            /* Full: the oldest half and the new task go to the batch, in
             * order, and push says false. */
            assert_false(wf__runq_push(q, T(1 + CAP), &of));
            size_t want[HALF + 1];
            for (size_t i = 0; i < HALF; i++)
                want[i] = 1 + i;
            want[HALF] = 1 + CAP;
            check_batch(&of, want, HALF + 1);
            assert_int_equal(wf__runq_len(q), CAP - HALF);
            /* The newer half stays, in order, and there is room again. */
            for (size_t i = 0; i < CAP - HALF; i++)
                assert_true(wf__runq_push(q, T(2 + CAP + i), &of));
            assert_int_equal(of.n, HALF + 1); /* untouched */
            for (size_t i = HALF; i < CAP; i++)
                assert_ptr_equal(wf__runq_pop(q), T(1 + i));
            for (size_t i = 0; i < CAP - HALF; i++)
                assert_ptr_equal(wf__runq_pop(q), T(2 + CAP + i));
            assert_null(wf__runq_pop(q));
            /* A second overflow appends to the same batch. */
            for (size_t i = 0; i < CAP; i++)
                assert_true(wf__runq_push(q, T(1 + i), &of));
            assert_false(wf__runq_push(q, T(0), &of));
            assert_int_equal(of.n, 2 * (HALF + 1));
            free(q);
        }
    }
}

/* --- next slot ------------------------------------------------------------ */

static void test_next_slot(void **state)
{
    wf__runq *q = new_runq(0);
    wf__batch of;
    wf__batch_init(&of);
    assert_null(wf__runq_take_next(q));
    assert_null(wf__runq_put_next(q, T(1)));
    assert_false(wf__runq_maybe_empty(q)); /* the next slot counts */
    assert_int_equal(wf__runq_len(q), 0);  /* but not in the ring's length */
    assert_null(wf__runq_pop(q));          /* and pop does not take it */
    assert_ptr_equal(wf__runq_put_next(q, T(2)), T(1)); /* displaces the old */
    assert_ptr_equal(wf__runq_put_next(q, T(3)), T(2));
    assert_ptr_equal(wf__runq_take_next(q), T(3));
    assert_null(wf__runq_take_next(q));
    assert_true(wf__runq_maybe_empty(q));

    /* The ring and the slot are independent. */
    assert_true(wf__runq_push(q, T(10), &of));
    assert_null(wf__runq_put_next(q, T(11)));
    assert_ptr_equal(wf__runq_pop(q), T(10));
    assert_null(wf__runq_pop(q));
    assert_ptr_equal(wf__runq_take_next(q), T(11));

    /* steal_next takes the slot once; steal_into never does. */
    wf__runq *d = new_runq(0);
    assert_null(wf__runq_steal_next(q));
    assert_null(wf__runq_put_next(q, T(12)));
    assert_null(wf__runq_steal_into(q, d));
    assert_ptr_equal(wf__runq_steal_next(q), T(12));
    assert_null(wf__runq_steal_next(q));
    assert_null(wf__runq_take_next(q));
    assert_true(wf__runq_maybe_empty(q));
    assert_true(wf__runq_maybe_empty(d));
    free(q);
    free(d);
}

/* --- stealing ------------------------------------------------------------- */

static void test_steal_into(void **state)
{
    for (size_t si = 0; si < NSTARTS; si++) {
        for (size_t di = 0; di < NSTARTS; di++) {
            for (size_t k = 0; k <= CAP; k++) {
                wf__runq *v = new_runq(starts[si]), *d = new_runq(starts[di]);
                wf__batch of;
                wf__batch_init(&of);
                for (size_t i = 0; i < k; i++)
                    assert_true(wf__runq_push(v, T(i), &of));
                assert_null(wf__runq_put_next(v, T(CAP + 5))); /* not stolen */
                wf__task *run = wf__runq_steal_into(v, d);
                size_t took = k - k / 2; /* ceil(k/2) */
                if (k == 0) {
                    assert_null(run);
                } else {
                    /* The thief runs the newest stolen task now; the older
                     * ones wait in its ring, in order. */
                    assert_ptr_equal(run, T(took - 1));
                }
                assert_int_equal(wf__runq_len(d), took ? took - 1 : 0);
                for (size_t i = 0; i + 1 < took; i++)
                    assert_ptr_equal(wf__runq_pop(d), T(i));
                assert_null(wf__runq_pop(d));
                /* The victim keeps the newer half, in order, and its slot. */
                assert_int_equal(wf__runq_len(v), k - took);
                for (size_t i = took; i < k; i++)
                    assert_ptr_equal(wf__runq_pop(v), T(i));
                assert_null(wf__runq_pop(v));
                assert_ptr_equal(wf__runq_take_next(v), T(CAP + 5));
                /* Both rings still work as FIFOs afterwards. */
                assert_true(wf__runq_push(d, T(1), &of));
                assert_true(wf__runq_push(v, T(2), &of));
                assert_ptr_equal(wf__runq_pop(d), T(1));
                assert_ptr_equal(wf__runq_pop(v), T(2));
                assert_int_equal(of.n, 0);
                free(v);
                free(d);
            }
        }
    }
}

/* Repeated steals halve the victim: from a full ring, ceil(n/2) each time. */
static void test_steal_halves(void **state)
{
    wf__runq *v = new_runq(UINT32_MAX - 3), *d = new_runq(7);
    wf__batch of;
    wf__batch_init(&of);
    for (size_t i = 0; i < CAP; i++)
        assert_true(wf__runq_push(v, T(i), &of));
    size_t left = CAP, first = 0;
    while (left) {
        size_t took = left - left / 2;
        wf__task *run = wf__runq_steal_into(v, d);
        assert_ptr_equal(run, T(first + took - 1));
        for (size_t i = 0; i + 1 < took; i++)
            assert_ptr_equal(wf__runq_pop(d), T(first + i));
        assert_null(wf__runq_pop(d));
        first += took;
        left -= took;
        assert_int_equal(wf__runq_len(v), left);
    }
    assert_null(wf__runq_steal_into(v, d));
    free(v);
    free(d);
}

/* WOKEN ENTRIES: only_woken says whether every entry from head on was
 * pushed without a mark; a marked entry counts until it leaves the ring, by
 * a pop or a steal; stolen entries count as marked in the thief's ring. */
static void test_woken_marks(void **state)
{
    for (size_t s = 0; s < NSTARTS; s++) {
        wf__runq *q = new_runq(starts[s]), *d = new_runq(starts[NSTARTS - 1 - s]);
        uint32_t h = atomic_load(&q->head);
        assert_true(wf__runq_only_woken(q, h)); /* empty */
        assert_true(wf__runq_try_push(q, T(0)));
        assert_true(wf__runq_try_push(q, T(1)));
        assert_true(wf__runq_only_woken(q, h));
        assert_true(wf__runq_try_push(q, T(2)));
        wf__runq_mark_plain(q); /* T(2) is plain work */
        assert_false(wf__runq_only_woken(q, atomic_load(&q->head)));
        assert_ptr_equal(wf__runq_pop(q), T(0));
        assert_ptr_equal(wf__runq_pop(q), T(1));
        assert_false(wf__runq_only_woken(q, atomic_load(&q->head))); /* T(2) is still in */
        assert_true(wf__runq_try_push(q, T(3)));                     /* woken, behind it */
        assert_false(wf__runq_only_woken(q, atomic_load(&q->head)));
        assert_ptr_equal(wf__runq_pop(q), T(2));
        assert_true(wf__runq_only_woken(q, atomic_load(&q->head))); /* only T(3) left */
        /* A steal that leaves entries in the thief's ring marks them. */
        assert_true(wf__runq_try_push(q, T(4)));
        assert_true(wf__runq_try_push(q, T(5)));
        if (CAP >= 4)
            assert_true(wf__runq_try_push(q, T(6)));
        uint32_t n = wf__runq_len(q), took = n - n / 2;
        assert_non_null(wf__runq_steal_into(q, d));
        assert_int_equal(wf__runq_len(d), took - 1);
        if (took > 1)
            assert_false(wf__runq_only_woken(d, atomic_load(&d->head)));
        assert_true(wf__runq_only_woken(q, atomic_load(&q->head))); /* the victim's rest */
        while (wf__runq_pop(d))
            ;
        assert_true(wf__runq_only_woken(d, atomic_load(&d->head)));
        /* The catch-up keeps plain_end within 2^30 of head, and leaves a
         * nearer one alone. */
        uint32_t qh = atomic_load(&q->head);
        atomic_store(&q->plain_end, qh - (1u << 30) - 5);
        wf__runq_plain_catch_up(q);
        assert_int_equal(atomic_load(&q->plain_end), qh);
        assert_true(wf__runq_only_woken(q, qh));
        atomic_store(&q->plain_end, qh - 5);
        wf__runq_plain_catch_up(q);
        assert_int_equal(atomic_load(&q->plain_end), qh - 5);
        atomic_store(&q->plain_end, qh + 1); /* a plain entry still in */
        wf__runq_plain_catch_up(q);
        assert_int_equal(atomic_load(&q->plain_end), qh + 1);
        free(q);
        free(d);
    }
}

/* A thief must steal into an empty queue: steal_into panics otherwise. */
static void test_steal_into_nonempty_panics(void **state)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr); /* the panic message */
        wf__runq *v = new_runq(0), *d = new_runq(0);
        wf__batch of;
        wf__batch_init(&of);
        wf__runq_push(v, T(0), &of);
        wf__runq_push(d, T(1), &of);
        wf__runq_steal_into(v, d);
        _exit(0); /* not reached if it panics */
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

/* --- concurrent stress ---------------------------------------------------- *
 *
 * One owner does random push/pop/put_next/take_next (a put_next's displaced
 * task is pushed, as the scheduler does) on its queue, with the push/pop
 * balance changing by phase so the ring swings between empty and full.
 * Overflow batches are consumed by the owner ("by overflow"). Three thieves
 * steal_into their own private queue from the owner's (and now and then from
 * each other's), run the returned task, drain their queue with pop, and try
 * steal_next. Each consumption bumps the task's counter; task records are
 * reused only once consumed, and a consumption must never run ahead of the
 * production count: so every produced task is consumed exactly once.
 */

#define S_POOL 8192 /* far more than can be in flight: ring + slot + thieves */
#define S_THIEVES 3

enum { BY_POP, BY_NEXT, BY_OVERFLOW, BY_STEAL, BY_STEAL_NEXT, BY_THIEF_POP, BY_MAX };

typedef struct stress {
    wf__task *tasks;
    _Atomic uint32_t produced[S_POOL]; /* written by the owner only */
    _Atomic uint32_t consumed[S_POOL];
    _Atomic int failures;
    _Atomic bool stop;
    _Atomic unsigned started;
    wf__runq *owner;
    wf__runq *thief_q[S_THIEVES];
} stress;

typedef struct thief_arg {
    stress *s;
    unsigned idx;
    uint64_t rng;
    long by[BY_MAX];
    long tries; /* steal attempts */
} thief_arg;

/* Print the first few failures only. */
#define FAILURE(s, ...)                                                                            \
    do {                                                                                           \
        if (atomic_fetch_add(&(s)->failures, 1) < 20)                                              \
            fprintf(stderr, __VA_ARGS__);                                                          \
    } while (0)

static void consume(stress *s, wf__task *t, long *by, int how)
{
    size_t id = (size_t)(t - s->tasks);
    if (id >= S_POOL) {
        FAILURE(s, "consumed a pointer that is not a task (%p)\n", (void *)t);
        return;
    }
    /* acq_rel: release hands the record back to the owner for reuse. */
    uint32_t c = atomic_fetch_add_explicit(&s->consumed[id], 1, memory_order_acq_rel) + 1;
    /* The production of this round was published to us with the task. */
    uint32_t p = atomic_load_explicit(&s->produced[id], memory_order_relaxed);
    if (c > p) {
        FAILURE(s, "task %zu consumed %u times, produced %u (how %d)\n", id, c, p, how);
    }
    by[how]++;
}

#define CONSUME(s, t, by, how, rng)                                                                \
    do {                                                                                           \
        consume(s, t, by, how);                                                                    \
        work(rng);                                                                                 \
    } while (0)

/* "Run" a task: a short random spin, so that the owner's queue holds
 * something long enough for thieves to find it. */
static void work(uint64_t *rng)
{
    for (unsigned i = (unsigned)(test_rand(rng) % 32); i; i--)
        wf__cpu_relax();
}

static void *thief_main(void *p)
{
    thief_arg *a = p;
    stress *s = a->s;
    wf__runq *mine = s->thief_q[a->idx];
    unsigned misses = 0;
    atomic_fetch_add(&s->started, 1);
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        wf__runq *victim = s->owner;
        a->tries++;
        if ((test_rand(&a->rng) & 7) == 0)
            victim = s->thief_q[test_rand(&a->rng) % S_THIEVES];
        wf__task *t = victim == mine ? NULL : wf__runq_steal_into(victim, mine);
        if (t) {
            misses = 0;
            CONSUME(s, t, a->by, BY_STEAL, &a->rng);
            if (wf__runq_len(mine) > HALF - 1) {
                FAILURE(s, "a steal left %u in the thief's ring\n", wf__runq_len(mine));
            }
            while ((t = wf__runq_pop(mine)) != NULL)
                CONSUME(s, t, a->by, BY_THIEF_POP, &a->rng);
        } else if ((t = wf__runq_steal_next(s->owner)) != NULL) {
            misses = 0;
            CONSUME(s, t, a->by, BY_STEAL_NEXT, &a->rng);
        } else if (++misses % 16 == 0) {
            sched_yield(); /* fewer cores than threads: let the owner run */
        } else {
            wf__cpu_relax();
        }
    }
    /* Stopped: what we stole is drained already; others may have stolen
     * from us, never to us. */
    wf__task *t;
    while ((t = wf__runq_pop(mine)) != NULL)
        consume(s, t, a->by, BY_THIEF_POP);
    return NULL;
}

static void owner_push(stress *s, wf__task *t, long *by)
{
    wf__batch of;
    wf__batch_init(&of);
    if (!wf__runq_push(s->owner, t, &of)) {
        if (of.n != HALF + 1) {
            FAILURE(s, "overflow batch of %u, want %u\n", of.n, HALF + 1);
        }
        if (of.tail != t) {
            FAILURE(s, "overflow batch does not end with the pushed task\n");
        }
        while ((t = wf__batch_pop(&of)) != NULL)
            consume(s, t, by, BY_OVERFLOW);
    } else if (of.n) {
        FAILURE(s, "push returned true with an overflow batch\n");
    }
}

/* Owner: a task record to queue, one that has been consumed as often as it
 * was produced; NULL (a failure) if none is, as lost or doubly consumed
 * tasks leave records that never come free. */
static wf__task *new_task(stress *s, uint32_t *cursor)
{
    for (unsigned n = 0; n < S_POOL; n++) {
        size_t id = (*cursor)++ % S_POOL;
        uint32_t p = atomic_load_explicit(&s->produced[id], memory_order_relaxed);
        /* acquire: pairs with the consumer's release, so its use of the
         * record happens before our reuse. */
        if (atomic_load_explicit(&s->consumed[id], memory_order_acquire) == p) {
            atomic_store_explicit(&s->produced[id], p + 1, memory_order_relaxed);
            return &s->tasks[id];
        }
    }
    FAILURE(s, "no task record came back: tasks were lost\n");
    return NULL;
}

static void run_stress(long ops, uint64_t seed)
{
    stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->tasks = calloc(S_POOL, sizeof *s->tasks);
    assert_non_null(s->tasks);
    s->owner = new_runq((uint32_t)seed * 977u); /* wraps the counters early for some seeds */
    for (unsigned i = 0; i < S_THIEVES; i++)
        s->thief_q[i] = new_runq(UINT32_MAX - (uint32_t)i * 3);

    pthread_t th[S_THIEVES];
    thief_arg ta[S_THIEVES];
    for (unsigned i = 0; i < S_THIEVES; i++) {
        ta[i] = (thief_arg){.s = s, .idx = i, .rng = seed * 31 + i + 1};
        assert_int_equal(pthread_create(&th[i], NULL, thief_main, &ta[i]), 0);
    }
    while (atomic_load(&s->started) < S_THIEVES)
        sched_yield();

    uint64_t rng = seed;
    long by[BY_MAX] = {0};
    long produced = 0;
    uint32_t cursor = 0;
    unsigned push_pct = 50;
    for (long op = 0; op < ops; op++) {
        if (op % 512 == 0) /* a new phase: fill, drain or balance */
            push_pct = (unsigned[]){20, 50, 60, 80, 95}[test_rand(&rng) % 5];
        unsigned r = (unsigned)(test_rand(&rng) % 100);
        /* With fewer cores than threads (CI machines, or a one-core quota)
         * the thieves only run when the owner is switched out: make that
         * happen often, at random points. */
        if ((test_rand(&rng) & 63) == 0)
            sched_yield();
        if (r < 10) { /* put_next; the displaced task goes to the ring */
            wf__task *t = new_task(s, &cursor);
            if (!t)
                break;
            produced++;
            wf__task *old = wf__runq_put_next(s->owner, t);
            if (old)
                owner_push(s, old, by);
        } else if (r < 18) {
            wf__task *t = wf__runq_take_next(s->owner);
            if (t)
                CONSUME(s, t, by, BY_NEXT, &rng);
        } else if (r < 18 + (82 * push_pct) / 100) {
            wf__task *t = new_task(s, &cursor);
            if (!t)
                break;
            produced++;
            owner_push(s, t, by);
        } else {
            wf__task *t = wf__runq_pop(s->owner);
            if (t)
                CONSUME(s, t, by, BY_POP, &rng);
        }
    }
    atomic_store_explicit(&s->stop, true, memory_order_release);
    for (unsigned i = 0; i < S_THIEVES; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    /* The owner drains what is left. */
    wf__task *t;
    if ((t = wf__runq_take_next(s->owner)) != NULL)
        consume(s, t, by, BY_NEXT);
    while ((t = wf__runq_pop(s->owner)) != NULL)
        consume(s, t, by, BY_POP);
    for (unsigned i = 0; i < S_THIEVES; i++)
        assert_null(wf__runq_pop(s->thief_q[i]));
    assert_true(wf__runq_maybe_empty(s->owner));

    long total = 0;
    for (int h = 0; h < BY_MAX; h++) {
        for (unsigned i = 0; i < S_THIEVES; i++)
            by[h] += ta[i].by[h];
        total += by[h];
    }
    long bad = 0;
    for (size_t i = 0; i < S_POOL; i++)
        if (atomic_load(&s->consumed[i]) != atomic_load(&s->produced[i]))
            bad++;
    long tries = 0;
    for (unsigned i = 0; i < S_THIEVES; i++)
        tries += ta[i].tries;
    fprintf(stderr,
            "stress cap %u seed %llu: %ld ops, %ld tasks; consumed by pop %ld, next %ld, "
            "overflow %ld, steal %ld (of %ld tries), steal_next %ld, thief pop %ld\n",
            CAP, (unsigned long long)seed, ops, produced, by[BY_POP], by[BY_NEXT],
            by[BY_OVERFLOW], by[BY_STEAL], tries, by[BY_STEAL_NEXT], by[BY_THIEF_POP]);
    assert_int_equal(atomic_load(&s->failures), 0);
    assert_int_equal(bad, 0);
    assert_int_equal(total, produced);
    free(s->owner);
    for (unsigned i = 0; i < S_THIEVES; i++)
        free(s->thief_q[i]);
    free(s->tasks);
    free(s);
}

static void test_stress(void **state)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    static const uint64_t seeds[] = {1, 0xabcdef12345ull, 977};
    /* Sanitizers slow each operation down, but this test has no fibers and
     * TSan gains from more interleavings: shrink it, within a floor. */
    long ops = SCALED(1000000) > 200000 ? SCALED(1000000) : 200000;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        run_stress(ops, seeds[i]);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "stress: %.2f s\n",
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_next_slot),
        cmocka_unit_test(test_steal_into),
        cmocka_unit_test(test_steal_halves),
        cmocka_unit_test(test_steal_into_nonempty_panics),
        cmocka_unit_test(test_woken_marks),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, setup_pool, teardown_pool);
}
