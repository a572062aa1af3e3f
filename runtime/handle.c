/* handle.c - the task handle table (handle.h). */
#include "handle.h"
#include "mapping.h"
#include "task.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#define NO_INDEX UINT32_MAX
#define IDX_MASK 0xffffffffull

int wf__handles_init(wf__handles *h, void (*free_task)(struct wf__task *))
{
    size_t len = sizeof(*h->chunks) * WF__HANDLE_MAX_CHUNKS;
    /* 512 KiB of chunk pointers, only the touched pages resident. */
    void *m = wf__map_anon(len, PROT_READ | PROT_WRITE, MAP_NORESERVE);
    if (m == MAP_FAILED)
        return -ENOMEM;
    h->chunks = m;
    pthread_mutex_init(&h->grow_lock, NULL);
    pthread_mutex_init(&h->scan_lock, NULL);
    atomic_init(&h->hwm, 0);
    wf__spin_init(&h->free_lock);
    h->free_head = NO_INDEX;
    h->nfree = 0;
    atomic_init(&h->scanners, 0);
    h->deferred = NULL;
    h->free_task = free_task;
    return 0;
}

void wf__handles_destroy(wf__handles *h)
{
    for (uint32_t c = 0; c < WF__HANDLE_MAX_CHUNKS; c++) {
        wf__slot *chunk = atomic_load_explicit(&h->chunks[c], memory_order_relaxed);
        if (!chunk)
            break;
        /* Records still named by handles nobody gave back (tasks never
         * joined nor detached): the handles die with the runtime. */
        for (uint32_t i = 0; i < WF__HANDLE_CHUNK; i++) {
            struct wf__task *t = atomic_load_explicit(&chunk[i].task, memory_order_relaxed);
            if (t)
                h->free_task(t);
        }
        free(chunk);
    }
    wf__unmap(h->chunks, sizeof(*h->chunks) * WF__HANDLE_MAX_CHUNKS);
    pthread_mutex_destroy(&h->grow_lock);
    pthread_mutex_destroy(&h->scan_lock);
}

static inline wf__slot *slot_at(wf__handles *h, uint32_t idx)
{
    /* acquire: pairs with the release store that published the chunk. */
    wf__slot *chunk = atomic_load_explicit(&h->chunks[idx >> WF__HANDLE_CHUNK_LOG2], memory_order_acquire);
    return chunk ? &chunk[idx & (WF__HANDLE_CHUNK - 1)] : NULL;
}

/* A never-used index, growing the table by a chunk when needed. */
static uint32_t fresh_index(wf__handles *h)
{
    uint32_t idx = atomic_fetch_add_explicit(&h->hwm, 1, memory_order_relaxed);
    if (idx >= WF__HANDLE_CHUNK * WF__HANDLE_MAX_CHUNKS) {
        atomic_fetch_sub_explicit(&h->hwm, 1, memory_order_relaxed);
        return NO_INDEX;
    }
    uint32_t c = idx >> WF__HANDLE_CHUNK_LOG2;
    if (!atomic_load_explicit(&h->chunks[c], memory_order_acquire)) {
        pthread_mutex_lock(&h->grow_lock);
        if (!atomic_load_explicit(&h->chunks[c], memory_order_relaxed)) {
            wf__slot *chunk = calloc(WF__HANDLE_CHUNK, sizeof *chunk);
            if (!chunk) {
                pthread_mutex_unlock(&h->grow_lock);
                /* The index is lost (never reused); the caller sees ENOMEM. */
                return NO_INDEX;
            }
            for (uint32_t i = 0; i < WF__HANDLE_CHUNK; i++)
                atomic_init(&chunk[i].word, 1ull << WF__REF_GEN_SHIFT);
            /* release: the initialised slots before the pointer. */
            atomic_store_explicit(&h->chunks[c], chunk, memory_order_release);
        }
        pthread_mutex_unlock(&h->grow_lock);
    }
    return idx;
}

bool wf__handle_alloc(wf__handles *h, wf__handle_cache *cache, struct wf__task *t, uint64_t refs)
{
    uint32_t idx = NO_INDEX;
    if (cache && cache->n) {
        idx = cache->idx[--cache->n];
    } else {
        wf__spin_lock(&h->free_lock);
        while (h->free_head != NO_INDEX) {
            uint32_t i = h->free_head;
            h->free_head = slot_at(h, i)->next_free;
            h->nfree--;
            if (idx == NO_INDEX)
                idx = i;
            else
                cache->idx[cache->n++] = i;
            if (!cache || cache->n >= WF__HANDLE_CACHE / 2)
                break;
        }
        wf__spin_unlock(&h->free_lock);
        if (idx == NO_INDEX)
            idx = fresh_index(h);
        if (idx == NO_INDEX)
            return false;
    }
    wf__slot *s = slot_at(h, idx);
    /* relaxed: we own the free slot; its word has no references, so no
     * lookup can change it (a CAS needs counts above 0). */
    uint64_t gen = atomic_load_explicit(&s->word, memory_order_relaxed) >> WF__REF_GEN_SHIFT;
    t->id = (gen << 32) | idx;
    t->slot = s;
    /* release: the shutdown scan (wf__handle_scan) reads the pointer with
     * an acquire load and no look at the word; it must see the initialised
     * record (a plain store on x86, as relaxed would be). */
    atomic_store_explicit(&s->task, t, memory_order_release);
    /* release: a lookup whose CAS reads this word (acquire) sees the task
     * pointer and the initialised record. */
    atomic_store_explicit(&s->word, (gen << WF__REF_GEN_SHIFT) | refs | WF__REF_RUNNING, memory_order_release);
    return true;
}

/* The slot a handle names, or NULL if it cannot name one. */
static wf__slot *slot_of(wf__handles *h, uint64_t id)
{
    uint32_t idx = (uint32_t)(id & IDX_MASK), gen = (uint32_t)(id >> 32);
    if (gen == 0 || idx >= atomic_load_explicit(&h->hwm, memory_order_acquire))
        return NULL;
    return slot_at(h, idx);
}

/* The one CAS behind pin and claim (handle.h): `claim` consumes a handle;
 * `last` (with claim) takes the whole word when it holds exactly one handle
 * and nothing else, and returns 1 (wf__handle_claim_or_last). */
static int take(wf__handles *h, uint64_t id, bool claim, bool last, struct wf__task **out)
{
    *out = NULL;
    wf__slot *s = slot_of(h, id);
    if (!s)
        return -EINVAL;
    uint64_t gen = id >> 32;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    for (;;) {
        if (w >> WF__REF_GEN_SHIFT != gen)
            return -EINVAL;
        uint32_t handles = wf__ref_handles(w), pins = wf__ref_pins(w);
        if (claim ? handles == 0 : handles + pins == 0)
            return -EINVAL;
        if (pins == WF__REF_PINS_MAX)
            return -EOVERFLOW;
        bool all = last && (uint32_t)w == WF__REF_HANDLE;
        uint64_t nw = all ? gen << WF__REF_GEN_SHIFT : w + WF__REF_PIN - (claim ? WF__REF_HANDLE : 0);
        /* acquire: pairs with the release store in wf__handle_alloc (the
         * task pointer and the record) and with the release half of every
         * earlier reference change (what their holders wrote: for `all`,
         * the running reference's drop published the outcome and the
         * fiber's last use of the record). */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, nw, memory_order_acquire,
                                                  memory_order_relaxed)) {
            *out = atomic_load_explicit(&s->task, memory_order_relaxed);
            return all;
        }
    }
}

struct wf__task *wf__handle_get(wf__handles *h, uint64_t id)
{
    wf__slot *s = slot_of(h, id);
    if (!s || atomic_load_explicit(&s->word, memory_order_acquire) >> WF__REF_GEN_SHIFT != id >> 32)
        return NULL;
    return atomic_load_explicit(&s->task, memory_order_relaxed);
}

int wf__handle_pin(wf__handles *h, uint64_t id, struct wf__task **out)
{
    return take(h, id, false, false, out);
}

int wf__handle_claim(wf__handles *h, uint64_t id, struct wf__task **out)
{
    return take(h, id, true, false, out);
}

int wf__handle_claim_or_last(wf__handles *h, uint64_t id, struct wf__task **out)
{
    return take(h, id, true, true, out);
}

int wf__handle_add(struct wf__task *t, uint64_t add)
{
    wf__slot *s = t->slot;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    for (;;) {
        /* A new handle needs room for every pin to turn back into a handle
         * too (a claim that gives its handle back, handle.h): handles +
         * pins stays at most the handle field's maximum. */
        if (add == WF__REF_HANDLE ? wf__ref_handles(w) + wf__ref_pins(w) >= WF__REF_HANDLES_MAX
                                  : wf__ref_pins(w) == WF__REF_PINS_MAX)
            return -EOVERFLOW;
        /* relaxed: the caller keeps the record alive; the count orders
         * nothing by itself (its release comes when it is dropped). */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w + add, memory_order_relaxed,
                                                  memory_order_relaxed))
            return 0;
    }
}

static void free_index(wf__handles *h, wf__handle_cache *cache, uint32_t idx)
{
    if (cache && cache->n < WF__HANDLE_CACHE) {
        cache->idx[cache->n++] = idx;
        return;
    }
    wf__spin_lock(&h->free_lock);
    slot_at(h, idx)->next_free = h->free_head;
    h->free_head = idx;
    h->nfree++;
    /* Spill half of a full cache with it, so the cache keeps some room. */
    while (cache && cache->n > WF__HANDLE_CACHE / 2) {
        uint32_t i = cache->idx[--cache->n];
        slot_at(h, i)->next_free = h->free_head;
        h->free_head = i;
        h->nfree++;
    }
    wf__spin_unlock(&h->free_lock);
}

/* The last reference to `t` is gone: free its slot and record (now, or
 * after the running scans). */
static void release(wf__handles *h, wf__handle_cache *cache, struct wf__task *t)
{
    wf__slot *s = t->slot;
    uint32_t idx = (uint32_t)(t->id & IDX_MASK);
    /* The free path's half of the scan Dekker pair (handle.h): clear the
     * slot with a seq_cst exchange (on x86 a locked xchg: the store and the
     * full fence in one instruction, cheaper than a store plus mfence),
     * then look for scans. */
    (void)atomic_exchange_explicit(&s->task, NULL, memory_order_seq_cst);
    /* A new generation for the slot's next task: every handle to this one
     * is dead from now on. relaxed: the word has no references, so nobody
     * else writes it, and free_index's lock (or the same thread's cache)
     * orders this before the slot's next allocation. */
    uint64_t gen = (t->id >> 32) + 1;
    if ((uint32_t)gen == 0)
        gen = 1;
    atomic_store_explicit(&s->word, (gen & 0xffffffffull) << WF__REF_GEN_SHIFT, memory_order_relaxed);
    free_index(h, cache, idx);
    /* seq_cst: the load half of the Dekker pair (the scan's fence precedes
     * its slot read). Also an acquire: when this reads the 0 a finished scan
     * left (release), that scan's use of the record happened before the
     * free below. */
    if (atomic_load_explicit(&h->scanners, memory_order_seq_cst) == 0) {
        h->free_task(t);
        return;
    }
    pthread_mutex_lock(&h->scan_lock);
    if (atomic_load_explicit(&h->scanners, memory_order_relaxed) == 0) {
        pthread_mutex_unlock(&h->scan_lock);
        h->free_task(t);
        return;
    }
    t->qnext = h->deferred;
    h->deferred = t;
    pthread_mutex_unlock(&h->scan_lock);
}

void wf__handle_free_owned(wf__handles *h, wf__handle_cache *cache, struct wf__task *t)
{
    release(h, cache, t);
}

void wf__handle_refs(wf__handles *h, wf__handle_cache *cache, struct wf__task *t, int dhandles, int dpins,
                     int drunning)
{
    uint64_t delta = (uint64_t)(int64_t)dhandles * WF__REF_HANDLE + (uint64_t)(int64_t)dpins * WF__REF_PIN +
                     (uint64_t)(int64_t)drunning * WF__REF_RUNNING;
    /* acq_rel: release publishes this holder's writes to whoever frees the
     * record; acquire, for the one whose change reaches 0, sees every other
     * holder's (the outcome, the scheduler's stack release) before the
     * free. */
    uint64_t old = atomic_fetch_add_explicit(&t->slot->word, delta, memory_order_acq_rel);
    wf__assert((int64_t)wf__ref_handles(old) + dhandles >= 0 && (int64_t)wf__ref_pins(old) + dpins >= 0 &&
                   (int64_t)(old & WF__REF_RUNNING) + drunning >= 0,
               "task reference count underflow");
    if ((uint32_t)(old + delta) == 0)
        release(h, cache, t);
}

void wf__handle_scan(wf__handles *h, void (*fn)(struct wf__task *, void *), void *ctx)
{
    pthread_mutex_lock(&h->scan_lock);
    atomic_fetch_add_explicit(&h->scanners, 1, memory_order_relaxed);
    pthread_mutex_unlock(&h->scan_lock);
    /* The scan's half of the Dekker pair. */
    wf__fence();

    uint32_t hwm = atomic_load_explicit(&h->hwm, memory_order_acquire);
    for (uint32_t idx = 0; idx < hwm; idx++) {
        wf__slot *s = slot_at(h, idx);
        if (!s) {
            idx |= WF__HANDLE_CHUNK - 1; /* chunk not published yet: skip it */
            continue;
        }
        struct wf__task *t = atomic_load_explicit(&s->task, memory_order_acquire);
        if (t)
            fn(t, ctx);
    }

    pthread_mutex_lock(&h->scan_lock);
    struct wf__task *list = NULL;
    /* release: pairs with the free path's acquire load (see above). */
    if (atomic_fetch_sub_explicit(&h->scanners, 1, memory_order_release) == 1) {
        list = h->deferred;
        h->deferred = NULL;
    }
    pthread_mutex_unlock(&h->scan_lock);
    while (list) {
        struct wf__task *nx = list->qnext;
        h->free_task(list);
        list = nx;
    }
}
