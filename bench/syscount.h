/* syscount.h - counting the system calls of the server under test, for
 * `weft-bench echo --strace` and `echo --perf` (bench_net.c).
 *
 * Two ways, because neither is enough alone:
 * - strace -c -f attaches to every thread (and follows new ones) and
 *   tables every call, but each call then stops in the tracer, so the
 *   server runs several times slower, finds more work ready at each wake-up
 *   and so makes fewer of the calls that come back empty (the read that
 *   returns EAGAIN, the epoll_wait per batch) than it would at full speed;
 * - perf stat counts the kernel's syscall tracepoints without stopping the
 *   server, so the count is the one of a real run, but it sees only the
 *   threads that exist when it attaches (after the warm-up, Go's, Tokio's
 *   and weft's thread sets are settled; a thread born in the window is
 *   reported on stderr).
 * Both count from the moment every thread is watched (strace: /proc says so;
 * perf: it acknowledges an 'enable' on its control pipe) to the stop.
 */
#ifndef WF_BENCH_SYSCOUNT_H
#define WF_BENCH_SYSCOUNT_H

#include "server_proc.h"

#include <stdint.h>

typedef enum { SYSCOUNT_STRACE, SYSCOUNT_PERF } syscount_method;

typedef struct {
    uint64_t calls;      /* every system call */
    uint64_t epoll_wait; /* epoll_wait, epoll_pwait, epoll_pwait2 */
    uint64_t futex;
    uint64_t reads;  /* read, readv, recvfrom, recvmsg */
    uint64_t writes; /* write, writev, sendto, sendmsg */
    uint64_t errors; /* strace: calls that failed; perf: calls that returned EAGAIN */
} syscall_counts;

typedef struct {
    syscount_method method;
    pid_t tool; /* the strace or perf process */
    int ctl, ack;
    pid_t server;
    int threads;  /* the server's thread count when counting began */
    char out[64]; /* the tool's table or counts */
    char err[64]; /* perf's stderr */
} syscount;

/* Start counting the system calls of @p s; returns once every thread of
 * the server is counted. Exits 2 (saying why) when the tool is missing or
 * may not trace. */
void syscount_start(syscount *c, syscount_method m, const server_proc *s);

/* Stop counting and read the counts into @p k. */
void syscount_stop(syscount *c, syscall_counts *k);

#endif
