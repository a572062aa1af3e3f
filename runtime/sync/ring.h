/* ring.h - the bounded FIFO queue's ring: a fast path without a lock, and
 * the two bits that send every operation to the locked slow path while a
 * task waits.
 *
 * WHY. A put and a get of a bounded FIFO queue used to take the queue's one
 * spinlock, so every item moved that lock's cache line between the cores of
 * its producer and its consumer (bench/bench_sync.c, mpmc). Here a put
 * touches the producers' word (`tail`) and one slot, a get the consumers'
 * word (`head`) and one slot: producers and consumers on different cores
 * share only the slot that carries the item. The lock, the waiter lists and
 * the hand-over at the deciding CAS (queue_impl.h, wait.h) stay exactly as
 * they were, for the moments when someone must wait or be woken.
 *
 * THE RING is crossbeam's ArrayQueue (itself Vyukov's bounded MPMC queue
 * with laps, so that any capacity works without a division): `cap` slots,
 * each {stamp, item}. Positions are stamps: (lap + index) << 2, where index
 * is 0 .. cap-1 and lap a multiple of one_lap, the power of two above cap;
 * the two low bits of `tail` and `head` are FLAGS (below), and a slot's
 * stamp uses the low bit as "full". For position p (flags clear):
 *   slot[index(p)].stamp == p          the slot is free for the put at p
 *   slot[index(p)].stamp == p + 1      it holds the item put at p
 *   ... and a get at p frees it for the next lap: stamp = p + LAP.
 * `tail` is the next position to put at, `head` the next to take from; the
 * queue holds total(tail) - total(head) items (total(): lap * cap + index).
 * A stamp wraps after 2^62 positions (at least 2^61 items, decades at a
 * billion items a second); the counts of task_done/join assume it never
 * does.
 *
 * FLAGS, in the low bits of `tail` and `head`, changed only by a holder of
 * the queue's lock:
 *   WAIT  (tail and head) the ends are FROZEN: a task waits in a put or a get
 *         (or the lock holder is deciding whether one must), so every put and
 *         get goes to the slow path, under the lock, where the waiter lists
 *         are. Set on both ends together, cleared together.
 *   SHUT  (tail) the queue is shut down: every put goes to the slow path and
 *         fails there. Set once, never cleared.
 *
 * FAST PUT (ring_put), from any thread, without the lock:
 *  P1. t = tail (relaxed: the CAS in P3 validates it). If t has a flag, go
 *      to the slow path.
 *  P2. s = slot[index(t)].stamp, acquire: pairs with G4's release by the
 *      get that emptied this slot one lap ago, so that get's read of the
 *      old item happens before our write of the new one.
 *      - s == t: the slot is free, go on to P3.
 *      - s + LAP == t + 1: the slot still holds the item of the previous
 *        lap. If head + LAP == t (the last get has not passed it), the ring
 *        is FULL: that head load is the linearisation point of a "full"
 *        answer (no put can claim t before the slot is freed, so tail == t
 *        then). Otherwise a get has claimed the slot and is reading it: spin
 *        and retry from P1.
 *      - anything else: another put claimed t first; retry from P1.
 *  P3. CAS tail: t -> next(t), relaxed. This claims position t, and it is
 *      where a put meets the flags: the CAS compares the whole word, so it
 *      fails if WAIT or SHUT was set since P1 (retry from P1, which sees
 *      it). Relaxed: the CAS publishes nothing; the item is published by P4,
 *      and the lock holder that freezes the ring learns positions from its
 *      own RMW on this word (F1), which reads the latest value.
 *  P4. slot.item = x (plain: the slot is ours since P3); stamp = t + 1,
 *      release: pairs with G2's acquire (and the lock holder's L2), which
 *      then see x.
 *
 * FAST GET (ring_get), symmetric:
 *  G1. h = head (relaxed). A flag: slow path.
 *  G2. s = slot[index(h)].stamp, acquire: pairs with P4 (or L1).
 *      - s == h + 1: the item put at h is there, go on to G3.
 *      - s == h: nothing put at h yet. If tail (its position) == h, the
 *        ring is EMPTY (the tail load is the linearisation point; with SHUT
 *        in that tail word, the answer is -ESHUTDOWN). Otherwise a put has
 *        claimed h and is writing: spin, retry.
 *      - anything else: another get took h first; retry.
 *  G3. CAS head: h -> next(h), relaxed (as P3: fails on a flag).
 *  G4. x = slot.item; stamp = h + LAP, release: pairs with P2 of the put
 *      one lap later (and L1), so our read of x happens before its write.
 *
 * A put or get that lost its CAS only retries; one that found the ring full
 * or empty, or a flag, takes the lock (queue.c).
 *
 * FREEZING, lock held (ring_freeze; queue.c calls it on entering the slow
 * path of a ring queue, before it looks at the ring):
 *  F1. fetch_or(tail, WAIT), fetch_or(head, WAIT), relaxed. From then on no
 *      fast-path CAS on either word can succeed (it compares the whole word,
 *      WAIT included), so tail and head move only under the lock. A put or
 *      get whose CAS came earlier in the word's modification order is
 *      counted in the position the RMW returned, even if it has not written
 *      or read its slot yet ("in flight"). So the lock holder knows the
 *      exact number of items, and every later operation will queue behind
 *      it on the lock.
 *  L1. Putting under the lock (ring_push_locked): wait until the slot at
 *      tail reads free (acquire: an in-flight get of the previous lap may
 *      still be reading it; pairs with its G4), write, stamp = t + 1
 *      (release), tail = next(t) | flags (a plain store: nobody else writes
 *      a frozen word).
 *  L2. Taking under the lock (ring_pop_locked): wait until the slot at head
 *      reads full (acquire: an in-flight put may still be writing; pairs with
 *      its P4), read, stamp = h + LAP (release), head = next(h) | flags.
 *  F2. THAW (ring_thaw): fetch_and both words with ~WAIT, when no task waits
 *      in a put or a get (queue.c says when). Relaxed: what the lock holder
 *      put into or took from slots is published by their stamps (L1, L2),
 *      which a fast-path operation reads with acquire.
 *
 * NO LOST WAKE-UP. A getter decides to wait only under the lock, with the
 * ring frozen and empty (total(tail) == total(head), in-flight puts
 * counted); it publishes its node before it unlocks. Every put whose P3
 * comes after F1's RMW on tail fails its CAS, sees WAIT, and takes the lock,
 * where it finds the getter and hands it the item at the deciding CAS. A put
 * whose P3 came before F1 was counted by F1, so the ring was not empty and
 * the getter did not wait. The two RMWs on the one word `tail` are ordered
 * in its modification order, which every thread agrees on: no Dekker pair
 * and no fence is needed. Putters that wait for room are the mirror image on
 * `head`. The ring stays frozen while anyone waits, so a newcomer cannot
 * take an item or a slot ahead of a waiter (arrival order, as before), and
 * the waiter lists' invariants are the old ones: getters wait only while the
 * ring is empty, putters only while it is full.
 *
 * In-flight spins (ring_wait_stamp and the fast paths' retries) wait for
 * another thread's few instructions between its CAS and its stamp store;
 * only the OS can stretch that window (a preempted thread), so after a while
 * the spinner yields its CPU, as the spinlock does.
 */
#ifndef WF_SYNC_RING_H
#define WF_SYNC_RING_H

#include "atomic.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#define WF__QW_WAIT 1ull
#define WF__QW_SHUT 2ull
#define WF__QW_FLAGS 3ull
#define WF__QW_UNIT 4ull /* one position, in stamp units */

/* ring_put / ring_get answers besides 0 and -EAGAIN (full / empty). */
#define WF__RING_SLOW 1

typedef struct wf__qslot {
    _Atomic uint64_t stamp;
    void *item;
} wf__qslot;

/* The ring's geometry: immutable after wf__ring_init. */
typedef struct wf__ring {
    wf__qslot *slots;
    uint64_t cap;      /* slots */
    uint64_t lap;      /* one lap in stamp units: one_lap << 2 */
    uint64_t idx_mask; /* one_lap - 1 */
    unsigned lap_shift; /* log2(lap) */
} wf__ring;

/* Make an empty ring of `cap` slots (1 .. 2^32) in `slots` (the caller's
 * memory, cap * sizeof(wf__qslot) bytes, 16-byte aligned). */
static inline void wf__ring_init(wf__ring *r, size_t cap, wf__qslot *slots)
{
    uint64_t one_lap = 1;
    unsigned shift = 0;
    while (one_lap <= cap) {
        one_lap <<= 1;
        shift++;
    }
    r->slots = slots;
    r->cap = cap;
    r->idx_mask = one_lap - 1;
    r->lap = one_lap << 2;
    r->lap_shift = shift + 2;
    for (size_t i = 0; i < cap; i++) {
        atomic_init(&r->slots[i].stamp, (uint64_t)i << 2);
        r->slots[i].item = NULL;
    }
}

/* Spin while a slot's stamp is not `want` (an in-flight operation's few
 * instructions). Returns with the stamp read with acquire. */
static inline void wf__ring_wait_stamp(const wf__qslot *s, uint64_t want)
{
    for (unsigned n = 0; atomic_load_explicit(&s->stamp, memory_order_acquire) != want; n++) {
        if (n < 256)
            wf__cpu_relax();
        else
            sched_yield(); /* its thread was preempted between CAS and stamp */
    }
}

/* Back off between two retries of a fast path that found an operation in
 * flight. */
static inline void wf__ring_backoff(unsigned *n)
{
    if (++*n < 64)
        wf__cpu_relax();
    else
        sched_yield();
}

static inline size_t wf__ring_index(const wf__ring *r, uint64_t pos)
{
    return (size_t)((pos >> 2) & r->idx_mask);
}

/* The position after `pos` (flags clear). */
static inline uint64_t wf__ring_next(const wf__ring *r, uint64_t pos)
{
    if (wf__ring_index(r, pos) + 1 < r->cap)
        return pos + WF__QW_UNIT;
    return (pos & ~(r->lap - 1)) + r->lap; /* index 0 of the next lap */
}

/* How many positions lie before `pos` since the ring was made. */
static inline uint64_t wf__ring_total(const wf__ring *r, uint64_t pos)
{
    return (pos >> r->lap_shift) * r->cap + wf__ring_index(r, pos);
}

/* Items in the ring now, from a head read before a tail: clamped, since the
 * two loads are not one snapshot. Any thread. */
static inline uint64_t wf__ring_count_snapshot(const wf__ring *r, const _Atomic uint64_t *head,
                                               const _Atomic uint64_t *tail)
{
    /* relaxed: a snapshot for size()/empty()/full(), which promise no more. */
    uint64_t h = atomic_load_explicit(head, memory_order_relaxed) & ~WF__QW_FLAGS;
    uint64_t t = atomic_load_explicit(tail, memory_order_relaxed) & ~WF__QW_FLAGS;
    int64_t n = (int64_t)(wf__ring_total(r, t) - wf__ring_total(r, h));
    if (n < 0)
        return 0;
    return (uint64_t)n > r->cap ? r->cap : (uint64_t)n;
}

/* Fast put, P1-P4 above: 0, -EAGAIN (full, no flag), WF__RING_SLOW. */
static inline int wf__ring_put(const wf__ring *r, _Atomic uint64_t *tail, const _Atomic uint64_t *head,
                               void *item)
{
    unsigned n = 0;
    /* P1, relaxed. */
    uint64_t t = atomic_load_explicit(tail, memory_order_relaxed);
    for (;;) {
        if (wf__unlikely(t & WF__QW_FLAGS))
            return WF__RING_SLOW;
        wf__qslot *s = &r->slots[wf__ring_index(r, t)];
        /* P2, acquire: pairs with G4 / L2 of the previous lap. */
        uint64_t st = atomic_load_explicit(&s->stamp, memory_order_acquire);
        if (wf__likely(st == t)) {
            /* P3, relaxed; fails on a flag set since P1. */
            if (atomic_compare_exchange_weak_explicit(tail, &t, wf__ring_next(r, t), memory_order_relaxed,
                                                      memory_order_relaxed)) {
                /* P4: release, pairs with G2 / L2. */
                s->item = item;
                atomic_store_explicit(&s->stamp, t + 1, memory_order_release);
                return 0;
            }
            continue; /* t reloaded by the failed CAS */
        }
        if (st + r->lap == t + 1) {
            /* relaxed: only the value matters (see P2: full at this load). */
            uint64_t h = atomic_load_explicit(head, memory_order_relaxed) & ~WF__QW_FLAGS;
            if (h + r->lap == t)
                return -EAGAIN;
        }
        wf__ring_backoff(&n);
        t = atomic_load_explicit(tail, memory_order_relaxed);
    }
}

/* Fast get, G1-G4 above: 0 with *item, -EAGAIN (empty), -ESHUTDOWN (empty
 * and shut down), WF__RING_SLOW. */
static inline int wf__ring_get(const wf__ring *r, _Atomic uint64_t *head, const _Atomic uint64_t *tail,
                               void **item)
{
    unsigned n = 0;
    /* G1, relaxed. */
    uint64_t h = atomic_load_explicit(head, memory_order_relaxed);
    for (;;) {
        if (wf__unlikely(h & WF__QW_FLAGS))
            return WF__RING_SLOW;
        wf__qslot *s = &r->slots[wf__ring_index(r, h)];
        /* G2, acquire: pairs with P4 / L1. */
        uint64_t st = atomic_load_explicit(&s->stamp, memory_order_acquire);
        if (wf__likely(st == h + 1)) {
            /* G3, relaxed; fails on a flag set since G1. */
            if (atomic_compare_exchange_weak_explicit(head, &h, wf__ring_next(r, h), memory_order_relaxed,
                                                      memory_order_relaxed)) {
                /* G4: release, pairs with P2 / L1 of the next lap. */
                *item = s->item;
                atomic_store_explicit(&s->stamp, h + r->lap, memory_order_release);
                return 0;
            }
            continue;
        }
        if (st == h) {
            /* relaxed: only the value matters (empty at this load). */
            uint64_t t = atomic_load_explicit(tail, memory_order_relaxed);
            if ((t & ~WF__QW_FLAGS) == h)
                return (t & WF__QW_SHUT) ? -ESHUTDOWN : -EAGAIN;
        }
        wf__ring_backoff(&n);
        h = atomic_load_explicit(head, memory_order_relaxed);
    }
}

/* --- the lock holder's side (the queue's lock held) ----------------------- */

/* F1. Returns nothing: the positions are read afterwards with relaxed loads,
 * which see the frozen words (only lock holders change them now, and the
 * lock orders them). */
static inline void wf__ring_freeze(_Atomic uint64_t *tail, _Atomic uint64_t *head)
{
    /* relaxed loads: the flags change only under the lock we hold. */
    if (!(atomic_load_explicit(tail, memory_order_relaxed) & WF__QW_WAIT))
        atomic_fetch_or_explicit(tail, WF__QW_WAIT, memory_order_relaxed); /* F1 */
    if (!(atomic_load_explicit(head, memory_order_relaxed) & WF__QW_WAIT))
        atomic_fetch_or_explicit(head, WF__QW_WAIT, memory_order_relaxed); /* F1 */
}

/* F2. */
static inline void wf__ring_thaw(_Atomic uint64_t *tail, _Atomic uint64_t *head)
{
    atomic_fetch_and_explicit(tail, ~WF__QW_WAIT, memory_order_relaxed);
    atomic_fetch_and_explicit(head, ~WF__QW_WAIT, memory_order_relaxed);
}

static inline bool wf__ring_frozen(const _Atomic uint64_t *tail)
{
    /* relaxed: lock held, see wf__ring_freeze. */
    return (atomic_load_explicit(tail, memory_order_relaxed) & WF__QW_WAIT) != 0;
}

/* Frozen: the exact number of items (in-flight puts counted). */
static inline uint64_t wf__ring_count_locked(const wf__ring *r, const _Atomic uint64_t *tail,
                                             const _Atomic uint64_t *head)
{
    uint64_t t = atomic_load_explicit(tail, memory_order_relaxed) & ~WF__QW_FLAGS;
    uint64_t h = atomic_load_explicit(head, memory_order_relaxed) & ~WF__QW_FLAGS;
    return wf__ring_total(r, t) - wf__ring_total(r, h);
}

/* L1. Frozen and not full. */
static inline void wf__ring_push_locked(const wf__ring *r, _Atomic uint64_t *tail, void *item)
{
    uint64_t w = atomic_load_explicit(tail, memory_order_relaxed);
    uint64_t t = w & ~WF__QW_FLAGS;
    wf__qslot *s = &r->slots[wf__ring_index(r, t)];
    wf__ring_wait_stamp(s, t); /* acquire: pairs with an in-flight G4 */
    s->item = item;
    /* release: pairs with G2 / L2. */
    atomic_store_explicit(&s->stamp, t + 1, memory_order_release);
    /* relaxed: a frozen word is written only under the lock. */
    atomic_store_explicit(tail, wf__ring_next(r, t) | (w & WF__QW_FLAGS), memory_order_relaxed);
}

/* L2. Frozen and not empty. */
static inline void *wf__ring_pop_locked(const wf__ring *r, _Atomic uint64_t *head)
{
    uint64_t w = atomic_load_explicit(head, memory_order_relaxed);
    uint64_t h = w & ~WF__QW_FLAGS;
    wf__qslot *s = &r->slots[wf__ring_index(r, h)];
    wf__ring_wait_stamp(s, h + 1); /* acquire: pairs with an in-flight P4 */
    void *item = s->item;
    /* release: pairs with P2 / L1 of the next lap. */
    atomic_store_explicit(&s->stamp, h + r->lap, memory_order_release);
    atomic_store_explicit(head, wf__ring_next(r, h) | (w & WF__QW_FLAGS), memory_order_relaxed);
    return item;
}

#endif
