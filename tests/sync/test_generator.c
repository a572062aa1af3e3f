/* test_generator.c - generators: values in order, the end and the
 * generator's status, a body that starts only at the first request, close
 * half-way (cleanup runs, every value is freed exactly once), close before
 * the start, a body that waits as its consumer (deadline and cancellation
 * reach its waits; a second driver is refused), misuse errors, the body
 * running in its consumer's task and on its worker, drivers taking turns, a
 * reader -> cleaner -> tokenizer pipeline in bounded memory, and a stress of
 * many pipelines on all workers whose bodies yield the CPU and sleep (so a
 * task moves between workers while on a generator's stack), closed at random
 * points. Values are heap blocks where ownership matters, so ASan's leak
 * check catches a lost one and a double free is caught too. */
#include "sync_test.h"

#define ITEM(i) ((void *)(uintptr_t)(i))
#define ID(p) ((long)(uintptr_t)(p))

/* --- a counting generator ------------------------------------------------- */

typedef struct {
    long n;     /* values to yield */
    int status; /* returned at the end */
    _Atomic int started, cleaned;
    _Atomic long yielded_ok;
    int64_t delay; /* before each value */
    _Atomic int worker_mismatch;
} count_arg;

static int count_up(wf_gen_t *g, void *arg)
{
    count_arg *c = arg;
    atomic_store(&c->started, 1);
    for (long i = 0; i < c->n; i++) {
        if (c->delay)
            wf_sleep(c->delay);
        int e = wf_gen_yield(g, ITEM(i));
        if (e < 0) {
            atomic_store(&c->cleaned, 1);
            return e;
        }
        atomic_fetch_add(&c->yielded_ok, 1);
    }
    atomic_store(&c->cleaned, 1);
    return c->status;
}

static int m_basics(void *arg, void **res)
{
    count_arg c;
    memset(&c, 0, sizeof c);
    c.n = 10;
    wf_gen_t *g;
    CHECK_EQ(wf_gen_create(&g, count_up, &c, NULL), 0);
    /* Lazy: the body has not started. */
    for (int k = 0; k < 50; k++)
        wf_yield();
    CHECK_EQ(atomic_load(&c.started), 0);
    void *v;
    for (long i = 0; i < 10; i++) {
        CHECK_EQ(wf_gen_next(g, &v), 1);
        CHECK_EQ(ID(v), i);
    }
    CHECK_EQ(wf_gen_next(g, &v), 0);
    CHECK_EQ(wf_gen_next(g, &v), 0); /* and again */
    int st = -1;
    CHECK_EQ(wf_gen_close(g, &st), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(atomic_load(&c.yielded_ok), 10);

    /* An error status comes out of next at the end, every time. */
    memset(&c, 0, sizeof c);
    c.n = 2;
    c.status = -EIO;
    CHECK_EQ(wf_gen_create(&g, count_up, &c, NULL), 0);
    CHECK_EQ(wf_gen_next(g, &v), 1);
    CHECK_EQ(wf_gen_next(g, &v), 1);
    CHECK_EQ(wf_gen_next(g, &v), -EIO);
    CHECK_EQ(wf_gen_next(g, &v), -EIO);
    CHECK_EQ(wf_gen_close(g, &st), 0);
    CHECK_EQ(st, -EIO);

    /* A positive status would read as "a value": it is reported as -ERANGE. */
    memset(&c, 0, sizeof c);
    c.n = 1;
    c.status = 5;
    CHECK_EQ(wf_gen_create(&g, count_up, &c, NULL), 0);
    CHECK_EQ(wf_gen_next(g, &v), 1);
    CHECK_EQ(wf_gen_next(g, &v), -ERANGE);
    CHECK_EQ(wf_gen_close(g, &st), 0);
    CHECK_EQ(st, -ERANGE);

    /* Empty. */
    memset(&c, 0, sizeof c);
    CHECK_EQ(wf_gen_create(&g, count_up, &c, NULL), 0);
    CHECK_EQ(wf_gen_next(g, &v), 0);
    CHECK_EQ(wf_gen_close(g, NULL), 0);

    /* Errors. */
    CHECK_EQ(wf_gen_create(NULL, count_up, &c, NULL), -EINVAL);
    CHECK_EQ(wf_gen_create(&g, NULL, &c, NULL), -EINVAL);
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.stack_size = 1;
    CHECK_EQ(wf_gen_create(&g, count_up, &c, &o), -EINVAL);
    CHECK_EQ(wf_gen_next(NULL, &v), -EINVAL);
    CHECK_EQ(wf_gen_yield(NULL, NULL), -EINVAL);
    CHECK_EQ(wf_gen_close(NULL, NULL), -EINVAL);
    return 0;
}

static void test_basics(void **state)
{
    run_main(2, m_basics, NULL);
    wf_gen_t *g;
    assert_int_equal(wf_gen_create(&g, count_up, NULL, NULL), -EPERM); /* no runtime */
}

/* --- close half-way: cleanup runs, nothing leaks ----------------------------- */

typedef struct {
    _Atomic int cleaned;
    _Atomic long made, freed_by_gen;
} owning_state;

/* Yields heap blocks (each the consumer's once yielded); after the close,
 * a further yield delivers nothing (-EPIPE) and the block stays ours. */
static int owning_gen(wf_gen_t *g, void *arg)
{
    owning_state *s = arg;
    char *scratch = malloc(64); /* a resource its cleanup must free */
    for (long i = 0;; i++) {
        long *v = malloc(sizeof *v);
        *v = i;
        atomic_fetch_add(&s->made, 1);
        if (wf_gen_yield(g, v) < 0) { /* -ECANCELED: v was delivered */
            long *extra = malloc(sizeof *extra);
            if (wf_gen_yield(g, extra) == -EPIPE) { /* not delivered */
                free(extra);
                atomic_fetch_add(&s->freed_by_gen, 1);
            }
            break;
        }
    }
    free(scratch);
    atomic_store(&s->cleaned, 1);
    return -ECANCELED;
}

static int m_close_halfway(void *arg, void **res)
{
    for (int taken = 0; taken < 6; taken++) {
        owning_state s;
        memset(&s, 0, sizeof s);
        wf_gen_t *g;
        CHECK_EQ(wf_gen_create(&g, owning_gen, &s, NULL), 0);
        void *v;
        for (long i = 0; i < taken; i++) {
            CHECK_EQ(wf_gen_next(g, &v), 1);
            CHECK_EQ(*(long *)v, i);
            free(v);
        }
        int st = 0;
        CHECK_EQ(wf_gen_close(g, &st), 0);
        CHECK_EQ(st, -ECANCELED);
        if (taken == 0) {
            CHECK_EQ(atomic_load(&s.made), 0); /* never started */
        } else {
            CHECK_EQ(atomic_load(&s.cleaned), 1);
            CHECK_EQ(atomic_load(&s.made), taken); /* each one the consumer freed */
            CHECK_EQ(atomic_load(&s.freed_by_gen), 1);
        }
    }
    return 0;
}

static void test_close_halfway(void **state)
{
    run_main(2, m_close_halfway, NULL);
    run_main(STRESS_WORKERS, m_close_halfway, NULL);
}

/* Close before the body ever ran: the body never runs; opts.drop gets arg. */
static void drop_arg(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

static int never_body(wf_gen_t *g, void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 100);
    return 0;
}

static int m_close_unstarted(void *arg, void **res)
{
    for (int how = 0; how < 2; how++) {
        _Atomic int flag = 0;
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.drop = drop_arg;
        o.name = "unstarted";
        wf_gen_t *g;
        CHECK_EQ(wf_gen_create(&g, never_body, &flag, &o), 0);
        if (how)
            for (int k = 0; k < 100; k++) /* let its task start and wait */
                wf_yield();
        int st = 0;
        CHECK_EQ(wf_gen_close(g, &st), 0);
        CHECK_EQ(st, -ECANCELED);
        CHECK_EQ(atomic_load(&flag), 1);
    }
    return 0;
}

static void test_close_unstarted(void **state)
{
    run_main(2, m_close_unstarted, NULL);
}

/* A close is not a cancellation of the task running the body: the yield's
 * -ECANCELED counts no request, and the cleanup may wait (here: sleep and
 * take a queue item) without failing. Only a cancellation of the closer
 * fails the cleanup's waits. */
typedef struct {
    int yield_r, cancelling, sleep_r, get_r;
    wf_queue_t *q;
} cleanup_probe;

static int waiting_cleanup(wf_gen_t *g, void *arg)
{
    cleanup_probe *p = arg;
    p->yield_r = wf_gen_yield(g, ITEM(1));
    p->cancelling = wf_cancelling(wf_self());
    p->sleep_r = wf_sleep(WF_NSEC_PER_MSEC);
    void *v;
    p->get_r = wf_queue_get_until(p->q, &v, wf_deadline_in(LONG_NS));
    return p->yield_r;
}

static int m_close_not_cancel(void *arg, void **res)
{
    cleanup_probe p = {0};
    CHECK_EQ(wf_queue_create(&p.q, 1, WF_QUEUE_FIFO, NULL), 0);
    CHECK_EQ(wf_queue_put(p.q, ITEM(7)), 0);
    wf_gen_t *g;
    CHECK_EQ(wf_gen_create(&g, waiting_cleanup, &p, NULL), 0);
    void *v;
    CHECK_EQ(wf_gen_next(g, &v), 1);
    int st = 0;
    CHECK_EQ(wf_gen_close(g, &st), 0);
    CHECK_EQ(p.yield_r, -ECANCELED);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(p.cancelling, 0);
    CHECK_EQ(p.sleep_r, 0);
    CHECK_EQ(p.get_r, 0);
    CHECK_EQ(wf_cancelling(wf_self()), 0);
    CHECK_EQ(wf_sleep(0), 0); /* the closer is not cancelled either */

    /* A closer that is itself cancelled: the cleanup's waits fail. */
    CHECK_EQ(wf_queue_put(p.q, ITEM(8)), 0);
    CHECK_EQ(wf_gen_create(&g, waiting_cleanup, &p, NULL), 0);
    CHECK_EQ(wf_gen_next(g, &v), 1);
    CHECK_EQ(wf_cancel(wf_self()), 0);
    CHECK_EQ(wf_gen_close(g, &st), 0);
    CHECK_EQ(wf_uncancel(), 0);
    CHECK_EQ(p.cancelling, 1);
    CHECK_EQ(p.sleep_r, -ECANCELED);
    CHECK_EQ(p.get_r, 0); /* an item is there: a get need not wait */
    CHECK_EQ(wf_queue_destroy(p.q, NULL, NULL, NULL), 0);
    return 0;
}

static void test_close_not_cancel(void **state)
{
    run_main(2, m_close_not_cancel, NULL);
}

/* --- a body that waits, as its consumer ---------------------------------------- */

typedef struct {
    _Atomic long timeouts;
    _Atomic int cancelled;
    wf_task_t consumer; /* wf_self() seen in the body */
    int64_t delay;
} waiting_arg;

/* Yields 0, 1, 2, ... after sleeping `delay` each time. A sleep cut by the
 * consumer's deadline yields -1 instead and goes on; a cancelled one ends
 * the generator with -ECANCELED. */
static int sleepy(wf_gen_t *g, void *arg)
{
    waiting_arg *w = arg;
    for (long i = 0;;) {
        w->consumer = wf_self();
        int e = wf_sleep(w->delay);
        if (e == -ECANCELED) {
            atomic_store(&w->cancelled, 1);
            return e;
        }
        void *v = ITEM(i);
        if (e == -ETIMEDOUT) {
            atomic_fetch_add(&w->timeouts, 1);
            v = ITEM(-1);
        } else if (e) {
            return -EIO;
        } else {
            i++;
        }
        if (wf_gen_yield(g, v) < 0)
            return -ECANCELED;
    }
}

static int next_in_task(void *arg, void **res)
{
    void *v;
    int r = wf_gen_next(arg, &v);
    *res = v;
    return r == 1 ? 0 : r;
}

static int m_waits(void *arg, void **res)
{
    waiting_arg w;
    memset(&w, 0, sizeof w);
    w.delay = 2 * WF_NSEC_PER_MSEC;
    wf_gen_t *g;
    CHECK_EQ(wf_gen_create(&g, sleepy, &w, NULL), 0);
    void *v;
    CHECK_EQ(wf_gen_next(g, &v), 1);
    CHECK_EQ(ID(v), 0);
    CHECK(w.consumer == wf_self()); /* the body ran as us */
    /* A deadline already past: the body's sleep fails with -ETIMEDOUT. */
    CHECK_EQ(wf_gen_next_until(g, &v, 0), 1);
    CHECK_EQ(ID(v), -1);
    CHECK_EQ(atomic_load(&w.timeouts), 1);
    /* One a little ahead: the body's 2 ms sleep is cut. */
    CHECK_EQ(wf_gen_next_until(g, &v, wf_deadline_in(WF_NSEC_PER_USEC)), 1);
    CHECK_EQ(ID(v), -1);
    /* The deadline was the body's only: our own waits are not cut. */
    CHECK_EQ(wf_sleep(WF_NSEC_PER_MSEC), 0);
    /* A generous one: the value comes. */
    CHECK_EQ(wf_gen_next_until(g, &v, wf_deadline_in(10 * WF_NSEC_PER_SEC)), 1);
    CHECK_EQ(ID(v), 1);
    /* Our own timeout scope reaches into the body too. */
    wf_timeout_t tm;
    CHECK_EQ(wf_timeout_enter(&tm, 0), 0);
    CHECK_EQ(wf_gen_next(g, &v), 1);
    CHECK_EQ(ID(v), -1);
    CHECK_EQ(wf_timeout_leave(&tm), 1);

    /* Another task drives it and waits in the body's sleep (made long):
     * meanwhile we are refused; then that task is cancelled, which fails
     * the body's sleep: the generator ends with -ECANCELED. */
    w.delay = 3600 * WF_NSEC_PER_SEC;
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, next_in_task, g, NULL), 0);
    CHECK(wait_parked(t));
    CHECK_EQ(wf_gen_next(g, &v), -EBUSY);
    CHECK_EQ(wf_gen_close(g, NULL), -EBUSY);
    CHECK_EQ(wf_cancel(t), 0);
    int st = 0;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK(w.consumer == t); /* it ran as that task */
    CHECK_EQ(atomic_load(&w.cancelled), 1);
    CHECK_EQ(wf_gen_next(g, &v), -ECANCELED); /* ended: every later call */
    CHECK_EQ(wf_gen_close(g, &st), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_gen_next_until(NULL, &v, 0), -EINVAL);
    return 0;
}

static void test_waits(void **state)
{
    run_main(2, m_waits, NULL);
}

/* --- misuse ----------------------------------------------------------------------- */

static int self_user(wf_gen_t *g, void *arg)
{
    void *v;
    int a = wf_gen_next(g, &v);
    int b = wf_gen_close(g, NULL);
    wf_gen_t *other = arg;
    int c = wf_gen_yield(other, NULL); /* not its own generator */
    if (a != -EDEADLK || b != -EDEADLK || c != -EPERM)
        return -1;
    return wf_gen_yield(g, ITEM(7)) == 0 ? 0 : -2;
}

/* A body that yields inside its own timeout scope is refused; one that
 * returns with a scope open has it left for it. */
static int scoped_body(wf_gen_t *g, void *arg)
{
    wf_timeout_t tm;
    if (wf_timeout_enter(&tm, WF_FOREVER))
        return -1;
    if (wf_gen_yield(g, ITEM(1)) != -EBUSY)
        return -2;
    if (wf_timeout_leave(&tm) != 0)
        return -3;
    if (wf_gen_yield(g, ITEM(2)))
        return -4;
    return wf_timeout_enter(&tm, WF_FOREVER) ? -5 : 0; /* left open */
}

static int plain_task_yields(void *arg, void **res)
{
    return wf_gen_yield(arg, NULL) == -EPERM ? 0 : -1;
}

static int m_misuse(void *arg, void **res)
{
    count_arg c;
    memset(&c, 0, sizeof c);
    c.n = 3;
    wf_gen_t *other, *g;
    CHECK_EQ(wf_gen_create(&other, count_up, &c, NULL), 0);
    CHECK_EQ(wf_gen_create(&g, self_user, other, NULL), 0);
    void *v;
    CHECK_EQ(wf_gen_next(g, &v), 1);
    CHECK_EQ(ID(v), 7);
    CHECK_EQ(wf_gen_next(g, &v), 0);
    CHECK_EQ(wf_gen_yield(g, NULL), -EPERM); /* the consumer cannot yield */
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, plain_task_yields, g, NULL), 0);
    join_n(&t, 1);
    int st = -1;
    CHECK_EQ(wf_gen_close(g, &st), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(wf_gen_close(other, &st), 0);
    CHECK_EQ(st, -ECANCELED);

    CHECK_EQ(wf_gen_create(&g, scoped_body, NULL, NULL), 0);
    CHECK_EQ(wf_gen_next(g, &v), 1);
    CHECK_EQ(ID(v), 2);
    CHECK_EQ(wf_gen_next(g, &v), 0);
    /* Its open scope was left: our waits carry no deadline. */
    CHECK_EQ(wf_sleep(WF_NSEC_PER_USEC), 0);
    CHECK_EQ(wf_gen_close(g, NULL), 0);

    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = 0;
    CHECK_EQ(wf_gen_create(&g, count_up, &c, &o), -EINVAL); /* no pinning */
    return 0;
}

static void test_misuse(void **state)
{
    run_main(2, m_misuse, NULL);
}

/* --- the direct hand-off keeps both sides on one worker ---------------------------- */

typedef struct {
    long n;
    _Atomic int gen_worker;
} handoff_arg;

static int where_gen(wf_gen_t *g, void *arg)
{
    handoff_arg *h = arg;
    for (long i = 0; i < h->n; i++) {
        atomic_store(&h->gen_worker, wf_worker_index());
        if (wf_gen_yield(g, ITEM(i)))
            return -1;
    }
    return 0;
}

static int m_handoff(void *arg, void **res)
{
    handoff_arg h;
    h.n = SCALED(100000);
    atomic_init(&h.gen_worker, -1);
    wf_gen_t *g;
    CHECK_EQ(wf_gen_create(&g, where_gen, &h, NULL), 0);
    long moved = 0, sum = 0;
    void *v;
    for (long i = 0; i < h.n; i++) {
        CHECK_EQ(wf_gen_next(g, &v), 1);
        sum += ID(v);
        /* The generator ran on the worker the consumer is on now: no
         * run-queue trip could have let another worker pick either up. */
        moved += atomic_load(&h.gen_worker) != wf_worker_index();
    }
    CHECK_EQ(wf_gen_next(g, &v), 0);
    CHECK_EQ(sum, h.n * (h.n - 1) / 2);
    /* The body runs in our task, so on our worker, every time. */
    CHECK_EQ(moved, 0);
    CHECK_EQ(wf_gen_close(g, NULL), 0);

    /* Drivers take turns: tasks one after another take values from one
     * generator, each resuming the body where the last one left it. */
    count_arg c;
    memset(&c, 0, sizeof c);
    c.n = 40;
    CHECK_EQ(wf_gen_create(&g, count_up, &c, NULL), 0);
    for (long i = 0; i < 40; i++) {
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, next_in_task, g, NULL), 0);
        void *got = NULL;
        int st = -1;
        CHECK_EQ(wf_join(t, &st, &got), 0);
        CHECK_EQ(st, 0);
        CHECK_EQ(ID(got), i);
    }
    CHECK_EQ(wf_gen_next(g, &v), 0);
    CHECK_EQ(wf_gen_close(g, NULL), 0);
    return 0;
}

static void test_handoff(void **state)
{
    run_main(STRESS_WORKERS, m_handoff, NULL);
}

/* --- a pipeline: reader -> cleaner -> tokenizer, in bounded memory ---------------- */

static const char *const text[] = {
    "  The quick brown fox  ", "jumps over", "", "   ", "the lazy dog.", "  Pack my box with  ",
    "five dozen liquor jugs ",
};
#define NLINES (sizeof text / sizeof text[0])

typedef struct {
    long repeat;
    bool wander; /* the reader yields the CPU and sleeps now and then */
    _Atomic long live;     /* strings allocated and not yet freed */
    _Atomic long max_live; /* its high-water mark */
    _Atomic int cleanups;
} pipe_state;

static char *pstrdup(pipe_state *p, const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    long l = atomic_fetch_add(&p->live, 1) + 1;
    long m = atomic_load(&p->max_live);
    while (l > m && !atomic_compare_exchange_weak(&p->max_live, &m, l))
        ;
    return d;
}

static void pfree(pipe_state *p, char *s)
{
    free(s);
    atomic_fetch_sub(&p->live, 1);
}

typedef struct {
    pipe_state *p;
    wf_gen_t *up;
} stage_arg;

/* A stage closed before its body started: close its upstream instead. */
static void stage_drop(void *arg)
{
    stage_arg *a = arg;
    if (a->up)
        wf_gen_close(a->up, NULL);
    atomic_fetch_add(&a->p->cleanups, 1);
}

static int make_stage(wf_gen_t **g, wf_gen_fn fn, stage_arg *a)
{
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.drop = stage_drop;
    return wf_gen_create(g, fn, a, &o);
}

/* Yields each line (a fresh copy), `repeat` times over. */
static int reader(wf_gen_t *g, void *arg)
{
    stage_arg *a = arg;
    for (long r = 0; r < a->p->repeat; r++) {
        for (size_t i = 0; i < NLINES; i++) {
            /* Give the CPU away now and then, or sleep: the consumer's task
             * is then requeued or parked on this stack, and may come back
             * on another worker. (A sleep cut by a deadline is fine.) */
            if (a->p->wander && i % 3 == 0)
                (void)(i % 2 ? wf_yield() : wf_sleep(WF_NSEC_PER_USEC));
            char *line = pstrdup(a->p, text[i], strlen(text[i]));
            if (wf_gen_yield(g, line) < 0) { /* closed; line was delivered */
                atomic_fetch_add(&a->p->cleanups, 1);
                return -ECANCELED;
            }
        }
    }
    atomic_fetch_add(&a->p->cleanups, 1);
    return 0;
}

/* Trims lines and drops the empty ones. */
static int cleaner(wf_gen_t *g, void *arg)
{
    stage_arg *a = arg;
    void *v;
    int r;
    while ((r = wf_gen_next(a->up, &v)) == 1) {
        char *s = v, *e = s + strlen(s);
        while (*s == ' ')
            s++;
        while (e > s && e[-1] == ' ')
            e--;
        if (e == s) {
            pfree(a->p, v);
            continue;
        }
        char *out = pstrdup(a->p, s, (size_t)(e - s));
        pfree(a->p, v);
        if (wf_gen_yield(g, out) < 0) { /* closed; out was delivered */
            r = -ECANCELED;
            break;
        }
    }
    int st = 0;
    wf_gen_close(a->up, &st);
    atomic_fetch_add(&a->p->cleanups, 1);
    return r < 0 ? r : st;
}

/* Splits lines into words. */
static int tokenizer(wf_gen_t *g, void *arg)
{
    stage_arg *a = arg;
    void *v;
    int r;
    while ((r = wf_gen_next(a->up, &v)) == 1) {
        char *s = v;
        bool stop = false;
        while (*s && !stop) {
            while (*s == ' ')
                s++;
            char *w = s;
            while (*s && *s != ' ')
                s++;
            if (s > w) {
                char *word = pstrdup(a->p, w, (size_t)(s - w));
                if (wf_gen_yield(g, word) < 0) /* closed; word was delivered */
                    stop = true;
            }
        }
        pfree(a->p, v);
        if (stop) {
            r = -ECANCELED;
            break;
        }
    }
    int st = 0;
    wf_gen_close(a->up, &st);
    atomic_fetch_add(&a->p->cleanups, 1);
    return r < 0 ? r : st;
}

static long words_per_pass(void)
{
    long n = 0;
    for (size_t i = 0; i < NLINES; i++) {
        const char *s = text[i];
        while (*s) {
            while (*s == ' ')
                s++;
            if (*s)
                n++;
            while (*s && *s != ' ')
                s++;
        }
    }
    return n;
}

/* Build the pipeline; take `limit` words (-1: all); close; check. */
static void run_pipeline(pipe_state *p, long limit, long *got)
{
    stage_arg ra = {p, NULL}, ca, ta;
    wf_gen_t *rg, *cg, *tg;
    CHECK_EQ(make_stage(&rg, reader, &ra), 0);
    ca.p = p;
    ca.up = rg;
    CHECK_EQ(make_stage(&cg, cleaner, &ca), 0);
    ta.p = p;
    ta.up = cg;
    CHECK_EQ(make_stage(&tg, tokenizer, &ta), 0);
    void *v;
    long n = 0;
    int r;
    while ((limit < 0 || n < limit) && (r = wf_gen_next(tg, &v)) == 1) {
        CHECK(strlen(v) > 0 && strchr(v, ' ') == NULL);
        pfree(p, v);
        n++;
    }
    int st = -1;
    CHECK_EQ(wf_gen_close(tg, &st), 0);
    CHECK_EQ(st, limit < 0 ? 0 : -ECANCELED);
    CHECK_EQ(atomic_load(&p->cleanups), 3); /* every stage cleaned up */
    CHECK_EQ(atomic_load(&p->live), 0);     /* every string freed */
    *got = n;
}

static int m_pipeline(void *arg, void **res)
{
    pipe_state p;
    memset(&p, 0, sizeof p);
    p.repeat = SCALED(2000);
    long got = 0;
    run_pipeline(&p, -1, &got);
    CHECK_EQ(got, p.repeat * words_per_pass());
    /* Bounded memory: one string in flight per stage, whatever the length
     * of the stream. */
    CHECK(atomic_load(&p.max_live) <= 4);
    /* Closed half-way, from the far end. */
    for (long limit = 0; limit < 12; limit++) {
        memset(&p, 0, sizeof p);
        p.repeat = 5;
        run_pipeline(&p, limit, &got);
        CHECK_EQ(got, limit);
    }
    return 0;
}

static void test_pipeline(void **state)
{
    run_main(2, m_pipeline, NULL);
}

/* --- stress: many pipelines, random deadlines and closes ---------------------------- */

typedef struct {
    uint64_t seed;
    _Atomic long *done;
} stress_arg;

static int stress_consumer(void *arg, void **res)
{
    stress_arg *a = arg;
    uint64_t rnd = a->seed;
    for (int round = 0; round < 3; round++) {
        pipe_state p;
        memset(&p, 0, sizeof p);
        p.repeat = 1 + (long)(test_rand(&rnd) % 8);
        p.wander = true;
        long limit = test_rand(&rnd) % 3 == 0 ? -1 : (long)(test_rand(&rnd) % 30);
        stage_arg ra = {&p, NULL}, ca = {&p, NULL}, ta = {&p, NULL};
        wf_gen_t *rg, *cg, *tg;
        if (make_stage(&rg, reader, &ra))
            return -1;
        ca.up = rg;
        if (make_stage(&cg, cleaner, &ca))
            return -1;
        ta.up = cg;
        if (make_stage(&tg, tokenizer, &ta))
            return -1;
        long n = 0, want = limit < 0 ? p.repeat * words_per_pass() : limit;
        if (want > p.repeat * words_per_pass())
            want = p.repeat * words_per_pass();
        while (n < want) {
            void *v;
            int64_t dl = test_rand(&rnd) % 4 == 0
                             ? wf_deadline_in((int64_t)(test_rand(&rnd) % 5) * WF_NSEC_PER_USEC)
                             : WF_FOREVER;
            /* A deadline only cuts the reader's sleeps, which it shrugs
             * off: every value still comes, in order. */
            int r = wf_gen_next_until(tg, &v, dl);
            if (r != 1)
                return -2;
            pfree(&p, v);
            n++;
        }
        int st = 0;
        if (wf_gen_close(tg, &st))
            return -3;
        if (atomic_load(&p.live) != 0 || atomic_load(&p.cleanups) != 3)
            return -4;
        atomic_fetch_add(a->done, n);
    }
    return 0;
}

static int m_stress(void *arg, void **res)
{
    enum { N = 24 };
    _Atomic long done = 0;
    stress_arg a[N];
    wf_task_t t[N];
    for (int i = 0; i < N; i++) {
        a[i].seed = (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
        a[i].done = &done;
    }
    spawn_n(t, N, stress_consumer, a, sizeof a[0]);
    join_n(t, N);
    CHECK(atomic_load(&done) > 0);
    return 0;
}

static void test_stress(void **state)
{
    long reps = WF_TEST_SANITIZED ? 2 : 20;
    for (long i = 0; i < reps; i++)
        run_main(STRESS_WORKERS, m_stress, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),          cmocka_unit_test(test_close_halfway),
        cmocka_unit_test(test_close_unstarted), cmocka_unit_test(test_waits),
        cmocka_unit_test(test_misuse),          cmocka_unit_test(test_handoff),
        cmocka_unit_test(test_pipeline),        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_close_not_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
