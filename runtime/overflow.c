/* overflow.c - reporting a fiber stack overflow by the task's name.
 *
 * Two detectors (stack.h): a fault in a stack's guard page, caught by a
 * SIGSEGV handler that runs on the worker's alternate signal stack (the
 * fiber's own stack is exhausted), and a broken canary on an unguarded stack,
 * found at the next switch away from the fiber or, if the overflow ran on
 * into unmapped memory, by the same handler. Either way the report names the
 * task and its stack size, and the process aborts: after an overflow, memory
 * can no longer be trusted.
 *
 * Signal dispositions are per process, so the handler is installed once for
 * all runtimes of the process (a count under a mutex) and a fault that is
 * not a fiber overflow is handed to whatever handler was there before.
 */
#include "runtime.h"
#include "mapping.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ALTSTACK_SIZE (64 * 1024)

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned install_count;
static struct sigaction old_segv, old_bus;

/* --- async-signal-safe formatting -------------------------------------- */

typedef struct {
    char buf[512];
    size_t n;
} msg;

static void put(msg *m, const char *s)
{
    while (*s && m->n < sizeof m->buf - 1)
        m->buf[m->n++] = *s++;
}

static void put_u(msg *m, unsigned long long v)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i && m->n < sizeof m->buf - 1)
        m->buf[m->n++] = tmp[--i];
}

static void report(wf__task *t, const char *how)
{
    msg m = {.n = 0};
    put(&m, "weft: stack overflow in task '");
    put(&m, wf__task_name(t));
    put(&m, "' (handle ");
    put_u(&m, (unsigned long long)t->id);
    put(&m, "): its stack of ");
    put_u(&m, (unsigned long long)(t->stack ? t->stack->size : t->stack_size));
    put(&m, " bytes is exhausted (");
    put(&m, how);
    put(&m, "). Give it a larger stack (wf_spawn_opts_t.stack_size) or use less of it.\n");
    ssize_t r = write(STDERR_FILENO, m.buf, m.n);
    (void)r;
}

_Noreturn void wf__overflow_report(wf__task *t)
{
    report(t, "its canary was overwritten");
    /* As from the fault handler: SIGABRT defaulted, so that a handler the
     * program installed (a test framework's, which longjmps) cannot resume
     * anything on a smashed stack; the process ends with SIGABRT. */
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    wf__worker *w = wf__tls_worker();
    wf__task *t = w ? w->current : NULL;
    if (t && t->stack) {
        uintptr_t addr = (uintptr_t)si->si_addr;
        bool guard = wf__stack_is_overflow_addr(t->stack, addr);
        if (guard || !wf__stack_canary_full_ok(t->stack)) {
            report(t, guard ? "it faulted just below its stack" : "its canary was overwritten");
            /* abort() with SIGABRT unblocked and defaulted, from the
             * alternate stack: async-signal-safe. */
            signal(SIGABRT, SIG_DFL);
            abort();
        }
    }
    /* Not ours: hand it to the handler that was there before us, staying
     * installed (a program that repairs faults, a GC or a JIT, faults
     * again later, and the next overflow must still be reported). Only a
     * default or ignored disposition is put back, so that the faulting
     * instruction runs again and the process dies of the signal as it
     * would have without weft. */
    const struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction) {
            old->sa_sigaction(sig, si, uc);
            return;
        }
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    sigaction(sig, old, NULL);
}

int wf__overflow_install(void)
{
    pthread_mutex_lock(&install_lock);
    if (install_count++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, &old_segv) < 0 || sigaction(SIGBUS, &sa, &old_bus) < 0) {
            int e = errno;
            install_count--;
            pthread_mutex_unlock(&install_lock);
            return -e;
        }
    }
    pthread_mutex_unlock(&install_lock);
    return 0;
}

void wf__overflow_uninstall(void)
{
    pthread_mutex_lock(&install_lock);
    if (install_count && --install_count == 0) {
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
    }
    pthread_mutex_unlock(&install_lock);
}

int wf__overflow_thread_init(wf__worker *w)
{
    void *m = wf__map_anon(ALTSTACK_SIZE, PROT_READ | PROT_WRITE, 0);
    if (m == MAP_FAILED)
        return -ENOMEM;
    stack_t ss = {.ss_sp = m, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) < 0) {
        wf__unmap(m, ALTSTACK_SIZE);
        return -errno;
    }
    w->altstack = m;
    return 0;
}

void wf__overflow_thread_fini(wf__worker *w)
{
    if (!w->altstack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    wf__unmap(w->altstack, ALTSTACK_SIZE);
    w->altstack = NULL;
}
