/* server_proc.c - the server under test, as a child process (server_proc.h). */
#include "server_proc.h"
#include "bench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long a server may take to print its ready line, and to exit after
 * SIGTERM. Generous: this machine is shared, and Go and Tokio start in
 * milliseconds; the contract gives a server 5 s to wind down. */
enum { READY_MS = 15000, STOP_MS = 5000 };

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* The child: stdout to the pipe, die with the harness, the usual fd limit,
 * then exec. Only async-signal-safe calls between fork and exec. */
static void child(const char *path, char *const argv[], int out_w, pid_t parent)
{
    if (dup2(out_w, STDOUT_FILENO) < 0)
        _exit(127);
    /* SIGKILL when weft-bench exits (a failed check exits at once); the
     * parent may already be gone when this runs, hence the check. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 1024) {
        rl.rlim_cur = 1024;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(path, argv);
    static const char msg[] = "weft-bench: cannot execute the server\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* Nothing more to say. */
    }
    _exit(127);
}

/* "listening on HOST:PORT" -> s->addr; false if the line is not that. */
static bool parse_ready(server_proc *s, const char *line)
{
    static const char prefix[] = "listening on ";
    if (strncmp(line, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *hp = line + sizeof prefix - 1;
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || strlen(hp) >= sizeof s->hostport)
        return false;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port <= 0 || port > 65535)
        return false;
    char host[64];
    size_t hl = (size_t)(colon - hp);
    if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
        hp++;
        hl -= 2;
    }
    if (hl >= sizeof host)
        return false;
    memcpy(host, hp, hl);
    host[hl] = '\0';
    memset(&s->addr, 0, sizeof s->addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&s->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s->addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        s->addrlen = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        s->addrlen = sizeof *a6;
    } else {
        return false;
    }
    snprintf(s->hostport, sizeof s->hostport, "%s", line + sizeof prefix - 1);
    return true;
}

void server_start(server_proc *s, const char *path, unsigned workers)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    s->out = -1;
    BENCH_CHECK(access(path, X_OK) == 0, "server %s: %s", path, strerror(errno));
    int p[2];
    BENCH_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    char nw[16];
    snprintf(nw, sizeof nw, "%u", workers);
    char *argv[] = {(char *)path, "--host", "127.0.0.1", "--port", "0", "--workers", nw, NULL};
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t parent = getpid();
    pid_t pid = fork();
    BENCH_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        child(path, argv, p[1], parent);
    close(p[1]);
    s->pid = pid;
    s->out = p[0];

    /* Read up to the first newline, for READY_MS at most. */
    char line[256];
    size_t len = 0;
    double deadline = now_s() + READY_MS / 1000.0;
    for (;;) {
        char *nl = memchr(line, '\n', len);
        if (nl) {
            *nl = '\0';
            break;
        }
        double left = deadline - now_s();
        int st;
        if (left <= 0 || len == sizeof line - 1) {
            line[len] = '\0';
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            BENCH_CHECK(0, "server %s: no line 'listening on HOST:PORT' within %d s (got '%s')", path,
                        READY_MS / 1000, line);
        }
        struct pollfd pf = {.fd = s->out, .events = POLLIN};
        int n = poll(&pf, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        BENCH_CHECK(n >= 0, "poll: %s", strerror(errno));
        if (n == 0)
            continue;
        ssize_t r = read(s->out, line + len, sizeof line - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            st = 0;
            waitpid(pid, &st, 0);
            s->pid = 0;
            BENCH_CHECK(0, "server %s exited (status %#x) before its ready line", path, st);
        }
        len += (size_t)r;
    }
    if (!parse_ready(s, line)) {
        int st;
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        BENCH_CHECK(0, "server %s: expected 'listening on HOST:PORT', got '%s'", path, line);
    }
}

double server_cpu_s(const server_proc *s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
    FILE *f = fopen(path, "r");
    BENCH_CHECK(f, "%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: the
     * fields that follow start after the last ')'. utime and stime are
     * fields 14 and 15, in clock ticks. */
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    BENCH_CHECK(p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2,
                "%s: cannot read utime and stime", path);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long server_rss_kib(const server_proc *s)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    BENCH_CHECK(f, "%s: %s", path, strerror(errno));
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    BENCH_CHECK(kib >= 0, "%s: no VmRSS", path);
    return kib;
}

int server_threads(const server_proc *s, pid_t *tids, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)s->pid);
    DIR *d = opendir(path);
    BENCH_CHECK(d, "%s: %s", path, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9') {
            if (n < max)
                tids[n] = (pid_t)atoi(e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

/* Copy what the server wrote to stdout after its ready line to stderr: the
 * contract says it prints nothing more, so it is worth seeing. */
static void relay_output(server_proc *s)
{
    char buf[4096];
    ssize_t n;
    fcntl(s->out, F_SETFL, O_NONBLOCK);
    while ((n = read(s->out, buf, sizeof buf)) > 0) {
        fprintf(stderr, "weft-bench: the server's stdout: %.*s", (int)n, buf);
        if (buf[n - 1] != '\n')
            fputc('\n', stderr);
    }
    close(s->out);
    s->out = -1;
}

bool server_stop(server_proc *s)
{
    if (!s->pid)
        return false;
    bool ok = false;
    int st = 0;
    kill(s->pid, SIGTERM);
    double deadline = now_s() + STOP_MS / 1000.0;
    pid_t r;
    while (((r = waitpid(s->pid, &st, WNOHANG)) == 0 || (r < 0 && errno == EINTR)) && now_s() < deadline)
        sleep_ms(10);
    if (r == s->pid) {
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok = true;
        else if (WIFEXITED(st))
            fprintf(stderr, "weft-bench: server %s exited with status %d after SIGTERM\n", s->path,
                    WEXITSTATUS(st));
        else
            fprintf(stderr, "weft-bench: server %s was killed by signal %d after SIGTERM\n", s->path,
                    WTERMSIG(st));
    } else {
        fprintf(stderr, "weft-bench: server %s did not exit within %d s of SIGTERM; killing it\n", s->path,
                STOP_MS / 1000);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
    }
    s->pid = 0;
    relay_output(s);
    return ok;
}
