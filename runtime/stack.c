/* stack.c - the fiber stack pool; the scheme is described in stack.h. */
#include "stack.h"
#include "mapping.h"
#include "atomic.h"
#include "sanitizer.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HDR_SIZE WF__STACK_HDR

_Static_assert(sizeof(wf__stack) <= HDR_SIZE - WF__CANARY_BYTES, "the header fields fit below the zone");

static long read_long_file(const char *path, long dflt)
{
    FILE *f = fopen(path, "re");
    long v = dflt;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = dflt;
        fclose(f);
    }
    return v;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return 1000;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* The usable size of a stack whose header and usable area fill whole
 * pages and hold at least `request` bytes. */
static size_t page_fit(const wf__stack_pool *p, size_t request)
{
    size_t total = request + HDR_SIZE;
    total = (total + p->page - 1) & ~(p->page - 1);
    return total - HDR_SIZE;
}

int wf__stack_pool_init(wf__stack_pool *p, size_t default_size, long guard_stacks)
{
    memset(p, 0, sizeof *p);
    if (pthread_mutex_init(&p->lock, NULL) != 0 || pthread_mutex_init(&p->maps_lock, NULL) != 0)
        return -ENOMEM;
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    p->default_size = page_fit(p, default_size);
    if (guard_stacks < 0) {
        /* Half the mapping headroom, two mappings per guarded stack: leaves
         * the other half for slabs (about 2,000 for a million stacks),
         * jemalloc, threads and the program itself. */
        long max = read_long_file("/proc/sys/vm/max_map_count", 65530);
        long head = max - count_maps();
        guard_stacks = head > 0 ? head / 2 / 2 : 0;
    }
    p->guard_budget = guard_stacks;
    return 0;
}

size_t wf__stack_round(const wf__stack_pool *p, size_t request)
{
    /* Size classes: the default size, and powers of two from
     * WF__STACK_MIN to WF__STACK_MAX for every other request, so any
     * number of distinct requested sizes fits the fixed class table (a
     * 16th distinct size used to fail at run time). The extra virtual
     * space a rounded-up stack gets costs no memory: slabs are mapped
     * MAP_NORESERVE and only touched pages are resident. */
    if (page_fit(p, request) == p->default_size)
        return p->default_size;
    size_t u = WF__STACK_MIN;
    while (u < request)
        u <<= 1;
    return page_fit(p, u);
}

/* Write the header of the stack whose region starts at `base`, and the
 * canary right below its lo (in the neighbour's header slot, or in the
 * slab's reserved page): each canary is written once, by the stack it
 * protects, so stacks of one slab can be initialised concurrently. */
static wf__stack *init_stack(char *base, size_t total, bool guarded)
{
    wf__stack *s = (wf__stack *)(base + total - HDR_SIZE);
    s->next = NULL;
    s->ctx = NULL;
    s->tsan = NULL;
    s->lo = base;
    s->hi = (char *)s;
    s->min_sp = (uintptr_t)s->hi;
    s->size = (size_t)(s->hi - s->lo);
    s->guarded = guarded;
    s->vg_id = wf__vg_stack_register(s->lo, s->hi);
    if (!guarded) {
        uint64_t *c = (uint64_t *)(base - WF__CANARY_BYTES);
        for (size_t i = 0; i < WF__CANARY_BYTES / 8; i++)
            c[i] = wf__canary_at(&c[i]);
    }
    return s;
}

static bool remember_map(wf__stack_pool *p, void *addr, size_t len)
{
    wf__stack_map *m = malloc(sizeof *m);
    if (!m)
        return false;
    m->addr = addr;
    m->len = len;
    pthread_mutex_lock(&p->maps_lock);
    m->next = p->maps;
    p->maps = m;
    pthread_mutex_unlock(&p->maps_lock);
    return true;
}

/* Lock held. Find or make the size class for `size`. */
static int class_of(wf__stack_pool *p, size_t size)
{
    for (unsigned i = 0; i < p->ncls; i++)
        if (p->cls[i].size == size)
            return (int)i;
    /* wf__stack_round yields at most WF__STACK_CLASSES sizes. */
    wf__assert(p->ncls < WF__STACK_CLASSES, "a stack size outside the size classes");
    memset(&p->cls[p->ncls], 0, sizeof p->cls[p->ncls]);
    p->cls[p->ncls].size = size;
    return (int)p->ncls++;
}

/* A stack of its own with a guard page, while the budget lasts. No lock
 * held. Returns NULL when the budget is spent or the kernel says no. */
static wf__stack *new_guarded(wf__stack_pool *p, size_t total)
{
    pthread_mutex_lock(&p->lock);
    bool allowed = p->guard_budget > 0;
    p->guard_budget -= allowed;
    pthread_mutex_unlock(&p->lock);
    if (!allowed)
        return NULL;
    size_t len = total + WF__STACK_GUARD_BYTES;
    char *m = wf__map_anon(len, PROT_READ | PROT_WRITE, MAP_NORESERVE | MAP_STACK);
    if (m == MAP_FAILED)
        return NULL;
    if (mprotect(m, WF__STACK_GUARD_BYTES, PROT_NONE) != 0 || !remember_map(p, m, len)) {
        /* Out of mappings: stop trying, slabs from now on. */
        pthread_mutex_lock(&p->lock);
        p->guard_budget = 0;
        pthread_mutex_unlock(&p->lock);
        wf__unmap(m, len);
        return NULL;
    }
    return init_stack(m + WF__STACK_GUARD_BYTES, total, true);
}

/* Lock held. A new slab for class `c`. */
static bool new_slab(wf__stack_pool *p, int c)
{
    size_t total = p->cls[c].size + HDR_SIZE;
    /* Each slab twice the last, so the mapping count grows slowly. */
    unsigned n = p->cls[c].slab_n ? p->cls[c].slab_n * 2 : WF__STACK_SLAB;
    if (n > WF__STACK_SLAB_MAX)
        n = WF__STACK_SLAB_MAX;
    size_t len = WF__STACK_GUARD_BYTES + (size_t)n * total;
    char *m = wf__map_anon(len, PROT_READ | PROT_WRITE, MAP_NORESERVE | MAP_STACK);
    if (m == MAP_FAILED)
        return false;
    if (!remember_map(p, m, len)) {
        wf__unmap(m, len);
        return false;
    }
    /* One guard region under the whole slab stops a runaway overflow there
     * and guards its lowest stack. If it cannot be had (mapping limit), it
     * stays readable and that stack's canary lives at its top instead. */
    p->cls[c].slab_guarded = mprotect(m, WF__STACK_GUARD_BYTES, PROT_NONE) == 0;
    p->cls[c].bump = m + WF__STACK_GUARD_BYTES;
    p->cls[c].left = n;
    p->cls[c].slab_n = n;
    return true;
}

static void trim(wf__stack_pool *p, wf__stack *s)
{
    uintptr_t keep_from = (uintptr_t)s->hi - WF__STACK_TRIM;
    if (s->min_sp >= keep_from)
        return;
    uintptr_t lo = (uintptr_t)s->lo & ~(uintptr_t)(p->page - 1);
    uintptr_t hi = keep_from & ~(uintptr_t)(p->page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
    s->min_sp = (uintptr_t)s->hi;
}

wf__stack *wf__stack_get(wf__stack_pool *p, wf__stack_cache *cache, size_t size)
{
    wf__stack *s = NULL;
    bool dflt = size == p->default_size;
    if (cache && dflt && cache->n) {
        s = cache->items[--cache->n];
        wf__asan_unpoison(s->lo, s->size);
        return s;
    }
    size_t total = size + HDR_SIZE;
    char *raw = NULL;
    bool raw_guarded = false;
    pthread_mutex_lock(&p->lock);
    int c = class_of(p, size);
    if (p->cls[c].free) {
        s = p->cls[c].free;
        p->cls[c].free = s->next;
        p->cls[c].nfree--;
        /* Refill the worker's cache from initialised stacks, so the next
         * gets are lock-free. */
        while (cache && dflt && cache->n < WF__STACK_CACHE / 2 && p->cls[c].free) {
            wf__stack *x = p->cls[c].free;
            p->cls[c].free = x->next;
            p->cls[c].nfree--;
            cache->items[cache->n++] = x;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (s) {
        wf__asan_unpoison(s->lo, s->size);
        return s;
    }
    if ((s = new_guarded(p, total)) != NULL) {
        wf__asan_unpoison(s->lo, s->size);
        return s;
    }
    pthread_mutex_lock(&p->lock);
    if (p->cls[c].left || new_slab(p, c)) {
        raw = p->cls[c].bump;
        /* The slab's lowest stack sits on its guard page, if it has one. */
        raw_guarded = p->cls[c].left == p->cls[c].slab_n && p->cls[c].slab_guarded;
        p->cls[c].bump += total;
        p->cls[c].left--;
    }
    pthread_mutex_unlock(&p->lock);
    if (!raw)
        return NULL;
    /* The page fault of the new stack's first touch, outside the lock.
     * ASan: the address range may have held an earlier, unmapped stack
     * whose shadow still says "poisoned". */
    s = init_stack(raw, total, raw_guarded);
    wf__asan_unpoison(s->lo, s->size);
    return s;
}

void wf__stack_put(wf__stack_pool *p, wf__stack_cache *cache, wf__stack *s)
{
    if (cache && s->size == p->default_size) {
        if (cache->n < WF__STACK_CACHE) {
            cache->items[cache->n++] = s;
            return;
        }
        /* Full: send the colder half (the bottom of the LIFO) to the pool. */
        unsigned half = WF__STACK_CACHE / 2;
        pthread_mutex_lock(&p->lock);
        int c = class_of(p, s->size);
        wf__assert(c >= 0, "the default stack class exists once a default stack does");
        for (unsigned i = 0; i < half; i++) {
            wf__stack *x = cache->items[i];
            trim(p, x);
            x->next = p->cls[c].free;
            p->cls[c].free = x;
            p->cls[c].nfree++;
        }
        memmove(cache->items, cache->items + half, (cache->n - half) * sizeof cache->items[0]);
        cache->n -= half;
        pthread_mutex_unlock(&p->lock);
        cache->items[cache->n++] = s;
        return;
    }
    pthread_mutex_lock(&p->lock);
    int c = class_of(p, s->size);
    wf__assert(c >= 0, "a stack's class exists once the stack does");
    trim(p, s);
    s->next = p->cls[c].free;
    p->cls[c].free = s;
    p->cls[c].nfree++;
    pthread_mutex_unlock(&p->lock);
}

static void release_stack(wf__stack *s)
{
    wf__vg_stack_deregister(s->vg_id);
    wf__tsan_destroy(s->tsan);
    s->tsan = NULL;
}

void wf__stack_pool_destroy(wf__stack_pool *p, wf__stack_cache *caches, unsigned ncaches)
{
    /* Every stack is pooled by now (no task is alive). */
    for (unsigned i = 0; i < ncaches; i++)
        for (unsigned j = 0; j < caches[i].n; j++)
            release_stack(caches[i].items[j]);
    for (unsigned c = 0; c < p->ncls; c++)
        for (wf__stack *s = p->cls[c].free; s; s = s->next)
            release_stack(s);
    wf__stack_map *m = p->maps;
    while (m) {
        wf__stack_map *nx = m->next;
        /* Leave no stale poison for whoever maps this range next. */
        wf__asan_unpoison(m->addr, m->len);
        wf__unmap(m->addr, m->len);
        free(m);
        m = nx;
    }
    p->maps = NULL;
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->maps_lock);
}

bool wf__stack_canary_full_ok(const wf__stack *s)
{
    if (s->guarded)
        return true;
    const volatile uint64_t *c = (const volatile uint64_t *)(s->lo - WF__CANARY_BYTES);
    uint64_t bad = 0;
    for (size_t i = 0; i < WF__CANARY_BYTES / 8; i++)
        bad |= c[i] ^ wf__canary_at((const void *)&c[i]);
    return bad == 0;
}

bool wf__stack_is_overflow_addr(const wf__stack *s, uintptr_t addr)
{
    /* The guard region or canary, or anything just below the stack: a
     * large frame can jump past a single page. */
    uintptr_t lo = (uintptr_t)s->lo;
    return addr < lo && lo - addr <= WF__STACK_GUARD_BYTES;
}
