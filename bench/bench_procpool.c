/* bench_procpool.c - benchmarks of the process pool (weft/procpool.h):
 *
 *   procpool_rtt      an empty job's round trip: one fiber, one job at a
 *                     time (us_per_job_1, the latency), and 64 fibers with
 *                     a job each in flight (us_per_job); beside it, in the
 *                     same process and the same rounds, the floor: a raw
 *                     ping-pong of 24-byte messages over a socket pair
 *                     between two forked C processes (impl "raw").
 *   procpool_scale    a CPU-bound job, counting primes by trial division
 *                     over 64 ranges, on a pool of 1 worker and on a pool
 *                     of one worker per CPU: the speedup.
 * The pools have --workers processes (default one per CPU), as the
 * runtime has worker threads.
 *   procpool_big      64 MiB inputs echoed back: GiB of input per second.
 *   procpool_recover  how long a crashed worker's replacement takes to be
 *                     ready (ms_to_replace), and how late a job stopped at
 *                     its deadline returns (ms_late).
 * Their Python peer is bench/peers/py/procpool.py (ProcessPoolExecutor);
 * scripts/procbench runs them interleaved. The jobs are registered and
 * the zygote started by weft-bench's main before anything else
 * (bench_procpool_setup). */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/procpool.h>

/* --- the jobs (in the workers) ----------------------------------------------------- */

static int job_empty(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    return 0;
}

static int job_echo(const void *in, size_t len, wf_procout_t *out)
{
    return wf_procout_set(out, in, len);
}

/* Primes in [lo, hi) by trial division (two uint32 in, one out). */
static int job_primes(const void *in, size_t len, wf_procout_t *out)
{
    uint32_t r[2];
    if (len != sizeof r)
        return -EINVAL;
    memcpy(r, in, sizeof r);
    uint32_t c = 0;
    for (uint32_t k = r[0] < 2 ? 2 : r[0]; k < r[1]; k++) {
        bool prime = true;
        for (uint32_t d = 2; d * d <= k; d++)
            if (k % d == 0) {
                prime = false;
                break;
            }
        c += prime;
    }
    return wf_procout_set(out, &c, sizeof c);
}

static int job_crash(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    abort();
}

static int job_spin(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    for (volatile unsigned long i = 0;; i++) {
    }
    return 0;
}

void bench_procpool_setup(void)
{
    BENCH_CHECK(wf_procpool_register("empty", job_empty) == 0, "register");
    BENCH_CHECK(wf_procpool_register("echo", job_echo) == 0, "register");
    BENCH_CHECK(wf_procpool_register("primes", job_primes) == 0, "register");
    BENCH_CHECK(wf_procpool_register("crash", job_crash) == 0, "register");
    BENCH_CHECK(wf_procpool_register("spin", job_spin) == 0, "register");
    int e = wf_procpool_init();
    BENCH_CHECK(e == 0, "wf_procpool_init: %s", wf_strerror(e));
}

typedef struct {
    const bench_opts *o;
    double v[101], v2[101];
} pp_ctx;

static wf_procpool_t *pool_of(unsigned workers)
{
    wf_procpool_opts_t po;
    wf_procpool_opts_init(&po);
    po.workers = workers;
    po.eager = true;
    wf_procpool_t *p;
    int e = wf_procpool_open(&p, &po);
    BENCH_CHECK(e == 0, "open: %s", wf_strerror(e));
    e = wf_procpool_warm(p, wf_deadline_in(60 * WF_NSEC_PER_SEC));
    BENCH_CHECK(e == 0, "warm: %s", wf_strerror(e));
    return p;
}

static void pool_done(wf_procpool_t *p)
{
    int e = wf_procpool_close(p, WF_PROCPOOL_WAIT, WF_FOREVER);
    BENCH_CHECK(e == 0, "close: %s", wf_strerror(e));
}

/* --- procpool_rtt ------------------------------------------------------------------- */

enum { RTT_ONE = 10000, RTT_FIBERS = 64, RTT_PER_FIBER = 500, RAW_N = 10000 };

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The floor: a 24-byte request and a 24-byte reply between two processes
 * forked for it, blocking reads, RAW_N times; us per round trip. Forked
 * while no runtime runs (this process has one thread then). */
static double raw_pingpong(void)
{
    int sv[2];
    BENCH_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0, "socketpair");
    pid_t pid = fork();
    BENCH_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        close(sv[0]);
        char b[24];
        for (;;) {
            ssize_t r = read(sv[1], b, sizeof b);
            if (r <= 0)
                _exit(0);
            if (write(sv[1], b, (size_t)r) != r)
                _exit(1);
        }
    }
    close(sv[1]);
    char b[24] = {0};
    int64_t t0 = mono();
    for (int i = 0; i < RAW_N; i++) {
        memcpy(b, &i, sizeof i);
        BENCH_CHECK(write(sv[0], b, sizeof b) == (ssize_t)sizeof b, "write");
        int j = -1;
        BENCH_CHECK(read(sv[0], b, sizeof b) == (ssize_t)sizeof b, "read");
        memcpy(&j, b, sizeof j);
        BENCH_CHECK(j == i, "echo %d", j);
    }
    int64_t t1 = mono();
    close(sv[0]);
    int ws;
    waitpid(pid, &ws, 0);
    return (double)(t1 - t0) / 1000.0 / RAW_N;
}

typedef struct {
    wf_procpool_t *p;
    _Atomic long jobs;
} rtt_shared;

static int rtt_fiber(void *arg, void **res)
{
    (void)res;
    rtt_shared *s = arg;
    for (int i = 0; i < RTT_PER_FIBER; i++) {
        wf_procres_t r;
        int e = wf_procpool_run(s->p, "empty", NULL, 0, WF_FOREVER, &r);
        if (e || r.status)
            return e ? e : r.status;
        atomic_fetch_add_explicit(&s->jobs, 1, memory_order_relaxed);
    }
    return 0;
}

typedef struct {
    const bench_opts *o;
    double one, many;
} rtt_round;

static int rtt_main(void *arg, void **res)
{
    (void)res;
    rtt_round *rr = arg;
    wf_procpool_t *p = pool_of(bench_workers(rr->o));
    /* A warm-up: the workers' first jobs, the sockets' first waits. */
    for (int i = 0; i < 200; i++) {
        wf_procres_t r;
        BENCH_CHECK(wf_procpool_run(p, "empty", NULL, 0, WF_FOREVER, &r) == 0, "warm-up");
    }
    int64_t t0 = wf_now();
    for (int i = 0; i < RTT_ONE; i++) {
        wf_procres_t r;
        int e = wf_procpool_run(p, "empty", NULL, 0, WF_FOREVER, &r);
        BENCH_CHECK(e == 0 && r.status == 0 && r.len == 0, "empty job: %s", wf_strerror(e));
    }
    int64_t t1 = wf_now();
    rtt_shared s = {.p = p};
    atomic_init(&s.jobs, 0);
    wf_task_t t[RTT_FIBERS];
    int64_t t2 = wf_now();
    for (int i = 0; i < RTT_FIBERS; i++)
        BENCH_CHECK(wf_spawn(&t[i], rtt_fiber, &s, NULL) == 0, "spawn");
    for (int i = 0; i < RTT_FIBERS; i++) {
        int st = -1;
        BENCH_CHECK(wf_join(t[i], &st, NULL) == 0 && st == 0, "fiber: %s", wf_strerror(st));
    }
    int64_t t3 = wf_now();
    BENCH_CHECK(atomic_load(&s.jobs) == (long)RTT_FIBERS * RTT_PER_FIBER, "jobs %ld", atomic_load(&s.jobs));
    pool_done(p);
    rr->one = (double)(t1 - t0) / 1000.0 / RTT_ONE;
    rr->many = (double)(t3 - t2) / 1000.0 / ((double)RTT_FIBERS * RTT_PER_FIBER);
    return 0;
}

static int bench_rtt(const bench_opts *o)
{
    double raw[101], one[101], many[101];
    for (unsigned r = 0; r <= o->reps; r++) {
        /* Interleaved: the floor, then weft, in each round. */
        double rw = raw_pingpong();
        rtt_round rr = {.o = o};
        bench_run(o, rtt_main, &rr);
        if (r) {
            raw[r - 1] = rw;
            one[r - 1] = rr.one;
            many[r - 1] = rr.many;
        }
    }
    char extra[128];
    snprintf(extra, sizeof extra, "procs=%u,jobs=%d,fibers=64", bench_workers(o), RTT_FIBERS * RTT_PER_FIBER);
    bench_print("procpool_rtt", "us_per_job", bench_median(many, o->reps), "us", o, extra);
    snprintf(extra, sizeof extra, "procs=%u,jobs=%d,fibers=1", bench_workers(o), RTT_ONE);
    bench_print("procpool_rtt", "us_per_job_1", bench_median(one, o->reps), "us", o, extra);
    bench_opts ro = *o;
    ro.impl = "raw";
    bench_print("procpool_rtt", "us_per_job_1", bench_median(raw, o->reps), "us", &ro,
                "procs=2,round_trips=10000,fork_and_socketpair");
    return 0;
}

/* --- procpool_scale ----------------------------------------------------------------- */

/* 64 ranges of [0, 3,600,000): about 0.75 s for one worker on this
 * machine. The costliest ranges (the highest) go first, so that the last
 * jobs to finish are short ones and no worker idles long at the end
 * (Python's peer does the same). */
enum { SC_CHUNKS = 64 };
#define SC_LIMIT 3600000u
#define SC_PRIMES 256726u /* primes below 3,600,000 */

static double scale_pass(unsigned workers)
{
    wf_procpool_t *p = pool_of(workers);
    uint32_t ranges[SC_CHUNKS][2];
    wf_procin_t in[SC_CHUNKS];
    for (unsigned i = 0; i < SC_CHUNKS; i++) {
        unsigned k = SC_CHUNKS - 1 - i;
        ranges[i][0] = (uint32_t)((uint64_t)SC_LIMIT * k / SC_CHUNKS);
        ranges[i][1] = (uint32_t)((uint64_t)SC_LIMIT * (k + 1) / SC_CHUNKS);
        in[i].data = ranges[i];
        in[i].len = sizeof ranges[i];
    }
    wf_procres_t res[SC_CHUNKS];
    int errs[SC_CHUNKS];
    int64_t t0 = wf_now();
    BENCH_CHECK(wf_procpool_map(p, "primes", in, SC_CHUNKS, 2 * workers, WF_FOREVER, res, errs) == 0, "map");
    int64_t t1 = wf_now();
    uint64_t total = 0;
    for (unsigned i = 0; i < SC_CHUNKS; i++) {
        BENCH_CHECK(errs[i] == 0 && res[i].status == 0 && res[i].len == 4, "chunk %u: %s", i, wf_strerror(errs[i]));
        uint32_t c;
        memcpy(&c, res[i].out, 4);
        total += c;
        wf_procres_free(&res[i]);
    }
    BENCH_CHECK(total == SC_PRIMES, "%llu primes", (unsigned long long)total);
    pool_done(p);
    return (double)(t1 - t0) / 1e9;
}

static int scale_main(void *arg, void **res)
{
    (void)res;
    pp_ctx *c = arg;
    unsigned n = bench_workers(c->o);
    for (unsigned r = 0; r <= c->o->reps; r++) {
        double one = scale_pass(1), all = scale_pass(n);
        if (r) {
            c->v[r - 1] = one / all;
            c->v2[r - 1] = one;
        }
    }
    return 0;
}

static int bench_scale(const bench_opts *o)
{
    pp_ctx c = {.o = o};
    bench_run(o, scale_main, &c);
    char extra[128];
    snprintf(extra, sizeof extra, "procs=1_vs_%u,primes_below=3600000,chunks=64", bench_workers(o));
    bench_print("procpool_scale", "speedup", bench_median(c.v, o->reps), "x", o, extra);
    bench_print("procpool_scale", "s_one_worker", bench_median(c.v2, o->reps), "s", o, "procs=1");
    return 0;
}

/* --- procpool_big ------------------------------------------------------------------- */

#define BIG (64u << 20)
enum { BIG_JOBS = 8 };

static int big_main(void *arg, void **res)
{
    (void)res;
    pp_ctx *c = arg;
    unsigned char *in = malloc(BIG);
    BENCH_CHECK(in != NULL, "malloc");
    for (size_t i = 0; i < BIG; i++)
        in[i] = (unsigned char)(i * 131 + (i >> 12));
    wf_procpool_t *p = pool_of(1);
    for (unsigned r = 0; r <= c->o->reps; r++) {
        int64_t t0 = wf_now();
        for (int j = 0; j < BIG_JOBS; j++) {
            wf_procres_t out;
            int e = wf_procpool_run(p, "echo", in, BIG, WF_FOREVER, &out);
            BENCH_CHECK(e == 0 && out.len == BIG, "echo: %s, %zu bytes", wf_strerror(e), out.len);
            /* The output is checked every 4 KiB (one byte per page) and
             * at its last byte: reading it all would time the checker. */
            const unsigned char *o = out.out;
            for (size_t i = (size_t)j * 61; i < BIG; i += 4096)
                BENCH_CHECK(o[i] == in[i], "byte %zu", i);
            BENCH_CHECK(o[BIG - 1] == in[BIG - 1], "last byte");
            wf_procres_free(&out);
        }
        int64_t t1 = wf_now();
        if (r)
            c->v[r - 1] = (double)BIG * BIG_JOBS / (1u << 30) / ((double)(t1 - t0) / 1e9);
    }
    pool_done(p);
    free(in);
    return 0;
}

static int bench_big(const bench_opts *o)
{
    pp_ctx c = {.o = o};
    bench_run(o, big_main, &c);
    bench_print("procpool_big", "gib_per_s", bench_median(c.v, o->reps), "GiB/s", o,
                "procs=1,input=64MiB,echoed,jobs=8");
    return 0;
}

/* --- procpool_recover ---------------------------------------------------------------- */

enum { RC_N = 20 };

static int recover_main(void *arg, void **res)
{
    (void)res;
    pp_ctx *c = arg;
    wf_procpool_t *p = pool_of(1);
    double rep[RC_N], late[RC_N];
    for (unsigned r = 0; r <= c->o->reps; r++) {
        for (int i = 0; i < RC_N; i++) {
            /* A crash: from the caller's -ECHILD to a worker ready again. */
            wf_procres_t out;
            BENCH_CHECK(wf_procpool_run(p, "crash", NULL, 0, WF_FOREVER, &out) == -ECHILD, "crash");
            int64_t t0 = wf_now();
            BENCH_CHECK(wf_procpool_warm(p, wf_deadline_in(60 * WF_NSEC_PER_SEC)) == 0, "warm");
            rep[i] = (double)(wf_now() - t0) / 1e6;
            /* A job in a CPU loop stopped at a 20 ms deadline. */
            int64_t dl = wf_deadline_in(20 * WF_NSEC_PER_MSEC);
            BENCH_CHECK(wf_procpool_run(p, "spin", NULL, 0, dl, &out) == -ETIMEDOUT, "deadline");
            late[i] = (double)(wf_now() - dl) / 1e6;
            BENCH_CHECK(wf_procpool_warm(p, wf_deadline_in(60 * WF_NSEC_PER_SEC)) == 0, "warm");
        }
        if (r) {
            /* Each round's worst case. */
            double w1 = 0, w2 = 0;
            for (int i = 0; i < RC_N; i++) {
                w1 = rep[i] > w1 ? rep[i] : w1;
                w2 = late[i] > w2 ? late[i] : w2;
            }
            c->v[r - 1] = w1;
            c->v2[r - 1] = w2;
        }
    }
    pool_done(p);
    return 0;
}

static int bench_recover(const bench_opts *o)
{
    pp_ctx c = {.o = o};
    bench_run(o, recover_main, &c);
    bench_print("procpool_recover", "ms_to_replace", bench_median(c.v, o->reps), "ms", o,
                "worst_of_20_crashes_per_round");
    bench_print("procpool_recover", "ms_late", bench_median(c.v2, o->reps), "ms", o,
                "worst_of_20_deadlines_of_20ms_per_round");
    return 0;
}

const bench_def bench_procpool[] = {
    {"procpool_rtt", "process pool: an empty job's round trip (1 fiber; 64 in flight), and a raw ping-pong",
     bench_rtt},
    {"procpool_scale", "process pool: prime counting on 1 worker vs one per CPU (speedup)", bench_scale},
    {"procpool_big", "process pool: 64 MiB inputs echoed back (GiB/s)", bench_big},
    {"procpool_recover", "process pool: a crashed worker's replacement, and a deadline's lateness (ms)",
     bench_recover},
};
const unsigned bench_procpool_n = sizeof bench_procpool / sizeof bench_procpool[0];
