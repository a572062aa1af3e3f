/* weft/time.h - the clock, sleeping, deadlines and callback timers. */
#ifndef WEFT_TIME_H
#define WEFT_TIME_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup time Time
 * @{ */

#define WF_NSEC_PER_USEC 1000LL
#define WF_NSEC_PER_MSEC 1000000LL
#define WF_NSEC_PER_SEC 1000000000LL

/** The monotonic clock, in nanoseconds (loop.time(), in ns). Callable from
 * any thread, never blocks. */
int64_t wf_now(void);

/** The deadline @p ns nanoseconds from now, saturating; a negative @p ns
 * gives WF_FOREVER. Callable from any thread. */
int64_t wf_deadline_in(int64_t ns);

/** Sleep for @p ns nanoseconds (asyncio.sleep). A zero or negative @p ns
 * yields once.
 * @return 0 after the time has passed; -ECANCELED if the task is cancelled
 * (then it may return early); -EPERM outside a fiber. Fiber only. */
int wf_sleep(int64_t ns);

/** Sleep until the absolute @p deadline on the wf_now() clock.
 * @return 0; -ECANCELED; -EINVAL for WF_FOREVER or another negative
 * deadline (use a wait that can be woken instead); -EPERM outside a fiber. */
int wf_sleep_until(int64_t deadline);

/** A callback timer (loop.call_at / call_later). The caller owns the
 * storage, which must stay valid while the timer is armed. Zero-initialise
 * it (WF_TIMER_INIT) or start it before the first wf_timer_cancel(). Once
 * the main task has returned and every task has ended (wf_run's shutdown),
 * callbacks no longer fire: timers still armed then are disarmed without
 * firing. A callback that fires during the shutdown, while tasks still
 * run, may spawn: the new task starts cancelled (its drop runs) and the
 * shutdown waits for it. */
typedef struct wf_timer {
    WF_ALIGNAS(16) unsigned char opaque[64];
} wf_timer_t;

#define WF_TIMER_INIT {{0}}

/** A timer callback. It runs once, on a worker thread or on the poller
 * thread, outside any fiber: it must not block, but may spawn tasks, cancel
 * tasks, and start or cancel timers (including its own storage). It must
 * also be short (microseconds): while it runs, the thread that fired it
 * does nothing else. On a worker that delays that worker's tasks; on the
 * poller (which fires the timers of sleeping workers) it delays the other
 * timers that fall due and, while every worker sleeps, the readiness
 * events the poller would hand them (a 10 ms callback is 10 ms of I/O
 * latency then). Work that takes longer belongs in a task: spawn one. */
typedef void (*wf_timer_fn)(void *arg);

/** Arm @p tm to call @p fn(@p arg) at @p deadline (loop.call_at). A
 * deadline already past fires at the next timer check, soon after.
 * @return 0; -EINVAL for NULL @p tm / @p fn or a negative deadline;
 * -EBUSY if @p tm is already armed; -EPERM outside a runtime thread.
 * Never blocks. */
int wf_timer_start(wf_timer_t *tm, int64_t deadline, wf_timer_fn fn, void *arg);

/** Disarm @p tm (TimerHandle.cancel()).
 * @return 0 when the timer was disarmed before its callback started;
 * -EALREADY when it was not armed (never started, already cancelled, or
 * already fired: its callback may still be running on another thread, and
 * is not waited for); -EINVAL for NULL. Once a timer's callback has started,
 * the runtime never touches its storage again, so the storage may be reused
 * or freed right after this returns, or from inside the callback.
 * Callable from any runtime thread, including from the timer's own callback.
 * Never blocks. */
int wf_timer_cancel(wf_timer_t *tm);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
