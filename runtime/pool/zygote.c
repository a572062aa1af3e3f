/* zygote.c - the registry of jobs, wf_procpool_init(), the zygote process
 * and the parent's side of its channel (zygote.h). */
#include "net/sockmsg.h"
#include "procwire.h"
#include "zygote.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NAME_MAX_LEN 63
/* The zygote answers a SPAWN within microseconds; one that has not
 * answered in this long is broken (stopped, or stuck). */
#define ZYGOTE_TIMEOUT_S 30

typedef struct job_entry {
    char name[NAME_MAX_LEN + 1];
    wf_procjob_fn fn;
} job_entry;

enum { Z_NONE = 0, Z_RUNNING = 1, Z_DEAD = 2 };

/* Process-wide. `lock` orders registrations, the init, and each SPAWN
 * exchange on the channel. The table is written only before the zygote
 * starts (frozen == true from then on), and every thread that reads it
 * without the lock was created after the init (the init refuses to run
 * when another thread exists), which orders the writes before the reads. */
static struct {
    pthread_mutex_t lock;
    job_entry *jobs;
    int njobs, cap;
    bool frozen;
    int state;   /* Z_*, under lock */
    int chan;    /* the parent's end of the zygote's channel */
    pid_t pid;   /* the zygote */
    pid_t owner; /* the process that started it (a fork child is not) */
    bool atfork; /* the fork handler is registered */
} Z = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, false, Z_NONE, -1, 0, 0, false};

/* The pid of the process that started the zygote (0 before, and in a child
 * of fork()): what wf_procpool_open() checks, without the lock a pool
 * thread may hold for a whole SPAWN exchange. Stored with release after the state it stands for; loaded
 * with acquire. */
static _Atomic pid_t ready_owner;

/* --- the registry ------------------------------------------------------------- */

int wf_procpool_register(const char *name, wf_procjob_fn fn)
{
    if (!name || !*name || !fn || strlen(name) > NAME_MAX_LEN)
        return -EINVAL;
    pthread_mutex_lock(&Z.lock);
    int e = 0;
    if (Z.frozen) {
        e = -EBUSY;
        goto out;
    }
    for (int i = 0; i < Z.njobs; i++)
        if (!strcmp(Z.jobs[i].name, name)) {
            e = -EEXIST;
            goto out;
        }
    if (Z.njobs == Z.cap) {
        int cap = Z.cap ? Z.cap * 2 : 16;
        job_entry *t = realloc(Z.jobs, (size_t)cap * sizeof *t);
        if (!t) {
            e = -ENOMEM;
            goto out;
        }
        Z.jobs = t;
        Z.cap = cap;
    }
    strcpy(Z.jobs[Z.njobs].name, name);
    Z.jobs[Z.njobs].fn = fn;
    Z.njobs++;
out:
    pthread_mutex_unlock(&Z.lock);
    return e;
}

int wf__procjob_find(const char *name)
{
    if (!name)
        return -EINVAL;
    for (int i = 0; i < Z.njobs; i++)
        if (!strcmp(Z.jobs[i].name, name))
            return i;
    return -ENOENT;
}

wf_procjob_fn wf__procjob_fn(int index)
{
    return index >= 0 && index < Z.njobs ? Z.jobs[index].fn : NULL;
}

int wf__procjob_count(void)
{
    return Z.njobs;
}

/* --- small helpers (errno read right after each call) ------------------------- */

/* Threads of this process; 1 when /proc cannot tell (then the caller's
 * word is taken). */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n : 1;
}

static __attribute__((noinline)) int sys_socketpair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ? -errno : 0;
}

static __attribute__((noinline)) pid_t sys_fork(void)
{
    pid_t p = fork();
    return p < 0 ? -errno : p;
}

/* clone(2) with CLONE_PARENT and fork's semantics otherwise (a copy of the
 * caller's stack: the child returns from here with 0). */
static __attribute__((noinline)) pid_t sys_clone_parent(void)
{
    long r = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), NULL, NULL, NULL, 0UL);
    return r < 0 ? -errno : (pid_t)r;
}

static __attribute__((noinline)) ssize_t sys_sendmsg(int fd, struct msghdr *m)
{
    ssize_t r;
    do
        r = sendmsg(fd, m, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

static __attribute__((noinline)) ssize_t sys_recvmsg(int fd, struct msghdr *m)
{
    ssize_t r;
    do
        r = recvmsg(fd, m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

/* Close every fd from `lo` up. */
static void close_from(int lo)
{
    if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0u) == 0)
        return;
    /* Kernels before 5.9: one by one up to the limit. */
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 65536;
    for (long fd = lo; fd < max; fd++)
        close((int)fd);
}

static ssize_t send_msg(int fd, const wf__zy_msg *msg, int pass_fd)
{
    struct iovec v = {.iov_base = (void *)msg, .iov_len = sizeof *msg};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof ctl.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    return sys_sendmsg(fd, &m);
}

/* Receive one message: its size, 0 at end of file, or -errno; *got_fd
 * gets the descriptor that came with it (-1: none; a second one is
 * closed), *trunc whether anything was cut. */
static ssize_t recv_msg(int fd, wf__zy_msg *msg, int *got_fd, bool *trunc)
{
    struct iovec v = {.iov_base = msg, .iov_len = sizeof *msg};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    *got_fd = -1;
    *trunc = false;
    ssize_t r = sys_recvmsg(fd, &m);
    if (r < 0)
        return r;
    *trunc = wf__cmsg_take_fds(&m, got_fd, 1) > 1 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
    return r;
}

/* --- the zygote process ------------------------------------------------------------ */

/* A new worker, in the zygote's child (zygote.h, step 3). */
static _Noreturn void worker_start(int chan, pid_t parent)
{
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0); /* the parent died before PDEATHSIG was set */
    (void)prctl(PR_SET_NAME, "wf-procworker");
    /* Over the zygote's channel, which the worker must not hold. */
    if (dup2(chan, 3) < 0)
        _exit(WF__PW_EXIT_IO);
    close_from(4);
    /* Close-on-exec: a job that runs a program does not hand it the
     * channel. */
    (void)fcntl(3, F_SETFD, FD_CLOEXEC);
    wf__procworker_main(3);
}

static _Noreturn void zygote_main(int chan, pid_t parent)
{
    /* Dies with the thread that forked it (PR_SET_PDEATHSIG is about the
     * thread: call wf_procpool_init() from the main thread), and with the
     * parent's process at the latest by end of file on the channel. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    (void)prctl(PR_SET_NAME, "wf-zygote");
    /* A process group of its own: the terminal's ^C (and ^Z) goes to the
     * parent, which stops its workers itself. */
    (void)setpgid(0, 0);
    /* Every signal's default action, none blocked: the parent's handlers
     * expect the parent's state, and a worker must be killable. */
    for (int s = 1; s < _NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            (void)signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    /* The descriptors: stdin from /dev/null (a worker must not read the
     * parent's input), stdout and stderr kept, the channel at 3, nothing
     * else (close-on-exec means nothing here: no exec follows). */
    if (chan != 3) {
        if (dup2(chan, 3) < 0)
            _exit(WF__PW_EXIT_IO);
        close(chan);
        chan = 3;
    }
    /* 0, 1 and 2 always open (/dev/null where the parent had them closed):
     * else a descriptor received for a worker could land there, and a job
     * writing to "stdout" would write into its channel. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0) {
            int nul = open("/dev/null", O_RDWR);
            if (nul >= 0 && nul != fd) {
                (void)dup2(nul, fd);
                close(nul);
            }
        }
    close_from(4);
    (void)fcntl(3, F_SETFD, FD_CLOEXEC);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0 && nul != 0) {
        (void)dup2(nul, 0);
        close(nul);
    }
    wf__zy_msg hello = {WF__ZY_HELLO, 0};
    if (send_msg(chan, &hello, -1) < 0)
        _exit(WF__PW_EXIT_IO);
    for (;;) {
        wf__zy_msg req;
        int fd;
        bool trunc;
        ssize_t r = recv_msg(chan, &req, &fd, &trunc);
        if (r == 0)
            _exit(0); /* the parent has gone */
        if (r < 0)
            _exit(WF__PW_EXIT_IO);
        wf__zy_msg reply = {WF__ZY_REPLY, -EPROTO};
        if (r == sizeof req && !trunc && req.type == WF__ZY_SPAWN && fd >= 0) {
            pid_t pid = sys_clone_parent();
            if (pid == 0)
                worker_start(fd, parent);
            reply.value = pid; /* or -errno */
        }
        if (fd >= 0)
            close(fd);
        if (send_msg(chan, &reply, -1) < 0)
            _exit(WF__PW_EXIT_IO);
    }
}

/* --- the parent's side ------------------------------------------------------------- */

/* In a child of fork(): the zygote is the parent's, not ours. */
static void atfork_child(void)
{
    atomic_store_explicit(&ready_owner, 0, memory_order_relaxed);
    if (Z.chan >= 0)
        close(Z.chan);
    Z.chan = -1;
    Z.state = Z_NONE;
    Z.pid = 0;
    Z.owner = 0;
    /* Another thread of the parent may have held it at the fork. */
    pthread_mutex_init(&Z.lock, NULL);
}

/* Z.lock held: the zygote is unusable (gone, or not answering): make sure
 * it is gone, and reap it. */
static void zygote_lost(void)
{
    /* ready_owner stays: pools may still be opened, and their starts fail
     * with -EPIPE (-ENOEXEC for their jobs), which says what happened. */
    Z.state = Z_DEAD;
    if (Z.chan >= 0)
        close(Z.chan);
    Z.chan = -1;
    if (Z.pid > 0) {
        (void)kill(Z.pid, SIGKILL);
        int ws;
        while (waitpid(Z.pid, &ws, 0) < 0 && errno == EINTR) {
        }
    }
    Z.pid = 0;
}

int wf_procpool_init(void)
{
    pthread_mutex_lock(&Z.lock);
    int e = 0;
    if (Z.state == Z_RUNNING && Z.owner == getpid())
        goto out; /* once per process */
    if (count_threads() > 1) {
        e = -EBUSY;
        goto out;
    }
    int sv[2];
    if ((e = sys_socketpair(sv)) < 0)
        goto out;
    pid_t parent = getpid();
    pid_t pid = sys_fork();
    if (pid == 0) {
        close(sv[0]);
        zygote_main(sv[1], parent);
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        e = pid;
        goto out;
    }
    /* A bound on every exchange: see ZYGOTE_TIMEOUT_S. */
    struct timeval tv = {.tv_sec = ZYGOTE_TIMEOUT_S};
    (void)setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    Z.chan = sv[0];
    Z.pid = pid;
    /* Its hello: it has set itself up (and the thread count test of the
     * tests reads a finished zygote). */
    wf__zy_msg hello;
    int fd;
    bool trunc;
    ssize_t r = recv_msg(Z.chan, &hello, &fd, &trunc);
    if (fd >= 0)
        close(fd);
    if (r != sizeof hello || trunc || hello.type != WF__ZY_HELLO) {
        zygote_lost();
        Z.state = Z_NONE;
        e = -ECHILD;
        goto out;
    }
    Z.owner = parent;
    Z.state = Z_RUNNING;
    Z.frozen = true;
    atomic_store_explicit(&ready_owner, parent, memory_order_release);
    if (!Z.atfork && pthread_atfork(NULL, NULL, atfork_child) == 0)
        Z.atfork = true;
out:
    pthread_mutex_unlock(&Z.lock);
    return e;
}

bool wf__zygote_ready(void)
{
    /* acquire: pairs with the init's release; the registry and the
     * zygote's state were written before it. */
    return atomic_load_explicit(&ready_owner, memory_order_acquire) == getpid();
}

pid_t wf__zygote_pid(void)
{
    pthread_mutex_lock(&Z.lock);
    pid_t p = Z.state == Z_RUNNING && Z.owner == getpid() ? Z.pid : -ESRCH;
    pthread_mutex_unlock(&Z.lock);
    return p;
}

int wf__zygote_spawn(int worker_end, pid_t *pid)
{
    pthread_mutex_lock(&Z.lock);
    int e;
    if (Z.state == Z_DEAD && Z.owner == getpid()) {
        e = -EPIPE;
        goto out;
    }
    if (Z.state != Z_RUNNING || Z.owner != getpid()) {
        e = -ENOTSUP;
        goto out;
    }
    wf__zy_msg req = {WF__ZY_SPAWN, 0}, reply;
    ssize_t r = send_msg(Z.chan, &req, worker_end);
    if (r == sizeof req) {
        int fd;
        bool trunc;
        r = recv_msg(Z.chan, &reply, &fd, &trunc);
        if (fd >= 0)
            close(fd);
        if (r == sizeof reply && !trunc && reply.type == WF__ZY_REPLY) {
            if (reply.value > 0) {
                *pid = reply.value;
                e = 0;
            } else {
                e = reply.value < 0 ? reply.value : -EPROTO;
            }
            goto out;
        }
    }
    /* End of file, an error, a timeout or a bad reply: the channel is out
     * of step or the zygote is gone. */
    e = r == -EAGAIN ? -ETIMEDOUT : -EPIPE;
    zygote_lost();
out:
    pthread_mutex_unlock(&Z.lock);
    return e;
}
