/* pool.c - the thread pool's crews: queues of jobs and the runtime-owned
 * threads that run them (the model is in pool.h, the job protocol in
 * job.h). */
#include "pool.h"
#include "runtime.h"
#include "sigs.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/time.h>

/* --- names: wf-pool-N, the lowest N free ------------------------------ */

static unsigned name_get(wf__pool *p)
{
    unsigned n = UINT32_MAX;
    wf__spin_lock(&p->names_lock);
    for (unsigned w = 0; w < p->names_words && n == UINT32_MAX; w++) {
        if (~p->names[w]) {
            unsigned b = (unsigned)__builtin_ctzll(~p->names[w]);
            p->names[w] |= 1ull << b;
            n = w * 64 + b;
        }
    }
    wf__spin_unlock(&p->names_lock);
    return n; /* never UINT32_MAX: there are as many names as threads may live */
}

static void name_put(wf__pool *p, unsigned n)
{
    wf__spin_lock(&p->names_lock);
    p->names[n / 64] &= ~(1ull << (n % 64));
    wf__spin_unlock(&p->names_lock);
}

/* --- the threads -------------------------------------------------------- */

static void wake_thread(wf__pool_thread *t)
{
    /* acq_rel: release orders the submitter's queue push (also published
     * by the crew's lock, which the thread takes next) before the thread
     * sees WOKEN. Only a thread that was asleep, or about to be (SLEEP),
     * needs the system call: see THE WAKE-UP WORD in pool.h. */
    if (atomic_exchange_explicit(&t->word, WF__PT_WOKEN, memory_order_acq_rel) == WF__PT_SLEEP)
        wf__futex_wake(&t->word, 1);
}

/* c->lock held on entry and on return. The thread has nothing to do: wait
 * for a submitter to wake it. Returns false if it stayed idle for the
 * crew's idle time and has been taken off the idle list (it must exit). */
static bool idle_wait(wf__crew *c, wf__pool_thread *t)
{
    /* relaxed: nobody reads the word until the thread is on the idle list,
     * which the crew's lock publishes. */
    atomic_store_explicit(&t->word, WF__PT_SPIN, memory_order_relaxed);
    wf__list_push_front(&c->idle, &t->idle_link);
    c->nidle++;
    int64_t idle_ns = c->pool->idle_ns;
    bool spin = c->spinning < WF__POOL_SPINNERS;
    if (spin)
        c->spinning++;
    wf__spin_unlock(&c->lock);

    int64_t now = wf_now();
    int64_t spin_until = spin ? now + WF__POOL_SPIN_NS : now;
    int64_t idle_until = idle_ns < 0 ? INT64_MAX : now + idle_ns;
    bool woken = false;
    /* Spin first: a call that comes now costs no futex call on either side.
     * acquire: pairs with wake_thread's exchange. */
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&t->word, memory_order_acquire) == WF__PT_WOKEN) {
            woken = true;
            break;
        }
        wf__cpu_relax();
        if ((i & 63) == 63) {
            int64_t t1 = wf_now();
            if (t1 >= spin_until)
                break;
            /* Yield at each look after the first microseconds: the
             * submitter may be waiting for this CPU (job.h, SPINNING). */
            if (t1 - now >= WF__JOB_SPIN_YIELD_NS)
                sched_yield();
        }
    }
    if (spin) {
        wf__spin_lock(&c->lock);
        c->spinning--;
        wf__spin_unlock(&c->lock);
    }
    while (!woken) {
        /* SPIN -> SLEEP; a word already SLEEP (after a timed-out or spurious
         * futex return) stays so. acq_rel/acquire: a WOKEN read here pairs
         * with wake_thread's release. */
        uint32_t w = WF__PT_SPIN;
        if (!atomic_compare_exchange_strong_explicit(&t->word, &w, WF__PT_SLEEP, memory_order_acq_rel,
                                                     memory_order_acquire) &&
            w == WF__PT_WOKEN) {
            woken = true;
            break;
        }
        int64_t left = -1;
        if (idle_until != INT64_MAX) {
            left = idle_until - wf_now();
            if (left <= 0)
                break;
        }
        wf__futex_wait(&t->word, WF__PT_SLEEP, left);
        if (atomic_load_explicit(&t->word, memory_order_acquire) == WF__PT_WOKEN)
            woken = true;
    }
    wf__spin_lock(&c->lock);
    /* Off the list: a submitter popped us (its wake-up, if not seen yet,
     * arrives later as a harmless spurious one), or the shutdown did. */
    if (woken || !wf__link_linked(&t->idle_link))
        return true;
    wf__list_unlink(&t->idle_link);
    c->nidle--;
    return false;
}

/* c->lock held; releases it. The thread leaves for good after idling too
 * long: it becomes the crew's zombie and joins the previous one. */
static void retire(wf__crew *c, wf__pool_thread *t)
{
    c->nthreads--;
    wf__list_unlink(&t->all_link);
    wf__pool_thread *z = c->zombie;
    c->zombie = t;
    wf__spin_unlock(&c->lock);
    if (z) {
        pthread_join(z->thread, NULL);
        name_put(c->pool, z->name);
        free(z);
    }
}

static void *thread_main(void *arg)
{
    wf__pool_thread *t = arg;
    wf__crew *c = t->crew;
    /* "wf-pool-4095" at most: within the kernel's 15-character comm.
     * Failure only loses the name in ps and debuggers. */
    char name[16];
    snprintf(name, sizeof name, "wf-pool-%u", t->name);
    (void)pthread_setname_np(pthread_self(), name);

    wf__spin_lock(&c->lock);
    for (;;) {
        wf__link *l = wf__list_pop_front(&c->queue);
        if (l) {
            wf__job *j = wf__container_of(l, wf__job, link);
            c->queued--;
            /* relaxed: under the lock, which orders the peak with it. */
            unsigned running = atomic_fetch_add_explicit(&c->running, 1, memory_order_relaxed) + 1;
            if (running > c->peak)
                c->peak = running;
            /* relaxed: informational; the fiber reads only DONE, which
             * wf__job_complete publishes under the job's lock. */
            atomic_store_explicit(&j->state, WF__JOB_RUNNING, memory_order_relaxed);
            wf__spin_unlock(&c->lock);
            j->run(j);
            /* release: before the completion that lets the caller look. */
            atomic_fetch_sub_explicit(&c->running, 1, memory_order_release);
            wf__job_complete(j);
            wf__spin_lock(&c->lock);
            continue;
        }
        if (c->closing)
            break;
        if (!idle_wait(c, t)) {
            retire(c, t);
            return NULL;
        }
    }
    wf__spin_unlock(&c->lock);
    return NULL;
}

/* Start a thread for crew c, counted in c->nthreads by the caller. `j`
 * is the job whose submission asked for it. Returns 0, or -EAGAIN when the
 * thread could not be started and no other thread is alive to run j (then
 * j is no longer queued). Other jobs left stranded that way fail with
 * -EAGAIN through their waiters. */
static int start_thread(wf__crew *c, wf__job *j)
{
    wf__pool *p = c->pool;
    wf__pool_thread *t = aligned_alloc(WF_CACHELINE, sizeof *t);
    int e = ENOMEM;
    if (t) {
        memset(t, 0, sizeof *t);
        t->crew = c;
        t->name = name_get(p);
        wf__list_init(&t->idle_link);
        atomic_init(&t->word, WF__PT_SPIN);
        wf__spin_lock(&c->lock);
        wf__list_push_back(&c->all, &t->all_link);
        wf__spin_unlock(&c->lock);
        /* Born with every asynchronous signal blocked (sigs.h): a signal
         * that a fiber waits for through signalfd must never be delivered
         * to a pool thread, and a blocking call is better left
         * uninterrupted by the program's handlers. */
        sigset_t all;
        wf__sigset_async(&all);
        pthread_attr_t attr;
        if ((e = pthread_attr_init(&attr)) == 0) {
            if ((e = pthread_attr_setsigmask_np(&attr, &all)) == 0)
                e = pthread_create(&t->thread, &attr, thread_main, t);
            pthread_attr_destroy(&attr);
        }
        if (e == 0)
            return 0;
    }
    /* Failed: nothing was started. */
    wf__link stranded;
    wf__list_init(&stranded);
    int ret = 0;
    wf__spin_lock(&c->lock);
    if (t)
        wf__list_unlink(&t->all_link);
    c->nthreads--;
    if (c->nthreads == 0) {
        /* No thread will ever take what is queued: our job is taken back
         * (the caller reports -EAGAIN), the others fail through their
         * waiters. */
        if (wf__link_linked(&j->link)) {
            wf__list_unlink(&j->link);
            c->queued--;
            ret = -EAGAIN;
        }
        wf__list_splice_back(&stranded, &c->queue);
        c->queued = 0;
    }
    wf__spin_unlock(&c->lock);
    if (t) {
        name_put(p, t->name);
        free(t);
    }
    wf__link *l;
    while ((l = wf__list_pop_front(&stranded)) != NULL) {
        wf__job *s = wf__container_of(l, wf__job, link);
        s->err = -EAGAIN;
        wf__job_complete(s);
    }
    (void)e;
    return ret;
}

/* --- the crews' interface (pool.h) --------------------------------------- */

int wf__crew_submit(wf__crew *c, wf__job *j)
{
    j->crew = c;
    wf__pool_thread *wake = NULL;
    bool start = false;
    wf__spin_lock(&c->lock);
    if (c->closing) {
        wf__spin_unlock(&c->lock);
        return -ESHUTDOWN;
    }
    /* relaxed: published by the crew's lock. */
    atomic_store_explicit(&j->state, WF__JOB_QUEUED, memory_order_relaxed);
    wf__list_push_back(&c->queue, &j->link);
    c->queued++;
    if (c->nidle) {
        wake = wf__container_of(wf__list_pop_front(&c->idle), wf__pool_thread, idle_link);
        c->nidle--;
    } else if (c->nthreads < c->limit) {
        c->nthreads++;
        start = true;
    }
    wf__spin_unlock(&c->lock);
    if (wake)
        wake_thread(wake);
    if (start)
        return start_thread(c, j);
    return 0;
}

bool wf__crew_withdraw(wf__crew *c, wf__job *j)
{
    bool withdrawn = false;
    wf__spin_lock(&c->lock);
    if (wf__link_linked(&j->link)) {
        wf__list_unlink(&j->link);
        c->queued--;
        withdrawn = true;
    }
    wf__spin_unlock(&c->lock);
    return withdrawn;
}

wf__crew *wf__pool_crew(wf__pool *p, int cls)
{
    if (cls < 0 || cls > WF__CREW_DNS)
        return NULL;
    return &p->crews[cls];
}

/* --- start and stop ------------------------------------------------------- */

static unsigned limit_or(unsigned v, unsigned dflt)
{
    return v ? v : dflt;
}

int wf__pool_create(wf__runtime *rt, const wf_config_t *cfg)
{
    wf__pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->rt = rt;
    p->idle_ns = cfg->pool_idle_ns == 0 ? WF__POOL_IDLE_DEFAULT_NS : cfg->pool_idle_ns;
    unsigned limits[WF__CREWS] = {
        [WF__CREW_USER] = limit_or(cfg->pool_user_threads, WF__POOL_USER_DEFAULT),
        [WF__CREW_FILE] = limit_or(cfg->pool_file_threads, WF__POOL_FILE_DEFAULT),
        [WF__CREW_DNS] = limit_or(cfg->pool_dns_threads, WF__POOL_DNS_DEFAULT),
        [WF__CREW_CHILD] = WF__POOL_CHILD_LIMIT,
    };
    unsigned total = 0;
    for (unsigned i = 0; i < WF__CREWS; i++) {
        wf__crew *c = &p->crews[i];
        if (limits[i] > WF__POOL_LIMIT_MAX) {
            free(p);
            return -EINVAL;
        }
        wf__spin_init(&c->lock);
        atomic_init(&c->running, 0);
        wf__list_init(&c->queue);
        wf__list_init(&c->idle);
        wf__list_init(&c->all);
        c->limit = limits[i];
        c->pool = p;
        c->index = i;
        total += limits[i];
    }
    /* Every thread that may live at once has a name, and so does each
     * crew's zombie (exited, its name held until it is joined). */
    total += WF__CREWS;
    p->names_words = (total + 63) / 64;
    p->names = calloc(p->names_words, sizeof *p->names);
    if (!p->names) {
        free(p);
        return -ENOMEM;
    }
    wf__spin_init(&p->names_lock);
    wf__spin_init(&p->procs_lock);
    wf__list_init(&p->procs);
    wf__list_init(&p->procpools);
    rt->pool = p;
    return 0;
}

static void join_and_free(wf__pool *p, wf__pool_thread *t)
{
    pthread_join(t->thread, NULL);
    name_put(p, t->name);
    free(t);
}

void wf__pool_stop(wf__pool *p)
{
    if (!p)
        return;
    /* Close every crew and wake its idle threads; each leaves its loop
     * once its queue is empty (it is: see SHUTDOWN in pool.h). */
    for (unsigned i = 0; i < WF__CREWS; i++) {
        wf__crew *c = &p->crews[i];
        wf__spin_lock(&c->lock);
        c->closing = true;
        wf__link *l;
        while ((l = wf__list_pop_front(&c->idle)) != NULL) {
            c->nidle--;
            wake_thread(wf__container_of(l, wf__pool_thread, idle_link));
        }
        wf__spin_unlock(&c->lock);
    }
    /* Once closed, no thread moves between the lists any more: a thread
     * that was retiring is the zombie already. Join them all; this waits
     * for the calls still running. */
    for (unsigned i = 0; i < WF__CREWS; i++) {
        wf__crew *c = &p->crews[i];
        wf__link *l;
        while ((l = wf__list_pop_front(&c->all)) != NULL)
            join_and_free(p, wf__container_of(l, wf__pool_thread, all_link));
        if (c->zombie)
            join_and_free(p, c->zombie);
        c->zombie = NULL;
        c->nthreads = 0;
        wf__assert(wf__list_empty(&c->queue), "no job is queued once every task has ended");
    }
}

void wf__pool_destroy(wf__pool *p)
{
    if (!p)
        return;
    free(p->names);
    free(p);
}
