/* bench_sync.c - benchmarks of the sync subsystem: queue ping-pong, MPMC
 * queue throughput, the fair lock under contention (beside uncontended
 * figures for the same lock and for pthread_mutex), and generators.
 * bench/peers/go/peer_sync.go runs the same workloads in Go. */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const bench_opts *o;
    double v[101];
    double v2[101];
} sync_ctx;

#define ITEM(i) ((void *)(uintptr_t)(i))
#define ID(p) ((long)(uintptr_t)(p))

/* --- pingpong: a token bounced between two fibers through two capacity-1
 * queues, 1,000,000 round trips ------------------------------------------ */

enum { PP_N = 1000 * 1000 };

typedef struct {
    wf_queue_t *ping, *pong;
} pp_pair;

static int pp_peer(void *arg, void **res)
{
    pp_pair *p = arg;
    for (long i = 0; i < PP_N; i++) {
        void *v;
        if (wf_queue_get(p->ping, &v))
            return -1;
        if (wf_queue_put(p->pong, ITEM(ID(v) + 1)))
            return -2;
    }
    return 0;
}

static int pingpong_main(void *arg, void **res)
{
    sync_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        pp_pair p;
        BENCH_CHECK(wf_queue_create(&p.ping, 1, WF_QUEUE_FIFO, NULL) == 0, "queue");
        BENCH_CHECK(wf_queue_create(&p.pong, 1, WF_QUEUE_FIFO, NULL) == 0, "queue");
        wf_task_t peer;
        BENCH_CHECK(wf_spawn(&peer, pp_peer, &p, NULL) == 0, "spawn");
        int64_t t0 = wf_now();
        long token = 0;
        for (long i = 0; i < PP_N; i++) {
            void *v;
            BENCH_CHECK(wf_queue_put(p.ping, ITEM(token)) == 0, "put");
            BENCH_CHECK(wf_queue_get(p.pong, &v) == 0, "get");
            token = ID(v) + 1;
        }
        int64_t t1 = wf_now();
        int st = -1;
        BENCH_CHECK(wf_join(peer, &st, NULL) == 0 && st == 0, "peer: %d", st);
        BENCH_CHECK(token == 2L * PP_N, "token %ld", token);
        wf_queue_destroy(p.ping, NULL, NULL, NULL);
        wf_queue_destroy(p.pong, NULL, NULL, NULL);
        if (r)
            c->v[r - 1] = (double)(t1 - t0) / PP_N;
    }
    return 0;
}

static int bench_pingpong(const bench_opts *o)
{
    sync_ctx c = {.o = o};
    bench_run(o, pingpong_main, &c);
    bench_print("pingpong", "ns_per_roundtrip", bench_median(c.v, o->reps), "ns", o,
                "roundtrips=1000000,queues=2x1");
    return 0;
}

/* --- mpmc: 4 producers, 4 consumers, one queue of capacity 1024,
 * 10,000,000 items; count and sum checked ------------------------------- */

enum { MP_P = 4, MP_C = 4, MP_CAP = 1024 };
#define MP_ITEMS 10000000L

typedef struct {
    wf_queue_t *q;
    long first, n;   /* producer: items first+1 .. first+n */
    long count, sum; /* consumer: what it took */
} mp_arg;

static int mp_producer(void *arg, void **res)
{
    mp_arg *a = arg;
    for (long i = 1; i <= a->n; i++)
        if (wf_queue_put(a->q, ITEM(a->first + i)))
            return -1;
    return 0;
}

static int mp_consumer(void *arg, void **res)
{
    mp_arg *a = arg;
    void *v;
    int e;
    long count = 0, sum = 0;
    while ((e = wf_queue_get(a->q, &v)) == 0) {
        count++;
        sum += ID(v);
    }
    a->count = count;
    a->sum = sum;
    return e == -ESHUTDOWN ? 0 : e;
}

static int mpmc_main(void *arg, void **res)
{
    sync_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        wf_queue_t *q;
        BENCH_CHECK(wf_queue_create(&q, MP_CAP, WF_QUEUE_FIFO, NULL) == 0, "queue");
        mp_arg pa[MP_P], ca[MP_C];
        wf_task_t pt[MP_P], ct[MP_C];
        memset(ca, 0, sizeof ca);
        int64_t t0 = wf_now();
        for (int i = 0; i < MP_C; i++) {
            ca[i].q = q;
            BENCH_CHECK(wf_spawn(&ct[i], mp_consumer, &ca[i], NULL) == 0, "spawn");
        }
        for (int i = 0; i < MP_P; i++) {
            pa[i].q = q;
            pa[i].first = i * (MP_ITEMS / MP_P);
            pa[i].n = MP_ITEMS / MP_P;
            BENCH_CHECK(wf_spawn(&pt[i], mp_producer, &pa[i], NULL) == 0, "spawn");
        }
        for (int i = 0; i < MP_P; i++) {
            int st = -1;
            BENCH_CHECK(wf_join(pt[i], &st, NULL) == 0 && st == 0, "producer");
        }
        /* Graceful: the consumers drain what is left, then stop. */
        wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL);
        long count = 0, sum = 0;
        for (int i = 0; i < MP_C; i++) {
            int st = -1;
            BENCH_CHECK(wf_join(ct[i], &st, NULL) == 0 && st == 0, "consumer");
            count += ca[i].count;
            sum += ca[i].sum;
        }
        int64_t t1 = wf_now();
        BENCH_CHECK(count == MP_ITEMS, "count %ld", count);
        BENCH_CHECK(sum == MP_ITEMS * (MP_ITEMS + 1) / 2, "sum %ld", sum);
        wf_queue_destroy(q, NULL, NULL, NULL);
        if (r)
            c->v[r - 1] = (double)MP_ITEMS / ((double)(t1 - t0) / 1e9);
    }
    return 0;
}

static int bench_mpmc(const bench_opts *o)
{
    sync_ctx c = {.o = o};
    bench_run(o, mpmc_main, &c);
    bench_print("mpmc", "items_per_s", bench_median(c.v, o->reps), "items/s", o,
                "producers=4,consumers=4,capacity=1024,items=10000000");
    return 0;
}

/* --- pipeline: a 4-stage pipeline through capacity-4 queues; each stage
 * does PIPE_ROUNDS rounds of xorshift on every item (about 1.7 us here),
 * 20,000 items. Beside it, the same work done serially in one fiber, in the
 * same run: the speedup says whether the stages ran in parallel (the ideal
 * on W workers is min(W, 4)). It guards the stealing policy (sched.c,
 * "stealing with a grace period"): tasks that talk through channels and
 * work between their operations must still spread. ----------------------- */

enum { PIPE_STAGES = 4, PIPE_CAP = 4, PIPE_ITEMS = 20000, PIPE_ROUNDS = 1000 };

static uint64_t pipe_work(uint64_t v)
{
    for (int i = 0; i < PIPE_ROUNDS; i++) {
        v ^= v << 13;
        v ^= v >> 7;
        v ^= v << 17;
    }
    return v | 1; /* never 0, so never a NULL item */
}

typedef struct {
    wf_queue_t *in, *out; /* in NULL: the first stage makes the items */
} pipe_stage;

static int pipe_stage_fn(void *arg, void **res)
{
    pipe_stage *st = arg;
    for (long i = 1; i <= PIPE_ITEMS; i++) {
        void *v = ITEM(i);
        if (st->in && wf_queue_get(st->in, &v))
            return -1;
        if (wf_queue_put(st->out, ITEM(pipe_work((uint64_t)ID(v)))))
            return -2;
    }
    return 0;
}

static int pipeline_main(void *arg, void **res)
{
    sync_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        /* Serially: the reference checksum, and the time it takes. */
        int64_t s0 = wf_now();
        uint64_t want = 0;
        for (long i = 1; i <= PIPE_ITEMS; i++) {
            uint64_t v = (uint64_t)i;
            for (int k = 0; k < PIPE_STAGES; k++)
                v = pipe_work(v);
            want += v;
        }
        int64_t s1 = wf_now();
        wf_queue_t *q[PIPE_STAGES];
        pipe_stage st[PIPE_STAGES];
        wf_task_t t[PIPE_STAGES];
        for (int k = 0; k < PIPE_STAGES; k++)
            BENCH_CHECK(wf_queue_create(&q[k], PIPE_CAP, WF_QUEUE_FIFO, NULL) == 0, "queue");
        int64_t t0 = wf_now();
        for (int k = 0; k < PIPE_STAGES; k++) {
            st[k].in = k ? q[k - 1] : NULL;
            st[k].out = q[k];
            BENCH_CHECK(wf_spawn(&t[k], pipe_stage_fn, &st[k], NULL) == 0, "spawn");
        }
        uint64_t got = 0;
        for (long i = 0; i < PIPE_ITEMS; i++) {
            void *v;
            BENCH_CHECK(wf_queue_get(q[PIPE_STAGES - 1], &v) == 0, "get");
            got += (uint64_t)ID(v);
        }
        int64_t t1 = wf_now();
        for (int k = 0; k < PIPE_STAGES; k++) {
            int rc = -1;
            BENCH_CHECK(wf_join(t[k], &rc, NULL) == 0 && rc == 0, "stage %d: %d", k, rc);
            wf_queue_destroy(q[k], NULL, NULL, NULL);
        }
        BENCH_CHECK(got == want, "checksum %llx, want %llx", (unsigned long long)got,
                    (unsigned long long)want);
        if (r) {
            c->v[r - 1] = (double)(t1 - t0) / PIPE_ITEMS;
            c->v2[r - 1] = (double)(s1 - s0) / (double)(t1 - t0);
        }
    }
    return 0;
}

static int bench_pipeline(const bench_opts *o)
{
    sync_ctx c = {.o = o};
    bench_run(o, pipeline_main, &c);
    const char *extra = "stages=4,capacity=4,items=20000,xorshift_rounds=1000";
    bench_print("pipeline", "ns_per_item", bench_median(c.v, o->reps), "ns", o, extra);
    bench_print("pipeline", "speedup_vs_serial", bench_median(c.v2, o->reps), "x", o, extra);
    return 0;
}

/* --- placement: the same two workloads with their tasks pinned, to show
 * what the scheduler's placement is worth: mpmc (as above, 1,000,000 items
 * a run) with every task on worker 0, producers on 0 and consumers on 1,
 * and two producers and two consumers on each; pingpong (200,000 round
 * trips) with both tasks on worker 0, and with the peer on worker 1. Needs
 * 2 workers or more. ---------------------------------------------------- */

enum { PL_ITEMS = 1000000, PL_RT = 200000 };

static int pl_mpmc(int mode)
{
    wf_queue_t *q;
    BENCH_CHECK(wf_queue_create(&q, MP_CAP, WF_QUEUE_FIFO, NULL) == 0, "queue");
    mp_arg pa[MP_P], ca[MP_C];
    wf_task_t pt[MP_P], ct[MP_C];
    memset(ca, 0, sizeof ca);
    int64_t t0 = wf_now();
    for (int i = 0; i < MP_C + MP_P; i++) {
        bool prod = i >= MP_C;
        int k = prod ? i - MP_C : i;
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.worker = mode == 0 ? 0 : mode == 1 ? (prod ? 0 : 1) : k % 2;
        if (prod) {
            pa[k].q = q;
            pa[k].first = k * (PL_ITEMS / MP_P);
            pa[k].n = PL_ITEMS / MP_P;
            BENCH_CHECK(wf_spawn(&pt[k], mp_producer, &pa[k], &o) == 0, "spawn");
        } else {
            ca[k].q = q;
            BENCH_CHECK(wf_spawn(&ct[k], mp_consumer, &ca[k], &o) == 0, "spawn");
        }
    }
    for (int i = 0; i < MP_P; i++)
        BENCH_CHECK(wf_join(pt[i], NULL, NULL) == 0, "producer");
    wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL);
    long count = 0;
    for (int i = 0; i < MP_C; i++) {
        BENCH_CHECK(wf_join(ct[i], NULL, NULL) == 0, "consumer");
        count += ca[i].count;
    }
    int64_t t1 = wf_now();
    BENCH_CHECK(count == PL_ITEMS, "count %ld", count);
    wf_queue_destroy(q, NULL, NULL, NULL);
    return (int)(PL_ITEMS / ((double)(t1 - t0) / 1e9) / 1000); /* thousands/s */
}

typedef struct {
    pp_pair p;
    long n;
} pl_pp;

static int pl_peer(void *arg, void **res)
{
    pl_pp *a = arg;
    for (long i = 0; i < a->n; i++) {
        void *v;
        if (wf_queue_get(a->p.ping, &v) || wf_queue_put(a->p.pong, v))
            return -1;
    }
    return 0;
}

/* A pingpong whose two tasks are pinned to worker 0 and `peer_worker`. */
static double pl_pingpong(int peer_worker)
{
    pl_pp a = {.n = PL_RT};
    BENCH_CHECK(wf_queue_create(&a.p.ping, 1, WF_QUEUE_FIFO, NULL) == 0, "queue");
    BENCH_CHECK(wf_queue_create(&a.p.pong, 1, WF_QUEUE_FIFO, NULL) == 0, "queue");
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = peer_worker;
    wf_task_t peer;
    BENCH_CHECK(wf_spawn(&peer, pl_peer, &a, &o) == 0, "spawn");
    int64_t t0 = wf_now();
    for (long i = 0; i < PL_RT; i++) {
        void *v;
        BENCH_CHECK(wf_queue_put(a.p.ping, ITEM(i)) == 0 && wf_queue_get(a.p.pong, &v) == 0 && ID(v) == i, "rt");
    }
    int64_t t1 = wf_now();
    BENCH_CHECK(wf_join(peer, NULL, NULL) == 0, "peer");
    wf_queue_destroy(a.p.ping, NULL, NULL, NULL);
    wf_queue_destroy(a.p.pong, NULL, NULL, NULL);
    return (double)(t1 - t0) / PL_RT;
}

typedef struct {
    const bench_opts *o;
    double v[5][101];
} pl_ctx;

static int pl_pinned_main(void *arg, void **res)
{
    pl_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        double x[5];
        for (int mode = 0; mode < 3; mode++)
            x[mode] = pl_mpmc(mode) * 1000.0;
        x[3] = pl_pingpong(0);
        x[4] = pl_pingpong(1);
        if (r)
            for (int k = 0; k < 5; k++)
                c->v[k][r - 1] = x[k];
    }
    return 0;
}

static int placement_main(void *arg, void **res)
{
    /* The measuring task itself is pinned to worker 0, like half of each
     * workload. */
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.worker = 0;
    wf_task_t t;
    BENCH_CHECK(wf_spawn(&t, pl_pinned_main, arg, &o) == 0, "spawn");
    int st = -1;
    BENCH_CHECK(wf_join(t, &st, NULL) == 0 && st == 0, "placement");
    return 0;
}

static int bench_placement(const bench_opts *o)
{
    if (bench_workers(o) < 2) {
        fprintf(stderr, "weft-bench: placement needs 2 workers or more\n");
        return 0;
    }
    pl_ctx c = {.o = o};
    bench_run(o, placement_main, &c);
    static const char *const metric[] = {"mpmc_one_worker_items_per_s", "mpmc_split_items_per_s",
                                         "mpmc_mixed_items_per_s", "pingpong_one_worker_ns_per_roundtrip",
                                         "pingpong_two_workers_ns_per_roundtrip"};
    for (int k = 0; k < 5; k++)
        bench_print("placement", metric[k], bench_median(c.v[k], o->reps), k < 3 ? "items/s" : "ns", o,
                    k < 3 ? "producers=4,consumers=4,capacity=1024,items=1000000" : "roundtrips=200000");
    return 0;
}

/* --- lock: 64 fibers contending for one lock; plus the same lock
 * uncontended, and an uncontended pthread_mutex, in the same run --------- */

enum { LK_FIBERS = 64, LK_EACH = 20000 };
#define LK_UNCONTENDED 10000000L

typedef struct {
    wf_lock_t lock;
    long counter;
} lk_shared;

static int lk_fiber(void *arg, void **res)
{
    lk_shared *s = arg;
    for (long i = 0; i < LK_EACH; i++) {
        if (wf_lock_acquire(&s->lock))
            return -1;
        s->counter++;
        if (wf_lock_release(&s->lock))
            return -2;
    }
    return 0;
}

static int lock_main(void *arg, void **res)
{
    sync_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        lk_shared s;
        wf_lock_init(&s.lock);
        s.counter = 0;
        wf_task_t t[LK_FIBERS];
        int64_t t0 = wf_now();
        for (int i = 0; i < LK_FIBERS; i++)
            BENCH_CHECK(wf_spawn(&t[i], lk_fiber, &s, NULL) == 0, "spawn");
        for (int i = 0; i < LK_FIBERS; i++) {
            int st = -1;
            BENCH_CHECK(wf_join(t[i], &st, NULL) == 0 && st == 0, "fiber");
        }
        int64_t t1 = wf_now();
        BENCH_CHECK(s.counter == (long)LK_FIBERS * LK_EACH, "counter %ld", s.counter);
        /* Uncontended: one fiber, the same lock. */
        long n = 0;
        int64_t u0 = wf_now();
        for (long i = 0; i < LK_UNCONTENDED; i++) {
            wf_lock_acquire(&s.lock);
            n++;
            wf_lock_release(&s.lock);
        }
        int64_t u1 = wf_now();
        BENCH_CHECK(n == LK_UNCONTENDED, "n");
        BENCH_CHECK(wf_lock_destroy(&s.lock) == 0, "destroy");
        if (r) {
            c->v[r - 1] = (double)(t1 - t0) / ((double)LK_FIBERS * LK_EACH);
            c->v2[r - 1] = (double)(u1 - u0) / LK_UNCONTENDED;
        }
    }
    return 0;
}

static int bench_lock(const bench_opts *o)
{
    sync_ctx c = {.o = o};
    bench_run(o, lock_main, &c);
    bench_print("lock", "ns_per_op", bench_median(c.v, o->reps), "ns", o, "fibers=64,ops=1280000");
    bench_print("lock", "uncontended_ns_per_op", bench_median(c.v2, o->reps), "ns", o, "ops=10000000");
    /* The same loop on a pthread_mutex, on this thread. */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    double v[101];
    volatile long n = 0;
    for (unsigned r = 0; r <= o->reps; r++) {
        int64_t t0 = wf_now();
        for (long i = 0; i < LK_UNCONTENDED; i++) {
            pthread_mutex_lock(&m);
            n++;
            pthread_mutex_unlock(&m);
        }
        int64_t t1 = wf_now();
        if (r)
            v[r - 1] = (double)(t1 - t0) / LK_UNCONTENDED;
    }
    BENCH_CHECK(n == (long)(o->reps + 1) * LK_UNCONTENDED, "pthread count");
    bench_opts one = *o;
    one.workers = 1;
    bench_print("lock", "pthread_uncontended_ns_per_op", bench_median(v, o->reps), "ns", &one,
                "ops=10000000");
    return 0;
}

/* --- generator: 10,000,000 values from a generator to its consumer ------ */

#define GEN_N 10000000L

static int gen_count(wf_gen_t *g, void *arg)
{
    for (long i = 0; i < GEN_N; i++)
        if (wf_gen_yield(g, ITEM(i)))
            return -1;
    return 0;
}

static int generator_main(void *arg, void **res)
{
    sync_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        wf_gen_t *g;
        BENCH_CHECK(wf_gen_create(&g, gen_count, NULL, NULL) == 0, "create");
        int64_t t0 = wf_now();
        long n = 0, sum = 0;
        void *v;
        int e;
        while ((e = wf_gen_next(g, &v)) == 1) {
            n++;
            sum += ID(v);
        }
        int64_t t1 = wf_now();
        int st = -1;
        BENCH_CHECK(e == 0 && wf_gen_close(g, &st) == 0 && st == 0, "end %d", e);
        BENCH_CHECK(n == GEN_N && sum == GEN_N * (GEN_N - 1) / 2, "n %ld sum %ld", n, sum);
        if (r)
            c->v[r - 1] = (double)(t1 - t0) / GEN_N;
    }
    return 0;
}

static int bench_generator(const bench_opts *o)
{
    sync_ctx c = {.o = o};
    bench_run(o, generator_main, &c);
    bench_print("generator", "ns_per_value", bench_median(c.v, o->reps), "ns", o, "values=10000000");
    return 0;
}

const bench_def bench_sync[] = {
    {"pingpong", "a token between two fibers through two capacity-1 queues, 1,000,000 round trips",
     bench_pingpong},
    {"mpmc", "4 producers, 4 consumers, one queue of capacity 1024, 10,000,000 items", bench_mpmc},
    {"pipeline", "4 stages through capacity-4 queues, ~1.7 us of work per stage and item; speedup over serial",
     bench_pipeline},
    {"placement", "mpmc and pingpong with their tasks pinned: on one worker, split, mixed (2+ workers)",
     bench_placement},
    {"lock", "64 fibers contending for one lock; uncontended lock and pthread_mutex beside", bench_lock},
    {"generator", "10,000,000 values from a generator to its consumer", bench_generator},
};
const unsigned bench_sync_n = sizeof bench_sync / sizeof bench_sync[0];
