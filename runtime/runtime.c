/* runtime.c - wf_run: start-up and shutdown, in numbered steps.
 *
 * START-UP
 *   1. Validate the configuration.
 *   2. Under cfg.procpool, fork the process pool's zygote (pool/zygote.h)
 *      unless wf_procpool_init() has: before this function creates any
 *      thread, since forking a multi-threaded process is unsafe. Once per
 *      process, not per wf_run: a second runtime finds it running. If the
 *      process has other threads already, fail (-EBUSY) rather than fork.
 *      Keep this step free of threads: the thread pool starts none before
 *      its first call (pool/pool.h), long after this step.
 *   3. Allocate the runtime: stack pool (and its guard budget), handle
 *      table, inject queue, idle bookkeeping, the thread pool's crews (no
 *      thread yet) and the signal state (no fd yet).
 *   4. Create the poller's kernel objects (epoll, eventfd).
 *   5. Initialise the workers: run queues, timer wheels, pinned inboxes.
 *   6. Install the stack-overflow reporter (SIGSEGV/SIGBUS).
 *   7. Create the main task; it waits in the inject queue.
 *   8. Signal masks (pool/sigs.h): this thread keeps its caller's mask
 *      for later and blocks every asynchronous signal until the end (it
 *      only waits). Start the poller thread, which inherits that.
 *   9. Start the worker threads, born with the caller's mask (plus SIGINT
 *      and SIGTERM under cfg.shutdown_on_signal), and the shutdown
 *      watcher (that option; it inherits this thread's mask). (The thread
 *      pool's threads start on demand, from the first wf_to_thread and its
 *      kin; the sysmon duty is the poller's.)
 *
 * SHUTDOWN, once the main task has returned
 *   10. Mark the runtime closing: tasks spawned from now on start cancelled.
 *   11. Cancel every task still alive and wait for them all to end,
 *       re-cancelling (every 10 ms) any that cleared its cancellation; then
 *       seal: callback timers no longer fire (one that spawns could
 *       otherwise start a task no worker would run).
 *   12. Stop the signal watcher, the workers and the poller, and join
 *       them. Then close the thread pool and join its threads: every call
 *       abandoned by a cancelled task still running is waited for
 *       (weft/pool.h, "Shutdown").
 *   13. Release everything: disarm the timers still armed (they never
 *       fire), free the main task's record, stacks (munmap), tables, the
 *       epoll and eventfd descriptors, the signal handlers, the pool (and
 *       the children of processes never closed: killed, reaped; and the
 *       process pools never closed, whose watchers, cancelled at step 11,
 *       reaped their workers or left them to the pool's threads); drop
 *       the signals caught for fibers that nobody consumed, and give this
 *       thread its signal mask back.
 */
#include "park.h"
#include "pool/pool.h"
#include "pool/procpool.h"
#include "pool/sigs.h"
#include "runtime.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <weft/time.h>

#define MAX_WORKERS 1024
#define QUIESCE_POLL_NS (10 * 1000 * 1000)

void wf__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
}

void wf__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void wf_config_init(wf_config_t *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->workers = 0;
    cfg->stack_size = 0;
    cfg->guard_stacks = -1;
    cfg->pin_workers = false;
}

/* --- the main task ------------------------------------------------------ */

typedef struct {
    wf__runtime *rt;
    wf_fn fn;
    void *arg;
    int status;
    void *result;
} main_box;

static int main_trampoline(void *arg, void **result)
{
    main_box *mb = arg;
    mb->status = mb->fn(mb->arg, &mb->result);
    *result = mb->result;
    /* release: the wf_run thread reads status/result after seeing it. */
    atomic_store_explicit(&mb->rt->main_done, 1, memory_order_release);
    wf__futex_wake(&mb->rt->main_done, 1);
    return mb->status;
}

/* --- shutdown ------------------------------------------------------------ */

static void cancel_one(wf__task *t, void *ctx)
{
    wf__runtime *rt = ctx;
    if (t == rt->main_task)
        return;
    if (atomic_load_explicit(&t->life, memory_order_acquire) == WF__LIFE_DONE)
        return;
    if (atomic_load_explicit(&t->cancel, memory_order_relaxed) != 0)
        return;
    atomic_fetch_add_explicit(&t->cancel, 1, memory_order_seq_cst);
    wf__park_interrupt(t);
}

static void quiesce(wf__runtime *rt)
{
    /* Step 10: from now on new tasks start cancelled. seq_cst: a spawn that
     * missed it is found by the scan below (which runs after). */
    atomic_store_explicit(&rt->closing, 1, memory_order_seq_cst);
    /* Step 11. */
    for (;;) {
        while (wf__live(rt) != 0) {
            wf__handle_scan(&rt->handles, cancel_one, rt);
            if (wf__live(rt) == 0)
                break;
            atomic_store_explicit(&rt->quiesced, 0, memory_order_relaxed);
            if (wf__live(rt) == 0)
                break;
            wf__futex_wait(&rt->quiesced, 0, QUIESCE_POLL_NS);
        }
        /* Nothing alive: seal, so that no callback timer fires any more,
         * then count again. seq_cst store and fence before the loads: our
         * half of the Dekker pair with a batch of timer callbacks
         * (timer.c), which holds the runtime, then reads `sealed`. A batch
         * that missed the seal is counted here: wait for it and what it
         * spawned. */
        atomic_store_explicit(&rt->sealed, 1, memory_order_seq_cst);
        atomic_thread_fence(memory_order_seq_cst);
        if (wf__live(rt) == 0)
            break;
    }
}

/* --- start and stop -------------------------------------------------------- */

static void destroy(wf__runtime *rt)
{
    /* Process pools and children of processes never closed: killed and
     * reaped (pool/procpool.h, pool.h). */
    wf__procpools_destroy(rt);
    wf__processes_destroy(rt);
    /* Timers left armed never fire; their storage is the user's again. */
    wf__timers_shutdown(&rt->poller.timers);
    for (uint32_t i = 0; rt->workers && i < rt->nworkers; i++) {
        wf__timers_shutdown(&rt->workers[i].timers);
        wf__task_cache_drain(&rt->workers[i]);
    }
    if (rt->workers) {
        wf__stack_cache *caches = calloc(rt->nworkers, sizeof *caches);
        for (uint32_t i = 0; i < rt->nworkers && caches; i++)
            caches[i] = rt->workers[i].stacks;
        wf__stack_pool_destroy(&rt->stacks, caches, caches ? rt->nworkers : 0);
        free(caches);
        free(rt->workers);
    }
    wf__poller_destroy(&rt->poller);
    wf__handles_destroy(&rt->handles);
    wf__idle_destroy(&rt->idle);
    wf__pool_destroy(rt->pool);
    wf__signals_destroy(rt);
    free(rt);
}

/* WF_STATS=1 in the environment (read at the end of wf_run): print the
 * workers' and the poller's counters on stderr, once the threads have
 * stopped (each counter is its owner's; the joins order them before us).
 * How busy each worker was, how it found work, and how often the poller
 * had to wake: the first look at a program that runs slower than it
 * should. */
static void print_stats(wf__runtime *rt)
{
    const char *v = getenv("WF_STATS");
    if (!v || !*v || !strcmp(v, "0"))
        return;
    fprintf(stderr, "weft stats: %u workers\n", (unsigned)rt->nworkers);
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        const wf__worker_stats *st = &rt->workers[i].stats;
        fprintf(stderr,
                "  wf-worker-%u: runs %llu, steals %llu (%llu from stalled victims), grace passes %llu, "
                "parks %llu, inject pops %llu, timer fires %llu, epoll harvests %llu (%llu tasks)\n",
                (unsigned)i, (unsigned long long)st->runs, (unsigned long long)st->steals,
                (unsigned long long)st->stalled_steals, (unsigned long long)st->grace_passes,
                (unsigned long long)st->parks, (unsigned long long)st->inject_pops,
                (unsigned long long)st->timer_fires, (unsigned long long)st->harvests,
                (unsigned long long)st->harvested);
    }
    const wf__poller_stats *ps = &rt->poller.stats;
    fprintf(stderr, "  wf-poller: wake-ups %llu, of which by the epoll watch %llu; fd events dispatched %llu\n",
            (unsigned long long)ps->rounds, (unsigned long long)ps->watches, (unsigned long long)ps->events);
}

static void stop_threads(wf__runtime *rt)
{
    /* Step 12. */
    wf__signals_stop(rt);
    atomic_store_explicit(&rt->stopping, 1, memory_order_seq_cst);
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        wf__worker *w = &rt->workers[i];
        if (!w->started)
            continue;
        /* Not a wake-up reason (1 or 2): the worker is still on the idle
         * stack, and park() takes itself off it (see there). */
        atomic_fetch_or_explicit(&w->futex, WF__WAKE_STOP, memory_order_release);
        wf__futex_wake(&w->futex, 1);
    }
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        if (rt->workers[i].started)
            pthread_join(rt->workers[i].thread, NULL);
        rt->workers[i].started = false;
    }
    wf__poller_stop(&rt->poller);
    wf__pool_stop(rt->pool);
}

int wf_run(const wf_config_t *cfg_in, wf_fn main_fn, void *arg, int *status, void **result)
{
    /* Step 1. */
    if (!main_fn)
        return -EINVAL;
    if (wf__tls_runtime())
        return -EDEADLK; /* inside a runtime: it would wait on its own thread */
    wf_config_t cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        wf_config_init(&cfg);
    if (cfg.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.workers = n > 0 ? (unsigned)(n > MAX_WORKERS ? MAX_WORKERS : n) : 1;
    }
    if (cfg.workers > MAX_WORKERS)
        return -EINVAL;
    if (cfg.stack_size == 0)
        cfg.stack_size = WF__STACK_DEFAULT;
    if (cfg.stack_size < WF__STACK_MIN || cfg.stack_size > WF__STACK_MAX)
        return -EINVAL;
    if (cfg.guard_stacks < -1)
        return -EINVAL;
    if (cfg.pool_user_threads > WF__POOL_LIMIT_MAX || cfg.pool_file_threads > WF__POOL_LIMIT_MAX ||
        cfg.pool_dns_threads > WF__POOL_LIMIT_MAX)
        return -EINVAL;

    /* Step 2: the process pool's zygote (once per process). */
    if (cfg.procpool) {
        int e = wf_procpool_init();
        if (e < 0)
            return e;
    }

    /* Step 3. */
    int err = -ENOMEM;
    wf__runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->cfg = cfg;
    rt->nworkers = cfg.workers;
    atomic_init(&rt->ext_spawned, 0);
    atomic_init(&rt->sealed, 0);
    atomic_init(&rt->closing, 0);
    atomic_init(&rt->stopping, 0);
    atomic_init(&rt->main_done, 0);
    atomic_init(&rt->quiesced, 0);
    wf__inject_init(&rt->inject);
    if (wf__idle_init(&rt->idle, rt->nworkers) < 0) {
        free(rt);
        return -ENOMEM;
    }
    if (wf__handles_init(&rt->handles, wf__task_free_record) < 0) {
        wf__idle_destroy(&rt->idle);
        free(rt);
        return -ENOMEM;
    }
    if ((err = wf__pool_create(rt, &cfg)) < 0 || (err = wf__signals_create(rt)) < 0) {
        wf__handles_destroy(&rt->handles);
        wf__idle_destroy(&rt->idle);
        wf__pool_destroy(rt->pool);
        free(rt);
        return err;
    }
    /* Step 4 (before anything can fail, the poller is made destroyable). */
    err = wf__poller_init(&rt->poller, rt);
    if (err < 0 || (err = wf__stack_pool_init(&rt->stacks, cfg.stack_size, cfg.guard_stacks)) < 0) {
        wf__poller_destroy(&rt->poller);
        wf__handles_destroy(&rt->handles);
        wf__idle_destroy(&rt->idle);
        wf__pool_destroy(rt->pool);
        wf__signals_destroy(rt);
        free(rt);
        return err;
    }

    /* Step 5. */
    rt->workers = aligned_alloc(WF_CACHELINE, rt->nworkers * sizeof *rt->workers);
    if (!rt->workers) {
        destroy(rt);
        return -ENOMEM;
    }
    memset(rt->workers, 0, rt->nworkers * sizeof *rt->workers);
    int64_t now = wf_now();
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        wf__worker *w = &rt->workers[i];
        wf__runq_init(&w->runq);
        w->rt = rt;
        w->index = i;
        w->rng = 0x9E3779B97F4A7C15ull * (i + 1);
        w->fair_in = 61; /* sched.c's FAIRNESS_TICKS and TIMER_TICKS */
        w->timer_in = 16;
        wf__timers_init(&w->timers, rt, now);
        wf__inject_init(&w->pinned);
        atomic_init(&w->futex, 0);
        atomic_init(&w->parked, false);
        atomic_init(&w->ticks, 0);
        atomic_init(&w->spawned, 0);
        atomic_init(&w->retired, 0);
    }

    /* Step 6. */
    if ((err = wf__overflow_install()) < 0) {
        destroy(rt);
        return err;
    }

    /* Step 7. */
    main_box mb = {.rt = rt, .fn = main_fn, .arg = arg, .status = 0, .result = NULL};
    wf_spawn_opts_t mo = WF_SPAWN_OPTS_INIT;
    mo.name = "main";
    wf_task_t main_id;
    wf__tls_set(rt, NULL); /* wf_spawn needs to know the runtime */
    /* wf_run's reference to main is a pin: main's own wf_detach(wf_self())
     * or a join by another task finds no handle to consume (-EINVAL). */
    err = wf__spawn_refs(&main_id, &rt->main_task, main_trampoline, &mb, &mo, WF__REF_PIN);
    wf__tls_set(NULL, NULL);
    if (err < 0) {
        wf__overflow_uninstall();
        destroy(rt);
        return err;
    }

    /* Step 8: the poller inherits this thread's mask (every asynchronous
     * signal blocked from here on). */
    sigset_t wmask;
    wf__signals_prepare(rt, &wmask);
    err = wf__poller_start(&rt->poller);
    /* Step 9: the workers are born with the caller's mask. */
    pthread_attr_t wattr;
    if (err == 0 && (err = -pthread_attr_init(&wattr)) == 0) {
        err = -pthread_attr_setsigmask_np(&wattr, &wmask);
        for (uint32_t i = 0; err == 0 && i < rt->nworkers; i++) {
            wf__worker *w = &rt->workers[i];
            int e = pthread_create(&w->thread, &wattr, wf__worker_main, w);
            if (e) {
                err = -e;
                break;
            }
            w->started = true;
        }
        pthread_attr_destroy(&wattr);
    }
    if (err == 0)
        err = wf__signals_start_watcher(rt);

    if (err == 0) {
        /* The program runs. */
        while (atomic_load_explicit(&rt->main_done, memory_order_acquire) == 0)
            wf__futex_wait(&rt->main_done, 0, -1);
    } else {
        /* A thread could not start: cancel main too and wind down. */
        atomic_fetch_add_explicit(&rt->main_task->cancel, 1, memory_order_seq_cst);
        mb.status = -ECANCELED;
        if (err == -EAGAIN || err == -ENOMEM)
            err = -EAGAIN;
        if (!rt->workers[0].started) {
            /* No worker to run anything: nothing is alive but main. */
            stop_threads(rt);
            wf__overflow_uninstall();
            destroy(rt);
            return err;
        }
    }
    quiesce(rt);
    stop_threads(rt);
    print_stats(rt);

    /* Step 13. */
    wf__task_unpin(rt->main_task);
    wf__overflow_uninstall();
    destroy(rt);
    if (err)
        return err;
    if (status)
        *status = mb.status;
    if (result)
        *result = mb.result;
    return 0;
}
