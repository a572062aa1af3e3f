/* bench_core.c - the core runtime's benchmarks: switch, yield, spawn,
 * skynet, sleepers, timers, and the poller's fd round trip. */
#include "bench.h"
#include "fcontext.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- switch: the raw jump_fcontext round trip, the floor ---------------- */

static void switch_peer(transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, NULL);
}

static int bench_switch(const bench_opts *o)
{
    enum { N = 10 * 1000 * 1000, STACK = 64 * 1024 };
    char *stack = malloc(STACK);
    BENCH_CHECK(stack, "malloc");
    fcontext_t peer = make_fcontext(stack + STACK, STACK, switch_peer);
    double v[101];
    for (unsigned r = 0; r <= o->reps; r++) {
        int64_t t0 = wf_now();
        for (int i = 0; i < N; i++)
            peer = jump_fcontext(peer, NULL).fctx;
        int64_t t1 = wf_now();
        if (r)
            v[r - 1] = (double)(t1 - t0) / N;
    }
    free(stack);
    bench_opts one = *o;
    one.workers = 1;
    bench_print("switch", "ns_per_roundtrip", bench_median(v, o->reps), "ns", &one, NULL);
    return 0;
}

/* --- yield: 1,000 fibers x 1,000 yields ---------------------------------- */

enum { YIELD_FIBERS = 1000, YIELDS = 1000 };

static int yielder(void *arg, void **res)
{
    for (int i = 0; i < YIELDS; i++)
        if (wf_yield() != 0)
            return -1;
    return 0;
}

typedef struct {
    const bench_opts *o;
    double v[101];
} bench_ctx;

static int yield_main(void *arg, void **res)
{
    bench_ctx *c = arg;
    wf_task_t *t = malloc(sizeof *t * YIELD_FIBERS);
    for (unsigned r = 0; r <= c->o->reps; r++) {
        int64_t t0 = wf_now();
        for (int i = 0; i < YIELD_FIBERS; i++)
            BENCH_CHECK(wf_spawn(&t[i], yielder, NULL, NULL) == 0, "spawn");
        for (int i = 0; i < YIELD_FIBERS; i++) {
            int st = -1;
            BENCH_CHECK(wf_join(t[i], &st, NULL) == 0 && st == 0, "yielder %d", i);
        }
        int64_t t1 = wf_now();
        if (r)
            c->v[r - 1] = (double)(t1 - t0) / ((double)YIELD_FIBERS * YIELDS);
    }
    free(t);
    return 0;
}

static int bench_yield(const bench_opts *o)
{
    bench_ctx c = {.o = o};
    bench_run(o, yield_main, &c);
    bench_print("yield", "ns_per_yield", bench_median(c.v, o->reps), "ns", o, "fibers=1000,yields=1000");
    return 0;
}

/* --- spawn: 1,000,000 empty tasks, then join them all -------------------- */

enum { SPAWN_N = 1000 * 1000 };

static int empty_task(void *arg, void **res)
{
    *res = arg;
    return 0;
}

static int spawn_main(void *arg, void **res)
{
    bench_ctx *c = arg;
    wf_task_t *t = malloc(sizeof *t * SPAWN_N);
    BENCH_CHECK(t, "malloc");
    for (unsigned r = 0; r <= c->o->reps; r++) {
        int64_t t0 = wf_now();
        for (intptr_t i = 0; i < SPAWN_N; i++)
            BENCH_CHECK(wf_spawn(&t[i], empty_task, (void *)i, NULL) == 0, "spawn %ld", (long)i);
        for (intptr_t i = 0; i < SPAWN_N; i++) {
            int st = -1;
            void *rv = NULL;
            BENCH_CHECK(wf_join(t[i], &st, &rv) == 0 && st == 0 && rv == (void *)i, "task %ld", (long)i);
        }
        int64_t t1 = wf_now();
        if (r)
            c->v[r - 1] = (double)(t1 - t0) / SPAWN_N;
    }
    free(t);
    return 0;
}

static int bench_spawn(const bench_opts *o)
{
    bench_ctx c = {.o = o};
    bench_run(o, spawn_main, &c);
    bench_print("spawn", "ns_per_task", bench_median(c.v, o->reps), "ns", o, "tasks=1000000");
    return 0;
}

/* --- skynet (atemerev/skynet): 10-ary tree down to 1,000,000 leaves ----- */

static int skynet_node(void *arg, void **res)
{
    uintptr_t packed = (uintptr_t)arg;
    long num = (long)(packed >> 24), size = (long)(packed & 0xffffff);
    if (size == 1) {
        *res = (void *)(intptr_t)num;
        return 0;
    }
    wf_task_t kids[10];
    long step = size / 10;
    for (long i = 0; i < 10; i++) {
        uintptr_t p = ((uintptr_t)(num + i * step) << 24) | (uintptr_t)step;
        int e = wf_spawn(&kids[i], skynet_node, (void *)p, NULL);
        if (e)
            return e;
    }
    long sum = 0;
    for (int i = 0; i < 10; i++) {
        void *rv;
        int st;
        int e = wf_join(kids[i], &st, &rv);
        if (e)
            return e;
        if (st)
            return st;
        sum += (long)(intptr_t)rv;
    }
    *res = (void *)(intptr_t)sum;
    return 0;
}

static int skynet_main(void *arg, void **res)
{
    bench_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        int64_t t0 = wf_now();
        wf_task_t root;
        BENCH_CHECK(wf_spawn(&root, skynet_node, (void *)(uintptr_t)1000000, NULL) == 0, "spawn");
        void *rv;
        int st;
        BENCH_CHECK(wf_join(root, &st, &rv) == 0 && st == 0, "root: %s", wf_strerror(st));
        int64_t t1 = wf_now();
        BENCH_CHECK((long)(intptr_t)rv == 499999500000L, "sum %ld", (long)(intptr_t)rv);
        if (r)
            c->v[r - 1] = (double)(t1 - t0) / 1e6;
    }
    return 0;
}

static int bench_skynet(const bench_opts *o)
{
    bench_ctx c = {.o = o};
    bench_run(o, skynet_main, &c);
    bench_print("skynet", "wall_ms", bench_median(c.v, o->reps), "ms", o, "leaves=1000000");
    return 0;
}

/* --- skynet_chan: skynet with channels, the way Go, Tokio and Boost.Fiber
 * users write it: every node sends its sum up to its parent through one
 * channel per parent, children detached (nobody joins them). The first
 * figure uses channels of capacity 1 (the one definition every peer can
 * share: Tokio has no rendezvous channel); the second rendezvous channels
 * (Go's make(chan int), atemerev/skynet's own Go version). -------------- */

typedef struct {
    wf_queue_t *up; /* the parent's channel */
    long num, size;
    bool rendezvous;
} skc_arg;

static int skc_node(void *arg, void **res)
{
    /* A copy: the parent's frame, where `arg` lives, ends once our sum is
     * in (the parent waits for all ten before it returns). */
    skc_arg a = *(skc_arg *)arg;
    if (a.size == 1)
        return wf_queue_put(a.up, (void *)(intptr_t)a.num);
    wf_queue_t *ch;
    int e = a.rendezvous ? wf_queue_create_rendezvous(&ch) : wf_queue_create(&ch, 1, WF_QUEUE_FIFO, NULL);
    if (e)
        return e;
    long step = a.size / 10;
    skc_arg kids[10];
    for (long i = 0; i < 10; i++) {
        kids[i] = (skc_arg){ch, a.num + i * step, step, a.rendezvous};
        wf_task_t t;
        if ((e = wf_spawn(&t, skc_node, &kids[i], NULL)) != 0)
            return e; /* (a benchmark: the children already spawned are left) */
        wf_detach(t);
    }
    long sum = 0;
    for (int i = 0; i < 10; i++) {
        void *v;
        if ((e = wf_queue_get(ch, &v)) != 0)
            return e;
        sum += (long)(intptr_t)v;
    }
    /* Every child has handed over its sum; none touches ch again. */
    if ((e = wf_queue_destroy(ch, NULL, NULL, NULL)) != 0)
        return e;
    return wf_queue_put(a.up, (void *)(intptr_t)sum);
}

typedef struct {
    const bench_opts *o;
    double v[101], v2[101];
} skc_ctx;

static int skynet_chan_main(void *arg, void **res)
{
    skc_ctx *c = arg;
    for (int kind = 0; kind < 2; kind++) {
        double *v = kind ? c->v2 : c->v;
        for (unsigned r = 0; r <= c->o->reps; r++) {
            wf_queue_t *up;
            BENCH_CHECK((kind ? wf_queue_create_rendezvous(&up) : wf_queue_create(&up, 1, WF_QUEUE_FIFO, NULL)) == 0,
                        "queue");
            int64_t t0 = wf_now();
            skc_arg a = {up, 0, 1000000, kind == 1};
            wf_task_t root;
            BENCH_CHECK(wf_spawn(&root, skc_node, &a, NULL) == 0, "spawn");
            void *sum;
            BENCH_CHECK(wf_queue_get(up, &sum) == 0, "root");
            int64_t t1 = wf_now();
            int st = -1;
            BENCH_CHECK(wf_join(root, &st, NULL) == 0 && st == 0, "root: %s", wf_strerror(st));
            BENCH_CHECK((long)(intptr_t)sum == 499999500000L, "sum %ld", (long)(intptr_t)sum);
            BENCH_CHECK(wf_queue_destroy(up, NULL, NULL, NULL) == 0, "destroy");
            if (r)
                v[r - 1] = (double)(t1 - t0) / 1e6;
        }
    }
    return 0;
}

static int bench_skynet_chan(const bench_opts *o)
{
    skc_ctx c = {.o = o};
    bench_run(o, skynet_chan_main, &c);
    bench_print("skynet_chan", "wall_ms", bench_median(c.v, o->reps), "ms", o, "leaves=1000000,channel=1");
    bench_print("skynet_chan", "rendezvous_wall_ms", bench_median(c.v2, o->reps), "ms", o,
                "leaves=1000000,channel=rendezvous");
    return 0;
}

/* --- sleepers: 100,000 fibers sleeping 1 s at once ------------------------ */

enum { SLEEPERS = 100 * 1000 };

typedef struct {
    _Atomic int asleep;
} sleepers_state;

static int sleeper(void *arg, void **res)
{
    sleepers_state *s = arg;
    atomic_fetch_add_explicit(&s->asleep, 1, memory_order_relaxed);
    return wf_sleep(WF_NSEC_PER_SEC);
}

typedef struct {
    const bench_opts *o;
    double wall[101];
    double rss_per_task; /* from the first, cold, run */
} sleepers_ctx;

static int sleepers_main(void *arg, void **res)
{
    sleepers_ctx *c = arg;
    wf_task_t *t = malloc(sizeof *t * SLEEPERS);
    BENCH_CHECK(t, "malloc");
    for (unsigned r = 0; r < c->o->reps; r++) {
        sleepers_state s = {0};
        long rss0 = bench_rss_kib();
        int64_t t0 = wf_now();
        for (int i = 0; i < SLEEPERS; i++)
            BENCH_CHECK(wf_spawn(&t[i], sleeper, &s, NULL) == 0, "spawn");
        /* Wait until every fiber is asleep, then read the resident size. */
        while (atomic_load(&s.asleep) < SLEEPERS)
            wf_sleep(WF_NSEC_PER_MSEC);
        long rss1 = bench_rss_kib();
        for (int i = 0; i < SLEEPERS; i++) {
            int st = -1;
            BENCH_CHECK(wf_join(t[i], &st, NULL) == 0 && st == 0, "sleeper %d", i);
        }
        int64_t t1 = wf_now();
        c->wall[r] = (double)(t1 - t0) / 1e6;
        if (r == 0)
            c->rss_per_task = (double)(rss1 - rss0) / SLEEPERS;
    }
    free(t);
    return 0;
}

static int bench_sleepers(const bench_opts *o)
{
    sleepers_ctx c = {.o = o};
    bench_run(o, sleepers_main, &c);
    bench_print("sleepers", "wall_ms", bench_median(c.wall, o->reps), "ms", o, "fibers=100000,sleep=1s");
    bench_print("sleepers", "rss_kib_per_task", c.rss_per_task, "KiB", o, "fibers=100000,run=cold");
    return 0;
}

/* --- timers: 1,000,000 armed, half cancelled, the rest fired -------------
 *
 * The deadlines lie TIMER_LEAD ahead (spread over one millisecond, in mixed
 * order), far enough that arming and cancelling finish before any fires, so
 * half really are cancelled. The figure counts the three active phases
 * (arming, cancelling, and from the first deadline to the last callback),
 * not the idle wait between them. */

enum { TIMERS = 1000 * 1000 };
#define TIMER_LEAD (1000 * WF_NSEC_PER_MSEC)

typedef struct {
    wf_timer_t *tm;
    unsigned char *hits;
    _Atomic long fired;
} timers_state;

static timers_state *g_timers;

static void timer_cb(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    g_timers->hits[i]++;
    atomic_fetch_add_explicit(&g_timers->fired, 1, memory_order_release);
}

typedef struct {
    const bench_opts *o;
    double v[101];
    long cancelled;
} timers_ctx;

static int timers_main(void *arg, void **res)
{
    timers_ctx *c = arg;
    timers_state s;
    s.tm = calloc(TIMERS, sizeof *s.tm);
    s.hits = calloc(TIMERS, 1);
    BENCH_CHECK(s.tm && s.hits, "calloc");
    g_timers = &s;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        memset(s.hits, 0, TIMERS);
        atomic_store(&s.fired, 0);
        long cancelled = 0;
        int64_t t0 = wf_now(), base = t0 + TIMER_LEAD;
        for (uintptr_t i = 0; i < TIMERS; i++)
            BENCH_CHECK(wf_timer_start(&s.tm[i], base + (int64_t)((i * 7919) % 1000) * 1000, timer_cb,
                                       (void *)i) == 0,
                        "start %lu", (unsigned long)i);
        for (uintptr_t i = 0; i < TIMERS; i += 2) {
            int e = wf_timer_cancel(&s.tm[i]);
            BENCH_CHECK(e == 0 || e == -EALREADY, "cancel: %s", wf_strerror(e));
            if (e == 0) {
                cancelled++;
                s.hits[i] = 2; /* must never fire now */
            }
        }
        int64_t t1 = wf_now();
        wf_sleep_until(base);
        int64_t t2 = wf_now();
        while (atomic_load_explicit(&s.fired, memory_order_acquire) + cancelled < TIMERS)
            wf_sleep(20 * WF_NSEC_PER_USEC);
        int64_t t3 = wf_now();
        for (uintptr_t i = 0; i < TIMERS; i++)
            BENCH_CHECK(s.hits[i] == 1 || s.hits[i] == 2, "timer %lu hit %d times", (unsigned long)i,
                        s.hits[i]);
        /* If arming overran the lead (a loaded machine), t2 == t1. */
        if (r)
            c->v[r - 1] = (double)((t1 - t0) + (t3 - (t2 > t1 ? t2 : t1))) / TIMERS;
        c->cancelled = cancelled;
    }
    free(s.tm);
    free(s.hits);
    return 0;
}

static int bench_timers(const bench_opts *o)
{
    timers_ctx c = {.o = o};
    bench_run(o, timers_main, &c);
    char extra[64];
    snprintf(extra, sizeof extra, "timers=1000000,cancelled=%ld", c.cancelled);
    bench_print("timers", "ns_per_timer", bench_median(c.v, o->reps), "ns", o, extra);
    return 0;
}

/* --- fd_pingpong: one byte back and forth over a socketpair -------------
 *
 * Two fibers, one on each end of an AF_UNIX stream socketpair. Each writes
 * one byte, then reads the other's: it tries read() first and only on
 * EAGAIN waits with wf_wait_readable() (io.h's protocol). A round trip is
 * two writes, two reads, and usually two parks, each woken by an epoll
 * edge that the poller thread turns into a wake-up: the figure is the cost
 * of the whole poller path, per round trip. */

enum { FDPP_ROUNDS = 50 * 1000 };

typedef struct {
    int fd;
    bool starts;
    long waits; /* parks through wf_wait_readable */
} fdpp_end;

/* read() returning -errno. Not inlined: the fiber may resume on another
 * worker after a wait, and in one function the compiler may keep the first
 * thread's errno address (glibc's __errno_location() is const; io.h). */
static __attribute__((noinline)) ssize_t fdpp_sys_read(int fd, char *c)
{
    ssize_t r = read(fd, c, 1);
    return r < 0 ? -errno : r;
}

static int fdpp_read1(fdpp_end *e, char *c)
{
    for (;;) {
        ssize_t r = fdpp_sys_read(e->fd, c);
        if (r == 1)
            return 0;
        if (r == 0)
            return -EPIPE;
        if (r != -EAGAIN)
            return (int)r;
        int w = wf_wait_readable(e->fd, wf_deadline_in(30 * WF_NSEC_PER_SEC));
        if (w)
            return w;
        e->waits++;
    }
}

static int fdpp_run(void *arg, void **res)
{
    fdpp_end *e = arg;
    char c = 0;
    for (long i = 0; i < FDPP_ROUNDS; i++) {
        if (!e->starts) {
            int r = fdpp_read1(e, &c);
            if (r)
                return r;
            if (c != (char)i)
                return -EPROTO;
        }
        c = (char)i;
        /* One byte into an empty socket buffer: never EAGAIN. */
        if (write(e->fd, &c, 1) != 1)
            return -EIO;
        if (e->starts) {
            int r = fdpp_read1(e, &c);
            if (r)
                return r;
            if (c != (char)i)
                return -EPROTO;
        }
    }
    return 0;
}

typedef struct {
    const bench_opts *o;
    double v[101];
    double waits; /* parks per round trip, last rep */
} fdpp_ctx;

static int fdpp_main(void *arg, void **res)
{
    fdpp_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        int sv[2];
        BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
                    "socketpair: %s", wf_strerror(-errno));
        fdpp_end ends[2] = {{.fd = sv[0], .starts = true}, {.fd = sv[1], .starts = false}};
        wf_task_t t[2];
        int64_t t0 = wf_now();
        for (int i = 0; i < 2; i++)
            BENCH_CHECK(wf_spawn(&t[i], fdpp_run, &ends[i], NULL) == 0, "spawn");
        for (int i = 0; i < 2; i++) {
            int st = -1;
            BENCH_CHECK(wf_join(t[i], &st, NULL) == 0 && st == 0, "end %d: %s", i, wf_strerror(st));
        }
        int64_t t1 = wf_now();
        for (int i = 0; i < 2; i++)
            BENCH_CHECK(wf_fd_close(sv[i]) == 0, "close");
        if (r)
            c->v[r - 1] = (double)(t1 - t0) / FDPP_ROUNDS;
        c->waits = (double)(ends[0].waits + ends[1].waits) / FDPP_ROUNDS;
    }
    return 0;
}

static int bench_fd_pingpong(const bench_opts *o)
{
    fdpp_ctx c = {.o = o};
    bench_run(o, fdpp_main, &c);
    char extra[80];
    snprintf(extra, sizeof extra, "rounds=%d,waits_per_roundtrip=%.2f", FDPP_ROUNDS, c.waits);
    bench_print("fd_pingpong", "ns_per_roundtrip", bench_median(c.v, o->reps), "ns", o, extra);
    return 0;
}

const bench_def bench_core[] = {
    {"switch", "raw jump_fcontext round trip (the floor)", bench_switch},
    {"yield", "1,000 fibers each yielding 1,000 times", bench_yield},
    {"spawn", "spawn 1,000,000 empty tasks, then join them", bench_spawn},
    {"skynet", "skynet: 10-ary tree of tasks, 1,000,000 leaves", bench_skynet},
    {"skynet_chan", "skynet with each sum sent up through a channel per parent (capacity 1; rendezvous)",
     bench_skynet_chan},
    {"sleepers", "100,000 fibers sleeping 1 s at once", bench_sleepers},
    {"timers", "1,000,000 timers: armed, half cancelled, rest fired", bench_timers},
    {"fd_pingpong", "1 byte back and forth over a socketpair, waiting in the poller", bench_fd_pingpong},
};
const unsigned bench_core_n = sizeof bench_core / sizeof bench_core[0];
