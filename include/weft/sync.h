/* weft/sync.h - Lock, RWLock, Event, Condition, Semaphore, BoundedSemaphore,
 * Barrier; and, through weft/queue.h and weft/gen.h, queues, select and
 * generators.
 *
 * Every primitive here is a wait list on the runtime's one wait mechanism,
 * so every blocking call:
 *  - works across workers (a task may block on one worker and be woken from
 *    another);
 *  - has an `_until` form taking an absolute deadline on the wf_now() clock
 *    (WF_FOREVER waits forever; a deadline at or before now tries once and
 *    fails with -ETIMEDOUT; any other negative deadline is -EINVAL);
 *  - fails with -ECANCELED when the waiting task is cancelled, and with
 *    -ETIMEDOUT when the deadline (or the task's timeout scope) passes;
 *  - loses nothing when it fails: a lock, a permit or an item is handed to a
 *    waiter exactly when its wait is decided, so a wait that ends by timeout
 *    or cancellation took nothing, and what it would have got goes to the
 *    next waiter.
 * As in asyncio, an operation that need not wait succeeds even when the task
 * has a cancellation pending (a cancelled task can still take a free lock to
 * clean up); only waiting fails with -ECANCELED.
 *
 * STORAGE. Locks, events, conditions, semaphores and barriers live in
 * storage the caller owns (on a fiber's stack, in a struct, static), of a
 * fixed size with no public fields. Initialise it with the `_init` function
 * (or, where one exists, the `_INIT` static initializer: all-zero storage is
 * a valid unlocked lock, unset event, ...). Before the storage is freed or
 * reused, call the `_destroy` function: it fails with -EBUSY while a task
 * holds or waits on the object, and it waits out a waker still finishing
 * its call (a task woken by a release may otherwise free the storage while
 * the releaser is still returning). An object that has been destroyed
 * answers every call with -EINVAL until it is initialised again.
 *
 * ERRORS shared by every function of this header: -EINVAL for a NULL object
 * or one that has been destroyed; -EPERM for a "fiber only" call made
 * outside a weft task (waiting, and anything that records its owner, needs
 * one). Every call that may wait, the forms without a deadline included,
 * also fails with -ETIMEDOUT once a timeout scope the task is in
 * (wf_timeout_enter(), weft/combinators.h) expires.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "task.h"
#include "time.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup sync Locks, events, conditions, semaphores and barriers
 * @{ */

/* --- Lock ----------------------------------------------------------------- */

/** A mutual-exclusion lock (asyncio.Lock). Fair: waiters acquire it in the
 * order they started waiting; a release hands it straight to the first
 * waiter, so a task that releases and re-acquires at once cannot barge
 * ahead of it. The lock records the task that holds it: only that task may
 * release it, and it may not acquire it again (it is not recursive). */
typedef struct wf_lock {
    WF_ALIGNAS(16) unsigned char opaque[48];
} wf_lock_t;

/** Static initializer: an unlocked lock (same as wf_lock_init()). */
/* clang-format off */
#define WF_LOCK_INIT {{0}}
/* clang-format on */

/** Initialise @p l, unlocked. @return 0; -EINVAL for NULL. Never blocks;
 * callable from any thread. */
int wf_lock_init(wf_lock_t *l);

/** Check that nobody holds or waits on @p l and retire it.
 * @return 0; -EBUSY while a task holds it or waits for it (nothing is
 * changed); -EINVAL for NULL or an already destroyed lock. Never blocks
 * (beyond waiting out a releaser finishing its call); any thread. */
int wf_lock_destroy(wf_lock_t *l);

/** Acquire @p l, waiting as long as it takes.
 * @return 0 once the caller holds it; -ECANCELED if the caller was
 * cancelled while waiting (it does not hold the lock); -ETIMEDOUT if a
 * timeout scope the caller is in expired first (nor does it then);
 * -EDEADLK if the caller already holds it; -EINVAL; -EPERM outside a
 * fiber.
 * Fiber only; may block. */
int wf_lock_acquire(wf_lock_t *l);

/** wf_lock_acquire() with a deadline. @return as wf_lock_acquire(), plus
 * -ETIMEDOUT when the deadline passed first (the lock was not taken);
 * -EINVAL also for a negative deadline other than WF_FOREVER. */
int wf_lock_acquire_until(wf_lock_t *l, int64_t deadline);

/** Acquire @p l only if that needs no waiting: it is free and nobody waits.
 * @return 0 when taken; -EAGAIN when it is held (or others wait for it);
 * -EDEADLK if the caller holds it; -EINVAL; -EPERM outside a fiber.
 * Fiber only; never blocks. */
int wf_lock_try_acquire(wf_lock_t *l);

/** Release @p l, handing it to the first waiter if there is one.
 * @return 0; -EPERM if the caller does not hold it (or is not in a fiber);
 * -EINVAL. Fiber only; never blocks. */
int wf_lock_release(wf_lock_t *l);

/** Whether @p l is held (Lock.locked()), as a snapshot.
 * @return 1 held, 0 free, -EINVAL. Never blocks; any thread. */
int wf_lock_locked(wf_lock_t *l);

/* --- RWLock ---------------------------------------------------------------- */

/** A readers-writer lock: any number of readers, or one writer. Writers are
 * not starved: once a writer waits, new readers queue behind it, and waiters
 * are served in arrival order (a run of readers at the head of the queue is
 * admitted together). Write ownership is recorded per task as for wf_lock_t;
 * read ownership is only counted. asyncio has no RWLock. */
typedef struct wf_rwlock {
    WF_ALIGNAS(16) unsigned char opaque[64];
} wf_rwlock_t;

/** Static initializer: a free readers-writer lock. */
/* clang-format off */
#define WF_RWLOCK_INIT {{0}}
/* clang-format on */

/** Initialise @p rw, free. @return 0; -EINVAL for NULL. Any thread. */
int wf_rwlock_init(wf_rwlock_t *rw);

/** Retire @p rw. @return 0; -EBUSY while it is held (read or write) or
 * waited for; -EINVAL. Never blocks; any thread. */
int wf_rwlock_destroy(wf_rwlock_t *rw);

/** Take a read lock, waiting while a writer holds it or any task waits
 * ahead. @return 0; -ECANCELED; -ETIMEDOUT (a timeout scope expired);
 * -EDEADLK if the caller holds the write lock; -EINVAL; -EPERM outside a
 * fiber. Fiber only; may block.
 * (A task that holds a read lock and asks for it again may deadlock behind a
 * waiting writer: read ownership is not recorded per task, as in most
 * readers-writer locks.) */
int wf_rwlock_read_acquire(wf_rwlock_t *rw);

/** wf_rwlock_read_acquire() with a deadline; plus -ETIMEDOUT. */
int wf_rwlock_read_acquire_until(wf_rwlock_t *rw, int64_t deadline);

/** Take a read lock if that needs no waiting. @return 0; -EAGAIN; -EDEADLK;
 * -EINVAL; -EPERM outside a fiber. Fiber only; never blocks. */
int wf_rwlock_try_read_acquire(wf_rwlock_t *rw);

/** Give back a read lock. @return 0; -EPERM if no read lock is held (or
 * outside a fiber); -EINVAL. Fiber only; never blocks. */
int wf_rwlock_read_release(wf_rwlock_t *rw);

/** Take the write lock, waiting for readers and writers ahead to finish.
 * @return 0; -ECANCELED; -ETIMEDOUT (a timeout scope expired); -EDEADLK if
 * the caller holds it already; -EINVAL; -EPERM outside a fiber. Fiber only;
 * may block. (A task that holds a read lock and asks for the write lock
 * waits for itself, since read locks are not recorded per task: release
 * the read lock first, or use a deadline.) */
int wf_rwlock_write_acquire(wf_rwlock_t *rw);

/** wf_rwlock_write_acquire() with a deadline; plus -ETIMEDOUT. */
int wf_rwlock_write_acquire_until(wf_rwlock_t *rw, int64_t deadline);

/** Take the write lock if that needs no waiting. @return 0; -EAGAIN;
 * -EDEADLK; -EINVAL; -EPERM outside a fiber. Fiber only; never blocks. */
int wf_rwlock_try_write_acquire(wf_rwlock_t *rw);

/** Give back the write lock. @return 0; -EPERM if the caller does not hold
 * it; -EINVAL. Fiber only; never blocks. */
int wf_rwlock_write_release(wf_rwlock_t *rw);

/** wf_rwlock_state(): the write lock is held. */
#define WF_RWLOCK_WRITER (0x7fffffff)

/** A snapshot of @p rw. @return the number of read locks held (0 when free),
 * WF_RWLOCK_WRITER when the write lock is held, or -EINVAL. Any thread. */
int wf_rwlock_state(wf_rwlock_t *rw);

/* --- Event ----------------------------------------------------------------- */

/** An event (asyncio.Event): a flag that tasks can wait to see set. Setting
 * it wakes every waiter; a waiter woken by a set returns 0 even if the flag
 * is cleared again before it runs. */
typedef struct wf_event {
    WF_ALIGNAS(16) unsigned char opaque[48];
} wf_event_t;

/** Static initializer: an event that is not set. */
/* clang-format off */
#define WF_EVENT_INIT {{0}}
/* clang-format on */

/** Initialise @p e, not set. @return 0; -EINVAL. Any thread. */
int wf_event_init(wf_event_t *e);

/** Retire @p e. @return 0; -EBUSY while tasks wait on it; -EINVAL. Never
 * blocks; any thread. */
int wf_event_destroy(wf_event_t *e);

/** Set the flag and wake every waiter (Event.set()).
 * @return the number of waiters woken (>= 0); -EINVAL. Never blocks; any
 * thread, including timer callbacks and threads outside the runtime. */
int wf_event_set(wf_event_t *e);

/** Clear the flag (Event.clear()). @return 0; -EINVAL. Any thread. */
int wf_event_clear(wf_event_t *e);

/** Whether the flag is set (Event.is_set()). @return 1, 0, or -EINVAL.
 * Any thread. */
int wf_event_is_set(wf_event_t *e);

/** Wait until the flag is set (Event.wait()); returns at once if it is.
 * @return 0; -ECANCELED; -ETIMEDOUT (a timeout scope expired); -EINVAL;
 * -EPERM outside a fiber. Fiber only; may block. */
int wf_event_wait(wf_event_t *e);

/** wf_event_wait() with a deadline; plus -ETIMEDOUT. */
int wf_event_wait_until(wf_event_t *e, int64_t deadline);

/* --- Condition ------------------------------------------------------------- */

/** A condition variable bound to a wf_lock_t (asyncio.Condition). Waiting
 * releases the lock and takes it back before returning, whatever the
 * outcome. A notification goes to a waiter exactly when it is decided, so
 * wf_cond_notify(c, 1) wakes exactly one waiter (if any waits), and a waiter
 * that times out or is cancelled at that moment never swallows it. */
typedef struct wf_cond {
    WF_ALIGNAS(16) unsigned char opaque[96];
} wf_cond_t;

/** Static initializer: a condition with a lock of its own (unlocked). */
/* clang-format off */
#define WF_COND_INIT {{0}}
/* clang-format on */

/** Initialise @p c bound to @p lock, or to a lock of its own when @p lock is
 * NULL (asyncio.Condition(lock=None)). The lock must outlive the condition.
 * @return 0; -EINVAL for a NULL @p c. Any thread. */
int wf_cond_init(wf_cond_t *c, wf_lock_t *lock);

/** Retire @p c (not its lock, unless it is its own). @return 0; -EBUSY while
 * tasks wait on it, or while its own lock is held; -EINVAL. Any thread. */
int wf_cond_destroy(wf_cond_t *c);

/** The lock @p c is bound to (to use with the wf_lock_* calls), or NULL for
 * a NULL or destroyed @p c. Any thread. */
wf_lock_t *wf_cond_lock(wf_cond_t *c);

/** wf_lock_acquire() on @p c's lock (`async with cond:`); returns as it
 * does. */
int wf_cond_acquire(wf_cond_t *c);
/** wf_lock_acquire_until() on @p c's lock. */
int wf_cond_acquire_until(wf_cond_t *c, int64_t deadline);
/** wf_lock_release() on @p c's lock. */
int wf_cond_release(wf_cond_t *c);

/** Release the lock, wait for a notification, and take the lock back
 * (Condition.wait()). The caller must hold the lock.
 * @return 0 when notified; -ECANCELED when cancelled while waiting for the
 * notification; -ETIMEDOUT when a timeout scope the caller is in expired
 * first; -EPERM if the caller does not hold the lock (nothing happens) or
 * is outside a fiber; -EINVAL. In every case but -EPERM and
 * -EINVAL the caller holds the lock again when it returns: re-taking it
 * waits as long as needed and is not interrupted by cancellation (the
 * cancellation stays pending for the next wait). Fiber only; may block. */
int wf_cond_wait(wf_cond_t *c);

/** wf_cond_wait() with a deadline on the notification (not on re-taking the
 * lock); plus -ETIMEDOUT. */
int wf_cond_wait_until(wf_cond_t *c, int64_t deadline);

/** Wait until @p pred(@p arg) is true (Condition.wait_for()). The predicate
 * is evaluated with the lock held, first before any waiting, then after each
 * notification. The caller must hold the lock, and holds it on return.
 * @return 0 once the predicate is true (also when the deadline passed at
 * the same moment: the predicate is checked one last time); -ETIMEDOUT;
 * -ECANCELED; -EPERM; -EINVAL (also for a NULL @p pred). Fiber only. */
int wf_cond_wait_for(wf_cond_t *c, bool (*pred)(void *arg), void *arg, int64_t deadline);

/** Wake up to @p n waiters (Condition.notify(n)), in the order they began
 * waiting. The caller must hold the lock.
 * @return the number woken (0 .. n); -EPERM if the caller does not hold the
 * lock; -EINVAL. Fiber only; never blocks. */
int wf_cond_notify(wf_cond_t *c, unsigned n);

/** Wake every waiter (Condition.notify_all()). @return the number woken;
 * errors as wf_cond_notify(). Fiber only; never blocks. */
int wf_cond_notify_all(wf_cond_t *c);

/* --- Semaphore and BoundedSemaphore ---------------------------------------- */

/** A counting semaphore (asyncio.Semaphore), or, made with
 * wf_sem_init_bounded(), a bounded one (asyncio.BoundedSemaphore) whose
 * value may never rise above its initial value. Fair: a release hands its
 * permit to the first waiter, and nobody takes a permit ahead of a waiter. */
typedef struct wf_sem {
    WF_ALIGNAS(16) unsigned char opaque[48];
} wf_sem_t;

/** The largest value a semaphore may hold. */
#define WF_SEM_VALUE_MAX 0x7fffffffu

/** Initialise @p s with @p value permits, unbounded (up to
 * WF_SEM_VALUE_MAX). @return 0; -EINVAL for NULL or a value above
 * WF_SEM_VALUE_MAX. Any thread. */
int wf_sem_init(wf_sem_t *s, unsigned value);

/** Initialise @p s as a bounded semaphore: @p value permits, and a release
 * that would take the value above @p value fails with -EOVERFLOW.
 * @return 0; -EINVAL. Any thread. */
int wf_sem_init_bounded(wf_sem_t *s, unsigned value);

/** Retire @p s. @return 0; -EBUSY while tasks wait on it; -EINVAL. Any
 * thread. */
int wf_sem_destroy(wf_sem_t *s);

/** Take a permit, waiting while there is none (Semaphore.acquire()).
 * @return 0; -ECANCELED; -ETIMEDOUT (a timeout scope expired); -EINVAL;
 * -EPERM outside a fiber. Fiber only; may block. */
int wf_sem_acquire(wf_sem_t *s);

/** wf_sem_acquire() with a deadline; plus -ETIMEDOUT. */
int wf_sem_acquire_until(wf_sem_t *s, int64_t deadline);

/** Take a permit if one is free and nobody waits. @return 0; -EAGAIN;
 * -EINVAL. Never blocks; any thread. */
int wf_sem_try_acquire(wf_sem_t *s);

/** Give a permit back (Semaphore.release()): to the first waiter if one
 * waits, else to the count.
 * @return 0; -EOVERFLOW if a bounded semaphore is already at its initial
 * value, or the value is at WF_SEM_VALUE_MAX (nothing changes); -EINVAL.
 * Never blocks; any thread, including threads outside the runtime. */
int wf_sem_release(wf_sem_t *s);

/** The number of free permits (>= 0), as a snapshot; -EINVAL. Any thread. */
int wf_sem_value(wf_sem_t *s);

/** Whether an acquire would have to wait (Semaphore.locked()): no permit
 * free, or tasks already waiting. @return 1, 0, -EINVAL. Any thread. */
int wf_sem_locked(wf_sem_t *s);

/* --- Barrier --------------------------------------------------------------- */

/** A barrier for a fixed number of parties (asyncio.Barrier): each party's
 * wf_barrier_wait() returns once all have arrived, and the barrier is ready
 * for the next round. If a waiting party is cancelled or times out before
 * the barrier trips, the barrier breaks (as threading.Barrier does on a
 * timeout): every other waiter, and every later wait, fails with -EPIPE
 * (asyncio's BrokenBarrierError) until wf_barrier_reset(). */
typedef struct wf_barrier {
    WF_ALIGNAS(16) unsigned char opaque[64];
} wf_barrier_t;

/** Initialise @p b for @p parties parties (1 .. INT32_MAX).
 * @return 0; -EINVAL for NULL or a count out of range. Any thread. */
int wf_barrier_init(wf_barrier_t *b, unsigned parties);

/** Retire @p b. @return 0; -EBUSY while parties wait; -EINVAL. Any thread. */
int wf_barrier_destroy(wf_barrier_t *b);

/** Arrive and wait for the other parties (Barrier.wait()).
 * @return the caller's arrival index for this round, 0 .. parties-1 (the
 * last to arrive, which trips the barrier, gets parties-1);
 * -EPIPE if the barrier is or becomes broken (aborted, reset, or another
 * waiter left) before this round trips;
 * -ECANCELED / -ETIMEDOUT if the caller was cancelled / its deadline (or
 * its timeout scope's) passed before the round tripped: the caller left,
 * and the barrier is now broken (if the round tripped at that same moment,
 * the caller counts as passed and gets its index instead; its cancellation
 * stays pending);
 * -EINVAL; -EPERM outside a fiber. Fiber only; may block. */
int wf_barrier_wait(wf_barrier_t *b);

/** wf_barrier_wait() with a deadline. */
int wf_barrier_wait_until(wf_barrier_t *b, int64_t deadline);

/** Break the barrier (Barrier.abort()): waiting parties and every later
 * wait fail with -EPIPE until wf_barrier_reset(). @return 0; -EINVAL.
 * Never blocks; any thread. */
int wf_barrier_abort(wf_barrier_t *b);

/** Return the barrier to its empty, unbroken state (Barrier.reset()); the
 * parties waiting now fail with -EPIPE. @return 0; -EINVAL. Never blocks;
 * any thread. */
int wf_barrier_reset(wf_barrier_t *b);

/** The number of parties (Barrier.parties), or -EINVAL. */
int wf_barrier_parties(wf_barrier_t *b);

/** The number of parties waiting now (Barrier.n_waiting), or -EINVAL. */
int wf_barrier_n_waiting(wf_barrier_t *b);

/** Whether the barrier is broken (Barrier.broken): 1, 0, or -EINVAL. */
int wf_barrier_broken(wf_barrier_t *b);

/** @} */

#ifdef __cplusplus
}
#endif

#include "queue.h"
#include "gen.h"

#endif
