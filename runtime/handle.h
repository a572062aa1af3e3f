/* handle.h - the task handle table: 64-bit handles that cannot dangle, and
 * the reference counts that keep task records alive.
 *
 * A handle is (generation << 32 | index). The slot at `index` holds the task
 * record and one atomic word that says who may still use it:
 *
 *   63 .......... 32 | 31 ......... 17 | 16 .......... 1 |    0
 *   generation       | pins (15 bits)   | handles (16)    | running
 *
 *   running  the runtime's reference: from spawn until the fiber's last
 *            switch-out (or until a task that never ran is retired).
 *   handles  live handles: wf_spawn gives one, wf_task_ref adds one,
 *            wf_join / wf_detach / a gather consume one.
 *   pins     calls in progress on the record: every public call that takes
 *            a handle pins the record for its duration (a join holds its
 *            pin while it waits). A pin keeps the record alive without
 *            being a handle.
 *
 * Every use of a handle is one compare-and-swap on this word that checks the
 * generation and the counts and takes a pin in the same step, so a lookup
 * either happens before the last reference goes (and keeps the record
 * alive) or fails with -EINVAL; it never reads a record that is being
 * freed. There are two kinds of use:
 *   pin    (cancel, state, callbacks, wait): the handle must still be
 *          usable: handles or pins above 0 (a handle being consumed by a
 *          join that is still waiting counts as usable: a watchdog may
 *          cancel a task its owner is joining);
 *   claim  (join, detach, gather): consumes a handle: handles above 0,
 *          and handles - 1, pins + 1 in one step. Two joins of one handle
 *          race on that CAS: one wins, the other gets -EINVAL. A claim that
 *          does not complete (a join that times out) gives the handle back
 *          with handles + 1, pins - 1.
 * The record is freed by whoever brings the low 32 bits to 0, in the same
 * atomic step that drops the last reference (there is no "retire, then
 * drop" window). The generation is bumped when the slot is freed, so a handle
 * to a freed slot never matches it again.
 *
 * Slots come in chunks of 4096 that are never freed while the runtime runs,
 * so a lookup never touches unmapped memory. Free indices are cached per
 * worker (no lock on the spawn path) and spill to a global list.
 *
 * SCANS. Shutdown (cancel everything) and task dumps walk the table while
 * other workers free tasks. A scan registers itself first; a task freed
 * while any scan runs is parked on a deferred list and freed by the last
 * scan to leave. The free path and the scan form a Dekker pair (clear the
 * slot / count the scan, full fence, read the other), so a scan never
 * dereferences a freed record.
 */
#ifndef WF_HANDLE_H
#define WF_HANDLE_H

#include "atomic.h"
#include "spinlock.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct wf__task;

#define WF__HANDLE_CHUNK_LOG2 12
#define WF__HANDLE_CHUNK (1u << WF__HANDLE_CHUNK_LOG2)
#define WF__HANDLE_MAX_CHUNKS (1u << 16) /* 2^28 live tasks at most */
#define WF__HANDLE_CACHE 128

#define WF__REF_RUNNING 1ull
#define WF__REF_HANDLE (1ull << 1)
#define WF__REF_PIN (1ull << 17)
#define WF__REF_HANDLES_MAX 0xffffu
#define WF__REF_PINS_MAX 0x7fffu
#define WF__REF_GEN_SHIFT 32

static inline uint32_t wf__ref_handles(uint64_t w)
{
    return (uint32_t)(w >> 1) & WF__REF_HANDLES_MAX;
}

static inline uint32_t wf__ref_pins(uint64_t w)
{
    return (uint32_t)(w >> 17) & WF__REF_PINS_MAX;
}

typedef struct wf__slot {
    _Atomic uint64_t word; /* generation and references, above */
    uint32_t next_free;
    _Atomic(struct wf__task *) task;
} wf__slot;

typedef struct wf__handle_cache {
    uint32_t n;
    uint32_t idx[WF__HANDLE_CACHE];
} wf__handle_cache;

typedef struct wf__handles {
    _Atomic(wf__slot *) *chunks;
    pthread_mutex_t grow_lock;
    _Atomic uint32_t hwm; /* indices below this have been handed out once */
    wf__spinlock free_lock;
    uint32_t free_head, nfree;
    /* scans */
    pthread_mutex_t scan_lock;
    _Atomic uint32_t scanners;
    struct wf__task *deferred; /* freed during a scan, linked by qnext */
    void (*free_task)(struct wf__task *);
} wf__handles;

int wf__handles_init(wf__handles *h, void (*free_task)(struct wf__task *));
/* Only once every runtime thread has stopped: frees the records of tasks
 * whose handles were never given back. */
void wf__handles_destroy(wf__handles *h);

/* Give `t` a slot: its word starts as the running reference plus `refs`
 * (WF__REF_HANDLE for a spawn's handle; the runtime's own holders ask for
 * WF__REF_PIN, which no join or detach of the user's can consume). Sets
 * t->id and t->slot. Returns false when out of slots or memory. */
bool wf__handle_alloc(wf__handles *h, wf__handle_cache *cache, struct wf__task *t, uint64_t refs);

/* The task named by `id`, without taking anything: only for a handle the
 * caller holds and that nobody else can consume (one it has just made and
 * not given out). NULL if `id` names no live task. */
struct wf__task *wf__handle_get(wf__handles *h, uint64_t id);

/* Pin the task named by `id` (see "pin" above). Returns 0 and the record,
 * -EINVAL if the handle is dead or invalid, -EOVERFLOW if the record has
 * the maximum number of pins. */
int wf__handle_pin(wf__handles *h, uint64_t id, struct wf__task **out);

/* Claim one of the handles of the task named by `id` (see "claim"). Same
 * results as wf__handle_pin; -EINVAL also when no handle is left to consume
 * (a concurrent or earlier join or detach took the last). */
int wf__handle_claim(wf__handles *h, uint64_t id, struct wf__task **out);

/* wf__handle_claim, and the join of a finished task in the same one CAS:
 * if `id`'s word holds exactly one handle and nothing else (no pin, the
 * running reference gone: the task has ended and its fiber let go), take
 * the whole of it and return 1: the record is then the caller's alone (no
 * other reference exists, and none can be taken: a pin needs a handle or a
 * pin); it reads the outcome and gives the record back with
 * wf__handle_free_owned(). Otherwise as wf__handle_claim (0 or -errno). */
int wf__handle_claim_or_last(wf__handles *h, uint64_t id, struct wf__task **out);
void wf__handle_free_owned(wf__handles *h, wf__handle_cache *cache, struct wf__task *t);

/* Change `t`'s handles, pins and running reference by the given amounts
 * (each -1, 0 or +1; an increment only where the caller knows the count is
 * below its maximum). A count taken below 0 aborts (a runtime bug). When the low 32 bits reach 0 the slot and record are
 * freed (now, or after the running scans): the caller must not touch `t`
 * after a call that may drop its last reference. */
void wf__handle_refs(wf__handles *h, wf__handle_cache *cache, struct wf__task *t, int dhandles, int dpins,
                     int drunning);

/* Add `add` (WF__REF_HANDLE or WF__REF_PIN) to the references of `t`, which
 * the caller keeps alive: -EOVERFLOW if that count is at its maximum. */
int wf__handle_add(struct wf__task *t, uint64_t add);

/* Call fn(task, ctx) for every task in the table. Tasks may end during the
 * scan; their records stay valid until it returns. */
void wf__handle_scan(wf__handles *h, void (*fn)(struct wf__task *, void *), void *ctx);

#endif
