/* pollfd.c - the epoll hub and the fd wait primitive (pollfd.h). */
#include "pollfd.h"
#include "mapping.h"
#include "park.h"
#include "runtime.h"
#include "sanitizer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <weft/time.h>

/* node->data of a waiter woken because its fd was forgotten or closed. */
static char badf_mark;

wf__pollhub *wf__pollhub_new(int *err)
{
    wf__pollhub *h = calloc(1, sizeof *h);
    if (!h) {
        *err = -ENOMEM;
        return NULL;
    }
    atomic_init(&h->refs, 1);
    atomic_init(&h->nfds, 0);
    atomic_init(&h->orphaned, false);
    pthread_mutex_init(&h->fds_lock, NULL);
    size_t len = sizeof(*h->fds) * WF__FD_MAX_CHUNKS;
    void *m = wf__map_anon(len, PROT_READ | PROT_WRITE, MAP_NORESERVE);
    if (m == MAP_FAILED) {
        pthread_mutex_destroy(&h->fds_lock);
        free(h);
        *err = -ENOMEM;
        return NULL;
    }
    h->fds = m;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd < 0) {
        *err = -errno;
        wf__unmap(h->fds, len);
        pthread_mutex_destroy(&h->fds_lock);
        free(h);
        return NULL;
    }
    return h;
}

void wf__pollhub_ref(wf__pollhub *h)
{
    /* relaxed: the caller already holds a reference (or the runtime's
     * lives), so the count cannot reach zero meanwhile. */
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

void wf__pollhub_unref(wf__pollhub *h)
{
    /* acq_rel: the last one to drop sees every other holder's accesses
     * (their decrements release them) before it frees. */
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t c = 0; c < WF__FD_MAX_CHUNKS; c++)
        free(atomic_load_explicit(&h->fds[c], memory_order_relaxed));
    wf__unmap(h->fds, sizeof(*h->fds) * WF__FD_MAX_CHUNKS);
    close(h->epfd);
    pthread_mutex_destroy(&h->fds_lock);
    free(h);
}

wf__pollfd *wf__pollhub_get(wf__pollhub *h, int fd, bool create)
{
    if (fd < 0)
        return NULL;
    uint32_t c = (uint32_t)fd >> WF__FD_CHUNK_LOG2;
    if (c >= WF__FD_MAX_CHUNKS)
        return NULL;
    /* acquire: pairs with the release that published the chunk. */
    wf__pollfd *chunk = atomic_load_explicit(&h->fds[c], memory_order_acquire);
    if (wf__unlikely(!chunk)) {
        if (!create)
            return NULL;
        pthread_mutex_lock(&h->fds_lock);
        chunk = atomic_load_explicit(&h->fds[c], memory_order_relaxed);
        if (!chunk) {
            chunk = calloc(WF__FD_CHUNK, sizeof *chunk);
            if (chunk) {
                for (uint32_t i = 0; i < WF__FD_CHUNK; i++) {
                    wf__spin_init(&chunk[i].lock);
                    chunk[i].fd = (int)((c << WF__FD_CHUNK_LOG2) | i);
                }
                atomic_store_explicit(&h->fds[c], chunk, memory_order_release);
            }
        }
        pthread_mutex_unlock(&h->fds_lock);
        if (!chunk)
            return NULL;
    }
    return &chunk[(uint32_t)fd & (WF__FD_CHUNK - 1)];
}

/* pd->lock held. A new registration takes the record's next generation
 * (pd->gen); EEXIST leaves the registration there, and its generation. */
static int epoll_add(wf__pollhub *h, wf__pollfd *pd, int fd)
{
    /* The record travels to the dispatching thread through the kernel. */
    wf__tsan_release(pd);
    uint32_t gen = pd->gen + 1 ? pd->gen + 1 : 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = wf__pollfd_key(fd, gen)};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return -errno;
    pd->gen = gen;
    return 0;
}

/* pd->lock held. Point the registration of `fd` at the record's current
 * generation (errors: it keeps the one it had). */
static int epoll_mod(wf__pollhub *h, wf__pollfd *pd, int fd)
{
    wf__tsan_release(pd);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = wf__pollfd_key(fd, pd->gen)};
    return epoll_ctl(h->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 : -errno;
}

/* pd->lock held. Make sure the kernel's interest list holds raw `fd` (the
 * open file it names now) with pd as its data. Returns 0 or -errno.
 *
 * WHY EVERY PARK ASKS THE KERNEL. epoll keys a registration on the pair
 * (open file, fd number), and drops it by itself when the file's last
 * reference is closed. A caller may close() an fd it waited on without
 * wf_fd_forget(): the record here stays, and so does anything it believes,
 * but the kernel registration is gone; when a new file gets the same
 * number, nothing of ours says so. Keeping a "registered" flag and adding
 * only once would then park the next waiter on a registration that no
 * longer exists: a lost wake-up, forever with WF_FOREVER.
 *
 * So the path that is about to park (no edge recorded) always asks with
 * EPOLL_CTL_ADD, and only that path:
 *   - EEXIST: this very file is registered at this number; an
 *     edge-triggered registration needs no re-arming (each new readiness
 *     transition queues an event), so parking on it loses nothing. This is
 *     cheaper than EPOLL_CTL_MOD, which would also poll the file and may
 *     queue a spurious event.
 *   - success: the number names a file we had not registered (first wait,
 *     after wf_fd_forget(), or a closed-and-reused number). The kernel polls
 *     the file as it inserts it and queues an event if it is ready already,
 *     so readiness from before the registration is not lost either. Any
 *     ready bits left from the old file are only spurious "try again"s, and
 *     are cleared.
 *   - EPERM: the file cannot be polled (regular files, directories): that
 *     is -EOPNOTSUPP to the caller. EBADF: not open. Others (ENOMEM,
 *     ENOSPC: max_user_watches) are returned as they are.
 * The event an ADD queues is dispatched after we drop pd->lock and finds
 * the waiter installed (or sets the ready bit if the caller then gives up),
 * so holding the lock across the syscall is what makes it safe; a
 * dispatcher may spin on it for the length of one epoll_ctl.
 *
 * Cost: one epoll_ctl (EEXIST: a lookup in the epoll's tree) per park,
 * beside the park itself (docs/benchmarks.md, fd_pingpong). The
 * try-the-syscall-first path never gets here, nor does a wait that finds
 * an edge recorded, nor any wait on an owned fd (sockets), whose
 * registration is trusted.
 *
 * If the old file is still open elsewhere (dup'd, or held by a child), its
 * registration stays with pd as data: its events are spurious wake-ups for
 * the new fd until it is closed, which the try-first protocol absorbs. */
static int ensure_registered(wf__pollhub *h, wf__pollfd *pd, int fd)
{
    int e = epoll_add(h, pd, fd);
    if (e == 0) {
        if (!pd->registered)
            atomic_fetch_add_explicit(&h->nfds, 1, memory_order_relaxed);
        pd->registered = true;
        pd->ready = 0;
        pd->hup = 0;
        return 0;
    }
    if (e == -EEXIST) {
        pd->registered = true;
        return 0;
    }
    return e == -EPERM ? -EOPNOTSUPP : e;
}

/* pd->lock held, registration done: publish a wait node for direction `d`
 * and park. Drops pd->lock. */
static int park_on(wf__pollfd *pd, wf__task *self, unsigned d, int64_t deadline)
{
    wf__waitnode node;
    node.task = self;
    node.data = NULL;
    node.seq = wf__park_begin(self, 0);
    pd->waiter[d] = &node;
    wf__spin_unlock(&pd->lock);

    unsigned r = wf__park_commit(self, node.seq, deadline);
    if (r != WF__R_WOKEN) {
        wf__spin_lock(&pd->lock);
        if (pd->waiter[d] == &node)
            pd->waiter[d] = NULL;
        wf__spin_unlock(&pd->lock);
        return wf__park_errno(r);
    }
    return node.data == &badf_mark ? -EBADF : 0;
}

int wf__pollhub_wait(wf__pollhub *h, wf__task *self, int fd, unsigned dir, int64_t deadline)
{
    if (fd < 0)
        return -EBADF;
    if (deadline < WF_FOREVER)
        return -EINVAL;
    wf__pollfd *pd = wf__pollhub_get(h, fd, true);
    if (!pd)
        return fd >= (int)(WF__FD_CHUNK * WF__FD_MAX_CHUNKS) ? -EBADF : -ENOMEM;
    unsigned d = dir == WF__POLL_READ ? 0 : 1;

    wf__spin_lock(&pd->lock);
    if (pd->ready & dir) {
        /* An edge came while nobody waited: no syscall, no park. */
        pd->ready &= (uint8_t)~dir;
        wf__spin_unlock(&pd->lock);
        return 0;
    }
    if (pd->waiter[d] || pd->owned) {
        /* Another task waits this way; or a socket owns this fd and its
         * waits must go through it (its close protocol guards the
         * number): not for wf_wait_readable. */
        wf__spin_unlock(&pd->lock);
        return -EBUSY;
    }
    int e = ensure_registered(h, pd, fd);
    if (e) {
        wf__spin_unlock(&pd->lock);
        return e;
    }
    return park_on(pd, self, d, deadline);
}

int wf__pollfd_wait_owned(wf__pollhub *h, wf__pollfd *pd, wf__task *self, unsigned dir, int64_t deadline,
                          const uint32_t *seen)
{
    unsigned d = dir == WF__POLL_READ ? 0 : 1;
    wf__spin_lock(&pd->lock);
    /* Under pd->lock: wf__pollfd_close_owned sets `closing` under it too,
     * so either it finds our node and wakes it, or we see the flag. */
    if (wf__unlikely(pd->closing)) {
        wf__spin_unlock(&pd->lock);
        return -EBADF;
    }
    if ((pd->ready | pd->hup) & dir) {
        pd->ready &= (uint8_t)~dir;
        /* relaxed: under the lock, as the dispatcher's increment. */
        bool stale = seen && !(pd->hup & dir) && atomic_load_explicit(&pd->rev, memory_order_relaxed) == *seen;
        if (!stale) {
            wf__spin_unlock(&pd->lock);
            return 0;
        }
    }
    if (wf__unlikely(pd->waiter[d])) {
        /* The owner serialises each direction (one call in progress per
         * direction), so this is a raw waiter on our fd number. */
        wf__spin_unlock(&pd->lock);
        return -EBUSY;
    }
    if (wf__unlikely(!pd->owned || !pd->registered)) {
        /* The first wait: register once. EEXIST means a raw wait on this
         * very file registered it before the owner took it over (the same
         * open file: the fd cannot have been reused while we own it). */
        int e = epoll_add(h, pd, pd->fd);
        if (e && e != -EEXIST) {
            wf__spin_unlock(&pd->lock);
            return e == -EPERM ? -EOPNOTSUPP : e;
        }
        if (e == 0)
            pd->ready = pd->hup = 0; /* the kernel reports what is ready now */
        /* A raw registration may carry an older generation (its number
         * was given to another file meanwhile, this one being kept open
         * elsewhere, and back): make its events ours, or its hang-ups
         * would be dropped (pollfd.h, `gen`). The kernel then reports
         * what is ready now. */
        if (e == -EEXIST)
            (void)epoll_mod(h, pd, pd->fd);
        if (!pd->registered)
            atomic_fetch_add_explicit(&h->nfds, 1, memory_order_relaxed);
        pd->registered = true;
        pd->owned = true;
    }
    return park_on(pd, self, d, deadline);
}

/* pd->lock held. Wake direction d's waiter, or remember the edge. */
static void wake_dir(wf__pollfd *pd, unsigned d, void *data, wf__batch *b)
{
    wf__waitnode *nd = pd->waiter[d];
    if (nd) {
        pd->waiter[d] = NULL;
        nd->data = data; /* before the deciding CAS, which releases it */
        wf__decision dec = wf__park_decide(nd->task, nd->seq, WF__R_WOKEN);
        if (dec == WF__DECIDED_PARKED)
            wf__batch_push(b, nd->task);
        if (dec != WF__DECIDE_LOST)
            return;
    }
    if (!data)
        pd->ready |= (uint8_t)(1u << d);
}

/* pd->lock held: take the fd off the kernel's interest list and wake both
 * waiters with -EBADF into `b`. */
static void deregister(wf__pollhub *h, wf__pollfd *pd, wf__batch *b)
{
    if (pd->registered) {
        /* Errors are expected when the fd is already closed (epoll dropped
         * it then); nothing else can be done about them. */
        (void)epoll_ctl(h->epfd, EPOLL_CTL_DEL, pd->fd, NULL);
        pd->registered = false;
        atomic_fetch_sub_explicit(&h->nfds, 1, memory_order_relaxed);
    }
    pd->ready = 0;
    pd->hup = 0;
    wake_dir(pd, 0, &badf_mark, b);
    wake_dir(pd, 1, &badf_mark, b);
}

void wf__pollfd_close_owned(wf__pollhub *h, wf__pollfd *pd)
{
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&pd->lock);
    pd->closing = true;
    deregister(h, pd, &b);
    wf__spin_unlock(&pd->lock);
    if (b.n)
        wf__ready_batch(b.head->rt, &b);
}

void wf__pollfd_release_owned(wf__pollfd *pd)
{
    wf__spin_lock(&pd->lock);
    pd->closing = false;
    pd->owned = false;
    pd->ready = 0;
    pd->hup = 0;
    wf__spin_unlock(&pd->lock);
}

int wf__pollhub_forget(wf__pollhub *h, int fd)
{
    if (fd < 0)
        return -EBADF;
    wf__pollfd *pd = wf__pollhub_get(h, fd, false);
    if (!pd)
        return 0;
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&pd->lock);
    if (pd->owned) {
        /* A socket owns this fd: only its close may deregister it. */
        wf__spin_unlock(&pd->lock);
        return -EBUSY;
    }
    deregister(h, pd, &b);
    wf__spin_unlock(&pd->lock);
    if (b.n)
        wf__ready_batch(b.head->rt, &b);
    return 0;
}

unsigned wf__pollhub_dispatch(wf__pollhub *h, const struct epoll_event *ev, int n, wf__batch *b)
{
    unsigned fds = 0;
    for (int i = 0; i < n; i++) {
        uint64_t key = ev[i].data.u64;
        wf__pollfd *pd = wf__pollhub_get(h, (int)(uint32_t)key, false);
        if (!pd)
            continue; /* not a record's (none is in this epoll) */
        fds++;
        uint32_t e = ev[i].events;
        wf__tsan_acquire(pd);
        wf__spin_lock(&pd->lock);
        if (pd->registered) {
            /* Hang-ups of the current registration only (pollfd.h, `gen`). */
            if ((e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && key == wf__pollfd_key(pd->fd, pd->gen))
                pd->hup |= (e & (EPOLLHUP | EPOLLERR)) ? WF__POLL_READ | WF__POLL_WRITE : WF__POLL_READ;
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                /* relaxed: under the lock; see `rev`. */
                atomic_store_explicit(&pd->rev, atomic_load_explicit(&pd->rev, memory_order_relaxed) + 1,
                                      memory_order_relaxed);
                wake_dir(pd, 0, NULL, b);
            }
            if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                wake_dir(pd, 1, NULL, b);
        }
        wf__spin_unlock(&pd->lock);
    }
    return fds;
}

unsigned wf__pollhub_harvest(wf__pollhub *h, wf__batch *b)
{
    if (!wf__pollhub_active(h))
        return 0;
    /* 64 at a time: a harvest runs on a worker's scheduler stack, and
     * whatever it finds goes to that worker's ring (256 slots); the rest
     * stays in the kernel's ready list for the next look or for a peer. */
    struct epoll_event ev[64];
    int n = epoll_wait(h->epfd, ev, 64, 0);
    if (n <= 0)
        return 0; /* nothing, or EINTR: the next look will do */
    return wf__pollhub_dispatch(h, ev, n, b);
}
