/* bench_net.c - the server benchmarks: echo (here), http and conns
 * (bench_http.c), and what they share.
 *
 * Each measures a server process that obeys bench/peers/HTTP.md: weft's
 * examples/echo_server and examples/http_server, or their Go and Tokio
 * peers (bench/peers/go, bench/peers/rust), chosen with --impl and
 * --server. weft-bench is the client: it starts the server (server_proc.c),
 * loads it from a plain-C epoll client (never weft, so every server faces
 * the same client), reads the server's CPU time and memory from /proc, and
 * stops it with SIGTERM. On this 2-core machine the client takes one core,
 * so the figure that counts is work per server CPU-second.
 *
 * Each invocation starts one server and makes one measurement by default;
 * --reps R repeats the measured window R times (the figure is the median).
 * scripts/netbench interleaves the implementations, one process each.
 */
#include "bench_net.h"
#include "syscount.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --- shared ------------------------------------------------------------------ */

const char *net_server_path(const bench_opts *o, const char *example)
{
    if (o->server)
        return o->server;
    BENCH_CHECK(!o->impl || !strcmp(o->impl, "weft"), "--impl %s needs --server PATH", o->impl);
    /* weft-bench lives in BUILD/bench/; the examples in BUILD/examples/. */
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    BENCH_CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    BENCH_CHECK(slash, "odd /proc/self/exe: %s", path);
    *slash = '\0';
    int w = snprintf(slash, sizeof path - (size_t)(slash - path), "/../examples/%s", example);
    BENCH_CHECK(w > 0 && (size_t)w < sizeof path - (size_t)(slash - path), "path too long");
    BENCH_CHECK(access(path, X_OK) == 0, "%s is not built (weft's example server; or give --server PATH)",
                path);
    return path;
}

void net_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    BENCH_CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
}

void net_nodelay(int fd)
{
    int one = 1;
    BENCH_CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0, "TCP_NODELAY: %s",
                strerror(errno));
}

int net_connect(const server_proc *s)
{
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BENCH_CHECK(fd >= 0, "socket: %s", strerror(errno));
    int r;
    while ((r = connect(fd, (const struct sockaddr *)&s->addr, s->addrlen)) < 0 && errno == EINTR) {
    }
    BENCH_CHECK(r == 0, "connect to %s: %s", s->hostport, strerror(errno));
    net_nodelay(fd);
    return fd;
}

void net_need_fds(long need)
{
    /* The margin: stdio, the epoll, the pipe to the server, wrk's pipe. */
    rlim_t want = (rlim_t)need + 64;
    struct rlimit rl;
    BENCH_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit: %s", strerror(errno));
    if (rl.rlim_cur >= want)
        return;
    BENCH_CHECK(rl.rlim_max >= want, "%ld connections need %lu fds, but the hard RLIMIT_NOFILE is %lu", need,
                (unsigned long)want, (unsigned long)rl.rlim_max);
    rl.rlim_cur = rl.rlim_max;
    BENCH_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
}

void net_stop(server_proc *s)
{
    BENCH_CHECK(server_stop(s), "the server must exit with status 0 within 5 s of SIGTERM "
                                "(bench/peers/HTTP.md)");
}

/* --- echo -----------------------------------------------------------------------
 *
 * 100 connections, each with one 64-byte message in flight: send it, wait
 * until all 64 bytes are back, compare them, send the next. The content
 * depends on the connection and the message's number, so an echo that is
 * stale, misrouted or corrupted is caught; so is a connection the server
 * drops. 1 s warm-up, then 5 s measured; the server's CPU time is taken
 * over exactly the measured window.
 */

enum {
    ECHO_CONNS = 100,
    ECHO_MSG = 64,
    ECHO_WARMUP_MS = 1000,
    ECHO_WINDOW_MS = 5000,
    /* The window in which --strace or --perf counts system calls: shorter,
     * since it counts, it does not time. */
    ECHO_COUNT_MS = 2000,
    /* Generous bound for the messages in flight to come back when the
     * client stops sending. */
    ECHO_DRAIN_MS = 10000,
};

typedef struct {
    int fd;
    uint32_t id;
    bool busy;     /* a message is in flight */
    bool want_out; /* EPOLLOUT is registered: the send was cut short */
    unsigned sent, got;
    uint64_t seq; /* the message in flight */
    unsigned char msg[ECHO_MSG], in[ECHO_MSG];
} echo_conn;

typedef struct {
    echo_conn c[ECHO_CONNS];
    int ep;
    bool sending;  /* start the next message when one comes back */
    unsigned busy; /* messages in flight */
    uint64_t done; /* messages echoed and checked */
} echo_client;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void echo_fill(echo_conn *c)
{
    uint64_t x = ((uint64_t)c->id << 40) ^ c->seq;
    for (unsigned i = 0; i < ECHO_MSG; i += 8) {
        uint64_t w = splitmix64(&x);
        memcpy(c->msg + i, &w, 8);
    }
}

static void echo_interest(echo_client *cl, echo_conn *c, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    BENCH_CHECK(epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0, "epoll_ctl: %s", strerror(errno));
    c->want_out = out;
}

/* Send what is left of c's message; when the socket is full, wait for
 * EPOLLOUT (on loopback a 64-byte send practically always goes whole). */
static void echo_push(echo_client *cl, echo_conn *c)
{
    while (c->sent < ECHO_MSG) {
        ssize_t n = send(c->fd, c->msg + c->sent, ECHO_MSG - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->sent += (unsigned)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out)
                echo_interest(cl, c, true);
            return;
        } else if (!(n < 0 && errno == EINTR)) {
            BENCH_CHECK(0, "echo: connection %u: send: %s", c->id, n < 0 ? strerror(errno) : "0 bytes");
        }
    }
    if (c->want_out)
        echo_interest(cl, c, false);
}

static void echo_start(echo_client *cl, echo_conn *c)
{
    c->seq++;
    echo_fill(c);
    c->sent = c->got = 0;
    c->busy = true;
    cl->busy++;
    echo_push(cl, c);
}

static void echo_readable(echo_client *cl, echo_conn *c)
{
    for (;;) {
        /* Room for one byte more than the message lacks, so that a server
         * echoing more than it was sent is caught here. */
        unsigned char *dst = c->busy ? c->in + c->got : c->in;
        size_t want = c->busy ? ECHO_MSG - c->got : 1;
        ssize_t n = recv(c->fd, dst, want, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        BENCH_CHECK(n != 0, "echo: the server closed connection %u", c->id);
        BENCH_CHECK(n > 0, "echo: connection %u: recv: %s", c->id, strerror(errno));
        BENCH_CHECK(c->busy, "echo: connection %u: bytes arrived with no message in flight", c->id);
        c->got += (unsigned)n;
        BENCH_CHECK(c->got <= c->sent, "echo: connection %u: %u bytes back, only %u sent", c->id, c->got,
                    c->sent);
        if (c->got < ECHO_MSG)
            continue;
        if (memcmp(c->in, c->msg, ECHO_MSG) != 0) {
            unsigned i = 0;
            while (c->in[i] == c->msg[i])
                i++;
            BENCH_CHECK(0, "echo: connection %u, message %llu: byte %u is %#x, sent %#x", c->id,
                        (unsigned long long)c->seq, i, c->in[i], c->msg[i]);
        }
        c->busy = false;
        cl->busy--;
        cl->done++;
        if (cl->sending)
            echo_start(cl, c);
        return;
    }
}

/* Serve events until @p until (now_s() time), or, with @p drain, until no
 * message is in flight. */
static void echo_run(echo_client *cl, double until, bool drain)
{
    struct epoll_event ev[ECHO_CONNS];
    for (;;) {
        if (drain && cl->busy == 0)
            return;
        double left = until - now_s();
        if (left <= 0) {
            BENCH_CHECK(!drain, "echo: %u messages still in flight %d s after the client stopped sending",
                        cl->busy, ECHO_DRAIN_MS / 1000);
            return;
        }
        int n = epoll_wait(cl->ep, ev, ECHO_CONNS, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        BENCH_CHECK(n >= 0, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            echo_conn *c = ev[i].data.ptr;
            if (ev[i].events & EPOLLOUT)
                echo_push(cl, c);
            if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                echo_readable(cl, c);
        }
    }
}

static void echo_go(echo_client *cl)
{
    cl->sending = true;
    for (unsigned i = 0; i < ECHO_CONNS; i++)
        echo_start(cl, &cl->c[i]);
}

/* Stop sending and wait for every message in flight. */
static void echo_quiesce(echo_client *cl)
{
    cl->sending = false;
    echo_run(cl, now_s() + ECHO_DRAIN_MS / 1000.0, true);
}

static void echo_connect(echo_client *cl, const server_proc *s)
{
    memset(cl, 0, sizeof *cl);
    cl->ep = epoll_create1(EPOLL_CLOEXEC);
    BENCH_CHECK(cl->ep >= 0, "epoll_create1: %s", strerror(errno));
    for (unsigned i = 0; i < ECHO_CONNS; i++) {
        echo_conn *c = &cl->c[i];
        c->id = i;
        c->fd = net_connect(s);
        net_nonblock(c->fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        BENCH_CHECK(epoll_ctl(cl->ep, EPOLL_CTL_ADD, c->fd, &ev) == 0, "epoll_ctl: %s", strerror(errno));
    }
}

/* After a drain: nothing more may arrive, then close every connection. */
static void echo_close(echo_client *cl)
{
    for (unsigned i = 0; i < ECHO_CONNS; i++) {
        echo_readable(cl, &cl->c[i]); /* fails on stray bytes or a closed connection */
        close(cl->c[i].fd);
    }
    close(cl->ep);
}

/* --- echo --strace / --perf: system calls per echoed message --------------------
 *
 * The server's system calls are counted (syscount.h: strace or perf) over a
 * window of ECHO_COUNT_MS after the warm-up, and divided by the messages
 * echoed in it; the count includes whatever the server does on its own
 * meanwhile (timers, Go's sysmon). For strace, which takes a while to
 * attach to every thread, the client drains first (no message in flight:
 * the server idle), and drains again before strace stops. Under strace every system call of the server stops
 * in the tracer and the server runs several times slower: that run's
 * throughput is not reported, and the count itself differs from a real
 * run's (more work is ready at each wake-up, so fewer reads come back
 * EAGAIN and one epoll_wait serves more messages; calls made per unit of
 * time, like Go's sysmon nanosleep, count for more). perf counts without
 * slowing the server, so its figure is the real run's; it is printed as
 * syscalls_per_msg_perf beside strace's syscalls_per_msg.
 */

static void echo_syscalls(const bench_opts *o, echo_client *cl, const server_proc *s, syscount_method m)
{
    syscount sc;
    uint64_t msgs;
    syscall_counts k;
    if (m == SYSCOUNT_STRACE) {
        echo_quiesce(cl);
        syscount_start(&sc, m, s);
        uint64_t d0 = cl->done;
        echo_go(cl);
        echo_run(cl, now_s() + ECHO_COUNT_MS / 1000.0, false);
        echo_quiesce(cl);
        msgs = cl->done - d0;
        syscount_stop(&sc, &k);
    } else {
        /* perf starts and stops counting within milliseconds, and the load
         * runs on through both: a pause would make Go start threads when it
         * resumes, threads perf would not see. The messages in flight at
         * either end (at most 100, against some 100,000 in the window) are
         * the error. */
        syscount_start(&sc, m, s);
        uint64_t d0 = cl->done;
        echo_run(cl, now_s() + ECHO_COUNT_MS / 1000.0, false);
        msgs = cl->done - d0;
        syscount_stop(&sc, &k);
        echo_quiesce(cl);
    }
    BENCH_CHECK(msgs > 0 && k.calls > 0, "echo: %llu messages, %llu system calls counted",
                (unsigned long long)msgs, (unsigned long long)k.calls);

    bool perf = m == SYSCOUNT_PERF;
    char extra[320];
    double n = (double)msgs;
    snprintf(extra, sizeof extra,
             "method=%s,msgs=%llu,calls=%llu,epoll_wait_per_msg=%.3f,futex_per_msg=%.3f,read_per_msg=%.3f,"
             "write_per_msg=%.3f,%s=%.3f,threads=%d,conns=%d,msg_bytes=%d",
             perf ? "perf" : "strace", (unsigned long long)msgs, (unsigned long long)k.calls,
             (double)k.epoll_wait / n, (double)k.futex / n, (double)k.reads / n, (double)k.writes / n,
             perf ? "eagain_per_msg" : "errors_per_msg", (double)k.errors / n, sc.threads, ECHO_CONNS,
             ECHO_MSG);
    bench_opts one = *o;
    one.reps = 1;
    bench_print("echo", perf ? "syscalls_per_msg_perf" : "syscalls_per_msg", (double)k.calls / n, "calls/msg",
                &one, extra);
}

static int bench_echo(const bench_opts *o)
{
    if (o->strace && o->perf) {
        fprintf(stderr, "weft-bench: echo counts system calls with --strace or --perf, not both\n");
        return 64;
    }
    const char *path = net_server_path(o, "echo_server");
    server_proc s;
    server_start(&s, path, bench_workers(o));
    static echo_client cl;
    echo_connect(&cl, &s);

    echo_go(&cl);
    echo_run(&cl, now_s() + ECHO_WARMUP_MS / 1000.0, false);
    if (o->strace || o->perf) {
        echo_syscalls(o, &cl, &s, o->perf ? SYSCOUNT_PERF : SYSCOUNT_STRACE);
    } else {
        double rate[101], per_cpu[101], cpu_total = 0;
        for (unsigned r = 0; r < o->reps; r++) {
            double t0 = now_s(), c0 = server_cpu_s(&s);
            uint64_t d0 = cl.done;
            echo_run(&cl, t0 + ECHO_WINDOW_MS / 1000.0, false);
            double t1 = now_s(), c1 = server_cpu_s(&s);
            double msgs = (double)(cl.done - d0);
            BENCH_CHECK(msgs > 0 && c1 > c0, "echo: %.0f messages, %.2f server CPU-seconds", msgs, c1 - c0);
            rate[r] = msgs / (t1 - t0);
            per_cpu[r] = msgs / (c1 - c0);
            cpu_total += c1 - c0;
        }
        echo_quiesce(&cl);
        char extra[160];
        snprintf(extra, sizeof extra, "conns=%d,msg_bytes=%d,window_s=%d,server_cpu_per_window_s=%.2f",
                 ECHO_CONNS, ECHO_MSG, ECHO_WINDOW_MS / 1000, cpu_total / o->reps);
        bench_print("echo", "msgs_per_s", bench_median(rate, o->reps), "msg/s", o, extra);
        bench_print("echo", "msgs_per_cpu_s", bench_median(per_cpu, o->reps), "msg/cpu-s", o, extra);
    }
    echo_close(&cl);
    net_stop(&s);
    return 0;
}

/* --- the table ----------------------------------------------------------------- */

const bench_def bench_net[] = {
    {"echo", "echo server: 100 connections, one 64-byte message in flight each (--strace, --perf: syscalls)",
     bench_echo},
    {"http", "HTTP/1.1 hello server under wrk -t1 -c100 -d10s, after a probe of its parser", bench_http},
    {"conns", "HTTP server holding 10,000 idle keep-alive connections: RSS per connection", bench_conns},
};
const unsigned bench_net_n = sizeof bench_net / sizeof bench_net[0];
