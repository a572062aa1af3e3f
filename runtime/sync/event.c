/* event.c - the event (asyncio.Event): a flag and the tasks waiting for it.
 *
 * set() raises the flag and decides every waiter WOKEN under the lock, so a
 * waiter woken by a set succeeds even if clear() runs before it does (as in
 * asyncio, where set() resolves the waiters' futures). Because set() may be
 * called from outside any fiber (a timer callback, a foreign thread), it
 * hands the woken tasks to wf__ready_batch, which picks the right queue for
 * the calling context.
 */
#include "wait.h"

#include <weft/sync.h>

typedef struct wf__event {
    uint32_t dead;
    wf__spinlock sl;
    uint32_t set;
    uint32_t nwait;
    wf__link waiters;
} wf__event;

_Static_assert(sizeof(wf__event) <= sizeof(wf_event_t), "wf_event_t storage too small");
_Static_assert(_Alignof(wf__event) <= _Alignof(wf_event_t), "wf_event_t alignment");

static inline wf__event *ev_of(wf_event_t *e)
{
    return (wf__event *)(void *)e->opaque;
}

int wf_event_init(wf_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    wf__event *e = ev_of(ev);
    e->dead = 0;
    wf__spin_init(&e->sl);
    e->set = 0;
    e->nwait = 0;
    wf__list_init(&e->waiters);
    return 0;
}

int wf_event_destroy(wf_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    wf__event *e = ev_of(ev);
    wf__spin_lock(&e->sl);
    int r = 0;
    if (e->dead == WF__SYNC_DEAD)
        r = -EINVAL;
    else if (e->nwait)
        r = -EBUSY;
    else
        e->dead = WF__SYNC_DEAD;
    wf__spin_unlock(&e->sl);
    return r;
}

int wf_event_set(wf_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    wf__event *e = ev_of(ev);
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&e->sl);
    if (e->dead == WF__SYNC_DEAD) {
        wf__spin_unlock(&e->sl);
        return -EINVAL;
    }
    e->set = 1;
    unsigned n = e->nwait ? wf__sync_wake_all(&e->waiters, &e->nwait, NULL, &b) : 0;
    wf__spin_unlock(&e->sl);
    wf__sync_ready_batch(&b);
    return (int)n;
}

int wf_event_clear(wf_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    wf__event *e = ev_of(ev);
    wf__spin_lock(&e->sl);
    int r = 0;
    if (e->dead == WF__SYNC_DEAD)
        r = -EINVAL;
    else
        e->set = 0;
    wf__spin_unlock(&e->sl);
    return r;
}

int wf_event_is_set(wf_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    wf__event *e = ev_of(ev);
    wf__spin_lock(&e->sl);
    int r = e->dead == WF__SYNC_DEAD ? -EINVAL : (int)e->set;
    wf__spin_unlock(&e->sl);
    return r;
}

int wf_event_wait_until(wf_event_t *ev, int64_t deadline)
{
    if (!ev || !wf__sync_deadline_ok(deadline))
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf__event *e = ev_of(ev);
    wf__spin_lock(&e->sl);
    if (e->dead == WF__SYNC_DEAD) {
        wf__spin_unlock(&e->sl);
        return -EINVAL;
    }
    if (e->set) {
        wf__spin_unlock(&e->sl);
        return 0;
    }
    wf__sync_list_ready(&e->waiters);
    wf__waitnode node;
    node.data = NULL;
    unsigned r = wf__sync_wait(&e->sl, &e->waiters, &e->nwait, &node, self, deadline, 0);
    if (r == WF__R_WOKEN)
        return 0;
    /* Timed out; but if the flag went up meanwhile, it wins (as wf_join). */
    bool set = r == WF__R_TIMEDOUT && e->set;
    wf__spin_unlock(&e->sl);
    return set ? 0 : wf__park_errno(r);
}

int wf_event_wait(wf_event_t *ev)
{
    return wf_event_wait_until(ev, WF_FOREVER);
}
