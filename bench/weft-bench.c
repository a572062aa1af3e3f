/* weft-bench - run one benchmark: weft-bench NAME [--workers N] [--reps R]
 * `weft-bench list` names them all. The server benchmarks (bench_net.c)
 * also take --impl weft|go|tokio, --server PATH and (echo) --strace or
 * --perf. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

unsigned bench_workers(const bench_opts *o)
{
    if (o->workers)
        return o->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

void bench_print(const char *name, const char *metric, double value, const char *unit,
                 const bench_opts *o, const char *extra)
{
    printf("%s %s %s %.*f %s workers=%u,reps=%u%s%s\n", name, o->impl ? o->impl : "weft", metric,
           value < 100 ? 2 : 0, value, unit, bench_workers(o), o->reps, extra && *extra ? "," : "",
           extra ? extra : "");
    fflush(stdout);
}

void bench_run(const bench_opts *o, wf_fn fn, void *arg)
{
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = o->workers;
    int status = -1;
    int e = wf_run(&cfg, fn, arg, &status, NULL);
    BENCH_CHECK(e == 0, "wf_run: %s", wf_strerror(e));
    BENCH_CHECK(status == 0, "main task: %s", wf_strerror(status));
}

long bench_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static const struct {
    const bench_def *defs;
    const unsigned *n;
    bool server; /* its benchmarks measure a server process (bench_net.c) */
} tables[] = {
    {bench_core, &bench_core_n, false},
    {bench_combinators, &bench_combinators_n, false},
    {bench_sync, &bench_sync_n, false},
    {bench_net, &bench_net_n, true},
};
#define NTABLES (sizeof tables / sizeof tables[0])

static const bench_def *find(const char *name, bool *server)
{
    for (unsigned t = 0; t < NTABLES; t++)
        for (unsigned i = 0; i < *tables[t].n; i++)
            if (!strcmp(tables[t].defs[i].name, name)) {
                *server = tables[t].server;
                return &tables[t].defs[i];
            }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: weft-bench NAME [--workers N] [--reps R]\n"
                    "       weft-bench echo|http|conns [--workers N] [--reps R] [--impl weft|go|tokio]\n"
                    "                  [--server PATH] [--strace | --perf (echo only)]\n"
                    "       weft-bench list\n");
    exit(64);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (!strcmp(argv[1], "list")) {
        for (unsigned t = 0; t < NTABLES; t++)
            for (unsigned i = 0; i < *tables[t].n; i++)
                printf("%-12s %s\n", tables[t].defs[i].name, tables[t].defs[i].what);
        return 0;
    }
    bool server = false;
    const bench_def *b = find(argv[1], &server);
    if (!b) {
        fprintf(stderr, "weft-bench: no benchmark named '%s' (try: weft-bench list)\n", argv[1]);
        return 64;
    }
    /* A server benchmark makes one measurement of one server process by
     * default; scripts/netbench interleaves the implementations. */
    bench_opts o = {.workers = 0, .reps = server ? 1 : 5};
    bool server_opt = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            o.workers = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            o.reps = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--impl") && i + 1 < argc)
            o.impl = argv[++i], server_opt = true;
        else if (!strcmp(argv[i], "--server") && i + 1 < argc)
            o.server = argv[++i], server_opt = true;
        else if (!strcmp(argv[i], "--strace"))
            o.strace = true, server_opt = true;
        else if (!strcmp(argv[i], "--perf"))
            o.perf = true, server_opt = true;
        else
            usage();
    }
    if (o.reps == 0 || o.reps > 101)
        usage();
    if (server_opt && !server) {
        fprintf(stderr,
                "weft-bench: %s measures weft itself: --impl, --server, --strace and --perf are "
                "for the server benchmarks\n",
                b->name);
        return 64;
    }
    if (o.impl && strcmp(o.impl, "weft") && strcmp(o.impl, "go") && strcmp(o.impl, "tokio"))
        usage();
    return b->run(&o);
}
