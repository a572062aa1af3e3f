/* poller.c - the epoll thread and the fd wait primitive (poller.h).
 *
 * The loop, each round:
 *   1. Fire due timers: its own wheel, parked workers' wheels, and the
 *      wheels of awake workers whose timers are overdue by more than
 *      STUCK_NS (a worker stuck in a long fiber: the sysmon duty).
 *      Rescue a stuck worker's queue: one whose tick has not moved for
 *      STUCK_NS with tasks in its next slot or ring gets an idle worker
 *      woken to steal them.
 *   2. Plan the next wake-up: the earliest deadline of those wheels, and
 *      at most WF__SYSMON_NS ahead while any worker is awake. Publish it in
 *      wake_at with an exchange: a kicker that lowered wake_at meanwhile
 *      also wrote the eventfd, so the sleep below returns at once.
 *   3. epoll_pwait2 until then (or the epoll_pwait fallback, poller.h);
 *      set wake_at to INT64_MAX while awake (any kick then writes the
 *      eventfd, and the next round recomputes).
 *   4. Turn each event into wake-ups, all in one batch to the inject queue.
 */
#include "poller.h"
#include "mapping.h"
#include "park.h"
#include "runtime.h"
#include "sanitizer.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <weft/io.h>
#include <weft/time.h>

#define MAX_EVENTS 256
#define STUCK_NS (1 * 1000 * 1000)

/* node->data of a waiter woken because its fd was forgotten. */
static char badf_mark;

/* Set once any poller of this process found epoll_pwait2 missing (ENOSYS,
 * EPERM): later runtimes start on the fallback instead of failing the call
 * again (under valgrind each failure prints a warning). relaxed: a one-way
 * hint with nothing else to publish; a runtime that misses it fails one
 * call and falls back by itself. */
static _Atomic bool pwait2_missing;

/* WF_POLLER_NO_PWAIT2 set to anything but "" or "0" forces the fallback. */
static bool pwait2_disabled_by_env(void)
{
    const char *v = getenv("WF_POLLER_NO_PWAIT2");
    return v && *v && strcmp(v, "0") != 0;
}

int wf__poller_init(wf__poller *p, wf__runtime *rt)
{
    memset(p, 0, sizeof *p);
    p->rt = rt;
    p->epfd = -1;
    p->evfd = -1;
    atomic_init(&p->stop, false);
    atomic_init(&p->wake_at, INT64_MAX);
    atomic_init(&p->deep_sleep, false);
    atomic_init(&p->use_pwait2,
                !pwait2_disabled_by_env() && !atomic_load_explicit(&pwait2_missing, memory_order_relaxed));
    pthread_mutex_init(&p->fds_lock, NULL);
    wf__timers_init(&p->timers, rt, wf_now());
    size_t len = sizeof(*p->fds) * WF__FD_MAX_CHUNKS;
    void *m = wf__map_anon(len, PROT_READ | PROT_WRITE, MAP_NORESERVE);
    if (m == MAP_FAILED)
        return -ENOMEM;
    p->fds = m;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0)
        return -errno;
    p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->evfd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) < 0)
        return -errno;
    return 0;
}

void wf__poller_destroy(wf__poller *p)
{
    if (p->fds) {
        for (uint32_t c = 0; c < WF__FD_MAX_CHUNKS; c++)
            free(atomic_load_explicit(&p->fds[c], memory_order_relaxed));
        wf__unmap(p->fds, sizeof(*p->fds) * WF__FD_MAX_CHUNKS);
        p->fds = NULL;
    }
    if (p->evfd >= 0)
        close(p->evfd);
    if (p->epfd >= 0)
        close(p->epfd);
    p->evfd = p->epfd = -1;
    pthread_mutex_destroy(&p->fds_lock);
}

static void write_eventfd(wf__poller *p)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the poller will wake. */
    ssize_t r = write(p->evfd, &one, sizeof one);
    (void)r;
}

void wf__poller_kick_at(wf__poller *p, int64_t deadline)
{
    /* acquire/release on wake_at: the CAS orders the kicker's state (its
     * parked flag, its wheel) before the poller's next look. */
    int64_t cur = atomic_load_explicit(&p->wake_at, memory_order_acquire);
    while (deadline < cur) {
        if (atomic_compare_exchange_weak_explicit(&p->wake_at, &cur, deadline, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            write_eventfd(p);
            return;
        }
    }
}

/* --- the fd table ------------------------------------------------------ */

static wf__pollfd *get_pd(wf__poller *p, int fd, bool create)
{
    uint32_t c = (uint32_t)fd >> WF__FD_CHUNK_LOG2;
    if (c >= WF__FD_MAX_CHUNKS)
        return NULL;
    /* acquire: pairs with the release that published the chunk. */
    wf__pollfd *chunk = atomic_load_explicit(&p->fds[c], memory_order_acquire);
    if (!chunk) {
        if (!create)
            return NULL;
        pthread_mutex_lock(&p->fds_lock);
        chunk = atomic_load_explicit(&p->fds[c], memory_order_relaxed);
        if (!chunk) {
            chunk = calloc(WF__FD_CHUNK, sizeof *chunk);
            if (chunk) {
                for (uint32_t i = 0; i < WF__FD_CHUNK; i++) {
                    wf__spin_init(&chunk[i].lock);
                    chunk[i].fd = (int)((c << WF__FD_CHUNK_LOG2) | i);
                }
                atomic_store_explicit(&p->fds[c], chunk, memory_order_release);
            }
        }
        pthread_mutex_unlock(&p->fds_lock);
        if (!chunk)
            return NULL;
    }
    return &chunk[(uint32_t)fd & (WF__FD_CHUNK - 1)];
}

/* pd->lock held. Make sure the kernel's interest list holds `fd` (the open
 * file it names now) with pd as its data. Returns 0 or -errno.
 *
 * WHY EVERY PARK ASKS THE KERNEL. epoll keys a registration on the pair
 * (open file, fd number), and drops it by itself when the file's last
 * reference is closed. A caller may close() an fd it waited on without
 * wf_fd_forget(): the record here stays, and so does anything it believes,
 * but the kernel registration is gone; when a new file gets the same
 * number, nothing of ours says so. Keeping a "registered" flag and adding
 * only once would then park the next waiter on a registration that no
 * longer exists: a lost wake-up, forever with WF_FOREVER.
 *
 * So the path that is about to park (no edge recorded) always asks with
 * EPOLL_CTL_ADD, and only that path:
 *   - EEXIST: this very file is registered at this number; an
 *     edge-triggered registration needs no re-arming (each new readiness
 *     transition queues an event), so parking on it loses nothing. This is
 *     cheaper than EPOLL_CTL_MOD, which would also poll the file and may
 *     queue a spurious event.
 *   - success: the number names a file we had not registered (first wait,
 *     after wf_fd_forget(), or a closed-and-reused number). The kernel polls
 *     the file as it inserts it and queues an event if it is ready already,
 *     so readiness from before the registration is not lost either. Any
 *     ready bits left from the old file are only spurious "try again"s, and
 *     are cleared.
 *   - EPERM: the file cannot be polled (regular files, directories): that
 *     is -EOPNOTSUPP to the caller. EBADF: not open. Others (ENOMEM,
 *     ENOSPC: max_user_watches) are returned as they are.
 * The event an ADD queues is handled by the poller after we drop pd->lock
 * and finds the waiter installed (or sets the ready bit if the caller then
 * gives up), so holding the lock across the syscall is what makes it safe;
 * the poller may spin on it for the length of one epoll_ctl.
 *
 * Cost: one epoll_ctl (EEXIST: a lookup in the epoll's tree) per park,
 * beside the park itself, a poller event and a wake-up (docs/benchmarks.md,
 * fd_pingpong). The try-the-syscall-first path never gets here, nor does a
 * wait that finds an edge recorded.
 *
 * If the old file is still open elsewhere (dup'd, or held by a child), its
 * registration stays with pd as data: its events are spurious wake-ups for
 * the new fd until it is closed, which the try-first protocol absorbs. */
static int ensure_registered(wf__poller *p, wf__pollfd *pd, int fd)
{
    /* The record travels to the poller thread through the kernel. */
    wf__tsan_release(pd);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = pd};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
        pd->registered = true;
        pd->ready = 0;
        return 0;
    }
    int e = errno;
    if (e == EEXIST) {
        pd->registered = true;
        return 0;
    }
    return e == EPERM ? -EOPNOTSUPP : -e;
}

int wf__poller_wait(wf__poller *p, wf__task *self, int fd, unsigned dir, int64_t deadline)
{
    if (fd < 0)
        return -EBADF;
    if (deadline < WF_FOREVER)
        return -EINVAL;
    wf__pollfd *pd = get_pd(p, fd, true);
    if (!pd)
        return fd >= (int)(WF__FD_CHUNK * WF__FD_MAX_CHUNKS) ? -EBADF : -ENOMEM;
    unsigned d = dir == WF__POLL_READ ? 0 : 1;

    wf__spin_lock(&pd->lock);
    if (pd->ready & dir) {
        /* An edge came while nobody waited: no syscall, no park. */
        pd->ready &= (uint8_t)~dir;
        wf__spin_unlock(&pd->lock);
        return 0;
    }
    if (pd->waiter[d]) {
        wf__spin_unlock(&pd->lock);
        return -EBUSY;
    }
    int e = ensure_registered(p, pd, fd);
    if (e) {
        wf__spin_unlock(&pd->lock);
        return e;
    }
    wf__waitnode node;
    node.task = self;
    node.data = NULL;
    node.seq = wf__park_begin(self, 0);
    pd->waiter[d] = &node;
    wf__spin_unlock(&pd->lock);

    unsigned r = wf__park_commit(self, node.seq, deadline);
    if (r != WF__R_WOKEN) {
        wf__spin_lock(&pd->lock);
        if (pd->waiter[d] == &node)
            pd->waiter[d] = NULL;
        wf__spin_unlock(&pd->lock);
        return wf__park_errno(r);
    }
    return node.data == &badf_mark ? -EBADF : 0;
}

/* pd->lock held. Wake direction d's waiter, or remember the edge. */
static void wake_dir(wf__pollfd *pd, unsigned d, void *data, wf__batch *b)
{
    wf__waitnode *nd = pd->waiter[d];
    if (nd) {
        pd->waiter[d] = NULL;
        nd->data = data; /* before the deciding CAS, which releases it */
        wf__decision dec = wf__park_decide(nd->task, nd->seq, WF__R_WOKEN);
        if (dec == WF__DECIDED_PARKED)
            wf__batch_push(b, nd->task);
        if (dec != WF__DECIDE_LOST)
            return;
    }
    if (!data)
        pd->ready |= (uint8_t)(1u << d);
}

int wf__poller_forget(wf__poller *p, int fd)
{
    if (fd < 0)
        return -EBADF;
    wf__pollfd *pd = get_pd(p, fd, false);
    if (!pd)
        return 0;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&pd->lock);
    if (pd->registered) {
        /* Errors are expected when the fd is already closed (epoll dropped
         * it then); nothing else can be done about them. */
        (void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
        pd->registered = false;
    }
    pd->ready = 0;
    wake_dir(pd, 0, &badf_mark, &b);
    wake_dir(pd, 1, &badf_mark, &b);
    wf__spin_unlock(&pd->lock);
    wf__ready_batch(p->rt, &b);
    return 0;
}

/* --- the thread -------------------------------------------------------- */

static void handle_event(wf__pollfd *pd, uint32_t ev, wf__batch *b)
{
    wf__tsan_acquire(pd);
    wf__spin_lock(&pd->lock);
    if (pd->registered) {
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            wake_dir(pd, 0, NULL, b);
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            wake_dir(pd, 1, NULL, b);
    }
    wf__spin_unlock(&pd->lock);
}

/* Steps 1 and 2: fire what is due, return the next planned wake-up. */
static int64_t keep_time(wf__poller *p, wf__batch *b)
{
    wf__runtime *rt = p->rt;
    int64_t now = wf_now();
    if (wf__timers_next(&p->timers) <= now)
        wf__timers_run(&p->timers, now, b);
    int64_t next = wf__timers_next(&p->timers);
    bool any_awake = false, rescue = false;
    /* seq_cst store before the seq_cst loads of `parked`: the poller's
     * half of the Dekker pair with a worker leaving park() (sched.c). A
     * worker that we read as parked and that wakes before we sleep sees
     * deep_sleep set and kicks us. */
    atomic_store_explicit(&p->deep_sleep, true, memory_order_seq_cst);
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        wf__worker *w = &rt->workers[i];
        /* seq_cst: see above; it also acquires the parking worker's wheel
         * (its kick's CAS orders that before our look). */
        bool parked = atomic_load_explicit(&w->parked, memory_order_seq_cst);
        int64_t wn = wf__timers_next(&w->timers);
        if (parked) {
            if (wn <= now) {
                wf__timers_run(&w->timers, now, b);
                wn = wf__timers_next(&w->timers);
            }
            if (wn < next)
                next = wn;
            continue;
        }
        any_awake = true;
        if (wn <= now - STUCK_NS)
            wf__timers_run(&w->timers, now, b);
        /* A worker whose tick has not moved for STUCK_NS runs one long
         * fiber; anything in its next slot or ring waits for it unless a
         * parked worker is woken to steal it (the thief's last pass takes
         * the next slot). relaxed: both are hints; a wrong guess costs
         * one spurious wake-up or one more round. */
        uint64_t tk = atomic_load_explicit(&w->ticks, memory_order_relaxed);
        if (tk != w->mon_tick) {
            w->mon_tick = tk;
            w->mon_at = now;
        } else if (now - w->mon_at >= STUCK_NS && !wf__runq_maybe_empty(&w->runq)) {
            rescue = true;
        }
    }
    if (any_awake)
        atomic_store_explicit(&p->deep_sleep, false, memory_order_relaxed);
    if (rescue)
        wf__notify_work(rt);
    /* A callback fired above from a parked worker's wheel runs on this
     * thread, and a timer it arms lands on our own wheel (no kick: we are
     * the poller): look at it again, or an all-parked runtime would sleep
     * through it forever. */
    int64_t own = wf__timers_next(&p->timers);
    if (own < next)
        next = own;
    if (any_awake && next > now + WF__SYSMON_NS)
        next = now + WF__SYSMON_NS;
    return next;
}

/* Step 3: wait for events for at most `d` ns (-1: forever). Returns the
 * number of events, or -1 when the caller should just go round again
 * (EINTR; epoll_pwait2 found missing, the fallback now in use). */
static int poll_events(wf__poller *p, struct epoll_event *ev, int64_t d)
{
    /* relaxed: written before the thread starts (pthread_create orders
     * it) or by this thread itself. */
    if (atomic_load_explicit(&p->use_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
        int n = epoll_pwait2(p->epfd, ev, MAX_EVENTS, d < 0 ? NULL : &ts, NULL);
        if (n >= 0 || errno == EINTR)
            return n;
        if (errno != ENOSYS && errno != EPERM)
            wf__panic("poller: epoll_pwait2 on the runtime's own epoll failed: %s", strerror(errno));
        /* Missing (old kernel) or refused (seccomp, valgrind): decided
         * once, never retried. relaxed: see use_pwait2 and
         * pwait2_missing. */
        atomic_store_explicit(&p->use_pwait2, false, memory_order_relaxed);
        atomic_store_explicit(&pwait2_missing, true, memory_order_relaxed);
        return -1;
    }
    /* Milliseconds, rounded up: a timer 1 ns away waits 1 ms, never 0 ms
     * (which would fire it early, or spin until it is due). */
    int ms = -1;
    if (d >= 0) {
        int64_t m = d / 1000000 + (d % 1000000 != 0);
        ms = m > INT_MAX ? INT_MAX : (int)m;
    }
    int n = epoll_pwait(p->epfd, ev, MAX_EVENTS, ms, NULL);
    if (n < 0 && errno != EINTR)
        wf__panic("poller: epoll_pwait on the runtime's own epoll failed: %s", strerror(errno));
    return n;
}

static void *poller_main(void *arg)
{
    wf__poller *p = arg;
    wf__runtime *rt = p->rt;
    /* 15 characters at most (the kernel's comm); failure only loses the
     * name in ps and debuggers. */
    (void)pthread_setname_np(pthread_self(), "wf-poller");
    wf__tls_set(rt, NULL);
    struct epoll_event ev[MAX_EVENTS];
    for (;;) {
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            break;
        wf__batch b;
        wf__batch_init(&b);
        int64_t next = keep_time(p, &b);
        wf__ready_batch(rt, &b);

        /* acq_rel: see step 2 in the header comment. */
        (void)atomic_exchange_explicit(&p->wake_at, next, memory_order_acq_rel);
        int64_t d = -1; /* forever */
        if (next != INT64_MAX) {
            d = next - wf_now();
            if (d < 0)
                d = 0;
        }
        int n = poll_events(p, ev, d);
        atomic_store_explicit(&p->wake_at, INT64_MAX, memory_order_release);
        /* relaxed: awake again, a waking worker need not kick us; the
         * next round's seq_cst store re-arms the pair. */
        atomic_store_explicit(&p->deep_sleep, false, memory_order_relaxed);
        if (n < 0)
            continue; /* EINTR, or the fallback was just switched on */
        for (int i = 0; i < n; i++) {
            if (!ev[i].data.ptr) {
                uint64_t v;
                while (read(p->evfd, &v, sizeof v) > 0) {
                }
                continue;
            }
            handle_event(ev[i].data.ptr, ev[i].events, &b);
        }
        wf__ready_batch(rt, &b);
    }
    wf__tls_set(NULL, NULL);
    return NULL;
}

int wf__poller_start(wf__poller *p)
{
    int e = pthread_create(&p->thread, NULL, poller_main, p);
    if (e)
        return -e;
    p->started = true;
    return 0;
}

void wf__poller_stop(wf__poller *p)
{
    if (!p->started)
        return;
    atomic_store_explicit(&p->stop, true, memory_order_release);
    write_eventfd(p);
    pthread_join(p->thread, NULL);
    p->started = false;
}

/* --- public API -------------------------------------------------------- */

static int wait_fd(int fd, unsigned dir, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    return wf__poller_wait(&self->rt->poller, self, fd, dir, deadline);
}

int wf_wait_readable(int fd, int64_t deadline)
{
    return wait_fd(fd, WF__POLL_READ, deadline);
}

int wf_wait_writable(int fd, int64_t deadline)
{
    return wait_fd(fd, WF__POLL_WRITE, deadline);
}

int wf_fd_forget(int fd)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    return wf__poller_forget(&rt->poller, fd);
}

int wf__poller_uses_pwait2(void)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    /* relaxed: a test's look at a flag that only ever goes one way. */
    return atomic_load_explicit(&rt->poller.use_pwait2, memory_order_relaxed) ? 1 : 0;
}

int wf_fd_close(int fd)
{
    int r = wf_fd_forget(fd);
    if (r < 0)
        return r;
    return close(fd) < 0 ? -errno : 0;
}
