/* sockfd.c - the owned fd's life: references, calls in flight, turns,
 * closing, and its binding to a runtime's epoll hub (sockfd.h). */
#include "sockfd.h"
#include "park.h"
#include "runtime.h"
#include "sync/wait.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* node->data of a turn waiter: the turn was handed over, or the socket was
 * closed. */
static char handed_mark, closed_mark;

static inline uint64_t inflight_of(uint64_t w)
{
    return w & WF__SK_INFLIGHT_MASK;
}

static inline uint64_t refs_of(uint64_t w)
{
    return (w & WF__SK_REF_MASK) >> WF__SK_REF_SHIFT;
}

static inline uint64_t turn_bit(unsigned turn)
{
    return turn == WF__TURN_READ ? WF__SK_RTURN : turn == WF__TURN_WRITE ? WF__SK_WTURN : 0;
}

static inline uint64_t wait_bit(unsigned turn)
{
    return turn == WF__TURN_READ ? WF__SK_RWAIT : WF__SK_WWAIT;
}

static inline wf__link *waiters(wf_sock_t *s, unsigned turn)
{
    return turn == WF__TURN_READ ? &s->rwaiters : &s->wwaiters;
}

wf_sock_t *wf__sock_new(int fd, int family, int type)
{
    wf_sock_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_init(&s->state, WF__SK_REF_ONE);
    s->fd = fd;
    s->family = family;
    s->type = type;
    atomic_init(&s->hub, NULL);
    atomic_init(&s->pd, NULL);
    wf__spin_init(&s->lock);
    wf__list_init(&s->rwaiters);
    wf__list_init(&s->wwaiters);
    return s;
}

/* CLOSING step 3: the descriptor's last moment, run by whoever set FDDONE.
 * No call is in flight, so nothing waits on the fd. */
static void close_fd(wf_sock_t *s)
{
    /* acquire: pairs with the binder's store; the hub's records are valid. */
    wf__pollhub *h = atomic_load_explicit(&s->hub, memory_order_acquire);
    if (h) {
        wf__pollfd *pd = wf__pollhub_get(h, s->fd, false);
        if (pd) {
            /* Deregister while the number is still ours, then reset the
             * record for the file that gets the number next. */
            wf__pollfd_close_owned(h, pd);
            wf__pollfd_release_owned(pd);
        }
    }
    /* Linux frees the number even when close fails (EINTR included):
     * never retry, never report (nobody is left to tell). */
    (void)close(s->fd);
    if (h)
        wf__pollhub_unref(h);
}

/* After a CAS changed the word from `old` to `nw`: close the fd if this CAS
 * set FDDONE, free the record if it left nothing referring to it. */
static void settle(wf_sock_t *s, uint64_t old, uint64_t nw)
{
    if ((nw & WF__SK_FDDONE) && !(old & WF__SK_FDDONE))
        close_fd(s);
    if (inflight_of(nw) == 0 && refs_of(nw) == 0)
        free(s);
}

/* The word once one call leaves, clearing `clear`: the last call after a
 * close also takes FDDONE (CLOSING step 3). */
static inline uint64_t after_leave(uint64_t w, uint64_t clear)
{
    uint64_t nw = (w - WF__SK_INFLIGHT_ONE) & ~clear;
    if (inflight_of(nw) == 0 && (nw & WF__SK_CLOSED))
        nw |= WF__SK_FDDONE;
    return nw;
}

/* --- turns ------------------------------------------------------------ */

static int enter_slow(wf_sock_t *s, unsigned turn, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    uint64_t tb = turn_bit(turn), wb = wait_bit(turn);
    wf__link *list = waiters(s, turn);
    wf__spin_lock(&s->lock);
    uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (w & WF__SK_CLOSED) {
            wf__spin_unlock(&s->lock);
            return -EBADF;
        }
        if (!(w & tb)) {
            /* The holder left while we took the lock. acquire: as in the
             * fast path. */
            if (inflight_of(w) == WF__SK_INFLIGHT_MASK) {
                wf__spin_unlock(&s->lock);
                return -EOVERFLOW;
            }
            if (atomic_compare_exchange_weak_explicit(&s->state, &w, w + WF__SK_INFLIGHT_ONE + tb,
                                                      memory_order_acquire, memory_order_relaxed)) {
                wf__spin_unlock(&s->lock);
                return 0;
            }
            continue;
        }
        if (w & wb)
            break;
        /* Tell the holder to hand the turn over when it leaves. relaxed:
         * the bit only routes the holder to the slow path, whose lock
         * orders the rest; a holder that left meanwhile makes this CAS
         * fail, and we take the turn above. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &w, w | wb, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    wf__waitnode node;
    node.data = NULL;
    unsigned r = wf__sync_wait(&s->lock, list, &s->nwait, &node, self, deadline, 0);
    if (r == WF__R_WOKEN)
        return node.data == &handed_mark ? 0 : -EBADF;
    /* The lock is held again and our node is off the list. */
    if (wf__list_empty(list))
        atomic_fetch_and_explicit(&s->state, ~wb, memory_order_relaxed);
    wf__spin_unlock(&s->lock);
    return wf__park_errno(r);
}

int wf__sock_enter(wf_sock_t *s, unsigned turn, int64_t deadline)
{
    uint64_t tb = turn_bit(turn);
    uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (wf__unlikely(w & WF__SK_CLOSED))
            return -EBADF;
        if (wf__unlikely(w & tb))
            return enter_slow(s, turn, deadline);
        if (wf__unlikely(inflight_of(w) == WF__SK_INFLIGHT_MASK))
            return -EOVERFLOW;
        /* acquire: pairs with the release in the previous holder's leave,
         * so the turn's bookkeeping (rdrained, a stream's buffer) it wrote
         * is visible to us. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &w, w + WF__SK_INFLIGHT_ONE + tb,
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
}

static void leave_slow(wf_sock_t *s, unsigned turn)
{
    uint64_t tb = turn_bit(turn), wb = wait_bit(turn);
    wf__link *list = waiters(s, turn);
    wf__task *q = NULL;
    wf__spin_lock(&s->lock);
    /* Hand the turn to the first waiter whose wait we win: the deciding
     * CAS transfers it (wait.h, step 2), with our in-flight count. */
    wf__task *t = wf__sync_wake_first(list, &s->nwait, &handed_mark, &q);
    bool empty = wf__list_empty(list);
    uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed), nw;
    for (;;) {
        if (t)
            nw = empty ? (w & ~wb) : w;
        else
            nw = after_leave(w, tb | wb); /* every node was popped: empty */
        /* acq_rel: release as in wf__sock_leave; acquire for the one that
         * closes or frees (it must see every other call's accesses). */
        if (atomic_compare_exchange_weak_explicit(&s->state, &w, nw, memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    wf__spin_unlock(&s->lock);
    if (q)
        wf__ready(q);
    if (!t)
        settle(s, w, nw);
}

void wf__sock_leave(wf_sock_t *s, unsigned turn)
{
    uint64_t tb = turn_bit(turn);
    uint64_t wb = turn ? wait_bit(turn) : 0;
    uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (wf__unlikely(w & wb)) {
            leave_slow(s, turn);
            return;
        }
        uint64_t nw = after_leave(w, tb);
        /* acq_rel: release publishes this call's bookkeeping to the next
         * holder of the turn (its acquire in enter); acquire, for the
         * call that closes the fd or frees the record, orders every other
         * call's accesses before it (each of them released them here). */
        if (atomic_compare_exchange_weak_explicit(&s->state, &w, nw, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            settle(s, w, nw);
            return;
        }
    }
}

/* --- closing and references -------------------------------------------- */

/* CLOSING steps 1 to 3; the caller's reference stays. */
int wf__sock_shut(wf_sock_t *s)
{
    uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (w & WF__SK_CLOSED)
            return -EBADF;
        /* seq_cst: one half of the Dekker pair with a first wait binding
         * the socket to a hub (bind_slow): we set CLOSED, then load the
         * hub; the binder stores the hub, then loads CLOSED. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &w, (w | WF__SK_CLOSED) + WF__SK_INFLIGHT_ONE,
                                                  memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    /* Step 2: calls parked on the fd, then tasks waiting for a turn. The
     * hub is loaded, and a reference taken on it, under `lock`: a call
     * that moves the socket to another runtime (bind_slow) replaces the
     * hub under it too and drops its reference after it, which may free an
     * ended runtime's hub that we would still be using. */
    wf__spin_lock(&s->lock);
    wf__pollhub *h = atomic_load_explicit(&s->hub, memory_order_seq_cst);
    if (h)
        wf__pollhub_ref(h);
    wf__spin_unlock(&s->lock);
    if (h) {
        wf__pollfd *pd = wf__pollhub_get(h, s->fd, false);
        if (pd)
            wf__pollfd_close_owned(h, pd);
        wf__pollhub_unref(h);
    }
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&s->lock);
    wf__sync_wake_all(&s->rwaiters, &s->nwait, &closed_mark, &b);
    wf__sync_wake_all(&s->wwaiters, &s->nwait, &closed_mark, &b);
    /* Both lists are empty now (a node whose wait ended otherwise was
     * popped too, and its owner uncounts itself). */
    atomic_fetch_and_explicit(&s->state, ~(WF__SK_RWAIT | WF__SK_WWAIT), memory_order_relaxed);
    wf__spin_unlock(&s->lock);
    wf__sync_ready_batch(&b);
    /* Step 3. */
    wf__sock_leave(s, WF__TURN_NONE);
    return 0;
}

int wf_sock_ref(wf_sock_t *s)
{
    if (!s)
        return -EINVAL;
    uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (refs_of(w) >= WF__SK_MAX_REFS)
            return -EOVERFLOW;
        /* relaxed: the caller holds a reference, so the record cannot go
         * meanwhile; nothing is published by taking another. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &w, w + WF__SK_REF_ONE, memory_order_relaxed,
                                                  memory_order_relaxed))
            return 0;
    }
}

int wf_sock_release(wf_sock_t *s)
{
    if (!s)
        return -EINVAL;
    uint64_t w = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (wf__unlikely(refs_of(w) == 0))
            return -EINVAL; /* best effort: a release after the last one */
        /* The last reference closes a socket that was not closed (step 4).
         * Decided on the very word the CAS below replaces, not on an
         * earlier load: two holders giving back the last two references at
         * once each saw two, neither closed, and the second freed the
         * record with its descriptor still open (a leaked fd). With one
         * reference left we are its only holder, so the shut is ours. */
        if (refs_of(w) == 1 && !(w & WF__SK_CLOSED)) {
            (void)wf__sock_shut(s);
            w = atomic_load_explicit(&s->state, memory_order_relaxed);
            continue;
        }
        uint64_t nw = w - WF__SK_REF_ONE;
        /* acq_rel: as in wf__sock_leave, for whoever frees. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &w, nw, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            settle(s, w, nw);
            return 0;
        }
    }
}

int wf_sock_close(wf_sock_t *s)
{
    if (!s)
        return -EINVAL;
    int e = wf__sock_shut(s);
    wf_sock_release(s);
    return e;
}

/* --- the runtime's hub -------------------------------------------------- */

/* Bind `s` to `mine`, the calling task's runtime's hub (sockfd.h, THE
 * RUNTIME): its first binding, or a move from an ended runtime's hub;
 * -EXDEV if it is bound to another runtime that still runs. Every change
 * of the hub is made here, under `lock`:
 *   - a move drops the old hub's reference after it, and the socket's
 *     other calls (its reader and its writer may both be moving it) and a
 *     close (wf__sock_shut) look at a bound hub under the lock only,
 *     taking a reference: the move cannot free an ended runtime's hub
 *     under them (the socket's reference may be the last that keeps it);
 *   - `pd` is stored by the binder that wins, only: a binder from a
 *     runtime beside ours that lost stored its own record over the
 *     winner's when it stored it before its CAS, and the winner's waits
 *     then parked on a record that its events never reach. */
static wf__pollhub *bind_slow(wf_sock_t *s, wf__pollhub *mine, int *err)
{
    wf__pollfd *pd = wf__pollhub_get(mine, s->fd, true); /* may allocate: not under the lock */
    if (!pd) {
        *err = -ENOMEM;
        return NULL;
    }
    wf__spin_lock(&s->lock);
    /* relaxed: the hub changes only under the lock. */
    wf__pollhub *h = atomic_load_explicit(&s->hub, memory_order_relaxed);
    if (h == mine) {
        wf__spin_unlock(&s->lock);
        return mine; /* the socket's other call bound it */
    }
    /* acquire: pairs with the release that set `orphaned` once that
     * runtime's threads were gone. */
    if (h && !atomic_load_explicit(&h->orphaned, memory_order_acquire)) {
        wf__spin_unlock(&s->lock);
        *err = -EXDEV;
        return NULL;
    }
    if (h) {
        /* That runtime has ended: move to ours. Its epoll still holds the
         * registration (the hub lives while we refer to it): take it out. */
        wf__pollfd *old = wf__pollhub_get(h, s->fd, false);
        if (old) {
            wf__pollfd_close_owned(h, old);
            wf__pollfd_release_owned(old);
        }
    }
    /* Before the hub is published (the store releases it). */
    atomic_store_explicit(&s->pd, pd, memory_order_relaxed);
    wf__pollhub_ref(mine);
    /* seq_cst: the binder's half of the Dekker pair with wf__sock_shut
     * (which also loads the hub under the lock). */
    atomic_store_explicit(&s->hub, mine, memory_order_seq_cst);
    wf__spin_unlock(&s->lock);
    if (h)
        wf__pollhub_unref(h);
    /* A close that ran before our store did not see the hub, so it could
     * not mark the fd's record closing: do it for it, so that no call
     * parks on a closed socket (sockfd.h, CLOSING). */
    if (atomic_load_explicit(&s->state, memory_order_seq_cst) & WF__SK_CLOSED) {
        wf__pollfd_close_owned(mine, pd);
        *err = -EBADF;
        return NULL;
    }
    return mine;
}

/* Bind `s` to the calling task's runtime (sockfd.h, THE RUNTIME). */
static wf__pollhub *bind_hub(wf_sock_t *s, wf__task *self, int *err)
{
    wf__pollhub *mine = self->rt->poller.hub;
    /* acquire: pairs with the binder's store (the hub is initialised, and
     * `pd` stored before it). */
    wf__pollhub *h = atomic_load_explicit(&s->hub, memory_order_acquire);
    if (wf__likely(h == mine))
        return h;
    return bind_slow(s, mine, err);
}

wf__pollfd *wf__sock_rev_record(wf_sock_t *s)
{
    wf__task *self = wf__current();
    /* acquire: the record pointer was stored before the hub. */
    wf__pollhub *h = atomic_load_explicit(&s->hub, memory_order_acquire);
    /* Only the hub of the caller's runtime, which lives while it runs:
     * another one is an ended runtime's, which the socket's other call
     * may be moving it away from and freeing (bind_slow). */
    if (!h || !self || h != self->rt->poller.hub)
        return NULL;
    return atomic_load_explicit(&s->pd, memory_order_relaxed);
}

int wf__sock_wait(wf_sock_t *s, unsigned dir, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    int err = 0;
    wf__pollhub *h = bind_hub(s, self, &err);
    if (!h)
        return err;
    /* relaxed: stored before the hub, which we loaded with acquire. */
    wf__pollfd *pd = atomic_load_explicit(&s->pd, memory_order_relaxed);
    const uint32_t *seen = dir == WF__POLL_READ && s->rev_pd == pd ? &s->rev_seen : NULL;
    return wf__pollfd_wait_owned(h, pd, self, dir, deadline, seen);
}
