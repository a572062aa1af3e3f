/* idle.c - the searching/parked bookkeeping (idle.h). */
#include "idle.h"
#include <errno.h>
#include <stdlib.h>

#define ONE_UNPARKED (1u << WF__IDLE_UNPARK_SHIFT)
#define ONE_SEARCHING 1u

static inline uint32_t searching_of(uint32_t s)
{
    return s & WF__IDLE_SEARCH_MASK;
}

static inline uint32_t unparked_of(uint32_t s)
{
    return s >> WF__IDLE_UNPARK_SHIFT;
}

int wf__idle_init(wf__idle *id, uint32_t nworkers)
{
    id->sleepers = calloc(nworkers, sizeof *id->sleepers);
    if (!id->sleepers)
        return -ENOMEM;
    id->nworkers = nworkers;
    id->nsleepers = 0;
    wf__spin_init(&id->lock);
    /* Every worker starts awake and not searching. */
    atomic_init(&id->state, nworkers << WF__IDLE_UNPARK_SHIFT);
    return 0;
}

void wf__idle_destroy(wf__idle *id)
{
    free(id->sleepers);
    id->sleepers = NULL;
}

bool wf__idle_start_search(wf__idle *id)
{
    /* relaxed: the limit is a heuristic, not a safety property; the RMW
     * below is what counts. */
    uint32_t s = atomic_load_explicit(&id->state, memory_order_relaxed);
    if (2 * searching_of(s) >= unparked_of(s) && searching_of(s) > 0)
        return false;
    /* seq_cst: a searcher's count must be visible to pushers' fenced loads
     * before it looks at the queues. */
    atomic_fetch_add_explicit(&id->state, ONE_SEARCHING, memory_order_seq_cst);
    return true;
}

bool wf__idle_stop_search(wf__idle *id)
{
    uint32_t prev = atomic_fetch_sub_explicit(&id->state, ONE_SEARCHING, memory_order_seq_cst);
    wf__assert(searching_of(prev) > 0, "a searcher stops searching only once");
    return searching_of(prev) == 1;
}

bool wf__idle_park(wf__idle *id, uint32_t index, bool searching, bool *all_parked)
{
    wf__spin_lock(&id->lock);
    uint32_t dec = ONE_UNPARKED + (searching ? ONE_SEARCHING : 0);
    /* seq_cst: this is the sleeper's half of the Dekker pair with
     * wf__idle_should_wake (the caller fences again before its recheck). */
    uint32_t prev = atomic_fetch_sub_explicit(&id->state, dec, memory_order_seq_cst);
    wf__assert(unparked_of(prev) > 0, "parking an awake worker");
    /* Only awake workers search: when the last one parks, nobody may still
     * be counted as searching, or every later wake-up would be skipped. */
    if (WF_DEBUG && unparked_of(prev - dec) == 0)
        wf__assert(searching_of(prev - dec) == 0, "no searcher is left once every worker parks");
    id->sleepers[id->nsleepers++] = index;
    wf__spin_unlock(&id->lock);
    *all_parked = unparked_of(prev - dec) == 0;
    return searching && searching_of(prev) == 1;
}

uint32_t wf__idle_should_wake(wf__idle *id)
{
    /* The pusher's half of the Dekker pair: the work it just made visible
     * must be ordered before this load of the sleepers' state. */
    wf__fence();
    uint32_t s = atomic_load_explicit(&id->state, memory_order_seq_cst);
    if (searching_of(s) != 0 || unparked_of(s) >= id->nworkers)
        return UINT32_MAX;
    wf__spin_lock(&id->lock);
    s = atomic_load_explicit(&id->state, memory_order_relaxed);
    uint32_t who = UINT32_MAX;
    if (searching_of(s) == 0 && id->nsleepers) {
        who = id->sleepers[--id->nsleepers];
        atomic_fetch_add_explicit(&id->state, ONE_UNPARKED + ONE_SEARCHING, memory_order_seq_cst);
    }
    wf__spin_unlock(&id->lock);
    return who;
}

uint32_t wf__idle_wake_many(wf__idle *id, uint32_t n, uint32_t *who)
{
    /* The pusher's half of the Dekker pair, as in wf__idle_should_wake. */
    wf__fence();
    uint32_t s = atomic_load_explicit(&id->state, memory_order_seq_cst);
    if (searching_of(s) != 0 || unparked_of(s) >= id->nworkers)
        return 0;
    uint32_t k = 0;
    wf__spin_lock(&id->lock);
    s = atomic_load_explicit(&id->state, memory_order_relaxed);
    if (searching_of(s) == 0) {
        while (k < n && id->nsleepers)
            who[k++] = id->sleepers[--id->nsleepers];
        if (k)
            atomic_fetch_add_explicit(&id->state, k * (ONE_UNPARKED + ONE_SEARCHING), memory_order_seq_cst);
    }
    wf__spin_unlock(&id->lock);
    return k;
}

bool wf__idle_wake_index(wf__idle *id, uint32_t index)
{
    bool found = false;
    wf__spin_lock(&id->lock);
    for (uint32_t i = 0; i < id->nsleepers; i++) {
        if (id->sleepers[i] == index) {
            id->sleepers[i] = id->sleepers[--id->nsleepers];
            found = true;
            break;
        }
    }
    if (found)
        atomic_fetch_add_explicit(&id->state, ONE_UNPARKED, memory_order_seq_cst);
    wf__spin_unlock(&id->lock);
    return found;
}
