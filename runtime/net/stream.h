/* stream.h (internal) - the buffered stream record, shared by the read
 * side (stream.c) and the write side (streamwrite.c).
 *
 * READ SIDE. `rbuf[rpos, rend)` holds bytes read from the socket and not
 * yet consumed; `eof` says the socket reported end of file. All of it
 * belongs to the holder of the socket's read turn (sockfd.h), which every
 * reading call takes for its duration, so it needs no lock of its own.
 *
 * WRITE SIDE, under `wlock` (a spinlock; nobody parks or makes a system
 * call while holding it):
 *   out    the bytes the current sender is sending, [opos, olen) left;
 *   queue  the bytes written since, in order after `out`;
 *   sending  someone is the sender: it holds the socket's write turn and
 *          will send `out` and then `queue` until both are empty, when it
 *          clears `sending` (under wlock) and leaves the turn. A writer
 *          that finds `sending` set only appends to `queue`; one that finds
 *          it clear becomes the sender. Invariant: bytes queued => sending.
 *   werr   the first write error; sticky (every later write returns it).
 *   waiters  drain and flush callers, woken (all) whenever the sender makes
 *          progress or stops; each re-checks its own condition.
 * The sender is the writing fiber itself while the kernel takes everything
 * at once (no task, no copy: write sends straight from the caller's
 * buffer); when the kernel's buffer fills, the rest is copied to `out` and
 * a flusher task takes over the sender's role, with its write turn, and
 * parks until the kernel makes room.
 *
 * LIFETIME. `refs` counts the user's reference, a running flusher's, and
 * one per call in progress (a call keeps the stream alive while another
 * fiber closes it: the close wakes it with -EBADF and it returns through
 * the record); the last one frees the buffers and gives back the socket.
 */
#ifndef WF_NET_STREAM_H
#define WF_NET_STREAM_H

#include "list.h"
#include "sockfd.h"
#include "spinlock.h"
#include <weft/stream.h>

struct wf_stream {
    wf_sock_t *sock;
    _Atomic uint32_t refs;
    wf_stream_opts_t o;
    /* --- read side: read-turn holder only --- */
    char *rbuf;
    size_t rcap, rpos, rend;
    bool eof;
    /* --- write side: under wlock --- */
    wf__spinlock wlock;
    char *out;
    size_t opos, olen, ocap;
    char *queue;
    size_t qlen, qcap;
    bool sending;
    bool shut; /* write_eof ran: later writes are -EPIPE */
    int werr;
    uint32_t nwait;
    wf__link waiters;
};

/* Take a reference (the caller holds one, or is a call on a stream the
 * user has not closed yet). */
static inline void wf__stream_ref(wf_stream_t *st)
{
    /* relaxed: the caller's own reference keeps the record alive. */
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
}

/* Give back one reference; the last frees the stream and releases its
 * socket reference (closing it if nobody else holds one). */
void wf__stream_unref(wf_stream_t *st);

#endif
