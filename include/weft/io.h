/* weft/io.h - waiting for file descriptors through the poller.
 *
 * The model is "try the syscall first": put the fd in non-blocking mode, call
 * read()/write()/accept()/connect(), and only when it fails with EAGAIN wait
 * for readiness with wf_wait_readable() / wf_wait_writable(), then try again.
 * A busy socket therefore costs no poller round trip. Readiness is
 * edge-triggered underneath: a return of 0 means "worth trying again", and a
 * retry that hits EAGAIN simply waits again.
 *
 * errno AND WAITS. A task may resume on another worker thread after any
 * call that can park (these waits included), and errno is per thread.
 * Worse, glibc declares __errno_location() const, so within one function
 * the compiler may compute errno's address once and keep using the first
 * thread's errno after the task has moved. Read errno only in a small
 * function that makes the system call and returns -errno, and that is not
 * inlined into the loop that waits:
 *
 *     static __attribute__((noinline)) ssize_t try_read(int fd, void *b, size_t n)
 *     {
 *         ssize_t r = read(fd, b, n);
 *         return r < 0 ? -errno : r;
 *     }
 *
 * The poller's epoll learns of an fd on its first wait. Before closing an
 * fd that tasks may be waiting on, call wf_fd_close() (or wf_fd_forget()
 * and close it yourself): its waiters then wake with -EBADF. An fd closed
 * with a plain close() while nobody waits on it is fine too: the next wait
 * on a new fd with the same number re-registers it (a wait that has to
 * park always checks the registration, at the cost of one epoll_ctl).
 *
 * Only fds that epoll can watch can be waited on: pipes, sockets, ttys,
 * eventfds, timerfds, signalfds, inotify fds and the like. Regular files
 * and directories are always ready as far as the kernel is concerned (a
 * read of a file on a slow disk blocks in the kernel all the same) and
 * cannot be waited on: -EOPNOTSUPP. Running such blocking calls off the
 * workers needs the blocking-work pool, which is planned.
 *
 * Signals: runtime threads inherit the signal mask of the thread that
 * calls wf_run(). Block SIGINT/SIGTERM there before wf_run() and read them
 * from a signalfd with wf_wait_readable() (examples/server_cli.h), and no
 * runtime thread takes their default action.
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
 *   -ETIMEDOUT  the deadline, or an enclosing timeout scope's, passed;
 *   -ECANCELED  the task was cancelled;
 *   -EBADF      @p fd is negative or not open, or it was wf_fd_close()d
 *               (or wf_fd_forget()ten) while the caller waited;
 *   -EOPNOTSUPP @p fd cannot be waited on: a regular file, a directory or
 *               another file epoll does not support (always ready for the
 *               kernel; see the top of this header);
 *   -EPERM      the caller is not a fiber (a thread outside the runtime, a
 *               timer callback);
 *   -EBUSY      another task is already waiting for @p fd to be readable
 *               (one reader and one writer per fd at a time), or @p fd
 *               belongs to a wf_sock_t (net.h: wait through the socket);
 *   -EINVAL     @p deadline is below WF_FOREVER;
 *   -ENOMEM, -ENOSPC  the fd table or the kernel's epoll watch limit
 *               (fs.epoll.max_user_watches) is exhausted.
 * Fiber only; parks the task until ready, deadline or cancellation. A
 * deadline of 0 does not park: it is -ETIMEDOUT unless an edge was
 * recorded. */
int wf_wait_readable(int fd, int64_t deadline);

/** Wait until @p fd may be writable. Returns as wf_wait_readable(). */
int wf_wait_writable(int fd, int64_t deadline);

/** Tell the runtime that @p fd is about to be closed by the caller: it is
 * removed from the poller, and tasks waiting on it wake with -EBADF.
 * @return 0; -EBADF if @p fd is negative; -EPERM outside a runtime thread;
 *   -EBUSY if @p fd belongs to a wf_sock_t (close the socket instead).
 * Never blocks. Calling it for an fd that was never waited on is harmless. */
int wf_fd_forget(int fd);

/** wf_fd_forget() then close(). @return 0, or the negative errno of close(). */
int wf_fd_close(int fd);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
