/* clock.c - the monotonic clock. CLOCK_MONOTONIC through the vDSO costs
 * about 25 ns here, which is why the scheduler reads it only every few
 * ticks (sched.c). */
#include <time.h>
#include <weft/time.h>

int64_t wf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WF_NSEC_PER_SEC + ts.tv_nsec;
}

int64_t wf_deadline_in(int64_t ns)
{
    if (ns < 0)
        return WF_FOREVER;
    int64_t now = wf_now();
    return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}
