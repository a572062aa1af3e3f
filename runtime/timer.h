/* timer.h - the timer service: one wheel per worker, its lock, and firing.
 *
 * Two kinds of timer live in the wheels:
 *  - park timers, on the parked fiber's own stack (in wf__park_commit's
 *    frame, which outlives the wait): the deadline of the task's current
 *    wait. Firing one decides that wait as TIMEDOUT
 *    (park.h) while the wheel's lock is held, so that a task which wakes for
 *    another reason and disarms its timer (which takes the same lock) knows,
 *    once the disarm returns, that nobody touches the timer or the task
 *    through it any more.
 *  - callback timers (wf_timer_t, loop.call_at): user storage; firing copies
 *    the callback and its argument out under the lock and calls them after
 *    unlocking, and never touches the storage again, so a callback may free
 *    or re-arm its own timer.
 *
 * Who fires: the owning worker (every few scheduling ticks and whenever it
 * runs out of work), any worker that is out of work (it looks at every
 * wheel before it parks), peers every 61 ticks for an overdue neighbour, and
 * the poller thread, which sleeps until the earliest deadline whenever some
 * worker is parked. So a worker stuck in one long fiber delays the timers in
 * its wheel only until another thread looks.
 */
#ifndef WF_TIMER_H
#define WF_TIMER_H

#include "atomic.h"
#include "spinlock.h"
#include "wheel.h"
#include <weft/time.h>

struct wf__task;
struct wf__runtime;
struct wf__batch;
struct wf__timers;

enum { WF__TIMER_IDLE = 0, WF__TIMER_PARK = 1, WF__TIMER_CALLBACK = 2 };

struct wf__timer {
    wf__wheel_node node;
    /* The wheel this timer is armed in, or NULL. Written under that wheel's
     * lock; read without it (acquire) to find which lock to take. A park
     * timer's firer stores NULL last, with release, so a reader that sees
     * NULL knows the firer is done with the timer and its task. */
    _Atomic(struct wf__timers *) home;
    uint8_t kind;
    union {
        uint64_t seq; /* park: the wait this timer belongs to */
        wf_timer_fn fn;
    } u;
    void *arg; /* callback: its argument; park: the task */
};

_Static_assert(sizeof(struct wf__timer) <= sizeof(wf_timer_t), "wf_timer_t storage too small");
_Static_assert(_Alignof(struct wf__timer) <= _Alignof(wf_timer_t), "wf_timer_t alignment");

typedef struct wf__timers {
    wf__spinlock lock;
    /* Lower bound on the earliest deadline here (INT64_MAX: none). Written
     * under the lock, read lock-free by the poller and by peers deciding
     * whether to look: a stale value only makes someone look early. */
    WF_ALIGNED_CL _Atomic int64_t next;
    struct wf__runtime *rt;
    wf__wheel wheel;
} wf__timers;

void wf__timers_init(wf__timers *ts, struct wf__runtime *rt, int64_t now);

/* Arm `tm` as the park timer of task `t` for wait `seq`. */
void wf__timer_arm_park(wf__timers *ts, struct wf__timer *tm, struct wf__task *t, uint64_t seq,
                        int64_t deadline, int64_t now);

/* Disarm a park timer if still armed. On return nobody is touching the
 * timer or deciding through it. Cheap when the timer already fired. */
void wf__timer_disarm_park(struct wf__timer *tm);

/* Fire every due timer of `ts`. Tasks whose waits were decided while parked
 * are appended to `woken` for the caller to make runnable (the caller's
 * context knows where they should go). Callback timers run before return.
 * Returns the number of timers fired. */
unsigned wf__timers_run(wf__timers *ts, int64_t now, struct wf__batch *woken);

/* The runtime is ending: disarm every timer still in `ts` without firing
 * it, so its storage no longer refers to the runtime. */
void wf__timers_shutdown(wf__timers *ts);

/* The published lower bound of ts's earliest deadline. */
static inline int64_t wf__timers_next(wf__timers *ts)
{
    /* relaxed: only a hint; the lock orders the real data. */
    return atomic_load_explicit(&ts->next, memory_order_relaxed);
}

#endif
