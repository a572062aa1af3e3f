// tests/cxx/test_cxx.cpp - weft used from C++17: the public headers compile
// as C++, their types have the layout the C library was built with (abi.c),
// and the API works through C++ code: lambdas as task bodies, a lock guard,
// a timer completing a future, a queue between two tasks, a timeout scope,
// cancellation.
//
// No cmocka: scripts/check-install builds this same file against an
// installed weft with nothing but pkg-config. Exits 0 when every check holds.
#include <weft.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "abi.h"

static int failures = 0;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                  \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

#define CHECK_EQ(a, b)                                                                                       \
    do {                                                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                  \
        if (a_ != b_) {                                                                                      \
            std::fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a,  \
                         #b, a_, b_);                                                                        \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

// --- layout: C++'s view against C's --------------------------------------------

static_assert(std::is_standard_layout<wf_lock_t>::value, "wf_lock_t is standard layout");
static_assert(std::is_trivially_copyable<wf_timer_t>::value, "wf_timer_t is trivially copyable");
static_assert(alignof(wf_lock_t) == 16 && alignof(wf_timeout_t) == 16 && alignof(wf_group_t) == 16,
              "WF_ALIGNAS gives the opaque storage its alignment in C++");

static void check_abi()
{
#define ABI_T(type) {#type, sizeof(type), alignof(type)},
#define ABI_F(type, field) {#type "." #field, sizeof(((type *)nullptr)->field), offsetof(type, field)},
    static const abi_entry cxx[] = {ABI_LAYOUT(ABI_T, ABI_F)};
#undef ABI_T
#undef ABI_F
    const size_t n = sizeof cxx / sizeof cxx[0];
    CHECK_EQ(n, abi_c_count);
    for (size_t i = 0; i < n && i < abi_c_count; i++) {
        const abi_entry &c = abi_c[i], &x = cxx[i];
        if (std::strcmp(c.name, x.name) != 0 || c.size != x.size || c.align != x.align) {
            std::fprintf(stderr, "layout differs: C %s size %zu align/offset %zu, C++ %s size %zu align/offset %zu\n",
                         c.name, c.size, c.align, x.name, x.size, x.align);
            failures++;
        }
    }
}

// --- a lock guard, as C++ code would wrap wf_lock_t ------------------------------

class lock_guard {
  public:
    explicit lock_guard(wf_lock_t &l) : l_(l), held_(wf_lock_acquire(&l) == 0) {}
    ~lock_guard()
    {
        if (held_)
            wf_lock_release(&l_);
    }
    lock_guard(const lock_guard &) = delete;
    lock_guard &operator=(const lock_guard &) = delete;
    bool held() const { return held_; }

  private:
    wf_lock_t &l_;
    bool held_;
};

static wf_lock_t counter_lock = WF_LOCK_INIT; // static storage, static initializer
static long counter = 0;

enum { NTASKS = 8, ROUNDS = 200, NITEMS = 1000 };

static void check_spawn_join_lock()
{
    std::vector<wf_task_t> tasks(NTASKS);
    for (intptr_t i = 0; i < NTASKS; i++) {
        int e = wf_spawn(
            &tasks[i],
            [](void *arg, void **result) -> int {
                for (int r = 0; r < ROUNDS; r++) {
                    lock_guard g(counter_lock);
                    if (!g.held())
                        return -EPROTO;
                    long seen = counter;
                    wf_yield(); // others run while we hold the lock, and must wait
                    counter = seen + 1;
                }
                *result = (void *)((intptr_t)arg * 2);
                return 0;
            },
            (void *)i, nullptr);
        CHECK_EQ(e, 0);
    }
    for (intptr_t i = 0; i < NTASKS; i++) {
        int status = -1;
        void *r = nullptr;
        CHECK_EQ(wf_join(tasks[i], &status, &r), 0);
        CHECK_EQ(status, 0);
        CHECK_EQ((intptr_t)r, i * 2);
    }
    CHECK_EQ(counter, (long)NTASKS * ROUNDS);
    CHECK_EQ(wf_lock_locked(&counter_lock), 0);
    CHECK_EQ(wf_join(tasks[0], nullptr, nullptr), -EINVAL); // given back: the handle is dead

    wf_lock_t local = WF_LOCK_INIT; // automatic storage, static initializer
    CHECK_EQ(wf_lock_try_acquire(&local), 0);
    CHECK_EQ(wf_lock_try_acquire(&local), -EDEADLK);
    CHECK_EQ(wf_lock_release(&local), 0);
    CHECK_EQ(wf_lock_destroy(&local), 0);
}

static void check_spawn_opts()
{
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    CHECK(o.name == nullptr && o.stack_size == 0 && o.worker == -1 && o.drop == nullptr);
    std::string name = "cxx-task";
    o.name = name.c_str();
    o.stack_size = 128 * 1024;
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, [](void *, void **) -> int { return -ERANGE; }, nullptr, &o), 0);
    char buf[32];
    CHECK_EQ(wf_task_name(t, buf, sizeof buf), 0);
    CHECK(name == buf);
    int status = 0;
    CHECK_EQ(wf_join(t, &status, nullptr), 0);
    CHECK_EQ(status, -ERANGE);
}

static void check_timer()
{
    wf_future_t *f = nullptr;
    CHECK_EQ(wf_future_create(&f), 0);
    if (!f)
        return;
    wf_timer_t tm = WF_TIMER_INIT;
    CHECK_EQ(wf_timer_cancel(&tm), -EALREADY); // zero storage: a timer never started
    // The callback runs outside any fiber; completing a future is allowed
    // there. The completer holds its own reference (future.h): the waiter
    // may release the future as soon as it is woken, while wf_future_set
    // is still returning.
    CHECK_EQ(wf_future_ref(f), 0);
    CHECK_EQ(wf_timer_start(
                 &tm, wf_deadline_in(WF_NSEC_PER_MSEC),
                 [](void *arg) {
                     wf_future_t *fut = static_cast<wf_future_t *>(arg);
                     wf_future_set(fut, 0, (void *)(intptr_t)42);
                     wf_future_release(fut);
                 },
                 f),
             0);
    int status = -1;
    void *r = nullptr;
    CHECK_EQ(wf_future_wait(f, wf_deadline_in(60 * WF_NSEC_PER_SEC), &status, &r), 0);
    CHECK_EQ(status, 0);
    CHECK_EQ((intptr_t)r, 42);
    CHECK_EQ(wf_timer_cancel(&tm), -EALREADY); // fired
    CHECK_EQ(wf_future_release(f), 0);
}

static void check_queue()
{
    wf_queue_t *q = nullptr;
    CHECK_EQ(wf_queue_create(&q, 4, WF_QUEUE_FIFO, nullptr), 0);
    if (!q)
        return;
    wf_task_t producer;
    CHECK_EQ(wf_spawn(
                 &producer,
                 [](void *arg, void **) -> int {
                     auto *qq = static_cast<wf_queue_t *>(arg);
                     for (intptr_t i = 1; i <= NITEMS; i++) {
                         int e = wf_queue_put(qq, (void *)i); // waits while the queue is full
                         if (e)
                             return e;
                     }
                     return 0;
                 },
                 q, nullptr),
             0);
    long sum = 0;
    bool in_order = true;
    for (intptr_t i = 1; i <= NITEMS; i++) {
        void *item = nullptr;
        int e = wf_queue_get(q, &item);
        CHECK_EQ(e, 0);
        if (e)
            break;
        in_order &= (intptr_t)item == i;
        sum += (long)(intptr_t)item;
    }
    CHECK(in_order);
    CHECK_EQ(sum, (long)NITEMS * (NITEMS + 1) / 2);
    int status = -1;
    CHECK_EQ(wf_join(producer, &status, nullptr), 0);
    CHECK_EQ(status, 0);
    CHECK_EQ(wf_queue_empty(q), 1);
    size_t left = 99;
    CHECK_EQ(wf_queue_destroy(q, nullptr, nullptr, &left), 0);
    CHECK_EQ(left, 0);
}

static void check_timeout_and_cancel()
{
    wf_timeout_t to{};
    CHECK_EQ(wf_timeout_enter_in(&to, 5 * WF_NSEC_PER_MSEC), 0);
    CHECK_EQ(wf_sleep(3600 * WF_NSEC_PER_SEC), -ETIMEDOUT); // the scope's deadline ends the wait
    CHECK_EQ(wf_timeout_leave(&to), 1);
    CHECK_EQ(wf_timeout_expired(&to), 1);

    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, [](void *, void **) -> int { return wf_sleep(3600 * WF_NSEC_PER_SEC); }, nullptr,
                      nullptr),
             0);
    CHECK_EQ(wf_cancel(t), 0);
    int status = 0;
    CHECK_EQ(wf_join(t, &status, nullptr), 0);
    CHECK_EQ(status, -ECANCELED);
}

int main()
{
    check_abi();
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = 2;
    int status = -1;
    int e = wf_run(
        &cfg,
        [](void *, void **) -> int {
            check_spawn_join_lock();
            check_spawn_opts();
            check_timer();
            check_queue();
            check_timeout_and_cancel();
            return 0;
        },
        nullptr, &status, nullptr);
    CHECK_EQ(e, 0);
    CHECK_EQ(status, 0);
    if (failures) {
        std::fprintf(stderr, "test_cxx: %d check(s) failed\n", failures);
        return 1;
    }
    std::printf("test_cxx: weft from C++17: all checks passed\n");
    return 0;
}
