/* test_pool.c - the thread pool (weft/pool.h): results, saturation under a
 * small cap, cancellation and deadlines while a call runs or waits,
 * abandoned results dropped exactly once, threads named, retired when idle
 * and joined by wf_run (waiting for calls still running), the calls'
 * context (no runtime thread-locals, signals blocked), and storms of many
 * fibers on every worker. Every fd and thread is counted before and after. */
#include "pool_test.h"

#include <signal.h>
#include <stdlib.h>
#include <time.h>

/* --- results ---------------------------------------------------------- */

static int add_one(void *arg, void **res)
{
    *res = (void *)((intptr_t)arg + 1);
    return (int)(intptr_t)arg % 2 ? -EIO : 0;
}

static int m_basic(void *arg, void **res)
{
    for (intptr_t i = 0; i < 100; i++) {
        int st = 1;
        void *rv = NULL;
        CHECK_EQ(wf_to_thread(add_one, (void *)i, &st, &rv), 0);
        CHECK_EQ(st, i % 2 ? -EIO : 0); /* the call's own status comes back */
        CHECK_EQ((intptr_t)rv, i + 1);
    }
    /* NULL status and result are fine. */
    CHECK_EQ(wf_to_thread(add_one, (void *)4, NULL, NULL), 0);
    /* Each class runs calls. */
    for (int c = 0; c < WF_POOL_CLASSES; c++) {
        wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
        o.pool = (wf_pool_class_t)c;
        void *rv = NULL;
        CHECK_EQ(wf_run_in_executor(&o, add_one, (void *)10, NULL, &rv), 0);
        CHECK_EQ((intptr_t)rv, 11);
        wf_pool_stats_t s;
        CHECK_EQ(wf_pool_stats((wf_pool_class_t)c, &s), 0);
        CHECK(s.threads >= 1 && s.threads <= s.limit);
        CHECK(s.peak >= 1);
    }
    return 0;
}

static void test_basic(void **state)
{
    run_counted(NULL, 2, m_basic, NULL);
}

/* --- bad input ------------------------------------------------------------ */

static int m_errors(void *arg, void **res)
{
    CHECK_EQ(wf_to_thread(NULL, NULL, NULL, NULL), -EINVAL);
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    o.pool = (wf_pool_class_t)WF_POOL_CLASSES;
    CHECK_EQ(wf_run_in_executor(&o, add_one, NULL, NULL, NULL), -EINVAL);
    o.pool = (wf_pool_class_t)-1;
    CHECK_EQ(wf_run_in_executor(&o, add_one, NULL, NULL, NULL), -EINVAL);
    o = (wf_offload_opts_t)WF_OFFLOAD_OPTS_INIT;
    o.deadline = -2;
    CHECK_EQ(wf_run_in_executor(&o, add_one, NULL, NULL, NULL), -EINVAL);
    wf_pool_stats_t s;
    CHECK_EQ(wf_pool_stats(WF_POOL_USER, NULL), -EINVAL);
    CHECK_EQ(wf_pool_stats((wf_pool_class_t)WF_POOL_CLASSES, &s), -EINVAL);
    CHECK_EQ(wf_pool_stats(WF_POOL_DNS, &s), 0);
    CHECK_EQ(s.limit, 4);
    CHECK_EQ(s.threads, 0); /* none started before the first call */
    CHECK_EQ(wf_pool_stats(WF_POOL_FILE, &s), 0);
    CHECK_EQ(s.limit, 16);
    CHECK_EQ(wf_pool_stats(WF_POOL_USER, &s), 0);
    CHECK_EQ(s.limit, 64);
    return 0;
}

static void timer_cb(void *arg)
{
    /* A timer callback is not a fiber. */
    _Atomic int *r = arg;
    atomic_store(r, wf_to_thread(add_one, NULL, NULL, NULL));
}

static int m_timer_eperm(void *arg, void **res)
{
    _Atomic int r = 0;
    wf_timer_t tm = WF_TIMER_INIT;
    CHECK_EQ(wf_timer_start(&tm, 0, timer_cb, &r), 0);
    int64_t dl = wf_deadline_in(LONG_NS);
    while (atomic_load(&r) == 0 && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    CHECK_EQ(atomic_load(&r), -EPERM);
    return 0;
}

static void test_errors(void **state)
{
    /* Outside any runtime. */
    assert_int_equal(wf_to_thread(add_one, NULL, NULL, NULL), -EPERM);
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    assert_int_equal(wf_run_in_executor(&o, add_one, NULL, NULL, NULL), -EPERM);
    wf_pool_stats_t s;
    assert_int_equal(wf_pool_stats(WF_POOL_USER, &s), -EPERM);
    run_counted(NULL, 2, m_errors, NULL);
    run_counted(NULL, 1, m_timer_eperm, NULL);
    /* Limits out of range. */
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.pool_user_threads = 1025;
    assert_int_equal(wf_run(&cfg, m_errors, NULL, NULL, NULL), -EINVAL);
    wf_config_init(&cfg);
    cfg.pool_file_threads = 5000;
    assert_int_equal(wf_run(&cfg, m_errors, NULL, NULL, NULL), -EINVAL);
    wf_config_init(&cfg);
    cfg.pool_dns_threads = 1u << 31;
    assert_int_equal(wf_run(&cfg, m_errors, NULL, NULL, NULL), -EINVAL);
}

/* --- saturation ------------------------------------------------------------ */

/* 1,000 calls from 1,000 fibers against a cap of 4: all complete, never
 * more than 4 run at once, and 4 do (each of the first calls waits until
 * it has 3 companions, or for a long time). */
#define SAT_CAP 4

typedef struct {
    _Atomic long inside, max_inside, ran, ok;
    _Atomic int reached;
} sat_ctx;

static int sat_call(void *arg, void **res)
{
    sat_ctx *c = arg;
    long n = atomic_fetch_add(&c->inside, 1) + 1;
    long m = atomic_load(&c->max_inside);
    while (n > m && !atomic_compare_exchange_weak(&c->max_inside, &m, n)) {
    }
    if (n >= SAT_CAP)
        atomic_store(&c->reached, 1);
    /* Wait (on this pool thread) until the cap has been reached once. */
    int64_t dl = wf_deadline_in(LONG_NS);
    while (!atomic_load(&c->reached) && wf_now() < dl) {
        struct timespec ts = {0, 50 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&c->ran, 1);
    atomic_fetch_sub(&c->inside, 1);
    *res = arg;
    return 7;
}

static int sat_fiber(void *arg, void **res)
{
    sat_ctx *c = arg;
    int st = 0;
    void *rv = NULL;
    if (wf_to_thread(sat_call, c, &st, &rv) == 0 && st == 7 && rv == c)
        atomic_fetch_add(&c->ok, 1);
    return 0;
}

static int m_saturation(void *arg, void **res)
{
    enum { N = 1000 };
    sat_ctx c = {0};
    static wf_task_t t[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_spawn(&t[i], sat_fiber, &c, NULL), 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&c.ok), N);
    CHECK_EQ(atomic_load(&c.ran), N);
    CHECK_EQ(atomic_load(&c.max_inside), SAT_CAP);
    CHECK_EQ(atomic_load(&c.inside), 0);
    wf_pool_stats_t s;
    CHECK_EQ(wf_pool_stats(WF_POOL_USER, &s), 0);
    CHECK_EQ(s.limit, SAT_CAP);
    CHECK_EQ(s.peak, SAT_CAP);
    CHECK(s.threads <= SAT_CAP);
    CHECK_EQ(s.running, 0);
    CHECK_EQ(s.queued, 0);
    /* The other classes were never touched. */
    CHECK_EQ(wf_pool_stats(WF_POOL_FILE, &s), 0);
    CHECK_EQ(s.threads, 0);
    return 0;
}

static void test_saturation(void **state)
{
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 4;
    cfg.pool_user_threads = SAT_CAP;
    run_counted(&cfg, 0, m_saturation, NULL);
}

/* --- cancellation and deadlines -------------------------------------------- */

/* What a dropped call leaves behind. */
typedef struct {
    wf_future_t *gate;
    _Atomic int drops;
    _Atomic int drop_status;
    void *_Atomic drop_result;
    _Atomic int entered;
    _Atomic int returned;
} drop_ctx;

static void on_drop(void *arg, int status, void *result)
{
    drop_ctx *d = arg;
    atomic_store(&d->drop_status, status);
    atomic_store(&d->drop_result, result);
    free(result); /* the call's heap result: ASan reports a leak otherwise */
    atomic_fetch_add(&d->drops, 1);
}

/* Waits for the gate, then returns a heap result. */
static int gated_alloc(void *arg, void **res)
{
    drop_ctx *d = arg;
    atomic_store(&d->entered, 1);
    int st = 0;
    wf_future_wait(d->gate, wf_deadline_in(LONG_NS), &st, NULL);
    *res = malloc(64);
    atomic_store(&d->returned, 1);
    return 5;
}

static int caller_cancelled(void *arg, void **res)
{
    drop_ctx *d = arg;
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    o.drop = on_drop;
    void *rv = NULL;
    int r = wf_run_in_executor(&o, gated_alloc, d, NULL, &rv);
    free(rv); /* returned to us (not cancelled): ours to free */
    return r;
}

static int m_cancel_running(void *arg, void **res)
{
    drop_ctx d = {0};
    CHECK_EQ(wf_future_create(&d.gate), 0);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, caller_cancelled, &d, NULL), 0);
    CHECK(wait_flag(&d.entered, LONG_NS)); /* the call runs */
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);              /* returned at once... */
    CHECK_EQ(atomic_load(&d.returned), 0); /* ...while the call still runs */
    CHECK_EQ(atomic_load(&d.drops), 0);
    CHECK_EQ(wf_future_set(d.gate, 0, NULL), 0);
    CHECK(wait_flag(&d.drops, LONG_NS));
    /* The drop got the call's outcome, once. Wait for the pool thread to
     * be done with d (its drop count is its last write). */
    CHECK_EQ(atomic_load(&d.drops), 1);
    CHECK_EQ(atomic_load(&d.drop_status), 5);
    CHECK(atomic_load(&d.drop_result) != NULL);
    wf_future_release(d.gate);
    return 0;
}

static void test_cancel_running(void **state)
{
    run_counted(NULL, 2, m_cancel_running, NULL);
}

/* A call cancelled while it waits for a thread (cap 1, the thread busy)
 * never runs; drop gets -ECANCELED and NULL before the caller returns. */
typedef struct {
    drop_ctx blocker, queued;
    _Atomic int queued_ran;
} queued_ctx;

static int never_runs(void *arg, void **res)
{
    queued_ctx *q = arg;
    atomic_store(&q->queued_ran, 1);
    return 0;
}

static void on_drop_queued(void *arg, int status, void *result)
{
    queued_ctx *q = arg;
    atomic_store(&q->queued.drop_status, status);
    atomic_store(&q->queued.drop_result, result);
    atomic_fetch_add(&q->queued.drops, 1);
}

static int caller_queued(void *arg, void **res)
{
    queued_ctx *q = arg;
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    o.drop = on_drop_queued;
    atomic_store(&q->queued.entered, 1);
    return wf_run_in_executor(&o, never_runs, q, NULL, NULL);
}

static int m_cancel_queued(void *arg, void **res)
{
    queued_ctx q;
    memset(&q, 0, sizeof q);
    CHECK_EQ(wf_future_create(&q.blocker.gate), 0);
    wf_task_t b, t;
    CHECK_EQ(wf_spawn(&b, caller_cancelled, &q.blocker, NULL), 0);
    CHECK(wait_flag(&q.blocker.entered, LONG_NS)); /* the one thread is busy */
    CHECK_EQ(wf_spawn(&t, caller_queued, &q, NULL), 0);
    CHECK(wait_flag(&q.queued.entered, LONG_NS));
    /* Wait until it is queued behind the blocker. */
    wf_pool_stats_t s = {0};
    int64_t dl = wf_deadline_in(LONG_NS);
    while (wf_pool_stats(WF_POOL_USER, &s) == 0 && s.queued < 1 && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    CHECK_EQ(s.queued, 1);
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    /* Dropped before the caller returned, with the caller's error. */
    CHECK_EQ(atomic_load(&q.queued.drops), 1);
    CHECK_EQ(atomic_load(&q.queued.drop_status), -ECANCELED);
    CHECK(atomic_load(&q.queued.drop_result) == NULL);
    CHECK_EQ(wf_pool_stats(WF_POOL_USER, &s), 0);
    CHECK_EQ(s.queued, 0);
    /* Release the blocker; its caller gets the outcome normally. */
    CHECK_EQ(wf_future_set(q.blocker.gate, 0, NULL), 0);
    CHECK_EQ(wf_join(b, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(atomic_load(&q.blocker.drops), 0);
    CHECK_EQ(atomic_load(&q.queued_ran), 0); /* never ran */
    wf_future_release(q.blocker.gate);
    return 0;
}

static void test_cancel_queued(void **state)
{
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    cfg.pool_user_threads = 1;
    run_counted(&cfg, 0, m_cancel_queued, NULL);
}

/* A call's deadline: the caller gets -ETIMEDOUT once it passes; a call
 * that had started runs on and its result is dropped; one still waiting
 * for its thread never runs, and its drop gets -ETIMEDOUT before the
 * caller returns. Which of the two happens depends on when the pool
 * thread gets a CPU, so each attempt checks the books of whichever it was,
 * and attempts go on (deadline 50 ms each) until the started case has been
 * seen. */
typedef struct {
    drop_ctx d;
    int64_t deadline;
    int r;
} deadline_try;

static int caller_deadline(void *arg, void **res)
{
    deadline_try *t = arg;
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    o.drop = on_drop;
    o.deadline = t->deadline;
    t->r = wf_run_in_executor(&o, gated_alloc, &t->d, NULL, NULL);
    CHECK(wf_now() >= o.deadline); /* not early */
    return 0;
}

/* One attempt, with the wait as a deadline (scope = false) or capped by a
 * timeout scope. Returns whether the call had started. */
static bool deadline_attempt(bool scope)
{
    deadline_try t = {.deadline = scope ? WF_FOREVER : wf_deadline_in(50 * WF_NSEC_PER_MSEC)};
    CHECK_EQ(wf_future_create(&t.d.gate), 0);
    if (scope) {
        wf_timeout_t sc;
        CHECK_EQ(wf_timeout_enter_in(&sc, 50 * WF_NSEC_PER_MSEC), 0);
        caller_deadline(&t, NULL);
        CHECK_EQ(wf_timeout_leave(&sc), 1);
    } else {
        wf_task_t task;
        CHECK_EQ(wf_spawn(&task, caller_deadline, &t, NULL), 0);
        CHECK_EQ(wf_join(task, NULL, NULL), 0);
    }
    CHECK_EQ(t.r, -ETIMEDOUT);
    /* A call taken back was dropped before the caller returned; a started
     * one cannot have been (it waits for the gate). */
    bool started = atomic_load(&t.d.drops) == 0;
    if (started) {
        CHECK(wait_flag(&t.d.entered, LONG_NS));
        CHECK_EQ(atomic_load(&t.d.returned), 0);
        CHECK_EQ(wf_future_set(t.d.gate, 0, NULL), 0);
        CHECK(wait_flag(&t.d.drops, LONG_NS));
        CHECK_EQ(atomic_load(&t.d.drop_status), 5);
        CHECK(atomic_load(&t.d.drop_result) != NULL);
    } else {
        /* Taken back before it started: dropped already, never to run. */
        CHECK_EQ(atomic_load(&t.d.entered), 0);
        CHECK_EQ(atomic_load(&t.d.drop_status), -ETIMEDOUT);
        CHECK(atomic_load(&t.d.drop_result) == NULL);
        CHECK_EQ(wf_future_set(t.d.gate, 0, NULL), 0);
    }
    CHECK_EQ(atomic_load(&t.d.drops), 1);
    wf_future_release(t.d.gate);
    return started;
}

static int m_deadline(void *arg, void **res)
{
    for (int scope = 0; scope < 2; scope++) {
        bool seen = false;
        for (int i = 0; i < 50 && !seen; i++)
            seen = deadline_attempt(scope);
        CHECK(seen);
    }
    return 0;
}

static void test_deadline(void **state)
{
    run_counted(NULL, 2, m_deadline, NULL);
}

/* --- the calls' context ------------------------------------------------------ */

typedef struct {
    int workers, spawn, usr1_blocked, term_blocked, segv_blocked;
    char name[32];
} context_seen;

static int noop(void *arg, void **res)
{
    return 0;
}

static int look_around(void *arg, void **res)
{
    context_seen *c = arg;
    c->workers = wf_workers();
    wf_task_t t;
    c->spawn = wf_spawn(&t, noop, NULL, NULL);
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    c->usr1_blocked = sigismember(&m, SIGUSR1);
    c->term_blocked = sigismember(&m, SIGTERM);
    c->segv_blocked = sigismember(&m, SIGSEGV);
    pthread_getname_np(pthread_self(), c->name, sizeof c->name);
    return 0;
}

static int m_context(void *arg, void **res)
{
    context_seen c = {0};
    CHECK_EQ(wf_to_thread(look_around, &c, NULL, NULL), 0);
    CHECK_EQ(c.workers, -EPERM); /* outside the runtime */
    CHECK_EQ(c.spawn, -EPERM);
    CHECK_EQ(c.usr1_blocked, 1); /* asynchronous signals blocked */
    CHECK_EQ(c.term_blocked, 1);
    CHECK_EQ(c.segv_blocked, 0); /* faults are not */
    CHECK(strncmp(c.name, "wf-pool-", 8) == 0);
    CHECK_EQ(threads_named("wf-pool-"), 1);
    return 0;
}

static void test_context(void **state)
{
    run_counted(NULL, 2, m_context, NULL);
    assert_int_equal(threads_named("wf-pool-"), 0);
}

/* --- growth and retirement -------------------------------------------------- */

typedef struct {
    wf_future_t *gate;
    _Atomic long entered;
} grow_ctx;

static int grow_call(void *arg, void **res)
{
    grow_ctx *g = arg;
    atomic_fetch_add(&g->entered, 1);
    return wait_gate(g->gate, res);
}

static int grow_fiber(void *arg, void **res)
{
    return wf_to_thread(grow_call, arg, NULL, NULL);
}

static int m_grow_retire(void *arg, void **res)
{
    enum { N = 6 };
    for (int round = 0; round < 3; round++) {
        grow_ctx g = {0};
        CHECK_EQ(wf_future_create(&g.gate), 0);
        wf_task_t t[N];
        for (int i = 0; i < N; i++)
            CHECK_EQ(wf_spawn(&t[i], grow_fiber, &g, NULL), 0);
        /* All N run at once: one thread each, grown on demand. */
        CHECK(wait_count(&g.entered, N, LONG_NS));
        wf_pool_stats_t s;
        CHECK_EQ(wf_pool_stats(WF_POOL_USER, &s), 0);
        CHECK_EQ(s.threads, N);
        CHECK_EQ(s.running, N);
        CHECK_EQ(threads_named("wf-pool-"), N);
        CHECK_EQ(wf_future_set(g.gate, 0, NULL), 0);
        for (int i = 0; i < N; i++)
            CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
        /* Idle past cfg.pool_idle_ns (10 ms): every thread leaves. */
        int64_t dl = wf_deadline_in(LONG_NS);
        while (wf_pool_stats(WF_POOL_USER, &s) == 0 && s.threads > 0 && wf_now() < dl)
            wf_sleep(WF_NSEC_PER_MSEC);
        CHECK_EQ(s.threads, 0);
        CHECK_EQ(s.idle, 0);
        /* Retired threads are joined (the last one by the next retiree or
         * the shutdown) and all exit: none is left in /proc. (Waiting for
         * at most one let the last retiree, preempted on its way out, be
         * counted beside the next round's N.) */
        dl = wf_deadline_in(LONG_NS);
        while (threads_named("wf-pool-") > 0 && wf_now() < dl)
            wf_sleep(WF_NSEC_PER_MSEC);
        CHECK_EQ(threads_named("wf-pool-"), 0);
        wf_future_release(g.gate);
    }
    return 0;
}

static void test_grow_retire(void **state)
{
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    cfg.pool_idle_ns = 10 * WF_NSEC_PER_MSEC;
    run_counted(&cfg, 0, m_grow_retire, NULL);
    assert_int_equal(threads_named("wf-pool-"), 0);
}

/* --- shutdown: wf_run waits for a call still running ----------------------- */

typedef struct {
    wf_future_t *gate;
    _Atomic int entered, caller_returned, dropped, call_returned;
} shutdown_ctx;

static int shut_call(void *arg, void **res)
{
    shutdown_ctx *c = arg;
    atomic_store(&c->entered, 1);
    int r = wait_gate(c->gate, res);
    *res = NULL;
    atomic_store(&c->call_returned, 1);
    return r;
}

static void shut_drop(void *arg, int status, void *result)
{
    shutdown_ctx *c = arg;
    atomic_store(&c->dropped, 1);
}

static int shut_fiber(void *arg, void **res)
{
    shutdown_ctx *c = arg;
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    o.drop = shut_drop;
    int r = wf_run_in_executor(&o, shut_call, arg, NULL, NULL);
    CHECK_EQ(r, -ECANCELED); /* by the shutdown */
    atomic_store(&c->caller_returned, 1);
    return r;
}

static int m_shutdown(void *arg, void **res)
{
    shutdown_ctx *c = arg;
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, shut_fiber, c, NULL), 0);
    CHECK(wait_flag(&c->entered, LONG_NS));
    CHECK_EQ(wf_detach(t), 0);
    return 0; /* the call is still running */
}

/* A thread outside the runtime opens the gate once the shutdown has
 * cancelled the caller (so the call is abandoned, and only the pool's
 * join keeps wf_run from returning). */
static void *opener(void *arg)
{
    shutdown_ctx *c = arg;
    int64_t dl = wf_deadline_in(LONG_NS);
    while (!atomic_load(&c->caller_returned) && wf_now() < dl) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    wf_future_set(c->gate, 0, NULL);
    return NULL;
}

static void test_shutdown_waits(void **state)
{
    long fds = fd_count(), threads = thread_count();
    shutdown_ctx c = {0};
    assert_int_equal(wf_future_create(&c.gate), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, opener, &c), 0);
    run_main(2, m_shutdown, &c);
    /* wf_run returned only after the call returned and was dropped. */
    assert_int_equal(atomic_load(&c.call_returned), 1);
    assert_int_equal(atomic_load(&c.dropped), 1);
    pthread_join(th, NULL);
    wf_future_release(c.gate);
    assert_int_equal(fd_count(), fds);
    assert_int_equal(thread_count(), threads);
}

/* --- storms ------------------------------------------------------------------ */

/* Many fibers on every worker make calls, some with deadlines and some
 * cancelled by a neighbour. Every call ends exactly one way: returned to
 * its caller (who frees its heap argument), or dropped (the drop frees
 * it); the books balance exactly. */
typedef struct {
    _Atomic long returned, dropped, timed_out, cancelled, calls_run;
} storm_books;

typedef struct {
    storm_books *books;
    long value;
} storm_arg;

static int storm_call(void *arg, void **res)
{
    storm_arg *a = arg;
    atomic_fetch_add(&a->books->calls_run, 1);
    if (a->value % 7 == 0) {
        struct timespec ts = {0, (a->value % 5) * 100 * 1000};
        nanosleep(&ts, NULL);
    }
    *res = (void *)(a->value * 2);
    return 0;
}

static void storm_drop(void *arg, int status, void *result)
{
    storm_arg *a = arg;
    storm_books *b = a->books;
    if (status == 0 && result != (void *)(a->value * 2))
        atomic_fetch_add(&b->dropped, 1000000); /* poison the books */
    free(a);
    atomic_fetch_add(&b->dropped, 1);
}

typedef struct {
    storm_books *books;
    uint64_t seed;
    int iters; /* calls to make; 0: until cancelled */
    _Atomic long *started;
} storm_fiber_ctx;

static int storm_fiber(void *arg, void **res)
{
    storm_fiber_ctx *f = arg;
    atomic_fetch_add(f->started, 1);
    int64_t give_up = wf_deadline_in(LONG_NS);
    for (int i = 0; f->iters ? i < f->iters : wf_now() < give_up; i++) {
        storm_arg *a = malloc(sizeof *a);
        a->books = f->books;
        a->value = (long)(test_rand(&f->seed) % 100000);
        wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
        o.drop = storm_drop;
        if (a->value % 3 == 0)
            o.deadline = wf_deadline_in((a->value % 4) * 50 * WF_NSEC_PER_USEC);
        void *rv = NULL;
        int r = wf_run_in_executor(&o, storm_call, a, NULL, &rv);
        if (r == 0) {
            CHECK(rv == (void *)(a->value * 2));
            free(a);
            atomic_fetch_add(&f->books->returned, 1);
        } else if (r == -ETIMEDOUT) {
            atomic_fetch_add(&f->books->timed_out, 1);
        } else if (r == -ECANCELED) {
            atomic_fetch_add(&f->books->cancelled, 1);
            return 0; /* a cancelled fiber stops */
        } else {
            CHECK_EQ(r, 0);
        }
    }
    return 0;
}

static int m_storm(void *arg, void **res)
{
    enum { FIBERS = 64 };
    storm_books *b = arg;
    int iters = SCALED(400);
    storm_fiber_ctx ctx[FIBERS];
    wf_task_t t[FIBERS];
    _Atomic long started = 0;
    for (int i = 0; i < FIBERS; i++) {
        /* A third call until they are cancelled. */
        ctx[i] = (storm_fiber_ctx){b, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1), i % 3 ? iters : 0, &started};
        CHECK_EQ(wf_spawn(&t[i], storm_fiber, &ctx[i], NULL), 0);
    }
    CHECK(wait_count(&started, FIBERS, LONG_NS));
    /* Cancel those at random moments. */
    uint64_t seed = 42;
    for (int i = 0; i < FIBERS; i += 3) {
        wf_sleep((int64_t)(test_rand(&seed) % 2000) * WF_NSEC_PER_USEC);
        wf_cancel(t[i]);
    }
    for (int i = 0; i < FIBERS; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    return 0;
}

static void test_storm(void **state)
{
    for (unsigned workers = 1; workers <= 4; workers *= 2) {
        storm_books b = {0};
        wf_config_t cfg;
        wf_config_init(&cfg);
        cfg.workers = workers;
        cfg.pool_user_threads = 8;
        run_counted(&cfg, 0, m_storm, &b);
        /* wf_run has joined the pool: every drop has run. */
        long made = atomic_load(&b.returned) + atomic_load(&b.timed_out) + atomic_load(&b.cancelled);
        assert_int_equal(atomic_load(&b.returned) + atomic_load(&b.dropped), made);
        assert_true(atomic_load(&b.calls_run) <= made);
        assert_true(atomic_load(&b.returned) > 0);
        assert_true(atomic_load(&b.timed_out) > 0);
        assert_int_equal(atomic_load(&b.cancelled), 22); /* 0, 3, ... 63 */
    }
}

/* Two runtimes in two threads at once, each with its own pool. */
static int m_two(void *arg, void **res)
{
    for (intptr_t i = 0; i < SCALED(2000); i++) {
        void *rv = NULL;
        CHECK_EQ(wf_to_thread(add_one, (void *)(i * 2), NULL, &rv), 0);
        CHECK_EQ((intptr_t)rv, i * 2 + 1);
    }
    return 0;
}

static void *two_thread(void *arg)
{
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    int st = -1;
    *(int *)arg = wf_run(&cfg, m_two, NULL, &st, NULL) == 0 ? st : -1;
    return NULL;
}

static void test_two_runtimes(void **state)
{
    long fds = fd_count(), threads = thread_count();
    pthread_t a, b;
    int ra = -1, rb = -1;
    assert_int_equal(pthread_create(&a, NULL, two_thread, &ra), 0);
    assert_int_equal(pthread_create(&b, NULL, two_thread, &rb), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
    assert_int_equal(atomic_load(&check_failures), 0);
    assert_int_equal(fd_count(), fds);
    assert_int_equal(thread_count(), threads);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),          cmocka_unit_test(test_errors),
        cmocka_unit_test(test_saturation),     cmocka_unit_test(test_cancel_running),
        cmocka_unit_test(test_cancel_queued),  cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_context),        cmocka_unit_test(test_grow_retire),
        cmocka_unit_test(test_shutdown_waits), cmocka_unit_test(test_storm),
        cmocka_unit_test(test_two_runtimes),
    };
    return cmocka_run_group_tests(tests, warm_up, NULL);
}
