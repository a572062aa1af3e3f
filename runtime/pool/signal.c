/* signal.c - signals for fibers (weft/signal.h) and the signal masks of the
 * runtime's threads (sigs.h).
 *
 * CATCHING A SIGNAL for fibers, the first time (catch_signal), under the
 * registration lock, one signal at a time:
 *   1. Block it in every worker: a task pinned to each worker calls
 *      pthread_sigmask there; the caller joins them all. (The poller, the
 *      pool's threads, the watcher and wf_run's thread block every
 *      asynchronous signal already: sigs.h.)
 *   2. Make a signalfd for it, and its dispatcher task. Only now can the
 *      kernel hand it to us; until then a delivery stays pending, blocked
 *      everywhere.
 * One signalfd per signal, never one whose mask grows: updating the mask of
 * a signalfd that a dispatcher is reading is safe for the kernel, but it is
 * a write to the fd in TSan's model, racing the read.
 * THE DISPATCHER of a signal, an internal task, reads its signalfd (its fd
 * wait is an ordinary one on the poller) and hands each delivery over under
 * the state's lock: to a subscription's waiting fiber directly (the
 * deciding CAS wins: the delivery is the waiter's), else counted in the
 * subscription's `pending`; and it spawns the signal's handler task.
 * Dispatchers are cancelled with every other task at shutdown, and at the
 * end wf_run reads and drops what is left (sigs.h, wf__signals_destroy).
 *
 * THE SHUTDOWN WATCHER (cfg.shutdown_on_signal) is a thread, not a task:
 * the shutdown cancels every task, and a second ^C during a slow shutdown
 * must still end the process. It waits in poll(2) on a signalfd of its own
 * for SIGINT and SIGTERM and on an eventfd that step 12 writes to stop it.
 */
#include "sigs.h"
#include "park.h"
#include "runtime.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <weft/io.h>
#include <weft/signal.h>
#include <weft/sync.h>

#define NSIGS _NSIG

struct wf_signal {
    wf__link link; /* on st->subs[signo], under st->lock */
    struct wf__sigstate *st;
    int signo;
    unsigned pending;     /* deliveries not consumed; under st->lock */
    wf__waitnode *waiter; /* the fiber in wf_signal_wait; under st->lock */
};

/* A caught signal: its signalfd, read by its dispatcher. */
typedef struct catcher {
    struct wf__sigstate *st;
    int signo;
    int fd; /* -1 until caught; set under reg, before the dispatcher starts */
} catcher;

typedef struct wf__sigstate {
    wf__runtime *rt;
    /* The mask of wf_run's caller: restored at the end, and the mask that
     * children start with (process.c). */
    sigset_t caller_mask;
    bool masked; /* this thread's mask was changed (restore it) */
    /* --- signals caught for fibers --- */
    wf_lock_t reg; /* one registration at a time */
    catcher catchers[NSIGS];
    wf__spinlock lock;
    wf__link subs[NSIGS]; /* wf_signal_t by signal; under lock */
    struct {
        wf_fn fn;
        void *arg;
    } handlers[NSIGS]; /* under lock */
    /* --- the shutdown watcher --- */
    bool shutdown; /* cfg.shutdown_on_signal */
    int wfd;       /* its signalfd (SIGINT, SIGTERM) */
    int stopfd;    /* eventfd: step 12 stops it */
    pthread_t watcher;
    bool watcher_started;
} wf__sigstate;

/* --- masks ---------------------------------------------------------------- */

void wf__sigset_async(sigset_t *s)
{
    sigfillset(s);
    static const int sync[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT, SIGKILL, SIGSTOP};
    for (unsigned i = 0; i < sizeof sync / sizeof sync[0]; i++)
        sigdelset(s, sync[i]);
}

bool wf__signo_catchable(int signo)
{
    if (signo < 1 || signo >= NSIGS)
        return false;
    /* glibc's own (thread cancellation, setxid): between the classic
     * signals and SIGRTMIN. */
    if (signo >= 32 && signo < SIGRTMIN)
        return false;
    switch (signo) {
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGTRAP:
    case SIGSYS:
    case SIGABRT:
    case SIGKILL:
    case SIGSTOP:
        return false;
    default:
        return true;
    }
}

/* --- the runtime's steps -------------------------------------------------- */

int wf__signals_create(wf__runtime *rt)
{
    wf__sigstate *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->rt = rt;
    st->wfd = st->stopfd = -1;
    st->shutdown = rt->cfg.shutdown_on_signal;
    for (int i = 0; i < NSIGS; i++)
        st->catchers[i] = (catcher){.st = st, .signo = i, .fd = -1};
    if (wf_lock_init(&st->reg) < 0) {
        free(st);
        return -ENOMEM;
    }
    wf__spin_init(&st->lock);
    for (int i = 0; i < NSIGS; i++)
        wf__list_init(&st->subs[i]);
    rt->signals = st;
    return 0;
}

void wf__signals_prepare(wf__runtime *rt, sigset_t *workers)
{
    wf__sigstate *st = rt->signals;
    sigset_t all;
    wf__sigset_async(&all);
    pthread_sigmask(SIG_BLOCK, &all, &st->caller_mask);
    st->masked = true;
    *workers = st->caller_mask;
    if (st->shutdown) {
        /* No worker may take them: the watcher reads them. */
        sigaddset(workers, SIGINT);
        sigaddset(workers, SIGTERM);
    }
}

void wf__signals_child_mask(wf__runtime *rt, sigset_t *out)
{
    *out = rt->signals->caller_mask;
}

static __attribute__((noinline)) ssize_t read_fd(int fd, void *buf, size_t n)
{
    ssize_t r = read(fd, buf, n);
    return r < 0 ? -errno : r;
}

/* A second SIGINT or SIGTERM: end the process with the signal's default
 * action, as if weft had never caught it. */
static _Noreturn void die_of(int signo)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(signo, &sa, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, signo);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    raise(signo); /* to this thread, which no longer blocks it */
    _exit(128 + signo);
}

static void *watcher_main(void *arg)
{
    wf__sigstate *st = arg;
    (void)pthread_setname_np(pthread_self(), "wf-signals");
    unsigned seen = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = st->wfd, .events = POLLIN}, {.fd = st->stopfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0)
            continue; /* EINTR: every asynchronous signal is blocked here, so rare */
        if (p[1].revents)
            break;
        struct signalfd_siginfo si;
        while (read_fd(st->wfd, &si, sizeof si) == (ssize_t)sizeof si) {
            int signo = (int)si.ssi_signo;
            if (++seen > 1)
                die_of(signo);
            /* main_task lives until wf_run's step 13, after this thread is
             * joined; cancelling from a thread outside the runtime queues
             * the task through the inject queue (threadsafe.c does the
             * same). A main that has ended already is not touched. */
            wf__task_cancel(st->rt->main_task, signo == SIGINT ? "SIGINT" : "SIGTERM");
        }
    }
    return NULL;
}

int wf__signals_start_watcher(wf__runtime *rt)
{
    wf__sigstate *st = rt->signals;
    if (!st->shutdown)
        return 0;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    st->wfd = signalfd(-1, &s, SFD_NONBLOCK | SFD_CLOEXEC);
    if (st->wfd < 0)
        return -errno;
    st->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (st->stopfd < 0)
        return -errno;
    /* It inherits this thread's mask: every asynchronous signal. */
    int e = pthread_create(&st->watcher, NULL, watcher_main, st);
    if (e)
        return -e;
    st->watcher_started = true;
    return 0;
}

void wf__signals_stop(wf__runtime *rt)
{
    wf__sigstate *st = rt->signals;
    if (!st || !st->watcher_started)
        return;
    uint64_t one = 1;
    ssize_t w = write(st->stopfd, &one, sizeof one);
    (void)w;
    pthread_join(st->watcher, NULL);
    st->watcher_started = false;
}

void wf__signals_destroy(wf__runtime *rt)
{
    wf__sigstate *st = rt->signals;
    if (!st)
        return;
    for (int i = 0; i < NSIGS; i++) {
        int fd = st->catchers[i].fd;
        if (fd < 0)
            continue;
        /* Deliveries nobody consumed: dropped, rather than delivered to
         * this thread with their default action when its mask comes back. */
        struct signalfd_siginfo si[16];
        while (read_fd(fd, si, sizeof si) > 0) {
        }
        close(fd);
    }
    if (st->wfd >= 0)
        close(st->wfd);
    if (st->stopfd >= 0)
        close(st->stopfd);
    for (int i = 0; i < NSIGS; i++) {
        wf__link *l;
        while ((l = wf__list_pop_front(&st->subs[i])) != NULL)
            free(wf__container_of(l, wf_signal_t, link));
    }
    wf_lock_destroy(&st->reg);
    if (st->masked)
        pthread_sigmask(SIG_SETMASK, &st->caller_mask, NULL);
    free(st);
    rt->signals = NULL;
}

/* --- the dispatcher ----------------------------------------------------- */

static void deliver(wf__sigstate *st, int signo)
{
    if (signo < 1 || signo >= NSIGS)
        return;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&st->lock);
    for (wf__link *l = st->subs[signo].next; l != &st->subs[signo]; l = l->next) {
        wf_signal_t *s = wf__container_of(l, wf_signal_t, link);
        wf__waitnode *w = s->waiter;
        if (w) {
            /* Hand the delivery to the waiter itself: no other fiber can
             * take it from the count before the waiter wakes. Under the
             * lock, which keeps the waiter (and its node) from leaving. */
            s->waiter = NULL;
            wf__decision d = wf__park_decide(w->task, w->seq, WF__R_WOKEN);
            if (d == WF__DECIDED_PARKED)
                wf__batch_push(&b, w->task);
            if (d != WF__DECIDE_LOST)
                continue;
        }
        if (s->pending < UINT32_MAX)
            s->pending++;
    }
    wf_fn fn = st->handlers[signo].fn;
    void *arg = st->handlers[signo].arg;
    wf__spin_unlock(&st->lock);
    wf__ready_batch(st->rt, &b);
    if (fn) {
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.name = "signal handler";
        wf_task_t t;
        /* Out of memory: this delivery's handler is lost, as a kernel
         * that cannot queue a signal loses it. */
        if (wf_spawn(&t, fn, arg, &o) == 0)
            wf_detach(t);
    }
}

static int dispatcher(void *arg, void **res)
{
    catcher *c = arg;
    struct signalfd_siginfo si[16];
    for (;;) {
        ssize_t r = read_fd(c->fd, si, sizeof si);
        if (r == -EAGAIN) {
            int e = wf_wait_readable(c->fd, WF_FOREVER);
            if (e == -ECANCELED)
                return 0; /* the shutdown */
            if (e < 0)
                return e;
            continue;
        }
        if (r == -EINTR)
            continue;
        if (r < 0)
            return (int)r;
        for (size_t i = 0; i < (size_t)r / sizeof si[0]; i++)
            deliver(c->st, (int)si[i].ssi_signo);
    }
}

/* --- catching ------------------------------------------------------------- */

static int block_here(void *arg, void **res)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, (int)(intptr_t)arg);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    return 0;
}

/* Step 1 of catching: block `signo` in every worker. */
static int block_in_workers(wf__sigstate *st, int signo)
{
    uint32_t n = st->rt->nworkers;
    wf_task_t *t = malloc(n * sizeof *t);
    if (!t)
        return -ENOMEM;
    int e = 0;
    uint32_t spawned = 0;
    for (; spawned < n; spawned++) {
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.worker = (int)spawned;
        o.name = "signal mask";
        if ((e = wf_spawn(&t[spawned], block_here, (void *)(intptr_t)signo, &o)) < 0)
            break;
    }
    uint32_t i = 0;
    for (; i < spawned && e == 0; i++) {
        int status = 0;
        if ((e = wf_join(t[i], &status, NULL)) == 0 && status != 0)
            e = status; /* it never ran (spawned during the shutdown) */
    }
    for (; i < spawned; i++)
        wf_detach(t[i]); /* we were cancelled: they run on, harmless */
    free(t);
    return e;
}

static __attribute__((noinline)) int make_signalfd(int signo)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    int r = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return r < 0 ? -errno : r;
}

static int catch_signal(wf__sigstate *st, int signo)
{
    if (!wf__signo_catchable(signo))
        return -EINVAL;
    if (st->shutdown && (signo == SIGINT || signo == SIGTERM))
        return -EBUSY;
    int e = wf_lock_acquire(&st->reg);
    if (e < 0)
        return e;
    catcher *c = &st->catchers[signo];
    if (c->fd < 0 && (e = block_in_workers(st, signo)) == 0) {
        int fd = make_signalfd(signo);
        if (fd < 0) {
            e = fd;
        } else {
            c->fd = fd; /* before the spawn, which publishes it */
            wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
            o.name = "signal dispatcher";
            wf_task_t t;
            if ((e = wf_spawn(&t, dispatcher, c, &o)) == 0) {
                wf_detach(t);
            } else {
                close(fd);
                c->fd = -1;
            }
        }
    }
    wf_lock_release(&st->reg);
    return e;
}

/* --- public ------------------------------------------------------------------ */

int wf_signal_open(wf_signal_t **out, int signo)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!out)
        return -EINVAL;
    wf__sigstate *st = self->rt->signals;
    wf_signal_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int e = catch_signal(st, signo);
    if (e < 0) {
        free(s);
        return e;
    }
    s->st = st;
    s->signo = signo;
    wf__spin_lock(&st->lock);
    wf__list_push_back(&st->subs[signo], &s->link);
    wf__spin_unlock(&st->lock);
    *out = s;
    return 0;
}

int wf_signal_wait(wf_signal_t *s, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!s || deadline < WF_FOREVER)
        return -EINVAL;
    wf__sigstate *st = s->st;
    if (st->rt != self->rt)
        return -EXDEV;
    wf__spin_lock(&st->lock);
    if (s->pending) {
        s->pending--;
        wf__spin_unlock(&st->lock);
        return 0;
    }
    if (s->waiter) {
        wf__spin_unlock(&st->lock);
        return -EBUSY;
    }
    wf__waitnode node;
    node.task = self;
    node.data = NULL;
    node.seq = wf__park_begin(self, 0);
    s->waiter = &node;
    wf__spin_unlock(&st->lock);
    unsigned r = wf__park_commit(self, node.seq, deadline);
    if (r == WF__R_WOKEN)
        return 0; /* the delivery was handed to us (deliver) */
    wf__spin_lock(&st->lock);
    if (s->waiter == &node)
        s->waiter = NULL;
    wf__spin_unlock(&st->lock);
    return wf__park_errno(r);
}

int wf_signal_close(wf_signal_t *s)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    if (!s)
        return -EINVAL;
    wf__sigstate *st = s->st;
    if (st->rt != rt)
        return -EXDEV;
    wf__spin_lock(&st->lock);
    if (s->waiter) {
        wf__spin_unlock(&st->lock);
        return -EBUSY;
    }
    wf__list_unlink(&s->link);
    wf__spin_unlock(&st->lock);
    free(s);
    return 0;
}

int wf_signal_add_handler(int signo, wf_fn fn, void *arg)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    wf__sigstate *st = self->rt->signals;
    int e = catch_signal(st, signo);
    if (e < 0)
        return e;
    wf__spin_lock(&st->lock);
    st->handlers[signo].fn = fn;
    st->handlers[signo].arg = arg;
    wf__spin_unlock(&st->lock);
    return 0;
}

int wf_signal_remove_handler(int signo)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    if (signo < 1 || signo >= NSIGS)
        return -EINVAL;
    wf__sigstate *st = rt->signals;
    wf__spin_lock(&st->lock);
    bool had = st->handlers[signo].fn != NULL;
    st->handlers[signo].fn = NULL;
    st->handlers[signo].arg = NULL;
    wf__spin_unlock(&st->lock);
    return had ? 0 : -ENOENT;
}
