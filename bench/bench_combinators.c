/* bench_combinators.c - benchmarks of the combinators subsystem. */
#include "bench.h"

const bench_def bench_combinators[] = {
    {NULL, NULL, NULL},
};
const unsigned bench_combinators_n = 0;
