/* test_park.c - the one wait mechanism, tested to exhaustion.
 *
 * Waiter fibers park on a shared wait list with random deadlines (none,
 * already past, microseconds); waker fibers wake them one at a time;
 * canceller fibers cancel them at random. Every park must end for exactly
 * one reason, and the books must balance exactly:
 *   - WOKEN returns       == wakes the wakers won (no lost, no double wake);
 *   - CANCELLED returns   == cancel requests made (each one delivered once,
 *                            since the waiters withdraw each after seeing it);
 *   - every waiter finishes all its parks (nobody is left parked).
 */
#include "common.h"
#include "park.h"
#include "runtime.h"

#include <sched.h>

/* In a loop that waits for a fiber pinned to another worker: every 256th
 * look gives the CPU away (sched_yield). On a loaded machine the other
 * worker's thread may be waiting for this very CPU, and a spin that never
 * lets go then costs a time slice per round (test_cross_worker_pingpong
 * took 132 s instead of 1 beside one CPU-bound process). */
static inline void let_go(unsigned *looks)
{
    if (++*looks % 256 == 0)
        sched_yield();
}

typedef struct {
    wf__spinlock lock;
    wf__link list;
    _Atomic long woken, timedout, cancelled; /* as seen by waiters */
    _Atomic long wakes_won;                  /* as counted by wakers */
    _Atomic long cancels;                    /* requests that returned 0 */
    _Atomic long waiters_started, waiters_done;
    _Atomic long data_ok, data_bad;
    long nwaiters;
    long parks_each;
    wf_task_t *waiters;
    /* Per waiter: the canceller cancels only a waiter that has not left,
     * and a waiter leaves only with no request pending, both under gate. */
    wf__spinlock *gate;
    bool *left;
} park_world;

typedef struct {
    park_world *pw;
    long idx;
} waiter_arg;

#define MIN_CANCELS 20

static int waiter(void *arg, void **res)
{
    park_world *pw = ((waiter_arg *)arg)->pw;
    long me = ((waiter_arg *)arg)->idx;
    wf__task *self = wf__current();
    uint64_t rnd = 0x9E3779B97F4A7C15ull ^ (uint64_t)wf_self();
    long parks = 0;
    atomic_fetch_add(&pw->waiters_started, 1);
    /* Keep parking until this waiter's share is done, every request made
     * of it has been seen, and the cancellers have made enough requests
     * for the test to mean something. */
    for (;;) {
        if (parks >= pw->parks_each && atomic_load(&pw->cancels) >= MIN_CANCELS) {
            wf__spin_lock(&pw->gate[me]);
            bool done = wf_cancelling(wf_self()) == 0;
            pw->left[me] = done;
            wf__spin_unlock(&pw->gate[me]);
            if (done)
                break;
        }
        int64_t deadline;
        switch (test_rand(&rnd) % 4) {
        case 0:
            deadline = WF_FOREVER;
            break;
        case 1:
            deadline = 0; /* already past: decided by the waiter itself */
            break;
        default:
            deadline = wf_deadline_in((int64_t)(test_rand(&rnd) % 50) * WF_NSEC_PER_USEC);
        }
        wf__waitnode node;
        node.task = self;
        node.data = NULL;
        wf__spin_lock(&pw->lock);
        node.seq = wf__park_begin(self, 0);
        wf__list_push_back(&pw->list, &node.link);
        wf__spin_unlock(&pw->lock);

        unsigned r = wf__park_commit(self, node.seq, deadline);

        if (r != WF__R_WOKEN) {
            wf__spin_lock(&pw->lock);
            if (wf__link_linked(&node.link))
                wf__list_unlink(&node.link);
            wf__spin_unlock(&pw->lock);
        }
        switch (r) {
        case WF__R_WOKEN:
            atomic_fetch_add(&pw->woken, 1);
            if (node.data == (void *)pw)
                atomic_fetch_add(&pw->data_ok, 1);
            else
                atomic_fetch_add(&pw->data_bad, 1);
            break;
        case WF__R_TIMEDOUT:
            atomic_fetch_add(&pw->timedout, 1);
            break;
        case WF__R_CANCELLED:
            atomic_fetch_add(&pw->cancelled, 1);
            CHECK(wf_uncancel() >= 0);
            break;
        default:
            CHECK(!"a park ended for no known reason");
        }
        parks++;
    }
    atomic_fetch_add(&pw->waiters_done, 1);
    return 0;
}

static int waker(void *arg, void **res)
{
    park_world *pw = arg;
    while (atomic_load(&pw->waiters_done) < pw->nwaiters) {
        wf__task *q = NULL;
        wf__spin_lock(&pw->lock);
        wf__waitnode *nd = wf__wake_one(&pw->list, pw, &q);
        wf__spin_unlock(&pw->lock);
        if (q)
            wf__ready(q);
        if (nd)
            atomic_fetch_add(&pw->wakes_won, 1);
        else
            wf_yield();
    }
    return 0;
}

static int canceller(void *arg, void **res)
{
    park_world *pw = arg;
    uint64_t rnd = 12345 + (uint64_t)wf_self();
    /* A task cancelled before it first runs never runs: let them all start. */
    while (atomic_load(&pw->waiters_started) < pw->nwaiters)
        wf_yield();
    while (atomic_load(&pw->waiters_done) < pw->nwaiters) {
        long v = (long)(test_rand(&rnd) % (uint64_t)pw->nwaiters);
        wf__spin_lock(&pw->gate[v]);
        if (!pw->left[v]) {
            CHECK_EQ(wf_cancel(pw->waiters[v]), 0);
            atomic_fetch_add(&pw->cancels, 1);
        }
        wf__spin_unlock(&pw->gate[v]);
        for (int i = 0; i < 20; i++)
            wf_yield();
    }
    return 0;
}

static int m_park_storm(void *arg, void **res)
{
    park_world pw;
    memset(&pw, 0, sizeof pw);
    wf__spin_init(&pw.lock);
    wf__list_init(&pw.list);
    pw.nwaiters = WF_TEST_SANITIZED ? 24 : 64;
    pw.parks_each = SCALED(4000);
    pw.waiters = calloc((size_t)pw.nwaiters, sizeof *pw.waiters);
    pw.gate = calloc((size_t)pw.nwaiters, sizeof *pw.gate);
    pw.left = calloc((size_t)pw.nwaiters, sizeof *pw.left);
    waiter_arg *wa = calloc((size_t)pw.nwaiters, sizeof *wa);
    for (long i = 0; i < pw.nwaiters; i++) {
        wa[i].pw = &pw;
        wa[i].idx = i;
        CHECK_EQ(wf_spawn(&pw.waiters[i], waiter, &wa[i], NULL), 0);
    }
    wf_task_t wk[4], cn[2];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(wf_spawn(&wk[i], waker, &pw, NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(wf_spawn(&cn[i], canceller, &pw, NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(wf_join(cn[i], NULL, NULL), 0);
    /* Waiters finish their parks and drain the requests still pending. */
    for (long i = 0; i < pw.nwaiters; i++) {
        int st = -1;
        CHECK_EQ(wf_join(pw.waiters[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(wf_join(wk[i], NULL, NULL), 0);

    long total = atomic_load(&pw.woken) + atomic_load(&pw.timedout) + atomic_load(&pw.cancelled);
    CHECK(total >= pw.nwaiters * pw.parks_each);
    CHECK_EQ(atomic_load(&pw.woken), atomic_load(&pw.wakes_won));
    CHECK_EQ(atomic_load(&pw.cancelled), atomic_load(&pw.cancels));
    CHECK_EQ(atomic_load(&pw.data_bad), 0);
    CHECK_EQ(atomic_load(&pw.data_ok), atomic_load(&pw.woken));
    CHECK(wf__list_empty(&pw.list));
    /* Every reason must actually have happened, or the test proves little. */
    CHECK(atomic_load(&pw.woken) > 0);
    CHECK(atomic_load(&pw.timedout) > 0);
    CHECK(atomic_load(&pw.cancelled) > 0);
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr, "park storm: woken %ld timedout %ld cancelled %ld\n", atomic_load(&pw.woken),
                atomic_load(&pw.timedout), atomic_load(&pw.cancelled));
    free(pw.waiters);
    free(pw.gate);
    free(wa);
    free(pw.left);
    return 0;
}

static void test_park_storm(void **state)
{
    run_main(0, m_park_storm, NULL);
}

static void test_park_storm_many_workers(void **state)
{
    /* More workers than cores: preemption in the middle of every step. */
    run_main(6, m_park_storm, NULL);
}

/* A wait decided before the fiber switches away must not switch at all, and
 * one decided while it switches must be requeued by the scheduler: both are
 * exercised by a waker on another worker racing a fiber that parks with no
 * deadline, many times. Checked by exact ping-pong counts. */
typedef struct {
    wf__spinlock lock;
    wf__link list[2];
    _Atomic long rounds[2];
    long n;
} pingpong;

static int pp_side(void *arg, void **res)
{
    pingpong *pp = (pingpong *)((uintptr_t)arg & ~(uintptr_t)1);
    int me = (int)((uintptr_t)arg & 1);
    wf__task *self = wf__current();
    for (long i = 0; i < pp->n; i++) {
        if (me == 1 || i > 0) {
            /* wait for the token */
            wf__waitnode node = {.task = self, .data = NULL};
            wf__spin_lock(&pp->lock);
            node.seq = wf__park_begin(self, WF__PARK_NOCANCEL);
            wf__list_push_back(&pp->list[me], &node.link);
            wf__spin_unlock(&pp->lock);
            CHECK_EQ(wf__park_commit(self, node.seq, WF_FOREVER), WF__R_WOKEN);
        }
        atomic_fetch_add(&pp->rounds[me], 1);
        /* pass the token: wake the other side once it is listed */
        unsigned looks = 0;
        for (;;) {
            wf__task *q = NULL;
            wf__spin_lock(&pp->lock);
            wf__waitnode *nd = wf__wake_one(&pp->list[1 - me], NULL, &q);
            wf__spin_unlock(&pp->lock);
            if (q)
                wf__ready(q);
            if (nd)
                break;
            if (me == 1 && i == pp->n - 1)
                break; /* side 0 is done waiting */
            wf_yield();
            let_go(&looks);
        }
    }
    return 0;
}

static int m_pingpong(void *arg, void **res)
{
    pingpong pp;
    memset(&pp, 0, sizeof pp);
    wf__spin_init(&pp.lock);
    wf__list_init(&pp.list[0]);
    wf__list_init(&pp.list[1]);
    pp.n = SCALED(20000);
    wf_spawn_opts_t o0 = WF_SPAWN_OPTS_INIT, o1 = WF_SPAWN_OPTS_INIT;
    o0.worker = 0;
    o1.worker = wf_workers() > 1 ? 1 : 0;
    wf_task_t a, b;
    CHECK_EQ(wf_spawn(&a, pp_side, (void *)((uintptr_t)&pp | 0), &o0), 0);
    CHECK_EQ(wf_spawn(&b, pp_side, (void *)((uintptr_t)&pp | 1), &o1), 0);
    CHECK_EQ(wf_join(a, NULL, NULL), 0);
    CHECK_EQ(wf_join(b, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&pp.rounds[0]), pp.n);
    CHECK_EQ(atomic_load(&pp.rounds[1]), pp.n);
    return 0;
}

static void test_cross_worker_pingpong(void **state)
{
    run_main(2, m_pingpong, NULL);
}

/* NOCANCEL waits ignore cancellation; the request stays pending. */
typedef struct {
    wf__spinlock lock;
    wf__link list;
    unsigned reason;
    int cancelling_after, sleep_after;
} nocancel_probe;

static int nocancel_waiter(void *arg, void **res)
{
    nocancel_probe *p = arg;
    wf__task *self = wf__current();
    wf__waitnode node = {.task = self, .data = NULL};
    wf__spin_lock(&p->lock);
    node.seq = wf__park_begin(self, WF__PARK_NOCANCEL);
    wf__list_push_back(&p->list, &node.link);
    wf__spin_unlock(&p->lock);
    p->reason = wf__park_commit(self, node.seq, WF_FOREVER);
    p->cancelling_after = wf_cancelling(wf_self());
    /* The next ordinary wait sees the pending request. */
    p->sleep_after = wf_sleep(WF_NSEC_PER_SEC);
    return 0;
}

static int m_nocancel(void *arg, void **res)
{
    nocancel_probe p;
    memset(&p, 0, sizeof p);
    wf__spin_init(&p.lock);
    wf__list_init(&p.list);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, nocancel_waiter, &p, NULL), 0);
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(t), 0);
    /* The cancel did not end the wait: it is still parked on our list. */
    for (int i = 0; i < 100; i++)
        wf_yield();
    CHECK_EQ(wf_task_state(t), WF_TASK_PARKED);
    wf__task *q = NULL;
    wf__spin_lock(&p.lock);
    CHECK(wf__wake_one(&p.list, NULL, &q) != NULL);
    wf__spin_unlock(&p.lock);
    if (q)
        wf__ready(q);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(p.reason, WF__R_WOKEN);
    CHECK_EQ(p.cancelling_after, 1);
    CHECK_EQ(p.sleep_after, -ECANCELED);
    return 0;
}

static void test_nocancel(void **state)
{
    run_main(0, m_nocancel, NULL);
}

/* A cancel racing the park itself, with nobody else to end the wait: a
 * waiter on worker 0 parks forever on a list nobody wakes, round after
 * round, while a canceller on worker 1 cancels it after a random delay, so
 * that requests land before park_begin, between it and the switch, during
 * the switch and settle, and after the task is parked. A request that both
 * the commit's early-out and the settle (park.h, "NO CANCEL IS LOST") miss
 * leaves the waiter parked: the round times out. */
typedef struct {
    wf_task_t waiter;
    long rounds;
    _Atomic long announced, finished; /* rounds the waiter began / ended */
    _Atomic long wrong;               /* a park that ended otherwise */
} cancel_race;

static int race_waiter(void *arg, void **res)
{
    cancel_race *cr = arg;
    wf__task *self = wf__current();
    wf__spinlock lock = WF__SPINLOCK_INIT;
    wf__link list;
    wf__list_init(&list);
    for (long k = 1; k <= cr->rounds; k++) {
        atomic_store(&cr->announced, k);
        wf__waitnode node = {.task = self, .data = NULL};
        wf__spin_lock(&lock);
        node.seq = wf__park_begin(self, 0);
        wf__list_push_back(&list, &node.link);
        wf__spin_unlock(&lock);
        unsigned r = wf__park_commit(self, node.seq, WF_FOREVER);
        wf__spin_lock(&lock);
        if (wf__link_linked(&node.link))
            wf__list_unlink(&node.link);
        wf__spin_unlock(&lock);
        if (r != WF__R_CANCELLED)
            atomic_fetch_add(&cr->wrong, 1);
        CHECK_EQ(wf_uncancel(), 0);
        atomic_store(&cr->finished, k);
    }
    return 0;
}

static int race_canceller(void *arg, void **res)
{
    cancel_race *cr = arg;
    uint64_t rnd = 0x2545F4914F6CDD1Dull;
    for (long k = 1; k <= cr->rounds; k++) {
        unsigned looks = 0;
        while (atomic_load(&cr->announced) < k)
            let_go(&looks);
        for (unsigned n = (unsigned)(test_rand(&rnd) % 512); n; n--)
            atomic_signal_fence(memory_order_seq_cst);
        CHECK_EQ(wf_cancel(cr->waiter), 0);
        int64_t give_up = wf_deadline_in(10 * WF_NSEC_PER_SEC);
        while (atomic_load(&cr->finished) < k) {
            let_go(&looks);
            if (wf_now() > give_up) {
                CHECK(!"a cancel racing the park was lost");
                wf_cancel(cr->waiter); /* this one finds it parked: let it end */
                return -1;
            }
        }
    }
    return 0;
}

static int m_cancel_race(void *arg, void **res)
{
    cancel_race cr;
    memset(&cr, 0, sizeof cr);
    cr.rounds = SCALED(40000);
    wf_spawn_opts_t o0 = WF_SPAWN_OPTS_INIT, o1 = WF_SPAWN_OPTS_INIT;
    o0.worker = 0;
    o1.worker = 1;
    wf_task_t c;
    CHECK_EQ(wf_spawn(&cr.waiter, race_waiter, &cr, &o0), 0);
    CHECK_EQ(wf_spawn(&c, race_canceller, &cr, &o1), 0);
    int st = -1;
    CHECK_EQ(wf_join(c, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_join(cr.waiter, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(atomic_load(&cr.wrong), 0);
    return 0;
}

static void test_cancel_race(void **state)
{
    run_main(2, m_cancel_race, NULL);
}

/* Direct hand-off: two fibers pass a token by switching straight to each
 * other (wf__park_commit_handoff), never through a run queue. Exact counts,
 * and both must stay on one worker throughout. */
typedef struct {
    wf__spinlock lock;
    wf__waitnode *waiting; /* the side parked for the token, if any */
    long n;
    _Atomic long hops;
    _Atomic long moved; /* a side found itself on another worker */
} handoff_pp;

static int handoff_side(void *arg, void **res)
{
    handoff_pp *pp = arg;
    wf__task *self = wf__current();
    int home = wf_worker_index();
    for (long i = 0; i < pp->n; i++) {
        wf__waitnode node = {.task = self, .data = NULL};
        node.seq = wf__park_begin(self, WF__PARK_NOCANCEL);
        wf__task *target = NULL;
        wf__spin_lock(&pp->lock);
        wf__waitnode *other = pp->waiting;
        pp->waiting = &node;
        if (other && wf__park_decide(other->task, other->seq, WF__R_WOKEN) == WF__DECIDED_PARKED)
            target = other->task;
        wf__spin_unlock(&pp->lock);
        atomic_fetch_add(&pp->hops, 1);
        unsigned r = target ? wf__park_commit_handoff(self, node.seq, WF_FOREVER, target)
                            : wf__park_commit(self, node.seq, WF_FOREVER);
        CHECK_EQ(r, WF__R_WOKEN);
        if (wf_worker_index() != home)
            atomic_fetch_add(&pp->moved, 1);
    }
    /* Release the other side's last wait. */
    wf__spin_lock(&pp->lock);
    wf__waitnode *other = pp->waiting;
    pp->waiting = NULL;
    wf__task *q = NULL;
    if (other && other->task != self &&
        wf__park_decide(other->task, other->seq, WF__R_WOKEN) == WF__DECIDED_PARKED)
        q = other->task;
    wf__spin_unlock(&pp->lock);
    if (q)
        wf__ready(q);
    return 0;
}

static int m_handoff(void *arg, void **res)
{
    handoff_pp pp;
    memset(&pp, 0, sizeof pp);
    wf__spin_init(&pp.lock);
    pp.n = SCALED(200000);
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = 0;
    wf_task_t a, b;
    CHECK_EQ(wf_spawn(&a, handoff_side, &pp, &o), 0);
    CHECK_EQ(wf_spawn(&b, handoff_side, &pp, &o), 0);
    CHECK_EQ(wf_join(a, NULL, NULL), 0);
    CHECK_EQ(wf_join(b, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&pp.hops), 2 * pp.n);
    CHECK_EQ(atomic_load(&pp.moved), 0);
    return 0;
}

static void test_handoff_pingpong(void **state)
{
    run_main(2, m_handoff, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_park_storm),
        cmocka_unit_test(test_park_storm_many_workers),
        cmocka_unit_test(test_cross_worker_pingpong),
        cmocka_unit_test(test_nocancel),
        cmocka_unit_test(test_handoff_pingpong),
        cmocka_unit_test(test_cancel_race),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
