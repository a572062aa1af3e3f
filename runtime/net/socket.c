/* socket.c - the socket calls of net.h on the owned fd (sockfd.h): making
 * sockets, connect and accept, reads and writes, and the asyncio / Go style
 * helpers (wf_tcp_listen, wf_tcp_connect, ...). */
#include "sockfd.h"
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/time.h>

/* The flags weft adds to every socket it makes. */
#define SOCK_FLAGS (SOCK_NONBLOCK | SOCK_CLOEXEC)

static inline bool deadline_ok(int64_t deadline)
{
    return deadline >= WF_FOREVER;
}

/* A fiber-only call: the caller parks. (Quick calls work anywhere.) */
static inline bool in_fiber(void)
{
    return wf__current() != NULL;
}

/* --- making sockets ------------------------------------------------------ */

static int wrap(wf_sock_t **out, int fd, int family, int type)
{
    wf_sock_t *s = wf__sock_new(fd, family, type);
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

static __attribute__((noinline)) int sys_socket(int family, int type, int protocol)
{
    int fd = socket(family, type | SOCK_FLAGS, protocol);
    return fd < 0 ? -errno : fd;
}

int wf_sock_open(wf_sock_t **out, int family, int type, int protocol)
{
    if (!out)
        return -EINVAL;
    int fd = sys_socket(family, type, protocol);
    if (fd < 0)
        return fd;
    return wrap(out, fd, family, type & ~SOCK_FLAGS);
}

static __attribute__((noinline)) int sys_getsockopt_int(int fd, int level, int name, int *v)
{
    socklen_t len = sizeof *v;
    return getsockopt(fd, level, name, v, &len) < 0 ? -errno : 0;
}

int wf_sock_adopt(wf_sock_t **out, int fd)
{
    if (!out)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0)
        return -EBADF;
    int type, family;
    int e = sys_getsockopt_int(fd, SOL_SOCKET, SO_TYPE, &type);
    if (e)
        return e; /* -ENOTSOCK for a file that is not a socket */
    e = sys_getsockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &family);
    if (e)
        return e;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -EBADF;
    wf_sock_t *s = wf__sock_new(fd, family, type);
    if (!s)
        return -ENOMEM;
    /* Cannot fail on an open fd with valid flags. */
    (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    (void)fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
    *out = s;
    return 0;
}

static __attribute__((noinline)) int sys_socketpair(int type, int sv[2])
{
    return socketpair(AF_UNIX, type | SOCK_FLAGS, 0, sv) < 0 ? -errno : 0;
}

int wf_socketpair(wf_sock_t **a, wf_sock_t **b, int type)
{
    if (!a || !b)
        return -EINVAL;
    int sv[2];
    int e = sys_socketpair(type, sv);
    if (e)
        return e;
    type &= ~SOCK_FLAGS;
    wf_sock_t *x = wf__sock_new(sv[0], AF_UNIX, type), *y = wf__sock_new(sv[1], AF_UNIX, type);
    if (!x || !y) {
        free(x);
        free(y);
        close(sv[0]);
        close(sv[1]);
        return -ENOMEM;
    }
    *a = x;
    *b = y;
    return 0;
}

/* --- quick calls (no turn, no park) ------------------------------------- */

static __attribute__((noinline)) int sys_bind(int fd, const wf_addr_t *a)
{
    return bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ? -errno : 0;
}

int wf_sock_bind(wf_sock_t *s, const wf_addr_t *a)
{
    if (!s || !a)
        return -EINVAL;
    int e = wf__sock_enter(s, WF__TURN_NONE, WF_FOREVER);
    if (e)
        return e;
    e = sys_bind(s->fd, a);
    wf__sock_leave(s, WF__TURN_NONE);
    return e;
}

static __attribute__((noinline)) int sys_listen(int fd, int backlog)
{
    return listen(fd, backlog) < 0 ? -errno : 0;
}

int wf_sock_listen(wf_sock_t *s, int backlog)
{
    if (!s)
        return -EINVAL;
    int e = wf__sock_enter(s, WF__TURN_NONE, WF_FOREVER);
    if (e)
        return e;
    e = sys_listen(s->fd, backlog > 0 ? backlog : SOMAXCONN);
    wf__sock_leave(s, WF__TURN_NONE);
    return e;
}

static __attribute__((noinline)) int sys_shutdown(int fd, int how)
{
    return shutdown(fd, how) < 0 ? -errno : 0;
}

int wf_sock_shutdown(wf_sock_t *s, int how)
{
    if (!s || (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR))
        return -EINVAL;
    int e = wf__sock_enter(s, WF__TURN_NONE, WF_FOREVER);
    if (e)
        return e;
    e = sys_shutdown(s->fd, how);
    wf__sock_leave(s, WF__TURN_NONE);
    return e;
}

int wf_sock_fd(const wf_sock_t *s)
{
    if (!s)
        return -EINVAL;
    /* acquire: a holder that sees the socket open sees its fd. */
    uint64_t w = atomic_load_explicit(&((wf_sock_t *)s)->state, memory_order_acquire);
    return (w & WF__SK_CLOSED) ? -EBADF : s->fd;
}

static __attribute__((noinline)) int sys_getname(int fd, wf_addr_t *out, bool peer)
{
    out->len = sizeof out->ss;
    int r = peer ? getpeername(fd, (struct sockaddr *)&out->ss, &out->len)
                 : getsockname(fd, (struct sockaddr *)&out->ss, &out->len);
    return r < 0 ? -errno : 0;
}

static int getname(wf_sock_t *s, wf_addr_t *out, bool peer)
{
    if (!s || !out)
        return -EINVAL;
    int e = wf__sock_enter(s, WF__TURN_NONE, WF_FOREVER);
    if (e)
        return e;
    memset(out, 0, sizeof *out);
    e = sys_getname(s->fd, out, peer);
    wf__sock_leave(s, WF__TURN_NONE);
    return e;
}

int wf_sock_local_addr(wf_sock_t *s, wf_addr_t *out)
{
    return getname(s, out, false);
}

int wf_sock_peer_addr(wf_sock_t *s, wf_addr_t *out)
{
    return getname(s, out, true);
}

static __attribute__((noinline)) int sys_setsockopt_int(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof v) < 0 ? -errno : 0;
}

int wf_sock_set_nodelay(wf_sock_t *s, bool on)
{
    if (!s)
        return -EINVAL;
    if ((s->family != AF_INET && s->family != AF_INET6) || s->type != SOCK_STREAM)
        return -EOPNOTSUPP;
    int e = wf__sock_enter(s, WF__TURN_NONE, WF_FOREVER);
    if (e)
        return e;
    e = sys_setsockopt_int(s->fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
    wf__sock_leave(s, WF__TURN_NONE);
    return e;
}

/* --- connect and accept ---------------------------------------------------- */

static __attribute__((noinline)) int sys_connect(int fd, const wf_addr_t *a)
{
    return connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ? -errno : 0;
}

static __attribute__((noinline)) int sys_connected(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    return getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ? -errno : 0;
}

int wf_sock_connect(wf_sock_t *s, const wf_addr_t *a, int64_t deadline)
{
    if (!s || !a || !deadline_ok(deadline))
        return -EINVAL;
    if (!in_fiber())
        return -EPERM;
    int e = wf__sock_enter(s, WF__TURN_WRITE, deadline);
    if (e)
        return e;
    e = sys_connect(s->fd, a);
    while (e == -EINTR)
        e = sys_connect(s->fd, a); /* EINTR: the connection goes on; EALREADY next */
    if (e == -EINPROGRESS || e == -EALREADY) {
        /* Wait for the outcome: writable means done, well or badly
         * (Go's connect loop). A spurious edge finds the socket still
         * connecting: SO_ERROR 0 and no peer yet, so wait again. */
        for (;;) {
            e = wf__sock_wait(s, WF__POLL_WRITE, deadline);
            if (e)
                break;
            int soerr = 0;
            e = sys_getsockopt_int(s->fd, SOL_SOCKET, SO_ERROR, &soerr);
            if (e)
                break;
            if (soerr) {
                e = -soerr;
                if (e == -EINPROGRESS || e == -EALREADY || e == -EINTR)
                    continue;
                break;
            }
            e = sys_connected(s->fd);
            if (e != -ENOTCONN)
                break;
        }
    }
    wf__sock_leave(s, WF__TURN_WRITE);
    return e;
}

static __attribute__((noinline)) int sys_accept(int fd, wf_addr_t *peer)
{
    int r;
    if (peer) {
        peer->len = sizeof peer->ss;
        r = accept4(fd, (struct sockaddr *)&peer->ss, &peer->len, SOCK_FLAGS);
    } else {
        r = accept4(fd, NULL, NULL, SOCK_FLAGS);
    }
    return r < 0 ? -errno : r;
}

int wf_sock_accept(wf_sock_t *l, wf_sock_t **out, wf_addr_t *peer, int64_t deadline)
{
    if (!l || !out || !deadline_ok(deadline))
        return -EINVAL;
    if (!in_fiber())
        return -EPERM;
    int e = wf__sock_enter(l, WF__TURN_READ, deadline);
    if (e)
        return e;
    if (peer)
        memset(peer, 0, sizeof *peer);
    int fd;
    for (;;) {
        fd = sys_accept(l->fd, peer);
        if (fd >= 0)
            break;
        /* Gone before we took it (the peer reset), or a signal: next. */
        if (fd == -ECONNABORTED || fd == -EINTR)
            continue;
        if (fd != -EAGAIN)
            break;
        fd = wf__sock_wait(l, WF__POLL_READ, deadline);
        if (fd)
            break;
    }
    int family = l->family, type = l->type;
    wf__sock_leave(l, WF__TURN_READ);
    if (fd < 0)
        return fd;
    /* TCP_NODELAY on every accepted TCP connection, as Go and asyncio do:
     * a server answers small requests, and Nagle's algorithm would hold a
     * reply back for the client's delayed ACK. */
    if ((family == AF_INET || family == AF_INET6) && type == SOCK_STREAM)
        (void)sys_setsockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    return wrap(out, fd, family, type);
}

/* --- reading and writing ------------------------------------------------- */

ssize_t wf_sock_recvfrom(wf_sock_t *s, void *buf, size_t n, int flags, wf_addr_t *from, int64_t deadline)
{
    if (!s || (!buf && n) || !deadline_ok(deadline) || (flags & MSG_WAITALL))
        return -EINVAL;
    if (!in_fiber())
        return -EPERM;
    if (flags & MSG_DONTWAIT) {
        flags &= ~MSG_DONTWAIT;
        deadline = 0;
    }
    ssize_t r = wf__sock_enter(s, WF__TURN_READ, deadline);
    if (r)
        return r;
    if (from)
        memset(from, 0, sizeof *from);
    r = wf__sock_recv_locked(s, buf, n, flags, from, deadline);
    wf__sock_leave(s, WF__TURN_READ);
    return r;
}

ssize_t wf_sock_recv(wf_sock_t *s, void *buf, size_t n, int flags, int64_t deadline)
{
    return wf_sock_recvfrom(s, buf, n, flags, NULL, deadline);
}

ssize_t wf_sock_read(wf_sock_t *s, void *buf, size_t n, int64_t deadline)
{
    return wf_sock_recvfrom(s, buf, n, 0, NULL, deadline);
}

int wf_sock_writev(wf_sock_t *s, const struct iovec *iov, int iovcnt, size_t *written, int64_t deadline)
{
    if (written)
        *written = 0;
    if (!s || iovcnt < 0 || iovcnt > IOV_MAX || (!iov && iovcnt) || !deadline_ok(deadline))
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++)
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
    if (!in_fiber())
        return -EPERM;
    /* The loop consumes its copy of the array. */
    struct iovec small[8], *v = small;
    if (iovcnt > 8) {
        v = malloc((size_t)iovcnt * sizeof *v);
        if (!v)
            return -ENOMEM;
    }
    if (iovcnt)
        memcpy(v, iov, (size_t)iovcnt * sizeof *v);
    int e = wf__sock_enter(s, WF__TURN_WRITE, deadline);
    if (e == 0) {
        e = wf__sock_send_locked(s, v, iovcnt, written, deadline);
        wf__sock_leave(s, WF__TURN_WRITE);
    }
    if (v != small)
        free(v);
    return e;
}

int wf_sock_write(wf_sock_t *s, const void *buf, size_t n, size_t *written, int64_t deadline)
{
    if (written)
        *written = 0;
    if (!s || (!buf && n) || !deadline_ok(deadline))
        return -EINVAL;
    if (!in_fiber())
        return -EPERM;
    int e = wf__sock_enter(s, WF__TURN_WRITE, deadline);
    if (e)
        return e;
    struct iovec v = {.iov_base = (void *)buf, .iov_len = n};
    e = wf__sock_send_locked(s, &v, 1, written, deadline);
    wf__sock_leave(s, WF__TURN_WRITE);
    return e;
}

static __attribute__((noinline)) ssize_t sys_sendto(int fd, const void *buf, size_t n, int flags,
                                                    const wf_addr_t *to)
{
    ssize_t r = sendto(fd, buf, n, flags | MSG_NOSIGNAL, to ? (const struct sockaddr *)&to->ss : NULL,
                       to ? to->len : 0);
    return r < 0 ? -errno : r;
}

ssize_t wf_sock_sendto(wf_sock_t *s, const void *buf, size_t n, int flags, const wf_addr_t *to,
                       int64_t deadline)
{
    if (!s || (!buf && n) || !deadline_ok(deadline))
        return -EINVAL;
    if (!in_fiber())
        return -EPERM;
    if (flags & MSG_DONTWAIT) {
        flags &= ~MSG_DONTWAIT;
        deadline = 0;
    }
    ssize_t r = wf__sock_enter(s, WF__TURN_WRITE, deadline);
    if (r)
        return r;
    for (;;) {
        r = sys_sendto(s->fd, buf, n, flags, to);
        if (r >= 0 || (r != -EAGAIN && r != -EINTR))
            break;
        if (r == -EAGAIN) {
            int e = wf__sock_wait(s, WF__POLL_WRITE, deadline);
            if (e) {
                r = e;
                break;
            }
        }
    }
    wf__sock_leave(s, WF__TURN_WRITE);
    return r;
}

ssize_t wf_sock_send(wf_sock_t *s, const void *buf, size_t n, int flags, int64_t deadline)
{
    return wf_sock_sendto(s, buf, n, flags, NULL, deadline);
}

/* --- the asyncio / Go way ------------------------------------------------- */

void wf_listen_opts_init(wf_listen_opts_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->backlog = 0;
    o->reuseaddr = true;
    o->reuseport = false;
    o->v6only = false;
    o->unlink = true;
}

/* socket + options + bind (+ listen when `backlog` >= 0). */
static int open_bound(wf_sock_t **out, const wf_addr_t *a, int type, const wf_listen_opts_t *o, bool listening)
{
    int family = a->ss.ss_family;
    wf_sock_t *s;
    int e = wf_sock_open(&s, family, type, 0);
    if (e)
        return e;
    if (family == AF_INET || family == AF_INET6) {
        if (o->reuseaddr && type == SOCK_STREAM)
            e = sys_setsockopt_int(s->fd, SOL_SOCKET, SO_REUSEADDR, 1);
        if (!e && o->reuseport)
            e = sys_setsockopt_int(s->fd, SOL_SOCKET, SO_REUSEPORT, 1);
        if (!e && family == AF_INET6)
            e = sys_setsockopt_int(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, o->v6only ? 1 : 0);
    }
    if (!e)
        e = sys_bind(s->fd, a);
    if (!e && listening)
        e = sys_listen(s->fd, o->backlog > 0 ? o->backlog : SOMAXCONN);
    if (e) {
        wf_sock_close(s);
        return e;
    }
    *out = s;
    return 0;
}

int wf_tcp_listen(wf_sock_t **out, const char *host, uint16_t port, const wf_listen_opts_t *opts)
{
    if (!out)
        return -EINVAL;
    wf_listen_opts_t o;
    if (opts)
        o = *opts;
    else
        wf_listen_opts_init(&o);
    wf_addr_t a;
    int e = wf_addr_parse(&a, host, port);
    if (e)
        return e;
    return open_bound(out, &a, SOCK_STREAM, &o, true);
}

int wf_udp_bind(wf_sock_t **out, const char *host, uint16_t port)
{
    if (!out)
        return -EINVAL;
    wf_listen_opts_t o;
    wf_listen_opts_init(&o);
    wf_addr_t a;
    int e = wf_addr_parse(&a, host, port);
    if (e)
        return e;
    return open_bound(out, &a, SOCK_DGRAM, &o, false);
}

/* Open a socket for `a`, connect it, close it on failure. */
static int open_connected(wf_sock_t **out, const wf_addr_t *a, int64_t deadline)
{
    int family = a->ss.ss_family;
    wf_sock_t *s;
    int e = wf_sock_open(&s, family, SOCK_STREAM, 0);
    if (e)
        return e;
    if (family == AF_INET || family == AF_INET6)
        (void)sys_setsockopt_int(s->fd, IPPROTO_TCP, TCP_NODELAY, 1);
    e = wf_sock_connect(s, a, deadline);
    if (e) {
        wf_sock_close(s);
        return e;
    }
    *out = s;
    return 0;
}

int wf_tcp_connect(wf_sock_t **out, const char *host, uint16_t port, int64_t deadline)
{
    if (!out || !host || !deadline_ok(deadline))
        return -EINVAL;
    if (!in_fiber())
        return -EPERM;
    wf_addr_t a;
    int e = wf_addr_parse(&a, host, port);
    if (e)
        return e;
    return open_connected(out, &a, deadline);
}

static __attribute__((noinline)) int sys_lstat_mode(const char *path, mode_t *mode)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return -errno;
    *mode = st.st_mode;
    return 0;
}

int wf_unix_listen(wf_sock_t **out, const char *path, const wf_listen_opts_t *opts)
{
    if (!out)
        return -EINVAL;
    wf_listen_opts_t o;
    if (opts)
        o = *opts;
    else
        wf_listen_opts_init(&o);
    wf_addr_t a;
    int e = wf_addr_unix(&a, path);
    if (e)
        return e;
    if (path[0] != '@') {
        mode_t mode;
        if (sys_lstat_mode(path, &mode) == 0) {
            /* Only a stale socket file is ever removed, never a file. */
            if (!S_ISSOCK(mode) || !o.unlink)
                return -EADDRINUSE;
            if (unlink(path) < 0 && errno != ENOENT)
                return -EADDRINUSE;
        }
    }
    return open_bound(out, &a, SOCK_STREAM, &o, true);
}

int wf_unix_connect(wf_sock_t **out, const char *path, int64_t deadline)
{
    if (!out || !deadline_ok(deadline))
        return -EINVAL;
    if (!in_fiber())
        return -EPERM;
    wf_addr_t a;
    int e = wf_addr_unix(&a, path);
    if (e)
        return e;
    return open_connected(out, &a, deadline);
}
