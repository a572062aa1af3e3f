/* sync_test.h - helpers shared by the tests of runtime/sync. */
#ifndef WF_SYNC_TEST_H
#define WF_SYNC_TEST_H

#include "common.h"

/* Generous: tests wait on events, never on guessed sleeps; a deadline that
 * passes means a bug (a lost wake-up), reported as a failed check. */
#define LONG_NS (60 * WF_NSEC_PER_SEC)

/* Yield until `t` is parked (in whatever wait it is expected to be in). */
static inline bool wait_parked(wf_task_t t)
{
    int64_t deadline = wf_deadline_in(LONG_NS);
    while (wf_task_state(t) != WF_TASK_PARKED) {
        if (wf_now() > deadline)
            return false;
        wf_yield();
    }
    return true;
}

/* Spawn `n` tasks running fn(args + i * stride). */
static inline void spawn_n(wf_task_t *t, int n, wf_fn fn, void *args, size_t stride)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(wf_spawn(&t[i], fn, (char *)args + (size_t)i * stride, NULL), 0);
}

/* Join `n` tasks, checking each returned 0. */
static inline void join_n(wf_task_t *t, int n)
{
    for (int i = 0; i < n; i++) {
        int st = -1;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
}

/* A task that cancels random victims until *stop is set: the stress tests'
 * source of cancellations. Victims answer -ECANCELED with wf_uncancel().
 * Start it with start_canceller(), which gives it a reference of its own to
 * every victim (so the victims may be joined while it runs), and stop it
 * with stop_canceller(). Only victims that have started are cancelled: a
 * task cancelled before it first runs never runs at all. */
typedef struct canceller_arg {
    wf_task_t *victims;
    int n;
    _Atomic int stop;
    _Atomic long cancels;
    uint64_t seed;
    wf_task_t task;
} canceller_arg;

static inline int canceller(void *arg, void **res)
{
    canceller_arg *c = arg;
    uint64_t rnd = c->seed | 1;
    while (!atomic_load(&c->stop)) {
        wf_task_t v = c->victims[test_rand(&rnd) % (uint64_t)c->n];
        int st = wf_task_state(v);
        if (st != WF_TASK_PENDING && st != WF_TASK_DONE && wf_cancel(v) == 0)
            atomic_fetch_add(&c->cancels, 1);
        wf_sleep((int64_t)(test_rand(&rnd) % 30) * WF_NSEC_PER_USEC);
    }
    for (int i = 0; i < c->n; i++)
        wf_detach(c->victims[i]);
    return 0;
}

static inline void start_canceller(canceller_arg *c, wf_task_t *victims, int n, uint64_t seed)
{
    c->victims = victims;
    c->n = n;
    atomic_init(&c->stop, 0);
    atomic_init(&c->cancels, 0);
    c->seed = seed;
    for (int i = 0; i < n; i++)
        CHECK_EQ(wf_task_ref(victims[i]), 0);
    CHECK_EQ(wf_spawn(&c->task, canceller, c, NULL), 0);
}

static inline long stop_canceller(canceller_arg *c)
{
    atomic_store(&c->stop, 1);
    CHECK_EQ(wf_join(c->task, NULL, NULL), 0);
    return atomic_load(&c->cancels);
}

/* A deadline for a stress operation: a quarter already past (try once),
 * a quarter up to 40 us ahead, half none. */
static inline int64_t random_deadline(uint64_t *rnd)
{
    switch (test_rand(rnd) % 4) {
    case 0:
        return 0;
    case 1:
        return wf_deadline_in((int64_t)(test_rand(rnd) % 40) * WF_NSEC_PER_USEC);
    default:
        return WF_FOREVER;
    }
}

/* runtime/sync/queue.c: whether bounded FIFO queues made from now on are
 * lock-free rings (true) or locked buffers (the default of the build option
 * queue_ring). The queue tests run all their cases against both. */
extern bool wf__queue_use_ring;

static inline int run_queue_groups(const struct CMUnitTest *tests, size_t n)
{
    wf__queue_use_ring = false;
    int failed = _cmocka_run_group_tests("bounded FIFO: locked buffer", tests, n, NULL, NULL);
    wf__queue_use_ring = true;
    failed += _cmocka_run_group_tests("bounded FIFO: lock-free ring", tests, n, NULL, NULL);
    return failed;
}

/* How many workers the stress tests run on: more than the machine's cores,
 * so fibers migrate and wake each other across threads. */
#define STRESS_WORKERS 4

#endif
