/* server.c - the server of weft/server.h: an accept loop task, a task per
 * connection, a bound on connections, and graceful shutdown.
 *
 * The server's spinlock guards its list of connections, their count, the
 * `stopping` flag and the list of shutdown waiters. A connection record
 * lives from its accept to the end of its task; the task unlinks itself
 * (under the lock) as its last touch of the server, so shutdown, which
 * waits until the count is zero, never frees the server under one.
 */
#include "stream.h"
#include "park.h"
#include "runtime.h"
#include "sync/wait.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/combinators.h>
#include <weft/server.h>
#include <weft/sync.h>
#include <weft/task.h>
#include <weft/time.h>

/* Backoff after an accept that failed for lack of descriptors or memory:
 * 1 ms, doubling up to 16 ms. Short enough that a freed descriptor serves
 * again well within 50 ms, long enough that a loop out of descriptors
 * costs next to no CPU (at most ~60 tries a second). */
#define BACKOFF_MIN_NS (1 * WF_NSEC_PER_MSEC)
#define BACKOFF_MAX_NS (16 * WF_NSEC_PER_MSEC)

struct wf_server {
    wf_sock_t *l;
    wf_server_fn fn;
    void *arg;
    wf_server_opts_t o;
    wf_task_t acceptor;
    wf_sem_t slots; /* max_conns */
    _Atomic uint64_t accepted;
    wf__spinlock lock;
    wf__link conns;
    uint32_t nconns;
    bool stopping;
    uint32_t nwait;
    wf__link waiters; /* shutdown, waiting for nconns == 0 */
};

typedef struct conn {
    wf__link link;
    wf_server_t *srv;
    /* The connection's stream; NULL (set under the server's lock) from the
     * moment its task starts to close it, so shut_reads() never touches a
     * stream, or a socket, that is being freed. */
    wf_stream_t *st;
    wf_task_t task;
} conn;

/* Take the connection's stream out of the list's reach before closing it
 * (see conn.st). */
static wf_stream_t *take_stream(conn *c)
{
    wf__spin_lock(&c->srv->lock);
    wf_stream_t *st = c->st;
    c->st = NULL;
    wf__spin_unlock(&c->srv->lock);
    return st;
}

void wf_server_opts_init(wf_server_opts_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->max_conns = 0;
    wf_stream_opts_init(&o->stream);
    o->close_timeout = 5 * WF_NSEC_PER_SEC;
    o->stack_size = 0;
    o->on_error = NULL;
    wf_listen_opts_init(&o->listen);
}

/* --- a connection ---------------------------------------------------------- */

/* The connection's last touches of the server, once its stream is closed
 * (conn_main) or aborted (conn_dropped): the slot first, then the list.
 * Once the lock is dropped, a shutdown may free the server. Frees `c`. */
static void conn_leave(conn *c)
{
    wf_server_t *srv = c->srv;
    if (srv->o.max_conns)
        wf_sem_release(&srv->slots);
    wf__batch b;
    wf__batch_init(&b);
    wf__spin_lock(&srv->lock);
    wf__list_unlink(&c->link);
    if (--srv->nconns == 0)
        wf__sync_wake_all(&srv->waiters, &srv->nwait, NULL, &b);
    wf_task_t me = c->task;
    wf__spin_unlock(&srv->lock);
    wf__sync_ready_batch(&b);
    /* The server's handle to this task: nobody else will use it. */
    wf_detach(me);
    free(c);
}

static int conn_main(void *arg, void **result)
{
    (void)result;
    conn *c = arg;
    wf_server_t *srv = c->srv;
    int status = srv->fn(c->st, srv->arg);
    wf_stream_t *st = take_stream(c);
    /* Flush and close, also after a cancellation (a cleanup scope holds it
     * off), but for close_timeout at most. */
    wf_timeout_t cs;
    if (wf_cleanup_enter_in(&cs, srv->o.close_timeout) == 0) {
        (void)wf_stream_close(st, WF_FOREVER); /* the scope bounds it */
        wf_timeout_leave(&cs);
    } else {
        wf_stream_abort(st);
    }
    conn_leave(c);
    return status;
}

/* A connection task that never ran (the runtime was shutting down). */
static void conn_dropped(void *arg)
{
    conn *c = arg;
    wf_stream_abort(take_stream(c));
    conn_leave(c);
}

/* Start a task for a new connection. Returns 0, or an error (then `s` is
 * closed and the slot given back by the caller). */
static int start_conn(wf_server_t *srv, wf_sock_t *s)
{
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->srv = srv;
    wf__list_init(&c->link);
    int e = wf_stream_open(&c->st, s, &srv->o.stream);
    if (e) {
        free(c);
        return e;
    }
    wf_spawn_opts_t so = WF_SPAWN_OPTS_INIT;
    so.name = "conn";
    so.stack_size = srv->o.stack_size;
    so.drop = conn_dropped;
    /* Under the lock: the task's end takes it, so it cannot read c->task
     * before we have stored the handle. */
    wf__spin_lock(&srv->lock);
    if (srv->stopping) {
        e = -ESHUTDOWN;
    } else {
        e = wf_spawn(&c->task, conn_main, c, &so);
        if (e == 0) {
            wf__list_push_back(&srv->conns, &c->link);
            srv->nconns++;
        }
    }
    wf__spin_unlock(&srv->lock);
    if (e) {
        /* The stream holds the socket now: abort closes it. Take a
         * reference first so the caller's close below finds it closed
         * rather than freed. */
        wf_sock_ref(s);
        wf_stream_abort(c->st);
        free(c);
    }
    return e;
}

/* --- the accept loop -------------------------------------------------------- */

static void report(wf_server_t *srv, int err)
{
    if (srv->o.on_error) {
        srv->o.on_error(err, srv->o.on_error_arg);
        return;
    }
    char a[WF_ADDR_STRLEN] = "?";
    wf_addr_t addr;
    if (wf_sock_local_addr(srv->l, &addr) == 0)
        (void)wf_addr_format(&addr, a, sizeof a);
    fprintf(stderr, "weft: server %s: accept failed: %s; retrying every %d ms or less until it works\n", a,
            wf_strerror(err), (int)(BACKOFF_MAX_NS / WF_NSEC_PER_MSEC));
}

static int accept_main(void *arg, void **result)
{
    (void)result;
    wf_server_t *srv = arg;
    int64_t backoff = 0;
    int reported = 0;
    for (;;) {
        if (srv->o.max_conns && wf_sem_acquire(&srv->slots) != 0)
            break; /* cancelled: shutting down */
        wf_sock_t *s;
        int e = wf_sock_accept(srv->l, &s, NULL, WF_FOREVER);
        if (e == 0) {
            backoff = 0;
            reported = 0;
            /* relaxed: a statistic. */
            atomic_fetch_add_explicit(&srv->accepted, 1, memory_order_relaxed);
            e = start_conn(srv, s);
            if (e == 0)
                continue;
            wf_sock_close(s);
        }
        if (srv->o.max_conns)
            wf_sem_release(&srv->slots);
        if (e == -EBADF || e == -ECANCELED || e == -ESHUTDOWN)
            break; /* the listener closed, or the task cancelled: shutdown */
        /* Out of descriptors or memory (the connection waits in the
         * backlog), or anything else: report once, back off, go on. */
        if (e != reported) {
            report(srv, e);
            reported = e;
        }
        backoff = backoff ? backoff * 2 : BACKOFF_MIN_NS;
        if (backoff > BACKOFF_MAX_NS)
            backoff = BACKOFF_MAX_NS;
        if (wf_sleep(backoff) == -ECANCELED)
            break;
    }
    return 0;
}

int wf_server_start(wf_server_t **out, wf_sock_t *l, wf_server_fn fn, void *arg, const wf_server_opts_t *opts)
{
    if (!out || !l || !fn)
        return -EINVAL;
    wf_server_opts_t o;
    if (opts)
        o = *opts;
    else
        wf_server_opts_init(&o);
    if (!o.stream.limit || !o.stream.read_size || o.stream.low_water > o.stream.high_water ||
        o.close_timeout < 0)
        return -EINVAL;
    if (!wf__tls_runtime())
        return -EPERM;
    if (wf_sock_fd(l) < 0)
        return -EBADF;
    wf_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->l = l;
    srv->fn = fn;
    srv->arg = arg;
    srv->o = o;
    atomic_init(&srv->accepted, 0);
    wf__spin_init(&srv->lock);
    wf__list_init(&srv->conns);
    wf__list_init(&srv->waiters);
    if (o.max_conns)
        wf_sem_init(&srv->slots, o.max_conns);
    wf_spawn_opts_t so = WF_SPAWN_OPTS_INIT;
    so.name = "accept";
    int e = wf_spawn(&srv->acceptor, accept_main, srv, &so);
    if (e) {
        if (o.max_conns)
            wf_sem_destroy(&srv->slots);
        free(srv);
        return e == -ECANCELED ? -ESHUTDOWN : e;
    }
    *out = srv;
    return 0;
}

int wf_start_server(wf_server_t **out, const char *host, uint16_t port, wf_server_fn fn, void *arg,
                    const wf_server_opts_t *opts)
{
    if (!out || !fn)
        return -EINVAL;
    wf_sock_t *l;
    int e = wf_tcp_listen(&l, host, port, opts ? &opts->listen : NULL);
    if (e)
        return e;
    e = wf_server_start(out, l, fn, arg, opts);
    if (e)
        wf_sock_close(l);
    return e;
}

int wf_start_unix_server(wf_server_t **out, const char *path, wf_server_fn fn, void *arg,
                         const wf_server_opts_t *opts)
{
    if (!out || !fn)
        return -EINVAL;
    wf_sock_t *l;
    int e = wf_unix_listen(&l, path, opts ? &opts->listen : NULL);
    if (e)
        return e;
    e = wf_server_start(out, l, fn, arg, opts);
    if (e)
        wf_sock_close(l);
    return e;
}

int wf_server_addr(wf_server_t *srv, wf_addr_t *out)
{
    if (!srv || !out)
        return -EINVAL;
    return wf_sock_local_addr(srv->l, out);
}

int wf_server_connections(wf_server_t *srv)
{
    if (!srv)
        return -EINVAL;
    wf__spin_lock(&srv->lock);
    int n = (int)srv->nconns;
    wf__spin_unlock(&srv->lock);
    return n;
}

uint64_t wf_server_accepted(wf_server_t *srv)
{
    /* relaxed: a statistic. */
    return srv ? atomic_load_explicit(&srv->accepted, memory_order_relaxed) : 0;
}

/* --- shutdown ------------------------------------------------------------------ */

/* Wait until no handler runs, or `deadline`. Ignores the caller's
 * cancellation and timeout scopes: a shutdown always completes. */
static int wait_idle(wf_server_t *srv, wf__task *self, int64_t deadline)
{
    wf__spin_lock(&srv->lock);
    while (srv->nconns) {
        wf__waitnode node;
        node.data = NULL;
        unsigned r = wf__sync_wait(&srv->lock, &srv->waiters, &srv->nwait, &node, self, deadline,
                                   WF__PARK_NOCANCEL);
        if (r != WF__R_WOKEN) {
            wf__spin_unlock(&srv->lock);
            return -ETIMEDOUT;
        }
        wf__spin_lock(&srv->lock);
    }
    wf__spin_unlock(&srv->lock);
    return 0;
}

/* Shut down the read side of every connection (opts.shut_reads). The
 * sockets are collected with a reference each under the lock, and shut
 * down outside it: a system call per connection must not hold up the
 * handlers that are finishing (they take the lock to leave). */
static void shut_reads(wf_server_t *srv)
{
    wf__spin_lock(&srv->lock);
    uint32_t n = srv->nconns, k = 0;
    wf__spin_unlock(&srv->lock);
    wf_sock_t **socks = calloc(n ? n : 1, sizeof *socks);
    if (!socks)
        return; /* the deadline and the cancellation still end them */
    wf__spin_lock(&srv->lock);
    for (wf__link *l = srv->conns.next; l != &srv->conns && k < n; l = l->next) {
        wf_stream_t *st = wf__container_of(l, conn, link)->st;
        if (!st)
            continue; /* its task is closing it (conn.st) */
        /* The stream, and the socket it holds, live while st is set:
         * taking a reference under the lock keeps the socket for the
         * shutdown(2) below. */
        wf_sock_t *s = wf_stream_socket(st);
        if (wf_sock_ref(s) == 0)
            socks[k++] = s;
    }
    wf__spin_unlock(&srv->lock);
    for (uint32_t i = 0; i < k; i++) {
        (void)wf_sock_shutdown(socks[i], SHUT_RD);
        wf_sock_release(socks[i]);
    }
    free(socks);
}

int wf_server_shutdown(wf_server_t *srv, int64_t deadline)
{
    if (!srv || deadline < WF_FOREVER)
        return -EINVAL;
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    wf_task_t me = wf_self();
    /* Step 1: no new connections; the accept loop ends. */
    wf__spin_lock(&srv->lock);
    for (wf__link *n = srv->conns.next; n != &srv->conns; n = n->next)
        if (wf__container_of(n, conn, link)->task == me) {
            wf__spin_unlock(&srv->lock);
            return -EDEADLK; /* a handler would wait for itself */
        }
    srv->stopping = true;
    wf__spin_unlock(&srv->lock);
    (void)wf__sock_shut(srv->l);
    (void)wf_cancel_join(&srv->acceptor, 1, NULL, WF_FOREVER, NULL);
    if (srv->o.shut_reads)
        shut_reads(srv);
    /* Step 2. */
    int e = wait_idle(srv, self, deadline);
    if (e) {
        /* Step 3: cancel the rest, then wait for them all. */
        wf__spin_lock(&srv->lock);
        for (wf__link *n = srv->conns.next; n != &srv->conns; n = n->next)
            (void)wf_cancel_msg(wf__container_of(n, conn, link)->task, "server shutdown");
        wf__spin_unlock(&srv->lock);
        (void)wait_idle(srv, self, WF_FOREVER);
    }
    /* Step 4. */
    wf_sock_release(srv->l);
    if (srv->o.max_conns)
        wf_sem_destroy(&srv->slots);
    free(srv);
    return e;
}
