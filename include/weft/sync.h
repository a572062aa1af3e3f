/* weft/sync.h - Lock, RWLock, Event, Condition, Semaphore, BoundedSemaphore, Barrier, queues, select, generators. */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "task.h"
#include "time.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
