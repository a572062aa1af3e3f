/* test_races.c - the races a review of the core found, each run many times
 * on every worker: two references given back at once, two joins of one
 * handle, a cancel racing the join that frees the record, a drop callback
 * that waits while another fiber is mid-park, a woken task left in a busy
 * worker's next slot, and more distinct stack sizes than the pool has
 * classes. Each failed (an abort, a wrong result or a sanitizer report) on
 * the code before the fix. */
#include "common.h"

#define DEADLINE_NS (30 * WF_NSEC_PER_SEC)

static int ret_zero(void *arg, void **res)
{
    (void)arg;
    (void)res;
    return 0;
}

/* Two fibers meet here: each arrives, then spins (yielding) until the
 * other has, so their next calls run at nearly the same moment on two
 * workers. */
typedef struct meet {
    _Atomic int here;
} meet;

static void meet_at(meet *m, int parties)
{
    atomic_fetch_add(&m->here, 1);
    int64_t end = wf_now() + DEADLINE_NS;
    while (atomic_load(&m->here) < parties && wf_now() < end)
        ;
}

/* --- two references given back at once ------------------------------------ */

typedef struct give_back {
    wf_task_t t;
    meet m;
    _Atomic int ok;
} give_back;

static int give_back_one(void *arg, void **res)
{
    (void)res;
    give_back *g = arg;
    meet_at(&g->m, 2);
    if (wf_detach(g->t) == 0)
        atomic_fetch_add(&g->ok, 1);
    return 0;
}

static int m_two_releases(void *arg, void **res)
{
    (void)arg;
    (void)res;
    int n = SCALED(4000);
    for (int i = 0; i < n; i++) {
        give_back g = {.t = 0};
        atomic_init(&g.m.here, 0);
        atomic_init(&g.ok, 0);
        CHECK_EQ(wf_spawn(&g.t, ret_zero, NULL, NULL), 0);
        CHECK_EQ(wf_task_ref(g.t), 0); /* two live handles */
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        wf_task_t a, b;
        o.worker = 0;
        CHECK_EQ(wf_spawn(&a, give_back_one, &g, &o), 0);
        o.worker = 1 % wf_workers();
        CHECK_EQ(wf_spawn(&b, give_back_one, &g, &o), 0);
        CHECK_EQ(wf_join(a, NULL, NULL), 0);
        CHECK_EQ(wf_join(b, NULL, NULL), 0);
        CHECK_EQ(atomic_load(&g.ok), 2);
        /* Both handles are gone: the id is dead. */
        CHECK_EQ(wf_detach(g.t), -EINVAL);
        CHECK_EQ(wf_task_state(g.t), -EINVAL);
    }
    return 0;
}

static void test_two_releases(void **state)
{
    (void)state;
    run_main(2, m_two_releases, NULL);
}

/* --- two joins of one handle ------------------------------------------------ */

typedef struct joins {
    wf_task_t t;
    wf_event_t go;
    meet m;
    _Atomic int ok, einval, other;
} joins;

static int wait_go(void *arg, void **res)
{
    joins *j = arg;
    *res = (void *)0x5eed;
    return wf_event_wait(&j->go);
}

static int join_one(void *arg, void **res)
{
    (void)res;
    joins *j = arg;
    meet_at(&j->m, 2);
    int st = -1;
    void *rv = NULL;
    int r = wf_join(j->t, &st, &rv);
    if (r == 0 && st == 0 && rv == (void *)0x5eed)
        atomic_fetch_add(&j->ok, 1);
    else if (r == -EINVAL)
        atomic_fetch_add(&j->einval, 1);
    else
        atomic_fetch_add(&j->other, 1);
    return 0;
}

static int m_double_join(void *arg, void **res)
{
    (void)arg;
    (void)res;
    int n = SCALED(3000);
    for (int i = 0; i < n; i++) {
        joins j = {.t = 0};
        atomic_init(&j.m.here, 0);
        atomic_init(&j.ok, 0);
        atomic_init(&j.einval, 0);
        atomic_init(&j.other, 0);
        CHECK_EQ(wf_event_init(&j.go), 0);
        CHECK_EQ(wf_spawn(&j.t, wait_go, &j, NULL), 0);
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        wf_task_t a, b;
        o.worker = 0;
        CHECK_EQ(wf_spawn(&a, join_one, &j, &o), 0);
        o.worker = 1 % wf_workers();
        CHECK_EQ(wf_spawn(&b, join_one, &j, &o), 0);
        /* Half the rounds let both joiners park first; the others end the
         * task while they arrive. */
        if (i & 1) {
            int64_t end = wf_now() + DEADLINE_NS;
            while ((wf_task_state(a) != WF_TASK_PARKED && wf_task_state(a) != WF_TASK_DONE) ||
                   (wf_task_state(b) != WF_TASK_PARKED && wf_task_state(b) != WF_TASK_DONE)) {
                if (wf_now() > end)
                    break;
                wf_yield();
            }
        }
        CHECK(wf_event_set(&j.go) >= 0);
        CHECK_EQ(wf_join(a, NULL, NULL), 0);
        CHECK_EQ(wf_join(b, NULL, NULL), 0);
        CHECK_EQ(atomic_load(&j.ok), 1);
        CHECK_EQ(atomic_load(&j.einval), 1);
        CHECK_EQ(atomic_load(&j.other), 0);
        wf_event_destroy(&j.go);
    }
    return 0;
}

static void test_double_join(void **state)
{
    (void)state;
    run_main(2, m_double_join, NULL);
}

/* --- a watchdog cancels what its owner joins --------------------------------- */

#define STORM_TASKS 64

typedef struct storm {
    _Atomic wf_task_t ids[STORM_TASKS];
    _Atomic int stop;
    _Atomic long cancels_ok, cancels_done, cancels_dead, cancels_other;
} storm;

static int storm_body(void *arg, void **res)
{
    (void)res;
    uintptr_t k = (uintptr_t)arg;
    if (k % 3 == 0)
        return 0; /* ends at once */
    int e = wf_sleep((int64_t)(k % 7) * 1000);
    return e == -ECANCELED ? -ECANCELED : 0;
}

static int watchdog(void *arg, void **res)
{
    (void)res;
    storm *s = arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    while (!atomic_load(&s->stop)) {
        wf_task_t id = atomic_load(&s->ids[test_rand(&rng) % STORM_TASKS]);
        if (!id) {
            wf_yield();
            continue;
        }
        int r = wf_cancel(id);
        if (r == 0)
            atomic_fetch_add(&s->cancels_ok, 1);
        else if (r == -EALREADY)
            atomic_fetch_add(&s->cancels_done, 1);
        else if (r == -EINVAL)
            atomic_fetch_add(&s->cancels_dead, 1);
        else
            atomic_fetch_add(&s->cancels_other, 1);
        /* The other read-only calls on a handle racing its release. */
        (void)wf_task_state(id);
        (void)wf_task_done(id);
        if ((test_rand(&rng) & 15) == 0)
            wf_yield();
    }
    return 0;
}

static int m_cancel_join_storm(void *arg, void **res)
{
    (void)arg;
    (void)res;
    storm *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    if (!s)
        return 0;
    wf_task_t dogs[2];
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    for (int i = 0; i < 2; i++) {
        o.worker = i % wf_workers();
        CHECK_EQ(wf_spawn(&dogs[i], watchdog, s, &o), 0);
    }
    long rounds = SCALED(600), joined = 0, cancelled = 0;
    for (long r = 0; r < rounds; r++) {
        wf_task_t local[STORM_TASKS];
        for (uintptr_t k = 0; k < STORM_TASKS; k++) {
            CHECK_EQ(wf_spawn(&local[k], storm_body, (void *)(k + (uintptr_t)r), NULL), 0);
            atomic_store(&s->ids[k], local[k]);
        }
        if (getenv("RACES_DEBUG"))
            fprintf(stderr, "round %ld cancels %ld\n", r, atomic_load(&s->cancels_ok));
        for (int k = 0; k < STORM_TASKS; k++) {
            int st = 1;
            CHECK_EQ(wf_join(local[k], &st, NULL), 0);
            CHECK(st == 0 || st == -ECANCELED);
            joined++;
            cancelled += st == -ECANCELED;
        }
    }
    atomic_store(&s->stop, 1);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(wf_join(dogs[i], NULL, NULL), 0);
    CHECK_EQ(joined, rounds * STORM_TASKS);
    CHECK_EQ(atomic_load(&s->cancels_other), 0);
    /* Every successful cancel reached a task that then ended cancelled, or
     * one that had already finished its body: never more cancelled tasks
     * than successful requests. */
    CHECK(cancelled <= atomic_load(&s->cancels_ok));
    free(s);
    return 0;
}

static void test_cancel_join_storm(void **state)
{
    (void)state;
    run_main(2, m_cancel_join_storm, NULL);
}

/* --- a drop callback that waits ------------------------------------------------ */

typedef struct dropper {
    wf_queue_t *q;
    _Atomic int drops, drop_wait_status, got, get_status;
    _Atomic int getter_parked;
} dropper;

static dropper *the_dropper;

static void waiting_drop(void *arg)
{
    dropper *d = arg;
    /* The task is cancelled: a wait fails at once, with the sticky
     * -ECANCELED, unless it is inside a cleanup scope. Before the fix the
     * drop ran on the stack of the fiber that was switching out, and this
     * sleep re-began that fiber's park. */
    atomic_store(&d->drop_wait_status, wf_sleep(WF_NSEC_PER_MSEC));
    atomic_fetch_add(&d->drops, 1);
}

static int never_runs(void *arg, void **res)
{
    (void)arg;
    (void)res;
    CHECK(!"a task cancelled before it started ran its body");
    return 0;
}

static int getter(void *arg, void **res)
{
    (void)res;
    dropper *d = arg;
    void *item = NULL;
    int r = wf_queue_get(d->q, &item);
    atomic_store(&d->get_status, r);
    atomic_store(&d->got, (int)(intptr_t)item);
    return 0;
}

static int getter_spawning(void *arg, void **res)
{
    (void)res;
    dropper *d = arg;
    /* Spawned on this worker and cancelled at once: the next task this
     * worker switches to when the get below parks. Pinned to it: unpinned,
     * an idle worker could steal it and run its body before the cancel
     * (7 of 200 rounds with a 2 ms pause between the two calls). */
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.drop = waiting_drop;
    o.worker = wf_worker_index();
    wf_task_t x;
    CHECK_EQ(wf_spawn(&x, never_runs, d, &o), 0);
    CHECK_EQ(wf_cancel(x), 0);
    CHECK_EQ(wf_detach(x), 0);
    return getter(arg, res);
}

static int m_drop_waits(void *arg, void **res)
{
    (void)res;
    unsigned workers = (unsigned)(uintptr_t)arg;
    int n = SCALED(200);
    for (int i = 0; i < n; i++) {
        dropper d = {.q = NULL};
        atomic_init(&d.drops, 0);
        atomic_init(&d.got, 0);
        atomic_init(&d.get_status, 1);
        atomic_init(&d.drop_wait_status, 1);
        CHECK_EQ(wf_queue_create(&d.q, 4, WF_QUEUE_FIFO, NULL), 0);
        the_dropper = &d;
        wf_task_t g;
        CHECK_EQ(wf_spawn(&g, getter_spawning, &d, NULL), 0);
        /* Wait until the drop has run and the getter is parked in its get. */
        int64_t end = wf_now() + DEADLINE_NS;
        while ((atomic_load(&d.drops) == 0 || wf_task_state(g) != WF_TASK_PARKED) && wf_now() < end)
            wf_yield();
        CHECK_EQ(atomic_load(&d.drops), 1);
        CHECK_EQ(atomic_load(&d.drop_wait_status), -ECANCELED);
        /* The getter's wait (no deadline) is intact: it ends only now. */
        CHECK_EQ(atomic_load(&d.get_status), 1);
        CHECK_EQ(wf_queue_put(d.q, (void *)(intptr_t)42), 0);
        CHECK_EQ(wf_join(g, NULL, NULL), 0);
        CHECK_EQ(atomic_load(&d.get_status), 0);
        CHECK_EQ(atomic_load(&d.got), 42);
        wf_queue_destroy(d.q, NULL, NULL, NULL);
    }
    (void)workers;
    return 0;
}

static void test_drop_waits_1(void **state)
{
    (void)state;
    run_main(1, m_drop_waits, (void *)1);
}

static void test_drop_waits_2(void **state)
{
    (void)state;
    run_main(2, m_drop_waits, (void *)2);
}

/* --- a woken task in a busy worker's next slot ----------------------------------- */

typedef struct starve {
    wf_event_t ev;
    _Atomic int ran;
} starve;

static int woken(void *arg, void **res)
{
    (void)res;
    starve *s = arg;
    int e = wf_event_wait(&s->ev);
    atomic_store(&s->ran, e == 0 ? 1 : -1);
    return 0;
}

static int m_next_slot_busy(void *arg, void **res)
{
    (void)arg;
    (void)res;
    int n = SCALED(20) > 3 ? SCALED(20) : 3;
    for (int i = 0; i < n; i++) {
        starve s;
        CHECK_EQ(wf_event_init(&s.ev), 0);
        atomic_init(&s.ran, 0);
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, woken, &s, NULL), 0);
        int64_t end = wf_now() + DEADLINE_NS;
        while (wf_task_state(t) != WF_TASK_PARKED && wf_now() < end)
            wf_yield();
        CHECK_EQ(wf_task_state(t), WF_TASK_PARKED);
        /* The set puts the woken task into this worker's next slot; then
         * this fiber keeps the worker busy without yielding. The other
         * worker is idle: it must be woken to take the task. */
        CHECK(wf_event_set(&s.ev) >= 0);
        end = wf_now() + DEADLINE_NS;
        while (atomic_load(&s.ran) == 0 && wf_now() < end)
            ; /* busy, no yield */
        CHECK_EQ(atomic_load(&s.ran), 1);
        CHECK_EQ(wf_join(t, NULL, NULL), 0);
        wf_event_destroy(&s.ev);
    }
    return 0;
}

static void test_next_slot_busy(void **state)
{
    (void)state;
    run_main(2, m_next_slot_busy, NULL);
}

/* --- more distinct stack sizes than size classes ------------------------------------ */

static int deep(void *arg, void **res)
{
    (void)res;
    /* Touch most of the stack asked for (minus room for the frames). */
    size_t want = (size_t)(uintptr_t)arg - 8 * 1024;
    volatile char *p = __builtin_alloca(want);
    p[0] = 1;
    p[want - 1] = 2;
    return p[0] + p[want - 1] == 3 ? 0 : -EIO;
}

static int m_stack_sizes(void *arg, void **res)
{
    (void)arg;
    (void)res;
    enum { N = 40 };
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.stack_size = (size_t)(16 + 7 * i) * 1024 + (size_t)i * 4096 + 123;
        CHECK_EQ(wf_spawn(&t[i], deep, (void *)(uintptr_t)o.stack_size, &o), 0);
    }
    for (int i = 0; i < N; i++) {
        int st = 1;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
    return 0;
}

static void test_stack_sizes(void **state)
{
    (void)state;
    run_main(2, m_stack_sizes, NULL);
}

/* --- the runtime's own references cannot be consumed by the user ------------ */

static int fails(void *arg, void **res)
{
    (void)arg;
    (void)res;
    return -5;
}

static int detach_self(void *arg, void **res)
{
    (void)res;
    atomic_store((_Atomic int *)arg, wf_detach(wf_self()));
    return -5;
}

static int m_internal_refs(void *arg, void **res)
{
    (void)arg;
    (void)res;
    /* main's own reference is wf_run's: not the user's to give back. */
    CHECK_EQ(wf_detach(wf_self()), -EINVAL);
    CHECK_EQ(wf_join(wf_self(), NULL, NULL), -EDEADLK);
    for (int i = 0; i < SCALED(200); i++) {
        /* A double join of a group child: the second finds no handle. */
        wf_group_t g;
        CHECK_EQ(wf_group_init(&g), 0);
        wf_task_t id;
        CHECK_EQ(wf_group_spawn(&g, &id, fails, NULL, NULL), 0);
        int st = 0;
        CHECK_EQ(wf_join(id, &st, NULL), 0);
        CHECK_EQ(st, -5);
        CHECK_EQ(wf_join(id, NULL, NULL), -EINVAL);
        CHECK_EQ(wf_detach(id), -EINVAL);
        wf_group_failure_t f[2];
        CHECK_EQ(wf_group_wait(&g, f, 2), 1);
        CHECK_EQ(f[0].status, -5);
        /* A child that detaches itself: it holds no handle of its own. */
        _Atomic int det = 1;
        CHECK_EQ(wf_group_init(&g), 0);
        CHECK_EQ(wf_group_spawn(&g, NULL, detach_self, &det, NULL), 0);
        CHECK_EQ(wf_group_wait(&g, f, 2), 1);
        CHECK_EQ(atomic_load(&det), -EINVAL);
        /* as_completed's own references: a double join before the
         * iterator hands the task out leaves the iterator whole. */
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, fails, NULL, NULL), 0);
        wf_as_completed_t *it = NULL;
        CHECK_EQ(wf_as_completed_start(&it, &t, 1, WF_FOREVER), 0);
        CHECK_EQ(wf_join(t, NULL, NULL), 0);
        CHECK_EQ(wf_join(t, NULL, NULL), -EINVAL);
        wf_task_t got = 0;
        CHECK_EQ(wf_as_completed_next(it, &got), 1);
        CHECK_EQ(got, t);
        CHECK_EQ(wf_join(got, &st, NULL), 0); /* the iterator's new reference */
        CHECK_EQ(st, -5);
        CHECK_EQ(wf_as_completed_next(it, &got), 0);
        CHECK_EQ(wf_as_completed_end(it), 0);
    }
    return 0;
}

static void test_internal_refs(void **state)
{
    (void)state;
    run_main(2, m_internal_refs, NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_releases),
        cmocka_unit_test(test_double_join),
        cmocka_unit_test(test_cancel_join_storm),
        cmocka_unit_test(test_drop_waits_1),
        cmocka_unit_test(test_drop_waits_2),
        cmocka_unit_test(test_next_slot_busy),
        cmocka_unit_test(test_stack_sizes),
        cmocka_unit_test(test_internal_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
