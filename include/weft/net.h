/* weft/net.h - sockets: TCP over IPv4 and IPv6, UDP, Unix-domain stream
 * and datagram sockets, for fibers.
 *
 * A wf_sock_t owns its file descriptor through a reference-counted record
 * (Go's netFD, asyncio's transports). Every fd weft creates is
 * O_CLOEXEC|O_NONBLOCK. Every call tries the system call first and parks on
 * the poller only when it would block (EAGAIN), so a busy socket costs no
 * poller round trip. Writes use MSG_NOSIGNAL: a write to a peer that has
 * gone is -EPIPE, never a SIGPIPE that kills the process.
 *
 * SHARING AND CLOSING. One reader fiber and one writer fiber may use a
 * socket at once; more readers (or more writers) are serialised, each
 * waiting its turn (they are never told -EBUSY). A fiber that keeps a socket
 * beside the creator takes its own reference with wf_sock_ref() and gives it
 * back with wf_sock_release(). wf_sock_close() closes the socket for every
 * holder at once: calls in progress on it (parked in a read, a write, an
 * accept, a connect, or waiting for their turn) return -EBADF, later calls
 * return -EBADF, and the descriptor itself is closed only once the last call
 * in progress has returned, so its number can never be reused by another
 * file under a fiber still using it. The record is freed when the last
 * reference is given back (close gives back the caller's).
 *
 * CANCELLATION AND DEADLINES. Every call that can park takes an absolute
 * deadline (WF_FOREVER, or 0 to try once) and honours the enclosing timeout
 * scopes and cancellation: it returns -ETIMEDOUT or -ECANCELED, and then
 * lost nothing. A read cancelled while parked has consumed no byte (the
 * bytes stay in the kernel's buffer for the next read); a write reports in
 * *written how much of the buffer went out before it stopped.
 *
 * RUNTIMES. A socket can be made anywhere (before wf_run(), in any
 * thread); its first wait binds it to the calling fiber's runtime. A wait
 * from a fiber of another runtime while that one still runs is -EXDEV;
 * once it has ended, the socket moves to the new one by itself. A socket
 * kept open past wf_run() can still be closed after it (it keeps that
 * runtime's epoll descriptor open until then). Its fd belongs to the
 * socket: wf_wait_readable() on it and wf_fd_forget() of it are -EBUSY.
 *
 * Host names: until the DNS of the blocking-work pool lands, a host is a
 * numeric IPv4 or IPv6 address ("127.0.0.1", "::1"); a name is
 * -EAFNOSUPPORT (see wf_addr_parse()).
 *
 * errno is never read after a wait by these functions, and never set for
 * the caller: the result is the return value (io.h says why).
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include "core.h"
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup net Sockets
 * @{ */

/** A socket owned by weft. Opaque; see the top of this header. */
typedef struct wf_sock wf_sock_t;

/** A socket address of any family, with its length. */
typedef struct wf_addr {
    struct sockaddr_storage ss; /**< the address (cast to struct sockaddr *) */
    socklen_t len;              /**< its length in bytes */
} wf_addr_t;

/** Longest text wf_addr_format() writes, NUL included ("[v6%scope]:port",
 * or a Unix path). */
#define WF_ADDR_STRLEN 128

/* --- addresses ------------------------------------------------------------ */

/** Fill @p out with the numeric address @p host and @p port.
 * @param host  "127.0.0.1", "::1", "fe80::1%eth0" (an IPv6 scope), or NULL
 *              or "" for every IPv4 interface (0.0.0.0); "::" is every IPv6
 *              interface. Brackets around an IPv6 address are accepted.
 * @return 0; -EINVAL for NULL @p out; -EAFNOSUPPORT if @p host is not a
 *   numeric address (a host name needs DNS, which is not there yet).
 * Never blocks; any thread. */
int wf_addr_parse(wf_addr_t *out, const char *host, uint16_t port);

/** Fill @p out with the Unix-domain address @p path. A path starting with
 * '@' is in the abstract namespace (the '@' becomes the leading NUL).
 * @return 0; -EINVAL for NULL arguments or an empty path;
 *   -ENAMETOOLONG if it does not fit sun_path (107 bytes). Never blocks. */
int wf_addr_unix(wf_addr_t *out, const char *path);

/** Write @p a as text into @p buf: "1.2.3.4:80", "[::1]:80", "/path" or
 * "@abstract" ("" for an unnamed Unix socket).
 * @return the length written (without the NUL); -EINVAL for NULL
 *   arguments or @p n of 0; -ENOSPC if it did not fit (then @p buf holds a
 *   truncated, NUL-terminated string); -EAFNOSUPPORT for another family.
 * Never blocks; any thread. */
int wf_addr_format(const wf_addr_t *a, char *buf, size_t n);

/** The port of an AF_INET or AF_INET6 address; -EAFNOSUPPORT for another
 * family; -EINVAL for NULL. Never blocks. */
int wf_addr_port(const wf_addr_t *a);

/* --- making sockets ------------------------------------------------------- */

/** A new socket, like socket(2) with SOCK_NONBLOCK|SOCK_CLOEXEC added.
 * @param out       receives the socket.
 * @param family    AF_INET, AF_INET6 or AF_UNIX.
 * @param type      SOCK_STREAM or SOCK_DGRAM (flags are added, not needed).
 * @param protocol  0, or the protocol socket(2) takes.
 * @return 0; -EINVAL for NULL @p out; socket(2)'s errors (-EAFNOSUPPORT,
 *   -EMFILE, -ENFILE, -ENOBUFS, -ENOMEM, -EPROTONOSUPPORT...).
 * Never blocks; any thread. */
int wf_sock_open(wf_sock_t **out, int family, int type, int protocol);

/** Take ownership of an open socket fd (made non-blocking and close-on-exec
 * here). From now on only the wf_sock_t closes it.
 * @return 0; -EINVAL for NULL @p out; -EBADF if @p fd is not open;
 *   -ENOTSOCK if it is not a socket; -ENOMEM. On failure the fd is left
 *   open and unchanged, still the caller's. Never blocks; any thread. */
int wf_sock_adopt(wf_sock_t **out, int fd);

/** A connected pair of Unix-domain sockets (socketpair(2)).
 * @param type SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
 * @return 0; -EINVAL for NULL pointers; socketpair(2)'s errors. On failure
 *   nothing is created. Never blocks; any thread. */
int wf_socketpair(wf_sock_t **a, wf_sock_t **b, int type);

/** bind(2). @return 0; -EINVAL for NULL arguments; -EBADF once closed;
 * bind(2)'s errors (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL...). Never
 * blocks; any thread. */
int wf_sock_bind(wf_sock_t *s, const wf_addr_t *a);

/** listen(2). @param backlog  pending connections the kernel keeps; 0 or
 * less: SOMAXCONN. @return 0; -EINVAL for NULL; -EBADF once closed;
 * listen(2)'s errors. Never blocks; any thread. */
int wf_sock_listen(wf_sock_t *s, int backlog);

/** Connect @p s to @p a, parking until the connection is made.
 * @return 0; -EINVAL for NULL arguments or a bad deadline; -EBADF once
 *   closed; -ECONNREFUSED; -ETIMEDOUT when @p deadline (or a timeout
 *   scope's) passed first; -ECANCELED; -ENETUNREACH, -EHOSTUNREACH,
 *   -EADDRNOTAVAIL, -EISCONN and the other errors of connect(2). After a
 *   failure other than -EINVAL and -EBADF the socket is unusable for
 *   another connect (as in POSIX): close it and open another.
 * Fiber only (-EPERM elsewhere); parks. */
int wf_sock_connect(wf_sock_t *s, const wf_addr_t *a, int64_t deadline);

/** Accept a connection on the listening socket @p l.
 * @param out   receives the new, connected socket (non-blocking,
 *              close-on-exec).
 * @param peer  if not NULL, receives the peer's address.
 * @return 0; -EINVAL for NULL @p l / @p out or a bad deadline; -EBADF once
 *   @p l is closed; -ETIMEDOUT; -ECANCELED; -EMFILE / -ENFILE when the
 *   process or the system is out of file descriptors (the connection stays
 *   in the backlog: back off and try again; the server of server.h does);
 *   -ENOBUFS, -ENOMEM; -EINVAL if @p l is not listening. A connection that
 *   the peer reset before it was accepted (ECONNABORTED) is skipped, not
 *   returned. TCP connections come with TCP_NODELAY set, as in Go and
 *   asyncio (a server's small replies are not held back by Nagle's
 *   algorithm; wf_sock_set_nodelay() turns it off). Fiber only; parks while
 *   none is pending. */
int wf_sock_accept(wf_sock_t *l, wf_sock_t **out, wf_addr_t *peer, int64_t deadline);

/* --- convenience: the asyncio / Go way ----------------------------------- */

/** Options of wf_tcp_listen() and wf_unix_listen(). */
typedef struct wf_listen_opts {
    int backlog;    /**< listen(2)'s backlog; 0: SOMAXCONN */
    bool reuseaddr; /**< SO_REUSEADDR (default true; TCP only) */
    bool reuseport; /**< SO_REUSEPORT (default false) */
    bool v6only;    /**< IPV6_V6ONLY for an IPv6 address (default false) */
    bool unlink;    /**< Unix: remove an existing socket file at the path
                         first (default true); never a non-socket file */
} wf_listen_opts_t;

/** Fill @p o with the defaults above. NULL is ignored. */
void wf_listen_opts_init(wf_listen_opts_t *o);

/** A TCP socket listening on @p host : @p port (port 0: the kernel picks
 * one; read it with wf_sock_local_addr()).
 * @param opts NULL for the defaults.
 * @return 0; -EINVAL for NULL @p out; wf_addr_parse()'s errors; the errors
 *   of socket(2), bind(2) (-EADDRINUSE...) and listen(2). Never blocks. */
int wf_tcp_listen(wf_sock_t **out, const char *host, uint16_t port, const wf_listen_opts_t *opts);

/** Connect to @p host : @p port over TCP (asyncio's open_connection, Go's
 * net.Dial without the DNS yet: @p host is numeric). TCP_NODELAY is set.
 * @return 0; -EINVAL; wf_addr_parse()'s errors; wf_sock_connect()'s.
 * Fiber only; parks. */
int wf_tcp_connect(wf_sock_t **out, const char *host, uint16_t port, int64_t deadline);

/** A Unix-domain stream socket listening at @p path (see wf_addr_unix()).
 * @return 0; -EINVAL; -ENAMETOOLONG; -EADDRINUSE (the path exists and is
 *   not a socket, or opts->unlink is false); bind(2)'s and listen(2)'s
 *   errors. Never blocks. */
int wf_unix_listen(wf_sock_t **out, const char *path, const wf_listen_opts_t *opts);

/** Connect to the Unix-domain stream socket at @p path.
 * @return 0; -EINVAL; -ENAMETOOLONG; -ENOENT; -ECONNREFUSED; and as
 *   wf_sock_connect(). Fiber only; parks. */
int wf_unix_connect(wf_sock_t **out, const char *path, int64_t deadline);

/** A UDP socket bound to @p host : @p port (port 0: any; host NULL: every
 * IPv4 interface). @return 0; as wf_tcp_listen() without listen(2).
 * Never blocks. */
int wf_udp_bind(wf_sock_t **out, const char *host, uint16_t port);

/* --- reading and writing ------------------------------------------------- */

/** Read up to @p n bytes (one read(2)'s worth, at least one byte).
 * @return the count (> 0); 0 at end of file (the peer shut down its
 *   writing half, or @p n is 0); -EINVAL for NULL @p s, NULL @p buf with
 *   @p n > 0, or a bad deadline; -EBADF once closed; -ECONNRESET when the
 *   peer reset the connection; -ETIMEDOUT; -ECANCELED (no byte consumed);
 *   -ENOTCONN; other errors of read(2). Fiber only; parks while nothing is
 *   there. Safe to cancel. */
ssize_t wf_sock_read(wf_sock_t *s, void *buf, size_t n, int64_t deadline);

/** recv(2) with @p flags (MSG_PEEK, MSG_WAITALL is refused: -EINVAL).
 * Returns as wf_sock_read(); for a datagram socket one datagram, truncated
 * to @p n. Fiber only; parks. Safe to cancel. */
ssize_t wf_sock_recv(wf_sock_t *s, void *buf, size_t n, int flags, int64_t deadline);

/** Write all @p n bytes of @p buf, parking as often as the kernel's buffer
 * fills.
 * @param written  if not NULL, receives how many bytes went out, on success
 *                 (@p n) and on failure (the part that did).
 * @return 0 when all went out; -EINVAL; -EBADF once closed; -EPIPE when the
 *   peer has gone or our writing half is shut down (no SIGPIPE);
 *   -ECONNRESET; -ETIMEDOUT and -ECANCELED (with *written telling how much
 *   went out); other errors of send(2). Fiber only; parks while full. */
int wf_sock_write(wf_sock_t *s, const void *buf, size_t n, size_t *written, int64_t deadline);

/** wf_sock_write() of the @p iovcnt buffers of @p iov in order, with
 * writev(2)-style gathering (at most IOV_MAX buffers; -EINVAL above).
 * *written counts bytes across all buffers. Fiber only; parks. */
int wf_sock_writev(wf_sock_t *s, const struct iovec *iov, int iovcnt, size_t *written, int64_t deadline);

/** One send(2) with @p flags (MSG_NOSIGNAL always added): the count sent
 * (a stream socket may take part of @p buf), or a negative errno as
 * wf_sock_write(). Parks only while nothing can be sent. Fiber only. */
ssize_t wf_sock_send(wf_sock_t *s, const void *buf, size_t n, int flags, int64_t deadline);

/** Send one datagram to @p to (NULL: the connected peer).
 * @return the count sent; -EMSGSIZE if it is too long for one datagram;
 *   and as wf_sock_send(). Fiber only; parks while the buffer is full. */
ssize_t wf_sock_sendto(wf_sock_t *s, const void *buf, size_t n, int flags, const wf_addr_t *to,
                       int64_t deadline);

/** Receive one datagram, truncated to @p n, and its sender in @p from (if
 * not NULL). @return the count received; as wf_sock_recv(). Fiber only;
 * parks while none is there. Safe to cancel. */
ssize_t wf_sock_recvfrom(wf_sock_t *s, void *buf, size_t n, int flags, wf_addr_t *from, int64_t deadline);

/** Shut down one direction (SHUT_RD, SHUT_WR: the half-close, the peer reads
 * end of file) or both (SHUT_RDWR). The socket stays open.
 * @return 0; -EINVAL for NULL or another @p how; -EBADF once closed;
 *   -ENOTCONN. Never blocks; any thread. */
int wf_sock_shutdown(wf_sock_t *s, int how);

/* --- references and closing --------------------------------------------- */

/** Take another reference to @p s (for another fiber or a data structure).
 * @return 0; -EINVAL for NULL; -EOVERFLOW past 2^24 - 1 references. Never
 * blocks; any thread. Works on a closed socket too. */
int wf_sock_ref(wf_sock_t *s);

/** Give back a reference without closing. When the last one goes, the
 * socket is closed (if it was not) and freed once no call is in progress
 * on it (a call in progress keeps the record alive: see the top of this
 * header). Using @p s after giving back one's last reference is a use
 * after free, as with any handle.
 * @return 0; -EINVAL for NULL. Never blocks; any thread. */
int wf_sock_release(wf_sock_t *s);

/** Close @p s for every holder (see the top of this header) and give back
 * the caller's reference. Calls in progress return -EBADF; the fd is
 * closed when the last of them has returned (at once if none is).
 * @return 0; -EINVAL for NULL; -EBADF if it was closed already (the
 *   reference is given back all the same). Never blocks; any thread. */
int wf_sock_close(wf_sock_t *s);

/** The socket's fd, for setsockopt(2), getsockopt(2) and the like: never
 * close it, read it or write it yourself. @return the fd; -EINVAL for
 * NULL; -EBADF once closed. Never blocks. */
int wf_sock_fd(const wf_sock_t *s);

/** getsockname(2) / getpeername(2) into @p out. @return 0; -EINVAL for
 * NULL; -EBADF once closed; -ENOTCONN (peer). Never blocks. */
int wf_sock_local_addr(wf_sock_t *s, wf_addr_t *out);
int wf_sock_peer_addr(wf_sock_t *s, wf_addr_t *out);

/** TCP_NODELAY on or off. @return 0; -EINVAL; -EBADF; -EOPNOTSUPP for a
 * socket that is not TCP. Never blocks. */
int wf_sock_set_nodelay(wf_sock_t *s, bool on);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
