/* bench_combinators.c - benchmarks of the combinators subsystem:
 *   gather     1,000 gathers of 1,000 empty tasks each (spawn + wf_gather)
 *   taskgroup  the same through task groups (init, wf_group_spawn x 1,000,
 *              wf_group_wait)
 * Both report the cost per task, spawn included, as the Go peers
 * (bench/peers/go/peer_combinators.go) do with goroutines and an
 * errgroup-like WaitGroup. Each task hands back its index, and each round
 * checks every one, outside the timed part (one clock read per round). */
#include "bench.h"

#include <stdlib.h>

enum { TASKS = 1000, ROUNDS = 1000 };

typedef struct {
    const bench_opts *o;
    double v[101];
    intptr_t *slots; /* taskgroup: where each task writes its index */
} combo_ctx;

static int empty_task(void *arg, void **res)
{
    *res = arg;
    return 0;
}

/* --- gather ------------------------------------------------------------------ */

static int gather_main(void *arg, void **res)
{
    combo_ctx *c = arg;
    wf_task_t *t = malloc(sizeof *t * TASKS);
    wf_outcome_t *out = malloc(sizeof *out * TASKS);
    BENCH_CHECK(t && out, "malloc");
    for (unsigned r = 0; r <= c->o->reps; r++) {
        double busy = 0;
        for (int k = 0; k < ROUNDS; k++) {
            int64_t t0 = wf_now();
            for (intptr_t i = 0; i < TASKS; i++)
                BENCH_CHECK(wf_spawn(&t[i], empty_task, (void *)i, NULL) == 0, "spawn %ld", (long)i);
            int g = wf_gather(t, TASKS, 0, WF_FOREVER, out, NULL);
            busy += (double)(wf_now() - t0);
            BENCH_CHECK(g == 0, "gather: %d", g);
            for (intptr_t i = 0; i < TASKS; i++)
                BENCH_CHECK(out[i].status == 0 && out[i].result == (void *)i, "task %ld", (long)i);
        }
        if (r)
            c->v[r - 1] = busy / ((double)ROUNDS * TASKS);
    }
    free(out);
    free(t);
    return 0;
}

static int bench_gather(const bench_opts *o)
{
    combo_ctx c = {.o = o};
    bench_run(o, gather_main, &c);
    bench_print("gather", "ns_per_task", bench_median(c.v, o->reps), "ns", o, "tasks=1000,gathers=1000");
    return 0;
}

/* --- taskgroup ------------------------------------------------------------------ */

/* Each task writes its index into its slot (the group reports failures
 * only; results stay with the tasks, as in asyncio). */
static intptr_t *group_slots;

static int slot_task(void *arg, void **res)
{
    intptr_t i = (intptr_t)arg;
    group_slots[i] = i;
    return 0;
}

static int group_main(void *arg, void **res)
{
    combo_ctx *c = arg;
    group_slots = malloc(sizeof *group_slots * TASKS);
    BENCH_CHECK(group_slots, "malloc");
    for (unsigned r = 0; r <= c->o->reps; r++) {
        double busy = 0;
        for (int k = 0; k < ROUNDS; k++) {
            for (int i = 0; i < TASKS; i++)
                group_slots[i] = -1;
            int64_t t0 = wf_now();
            wf_group_t g;
            BENCH_CHECK(wf_group_init(&g) == 0, "group init");
            for (intptr_t i = 0; i < TASKS; i++)
                BENCH_CHECK(wf_group_spawn(&g, NULL, slot_task, (void *)i, NULL) == 0, "spawn %ld", (long)i);
            int n = wf_group_wait(&g, NULL, 0);
            BENCH_CHECK(n == 0, "group wait: %d", n);
            busy += (double)(wf_now() - t0);
            for (intptr_t i = 0; i < TASKS; i++)
                BENCH_CHECK(group_slots[i] == i, "task %ld", (long)i);
        }
        if (r)
            c->v[r - 1] = busy / ((double)ROUNDS * TASKS);
    }
    free(group_slots);
    return 0;
}

static int bench_taskgroup(const bench_opts *o)
{
    combo_ctx c = {.o = o};
    bench_run(o, group_main, &c);
    bench_print("taskgroup", "ns_per_task", bench_median(c.v, o->reps), "ns", o, "tasks=1000,groups=1000");
    return 0;
}

const bench_def bench_combinators[] = {
    {"gather", "1,000 gathers of 1,000 empty tasks (spawn + wf_gather)", bench_gather},
    {"taskgroup", "1,000 task groups of 1,000 empty tasks (wf_group_spawn + wf_group_wait)", bench_taskgroup},
};
const unsigned bench_combinators_n = sizeof bench_combinators / sizeof bench_combinators[0];
