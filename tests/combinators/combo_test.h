/* combo_test.h - task bodies and helpers shared by the combinator tests.
 *
 * A "gate" is a future used as an event: children park on it until the
 * test opens it (wf_future_set), so tests control who ends when without
 * guessing at sleeps.
 */
#ifndef WF_COMBO_TEST_H
#define WF_COMBO_TEST_H

#include "common.h"

#include <pthread.h>

/* A child that returns its argument as its result. */
static inline int ret_arg(void *arg, void **res)
{
    *res = arg;
    return 0;
}

/* A child that fails with the status passed as its argument. */
static inline int ret_status(void *arg, void **res)
{
    *res = (void *)0x5a5a;
    return (int)(intptr_t)arg;
}

/* A scripted child: waits for `gate` (if any), then counts itself in
 * `ran` and returns `status` with the spec as its result; if its wait is
 * cancelled it counts itself in `cancelled` and returns -ECANCELED. The
 * spec must outlive the child. */
typedef struct child_spec {
    wf_future_t *gate;
    int status;
    _Atomic long *ran;
    _Atomic long *cancelled;
    _Atomic long *started; /* counted on entry */
    const char *seen_msg;  /* the cancellation message it saw */
} child_spec;

static inline int child_body(void *arg, void **res)
{
    child_spec *c = arg;
    if (c->started)
        atomic_fetch_add(c->started, 1);
    if (c->gate) {
        int r = wf_future_wait(c->gate, WF_FOREVER, NULL, NULL);
        if (r == -ECANCELED) {
            wf_cancel_message(wf_self(), &c->seen_msg);
            if (c->cancelled)
                atomic_fetch_add(c->cancelled, 1);
            return -ECANCELED;
        }
        if (r != 0)
            return r;
    }
    if (c->ran)
        atomic_fetch_add(c->ran, 1);
    *res = c;
    return c->status;
}

/* A child that sleeps `arg` ns (NULL: an hour, i.e. until cancelled). */
static inline int sleep_forever(void *arg, void **res)
{
    int r = wf_sleep(arg ? (int64_t)(intptr_t)arg : 3600 * WF_NSEC_PER_SEC);
    return r == 0 ? 0 : r;
}

static inline wf_future_t *gate_new(void)
{
    wf_future_t *f = NULL;
    CHECK_EQ(wf_future_create(&f), 0);
    return f;
}

static inline void gate_open(wf_future_t *f)
{
    CHECK_EQ(wf_future_set(f, 0, NULL), 0);
}

/* A handle is dead (its reference was consumed). */
static inline bool handle_dead(wf_task_t t)
{
    return wf_task_done(t) == -EINVAL;
}

/* Generous deadline for "this must happen" waits (never reached when the
 * code is right). */
#define LONG_NS (30 * WF_NSEC_PER_SEC)

#endif
