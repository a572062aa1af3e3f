/* streamwrite.c - the write side of buffered streams: write, drain, flush
 * and the flusher task (weft/stream.h; the protocol is in stream.h). */
#include "stream.h"
#include "park.h"
#include "runtime.h"
#include "sync/wait.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <weft/task.h>
#include <weft/time.h>

/* wlock held. */
static inline size_t queued_locked(const wf_stream_t *st)
{
    return st->olen - st->opos + st->qlen;
}

/* wlock held: wake every drain and flush caller to look again. */
static inline void wake_waiters(wf_stream_t *st, wf__batch *b)
{
    if (st->nwait)
        wf__sync_wake_all(&st->waiters, &st->nwait, NULL, b);
}

/* wlock held: make `*buf` (capacity *cap) hold `need` bytes, keeping the
 * first `keep`. */
static int grow(char **buf, size_t *cap, size_t keep, size_t need)
{
    if (*cap >= need)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -ENOMEM;
    (void)keep; /* realloc keeps them all */
    *buf = p;
    *cap = n;
    return 0;
}

/* Copy the iovecs' bytes, skipping their first `skip`, to `dst`. */
static void copy_iov(char *dst, const struct iovec *iov, int cnt, size_t skip)
{
    for (int i = 0; i < cnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(dst, (const char *)iov[i].iov_base + skip, len - skip);
        dst += len - skip;
        skip = 0;
    }
}

/* wlock held: queue `total` bytes of the iovecs behind the sender's. */
static int append_iov(wf_stream_t *st, const struct iovec *iov, int cnt, size_t total)
{
    if (st->qlen + total < st->qlen)
        return -ENOMEM;
    int e = grow(&st->queue, &st->qcap, st->qlen, st->qlen + total);
    if (e)
        return e;
    copy_iov(st->queue + st->qlen, iov, cnt, 0);
    st->qlen += total;
    return 0;
}

/* wlock held: the sender gives up (an error): the queued bytes cannot go
 * out in order any more, so they are dropped, and the error stays. */
static void fail_locked(wf_stream_t *st, int e, wf__batch *b)
{
    if (!st->werr)
        st->werr = e;
    st->opos = st->olen = 0;
    st->qlen = 0;
    st->sending = false;
    wake_waiters(st, b);
}

/* The sender's loop (stream.h): write turn held, `sending` set. Sends
 * `out`, then `queue`, until both are empty: 0, `sending` cleared. With a
 * deadline of 0 it never parks: -EAGAIN when the kernel takes no more
 * (still the sender). Any other failure: the error, `sending` cleared,
 * the queue dropped. The caller then leaves the write turn (or hands it
 * to a flusher on -EAGAIN). */
static int pump(wf_stream_t *st, int64_t deadline)
{
    wf_sock_t *s = st->sock;
    for (;;) {
        wf__batch b;
        wf__batch_init(&b);
        wf__spin_lock(&st->wlock);
        if (st->opos == st->olen) {
            st->opos = st->olen = 0;
            if (st->qlen == 0) {
                st->sending = false;
                wake_waiters(st, &b);
                wf__spin_unlock(&st->wlock);
                wf__sync_ready_batch(&b);
                return 0;
            }
            /* The queue becomes the bytes to send; `out`'s old storage
             * becomes the queue's. */
            char *p = st->out;
            size_t cap = st->ocap;
            st->out = st->queue;
            st->ocap = st->qcap;
            st->olen = st->qlen;
            st->queue = p;
            st->qcap = cap;
            st->qlen = 0;
        }
        struct iovec v = {.iov_base = st->out + st->opos, .iov_len = st->olen - st->opos};
        wake_waiters(st, &b); /* progress: a drainer may be below its mark */
        wf__spin_unlock(&st->wlock);
        wf__sync_ready_batch(&b);

        size_t w = 0;
        int e = wf__sock_send_locked(s, &v, 1, &w, deadline);
        wf__spin_lock(&st->wlock);
        st->opos += w;
        if (e == 0) {
            wf__spin_unlock(&st->wlock);
            continue;
        }
        /* A task that was cancelled still writes what the kernel takes at
         * once: with no deadline to keep, its cancellation only means it
         * cannot park, as a full buffer does. */
        if (deadline == 0 && (e == -ETIMEDOUT || e == -ECANCELED)) {
            wf__spin_unlock(&st->wlock);
            return -EAGAIN;
        }
        wf__batch_init(&b);
        fail_locked(st, e, &b);
        wf__spin_unlock(&st->wlock);
        wf__sync_ready_batch(&b);
        return e;
    }
}

/* The flusher task: it inherited the sender's role and the write turn. */
static int flusher(void *arg, void **result)
{
    (void)result;
    wf_stream_t *st = arg;
    (void)pump(st, WF_FOREVER);
    wf__sock_leave(st->sock, WF__TURN_WRITE);
    wf__stream_unref(st);
    return 0;
}

/* A flusher that never ran (spawned as the runtime shut down, so it was
 * cancelled before it started): give up the role as its error path would. */
static void flusher_dropped(void *arg)
{
    wf_stream_t *st = arg;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&st->wlock);
    fail_locked(st, -ECANCELED, &b);
    wf__spin_unlock(&st->wlock);
    wf__sync_ready_batch(&b);
    wf__sock_leave(st->sock, WF__TURN_WRITE);
    wf__stream_unref(st);
}

/* The kernel's buffer is full: hand the sender's role (and the write turn)
 * to a flusher task. If none can be started, send it all ourselves. */
static int start_flusher(wf_stream_t *st)
{
    wf__stream_ref(st); /* the flusher's */
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.name = "stream-flusher";
    o.drop = flusher_dropped;
    wf_task_t t;
    if (wf_spawn(&t, flusher, st, &o) == 0) {
        wf_detach(t);
        return 0;
    }
    atomic_fetch_sub_explicit(&st->refs, 1, memory_order_relaxed);
    int e = pump(st, WF_FOREVER);
    wf__sock_leave(st->sock, WF__TURN_WRITE);
    return e;
}

static int writev_call(wf_stream_t *st, const struct iovec *iov, int cnt, size_t total);

int wf_stream_writev(wf_stream_t *st, const struct iovec *iov, int cnt)
{
    if (!st || cnt < 0 || cnt > IOV_MAX || (!iov && cnt))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    if (!wf__current())
        return -EPERM;
    wf__stream_ref(st);
    int e = writev_call(st, iov, cnt, total);
    wf__stream_unref(st);
    return e;
}

/* wf_stream_writev's body, the call's reference held. */
static int writev_call(wf_stream_t *st, const struct iovec *iov, int cnt, size_t total)
{
    wf__spin_lock(&st->wlock);
    int e = st->werr ? st->werr : st->shut ? -EPIPE : 0;
    if (e || total == 0 || st->sending) {
        /* An error; nothing to do; or a sender at work: queue behind it. */
        if (!e && total)
            e = append_iov(st, iov, cnt, total);
        wf__spin_unlock(&st->wlock);
        return e;
    }
    st->sending = true;
    wf__spin_unlock(&st->wlock);

    /* We are the sender. The write turn is normally free (the previous
     * sender left it before or just after clearing `sending`). */
    wf_sock_t *s = st->sock;
    e = wf__sock_enter(s, WF__TURN_WRITE, WF_FOREVER);
    if (e) {
        wf__batch b;
        wf__batch_init(&b);
        wf__spin_lock(&st->wlock);
        fail_locked(st, e, &b);
        wf__spin_unlock(&st->wlock);
        wf__sync_ready_batch(&b);
        return e;
    }
    /* Straight from the caller's buffers, without parking. */
    struct iovec small[8], *v = small;
    size_t w = 0;
    if (cnt > 8)
        v = malloc((size_t)cnt * sizeof *v);
    if (v) {
        memcpy(v, iov, (size_t)cnt * sizeof *v);
        e = wf__sock_send_locked(s, v, cnt, &w, 0);
        if (v != small)
            free(v);
    } else {
        e = -EAGAIN; /* no room for the copy: queue it all instead */
    }
    if (e == -ETIMEDOUT || e == -ECANCELED || e == -EAGAIN) {
        /* The kernel took `w` bytes (it would not take more without
         * parking); the rest goes first in line, in `out`, which is empty
         * while a new sender starts, before whatever other writers queue
         * meanwhile. */
        wf__spin_lock(&st->wlock);
        e = grow(&st->out, &st->ocap, 0, total - w);
        if (!e) {
            copy_iov(st->out, iov, cnt, w);
            st->opos = 0;
            st->olen = total - w;
        }
        wf__spin_unlock(&st->wlock);
    }
    if (e) {
        wf__batch b;
        wf__batch_init(&b);
        wf__spin_lock(&st->wlock);
        fail_locked(st, e, &b);
        wf__spin_unlock(&st->wlock);
        wf__sync_ready_batch(&b);
        wf__sock_leave(s, WF__TURN_WRITE);
        return e;
    }
    /* What others queued while we sent, or what is left of ours. */
    e = pump(st, 0);
    if (e == -EAGAIN)
        return start_flusher(st); /* it inherits the write turn */
    wf__sock_leave(s, WF__TURN_WRITE);
    return e;
}

int wf_stream_write(wf_stream_t *st, const void *buf, size_t n)
{
    if (!st || (!buf && n))
        return -EINVAL;
    struct iovec v = {.iov_base = (void *)buf, .iov_len = n};
    return wf_stream_writev(st, &v, 1);
}

/* Park until `done` holds for the write side: drain's and flush's wait. */
static int wait_writes(wf_stream_t *st, int64_t deadline, bool flush)
{
    if (!st || deadline < WF_FOREVER)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__stream_ref(st);
    wf__spin_lock(&st->wlock);
    bool parked = false;
    int e;
    for (;;) {
        size_t q = queued_locked(st);
        if (st->werr) {
            e = st->werr;
            break;
        }
        if (flush ? (q == 0 && !st->sending) : q <= (parked ? st->o.low_water : st->o.high_water)) {
            e = 0;
            break;
        }
        wf__assert(st->sending, "bytes queued have a sender");
        parked = true;
        wf__waitnode node;
        node.data = NULL;
        unsigned r = wf__sync_wait(&st->wlock, &st->waiters, &st->nwait, &node, self, deadline, 0);
        if (r == WF__R_WOKEN) {
            wf__spin_lock(&st->wlock);
            continue;
        }
        e = wf__park_errno(r); /* the lock is held again */
        break;
    }
    wf__spin_unlock(&st->wlock);
    wf__stream_unref(st);
    return e;
}

int wf_stream_drain(wf_stream_t *st, int64_t deadline)
{
    return wait_writes(st, deadline, false);
}

int wf_stream_flush(wf_stream_t *st, int64_t deadline)
{
    return wait_writes(st, deadline, true);
}

int wf_stream_write_eof(wf_stream_t *st, int64_t deadline)
{
    if (!st)
        return -EINVAL;
    wf__stream_ref(st);
    int e = wf_stream_flush(st, deadline);
    if (!e) {
        wf__spin_lock(&st->wlock);
        st->shut = true;
        wf__spin_unlock(&st->wlock);
        e = wf_sock_shutdown(st->sock, SHUT_WR);
    }
    wf__stream_unref(st);
    return e;
}

size_t wf_stream_write_queued(wf_stream_t *st)
{
    if (!st)
        return 0;
    wf__spin_lock(&st->wlock);
    size_t q = queued_locked(st);
    wf__spin_unlock(&st->wlock);
    return q;
}
