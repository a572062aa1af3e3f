/* poller.c - the poller thread (poller.h): timekeeping, the sysmon, and
 * the watch over the epoll while every worker sleeps.
 *
 * The loop, each round:
 *   1. Fire due timers: its own wheel, parked workers' wheels, and the
 *      wheels of awake workers whose timers are overdue by more than
 *      STUCK_NS (a worker stuck in a long fiber: the sysmon duty).
 *      Rescue a stuck worker's queue: one whose tick has not moved for
 *      STUCK_NS with tasks in its next slot or ring gets an idle worker
 *      woken to steal them. While workers are awake, harvest the epoll
 *      without blocking (the sysmon's I/O duty: workers stuck in long
 *      fibers do not harvest).
 *   2. Plan the next wake-up: the earliest deadline of those wheels, and
 *      at most WF__SYSMON_NS ahead while any worker is awake. Publish it in
 *      wake_at with an exchange: a kicker that lowered wake_at meanwhile
 *      also wrote the eventfd, so the sleep below returns at once.
 *   3. If every worker is parked, arm the watch (the hub's epoll inside
 *      ours, one shot; poller.h): the Dekker pair with the last worker to
 *      park, which arms it too.
 *   4. epoll_pwait2 on our epoll until then (or the epoll_pwait fallback,
 *      poller.h); set wake_at to INT64_MAX while awake (any kick then
 *      writes the eventfd, and the next round recomputes).
 *   5. If the watch fired, wake one sleeping worker: it harvests the hub
 *      itself (sched.c, find_task) and wakes more if it finds more work.
 */
#include "poller.h"
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

#define STUCK_NS (1 * 1000 * 1000)

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
    p->ctl_epfd = -1;
    p->evfd = -1;
    atomic_init(&p->stop, false);
    atomic_init(&p->wake_at, INT64_MAX);
    atomic_init(&p->running, 0);
    atomic_init(&p->deep_sleep, false);
    atomic_init(&p->use_pwait2,
                !pwait2_disabled_by_env() && !atomic_load_explicit(&pwait2_missing, memory_order_relaxed));
    wf__timers_init(&p->timers, rt, wf_now());
    int err = 0;
    p->hub = wf__pollhub_new(&err);
    if (!p->hub)
        return err;
    p->ctl_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->ctl_epfd < 0)
        return -errno;
    p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->evfd < 0)
        return -errno;
    /* Our epoll holds the eventfd (level-triggered: a kick stays visible
     * until the poller drains it) and the hub's epoll, one shot (the
     * watch, poller.h), armed from the start. */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    struct epoll_event hv = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = &p->hub};
    if (epoll_ctl(p->ctl_epfd, EPOLL_CTL_ADD, p->evfd, &ev) < 0 ||
        epoll_ctl(p->ctl_epfd, EPOLL_CTL_ADD, p->hub->epfd, &hv) < 0)
        return -errno;
    return 0;
}

void wf__poller_destroy(wf__poller *p)
{
    /* Closing the eventfd takes it out of the hub's epoll too. */
    if (p->evfd >= 0)
        close(p->evfd);
    if (p->ctl_epfd >= 0)
        close(p->ctl_epfd);
    p->evfd = p->ctl_epfd = -1;
    if (p->hub) {
        /* Sockets still registered keep the hub (and its epoll) alive
         * until they are closed (pollfd.h); they may move to another
         * runtime (release: pairs with bind_hub's acquire). */
        atomic_store_explicit(&p->hub->orphaned, true, memory_order_release);
        wf__pollhub_unref(p->hub);
        p->hub = NULL;
    }
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

/* --- the thread -------------------------------------------------------- */

/* Steps 1 and 2: fire what is due, return the next planned wake-up;
 * *any_awake tells whether some worker was seen awake. */
static int64_t keep_time(wf__poller *p, wf__batch *b, bool *any_awake_out)
{
    wf__runtime *rt = p->rt;
    int64_t now = wf_now();
    if (wf__timers_next(&p->timers) <= now)
        wf__timers_run(&p->timers, now, b);
    int64_t next = wf__timers_next(&p->timers);
    bool rescue = false;
    /* seq_cst store before the seq_cst load of the idle word below: the
     * poller's half of the Dekker pair with a worker leaving park()
     * (sched.c). A worker counted parked there is woken by someone who
     * counts it awake first (an RMW of the same word, seq_cst) and then
     * signals it; it then loads deep_sleep (seq_cst), so either we see it
     * counted awake and bound our sleep, or it sees deep_sleep and kicks
     * us. The idle word, not the workers' own `parked` flags: a worker
     * that has been woken but has not run yet still has `parked` set, and
     * counting it asleep made the poller sleep deep just before that
     * worker saw it and kicked it awake again (an eventfd write and a
     * poller round per I/O burst). */
    atomic_store_explicit(&p->deep_sleep, true, memory_order_seq_cst);
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        wf__worker *w = &rt->workers[i];
        /* Whose timers are ours to fire. acquire: it acquires the parking
         * worker's wheel (its kick's CAS orders that before our look). */
        bool parked = atomic_load_explicit(&w->parked, memory_order_acquire);
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
    /* seq_cst: see above. */
    bool any_awake = (atomic_load_explicit(&rt->idle.state, memory_order_seq_cst) >> WF__IDLE_UNPARK_SHIFT) != 0;
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
    *any_awake_out = any_awake;
    return next;
}

/* Arm the watch: the hub's epoll reports to ours once more. A system
 * call, and a full barrier (the kernel's locks). If events are ready
 * already, our epoll reports the watch at once. */
static void arm_watch(wf__poller *p)
{
    struct epoll_event hv = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = &p->hub};
    if (epoll_ctl(p->ctl_epfd, EPOLL_CTL_MOD, p->hub->epfd, &hv) < 0)
        wf__panic("poller: re-arming the watch on the runtime's own epoll failed: %s", strerror(errno));
}

void wf__poller_watch_io(wf__poller *p)
{
    /* Nothing registered: no event can come (a runtime that never waits on
     * an fd pays nothing here). relaxed: the worker that registered the
     * first fd is awake, and arms the watch when it parks last. */
    if (!wf__pollhub_active(p->hub))
        return;
    arm_watch(p);
}

/* Step 3, the poller's half of the Dekker pair with the last worker to
 * park (poller.h): the kernel's report consumed the one shot, so if every
 * worker is parked now (seq_cst load, after the epoll calls of this round,
 * which are full barriers), arm it again ourselves. A worker that parks
 * last after this load arms it itself. */
static void keep_watch(wf__poller *p)
{
    if (!wf__pollhub_active(p->hub))
        return;
    uint32_t s = atomic_load_explicit(&p->rt->idle.state, memory_order_seq_cst);
    if ((s >> WF__IDLE_UNPARK_SHIFT) == 0)
        arm_watch(p);
}

/* Step 4: wait for events for at most `d` ns (-1: forever). Returns the
 * number of events, or -1 when the caller should just go round again
 * (EINTR; epoll_pwait2 found missing, the fallback now in use). */
static int poll_events(wf__poller *p, int epfd, struct epoll_event *ev, int64_t d)
{
    /* relaxed: written before the thread starts (pthread_create orders
     * it) or by this thread itself. */
    if (atomic_load_explicit(&p->use_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
        int n = epoll_pwait2(epfd, ev, 2, d < 0 ? NULL : &ts, NULL);
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
    int n = epoll_pwait(epfd, ev, 2, ms, NULL);
    if (n < 0 && errno != EINTR)
        wf__panic("poller: epoll_pwait on the runtime's own epoll failed: %s", strerror(errno));
    return n;
}

static void drain_eventfd(wf__poller *p)
{
    uint64_t v;
    while (read(p->evfd, &v, sizeof v) > 0) {
    }
}

static void *poller_main(void *arg)
{
    wf__poller *p = arg;
    wf__runtime *rt = p->rt;
    /* 15 characters at most (the kernel's comm); failure only loses the
     * name in ps and debuggers. */
    (void)pthread_setname_np(pthread_self(), "wf-poller");
    wf__tls_set(rt, NULL);
    /* release: wf__poller_start returns once the thread is up (named). */
    atomic_store_explicit(&p->running, 1, memory_order_release);
    wf__futex_wake(&p->running, 1);
    struct epoll_event ev[2];
    bool watch_fired = false;
    bool idle_round = false; /* the last sleep ran out with nothing to do */
    for (;;) {
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            break;
        wf__batch b;
        wf__batch_init(&b);
        bool any_awake;
        int64_t next = keep_time(p, &b, &any_awake);
        /* The sysmon's I/O duty (step 1): events that workers busy in long
         * fibers have not harvested wait at most one round. Only after a
         * sleep that ran its whole course: a round woken by the watch or a
         * kick has just handed work to a worker, which harvests, and a
         * harvest here would only take its events from it (through the
         * inject queue). */
        if (any_awake && idle_round)
            p->stats.events += wf__pollhub_harvest(p->hub, &b);
        wf__ready_batch(rt, &b);

        if (watch_fired) {
            keep_watch(p);
            watch_fired = false;
        }
        /* acq_rel: see step 2 in the header comment. */
        (void)atomic_exchange_explicit(&p->wake_at, next, memory_order_acq_rel);
        int64_t d = -1; /* forever */
        if (next != INT64_MAX) {
            d = next - wf_now();
            if (d < 0)
                d = 0;
        }
        int n = poll_events(p, p->ctl_epfd, ev, d);
        idle_round = n == 0;
        atomic_store_explicit(&p->wake_at, INT64_MAX, memory_order_release);
        /* relaxed: awake again, a waking worker need not kick us; the
         * next round's seq_cst store re-arms the pair. */
        atomic_store_explicit(&p->deep_sleep, false, memory_order_relaxed);
        p->stats.rounds++;
        if (n < 0)
            continue; /* EINTR, or the fallback was just switched on */
        /* Step 5: the eventfd (data.ptr NULL), the watch (&p->hub). */
        for (int i = 0; i < n; i++) {
            if (!ev[i].data.ptr)
                drain_eventfd(p);
            else
                watch_fired = true;
        }
        if (watch_fired) {
            /* Events are ready and every worker sleeps: wake one, which
             * harvests them itself (find_task) into its own ring and wakes
             * more if it finds more than it can run at once. We make no
             * epoll_wait and touch no fd record here: the hand-off is one
             * futex wake-up. */
            p->stats.watches++;
            wf__notify_work(rt);
        }
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
    /* Wait for it to be up: a runtime whose threads all carry their names
     * once wf_run runs main (ps, gdb, test_threads). acquire: pairs with
     * the thread's release. */
    while (atomic_load_explicit(&p->running, memory_order_acquire) == 0)
        wf__futex_wait(&p->running, 0, -1);
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
    return wf__pollhub_wait(self->rt->poller.hub, self, fd, dir, deadline);
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
    return wf__pollhub_forget(rt->poller.hub, fd);
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
