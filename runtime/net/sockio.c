/* sockio.c - the read and write loops under sockets and streams: try the
 * system call first, park on the poller only on EAGAIN (sockfd.h).
 *
 * SYSTEM CALLS PER MESSAGE. A busy connection costs one recv and one send
 * per message and no epoll call of its own: its edges are harvested in
 * batches by whichever worker runs out of work (poller.h). Two more are
 * saved where the kernel has already said the answer:
 *   - a recv on a stream that came back short (fewer bytes than asked)
 *     emptied the kernel's buffer, so the next read waits for an edge
 *     first instead of making the call that would return EAGAIN
 *     (`rdrained`; tokio clears its readiness the same way);
 *   - a send that went out in part filled the kernel's buffer, so the next
 *     try waits for an edge first (`wfull`).
 * Either wait returns at once if an edge came meanwhile (the record's ready
 * bits, pollfd.h), and a spurious edge costs one call that returns EAGAIN,
 * never a lost wake-up: every edge after our call is still delivered.
 *
 * errno is read only in the small non-inlined helpers right after their
 * system call: a task may resume on another worker after a wait, and
 * glibc's errno address is per thread (io.h).
 */
#include "sockfd.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/time.h>

static __attribute__((noinline)) ssize_t sys_recv(const wf_sock_t *s, void *buf, size_t n, int flags,
                                                  wf_addr_t *from)
{
    ssize_t r;
    if (from) {
        from->len = sizeof from->ss;
        r = recvfrom(s->fd, buf, n, flags, (struct sockaddr *)&from->ss, &from->len);
    } else if (s->type) {
        r = recv(s->fd, buf, n, flags);
    } else {
        r = read(s->fd, buf, n); /* not a socket (a pipe, a tty) */
    }
    return r < 0 ? -errno : r;
}

static __attribute__((noinline)) ssize_t sys_send(const wf_sock_t *s, const struct iovec *iov, int cnt)
{
    ssize_t r;
    if (!s->type) {
        r = cnt == 1 ? write(s->fd, iov->iov_base, iov->iov_len) : writev(s->fd, iov, cnt);
    } else if (cnt == 1) {
        r = send(s->fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
    } else {
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
        r = sendmsg(s->fd, &m, MSG_NOSIGNAL);
    }
    return r < 0 ? -errno : r;
}

ssize_t wf__sock_try_recv(wf_sock_t *s, void *buf, size_t n, int flags, wf_addr_t *from)
{
    /* The record's read-event count before the call (pollfd.h, `rev`). */
    wf__pollfd *pd = wf__sock_rev_record(s);
    s->rev_pd = pd;
    if (pd)
        s->rev_seen = atomic_load_explicit(&pd->rev, memory_order_relaxed);
    ssize_t r;
    do
        r = sys_recv(s, buf, n, flags, from);
    while (r == -EINTR);
    if (r >= 0)
        s->rdrained = wf__sock_is_stream(s) && !(flags & MSG_PEEK) && r > 0 && (size_t)r < n;
    return r;
}

ssize_t wf__sock_recv_locked(wf_sock_t *s, void *buf, size_t n, int flags, wf_addr_t *from, int64_t deadline)
{
    if (n == 0)
        return 0; /* no call: a datagram socket would lose a datagram */
    for (;;) {
        /* A deadline of 0 is "try once": always ask the kernel. */
        if (!s->rdrained || deadline == 0) {
            ssize_t r = wf__sock_try_recv(s, buf, n, flags, from);
            if (r != -EAGAIN)
                return r;
        }
        s->rdrained = false;
        int e = wf__sock_wait(s, WF__POLL_READ, deadline);
        if (e)
            return e;
    }
}

int wf__sock_send_locked(wf_sock_t *s, struct iovec *iov, int cnt, size_t *written, int64_t deadline)
{
    size_t done = 0;
    int e = 0;
    for (;;) {
        while (cnt > 0 && iov->iov_len == 0) {
            iov++;
            cnt--;
        }
        if (cnt == 0)
            break;
        if (!s->wfull || deadline == 0) {
            int batch = cnt > IOV_MAX ? IOV_MAX : cnt;
            size_t want = 0;
            for (int i = 0; i < batch; i++)
                want += iov[i].iov_len;
            ssize_t r = sys_send(s, iov, batch);
            if (r >= 0) {
                done += (size_t)r;
                size_t left = (size_t)r;
                while (cnt > 0 && left >= iov->iov_len) {
                    left -= iov->iov_len;
                    iov++;
                    cnt--;
                }
                if (cnt > 0 && left) {
                    iov->iov_base = (char *)iov->iov_base + left;
                    iov->iov_len -= left;
                }
                /* A partial send: the kernel's buffer is full (a datagram
                 * goes whole or not at all). */
                s->wfull = (size_t)r < want;
                continue;
            }
            if (r == -EINTR)
                continue;
            if (r != -EAGAIN) {
                e = r;
                break;
            }
        }
        s->wfull = false;
        e = wf__sock_wait(s, WF__POLL_WRITE, deadline);
        if (e)
            break;
    }
    if (written)
        *written = done;
    return e;
}
