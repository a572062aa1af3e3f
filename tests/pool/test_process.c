/* test_process.c - child processes (weft/process.h): a child echoing
 * through its stdin/stdout/stderr pipes, end of file by write_eof and by
 * closing stdin; exit codes and signals as returncodes; a child killed past
 * its deadline; the child's open fds from /proc are only 0, 1, 2 (with a
 * parent fd that is not close-on-exec); /dev/null, inherited and given
 * fds, stderr to stdout; environment and working directory; spawn errors;
 * a write to a child that has gone (-EPIPE, no SIGPIPE); a process closed
 * or left open while its child runs (killed and reaped, no zombie); many
 * fibers spawning at once. The suite runs again with WF_NO_PIDFD=1 (waits
 * through the pool). Every fd and thread is counted before and after. */
#include "pool_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <weft/process.h>
#include <weft/stream.h>

static char *sh(const char *script, char **argv3)
{
    argv3[0] = "sh";
    argv3[1] = "-c";
    argv3[2] = (char *)script;
    argv3[3] = NULL;
    return argv3[0];
}

static wf_process_opts_t pipes(void)
{
    wf_process_opts_t o = WF_PROCESS_OPTS_INIT;
    o.stdin_mode = o.stdout_mode = o.stderr_mode = WF_STDIO_PIPE;
    return o;
}

/* Read one line of `st` into buf (NUL-terminated); its length, or -errno. */
static long line(wf_stream_t *st, char *buf, size_t cap)
{
    size_t len = 0;
    int e = wf_stream_readline(st, buf, cap - 1, &len, wf_deadline_in(LONG_NS));
    if (e < 0)
        return e;
    buf[len] = 0;
    return (long)len;
}

/* Read `st` to its end into buf; the count. */
static long slurp(wf_stream_t *st, char *buf, size_t cap)
{
    size_t have = 0;
    for (;;) {
        ssize_t r = wf_stream_read(st, buf + have, cap - 1 - have, wf_deadline_in(LONG_NS));
        if (r <= 0) {
            buf[have] = 0;
            return r < 0 ? r : (long)have;
        }
        have += (size_t)r;
    }
}

/* --- echo through the three pipes ------------------------------------------------ */

typedef struct {
    wf_stream_t *st;
    char *buf;
    size_t cap;
    long got;
} reader_ctx;

static int reader(void *arg, void **res)
{
    reader_ctx *r = arg;
    size_t have = 0;
    for (;;) {
        ssize_t n = wf_stream_read(r->st, r->buf + have, r->cap - have, wf_deadline_in(LONG_NS));
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    r->got = (long)have;
    return 0;
}

static int m_echo(void *arg, void **res)
{
    char *av[4];
    wf_process_opts_t o = pipes();
    wf_process_t *p;
    CHECK_EQ(wf_process_spawn(
                 &p, sh("while read l; do echo \"out:$l\"; echo \"err:$l\" >&2; done; exit 7", av), av, &o),
             0);
    CHECK(wf_process_pid(p) > 0);
    wf_stream_t *in = wf_process_stdin(p), *out = wf_process_stdout(p), *err = wf_process_stderr(p);
    CHECK(in && out && err);
    int st = 99;
    CHECK_EQ(wf_process_returncode(p, &st), -EAGAIN);
    char buf[128], want[128];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(buf, sizeof buf, "line %d\n", i);
        CHECK_EQ(wf_stream_write(in, buf, (size_t)n), 0);
        CHECK_EQ(wf_stream_flush(in, wf_deadline_in(LONG_NS)), 0);
        snprintf(want, sizeof want, "out:line %d\n", i);
        CHECK_EQ(line(out, buf, sizeof buf), (long)strlen(want));
        CHECK(strcmp(buf, want) == 0);
        snprintf(want, sizeof want, "err:line %d\n", i);
        CHECK_EQ(line(err, buf, sizeof buf), (long)strlen(want));
        CHECK(strcmp(buf, want) == 0);
    }
    /* End of file on stdin, the stream staying open: the loop ends. */
    CHECK_EQ(wf_stream_write_eof(in, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(st, 7);
    CHECK_EQ(wf_process_returncode(p, &st), 0);
    CHECK_EQ(st, 7);
    CHECK_EQ(slurp(out, buf, sizeof buf), 0); /* end of file */
    /* Waiting again: at once. Signals: the child has gone. */
    CHECK_EQ(wf_process_wait(p, 0, &st), 0);
    CHECK_EQ(wf_process_signal(p, SIGTERM), -ESRCH);
    CHECK_EQ(wf_process_close(p), 0);

    /* Closing stdin ends the child's input too; a big echo through cat,
     * read by another fiber while this one writes. */
    CHECK_EQ(wf_process_spawn(&p, "cat", NULL, &o), 0);
    static char big[1 << 20], back[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 23);
    reader_ctx rc = {.st = wf_process_stdout(p), .buf = back, .cap = sizeof back};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, reader, &rc, NULL), 0);
    CHECK_EQ(wf_stream_write(wf_process_stdin(p), big, sizeof big), 0);
    CHECK_EQ(wf_process_close_stdin(p, wf_deadline_in(LONG_NS)), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(rc.got, sizeof big);
    CHECK(memcmp(big, back, sizeof big) == 0);
    CHECK(wf_process_stdin(p) == NULL);
    CHECK_EQ(wf_process_close_stdin(p, 0), -EBADF);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_process_close(p), 0);
    return 0;
}

static void test_echo(void **state)
{
    run_counted(NULL, 2, m_echo, NULL);
}

/* --- exit statuses, deadlines, kill -------------------------------------------------- */

static int m_status(void *arg, void **res)
{
    char *av[4];
    wf_process_t *p;
    int st = 99;
    CHECK_EQ(wf_process_spawn(&p, sh("exit 3", av), av, NULL), 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(st, 3);
    CHECK_EQ(wf_process_close(p), 0);
    CHECK_EQ(wf_process_spawn(&p, "/bin/true", NULL, NULL), 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_process_close(p), 0);
    /* Killed by its own signal. */
    CHECK_EQ(wf_process_spawn(&p, sh("kill -USR1 $$", av), av, NULL), 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(st, -SIGUSR1);
    CHECK_EQ(wf_process_close(p), 0);

    /* A child past its deadline: the wait times out, the child is killed,
     * and its status says so. */
    char *sl[] = {"sleep", "100", NULL};
    CHECK_EQ(wf_process_spawn(&p, "sleep", sl, NULL), 0);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(50 * WF_NSEC_PER_MSEC), &st), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 50 * WF_NSEC_PER_MSEC);
    CHECK_EQ(wf_process_returncode(p, &st), -EAGAIN);
    CHECK_EQ(wf_process_kill(p), 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(st, -SIGKILL);
    CHECK_EQ(wf_process_kill(p), -ESRCH);
    CHECK_EQ(wf_process_close(p), 0);
    /* terminate: SIGTERM. */
    CHECK_EQ(wf_process_spawn(&p, "sleep", sl, NULL), 0);
    CHECK_EQ(wf_process_terminate(p), 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(st, -SIGTERM);
    CHECK_EQ(wf_process_close(p), 0);
    return 0;
}

static void test_status(void **state)
{
    run_counted(NULL, 2, m_status, NULL);
}

/* A waiter cancelled; another fiber's wait is refused while one waits. */
typedef struct {
    wf_process_t *p;
    int r, st;
} wait_ctx;

static int waits(void *arg, void **res)
{
    wait_ctx *w = arg;
    w->r = wf_process_wait(w->p, wf_deadline_in(LONG_NS), &w->st);
    return 0;
}

static int m_wait_cancel(void *arg, void **res)
{
    char *sl[] = {"sleep", "100", NULL};
    wf_process_t *p;
    CHECK_EQ(wf_process_spawn(&p, "sleep", sl, NULL), 0);
    wait_ctx w = {.p = p};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, waits, &w, NULL), 0);
    int64_t dl = wf_deadline_in(LONG_NS);
    while (wf_task_state(t) != WF_TASK_PARKED && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    int st;
    CHECK_EQ(wf_process_wait(p, 0, &st), -EBUSY);
    CHECK_EQ(wf_process_close(p), -EBUSY);
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(w.r, -ECANCELED);
    /* Close while it runs: killed and reaped by the pool. */
    pid_t pid = wf_process_pid(p);
    CHECK_EQ(wf_process_close(p), 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    dl = wf_deadline_in(LONG_NS);
    while (access(path, F_OK) == 0 && wf_now() < dl)
        wf_sleep(WF_NSEC_PER_MSEC);
    CHECK(access(path, F_OK) != 0); /* gone: no zombie */
    return 0;
}

static void test_wait_cancel(void **state)
{
    run_counted(NULL, 2, m_wait_cancel, NULL);
}

/* --- what the child gets ------------------------------------------------------------------ */

static int m_fds(void *arg, void **res)
{
    /* A parent fd that is not close-on-exec, and another that is. */
    int leak[2];
    CHECK_EQ(pipe(leak), 0);
    int cloexec = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char *av[4];
    wf_process_opts_t o = WF_PROCESS_OPTS_INIT;
    o.stdout_mode = WF_STDIO_PIPE;
    for (int round = 0; round < 2; round++) {
        wf_process_t *p;
        CHECK_EQ(wf_process_spawn(&p, sh("ls /proc/$$/fd", av), av, &o), 0);
        char buf[256];
        CHECK(slurp(wf_process_stdout(p), buf, sizeof buf) > 0);
        CHECK(strcmp(buf, "0\n1\n2\n") == 0);
        if (strcmp(buf, "0\n1\n2\n"))
            fprintf(stderr, "the child's fds: %s", buf);
        int st;
        CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
        CHECK_EQ(st, 0);
        CHECK_EQ(wf_process_close(p), 0);
        o.stdin_mode = o.stderr_mode = WF_STDIO_PIPE; /* again with all three piped */
    }
    close(leak[0]);
    close(leak[1]);
    close(cloexec);
    return 0;
}

static void test_fds(void **state)
{
    run_counted(NULL, 2, m_fds, NULL);
}

static int m_modes(void *arg, void **res)
{
    char *av[4];
    wf_process_t *p;
    int st;
    char buf[512];
    /* stderr to stdout; stdin from /dev/null. */
    wf_process_opts_t o = WF_PROCESS_OPTS_INIT;
    o.stdin_mode = WF_STDIO_DEVNULL;
    o.stdout_mode = WF_STDIO_PIPE;
    o.stderr_mode = WF_STDIO_STDOUT;
    CHECK_EQ(wf_process_spawn(&p, sh("echo a; echo b >&2; cat; echo c", av), av, &o), 0);
    CHECK(wf_process_stdin(p) == NULL && wf_process_stderr(p) == NULL);
    CHECK(slurp(wf_process_stdout(p), buf, sizeof buf) == 6);
    CHECK(strcmp(buf, "a\nb\nc\n") == 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_process_close(p), 0);

    /* A given fd for stdout (a pipe of the test's), stderr to /dev/null. */
    int fds[2];
    CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
    o = (wf_process_opts_t)WF_PROCESS_OPTS_INIT;
    o.stdout_mode = WF_STDIO_FD;
    o.stdout_fd = fds[1];
    o.stderr_mode = WF_STDIO_DEVNULL;
    CHECK_EQ(wf_process_spawn(&p, sh("echo given; echo lost >&2", av), av, &o), 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(wf_process_close(p), 0);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, sizeof buf);
    CHECK_EQ(n, 6);
    CHECK(memcmp(buf, "given\n", 6) == 0);
    close(fds[0]);

    /* Environment and working directory. */
    char *env[] = {"WEFT_TEST=hello", NULL};
    o = (wf_process_opts_t)WF_PROCESS_OPTS_INIT;
    o.stdout_mode = WF_STDIO_PIPE;
    o.envp = env;
    o.cwd = "/tmp";
    CHECK_EQ(wf_process_spawn(&p, sh("echo $WEFT_TEST; pwd", av), av, &o), 0);
    CHECK(slurp(wf_process_stdout(p), buf, sizeof buf) > 0);
    CHECK(strcmp(buf, "hello\n/tmp\n") == 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(wf_process_close(p), 0);

    /* A new session: the child leads its own. */
    o = (wf_process_opts_t)WF_PROCESS_OPTS_INIT;
    o.stdout_mode = WF_STDIO_PIPE;
    o.new_session = true;
    CHECK_EQ(wf_process_spawn(&p, sh("ps -o sid= -p $$ | tr -d ' '; echo $$", av), av, &o), 0);
    long got = slurp(wf_process_stdout(p), buf, sizeof buf);
    int sid = 0, pid = 0;
    if (got > 0 && sscanf(buf, "%d %d", &sid, &pid) == 2)
        CHECK_EQ(sid, pid);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(wf_process_close(p), 0);

    /* The child's signal mask is wf_run's caller's (its SigBlk line is in
     * arg), even though wf_run's thread and the poller block all. */
    o = (wf_process_opts_t)WF_PROCESS_OPTS_INIT;
    o.stdout_mode = WF_STDIO_PIPE;
    CHECK_EQ(wf_process_spawn(&p, sh("exec grep SigBlk /proc/self/status", av), av, &o), 0);
    CHECK(slurp(wf_process_stdout(p), buf, sizeof buf) > 0);
    CHECK(strcmp(buf, (const char *)arg) == 0);
    if (strcmp(buf, (const char *)arg))
        fprintf(stderr, "child %s caller %s", buf, (const char *)arg);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(wf_process_close(p), 0);
    return 0;
}

static void test_modes(void **state)
{
    /* This thread's mask, as /proc shows it (the test harness may block
     * some signals). */
    char want[128] = {0}, path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", (long)gettid());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(want, sizeof want, f) && strncmp(want, "SigBlk:", 7)) {
    }
    fclose(f);
    run_counted(NULL, 2, m_modes, want);
}

/* --- errors ----------------------------------------------------------------------------------- */

static int m_errors(void *arg, void **res)
{
    wf_process_t *p = NULL;
    /* valgrind 3.19 runs posix_spawn's vfork-like clone as a plain fork:
     * the child's exec error cannot reach the parent through the shared
     * memory glibc relies on, so the spawn "succeeds" and the child exits
     * 127. The exec errors are checked everywhere else. */
    if (on_valgrind())
        goto bad_arguments;
    CHECK_EQ(wf_process_spawn(&p, "no-such-program-weft", NULL, NULL), -ENOENT);
    CHECK_EQ(wf_process_spawn(&p, "/no/such/program", NULL, NULL), -ENOENT);
    /* Not executable; executable but not a program. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-noexec-%d", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK_EQ(write(fd, "\x01\x02garbage", 9), 9);
    close(fd);
    CHECK_EQ(wf_process_spawn(&p, path, NULL, NULL), -EACCES);
    CHECK_EQ(chmod(path, 0755), 0);
    CHECK_EQ(wf_process_spawn(&p, path, NULL, NULL), -ENOEXEC);
    unlink(path);
    CHECK_EQ(wf_process_spawn(&p, "/tmp", NULL, NULL), -EACCES); /* a directory */
    wf_process_opts_t o = pipes();
    o.cwd = "/no/such/dir";
    CHECK_EQ(wf_process_spawn(&p, "/bin/true", NULL, &o), -ENOENT);
    CHECK(p == NULL);
bad_arguments:
    /* Bad arguments. */
    CHECK_EQ(wf_process_spawn(NULL, "true", NULL, NULL), -EINVAL);
    CHECK_EQ(wf_process_spawn(&p, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_process_spawn(&p, "", NULL, NULL), -EINVAL);
    o = (wf_process_opts_t)WF_PROCESS_OPTS_INIT;
    o.stdin_mode = WF_STDIO_STDOUT;
    CHECK_EQ(wf_process_spawn(&p, "true", NULL, &o), -EINVAL);
    o = (wf_process_opts_t)WF_PROCESS_OPTS_INIT;
    o.stdout_mode = WF_STDIO_FD;
    CHECK_EQ(wf_process_spawn(&p, "true", NULL, &o), -EINVAL); /* fd -1 */
    o = (wf_process_opts_t)WF_PROCESS_OPTS_INIT;
    o.stderr_mode = (wf_stdio_t)42;
    CHECK_EQ(wf_process_spawn(&p, "true", NULL, &o), -EINVAL);
    CHECK_EQ(wf_process_pid(NULL), -EINVAL);
    CHECK(wf_process_stdout(NULL) == NULL);
    CHECK_EQ(wf_process_wait(NULL, 0, NULL), -EINVAL);
    CHECK_EQ(wf_process_signal(NULL, SIGTERM), -EINVAL);
    CHECK_EQ(wf_process_close(NULL), -EINVAL);
    CHECK_EQ(wf_process_close_stdin(NULL, 0), -EINVAL);
    int st;
    CHECK_EQ(wf_process_returncode(NULL, &st), -EINVAL);

    /* A write to a child that has gone: -EPIPE, and this process lives
     * (no SIGPIPE). */
    o = pipes();
    CHECK_EQ(wf_process_spawn(&p, "/bin/true", NULL, &o), 0);
    CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
    CHECK_EQ(wf_process_signal(p, 999), -EINVAL);
    char buf[4096] = {0};
    int e = 0;
    for (int i = 0; i < 1000 && e == 0; i++) {
        e = wf_stream_write(wf_process_stdin(p), buf, sizeof buf);
        if (e == 0)
            e = wf_stream_flush(wf_process_stdin(p), wf_deadline_in(LONG_NS));
    }
    CHECK(e == -EPIPE || e == -ECONNRESET);
    CHECK_EQ(wf_process_close(p), 0);
    return 0;
}

static void test_errors(void **state)
{
    wf_process_t *p;
    assert_int_equal(wf_process_spawn(&p, "true", NULL, NULL), -EPERM);
    run_counted(NULL, 2, m_errors, NULL);
}

/* --- left open at the end; many at once ----------------------------------------------------- */

static pid_t left_pid;

static int m_left_open(void *arg, void **res)
{
    char *sl[] = {"sleep", "100", NULL};
    wf_process_t *p;
    wf_process_opts_t o = pipes();
    CHECK_EQ(wf_process_spawn(&p, "sleep", sl, &o), 0);
    left_pid = wf_process_pid(p);
    return 0; /* never closed */
}

static void test_left_open(void **state)
{
    run_counted(NULL, 2, m_left_open, NULL);
    /* Killed and reaped by wf_run: not our child any more. */
    int ws;
    assert_int_equal(waitpid(left_pid, &ws, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

typedef struct {
    _Atomic long ok;
    int rounds;
} many_ctx;

static int spawner(void *arg, void **res)
{
    many_ctx *c = arg;
    char *av[4];
    for (int i = 0; i < c->rounds; i++) {
        wf_process_t *p;
        wf_process_opts_t o = WF_PROCESS_OPTS_INIT;
        o.stdout_mode = WF_STDIO_PIPE;
        char script[64];
        snprintf(script, sizeof script, "echo %d; exit %d", i, i % 5);
        if (wf_process_spawn(&p, sh(script, av), av, &o) != 0) {
            CHECK(0);
            continue;
        }
        char buf[32];
        long n = line(wf_process_stdout(p), buf, sizeof buf);
        int st = -1;
        CHECK_EQ(wf_process_wait(p, wf_deadline_in(LONG_NS), &st), 0);
        if (n > 0 && atoi(buf) == i && st == i % 5)
            atomic_fetch_add(&c->ok, 1);
        CHECK_EQ(wf_process_close(p), 0);
    }
    return 0;
}

static int m_many(void *arg, void **res)
{
    enum { FIBERS = 16 };
    many_ctx c = {.rounds = SCALED(10)};
    wf_task_t t[FIBERS];
    for (int i = 0; i < FIBERS; i++)
        CHECK_EQ(wf_spawn(&t[i], spawner, &c, NULL), 0);
    for (int i = 0; i < FIBERS; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&c.ok), FIBERS * c.rounds);
    return 0;
}

static void test_many(void **state)
{
    run_counted(NULL, 4, m_many, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),      cmocka_unit_test(test_status), cmocka_unit_test(test_wait_cancel),
        cmocka_unit_test(test_fds),       cmocka_unit_test(test_modes),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_left_open), cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, warm_up, NULL);
}
