/* test_time.c - the clock, sleeping, deadlines, callback timers, and timers
 * that stay on time while a worker is busy.
 *
 * meson runs it twice: as `time`, and as `time-pwait` with
 * WF_POLLER_NO_PWAIT2=1, where the poller sleeps in epoll_pwait with
 * millisecond timeouts (rounded up: nothing may fire early). */
#include "common.h"
#include "poller.h"
#include "runtime.h"

#include <pthread.h>
#include <time.h>

static void test_clock(void **state)
{
    int64_t a = wf_now(), b = wf_now();
    assert_true(a > 0 && b >= a);
    assert_true(wf_deadline_in(-5) == WF_FOREVER);
    int64_t d = wf_deadline_in(WF_NSEC_PER_SEC);
    assert_true(d >= b + WF_NSEC_PER_SEC);
    assert_true(wf_deadline_in(INT64_MAX) == INT64_MAX); /* saturates */
}

/* --- sleep ----------------------------------------------------------------- */

static int m_sleep(void *arg, void **res)
{
    int64_t t0 = wf_now();
    CHECK_EQ(wf_sleep(5 * WF_NSEC_PER_MSEC), 0);
    CHECK(wf_now() - t0 >= 5 * WF_NSEC_PER_MSEC); /* never early */
    t0 = wf_now();
    CHECK_EQ(wf_sleep_until(t0 + 2 * WF_NSEC_PER_MSEC), 0);
    CHECK(wf_now() >= t0 + 2 * WF_NSEC_PER_MSEC);
    /* Past deadlines and non-positive durations return at once. */
    CHECK_EQ(wf_sleep_until(0), 0);
    CHECK_EQ(wf_sleep_until(wf_now() - WF_NSEC_PER_SEC), 0);
    CHECK_EQ(wf_sleep(0), 0);
    CHECK_EQ(wf_sleep(-100), 0);
    CHECK_EQ(wf_sleep_until(WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_sleep_until(-2), -EINVAL);
    return 0;
}

static void test_sleep(void **state)
{
    run_main(0, m_sleep, NULL);
}

/* Many sleepers with distinct deadlines: each wakes at or after its own. */
typedef struct {
    int64_t deadline;
    int64_t woke;
} sleeper_rec;

static int sleep_rec(void *arg, void **res)
{
    sleeper_rec *r = arg;
    int e = wf_sleep_until(r->deadline);
    r->woke = wf_now();
    return e;
}

static int m_many_sleepers(void *arg, void **res)
{
    enum { N = 2000 };
    sleeper_rec *r = calloc(N, sizeof *r);
    wf_task_t *t = calloc(N, sizeof *t);
    int64_t base = wf_now() + 20 * WF_NSEC_PER_MSEC;
    uint64_t rnd = 42;
    for (int i = 0; i < N; i++) {
        /* Spread across every wheel level in use: us to 200 ms. */
        int64_t off = (int64_t)(test_rand(&rnd) % 200000) * WF_NSEC_PER_USEC;
        if (i % 10 == 0)
            off = (int64_t)(test_rand(&rnd) % 1000); /* same slot, ns apart */
        r[i].deadline = base + off;
        CHECK_EQ(wf_spawn(&t[i], sleep_rec, &r[i], NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        int st = -1;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
        CHECK(r[i].woke >= r[i].deadline);
    }
    free(r);
    free(t);
    return 0;
}

static void test_many_sleepers(void **state)
{
    run_main(0, m_many_sleepers, NULL);
}

/* A long sleep is cut short by cancellation. */
static int long_sleep(void *arg, void **res)
{
    return wf_sleep(3600 * WF_NSEC_PER_SEC);
}

static int m_sleep_cancel(void *arg, void **res)
{
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, long_sleep, NULL, NULL), 0);
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    int64_t t0 = wf_now();
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK(wf_now() - t0 < 30 * WF_NSEC_PER_SEC);
    return 0;
}

static void test_sleep_cancel(void **state)
{
    run_main(0, m_sleep_cancel, NULL);
}

/* Sleeps with sub-millisecond remainders are never early, and the poller
 * sleeps through them instead of spinning: a millisecond timeout rounded
 * down (the fallback's trap) would make it spin until each is due, and a
 * failing epoll_pwait2 retried in a loop would burn its core throughout. */
static int64_t thread_cpu_ns(pthread_t th)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(th, &cid) != 0 || clock_gettime(cid, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * WF_NSEC_PER_SEC + ts.tv_nsec;
}

static int m_short_sleeps(void *arg, void **res)
{
    pthread_t poller = wf__tls_runtime()->poller.thread;
    int64_t cpu0 = thread_cpu_ns(poller), t0 = wf_now();
    CHECK(cpu0 >= 0);
    uint64_t rnd = 7;
    for (int i = 0; i < 100; i++) {
        /* 1 ns to 1.9 ms: every remainder a ms-rounding can get wrong. */
        int64_t d = i < 10 ? i + 1 : (int64_t)(test_rand(&rnd) % 1900000) + 1;
        int64_t dl = wf_now() + d;
        CHECK_EQ(wf_sleep_until(dl), 0);
        CHECK(wf_now() >= dl);
    }
    /* And one long sleep with every worker idle. */
    CHECK_EQ(wf_sleep(100 * WF_NSEC_PER_MSEC), 0);
    int64_t cpu = thread_cpu_ns(poller) - cpu0, wall = wf_now() - t0;
    fprintf(stderr, "poller CPU %.1f ms over %.1f ms (uses %s)\n", (double)cpu / 1e6, (double)wall / 1e6,
            wf__poller_uses_pwait2() == 1 ? "epoll_pwait2" : "epoll_pwait");
    /* A spinning poller uses about all of it; a sleeping one a few %. */
    CHECK(cpu < wall / 2);
    return 0;
}

static void test_short_sleeps(void **state)
{
    run_main(0, m_short_sleeps, NULL);
}

/* --- callback timers --------------------------------------------------------- */

typedef struct {
    _Atomic int fired;
    int64_t at;
    int64_t deadline;
    wf_timer_t *self;
    int self_cancel;
    _Atomic int rearms;
} cb_rec;

static void record_cb(void *arg)
{
    cb_rec *r = arg;
    r->at = wf_now();
    if (r->self)
        r->self_cancel = wf_timer_cancel(r->self); /* already fired: -EALREADY */
    atomic_fetch_add(&r->fired, 1);
}

static void rearm_cb(void *arg)
{
    cb_rec *r = arg;
    int n = atomic_fetch_add(&r->rearms, 1) + 1;
    if (n < 5)
        CHECK_EQ(wf_timer_start(r->self, wf_now() + 100 * WF_NSEC_PER_USEC, rearm_cb, r), 0);
    else
        atomic_store(&r->fired, 1);
}

static int m_timers(void *arg, void **res)
{
    wf_timer_t a = WF_TIMER_INIT, b = WF_TIMER_INIT, c = WF_TIMER_INIT;
    cb_rec ra = {0}, rb = {0}, rc = {0};
    CHECK_EQ(wf_timer_cancel(&a), -EALREADY); /* never started */
    CHECK_EQ(wf_timer_start(NULL, 0, record_cb, &ra), -EINVAL);
    CHECK_EQ(wf_timer_start(&a, 0, NULL, &ra), -EINVAL);
    CHECK_EQ(wf_timer_start(&a, -1, record_cb, &ra), -EINVAL);
    CHECK_EQ(wf_timer_cancel(NULL), -EINVAL);

    /* Fires once, not early; cancelling afterwards says -EALREADY. */
    /* Starting an armed timer again is -EBUSY (a far deadline: it cannot
     * fire between the two calls, however slow the machine). */
    CHECK_EQ(wf_timer_start(&a, wf_deadline_in(3600 * WF_NSEC_PER_SEC), record_cb, &ra), 0);
    CHECK_EQ(wf_timer_start(&a, 0, record_cb, &ra), -EBUSY);
    CHECK_EQ(wf_timer_cancel(&a), 0);
    ra.deadline = wf_deadline_in(3 * WF_NSEC_PER_MSEC);
    ra.self = &a;
    CHECK_EQ(wf_timer_start(&a, ra.deadline, record_cb, &ra), 0);
    CHECK(wait_flag(&ra.fired, 10 * WF_NSEC_PER_SEC));
    CHECK(ra.at >= ra.deadline);
    CHECK_EQ(ra.self_cancel, -EALREADY);
    CHECK_EQ(wf_timer_cancel(&a), -EALREADY);

    /* Cancelled before its deadline: never fires. */
    CHECK_EQ(wf_timer_start(&b, wf_deadline_in(3600 * WF_NSEC_PER_SEC), record_cb, &rb), 0);
    CHECK_EQ(wf_timer_cancel(&b), 0);
    CHECK_EQ(wf_timer_cancel(&b), -EALREADY);
    /* Reuse the same storage after cancel, and after firing. */
    CHECK_EQ(wf_timer_start(&b, wf_deadline_in(WF_NSEC_PER_MSEC), record_cb, &rb), 0);
    CHECK(wait_flag(&rb.fired, 10 * WF_NSEC_PER_SEC));
    wf_sleep(30 * WF_NSEC_PER_MSEC);
    CHECK_EQ(atomic_load(&rb.fired), 1);

    /* A callback that re-arms its own timer (a periodic timer). */
    rc.self = &c;
    CHECK_EQ(wf_timer_start(&c, wf_now(), rearm_cb, &rc), 0);
    CHECK(wait_flag(&rc.fired, 10 * WF_NSEC_PER_SEC));
    CHECK_EQ(atomic_load(&rc.rearms), 5);

    /* An already-past deadline fires soon. */
    cb_rec rd = {0};
    wf_timer_t d = WF_TIMER_INIT;
    CHECK_EQ(wf_timer_start(&d, 0, record_cb, &rd), 0);
    CHECK(wait_flag(&rd.fired, 10 * WF_NSEC_PER_SEC));
    return 0;
}

static void test_timers(void **state)
{
    run_main(0, m_timers, NULL);
}

/* Many timers from many fibers: each fires exactly once unless cancelled. */
typedef struct {
    wf_timer_t tm;
    _Atomic int hits;
    bool cancelled;
} tcell;

static void tcell_cb(void *arg)
{
    atomic_fetch_add(&((tcell *)arg)->hits, 1);
}

static int timer_churn(void *arg, void **res)
{
    tcell *cells = arg;
    uint64_t rnd = (uint64_t)wf_self();
    for (int i = 0; i < 200; i++) {
        tcell *c = &cells[i];
        CHECK_EQ(wf_timer_start(&c->tm, wf_deadline_in((int64_t)(test_rand(&rnd) % 3000) * 1000), tcell_cb, c),
                 0);
        if (test_rand(&rnd) % 2) {
            int e = wf_timer_cancel(&c->tm);
            CHECK(e == 0 || e == -EALREADY);
            c->cancelled = e == 0;
        }
        if (i % 16 == 0)
            wf_yield();
    }
    return 0;
}

static int m_timer_churn(void *arg, void **res)
{
    enum { F = 50, PER = 200 };
    tcell *cells = calloc(F * PER, sizeof *cells);
    wf_task_t t[F];
    for (int f = 0; f < F; f++)
        CHECK_EQ(wf_spawn(&t[f], timer_churn, &cells[f * PER], NULL), 0);
    for (int f = 0; f < F; f++)
        CHECK_EQ(wf_join(t[f], NULL, NULL), 0);
    /* Wait for the rest to fire (deadlines within 3 ms), then count. */
    int64_t limit = wf_deadline_in(30 * WF_NSEC_PER_SEC);
    for (int i = 0; i < F * PER; i++) {
        if (cells[i].cancelled)
            continue;
        while (atomic_load(&cells[i].hits) == 0 && wf_now() < limit)
            wf_sleep(100 * WF_NSEC_PER_USEC);
    }
    wf_sleep(10 * WF_NSEC_PER_MSEC);
    for (int i = 0; i < F * PER; i++)
        CHECK_EQ(atomic_load(&cells[i].hits), cells[i].cancelled ? 0 : 1);
    free(cells);
    return 0;
}

static void test_timer_churn(void **state)
{
    run_main(0, m_timer_churn, NULL);
}

/* --- a busy worker does not make timers late ----------------------------------- */

typedef struct {
    _Atomic int busy_started, stop_busy;
    int64_t armed_at, fired_at;
    _Atomic int fired;
    int worker;
} busy_probe;

static void busy_cb(void *arg)
{
    busy_probe *p = arg;
    p->fired_at = wf_now();
    atomic_store(&p->fired, 1);
}

static int hog(void *arg, void **res)
{
    busy_probe *p = arg;
    atomic_store(&p->busy_started, 1);
    /* Never yields: the worker is stuck in this fiber until told. */
    int64_t until = wf_deadline_in(20 * WF_NSEC_PER_SEC);
    while (!atomic_load(&p->stop_busy) && wf_now() < until) {
    }
    return 0;
}

typedef struct {
    busy_probe *p;
    wf_timer_t tm;
} arm_ctx;

static int arm_then_hog(void *arg, void **res)
{
    /* Pinned to worker 0: the timer goes into worker 0's wheel, then this
     * same worker gets stuck in the hog. */
    arm_ctx *a = arg;
    a->p->armed_at = wf_now();
    CHECK_EQ(wf_timer_start(&a->tm, a->p->armed_at + 20 * WF_NSEC_PER_MSEC, busy_cb, a->p), 0);
    return hog(a->p, res);
}

static int m_busy_worker(void *arg, void **res)
{
    busy_probe p = {0};
    arm_ctx a = {.p = &p};
    memset(&a.tm, 0, sizeof a.tm);
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = 0;
    wf_task_t h;
    CHECK_EQ(wf_spawn(&h, arm_then_hog, &a, &o), 0);
    CHECK(wait_flag(&p.busy_started, 10 * WF_NSEC_PER_SEC));
    /* Another thread must fire it while worker 0 is stuck. */
    CHECK(wait_flag(&p.fired, 10 * WF_NSEC_PER_SEC));
    atomic_store(&p.stop_busy, 1);
    CHECK_EQ(wf_join(h, NULL, NULL), 0);
    /* Generous bound: the hog would have held it back 20 s. */
    CHECK(p.fired_at - p.armed_at < 5 * WF_NSEC_PER_SEC);
    return 0;
}

static void test_busy_worker_timers(void **state)
{
    run_main(2, m_busy_worker, NULL);
}

/* The same for a fiber's own sleep: its timer is in the stuck worker's
 * wheel, it is not pinned, so another worker fires the timer and runs it. */
typedef struct {
    busy_probe *p;
    _Atomic int slept;
    int64_t woke_at, start;
} sleep_probe;

static int sleeper_here(void *arg, void **res)
{
    sleep_probe *s = arg;
    /* Get the worker we are on stuck right after we park: the hog is pinned
     * to it, and our timer goes into its wheel. */
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = wf_worker_index();
    wf_task_t h;
    if (wf_spawn(&h, hog, s->p, &o))
        return -ENOMEM;
    *res = (void *)(uintptr_t)h; /* the caller joins the hog */
    s->start = wf_now();
    int e = wf_sleep(20 * WF_NSEC_PER_MSEC);
    s->woke_at = wf_now();
    atomic_store(&s->slept, 1);
    return e;
}

static int m_busy_sleeper(void *arg, void **res)
{
    for (int round = 0; round < 5; round++) {
        busy_probe p = {0};
        sleep_probe s = {.p = &p};
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, sleeper_here, &s, NULL), 0);
        int st = 0;
        void *hog_handle = NULL;
        CHECK_EQ(wf_join(t, &st, &hog_handle), 0);
        atomic_store(&p.stop_busy, 1);
        CHECK_EQ(wf_join((wf_task_t)(uintptr_t)hog_handle, NULL, NULL), 0);
        CHECK_EQ(st, 0);
        /* The hog would have held it 20 s; a few ms is expected. */
        CHECK(s.woke_at - s.start < 5 * WF_NSEC_PER_SEC);
    }
    return 0;
}

static void test_busy_worker_sleeper(void **state)
{
    run_main(2, m_busy_sleeper, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_sleep),
        cmocka_unit_test(test_many_sleepers),
        cmocka_unit_test(test_sleep_cancel),
        cmocka_unit_test(test_short_sleeps),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_timer_churn),
        cmocka_unit_test(test_busy_worker_timers),
        cmocka_unit_test(test_busy_worker_sleeper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
