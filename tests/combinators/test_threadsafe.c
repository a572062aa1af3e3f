/* test_threadsafe.c - entering a runtime from plain threads: runtime
 * handles, wf_run_threadsafe (run_coroutine_threadsafe + result()),
 * wf_call_soon_threadsafe, deadlines, and the handle's lifetime across
 * shutdown (a clear error, never a crash). */
#include "combo_test.h"

static int add_one(void *arg, void **res)
{
    *res = (void *)((intptr_t)arg + 1);
    return wf_self() != WF_TASK_NONE ? 0 : -EIO; /* it runs as a task */
}

/* --- run_threadsafe from several threads at once -------------------------------- */

typedef struct {
    wf_runtime_t rt;
    int calls;
    _Atomic long ok;
} caller_arg;

static void *caller_thread(void *arg)
{
    caller_arg *c = arg;
    for (int i = 0; i < c->calls; i++) {
        int st = 1;
        void *rv = NULL;
        int r = wf_run_threadsafe(c->rt, add_one, (void *)(intptr_t)i, WF_FOREVER, &st, &rv);
        if (r == 0 && st == 0 && (intptr_t)rv == i + 1)
            atomic_fetch_add(&c->ok, 1);
        else
            fprintf(stderr, "run_threadsafe: %d st %d rv %p\n", r, st, rv);
    }
    return NULL;
}

static int m_run_threadsafe(void *arg, void **res)
{
    caller_arg ca = {.calls = SCALED(500)};
    CHECK_EQ(wf_runtime_get(&ca.rt), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, caller_thread, &ca), 0);
    /* The main task keeps running (and could do anything) meanwhile. */
    CHECK(wait_count(&ca.ok, 4L * ca.calls, LONG_NS));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(atomic_load(&ca.ok), 4L * ca.calls);
    /* From a fiber it is refused. */
    CHECK_EQ(wf_run_threadsafe(ca.rt, add_one, NULL, WF_FOREVER, NULL, NULL), -EPERM);
    CHECK_EQ(wf_runtime_release(ca.rt), 0);
    CHECK_EQ(wf_runtime_release(ca.rt), -EINVAL); /* given back twice */
    return 0;
}

static void test_run_threadsafe(void **state)
{
    run_main(2, m_run_threadsafe, NULL);
}

/* --- a deadline: the task is cancelled and awaited ---------------------------------- */

/* The deadline must pass while the task's body waits in its sleep. On a
 * loaded machine the task may not have started by then: cancelled before it
 * ever ran, it never runs (its outcome is still -ECANCELED and the call's
 * -ETIMEDOUT), and a test that waited for its body to end waited for ever.
 * Such an attempt is checked as far as it goes, and the next one doubles
 * the deadline, until the body was seen to start (the way test_rwlock.c's
 * m_head_writer_leaves retries). */
typedef struct {
    wf_runtime_t rt;
    int ret, st;
    _Atomic long started, ended; /* the task's body began / finished, all attempts */
    _Atomic int done;            /* the thread's last attempt has returned */
} deadline_arg;

static int slow_task(void *arg, void **res)
{
    deadline_arg *d = arg;
    atomic_fetch_add(&d->started, 1);
    int r = wf_sleep(LONG_NS);
    atomic_fetch_add(&d->ended, 1);
    return r;
}

static void *deadline_thread(void *arg)
{
    deadline_arg *d = arg;
    for (int64_t ns = 10 * WF_NSEC_PER_MSEC;; ns *= 2) {
        d->ret = wf_run_threadsafe(d->rt, slow_task, d, wf_deadline_in(ns), &d->st, NULL);
        /* Awaited: a body that began is over before the call returned. */
        if (atomic_load(&d->ended) != atomic_load(&d->started)) {
            d->ret = 999;
            break;
        }
        /* Retry only an attempt whose task never ran, up to 1.28 s. */
        if (atomic_load(&d->started) > 0 || d->ret != -ETIMEDOUT || d->st != -ECANCELED ||
            ns >= 1280 * WF_NSEC_PER_MSEC)
            break;
    }
    atomic_store(&d->done, 1);
    return NULL;
}

static int m_deadline(void *arg, void **res)
{
    deadline_arg d = {.ret = 1};
    CHECK_EQ(wf_runtime_get(&d.rt), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, deadline_thread, &d), 0);
    /* Keep the main task waiting on something the thread does not touch. */
    while (atomic_load(&d.done) == 0)
        wf_sleep(WF_NSEC_PER_MSEC);
    pthread_join(th, NULL);
    CHECK_EQ(d.ret, -ETIMEDOUT);
    CHECK_EQ(d.st, -ECANCELED);
    CHECK_EQ(atomic_load(&d.started), 1); /* the last attempt's body ran... */
    CHECK_EQ(atomic_load(&d.ended), 1);   /* ...and was over before the call returned */
    CHECK_EQ(wf_runtime_release(d.rt), 0);
    return 0;
}

static void test_deadline(void **state)
{
    run_main(2, m_deadline, NULL);
}

/* --- call_soon_threadsafe -------------------------------------------------------------- */

typedef struct {
    wf_runtime_t rt;
    int posts;
    _Atomic long ran, dropped, accepted, refused;
} post_arg;

static int count_run(void *arg, void **res)
{
    atomic_fetch_add(&((post_arg *)arg)->ran, 1);
    return 0;
}

static void count_drop(void *arg)
{
    atomic_fetch_add(&((post_arg *)arg)->dropped, 1);
}

static void *poster_thread(void *arg)
{
    post_arg *p = arg;
    for (int i = 0; i < p->posts; i++) {
        int r = wf_call_soon_threadsafe(p->rt, count_run, p, count_drop);
        if (r == 0)
            atomic_fetch_add(&p->accepted, 1);
        else if (r == -ESHUTDOWN)
            atomic_fetch_add(&p->refused, 1);
        else
            fprintf(stderr, "call_soon_threadsafe: %d\n", r);
    }
    return NULL;
}

static int m_call_soon(void *arg, void **res)
{
    post_arg p = {.posts = SCALED(2000)};
    CHECK_EQ(wf_runtime_get(&p.rt), 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, poster_thread, &p), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(atomic_load(&p.accepted), 3L * p.posts);
    CHECK(wait_count(&p.ran, 3L * p.posts, LONG_NS));
    CHECK_EQ(atomic_load(&p.dropped), 0);
    /* From inside the runtime, too. */
    CHECK_EQ(wf_call_soon_threadsafe(p.rt, count_run, &p, count_drop), 0);
    CHECK(wait_count(&p.ran, 3L * p.posts + 1, LONG_NS));
    CHECK_EQ(wf_call_soon_threadsafe(p.rt, NULL, &p, NULL), -EINVAL);
    CHECK_EQ(wf_runtime_release(p.rt), 0);
    CHECK_EQ(wf_call_soon_threadsafe(p.rt, count_run, &p, NULL), -EINVAL);
    return 0;
}

static void test_call_soon(void **state)
{
    run_main(2, m_call_soon, NULL);
}

/* --- shutdown: threads keep submitting while main returns ----------------------------- */

typedef struct {
    post_arg p;
    _Atomic int have_rt;
} shutdown_ctx;

static void *hammer_thread(void *arg)
{
    shutdown_ctx *s = arg;
    while (!atomic_load(&s->have_rt))
        sched_yield();
    /* Submit until the runtime refuses a few times in a row. */
    for (int refused = 0; refused < 50;) {
        int r = wf_call_soon_threadsafe(s->p.rt, count_run, &s->p, count_drop);
        if (r == 0) {
            atomic_fetch_add(&s->p.accepted, 1);
        } else if (r == -ESHUTDOWN) {
            atomic_fetch_add(&s->p.refused, 1);
            refused++;
        } else {
            fprintf(stderr, "hammer: %d\n", r);
            break;
        }
    }
    return NULL;
}

static int m_shutdown_main(void *arg, void **res)
{
    shutdown_ctx *s = arg;
    CHECK_EQ(wf_runtime_get(&s->p.rt), 0);
    atomic_store(&s->have_rt, 1);
    /* Let the threads get going, then return while they hammer. */
    CHECK(wait_count(&s->p.accepted, 200, LONG_NS));
    return 0;
}

static void test_shutdown(void **state)
{
    for (int round = 0; round < 5; round++) {
        shutdown_ctx s = {0};
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&th[i], NULL, hammer_thread, &s), 0);
        wf_config_t cfg;
        wf_config_init(&cfg);
        cfg.workers = 2;
        int status = 1;
        assert_int_equal(wf_run(&cfg, m_shutdown_main, &s, &status, NULL), 0);
        assert_int_equal(status, 0);
        /* The runtime is gone: the handle answers -ESHUTDOWN. */
        assert_int_equal(wf_call_soon_threadsafe(s.p.rt, count_run, &s.p, count_drop), -ESHUTDOWN);
        assert_int_equal(wf_run_threadsafe(s.p.rt, count_run, &s.p, WF_FOREVER, NULL, NULL), -ESHUTDOWN);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        /* Every accepted submission either ran or was dropped, once. */
        assert_int_equal(atomic_load(&s.p.ran) + atomic_load(&s.p.dropped), atomic_load(&s.p.accepted));
        assert_true(atomic_load(&s.p.refused) >= 150);
        assert_int_equal(wf_runtime_release(s.p.rt), 0);
        assert_int_equal(wf_runtime_release(s.p.rt), -EINVAL);
    }
}

/* --- a thread blocked in run_threadsafe when the runtime shuts down ---------------------- */

typedef struct {
    wf_runtime_t rt;
    _Atomic int have_rt;
    _Atomic long started;
    int ret, st;
} blocked_ctx;

static int started_then_sleep(void *arg, void **res)
{
    blocked_ctx *b = arg;
    atomic_fetch_add(&b->started, 1);
    return wf_sleep(3600 * WF_NSEC_PER_SEC);
}

static void *blocked_thread(void *arg)
{
    blocked_ctx *b = arg;
    while (!atomic_load(&b->have_rt))
        sched_yield();
    b->ret = wf_run_threadsafe(b->rt, started_then_sleep, b, WF_FOREVER, &b->st, NULL);
    return NULL;
}

static int m_blocked_main(void *arg, void **res)
{
    blocked_ctx *b = arg;
    CHECK_EQ(wf_runtime_get(&b->rt), 0);
    atomic_store(&b->have_rt, 1);
    CHECK(wait_count(&b->started, 1, LONG_NS));
    return 0; /* shutdown cancels the thread's task */
}

static void test_blocked_at_shutdown(void **state)
{
    blocked_ctx b = {.ret = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocked_thread, &b), 0);
    int status = 1;
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    assert_int_equal(wf_run(&cfg, m_blocked_main, &b, &status, NULL), 0);
    pthread_join(th, NULL);
    assert_int_equal(b.ret, 0);
    assert_int_equal(b.st, -ECANCELED);
    assert_int_equal(wf_runtime_release(b.rt), 0);
}

/* --- handles: bad values, release before the runtime ends, from outside ------------------- */

static int m_handles(void *arg, void **res)
{
    wf_runtime_t a, b;
    CHECK_EQ(wf_runtime_get(NULL), -EINVAL);
    CHECK_EQ(wf_runtime_get(&a), 0);
    CHECK_EQ(wf_runtime_get(&b), 0);
    CHECK(a != b && a != 0);
    CHECK_EQ(wf_runtime_release(a), 0);
    /* A released handle is dead, the other one still works. */
    CHECK_EQ(wf_call_soon_threadsafe(a, add_one, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_call_soon_threadsafe(b, add_one, NULL, NULL), 0);
    CHECK_EQ(wf_runtime_release(b), 0);
    /* Many get/release pairs do not pile up. */
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(wf_runtime_get(&a), 0);
        CHECK_EQ(wf_runtime_release(a), 0);
    }
    *res = (void *)(uintptr_t)a;
    return 0;
}

static void test_handles(void **state)
{
    run_main(1, m_handles, NULL);
    assert_int_equal(wf_runtime_release(0), -EINVAL);
    assert_int_equal(wf_runtime_release(0x123456789ull), -EINVAL);
    assert_int_equal(wf_run_threadsafe(0x77, add_one, NULL, WF_FOREVER, NULL, NULL), -EINVAL);
    wf_runtime_t r;
    assert_int_equal(wf_runtime_get(&r), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_threadsafe),      cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_call_soon),           cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_blocked_at_shutdown), cmocka_unit_test(test_handles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
