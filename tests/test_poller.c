/* test_poller.c - waiting on file descriptors through the poller.
 *
 * meson runs it twice: as `poller`, and as `poller-pwait` with
 * WF_POLLER_NO_PWAIT2=1 (the epoll_pwait fallback; test_pwait_mode checks
 * that it is really in use). */
#include "common.h"
#include "poller.h"

#include <fcntl.h>
#include <sys/socket.h>

static int make_pipe(int p[2])
{
    return pipe2(p, O_NONBLOCK | O_CLOEXEC);
}

/* read() and write() returning -errno. A fiber may resume on another
 * worker after any wait, and errno is per thread: glibc declares
 * __errno_location() const, so in a loop around a wait the compiler may
 * keep the first thread's errno address throughout (io.h). Not inlined,
 * each call reads the errno of the thread that made the system call. */
static __attribute__((noinline)) ssize_t sys_read(int fd, void *buf, size_t n)
{
    ssize_t r = read(fd, buf, n);
    return r < 0 ? -errno : r;
}

static __attribute__((noinline)) ssize_t sys_write(int fd, const void *buf, size_t n)
{
    ssize_t r = write(fd, buf, n);
    return r < 0 ? -errno : r;
}

/* Read exactly n bytes from a non-blocking fd, waiting through the poller. */
static int read_full(int fd, char *buf, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = sys_read(fd, buf + got, n - got);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0)
            return -EPIPE;
        if (r != -EAGAIN)
            return (int)r;
        int e = wf_wait_readable(fd, deadline);
        if (e)
            return e;
    }
    return 0;
}

static int write_full(int fd, const char *buf, size_t n, int64_t deadline)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = sys_write(fd, buf + put, n - put);
        if (r > 0) {
            put += (size_t)r;
            continue;
        }
        if (r != -EAGAIN)
            return r < 0 ? (int)r : -EIO;
        int e = wf_wait_writable(fd, deadline);
        if (e)
            return e;
    }
    return 0;
}

/* --- basics ------------------------------------------------------------------ */

static int delayed_writer(void *arg, void **res)
{
    int fd = (int)(intptr_t)arg;
    wf_sleep(5 * WF_NSEC_PER_MSEC);
    return sys_write(fd, "hello", 5) == 5 ? 0 : -EIO;
}

static int m_basic(void *arg, void **res)
{
    int p[2];
    CHECK_EQ(make_pipe(p), 0);
    /* Nothing to read: a deadline of 0 polls, a short one times out. */
    CHECK_EQ(wf_wait_readable(p[0], 0), -ETIMEDOUT);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_wait_readable(p[0], wf_deadline_in(3 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 3 * WF_NSEC_PER_MSEC);
    /* An empty pipe is writable. */
    CHECK_EQ(wf_wait_writable(p[1], wf_deadline_in(WF_NSEC_PER_SEC)), 0);
    /* Readable once a writer writes. */
    wf_task_t w;
    CHECK_EQ(wf_spawn(&w, delayed_writer, (void *)(intptr_t)p[1], NULL), 0);
    char buf[5];
    CHECK_EQ(read_full(p[0], buf, 5, wf_deadline_in(10 * WF_NSEC_PER_SEC)), 0);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(wf_join(w, NULL, NULL), 0);
    /* Hang-up wakes a reader: read then returns 0. */
    CHECK_EQ(close(p[1]), 0);
    CHECK_EQ(wf_wait_readable(p[0], wf_deadline_in(10 * WF_NSEC_PER_SEC)), 0);
    CHECK_EQ(read(p[0], buf, 1), 0);
    CHECK_EQ(wf_fd_close(p[0]), 0);
    return 0;
}

static void test_basic(void **state)
{
    run_main(0, m_basic, NULL);
}

/* --- errors ------------------------------------------------------------------ */

static int waits_readable(void *arg, void **res)
{
    int fd = (int)(intptr_t)arg;
    return wf_wait_readable(fd, WF_FOREVER);
}

static int m_errors(void *arg, void **res)
{
    CHECK_EQ(wf_wait_readable(-1, 0), -EBADF);
    CHECK_EQ(wf_wait_writable(-5, 0), -EBADF);
    CHECK_EQ(wf_wait_readable(1 << 30, 0), -EBADF);
    CHECK_EQ(wf_fd_forget(-1), -EBADF);
    CHECK_EQ(wf_fd_forget(12345), 0); /* never waited on: harmless */
    /* Not open. */
    int p[2];
    CHECK_EQ(make_pipe(p), 0);
    int closed = p[0];
    CHECK_EQ(close(p[1]), 0);
    CHECK_EQ(close(closed), 0);
    CHECK_EQ(wf_wait_readable(closed, 0), -EBADF);
    CHECK_EQ(wf_fd_forget(closed), 0);
    /* Files epoll cannot wait on (always ready for the kernel): a regular
     * file, a directory, /dev/null. -EOPNOTSUPP, whatever the deadline,
     * in both directions, every time (nothing is left registered). */
    char path[] = "/tmp/weft-test-XXXXXX";
    int unpollable[3];
    unpollable[0] = mkstemp(path);
    CHECK(unpollable[0] >= 0);
    unlink(path);
    unpollable[1] = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    unpollable[2] = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int i = 0; i < 3; i++) {
        int f = unpollable[i];
        CHECK(f >= 0);
        for (int round = 0; round < 2; round++) {
            CHECK_EQ(wf_wait_readable(f, 0), -EOPNOTSUPP);
            CHECK_EQ(wf_wait_writable(f, 0), -EOPNOTSUPP);
            CHECK_EQ(wf_wait_readable(f, wf_deadline_in(WF_NSEC_PER_SEC)), -EOPNOTSUPP);
            CHECK_EQ(wf_wait_writable(f, WF_FOREVER), -EOPNOTSUPP);
        }
        CHECK_EQ(wf_fd_close(f), 0);
    }
    /* Bad deadline. */
    CHECK_EQ(make_pipe(p), 0);
    CHECK_EQ(wf_wait_readable(p[0], -3), -EINVAL);
    /* One reader per fd at a time. */
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, waits_readable, (void *)(intptr_t)p[0], NULL), 0);
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_wait_readable(p[0], 0), -EBUSY);
    /* ...but the write side is free. */
    CHECK_EQ(wf_wait_writable(p[0], 0), -ETIMEDOUT); /* a read end never gets writable */
    /* Closing the fd under a waiter wakes it with -EBADF. */
    CHECK_EQ(wf_fd_close(p[0]), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -EBADF);
    CHECK_EQ(close(p[1]), 0);
    return 0;
}

static void test_errors(void **state)
{
    run_main(0, m_errors, NULL);
}

/* -EPERM is for callers that are not fibers: a thread outside any runtime,
 * and a timer callback (it runs on a runtime thread, in no fiber). */
typedef struct {
    int fd;
    int readable, writable;
    _Atomic int done;
} cb_wait;

static void waits_in_callback(void *arg)
{
    cb_wait *c = arg;
    c->readable = wf_wait_readable(c->fd, 0);
    c->writable = wf_wait_writable(c->fd, WF_FOREVER);
    atomic_store(&c->done, 1);
}

static int m_not_a_fiber(void *arg, void **res)
{
    int p[2];
    CHECK_EQ(make_pipe(p), 0);
    cb_wait c = {.fd = p[0]};
    wf_timer_t tm = WF_TIMER_INIT;
    CHECK_EQ(wf_timer_start(&tm, 0, waits_in_callback, &c), 0);
    CHECK(wait_flag(&c.done, 30 * WF_NSEC_PER_SEC));
    CHECK_EQ(c.readable, -EPERM);
    CHECK_EQ(c.writable, -EPERM);
    CHECK_EQ(wf_fd_close(p[0]), 0);
    CHECK_EQ(wf_fd_close(p[1]), 0);
    return 0;
}

static void test_not_a_fiber(void **state)
{
    int p[2];
    assert_int_equal(make_pipe(p), 0);
    assert_int_equal(wf_wait_readable(p[0], 0), -EPERM);
    assert_int_equal(wf_wait_writable(p[1], WF_FOREVER), -EPERM);
    assert_int_equal(wf_fd_forget(p[0]), -EPERM);
    /* A regular file too: the caller is checked first. */
    int f = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(f >= 0);
    assert_int_equal(wf_wait_readable(f, 0), -EPERM);
    close(f);
    close(p[0]);
    close(p[1]);
    run_main(0, m_not_a_fiber, NULL);
}

/* Which system call the poller sleeps in: with WF_POLLER_NO_PWAIT2=1 (the
 * poller-pwait run) it must be the epoll_pwait fallback. Without it,
 * epoll_pwait2 unless the kernel or a tool (valgrind 3.19) lacks it. */
static int m_pwait_mode(void *arg, void **res)
{
    const char *env = getenv("WF_POLLER_NO_PWAIT2");
    bool forced = env && !strcmp(env, "1");
    /* A round of the poller's loop, so a missing epoll_pwait2 has been
     * tried and found out already. */
    CHECK_EQ(wf_sleep(2 * WF_NSEC_PER_MSEC), 0);
    int r = wf__poller_uses_pwait2();
    CHECK(r == 0 || r == 1);
    if (forced)
        CHECK_EQ(r, 0);
    fprintf(stderr, "poller sleeps in %s%s\n", r == 1 ? "epoll_pwait2" : "epoll_pwait (fallback)",
            forced ? " (forced by WF_POLLER_NO_PWAIT2=1)" : "");
    /* And fds are waited on as usual. */
    int p[2];
    CHECK_EQ(make_pipe(p), 0);
    wf_task_t w;
    CHECK_EQ(wf_spawn(&w, delayed_writer, (void *)(intptr_t)p[1], NULL), 0);
    char buf[5];
    CHECK_EQ(read_full(p[0], buf, 5, wf_deadline_in(30 * WF_NSEC_PER_SEC)), 0);
    CHECK_EQ(wf_join(w, NULL, NULL), 0);
    CHECK_EQ(wf_fd_close(p[0]), 0);
    CHECK_EQ(wf_fd_close(p[1]), 0);
    return 0;
}

static void test_pwait_mode(void **state)
{
    assert_int_equal(wf__poller_uses_pwait2(), -EPERM); /* outside a runtime */
    run_main(0, m_pwait_mode, NULL);
}

/* --- cancellation ---------------------------------------------------------------- */

static int m_cancel(void *arg, void **res)
{
    int p[2];
    CHECK_EQ(make_pipe(p), 0);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, waits_readable, (void *)(intptr_t)p[0], NULL), 0);
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    /* The fd is usable again: the cancelled waiter left nothing behind. */
    CHECK_EQ(write(p[1], "z", 1), 1);
    CHECK_EQ(wf_wait_readable(p[0], wf_deadline_in(10 * WF_NSEC_PER_SEC)), 0);
    CHECK_EQ(wf_fd_close(p[0]), 0);
    CHECK_EQ(wf_fd_close(p[1]), 0);
    return 0;
}

static void test_cancel(void **state)
{
    run_main(0, m_cancel, NULL);
}

/* --- backpressure: fill the pipe, wait writable, drain -------------------------- */

enum { BULK = 4 << 20 };

static int bulk_reader(void *arg, void **res)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(65536);
    size_t total = 0;
    uint64_t sum = 0;
    for (;;) {
        ssize_t r = sys_read(fd, buf, 65536);
        if (r > 0) {
            for (ssize_t i = 0; i < r; i++)
                sum += (unsigned char)buf[i];
            total += (size_t)r;
            continue;
        }
        if (r == 0)
            break;
        if (r != -EAGAIN) {
            free(buf);
            return (int)r;
        }
        int e = wf_wait_readable(fd, wf_deadline_in(30 * WF_NSEC_PER_SEC));
        if (e) {
            free(buf);
            return e;
        }
    }
    free(buf);
    *res = (void *)(uintptr_t)sum;
    return total == BULK ? 0 : -EIO;
}

static int m_bulk(void *arg, void **res)
{
    int p[2];
    CHECK_EQ(make_pipe(p), 0);
    wf_task_t r;
    CHECK_EQ(wf_spawn(&r, bulk_reader, (void *)(intptr_t)p[0], NULL), 0);
    char *data = malloc(BULK);
    uint64_t sum = 0;
    for (size_t i = 0; i < BULK; i++) {
        data[i] = (char)(i * 31 + 7);
        sum += (unsigned char)data[i];
    }
    CHECK_EQ(write_full(p[1], data, BULK, wf_deadline_in(30 * WF_NSEC_PER_SEC)), 0);
    CHECK_EQ(wf_fd_close(p[1]), 0);
    int st = -1;
    void *rsum = NULL;
    CHECK_EQ(wf_join(r, &st, &rsum), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ((uint64_t)(uintptr_t)rsum, sum);
    CHECK_EQ(wf_fd_close(p[0]), 0);
    free(data);
    return 0;
}

static void test_bulk(void **state)
{
    run_main(0, m_bulk, NULL);
}

/* --- many socket pairs ping-ponging across all workers: no lost edge ----------- */

typedef struct {
    int fd;
    long rounds;
    bool starts;
} pp_end;

static int pp_run(void *arg, void **res)
{
    pp_end *e = arg;
    int64_t dl = wf_deadline_in(60 * WF_NSEC_PER_SEC);
    uint32_t token = 0;
    for (long i = 0; i < e->rounds; i++) {
        if (e->starts) {
            token = (uint32_t)i;
            int w = write_full(e->fd, (char *)&token, 4, dl);
            if (w)
                return w;
            uint32_t back;
            int r = read_full(e->fd, (char *)&back, 4, dl);
            if (r)
                return r;
            if (back != token + 1)
                return -EPROTO;
        } else {
            uint32_t got;
            int r = read_full(e->fd, (char *)&got, 4, dl);
            if (r)
                return r;
            if (got != (uint32_t)i)
                return -EPROTO;
            got++;
            int w = write_full(e->fd, (char *)&got, 4, dl);
            if (w)
                return w;
        }
    }
    return 0;
}

static int m_socket_storm(void *arg, void **res)
{
    enum { PAIRS = 64 };
    long rounds = SCALED(2000);
    pp_end ends[PAIRS][2];
    wf_task_t t[PAIRS][2];
    for (int i = 0; i < PAIRS; i++) {
        int sv[2];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        for (int j = 0; j < 2; j++) {
            ends[i][j].fd = sv[j];
            ends[i][j].rounds = rounds;
            ends[i][j].starts = j == 0;
            CHECK_EQ(wf_spawn(&t[i][j], pp_run, &ends[i][j], NULL), 0);
        }
    }
    for (int i = 0; i < PAIRS; i++)
        for (int j = 0; j < 2; j++) {
            int st = -1;
            CHECK_EQ(wf_join(t[i][j], &st, NULL), 0);
            CHECK_EQ(st, 0);
            CHECK_EQ(wf_fd_close(ends[i][j].fd), 0);
        }
    return 0;
}

static void test_socket_storm(void **state)
{
    run_main(0, m_socket_storm, NULL);
}

static void test_socket_storm_4_workers(void **state)
{
    run_main(4, m_socket_storm, NULL);
}

/* fd numbers are reused: forget, close, reopen under the same number. */
static int m_reuse(void *arg, void **res)
{
    for (int i = 0; i < 200; i++) {
        int p[2];
        CHECK_EQ(make_pipe(p), 0);
        wf_task_t w;
        CHECK_EQ(wf_spawn(&w, delayed_writer, (void *)(intptr_t)p[1], NULL), 0);
        char buf[5];
        CHECK_EQ(read_full(p[0], buf, 5, wf_deadline_in(10 * WF_NSEC_PER_SEC)), 0);
        CHECK_EQ(wf_join(w, NULL, NULL), 0);
        CHECK_EQ(wf_fd_close(p[0]), 0);
        CHECK_EQ(wf_fd_close(p[1]), 0);
        if (i % 50 == 0)
            wf_yield();
    }
    return 0;
}

static void test_fd_reuse(void **state)
{
    run_main(0, m_reuse, NULL);
}

/* A harvest whose first ready task is pinned (here or elsewhere) while
 * the rest are not: the harvesting worker queued the rest on its own ring
 * and returned nothing to run, and its search then stole into that
 * non-empty queue: runq.c's invariant aborted the process (a review found
 * it; it failed in the first round every time). Now it runs one of the
 * rest. */
static int pinned_fd_waiter(void *arg, void **res)
{
    int fd = (int)(intptr_t)arg;
    int r = wf_wait_readable(fd, wf_deadline_in(10 * WF_NSEC_PER_SEC));
    char c;
    CHECK_EQ(read(fd, &c, 1), 1);
    return r;
}

static int m_harvest_pinned_first(void *arg, void **res)
{
    for (int round = 0; round < 400; round++) {
        int sp[2][2];
        for (int i = 0; i < 2; i++)
            CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp[i]), 0);
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.worker = round & 1;
        wf_task_t t[2];
        CHECK_EQ(wf_spawn(&t[0], pinned_fd_waiter, (void *)(intptr_t)sp[0][0], &o), 0);
        CHECK_EQ(wf_spawn(&t[1], pinned_fd_waiter, (void *)(intptr_t)sp[1][0], NULL), 0);
        int64_t deadline = wf_deadline_in(10 * WF_NSEC_PER_SEC);
        for (int i = 0; i < 2; i++)
            while (wf_task_state(t[i]) != WF_TASK_PARKED && wf_now() < deadline)
                wf_yield();
        for (int i = 0; i < 2; i++)
            CHECK_EQ(write(sp[i][1], "x", 1), 1); /* both ready for one harvest */
        for (int i = 0; i < 2; i++) {
            int st = -1;
            CHECK_EQ(wf_join(t[i], &st, NULL), 0);
            CHECK_EQ(st, 0);
        }
        for (int i = 0; i < 2; i++) {
            CHECK_EQ(wf_fd_close(sp[i][0]), 0);
            CHECK_EQ(close(sp[i][1]), 0);
        }
    }
    return 0;
}

static void test_harvest_pinned_first(void **state)
{
    run_main(2, m_harvest_pinned_first, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),         cmocka_unit_test(test_errors),
        cmocka_unit_test(test_not_a_fiber),   cmocka_unit_test(test_pwait_mode),
        cmocka_unit_test(test_cancel),        cmocka_unit_test(test_bulk),
        cmocka_unit_test(test_socket_storm),  cmocka_unit_test(test_socket_storm_4_workers),
        cmocka_unit_test(test_fd_reuse),     cmocka_unit_test(test_harvest_pinned_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
