/* wheel.c - the hierarchical timing wheel; see wheel.h for the scheme.
 *
 * Invariant (checked in debug builds): a node at level L sits in a slot at or
 * after the wheel's current position at that level, and shares every higher
 * digit with the wheel's time. It holds because the wheel's time only ever
 * advances to the start of the earliest occupied slot, so no occupied slot
 * is ever skipped.
 */
#include "wheel.h"
#include "atomic.h"

#define DIGIT_BITS 6
#define DIGIT_MASK ((uint64_t)WF__WHEEL_SLOTS - 1)

static inline uint64_t ticks_of(int64_t ns)
{
    return ns <= 0 ? 0 : (uint64_t)ns >> WF__WHEEL_SHIFT;
}

/* The level whose digit is the highest one in which `when` differs from
 * `elapsed`: timers due within the current level-0 span go to level 0. */
static inline unsigned level_for(uint64_t elapsed, uint64_t when)
{
    uint64_t masked = (elapsed ^ when) | DIGIT_MASK;
    unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
    return significant / DIGIT_BITS;
}

static inline unsigned slot_for(uint64_t when, unsigned level)
{
    return (unsigned)((when >> (level * DIGIT_BITS)) & DIGIT_MASK);
}

void wf__wheel_init(wf__wheel *wh, int64_t now)
{
    wh->elapsed = ticks_of(now);
    wh->count = 0;
    for (unsigned l = 0; l < WF__WHEEL_LEVELS; l++) {
        wh->occupied[l] = 0;
        for (unsigned s = 0; s < WF__WHEEL_SLOTS; s++)
            wf__list_init(&wh->slots[l][s]);
    }
}

static void place(wf__wheel *wh, wf__wheel_node *n)
{
    uint64_t when = ticks_of(n->deadline);
    if (when < wh->elapsed)
        when = wh->elapsed; /* already due: the current slot */
    unsigned level = level_for(wh->elapsed, when);
    unsigned slot = slot_for(when, level);
    n->level = (uint8_t)level;
    n->slot = (uint8_t)slot;
    wf__list_push_back(&wh->slots[level][slot], &n->link);
    wh->occupied[level] |= 1ull << slot;
    wh->count++;
}

void wf__wheel_insert(wf__wheel *wh, wf__wheel_node *n, int64_t deadline, int64_t now)
{
    if (wh->count == 0) {
        /* An empty wheel may have stood still for a long time; catching its
         * clock up keeps new timers at low levels (fewer cascades). */
        uint64_t t = ticks_of(now);
        if (t > wh->elapsed)
            wh->elapsed = t;
    }
    n->deadline = deadline;
    place(wh, n);
}

void wf__wheel_remove(wf__wheel *wh, wf__wheel_node *n)
{
    wf__link *head = &wh->slots[n->level][n->slot];
    wf__list_unlink(&n->link);
    if (wf__list_empty(head))
        wh->occupied[n->level] &= ~(1ull << n->slot);
    wh->count--;
}

/* The earliest occupied slot: its level, index and start (in ticks). Ties go
 * to the higher level, which must cascade before the lower one fires. */
static bool earliest_slot(const wf__wheel *wh, unsigned *level, unsigned *slot, uint64_t *start)
{
    bool found = false;
    uint64_t best = UINT64_MAX;
    for (unsigned l = 0; l < WF__WHEEL_LEVELS; l++) {
        uint64_t occ = wh->occupied[l];
        if (!occ)
            continue;
        unsigned pos = slot_for(wh->elapsed, l);
        uint64_t ahead = occ & (~0ull << pos);
        if (WF_DEBUG)
            wf__assert(ahead == occ, "timer wheel: occupied slot behind the wheel's time");
        unsigned s = (unsigned)__builtin_ctzll(ahead);
        unsigned span_bits = (l + 1) * DIGIT_BITS;
        uint64_t base = span_bits >= 64 ? 0 : wh->elapsed & ~((1ull << span_bits) - 1);
        uint64_t st = base | ((uint64_t)s << (l * DIGIT_BITS));
        if (st <= best) {
            best = st;
            *level = l;
            *slot = s;
            found = true;
        }
    }
    *start = best;
    return found;
}

uint64_t wf__wheel_expire(wf__wheel *wh, int64_t now, wf__link *due)
{
    uint64_t now_t = ticks_of(now), moved = 0;
    unsigned level, slot;
    uint64_t start;
    /* A caller's `now` may lag the wheel's clock (another thread armed a
     * timer with a later clock reading): the current slot must still be
     * looked at, with the exact deadline test against `now` below. */
    if (now_t < wh->elapsed)
        now_t = wh->elapsed;

    while (wh->count && earliest_slot(wh, &level, &slot, &start) && start <= now_t) {
        wf__link *head = &wh->slots[level][slot];
        if (start > wh->elapsed)
            wh->elapsed = start;
        if (level > 0) {
            /* Cascade: every node of this slot sinks to a finer level. */
            wf__link tmp;
            wf__list_init(&tmp);
            wf__list_splice_back(&tmp, head);
            wh->occupied[level] &= ~(1ull << slot);
            wf__link *l;
            while ((l = wf__list_pop_front(&tmp)) != NULL) {
                wh->count--;
                place(wh, wf__container_of(l, wf__wheel_node, link));
            }
            continue;
        }
        if (start < now_t) {
            /* A whole level-0 slot before now's: everything in it is due. */
            for (wf__link *l = head->next; l != head; l = l->next)
                moved++, wh->count--;
            wf__list_splice_back(due, head);
            wh->occupied[0] &= ~(1ull << slot);
            continue;
        }
        /* The slot holding now: fire only what is due. */
        for (wf__link *l = head->next, *nx; l != head; l = nx) {
            nx = l->next;
            wf__wheel_node *n = wf__container_of(l, wf__wheel_node, link);
            if (n->deadline <= now) {
                wf__list_unlink(l);
                wf__list_push_back(due, l);
                wh->count--;
                moved++;
            }
        }
        if (wf__list_empty(head))
            wh->occupied[0] &= ~(1ull << slot);
        break;
    }
    if (wh->count == 0 && now_t > wh->elapsed)
        wh->elapsed = now_t;
    return moved;
}

int64_t wf__wheel_next(const wf__wheel *wh)
{
    unsigned level, slot;
    uint64_t start;
    if (!wh->count || !earliest_slot(wh, &level, &slot, &start))
        return INT64_MAX;
    if (level == 0 && start == wh->elapsed) {
        /* The current slot may hold timers that are not due yet: find the
         * exact earliest, or the caller would wake again and again early. */
        int64_t best = INT64_MAX;
        const wf__link *head = &wh->slots[0][slot];
        for (const wf__link *l = head->next; l != head; l = l->next) {
            const wf__wheel_node *n = wf__container_of(l, wf__wheel_node, link);
            if (n->deadline < best)
                best = n->deadline;
        }
        return best;
    }
    if (start > (uint64_t)INT64_MAX >> WF__WHEEL_SHIFT)
        return INT64_MAX;
    return (int64_t)(start << WF__WHEEL_SHIFT);
}
