/* mapping.c - the runtime's own mappings, counted (mapping.h). */
#include "mapping.h"
#include <stdatomic.h>
#include <sys/mman.h>

/* relaxed: a count for tests, read when no runtime runs; the mmap and
 * munmap system calls it counts are ordered by nothing here. */
static _Atomic long live_maps;

void *wf__map_anon(size_t len, int prot, int extra_flags)
{
    void *m = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (m != MAP_FAILED)
        atomic_fetch_add_explicit(&live_maps, 1, memory_order_relaxed);
    return m;
}

void wf__unmap(void *addr, size_t len)
{
    if (munmap(addr, len) == 0)
        atomic_fetch_sub_explicit(&live_maps, 1, memory_order_relaxed);
}

long wf__live_maps(void)
{
    return atomic_load_explicit(&live_maps, memory_order_relaxed);
}
