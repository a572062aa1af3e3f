/* wait_set.h - the set of gated children that test_wait.c (wf_wait) and
 * test_wait_split.c (wf_wait_split) run the same cases on.
 */
#ifndef WF_WAIT_SET_H
#define WF_WAIT_SET_H

#include "combo_test.h"

enum { N = 6 }; /* children in a set */

typedef struct {
    wf_future_t *gate;
    child_spec spec[N];
    wf_task_t t[N];
    _Atomic long ran, cancelled, started;
} set_ctx;

/* Spawn N gated children; child `quick` (if >= 0) does not wait and
 * returns `quick_status`. */
static inline void spawn_set(set_ctx *c, int quick, int quick_status)
{
    c->gate = gate_new();
    atomic_store(&c->ran, 0);
    atomic_store(&c->cancelled, 0);
    atomic_store(&c->started, 0);
    for (int i = 0; i < N; i++) {
        c->spec[i] = (child_spec){.gate = i == quick ? NULL : c->gate,
                                  .status = i == quick ? quick_status : 0,
                                  .ran = &c->ran,
                                  .cancelled = &c->cancelled,
                                  .started = &c->started};
        CHECK_EQ(wf_spawn(&c->t[i], child_body, &c->spec[i], NULL), 0);
    }
}

/* Open the gate (unless the test did) and join every child: every
 * reference was still ours, and nothing was cancelled except child
 * `cancelled_one` (-1: none). */
static inline void finish_set(set_ctx *c, int quick, int quick_status, int cancelled_one)
{
    if (wf_future_done(c->gate) == 0)
        gate_open(c->gate);
    for (int i = 0; i < N; i++) {
        int st = -1;
        CHECK_EQ(wf_join(c->t[i], &st, NULL), 0);
        CHECK_EQ(st, i == quick ? quick_status : i == cancelled_one ? -ECANCELED : 0);
    }
    CHECK_EQ(atomic_load(&c->cancelled), cancelled_one >= 0);
    CHECK_EQ(atomic_load(&c->ran), N - (cancelled_one >= 0));
    wf_future_release(c->gate);
}

#endif
