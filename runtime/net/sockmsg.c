/* sockmsg.c - messages with descriptors over Unix-domain sockets
 * (sockmsg.h). errno is read only in the small non-inlined helpers right
 * after their system call (io.h says why). */
#include "sockmsg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The most descriptors one message carries here. */
#define MAX_FDS 16

static __attribute__((noinline)) ssize_t sys_sendmsg(int fd, const struct msghdr *m)
{
    ssize_t r = sendmsg(fd, m, MSG_NOSIGNAL);
    return r < 0 ? -errno : r;
}

static __attribute__((noinline)) ssize_t sys_recvmsg(int fd, struct msghdr *m)
{
    ssize_t r = recvmsg(fd, m, MSG_CMSG_CLOEXEC);
    return r < 0 ? -errno : r;
}

int wf__sock_sendmsg_fds(wf_sock_t *s, const struct iovec *iov, int cnt, const int *fds, int nfds,
                         int64_t deadline)
{
    if (!s || cnt < 1 || cnt > 8 || !iov || nfds < 0 || nfds > MAX_FDS || (nfds && !fds))
        return -EINVAL;
    struct iovec v[8];
    memcpy(v, iov, (size_t)cnt * sizeof *v);
    int e = wf__sock_enter(s, WF__TURN_WRITE, deadline);
    if (e)
        return e;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    } ctl;
    struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)cnt};
    if (nfds) {
        memset(&ctl, 0, sizeof ctl);
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    size_t want = 0;
    for (int i = 0; i < cnt; i++)
        want += v[i].iov_len;
    for (;;) {
        ssize_t r = sys_sendmsg(s->fd, &m);
        if (r >= 0) {
            /* A message socket sends all of it; a stream socket may take a
             * part, and the descriptors went with it: the rest is plain. */
            if ((size_t)r < want) {
                struct iovec *rest = v;
                int left = cnt;
                size_t skip = (size_t)r;
                while (left > 0 && skip >= rest->iov_len) {
                    skip -= rest->iov_len;
                    rest++;
                    left--;
                }
                if (left > 0) {
                    rest->iov_base = (char *)rest->iov_base + skip;
                    rest->iov_len -= skip;
                }
                e = wf__sock_send_locked(s, rest, left, NULL, deadline);
            }
            break;
        }
        if (r == -EINTR)
            continue;
        if (r != -EAGAIN) {
            e = (int)r;
            break;
        }
        if ((e = wf__sock_wait(s, WF__POLL_WRITE, deadline)) != 0)
            break;
    }
    wf__sock_leave(s, WF__TURN_WRITE);
    return e;
}

ssize_t wf__sock_recvmsg_fds(wf_sock_t *s, struct iovec *iov, int cnt, int *fds, int maxfds, int *nfds,
                             int *mflags, int64_t deadline)
{
    if (nfds)
        *nfds = 0;
    if (mflags)
        *mflags = 0;
    if (!s || cnt < 1 || !iov || maxfds < 0 || maxfds > MAX_FDS || (maxfds && (!fds || !nfds)))
        return -EINVAL;
    ssize_t r = wf__sock_enter(s, WF__TURN_READ, deadline);
    if (r)
        return r;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    } ctl;
    struct msghdr m;
    for (;;) {
        memset(&m, 0, sizeof m);
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)cnt;
        /* Room for at least one descriptor, even when none is wanted: an
         * unwanted one is then received and closed here rather than kept
         * by a truncation that would hide it. */
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE((size_t)(maxfds ? maxfds : 1) * sizeof(int));
        /* The poller record's read-event count before the call (the same
         * bookkeeping as wf__sock_try_recv, sockio.c). */
        wf__pollfd *pd = wf__sock_rev_record(s);
        s->rev_pd = pd;
        if (pd)
            s->rev_seen = atomic_load_explicit(&pd->rev, memory_order_relaxed);
        s->rdrained = false;
        r = sys_recvmsg(s->fd, &m);
        if (r >= 0)
            break;
        if (r == -EINTR)
            continue;
        if (r != -EAGAIN)
            break;
        int e = wf__sock_wait(s, WF__POLL_READ, deadline);
        if (e) {
            r = e;
            break;
        }
    }
    if (r >= 0) {
        int all = wf__cmsg_take_fds(&m, fds, maxfds);
        if (nfds)
            *nfds = all < maxfds ? all : maxfds;
        if (mflags)
            *mflags = m.msg_flags | (all > maxfds ? MSG_CTRUNC : 0);
    }
    wf__sock_leave(s, WF__TURN_READ);
    return r;
}

int wf__cmsg_take_fds(struct msghdr *m, int *fds, int maxfds)
{
    int all = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++, all++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (all < maxfds)
                fds[all] = fd;
            else
                close(fd); /* not wanted: never leaked */
        }
    }
    return all;
}
