/* stack.h - fiber stacks: pooled, guarded while mappings allow, canaried
 * always.
 *
 * LAYOUT of one stack (addresses grow to the right, the stack grows left):
 *
 *   [guard, 64K?][ ........ usable ........ | header | canary zone ]
 *                ^lo                        ^hi                    ^end
 *
 * In a slab the stacks follow each other, so a stack's lo is the end of the
 * region below it: the 2 KiB canary zone at the top of each region guards
 * the stack ABOVE it, being the first memory that stack's overflow reaches.
 *
 * The header (struct wf__stack) sits at the very top, in the page the fiber
 * touches first anyway, so an idle fiber costs one resident page. It holds
 * the free-list link while the stack is pooled.
 *
 * GUARDS vs vm.max_map_count. A guard region (WF__STACK_GUARD_BYTES of
 * PROT_NONE, one mapping) makes an overflow fault at once,
 * but costs two mappings per stack, and a default machine allows 65530
 * mappings per process: a million fibers cannot each have one. So stacks
 * get guard pages while a budget lasts (wf_config_t.guard_stacks), and past
 * it are carved from slab mappings of 32 stacks, doubling up to 1024, each
 * with one guard page at its low end (two mappings per slab: a million
 * stacks take about two thousand mappings). A slab stack is protected by the
 * canary zone right below its `lo`, filled with a pattern when the stack is
 * first used. An overflow writes return addresses into it whatever the call
 * chain (every frame under 2 KiB has its return address in the zone), so:
 *   - every switch away from the fiber checks the two words next to `lo`
 *     (cheap: a contiguous overflow always reaches them);
 *   - the fiber's end checks the whole zone (an overflow that came back up
 *     before switching);
 *   - the SIGSEGV handler checks the whole zone (a runaway that ran on into
 *     the slab's guard page).
 * The residue, stated plainly: a frame larger than the zone that skips it
 * without writing any of it, and returns before the fiber ends, corrupts a
 * neighbour undetected. Guard regions have no such gap for frames up to
 * their 64 KiB (a larger frame that skips them all lands beyond; compile
 * with -fstack-clash-protection to close that too), which is why stacks
 * get them first. The zone lives in the neighbour's top page, resident
 * anyway, so it costs no memory; a canary in the stack's own low page would
 * cost a page fault per fiber (~11 us on this VM).

 * FAULTS. A page fault costs about 11 us on this VM (a write fault on fresh
 * anonymous memory), so a new stack's first touch is the dominant cost of a
 * burst of new fibers. Stacks are therefore carved from slabs by bumping a
 * pointer under the pool lock, and their headers are written (the fault)
 * after it is released, so workers take their faults in parallel.
 *
 * POOLING. Each worker keeps a small LIFO cache of default-size stacks (hot
 * in cache, no locks); overflow and other sizes go to a global pool under a
 * mutex. A stack that goes to the global pool after being used deeper than
 * WF__STACK_TRIM bytes gets its pages below that returned to the kernel with
 * MADV_DONTNEED, so a burst of deep fibers does not pin memory forever. The
 * depth is the lowest stack pointer seen at a switch (a hint: a fiber can go
 * deeper between switches; that only costs memory, never correctness).
 * Mappings are released when the runtime ends.
 */
#ifndef WF_STACK_H
#define WF_STACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WF__STACK_MIN (16u * 1024)
#define WF__STACK_MAX ((size_t)1 << 30)
#define WF__STACK_DEFAULT (64u * 1024)
#define WF__STACK_TRIM (16u * 1024)
#define WF__STACK_CACHE 64  /* per-worker cache depth */
/* The PROT_NONE region under a guarded stack (and under a slab): 64 KiB,
 * not one page, so that a single frame of up to 64 KiB that skips past the
 * bottom without touching the page right below it (a large local buffer
 * filled from its low end) still lands in the guard instead of in whatever
 * mapping lies below. Address space only: no memory, and still one
 * mapping. wf__stack_is_overflow_addr looks as far. */
#define WF__STACK_GUARD_BYTES (64 * 1024)
#define WF__STACK_SLAB 32        /* stacks in a class's first slab mapping */
#define WF__STACK_SLAB_MAX 1024  /* ...doubling up to this many */
/* The default size plus the powers of two from 16 KiB to 1 GiB
 * (wf__stack_round). */
#define WF__STACK_CLASSES 18

typedef struct wf__stack {
    struct wf__stack *next; /* free-list link while pooled */
    /* A stack that has run a task keeps its fiber: the context of the fiber
     * loop suspended between two tasks (fiber.c), NULL until first used, and
     * the TSan fiber state that goes with it. */
    void *ctx;
    void *tsan;
    char *lo;         /* lowest usable byte */
    char *hi;         /* top of the usable area: the initial stack pointer */
    uintptr_t min_sp; /* lowest stack pointer seen at a switch */
    size_t size;      /* hi - lo */
    unsigned vg_id;   /* valgrind stack id */
    bool guarded;     /* a PROT_NONE page lies right below lo */
} wf__stack;

#define WF__CANARY_BYTES 2048
#define WF__STACK_HDR (64 + WF__CANARY_BYTES)

typedef struct wf__stack_cache {
    unsigned n;
    wf__stack *items[WF__STACK_CACHE];
} wf__stack_cache;

typedef struct wf__stack_map {
    struct wf__stack_map *next;
    void *addr;
    size_t len;
} wf__stack_map;

typedef struct wf__stack_pool {
    pthread_mutex_t lock; /* the classes; held for no syscall but a slab mmap */
    size_t default_size;  /* usable bytes of a default stack */
    size_t page;
    long guard_budget;    /* guarded stacks still allowed (under lock) */
    struct {
        size_t size;
        wf__stack *free; /* initialised stacks */
        size_t nfree;
        char *bump;      /* the current slab's next unused stack */
        unsigned left;   /* stacks left in the current slab */
        unsigned slab_n; /* stacks in the current slab */
        bool slab_guarded; /* the current slab has its guard page */
    } cls[WF__STACK_CLASSES];
    unsigned ncls;
    pthread_mutex_t maps_lock;
    wf__stack_map *maps; /* every mapping made, released at the end */
} wf__stack_pool;

/* guard_stacks: the configured budget, or -1 to derive it. */
int wf__stack_pool_init(wf__stack_pool *p, size_t default_size, long guard_stacks);
void wf__stack_pool_destroy(wf__stack_pool *p, wf__stack_cache *caches, unsigned ncaches);

/* Round a requested size to what a stack of that request will have. */
size_t wf__stack_round(const wf__stack_pool *p, size_t request);

/* Get a stack with `size` usable bytes (already rounded). `cache` is the
 * calling worker's cache or NULL. Returns NULL when out of memory. */
wf__stack *wf__stack_get(wf__stack_pool *p, wf__stack_cache *cache, size_t size);
void wf__stack_put(wf__stack_pool *p, wf__stack_cache *cache, wf__stack *s);

#define WF__CANARY_PATTERN 0x5afe57acc0decafeull

static inline uint64_t wf__canary_at(const void *addr)
{
    return WF__CANARY_PATTERN ^ (uint64_t)(uintptr_t)addr;
}

/* The fast check, at every switch: the two words right below `lo`. */
static inline bool wf__stack_canary_ok(const wf__stack *s)
{
    if (s->guarded)
        return true;
    const volatile uint64_t *c = (const volatile uint64_t *)(s->lo - 16);
    return c[0] == wf__canary_at((const void *)&c[0]) && c[1] == wf__canary_at((const void *)&c[1]);
}

/* The whole zone: at a fiber's end and in the fault handler. */
bool wf__stack_canary_full_ok(const wf__stack *s);

/* Is `addr` in the guard page or the canary zone of `s` (an overflow)? */
bool wf__stack_is_overflow_addr(const wf__stack *s, uintptr_t addr);

#endif
