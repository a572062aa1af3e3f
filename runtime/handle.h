/* handle.h - the task handle table: 64-bit handles that cannot dangle.
 *
 * A handle is (generation << 32 | index). The slot at `index` holds the task
 * record and the generation of the handle currently naming it. When the last
 * handle is given back the generation is bumped at once, before anything
 * else can happen to the record, so a later call with that id fails at the
 * slot and never reads the record (which may still be alive, or freed by
 * then). The slot itself is freed with the record. Every call that takes a handle looks it up, so
 * a handle that has been joined or detached, or was never valid, is answered
 * with -EINVAL instead of touching freed memory. This is what makes a double
 * join or a join after detach a clean error (libdill's integer handles work
 * the same way).
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
#include <stdint.h>

struct wf__task;

#define WF__HANDLE_CHUNK_LOG2 12
#define WF__HANDLE_CHUNK (1u << WF__HANDLE_CHUNK_LOG2)
#define WF__HANDLE_MAX_CHUNKS (1u << 16) /* 2^28 live tasks at most */
#define WF__HANDLE_CACHE 128

typedef struct wf__slot {
    _Atomic uint32_t gen;
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

/* Give `t` a handle. Returns 0 when out of slots or memory. */
uint64_t wf__handle_alloc(wf__handles *h, wf__handle_cache *cache, struct wf__task *t);

/* The task named by `id`, or NULL if the handle is dead or invalid. */
struct wf__task *wf__handle_get(wf__handles *h, uint64_t id);

/* The last handle to `t` is gone: from now on its id is dead to lookups,
 * though the record may live on (a running detached task) and scans still
 * see it. */
void wf__handle_retire(wf__handles *h, struct wf__task *t);

/* Free `t`'s slot and record (now, or after the running scans). Its id must
 * have been retired. */
void wf__handle_release(wf__handles *h, wf__handle_cache *cache, struct wf__task *t);

/* Call fn(task, ctx) for every task in the table. Tasks may end during the
 * scan; their records stay valid until it returns. */
void wf__handle_scan(wf__handles *h, void (*fn)(struct wf__task *, void *), void *ctx);

#endif
