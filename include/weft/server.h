/* weft/server.h - servers: a task per connection, a bound on concurrent
 * connections, an accept loop that survives running out of descriptors,
 * and graceful shutdown (asyncio's start_server and Server.close /
 * wait_closed, Go's http.Server.Shutdown).
 *
 * A server owns a listening socket and an accept loop task. Each accepted
 * connection gets a stream (stream.h) and a task of its own that calls the
 * handler; when the handler returns, the server flushes and closes the
 * stream (inside a cleanup scope bounded by opts.close_timeout, so a
 * cancelled handler's reply still goes out) and frees what it had.
 *
 * THE ACCEPT LOOP. With opts.max_conns set, the loop accepts only while
 * fewer handlers run: the rest wait in the kernel's backlog. A connection
 * the peer reset before it was accepted is skipped. When the process or
 * the system is out of descriptors (EMFILE, ENFILE) or memory (ENOBUFS,
 * ENOMEM), the connection stays in the backlog and the loop sleeps 1 ms,
 * doubling up to 16 ms, then tries again: it does not spin, does not die,
 * and serves again within one such sleep of a descriptor coming free. Such
 * an error is reported once per episode (opts.on_error, or one line on
 * stderr), not at every retry.
 *
 * GRACEFUL SHUTDOWN (wf_server_shutdown), in steps:
 *   1. Stop accepting: the listening socket is closed (new connections are
 *      refused) and the accept loop ends. With opts.shut_reads, the read
 *      side of every connection is shut down: idle ones end at once.
 *   2. Let the handlers finish until the deadline: a handler that is in the
 *      middle of a reply completes it.
 *   3. Cancel the handlers still running (their waits fail with
 *      -ECANCELED: an idle keep-alive connection parked in a read ends at
 *      once) and wait for them all to end; each one's stream is flushed
 *      within opts.close_timeout and closed.
 *   4. Free the server.
 */
#ifndef WEFT_SERVER_H
#define WEFT_SERVER_H

#include "core.h"
#include "net.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup server Servers
 * @{ */

/** A running server. Opaque. */
typedef struct wf_server wf_server_t;

/** A connection handler (asyncio's client_connected_cb), called in a task
 * of its own for each connection. The stream is the server's: the handler
 * must not close it (the server flushes and closes it once the handler
 * returns). The return value is the task's status: 0, or a negative errno
 * that the server ignores. */
typedef int (*wf_server_fn)(wf_stream_t *st, void *arg);

/** Server options. */
typedef struct wf_server_opts {
    unsigned max_conns;       /**< at most this many handlers at once (the
                                   rest wait in the backlog); 0: no bound */
    wf_stream_opts_t stream;  /**< each connection's stream options */
    int64_t close_timeout;    /**< ns a finished handler's stream may take
                                   to flush before it is closed anyway;
                                   default 5 s */
    size_t stack_size;        /**< handler tasks' stack size; 0: the
                                   runtime's default */
    /** Called from the accept loop when accept fails (once per episode of
     * the same error, as described at the top); NULL prints one line on
     * stderr. It must not block. */
    void (*on_error)(int err, void *arg);
    void *on_error_arg;
    wf_listen_opts_t listen;  /**< for wf_start_server / _unix_server */
    /** At shutdown, shut down the read side of every connection (step 1):
     * a handler waiting for its next request reads end of file at once,
     * one that has a request in its buffer still answers it. What
     * request/response servers (HTTP) want, as Go's http.Server closes its
     * idle connections; default false (handlers then end by themselves or
     * at the deadline). */
    bool shut_reads;
} wf_server_opts_t;

/** Fill @p o with the defaults above. NULL is ignored. */
void wf_server_opts_init(wf_server_opts_t *o);

/** Serve on the listening socket @p l, which the server takes over (the
 * caller's reference; the server closes it at shutdown).
 * @param fn   the handler; @p arg is passed to it.
 * @param opts NULL for the defaults.
 * @return 0 (the accept loop runs); -EINVAL for NULL @p out / @p l /
 *   @p fn, bad stream options or a negative close_timeout; -EBADF if @p l
 *   is closed; -ENOMEM; -ESHUTDOWN if the runtime is shutting down; -EPERM
 *   outside a runtime thread. On failure @p l stays the caller's. Never
 *   blocks. */
int wf_server_start(wf_server_t **out, wf_sock_t *l, wf_server_fn fn, void *arg, const wf_server_opts_t *opts);

/** asyncio.start_server(cb, host, port): wf_tcp_listen() with
 * opts->listen, then wf_server_start(). @return their errors. */
int wf_start_server(wf_server_t **out, const char *host, uint16_t port, wf_server_fn fn, void *arg,
                    const wf_server_opts_t *opts);

/** asyncio.start_unix_server(cb, path): wf_unix_listen(), then
 * wf_server_start(). @return their errors. */
int wf_start_unix_server(wf_server_t **out, const char *path, wf_server_fn fn, void *arg,
                         const wf_server_opts_t *opts);

/** The address the server listens on (its port, when it asked for 0).
 * @return 0; -EINVAL for NULL; -EBADF once shut down. Never blocks. */
int wf_server_addr(wf_server_t *srv, wf_addr_t *out);

/** Connections whose handler is running now. -EINVAL for NULL. */
int wf_server_connections(wf_server_t *srv);

/** Connections accepted so far. 0 for NULL. */
uint64_t wf_server_accepted(wf_server_t *srv);

/** Shut the server down gracefully (the steps at the top) and free it.
 * @param deadline  until when handlers may finish by themselves (step 2);
 *                  WF_FOREVER waits for them all; 0 cancels them at once.
 * @return 0 if every handler finished by itself; -ETIMEDOUT if some were
 *   cancelled at the deadline; -EINVAL for NULL or a bad deadline; -EPERM
 *   outside a fiber; -EDEADLK from one of the server's own handlers (it
 *   would wait for itself). The server is gone in every case but -EINVAL,
 *   -EPERM and -EDEADLK. Fiber only; parks until
 *   every handler has ended (a handler that ignores cancellation holds it
 *   up). The caller's own cancellation does not cut it short. */
int wf_server_shutdown(wf_server_t *srv, int64_t deadline);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
