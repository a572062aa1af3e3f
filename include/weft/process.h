/* weft/process.h - child processes for fibers
 * (asyncio.create_subprocess_exec, tokio::process::Command).
 *
 * SPAWNING. A child is started with posix_spawn(3) (glibc's: a vfork-like
 * clone on a stack of its own, then exec), never with a plain fork of the
 * threaded runtime. The calling worker is held until the child has called
 * exec (typically well under a millisecond), as in asyncio and tokio, so
 * that a program that cannot be run is reported by the spawn call itself
 * (-ENOENT, -EACCES, -ENOEXEC...). The child gets:
 *  - no descriptor of the parent but its stdin, stdout and stderr: every fd
 *    from 3 up is closed in the child (Python's close_fds), whether or not
 *    it is close-on-exec;
 *  - the signal mask of the thread that called wf_run() (weft/signal.h),
 *    and SIGPIPE's default action;
 *  - the parent's environment and working directory, unless opts say
 *    otherwise.
 *
 * PIPES AS STREAMS. A standard stream set to WF_STDIO_PIPE is a pipe whose
 * parent end is a wf_stream_t (weft/stream.h): write to the child's stdin,
 * read lines from its stdout and stderr, with deadlines, cancellation,
 * drain and flush. The pipe is a connected pair of Unix stream sockets, as
 * libuv (and so Node.js) makes them: the child reads and writes it as a
 * pipe (its end is blocking, as a pipe's), while the parent's end is a
 * socket of weft/net.h, so a write to a child that has gone is -EPIPE,
 * never a SIGPIPE that ends the process, and wf_stream_write_eof() on
 * stdin gives the child end of file while the stream stays open. Closing
 * stdin (wf_process_close_stdin()) does that too. The streams belong to
 * the process object: do not close them yourself.
 *
 * WAITING. The child's exit is waited for through a pidfd on the poller
 * (pidfd_open(2), Linux 5.3); where that is missing (ENOSYS, or refused by
 * a seccomp filter), by a pool thread blocked in waitid(2) without reaping
 * (asyncio's ThreadedChildWatcher; WF_NO_PIDFD=1 in the environment, read
 * when the process is spawned, forces it). Neither uses SIGCHLD, which
 * stays the program's: but a waitpid(-1) elsewhere in the program would
 * steal the child's status. Signals are sent with pidfd_send_signal(2), or
 * kill(2) before the child is reaped, never to a reused pid.
 *
 * EXIT STATUS, as asyncio's returncode: the exit code (0 to 255), or minus
 * the number of the signal that killed the child (-9 after SIGKILL).
 *
 * Every process must be closed with wf_process_close(); one left open when
 * wf_run() ends is killed and reaped there, so no zombie outlives the
 * runtime.
 */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include "core.h"
#include "stream.h"
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup process Child processes
 * @{ */

/** A child process. Opaque. */
typedef struct wf_process wf_process_t;

/** What a child's stdin, stdout or stderr is. */
typedef enum wf_stdio {
    WF_STDIO_INHERIT = 0, /**< the parent's (asyncio's None) */
    WF_STDIO_PIPE = 1,    /**< a pipe (a socket pair) to a wf_stream_t of the parent */
    WF_STDIO_DEVNULL = 2, /**< /dev/null */
    WF_STDIO_FD = 3,      /**< the parent's fd given in the matching *_fd field */
    WF_STDIO_STDOUT = 4,  /**< stderr only: wherever stdout goes */
} wf_stdio_t;

/** Options of wf_process_spawn(). Start from WF_PROCESS_OPTS_INIT. */
typedef struct wf_process_opts {
    wf_stdio_t stdin_mode, stdout_mode, stderr_mode;
    int stdin_fd, stdout_fd, stderr_fd; /**< for WF_STDIO_FD: dup'ed in the child */
    /** The child's environment ("NAME=value" strings, NULL-terminated), or
     * NULL for the parent's. The program is still looked up on the
     * parent's PATH. */
    char *const *envp;
    /** The child's working directory, or NULL for the parent's. */
    const char *cwd;
    /** Run the child in a session (and process group) of its own, as
     * setsid(2) (asyncio's start_new_session). */
    bool new_session;
} wf_process_opts_t;

#define WF_PROCESS_OPTS_INIT                                                                                 \
    {                                                                                                        \
        WF_STDIO_INHERIT, WF_STDIO_INHERIT, WF_STDIO_INHERIT, -1, -1, -1, NULL, NULL, false                  \
    }

/** Start @p file with the arguments @p argv (asyncio.create_subprocess_exec).
 * @param file  the program: a path, or a name looked up on PATH when it
 *              contains no '/' (execvp).
 * @param argv  the arguments, argv[0] first (conventionally the program's
 *              name), NULL-terminated; NULL for just { file, NULL }.
 * @param opts  NULL: inherit stdin, stdout and stderr, the environment and
 *              the working directory.
 * @return 0 with *out; -EINVAL for NULL @p out or @p file, an empty
 *   @p file, a mode out of range, WF_STDIO_STDOUT for stdin or stdout, or
 *   WF_STDIO_FD with a negative fd; -ENOENT (no such program, or no such
 *   @p cwd), -EACCES, -ENOEXEC, -E2BIG, -ENOTDIR and the other errors of
 *   exec; -EMFILE, -ENFILE (the pipes); -ENOMEM; -EAGAIN (too many
 *   processes); -EPERM not a fiber. On failure nothing is left behind.
 * Fiber only; holds the worker until the child has called exec. */
int wf_process_spawn(wf_process_t **out, const char *file, char *const argv[], const wf_process_opts_t *opts);

/** The child's pid (for logs; signal it with wf_process_signal()).
 * @return the pid; -EINVAL for NULL. */
pid_t wf_process_pid(const wf_process_t *p);

/** The parent's end of the child's stdin, stdout or stderr pipe: NULL when
 * that stream is not WF_STDIO_PIPE (or stdin has been closed), or for NULL
 * @p p. The process owns the streams. */
wf_stream_t *wf_process_stdin(wf_process_t *p);
wf_stream_t *wf_process_stdout(wf_process_t *p);
wf_stream_t *wf_process_stderr(wf_process_t *p);

/** Flush what was written to the child's stdin (until @p deadline) and
 * close it: the child reads end of file (asyncio's stdin.close()).
 * @return as wf_stream_close() (the stream is gone either way); -EINVAL
 *   for NULL; -EBADF if stdin is not a pipe or was closed already.
 * Fiber only when something is queued (it parks). */
int wf_process_close_stdin(wf_process_t *p, int64_t deadline);

/** Wait for the child to exit (asyncio's proc.wait()) and reap it.
 * @param status  if not NULL, receives the exit status (see the top).
 * @return 0 once the child has exited (at once if it had been waited for
 *   already); -ETIMEDOUT, -ECANCELED (the child runs on; wait again or
 *   kill it); -EBUSY if another fiber waits for it; -EINVAL for NULL
 *   @p p or a bad deadline; -EPERM not a fiber.
 * Fiber only; parks. */
int wf_process_wait(wf_process_t *p, int64_t deadline, int *status);

/** The exit status if the child has been reaped (asyncio's returncode).
 * @return 0 with *status; -EAGAIN while it has not been reaped (still
 *   running, or not waited for yet); -EINVAL for NULL arguments. Never
 *   blocks; any thread. */
int wf_process_returncode(const wf_process_t *p, int *status);

/** Send signal @p signo to the child (proc.send_signal()).
 * @return 0; -ESRCH if the child has exited already; -EINVAL for NULL
 *   @p p or a bad signal number; kill(2)'s other errors. Never blocks; any
 *   thread. */
int wf_process_signal(wf_process_t *p, int signo);

/** wf_process_signal(p, SIGTERM) (proc.terminate()). */
int wf_process_terminate(wf_process_t *p);

/** wf_process_signal(p, SIGKILL) (proc.kill()). */
int wf_process_kill(wf_process_t *p);

/** Release the process: its pipes are closed (whatever is queued for stdin
 * is dropped); a child that is still running is killed with SIGKILL and
 * reaped by a pool thread (wf_run() waits for that before it returns), so
 * no zombie is left. Wait for the child first to let it finish.
 * @return 0; -EINVAL for NULL; -EBUSY while a fiber waits for it (nothing
 *   is done); -EPERM not a fiber. Never parks. */
int wf_process_close(wf_process_t *p);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
