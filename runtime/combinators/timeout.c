/* timeout.c - timeout scopes (asyncio.timeout / timeout_at).
 *
 * The park mechanism does the work: task->scope_deadline caps every
 * cancellable wait of the task, and a wait cut by it returns -ETIMEDOUT
 * (park.h, WF__R_EXPIRED). This file only keeps that cap equal to the
 * earliest deadline of the scopes the task is in.
 *
 * Each task has a stack of scopes, innermost first, linked through `outer`
 * from task->scope. The records live in the callers' wf_timeout_t storage
 * (on their fibers' stacks), so the stack needs no allocation; only the
 * owning task reads or writes it (scope_deadline is read by its own
 * commits), so it needs no lock. After every change the cap is recomputed
 * from the whole stack: scopes rarely nest more than a few deep.
 *
 * A cleanup scope (wf_cleanup_enter) is a timeout scope that also shields:
 * while one is open, the task's waits hold off cancellation (park.h,
 * SHIELD: the canceller's CAS loses, the request stays pending and shows
 * at the first wait after the scope is left), and the cap stops at it:
 * the deadlines of the scopes around it, perhaps long past, do not cut
 * the cleanup short; its own deadline, which is required, does. Trio's
 * CancelScope(shield=True) with move_on_after, in one call.
 *
 * Leaving out of order is refused (-EBUSY) rather than repaired: an outer
 * scope's storage may be about to go away with its frame while inner
 * scopes still point to it, and silently unlinking it would leave the
 * inner scopes' code running without the deadline it asked for.
 */
#include "combo.h"

#define SCOPE_OPEN 0x746f7574u /* "tout" */
#define SCOPE_LEFT 0x6c656674u /* "left" */

typedef struct scope {
    /* magic and owner are atomics (relaxed) only so that another task
     * handing us its scope by mistake reads them without a data race and
     * gets -EINVAL; everything else is touched by the owner alone. */
    _Atomic uint32_t magic;
    uint16_t expired; /* sticky once seen */
    uint16_t shield;  /* a cleanup scope */
    _Atomic(wf__task *) owner;
    struct scope *outer;
    int64_t deadline; /* INT64_MAX: none */
} scope;

_Static_assert(sizeof(scope) <= sizeof(wf_timeout_t), "wf_timeout_t storage too small");
_Static_assert(_Alignof(scope) <= _Alignof(wf_timeout_t), "wf_timeout_t alignment");

static void recompute(wf__task *self)
{
    int64_t cap = INT64_MAX;
    uint32_t shields = 0;
    for (scope *s = self->scope; s; s = s->outer) {
        if (!shields && s->deadline < cap)
            cap = s->deadline; /* scopes outside a cleanup scope: no cap */
        if (s->shield)
            shields++;
    }
    self->scope_deadline = cap;
    self->shield = shields;
}

/* `tm` if it is one of self's open scopes, else NULL. */
static scope *find(wf__task *self, const wf_timeout_t *tm)
{
    for (scope *s = self->scope; s; s = s->outer)
        if ((const void *)s == (const void *)tm)
            return s;
    return NULL;
}

static bool past(const scope *s)
{
    return s->deadline != INT64_MAX && s->deadline <= wf_now();
}

void wf__timeout_unwind(wf__task *self, void *to)
{
    /* The scopes above `to` are in frames that are gone: not read. */
    self->scope = to;
    recompute(self);
}

static int enter(wf_timeout_t *tm, int64_t deadline, bool shield)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!tm || deadline < WF_FOREVER || (shield && deadline == WF_FOREVER))
        return -EINVAL;
    if (find(self, tm))
        return -EBUSY;
    scope *s = (scope *)(void *)tm;
    atomic_store_explicit(&s->magic, SCOPE_OPEN, memory_order_relaxed);
    s->expired = 0;
    s->shield = shield;
    atomic_store_explicit(&s->owner, self, memory_order_relaxed);
    s->outer = self->scope;
    s->deadline = deadline == WF_FOREVER ? INT64_MAX : deadline;
    self->scope = s;
    if (shield) {
        self->scope_deadline = s->deadline;
        self->shield++;
    } else if (s->deadline < self->scope_deadline) {
        self->scope_deadline = s->deadline;
    }
    return 0;
}

int wf_timeout_enter(wf_timeout_t *tm, int64_t deadline)
{
    return enter(tm, deadline, false);
}

int wf_timeout_enter_in(wf_timeout_t *tm, int64_t ns)
{
    return wf_timeout_enter(tm, ns < 0 ? WF_FOREVER : wf_deadline_in(ns));
}

int wf_cleanup_enter(wf_timeout_t *tm, int64_t deadline)
{
    return enter(tm, deadline, true);
}

int wf_cleanup_enter_in(wf_timeout_t *tm, int64_t ns)
{
    return enter(tm, ns < 0 ? WF_FOREVER : wf_deadline_in(ns), true);
}

int wf_timeout_leave(wf_timeout_t *tm)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!tm)
        return -EINVAL;
    scope *s = find(self, tm);
    if (!s)
        return -EINVAL;
    if (s != self->scope)
        return -EBUSY;
    if (past(s))
        s->expired = 1;
    self->scope = s->outer;
    recompute(self);
    atomic_store_explicit(&s->magic, SCOPE_LEFT, memory_order_relaxed);
    s->outer = NULL;
    return (int)s->expired;
}

int wf_timeout_reschedule(wf_timeout_t *tm, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!tm || deadline < WF_FOREVER)
        return -EINVAL;
    scope *s = find(self, tm);
    if (!s || (s->shield && deadline == WF_FOREVER))
        return -EINVAL; /* a cleanup scope keeps a bound */
    if (s->expired || past(s)) {
        s->expired = 1;
        return -EALREADY;
    }
    s->deadline = deadline == WF_FOREVER ? INT64_MAX : deadline;
    recompute(self);
    return 0;
}

/* An open scope of the caller, or one the caller has left. */
static scope *readable(wf__task *self, const wf_timeout_t *tm)
{
    if (!tm)
        return NULL;
    scope *s = find(self, tm);
    if (s)
        return s;
    s = (scope *)(void *)tm;
    if (atomic_load_explicit(&s->magic, memory_order_relaxed) != SCOPE_LEFT ||
        atomic_load_explicit(&s->owner, memory_order_relaxed) != self)
        return NULL;
    return s;
}

int wf_timeout_when(const wf_timeout_t *tm, int64_t *deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    const scope *s = readable(self, tm);
    if (!s || !deadline)
        return -EINVAL;
    *deadline = s->deadline == INT64_MAX ? WF_FOREVER : s->deadline;
    return 0;
}

int wf_timeout_expired(const wf_timeout_t *tm)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    scope *s = readable(self, tm);
    if (!s)
        return -EINVAL;
    if (atomic_load_explicit(&s->magic, memory_order_relaxed) == SCOPE_OPEN && !s->expired && past(s))
        s->expired = 1; /* sticky */
    return (int)s->expired;
}
