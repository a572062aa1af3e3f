/* test_combo_stress.c - thousands of concurrent gathers, waits, wait_fors,
 * as_completed iterations and task groups, over children that succeed,
 * fail, wait to be cancelled or sleep, while chaos tasks cancel the
 * drivers at random. Every outcome is checked against what the child
 * itself reported, and every child is counted exactly once (it ran to its
 * end, or was cancelled before it ran). */
#include "combo_test.h"

enum { MAX_KIDS = 6 };

typedef struct stress {
    _Atomic long spawned, ended, dropped;
    _Atomic long gathers, waits, wait_fors, iters, groups;
    _Atomic long driver_cancels; /* combinator calls ended by a cancellation */
    _Atomic int stop_chaos;
    _Atomic long drivers_started;
    wf_task_t *drivers;
    int ndrivers, rounds;
} stress;

/* One child's own record of its outcome; shared by the child (or its drop
 * function) and the driver, freed by the last of the two. */
typedef struct slot {
    _Atomic int refs;
    int kind;
    int status; /* written by the child before it ends */
    bool ran;
    wf_future_t *gate; /* the round's gate (kind 3), referenced */
    stress *s;
} slot;

static void slot_unref(slot *sl)
{
    if (atomic_fetch_sub(&sl->refs, 1) == 1) {
        if (sl->gate)
            wf_future_release(sl->gate);
        free(sl);
    }
}

static int kid(void *arg, void **res)
{
    slot *sl = arg;
    int st;
    switch (sl->kind) {
    case 0:
        st = 0;
        break;
    case 1:
        st = -EIO;
        break;
    case 2:
        st = 0;
        for (int i = 0; i < 3 && st == 0; i++)
            st = wf_yield();
        break;
    case 3:
        /* Waits for the round's gate: ends early only if cancelled. */
        st = wf_future_wait(sl->gate, WF_FOREVER, NULL, NULL);
        break;
    default:
        st = wf_sleep(((int64_t)(sl->kind - 4) * 50) * WF_NSEC_PER_USEC);
        if (st == 0)
            st = -EPIPE;
        break;
    }
    sl->status = st;
    sl->ran = true;
    atomic_fetch_add(&sl->s->ended, 1);
    *res = sl;
    slot_unref(sl);
    return st;
}

static void kid_drop(void *arg)
{
    slot *sl = arg;
    sl->status = -ECANCELED;
    atomic_fetch_add(&sl->s->dropped, 1);
    slot_unref(sl);
}

/* A round's children. */
typedef struct round {
    int n;
    wf_task_t t[MAX_KIDS];
    slot *sl[MAX_KIDS];
    wf_future_t *gate;
} round;

static void spawn_kids(stress *s, round *r, uint64_t *seed, wf_group_t *g)
{
    r->n = 1 + (int)(test_rand(seed) % MAX_KIDS);
    r->gate = gate_new();
    for (int i = 0; i < r->n; i++) {
        slot *sl = malloc(sizeof *sl);
        atomic_init(&sl->refs, 2);
        sl->kind = (int)(test_rand(seed) % 8);
        sl->status = 12345;
        sl->ran = false;
        sl->s = s;
        sl->gate = r->gate;
        wf_future_ref(r->gate);
        r->sl[i] = sl;
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.drop = kid_drop;
        int e = g ? wf_group_spawn(g, &r->t[i], kid, sl, &o) : wf_spawn(&r->t[i], kid, sl, &o);
        if (e == -ESHUTDOWN && g && i > 0) {
            /* A child already failed: the group refuses new ones. */
            wf_future_release(r->gate);
            free(sl);
            r->n = i;
            break;
        }
        CHECK_EQ(e, 0);
        atomic_fetch_add(&s->spawned, 1);
    }
}

static void end_round(round *r)
{
    wf_future_set(r->gate, 0, NULL); /* release kind-3 children */
    wf_future_release(r->gate);
    for (int i = 0; i < r->n; i++)
        slot_unref(r->sl[i]);
}

/* The outcome a combinator reported for child i matches the child's own. */
static void check_outcome(round *r, int i, int status, void *result)
{
    slot *sl = r->sl[i];
    CHECK_EQ(status, sl->status);
    CHECK(result == (sl->ran ? (void *)sl : NULL));
}

/* Gather every child, whatever happens: a chaos task may cancel the
 * driver meanwhile, and then the outcomes are all filled in too. */
static void collect(wf_task_t *t, int n, wf_outcome_t *out)
{
    int g = wf_gather(t, (size_t)n, WF_GATHER_COLLECT, WF_FOREVER, out, NULL);
    CHECK(g >= 0 || g == -ECANCELED);
}

/* Withdraw every cancellation request the driver received; count them. */
static void uncancel_all(stress *s)
{
    while (wf_cancelling(wf_self()) > 0) {
        wf_uncancel();
        atomic_fetch_add(&s->driver_cancels, 1);
    }
}

static void do_gather(stress *s, round *r, uint64_t *seed)
{
    static const unsigned flags[3] = {0, WF_GATHER_COLLECT, WF_GATHER_CANCEL_ON_FAILURE};
    unsigned fl = flags[test_rand(seed) % 3];
    int64_t dl =
        test_rand(seed) % 4 == 0 ? wf_deadline_in((int64_t)(test_rand(seed) % 200) * 1000) : WF_FOREVER;
    wf_outcome_t out[MAX_KIDS];
    size_t ff = 99;
    int ret = wf_gather(r->t, (size_t)r->n, fl, dl, out, &ff);
    atomic_fetch_add(&s->gathers, 1);
    int failed = 0;
    for (int i = 0; i < r->n; i++) {
        if (out[i].status == -EINPROGRESS) {
            /* Fail fast left it running, detached. */
            CHECK(ret == 1 && fl == 0);
            continue;
        }
        check_outcome(r, i, out[i].status, out[i].result);
        failed += out[i].status != 0;
    }
    if (ret == -ECANCELED || ret == -ETIMEDOUT) {
        CHECK(ret == -ETIMEDOUT || wf_cancelling(wf_self()) > 0);
    } else if (fl == WF_GATHER_COLLECT) {
        CHECK_EQ(ret, failed);
    } else {
        CHECK_EQ(ret, failed > 0);
        if (ret)
            CHECK(ff < (size_t)r->n && out[ff].status != 0);
    }
}

static void do_wait(stress *s, round *r, uint64_t *seed)
{
    int when = 1 + (int)(test_rand(seed) % 3);
    int64_t dl = test_rand(seed) % 2 ? wf_deadline_in((int64_t)(test_rand(seed) % 300) * 1000) : WF_FOREVER;
    bool done[MAX_KIDS];
    int ret = wf_wait(r->t, (size_t)r->n, when, dl, done);
    atomic_fetch_add(&s->waits, 1);
    if (ret >= 0) {
        int n = 0;
        for (int i = 0; i < r->n; i++) {
            n += done[i];
            if (done[i])
                CHECK_EQ(wf_task_done(r->t[i]), 1);
        }
        CHECK_EQ(ret, n);
        if (dl == WF_FOREVER && when != WF_FIRST_EXCEPTION)
            CHECK(n >= (when == WF_ALL_COMPLETED ? r->n : 1));
    } else {
        CHECK_EQ(ret, -ECANCELED);
    }
    /* wait consumed nothing: collect every child (cancelling the rest). */
    for (int i = 0; i < r->n; i++)
        wf_cancel(r->t[i]);
    uncancel_all(s);
    wf_outcome_t out[MAX_KIDS];
    collect(r->t, r->n, out);
    for (int i = 0; i < r->n; i++)
        check_outcome(r, i, out[i].status, out[i].result);
}

static void do_wait_for(stress *s, round *r, uint64_t *seed)
{
    int64_t dl = wf_deadline_in((int64_t)(test_rand(seed) % 300) * 1000);
    int st = 777;
    void *rv = (void *)1;
    int ret = wf_wait_for(r->t[0], dl, &st, &rv);
    atomic_fetch_add(&s->wait_fors, 1);
    CHECK(ret == 0 || ret == -ETIMEDOUT || ret == -ECANCELED);
    /* The child has ended in every case, and its outcome was written. */
    check_outcome(r, 0, st, rv);
    if (ret == -ETIMEDOUT)
        CHECK_EQ(st, -ECANCELED);
    uncancel_all(s);
    if (r->n > 1) {
        wf_outcome_t out[MAX_KIDS];
        for (int i = 1; i < r->n; i++)
            wf_cancel(r->t[i]);
        collect(r->t + 1, r->n - 1, out);
        for (int i = 1; i < r->n; i++)
            check_outcome(r, i, out[i - 1].status, out[i - 1].result);
    }
}

static void do_as_completed(stress *s, round *r, uint64_t *seed)
{
    wf_as_completed_t *it;
    int64_t dl = wf_deadline_in((int64_t)(test_rand(seed) % 400) * 1000);
    CHECK_EQ(wf_as_completed_start(&it, r->t, (size_t)r->n, dl), 0);
    atomic_fetch_add(&s->iters, 1);
    int handed = 0, ret;
    wf_task_t t;
    while ((ret = wf_as_completed_next(it, &t)) == 1) {
        int i = 0;
        while (i < r->n && r->t[i] != t)
            i++;
        CHECK(i < r->n);
        int st;
        void *rv;
        CHECK_EQ(wf_join(t, &st, &rv), 0);
        if (i < r->n)
            check_outcome(r, i, st, rv);
        handed++;
    }
    CHECK(ret == 0 || ret == -ETIMEDOUT || ret == -ECANCELED);
    if (ret == 0)
        CHECK_EQ(handed, r->n);
    CHECK_EQ(wf_as_completed_end(it), 0);
    uncancel_all(s);
    for (int i = 0; i < r->n; i++)
        wf_cancel(r->t[i]);
    wf_outcome_t out[MAX_KIDS];
    collect(r->t, r->n, out);
    for (int i = 0; i < r->n; i++)
        check_outcome(r, i, out[i].status, out[i].result);
}

static void do_group(stress *s, round *r, uint64_t *seed)
{
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    spawn_kids(s, r, seed, &g);
    if (test_rand(seed) % 5 == 0)
        wf_group_cancel(&g);
    if (test_rand(seed) % 3 == 0)
        wf_sleep((int64_t)(test_rand(seed) % 100) * 1000); /* the body does something */
    wf_group_failure_t fl[MAX_KIDS];
    int ret = wf_group_wait(&g, fl, MAX_KIDS);
    atomic_fetch_add(&s->groups, 1);
    int exc = 0;
    for (int i = 0; i < r->n; i++) {
        int st;
        void *rv;
        CHECK_EQ(wf_join(r->t[i], &st, &rv), 0); /* every child has ended */
        check_outcome(r, i, st, rv);
        exc += st != 0 && st != -ECANCELED;
    }
    if (exc)
        CHECK_EQ(ret, exc);
    else
        CHECK(ret == 0 || ret == -ECANCELED);
    for (int k = 0; k < (ret > 0 ? ret : 0); k++) {
        int i = 0;
        while (i < r->n && r->t[i] != fl[k].task)
            i++;
        CHECK(i < r->n);
        if (i < r->n)
            CHECK_EQ(fl[k].status, r->sl[i]->status);
    }
    uncancel_all(s);
}

static int driver(void *arg, void **res)
{
    stress *s = arg;
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)wf_self();
    atomic_fetch_add(&s->drivers_started, 1);
    for (int k = 0; k < s->rounds; k++) {
        round r;
        int op = (int)(test_rand(&seed) % 5);
        if (op != 4)
            spawn_kids(s, &r, &seed, NULL);
        switch (op) {
        case 0:
            do_gather(s, &r, &seed);
            break;
        case 1:
            do_wait(s, &r, &seed);
            break;
        case 2:
            do_wait_for(s, &r, &seed);
            break;
        case 3:
            do_as_completed(s, &r, &seed);
            break;
        default:
            do_group(s, &r, &seed);
            break;
        }
        uncancel_all(s);
        end_round(&r);
    }
    return 0;
}

static int chaos(void *arg, void **res)
{
    stress *s = arg;
    uint64_t seed = 0xC0FFEEull ^ (uint64_t)wf_self();
    while (!atomic_load(&s->stop_chaos)) {
        wf_task_t d = s->drivers[test_rand(&seed) % (uint64_t)s->ndrivers];
        wf_cancel(d); /* -EALREADY once it has ended */
        wf_sleep((int64_t)(test_rand(&seed) % 200) * 1000);
    }
    return 0;
}

static int m_stress(void *arg, void **res)
{
    stress s = {0};
    /* Sanitizers cannot afford thousands of fibers at once (TSan: ~770 KiB
     * each): fewer drivers, more rounds, about the same number of calls. */
    s.ndrivers = SCALED(2000);
    s.rounds = WF_TEST_SCALE > 1 ? 4 * WF_TEST_SCALE : 8;
    s.drivers = malloc(sizeof *s.drivers * (size_t)s.ndrivers);
    for (int i = 0; i < s.ndrivers; i++)
        CHECK_EQ(wf_spawn(&s.drivers[i], driver, &s, NULL), 0);
    /* Chaos starts once every driver runs (a driver cancelled before it
     * ever ran would simply never run). */
    CHECK(wait_count(&s.drivers_started, s.ndrivers, LONG_NS));
    wf_task_t ch[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wf_spawn(&ch[i], chaos, &s, NULL), 0);
    /* Wait for every driver without consuming (chaos still names them). */
    CHECK_EQ(wf_wait(s.drivers, (size_t)s.ndrivers, WF_ALL_COMPLETED, WF_FOREVER, NULL), s.ndrivers);
    atomic_store(&s.stop_chaos, 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wf_join(ch[i], NULL, NULL), 0);
    for (int i = 0; i < s.ndrivers; i++) {
        int st = 1;
        CHECK_EQ(wf_join(s.drivers[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
    /* Children detached by fail-fast gathers end once their gates opened;
     * then every child is accounted for exactly once. */
    long total = atomic_load(&s.spawned);
    int64_t deadline = wf_deadline_in(LONG_NS);
    while (atomic_load(&s.ended) + atomic_load(&s.dropped) < total && wf_now() < deadline)
        wf_sleep(WF_NSEC_PER_MSEC);
    CHECK_EQ(atomic_load(&s.ended) + atomic_load(&s.dropped), total);
    long ops = atomic_load(&s.gathers) + atomic_load(&s.waits) + atomic_load(&s.wait_fors) +
               atomic_load(&s.iters) + atomic_load(&s.groups);
    CHECK_EQ(ops, (long)s.ndrivers * s.rounds);
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr,
                "stress: %ld children (%ld ran, %ld dropped); %ld gathers, %ld waits, %ld wait_fors, "
                "%ld as_completed, %ld groups; %ld cancellations of drivers\n",
                total, atomic_load(&s.ended), atomic_load(&s.dropped), atomic_load(&s.gathers),
                atomic_load(&s.waits), atomic_load(&s.wait_fors), atomic_load(&s.iters),
                atomic_load(&s.groups), atomic_load(&s.driver_cancels));
    free(s.drivers);
    return 0;
}

static void test_stress(void **state)
{
    run_main(4, m_stress, NULL);
}

static void test_stress_2(void **state)
{
    run_main(2, m_stress, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_stress_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
