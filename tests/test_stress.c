/* test_stress.c - hundreds of thousands of fibers on every worker doing
 * random yields, sleeps, spawns, joins (with and without deadlines),
 * cancels and detaches, with every count checked exactly.
 *
 * Each task's outcome is predictable from what happened to it: a task that
 * was never cancelled returns the sum of its children's values plus its own
 * id-derived value; a cancelled task returns either that (if the cancel came
 * after its last wait) or -ECANCELED, and never anything else. Totals of
 * tasks started, finished, joined and detached must all balance.
 */
#include "common.h"

typedef struct {
    _Atomic long spawned, started, finished, joined, detached;
    _Atomic long cancel_requests, cancelled_outcomes, wrong;
    _Atomic long live, max_live;
    long budget; /* tasks the whole run may spawn */
    int max_depth;
} world;

typedef struct {
    world *w;
    uint64_t seed;
    int depth;
} node_arg;

static int node(void *arg, void **res);

static int spawn_child(world *w, uint64_t seed, int depth, wf_task_t *out, node_arg **na)
{
    if (atomic_fetch_add(&w->spawned, 1) >= w->budget) {
        atomic_fetch_sub(&w->spawned, 1);
        return -EAGAIN;
    }
    *na = malloc(sizeof **na);
    (*na)->w = w;
    (*na)->seed = seed;
    (*na)->depth = depth;
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.drop = free; /* cancelled before it ran: the argument is freed */
    int e = wf_spawn(out, node, *na, &o);
    if (e) {
        free(*na);
        atomic_fetch_sub(&w->spawned, 1);
    }
    return e;
}

/* The value a task returns when not cancelled: its seed's low bits. */
static inline long own_value(uint64_t seed)
{
    return (long)(seed & 0xff);
}

static int node(void *arg, void **res)
{
    node_arg *na = arg;
    world *w = na->w;
    uint64_t rnd = na->seed, seed = na->seed;
    int depth = na->depth;
    free(na);
    atomic_fetch_add(&w->started, 1);
    long live = atomic_fetch_add(&w->live, 1) + 1, m = atomic_load(&w->max_live);
    while (live > m && !atomic_compare_exchange_weak(&w->max_live, &m, live)) {
    }

    long value = own_value(seed);
    bool was_cancelled = false;
    enum { MAXK = 8 };
    wf_task_t kids[MAXK];
    uint64_t kid_seed[MAXK];
    int nk = 0;
    int steps = 2 + (int)(test_rand(&rnd) % 6);
    for (int s = 0; s < steps && !was_cancelled; s++) {
        int e = 0;
        switch (test_rand(&rnd) % 8) {
        case 0:
        case 1:
            e = wf_yield();
            break;
        case 2:
            e = wf_sleep((int64_t)(test_rand(&rnd) % 200) * WF_NSEC_PER_USEC);
            break;
        case 3:
        case 4:
            if (depth < w->max_depth && nk < MAXK) {
                node_arg *cna;
                uint64_t ks = test_rand(&rnd) | 1;
                if (spawn_child(w, ks, depth + 1, &kids[nk], &cna) == 0)
                    kid_seed[nk++] = ks;
            }
            break;
        case 5:
            /* Cancel one of our children (it may already be done). */
            if (nk) {
                int k = (int)(test_rand(&rnd) % (uint64_t)nk);
                int c = wf_cancel(kids[k]);
                if (c == 0)
                    atomic_fetch_add(&w->cancel_requests, 1);
                else if (c != -EALREADY)
                    atomic_fetch_add(&w->wrong, 1);
            }
            break;
        case 6:
            /* Join the newest child with a short deadline. */
            if (nk) {
                int st;
                void *rv;
                int r = wf_join_until(kids[nk - 1], wf_deadline_in(50 * WF_NSEC_PER_USEC), &st, &rv);
                if (r == 0) {
                    atomic_fetch_add(&w->joined, 1);
                    if (st == 0)
                        value += (long)(intptr_t)rv;
                    else if (st == -ECANCELED)
                        atomic_fetch_add(&w->cancelled_outcomes, 1);
                    else
                        atomic_fetch_add(&w->wrong, 1);
                    nk--;
                } else if (r == -ECANCELED) {
                    e = r;
                } else if (r != -ETIMEDOUT) {
                    atomic_fetch_add(&w->wrong, 1);
                }
            }
            break;
        case 7:
            /* Detach the oldest child: it runs on, counted when it ends. */
            if (nk) {
                if (wf_detach(kids[0]) == 0)
                    atomic_fetch_add(&w->detached, 1);
                else
                    atomic_fetch_add(&w->wrong, 1);
                memmove(kids, kids + 1, sizeof kids[0] * (size_t)(nk - 1));
                memmove(kid_seed, kid_seed + 1, sizeof kid_seed[0] * (size_t)(nk - 1));
                nk--;
            }
            break;
        }
        if (e == -ECANCELED)
            was_cancelled = true;
        else if (e != 0)
            atomic_fetch_add(&w->wrong, 1);
    }
    /* Join every remaining child. A cancelled parent cancels its children
     * first (structured, like a task group) and still joins them: with its
     * own cancellation pending, each join would fail at once, so it
     * withdraws the request (and does so again if another arrives). */
    bool kids_cancelled = false;
    for (int k = 0; k < nk; k++) {
        if (was_cancelled && !kids_cancelled) {
            for (int j = k; j < nk; j++)
                if (wf_cancel(kids[j]) == 0)
                    atomic_fetch_add(&w->cancel_requests, 1);
            kids_cancelled = true;
        }
        while (was_cancelled && wf_uncancel() > 0) {
        }
        int st;
        void *rv;
        int r = wf_join(kids[k], &st, &rv);
        if (r == -ECANCELED) {
            was_cancelled = true;
            k--; /* retry this child after cancelling the rest */
            continue;
        }
        if (r != 0) {
            atomic_fetch_add(&w->wrong, 1);
            continue;
        }
        atomic_fetch_add(&w->joined, 1);
        if (st == 0)
            value += (long)(intptr_t)rv;
        else if (st == -ECANCELED)
            atomic_fetch_add(&w->cancelled_outcomes, 1);
        else
            atomic_fetch_add(&w->wrong, 1);
    }
    atomic_fetch_sub(&w->live, 1);
    atomic_fetch_add(&w->finished, 1);
    if (was_cancelled)
        return -ECANCELED;
    *res = (void *)(intptr_t)value;
    return 0;
}

typedef struct {
    long budget;
    int roots;
    int max_depth;
} plan;

static int m_stress(void *arg, void **res)
{
    plan *p = arg;
    world w;
    memset(&w, 0, sizeof w);
    w.budget = p->budget;
    w.max_depth = p->max_depth;
    uint64_t rnd = 0xC0FFEE;
    long rounds = 0;
    /* Waves of root tasks until the budget is spent. */
    while (atomic_load(&w.spawned) < w.budget) {
        wf_task_t *roots = calloc((size_t)p->roots, sizeof *roots);
        int n = 0;
        for (int i = 0; i < p->roots; i++) {
            node_arg *na;
            if (spawn_child(&w, test_rand(&rnd) | 1, 0, &roots[n], &na) == 0)
                n++;
        }
        for (int i = 0; i < n; i++) {
            int st;
            CHECK_EQ(wf_join(roots[i], &st, NULL), 0);
            atomic_fetch_add(&w.joined, 1);
            CHECK(st == 0 || st == -ECANCELED);
            if (st == -ECANCELED)
                atomic_fetch_add(&w.cancelled_outcomes, 1);
        }
        free(roots);
        rounds++;
    }
    /* Detached tasks finish on their own: wait for the books to balance. */
    int64_t limit = wf_deadline_in(120 * WF_NSEC_PER_SEC);
    while (atomic_load(&w.finished) + 0 < atomic_load(&w.started) && wf_now() < limit)
        wf_sleep(WF_NSEC_PER_MSEC);
    long spawned = atomic_load(&w.spawned), started = atomic_load(&w.started);
    long finished = atomic_load(&w.finished), joined = atomic_load(&w.joined);
    long detached = atomic_load(&w.detached);
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr,
                "stress: spawned %ld started %ld finished %ld joined %ld detached %ld cancels %ld "
                "cancelled %ld max_live %ld\n",
                spawned, started, finished, joined, detached, atomic_load(&w.cancel_requests),
                atomic_load(&w.cancelled_outcomes), atomic_load(&w.max_live));
    CHECK_EQ(atomic_load(&w.wrong), 0);
    CHECK(spawned >= w.budget - p->roots);
    /* Every spawned task was either joined or detached, exactly once. */
    CHECK_EQ(joined + detached, spawned);
    /* A task cancelled before it started never ran: started <= spawned, and
     * every cancelled outcome is explained by a cancel request. */
    CHECK(started <= spawned);
    CHECK_EQ(finished, started);
    CHECK(atomic_load(&w.cancelled_outcomes) <= atomic_load(&w.cancel_requests));
    CHECK(atomic_load(&w.cancel_requests) > 0);
    CHECK_EQ(atomic_load(&w.live), 0);
    return 0;
}

static void test_stress_default_workers(void **state)
{
    plan p = {.budget = SCALED(300000), .roots = WF_TEST_SANITIZED ? 100 : 400, .max_depth = 5};
    run_main(0, m_stress, &p);
}

static void test_stress_many_workers(void **state)
{
    /* More workers than cores: every step can be preempted by the OS. */
    plan p = {.budget = SCALED(100000), .roots = WF_TEST_SANITIZED ? 100 : 300, .max_depth = 6};
    run_main(5, m_stress, &p);
}

static void test_stress_one_worker(void **state)
{
    plan p = {.budget = SCALED(50000), .roots = 200, .max_depth = 4};
    run_main(1, m_stress, &p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_default_workers),
        cmocka_unit_test(test_stress_many_workers),
        cmocka_unit_test(test_stress_one_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
