/* sockfd.h - the owned fd under every socket and stream (Go's netFD and
 * fdMutex in one word).
 *
 * A wf_sock_t owns its descriptor. Three things must never happen to it:
 * the number is closed while a call still uses it (another file could get
 * the number and the call would act on that file), a call parks forever on
 * a socket that another fiber closed, and the record is freed under a call
 * or under a holder of a reference. One 64-bit atomic word decides all of
 * it, so every transition is one CAS:
 *
 *   bits  0..23  in flight: calls between wf__sock_enter and _leave
 *   bits 24..47  references: wf_sock_ref() adds one, _release() and
 *                _close() give one back
 *   bit  48      CLOSED   close was asked for: enter fails with -EBADF
 *   bit  49      FDDONE   the descriptor is closed (or being closed by
 *                         whoever set the bit)
 *   bit  50      RTURN    a call holds the read turn
 *   bit  51      WTURN    a call holds the write turn
 *   bit  52      RWAIT    a task waits for the read turn (a leaving holder
 *                         takes the slow path and hands the turn over)
 *   bit  53      WWAIT    the same for the write turn
 *
 * TURNS. Reads (recv, accept, a stream's reads) take the read turn and
 * writes (send, connect, a stream's writes) the write turn, so one reader
 * and one writer run at once and more of either kind queue in FIFO order
 * on the record's wait lists (spinlock `lock`), each waiting through the
 * park mechanism (deadlines and cancellation apply). The holder of a turn
 * owns that direction's bookkeeping (rdrained below, a stream's buffer).
 * A leaving holder with RWAIT/WWAIT set takes `lock` and hands the turn to
 * the first waiter whose wait it wins (runtime/sync/wait.h): the turn
 * bit stays set and the in-flight count moves with it. The WAIT bits
 * change only under `lock` and say exactly "the list is not empty".
 *
 * CLOSING (Go's fdMutex, in steps).
 *   1. wf_sock_close sets CLOSED and counts itself in flight, in one CAS
 *      (a second close finds CLOSED: -EBADF).
 *   2. It wakes every call parked on the fd through the poller
 *      (wf__pollfd_close_owned: -EBADF, and later waits refuse to park) and
 *      every task waiting for a turn (-EBADF).
 *   3. It leaves like any call. Whoever brings the in-flight count to zero
 *      with CLOSED set also sets FDDONE in that CAS and closes the fd:
 *      deregistered first, its poller record reset, then close(2). So the
 *      number is closed exactly once, after the last call on it returned.
 *   4. Whoever brings both counts to zero frees the record. The last
 *      reference given back on a socket not yet closed closes it first.
 * A call in progress therefore keeps the record alive even if the holder
 * whose reference it borrowed gives it back meanwhile; a call made after
 * the last reference is gone is a use after free, as with any handle.
 *
 * THE RUNTIME. A socket is not tied to a runtime until its first wait,
 * which binds it to the calling fiber's runtime's epoll hub (pollfd.h) and
 * takes a reference on the hub, so a socket that outlives wf_run() can
 * still be closed. A wait from another runtime while that one lives is
 * -EXDEV; once it has ended, the socket moves to the new one.
 */
#ifndef WF_NET_SOCKFD_H
#define WF_NET_SOCKFD_H

#include "list.h"
#include "pollfd.h"
#include "spinlock.h"
#include "task.h"
#include <sys/types.h>
#include <sys/uio.h>
#include <weft/net.h>

#define WF__SK_INFLIGHT_ONE 1ull
#define WF__SK_INFLIGHT_MASK 0xffffffull
#define WF__SK_REF_SHIFT 24
#define WF__SK_REF_ONE (1ull << WF__SK_REF_SHIFT)
#define WF__SK_REF_MASK (0xffffffull << WF__SK_REF_SHIFT)
#define WF__SK_CLOSED (1ull << 48)
#define WF__SK_FDDONE (1ull << 49)
#define WF__SK_RTURN (1ull << 50)
#define WF__SK_WTURN (1ull << 51)
#define WF__SK_RWAIT (1ull << 52)
#define WF__SK_WWAIT (1ull << 53)

/* The most references (wf_sock_ref's -EOVERFLOW) and calls in flight. */
#define WF__SK_MAX_REFS 0xffffffu

/* Which turn a call takes: none (quick calls: bind, listen, options), the
 * read turn or the write turn. */
enum { WF__TURN_NONE = 0, WF__TURN_READ = 1, WF__TURN_WRITE = 2 };

struct wf_sock {
    _Atomic uint64_t state;
    int fd;
    int family;  /* AF_INET, AF_INET6, AF_UNIX...; AF_UNSPEC: not a socket */
    int type;    /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET; 0: not a socket */
    /* Read-turn holder only: the last read on this stream came back short,
     * so the kernel's buffer was empty: the next read waits for an edge
     * before it tries again (tokio's clear_readiness after a short read),
     * which saves the system call that would return EAGAIN. */
    bool rdrained;
    /* Write-turn holder only: the last send came back partial (the kernel's
     * buffer is full): the next try waits for an edge first. */
    bool wfull;
    /* Read-turn holder only: the poller record's read-event count loaded
     * before the last read system call (pollfd.h, `rev`), and which record
     * it was read from (NULL: none; a socket that moved to another
     * runtime has another record). */
    struct wf__pollfd *rev_pd;
    uint32_t rev_seen;
    /* The epoll hub of the runtime this socket is bound to (NULL until its
     * first wait). Set (bound, or moved to another runtime's) only under
     * `lock` (sockfd.c, bind_slow), with release; looked at under `lock`
     * by whoever may meet an ended runtime's (a close); read with
     * acquire. */
    _Atomic(wf__pollhub *) hub;
    /* This fd's record in `hub` (stored before it, under `lock`, relaxed:
     * read only by calls that saw `hub` with acquire). */
    _Atomic(wf__pollfd *) pd;
    /* Turn waiters (step "TURNS" above). */
    wf__spinlock lock;
    uint32_t nwait;
    wf__link rwaiters, wwaiters;
};

/* A record for `fd` with one reference. `family`/`type` as above. NULL if
 * out of memory. The fd must already be non-blocking and close-on-exec. */
wf_sock_t *wf__sock_new(int fd, int family, int type);

/* Is it a stream socket (a short read means the buffer was drained)? */
static inline bool wf__sock_is_stream(const wf_sock_t *s)
{
    return s->type == SOCK_STREAM;
}

/* Begin a call: counts it in flight and takes `turn` (waiting for it, as a
 * cancellable wait until `deadline`, when another call holds it). 0, or
 * -EBADF (closed, before or while waiting), -ETIMEDOUT, -ECANCELED,
 * -EPERM (a turn is busy and the caller is not a fiber), -EOVERFLOW. */
int wf__sock_enter(wf_sock_t *s, unsigned turn, int64_t deadline);

/* End a call begun with wf__sock_enter(s, turn). May close the fd (the
 * last call after a close) and free the record (nothing else refers to
 * it): do not touch `s` afterwards unless the caller holds a reference. */
void wf__sock_leave(wf_sock_t *s, unsigned turn);

/* Wait for direction WF__POLL_READ or WF__POLL_WRITE of the fd, inside a
 * call that holds the matching turn. Fiber only. 0 (retry the system
 * call), -EBADF (closed meanwhile), -ETIMEDOUT, -ECANCELED, -EXDEV (bound
 * to another runtime that still runs), -EOPNOTSUPP, -ENOMEM, -ENOSPC. */
int wf__sock_wait(wf_sock_t *s, unsigned dir, int64_t deadline);

/* The poller record whose read-event count (pollfd.h, `rev`) a read may
 * load before its system call: the fd's record in the hub of the caller's
 * runtime; NULL if the socket is bound to no hub, or to another runtime's,
 * or the caller is not a fiber. Inside a call. */
wf__pollfd *wf__sock_rev_record(wf_sock_t *s);

/* CLOSING steps 1 to 3 for every holder (wf_sock_close without giving
 * back a reference): 0, or -EBADF if it was closed already. Any thread. */
int wf__sock_shut(wf_sock_t *s);

/* --- the I/O loops, inside a call that holds the right turn (sockio.c) -- */

/* One read: recv(2)/read(2) with `flags`, `from` receiving the sender if
 * not NULL; parks on EAGAIN until `deadline`. > 0, 0 at EOF (or n == 0),
 * or -errno (as wf_sock_recv). Read turn held. */
ssize_t wf__sock_recv_locked(wf_sock_t *s, void *buf, size_t n, int flags, wf_addr_t *from,
                             int64_t deadline);

/* One recv(2)/read(2) (EINTR retried), no wait: the count, 0 at EOF,
 * -EAGAIN when nothing is there, or -errno; keeps `rdrained`. Read turn
 * held. */
ssize_t wf__sock_try_recv(wf_sock_t *s, void *buf, size_t n, int flags, wf_addr_t *from);

/* Write every byte of the `cnt` buffers of `iov` (which it may modify),
 * parking while the kernel's buffer is full. 0 or -errno; *written (if
 * not NULL) gets what went out either way. Write turn held. */
int wf__sock_send_locked(wf_sock_t *s, struct iovec *iov, int cnt, size_t *written, int64_t deadline);

#endif
