/* stream.c - buffered streams: life, and the read side (weft/stream.h; the
 * record is in stream.h, the write side in streamwrite.c). */
#include "stream.h"
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <weft/time.h>

void wf_stream_opts_init(wf_stream_opts_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->limit = 64 * 1024;
    /* 8 KiB a read: a page pair from jemalloc's small classes (cheap to
     * take and give back around every park), and as much as a
     * request/response protocol usually has in flight. */
    o->read_size = 8 * 1024;
    o->high_water = 64 * 1024; /* asyncio's defaults */
    o->low_water = 16 * 1024;
}

int wf_stream_open(wf_stream_t **out, wf_sock_t *s, const wf_stream_opts_t *opts)
{
    if (!out || !s)
        return -EINVAL;
    wf_stream_opts_t o;
    if (opts)
        o = *opts;
    else
        wf_stream_opts_init(&o);
    if (!o.limit || !o.read_size || o.low_water > o.high_water)
        return -EINVAL;
    /* acquire: a caller that holds a reference sees the socket's state. */
    if (atomic_load_explicit(&s->state, memory_order_acquire) & WF__SK_CLOSED)
        return -EBADF;
    wf_stream_t *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->sock = s;
    atomic_init(&st->refs, 1);
    st->o = o;
    wf__spin_init(&st->wlock);
    wf__list_init(&st->waiters);
    *out = st;
    return 0;
}

void wf__stream_unref(wf_stream_t *st)
{
    /* acq_rel: the last one sees every other holder's accesses. */
    if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(st->rbuf);
    free(st->out);
    free(st->queue);
    wf_sock_release(st->sock);
    free(st);
}

int wf_stream_abort(wf_stream_t *st)
{
    if (!st)
        return -EINVAL;
    /* A flusher still running wakes with -EBADF, drops the queue and
     * gives back its reference. */
    (void)wf__sock_shut(st->sock);
    wf__stream_unref(st);
    return 0;
}

int wf_stream_close(wf_stream_t *st, int64_t deadline)
{
    if (!st)
        return -EINVAL;
    int e = 0;
    if (wf_stream_write_queued(st)) {
        if (!wf__current())
            e = -EPERM;
        else if (deadline < WF_FOREVER)
            e = -EINVAL;
        else
            e = wf_stream_flush(st, deadline);
    } else {
        wf__spin_lock(&st->wlock);
        e = st->werr;
        wf__spin_unlock(&st->wlock);
    }
    (void)wf__sock_shut(st->sock);
    wf__stream_unref(st);
    return e;
}

wf_sock_t *wf_stream_socket(wf_stream_t *st)
{
    return st ? st->sock : NULL;
}

int wf_open_connection(wf_stream_t **out, const char *host, uint16_t port, int64_t deadline)
{
    if (!out)
        return -EINVAL;
    wf_sock_t *s;
    int e = wf_tcp_connect(&s, host, port, deadline);
    if (e)
        return e;
    e = wf_stream_open(out, s, NULL);
    if (e)
        wf_sock_close(s);
    return e;
}

int wf_open_unix_connection(wf_stream_t **out, const char *path, int64_t deadline)
{
    if (!out)
        return -EINVAL;
    wf_sock_t *s;
    int e = wf_unix_connect(&s, path, deadline);
    if (e)
        return e;
    e = wf_stream_open(out, s, NULL);
    if (e)
        wf_sock_close(s);
    return e;
}

/* --- the read buffer (read-turn holder only) -------------------------------- */

static inline size_t buffered(const wf_stream_t *st)
{
    return st->rend - st->rpos;
}

/* Room for `room` more bytes after rend: compact, then grow. */
static int reserve(wf_stream_t *st, size_t room)
{
    if (st->rcap - st->rend >= room)
        return 0;
    size_t have = buffered(st);
    if (st->rpos) {
        memmove(st->rbuf, st->rbuf + st->rpos, have);
        st->rpos = 0;
        st->rend = have;
        if (st->rcap - have >= room)
            return 0;
    }
    size_t ncap = st->rcap ? st->rcap : st->o.read_size;
    while (ncap - have < room)
        ncap *= 2;
    char *n = realloc(st->rbuf, ncap);
    if (!n)
        return -ENOMEM;
    st->rbuf = n;
    st->rcap = ncap;
    return 0;
}

/* Nothing buffered and about to park: an idle stream keeps no buffer. */
static void shed_buffer(wf_stream_t *st)
{
    if (st->rbuf && st->rpos == st->rend) {
        free(st->rbuf);
        st->rbuf = NULL;
        st->rcap = st->rpos = st->rend = 0;
    }
}

/* One more read into the buffer, keeping at most `max` bytes buffered
 * (max > buffered). Parks until `deadline`. > 0 bytes added; 0 at end of
 * file (eof set); -errno. Nothing buffered is lost on an error. */
static ssize_t fill_once(wf_stream_t *st, size_t max, int64_t deadline)
{
    wf_sock_t *s = st->sock;
    for (;;) {
        if (!s->rdrained || deadline == 0) {
            size_t want = max - buffered(st);
            if (want > st->o.read_size)
                want = st->o.read_size;
            int e = reserve(st, want);
            if (e)
                return e;
            /* Ask for all the room there is, up to max. */
            size_t room = st->rcap - st->rend;
            if (room > max - buffered(st))
                room = max - buffered(st);
            ssize_t r = wf__sock_try_recv(s, st->rbuf + st->rend, room, 0, NULL);
            if (r > 0) {
                st->rend += (size_t)r;
                return r;
            }
            if (r == 0) {
                st->eof = true;
                return 0;
            }
            if (r != -EAGAIN)
                return r;
        }
        shed_buffer(st);
        s->rdrained = false;
        int e = wf__sock_wait(s, WF__POLL_READ, deadline);
        if (e)
            return e;
    }
}

/* Put `n` bytes back in front of the buffer (read_exactly's undo). The
 * buffer is empty when this is needed (read_exactly takes all of it
 * before it reads again). */
static int unread(wf_stream_t *st, const void *p, size_t n)
{
    if (!n)
        return 0;
    size_t have = buffered(st);
    size_t ncap = n + have;
    char *b = malloc(ncap > st->o.read_size ? ncap : st->o.read_size);
    if (!b)
        return -ENOMEM;
    memcpy(b, p, n);
    if (have)
        memcpy(b + n, st->rbuf + st->rpos, have);
    free(st->rbuf);
    st->rbuf = b;
    st->rcap = ncap > st->o.read_size ? ncap : st->o.read_size;
    st->rpos = 0;
    st->rend = ncap;
    return 0;
}

static int enter_read(wf_stream_t *st, int64_t deadline)
{
    if (deadline < WF_FOREVER)
        return -EINVAL;
    if (!wf__current())
        return -EPERM;
    wf__stream_ref(st);
    int e = wf__sock_enter(st->sock, WF__TURN_READ, deadline);
    if (e)
        wf__stream_unref(st);
    return e;
}

static void leave_read(wf_stream_t *st)
{
    wf__sock_leave(st->sock, WF__TURN_READ);
    wf__stream_unref(st);
}

/* --- reading --------------------------------------------------------------- */

ssize_t wf_stream_read(wf_stream_t *st, void *buf, size_t n, int64_t deadline)
{
    if (!st || (!buf && n))
        return -EINVAL;
    ssize_t r = enter_read(st, deadline);
    if (r)
        return r;
    if (n == 0 || buffered(st) || st->eof) {
        size_t k = buffered(st) < n ? buffered(st) : n;
        if (k)
            memcpy(buf, st->rbuf + st->rpos, k);
        st->rpos += k;
        leave_read(st);
        return (ssize_t)k;
    }
    if (n >= st->o.read_size / 2) {
        /* Large enough to read straight into the caller's buffer (Go's
         * bufio does the same): no copy, and no buffer for this stream. */
        shed_buffer(st);
        r = wf__sock_recv_locked(st->sock, buf, n, 0, NULL, deadline);
        if (r == 0)
            st->eof = true;
    } else {
        r = fill_once(st, st->o.read_size, deadline);
        if (r > 0) {
            size_t k = buffered(st) < n ? buffered(st) : n;
            memcpy(buf, st->rbuf + st->rpos, k);
            st->rpos += k;
            r = (ssize_t)k;
        }
    }
    leave_read(st);
    return r;
}

int wf_stream_read_exactly(wf_stream_t *st, void *buf, size_t n, size_t *got, int64_t deadline)
{
    if (got)
        *got = 0;
    if (!st || (!buf && n))
        return -EINVAL;
    int e = enter_read(st, deadline);
    if (e)
        return e;
    char *p = buf;
    size_t copied = 0;
    while (copied < n) {
        size_t k = buffered(st) < n - copied ? buffered(st) : n - copied;
        if (k) {
            memcpy(p + copied, st->rbuf + st->rpos, k);
            st->rpos += k;
            copied += k;
            continue;
        }
        if (st->eof) {
            e = -EPIPE; /* the partial bytes stay consumed (asyncio) */
            break;
        }
        ssize_t r;
        if (n - copied >= st->o.read_size / 2) {
            shed_buffer(st);
            r = wf__sock_recv_locked(st->sock, p + copied, n - copied, 0, NULL, deadline);
            if (r > 0)
                copied += (size_t)r;
            else if (r == 0)
                st->eof = true;
        } else {
            r = fill_once(st, st->o.read_size, deadline);
        }
        if (r < 0) {
            /* Nothing consumed: put back what was copied (the buffer is
             * empty now, so it goes back in order). */
            if (unread(st, p, copied) == 0)
                copied = 0;
            e = (int)r;
            break;
        }
    }
    if (got)
        *got = copied;
    leave_read(st);
    return e;
}

/* Scan for the delimiter in buffered bytes from offset `from`; the
 * offset of its end, or 0. */
static size_t find_delim(const wf_stream_t *st, size_t from, const void *delim, size_t dlen)
{
    size_t have = buffered(st);
    if (have < dlen || from > have - dlen)
        return 0;
    const char *base = st->rbuf + st->rpos;
    const char *hit = memmem(base + from, have - from, delim, dlen);
    return hit ? (size_t)(hit - base) + dlen : 0;
}

/* read_until's body, read turn held. `eof_ok`: end of file with partial
 * bytes is 0 (readline) instead of -EPIPE. */
static int until(wf_stream_t *st, const void *delim, size_t dlen, void *buf, size_t cap, size_t *len,
                 int64_t deadline, bool eof_ok)
{
    size_t max = cap < st->o.limit ? cap : st->o.limit;
    size_t from = 0;
    for (;;) {
        size_t end = find_delim(st, from, delim, dlen);
        if (end) {
            if (end > max)
                return -EMSGSIZE; /* found, but too long: nothing consumed */
            memcpy(buf, st->rbuf + st->rpos, end);
            st->rpos += end;
            *len = end;
            return 0;
        }
        size_t have = buffered(st);
        from = have >= dlen ? have - dlen + 1 : 0;
        if (have >= max)
            return -EMSGSIZE; /* asyncio's LimitOverrunError: all stays */
        if (st->eof) {
            if (have)
                memcpy(buf, st->rbuf + st->rpos, have);
            st->rpos += have;
            *len = have;
            return eof_ok ? 0 : -EPIPE;
        }
        ssize_t r = fill_once(st, max, deadline);
        if (r < 0)
            return (int)r;
    }
}

int wf_stream_read_until(wf_stream_t *st, const void *delim, size_t dlen, void *buf, size_t cap, size_t *len,
                         int64_t deadline)
{
    if (len)
        *len = 0;
    if (!st || !delim || !dlen || !buf || !len || cap < dlen)
        return -EINVAL;
    int e = enter_read(st, deadline);
    if (e)
        return e;
    e = until(st, delim, dlen, buf, cap, len, deadline, false);
    leave_read(st);
    return e;
}

int wf_stream_readline(wf_stream_t *st, void *buf, size_t cap, size_t *len, int64_t deadline)
{
    if (len)
        *len = 0;
    if (!st || !buf || !len || !cap)
        return -EINVAL;
    int e = enter_read(st, deadline);
    if (e)
        return e;
    e = until(st, "\n", 1, buf, cap, len, deadline, true);
    leave_read(st);
    return e;
}

int wf_stream_fill(wf_stream_t *st, size_t *avail, int64_t deadline)
{
    if (!st)
        return -EINVAL;
    int e = enter_read(st, deadline);
    if (e)
        return e;
    if (buffered(st) >= st->o.limit) {
        e = -EMSGSIZE;
    } else if (st->eof) {
        e = -EPIPE;
    } else {
        ssize_t r = fill_once(st, st->o.limit, deadline);
        e = r > 0 ? 0 : r == 0 ? -EPIPE : (int)r;
    }
    if (avail)
        *avail = buffered(st);
    leave_read(st);
    return e;
}

const void *wf_stream_peek(wf_stream_t *st, size_t *len)
{
    if (len)
        *len = st ? buffered(st) : 0;
    return st && buffered(st) ? st->rbuf + st->rpos : NULL;
}

int wf_stream_consume(wf_stream_t *st, size_t n)
{
    if (!st || n > buffered(st))
        return -EINVAL;
    st->rpos += n;
    return 0;
}

int wf_stream_at_eof(wf_stream_t *st)
{
    if (!st)
        return -EINVAL;
    return st->eof && buffered(st) == 0;
}
