/* atomic.h - the one place weft's concurrency vocabulary is defined.
 *
 * Every shared word in the runtime is a C11 atomic and every access names its
 * memory order at the call site, with a comment saying what it synchronises
 * with. This header adds only what C11 lacks: a CPU pause for spin loops, the
 * cache-line size used to keep hot words apart, branch hints, and the knobs
 * that tests and sanitizer builds turn (see WF_RUNQ_LOG2).
 */
#ifndef WF_ATOMIC_H
#define WF_ATOMIC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WF_CACHELINE 64
#define WF_ALIGNED_CL _Alignas(WF_CACHELINE)

#define wf__likely(x) __builtin_expect(!!(x), 1)
#define wf__unlikely(x) __builtin_expect(!!(x), 0)

#if defined(__SANITIZE_THREAD__)
#define WF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WF_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WF_ASAN 1
#endif
#endif
#ifndef WF_TSAN
#define WF_TSAN 0
#endif
#ifndef WF_ASAN
#define WF_ASAN 0
#endif

/* Debug-only checks are plain `if (WF_DEBUG)` so they always compile. */
#ifdef NDEBUG
static const bool WF_DEBUG = false;
#else
static const bool WF_DEBUG = true;
#endif

static inline void wf__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* A full (StoreLoad) fence, for the Dekker pairs of the wake-up protocols.
 * TSan does not model atomic_thread_fence and warns about it; there we use
 * a seq_cst RMW on a thread-local word, which is the same full barrier on
 * x86 and creates no happens-before edge that could hide a real race. */
static inline void wf__fence(void)
{
#if WF_TSAN
    static _Thread_local atomic_uint fence_word;
    atomic_fetch_add_explicit(&fence_word, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* A broken internal invariant: print and abort (Go's throw). Never used for
 * bad user input, which always gets an error code. */
_Noreturn void wf__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), cold));

#define wf__assert(cond, what)                                                                  \
    do {                                                                                        \
        if (wf__unlikely(!(cond)))                                                              \
            wf__panic("invariant broken: %s (%s) at %s:%d", what, #cond, __FILE__, __LINE__);   \
    } while (0)

#endif
