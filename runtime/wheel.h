/* wheel.h - a hierarchical timing wheel (the data structure only).
 *
 * Eight levels of 64 slots. A level-0 slot spans 2^16 ns (65.5 us); each
 * level up is 64 times coarser, so level 7 reaches past any int64 deadline.
 * A timer goes to the level of the highest 6-bit digit in which its deadline
 * differs from the wheel's current time, and sinks a level each time the
 * wheel reaches its slot (a "cascade"), so each timer is touched at most
 * eight times whatever the number of timers: insert and remove are O(1), and
 * finding the next occupied slot is a count-trailing-zeros per level over a
 * 64-bit occupancy mask (the scheme of tokio's time driver and of the Linux
 * timer wheel). A heap was rejected: with a million timers every pop and
 * every cancel walks ~20 levels of cache misses.
 *
 * Firing is exact, not rounded to slots: in the slot that holds "now", only
 * the timers whose deadline has passed fire; the others stay.
 *
 * Not thread-safe: the owner (timer.c) holds the wheel's lock around every
 * call.
 */
#ifndef WF_WHEEL_H
#define WF_WHEEL_H

#include "list.h"
#include <stdint.h>

#define WF__WHEEL_SHIFT 16 /* ns per level-0 tick = 2^16 */
#define WF__WHEEL_LEVELS 8
#define WF__WHEEL_SLOTS 64

/* A node in the wheel. Embedded in struct wf__timer. */
typedef struct wf__wheel_node {
    wf__link link;
    int64_t deadline;
    uint8_t level, slot;
} wf__wheel_node;

typedef struct wf__wheel {
    uint64_t elapsed; /* ticks: the wheel's current time, never moves back */
    uint64_t count;
    uint64_t occupied[WF__WHEEL_LEVELS];
    wf__link slots[WF__WHEEL_LEVELS][WF__WHEEL_SLOTS];
} wf__wheel;

void wf__wheel_init(wf__wheel *wh, int64_t now);

/* Add `n` with deadline `deadline`. `now` is the current time (used to move
 * an empty wheel's clock forward). `n` must not be in a wheel. */
void wf__wheel_insert(wf__wheel *wh, wf__wheel_node *n, int64_t deadline, int64_t now);

/* Remove `n`, which must be in `wh`. */
void wf__wheel_remove(wf__wheel *wh, wf__wheel_node *n);

/* Move every node whose deadline is <= now onto the back of `due` (each node
 * unlinked from the wheel and linked on `due` through its `link`), cascading
 * coarser slots on the way. Returns how many were moved. */
uint64_t wf__wheel_expire(wf__wheel *wh, int64_t now, wf__link *due);

/* A lower bound on the earliest deadline in the wheel (exact when the
 * earliest timer is in the current slot); INT64_MAX when empty. Waking at
 * this time is never late; it may be early by a cascade. */
int64_t wf__wheel_next(const wf__wheel *wh);

#endif
