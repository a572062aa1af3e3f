/* test_rendezvous.c - rendezvous channels (Go's unbuffered channel): a put
 * completes only when a getter takes its item; try_put and try_get succeed
 * only against a waiting partner; deadlines and cancellation on either side
 * lose nothing; shutdown, task_done/join and destroy; select over rendezvous
 * and buffered channels, including a select with a get and a put case on
 * one channel (which must never meet itself); and storms in which every item
 * comes out exactly once, in order per producer, with tasks on every worker
 * timing out and being cancelled all the time. */
#include "sync_test.h"

#include <pthread.h>

#define ITEM(i) ((void *)(uintptr_t)(i))
#define ID(p) ((long)(uintptr_t)(p))

typedef struct {
    wf_queue_t *q;
    long id;
    int64_t deadline;
} put_arg;

static int putter(void *arg, void **res)
{
    put_arg *p = arg;
    return wf_queue_put_until(p->q, ITEM(p->id), p->deadline);
}

static int getter(void *arg, void **res)
{
    void *v = NULL;
    int e = wf_queue_get(arg, &v);
    *res = v;
    return e;
}

/* --- semantics ---------------------------------------------------------------- */

static int m_semantics(void *arg, void **res)
{
    wf_queue_t *q;
    void *v;
    int st;
    void *rv;
    CHECK_EQ(wf_queue_create_rendezvous(&q), 0);
    CHECK_EQ(wf_queue_capacity(q), 0);
    CHECK_EQ(wf_queue_size(q), 0);
    CHECK_EQ(wf_queue_empty(q), 1);
    CHECK_EQ(wf_queue_full(q), 1);

    /* Nobody on the other side: the non-waiting forms fail, the deadline
     * forms time out, and nothing is left behind. */
    CHECK_EQ(wf_queue_try_put(q, ITEM(1)), -EAGAIN);
    CHECK_EQ(wf_queue_try_get(q, &v), -EAGAIN);
    CHECK_EQ(wf_queue_put_until(q, ITEM(1), 0), -ETIMEDOUT);
    CHECK_EQ(wf_queue_get_until(q, &v, 0), -ETIMEDOUT);
    int64_t t0 = wf_now();
    CHECK_EQ(wf_queue_put_until(q, ITEM(1), wf_deadline_in(2 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK(wf_now() - t0 >= 2 * WF_NSEC_PER_MSEC);
    CHECK_EQ(wf_queue_get_until(q, &v, wf_deadline_in(WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK_EQ(wf_queue_try_get(q, &v), -EAGAIN); /* the timed-out put delivered nothing */

    /* A put waits until a getter takes its item. */
    put_arg pa = {q, 10, WF_FOREVER};
    wf_task_t p;
    CHECK_EQ(wf_spawn(&p, putter, &pa, NULL), 0);
    CHECK(wait_parked(p));
    for (int i = 0; i < 50; i++)
        wf_yield();
    CHECK_EQ(wf_task_state(p), WF_TASK_PARKED); /* still waiting for us */
    CHECK_EQ(wf_queue_size(q), 0);
    size_t untouched = 777;
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, &untouched), -EBUSY);
    CHECK_EQ(untouched, 777);
    CHECK_EQ(wf_queue_get(q, &v), 0);
    CHECK_EQ(ID(v), 10);
    CHECK_EQ(wf_join(p, &st, NULL), 0);
    CHECK_EQ(st, 0);

    /* A try_get takes from a waiting putter. */
    pa.id = 11;
    CHECK_EQ(wf_spawn(&p, putter, &pa, NULL), 0);
    CHECK(wait_parked(p));
    CHECK_EQ(wf_queue_try_get(q, &v), 0);
    CHECK_EQ(ID(v), 11);
    join_n(&p, 1);

    /* A get waits for a put; the put then completes at once, and so does a
     * try_put. */
    wf_task_t g[2];
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(wf_spawn(&g[i], getter, q, NULL), 0);
        CHECK(wait_parked(g[i]));
    }
    CHECK_EQ(wf_queue_full(q), 0); /* a put would not wait */
    CHECK_EQ(wf_queue_put(q, ITEM(20)), 0);
    CHECK_EQ(wf_queue_try_put(q, ITEM(21)), 0);
    CHECK_EQ(wf_queue_try_put(q, ITEM(22)), -EAGAIN);
    CHECK_EQ(wf_join(g[0], &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(ID(rv), 20); /* getters served in arrival order */
    CHECK_EQ(wf_join(g[1], &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(ID(rv), 21);

    /* A cancelled putter delivered nothing: the getter gets the next
     * putter's item. */
    put_arg pb[3] = {{q, 30, WF_FOREVER}, {q, 31, WF_FOREVER}, {q, 32, WF_FOREVER}};
    wf_task_t pt[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(wf_spawn(&pt[i], putter, &pb[i], NULL), 0);
        CHECK(wait_parked(pt[i]));
    }
    CHECK_EQ(wf_cancel(pt[0]), 0);
    CHECK_EQ(wf_join(pt[0], &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK_EQ(wf_queue_get(q, &v), 0);
    CHECK_EQ(ID(v), 31);
    CHECK_EQ(wf_queue_get(q, &v), 0);
    CHECK_EQ(ID(v), 32);
    join_n(&pt[1], 2);

    /* A cancelled getter took nothing: a later put goes to the next one. */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(wf_spawn(&g[i], getter, q, NULL), 0);
        CHECK(wait_parked(g[i]));
    }
    CHECK_EQ(wf_cancel(g[0]), 0);
    rv = ITEM(99);
    CHECK_EQ(wf_join(g[0], &st, &rv), 0);
    CHECK_EQ(st, -ECANCELED);
    CHECK(rv == NULL);
    CHECK_EQ(wf_queue_put(q, ITEM(40)), 0);
    CHECK_EQ(wf_join(g[1], &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(ID(rv), 40);

    /* Pending cancellation: what needs no wait still happens (asyncio). */
    pa.id = 50;
    CHECK_EQ(wf_spawn(&p, putter, &pa, NULL), 0);
    CHECK(wait_parked(p));
    wf_cancel(wf_self());
    CHECK_EQ(wf_queue_get(q, &v), 0);
    CHECK_EQ(ID(v), 50);
    CHECK_EQ(wf_queue_get(q, &v), -ECANCELED);
    CHECK_EQ(wf_queue_put(q, ITEM(51)), -ECANCELED);
    wf_uncancel();
    join_n(&p, 1);

    /* task_done / join count the items handed over. */
    CHECK_EQ(wf_queue_task_done(q), 0);
    CHECK_EQ(wf_queue_task_done(q), 0);
    CHECK_EQ(wf_queue_join_until(q, 0), -ETIMEDOUT); /* 8 delivered, 2 done */
    for (int i = 0; i < 6; i++) /* 10, 11, 20, 21, 31, 32, 40, 50 */
        CHECK_EQ(wf_queue_task_done(q), 0);
    CHECK_EQ(wf_queue_task_done(q), -EINVAL);
    CHECK_EQ(wf_queue_join(q), 0);

    /* Shutdown fails every waiting put and get; nothing to drain. */
    pa.id = 60;
    CHECK_EQ(wf_spawn(&p, putter, &pa, NULL), 0);
    CHECK(wait_parked(p));
    CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
    CHECK_EQ(wf_join(p, &st, NULL), 0);
    CHECK_EQ(st, -ESHUTDOWN);
    CHECK_EQ(wf_queue_get(q, &v), -ESHUTDOWN);
    CHECK_EQ(wf_queue_try_get(q, &v), -ESHUTDOWN);
    CHECK_EQ(wf_queue_put(q, ITEM(61)), -ESHUTDOWN);
    CHECK_EQ(wf_queue_is_shutdown(q), 1);
    size_t left = 5;
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, &left), 0);
    CHECK_EQ(left, 0);

    /* Getters waiting when an immediate shutdown comes. */
    CHECK_EQ(wf_queue_create_rendezvous(&q), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(wf_spawn(&g[i], getter, q, NULL), 0);
        CHECK(wait_parked(g[i]));
    }
    CHECK_EQ(wf_queue_shutdown(q, WF_QUEUE_SHUTDOWN_IMMEDIATE, NULL, NULL), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(wf_join(g[i], &st, NULL), 0);
        CHECK_EQ(st, -ESHUTDOWN);
    }
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);
    return 0;
}

static void test_semantics(void **state)
{
    run_main(2, m_semantics, NULL);
    run_main(1, m_semantics, NULL);
    /* Outside a fiber: the non-waiting calls work, waiting ones -EPERM. */
    wf_queue_t *q;
    void *v;
    assert_int_equal(wf_queue_create_rendezvous(&q), 0);
    assert_int_equal(wf_queue_try_put(q, ITEM(1)), -EAGAIN);
    assert_int_equal(wf_queue_put(q, ITEM(1)), -EPERM);
    assert_int_equal(wf_queue_get(q, &v), -EPERM);
    assert_int_equal(wf_queue_destroy(q, NULL, NULL, NULL), 0);
}

/* --- a foreign thread hands items to waiting getters --------------------------- */

static void *feeder(void *arg)
{
    wf_queue_t *q = arg;
    for (long i = 0; i < 500; i++)
        while (wf_queue_try_put(q, ITEM(i)) == -EAGAIN)
            sched_yield();
    return NULL;
}

static int m_foreign(void *arg, void **res)
{
    wf_queue_t *q;
    CHECK_EQ(wf_queue_create_rendezvous(&q), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, feeder, q), 0);
    for (long i = 0; i < 500; i++) {
        void *v;
        CHECK_EQ(wf_queue_get_until(q, &v, wf_deadline_in(LONG_NS)), 0);
        CHECK_EQ(ID(v), i);
    }
    pthread_join(th, NULL);
    CHECK_EQ(wf_queue_destroy(q, NULL, NULL, NULL), 0);
    return 0;
}

static void test_foreign(void **state)
{
    run_main(2, m_foreign, NULL);
}

/* --- select ----------------------------------------------------------------------- */

static void set_case(wf_select_case_t *c, wf_queue_t *q, wf_select_op_t op, void *item)
{
    c->queue = q;
    c->op = op;
    c->item = item;
    c->result = 1;
}

static int m_select(void *arg, void **res)
{
    wf_queue_t *r, *b;
    CHECK_EQ(wf_queue_create_rendezvous(&r), 0);
    CHECK_EQ(wf_queue_create(&b, 1, WF_QUEUE_FIFO, NULL), 0);
    wf_select_case_t c[3];
    int st;
    void *rv;

    /* A get and a put case on one rendezvous channel, nobody else: never
     * ready (a select cannot meet itself), so only the deadline ends it. */
    set_case(&c[0], r, WF_SELECT_GET, NULL);
    set_case(&c[1], r, WF_SELECT_PUT, ITEM(1));
    CHECK_EQ(wf_select_until(c, 2, 0), -ETIMEDOUT);
    CHECK_EQ(wf_select_until(c, 2, wf_deadline_in(WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK_EQ(wf_queue_try_get(r, &rv), -EAGAIN); /* nothing left behind */

    /* ... but another task's get takes the put case. */
    wf_task_t g;
    CHECK_EQ(wf_spawn(&g, getter, r, NULL), 0);
    set_case(&c[0], r, WF_SELECT_GET, NULL);
    set_case(&c[1], r, WF_SELECT_PUT, ITEM(2));
    CHECK_EQ(wf_select(c, 2), 1);
    CHECK_EQ(c[1].result, 0);
    CHECK_EQ(c[0].result, 1);
    CHECK_EQ(wf_join(g, &st, &rv), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(ID(rv), 2);

    /* ... and a waiting putter the get case. */
    put_arg pa = {r, 3, WF_FOREVER};
    wf_task_t p;
    CHECK_EQ(wf_spawn(&p, putter, &pa, NULL), 0);
    CHECK(wait_parked(p));
    set_case(&c[0], r, WF_SELECT_GET, NULL);
    set_case(&c[1], r, WF_SELECT_PUT, ITEM(4));
    CHECK_EQ(wf_select(c, 2), 0);
    CHECK_EQ(c[0].result, 0);
    CHECK_EQ(ID(c[0].item), 3);
    join_n(&p, 1);

    /* Rendezvous beside a buffered channel: the buffered put is ready. */
    set_case(&c[0], r, WF_SELECT_PUT, ITEM(5));
    set_case(&c[1], b, WF_SELECT_PUT, ITEM(6));
    CHECK_EQ(wf_select(c, 2), 1);
    /* Now b is full: the select waits, and a getter on r takes its case. */
    set_case(&c[0], r, WF_SELECT_PUT, ITEM(7));
    set_case(&c[1], b, WF_SELECT_PUT, ITEM(8));
    CHECK_EQ(wf_spawn(&g, getter, r, NULL), 0);
    CHECK_EQ(wf_select(c, 2), 0);
    CHECK_EQ(wf_join(g, &st, &rv), 0);
    CHECK_EQ(ID(rv), 7);
    void *v;
    CHECK_EQ(wf_queue_get(b, &v), 0);
    CHECK_EQ(ID(v), 6); /* never 8 */
    CHECK_EQ(wf_queue_try_get(b, &v), -EAGAIN);

    /* A select waiting to get from r is found by a plain put. */
    pa.id = 9;
    pa.q = r;
    CHECK_EQ(wf_spawn(&p, putter, &pa, NULL), 0);
    set_case(&c[0], r, WF_SELECT_GET, NULL);
    set_case(&c[1], b, WF_SELECT_GET, NULL);
    CHECK_EQ(wf_select(c, 2), 0);
    CHECK_EQ(ID(c[0].item), 9);
    join_n(&p, 1);

    /* Shut down: the case is ready with -ESHUTDOWN. */
    CHECK_EQ(wf_queue_shutdown(r, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
    set_case(&c[0], r, WF_SELECT_GET, NULL);
    set_case(&c[1], b, WF_SELECT_GET, NULL);
    CHECK_EQ(wf_select(c, 2), 0);
    CHECK_EQ(c[0].result, -ESHUTDOWN);
    CHECK_EQ(wf_queue_destroy(r, NULL, NULL, NULL), 0);
    CHECK_EQ(wf_queue_destroy(b, NULL, NULL, NULL), 0);
    return 0;
}

static void test_select(void **state)
{
    run_main(2, m_select, NULL);
}

/* --- storm: nothing lost, nothing doubled, FIFO per producer ------------------------ */

/* Two rendezvous channels and a buffered one. Producers put their items in
 * order, each with a plain put on a rendezvous channel or a select over
 * all three; consumers get with a plain get or a select, and "relays" take
 * from one channel and pass the item on through a select with a get and a
 * put case on one rendezvous channel. Everyone times out and is cancelled
 * at random; a failed put is retried with the same item, so each producer's
 * items enter the channels in order. Every item must come out exactly once;
 * a consumer that takes straight from producers (no relay in between) must
 * see each producer's items in increasing order, among those it takes from
 * the rendezvous channels (a put there completes when its item is taken,
 * so a producer's items are taken one after the other) and among those it
 * takes from the buffered one (FIFO); an item can overtake another that
 * still sits in the buffer by going through a rendezvous channel. */
enum { RC = 3, RP = 6, RCONS = 5, RRELAY = 2 };

typedef struct {
    wf_queue_t *q[RC]; /* q[0], q[1] rendezvous; q[2] buffered (capacity 2) */
    wf_queue_t *out;   /* rendezvous: relays -> consumers */
    long per_producer;
    _Atomic unsigned char *seen;
    _Atomic long got, failed, order_errors;
} rs_state;

typedef struct {
    rs_state *s;
    int idx;
    uint64_t seed;
} rs_arg;

static int rs_producer(void *arg, void **res)
{
    rs_arg *a = arg;
    rs_state *s = a->s;
    uint64_t rnd = a->seed;
    for (long k = 0; k < s->per_producer; k++) {
        /* id: producer in the high part, sequence in the low part */
        long id = (long)a->idx * s->per_producer + k;
        for (;;) {
            int e;
            if (test_rand(&rnd) % 2) {
                e = wf_queue_put_until(s->q[test_rand(&rnd) % 2], ITEM(id), random_deadline(&rnd));
            } else {
                wf_select_case_t c[RC];
                for (int i = 0; i < RC; i++) {
                    c[i].queue = s->q[i];
                    c[i].op = WF_SELECT_PUT;
                    c[i].item = ITEM(id);
                }
                e = wf_select_until(c, RC, random_deadline(&rnd));
                if (e >= 0)
                    e = c[e].result;
            }
            if (e == 0)
                break;
            if (e != -ETIMEDOUT && e != -ECANCELED)
                return e;
            if (e == -ECANCELED)
                wf_uncancel();
            atomic_fetch_add(&s->failed, 1);
        }
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

/* Take the next item from the producers' channels (or, for a consumer,
 * also from the relays' channel), saying in *from which (RC: the relays').
 * `closed` marks the channels seen shut
 * down and empty: they are left out (a disabled case), so the select waits
 * on the others. 0, -ESHUTDOWN (all of them shut down and empty), or a
 * failure to retry. */
static int rs_take(rs_state *s, uint64_t *rnd, bool with_out, bool *closed, void **v, int *from)
{
    wf_select_case_t c[RC + 1];
    int n = RC + (with_out ? 1 : 0), open = 0;
    for (int i = 0; i < n; i++) {
        c[i].queue = closed[i] ? NULL : i < RC ? s->q[i] : s->out;
        c[i].op = WF_SELECT_GET;
        open += !closed[i];
    }
    if (!open)
        return -ESHUTDOWN;
    int i = (int)(test_rand(rnd) % 2);
    if (test_rand(rnd) % 3 == 0 && !closed[i]) {
        /* A plain get on one of the rendezvous channels. */
        int e = wf_queue_get_until(s->q[i], v, random_deadline(rnd));
        *from = i;
        if (e == -ESHUTDOWN) {
            closed[i] = true;
            return -EAGAIN;
        }
        return e;
    }
    int r = wf_select_until(c, (size_t)n, random_deadline(rnd));
    if (r < 0)
        return r;
    if (c[r].result == -ESHUTDOWN) {
        closed[r] = true;
        return -EAGAIN;
    }
    *v = c[r].item;
    *from = r;
    return c[r].result;
}

static int rs_relay(void *arg, void **res)
{
    rs_arg *a = arg;
    rs_state *s = a->s;
    uint64_t rnd = a->seed;
    bool closed[RC + 1] = {false};
    for (;;) {
        void *v;
        int from;
        int e = rs_take(s, &rnd, false, closed, &v, &from);
        if (e == -ESHUTDOWN)
            break;
        if (e) {
            if (e == -ECANCELED)
                wf_uncancel();
            if (e != -ECANCELED && e != -ETIMEDOUT && e != -EAGAIN)
                return e;
            continue;
        }
        /* Pass it on: a select with a get and a put case on `out` (the get
         * case can only be matched by another relay's put). What we get
         * that way we pass on too. */
        for (;;) {
            wf_select_case_t c[2];
            c[0].queue = s->out;
            c[0].op = WF_SELECT_PUT;
            c[0].item = v;
            c[1].queue = s->out;
            c[1].op = WF_SELECT_GET;
            int r = wf_select_until(c, 2, random_deadline(&rnd));
            if (r == 0 && c[0].result == 0)
                break;
            if (r == 1 && c[1].result == 0) {
                /* Took another relay's item instead: ours waits for our
                 * next turn; put the other one first. Both must arrive. */
                void *other = c[1].item;
                int e2;
                while ((e2 = wf_queue_put(s->out, other)) != 0) {
                    if (e2 != -ECANCELED)
                        return e2;
                    wf_uncancel();
                }
                continue;
            }
            if (r >= 0)
                return -200; /* shut down under us: relays stop first */
            if (r == -ECANCELED)
                wf_uncancel();
            else if (r != -ETIMEDOUT)
                return r;
        }
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int rs_consumer(void *arg, void **res)
{
    rs_arg *a = arg;
    rs_state *s = a->s;
    uint64_t rnd = a->seed;
    long total = (long)RP * s->per_producer;
    long last[RP][2]; /* [producer][0: rendezvous, 1: buffered] */
    for (int i = 0; i < RP; i++)
        last[i][0] = last[i][1] = -1;
    bool closed[RC + 1] = {false};
    for (;;) {
        void *v;
        int from;
        int e = rs_take(s, &rnd, true, closed, &v, &from);
        if (e == -ESHUTDOWN)
            break;
        if (e) {
            if (e == -ECANCELED)
                wf_uncancel();
            if (e != -ECANCELED && e != -ETIMEDOUT && e != -EAGAIN)
                return e;
            continue;
        }
        long id = ID(v);
        if (id < 0 || id >= total)
            return -100;
        if (from != RC) {
            long p = id / s->per_producer, k = id % s->per_producer;
            int kind = from == 2;
            if (k <= last[p][kind])
                atomic_fetch_add(&s->order_errors, 1);
            last[p][kind] = k;
        }
        atomic_fetch_add(&s->seen[id], 1);
        atomic_fetch_add(&s->got, 1);
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int m_storm(void *arg, void **res)
{
    long iterations = WF_TEST_SANITIZED ? 2 : 5;
    for (long it = 0; it < iterations; it++) {
        rs_state s;
        memset(&s, 0, sizeof s);
        s.per_producer = SCALED(3000);
        long total = RP * s.per_producer;
        s.seen = calloc((size_t)total, 1);
        CHECK_EQ(wf_queue_create_rendezvous(&s.q[0]), 0);
        CHECK_EQ(wf_queue_create_rendezvous(&s.q[1]), 0);
        CHECK_EQ(wf_queue_create(&s.q[2], 2, WF_QUEUE_FIFO, NULL), 0);
        CHECK_EQ(wf_queue_create_rendezvous(&s.out), 0);
        enum { N = RP + RRELAY + RCONS };
        rs_arg a[N];
        wf_task_t t[N];
        for (int i = 0; i < N; i++) {
            a[i].s = &s;
            a[i].idx = i;
            a[i].seed = (uint64_t)(it * 64 + i + 1) * 0x9E3779B97F4A7C15ull;
        }
        spawn_n(t, RP, rs_producer, a, sizeof a[0]);
        spawn_n(t + RP, RRELAY, rs_relay, a + RP, sizeof a[0]);
        spawn_n(t + RP + RRELAY, RCONS, rs_consumer, a + RP + RRELAY, sizeof a[0]);
        canceller_arg ca;
        start_canceller(&ca, t, N, (uint64_t)it + 11);
        join_n(t, RP);
        CHECK(wait_count(&s.got, total, LONG_NS));
        /* Everything consumed: the relays first (their channel must stay
         * open while they hold an item), then the rest. */
        for (int i = 0; i < RC; i++)
            CHECK_EQ(wf_queue_shutdown(s.q[i], WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
        join_n(t + RP, RRELAY);
        CHECK_EQ(wf_queue_shutdown(s.out, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL), 0);
        join_n(t + RP + RRELAY, RCONS);
        long cancels = stop_canceller(&ca);
        CHECK_EQ(atomic_load(&s.got), total);
        CHECK_EQ(atomic_load(&s.order_errors), 0);
        long bad = 0;
        for (long i = 0; i < total; i++)
            bad += atomic_load(&s.seen[i]) != 1;
        CHECK_EQ(bad, 0);
        for (int i = 0; i < RC; i++)
            CHECK_EQ(wf_queue_destroy(s.q[i], NULL, NULL, NULL), 0);
        CHECK_EQ(wf_queue_destroy(s.out, NULL, NULL, NULL), 0);
        if (getenv("WF_TEST_VERBOSE"))
            fprintf(stderr, "rendezvous storm: %ld items, %ld failed puts, %ld cancels\n", total,
                    atomic_load(&s.failed), cancels);
        free((void *)s.seen);
    }
    return 0;
}

static void test_storm(void **state)
{
    run_main(STRESS_WORKERS, m_storm, NULL);
    run_main(2, m_storm, NULL);
    run_main(1, m_storm, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_semantics),
        cmocka_unit_test(test_foreign),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_storm),
    };
    return run_queue_groups(tests, sizeof tests / sizeof tests[0]);
}
