/* bench_sync.c - benchmarks of the sync subsystem. */
#include "bench.h"

const bench_def bench_sync[] = {
    {NULL, NULL, NULL},
};
const unsigned bench_sync_n = 0;
