/* test_barrier.c - the barrier: rounds and arrival indices, abort, reset, a
 * barrier broken by a cancelled or timed-out party, and a stress in which
 * every round must either trip for all its parties (indices a permutation)
 * or break for all of them, with cancellations landing anywhere. */
#include "sync_test.h"

typedef struct {
    wf_barrier_t b;
    int rounds;
    _Atomic int seen[64][8]; /* [round][index] */
    _Atomic long errors;
} round_state;

static int party(void *arg, void **res)
{
    round_state *s = arg;
    for (int r = 0; r < s->rounds; r++) {
        int i = wf_barrier_wait(&s->b);
        if (i < 0 || i >= 8) {
            atomic_fetch_add(&s->errors, 1);
            return i < 0 ? i : -1;
        }
        atomic_fetch_add(&s->seen[r][i], 1);
    }
    return 0;
}

static int m_rounds(void *arg, void **res)
{
    enum { P = 5 };
    round_state *s = calloc(1, sizeof *s);
    s->rounds = 64;
    CHECK_EQ(wf_barrier_init(&s->b, P), 0);
    CHECK_EQ(wf_barrier_parties(&s->b), P);
    wf_task_t t[P];
    spawn_n(t, P, party, s, 0);
    join_n(t, P);
    for (int r = 0; r < s->rounds; r++)
        for (int i = 0; i < P; i++)
            CHECK_EQ(atomic_load(&s->seen[r][i]), 1);
    CHECK_EQ(wf_barrier_n_waiting(&s->b), 0);
    CHECK_EQ(wf_barrier_broken(&s->b), 0);
    CHECK_EQ(wf_barrier_destroy(&s->b), 0);
    CHECK_EQ(wf_barrier_wait(&s->b), -EINVAL);
    CHECK_EQ(wf_barrier_parties(&s->b), -EINVAL);
    /* One party: never waits. */
    CHECK_EQ(wf_barrier_init(&s->b, 1), 0);
    CHECK_EQ(wf_barrier_wait(&s->b), 0);
    CHECK_EQ(wf_barrier_wait_until(&s->b, 0), 0);
    CHECK_EQ(wf_barrier_destroy(&s->b), 0);
    CHECK_EQ(wf_barrier_init(&s->b, 0), -EINVAL);
    CHECK_EQ(wf_barrier_init(NULL, 2), -EINVAL);
    free(s);
    return 0;
}

static void test_rounds(void **state)
{
    run_main(2, m_rounds, NULL);
    run_main(STRESS_WORKERS, m_rounds, NULL);
}

/* --- broken: abort, reset, a cancelled or timed-out party -------------------- */

static int wait_once(void *arg, void **res)
{
    return wf_barrier_wait(arg);
}

static int wait_short(void *arg, void **res)
{
    return wf_barrier_wait_until(arg, wf_deadline_in(3 * WF_NSEC_PER_MSEC));
}

/* 3 parties; two wait; then `how` ends it: 0 abort, 1 reset, 2 cancel one
 * of them, 3 one of them times out. */
static int m_broken(void *arg, void **res)
{
    for (int how = 0; how < 4; how++) {
        wf_barrier_t b;
        CHECK_EQ(wf_barrier_init(&b, 3), 0);
        wf_task_t t[2];
        CHECK_EQ(wf_spawn(&t[0], wait_once, &b, NULL), 0);
        CHECK(wait_parked(t[0]));
        CHECK_EQ(wf_barrier_n_waiting(&b), 1);
        CHECK_EQ(wf_barrier_destroy(&b), -EBUSY);
        CHECK_EQ(wf_spawn(&t[1], how == 3 ? wait_short : wait_once, &b, NULL), 0);
        /* The party with a deadline (how 3) is not watched: it may have
         * timed out, and broken the barrier, before we look. */
        if (how != 3) {
            CHECK(wait_parked(t[1]));
            CHECK_EQ(wf_barrier_n_waiting(&b), 2);
        }
        int want1 = -EPIPE;
        switch (how) {
        case 0:
            CHECK_EQ(wf_barrier_abort(&b), 0);
            break;
        case 1:
            CHECK_EQ(wf_barrier_reset(&b), 0);
            break;
        case 2:
            CHECK_EQ(wf_cancel(t[1]), 0);
            want1 = -ECANCELED;
            break;
        case 3:
            want1 = -ETIMEDOUT;
            break;
        }
        int st0 = 0, st1 = 0;
        CHECK_EQ(wf_join(t[0], &st0, NULL), 0);
        CHECK_EQ(wf_join(t[1], &st1, NULL), 0);
        CHECK_EQ(st0, -EPIPE);
        CHECK_EQ(st1, want1);
        CHECK_EQ(wf_barrier_n_waiting(&b), 0);
        if (how == 1) {
            CHECK_EQ(wf_barrier_broken(&b), 0); /* reset: usable at once */
        } else {
            CHECK_EQ(wf_barrier_broken(&b), 1);
            CHECK_EQ(wf_barrier_wait(&b), -EPIPE); /* later waits fail too */
            CHECK_EQ(wf_barrier_reset(&b), 0);
            CHECK_EQ(wf_barrier_broken(&b), 0);
        }
        /* A full round works again. */
        CHECK_EQ(wf_spawn(&t[0], wait_once, &b, NULL), 0);
        CHECK_EQ(wf_spawn(&t[1], wait_once, &b, NULL), 0);
        int me = wf_barrier_wait(&b);
        CHECK(me >= 0 && me < 3);
        CHECK_EQ(wf_join(t[0], &st0, NULL), 0);
        CHECK_EQ(wf_join(t[1], &st1, NULL), 0);
        CHECK(st0 >= 0 && st1 >= 0 && st0 != st1 && st0 != me && st1 != me);
        CHECK_EQ(wf_barrier_destroy(&b), 0);
    }
    return 0;
}

static void test_broken(void **state)
{
    run_main(2, m_broken, NULL);
}

/* --- stress: each round trips for all or breaks for all -------------------- */

enum { SP = 6 };

typedef struct {
    wf_barrier_t b;
    wf_event_t go[2];
    long rounds;
    _Atomic long reported;
    int result[SP]; /* this round's result per party */
    _Atomic long tripped, broken, mixed;
} st_state;

typedef struct {
    st_state *s;
    int idx;
} st_arg;

static int st_party(void *arg, void **res)
{
    st_arg *a = arg;
    st_state *s = a->s;
    for (long r = 0; r < s->rounds; r++) {
        int e;
        while ((e = wf_event_wait(&s->go[r % 2])) == -ECANCELED)
            wf_uncancel();
        if (e)
            return e;
        int i = wf_barrier_wait(&s->b);
        if (i == -ECANCELED)
            wf_uncancel();
        s->result[a->idx] = i;
        atomic_fetch_add(&s->reported, 1);
    }
    while (wf_uncancel() > 0)
        ;
    return 0;
}

static int m_stress(void *arg, void **res)
{
    st_state *s = calloc(1, sizeof *s);
    s->rounds = SCALED(3000);
    wf_barrier_init(&s->b, SP);
    st_arg a[SP];
    wf_task_t t[SP];
    for (int i = 0; i < SP; i++) {
        a[i].s = s;
        a[i].idx = i;
    }
    spawn_n(t, SP, st_party, a, sizeof a[0]);
    canceller_arg ca;
    start_canceller(&ca, t, SP, 13);
    for (long r = 0; r < s->rounds; r++) {
        wf_event_clear(&s->go[(r + 1) % 2]);
        wf_event_set(&s->go[r % 2]);
        while (atomic_load(&s->reported) < SP * (r + 1))
            wf_yield();
        /* Every party has reported round r and waits for round r+1's go. */
        int ok = 0, bad = 0;
        int idx_seen[SP] = {0};
        for (int i = 0; i < SP; i++) {
            int v = s->result[i];
            if (v >= 0 && v < SP) {
                ok++;
                idx_seen[v]++;
            } else {
                CHECK(v == -EPIPE || v == -ECANCELED);
                bad++;
            }
        }
        if (ok == SP) {
            for (int i = 0; i < SP; i++)
                CHECK_EQ(idx_seen[i], 1);
            atomic_fetch_add(&s->tripped, 1);
        } else if (bad == SP) {
            CHECK_EQ(wf_barrier_broken(&s->b), 1);
            CHECK_EQ(wf_barrier_reset(&s->b), 0);
            atomic_fetch_add(&s->broken, 1);
        } else {
            atomic_fetch_add(&s->mixed, 1);
            wf_barrier_reset(&s->b);
        }
        CHECK_EQ(wf_barrier_n_waiting(&s->b), 0);
    }
    join_n(t, SP);
    long cancels = stop_canceller(&ca);
    CHECK_EQ(atomic_load(&s->mixed), 0);
    CHECK_EQ(atomic_load(&s->tripped) + atomic_load(&s->broken), s->rounds);
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr, "barrier stress: %ld tripped, %ld broken, %ld cancels\n", atomic_load(&s->tripped),
                atomic_load(&s->broken), cancels);
    CHECK_EQ(wf_barrier_destroy(&s->b), 0);
    wf_event_destroy(&s->go[0]);
    wf_event_destroy(&s->go[1]);
    free(s);
    return 0;
}

static void test_stress(void **state)
{
    run_main(STRESS_WORKERS, m_stress, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounds),
        cmocka_unit_test(test_broken),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
