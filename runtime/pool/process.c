/* process.c - child processes for fibers (weft/process.h).
 *
 * SPAWN, in steps:
 *   1. Pipes for the streams set to WF_STDIO_PIPE: socket pairs, as libuv
 *      makes them (weft/process.h says why), with SOCK_CLOEXEC so that no
 *      other thread's spawn can inherit them. The child's end stays
 *      blocking (a program expects a blocking stdin); the parent's becomes
 *      a weft socket (wf_sock_adopt: non-blocking).
 *   2. File actions: each child end (or /dev/null, or the caller's fd) onto
 *      0, 1 and 2 in that order (stderr to stdout last), then close every fd
 *      from 3 up (posix_spawn_file_actions_addclosefrom_np: in the child,
 *      after the dup2s; close-on-exec or not). Attributes: the mask of
 *      wf_run's caller, SIGPIPE's default action, a new session if asked.
 *   3. posix_spawn(p): glibc clones the process with CLONE_VM|CLONE_VFORK
 *      onto a stack of its own, so the parent thread (this worker) is held
 *      only until exec, and an exec failure comes back as its errno.
 *   4. Close the child's ends; open a pidfd for the child (or, without
 *      pidfd_open, use the child crew: pool.h's WF__CREW_CHILD); wrap the
 *      parent's ends in streams (wf_sock_adopt, wf_stream_open).
 *
 * REAPING. Exactly one party reaps a child, always under p->lock after
 * the child is known to have exited (the pidfd readable, or a pool
 * thread's waitid(WNOWAIT) returned): waitpid(pid, WNOHANG). So `reaped`
 * is exact under the lock, and kill(2) under the same lock never reaches a
 * reused pid (pidfd_send_signal needs no such care). A process closed
 * while its child runs: the closer sends SIGKILL and hands the pid to the
 * child crew, where a pool thread blocks in waitpid(pid) until the child
 * is gone; so no zombie remains, and the closing fiber never waits. The
 * processes still open when wf_run ends are killed and reaped by its
 * thread (wf__processes_destroy).
 */
#include "pool.h"
#include "runtime.h"
#include "sigs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/io.h>
#include <weft/net.h>
#include <weft/process.h>

extern char **environ;

struct wf_process {
    wf__link link; /* on the runtime's list of open processes */
    wf__runtime *rt;
    pid_t pid;
    int pidfd; /* -1: wait through the child crew */
    wf__spinlock lock;
    bool reaped;  /* under lock */
    int status;   /* the returncode, once reaped */
    bool waiting; /* a fiber is in wf_process_wait (under lock) */
    wf_stream_t *in, *out, *err;
};

/* --- the runtime's list of open processes ----------------------------------- */

static void track(wf_process_t *p)
{
    wf__pool *pool = p->rt->pool;
    wf__spin_lock(&pool->procs_lock);
    wf__list_push_back(&pool->procs, &p->link);
    wf__spin_unlock(&pool->procs_lock);
}

static void untrack(wf_process_t *p)
{
    wf__pool *pool = p->rt->pool;
    wf__spin_lock(&pool->procs_lock);
    wf__list_unlink(&p->link);
    wf__spin_unlock(&pool->procs_lock);
}

/* --- system calls (errno read right after each, never after a wait) -------- */

static __attribute__((noinline)) int sys_pidfd_open(pid_t pid)
{
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r < 0 ? -errno : (int)r;
}

static __attribute__((noinline)) int sys_pidfd_signal(int pidfd, int signo)
{
    return syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0) < 0 ? -errno : 0;
}

static __attribute__((noinline)) int sys_kill(pid_t pid, int signo)
{
    return kill(pid, signo) < 0 ? -errno : 0;
}

/* waitpid(WNOHANG): 1 reaped (*ws), 0 still running, -errno. */
static __attribute__((noinline)) int sys_reap(pid_t pid, int *ws)
{
    pid_t r;
    do
        r = waitpid(pid, ws, WNOHANG);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r == pid;
}

/* fds[0] the child's end, fds[1] the parent's. */
static __attribute__((noinline)) int sys_pipe(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
}

static int returncode(int ws)
{
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    if (WIFSIGNALED(ws))
        return -WTERMSIG(ws);
    return -1; /* stopped or continued: waitpid without WUNTRACED never says so */
}

/* p->lock held. Reap if it has exited: true when reaped (now or before). */
static bool try_reap_locked(wf_process_t *p)
{
    if (p->reaped)
        return true;
    int ws = 0;
    int r = sys_reap(p->pid, &ws);
    if (r == 1) {
        p->status = returncode(ws);
        p->reaped = true;
    } else if (r == -ECHILD) {
        /* Someone else reaped it (a waitpid(-1) in the program): the status
         * is lost; say "killed by an unknown cause" rather than hang. */
        p->status = -1;
        p->reaped = true;
    }
    return p->reaped;
}

static bool try_reap(wf_process_t *p)
{
    wf__spin_lock(&p->lock);
    bool r = try_reap_locked(p);
    wf__spin_unlock(&p->lock);
    return r;
}

/* --- waiting without pidfd: the child crew --------------------------------- */

typedef struct child_wait {
    wf__job job;
    pid_t pid;
    bool reap; /* reap it (a closed process's child), else only wait */
} child_wait;

static void child_wait_run(wf__job *j)
{
    child_wait *c = wf__container_of(j, child_wait, job);
    siginfo_t si;
    int r;
    if (c->reap) {
        int ws;
        do
            r = waitpid(c->pid, &ws, 0);
        while (r < 0 && errno == EINTR);
    } else {
        /* WNOWAIT: the child stays reapable; the fiber reaps it under the
         * process's lock (REAPING above). */
        do
            r = waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOWAIT);
        while (r < 0 && errno == EINTR);
    }
    j->status = r < 0 ? -errno : 0;
}

static void child_wait_abandon(wf__job *j)
{
    free(wf__container_of(j, child_wait, job));
}

static child_wait *child_wait_new(pid_t pid, bool reap)
{
    child_wait *c = malloc(sizeof *c);
    if (c) {
        wf__job_init(&c->job, child_wait_run, child_wait_abandon);
        c->pid = pid;
        c->reap = reap;
    }
    return c;
}

/* --- spawn -------------------------------------------------------------------- */

static bool no_pidfd(void)
{
    const char *v = getenv("WF_NO_PIDFD");
    return v && *v && strcmp(v, "0") != 0;
}

static int check_mode(wf_stdio_t m, int fd, bool is_stderr)
{
    switch (m) {
    case WF_STDIO_INHERIT:
    case WF_STDIO_PIPE:
    case WF_STDIO_DEVNULL:
        return 0;
    case WF_STDIO_FD:
        return fd >= 0 ? 0 : -EINVAL;
    case WF_STDIO_STDOUT:
        return is_stderr ? 0 : -EINVAL;
    default:
        return -EINVAL;
    }
}

/* A stream over the parent's end of a pipe: it owns the fd from here on,
 * whatever happens (closed on failure). */
static int pipe_stream(wf_stream_t **out, int fd)
{
    wf_sock_t *s;
    int e = wf_sock_adopt(&s, fd);
    if (e < 0) {
        close(fd);
        return e;
    }
    if ((e = wf_stream_open(out, s, NULL)) < 0)
        wf_sock_close(s); /* closes fd */
    return e;
}

int wf_process_spawn(wf_process_t **out, const char *file, char *const argv[], const wf_process_opts_t *opts)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf_process_opts_t o = WF_PROCESS_OPTS_INIT;
    if (opts)
        o = *opts;
    if (!out || !file || !*file || check_mode(o.stdin_mode, o.stdin_fd, false) ||
        check_mode(o.stdout_mode, o.stdout_fd, false) || check_mode(o.stderr_mode, o.stderr_fd, true))
        return -EINVAL;
    wf__runtime *rt = self->rt;
    wf_process_t *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->rt = rt;
    p->pidfd = -1;
    wf__spin_init(&p->lock);
    wf__list_init(&p->link);

    /* Step 1: pipes. [i][0] the child's end, [i][1] the parent's. */
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    const wf_stdio_t modes[3] = {o.stdin_mode, o.stdout_mode, o.stderr_mode};
    const int fds[3] = {o.stdin_fd, o.stdout_fd, o.stderr_fd};
    int e = 0;
    for (int i = 0; i < 3 && !e; i++)
        if (modes[i] == WF_STDIO_PIPE)
            e = sys_pipe(pipes[i]);

    /* Step 2: what the child gets. */
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    bool fa_ok = false, at_ok = false;
    if (!e)
        e = -posix_spawn_file_actions_init(&fa);
    fa_ok = !e;
    if (!e)
        e = -posix_spawnattr_init(&at);
    at_ok = fa_ok && !e;
    for (int i = 0; i < 3 && !e; i++) {
        switch (modes[i]) {
        case WF_STDIO_PIPE:
            /* dup2 clears close-on-exec on the copy. */
            e = -posix_spawn_file_actions_adddup2(&fa, pipes[i][0], i);
            break;
        case WF_STDIO_DEVNULL:
            e = -posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
            break;
        case WF_STDIO_FD:
            e = -posix_spawn_file_actions_adddup2(&fa, fds[i], i);
            break;
        case WF_STDIO_STDOUT:
            e = -posix_spawn_file_actions_adddup2(&fa, 1, 2);
            break;
        default:
            break;
        }
    }
    if (!e && o.cwd)
        e = -posix_spawn_file_actions_addchdir_np(&fa, o.cwd);
    if (!e)
        e = -posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (!e) {
        sigset_t mask, dfl;
        wf__signals_child_mask(rt, &mask);
        sigemptyset(&dfl);
        sigaddset(&dfl, SIGPIPE);
        short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
        if (o.new_session)
            flags |= POSIX_SPAWN_SETSID;
        e = -posix_spawnattr_setsigmask(&at, &mask);
        if (!e)
            e = -posix_spawnattr_setsigdefault(&at, &dfl);
        if (!e)
            e = -posix_spawnattr_setflags(&at, flags);
    }

    /* Step 3. */
    if (!e) {
        char *const dflt[] = {(char *)file, NULL};
        char *const *av = argv ? argv : dflt;
        char *const *env = o.envp ? o.envp : environ;
        e = -(strchr(file, '/') ? posix_spawn(&p->pid, file, &fa, &at, av, env)
                                : posix_spawnp(&p->pid, file, &fa, &at, av, env));
    }
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (at_ok)
        posix_spawnattr_destroy(&at);

    /* Step 4: the child's ends are the child's. */
    for (int i = 0; i < 3; i++) {
        if (pipes[i][0] >= 0)
            close(pipes[i][0]);
        pipes[i][0] = -1;
    }
    if (e) {
        for (int i = 0; i < 3; i++)
            if (pipes[i][1] >= 0)
                close(pipes[i][1]);
        free(p);
        return e;
    }
    /* From here on the child runs: failures below kill and reap it. */
    int pfd = no_pidfd() ? -ENOSYS : sys_pidfd_open(p->pid);
    if (pfd >= 0) {
        p->pidfd = pfd;
        (void)fcntl(pfd, F_SETFD, FD_CLOEXEC); /* pidfds are close-on-exec already */
    } else if (pfd != -ENOSYS && pfd != -EPERM) {
        e = pfd;
    }
    wf_stream_t **streams[3] = {&p->in, &p->out, &p->err};
    for (int i = 0; i < 3; i++) {
        int mine = pipes[i][1];
        if (mine < 0)
            continue;
        if (!e)
            e = pipe_stream(streams[i], mine); /* takes the fd, on failure too */
        else
            close(mine);
    }
    if (e) {
        wf_stream_abort(p->in);
        wf_stream_abort(p->out);
        wf_stream_abort(p->err);
        (void)sys_kill(p->pid, SIGKILL);
        int ws;
        while (waitpid(p->pid, &ws, 0) < 0 && errno == EINTR) {
        }
        if (p->pidfd >= 0)
            close(p->pidfd);
        free(p);
        return e;
    }
    track(p);
    *out = p;
    return 0;
}

/* --- queries and signals -------------------------------------------------------- */

pid_t wf_process_pid(const wf_process_t *p)
{
    return p ? p->pid : -EINVAL;
}

wf_stream_t *wf_process_stdin(wf_process_t *p)
{
    return p ? p->in : NULL;
}

wf_stream_t *wf_process_stdout(wf_process_t *p)
{
    return p ? p->out : NULL;
}

wf_stream_t *wf_process_stderr(wf_process_t *p)
{
    return p ? p->err : NULL;
}

int wf_process_close_stdin(wf_process_t *p, int64_t deadline)
{
    if (!p)
        return -EINVAL;
    wf_stream_t *in = p->in;
    if (!in)
        return -EBADF;
    p->in = NULL;
    return wf_stream_close(in, deadline);
}

int wf_process_returncode(const wf_process_t *p, int *status)
{
    if (!p || !status)
        return -EINVAL;
    wf_process_t *q = (wf_process_t *)p;
    wf__spin_lock(&q->lock);
    bool reaped = q->reaped;
    int st = q->status;
    wf__spin_unlock(&q->lock);
    if (!reaped)
        return -EAGAIN;
    *status = st;
    return 0;
}

int wf_process_signal(wf_process_t *p, int signo)
{
    if (!p || signo < 0 || signo >= _NSIG)
        return -EINVAL;
    if (p->pidfd >= 0)
        return sys_pidfd_signal(p->pidfd, signo); /* -ESRCH once it has exited */
    wf__spin_lock(&p->lock);
    /* Not reaped (and reaping takes this lock): the pid is still ours. */
    int e = try_reap_locked(p) ? -ESRCH : sys_kill(p->pid, signo);
    wf__spin_unlock(&p->lock);
    return e;
}

int wf_process_terminate(wf_process_t *p)
{
    return wf_process_signal(p, SIGTERM);
}

int wf_process_kill(wf_process_t *p)
{
    return wf_process_signal(p, SIGKILL);
}

/* --- waiting ------------------------------------------------------------------------ */

/* One wait for the child to exit, until `deadline`: 0 when it may have. */
static int wait_exit(wf__task *self, wf_process_t *p, int64_t deadline)
{
    if (p->pidfd >= 0)
        return wf_wait_readable(p->pidfd, deadline);
    child_wait *c = child_wait_new(p->pid, false);
    if (!c)
        return -ENOMEM;
    wf__crew *crew = &self->rt->pool->crews[WF__CREW_CHILD];
    int r = wf__job_wait(self, crew, &c->job, deadline, WF__JOB_ABANDON);
    if (r == -ECANCELED || r == -ETIMEDOUT)
        return r; /* the pool frees it when the child exits */
    int st = c->job.status;
    free(c);
    return r < 0 ? r : st;
}

int wf_process_wait(wf_process_t *p, int64_t deadline, int *status)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!p || deadline < WF_FOREVER)
        return -EINVAL;
    wf__spin_lock(&p->lock);
    if (p->waiting) {
        wf__spin_unlock(&p->lock);
        return -EBUSY;
    }
    p->waiting = true;
    wf__spin_unlock(&p->lock);
    int e = 0;
    while (!try_reap(p)) {
        e = wait_exit(self, p, deadline);
        if (e < 0)
            break;
    }
    wf__spin_lock(&p->lock);
    p->waiting = false;
    int st = p->status;
    bool reaped = p->reaped;
    wf__spin_unlock(&p->lock);
    if (reaped) {
        if (status)
            *status = st;
        return 0; /* an exit that won the race with the deadline counts */
    }
    return e;
}

/* --- closing ------------------------------------------------------------------------ */

/* Kill and reap a child nobody will wait for, without waiting here: a pool
 * thread blocks in waitpid until it is gone. Where no pool thread can be
 * had, reap it here (it was killed: it goes quickly). */
static void reap_later(wf_process_t *p)
{
    if (try_reap(p))
        return;
    (void)wf_process_signal(p, SIGKILL);
    child_wait *c = child_wait_new(p->pid, true);
    if (c) {
        c->job.abandoned = true; /* nobody waits: the pool frees it */
        if (wf__crew_submit(&p->rt->pool->crews[WF__CREW_CHILD], &c->job) == 0)
            return;
        free(c);
    }
    int ws;
    while (waitpid(p->pid, &ws, 0) < 0 && errno == EINTR) {
    }
}

static void release(wf_process_t *p)
{
    wf_stream_abort(p->in);
    wf_stream_abort(p->out);
    wf_stream_abort(p->err);
    if (p->pidfd >= 0)
        close(p->pidfd);
    free(p);
}

int wf_process_close(wf_process_t *p)
{
    if (!wf__current())
        return -EPERM;
    if (!p)
        return -EINVAL;
    wf__spin_lock(&p->lock);
    bool busy = p->waiting;
    wf__spin_unlock(&p->lock);
    if (busy)
        return -EBUSY;
    untrack(p);
    reap_later(p);
    release(p);
    return 0;
}

void wf__processes_destroy(wf__runtime *rt)
{
    wf__pool *pool = rt->pool;
    if (!pool)
        return;
    /* Every runtime thread has stopped: this thread is alone here. */
    wf__link *l;
    while ((l = wf__list_pop_front(&pool->procs)) != NULL) {
        wf_process_t *p = wf__container_of(l, wf_process_t, link);
        if (!try_reap(p)) {
            (void)wf_process_signal(p, SIGKILL);
            int ws;
            while (waitpid(p->pid, &ws, 0) < 0 && errno == EINTR) {
            }
        }
        release(p);
    }
}
