/* test_fdreuse.c - an fd waited on and then closed with plain close() (no
 * wf_fd_forget) leaves its number to the next open(); waits on the new fd
 * must still wake (poller.c, ensure_registered).
 *
 * A lost wake-up shows as -ETIMEDOUT after a generous deadline: every wait
 * here has a peer that makes the fd ready once the waiter has parked. */
#include "common.h"

#include <fcntl.h>
#include <sys/socket.h>

#define GENEROUS (30 * WF_NSEC_PER_SEC)

/* read() and write() returning -errno. A fiber may resume on another
 * worker after any call that parks, and errno is per thread: glibc declares
 * __errno_location() const, so within one function the compiler may keep
 * the first thread's errno address across the wait (it did, here: a stale
 * EEXIST from another worker's epoll_ctl). Not inlined, each call reads
 * the errno of the thread that made the system call. */
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

/* Readiness of a new fd in both directions, each only after the waiter
 * parked: a peer task looks at the waiter's state and acts once it reads
 * WF_TASK_PARKED (the waiter parks nowhere else). */
typedef struct {
    wf_task_t waiter;
    int fd;     /* the peer's end */
    size_t len; /* bytes to read (drain) instead of writing one */
} peer_job;

static int peer(void *arg, void **res)
{
    peer_job *j = arg;
    int64_t dl = wf_deadline_in(GENEROUS);
    int st;
    while ((st = wf_task_state(j->waiter)) != WF_TASK_PARKED) {
        if (st < 0 || wf_now() > dl)
            return st < 0 ? st : -ETIMEDOUT;
        wf_yield();
    }
    if (j->len == 0) {
        ssize_t w = sys_write(j->fd, "x", 1);
        return w == 1 ? 0 : w < 0 ? (int)w : -EIO;
    }
    char buf[4096];
    size_t got = 0;
    while (got < j->len) {
        ssize_t r = sys_read(j->fd, buf, sizeof buf < j->len - got ? sizeof buf : j->len - got);
        if (r <= 0)
            return r == 0 ? -EPIPE : (int)r; /* the data is all there: never -EAGAIN */
        got += (size_t)r;
    }
    return 0;
}

/* Open a pair: a pipe (even kinds) or a socketpair (odd), non-blocking.
 * p[0] is read, p[1] written. Pipes are shrunk to one page so that filling
 * one is quick. Not inlined: it reads errno (see sys_read). */
static __attribute__((noinline)) int open_pair(int kind, int p[2])
{
    if (kind % 2 == 0) {
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
            return -errno;
        (void)fcntl(p[1], F_SETPIPE_SZ, 4096);
        return 0;
    }
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p) < 0 ? -errno : 0;
}

/* Wait once on each end of a fresh pair so that both are registered, then
 * close them plainly: their numbers now have stale records. Returns 0 or a
 * negative errno. */
static int wait_then_close(int kind, int old[2])
{
    int e = open_pair(kind, old);
    if (e)
        return e;
    /* Writable at once (an empty buffer), readable once it holds a byte:
     * each wait returns 0, through a park or through a recorded edge. */
    if ((e = wf_wait_writable(old[1], wf_deadline_in(GENEROUS))) != 0)
        return e;
    if (sys_write(old[1], "o", 1) != 1)
        return -EIO;
    if ((e = wf_wait_readable(old[0], wf_deadline_in(GENEROUS))) != 0)
        return e;
    close(old[0]);
    close(old[1]);
    return 0;
}

/* Wait on the new pair's read end until a peer writes, then on its write
 * end (filled first) until a peer drains it. Returns 0 or -errno (a lost
 * wake-up: -ETIMEDOUT). `waits` counts the waits that returned 0. */
static int wait_new_pair(int p[2], long *waits)
{
    char c;
    if (sys_read(p[0], &c, 1) != -EAGAIN)
        return -EPROTO; /* a new pair holds nothing */
    peer_job j = {.waiter = wf_self(), .fd = p[1], .len = 0};
    wf_task_t t;
    int e = wf_spawn(&t, peer, &j, NULL);
    if (e)
        return e;
    int w;
    ssize_t r;
    for (;;) {
        /* 0 may be spurious (an edge of the old file): read again. */
        if ((w = wf_wait_readable(p[0], wf_deadline_in(GENEROUS))) != 0)
            break;
        (*waits)++;
        if ((r = sys_read(p[0], &c, 1)) == 1)
            break;
        if (r != -EAGAIN) {
            w = r < 0 ? (int)r : -EPIPE;
            break;
        }
    }
    int st = -1;
    if ((e = wf_join(t, &st, NULL)) != 0 || (e = st) != 0 || (e = w) != 0)
        return e;

    /* Fill the write end, then wait for room while the peer drains. */
    char buf[4096];
    memset(buf, 'f', sizeof buf);
    size_t filled = 0;
    while ((r = sys_write(p[1], buf, sizeof buf)) > 0)
        filled += (size_t)r;
    if (r != -EAGAIN)
        return r < 0 ? (int)r : -EIO;
    j.fd = p[0];
    j.len = filled;
    if ((e = wf_spawn(&t, peer, &j, NULL)) != 0)
        return e;
    for (;;) {
        if ((w = wf_wait_writable(p[1], wf_deadline_in(GENEROUS))) != 0)
            break;
        (*waits)++;
        if ((r = sys_write(p[1], "w", 1)) == 1)
            break;
        if (r != -EAGAIN) {
            w = r < 0 ? (int)r : -EIO;
            break;
        }
    }
    if ((e = wf_join(t, &st, NULL)) != 0 || (e = st) != 0 || (e = w) != 0)
        return e;
    return 0;
}

/* --- the plain case, in one fiber: the same numbers, for certain ---------- */

static int m_single(void *arg, void **res)
{
    for (int kind = 0; kind < 4; kind++) {
        int old[2], p[2];
        CHECK_EQ(wait_then_close(kind, old), 0);
        CHECK_EQ(open_pair(kind + 1, p), 0); /* the other kind, too */
        /* Nothing else opens fds meanwhile: the lowest free numbers come
         * back, so this really is the reuse case. */
        CHECK((p[0] == old[0] && p[1] == old[1]) || (p[0] == old[1] && p[1] == old[0]));
        long waits = 0;
        CHECK_EQ(wait_new_pair(p, &waits), 0);
        CHECK(waits >= 2);
        CHECK_EQ(wf_fd_close(p[0]), 0);
        CHECK_EQ(wf_fd_close(p[1]), 0);
    }
    return 0;
}

static void test_single(void **state)
{
    run_main(2, m_single, NULL);
}

/* --- the old file still open elsewhere ------------------------------------
 *
 * A dup keeps the old file (and its epoll registration) alive. The number
 * then names either another file (its events are spurious wake-ups for the
 * new one) or, through dup2, the same file again. */

static int m_dup_alive(void *arg, void **res)
{
    int old[2], keep, p[2];
    CHECK_EQ(open_pair(0, old), 0);
    CHECK_EQ(write(old[1], "o", 1), 1);
    CHECK_EQ(wf_wait_readable(old[0], wf_deadline_in(GENEROUS)), 0);
    CHECK((keep = dup(old[0])) >= 0);
    close(old[0]);
    /* Another file on old[0]'s number. */
    CHECK_EQ(open_pair(1, p), 0);
    CHECK_EQ(p[0], old[0]);
    long waits = 0;
    CHECK_EQ(wait_new_pair(p, &waits), 0);
    /* The old file's events still arrive at p[0]'s record: spurious
     * wake-ups, absorbed (wait_new_pair reads again). */
    char c;
    while (read(p[0], &c, 1) == 1) {
    }
    CHECK_EQ(write(old[1], "o", 1), 1);
    CHECK_EQ(wait_new_pair(p, &waits), 0);
    close(p[0]);
    close(p[1]);
    /* The same file back on its old number. */
    CHECK_EQ(dup2(keep, old[0]), old[0]);
    while (read(old[0], &c, 1) == 1) {
    }
    peer_job j = {.waiter = wf_self(), .fd = old[1], .len = 0};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, peer, &j, NULL), 0);
    int w;
    while ((w = wf_wait_readable(old[0], wf_deadline_in(GENEROUS))) == 0 && read(old[0], &c, 1) != 1) {
    }
    CHECK_EQ(w, 0);
    int st = -1;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_fd_close(old[0]), 0);
    CHECK_EQ(wf_fd_close(old[1]), 0);
    CHECK_EQ(close(keep), 0);
    return 0;
}

static void test_dup_alive(void **state)
{
    run_main(2, m_dup_alive, NULL);
}

/* --- many fibers on every worker ------------------------------------------
 *
 * Each fiber loops: a pair waited on and closed plainly, a new pair (its
 * numbers come from some fiber's closed pair), waits on both of its ends
 * that only a peer's later action can end. Numbers move between fibers and
 * workers all the time. Exact counts: every wait ends in its data. */

enum { CHURN_FIBERS = 24 };

static _Atomic long churn_done, churn_reused;
static _Atomic int stale[4096]; /* fd numbers closed plainly after a wait */

static int churner(void *arg, void **res)
{
    long iters = (long)(intptr_t)arg;
    long waits = 0;
    uint64_t rnd = (uint64_t)(uintptr_t)wf_self() | 1;
    for (long i = 0; i < iters; i++) {
        int kind = (int)(test_rand(&rnd) % 2), old[2], p[2];
        int e = wait_then_close(kind, old);
        if (e)
            return e;
        for (int k = 0; k < 2; k++)
            if (old[k] < 4096)
                atomic_store(&stale[old[k]], 1);
        if ((e = open_pair(kind ^ (int)(test_rand(&rnd) % 2), p)) != 0)
            return e;
        for (int k = 0; k < 2; k++)
            if (p[k] < 4096 && atomic_exchange(&stale[p[k]], 0))
                atomic_fetch_add(&churn_reused, 1);
        if ((e = wait_new_pair(p, &waits)) != 0)
            return e;
        close(p[0]);
        close(p[1]);
        for (int k = 0; k < 2; k++)
            if (p[k] < 4096)
                atomic_store(&stale[p[k]], 1);
        atomic_fetch_add(&churn_done, 1);
    }
    return 0;
}

static int m_churn(void *arg, void **res)
{
    long iters = SCALED(300);
    atomic_store(&churn_done, 0);
    atomic_store(&churn_reused, 0);
    wf_task_t t[CHURN_FIBERS];
    for (int i = 0; i < CHURN_FIBERS; i++)
        CHECK_EQ(wf_spawn(&t[i], churner, (void *)(intptr_t)iters, NULL), 0);
    for (int i = 0; i < CHURN_FIBERS; i++) {
        int st = -1;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        if (st)
            fprintf(stderr, "churner %d: %s\n", i, wf_strerror(st));
        CHECK_EQ(st, 0);
    }
    CHECK_EQ(atomic_load(&churn_done), CHURN_FIBERS * iters);
    /* fds are allocated lowest-first: new pairs take closed numbers. */
    CHECK(atomic_load(&churn_reused) > 0);
    return 0;
}

static void test_churn_2_workers(void **state)
{
    run_main(2, m_churn, NULL);
}

static void test_churn_4_workers(void **state)
{
    run_main(4, m_churn, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_dup_alive),
        cmocka_unit_test(test_churn_2_workers),
        cmocka_unit_test(test_churn_4_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
