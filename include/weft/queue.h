/* weft/queue.h - queues (FIFO, LIFO, priority; bounded or not), rendezvous
 * channels, and select.
 *
 * A queue carries pointers (void *, NULL included); what they point to is
 * the program's business. It is asyncio.Queue / LifoQueue / PriorityQueue
 * with deadlines, Go's channels (buffered and unbuffered), and Go's select
 * over several of them.
 *
 * WHICH CALL IS WHICH. The capacity is never 0 by accident:
 *   Go's make(chan T)          wf_queue_create_rendezvous(&q)
 *   Go's make(chan T, n)       wf_queue_create(&q, n, WF_QUEUE_FIFO, NULL), n >= 1
 *   asyncio.Queue(maxsize=n)   wf_queue_create(&q, n, WF_QUEUE_FIFO, NULL), n >= 1
 *   asyncio.Queue(maxsize=0), asyncio.Queue()
 *                              wf_queue_create(&q, WF_QUEUE_UNBOUNDED, WF_QUEUE_FIFO, NULL)
 * wf_queue_create() refuses a capacity of 0 with -EINVAL, since Go and
 * asyncio read 0 in opposite ways (Go: no buffer at all; asyncio: no bound).
 * CHANGED (2026-12): capacity 0 used to mean unbounded; such calls now fail
 * with -EINVAL instead of doing either silently. Pass WF_QUEUE_UNBOUNDED.
 *
 * A RENDEZVOUS CHANNEL holds nothing: a put completes only when a getter
 * takes its item, handed over from the putting task to the getting one (Go's
 * unbuffered channel). Every call below works on it; try_put succeeds only
 * when a getter is waiting, try_get only when a putter is.
 *
 * OWNERSHIP OF ITEMS. An item belongs to the queue from the moment a put
 * succeeds until a get returns it. A put that fails did not enqueue (the
 * caller still owns the item); a get that fails took nothing. This holds for
 * timeouts and cancellation too: a waiting get is handed its item exactly
 * when its wait is decided, so a getter cancelled at that moment never takes
 * it: it goes to the next getter or stays in the queue.
 *
 * SHUTDOWN (Python 3.13's Queue.shutdown). After wf_queue_shutdown(), every
 * put fails with -ESHUTDOWN. Graceful: gets go on returning the items left,
 * then fail with -ESHUTDOWN. Immediate: the items left are removed at once
 * (handed to a drop callback if one is given, so the program can free
 * them), and every get fails with -ESHUTDOWN. Either way every task waiting
 * in a put or a get is woken and fails with -ESHUTDOWN.
 *
 * Errors common to every call: -EINVAL for a NULL queue, or a negative
 * deadline other than WF_FOREVER; -EPERM for a call that must wait made
 * outside a fiber. Every call that may wait, the forms without a deadline
 * included, also fails with -ETIMEDOUT once a timeout scope the task is in
 * (wf_timeout_enter(), weft/combinators.h) expires, with the same
 * guarantee as its own deadline: nothing was put or taken.
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include "task.h"
#include "time.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup queue Queues and select
 * @{ */

/** A queue (opaque; made by wf_queue_create()). */
typedef struct wf_queue wf_queue_t;

/** The order in which a queue returns its items. */
typedef enum wf_queue_kind {
    WF_QUEUE_FIFO = 0,     /**< first in, first out (asyncio.Queue) */
    WF_QUEUE_LIFO = 1,     /**< last in, first out (asyncio.LifoQueue) */
    WF_QUEUE_PRIORITY = 2, /**< smallest first by the comparison; equal items
                                in insertion order (asyncio.PriorityQueue) */
} wf_queue_kind_t;

/** A priority comparison: negative if @p a must come out before @p b,
 * positive if after, 0 if equal. It is called with the queue's internal lock
 * held: it must be quick, must not block, and must not use the queue. */
typedef int (*wf_queue_cmp_fn)(const void *a, const void *b);

/** Called once for each item a queue removes on its own (immediate shutdown,
 * destroy), with the @p arg given to that call. It runs in the caller's
 * context, after the queue's lock is released. */
typedef void (*wf_queue_drop_fn)(void *item, void *arg);

/** Modes of wf_queue_shutdown(). */
typedef enum wf_queue_shutdown_mode {
    WF_QUEUE_SHUTDOWN_GRACEFUL = 0,  /**< gets drain what is left */
    WF_QUEUE_SHUTDOWN_IMMEDIATE = 1, /**< what is left is removed now */
} wf_queue_shutdown_mode_t;

/** The largest capacity of a bounded queue. */
#define WF_QUEUE_MAX_CAPACITY ((size_t)1 << 32)

/** The capacity of an unbounded queue, whose buffer grows as needed
 * (asyncio's Queue(maxsize=0)). It equals LONG_MAX, which is also what
 * wf_queue_capacity() answers for such a queue. */
#define WF_QUEUE_UNBOUNDED ((size_t)-1 >> 1)

/** Make a queue (asyncio.Queue / LifoQueue / PriorityQueue; Go's buffered
 * channel is a FIFO queue).
 * @param out       receives the queue; required.
 * @param capacity  the most items it holds (1 .. WF_QUEUE_MAX_CAPACITY),
 *                  or WF_QUEUE_UNBOUNDED. Not 0 (-EINVAL): see WHICH CALL IS
 *                  WHICH above.
 * @param kind      WF_QUEUE_FIFO, WF_QUEUE_LIFO or WF_QUEUE_PRIORITY.
 * @param cmp       the comparison: required for WF_QUEUE_PRIORITY, must be
 *                  NULL for the other kinds.
 * @return 0; -EINVAL for a bad argument (capacity 0 included); -ENOMEM.
 * Never blocks (a bounded queue allocates its whole buffer here); any
 * thread. */
int wf_queue_create(wf_queue_t **out, size_t capacity, wf_queue_kind_t kind, wf_queue_cmp_fn cmp);

/** Make a rendezvous channel (Go's make(chan T)): a put waits until a
 * getter takes its item, a get until a putter offers one, and the item goes
 * straight from one to the other. Cancellation and deadlines lose nothing:
 * a put that fails delivered nothing, a get that fails took nothing.
 * wf_queue_size() is always 0, wf_queue_capacity() 0, wf_queue_full() 1
 * unless a getter waits; task_done/join count the items handed over;
 * shutdown fails every waiting put and get (there is nothing to drain).
 * @return 0; -EINVAL for a NULL @p out; -ENOMEM. Never blocks; any
 * thread. */
int wf_queue_create_rendezvous(wf_queue_t **out);

/** Free a queue. Items still in it are passed to @p drop (if not NULL) and
 * are otherwise forgotten.
 * @param drop     called with each item left, and @p arg; may be NULL.
 * @param dropped  if not NULL, receives the number of items that were left
 *                 in the queue (written only on success).
 * @return 0 (the queue is freed and must not be used again); -EBUSY while
 * a task waits on it (in a put, a get, a join or a select: nothing is
 * changed); -EINVAL for NULL. Never blocks; any thread. */
int wf_queue_destroy(wf_queue_t *q, wf_queue_drop_fn drop, void *arg, size_t *dropped);

/** Put @p item, waiting for room while the queue is full (Queue.put()); on
 * a rendezvous channel, waiting until a getter takes it.
 * If tasks wait in a get, the item goes straight to the first of them.
 * @return 0 when the item is in the queue (or handed to a getter);
 * -ESHUTDOWN if the queue is shut down (now, or while waiting);
 * -ECANCELED if the caller was cancelled while waiting (the item was not
 * enqueued); -ETIMEDOUT if a timeout scope the caller is in expired first
 * (not enqueued); -ENOMEM if an unbounded queue could not grow; -EINVAL;
 * -EPERM outside a fiber when the call would wait. Fiber only when it
 * waits; may block. */
int wf_queue_put(wf_queue_t *q, void *item);

/** wf_queue_put() with a deadline; plus -ETIMEDOUT when it passes (not
 * enqueued), and -EINVAL for a negative deadline other than WF_FOREVER. */
int wf_queue_put_until(wf_queue_t *q, void *item, int64_t deadline);

/** Put @p item if there is room now (Queue.put_nowait()); on a rendezvous
 * channel, if a getter is waiting now (Go's select with a default case).
 * @return 0; -EAGAIN if a bounded queue is full (asyncio's QueueFull), or no
 * getter waits on a rendezvous channel;
 * -ESHUTDOWN; -ENOMEM; -EINVAL. Never blocks; any thread, including threads
 * outside the runtime (a getter it wakes is scheduled on the runtime). */
int wf_queue_try_put(wf_queue_t *q, void *item);

/** Take the next item into *@p item, waiting while the queue is empty
 * (Queue.get()).
 * @return 0 with the item in *@p item; -ESHUTDOWN if the queue is shut down
 * and (graceful) empty; -ECANCELED if cancelled while waiting (nothing was
 * taken); -ETIMEDOUT if a timeout scope the caller is in expired first
 * (nothing taken); -EINVAL (also for a NULL @p item); -EPERM outside a
 * fiber when the call would wait. Fiber only when it waits; may block. */
int wf_queue_get(wf_queue_t *q, void **item);

/** wf_queue_get() with a deadline; plus -ETIMEDOUT when it passes (nothing
 * taken), and -EINVAL for a negative deadline other than WF_FOREVER. */
int wf_queue_get_until(wf_queue_t *q, void **item, int64_t deadline);

/** Take an item if one is there (Queue.get_nowait()); on a rendezvous
 * channel, if a putter is waiting now.
 * @return 0; -EAGAIN if empty (asyncio's QueueEmpty); -ESHUTDOWN if shut
 * down and empty; -EINVAL (also for a NULL @p item). Never blocks; any
 * thread. */
int wf_queue_try_get(wf_queue_t *q, void **item);

/** The number of items in the queue (Queue.qsize()), as a snapshot; -EINVAL
 * for NULL. Any thread. */
long wf_queue_size(wf_queue_t *q);

/** The capacity given to wf_queue_create() (Queue.maxsize; Go's cap()):
 * WF_QUEUE_UNBOUNDED (as a long: LONG_MAX) for an unbounded queue, 0 for a
 * rendezvous channel; or -EINVAL. Any thread. */
long wf_queue_capacity(wf_queue_t *q);

/** Whether the queue is empty (Queue.empty()): 1, 0, or -EINVAL. */
int wf_queue_empty(wf_queue_t *q);

/** Whether a bounded queue is full (Queue.full()): 1, 0 (always for an
 * unbounded queue), or -EINVAL. A rendezvous channel is full unless a
 * getter waits (a put would wait). */
int wf_queue_full(wf_queue_t *q);

/** Mark one item taken by a get as fully processed (Queue.task_done()).
 * Every successful put counts one unfinished item; wf_queue_join() waits
 * until task_done has been called for each.
 * @return 0; -EINVAL if there is no unfinished item (called more times than
 * items were put: asyncio's ValueError), or for NULL. Never blocks; any
 * thread. */
int wf_queue_task_done(wf_queue_t *q);

/** Wait until every item ever put has been marked done with
 * wf_queue_task_done() (Queue.join()); returns at once if none is pending.
 * Items removed by an immediate shutdown count as done.
 * @return 0; -ECANCELED; -ETIMEDOUT if a timeout scope the caller is in
 * expired first; -EINVAL; -EPERM outside a fiber (even when nothing is
 * pending). Fiber only; may block. */
int wf_queue_join(wf_queue_t *q);

/** wf_queue_join() with a deadline; plus -ETIMEDOUT when it passes (0 if
 * the last item was marked done at that moment), and -EINVAL for a negative
 * deadline other than WF_FOREVER. */
int wf_queue_join_until(wf_queue_t *q, int64_t deadline);

/** Shut the queue down (Queue.shutdown(), Python 3.13); see SHUTDOWN above.
 * Calling it again is allowed: a later immediate shutdown still removes
 * what a graceful one left.
 * @param mode  WF_QUEUE_SHUTDOWN_GRACEFUL or WF_QUEUE_SHUTDOWN_IMMEDIATE.
 * @param drop  immediate mode: called for each removed item (may be NULL:
 *              the items are then simply forgotten by the queue).
 * @return the number of items removed (0 for graceful); -EINVAL for NULL or
 * a bad mode; -ENOMEM (only in a build with the option queue_ring:
 * immediate mode with a @p drop, on a bounded FIFO queue, when the list of
 * the items to drop could not be allocated; nothing was changed). Never
 * blocks; any thread. */
int wf_queue_shutdown(wf_queue_t *q, wf_queue_shutdown_mode_t mode, wf_queue_drop_fn drop, void *arg);

/** Whether the queue has been shut down: 1, 0, or -EINVAL. Any thread. */
int wf_queue_is_shutdown(wf_queue_t *q);

/* --- select ------------------------------------------------------------------ */

/** Operations of a select case. */
typedef enum wf_select_op {
    WF_SELECT_GET = 1, /**< take an item from the queue */
    WF_SELECT_PUT = 2, /**< put `item` into the queue */
} wf_select_op_t;

/** One case of wf_select(). */
typedef struct wf_select_case {
    /** The queue; NULL disables the case (it is never chosen), like a nil
     * channel in Go. */
    wf_queue_t *queue;
    /** WF_SELECT_GET or WF_SELECT_PUT. */
    wf_select_op_t op;
    /** PUT: the item to put. GET: receives the item taken. */
    void *item;
    /** Out: 0 when the operation was done; -ESHUTDOWN when the case was
     * chosen because its queue is shut down (for a GET: shut down and
     * empty), as a closed channel is always ready in Go. Set only on the
     * chosen case. */
    int result;
} wf_select_case_t;

/** The most cases one select may have. */
#define WF_SELECT_MAX 1024

/** Wait until one of the cases can proceed, do it, and say which (Go's
 * select; asyncio's wait(FIRST_COMPLETED) over get tasks, made exact).
 * Exactly one case happens: the others took and put nothing. When several
 * are ready, one is chosen at random, so none starves. A select whose cases
 * are all disabled (NULL queues) waits for its deadline or a cancellation,
 * as Go's select on nil channels blocks.
 * @param cases  the cases; @param n how many (1 .. WF_SELECT_MAX).
 * @return the index of the case that happened (its `result` says how);
 * -ETIMEDOUT if none became ready by the deadline, or by the expiry of a
 * timeout scope the caller is in (a deadline at or before now makes this
 * Go's select with a default case); -ECANCELED if cancelled while waiting;
 * -EINVAL for NULL @p cases, a bad @p n, a bad op on an enabled case, or a
 * bad deadline; -ENOMEM when more than 16 cases need a small allocation, or
 * a PUT case's unbounded queue could not grow; -EPERM outside a fiber (even
 * when a case is ready). On every error no case happened. Fiber only; may
 * block. */
int wf_select_until(wf_select_case_t *cases, size_t n, int64_t deadline);

/** wf_select_until() without a deadline. */
int wf_select(wf_select_case_t *cases, size_t n);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
