/* bench.h - the weft-bench harness.
 *
 * Every benchmark verifies its own result (a wrong result exits non-zero)
 * and prints one line per figure, exactly:
 *     NAME IMPL METRIC VALUE UNIT [key=value,...]
 * IMPL is weft, except for the server benchmarks (bench_net.c), which
 * measure a server process of any implementation (--impl weft|go|tokio).
 * Figures are the median of several timed repetitions after one warm-up,
 * because this machine is shared and noisy; the line says how many.
 */
#ifndef WF_BENCH_H
#define WF_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

typedef struct bench_opts {
    unsigned workers; /* 0: one per CPU */
    unsigned reps;    /* timed repetitions */
    /* Only for the server benchmarks (the bench_net table), whose
     * default is one repetition: */
    const char *impl;   /* weft, go or tokio: the line's IMPL; NULL: weft */
    const char *server; /* the server to start; NULL: weft's example */
    bool strace;        /* echo: count the server's system calls with strace instead */
    bool perf;          /* echo: count them with perf's counters instead */
} bench_opts;

typedef struct bench_def {
    const char *name;
    const char *what;
    int (*run)(const bench_opts *o);
} bench_def;

/* Fail the benchmark: the result was wrong. */
#define BENCH_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "weft-bench: check failed: %s: ", #cond);                              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

double bench_median(double *v, unsigned n);
void bench_print(const char *name, const char *metric, double value, const char *unit,
                 const bench_opts *o, const char *extra);
/* Run fn(arg) as the main task of a runtime with o's worker count;
 * BENCH_CHECKs that it returns 0. */
void bench_run(const bench_opts *o, wf_fn fn, void *arg);
long bench_rss_kib(void);
unsigned bench_workers(const bench_opts *o);

/* One table per subsystem (bench_core.c, bench_combinators.c,
 * bench_sync.c, bench_net.c); weft-bench.c lists them all. */
extern const bench_def bench_core[];
extern const unsigned bench_core_n;
extern const bench_def bench_combinators[];
extern const unsigned bench_combinators_n;
extern const bench_def bench_sync[];
extern const unsigned bench_sync_n;
extern const bench_def bench_net[];
extern const unsigned bench_net_n;

#endif
