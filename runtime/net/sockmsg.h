/* sockmsg.h - messages that carry file descriptors (SCM_RIGHTS) over a
 * Unix-domain wf_sock_t: the runtime's own use (the process pool's wire,
 * runtime/pool/procwire.h), not a public call yet.
 *
 * Both calls follow the sockets' rules (sockfd.h): they take the read or
 * write turn, try the system call first and park on the poller only on
 * EAGAIN, honour the deadline, timeout scopes and cancellation, and return
 * -EBADF when the socket is closed under them. Received descriptors are
 * close-on-exec (MSG_CMSG_CLOEXEC) and belong to the caller.
 */
#ifndef WF_NET_SOCKMSG_H
#define WF_NET_SOCKMSG_H

#include "sockfd.h"

/* Send one message made of the `cnt` buffers of `iov`, with the `nfds`
 * descriptors of `fds` attached (none when nfds is 0; at most 16). A
 * SOCK_SEQPACKET or SOCK_DGRAM message goes whole or not at all; on a
 * stream socket the descriptors travel with the first byte and the rest is
 * written as wf_sock_writev() would. 0 or a negative errno as
 * wf_sock_writev() (-EMSGSIZE: too long for one message). Fiber only;
 * parks while the socket's buffer is full. */
int wf__sock_sendmsg_fds(wf_sock_t *s, const struct iovec *iov, int cnt, const int *fds, int nfds,
                         int64_t deadline);

/* Receive one message (one read's worth on a stream socket) into the
 * `cnt` buffers of `iov`, and up to `maxfds` descriptors into `fds`
 * (*nfds gets how many; descriptors beyond maxfds are closed, and
 * MSG_CTRUNC says so, as it does when the kernel had to discard some). *mflags (if not NULL) gets the message's
 * flags: MSG_TRUNC when the message was longer than the buffers (the rest
 * is discarded), MSG_CTRUNC. Returns the count of bytes (0 at end of
 * file, or for an empty message), or a negative errno as wf_sock_recv();
 * on an error no descriptor was received. Fiber only; parks while nothing
 * is there. */
ssize_t wf__sock_recvmsg_fds(wf_sock_t *s, struct iovec *iov, int cnt, int *fds, int maxfds, int *nfds,
                             int *mflags, int64_t deadline);

/* Take the descriptors that arrived (SCM_RIGHTS) with the message `m` just
 * received: the first `maxfds` (0 or more) go to `fds` in order, and every
 * one beyond is closed, so none leaks. Returns how many arrived in all,
 * kept and closed: more than maxfds says some were closed. No system call
 * but those close()s, so the zygote and the worker processes use it too. */
int wf__cmsg_take_fds(struct msghdr *m, int *fds, int maxfds);

#endif
