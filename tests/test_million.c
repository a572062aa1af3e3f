/* test_million.c - a million fibers alive at once, on a default machine
 * (vm.max_map_count 65530: they cannot each have a guard-page mapping).
 *
 * Each fiber counts itself in and sleeps; once all are asleep, main checks
 * the mapping count stayed under the limit, cancels every one, and joins
 * every one, checking each outcome. Sanitizer builds run fewer: ASan's
 * shadow memory and TSan's ~770 KiB of state per fiber make a million
 * impossible there, and the scaling of the mechanism is what the plain
 * build shows.
 */
#include "common.h"

#if defined(__SANITIZE_THREAD__)
#define MILLION 2000
#else
#define MILLION SCALED(1000000)
#endif

static _Atomic long asleep;

static int sleeper(void *arg, void **res)
{
    atomic_fetch_add_explicit(&asleep, 1, memory_order_relaxed);
    *res = arg;
    return wf_sleep(3600 * WF_NSEC_PER_SEC);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static int m_million(void *arg, void **res)
{
    long n = MILLION;
    wf_task_t *t = malloc(sizeof *t * (size_t)n);
    CHECK(t != NULL);
    long rss0 = rss_kib();
    atomic_store(&asleep, 0);
    for (long i = 0; i < n; i++) {
        int e = wf_spawn(&t[i], sleeper, (void *)(intptr_t)i, NULL);
        if (e) {
            fprintf(stderr, "spawn %ld: %s\n", i, wf_strerror(e));
            CHECK_EQ(e, 0);
            n = i;
            break;
        }
    }
    /* Wait (an event, polled with a generous limit) until all are parked. */
    CHECK(wait_count(&asleep, n, 600 * WF_NSEC_PER_SEC));
    long maps = count_lines("/proc/self/maps"), rss1 = rss_kib();
    if (getenv("WF_TEST_VERBOSE"))
        fprintf(stderr, "million: %ld fibers asleep, %ld mappings, %.2f KiB resident each\n", n, maps,
                (double)(rss1 - rss0) / (double)n);
    CHECK(maps < 65530);
    for (long i = 0; i < n; i++)
        CHECK_EQ(wf_cancel(t[i]), 0);
    for (long i = 0; i < n; i++) {
        int st = 0;
        void *rv = NULL;
        CHECK_EQ(wf_join(t[i], &st, &rv), 0);
        CHECK_EQ(st, -ECANCELED);
        CHECK_EQ((intptr_t)rv, i);
    }
    free(t);
    return 0;
}

static void test_million_live(void **state)
{
    run_main(0, m_million, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_million_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
