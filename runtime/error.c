/* error.c - error strings, and the abort for broken invariants. */
#include "atomic.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/core.h>

const char *wf_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return "success";
    case ECANCELED:
        return "operation cancelled: the task was cancelled";
    case ETIMEDOUT:
        return "deadline passed before the operation completed";
    case EINVAL:
        return "invalid argument, or a task handle that is no longer live";
    case EPERM:
        return "not allowed from this context (needs a weft fiber or runtime thread)";
    case EDEADLK:
        return "a task cannot wait for itself";
    case EALREADY:
        return "already done: nothing left to cancel";
    case EAGAIN:
        return "not ready yet, or resource temporarily unavailable";
    case ENOMEM:
        return "out of memory";
    case EBUSY:
        return "busy: already in use or already waited on";
    case EBADF:
        return "bad file descriptor, or it was closed while waiting";
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
