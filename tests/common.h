/* common.h - helpers shared by the test executables.
 *
 * cmocka's assert_* macros longjmp back to the test runner, which must never
 * happen from a fiber (another stack, maybe another thread). Inside fibers,
 * use CHECK / CHECK_EQ: they record the failure (file, line, values) and let
 * the fiber continue; run_main() then asserts that no check failed.
 */
#ifndef WF_TEST_COMMON_H
#define WF_TEST_COMMON_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <weft.h>

#ifndef WF_TEST_SCALE
#define WF_TEST_SCALE 1
#endif

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define WF_TEST_SANITIZED 1
#else
#define WF_TEST_SANITIZED 0
#endif

/* Size of a heavy test: `n` in the plain build, divided by the build's
 * scale (sanitizer setups raise it: their per-fiber cost is 10-100x). */
#define SCALED(n) ((n) / WF_TEST_SCALE > 0 ? (n) / WF_TEST_SCALE : 1)

extern _Atomic int check_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            atomic_fetch_add(&check_failures, 1);                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", __FILE__,         \
                    __LINE__, #a, #b, a_, b_);                                                     \
            atomic_fetch_add(&check_failures, 1);                                                  \
        }                                                                                          \
    } while (0)

/* Run `fn(arg)` as the main task of a runtime with `workers` workers (0:
 * default) and assert that it ran, returned 0, and that no CHECK failed. */
void run_main_cfg(const wf_config_t *cfg, wf_fn fn, void *arg);
void run_main(unsigned workers, wf_fn fn, void *arg);

/* Spin-wait politely (yielding the fiber) until *flag != 0 or the generous
 * deadline passes; returns whether the flag was seen. For tests that wait
 * on an event another fiber signals. */
bool wait_flag(_Atomic int *flag, int64_t timeout_ns);
bool wait_count(_Atomic long *count, long target, int64_t timeout_ns);

/* Small deterministic PRNG for randomised tests (per fiber). */
static inline uint64_t test_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Whether the test runs under valgrind (scripts/test valgrind). Some
 * kernel behaviours are emulated there differently; the few tests that
 * depend on one skip, or skip that check, and say which. */
bool on_valgrind(void);

/* Fork a child that runs `child(arg)` with its stderr going into a pipe
 * and exits with what that returns (if it lives that long: the tests that
 * use this check reports printed on the way to abort()). The parent reads
 * all the child prints on stderr (the first 64 KiB - 1 bytes), reaps it,
 * and returns the text, NUL-terminated (free it), with the wait status in
 * *wstatus. Call it from the test itself, not from a fiber: it asserts
 * (cmocka) that the pipe, the fork, the buffer and the wait worked. */
char *run_child_stderr(int (*child)(void *arg), void *arg, int *wstatus);

/* Count entries in a /proc/self directory or lines in a /proc/self file. */
long count_dir(const char *path);
long count_lines(const char *path);

#endif
