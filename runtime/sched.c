/* sched.c - the scheduler: which task a worker runs next, and when workers
 * sleep.
 *
 * VOCABULARY (used the same way in every file)
 *   task     a function running on a fiber of its own, with an outcome.
 *   fiber    a stack and a saved context (fcontext) that a task runs on.
 *   worker   an OS thread that runs fibers, one per core by default. Each
 *            has a scheduler loop on its own thread stack.
 *   poller   the one thread that waits in epoll and keeps time while the
 *            workers sleep.
 *   park     a task stopping until its wait is decided (park.h).
 *   wake     deciding a wait and making the task runnable (wf__ready).
 *   steal    an idle worker taking half of another worker's ring.
 *   inject   the shared queue for work made runnable off the workers.
 *   tick     one pass of a worker's scheduler loop.
 *
 * WHERE RUNNABLE TASKS WAIT
 *   next slot   one task per worker: the one the running fiber just woke,
 *               so a message and its reader stay on one core (runq.h).
 *   ring        256 tasks per worker, FIFO; spawned tasks, yields, wakes
 *               from the scheduler itself; half moves to inject when full.
 *   pinned      per worker, tasks pinned to it (never stolen).
 *   inject      shared, FIFO: the poller's batches, foreign threads,
 *               overflow.
 *
 * THE LOOP (find_task), each tick:
 *   1. Every 16th tick, fire this worker's due timers (a clock read costs
 *      about 25 ns, too much for every tick of a 30 ns yield).
 *   2. Every 61st tick, take one task from the inject queue first (Go's
 *      schedule()), or from the pinned inbox if inject is empty: local work
 *      that keeps regenerating itself, a yielding pinned task included,
 *      cannot starve the shared queue. 61 is prime so it does not fall
 *      into step with program patterns.
 *   3. The next slot, unless it has run 3 times in a row (tokio's cap): then
 *      its task goes to the back of the ring and the ring gets a turn.
 *   4. The ring; then the pinned inbox; then a batch from inject (a fair
 *      share: len / workers + 1, the rest into our ring).
 *   5. Due timers again (they may have readied something).
 *   5b. Harvest the epoll without blocking (poller.h): tasks whose fds
 *      became ready run here, the first at once, the rest from our ring.
 *      (Step 2's fairness tick harvests too, queueing behind local work,
 *      at most every 50 us.)
 *   6. Search: become a searcher if fewer than half the awake workers are
 *      (idle.h), steal half of a random victim's ring, two passes, the
 *      victims' next slots only on the last pass; look at inject and at
 *      every worker's overdue timers between passes. A victim's short ring
 *      of tasks its own fibers woke is left to it while it gets through
 *      it, by a searcher that has lately met channel contention (search(),
 *      "stealing with a grace period").
 *   7. Park (below).
 *
 * THE WAKE-UP PROTOCOL (idle.h gives the counters)
 *   Pusher, after making work stealable:     Parker:
 *     a. push (ring / inject: release)        a. register as parked (lock)
 *     b. FULL FENCE                           b. FULL FENCE
 *     c. load idle state; if nobody           c. if it was the last searcher:
 *        searches and somebody sleeps,           look at every queue; if any
 *        pop a sleeper and wake it as a          has work, run the pusher's
 *        searcher.                               side (wake someone, maybe
 *                                                itself).
 *                                             d. futex-wait on its own word.
 *   The two fences make this a Dekker pair: either the pusher's load sees
 *   the parker registered (and wakes it), or the parker's recheck sees the
 *   work. A woken searcher that finds work and was the last searcher wakes
 *   one more, so a burst spreads over the workers one wake-up at a time
 *   instead of all at once. Only the last searcher rechecks: while another
 *   searcher is awake, it will find the work.
 *
 * REJECTED DESIGNS
 *   - One global queue (libdill, neco are single-threaded; a global lock is
 *     a convoy at 16 workers). Per-worker rings plus stealing is what Go
 *     and tokio converged on.
 *   - Chase-Lev LIFO deques (Cilk): ideal for fork/join, but a LIFO run
 *     queue starves old tasks of a server; FIFO rings with a single LIFO
 *     slot give both fairness and message-passing locality.
 *   - Waking every parked worker when work appears: a thundering herd on
 *     each push. Waking none and letting spinners find everything: burns
 *     idle CPU (Go #13527). The searching counter bounds both.
 *   - Always going fiber -> scheduler -> fiber (Go's mcall to g0): two
 *     switches per hop. A fiber that stops (yield, park, end) instead picks
 *     the next task from its own worker's next slot or ring and switches
 *     straight to it; the target finishes the first fiber's action (requeue,
 *     settle the park, recycle the stack) right after landing, on its own
 *     stack, where the first stack is no longer in use (fiber.c). The loop
 *     still runs on every tick with periodic duties and whenever the local
 *     queue is empty.
 */
#include "park.h"
#include "runtime.h"
#include "sanitizer.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft/time.h>

#define FAIRNESS_TICKS 61
#define TIMER_TICKS 16
#define STEAL_PASSES 2
/* Tasks per worker woken at once for a batch from outside the workers
 * (wf__ready_batch). */
#define TASKS_PER_WAKE 8
/* A busy worker's harvests on its fairness tick, at most one per this
 * many ns (find_task): readiness waits at most that long behind CPU-bound
 * local work (Go waits up to 10 ms, for its sysmon). */
#define BUSY_HARVEST_NS (50 * 1000)

/* --- thread-locals ---------------------------------------------------- */

static _Thread_local wf__worker *tls_w __attribute__((tls_model("initial-exec")));
static _Thread_local wf__runtime *tls_rt __attribute__((tls_model("initial-exec")));

#if defined(__clang__)
#define WF_NOIPA __attribute__((noinline))
#else
#define WF_NOIPA __attribute__((noipa))
#endif

WF_NOIPA wf__worker *wf__tls_worker(void)
{
    wf__worker *w = tls_w;
    __asm__ volatile("" ::: "memory");
    return w;
}

WF_NOIPA wf__runtime *wf__tls_runtime(void)
{
    wf__runtime *rt = tls_rt;
    __asm__ volatile("" ::: "memory");
    return rt;
}

void wf__tls_set(wf__runtime *rt, wf__worker *w)
{
    tls_rt = rt;
    tls_w = w;
}

/* --- making tasks runnable --------------------------------------------- */

void wf__worker_wake(wf__worker *w, uint32_t how)
{
    /* release: pairs with the worker's acquire load of its futex word, so
     * it sees whatever the waker queued for it. */
    /* fetch_or, not a store: a plain wake-up (2) landing on a search
     * wake-up (1) must not erase it, or the searcher the waker counted in
     * the idle state is never uncounted (every later wake-up skipped). */
    atomic_fetch_or_explicit(&w->futex, how, memory_order_release);
    wf__futex_wake(&w->futex, 1);
}

void wf__notify_work(wf__runtime *rt)
{
    uint32_t who = wf__idle_should_wake(&rt->idle);
    if (who != UINT32_MAX)
        wf__worker_wake(&rt->workers[who], WF__WAKE_SEARCH);
}

static void push_pinned(wf__runtime *rt, wf__task *t)
{
    wf__worker *pw = &rt->workers[t->pin];
    wf__inject_push(&pw->pinned, t);
    if (wf__tls_worker() != pw && wf__idle_wake_index(&rt->idle, pw->index))
        wf__worker_wake(pw, WF__WAKE_PLAIN);
}

/* Owner only: back of the ring, overflow to inject (wf__push_local's slow
 * path, runtime.h). */
void wf__push_local_slow(wf__worker *w, wf__task *t)
{
    wf__batch of;
    wf__batch_init(&of);
    if (!wf__runq_push(&w->runq, t, &of))
        wf__inject_push_batch(&w->rt->inject, &of);
}

static inline wf__worker *local_worker(wf__runtime *rt)
{
    wf__worker *w = wf__tls_worker();
    return w && w->rt == rt ? w : NULL;
}

void wf__ready(wf__task *t)
{
    wf__runtime *rt = t->rt;
    atomic_store_explicit(&t->where, WF__WHERE_QUEUED, memory_order_relaxed);
    if (t->pin >= 0) {
        push_pinned(rt, t);
        return;
    }
    wf__worker *w = local_worker(rt);
    if (!w) {
        wf__inject_push(&rt->inject, t);
        wf__notify_work(rt);
        return;
    }
    if (w->current) {
        /* Woken by the running fiber: run it next, on this core. The slot
         * alone does not notify (tokio): a ping-pong should not wake a
         * worker that would find nothing; a displaced task does. */
        wf__task *old = wf__runq_put_next(&w->runq, t);
        if (old) {
            wf__push_local_woken(w, old);
            wf__notify_work(rt);
        }
        return;
    }
    wf__push_local(w, t);
    wf__notify_work(rt);
}

void wf__ready_batch(wf__runtime *rt, wf__batch *b)
{
    if (!b->n)
        return;
    wf__worker *w = local_worker(rt);
    if (w && w->current) {
        wf__task *t;
        while ((t = wf__batch_pop(b)) != NULL)
            wf__ready(t);
        return;
    }
    wf__batch shared;
    wf__batch_init(&shared);
    wf__task *t;
    while ((t = wf__batch_pop(b)) != NULL) {
        atomic_store_explicit(&t->where, WF__WHERE_QUEUED, memory_order_relaxed);
        if (t->pin >= 0)
            push_pinned(rt, t);
        else if (w)
            wf__push_local(w, t);
        else
            wf__batch_push(&shared, t);
    }
    if (!shared.n) {
        /* One notification: the woken searcher chains to the next (idle.h). */
        wf__notify_work(rt);
        return;
    }
    unsigned n = shared.n;
    wf__inject_push_batch(&rt->inject, &shared);
    /* From outside the workers (the poller's batch of I/O wake-ups, timer
     * callbacks, foreign threads): wake the sleepers the batch needs at
     * once, one per TASKS_PER_WAKE tasks, rather than one chained futex
     * wake-up after another (each woken searcher takes its fair share of
     * the inject queue). A small batch wakes one worker: a worker woken
     * for nothing costs a context switch each way, more than running a
     * few short I/O tasks in a row. */
    uint32_t who[16];
    unsigned want = (n + TASKS_PER_WAKE - 1) / TASKS_PER_WAKE;
    uint32_t k = wf__idle_wake_many(&rt->idle, want < 16 ? want : 16, who);
    for (uint32_t i = 0; i < k; i++)
        wf__worker_wake(&rt->workers[who[i]], WF__WAKE_SEARCH);
}

void wf__schedule_new(wf__runtime *rt, wf__task *t)
{
    if (t->pin >= 0) {
        push_pinned(rt, t);
        return;
    }
    wf__worker *w = local_worker(rt);
    if (w)
        wf__push_local(w, t);
    else
        wf__inject_push(&rt->inject, t);
    wf__notify_work(rt);
}

/* --- finding work ------------------------------------------------------ */

static inline uint32_t rng_next(wf__worker *w)
{
    /* xorshift64*: victim selection only. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Fire `ts`'s due timers; readied tasks go to this worker's ring. */
static unsigned run_timers(wf__worker *w, wf__timers *ts, int64_t now)
{
    wf__batch b;
    wf__batch_init(&b);
    unsigned n = wf__timers_run(ts, now, &b);
    if (b.n)
        wf__ready_batch(w->rt, &b);
    w->stats.timer_fires += n;
    return n;
}

static unsigned check_own_timers(wf__worker *w)
{
    int64_t next = wf__timers_next(&w->timers);
    if (next == INT64_MAX)
        return 0;
    int64_t now = wf_now();
    return next <= now ? run_timers(w, &w->timers, now) : 0;
}

/* Fire every wheel's overdue timers (a searcher doing a stuck worker's
 * job, or a peer found idle). */
static unsigned check_all_timers(wf__worker *w)
{
    wf__runtime *rt = w->rt;
    int64_t now = 0;
    unsigned n = 0;
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        wf__timers *ts = &rt->workers[i].timers;
        int64_t next = wf__timers_next(ts);
        if (next == INT64_MAX)
            continue;
        if (!now)
            now = wf_now();
        if (next <= now)
            n += run_timers(w, ts, now);
    }
    return n;
}

/* The local pop (next slot, streak cap, ring) is wf__pop_local in
 * runtime.h, inline because fiber.c's direct switches run it too
 * (wf__sched_next_direct). */

/* The pinned inbox, then a fair share of the inject queue; on a fairness
 * tick (`fair`) one task, from inject first: a pinned task that keeps
 * yielding refills the inbox at once, and looking at the inbox first would
 * starve the inject queue forever (the poller's wake-ups wait there). */
static wf__task *pop_shared(wf__worker *w, bool fair)
{
    wf__batch b;
    wf__batch_init(&b);
    unsigned max = fair ? 1 : WF__RUNQ_CAP / 2;
    if (!fair && !wf__inject_maybe_empty(&w->pinned) && wf__inject_pop_batch(&w->pinned, 1, &b))
        return wf__batch_pop(&b);
    wf__runtime *rt = w->rt;
    if (wf__inject_maybe_empty(&rt->inject)) {
        if (fair && !wf__inject_maybe_empty(&w->pinned) && wf__inject_pop_batch(&w->pinned, 1, &b))
            return wf__batch_pop(&b);
        return NULL;
    }
    size_t len = atomic_load_explicit(&rt->inject.len, memory_order_relaxed);
    unsigned n = (unsigned)(len / rt->nworkers + 1);
    if (n > max)
        n = max;
    if (!wf__inject_pop_batch(&rt->inject, n, &b))
        return NULL;
    w->stats.inject_pops += b.n;
    wf__task *first = wf__batch_pop(&b), *t;
    while ((t = wf__batch_pop(&b)) != NULL)
        wf__push_local(w, t);
    return first;
}

/* `n` more tasks became stealable at once (a harvest): wake one sleeping
 * worker per TASKS_PER_WAKE of them, at once (a burst spreads over the
 * workers without a chain of wake-ups one after the other), or none while
 * somebody searches (it takes the first and chains). */
static void notify_many(wf__runtime *rt, unsigned n)
{
    uint32_t who[16];
    unsigned want = (n + TASKS_PER_WAKE - 1) / TASKS_PER_WAKE;
    uint32_t k = wf__idle_wake_many(&rt->idle, want < 16 ? want : 16, who);
    for (uint32_t i = 0; i < k; i++)
        wf__worker_wake(&rt->workers[who[i]], WF__WAKE_SEARCH);
}

/* Harvest the epoll without blocking (poller.h, "who turns I/O events
 * into wake-ups"): the tasks it readies go to this worker's ring, which is
 * where an idle worker wants them (no hop through the inject queue and a
 * futex). Returns the first, to run now, or NULL. `keep`: on the
 * fairness tick of a busy worker, queue everything behind the local work
 * and return NULL. */
static wf__task *harvest(wf__worker *w, bool keep)
{
    wf__runtime *rt = w->rt;
    wf__batch b;
    wf__batch_init(&b);
    if (!wf__pollhub_harvest(rt->poller.hub, &b) || !b.n)
        return NULL;
    w->stats.harvests++;
    w->stats.harvested += b.n;
    wf__task *first = keep ? NULL : wf__batch_pop(&b), *t;
    unsigned more = b.n;
    while ((t = wf__batch_pop(&b)) != NULL) {
        atomic_store_explicit(&t->where, WF__WHERE_QUEUED, memory_order_relaxed);
        if (t->pin >= 0)
            push_pinned(rt, t);
        else
            wf__push_local(w, t);
    }
    if (first)
        atomic_store_explicit(&first->where, WF__WHERE_QUEUED, memory_order_relaxed);
    if (first && first->pin >= 0) {
        /* Pinned elsewhere: it cannot run here. Run one of the rest
         * instead: a caller that gets NULL goes on to steal, and a thief
         * steals only into an empty queue (runq.c asserts it). */
        push_pinned(rt, first);
        first = wf__runq_pop(&w->runq);
    }
    /* More than one: make the rest stealable by a sleeping peer. */
    if (more)
        notify_many(rt, more);
    return first;
}

static bool work_pending(wf__runtime *rt)
{
    if (!wf__inject_maybe_empty(&rt->inject))
        return true;
    for (uint32_t i = 0; i < rt->nworkers; i++)
        if (!wf__runq_maybe_empty(&rt->workers[i].runq))
            return true;
    return false;
}

static bool work_pending(wf__runtime *rt);

static void stop_searching(wf__worker *w)
{
    w->searching = false;
    /* The last searcher to find work wakes one more, if there is more
     * work to find (tokio's notify_if_work_pending): a burst spreads one
     * wake-up at a time, and a lone task wakes nobody. Our RMW on the idle
     * word (seq_cst) comes before the look at the queues; a pusher makes
     * its work visible, fences, then reads the idle word: either it sees
     * no searcher and wakes someone, or we see its work. */
    if (wf__idle_stop_search(&w->rt->idle)) {
        wf__fence();
        if (work_pending(w->rt))
            wf__notify_work(w->rt);
    }
}

/* Stealing with a grace period (docs/architecture.md, "Where a woken task
 * runs"). A victim whose ring holds only tasks its own fibers woke, fewer
 * than STEAL_EAGER (runq.h, WOKEN ENTRIES), or whose ring is empty but for
 * its next slot, is left alone while it gets through them (it ran a task
 * within the last STEAL_LOOK_NS: its published tick moved), when this
 * worker has lately met contention on channel locks: its contention level
 * is CONTENTION_PACK or more. Such tasks talk through a channel and do
 * little else; spread over two cores they spend their time moving the
 * channel's lines between them (mpmc: 40 M items/s spread, 120 on one
 * worker). A searcher waits up to STEAL_GRACE_NS for such a victim to
 * stall, then parks. Anything else (a longer ring, a spawn, a yield, I/O,
 * a victim stuck in one fiber, tasks that work between their channel
 * operations and so rarely contend) is stolen at once, as before. */
#define STEAL_EAGER 8
/* The contention level rises by CONTENTION_WEIGHT per contended lock
 * acquisition and drains by one every CONTENTION_DRAIN_NS, up to
 * CONTENTION_MAX: it passes CONTENTION_PACK only when contention comes
 * more often than about once per 8 us (a channel shared by busy tasks on
 * two cores: mpmc meets it several times a microsecond; the stages of a
 * pipeline that work 0.2 us or more between operations, rarely), and a
 * worker that has stopped meeting it steals again within about 16 ms. */
#define CONTENTION_DRAIN_NS 1000
#define CONTENTION_WEIGHT 8u
#define CONTENTION_MAX 16384u
#define CONTENTION_PACK 64u
#define STEAL_LOOK_NS (30 * 1000)
#define STEAL_GRACE_NS (150 * 1000)
/* Victims whose ticks a searcher remembers; with more workers, no grace. */
#define STEAL_GRACE_MAX_WORKERS 64
/* Pauses between two passes of a searcher waiting out a grace period: a
 * pass reads every victim's ring, the inject queue and the timer wheels. */
#define STEAL_GRACE_PAUSES 32

static uint32_t contention_level(const wf__worker *w, int64_t now)
{
    int64_t drained = (now - w->contended_at) / CONTENTION_DRAIN_NS;
    return drained >= (int64_t)w->contention ? 0 : w->contention - (uint32_t)drained;
}

void wf__note_contention(void)
{
    wf__worker *w = wf__tls_worker();
    if (!w)
        return;
    int64_t now = wf_now();
    uint32_t level = contention_level(w, now);
    /* Keep the part of a microsecond not yet drained: reports spaced
     * under 1 us apart would otherwise never drain the level. */
    if (level)
        w->contended_at += (int64_t)(w->contention - level) * CONTENTION_DRAIN_NS;
    else
        w->contended_at = now;
    w->contention = level < CONTENTION_MAX - CONTENTION_WEIGHT ? level + CONTENTION_WEIGHT : CONTENTION_MAX;
}

static wf__task *search(wf__worker *w)
{
    wf__runtime *rt = w->rt;
    uint32_t n = rt->nworkers;
    if (!w->searching) {
        if (!wf__idle_start_search(&rt->idle))
            return NULL;
        w->searching = true;
    }
    wf__task *t = NULL;
    /* Only a worker that lately met contention waits (see above); the
     * level is recomputed for the time of the first candidate victim. */
    bool can_wait = n <= STEAL_GRACE_MAX_WORKERS && w->contention >= CONTENTION_PACK;
    uint64_t marks[STEAL_GRACE_MAX_WORKERS]; /* victims' ticks at the last look */
    int64_t start = 0, look = 0;
    for (int pass = 0;; pass++) {
        bool deferred = false, looked = false;
        int64_t now = 0;
        if (start) {
            now = wf_now();
            looked = now - look >= STEAL_LOOK_NS;
            if (looked)
                look = now;
        }
        uint32_t first = n > 1 ? rng_next(w) % n : 0;
        for (uint32_t i = 0; i < n && !t; i++) {
            uint32_t k = (first + i) % n;
            wf__worker *v = &rt->workers[k];
            if (v == w)
                continue;
            /* acquire: as the steal's own loads (runq.c). */
            uint32_t h = atomic_load_explicit(&v->runq.head, memory_order_acquire);
            uint32_t tl = atomic_load_explicit(&v->runq.tail, memory_order_acquire);
            bool stalled = false;
            /* Only woken tasks: a short ring of them, or (ring empty) the
             * next slot, which only ever holds a woken task. relaxed: a
             * peek, as wf__runq_take_next's. */
            if (can_wait && (tl != h ? tl - h < STEAL_EAGER && wf__runq_only_woken(&v->runq, h)
                                     : atomic_load_explicit(&v->runq.next, memory_order_relaxed) != NULL)) {
                if (!start) {
                    /* The first such victim: the grace period starts, if
                     * the contention is recent enough. relaxed: the
                     * sysmon's liveness hint, read as it reads it. */
                    start = look = wf_now();
                    can_wait = contention_level(w, start) >= CONTENTION_PACK;
                    for (uint32_t j = 0; j < n; j++)
                        marks[j] = atomic_load_explicit(&rt->workers[j].ticks, memory_order_relaxed);
                }
                if (can_wait) {
                    uint64_t tick = atomic_load_explicit(&v->ticks, memory_order_relaxed);
                    if (!looked || tick != marks[k]) {
                        if (looked)
                            marks[k] = tick; /* it ran tasks since the last look */
                        deferred = true;
                        continue; /* it is getting through them */
                    }
                    stalled = true; /* no task run for a whole look */
                }
            }
            t = wf__runq_steal_into(&v->runq, &w->runq);
            if (!t && (stalled || pass >= STEAL_PASSES - 1))
                t = wf__runq_steal_next(&v->runq);
            if (t && stalled)
                w->stats.stalled_steals++;
            if (t)
                w->stats.steals++;
        }
        if (!t)
            t = pop_shared(w, false);
        if (!t && check_all_timers(w))
            t = wf__pop_local(w);
        if (!t && looked)
            t = harvest(w, false); /* nobody else looks at I/O meanwhile */
        if (t || (pass >= STEAL_PASSES - 1 && (!deferred || now - start >= STEAL_GRACE_NS)))
            break;
        if (deferred) {
            w->stats.grace_passes++;
            for (int j = 0; j < STEAL_GRACE_PAUSES; j++)
                wf__cpu_relax();
        } else {
            wf__cpu_relax();
        }
    }
    if (t)
        stop_searching(w);
    return t;
}

static void park(wf__worker *w)
{
    wf__runtime *rt = w->rt;
    bool was_searching = w->searching;
    w->searching = false;
    /* Nobody can signal us before we are on the parked stack. */
    atomic_store_explicit(&w->futex, 0, memory_order_relaxed);
    atomic_store_explicit(&w->parked, true, memory_order_relaxed);
    bool all_parked;
    bool last = wf__idle_park(&rt->idle, w->index, was_searching, &all_parked);
    /* The parker's full fence (see THE WAKE-UP PROTOCOL). */
    wf__fence();
    if (last && work_pending(rt))
        wf__notify_work(rt);
    /* The last worker to sleep hands the epoll to the poller (poller.h). */
    if (all_parked)
        wf__poller_watch_io(&rt->poller);
    if (!wf__inject_maybe_empty(&w->pinned) && wf__idle_wake_index(&rt->idle, w->index))
        atomic_fetch_or_explicit(&w->futex, WF__WAKE_PLAIN, memory_order_relaxed);
    /* Our timers become the poller's job while we sleep. */
    int64_t next = wf__timers_next(&w->timers);
    if (next != INT64_MAX)
        wf__poller_kick_at(&rt->poller, next);
    w->stats.parks++;
    /* acquire: pairs with wf__worker_wake's release. */
    while (atomic_load_explicit(&w->futex, memory_order_acquire) == 0 &&
           !atomic_load_explicit(&rt->stopping, memory_order_acquire))
        wf__futex_wait(&w->futex, 0, -1);
    /* One half of a Dekker pair with the poller, which stores deep_sleep
     * = true before it reads the idle word (keep_time in poller.c): whoever
     * woke us counted us awake there first (a seq_cst RMW, which happens
     * before this load through our futex word), so either the poller saw
     * us awake and bounds its sleep, or we see its deep sleep and kick it:
     * the sysmon duty (our timers while we run a long fiber, a stuck next
     * slot) resumes either way. (A worker leaving for shutdown with nobody
     * having woken it may kick for nothing: harmless.) `parked` says whose
     * timers the poller fires. */
    atomic_store_explicit(&w->parked, false, memory_order_seq_cst);
    if (atomic_load_explicit(&rt->poller.deep_sleep, memory_order_seq_cst))
        wf__poller_kick_at(&rt->poller, 0);
    uint32_t how = atomic_exchange_explicit(&w->futex, 0, memory_order_acquire);
    if (!(how & (WF__WAKE_SEARCH | WF__WAKE_PLAIN))) {
        /* Left for shutdown (WF__WAKE_STOP or `stopping` seen) with nobody
         * having taken us off the idle stack: do it ourselves, so the state
         * counts us awake before we search. A stopped worker that searched
         * while still counted parked made a worker parking after it the
         * "last" one with a searcher left (idle.c's invariant fired under
         * TSan at wf_run's end). If we are no longer on the stack, a waker
         * took us off and its reason is on its way to our futex word: wait
         * for it, it decides whether we were counted as a searcher. */
        if (!wf__idle_wake_index(&rt->idle, w->index)) {
            /* acquire: as above, pairs with wf__worker_wake's release. */
            while (!((how |= atomic_exchange_explicit(&w->futex, 0, memory_order_acquire)) &
                     (WF__WAKE_SEARCH | WF__WAKE_PLAIN)))
                wf__cpu_relax();
        }
    }
    w->searching = (how & WF__WAKE_SEARCH) != 0; /* counted as a searcher by its waker */
}

static wf__task *find_task(wf__worker *w)
{
    wf__runtime *rt = w->rt;
    for (;;) {
        /* relaxed: read by the sysmon as a liveness hint only. */
        atomic_store_explicit(&w->ticks, ++w->tick, memory_order_relaxed);
        wf__task *t;
        /* Countdowns, not `tick % 61`: a division per tick is not free. */
        bool fair = --w->fair_in == 0, timers = --w->timer_in == 0;
        /* Both counters are reset before anything can return: a fairness
         * tick that returned early on a timer tick used to leave timer_in
         * at 0, and the next decrement wrapped it (no own-timer duty for
         * 2^32 ticks). */
        if (fair) {
            w->fair_in = FAIRNESS_TICKS;
            wf__runq_plain_catch_up(&w->runq);
        }
        if (timers) {
            w->timer_in = TIMER_TICKS;
            check_own_timers(w);
        }
        if (fair) {
            /* A busy worker still looks at I/O every 61 ticks (tokio's
             * event_interval), but not more often than every
             * BUSY_HARVEST_NS: 61 yields take about 1.3 us, and an
             * epoll_wait every 1.3 us would cost a CPU-bound program with
             * one registered fd a fifth of its time. Its readied tasks
             * queue behind local work. */
            if (wf__pollhub_active(rt->poller.hub)) {
                int64_t now = wf_now();
                if (now - w->harvest_at >= BUSY_HARVEST_NS) {
                    w->harvest_at = now;
                    harvest(w, true);
                }
            }
            if ((t = pop_shared(w, true)) != NULL)
                return t;
        }
        if ((t = wf__pop_local(w)) != NULL)
            return t;
        if ((t = pop_shared(w, false)) != NULL)
            return t;
        if (check_own_timers(w))
            continue;
        /* Out of local work: ready I/O before stealing, so a connection's
         * fiber runs here, at once, instead of waiting for the poller. */
        if ((t = harvest(w, false)) != NULL)
            return t;
        if ((t = search(w)) != NULL)
            return t;
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
            return NULL;
        park(w); /* a searcher gives up its seat in wf__idle_park */
    }
}

void *wf__worker_main(void *arg)
{
    wf__worker *w = arg;
    wf__runtime *rt = w->rt;
    /* "wf-worker-1023" at most: within the kernel's 15-character comm.
     * Failure only loses the name in ps, top and debuggers. */
    char name[16];
    snprintf(name, sizeof name, "wf-worker-%u", (unsigned)w->index);
    (void)pthread_setname_np(pthread_self(), name);
    wf__tls_set(rt, w);
    w->tsan_sched = wf__tsan_current();
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo;
        size_t len;
        if (pthread_attr_getstack(&attr, &lo, &len) == 0) {
            w->stack_lo = lo;
            w->stack_len = len;
        }
        pthread_attr_destroy(&attr);
    }
    if (rt->cfg.pin_workers) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu > 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET((int)(w->index % (uint32_t)ncpu), &set);
            (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
    }
    (void)wf__overflow_thread_init(w);

    wf__task *t;
    while ((t = find_task(w)) != NULL) {
        /* A worker woken as a searcher may find work in its own queues
         * rather than by stealing: it must stop counting as a searcher
         * before it runs anything, or while it runs (maybe for long) the
         * count says someone is searching and every wake-up is skipped
         * (tokio: transition_from_searching in run_task). */
        if (w->searching)
            stop_searching(w);
        w->stats.runs++;
        wf__fiber_run(w, t);
    }

    wf__overflow_thread_fini(w);
    wf__tls_set(NULL, NULL);
    return NULL;
}

int wf_workers(void)
{
    wf__runtime *rt = wf__tls_runtime();
    return rt ? (int)rt->nworkers : -EPERM;
}

int wf_worker_index(void)
{
    wf__worker *w = wf__tls_worker();
    return w ? (int)w->index : -EPERM;
}
