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
 * WAITING AND REAPING are child.h's (the pidfd on the poller, the child
 * crew without one, one reaper under the child's lock). A process closed
 * while its child runs: the closer sends SIGKILL and hands the pid to the
 * child crew (wf__child_reap_later), so no zombie remains and the closing
 * fiber never waits. The processes still open when wf_run ends are killed
 * and reaped by its thread (wf__processes_destroy).
 */
#include "child.h"
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
    wf__child child;
    wf__spinlock lock;
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

/* fds[0] the child's end, fds[1] the parent's. */
static __attribute__((noinline)) int sys_pipe(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
}

/* --- spawn -------------------------------------------------------------------- */

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
    p->child.pidfd = -1;
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
    pid_t pid = 0;
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
        e = -(strchr(file, '/') ? posix_spawn(&pid, file, &fa, &at, av, env)
                                : posix_spawnp(&pid, file, &fa, &at, av, env));
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
    e = wf__child_init(&p->child, pid);
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
        wf__child_reap_now(&p->child); /* kills it; takes the worker briefly */
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
    return p ? p->child.pid : -EINVAL;
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
    int st;
    if (!wf__child_returncode(&((wf_process_t *)p)->child, &st))
        return -EAGAIN;
    *status = st;
    return 0;
}

int wf_process_signal(wf_process_t *p, int signo)
{
    if (!p || signo < 0 || signo >= _NSIG)
        return -EINVAL;
    return wf__child_signal(&p->child, signo);
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
    int e = wf__child_wait(self, &p->child, deadline);
    wf__spin_lock(&p->lock);
    p->waiting = false;
    wf__spin_unlock(&p->lock);
    if (e == 0 && status)
        (void)wf__child_returncode(&p->child, status);
    return e;
}

/* --- closing ------------------------------------------------------------------------ */

static void release(wf_process_t *p)
{
    wf_stream_abort(p->in);
    wf_stream_abort(p->out);
    wf_stream_abort(p->err);
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
    wf__child_reap_later(p->rt, &p->child);
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
        wf__child_reap_now(&p->child);
        release(p);
    }
}
