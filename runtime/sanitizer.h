/* sanitizer.h - announcing fiber switches and stacks to ASan, TSan and
 * valgrind. Each helper compiles to nothing in a build without that tool.
 *
 * ASan must be told where the stack is going (start_switch) and, once
 * there, that the switch finished (finish_switch), or it reports false
 * stack-buffer overflows and misses real ones. TSan treats each fiber as a
 * thread of its own: every switch is announced with __tsan_switch_to_fiber
 * (flag 0 = the switch synchronises, which is the truth: the two fibers run
 * one after the other on one OS thread). Valgrind needs each stack registered
 * once, or it takes the stack-pointer jump for a huge alloca.
 */
#ifndef WF_SANITIZER_H
#define WF_SANITIZER_H

#include "atomic.h"
#include "wf_config.h"
#include <stddef.h>

#if WF_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif
#if WF_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_set_fiber_name(void *fiber, const char *name);
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#endif
#if WF_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

/* --- ASan ---------------------------------------------------------------- */
static inline void wf__asan_start_switch(void **save, const void *bottom, size_t size)
{
#if WF_ASAN
    __sanitizer_start_switch_fiber(save, bottom, size);
#else
    (void)save, (void)bottom, (void)size;
#endif
}

static inline void wf__asan_finish_switch(void *save)
{
#if WF_ASAN
    __sanitizer_finish_switch_fiber(save, NULL, NULL);
#else
    (void)save;
#endif
}

static inline void wf__asan_unpoison(const void *p, size_t n)
{
#if WF_ASAN
    __asan_unpoison_memory_region(p, n);
#else
    (void)p, (void)n;
#endif
}

/* --- TSan ---------------------------------------------------------------- */
static inline void *wf__tsan_current(void)
{
#if WF_TSAN
    return __tsan_get_current_fiber();
#else
    return NULL;
#endif
}

static inline void *wf__tsan_create(void)
{
#if WF_TSAN
    return __tsan_create_fiber(0);
#else
    return NULL;
#endif
}

static inline void wf__tsan_destroy(void *f)
{
#if WF_TSAN
    if (f)
        __tsan_destroy_fiber(f);
#else
    (void)f;
#endif
}

static inline void wf__tsan_switch(void *f)
{
#if WF_TSAN
    __tsan_switch_to_fiber(f, 0);
#else
    (void)f;
#endif
}

static inline void wf__tsan_name(void *f, const char *name)
{
#if WF_TSAN
    __tsan_set_fiber_name(f, name);
#else
    (void)f, (void)name;
#endif
}

/* Happens-before through a channel TSan cannot see (the kernel: an epoll
 * registration carries a pointer to the poller thread). */
static inline void wf__tsan_release(void *addr)
{
#if WF_TSAN
    __tsan_release(addr);
#else
    (void)addr;
#endif
}

static inline void wf__tsan_acquire(void *addr)
{
#if WF_TSAN
    __tsan_acquire(addr);
#else
    (void)addr;
#endif
}

/* --- valgrind ------------------------------------------------------------ */
static inline unsigned wf__vg_stack_register(void *lo, void *hi)
{
#if WF_HAVE_VALGRIND
    return VALGRIND_STACK_REGISTER(lo, hi);
#else
    (void)lo, (void)hi;
    return 0;
#endif
}

static inline void wf__vg_stack_deregister(unsigned id)
{
#if WF_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(id);
#else
    (void)id;
#endif
}

#endif
