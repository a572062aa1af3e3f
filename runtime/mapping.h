/* mapping.h - the runtime's own mappings, counted.
 *
 * Every mmap the runtime makes (stacks and slabs, the handle and fd tables,
 * alternate signal stacks) goes through these, which count the live ones
 * process-wide. test_run checks the count is back to exactly zero after
 * wf_run, where /proc/self/maps also shows the allocator's and a
 * sanitizer's own mappings, which come and go with load. */
#ifndef WF_MAPPING_H
#define WF_MAPPING_H

#include <stddef.h>

/* An anonymous private mapping (MAP_PRIVATE | MAP_ANONYMOUS | extra_flags);
 * MAP_FAILED, as mmap, on failure. */
void *wf__map_anon(size_t len, int prot, int extra_flags);
/* munmap of a whole mapping wf__map_anon returned. */
void wf__unmap(void *addr, size_t len);
/* How many are mapped now, in every runtime of the process. */
long wf__live_maps(void);

#endif
