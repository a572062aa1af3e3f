/* test_group.c - task groups (asyncio.TaskGroup): waiting for all, the
 * first failure cancels the rest (a sleeping sibling included) and the
 * parent's body, every failure reported and identified (name, arg, id,
 * without a reference kept), outside cancellation, cancelling
 * the group, timeout scopes, spawning from children, misuse. */
#include "combo_test.h"

#define MS WF_NSEC_PER_MSEC

static int m_all_succeed(void *arg, void **res)
{
    enum { N = 50 };
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    wf_task_t t[N];
    for (intptr_t i = 0; i < N; i++)
        CHECK_EQ(wf_group_spawn(&g, &t[i], ret_arg, (void *)i, NULL), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), 0);
    /* The caller's references: every child has ended. */
    for (intptr_t i = 0; i < N; i++) {
        CHECK_EQ(wf_task_done(t[i]), 1);
        void *rv = NULL;
        CHECK_EQ(wf_join(t[i], NULL, &rv), 0);
        CHECK_EQ((intptr_t)rv, i);
    }
    /* The empty group; and a group re-initialised after use. */
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), 0);
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), 0);
    return 0;
}

static void test_all_succeed(void **state)
{
    run_main(4, m_all_succeed, NULL);
}

/* A child fails while another sleeps: the sleeper is cancelled, the group
 * reports the failure, the parent (already waiting) is not cancelled. */
typedef struct {
    _Atomic long started, sleeper_cancelled;
} fail_ctx;

static int sleeper(void *arg, void **res)
{
    fail_ctx *f = arg;
    atomic_fetch_add(&f->started, 1);
    int r = wf_sleep(LONG_NS);
    if (r == -ECANCELED)
        atomic_fetch_add(&f->sleeper_cancelled, 1);
    return r;
}

static int fail_after_start(void *arg, void **res)
{
    fail_ctx *f = arg;
    /* Fail once both sleepers are asleep. */
    while (atomic_load(&f->started) < 2)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    *res = (void *)0xbad;
    return -EIO;
}

static int m_fail_while_sleeping(void *arg, void **res)
{
    fail_ctx f = {0};
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    wf_task_t bad;
    CHECK_EQ(wf_group_spawn(&g, NULL, sleeper, &f, NULL), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, sleeper, &f, NULL), 0);
    CHECK_EQ(wf_group_spawn(&g, &bad, fail_after_start, &f, NULL), 0);
    wf_group_failure_t fl[4];
    CHECK_EQ(wf_group_wait(&g, fl, 4), 1);
    CHECK_EQ(fl[0].task, bad);
    CHECK_EQ(fl[0].status, -EIO);
    CHECK(fl[0].result == (void *)0xbad);
    CHECK(fl[0].arg == &f);
    CHECK_EQ(strcmp(fl[0].name, "task"), 0);
    CHECK_EQ(atomic_load(&f.sleeper_cancelled), 2);
    CHECK_EQ(wf_cancelling(wf_self()), 0);
    CHECK_EQ(wf_join(bad, NULL, NULL), 0);
    return 0;
}

static void test_fail_while_sleeping(void **state)
{
    run_main(3, m_fail_while_sleeping, NULL);
}

/* One child fails; the others, cancelled, are not failures. */
static int fail_at(void *arg, void **res)
{
    return -(int)(intptr_t)arg;
}

static int m_cancelled_not_failures(void *arg, void **res)
{
    wf_future_t *gate = gate_new();
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    _Atomic long cancelled = 0, started = 0;
    child_spec spec[3];
    for (int i = 0; i < 3; i++) {
        spec[i] = (child_spec){.gate = gate, .cancelled = &cancelled, .started = &started};
        CHECK_EQ(wf_group_spawn(&g, NULL, child_body, &spec[i], NULL), 0);
    }
    CHECK(wait_count(&started, 3, LONG_NS));
    CHECK_EQ(wf_group_spawn(&g, NULL, fail_at, (void *)(intptr_t)EIO, NULL), 0);
    wf_group_failure_t fl[4];
    CHECK_EQ(wf_group_wait(&g, fl, 4), 1);
    CHECK_EQ(fl[0].status, -EIO);
    CHECK_EQ(atomic_load(&cancelled), 3);
    CHECK_EQ(wf_cancelling(wf_self()), 0);
    wf_future_release(gate);
    return 0;
}

static void test_cancelled_not_failures(void **state)
{
    run_main(2, m_cancelled_not_failures, NULL);
}

/* Failures reported in full: children that all start, then fail at once
 * when released, ignoring the cancellation caused by the first. */
static int fail_when_released(void *arg, void **res)
{
    child_spec *c = arg;
    atomic_fetch_add(c->started, 1);
    int r = wf_future_wait(c->gate, WF_FOREVER, NULL, NULL);
    (void)r; /* cancelled or released: fail either way */
    return c->status;
}

static int m_every_failure(void *arg, void **res)
{
    enum { N = 6 };
    wf_future_t *gate = gate_new();
    _Atomic long started = 0;
    child_spec spec[N];
    wf_task_t t[N];
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    for (int i = 0; i < N; i++) {
        spec[i] = (child_spec){.gate = gate, .status = -(EIO + i), .started = &started};
        CHECK_EQ(wf_group_spawn(&g, &t[i], fail_when_released, &spec[i], NULL), 0);
    }
    CHECK(wait_count(&started, N, LONG_NS));
    gate_open(gate);
    wf_group_failure_t fl[3];
    CHECK_EQ(wf_group_wait(&g, fl, 3), N);
    for (int i = 0; i < 3; i++) {
        int k = -1;
        for (int j = 0; j < N; j++)
            if (t[j] == fl[i].task)
                k = j;
        CHECK(k >= 0);
        CHECK_EQ(fl[i].status, -(EIO + k));
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    wf_future_release(gate);
    return 0;
}

static void test_every_failure(void **state)
{
    run_main(3, m_every_failure, NULL);
}

/* Failure records identify their child without any reference kept: the
 * spawn's name (truncated, NUL-terminated; "task" by default), its arg and
 * its id, for many children failing on every worker at once. */
typedef struct {
    child_spec spec;
    char name[48];
} named_spec;

static int m_failure_identity(void *arg, void **res)
{
    const int N = SCALED(240);
    wf_future_t *gate = gate_new();
    _Atomic long started = 0;
    named_spec *ns = calloc((size_t)N, sizeof *ns);
    wf_group_failure_t *fl = malloc(((size_t)N + 1) * sizeof *fl);
    memset(fl, 0x5a, ((size_t)N + 1) * sizeof *fl);
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    wf_task_t kept = WF_TASK_NONE;
    for (int i = 0; i < N; i++) {
        ns[i].spec = (child_spec){.gate = gate, .status = -(EIO + i % 3), .started = &started};
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        if (i % 4 == 1) {
            o.name = NULL; /* "task" */
        } else if (i % 4 == 2) {
            /* Longer than a name keeps: truncated to 31 bytes. */
            snprintf(ns[i].name, sizeof ns[i].name, "a-rather-long-child-name-%04d-and-more", i);
            o.name = ns[i].name;
        } else {
            snprintf(ns[i].name, sizeof ns[i].name, "child-%d", i);
            o.name = ns[i].name;
        }
        /* One caller reference kept, to compare ids; none for the rest. */
        CHECK_EQ(wf_group_spawn(&g, i == 3 ? &kept : NULL, fail_when_released, &ns[i], &o), 0);
    }
    CHECK(wait_count(&started, N, LONG_NS));
    gate_open(gate);
    CHECK_EQ(wf_group_wait(&g, fl, (size_t)N), N);
    unsigned char *seen = calloc((size_t)N, 1);
    int named = 0, unnamed = 0, truncated = 0;
    for (int k = 0; k < N; k++) {
        named_spec *sp = fl[k].arg;
        int i = sp ? (int)(sp - ns) : -1;
        CHECK(i >= 0 && i < N);
        if (i < 0 || i >= N)
            continue;
        CHECK_EQ(seen[i], 0);
        seen[i] = 1;
        CHECK_EQ(fl[k].status, -(EIO + i % 3));
        CHECK(fl[k].result == NULL); /* fail_when_released sets none */
        /* NUL-terminated within the array, zero after the name. */
        size_t len = strnlen(fl[k].name, sizeof fl[k].name);
        CHECK(len < sizeof fl[k].name);
        for (size_t j = len; j < sizeof fl[k].name; j++)
            CHECK_EQ(fl[k].name[j], 0);
        if (i % 4 == 1) {
            CHECK_EQ(strcmp(fl[k].name, "task"), 0);
            unnamed++;
        } else if (i % 4 == 2) {
            CHECK_EQ(len, WF_GROUP_FAILURE_NAME_MAX - 1);
            CHECK_EQ(strncmp(fl[k].name, ns[i].name, len), 0);
            truncated++;
        } else {
            CHECK_EQ(strcmp(fl[k].name, ns[i].name), 0);
            named++;
        }
        /* The id: the handle we kept, or a dead one (nobody held it). */
        CHECK(fl[k].task != WF_TASK_NONE);
        if (i == 3) {
            CHECK_EQ(fl[k].task, kept);
            char buf[WF_GROUP_FAILURE_NAME_MAX];
            CHECK_EQ(wf_task_name(kept, buf, sizeof buf), 0);
            CHECK_EQ(strcmp(buf, fl[k].name), 0);
        } else {
            CHECK(handle_dead(fl[k].task));
        }
        for (int j = 0; j < k; j++)
            CHECK(fl[j].task != fl[k].task); /* one id per child */
    }
    CHECK_EQ(named + unnamed + truncated, N);
    CHECK_EQ(unnamed, (N + 2) / 4);
    /* Nothing past cap is written. */
    unsigned char pat[sizeof *fl];
    memset(pat, 0x5a, sizeof pat);
    CHECK_EQ(memcmp(&fl[N], pat, sizeof pat), 0);
    int st = 0;
    CHECK_EQ(wf_join(kept, &st, NULL), 0);
    CHECK_EQ(st, -(EIO + 3 % 3));
    free(seen);
    free(fl);
    free(ns);
    wf_future_release(gate);
    return 0;
}

static void test_failure_identity(void **state)
{
    run_main(4, m_failure_identity, NULL);
}

/* A child fails while the parent's body is still running: the body is
 * cancelled at its next wait; the group withdraws that at the wait. */
static int m_body_cancelled(void *arg, void **res)
{
    fail_ctx f = {.started = 2};
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, fail_after_start, &f, NULL), 0);
    CHECK_EQ(wf_sleep(LONG_NS), -ECANCELED);
    CHECK_EQ(wf_group_spawn(&g, NULL, ret_arg, NULL, NULL), -ESHUTDOWN);
    wf_group_failure_t fl[1];
    CHECK_EQ(wf_group_wait(&g, fl, 1), 1);
    CHECK_EQ(fl[0].status, -EIO);
    CHECK_EQ(wf_cancelling(wf_self()), 0);
    CHECK_EQ(wf_sleep(MS), 0); /* the body's waits work again */
    return 0;
}

static void test_body_cancelled(void **state)
{
    run_main(2, m_body_cancelled, NULL);
}

/* The parent is cancelled from outside, in its body or in the wait: the
 * children are cancelled, and the wait says -ECANCELED. */
typedef struct {
    fail_ctx f;
    int in_wait;
    int ret;
    _Atomic long body_parked;
} parent_ctx;

static int parent(void *arg, void **res)
{
    parent_ctx *p = arg;
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, sleeper, &p->f, NULL), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, sleeper, &p->f, NULL), 0);
    if (!p->in_wait) {
        atomic_store(&p->body_parked, 1);
        CHECK_EQ(wf_sleep(LONG_NS), -ECANCELED);
    }
    p->ret = wf_group_wait(&g, NULL, 0);
    CHECK_EQ(wf_cancelling(wf_self()), 1); /* the outside request stays */
    return p->ret;
}

static int m_parent_cancelled(void *arg, void **res)
{
    for (int in_wait = 0; in_wait < 2; in_wait++) {
        parent_ctx p = {.in_wait = in_wait, .ret = 1};
        wf_task_t pt;
        CHECK_EQ(wf_spawn(&pt, parent, &p, NULL), 0);
        CHECK(wait_count(&p.f.started, 2, LONG_NS));
        while (wf_task_state(pt) != WF_TASK_PARKED)
            wf_yield();
        CHECK_EQ(wf_cancel(pt), 0);
        int st = 0;
        CHECK_EQ(wf_join(pt, &st, NULL), 0);
        CHECK_EQ(p.ret, -ECANCELED);
        CHECK_EQ(st, -ECANCELED);
        CHECK_EQ(atomic_load(&p.f.sleeper_cancelled), 2);
    }
    return 0;
}

static void test_parent_cancelled(void **state)
{
    run_main(3, m_parent_cancelled, NULL);
}

/* wf_group_cancel, from a child: the rest are cancelled, spawning is
 * refused, the wait says -ECANCELED; the parent itself is not cancelled. */
typedef struct {
    wf_group_t *g;
    fail_ctx f;
} canceller_ctx;

static int canceller(void *arg, void **res)
{
    canceller_ctx *c = arg;
    while (atomic_load(&c->f.started) < 2)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    CHECK_EQ(wf_group_cancel(c->g), 0);
    CHECK_EQ(wf_group_spawn(c->g, NULL, ret_arg, NULL, NULL), -ESHUTDOWN);
    return 0;
}

static int m_group_cancel(void *arg, void **res)
{
    wf_group_t g;
    canceller_ctx c = {.g = &g};
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, sleeper, &c.f, NULL), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, sleeper, &c.f, NULL), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, canceller, &c, NULL), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), -ECANCELED);
    CHECK_EQ(atomic_load(&c.f.sleeper_cancelled), 2);
    CHECK_EQ(wf_cancelling(wf_self()), 0);
    CHECK_EQ(wf_group_cancel(&g), -EINVAL); /* finished */
    return 0;
}

static void test_group_cancel(void **state)
{
    run_main(2, m_group_cancel, NULL);
}

/* A timeout scope around the group: children cancelled, -ETIMEDOUT. */
static int m_scope(void *arg, void **res)
{
    fail_ctx f = {0};
    wf_timeout_t to;
    CHECK_EQ(wf_timeout_enter_in(&to, 10 * MS), 0);
    wf_group_t g;
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, sleeper, &f, NULL), 0);
    CHECK_EQ(wf_group_spawn(&g, NULL, ret_arg, NULL, NULL), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), -ETIMEDOUT);
    CHECK_EQ(wf_timeout_leave(&to), 1);
    CHECK_EQ(atomic_load(&f.sleeper_cancelled), atomic_load(&f.started));
    return 0;
}

static void test_scope(void **state)
{
    run_main(2, m_scope, NULL);
}

/* Children spawn grandchildren into the group; all are waited for. */
typedef struct {
    wf_group_t *g;
    _Atomic long ran;
} tree_ctx;

typedef struct {
    tree_ctx *c;
    int depth;
} tree_arg;

static int spawner(void *arg, void **res)
{
    tree_arg *a = arg;
    atomic_fetch_add(&a->c->ran, 1);
    if (a->depth > 0) {
        for (int i = 0; i < 2; i++) {
            tree_arg *k = malloc(sizeof *k);
            *k = (tree_arg){.c = a->c, .depth = a->depth - 1};
            /* Yield first, so the parent may already be in the wait. */
            wf_yield();
            CHECK_EQ(wf_group_spawn(a->c->g, NULL, spawner, k, NULL), 0);
        }
    }
    free(a);
    return 0;
}

static int m_nested_spawn(void *arg, void **res)
{
    wf_group_t g;
    tree_ctx c = {.g = &g};
    CHECK_EQ(wf_group_init(&g), 0);
    tree_arg *root = malloc(sizeof *root);
    *root = (tree_arg){.c = &c, .depth = 6};
    CHECK_EQ(wf_group_spawn(&g, NULL, spawner, root, NULL), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), 0);
    CHECK_EQ(atomic_load(&c.ran), 127); /* 2^7 - 1 nodes */
    return 0;
}

static void test_nested_spawn(void **state)
{
    run_main(4, m_nested_spawn, NULL);
}

static int not_parent(void *arg, void **res)
{
    CHECK_EQ(wf_group_wait(arg, NULL, 0), -EINVAL);
    return 0;
}

static int m_misuse(void *arg, void **res)
{
    wf_group_t g;
    memset(&g, 0, sizeof g);
    CHECK_EQ(wf_group_spawn(&g, NULL, ret_arg, NULL, NULL), -EINVAL); /* not open */
    CHECK_EQ(wf_group_wait(&g, NULL, 0), -EINVAL);
    CHECK_EQ(wf_group_cancel(&g), -EINVAL);
    CHECK_EQ(wf_group_init(NULL), -EINVAL);
    CHECK_EQ(wf_group_init(&g), 0);
    CHECK_EQ(wf_group_init(&g), -EBUSY);
    CHECK_EQ(wf_group_spawn(&g, NULL, NULL, NULL, NULL), -EINVAL);
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.stack_size = 1;
    CHECK_EQ(wf_group_spawn(&g, NULL, ret_arg, NULL, &o), -EINVAL); /* nothing spawned */
    CHECK_EQ(wf_group_wait(&g, NULL, 1), -EINVAL);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, not_parent, &g, NULL), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), 0);
    CHECK_EQ(wf_group_wait(&g, NULL, 0), -EINVAL); /* finished */
    CHECK_EQ(wf_group_spawn(&g, NULL, ret_arg, NULL, NULL), -EINVAL);
    return 0;
}

static void test_misuse(void **state)
{
    run_main(2, m_misuse, NULL);
    wf_group_t g;
    assert_int_equal(wf_group_init(&g), -EPERM);
    assert_int_equal(wf_group_spawn(&g, NULL, ret_arg, NULL, NULL), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_succeed),
        cmocka_unit_test(test_fail_while_sleeping),
        cmocka_unit_test(test_cancelled_not_failures),
        cmocka_unit_test(test_every_failure),
        cmocka_unit_test(test_failure_identity),
        cmocka_unit_test(test_body_cancelled),
        cmocka_unit_test(test_parent_cancelled),
        cmocka_unit_test(test_group_cancel),
        cmocka_unit_test(test_scope),
        cmocka_unit_test(test_nested_spawn),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
