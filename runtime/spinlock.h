/* spinlock.h - a test-and-test-and-set lock for critical sections of a few
 * dozen instructions (wait lists, per-fd records, timer wheels).
 *
 * Holders never block, park or call user code while holding one, so spinning
 * is bounded by another thread's short critical section. After a while of
 * spinning we sched_yield() so that a holder preempted by the OS on this
 * over-committed 2-core machine gets the CPU back.
 */
#ifndef WF_SPINLOCK_H
#define WF_SPINLOCK_H

#include "atomic.h"
#include <sched.h>

typedef struct {
    atomic_uint v;
} wf__spinlock;

#define WF__SPINLOCK_INIT {0}

static inline void wf__spin_init(wf__spinlock *l)
{
    atomic_init(&l->v, 0);
}

static inline bool wf__spin_trylock(wf__spinlock *l)
{
    /* acquire: pairs with the release in wf__spin_unlock, so everything the
     * previous holder wrote is visible to us. */
    return atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
           atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0;
}

static inline void wf__spin_lock(wf__spinlock *l)
{
    if (wf__likely(atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0))
        return;
    for (unsigned n = 0;; n++) {
        /* Spin on a plain load so the line stays shared until it is free. */
        while (atomic_load_explicit(&l->v, memory_order_relaxed) != 0) {
            if (++n < 128)
                wf__cpu_relax();
            else
                sched_yield();
        }
        if (atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0)
            return;
    }
}

static inline void wf__spin_unlock(wf__spinlock *l)
{
    /* release: publishes the critical section to the next acquirer. */
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

#endif
