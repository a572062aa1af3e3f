/* handle.c - the task handle table (handle.h). */
#include "handle.h"
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
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
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
    munmap(h->chunks, sizeof(*h->chunks) * WF__HANDLE_MAX_CHUNKS);
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
                atomic_init(&chunk[i].gen, 1);
            /* release: the initialised slots before the pointer. */
            atomic_store_explicit(&h->chunks[c], chunk, memory_order_release);
        }
        pthread_mutex_unlock(&h->grow_lock);
    }
    return idx;
}

uint64_t wf__handle_alloc(wf__handles *h, wf__handle_cache *cache, struct wf__task *t)
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
            return 0;
    }
    wf__slot *s = slot_at(h, idx);
    uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed); /* we own the slot */
    /* release: a lookup that matches the generation sees the task. */
    atomic_store_explicit(&s->task, t, memory_order_release);
    return ((uint64_t)gen << 32) | idx;
}

struct wf__task *wf__handle_get(wf__handles *h, uint64_t id)
{
    uint32_t idx = (uint32_t)(id & IDX_MASK), gen = (uint32_t)(id >> 32);
    if (gen == 0 || idx >= atomic_load_explicit(&h->hwm, memory_order_acquire))
        return NULL;
    wf__slot *s = slot_at(h, idx);
    if (!s || atomic_load_explicit(&s->gen, memory_order_acquire) != gen)
        return NULL;
    struct wf__task *t = atomic_load_explicit(&s->task, memory_order_acquire);
    if (!t || t->id != id)
        return NULL;
    return t;
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

void wf__handle_retire(wf__handles *h, struct wf__task *t)
{
    uint32_t idx = (uint32_t)(t->id & IDX_MASK);
    uint32_t gen = (uint32_t)(t->id >> 32) + 1;
    if (gen == 0)
        gen = 1;
    /* release: a lookup that still matched the old generation happened
     * before; every later one fails without touching the record. */
    atomic_store_explicit(&slot_at(h, idx)->gen, gen, memory_order_release);
}

void wf__handle_release(wf__handles *h, wf__handle_cache *cache, struct wf__task *t)
{
    uint32_t idx = (uint32_t)(t->id & IDX_MASK);
    wf__slot *s = slot_at(h, idx);
    wf__assert(atomic_load_explicit(&s->gen, memory_order_relaxed) != (uint32_t)(t->id >> 32),
               "a task's handle is retired before its record is released");
    /* The free path's half of the scan Dekker pair (handle.h): clear the
     * slot with a seq_cst exchange (on x86 a locked xchg: the store and the
     * full fence in one instruction, cheaper than a store plus mfence),
     * then look for scans. */
    (void)atomic_exchange_explicit(&s->task, NULL, memory_order_seq_cst);
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
