/* child.c - waiting for a child process and reaping it (child.h). */
#include "child.h"
#include "job.h"
#include "pool.h"
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/io.h>

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

/* Close the pidfd, telling the poller first when this is a runtime thread
 * (a pool thread or wf_run's end need not: nothing waits there). */
static void close_pidfd(wf__child *c)
{
    if (c->pidfd < 0)
        return;
    (void)wf_fd_forget(c->pidfd);
    close(c->pidfd);
    c->pidfd = -1;
}

static void reap_blocking(pid_t pid)
{
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
}

int wf__child_returncode_of(int ws)
{
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    if (WIFSIGNALED(ws))
        return -WTERMSIG(ws);
    return -1; /* stopped or continued: waitpid without WUNTRACED never says so */
}

/* --- adopting ------------------------------------------------------------------- */

static bool no_pidfd(void)
{
    const char *v = getenv("WF_NO_PIDFD");
    return v && *v && strcmp(v, "0") != 0;
}

int wf__child_init(wf__child *c, pid_t pid)
{
    c->pid = pid;
    c->pidfd = -1;
    c->reaped = false;
    c->status = 0;
    wf__spin_init(&c->lock);
    int pfd = no_pidfd() ? -ENOSYS : sys_pidfd_open(pid);
    if (pfd >= 0) {
        c->pidfd = pfd;
        (void)fcntl(pfd, F_SETFD, FD_CLOEXEC); /* pidfds are close-on-exec already */
        return 0;
    }
    return pfd == -ENOSYS || pfd == -EPERM ? 0 : pfd;
}

/* --- reaping -------------------------------------------------------------------- */

/* c->lock held. Reap if it has exited: true when reaped (now or before). */
static bool try_reap_locked(wf__child *c)
{
    if (c->reaped)
        return true;
    int ws = 0;
    int r = sys_reap(c->pid, &ws);
    if (r == 1) {
        c->status = wf__child_returncode_of(ws);
        c->reaped = true;
    } else if (r == -ECHILD) {
        /* Someone else reaped it (a waitpid(-1) in the program): the status
         * is lost; say "killed by an unknown cause" rather than hang. */
        c->status = -1;
        c->reaped = true;
    }
    return c->reaped;
}

bool wf__child_try_reap(wf__child *c)
{
    wf__spin_lock(&c->lock);
    bool r = try_reap_locked(c);
    wf__spin_unlock(&c->lock);
    return r;
}

bool wf__child_returncode(wf__child *c, int *status)
{
    wf__spin_lock(&c->lock);
    bool reaped = c->reaped;
    *status = c->status;
    wf__spin_unlock(&c->lock);
    return reaped;
}

int wf__child_signal(wf__child *c, int signo)
{
    if (c->pidfd >= 0)
        return sys_pidfd_signal(c->pidfd, signo); /* -ESRCH once it has exited */
    wf__spin_lock(&c->lock);
    /* Not reaped (and reaping takes this lock): the pid is still ours. */
    int e = try_reap_locked(c) ? -ESRCH : sys_kill(c->pid, signo);
    wf__spin_unlock(&c->lock);
    return e;
}

/* --- waiting without pidfd: the child crew --------------------------------- */

typedef struct child_wait {
    wf__job job;
    pid_t pid;
    bool reap; /* reap it (a child nobody waits for), else only wait */
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
         * child's lock (REAPING in child.h). */
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

/* One wait for the child to exit, until `deadline`: 0 when it may have. */
static int wait_exit(wf__task *self, wf__child *c, int64_t deadline)
{
    if (c->pidfd >= 0)
        return wf_wait_readable(c->pidfd, deadline);
    child_wait *w = child_wait_new(c->pid, false);
    if (!w)
        return -ENOMEM;
    wf__crew *crew = &self->rt->pool->crews[WF__CREW_CHILD];
    int r = wf__job_wait(self, crew, &w->job, deadline, WF__JOB_ABANDON);
    if (r == -ECANCELED || r == -ETIMEDOUT)
        return r; /* the pool frees it when the child exits */
    int st = w->job.status;
    free(w);
    return r < 0 ? r : st;
}

int wf__child_wait(wf__task *self, wf__child *c, int64_t deadline)
{
    int e = 0;
    while (!wf__child_try_reap(c)) {
        e = wait_exit(self, c, deadline);
        if (e < 0)
            break;
    }
    /* An exit that won the race with the deadline counts. */
    return wf__child_try_reap(c) ? 0 : e;
}

/* --- giving a child up ---------------------------------------------------------- */

void wf__child_reap_later(wf__runtime *rt, wf__child *c)
{
    if (!wf__child_try_reap(c)) {
        (void)wf__child_signal(c, SIGKILL);
        child_wait *w = child_wait_new(c->pid, true);
        bool handed = false;
        if (w) {
            w->job.abandoned = true; /* nobody waits: the pool frees it */
            handed = wf__crew_submit(&rt->pool->crews[WF__CREW_CHILD], &w->job) == 0;
            if (!handed)
                free(w);
        }
        if (!handed)
            reap_blocking(c->pid);
    }
    close_pidfd(c);
}

void wf__child_reap_now(wf__child *c)
{
    if (!wf__child_try_reap(c)) {
        (void)wf__child_signal(c, SIGKILL);
        reap_blocking(c->pid);
    }
    close_pidfd(c);
}

void wf__child_release(wf__child *c)
{
    close_pidfd(c);
}
