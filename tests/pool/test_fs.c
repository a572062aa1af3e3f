/* test_fs.c - files through the pool (weft/fs.h): write, read, lines,
 * pread/pwrite, seek and sync on a temp file; the error paths (a missing
 * file, a directory, EACCES, bad arguments); cancellation and deadlines
 * while a call waits for a thread (nothing done) and while it runs (held
 * off, nothing lost); close refused while a call runs; a file read not
 * starved by 1,000 stalled calls in the DNS class; many fibers sharing one
 * file. Every fd and thread is counted before and after. */
#include "pool_test.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <weft/fs.h>

static char tmpdir[256];

static int make_tmpdir(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/weft-fs-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    return warm_up(state);
}

static int remove_tmpdir(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

/* --- write, read, lines, sync ------------------------------------------------ */

static int m_roundtrip(void *arg, void **res)
{
    char path[300];
    path_of(path, sizeof path, "lines.txt");
    wf_file_t *f;
    CHECK_EQ(wf_file_open(&f, path, O_WRONLY | O_CREAT | O_TRUNC, 0644, WF_FOREVER), 0);
    CHECK(wf_file_fd(f) >= 0);
    CHECK(fcntl(wf_file_fd(f), F_GETFD) & FD_CLOEXEC);
    char line[64];
    size_t total = 0;
    for (int i = 0; i < 1000; i++) {
        int len = snprintf(line, sizeof line, "line %d of the file\n", i);
        size_t w = 0;
        CHECK_EQ(wf_file_write(f, line, (size_t)len, &w, WF_FOREVER), 0);
        CHECK_EQ(w, len);
        total += (size_t)len;
    }
    /* A long line (longer than the read-ahead buffer), a line with a NUL,
     * and a last line without '\n'. */
    static char big[100000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\n';
    CHECK_EQ(wf_file_write(f, big, sizeof big, NULL, WF_FOREVER), 0);
    CHECK_EQ(wf_file_write(f, "a\0b\n", 4, NULL, WF_FOREVER), 0);
    CHECK_EQ(wf_file_write(f, "tail", 4, NULL, WF_FOREVER), 0);
    total += sizeof big + 8;
    CHECK_EQ(wf_file_sync(f, false, WF_FOREVER), 0);
    CHECK_EQ(wf_file_sync(f, true, WF_FOREVER), 0);
    CHECK_EQ(wf_file_close(f), 0);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, total);

    CHECK_EQ(wf_file_open(&f, path, O_RDONLY, 0, WF_FOREVER), 0);
    char got[128];
    for (int i = 0; i < 1000; i++) {
        int len = snprintf(line, sizeof line, "line %d of the file\n", i);
        CHECK_EQ(wf_file_read_line(f, got, sizeof got, WF_FOREVER), len);
        CHECK(strcmp(got, line) == 0);
    }
    /* The long line comes in pieces of at most n - 1 bytes. */
    size_t seen = 0;
    for (;;) {
        ssize_t r = wf_file_read_line(f, got, sizeof got, WF_FOREVER);
        CHECK(r > 0);
        if (r <= 0)
            break;
        seen += (size_t)r;
        if (got[r - 1] == '\n')
            break;
        CHECK_EQ(r, sizeof got - 1);
    }
    CHECK_EQ(seen, sizeof big);
    CHECK_EQ(wf_file_read_line(f, got, sizeof got, WF_FOREVER), 4);
    CHECK(memcmp(got, "a\0b\n", 5) == 0);
    CHECK_EQ(wf_file_read_line(f, got, sizeof got, WF_FOREVER), 4);
    CHECK(strcmp(got, "tail") == 0);
    CHECK_EQ(wf_file_read_line(f, got, sizeof got, WF_FOREVER), 0); /* end of file */
    CHECK_EQ(wf_file_read(f, got, sizeof got, WF_FOREVER), 0);

    /* Reads after lines: buffered bytes first, then the file. */
    CHECK_EQ(wf_file_seek(f, 0, SEEK_SET), 0);
    CHECK_EQ(wf_file_read_line(f, got, sizeof got, WF_FOREVER), 19);
    CHECK(strcmp(got, "line 0 of the file\n") == 0);
    CHECK_EQ(wf_file_read(f, got, 5, WF_FOREVER), 5);
    CHECK(memcmp(got, "line ", 5) == 0);
    CHECK_EQ(wf_file_seek(f, 0, SEEK_CUR), 24); /* where the reader is */
    CHECK_EQ(wf_file_read_line(f, got, sizeof got, WF_FOREVER), 14);
    CHECK(strcmp(got, "1 of the file\n") == 0);
    /* pread ignores the position and the buffer. */
    CHECK_EQ(wf_file_pread(f, got, 4, 5, WF_FOREVER), 4);
    CHECK(memcmp(got, "0 of", 4) == 0);
    CHECK_EQ(wf_file_seek(f, -4, SEEK_END), (int64_t)total - 4);
    CHECK_EQ(wf_file_read(f, got, sizeof got, WF_FOREVER), 4);
    CHECK(memcmp(got, "tail", 4) == 0);
    CHECK_EQ(wf_file_close(f), 0);

    /* Read, write and pwrite on one file: a write after read-ahead lands
     * where the reader is. */
    CHECK_EQ(wf_file_open(&f, path, O_RDWR, 0, WF_FOREVER), 0);
    CHECK_EQ(wf_file_read_line(f, got, sizeof got, WF_FOREVER), 19); /* buffer full of more */
    CHECK_EQ(wf_file_write(f, "LINE", 4, NULL, WF_FOREVER), 0);
    CHECK_EQ(wf_file_pread(f, got, 28, 16, WF_FOREVER), 28);
    CHECK(memcmp(got, "le\nLINE 1 of the file\nline 2", 28) == 0);
    CHECK_EQ(wf_file_pwrite(f, "ZZ", 2, 0, NULL, WF_FOREVER), 0);
    CHECK_EQ(wf_file_read(f, got, 3, WF_FOREVER), 3); /* the position is after "LINE" */
    CHECK(memcmp(got, " 1 ", 3) == 0);
    CHECK_EQ(wf_file_pread(f, got, 4, 0, WF_FOREVER), 4);
    CHECK(memcmp(got, "ZZne", 4) == 0);
    CHECK_EQ(wf_file_pread(f, got, 10, (int64_t)total, WF_FOREVER), 0); /* past the end */
    CHECK_EQ(wf_file_close(f), 0);

    /* O_APPEND. */
    CHECK_EQ(wf_file_open(&f, path, O_WRONLY | O_APPEND, 0, WF_FOREVER), 0);
    CHECK_EQ(wf_file_write(f, "!", 1, NULL, WF_FOREVER), 0);
    CHECK_EQ(wf_file_close(f), 0);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, total + 1);
    return 0;
}

static void test_roundtrip(void **state)
{
    run_counted(NULL, 2, m_roundtrip, NULL);
}

/* --- errors ------------------------------------------------------------------ */

static int m_errors(void *arg, void **res)
{
    char path[300];
    wf_file_t *f = NULL;
    path_of(path, sizeof path, "missing");
    CHECK_EQ(wf_file_open(&f, path, O_RDONLY, 0, WF_FOREVER), -ENOENT);
    CHECK(f == NULL);
    CHECK_EQ(wf_file_open(&f, tmpdir, O_RDONLY, 0, WF_FOREVER), -EISDIR);
    CHECK_EQ(wf_file_open(&f, tmpdir, O_WRONLY, 0, WF_FOREVER), -EISDIR);
    path_of(path, sizeof path, "missing/below");
    CHECK_EQ(wf_file_open(&f, path, O_WRONLY | O_CREAT, 0644, WF_FOREVER), -ENOENT);
    path_of(path, sizeof path, "lines.txt/below");
    CHECK_EQ(wf_file_open(&f, path, O_RDONLY, 0, WF_FOREVER), -ENOTDIR);
    path_of(path, sizeof path, "excl");
    CHECK_EQ(wf_file_open(&f, path, O_WRONLY | O_CREAT | O_EXCL, 0644, WF_FOREVER), 0);
    CHECK_EQ(wf_file_close(f), 0);
    CHECK_EQ(wf_file_open(&f, path, O_WRONLY | O_CREAT | O_EXCL, 0644, WF_FOREVER), -EEXIST);
    /* Bad arguments. */
    CHECK_EQ(wf_file_open(NULL, path, O_RDONLY, 0, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_open(&f, NULL, O_RDONLY, 0, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_open(&f, path, O_RDONLY, 0, -5), -EINVAL);
    CHECK_EQ(wf_file_open(&f, path, O_RDONLY, 0, WF_FOREVER), 0);
    char b[8];
    CHECK_EQ(wf_file_read(NULL, b, 1, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_read(f, NULL, 1, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_read(f, b, 1, -3), -EINVAL);
    CHECK_EQ(wf_file_read(f, NULL, 0, WF_FOREVER), 0);
    CHECK_EQ(wf_file_read_line(f, b, 1, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_read_line(f, NULL, 8, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_pread(f, b, 1, -1, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_pwrite(f, b, 1, -1, NULL, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_seek(f, 0, 99), -EINVAL);
    CHECK_EQ(wf_file_seek(f, -10, SEEK_SET), -EINVAL);
    CHECK_EQ(wf_file_sync(NULL, false, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_file_fd(NULL), -EINVAL);
    CHECK_EQ(wf_file_close(NULL), -EINVAL);
    /* Writing a file opened for reading: write(2)'s -EBADF. */
    size_t w = 99;
    CHECK_EQ(wf_file_write(f, "x", 1, &w, WF_FOREVER), -EBADF);
    CHECK_EQ(w, 0);
    CHECK_EQ(wf_file_pwrite(f, "x", 1, 0, &w, WF_FOREVER), -EBADF);
    CHECK_EQ(wf_file_close(f), 0);
    CHECK_EQ(wf_file_open(&f, path, O_WRONLY, 0, WF_FOREVER), 0);
    CHECK_EQ(wf_file_read(f, b, 1, WF_FOREVER), -EBADF);
    CHECK_EQ(wf_file_read_line(f, b, sizeof b, WF_FOREVER), -EBADF);
    CHECK_EQ(wf_file_close(f), 0);
    /* /dev/full: writes fail with ENOSPC. */
    CHECK_EQ(wf_file_open(&f, "/dev/full", O_WRONLY, 0, WF_FOREVER), 0);
    CHECK_EQ(wf_file_write(f, "x", 1, &w, WF_FOREVER), -ENOSPC);
    CHECK_EQ(wf_file_close(f), 0);
    return 0;
}

static void test_errors(void **state)
{
    wf_file_t *f;
    char b[4];
    assert_int_equal(wf_file_open(&f, "/etc/hostname", O_RDONLY, 0, WF_FOREVER), -EPERM);
    assert_int_equal(wf_file_read((wf_file_t *)b, b, 1, WF_FOREVER), -EPERM);
    assert_int_equal(wf_file_close((wf_file_t *)b), -EPERM);
    run_counted(NULL, 2, m_errors, NULL);
}

/* EACCES: a file nobody may read. Root may read anything, so as root the
 * check runs in a child that has become "nobody". */
static int m_eacces(void *arg, void **res)
{
    wf_file_t *f = NULL;
    CHECK_EQ(wf_file_open(&f, (const char *)arg, O_RDONLY, 0, WF_FOREVER), -EACCES);
    CHECK_EQ(wf_file_open(&f, (const char *)arg, O_WRONLY, 0, WF_FOREVER), -EACCES);
    return 0;
}

static void test_eacces(void **state)
{
    char path[300];
    path_of(path, sizeof path, "secret");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(tmpdir, 0755), 0); /* nobody may reach the file */
    if (geteuid() != 0) {
        run_counted(NULL, 1, m_eacces, path);
        return;
    }
    pid_t pid = fork(); /* between runtimes: this process has one thread */
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        int st = -1;
        int e = wf_run(NULL, m_eacces, path, &st, NULL);
        _exit(e == 0 && st == 0 && atomic_load(&check_failures) == 0 ? 0 : 1);
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* --- cancellation and deadlines ------------------------------------------------ */

/* A FIFO opened for reading and writing: a read on it blocks on the pool
 * thread until the test writes, so the test controls when it ends. */
typedef struct {
    wf_file_t *f;
    char buf[16];
    _Atomic int started;
    ssize_t got;
    int next_wait; /* what the task's next wait returned */
} fifo_reader;

static int read_fifo(void *arg, void **res)
{
    fifo_reader *r = arg;
    atomic_store(&r->started, 1);
    r->got = wf_file_read(r->f, r->buf, sizeof r->buf, WF_FOREVER);
    r->next_wait = wf_sleep(0);
    return 0;
}

static int m_cancel_running(void *arg, void **res)
{
    char path[300];
    path_of(path, sizeof path, "fifo");
    unlink(path);
    CHECK_EQ(mkfifo(path, 0600), 0);
    fifo_reader r = {0};
    CHECK_EQ(wf_file_open(&r.f, path, O_RDWR, 0, WF_FOREVER), 0);
    int wfd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(wfd >= 0);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, read_fifo, &r, NULL), 0);
    CHECK(wait_flag(&r.started, LONG_NS));
    /* Wait until the read runs on a pool thread. */
    wf_pool_stats_t s = {0};
    int64_t dl = wf_deadline_in(LONG_NS);
    while (wf_pool_stats(WF_POOL_FILE, &s) == 0 && s.running < 1 && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    CHECK_EQ(s.running, 1);
    /* Close is refused while the read runs. */
    CHECK_EQ(wf_file_close(r.f), -EBUSY);
    CHECK_EQ(wf_cancel(t), 0);
    /* The read is not abandoned: the task is still in it. */
    CHECK_EQ(wf_join_until(t, wf_deadline_in(50 * WF_NSEC_PER_MSEC), NULL, NULL), -ETIMEDOUT);
    CHECK_EQ(write(wfd, "hello", 5), 5);
    int st = 1;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(r.got, 5); /* nothing lost */
    CHECK(memcmp(r.buf, "hello", 5) == 0);
    CHECK_EQ(r.next_wait, -ECANCELED); /* the cancellation stayed pending */
    CHECK_EQ(wf_file_close(r.f), 0);
    close(wfd);
    unlink(path);
    return 0;
}

static void test_cancel_running(void **state)
{
    run_counted(NULL, 2, m_cancel_running, NULL);
}

/* With the file crew's only thread busy, a read waits in the queue: a
 * cancellation or a deadline takes it back, and nothing was read. */
typedef struct {
    wf_file_t *f;
    int64_t deadline;
    _Atomic int started;
    ssize_t got;
} queued_reader;

static int read_queued(void *arg, void **res)
{
    queued_reader *q = arg;
    char b[8];
    atomic_store(&q->started, 1);
    q->got = wf_file_read(q->f, b, sizeof b, q->deadline);
    return 0;
}

/* Holds the file crew's thread until the gate opens. */
static int block_file_thread(void *arg, void **res)
{
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    o.pool = WF_POOL_FILE;
    return wf_run_in_executor(&o, wait_gate, arg, NULL, NULL);
}

static int m_queued(void *arg, void **res)
{
    char path[300];
    path_of(path, sizeof path, "queued");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK_EQ(write(fd, "0123456789", 10), 10);
    close(fd);
    wf_file_t *f;
    CHECK_EQ(wf_file_open(&f, path, O_RDONLY, 0, WF_FOREVER), 0);
    /* An empty FIFO: its reads cannot be served from a cache, so they go
     * to the pool (and would block there). */
    char fifo[300];
    path_of(fifo, sizeof fifo, "queued-fifo");
    unlink(fifo);
    CHECK_EQ(mkfifo(fifo, 0600), 0);
    wf_file_t *ff;
    CHECK_EQ(wf_file_open(&ff, fifo, O_RDWR, 0, WF_FOREVER), 0);
    /* Occupy the one file thread. */
    wf_future_t *gate;
    CHECK_EQ(wf_future_create(&gate), 0);
    wf_task_t b;
    CHECK_EQ(wf_spawn(&b, block_file_thread, gate, NULL), 0);
    wf_pool_stats_t s = {0};
    int64_t dl = wf_deadline_in(LONG_NS);
    while (wf_pool_stats(WF_POOL_FILE, &s) == 0 && s.running < 1 && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    CHECK_EQ(s.running, 1);

    /* A read of cached data does not wait for the busy pool: it is served
     * on this thread (RWF_NOWAIT), unless the file system refuses. */
    char got[10];
    if (!getenv("WF_FILE_NO_NOWAIT")) {
        CHECK_EQ(wf_file_pread(f, got, 4, 2, WF_FOREVER), 4);
        CHECK(memcmp(got, "2345", 4) == 0);
    }

    /* Cancelled while queued. */
    queued_reader q = {.f = ff, .deadline = WF_FOREVER};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, read_queued, &q, NULL), 0);
    CHECK(wait_flag(&q.started, LONG_NS));
    dl = wf_deadline_in(LONG_NS);
    while (wf_pool_stats(WF_POOL_FILE, &s) == 0 && s.queued < 1 && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    CHECK_EQ(s.queued, 1);
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(q.got, -ECANCELED);
    /* Past its deadline while queued. */
    queued_reader q2 = {.f = ff, .deadline = wf_deadline_in(20 * WF_NSEC_PER_MSEC)};
    CHECK_EQ(wf_spawn(&t, read_queued, &q2, NULL), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(q2.got, -ETIMEDOUT);
    CHECK_EQ(wf_pool_stats(WF_POOL_FILE, &s), 0);
    CHECK_EQ(s.queued, 0);

    CHECK_EQ(wf_future_set(gate, 0, NULL), 0);
    CHECK_EQ(wf_join(b, NULL, NULL), 0);
    /* Nothing was read: what is written to the FIFO now is all there. */
    int wfd = open(fifo, O_WRONLY | O_CLOEXEC);
    CHECK_EQ(write(wfd, "abc", 3), 3);
    close(wfd);
    CHECK_EQ(wf_file_read(ff, got, sizeof got, WF_FOREVER), 3);
    CHECK(memcmp(got, "abc", 3) == 0);
    CHECK_EQ(wf_file_read(f, got, sizeof got, WF_FOREVER), 10);
    CHECK(memcmp(got, "0123456789", 10) == 0);
    CHECK_EQ(wf_file_close(ff), 0);
    CHECK_EQ(wf_file_close(f), 0);
    unlink(fifo);
    wf_future_release(gate);
    return 0;
}

static void test_queued(void **state)
{
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    cfg.pool_file_threads = 1;
    run_counted(&cfg, 0, m_queued, NULL);
}

/* --- no starvation: 1,000 stalled DNS-class calls, then file reads ---------- */

typedef struct {
    wf_future_t *gate;
    _Atomic long done;
} stall_ctx;

static int stalled_lookup(void *arg, void **res)
{
    stall_ctx *c = arg;
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    o.pool = WF_POOL_DNS;
    int r = wf_run_in_executor(&o, wait_gate, c->gate, NULL, NULL);
    CHECK_EQ(r, 0);
    atomic_fetch_add(&c->done, 1);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int m_no_starvation(void *arg, void **res)
{
    enum { LOOKUPS = 1000, READS = 5 };
    stall_ctx c = {0};
    CHECK_EQ(wf_future_create(&c.gate), 0);
    static wf_task_t t[LOOKUPS];
    for (int i = 0; i < LOOKUPS; i++)
        CHECK_EQ(wf_spawn(&t[i], stalled_lookup, &c, NULL), 0);
    /* Every lookup is in the DNS crew: 4 running (stalled), 996 queued. */
    wf_pool_stats_t s = {0};
    int64_t dl = wf_deadline_in(LONG_NS);
    /* All in the crew, and its 4 threads started and running one each (a
     * thread being started leaves its job counted queued a while longer:
     * under valgrind, long enough to see). */
    while (wf_pool_stats(WF_POOL_DNS, &s) == 0 && (s.running != 4 || s.running + s.queued < LOOKUPS) &&
           wf_now() < dl)
        wf_sleep(WF_NSEC_PER_MSEC);
    CHECK_EQ(s.running, 4);
    CHECK_EQ(s.queued, LOOKUPS - 4);

    /* File reads go through: open, read, close, each timed. */
    char path[300];
    path_of(path, sizeof path, "lines.txt");
    int64_t took[READS];
    for (int i = 0; i < READS; i++) {
        int64_t t0 = wf_now();
        wf_file_t *f;
        char b[32];
        CHECK_EQ(wf_file_open(&f, path, O_RDONLY, 0, WF_FOREVER), 0);
        CHECK_EQ(wf_file_read(f, b, sizeof b, WF_FOREVER), sizeof b);
        CHECK_EQ(wf_file_close(f), 0);
        took[i] = wf_now() - t0;
    }
    /* ...while every lookup is still stalled. */
    CHECK_EQ(atomic_load(&c.done), 0);
    CHECK_EQ(wf_pool_stats(WF_POOL_DNS, &s), 0);
    CHECK_EQ(s.running + s.queued, LOOKUPS);
    qsort(took, READS, sizeof took[0], cmp_i64);
    /* The issue asks for at most 10 ms of delay. A starved read would wait
     * for the whole DNS queue (forever here). Sanitizer builds run 10-100x
     * slower, so the bound is checked in the plain build; the median of 5
     * keeps one descheduling on this shared machine from failing it. */
    if (!WF_TEST_SANITIZED)
        CHECK(took[READS / 2] <= 10 * WF_NSEC_PER_MSEC);

    CHECK_EQ(wf_future_set(c.gate, 0, NULL), 0);
    for (int i = 0; i < LOOKUPS; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&c.done), LOOKUPS);
    wf_future_release(c.gate);
    return 0;
}

static void test_no_starvation(void **state)
{
    run_counted(NULL, 2, m_no_starvation, NULL);
}

/* --- many fibers on one file ---------------------------------------------------- */

enum { SH_FIBERS = 16, SH_BLOCK = 512 };

typedef struct {
    wf_file_t *f;
    int index, rounds;
    _Atomic long *lines_seen; /* one counter per line number */
    long nlines;
} share_arg;

static int share_pwrite(void *arg, void **res)
{
    share_arg *a = arg;
    char block[SH_BLOCK];
    for (int r = 0; r < a->rounds; r++) {
        memset(block, 'a' + (a->index + r) % 26, sizeof block);
        int64_t off = ((int64_t)r * SH_FIBERS + a->index) * SH_BLOCK;
        CHECK_EQ(wf_file_pwrite(a->f, block, sizeof block, off, NULL, WF_FOREVER), 0);
        char back[SH_BLOCK];
        CHECK_EQ(wf_file_pread(a->f, back, sizeof back, off, WF_FOREVER), SH_BLOCK);
        CHECK(memcmp(back, block, sizeof block) == 0);
    }
    return 0;
}

static int share_lines(void *arg, void **res)
{
    share_arg *a = arg;
    char line[64];
    ssize_t r;
    while ((r = wf_file_read_line(a->f, line, sizeof line, WF_FOREVER)) > 0) {
        long n = -1;
        CHECK(sscanf(line, "line %ld of the file", &n) == 1);
        if (n >= 0 && n < a->nlines)
            atomic_fetch_add(&a->lines_seen[n], 1);
    }
    CHECK_EQ(r, 0);
    return 0;
}

static int m_shared(void *arg, void **res)
{
    char path[300];
    path_of(path, sizeof path, "shared");
    wf_file_t *f;
    CHECK_EQ(wf_file_open(&f, path, O_RDWR | O_CREAT | O_TRUNC, 0644, WF_FOREVER), 0);
    int rounds = SCALED(64);
    share_arg a[SH_FIBERS];
    wf_task_t t[SH_FIBERS];
    for (int i = 0; i < SH_FIBERS; i++) {
        a[i] = (share_arg){.f = f, .index = i, .rounds = rounds};
        CHECK_EQ(wf_spawn(&t[i], share_pwrite, &a[i], NULL), 0);
    }
    for (int i = 0; i < SH_FIBERS; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    /* Every block holds what its writer put there. */
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < SH_FIBERS; i++) {
            char c;
            CHECK_EQ(wf_file_pread(f, &c, 1, ((int64_t)r * SH_FIBERS + i) * SH_BLOCK + 7, WF_FOREVER), 1);
            CHECK_EQ(c, 'a' + (i + r) % 26);
        }
    CHECK_EQ(wf_file_close(f), 0);

    /* Lines read by 16 fibers at once: each line exactly once. */
    long nlines = SCALED(20000);
    CHECK_EQ(wf_file_open(&f, path, O_WRONLY | O_TRUNC, 0, WF_FOREVER), 0);
    char *text = malloc((size_t)nlines * 32);
    size_t len = 0;
    for (long i = 0; i < nlines; i++)
        len += (size_t)sprintf(text + len, "line %ld of the file\n", i);
    CHECK_EQ(wf_file_write(f, text, len, NULL, WF_FOREVER), 0);
    free(text);
    CHECK_EQ(wf_file_close(f), 0);
    _Atomic long *seen = calloc((size_t)nlines, sizeof *seen);
    CHECK_EQ(wf_file_open(&f, path, O_RDONLY, 0, WF_FOREVER), 0);
    for (int i = 0; i < SH_FIBERS; i++) {
        a[i] = (share_arg){.f = f, .index = i, .lines_seen = seen, .nlines = nlines};
        CHECK_EQ(wf_spawn(&t[i], share_lines, &a[i], NULL), 0);
    }
    for (int i = 0; i < SH_FIBERS; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    long missing = 0, twice = 0;
    for (long i = 0; i < nlines; i++) {
        missing += atomic_load(&seen[i]) == 0;
        twice += atomic_load(&seen[i]) > 1;
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(twice, 0);
    free(seen);
    CHECK_EQ(wf_file_close(f), 0);
    return 0;
}

static void test_shared(void **state)
{
    run_counted(NULL, 4, m_shared, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_eacces),    cmocka_unit_test(test_cancel_running),
        cmocka_unit_test(test_queued),    cmocka_unit_test(test_no_starvation),
        cmocka_unit_test(test_shared),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
