/* bench_net.h - what the server benchmarks share (bench_net.c: echo and the
 * table; bench_http.c: http and conns).
 *
 * The load clients are plain C on epoll, not weft, so that every server,
 * weft's, Go's and Tokio's, faces the identical client. Every socket they
 * open is close-on-exec, and every send uses MSG_NOSIGNAL.
 */
#ifndef WF_BENCH_NET_H
#define WF_BENCH_NET_H

#include "bench.h"
#include "server_proc.h"

/* The server @p o asks for: --server, or else weft's example @p example
 * (examples/NAME in the build that holds this weft-bench). Exits 2 when
 * --impl is go or tokio and --server is missing. */
const char *net_server_path(const bench_opts *o, const char *example);

/* A connected TCP socket to @p s (blocking connect), close-on-exec, with
 * TCP_NODELAY; exits 2 on failure. */
int net_connect(const server_proc *s);

void net_nonblock(int fd);
void net_nodelay(int fd);

/* Raise this process's RLIMIT_NOFILE soft limit so that @p need fds fit
 * (plus a margin); exits 2, saying why, when the hard limit is lower. */
void net_need_fds(long need);

/* Stop the server; a server that does not exit 0 within 5 s of SIGTERM
 * fails the benchmark (after its figures were printed). */
void net_stop(server_proc *s);

int bench_http(const bench_opts *o);
int bench_conns(const bench_opts *o);

#endif
