/* runtime.h - the runtime and its workers: one struct of per-module parts
 * each (libdill's ctx.h), no process-global state. A thread finds its
 * runtime through a thread-local set when a runtime thread starts.
 */
#ifndef WF_RUNTIME_H
#define WF_RUNTIME_H

#include "atomic.h"
#include "fcontext.h"
#include "handle.h"
#include "idle.h"
#include "inject.h"
#include "poller.h"
#include "runq.h"
#include "stack.h"
#include "task.h"
#include "timer.h"
#include <pthread.h>
#include <weft/core.h>

/* What a fiber asks of the scheduler when it switches back to it. */
enum {
    WF__ACT_NONE = 0,
    WF__ACT_YIELD, /* requeue at the back of the ring */
    WF__ACT_PARK,  /* settle the park (park.h), requeue if already decided */
    WF__ACT_EXIT,  /* the task ended: recycle its stack, drop its reference */
};

/* Per-worker counters (owner writes, relaxed; read by dumps and benches). */
typedef struct wf__worker_stats {
    uint64_t runs, steals, parks, inject_pops, timer_fires;
    /* search(): steals from a victim found stalled within a grace period;
     * passes spent waiting one out. */
    uint64_t stalled_steals, grace_passes;
    uint64_t harvests, harvested; /* epoll harvests that found tasks, and the tasks */
} wf__worker_stats;

typedef struct wf__worker {
    wf__runq runq;
    /* --- owner only --- */
    struct wf__runtime *rt;
    uint32_t index;
    wf__task *current;   /* the task on this CPU, NULL in the scheduler */
    wf__task *switch_from; /* a fiber that switched directly to current... */
    unsigned from_action;  /* ...and what it asked for (WF__ACT_*) */
    fcontext_t sched_ctx; /* the scheduler's context while a fiber runs */
    unsigned action;      /* WF__ACT_*, set by the fiber before switching back */
    uint64_t tick;
    int64_t harvest_at; /* when the fairness tick last harvested the epoll */
    /* Contention met on channel locks (wf__note_contention): a level that
     * rises with each contended acquisition and drains with time (sched.c,
     * CONTENTION_*), and the time up to which it has drained. */
    uint32_t contention;
    int64_t contended_at;
    unsigned fair_in, timer_in; /* ticks until the loop's periodic duties */
    unsigned next_streak;
    bool searching;
    uint64_t rng;
    wf__stack_cache stacks;
    wf__handle_cache handles;
    wf__worker_stats stats;
    wf__task *tfree; /* recycled task records (task.c) */
    unsigned ntfree;
    /* --- shared --- */
    wf__timers timers;
    wf__inject pinned; /* tasks pinned to this worker, made runnable elsewhere */
    /* futex word, bits: 0 asleep (or about to be), 1 woken to search, 2
     * woken plainly (pinned work), 4 shutdown (WF__WAKE_STOP); wakers OR
     * them in. Bits 1 and 2 are set only by whoever took the worker off the
     * idle stack (idle.c); bit 4 by stop_threads, which takes nobody off. */
    WF_ALIGNED_CL _Atomic uint32_t futex;
    _Atomic bool parked;      /* between registering parked and waking up */
    _Atomic uint64_t ticks;   /* published tick, for the sysmon */
    /* --- poller thread only (the sysmon's view of this worker) --- */
    uint64_t mon_tick; /* ticks when last seen moving... */
    int64_t mon_at;    /* ...and when */
    /* Tasks spawned on / retired by this worker: written by the owner only
     * (load + store, no RMW), summed by the shutdown code (wf__live). */
    _Atomic uint64_t spawned, retired;
    pthread_t thread;
    bool started;
    /* --- sanitizer and signal state of the worker thread --- */
    void *tsan_sched;
    const void *stack_lo;
    size_t stack_len;
    void *altstack;
} wf__worker;

typedef struct wf__runtime {
    wf_config_t cfg;
    uint32_t nworkers;
    wf__worker *workers;
    wf__inject inject;
    wf__idle idle;
    wf__poller poller;
    wf__handles handles;
    wf__stack_pool stacks;
    /* Tasks alive = spawned - retired, kept per worker (wf__live) so the
     * spawn/exit path touches no shared cache line. Spawns from threads that
     * are not workers count here. */
    WF_ALIGNED_CL _Atomic uint64_t ext_spawned;
    /* Read on every spawn and exit, written once: a line of its own. */
    WF_ALIGNED_CL _Atomic uint32_t closing;  /* shutdown: new tasks start cancelled */
    _Atomic uint32_t stopping; /* workers leave their loops */
    /* Shutdown saw no task alive: callback timers no longer fire, so none
     * can spawn a task that no worker would ever run (timer.c). */
    _Atomic uint32_t sealed;
    WF_ALIGNED_CL char pad_after_flags_;
    _Atomic uint32_t main_done; /* futex: the main task ended */
    _Atomic uint32_t quiesced;  /* futex: live reached 0 while closing */
    wf__task *main_task;
    /* The thread pool (pool/pool.h) and the signal state (pool/sigs.h):
     * made at step 3, no thread before first use. */
    struct wf__pool *pool;
    struct wf__sigstate *signals;
} wf__runtime;

/* The worker this thread is, or NULL. Never inlined, so that a fiber that
 * migrated between two calls never reuses a stale thread-local address. */
wf__worker *wf__tls_worker(void);
/* The runtime this thread belongs to (workers and the poller), or NULL. */
wf__runtime *wf__tls_runtime(void);
void wf__tls_set(wf__runtime *rt, wf__worker *w);

/* --- scheduler entry points (sched.c) --- */

/* Make `t` runnable: its wait was decided while parked. Picks the queue from
 * the caller's context: the next slot when called from a fiber, the ring
 * from a worker's scheduler, the inject queue elsewhere; pinned tasks go to
 * their worker. */
void wf__ready(wf__task *t);
void wf__ready_batch(wf__runtime *rt, wf__batch *b);
/* Queue a task that has never run. */
void wf__schedule_new(wf__runtime *rt, wf__task *t);
/* Someone made work stealable: wake a parked worker if none searches. */
void wf__notify_work(wf__runtime *rt);
void *wf__worker_main(void *arg);
void wf__worker_wake(wf__worker *w, uint32_t how);

/* --- the local queue's owner side (sched.c's loop, fiber.c's direct
 * switches). Inline: a direct switch runs them on every park and yield. --- */

/* Consecutive runs from the next slot before the ring gets a turn (tokio's
 * cap; sched.c, THE LOOP step 3). */
#define WF__NEXT_STREAK_MAX 3

void wf__push_local_slow(wf__worker *w, wf__task *t);

/* Any thread (a no-op off the workers): the caller found a channel's lock
 * taken by another core. Feeds the stealing policy (sched.c, "stealing with
 * a grace period"). */
void wf__note_contention(void);

/* Owner only: the back of the ring, overflow to inject, for a task a
 * fiber of this worker woke (runq.h, WOKEN ENTRIES). */
static inline void wf__push_local_woken(wf__worker *w, wf__task *t)
{
    if (wf__unlikely(!wf__runq_try_push(&w->runq, t)))
        wf__push_local_slow(w, t);
}

/* Owner only: the back of the ring, overflow to inject; stealable at once. */
static inline void wf__push_local(wf__worker *w, wf__task *t)
{
    wf__push_local_woken(w, t);
    wf__runq_mark_plain(&w->runq);
}

/* Owner only: the next slot (within its streak cap), else the ring. */
static inline wf__task *wf__pop_local(wf__worker *w)
{
    wf__task *t = wf__runq_take_next(&w->runq);
    if (t) {
        if (w->next_streak < WF__NEXT_STREAK_MAX) {
            w->next_streak++;
            return t;
        }
        /* Cap reached: the ring gets a turn first. */
        wf__push_local_woken(w, t);
    }
    w->next_streak = 0;
    return wf__runq_pop(&w->runq);
}

/* Owner, from a fiber about to stop: the next local task to switch to
 * directly, or NULL to go through the scheduler loop (empty local queue,
 * or a tick with periodic duties). Counts the tick. */
static inline wf__task *wf__sched_next_direct(wf__worker *w)
{
    /* The ticks on which the loop has periodic duties (fairness, timers)
     * are left to the loop: going through it costs one switch more. */
    if (w->fair_in <= 1 || w->timer_in <= 1)
        return NULL;
    wf__task *t = wf__pop_local(w);
    if (t) {
        w->fair_in--;
        w->timer_in--;
        /* relaxed: a liveness hint for the sysmon. */
        atomic_store_explicit(&w->ticks, ++w->tick, memory_order_relaxed);
    }
    return t;
}

/* --- the switch (fiber.c) --- */

/* Scheduler side: run `t` until it switches back; then carry out its
 * action. */
void wf__fiber_run(wf__worker *w, wf__task *t);
/* Fiber side: switch back to the scheduler with `action`. Returns when the
 * fiber is resumed, with the worker that resumed it: for WF__ACT_EXIT, that
 * is when the fiber has been handed a new task to run (fiber.c). */
wf__worker *wf__fiber_switch_out(wf__task *t, unsigned action);

/* Fiber side: can `target` (a parked task the caller owns) run on this
 * worker right now? (It has a stack, and is not pinned elsewhere.) */
bool wf__fiber_can_switch_to(wf__task *target);
/* Fiber side: `self`, which has begun a wait, switches straight to
 * `target`, a parked task whose wait the caller decided (so it owns it):
 * no trip through a run queue. self's park is settled on target's side of
 * the switch. Returns when self is resumed, with its worker. Used by
 * wf__park_commit_handoff; check wf__fiber_can_switch_to first. */
wf__worker *wf__fiber_switch_to(wf__task *self, wf__task *target);

/* Tasks spawned and not yet retired (task.c): exact once no task is being
 * spawned by a thread outside the runtime. */
uint64_t wf__live(wf__runtime *rt);

/* --- tasks (task.c) --- */

/* Free the worker's recycled task records (once its thread has stopped). */
void wf__task_cache_drain(wf__worker *w);

/* Publish `t`'s outcome and wake its joiners. */
void wf__task_finish(wf__task *t, int status, void *result);
/* The runtime's reference is gone: count the task out of `live`. */
void wf__task_retire(wf__runtime *rt, wf__task *t);

/* --- overflow reporting (overflow.c) --- */
_Noreturn void wf__overflow_report(wf__task *t);
int wf__overflow_install(void);
void wf__overflow_uninstall(void);
int wf__overflow_thread_init(wf__worker *w);
void wf__overflow_thread_fini(wf__worker *w);

/* --- futex helpers (runtime.c) --- */
#define WF__WAKE_SEARCH 1u
#define WF__WAKE_PLAIN 2u
#define WF__WAKE_STOP 4u
void wf__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns);
void wf__futex_wake(_Atomic uint32_t *addr, int n);

#endif
