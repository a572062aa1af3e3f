/* error.c - error strings, and the abort for broken invariants. */
#include "atomic.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/core.h>

/* Each string is true for every weft function that returns the code (the
 * headers say which do, and when). A task's status may also come from a
 * failed system call, so where the C library uses a code for more than weft
 * does (EAGAIN, EPIPE, EINPROGRESS), the string says that too. */
const char *wf_strerror(int err)
{
    if (err < 0)
        err = err == INT_MIN ? INT_MAX : -err; /* -INT_MIN overflows */
    switch (err) {
    case 0:
        return "success";
    case ECANCELED:
        return "cancelled: the task was cancelled, or what it worked on was called off "
               "(a cancelled future, a generator being closed)";
    case ETIMEDOUT:
        return "the deadline (or an enclosing timeout scope's) passed before the operation completed";
    case EINVAL:
        return "invalid argument (NULL, out of range, a bad deadline, a destroyed object, a dead or "
               "already given-back task handle, or more task_done calls than items)";
    case EPERM:
        return "not permitted for this caller: the wrong context for the call (it needs a weft fiber, "
               "a runtime thread, or a thread outside the runtime), or it does not hold what it "
               "releases or uses";
    case EDEADLK:
        return "would deadlock: a task waiting for itself (joining itself, re-acquiring a lock it "
               "holds, driving its own generator), or wf_run called from inside a runtime";
    case EALREADY:
        return "already done: the task has ended, the timer is not armed (it fired or was "
               "cancelled), the future is complete, or the timeout scope has expired";
    case EAGAIN:
        return "not ready: the call would have to wait, or a resource (such as a thread) is "
               "temporarily unavailable";
    case ENOMEM:
        return "out of memory (or of memory mappings)";
    case EBUSY:
        return "busy: in use (held, waited on, driven by another task, armed or already entered), "
               "or an inner timeout scope is still open";
    case EBADF:
        return "bad file descriptor: negative, not open or out of range, forgotten or closed "
               "(wf_fd_forget, wf_fd_close) while a task waited on it, or a socket closed "
               "(wf_sock_close) before or during the call";
    case EOPNOTSUPP:
        return "operation not supported (e.g. an fd epoll cannot wait on, such as a regular file)";
    case EOVERFLOW:
        return "count at its limit: a bounded semaphore released above its initial value, a "
               "semaphore at its maximum, or too many handles to one task or references to one "
               "socket";
    case EXDEV:
        return "the object belongs to another weft runtime";
    case ESHUTDOWN:
        return "shut down: the queue, task group or runtime no longer takes this";
    case EPIPE:
        return "broken: the barrier is broken, the generator was closed (nothing was delivered), "
               "or the pipe or socket's other end is gone";
    case EINPROGRESS:
        return "still in progress: the task had not ended when the call returned (or a "
               "non-blocking connect is under way)";
    case ERANGE:
        return "result out of range (e.g. a generator body returned a positive status)";
    default: {
        const char *s = strerrordesc_np(err);
        return s ? s : "unknown error";
    }
    }
}

void wf__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("weft: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
