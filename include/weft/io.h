/* weft/io.h - waiting for file descriptors through the poller.
 *
 * The model is "try the syscall first": put the fd in non-blocking mode, call
 * read()/write()/accept()/connect(), and only when it fails with EAGAIN wait
 * for readiness with wf_wait_readable() / wf_wait_writable(), then try again.
 * A busy socket therefore costs no poller round trip. Readiness is
 * edge-triggered underneath: a return of 0 means "worth trying again", and a
 * retry that hits EAGAIN simply waits again.
 *
 * The poller's epoll learns of an fd on its first wait. Before closing an
 * fd that tasks may be waiting on, call wf_fd_close() (or wf_fd_forget()
 * and close it yourself): its waiters then wake with -EBADF. An fd closed
 * with a plain close() while nobody waits on it is fine too: the next wait
 * on a new fd with the same number re-registers it (a wait that has to
 * park always checks the registration, at the cost of one epoll_ctl).
 *
 * Environment: WF_POLLER_NO_PWAIT2=1, read when wf_run() starts, makes the
 * poller sleep in epoll_pwait() with millisecond timeouts (rounded up, so
 * timers are never early, up to 1 ms late) instead of epoll_pwait2(). The
 * poller falls back by itself, once, where epoll_pwait2() is missing
 * (Linux before 5.11, a seccomp filter that refuses it, valgrind 3.19).
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup io Waiting on file descriptors
 * @{ */

/** Wait until @p fd may be readable (or has hung up / failed).
 * @return 0 when the fd is (or may be) ready: retry the operation;
 *   -ETIMEDOUT  the deadline passed;
 *   -ECANCELED  the task was cancelled;
 *   -EBADF      @p fd is negative or not open, or it was wf_fd_close()d
 *               while the caller waited;
 *   -EPERM      the fd cannot be polled (a regular file: use the thread pool),
 *               or the caller is not a fiber;
 *   -EBUSY      another task is already waiting for @p fd to be readable
 *               (one reader and one writer per fd at a time).
 * Fiber only; parks the task until ready, deadline or cancellation. */
int wf_wait_readable(int fd, int64_t deadline);

/** Wait until @p fd may be writable. Returns as wf_wait_readable(). */
int wf_wait_writable(int fd, int64_t deadline);

/** Tell the runtime that @p fd is about to be closed by the caller: it is
 * removed from the poller, and tasks waiting on it wake with -EBADF.
 * @return 0; -EBADF if @p fd is negative; -EPERM outside a runtime thread.
 * Never blocks. Calling it for an fd that was never waited on is harmless. */
int wf_fd_forget(int fd);

/** wf_fd_forget() then close(). @return 0, or the negative errno of close(). */
int wf_fd_close(int fd);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
