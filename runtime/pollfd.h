/* pollfd.h - the runtime's epoll instance and its per-fd records: how a
 * fiber waits for an fd, and how readiness events become wake-ups.
 *
 * THE HUB. One epoll instance per runtime (struct wf__pollhub), shared by
 * every thread that turns events into wake-ups: the poller thread, which
 * blocks in it while every worker sleeps, and the workers themselves,
 * which harvest it without blocking when they run out of work and every
 * 61 scheduling ticks (sched.c; poller.c says who does what when). The
 * hub is reference counted: the runtime holds one reference, and every
 * socket registered in it holds one (runtime/net/sockfd.c), so a socket
 * the program keeps open past wf_run() can still be closed and
 * deregistered safely; the epoll descriptor and the fd table go when the
 * last reference does.
 *
 * THE RECORDS. Each fd gets a record (struct wf__pollfd) the first time a
 * task waits on it: readiness bits that an edge set while nobody waited,
 * and at most one reader and one writer wait node. The records live in a
 * table indexed by fd and are never freed while the hub lives, so an event
 * that races a deregistration lands on valid memory (and at worst causes
 * one spurious wake-up, which the try-first protocol absorbs: every caller
 * retries its system call after a wake-up, and waits again on EAGAIN).
 * Registrations are edge-triggered, for both directions at once.
 *
 * TWO KINDS OF FD.
 *   - Raw fds (wf_wait_readable, io.h): the caller owns the fd and may
 *     close() it behind our back, so a wait that is about to park always
 *     asks the kernel again (EPOLL_CTL_ADD; EEXIST means still
 *     registered), at the cost of one epoll_ctl per park
 *     (ensure_registered in pollfd.c says why).
 *   - Owned fds (sockets, streams: runtime/net/): the fd is closed only
 *     through wf__pollfd_close_owned() and wf__pollfd_release_owned(), so
 *     its registration is made once and trusted afterwards: a park costs
 *     no system call. Closing marks the record, wakes its waiters with
 *     -EBADF, and refuses later waits, until the owner's last call in
 *     progress has returned and the fd itself is closed.
 */
#ifndef WF_POLLFD_H
#define WF_POLLFD_H

#include "atomic.h"
#include "spinlock.h"
#include "task.h"
#include <pthread.h>
#include <sys/epoll.h>

#define WF__FD_CHUNK_LOG2 10
#define WF__FD_CHUNK (1u << WF__FD_CHUNK_LOG2)
#define WF__FD_MAX_CHUNKS (1u << 14) /* fds below 2^24 */

/* Events taken from the epoll per harvest or per poller round. */
#define WF__POLL_BATCH 256

enum { WF__POLL_READ = 1, WF__POLL_WRITE = 2 };

typedef struct wf__pollfd {
    wf__spinlock lock;
    int fd;
    bool registered; /* the kernel's interest list holds fd, with this record */
    bool owned;      /* registered for an owned fd: trusted, no ADD per park */
    bool closing;    /* the owner is closing the fd: waits fail with -EBADF */
    uint8_t ready;   /* WF__POLL_* edges seen while nobody waited */
    /* WF__POLL_* directions that have hung up (EPOLLRDHUP: read; EPOLLHUP,
     * EPOLLERR: both), sticky until the file changes. An owned fd's wait in
     * such a direction returns at once: the try-first protocol skips
     * system calls after a short read (sockio.c), and the edge that
     * brought the end of file may have been spent on the wake-up that
     * delivered the last bytes with it. */
    uint8_t hup;
    /* Read events dispatched so far (incremented under the lock). An
     * owned fd's reader loads it before each read system call; a ready
     * bit set by an event that was dispatched before that load describes
     * data the read has already seen, so its wait discards the bit and
     * parks instead of making a read that would return EAGAIN (tokio's
     * readiness tick). Loaded without the lock (relaxed): a stale value
     * only keeps a bit that could have been discarded. */
    _Atomic uint32_t rev;
    /* The generation of the fd's registration (never 0), under the lock:
     * each EPOLL_CTL_ADD that succeeds takes the next one, and the
     * registration's events carry it with the fd (wf__pollfd_key). A
     * worker may take an event from the epoll, then dispatch it after the
     * fd was deregistered, closed, and its number registered again for
     * another file: that event belongs to the old file. Its wake-up or
     * ready bit is a spurious one (absorbed, as above), but its hang-up
     * bits would stick to the new file (a read wait of the new socket
     * returning at once for ever, a busy loop no deadline ends): the
     * dispatch takes hang-ups only from events of the current
     * generation. (A raw registration found in place, EEXIST, may carry
     * an older one: an owned fd's first wait points it at the current
     * one, EPOLL_CTL_MOD; raw waits do not use hang-ups.) */
    uint32_t gen;
    wf__waitnode *waiter[2]; /* [0] reader, [1] writer */
} wf__pollfd;

/* The epoll data of the record's registration of generation `gen`: the
 * fd in the low half, the generation in the high half (never 0: the
 * value 0 is not a record's). */
static inline uint64_t wf__pollfd_key(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

typedef struct wf__pollhub {
    /* The runtime's reference plus one per owned registration. */
    _Atomic uint32_t refs;
    /* fds registered and not yet deregistered (owned ones exactly; raw ones
     * closed without wf_fd_forget() stay counted). A hint that tells the
     * workers whether a harvest can find anything: a runtime that never
     * waits on an fd never makes the system call. relaxed everywhere: a
     * stale value costs one useless harvest, or one skipped harvest that
     * the poller's own watch (poller.c) makes up for. */
    _Atomic uint32_t nfds;
    /* The runtime has ended (wf__poller_destroy): a socket bound here may
     * move to another runtime (runtime/net/sockfd.h). Set with release,
     * read with acquire. */
    _Atomic bool orphaned;
    int epfd;
    _Atomic(wf__pollfd *) *fds;
    pthread_mutex_t fds_lock;
} wf__pollhub;

/* A new hub with one reference (the runtime's); NULL on failure (*err). */
wf__pollhub *wf__pollhub_new(int *err);
void wf__pollhub_ref(wf__pollhub *h);
/* Drop a reference; the last one closes the epoll and frees the table. */
void wf__pollhub_unref(wf__pollhub *h);

/* The record of `fd`, made if `create`; NULL if fd is out of range or the
 * table could not grow (create) or has no record (!create). */
wf__pollfd *wf__pollhub_get(wf__pollhub *h, int fd, bool create);

/* A raw fd's wait for direction `dir` (WF__POLL_*). Fiber only. 0 (ready,
 * or may be: retry), or -EBADF, -EBUSY, -EOPNOTSUPP, -ENOMEM, -ENOSPC,
 * -ETIMEDOUT, -ECANCELED (io.h's wf_wait_readable lists them). */
int wf__pollhub_wait(wf__pollhub *h, struct wf__task *self, int fd, unsigned dir, int64_t deadline);

/* An owned fd's wait (its record from wf__pollhub_get). As
 * wf__pollhub_wait, and -EBADF once wf__pollfd_close_owned() has run.
 * The first wait registers the fd; later ones make no system call.
 * `seen`: for a read wait, a pointer to the value of pd->rev loaded before
 * the caller's last read system call (NULL if none): a ready bit older
 * than that is discarded (see `rev`). */
int wf__pollfd_wait_owned(wf__pollhub *h, wf__pollfd *pd, struct wf__task *self, unsigned dir,
                          int64_t deadline, const uint32_t *seen);

/* An owned fd is being closed: deregister it, wake its waiters with -EBADF
 * and refuse later waits. The fd stays open (no number reuse) until
 * wf__pollfd_release_owned(). Any thread. */
void wf__pollfd_close_owned(wf__pollhub *h, wf__pollfd *pd);

/* Right before the owner close()s the fd: the record becomes a fresh one
 * for whatever file gets the number next. Any thread. */
void wf__pollfd_release_owned(wf__pollfd *pd);

/* Forget a raw fd: deregister it and wake its waiters with -EBADF. */
int wf__pollhub_forget(wf__pollhub *h, int fd);

/* Turn `n` events into wake-ups appended to `b`. Returns how many events
 * named an fd record (the eventfd's are skipped). */
unsigned wf__pollhub_dispatch(wf__pollhub *h, const struct epoll_event *ev, int n, struct wf__batch *b);

/* Take whatever events are ready, without blocking, into `b` (a worker
 * out of work, or on its periodic look). Returns the number of fd events
 * dispatched (0 also when nothing is registered: then no system call). */
unsigned wf__pollhub_harvest(wf__pollhub *h, struct wf__batch *b);

/* Is anything registered that a harvest could find? (A hint.) */
static inline bool wf__pollhub_active(wf__pollhub *h)
{
    /* relaxed: see nfds. */
    return atomic_load_explicit(&h->nfds, memory_order_relaxed) != 0;
}

#endif
