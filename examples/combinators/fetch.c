/* fetch.c - fetch from several slow sources at once, with timeouts and a
 * task group (asyncio.TaskGroup + asyncio.timeout), all on loopback.
 *
 * The program serves four "slow sources" itself: TCP listeners on
 * 127.0.0.1 that answer each connection after a delay (10, 30 and 50 ms,
 * and one that takes 5 s). Then it fetches from them three ways:
 *   1. a task group over the three fast sources, each fetch in its own
 *      1 s timeout scope: everything arrives;
 *   2. the same group over all four: the slow fetch times out, the group
 *      reports it as its one failure (the others had already finished);
 *   3. all four again, with one 300 ms timeout scope around the whole
 *      group: when it expires, the group cancels what is still running.
 * It prints what happened and exits 0 when the outcomes are the expected
 * ones.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft.h>

#define MS WF_NSEC_PER_MSEC

enum { NSOURCES = 4 };
static const int64_t delays_ms[NSOURCES] = {10, 30, 50, 5000};

/* --- the sources -------------------------------------------------------------- */

typedef struct {
    int fd;
    int index;
} conn;

/* Answer one connection after the source's delay. */
static int serve_conn(void *arg, void **result)
{
    (void)result;
    conn *c = arg;
    char msg[64];
    int len = snprintf(msg, sizeof msg, "hello from source %d (after %lld ms)\n", c->index,
                       (long long)delays_ms[c->index]);
    int e = wf_sleep(delays_ms[c->index] * MS);
    for (int off = 0; e == 0 && off < len;) {
        ssize_t n = write(c->fd, msg + off, (size_t)(len - off));
        if (n > 0)
            off += (int)n;
        else if (n < 0 && errno == EAGAIN)
            e = wf_wait_writable(c->fd, WF_FOREVER);
        else
            e = -EPIPE;
    }
    wf_fd_close(c->fd);
    free(c);
    return e;
}

static void drop_conn(void *arg)
{
    conn *c = arg;
    close(c->fd);
    free(c);
}

typedef struct {
    int fd; /* listening socket */
    int index;
    uint16_t port;
} source;

/* Accept connections until cancelled; a task per connection. */
static int serve(void *arg, void **result)
{
    (void)result;
    source *s = arg;
    for (;;) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN)
                return -errno;
            int e = wf_wait_readable(s->fd, WF_FOREVER);
            if (e)
                return e == -ECANCELED ? 0 : e; /* cancelled: the server stops */
            continue;
        }
        conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->index = s->index;
        wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
        o.drop = drop_conn;
        wf_task_t t;
        if (wf_spawn(&t, serve_conn, c, &o) == 0)
            wf_detach(t);
        else
            drop_conn(c);
    }
}

static int open_source(source *s, int index)
{
    s->index = index;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->fd, 64) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &len) < 0) {
        int e = -errno;
        close(s->fd);
        return e;
    }
    s->port = ntohs(a.sin_port);
    return 0;
}

/* --- the client ----------------------------------------------------------------- */

typedef struct {
    int index;
    uint16_t port;
    int64_t timeout_ns; /* per fetch; < 0: none */
    char text[128];
} fetch_job;

/* Connect, read everything until EOF. Returns 0 or a negative errno:
 * -ETIMEDOUT when the enclosing timeout scope expired, -ECANCELED when the
 * task group cancelled us. */
static int fetch_body(fetch_job *j)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(j->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int e = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (errno != EINPROGRESS)
            e = -errno;
        else if ((e = wf_wait_writable(fd, WF_FOREVER)) == 0) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            e = -err;
        }
    }
    size_t got = 0;
    while (e == 0) {
        ssize_t n = read(fd, j->text + got, sizeof j->text - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            if (got == sizeof j->text - 1)
                break;
        } else if (n == 0) {
            break;
        } else if (errno == EAGAIN) {
            e = wf_wait_readable(fd, WF_FOREVER);
        } else {
            e = -errno;
        }
    }
    j->text[got] = '\0';
    if (got && j->text[got - 1] == '\n')
        j->text[got - 1] = '\0';
    wf_fd_close(fd);
    return e;
}

static int fetch(void *arg, void **result)
{
    (void)result;
    fetch_job *j = arg;
    if (j->timeout_ns < 0)
        return fetch_body(j);
    wf_timeout_t to;
    wf_timeout_enter_in(&to, j->timeout_ns);
    int e = fetch_body(j);
    wf_timeout_leave(&to);
    return e;
}

/* One task group over sources [0, n), each fetch with `per_fetch_ns`;
 * `overall_ns` >= 0 puts a timeout scope around the whole group. Fills
 * status[] with each fetch's outcome; returns what wf_group_wait said. */
static int fetch_all(const source *src, int n, int64_t per_fetch_ns, int64_t overall_ns, int *status,
                     fetch_job *jobs, int64_t *elapsed, int *failed_source)
{
    int64_t t0 = wf_now();
    wf_timeout_t to;
    if (overall_ns >= 0)
        wf_timeout_enter_in(&to, overall_ns);
    wf_group_t g;
    wf_group_init(&g);
    wf_task_t t[NSOURCES];
    for (int i = 0; i < n; i++) {
        jobs[i] = (fetch_job){.index = i, .port = src[i].port, .timeout_ns = per_fetch_ns};
        if (wf_group_spawn(&g, &t[i], fetch, &jobs[i], NULL) < 0)
            t[i] = WF_TASK_NONE;
    }
    wf_group_failure_t failures[NSOURCES];
    int r = wf_group_wait(&g, failures, NSOURCES);
    if (overall_ns >= 0)
        wf_timeout_leave(&to);
    *elapsed = wf_now() - t0;
    for (int i = 0; i < n; i++) {
        status[i] = -ESRCH;
        if (t[i] != WF_TASK_NONE)
            wf_join(t[i], &status[i], NULL); /* ended: returns at once */
    }
    /* Each failure carries the arg its child was spawned with: the job. */
    for (int k = 0; k < r && k < NSOURCES; k++)
        failed_source[k] = ((const fetch_job *)failures[k].arg)->index;
    return r;
}

static void show(const char *title, int r, const fetch_job *jobs, const int *status, int n, int64_t elapsed,
                 const int *failed_source)
{
    if (r > 0)
        printf("%s: %d failed, after %lld ms\n", title, r, (long long)(elapsed / MS));
    else
        printf("%s: %s, after %lld ms\n", title, r == 0 ? "all done" : wf_strerror(r),
               (long long)(elapsed / MS));
    for (int i = 0; i < n; i++)
        printf("    source %d: %-40s %s\n", i, status[i] == 0 ? jobs[i].text : "-", wf_strerror(status[i]));
    for (int k = 0; k < r && k < NSOURCES; k++)
        printf("    the group's failure list: source %d\n", failed_source[k]);
}

static int main_task(void *arg, void **result)
{
    (void)arg; (void)result;
    source src[NSOURCES];
    wf_task_t server[NSOURCES];
    for (int i = 0; i < NSOURCES; i++) {
        int e = open_source(&src[i], i);
        if (e) {
            fprintf(stderr, "fetch: cannot listen on loopback: %s\n", wf_strerror(e));
            return e;
        }
        wf_spawn(&server[i], serve, &src[i], NULL);
        printf("source %d listens on 127.0.0.1:%u and answers after %lld ms\n", i, src[i].port,
               (long long)delays_ms[i]);
    }

    fetch_job jobs[NSOURCES];
    int status[NSOURCES];
    int64_t elapsed;
    int failed[NSOURCES];
    bool ok = true;

    /* 1. The fast sources, 1 s per fetch: all arrive. */
    int r = fetch_all(src, 3, 1000 * MS, -1, status, jobs, &elapsed, failed);
    show("1. three fast sources, 1 s per fetch", r, jobs, status, 3, elapsed, failed);
    ok &= r == 0 && status[0] == 0 && status[1] == 0 && status[2] == 0;

    /* 2. All four, 1 s per fetch: the slow one times out, the group
     * reports that one failure. */
    r = fetch_all(src, 4, 1000 * MS, -1, status, jobs, &elapsed, failed);
    show("2. all four sources, 1 s per fetch", r, jobs, status, 4, elapsed, failed);
    ok &= r >= 1 && status[3] == -ETIMEDOUT && failed[r - 1] == 3;

    /* 3. All four, one 300 ms scope around the group: it expires, and the
     * group cancels what is still running. */
    r = fetch_all(src, 4, -1, 300 * MS, status, jobs, &elapsed, failed);
    show("3. all four sources, 300 ms for the whole group", r, jobs, status, 4, elapsed, failed);
    ok &= r == -ETIMEDOUT && status[3] == -ECANCELED;

    for (int i = 0; i < NSOURCES; i++) {
        wf_cancel(server[i]);
        wf_join(server[i], NULL, NULL);
        wf_fd_close(src[i].fd);
    }
    printf("%s\n", ok ? "fetch: all outcomes as expected" : "fetch: UNEXPECTED outcomes");
    return ok ? 0 : -EPROTO;
}

int main(void)
{
    int status = 0;
    int e = wf_run(NULL, main_task, NULL, &status, NULL);
    if (e)
        fprintf(stderr, "fetch: %s\n", wf_strerror(e));
    return e || status ? 1 : 0;
}
