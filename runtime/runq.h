/* runq.h - a worker's local run queue: a `next` slot and a bounded ring.
 *
 * Split by caller, as Go's runqput/runqget/runqsteal and tokio's
 * Local/Steal are:
 *   OWNER ONLY  wf__runq_push, wf__runq_pop, wf__runq_put_next,
 *               wf__runq_take_next, wf__runq_len
 *   ANY THREAD  wf__runq_steal_into (the thief's own queue must be empty and
 *               owned by the caller), wf__runq_steal_next, wf__runq_maybe_empty
 *
 * RING. head and tail are free-running 32-bit counters; slots are
 * ring[counter % CAP]. Only the owner writes tail and slots; head moves by
 * CAS, by the owner's pop and by thieves. A thief reads a run of slots, then
 * claims them with one CAS on head; if the CAS fails the copy is discarded
 * and it tries again, so an entry is taken exactly once. Slots are atomics
 * read relaxed so that a thief's read racing the owner's overwrite of a slot
 * it will fail to claim is not a data race.
 *
 * NEXT SLOT. The task a running fiber just woke goes here, so the token in a
 * ping-pong stays on one core, hot in cache. It can be stolen, but only on a
 * thief's last pass over an empty ring (tokio's unstealable LIFO slot gave
 * its users 20x slowdowns), and the scheduler caps consecutive runs from it
 * (sched.c) so two fibers bouncing through it cannot starve the ring.
 *
 * WOKEN ENTRIES. A task that a running fiber woke goes to the next slot,
 * and the one it displaces to the ring: such entries are a conversation
 * between this worker's fibers (a channel's producers and consumers), best
 * left on this core while the owner gets through them (sched.c, "stealing
 * with a grace period"). The owner records, in plain_end, where the newest
 * other entry is; an entry at or past head below plain_end means the ring
 * holds work that is not such a conversation. Entries leave the ring in
 * order, so one counter suffices: no per-entry flag, no read of a task a
 * thief does not own.
 *
 * WF_RUNQ_LOG2 can be lowered at build time so tests can exercise the
 * overflow and steal paths with a tiny ring (tokio shrinks its queue to 4
 * slots under loom for the same reason).
 */
#ifndef WF_RUNQ_H
#define WF_RUNQ_H

#include "atomic.h"
#include "task.h"

#ifndef WF_RUNQ_LOG2
#define WF_RUNQ_LOG2 8
#endif
#define WF__RUNQ_CAP (1u << WF_RUNQ_LOG2)
#define WF__RUNQ_MASK (WF__RUNQ_CAP - 1)

typedef struct wf__runq {
    WF_ALIGNED_CL _Atomic uint32_t head;
    WF_ALIGNED_CL _Atomic uint32_t tail;
    /* One past the newest ring entry that is not a task woken by this
     * worker's fibers (a spawn, a yield, I/O, a steal): see WOKEN below.
     * Written by the owner, read by thieves; in tail's line, which both
     * touch anyway. */
    _Atomic uint32_t plain_end;
    _Atomic(wf__task *) next;
    WF_ALIGNED_CL _Atomic(wf__task *) ring[WF__RUNQ_CAP];
} wf__runq;

void wf__runq_init(wf__runq *q);

/* Owner: append `t` if there is room; false when the ring is full. */
static inline bool wf__runq_try_push(wf__runq *q, wf__task *t)
{
    /* acquire: pairs with the release CAS of consumers, so the slots they
     * freed are really free before we overwrite them. */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed); /* owner's own */
    if (wf__unlikely(tl - h >= WF__RUNQ_CAP))
        return false;
    atomic_store_explicit(&q->ring[tl & WF__RUNQ_MASK], t, memory_order_relaxed);
    /* release: publishes the slot (and the task's fields) to thieves, who
     * load tail with acquire. */
    atomic_store_explicit(&q->tail, tl + 1, memory_order_release);
    return true;
}

/* Owner: append `t`. If the ring is full, half of it plus `t` are moved to
 * `overflow` (the caller sends that batch to the inject queue) and false is
 * returned. */
static inline bool wf__runq_push(wf__runq *q, wf__task *t, wf__batch *overflow)
{
    for (;;) {
        /* acquire: pairs with the release CAS of consumers, so the slots they
         * freed are really free before we overwrite them. */
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed); /* owner's own */
        if (tl - h < WF__RUNQ_CAP) {
            atomic_store_explicit(&q->ring[tl & WF__RUNQ_MASK], t, memory_order_relaxed);
            /* release: publishes the slot (and the task's fields) to thieves,
             * who load tail with acquire. */
            atomic_store_explicit(&q->tail, tl + 1, memory_order_release);
            return true;
        }
        /* Full: claim the older half in one CAS and hand it to the caller. */
        uint32_t n = WF__RUNQ_CAP / 2;
        wf__task *grab[WF__RUNQ_CAP / 2];
        for (uint32_t i = 0; i < n; i++)
            grab[i] = atomic_load_explicit(&q->ring[(h + i) & WF__RUNQ_MASK], memory_order_relaxed);
        /* acq_rel: as a consumer's CAS (release frees the slots) and acquire
         * of the thieves' earlier head moves. */
        if (!atomic_compare_exchange_strong_explicit(&q->head, &h, h + n, memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue; /* a thief took some: there is room now */
        for (uint32_t i = 0; i < n; i++)
            wf__batch_push(overflow, grab[i]);
        wf__batch_push(overflow, t);
        return false;
    }
}

/* Owner: the entries now in the ring count as plain work, stealable at
 * once (WOKEN ENTRIES above). */
static inline void wf__runq_mark_plain(wf__runq *q)
{
    /* relaxed: a placement hint; a thief reading a stale value only
     * steals a little sooner or later. */
    atomic_store_explicit(&q->plain_end, atomic_load_explicit(&q->tail, memory_order_relaxed),
                          memory_order_relaxed);
}

/* Owner, now and then (the fairness tick, at most 61 pops apart): keep
 * plain_end within 2^30 of head, so that the signed distance read by
 * wf__runq_only_woken cannot wrap after 2^31 pops of woken tasks alone.
 * A plain_end that far behind means every entry in the ring is a woken
 * one, which plain_end = head still says. */
static inline void wf__runq_plain_catch_up(wf__runq *q)
{
    /* relaxed: a hint, as in wf__runq_mark_plain; head may have moved on
     * since, which leaves plain_end behind it, still saying the same. */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t end = atomic_load_explicit(&q->plain_end, memory_order_relaxed);
    if ((int32_t)(h - end) > (int32_t)(1u << 30))
        atomic_store_explicit(&q->plain_end, h, memory_order_relaxed);
}

/* Any thread: whether the entries from `head` on are all tasks woken by the
 * owner's fibers (a hint, as above). */
static inline bool wf__runq_only_woken(wf__runq *q, uint32_t head)
{
    uint32_t end = atomic_load_explicit(&q->plain_end, memory_order_relaxed);
    return (int32_t)(end - head) <= 0;
}

/* Owner: take the oldest ring entry, or NULL. */
static inline wf__task *wf__runq_pop(wf__runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    for (;;) {
        uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (h == tl)
            return NULL;
        wf__task *t = atomic_load_explicit(&q->ring[h & WF__RUNQ_MASK], memory_order_relaxed);
        /* release: the slot is free for the owner's next lap; on failure
         * (a thief moved head) acquire the new head and retry. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_release,
                                                  memory_order_acquire))
            return t;
    }
}

/* Owner: put `t` in the next slot; returns the task it displaced (which the
 * caller pushes to the ring), or NULL. */
static inline wf__task *wf__runq_put_next(wf__runq *q, wf__task *t)
{
    /* Only the owner ever makes the slot non-NULL; thieves only CAS it from
     * a task to NULL. So when this relaxed load (the owner reads its own
     * latest store, or a thief's NULL after it) finds the slot empty, it
     * stays empty until our store below, and a plain store suffices: no
     * locked instruction in the ping-pong's wake-then-park path. */
    if (wf__likely(!atomic_load_explicit(&q->next, memory_order_relaxed))) {
        /* release: publishes t (its fields, its saved context) to a thief's
         * acquire CAS and to the owner's take. */
        atomic_store_explicit(&q->next, t, memory_order_release);
        return NULL;
    }
    /* Occupied: a thief may take the old task at any moment, so swap.
     * acq_rel: release publishes t to a thief's acquire CAS; acquire makes
     * the displaced task's fields (published by whoever put it) visible. */
    return atomic_exchange_explicit(&q->next, t, memory_order_acq_rel);
}

/* Owner: empty the next slot. */
static inline wf__task *wf__runq_take_next(wf__runq *q)
{
    /* A relaxed peek first: the slot is empty most of the time in
     * throughput workloads, and the exchange is a locked instruction. */
    if (!atomic_load_explicit(&q->next, memory_order_relaxed))
        return NULL;
    return atomic_exchange_explicit(&q->next, NULL, memory_order_acquire);
}

/* Owner: entries in the ring (exact for the owner, up to concurrent steals). */
static inline uint32_t wf__runq_len(wf__runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);
    return tl - h;
}

/* Any thread: a hint that the ring and next slot are empty. */
static inline bool wf__runq_maybe_empty(wf__runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&q->tail, memory_order_acquire);
    return h == tl && !atomic_load_explicit(&q->next, memory_order_acquire);
}

/* Thief: move half (rounded up) of `victim`'s ring into `dst`, which must be
 * the caller's own, empty, queue. Returns one of the stolen tasks to run
 * now (the rest are in dst's ring), or NULL. */
wf__task *wf__runq_steal_into(wf__runq *victim, wf__runq *dst);

/* Thief, last pass: take `victim`'s next slot. */
wf__task *wf__runq_steal_next(wf__runq *victim);

#endif
