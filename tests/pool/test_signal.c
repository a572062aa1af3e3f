/* test_signal.c - signals for fibers (weft/signal.h): a signal delivered to
 * a waiting fiber and counted for a later wait; several subscriptions; a
 * handler task per signal; real-time signals queued; the signal blocked in
 * every runtime thread (read from /proc) and wf_run's caller getting its
 * mask back; deliveries nobody takes dropped, not fatal; bad input; and
 * cfg.shutdown_on_signal: SIGTERM cancels main for a graceful shutdown, and
 * a second SIGINT ends the process (in a child). Every fd and thread is
 * counted before and after. */
#include "pool_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <weft/signal.h>

/* Wait (yielding) until a task is parked: it is in its wait. */
static bool wait_parked(wf_task_t t)
{
    int64_t dl = wf_deadline_in(LONG_NS);
    while (wf_task_state(t) != WF_TASK_PARKED) {
        if (wf_now() > dl)
            return false;
        wf_sleep(100 * WF_NSEC_PER_USEC);
    }
    return true;
}

typedef struct {
    wf_signal_t *s;
    int r;
} waiter_ctx;

static int waiter(void *arg, void **res)
{
    waiter_ctx *w = arg;
    w->r = wf_signal_wait(w->s, wf_deadline_in(LONG_NS));
    return 0;
}

static int m_wait(void *arg, void **res)
{
    wf_signal_t *s;
    CHECK_EQ(wf_signal_open(&s, SIGUSR1), 0);
    for (int round = 0; round < 5; round++) {
        /* A fiber parked in the wait is woken by the signal. */
        waiter_ctx w = {.s = s, .r = 1};
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, waiter, &w, NULL), 0);
        CHECK(wait_parked(t));
        CHECK_EQ(kill(getpid(), SIGUSR1), 0);
        CHECK_EQ(wf_join(t, NULL, NULL), 0);
        CHECK_EQ(w.r, 0);
    }
    /* A delivery while nobody waits is kept for the next wait. */
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(wf_signal_wait(s, wf_deadline_in(LONG_NS)), 0);
    /* Nothing more is pending. */
    CHECK_EQ(wf_signal_wait(s, 0), -ETIMEDOUT);
    CHECK_EQ(wf_signal_wait(s, wf_deadline_in(WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK_EQ(wf_signal_close(s), 0);
    return 0;
}

static void test_wait(void **state)
{
    run_counted(NULL, 2, m_wait, NULL);
}

/* Two subscriptions to one signal both get every delivery; one to another
 * signal gets none of them. */
static int m_broadcast(void *arg, void **res)
{
    wf_signal_t *a, *b, *other;
    CHECK_EQ(wf_signal_open(&a, SIGUSR2), 0);
    CHECK_EQ(wf_signal_open(&b, SIGUSR2), 0);
    CHECK_EQ(wf_signal_open(&other, SIGHUP), 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(kill(getpid(), SIGUSR2), 0);
        CHECK_EQ(wf_signal_wait(a, wf_deadline_in(LONG_NS)), 0);
        CHECK_EQ(wf_signal_wait(b, wf_deadline_in(LONG_NS)), 0);
    }
    CHECK_EQ(wf_signal_wait(other, 0), -ETIMEDOUT);
    CHECK_EQ(wf_signal_close(a), 0);
    /* After a close, the other subscription still gets them. */
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    CHECK_EQ(wf_signal_wait(b, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_signal_close(b), 0);
    /* SIGHUP: its own subscription. */
    CHECK_EQ(kill(getpid(), SIGHUP), 0);
    CHECK_EQ(wf_signal_wait(other, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_signal_close(other), 0);
    return 0;
}

static void test_broadcast(void **state)
{
    run_counted(NULL, 4, m_broadcast, NULL);
}

/* Real-time signals are queued each: five sent before the wait are five
 * deliveries. */
static int m_realtime(void *arg, void **res)
{
    int sig = SIGRTMIN + 2;
    wf_signal_t *s;
    CHECK_EQ(wf_signal_open(&s, sig), 0);
    for (int i = 0; i < 5; i++) {
        union sigval v = {.sival_int = i};
        CHECK_EQ(sigqueue(getpid(), sig, v), 0);
    }
    for (int i = 0; i < 5; i++)
        CHECK_EQ(wf_signal_wait(s, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_signal_wait(s, wf_deadline_in(WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK_EQ(wf_signal_close(s), 0);
    return 0;
}

static void test_realtime(void **state)
{
    run_counted(NULL, 2, m_realtime, NULL);
}

/* --- handlers ------------------------------------------------------------------- */

typedef struct {
    _Atomic long ran, ran_other;
    _Atomic long in_fiber; /* the handler ran as a task */
} handler_ctx;

static int on_usr2(void *arg, void **res)
{
    handler_ctx *h = arg;
    if (wf_self() != WF_TASK_NONE && wf_sleep(0) == 0) /* a task: it may wait */
        atomic_fetch_add(&h->in_fiber, 1);
    atomic_fetch_add(&h->ran, 1);
    return 0;
}

static int on_usr2_other(void *arg, void **res)
{
    handler_ctx *h = arg;
    atomic_fetch_add(&h->ran_other, 1);
    return 0;
}

static int m_handlers(void *arg, void **res)
{
    enum { N = 20 };
    handler_ctx h = {0};
    wf_signal_t *watch;
    CHECK_EQ(wf_signal_open(&watch, SIGUSR2), 0);
    CHECK_EQ(wf_signal_add_handler(SIGUSR2, on_usr2, &h), 0);
    /* One handler task per signal: each signal is sent once the previous
     * one's handler has run (classic signals sent together coalesce). */
    for (long i = 1; i <= N; i++) {
        CHECK_EQ(kill(getpid(), SIGUSR2), 0);
        CHECK(wait_count(&h.ran, i, LONG_NS));
        CHECK_EQ(wf_signal_wait(watch, wf_deadline_in(LONG_NS)), 0);
    }
    CHECK_EQ(atomic_load(&h.ran), N);
    CHECK_EQ(atomic_load(&h.in_fiber), N);
    /* Replacing the handler. */
    CHECK_EQ(wf_signal_add_handler(SIGUSR2, on_usr2_other, &h), 0);
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    CHECK(wait_count(&h.ran_other, 1, LONG_NS));
    CHECK_EQ(wf_signal_wait(watch, wf_deadline_in(LONG_NS)), 0);
    /* Removing it: deliveries go on (the subscription sees them), the
     * handler runs no more. */
    CHECK_EQ(wf_signal_remove_handler(SIGUSR2), 0);
    CHECK_EQ(wf_signal_remove_handler(SIGUSR2), -ENOENT);
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    CHECK_EQ(wf_signal_wait(watch, wf_deadline_in(LONG_NS)), 0);
    wf_sleep(WF_NSEC_PER_MSEC);
    CHECK_EQ(atomic_load(&h.ran), N);
    CHECK_EQ(atomic_load(&h.ran_other), 1);
    CHECK_EQ(wf_signal_close(watch), 0);
    return 0;
}

static void test_handlers(void **state)
{
    run_counted(NULL, 2, m_handlers, NULL);
}

/* --- masks ------------------------------------------------------------------------ */

/* The blocked-signal mask (SigBlk) of thread `tid` ("self" for the
 * calling thread), or 0 if it cannot be read. */
static uint64_t sigblk(const char *tid)
{
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    uint64_t m = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "SigBlk: %lx", &m) == 1)
            break;
    fclose(f);
    return m;
}

static uint64_t bit(int sig)
{
    return 1ull << (sig - 1);
}

/* Every thread whose name starts with wf- blocks `sig`: the count of those
 * that do not. */
static int wf_threads_not_blocking(int sig, int *seen)
{
    DIR *d = opendir("/proc/self/task");
    int bad = 0;
    *seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof comm, f))
            comm[0] = 0;
        fclose(f);
        if (strncmp(comm, "wf-", 3))
            continue;
        (*seen)++;
        if (!(sigblk(e->d_name) & bit(sig)))
            bad++;
    }
    closedir(d);
    return bad;
}

static int start_pool_thread(void *arg, void **res)
{
    return 0;
}

static int m_masks(void *arg, void **res)
{
    int seen = 0;
    /* Every worker has run (and so named itself: test_threads.c). */
    for (int i = 0; i < 4; i++) {
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.worker = i;
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, start_pool_thread, NULL, &o), 0);
        CHECK_EQ(wf_join(t, NULL, NULL), 0);
    }
    /* The poller has named itself (it may not have run yet: since the
     * workers harvest the epoll themselves, no wait proves it has). */
    int64_t dl = wf_deadline_in(LONG_NS);
    while (threads_named("wf-poller") != 1 && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    /* A pool thread too. */
    CHECK_EQ(wf_to_thread(start_pool_thread, NULL, NULL, NULL), 0);
    /* Before: SIGUSR1 is blocked by the poller and the pool thread (every
     * asynchronous signal), not by the workers. */
    CHECK_EQ(wf_threads_not_blocking(SIGUSR1, &seen), 4);
    CHECK_EQ(seen, 6);
    wf_signal_t *s;
    CHECK_EQ(wf_signal_open(&s, SIGUSR1), 0);
    /* After: by every runtime thread (4 workers, the poller, the pool). */
    CHECK_EQ(wf_threads_not_blocking(SIGUSR1, &seen), 0);
    CHECK_EQ(seen, 6);
    /* Faults are never blocked. */
    CHECK(wf_threads_not_blocking(SIGSEGV, &seen) == seen);
    CHECK_EQ(wf_signal_close(s), 0);
    /* Closing the last subscription leaves it blocked (and caught). */
    CHECK_EQ(wf_threads_not_blocking(SIGUSR1, &seen), 0);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0); /* read and dropped, not fatal */
    /* wf_run's own thread blocks every asynchronous signal meanwhile. */
    CHECK(sigblk((const char *)arg) & bit(SIGUSR1));
    CHECK(sigblk((const char *)arg) & bit(SIGTERM));
    CHECK(!(sigblk((const char *)arg) & bit(SIGSEGV)));
    return 0;
}

static void test_masks(void **state)
{
    char tid[32];
    snprintf(tid, sizeof tid, "%ld", (long)gettid());
    uint64_t before = sigblk(tid);
    run_counted(NULL, 4, m_masks, tid);
    /* wf_run's caller has its mask back. */
    assert_true(sigblk(tid) == before);
}

/* A signal sent just before main returns: wf_run drops it instead of
 * letting it reach its caller's restored mask (SIGUSR1's default action
 * would end this process). */
static int m_late(void *arg, void **res)
{
    wf_signal_t *s;
    CHECK_EQ(wf_signal_open(&s, SIGUSR1), 0);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    return 0; /* s left open: wf_run frees it */
}

static void test_late(void **state)
{
    for (int i = 0; i < 10; i++)
        run_counted(NULL, 2, m_late, NULL);
}

/* --- bad input --------------------------------------------------------------------- */

static int waits_forever(void *arg, void **res)
{
    return wf_signal_wait((wf_signal_t *)arg, WF_FOREVER);
}

static int m_errors(void *arg, void **res)
{
    wf_signal_t *s = NULL;
    static const int bad[] = {0,       -1,     SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                              SIGTRAP, SIGSYS, SIGABRT, 32,      33,      65,     1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(wf_signal_open(&s, bad[i]), -EINVAL);
        CHECK_EQ(wf_signal_add_handler(bad[i], on_usr2, NULL), -EINVAL);
    }
    CHECK_EQ(wf_signal_open(NULL, SIGUSR1), -EINVAL);
    CHECK_EQ(wf_signal_add_handler(SIGUSR1, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_signal_remove_handler(0), -EINVAL);
    CHECK_EQ(wf_signal_remove_handler(65), -EINVAL);
    CHECK_EQ(wf_signal_remove_handler(SIGUSR1), -ENOENT);
    CHECK_EQ(wf_signal_wait(NULL, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_signal_close(NULL), -EINVAL);
    /* SIGINT and SIGTERM are the program's without the shutdown option. */
    CHECK_EQ(wf_signal_open(&s, SIGINT), 0);
    CHECK_EQ(wf_signal_wait(s, -9), -EINVAL);
    /* One waiter at a time; no close under a waiter. */
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, waits_forever, s, NULL), 0);
    CHECK(wait_parked(t));
    CHECK_EQ(wf_signal_wait(s, 0), -EBUSY);
    CHECK_EQ(wf_signal_close(s), -EBUSY);
    /* Cancelling the waiter: -ECANCELED, and it no longer waits. */
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_signal_close(s), 0);
    return 0;
}

static void test_errors(void **state)
{
    wf_signal_t *s;
    assert_int_equal(wf_signal_open(&s, SIGUSR1), -EPERM);
    assert_int_equal(wf_signal_add_handler(SIGUSR1, on_usr2, NULL), -EPERM);
    assert_int_equal(wf_signal_remove_handler(SIGUSR1), -EPERM);
    assert_int_equal(wf_signal_wait((wf_signal_t *)&s, 0), -EPERM);
    assert_int_equal(wf_signal_close((wf_signal_t *)&s), -EPERM);
    run_counted(NULL, 2, m_errors, NULL);
}

/* --- shutdown on a signal ------------------------------------------------------------- */

typedef struct {
    _Atomic int other_cancelled;
} shutdown_ctx;

static int other_task(void *arg, void **res)
{
    shutdown_ctx *c = arg;
    if (wf_sleep(3600 * WF_NSEC_PER_SEC) == -ECANCELED)
        atomic_store(&c->other_cancelled, 1);
    return 0;
}

static int m_sigterm(void *arg, void **res)
{
    shutdown_ctx *c = arg;
    wf_signal_t *s;
    CHECK_EQ(wf_signal_open(&s, SIGTERM), -EBUSY);
    CHECK_EQ(wf_signal_open(&s, SIGINT), -EBUSY);
    CHECK_EQ(wf_signal_add_handler(SIGINT, on_usr2, NULL), -EBUSY);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, other_task, c, NULL), 0);
    CHECK_EQ(wf_detach(t), 0);
    CHECK_EQ(kill(getpid(), SIGTERM), 0);
    /* Main is cancelled: its wait ends. */
    CHECK_EQ(wf_sleep(3600 * WF_NSEC_PER_SEC), -ECANCELED);
    const char *msg = NULL;
    CHECK_EQ(wf_cancel_message(wf_self(), &msg), 0);
    CHECK(msg && strcmp(msg, "SIGTERM") == 0);
    return -ECANCELED;
}

static void test_shutdown_sigterm(void **state)
{
    long fds = fd_count(), threads = thread_count();
    shutdown_ctx c = {0};
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    cfg.shutdown_on_signal = true;
    int st = 0;
    atomic_store(&check_failures, 0);
    assert_int_equal(wf_run(&cfg, m_sigterm, &c, &st, NULL), 0);
    assert_int_equal(st, -ECANCELED);
    assert_int_equal(atomic_load(&check_failures), 0);
    assert_int_equal(atomic_load(&c.other_cancelled), 1); /* the rest wound down */
    assert_int_equal(fd_count(), fds);
    assert_int_equal(thread_count(), threads);
}

/* A main that ignores its cancellation: the second SIGINT ends the
 * process, with SIGINT's default action. Run in a child (forked between
 * runtimes, when this process has one thread). */
static int m_stubborn(void *arg, void **res)
{
    CHECK_EQ(kill(getpid(), SIGINT), 0);
    if (wf_sleep(3600 * WF_NSEC_PER_SEC) != -ECANCELED)
        return 1;
    wf_uncancel(); /* ignore it */
    CHECK_EQ(kill(getpid(), SIGINT), 0);
    for (;;)
        wf_sleep(3600 * WF_NSEC_PER_SEC);
    return 2;
}

static void test_second_signal(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        wf_config_t cfg;
        wf_config_init(&cfg);
        cfg.workers = 2;
        cfg.shutdown_on_signal = true;
        wf_run(&cfg, m_stubborn, NULL, NULL, NULL);
        _exit(3); /* never: the process ends by SIGINT */
    }
    int ws = 0;
    pid_t r = 0;
    int64_t dl = wf_deadline_in(LONG_NS);
    while ((r = waitpid(pid, &ws, WNOHANG)) == 0 && wf_now() < dl) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &ws, 0);
        fail_msg("the child did not end after two SIGINTs");
    }
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGINT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait),          cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_realtime),      cmocka_unit_test(test_handlers),
        cmocka_unit_test(test_masks),         cmocka_unit_test(test_late),
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_shutdown_sigterm),
        cmocka_unit_test(test_second_signal),
    };
    return cmocka_run_group_tests(tests, warm_up, NULL);
}
