/* syscount.c - counting the server's system calls with strace or perf
 * (syscount.h). */
#include "syscount.h"
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long strace may take to attach to every thread, and either tool to
 * answer, on a shared machine. */
enum { TOOL_MS = 10000 };

static const char *const epoll_calls[] = {"epoll_wait", "epoll_pwait", "epoll_pwait2", NULL};
static const char *const read_calls[] = {"read", "readv", "recvfrom", "recvmsg", NULL};
static const char *const write_calls[] = {"write", "writev", "sendto", "sendmsg", NULL};

static bool name_in(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(name, *list))
            return true;
    return false;
}

/* Add @p n calls of the system call @p name to the right counters (not to
 * the total, which each tool gives on its own). */
static void classify(syscall_counts *k, const char *name, uint64_t n)
{
    if (name_in(name, epoll_calls))
        k->epoll_wait += n;
    else if (!strcmp(name, "futex"))
        k->futex += n;
    else if (name_in(name, read_calls))
        k->reads += n;
    else if (name_in(name, write_calls))
        k->writes += n;
}

/* Copy what perf said on stderr to ours (before a failure). */
static void dump_err(const syscount *c)
{
    FILE *f = c->err[0] ? fopen(c->err, "r") : NULL;
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "weft-bench: perf: %s", line);
    fclose(f);
}

static void tool_exited_check(const syscount *c)
{
    int st = 0;
    if (waitpid(c->tool, &st, WNOHANG) == 0)
        return;
    dump_err(c);
    BENCH_CHECK(0,
                "%s exited before it was counting (status %#x): is it installed, and may it trace "
                "the server?",
                c->method == SYSCOUNT_PERF ? "perf" : "strace", st);
}

/* --- strace ---------------------------------------------------------------------- */

static int tracer_of(pid_t pid, pid_t tid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1; /* the thread has exited */
    int tracer = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "TracerPid: %d", &tracer) == 1)
            break;
    fclose(f);
    return tracer;
}

static void strace_start(syscount *c, const server_proc *s)
{
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)s->pid);
    fflush(NULL);
    c->tool = fork();
    BENCH_CHECK(c->tool >= 0, "fork: %s", strerror(errno));
    if (c->tool == 0) {
        execlp("strace", "strace", "-c", "-f", "-qq", "-o", c->out, "-p", pid, (char *)NULL);
        fprintf(stderr, "weft-bench: cannot run strace: %s\n", strerror(errno));
        _exit(127);
    }
    /* Counting has begun when /proc names strace as the tracer of every
     * thread of the server. */
    double deadline = now_s() + TOOL_MS / 1000.0;
    for (;;) {
        tool_exited_check(c);
        pid_t tids[1024];
        int n = server_threads(s, tids, 1024);
        BENCH_CHECK(n <= 1024, "the server has %d threads", n);
        bool all = true;
        for (int i = 0; i < n && all; i++) {
            int t = tracer_of(s->pid, tids[i]);
            all = t < 0 || t == c->tool;
        }
        if (all)
            return;
        BENCH_CHECK(now_s() < deadline, "strace did not attach to every thread in %d s", TOOL_MS / 1000);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* strace -c's table: one line per system call,
 * "% time  seconds  usecs/call  calls  [errors]  syscall", then "total". */
static void strace_parse(const char *path, syscall_counts *k)
{
    FILE *f = fopen(path, "r");
    BENCH_CHECK(f, "strace's table %s: %s", path, strerror(errno));
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char t[6][64];
        int n = sscanf(line, "%63s %63s %63s %63s %63s %63s", t[0], t[1], t[2], t[3], t[4], t[5]);
        if (n < 5 || t[0][0] < '0' || t[0][0] > '9' || !strchr(t[0], '.'))
            continue; /* the header, the rules */
        const char *name = t[n - 1];
        if (!strcmp(name, "total"))
            continue;
        uint64_t calls = strtoull(t[3], NULL, 10);
        k->calls += calls;
        k->errors += n == 6 ? strtoull(t[4], NULL, 10) : 0;
        classify(k, name, calls);
    }
    fclose(f);
}

/* --- perf -------------------------------------------------------------------------- */

/* Whether the kernel has the tracepoint syscalls:sys_enter_NAME. */
static bool have_tracepoint(const char *name)
{
    static const char *const roots[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};
    for (unsigned i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/events/syscalls/sys_enter_%s", roots[i], name);
        if (access(path, F_OK) == 0)
            return true;
    }
    return false;
}

static void wait_ack(syscount *c, const char *cmd)
{
    size_t len = strlen(cmd);
    BENCH_CHECK(write(c->ctl, cmd, len) == (ssize_t)len, "perf's control pipe: %s", strerror(errno));
    char buf[16];
    size_t got = 0;
    double deadline = now_s() + TOOL_MS / 1000.0;
    while (got < 4 || memcmp(buf, "ack\n", 4) != 0) {
        tool_exited_check(c);
        BENCH_CHECK(now_s() < deadline, "perf did not acknowledge '%.*s' in %d s", (int)len - 1, cmd,
                    TOOL_MS / 1000);
        struct pollfd pf = {.fd = c->ack, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = read(c->ack, buf + got, sizeof buf - got);
        BENCH_CHECK(n > 0, "perf's ack pipe: %s", n < 0 ? strerror(errno) : "closed");
        got += (size_t)n;
        BENCH_CHECK(got < sizeof buf, "perf answered '%.*s'", (int)got, buf);
    }
}

static void perf_start(syscount *c, const server_proc *s)
{
    static const char *const calls[] = {
        "epoll_wait", "epoll_pwait", "epoll_pwait2", "futex",  "read",    "readv", "recvfrom",
        "recvmsg",    "write",       "writev",       "sendto", "sendmsg", NULL};
    int ctl[2], ack[2];
    BENCH_CHECK(pipe(ctl) == 0 && pipe(ack) == 0, "pipe: %s", strerror(errno));
    char pid[16], control[64];
    snprintf(pid, sizeof pid, "%d", (int)s->pid);
    snprintf(control, sizeof control, "fd:%d,%d", ctl[0], ack[1]);
    /* perf stat -x, -o OUT -D -1 --control fd:CTL,ACK -p PID -e ...:
     * attached with every counter off until 'enable' is acknowledged. */
    static char ev[16][64];
    const char *argv[64] = {"perf", "stat", "-x", ",", "-o", c->out, "-D", "-1", "--control", control, "-p",
                            pid, "-e", "raw_syscalls:sys_enter",
                            /* The calls that return EAGAIN: the reads a server makes in vain. */
                            "-e", "raw_syscalls:sys_exit", "--filter", "ret == -11"};
    unsigned a = 18, e = 0;
    for (unsigned i = 0; calls[i]; i++)
        if (have_tracepoint(calls[i])) {
            snprintf(ev[e], sizeof ev[e], "syscalls:sys_enter_%s", calls[i]);
            argv[a++] = "-e";
            argv[a++] = ev[e++];
        }
    argv[a] = NULL;
    BENCH_CHECK(e > 0, "no syscall tracepoints (is tracefs mounted at /sys/kernel/tracing?)");
    fflush(NULL);
    c->tool = fork();
    BENCH_CHECK(c->tool >= 0, "fork: %s", strerror(errno));
    if (c->tool == 0) {
        close(ctl[1]);
        close(ack[0]);
        /* perf says "Events enabled" and the like on stderr at every
         * command: keep that (and any error) for syscount_stop. */
        int efd = open(c->err, O_WRONLY | O_CLOEXEC);
        if (efd < 0 || dup2(efd, STDERR_FILENO) < 0)
            _exit(127);
        execvp("perf", (char *const *)argv);
        fprintf(stderr, "weft-bench: cannot run perf: %s\n", strerror(errno));
        _exit(127);
    }
    close(ctl[0]);
    close(ack[1]);
    c->ctl = ctl[1];
    c->ack = ack[0];
    fcntl(c->ctl, F_SETFD, FD_CLOEXEC);
    fcntl(c->ack, F_SETFD, FD_CLOEXEC);
    wait_ack(c, "enable\n");
}

/* perf stat -x, lines: "COUNT,UNIT,EVENT,RUNTIME,PERCENT,,". */
static void perf_parse(const syscount *c, const char *path, syscall_counts *k)
{
    FILE *f = fopen(path, "r");
    BENCH_CHECK(f, "perf's counts %s: %s", path, strerror(errno));
    char line[512];
    bool total = false;
    while (fgets(line, sizeof line, f)) {
        char *rest = line, *field[3];
        for (unsigned i = 0; i < 3; i++)
            field[i] = strsep(&rest, ",");
        if (!field[2] || field[0][0] < '0' || field[0][0] > '9')
            continue; /* comments, "<not counted>" */
        uint64_t n = strtoull(field[0], NULL, 10);
        const char *event = field[2];
        if (!strcmp(event, "raw_syscalls:sys_enter")) {
            k->calls = n;
            total = true;
        } else if (!strcmp(event, "raw_syscalls:sys_exit")) {
            k->errors = n;
        } else if (!strncmp(event, "syscalls:sys_enter_", 19)) {
            classify(k, event + 19, n);
        }
    }
    fclose(f);
    if (!total)
        dump_err(c);
    BENCH_CHECK(total, "perf counted no raw_syscalls:sys_enter (see %s)", path);
}

/* --- both ------------------------------------------------------------------------- */

void syscount_start(syscount *c, syscount_method m, const server_proc *s)
{
    memset(c, 0, sizeof *c);
    c->method = m;
    c->server = s->pid;
    c->ctl = c->ack = -1;
    snprintf(c->out, sizeof c->out, "/tmp/weft-bench-syscount-XXXXXX");
    int fd = mkstemp(c->out);
    BENCH_CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
    close(fd);
    if (m == SYSCOUNT_PERF) {
        snprintf(c->err, sizeof c->err, "/tmp/weft-bench-perf-XXXXXX");
        fd = mkstemp(c->err);
        BENCH_CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
        close(fd);
    }
    pid_t tids[1];
    c->threads = server_threads(s, tids, 1);
    if (m == SYSCOUNT_PERF)
        perf_start(c, s);
    else
        strace_start(c, s);
}

void syscount_stop(syscount *c, syscall_counts *k)
{
    memset(k, 0, sizeof *k);
    if (c->method == SYSCOUNT_PERF)
        wait_ack(c, "disable\n");
    /* SIGINT: strace detaches and writes its table; perf writes its counts. */
    kill(c->tool, SIGINT);
    int st;
    BENCH_CHECK(waitpid(c->tool, &st, 0) == c->tool, "waitpid: %s", strerror(errno));
    if (c->method == SYSCOUNT_PERF) {
        close(c->ctl);
        close(c->ack);
        perf_parse(c, c->out, k);
    } else {
        strace_parse(c->out, k);
    }
    unlink(c->out);
    if (c->err[0])
        unlink(c->err);
    server_proc s = {.pid = c->server};
    pid_t tids[1];
    int threads = server_threads(&s, tids, 1);
    if (c->method == SYSCOUNT_PERF && threads > c->threads)
        fprintf(stderr,
                "weft-bench: the server went from %d to %d threads while perf counted; the new "
                "ones were not counted\n",
                c->threads, threads);
}
