/* sleep.c - sleeping: a park with a deadline and no wait list, so only the
 * timer or a cancellation can end it. */
#include "park.h"
#include "runtime.h"

#include <errno.h>
#include <weft/task.h>
#include <weft/time.h>

int wf_sleep_until(int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (deadline < 0)
        return -EINVAL;
    uint64_t seq = wf__park_begin(self, 0);
    unsigned r = wf__park_commit(self, seq, deadline);
    /* Reaching its own deadline is how a sleep succeeds; a timeout scope
     * expiring first is -ETIMEDOUT. */
    return r == WF__R_TIMEDOUT ? 0 : wf__park_errno(r);
}

int wf_sleep(int64_t ns)
{
    if (ns <= 0)
        return wf_yield();
    if (!wf__current())
        return -EPERM;
    return wf_sleep_until(wf_deadline_in(ns));
}
