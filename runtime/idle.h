/* idle.h - which workers are searching for work and which are parked.
 *
 * One atomic word counts the workers that are awake ("unparked") and, of
 * those, the ones searching (stealing) for work; a spinlock guards the stack
 * of parked worker indices. The protocol (tokio's idle.rs, Go's
 * spinning-M rules) keeps two promises: no runnable task is left while a
 * worker sleeps, and idle workers burn no CPU.
 *
 *  - At most half of the awake workers search at once (at least one may):
 *    searching is cheap for one worker and a stampede for sixteen.
 *  - Whoever makes work stealable (a push to a ring, the inject queue or a
 *    next slot displacement) calls wf__idle_should_wake(): after a full fence
 *    it wakes a sleeper only if nobody searches and somebody sleeps. The
 *    woken worker starts as a searcher, so one notification never wakes
 *    more than one worker.
 *  - A searcher that finds work stops searching; if it was the last
 *    searcher it notifies once more, because the work it found may be the
 *    first of several (a chain of wake-ups replaces a thundering herd).
 *  - A worker that gives up parks in two steps: it first registers as
 *    parked (counts and stack, under the lock), then issues a full fence and
 *    looks at every queue one last time before sleeping on its futex. The
 *    fence pairs with the fence in wf__idle_should_wake(): either the pusher
 *    sees the sleeper and wakes it, or the sleeper sees the pushed work.
 */
#ifndef WF_IDLE_H
#define WF_IDLE_H

#include "atomic.h"
#include "spinlock.h"

#define WF__IDLE_SEARCH_MASK 0xffffu
#define WF__IDLE_UNPARK_SHIFT 16

typedef struct wf__idle {
    /* (unparked << 16) | searching. Changed by atomic RMW; the parked-stack
     * changes happen under `lock` too. */
    WF_ALIGNED_CL _Atomic uint32_t state;
    wf__spinlock lock;
    uint32_t nworkers;
    uint32_t nsleepers;
    uint32_t *sleepers;
} wf__idle;

int wf__idle_init(wf__idle *id, uint32_t nworkers);
void wf__idle_destroy(wf__idle *id);

/* Try to become a searcher. Returns true if the caller now searches. */
bool wf__idle_start_search(wf__idle *id);

/* A searcher found work. Returns true if it was the last searcher (the
 * caller must then call wf__idle_should_wake() and wake whom it names). */
bool wf__idle_stop_search(wf__idle *id);

/* Register worker `index` as parked. `searching`: whether it was a searcher.
 * Returns true if it was the last searcher; *all_parked tells whether it
 * was the last awake worker (every worker now counts as parked: the poller
 * must watch the epoll, poller.h). */
bool wf__idle_park(wf__idle *id, uint32_t index, bool searching, bool *all_parked);

/* The caller made work stealable: which sleeper to wake, or UINT32_MAX for
 * none. The chosen worker is removed from the stack and counted as an awake
 * searcher before this returns. */
uint32_t wf__idle_should_wake(wf__idle *id);

/* A batch of `n` tasks went to the inject queue from outside the workers
 * (the poller): take up to `n` sleepers off the stack at once, each counted
 * awake and searching, into `who` (room for `n`). Returns how many. A burst
 * of I/O wakes its workers in one go instead of one chained wake-up after
 * another. Wakes nobody while somebody searches (that searcher takes the
 * first task and chains to the next worker if there is more). */
uint32_t wf__idle_wake_many(wf__idle *id, uint32_t n, uint32_t *who);

/* Wake `index` specifically (a task pinned to it became runnable). Returns
 * true if it was parked and has been taken off the stack (counted awake, not
 * searching): the caller must then signal its futex. */
bool wf__idle_wake_index(wf__idle *id, uint32_t index);

/* Whether any worker is parked (a hint: relaxed). */
static inline bool wf__idle_any_parked(wf__idle *id)
{
    return (atomic_load_explicit(&id->state, memory_order_relaxed) >> WF__IDLE_UNPARK_SHIFT) <
           id->nworkers;
}

#endif
