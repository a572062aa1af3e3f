/* server_proc.h - the server under test, as a child process of weft-bench.
 *
 * bench_net.c measures servers that obey bench/peers/HTTP.md: weft's
 * examples and their Go and Tokio peers. This starts one (fork + exec of
 * `PATH --host 127.0.0.1 --port 0 --workers N`), learns its address from
 * its ready line, reads its CPU time and resident set from /proc, and stops
 * it with SIGTERM, checking that it exits 0. The harness is single-threaded
 * and does not run a weft runtime, so fork is safe.
 */
#ifndef WF_BENCH_SERVER_PROC_H
#define WF_BENCH_SERVER_PROC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct server_proc {
    const char *path;             /* the executable */
    pid_t pid;                    /* 0 once stopped */
    int out;                      /* read end of the server's stdout */
    struct sockaddr_storage addr; /* where it listens */
    socklen_t addrlen;
    char hostport[80]; /* "HOST:PORT" as its ready line said it */
} server_proc;

/* Start the server at @p path with @p workers workers and wait (at most
 * 15 s) for its line "listening on HOST:PORT". The child gets SIGKILL if
 * weft-bench dies first, and an RLIMIT_NOFILE soft limit of at most 1024
 * (the usual default), so a server that does not raise its own limit as
 * the contract says cannot borrow a raised limit from the harness.
 * Exits 2 (BENCH_CHECK) when the server cannot be started or says nothing
 * usable. */
void server_start(server_proc *s, const char *path, unsigned workers);

/* CPU time (user + system) the whole server process has used so far, in
 * seconds, from /proc/PID/stat (all its threads, live and exited; the
 * kernel's clock-tick resolution, 10 ms). */
double server_cpu_s(const server_proc *s);

/* The server's resident set (VmRSS of /proc/PID/status), in KiB. */
long server_rss_kib(const server_proc *s);

/* The ids of the server's threads (/proc/PID/task) into @p tids, at most
 * @p max; returns how many there are (may exceed @p max). */
int server_threads(const server_proc *s, pid_t *tids, int max);

/* Send SIGTERM and wait up to 5 s for the server to exit. Returns true if
 * it exited with status 0; otherwise says what happened on stderr (a
 * status, a signal, or no exit: then it is killed with SIGKILL) and
 * returns false. Whatever the server still wrote to stdout is copied to
 * stderr. */
bool server_stop(server_proc *s);

/* Seconds on CLOCK_MONOTONIC. */
double now_s(void);

#endif
