/* spinlock.h - a test-and-test-and-set lock for critical sections of a few
 * dozen instructions (wait lists, per-fd records, timer wheels).
 *
 * Holders never block, park or call user code while holding one, so spinning
 * is bounded by another thread's short critical section. After a while of
 * spinning we sched_yield() so that a holder preempted by the OS on this
 * over-committed 2-core machine gets the CPU back. Waiters back off
 * exponentially between looks (below).
 */
#ifndef WF_SPINLOCK_H
#define WF_SPINLOCK_H

#include "atomic.h"
#include <sched.h>

typedef struct {
    atomic_uint v;
} wf__spinlock;

#define WF__SPINLOCK_INIT {0}

/* Pauses between two looks at a busy lock, at most; and the pauses spent
 * in all before a waiter yields its CPU instead (a critical section is
 * well under a microsecond; a wait of several means a preempted holder). */
#ifndef WF__SPIN_BACKOFF_MAX
#define WF__SPIN_BACKOFF_MAX 64u
#endif
#ifndef WF__SPIN_HOT_BACKOFF_MAX
#define WF__SPIN_HOT_BACKOFF_MAX 1024u
#endif
#define WF__SPIN_YIELD_AFTER 1024u

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

/* Takes the lock, backing off between looks up to `max_backoff` pauses. */
static inline void wf__spin_lock_backoff(wf__spinlock *l, unsigned max_backoff)
{
    if (wf__likely(atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0))
        return;
    unsigned backoff = 1, spent = 0;
    for (;;) {
        /* Spin on a plain load so the line stays shared until it is free,
         * and look less often the longer it stays busy (1, 2, 4 ... up to
         * max_backoff pauses between looks). Every look takes the line
         * back from the holder; looking less lets the holder run several
         * critical sections in a row with the line in its own cache: on a
         * contended queue across two cores this took mpmc from 14 to 23 M
         * items/s (bench/, 2 workers). */
        while (atomic_load_explicit(&l->v, memory_order_relaxed) != 0) {
            if (spent < WF__SPIN_YIELD_AFTER) {
                for (unsigned i = 0; i < backoff; i++)
                    wf__cpu_relax();
                spent += backoff;
                if (backoff < max_backoff)
                    backoff <<= 1;
            } else {
                sched_yield(); /* the holder was likely preempted */
            }
        }
        if (atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0)
            return;
    }
}

static inline void wf__spin_lock(wf__spinlock *l)
{
    wf__spin_lock_backoff(l, WF__SPIN_BACKOFF_MAX);
}

/* For a lock that is the whole of a hot path run back to back from several
 * cores (a channel's put and get): waiters back off further, so the
 * holder's core runs longer stretches of critical sections with the line
 * in its cache, at the price of a waiter's latency: a look every
 * WF__SPIN_HOT_BACKOFF_MAX pauses at worst (a pause is 26 ns on this
 * machine's KVM guest, so 27 us) before it yields at each look. Go's
 * channel lock is harsher still: a waiter sleeps on a futex after a few
 * spins. mpmc on 2 workers, 7 interleaved rounds of --reps 3: 41 [39-44] M
 * items/s with the plain backoff (64), 48 [42-50] with this one. */
static inline void wf__spin_lock_hot(wf__spinlock *l)
{
    wf__spin_lock_backoff(l, WF__SPIN_HOT_BACKOFF_MAX);
}

static inline void wf__spin_unlock(wf__spinlock *l)
{
    /* release: publishes the critical section to the next acquirer. */
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

#endif
