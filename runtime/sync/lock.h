/* lock.h - the lock's internals, shared with the condition variable
 * (condition.c), which releases and re-takes its lock around a wait. */
#ifndef WF_SYNC_LOCK_H
#define WF_SYNC_LOCK_H

#include "wait.h"

#include <weft/sync.h>

typedef struct wf__lock {
    uint32_t dead;    /* WF__SYNC_DEAD once destroyed */
    wf__spinlock sl;  /* protects everything below */
    uint64_t owner;   /* the holder's task id, 0 if free: see lock.c */
    uint32_t nwait;   /* wait.h */
    wf__link waiters; /* wf__waitnode, in arrival order */
} wf__lock;

_Static_assert(sizeof(wf__lock) <= sizeof(wf_lock_t), "wf_lock_t storage too small");
_Static_assert(_Alignof(wf__lock) <= _Alignof(wf_lock_t), "wf_lock_t alignment");

static inline wf__lock *wf__lock_of(wf_lock_t *l)
{
    return (wf__lock *)(void *)l->opaque;
}

/* Acquire for `self` (a fiber). `flags`: WF__PARK_NOCANCEL for a wait that
 * cancellation must not interrupt (a condition re-taking its lock). */
int wf__lock_acquire(wf__lock *l, wf__task *self, int64_t deadline, unsigned flags);

/* Release by `self`: -EPERM unless `self` holds it, -EINVAL if destroyed. */
int wf__lock_release(wf__lock *l, wf__task *self);

#endif
