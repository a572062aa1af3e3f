/* test_wheel.c - white-box tests of the hierarchical timing wheel
 * (runtime/wheel.c), driven directly: no runtime, no threads.
 *
 * The core is a randomised differential test against a reference model (an
 * array of records, each with its deadline and whether it is armed). Timers
 * are armed at every scale (the same nanosecond, the same slot, slot and
 * level boundaries, microseconds to days, near INT64_MAX/2, already past,
 * negative), removed at random, and "now" moves by tiny steps, slot-sized
 * steps, huge jumps and to the wheel's own next(). After every expire:
 *   - exactly the armed timers with deadline <= now came back, each once;
 *   - removed or already fired timers never came back;
 *   - next() is INT64_MAX iff the wheel is empty, a lower bound of the
 *     earliest armed deadline otherwise, later than now (so a poller that
 *     sleeps until next() never spins), and equal to the earliest deadline
 *     when that timer is in the wheel's current level-0 slot;
 *   - the wheel's internals agree with the model (count, occupancy masks,
 *     each node's level and slot, the invariant stated in wheel.c).
 * A poller-style drain (now = next() over and over) checks that every wakeup
 * fires something or moves next() strictly later, and that at most one
 * wakeup per level passes before the earliest timer fires.
 */
#include "common.h"
#include "wheel.h"

#include <time.h>

#define SLOT_NS ((int64_t)1 << WF__WHEEL_SHIFT)
#define US 1000ll
#define MS 1000000ll
#define SEC 1000000000ll
#define HOUR (3600 * SEC)
#define DAY (24 * HOUR)
#define MAX_DEADLINE (INT64_MAX - 1)

/* Where the current check is, printed with any failure. */
static char where[160];

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE(%s) failed [%s]: ", __FILE__, __LINE__, #cond, where); \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* The wheel's tick of a time (mirrors wheel.c). */
static uint64_t ticks(int64_t ns)
{
    return ns <= 0 ? 0 : (uint64_t)ns >> WF__WHEEL_SHIFT;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > MAX_DEADLINE - b)
        return MAX_DEADLINE;
    if (b < 0 && a < INT64_MIN / 2 - b)
        return INT64_MIN / 2;
    return a + b;
}

static uint64_t rnd(uint64_t *s, uint64_t bound) /* [0, bound) */
{
    return bound ? test_rand(s) % bound : 0;
}

/* --- the reference model ------------------------------------------------- */

typedef struct rec {
    wf__wheel_node node;
    int64_t deadline; /* the model's copy */
    int32_t pos;      /* index in model.armed, or -1 */
    uint32_t fires;   /* how many times it came back from expire */
} rec;

typedef struct model {
    wf__wheel *wh;
    rec *recs;
    uint32_t n;
    uint32_t *armed; /* ids of the armed records, unordered */
    uint32_t narmed;
    int64_t now; /* the latest time handed to the wheel; never moves back */
    uint64_t fired;
} model;

static void model_init(model *m, uint32_t n, int64_t now)
{
    m->wh = malloc(sizeof *m->wh);
    m->recs = calloc(n, sizeof *m->recs);
    m->armed = calloc(n, sizeof *m->armed);
    assert_non_null(m->wh);
    assert_non_null(m->recs);
    assert_non_null(m->armed);
    m->n = n;
    m->narmed = 0;
    m->now = now;
    m->fired = 0;
    for (uint32_t i = 0; i < n; i++)
        m->recs[i].pos = -1;
    wf__wheel_init(m->wh, now);
}

static void model_free(model *m)
{
    free(m->wh);
    free(m->recs);
    free(m->armed);
}

static void model_forget(model *m, uint32_t id) /* drop from the armed set */
{
    rec *r = &m->recs[id];
    REQUIRE(r->pos >= 0, "record %u is not armed", id);
    uint32_t last = m->armed[--m->narmed];
    m->armed[r->pos] = last;
    m->recs[last].pos = r->pos;
    r->pos = -1;
}

static void arm(model *m, uint32_t id, int64_t deadline, int64_t insert_now)
{
    rec *r = &m->recs[id];
    REQUIRE(r->pos < 0, "record %u armed twice", id);
    r->deadline = deadline;
    r->pos = (int32_t)m->narmed;
    m->armed[m->narmed++] = id;
    wf__wheel_insert(m->wh, &r->node, deadline, insert_now);
}

static void disarm(model *m, uint32_t id)
{
    wf__wheel_remove(m->wh, &m->recs[id].node);
    model_forget(m, id);
}

static int64_t earliest(const model *m)
{
    int64_t best = INT64_MAX;
    for (uint32_t i = 0; i < m->narmed; i++)
        if (m->recs[m->armed[i]].deadline < best)
            best = m->recs[m->armed[i]].deadline;
    return best;
}

/* next() against the model. `after_expire`: the wheel was just expired at
 * m->now, so next() must be later than now. */
static int64_t check_next(const model *m, bool after_expire)
{
    int64_t nx = wf__wheel_next(m->wh);
    REQUIRE(m->wh->count == m->narmed, "count %llu, model %u", (unsigned long long)m->wh->count,
            m->narmed);
    if (m->narmed == 0) {
        REQUIRE(nx == INT64_MAX, "empty wheel, next() = %lld", (long long)nx);
        return nx;
    }
    int64_t min = earliest(m);
    REQUIRE(nx <= min, "next() %lld later than the earliest deadline %lld", (long long)nx,
            (long long)min);
    REQUIRE(nx != INT64_MAX, "non-empty wheel (earliest %lld), next() = INT64_MAX",
            (long long)min);
    if (ticks(min) <= m->wh->elapsed)
        REQUIRE(nx == min, "earliest %lld is in the current slot (elapsed %llu) but next() = %lld",
                (long long)min, (unsigned long long)m->wh->elapsed, (long long)nx);
    if (after_expire)
        REQUIRE(nx > m->now, "after expire(%lld), next() = %lld (earliest %lld): a poller would spin",
                (long long)m->now, (long long)nx, (long long)min);
    return nx;
}

/* Expire at `now` and check the due list against the model. */
static uint64_t expire(model *m, int64_t now)
{
    REQUIRE(now >= m->now, "test bug: time moved back");
    int64_t before = m->now;
    m->now = now;
    wf__link due;
    wf__list_init(&due);
    uint64_t got = wf__wheel_expire(m->wh, now, &due), seen = 0;
    wf__link *l;
    while ((l = wf__list_pop_front(&due)) != NULL) {
        rec *r = wf__container_of(l, rec, node.link);
        uint32_t id = (uint32_t)(r - m->recs);
        REQUIRE(id < m->n, "a node the test never armed came back");
        r->fires++;
        REQUIRE(r->pos >= 0, "timer %u (deadline %lld) fired but is not armed (fired %u times)", id,
                (long long)r->deadline, r->fires);
        REQUIRE(r->deadline <= now, "timer %u fired early: deadline %lld, now %lld", id,
                (long long)r->deadline, (long long)now);
        REQUIRE(r->deadline == r->node.deadline, "node deadline changed");
        model_forget(m, id);
        seen++;
    }
    REQUIRE(got == seen, "expire returned %llu, listed %llu", (unsigned long long)got,
            (unsigned long long)seen);
    m->fired += seen;
    /* None missed: nothing armed is due any more. */
    for (uint32_t i = 0; i < m->narmed; i++) {
        rec *r = &m->recs[m->armed[i]];
        REQUIRE(r->deadline > now, "timer %u missed: deadline %lld, now %lld (previous now %lld)",
                m->armed[i], (long long)r->deadline, (long long)now, (long long)before);
    }
    check_next(m, true);
    return seen;
}

/* The wheel's internals against the model and wheel.c's stated invariant. */
static void check_structure(const model *m)
{
    const wf__wheel *wh = m->wh;
    uint64_t total = 0;
    for (unsigned lv = 0; lv < WF__WHEEL_LEVELS; lv++) {
        unsigned pos = (unsigned)((wh->elapsed >> (6 * lv)) & 63);
        unsigned span = 6 * (lv + 1);
        uint64_t high = span >= 64 ? 0 : wh->elapsed >> span;
        for (unsigned s = 0; s < WF__WHEEL_SLOTS; s++) {
            const wf__link *head = &wh->slots[lv][s];
            bool nonempty = !wf__list_empty(head);
            bool bit = (wh->occupied[lv] >> s) & 1;
            REQUIRE(nonempty == bit, "level %u slot %u: occupancy bit %d, list non-empty %d", lv, s,
                    bit, nonempty);
            if (!nonempty)
                continue;
            REQUIRE(s >= pos, "level %u: occupied slot %u behind the wheel's position %u", lv, s,
                    pos);
            if (lv > 0)
                REQUIRE(s > pos, "level %u: occupied slot %u is the wheel's own position", lv, s);
            uint64_t start = (span >= 64 ? 0 : high << span) | ((uint64_t)s << (6 * lv));
            for (const wf__link *l = head->next; l != head; l = l->next) {
                const rec *r = wf__container_of(l, rec, node.link);
                uint32_t id = (uint32_t)(r - m->recs);
                REQUIRE(id < m->n && r->pos >= 0, "a node in the wheel is not armed in the model");
                REQUIRE(r->node.level == lv && r->node.slot == s,
                        "node %u records level %u slot %u, sits in level %u slot %u", id,
                        r->node.level, r->node.slot, lv, s);
                uint64_t t = ticks(r->deadline);
                if (lv == 0)
                    REQUIRE(t <= start, "level-0 node %u: tick %llu after its slot's start %llu", id,
                            (unsigned long long)t, (unsigned long long)start);
                else
                    REQUIRE(t >= start && t < start + (1ull << (6 * lv)),
                            "level-%u node %u: tick %llu outside its slot [%llu, +%llu)", lv, id,
                            (unsigned long long)t, (unsigned long long)start,
                            1ull << (6 * lv));
                total++;
            }
        }
    }
    REQUIRE(total == wh->count, "nodes in slots %llu, count %llu", (unsigned long long)total,
            (unsigned long long)wh->count);
}

/* A deadline for a new timer, at one of many scales around `now`. */
static int64_t gen_deadline(uint64_t *rng, const model *m)
{
    int64_t now = m->now;
    switch (rnd(rng, 20)) {
    case 0:
        return now; /* due right now */
    case 1:
        return sat_add(now, (int64_t)rnd(rng, 16)); /* ns apart */
    case 2:
        return sat_add(now, (int64_t)rnd(rng, 1000));
    case 3:
        return sat_add(now, (int64_t)rnd(rng, SLOT_NS)); /* this slot or the next */
    case 4: { /* around a level-0 slot boundary */
        uint64_t t = ticks(now) + 1 + rnd(rng, 70);
        if (t > (uint64_t)MAX_DEADLINE >> WF__WHEEL_SHIFT)
            return MAX_DEADLINE;
        return sat_add((int64_t)(t << WF__WHEEL_SHIFT), (int64_t)rnd(rng, 3) - 1);
    }
    case 5: { /* around a boundary of a coarser level */
        unsigned lv = 1 + (unsigned)rnd(rng, WF__WHEEL_LEVELS - 1);
        uint64_t unit = 1ull << (6 * lv);
        uint64_t t = (ticks(now) / unit + 1 + rnd(rng, 3)) * unit;
        if (t > (uint64_t)MAX_DEADLINE >> WF__WHEEL_SHIFT)
            return MAX_DEADLINE;
        return sat_add((int64_t)(t << WF__WHEEL_SHIFT), (int64_t)rnd(rng, 3) - 1);
    }
    case 6:
        return sat_add(now, (int64_t)rnd(rng, 1000 * US)); /* microseconds */
    case 7:
        return sat_add(now, (int64_t)rnd(rng, 100 * MS)); /* milliseconds */
    case 8:
        return sat_add(now, (int64_t)rnd(rng, 10 * SEC));
    case 9:
        return sat_add(now, (int64_t)rnd(rng, 5 * HOUR));
    case 10:
        return sat_add(now, (int64_t)rnd(rng, 30 * DAY));
    case 11:
        return sat_add(now, (int64_t)rnd(rng, 3650 * DAY)); /* years */
    case 12:
        return sat_add(now, -(int64_t)rnd(rng, 10 * SEC)); /* already past */
    case 13:
        return sat_add(now, -(int64_t)rnd(rng, SLOT_NS * 3)); /* just past */
    case 14:
        return -(int64_t)rnd(rng, 1000 * SEC); /* negative: long past */
    case 15: /* near INT64_MAX/2 */
        return INT64_MAX / 2 + (int64_t)rnd(rng, 2 * DAY) - DAY;
    case 16: /* far future, near the end of time */
        return MAX_DEADLINE - (int64_t)rnd(rng, DAY);
    case 17: /* the same deadline as an armed timer */
        if (m->narmed)
            return m->recs[m->armed[rnd(rng, m->narmed)]].deadline;
        return now;
    case 18: /* right next to an armed timer */
        if (m->narmed)
            return sat_add(m->recs[m->armed[rnd(rng, m->narmed)]].deadline,
                           (int64_t)rnd(rng, 5) - 2);
        return now;
    default: /* anything at all ahead */
        return sat_add(now, (int64_t)(test_rand(rng) >> (1 + rnd(rng, 63))));
    }
}

/* A new "now" for expire, never before the current one. */
static int64_t gen_now(uint64_t *rng, const model *m)
{
    int64_t now = m->now, step;
    switch (rnd(rng, 16)) {
    case 0:
        step = 0;
        break;
    case 1:
        step = (int64_t)rnd(rng, 100); /* tiny */
        break;
    case 2:
        step = (int64_t)rnd(rng, SLOT_NS);
        break;
    case 3:
        step = SLOT_NS * (int64_t)(1 + rnd(rng, 3)); /* whole slots */
        break;
    case 4:
        step = SLOT_NS * 64 * (int64_t)(1 + rnd(rng, 2)); /* a level-1 slot */
        break;
    case 5:
        step = (int64_t)rnd(rng, 10 * MS);
        break;
    case 6:
        step = (int64_t)rnd(rng, 2 * SEC);
        break;
    case 7:
        step = (int64_t)rnd(rng, 2 * HOUR);
        break;
    case 8:
        step = (int64_t)rnd(rng, 60 * DAY); /* a huge jump */
        break;
    case 9: { /* to the next slot boundary, or one before/after it */
        uint64_t t = ticks(now) + 1;
        if (t > (uint64_t)MAX_DEADLINE >> WF__WHEEL_SHIFT)
            step = 0;
        else
            step = (int64_t)(t << WF__WHEEL_SHIFT) - now + (int64_t)rnd(rng, 3) - 1;
        break;
    }
    case 10:
    case 11: { /* where a poller would wake: next() */
        int64_t nx = wf__wheel_next(m->wh);
        step = nx == INT64_MAX || nx <= now ? 0 : nx - now;
        break;
    }
    case 12:
    case 13: { /* exactly the earliest deadline, or just before it */
        int64_t e = earliest(m);
        step = e == INT64_MAX || e <= now ? 0 : e - now - (int64_t)rnd(rng, 2);
        break;
    }
    case 14: /* near the end of time, rarely */
        step = rnd(rng, 8) == 0 ? MAX_DEADLINE - (int64_t)rnd(rng, DAY) - now : 0;
        break;
    default:
        step = (int64_t)rnd(rng, 1000 * US);
        break;
    }
    if (step < 0)
        step = 0;
    return sat_add(now, step);
}

/* Drain the wheel as a poller does: sleep until next(), expire, repeat.
 * Every wakeup must fire something or move next() strictly later, and the
 * earliest timer must fire within one wakeup per level. */
static void poller_drain(model *m)
{
    unsigned idle = 0; /* wakeups in a row that fired nothing */
    while (m->narmed) {
        int64_t nx = wf__wheel_next(m->wh);
        REQUIRE(nx != INT64_MAX && nx >= m->now, "next() %lld, now %lld", (long long)nx,
                (long long)m->now);
        uint64_t fired = expire(m, nx);
        int64_t nx2 = wf__wheel_next(m->wh);
        REQUIRE(fired > 0 || nx2 > nx, "a wakeup at %lld fired nothing and next() stayed at %lld",
                (long long)nx, (long long)nx2);
        idle = fired ? 0 : idle + 1;
        REQUIRE(idle <= WF__WHEEL_LEVELS, "%u wakeups in a row fired nothing", idle);
    }
    check_next(m, true);
}

/* --- deterministic cases ----------------------------------------------- */

static void test_empty(void **state)
{
    model m;
    snprintf(where, sizeof where, "empty");
    model_init(&m, 4, 12345);
    assert_int_equal(wf__wheel_next(m.wh), INT64_MAX);
    assert_int_equal(expire(&m, 12345), 0);
    assert_int_equal(expire(&m, INT64_MAX / 2), 0);
    /* One timer, removed: the wheel is empty again. */
    arm(&m, 0, INT64_MAX / 2 + 10 * SEC, m.now);
    assert_int_equal(wf__wheel_next(m.wh) <= INT64_MAX / 2 + 10 * SEC, 1);
    disarm(&m, 0);
    check_structure(&m);
    assert_int_equal(wf__wheel_next(m.wh), INT64_MAX);
    assert_int_equal(expire(&m, MAX_DEADLINE), 0);
    model_free(&m);
}

static void test_exact_in_slot(void **state)
{
    model m;
    snprintf(where, sizeof where, "exact in slot");
    int64_t base = 1000 * SLOT_NS; /* the start of a slot */
    model_init(&m, 8, base);
    arm(&m, 0, base + 10, base);
    arm(&m, 1, base + 20, base);
    arm(&m, 2, base + 20, base);
    arm(&m, 3, base + SLOT_NS - 1, base); /* last ns of the slot */
    arm(&m, 4, base + SLOT_NS, base);     /* first ns of the next */
    assert_int_equal(wf__wheel_next(m.wh), base + 10);
    assert_int_equal(expire(&m, base + 9), 0);
    assert_int_equal(expire(&m, base + 10), 1);
    assert_int_equal(wf__wheel_next(m.wh), base + 20);
    assert_int_equal(expire(&m, base + 19), 0);
    assert_int_equal(expire(&m, base + 20), 2);
    assert_int_equal(wf__wheel_next(m.wh), base + SLOT_NS - 1);
    assert_int_equal(expire(&m, base + SLOT_NS - 1), 1);
    /* The next slot's timer: next() is the slot start, which is exact. */
    assert_int_equal(wf__wheel_next(m.wh), base + SLOT_NS);
    assert_int_equal(expire(&m, base + SLOT_NS), 1);
    assert_int_equal(wf__wheel_next(m.wh), INT64_MAX);
    check_structure(&m);
    model_free(&m);
}

static void test_past_and_negative(void **state)
{
    model m;
    snprintf(where, sizeof where, "past");
    model_init(&m, 8, 5 * SEC);
    arm(&m, 0, 5 * SEC, m.now);          /* now */
    arm(&m, 1, 5 * SEC - 1, m.now);      /* 1 ns ago */
    arm(&m, 2, 1 * SEC, m.now);          /* long ago */
    arm(&m, 3, -7, m.now);               /* negative */
    arm(&m, 4, INT64_MIN / 2, m.now);    /* very negative */
    arm(&m, 5, 5 * SEC + 1, m.now);      /* 1 ns ahead */
    check_structure(&m);
    assert_int_equal(wf__wheel_next(m.wh), INT64_MIN / 2);
    assert_int_equal(expire(&m, 5 * SEC), 5);
    assert_int_equal(wf__wheel_next(m.wh), 5 * SEC + 1);
    assert_int_equal(expire(&m, 5 * SEC + 1), 1);
    model_free(&m);

    /* A wheel at time 0 with negative times around. */
    model_init(&m, 4, -100);
    arm(&m, 0, -50, -100);
    arm(&m, 1, 0, -100);
    assert_int_equal(expire(&m, -60), 0);
    assert_int_equal(wf__wheel_next(m.wh), -50);
    assert_int_equal(expire(&m, -50), 1);
    assert_int_equal(expire(&m, 0), 1);
    model_free(&m);
}

static void test_scales(void **state)
{
    /* One timer per scale, fired in order by a poller. */
    static const int64_t offs[] = {0,         1,         999,      SLOT_NS - 1, SLOT_NS,
                                   SLOT_NS + 1, 64 * SLOT_NS, MS,    SEC,         HOUR,
                                   DAY,       365 * DAY, 4096 * DAY};
    enum { N = sizeof offs / sizeof offs[0] };
    static const int64_t bases[] = {0, 1, SLOT_NS - 1, 123456789 * SEC, INT64_MAX / 2 - DAY,
                                    INT64_MAX / 2};
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        model m;
        snprintf(where, sizeof where, "scales base %lld", (long long)bases[b]);
        model_init(&m, N, bases[b]);
        for (uint32_t i = 0; i < N; i++)
            arm(&m, i, bases[b] + offs[i], bases[b]);
        check_structure(&m);
        uint32_t fired = 0;
        while (m.narmed) {
            int64_t nx = wf__wheel_next(m.wh);
            fired += (uint32_t)expire(&m, nx);
            check_structure(&m);
        }
        assert_int_equal(fired, N);
        for (uint32_t i = 0; i < N; i++)
            assert_int_equal(m.recs[i].fires, 1);
        /* A huge jump over everything at once. */
        for (uint32_t i = 0; i < N; i++)
            arm(&m, i, m.now + offs[i], m.now);
        assert_int_equal(expire(&m, m.now + 5000 * DAY), N);
        model_free(&m);
    }
}

/* Insert into an empty wheel that has stood still: the clock catches up. */
static void test_stale_empty_wheel(void **state)
{
    model m;
    snprintf(where, sizeof where, "stale empty wheel");
    model_init(&m, 4, 0);
    int64_t later = 3 * DAY + 12345;
    m.now = later;
    arm(&m, 0, later + 100, later);
    assert_int_equal(m.wh->elapsed, ticks(later));
    check_structure(&m);
    assert_int_equal(wf__wheel_next(m.wh), later + 100);
    assert_int_equal(expire(&m, later + 100), 1);
    model_free(&m);
}

/* Edge: a deadline of INT64_MAX ("never"). The wheel keeps it, but next()
 * cannot tell it from "empty" once it is in the current slot; nothing can
 * be late for it, so only count the wheel as non-empty. */
static void test_int64_max_deadline(void **state)
{
    model m;
    snprintf(where, sizeof where, "INT64_MAX deadline");
    model_init(&m, 2, 0);
    wf__wheel_insert(m.wh, &m.recs[0].node, INT64_MAX, 0);
    assert_int_equal(m.wh->count, 1);
    assert_true(wf__wheel_next(m.wh) > 0);
    wf__link due;
    wf__list_init(&due);
    assert_int_equal(wf__wheel_expire(m.wh, MAX_DEADLINE, &due), 0);
    assert_int_equal(m.wh->count, 1);
    assert_int_equal(wf__wheel_expire(m.wh, INT64_MAX, &due), 1);
    assert_int_equal(m.wh->count, 0);
    assert_int_equal(wf__wheel_next(m.wh), INT64_MAX);
    model_free(&m);
}

/* --- randomised differential test -------------------------------------- */

static const uint64_t seeds[] = {
    1, 2, 3, 42, 0x9e3779b97f4a7c15ull, 0xdeadbeefcafef00dull, 0x0123456789abcdefull,
    0xfeedfacefeedfaceull, 7777777, 31337, 0x5bd1e995ull, 0xa5a5a5a5a5a5a5a5ull,
};

static int64_t gen_base(uint64_t *rng)
{
    switch (rnd(rng, 8)) {
    case 0:
        return 0;
    case 1:
        return (int64_t)rnd(rng, SLOT_NS * 4);
    case 2:
        return SEC * (int64_t)rnd(rng, 100000);
    case 3:
        return (int64_t)(test_rand(rng) >> 24); /* up to ~1e12 s */
    case 4:
        return INT64_MAX / 2 - (int64_t)rnd(rng, HOUR);
    case 5:
        return INT64_MAX / 2 + (int64_t)rnd(rng, HOUR);
    case 6: /* just before a top-level boundary */
        return (int64_t)((1ull << 42) << WF__WHEEL_SHIFT) - (int64_t)rnd(rng, SEC);
    default:
        return (int64_t)(test_rand(rng) >> 2);
    }
}

static void differential_round(uint64_t *rng, unsigned round, uint64_t seed)
{
    model m;
    uint32_t n = 16 + (uint32_t)rnd(rng, rnd(rng, 2) ? 200 : 3000);
    unsigned steps = 100 + (unsigned)rnd(rng, 400);
    model_init(&m, n, gen_base(rng));
    check_next(&m, false);
    for (unsigned step = 0; step < steps; step++) {
        snprintf(where, sizeof where, "seed %#llx round %u step %u now %lld",
                 (unsigned long long)seed, round, step, (long long)m.now);
        unsigned ops = (unsigned)rnd(rng, rnd(rng, 4) ? 8 : 100);
        for (unsigned k = 0; k < ops; k++) {
            uint32_t id = (uint32_t)rnd(rng, n);
            if (m.recs[id].pos >= 0) {
                if (rnd(rng, 3) == 0)
                    disarm(&m, id);
            } else {
                /* The now handed to insert may lag the wheel's (timer.c reads
                 * the clock before it takes the lock). */
                int64_t ins_now = rnd(rng, 4) ? m.now : sat_add(m.now, -(int64_t)rnd(rng, MS));
                arm(&m, id, gen_deadline(rng, &m), ins_now);
            }
        }
        check_next(&m, false);
        if (n <= 256 || step % 16 == 0)
            check_structure(&m);
        expire(&m, gen_now(rng, &m));
        if (n <= 256 || step % 16 == 0)
            check_structure(&m);
    }
    snprintf(where, sizeof where, "seed %#llx round %u drain", (unsigned long long)seed, round);
    if (rnd(rng, 2)) {
        poller_drain(&m);
    } else {
        expire(&m, MAX_DEADLINE);
        REQUIRE(m.narmed == 0, "%u left after expire(INT64_MAX - 1)", m.narmed);
    }
    check_structure(&m);
    model_free(&m);
}

static void test_differential(void **state)
{
    unsigned rounds = SCALED(40) > 8 ? SCALED(40) : 8;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        uint64_t rng = seeds[s];
        for (unsigned r = 0; r < rounds; r++)
            differential_round(&rng, r, seeds[s]);
    }
    fprintf(stderr, "differential: %zu seeds x %u rounds in %.2f s\n",
            sizeof seeds / sizeof seeds[0], rounds, seconds_since(&t0));
}

/* --- a million timers ---------------------------------------------------- */

static void test_million(void **state)
{
    uint32_t n = SCALED(1000000);
    uint64_t rng = 0x1234567887654321ull;
    int64_t base = 1000 * SEC;
    model m;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    snprintf(where, sizeof where, "million: insert");
    model_init(&m, n, base);
    int64_t maxd = base;
    for (uint32_t i = 0; i < n; i++) {
        int64_t d;
        switch (rnd(&rng, 20)) {
        case 0:
            d = base - (int64_t)rnd(&rng, SEC); /* past */
            break;
        case 1:
        case 2:
        case 3:
            d = base + (int64_t)rnd(&rng, HOUR);
            break;
        case 4:
            d = base + (int64_t)rnd(&rng, 10 * DAY);
            break;
        default:
            d = base + (int64_t)rnd(&rng, 2 * SEC);
            break;
        }
        if (d > maxd)
            maxd = d;
        arm(&m, i, d, base);
    }
    assert_int_equal(m.wh->count, n);
    /* Cancel a tenth of them. */
    uint32_t removed = 0;
    for (uint32_t i = 0; i < n; i += 10) {
        uint32_t id = (uint32_t)rnd(&rng, n);
        if (m.recs[id].pos >= 0) {
            disarm(&m, id);
            removed++;
        }
    }
    assert_int_equal(m.wh->count, n - removed);
    check_structure(&m);
    double t_insert = seconds_since(&t0);

    /* Random steps, from a microsecond to a long jump. Checks each fired
     * timer is due and not late (its deadline is after the previous now),
     * and none fires twice. */
    snprintf(where, sizeof where, "million: steps");
    uint64_t fired = 0, calls = 0;
    while (m.narmed) {
        int64_t prev = m.now;
        int64_t step = rnd(&rng, 50) ? (int64_t)(US + rnd(&rng, 20 * MS))
                                     : (int64_t)rnd(&rng, 30 * 60 * SEC);
        int64_t now = m.now + step;
        wf__link due;
        wf__list_init(&due);
        uint64_t got = wf__wheel_expire(m.wh, now, &due);
        wf__link *l;
        while ((l = wf__list_pop_front(&due)) != NULL) {
            rec *r = wf__container_of(l, rec, node.link);
            REQUIRE(r->pos >= 0 && r->fires == 0, "timer fired twice or after removal");
            REQUIRE(r->deadline <= now, "fired early");
            REQUIRE(r->deadline > prev || prev == base, "fired late: deadline %lld, previous now %lld",
                    (long long)r->deadline, (long long)prev);
            r->fires++;
            model_forget(&m, (uint32_t)(r - m.recs));
            got--;
            fired++;
        }
        REQUIRE(got == 0, "expire's count disagrees with its list");
        m.now = now;
        calls++;
        REQUIRE(m.wh->count == m.narmed, "count");
    }
    assert_int_equal(fired, n - removed);
    assert_true(m.now >= maxd);
    assert_int_equal(wf__wheel_next(m.wh), INT64_MAX);
    double t_steps = seconds_since(&t0) - t_insert;

    /* Again, drained by a poller (now = next()), with full checks. */
    snprintf(where, sizeof where, "million: poller");
    for (uint32_t i = 0; i < n; i++) {
        m.recs[i].fires = 0;
        arm(&m, i, m.now + 1 + (int64_t)rnd(&rng, rnd(&rng, 8) ? SEC : HOUR), m.now);
    }
    uint64_t wakeups = 0, before = m.fired;
    unsigned idle = 0;
    while (m.narmed) {
        int64_t nx = wf__wheel_next(m.wh);
        REQUIRE(nx != INT64_MAX && nx > m.now, "next() %lld, now %lld", (long long)nx,
                (long long)m.now);
        m.now = nx;
        wf__link due;
        wf__list_init(&due);
        uint64_t got = wf__wheel_expire(m.wh, nx, &due);
        wf__link *l;
        while ((l = wf__list_pop_front(&due)) != NULL) {
            rec *r = wf__container_of(l, rec, node.link);
            REQUIRE(r->pos >= 0 && r->fires == 0, "timer fired twice");
            REQUIRE(r->deadline <= nx, "fired early");
            r->fires++;
            model_forget(&m, (uint32_t)(r - m.recs));
            m.fired++;
        }
        idle = got ? 0 : idle + 1;
        REQUIRE(idle <= WF__WHEEL_LEVELS, "%u idle wakeups in a row", idle);
        wakeups++;
    }
    assert_int_equal(m.fired - before, n);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(m.recs[i].fires, 1);
    fprintf(stderr,
            "million: %u timers; insert+cancel %.2f s; %llu expires by random steps %.2f s; "
            "%llu poller wakeups %.2f s\n",
            n, t_insert, (unsigned long long)calls, t_steps, (unsigned long long)wakeups,
            seconds_since(&t0) - t_insert - t_steps);
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_exact_in_slot),
        cmocka_unit_test(test_past_and_negative),
        cmocka_unit_test(test_scales),
        cmocka_unit_test(test_stale_empty_wheel),
        cmocka_unit_test(test_int64_max_deadline),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_million),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
