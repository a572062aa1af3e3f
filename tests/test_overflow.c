/* test_overflow.c - a fiber stack overflow is reported with the task's name
 * and stack size, never silent corruption.
 *
 * Each case runs in a child process (the report ends in abort()), and the
 * parent checks how the child died and what it printed on stderr. Both
 * detectors are covered: the guard page of a guarded stack, and the canary
 * of a stack carved from a slab (wf_config_t.guard_stacks = 0), through a
 * runaway recursion (caught by the fault handler) and through a one-off deep
 * frame followed by a switch (caught at the switch).
 */
#include "common.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#pragma GCC diagnostic ignored "-Winfinite-recursion"
static long recurse(long n)
{
    volatile char frame[1024];
    frame[0] = (char)n;
    frame[1023] = (char)n;
    return recurse(n + 1) + frame[0] + frame[1023];
}

static int runaway(void *arg, void **res)
{
    *res = (void *)(intptr_t)recurse(0);
    return 0;
}

/* One frame larger than the whole stack, filled (as a buffer in use is):
 * it runs ~28 KiB past the bottom of a 68 KiB stack without calling
 * anything, then switches away. On a slab stack nothing faults (the memory
 * below is a neighbour's stack), but the canary under our stack is gone. */
__attribute__((noinline)) static void smash_below(void)
{
    volatile char big[96 * 1024];
    memset((char *)big, 0x5a, sizeof big);
    big[0] = big[sizeof big - 1];
}

static int deep_then_yield(void *arg, void **res)
{
    smash_below();
    wf_yield();
    return 0;
}

static int idle_task(void *arg, void **res)
{
    return wf_sleep(3600 * WF_NSEC_PER_SEC);
}

typedef struct {
    wf_fn victim;
    const char *name;
} overflow_case;

static int m_overflow(void *arg, void **res)
{
    overflow_case *c = arg;
    /* With canaries only, the first stack of a slab sits on the slab's
     * guard page: occupy it (main has it) and one more, so the victim gets
     * a canary-protected stack. */
    wf_task_t pad;
    wf_spawn(&pad, idle_task, NULL, NULL);
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.name = c->name;
    wf_task_t t;
    if (wf_spawn(&t, c->victim, NULL, &o))
        return -1;
    wf_join(t, NULL, NULL);
    return 0; /* not reached: the process aborts */
}

typedef struct {
    overflow_case *c;
    long guard_stacks;
} child_args;

/* The child process of run_child: it should die in abort(). */
static int overflow_child(void *arg)
{
    child_args *a = arg;
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    cfg.guard_stacks = a->guard_stacks;
    wf_run(&cfg, m_overflow, a->c, NULL, NULL);
    return 0; /* the overflow went unnoticed */
}

/* Run the case in a child; return what it printed, and its wait status. */
static char *run_child(overflow_case *c, long guard_stacks, int *wstatus)
{
    child_args a = {c, guard_stacks};
    return run_child_stderr(overflow_child, &a, wstatus);
}

static void expect_report(overflow_case *c, long guard_stacks)
{
    int ws = 0;
    char *out = run_child(c, guard_stacks, &ws);
    char want[128];
    snprintf(want, sizeof want, "stack overflow in task '%s'", c->name);
#if WF_TEST_SANITIZED
    /* Under ASan an overflow into a neighbouring fiber's stack hits that
     * stack's poisoned redzones, and under TSan it is a write to another
     * fiber's memory: the sanitizer may report it before the canary check
     * does. The overflow is caught either way. */
    if (guard_stacks == 0 && !strstr(out, want)) {
        assert_non_null(strstr(out, "Sanitizer"));
        free(out);
        return;
    }
#endif
    if (!strstr(out, want) || !WIFSIGNALED(ws) || WTERMSIG(ws) != SIGABRT)
        fprintf(stderr, "child status %#x, stderr:\n%s\n", ws, out);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "bytes is exhausted"));
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGABRT);
    free(out);
}

static void test_guard_page_recursion(void **state)
{
    overflow_case c = {runaway, "runaway-recursion"};
    expect_report(&c, -1);
}

static void test_canary_recursion(void **state)
{
    overflow_case c = {runaway, "canary-recursion"};
    expect_report(&c, 0);
}

static void test_canary_deep_frame(void **state)
{
    overflow_case c = {deep_then_yield, "one-deep-frame"};
    expect_report(&c, 0);
}

static void test_guard_deep_frame(void **state)
{
    overflow_case c = {deep_then_yield, "guarded-deep-frame"};
    expect_report(&c, -1);
}

/* A fault that is not an overflow belongs to whoever handled SIGSEGV
 * before the runtime started: here a plain (non-SA_SIGINFO) handler that
 * repairs it, as a GC or a JIT does. It must be called every time, and the
 * runtime's reporter must stay installed after it. */
static char *foreign_page;
static volatile sig_atomic_t foreign_faults;

static void repair(int sig)
{
    (void)sig;
    foreign_faults++;
    mprotect(foreign_page, 4096, PROT_READ | PROT_WRITE);
}

static int touch_foreign(void *arg, void **res)
{
    (void)arg;
    (void)res;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(mprotect(foreign_page, 4096, PROT_NONE), 0);
        ((volatile char *)foreign_page)[i] = 'x'; /* faults; repaired by the handler */
        CHECK_EQ(foreign_page[i], 'x');
        CHECK_EQ(foreign_faults, i + 1);
        struct sigaction cur;
        CHECK_EQ(sigaction(SIGSEGV, NULL, &cur), 0);
        /* Still the runtime's reporter, not the plain handler. */
        CHECK(cur.sa_flags & SA_SIGINFO);
        CHECK(!(cur.sa_flags & SA_SIGINFO) || cur.sa_handler != repair);
    }
    return 0;
}

static void test_foreign_fault_chain(void **state)
{
    (void)state;
    foreign_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(foreign_page != MAP_FAILED);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = repair;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGSEGV, &sa, &old), 0);
    foreign_faults = 0;
    run_main(2, touch_foreign, NULL);
    assert_int_equal(foreign_faults, 3);
    /* wf_run put our handler back when it finished. */
    struct sigaction cur;
    assert_int_equal(sigaction(SIGSEGV, NULL, &cur), 0);
    assert_true(!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == repair);
    assert_int_equal(sigaction(SIGSEGV, &old, NULL), 0);
    munmap(foreign_page, 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_page_recursion),
        cmocka_unit_test(test_canary_recursion),
        cmocka_unit_test(test_canary_deep_frame),
        cmocka_unit_test(test_guard_deep_frame),
        cmocka_unit_test(test_foreign_fault_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
