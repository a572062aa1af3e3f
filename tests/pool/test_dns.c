/* test_dns.c - name resolution through the pool (weft/dns.h): localhost,
 * a name that does not resolve, numeric hosts without the pool, hints and
 * services, bad arguments, deadlines and cancellation while the DNS crew
 * is full, a storm of lookups with tiny deadlines (abandoned results freed:
 * ASan counts), and the DNS crew's limit. Every fd and thread is counted. */
#include "pool_test.h"

#include <arpa/inet.h>
#include <weft/dns.h>

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) == INADDR_LOOPBACK;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

static int port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

static int m_localhost(void *arg, void **res)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    CHECK_EQ(wf_getaddrinfo("localhost", "8080", &hints, &ai, wf_deadline_in(LONG_NS)), 0);
    CHECK(ai != NULL);
    int n = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next, n++) {
        CHECK(is_loopback(a->ai_addr));
        CHECK_EQ(port_of(a->ai_addr), 8080);
        CHECK_EQ(a->ai_socktype, SOCK_STREAM);
    }
    CHECK(n >= 1);
    wf_freeaddrinfo(ai);
    wf_freeaddrinfo(NULL);

    /* IPv4 only. */
    hints.ai_family = AF_INET;
    CHECK_EQ(wf_getaddrinfo("localhost", NULL, &hints, &ai, WF_FOREVER), 0);
    for (struct addrinfo *a = ai; a; a = a->ai_next)
        CHECK_EQ(a->ai_family, AF_INET);
    wf_freeaddrinfo(ai);

    /* A service by name (/etc/services), and no hints at all. */
    if (access("/etc/services", R_OK) == 0) {
        CHECK_EQ(wf_getaddrinfo("localhost", "http", NULL, &ai, WF_FOREVER), 0);
        CHECK_EQ(port_of(ai->ai_addr), 80);
        wf_freeaddrinfo(ai);
    }

    /* wf_resolve: addresses with the port, loopback. */
    wf_addr_t addrs[8];
    int k = wf_resolve("localhost", 443, AF_UNSPEC, addrs, 8, WF_FOREVER);
    CHECK(k >= 1);
    for (int i = 0; i < k; i++) {
        CHECK(is_loopback((struct sockaddr *)&addrs[i].ss));
        CHECK_EQ(port_of((struct sockaddr *)&addrs[i].ss), 443);
        CHECK(addrs[i].len == sizeof(struct sockaddr_in) || addrs[i].len == sizeof(struct sockaddr_in6));
    }
    CHECK_EQ(wf_resolve("localhost", 1, AF_INET, addrs, 1, WF_FOREVER), 1); /* room for one */
    CHECK_EQ(addrs[0].ss.ss_family, AF_INET);
    return 0;
}

static void test_localhost(void **state)
{
    run_counted(NULL, 2, m_localhost, NULL);
}

static int m_unresolvable(void *arg, void **res)
{
    struct addrinfo *ai = (struct addrinfo *)1;
    /* .invalid never resolves (RFC 6761). Where the name servers cannot be
     * reached at all, the answer is "try again" rather than "no such name":
     * both are clear, and neither returns a list. */
    int r = wf_getaddrinfo("no-such-host.invalid", "80", NULL, &ai, wf_deadline_in(LONG_NS));
    CHECK(r == -ENOENT || r == -EAGAIN);
    CHECK(ai == (struct addrinfo *)1); /* untouched on failure */
    CHECK(strstr(wf_strerror(r), r == -ENOENT ? "does not resolve" : "name server") != NULL);
    wf_addr_t a;
    r = wf_resolve("no-such-host.invalid", 80, AF_UNSPEC, &a, 1, wf_deadline_in(LONG_NS));
    CHECK(r == -ENOENT || r == -EAGAIN);
    /* An unknown service. */
    CHECK_EQ(wf_getaddrinfo("localhost", "no-such-service-xyz", NULL, &ai, WF_FOREVER), -ENOENT);
    /* Bad hints. */
    struct addrinfo hints = {0};
    hints.ai_flags = 0x7fff0000;
    CHECK_EQ(wf_getaddrinfo("localhost", "80", &hints, &ai, WF_FOREVER), -EINVAL);
    hints.ai_flags = 0;
    hints.ai_family = 12345;
    CHECK_EQ(wf_getaddrinfo("localhost", "80", &hints, &ai, WF_FOREVER), -EAFNOSUPPORT);
    return 0;
}

static void test_unresolvable(void **state)
{
    run_counted(NULL, 2, m_unresolvable, NULL);
}

/* Numeric hosts never touch the pool. */
static int m_numeric(void *arg, void **res)
{
    wf_addr_t a[2];
    CHECK_EQ(wf_resolve("127.0.0.1", 80, AF_UNSPEC, a, 2, WF_FOREVER), 1);
    CHECK_EQ(a[0].ss.ss_family, AF_INET);
    CHECK_EQ(a[0].len, sizeof(struct sockaddr_in));
    CHECK_EQ(port_of((struct sockaddr *)&a[0].ss), 80);
    CHECK_EQ(wf_resolve("::1", 81, AF_UNSPEC, a, 2, WF_FOREVER), 1);
    CHECK_EQ(a[0].ss.ss_family, AF_INET6);
    CHECK_EQ(port_of((struct sockaddr *)&a[0].ss), 81);
    CHECK_EQ(wf_resolve("::1", 81, AF_INET6, a, 2, 0), 1); /* no wait needed: no deadline check */
    wf_pool_stats_t s;
    CHECK_EQ(wf_pool_stats(WF_POOL_DNS, &s), 0);
    CHECK_EQ(s.threads, 0);
    CHECK_EQ(s.peak, 0);
    /* Bad arguments. */
    CHECK_EQ(wf_resolve(NULL, 80, AF_UNSPEC, a, 2, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_resolve("", 80, AF_UNSPEC, a, 2, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_resolve("::1", 80, AF_UNSPEC, NULL, 2, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_resolve("::1", 80, AF_UNSPEC, a, 0, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_resolve("::1", 80, AF_UNIX, a, 2, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_resolve("::1", 80, AF_UNSPEC, a, 2, -2), -EINVAL);
    struct addrinfo *ai;
    CHECK_EQ(wf_getaddrinfo("localhost", "80", NULL, NULL, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_getaddrinfo(NULL, NULL, NULL, &ai, WF_FOREVER), -EINVAL);
    CHECK_EQ(wf_getaddrinfo("localhost", NULL, NULL, &ai, -7), -EINVAL);
    return 0;
}

static void test_numeric(void **state)
{
    struct addrinfo *ai;
    wf_addr_t a;
    assert_int_equal(wf_getaddrinfo("localhost", "80", NULL, &ai, WF_FOREVER), -EPERM);
    assert_int_equal(wf_resolve("127.0.0.1", 80, AF_UNSPEC, &a, 1, WF_FOREVER), -EPERM);
    run_counted(NULL, 2, m_numeric, NULL);
}

/* With the DNS crew's 4 threads stalled, a lookup queues: its deadline and
 * its cancellation take it back (nothing leaks: ASan), while the stalled
 * ones are untouched. */
typedef struct {
    struct addrinfo *ai;
    int r;
    _Atomic int started;
} lookup_try;

static int look(void *arg, void **res)
{
    lookup_try *l = arg;
    atomic_store(&l->started, 1);
    l->r = wf_getaddrinfo("localhost", "80", NULL, &l->ai, WF_FOREVER);
    return 0;
}

static int stall(void *arg, void **res)
{
    wf_offload_opts_t o = WF_OFFLOAD_OPTS_INIT;
    o.pool = WF_POOL_DNS;
    return wf_run_in_executor(&o, wait_gate, arg, NULL, NULL);
}

static int m_full_crew(void *arg, void **res)
{
    wf_future_t *gate;
    CHECK_EQ(wf_future_create(&gate), 0);
    wf_task_t st[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(wf_spawn(&st[i], stall, gate, NULL), 0);
    wf_pool_stats_t s = {0};
    int64_t dl = wf_deadline_in(LONG_NS);
    while (wf_pool_stats(WF_POOL_DNS, &s) == 0 && s.running < 4 && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    CHECK_EQ(s.running, 4);

    struct addrinfo *ai = NULL;
    CHECK_EQ(wf_getaddrinfo("localhost", "80", NULL, &ai, wf_deadline_in(20 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK(ai == NULL);
    wf_addr_t a;
    CHECK_EQ(wf_resolve("localhost", 80, AF_UNSPEC, &a, 1, wf_deadline_in(5 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    lookup_try l = {0};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, look, &l, NULL), 0);
    CHECK(wait_flag(&l.started, LONG_NS));
    dl = wf_deadline_in(LONG_NS);
    while (wf_pool_stats(WF_POOL_DNS, &s) == 0 && s.queued < 1 && wf_now() < dl)
        wf_sleep(100 * WF_NSEC_PER_USEC);
    CHECK_EQ(wf_cancel(t), 0);
    CHECK_EQ(wf_join(t, NULL, NULL), 0);
    CHECK_EQ(l.r, -ECANCELED);
    CHECK_EQ(wf_pool_stats(WF_POOL_DNS, &s), 0);
    CHECK_EQ(s.queued, 0);
    CHECK_EQ(s.running, 4);

    CHECK_EQ(wf_future_set(gate, 0, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(wf_join(st[i], NULL, NULL), 0);
    /* The crew serves lookups again. */
    CHECK_EQ(wf_getaddrinfo("localhost", "80", NULL, &ai, WF_FOREVER), 0);
    wf_freeaddrinfo(ai);
    wf_future_release(gate);
    return 0;
}

static void test_full_crew(void **state)
{
    run_counted(NULL, 2, m_full_crew, NULL);
}

/* Many fibers look up at once, many with deadlines so short that their
 * lookups are taken back, abandoned while running, or won: every result
 * returned is freed by its caller and every abandoned one by the pool (ASan
 * would report a leak or a double free). The crew never exceeds 4. */
typedef struct {
    _Atomic long ok, timed_out;
} storm_books;

static int storm_fiber(void *arg, void **res)
{
    storm_books *b = arg;
    for (int i = 0; i < SCALED(40); i++) {
        int64_t dl = i % 2 ? wf_deadline_in((i % 5) * 30 * WF_NSEC_PER_USEC) : WF_FOREVER;
        struct addrinfo *ai = NULL;
        int r = wf_getaddrinfo("localhost", "80", NULL, &ai, dl);
        if (r == 0) {
            CHECK(ai != NULL && is_loopback(ai->ai_addr));
            wf_freeaddrinfo(ai);
            atomic_fetch_add(&b->ok, 1);
        } else {
            CHECK_EQ(r, -ETIMEDOUT);
            atomic_fetch_add(&b->timed_out, 1);
        }
    }
    return 0;
}

static int m_storm(void *arg, void **res)
{
    enum { FIBERS = 50 };
    storm_books b = {0};
    wf_task_t t[FIBERS];
    for (int i = 0; i < FIBERS; i++)
        CHECK_EQ(wf_spawn(&t[i], storm_fiber, &b, NULL), 0);
    for (int i = 0; i < FIBERS; i++)
        CHECK_EQ(wf_join(t[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&b.ok) + atomic_load(&b.timed_out), FIBERS * SCALED(40));
    CHECK(atomic_load(&b.ok) >= FIBERS * SCALED(40) / 2); /* every FOREVER lookup */
    wf_pool_stats_t s;
    CHECK_EQ(wf_pool_stats(WF_POOL_DNS, &s), 0);
    CHECK(s.peak <= 4);
    return 0;
}

static void test_storm(void **state)
{
    run_counted(NULL, 4, m_storm, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localhost), cmocka_unit_test(test_unresolvable), cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_full_crew), cmocka_unit_test(test_storm),
    };
    return cmocka_run_group_tests(tests, warm_up, NULL);
}
