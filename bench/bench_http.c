/* bench_http.c - the HTTP server benchmarks: http (wrk's throughput per
 * server CPU-second, after a probe of the server's parser) and conns (the
 * server's memory per idle keep-alive connection). The servers follow
 * bench/peers/HTTP.md; bench_net.c says how the benchmarks run them.
 */
#include "bench_net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* Linux 4.2 */
#endif

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* --- reading a response --------------------------------------------------------- */

/* The Connection header of a response. */
enum { CONN_NONE = 'k', CONN_CLOSE = 'c', CONN_KEEP = 'a' };

typedef struct {
    int status;
    int conn;   /* CONN_* */
    size_t len; /* bytes of the whole response */
} http_resp;

/* Parse the response at the start of b[0..n) to a request that was (or not)
 * HEAD. Returns 1 with *r filled in, 0 when it is not all there yet; fails
 * the benchmark (naming @p what) when it is not a response HTTP.md allows:
 * a status line "HTTP/1.1 NNN Reason", headers, Content-Length always, the
 * body "Hello, World!" for 200 (none for HEAD), none for an error. */
static int resp_parse(const char *what, const char *b, size_t n, bool head, http_resp *r)
{
    const char *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end) {
        BENCH_CHECK(n < 16384, "%s: no end of the response head in %zu bytes", what, n);
        return 0;
    }
    size_t head_len = (size_t)(end - b) + 4;
    BENCH_CHECK(n >= 13 && !memcmp(b, "HTTP/1.1 ", 9) && isdigit((unsigned char)b[9]) &&
                    isdigit((unsigned char)b[10]) && isdigit((unsigned char)b[11]) && b[12] == ' ',
                "%s: not a status line: '%.*s'", what, (int)(n < 40 ? n : 40), b);
    r->status = atoi(b + 9);
    r->conn = CONN_NONE;
    long cl = -1;
    const char *p = memchr(b, '\n', head_len) + 1;
    while (p < end + 2) {
        const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        BENCH_CHECK(colon, "%s: a response header without a colon: '%.*s'", what, (int)(eol - p), p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t name_len = (size_t)(colon - p), vlen = (size_t)(eol - v);
        if (name_len == 14 && !strncasecmp(p, "Content-Length", 14)) {
            BENCH_CHECK(cl < 0 && vlen > 0 && vlen < 8, "%s: bad or repeated Content-Length", what);
            cl = 0;
            for (size_t i = 0; i < vlen; i++) {
                BENCH_CHECK(isdigit((unsigned char)v[i]), "%s: Content-Length '%.*s'", what, (int)vlen, v);
                cl = cl * 10 + (v[i] - '0');
            }
        } else if (name_len == 10 && !strncasecmp(p, "Connection", 10)) {
            if (vlen == 5 && !strncasecmp(v, "close", 5))
                r->conn = CONN_CLOSE;
            else if (vlen == 10 && !strncasecmp(v, "keep-alive", 10))
                r->conn = CONN_KEEP;
            else
                BENCH_CHECK(0, "%s: Connection: '%.*s'", what, (int)vlen, v);
        }
        p = eol + 2;
    }
    BENCH_CHECK(cl >= 0, "%s: the response has no Content-Length", what);
    size_t body = head || r->status != 200 ? 0 : (size_t)cl;
    if (r->status == 200)
        BENCH_CHECK(cl == 13, "%s: 200 with Content-Length %ld, not 13", what, cl);
    else
        BENCH_CHECK(cl == 0, "%s: %d with Content-Length %ld, not 0", what, r->status, cl);
    if (n < head_len + body)
        return 0;
    BENCH_CHECK(!body || !memcmp(b + head_len, "Hello, World!", 13), "%s: the body is '%.13s'", what,
                b + head_len);
    r->len = head_len + body;
    return 1;
}

/* --- the probe: a broken parser cannot post a figure ---------------------------- */

enum { PROBE_MS = 5000 };

typedef struct {
    const char *send; /* sent in one write */
    unsigned nresp;   /* then this many responses come back (0: pause 20 ms) */
} probe_step;

typedef struct {
    int status;
    bool head; /* the request was HEAD */
    int conn;  /* CONN_* */
} probe_expect;

typedef struct {
    const char *what;
    probe_step step[3];
    probe_expect resp[4];
    bool eof; /* the server closes after the last response */
} probe_case;

static char long_head[9100];

static const probe_case probes[] = {
    {"a pipelined burst of 3 requests (GET, POST with a body, HEAD), then Connection: close",
     {{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
       "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
       "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n",
       3},
      {"GET /d HTTP/1.1\r\nHost: x\r\nconnection: Close\r\n\r\n", 1}},
     {{200, false, CONN_NONE}, {200, false, CONN_NONE}, {200, true, CONN_NONE}, {200, false, CONN_CLOSE}},
     true},
    {"a malformed header line",
     {{"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 1}},
     {{400, false, CONN_CLOSE}},
     true},
    {"a request split across writes, then an HTTP/1.0 request",
     {{"GET / HT", 0}, {"TP/1.1\r\nHost: x\r\n\r\n", 1}, {"GET /2 HTTP/1.0\r\n\r\n", 1}},
     {{200, false, CONN_NONE}, {200, false, CONN_CLOSE}},
     true},
    {"HTTP/1.0 with Connection: keep-alive, then Connection: close",
     {{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
      {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1}},
     {{200, false, CONN_KEEP}, {200, false, CONN_CLOSE}},
     true},
    {"bare LF line ends", {{"GET / HTTP/1.1\nHost: x\n\n", 1}}, {{400, false, CONN_CLOSE}}, true},
    {"Transfer-Encoding",
     {{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1}},
     {{501, false, CONN_CLOSE}},
     true},
    {"Content-Length twice, disagreeing",
     {{"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 1}},
     {{400, false, CONN_CLOSE}},
     true},
    {"a head over 8 KiB", {{long_head, 1}}, {{431, false, CONN_CLOSE}}, true},
};

/* Read once from fd into buf[*len..cap); fails (saying @p waiting_for)
 * when nothing comes within PROBE_MS. Returns false at end of file. */
static bool probe_read(const char *what, const char *waiting_for, int fd, char *buf, size_t *len, size_t cap)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int n = poll(&pf, 1, PROBE_MS);
    BENCH_CHECK(n > 0, "%s: %s within %d s", what, waiting_for, PROBE_MS / 1000);
    BENCH_CHECK(*len < cap, "%s: more than %zu bytes back", what, cap);
    ssize_t r = recv(fd, buf + *len, cap - *len, 0);
    BENCH_CHECK(r >= 0, "%s: recv: %s", what, strerror(errno));
    *len += (size_t)r;
    return r > 0;
}

static void probe_one(const server_proc *s, const probe_case *pc)
{
    char what[160];
    snprintf(what, sizeof what, "probe (%s)", pc->what);
    int fd = net_connect(s);
    static char buf[65536];
    size_t len = 0, off = 0; /* bytes read; bytes of them parsed */
    unsigned k = 0;          /* responses parsed */
    for (unsigned i = 0; i < 3 && pc->step[i].send; i++) {
        const char *m = pc->step[i].send;
        size_t ml = strlen(m);
        BENCH_CHECK(send(fd, m, ml, MSG_NOSIGNAL) == (ssize_t)ml, "%s: send: %s", what, strerror(errno));
        if (!pc->step[i].nresp) {
            pause_ms(20); /* so that the server likely reads the piece alone */
            continue;
        }
        for (unsigned want = k + pc->step[i].nresp; k < want;) {
            http_resp r;
            if (resp_parse(what, buf + off, len - off, pc->resp[k].head, &r)) {
                const probe_expect *e = &pc->resp[k];
                BENCH_CHECK(r.status == e->status && r.conn == e->conn,
                            "%s: response %u is %d%s, expected %d%s", what, k + 1, r.status,
                            r.conn == CONN_CLOSE  ? " with Connection: close"
                            : r.conn == CONN_KEEP ? " with Connection: keep-alive"
                                                  : "",
                            e->status,
                            e->conn == CONN_CLOSE  ? " with Connection: close"
                            : e->conn == CONN_KEEP ? " with Connection: keep-alive"
                                                   : "");
                off += r.len;
                k++;
                continue;
            }
            BENCH_CHECK(probe_read(what, "no response", fd, buf, &len, sizeof buf),
                        "%s: the connection closed after %u responses, expected %u", what, k, want);
        }
    }
    if (pc->eof) {
        while (probe_read(what, "the server did not close the connection", fd, buf, &len, sizeof buf)) {
        }
    }
    BENCH_CHECK(len == off, "%s: %zu bytes more than the expected responses: '%.*s'", what, len - off,
                (int)(len - off < 60 ? len - off : 60), buf + off);
    close(fd);
}

static void http_probe(const server_proc *s)
{
    if (!long_head[0]) {
        int n = snprintf(long_head, sizeof long_head, "GET / HTTP/1.1\r\nX-Long: ");
        memset(long_head + n, 'a', 9000);
        memcpy(long_head + n + 9000, "\r\n\r\n", 5);
    }
    for (unsigned i = 0; i < sizeof probes / sizeof probes[0]; i++)
        probe_one(s, &probes[i]);
}

/* --- http: wrk -t1 -c100 -d10s ---------------------------------------------------- */

typedef struct {
    double requests, seconds, req_per_s;
    long socket_errors, non2xx;
} wrk_result;

/* Run wrk against @p s and read its report. */
static void run_wrk(const server_proc *s, wrk_result *w)
{
    char url[128];
    snprintf(url, sizeof url, "http://%s/", s->hostport);
    int p[2];
    BENCH_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    BENCH_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        execlp("wrk", "wrk", "-t1", "-c100", "-d10s", url, (char *)NULL);
        fprintf(stderr, "weft-bench: cannot run wrk: %s\n", strerror(errno));
        _exit(127);
    }
    close(p[1]);
    static char out[16384];
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], out + len, sizeof out - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        BENCH_CHECK(n > 0, "read wrk's output: %s", strerror(errno));
        len += (size_t)n;
        if (len == sizeof out - 1)
            break;
    }
    out[len] = '\0';
    close(p[0]);
    int st;
    BENCH_CHECK(waitpid(pid, &st, 0) == pid, "waitpid wrk: %s", strerror(errno));
    BENCH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wrk failed (status %#x); it said:\n%s", st, out);

    memset(w, 0, sizeof *w);
    w->requests = -1;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        long a, b, c, d;
        while (*line == ' ' || *line == '\t')
            line++;
        if (sscanf(line, "%lf requests in %lfs", &w->requests, &w->seconds) == 2)
            continue;
        if (sscanf(line, "Requests/sec: %lf", &w->req_per_s) == 1)
            continue;
        if (sscanf(line, "Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &a, &b, &c, &d) ==
            4) {
            w->socket_errors = a + b + c + d;
            fprintf(stderr, "weft-bench: wrk: %s\n", line);
            continue;
        }
        if (sscanf(line, "Non-2xx or 3xx responses: %ld", &a) == 1) {
            w->non2xx = a;
            fprintf(stderr, "weft-bench: wrk: %s\n", line);
        }
    }
    BENCH_CHECK(w->requests > 0 && w->seconds > 0 && w->req_per_s > 0, "could not read wrk's report");
}

/* --strace and --perf count the echo server's system calls only. */
static int no_syscount(const bench_opts *o, const char *name)
{
    if (!o->strace && !o->perf)
        return 0;
    fprintf(stderr, "weft-bench: --strace and --perf are for echo, not %s\n", name);
    return 64;
}

int bench_http(const bench_opts *o)
{
    if (no_syscount(o, "http"))
        return 64;
    const char *path = net_server_path(o, "http_server");
    server_proc s;
    server_start(&s, path, bench_workers(o));
    http_probe(&s);

    double rate[101], per_cpu[101], requests = 0;
    for (unsigned r = 0; r < o->reps; r++) {
        double c0 = server_cpu_s(&s);
        wrk_result w;
        run_wrk(&s, &w);
        double c1 = server_cpu_s(&s);
        BENCH_CHECK(w.socket_errors == 0, "http: wrk saw %ld socket errors", w.socket_errors);
        BENCH_CHECK(w.non2xx == 0, "http: wrk saw %ld responses that were not 2xx or 3xx", w.non2xx);
        BENCH_CHECK(c1 > c0, "http: the server used no CPU time");
        rate[r] = w.req_per_s;
        per_cpu[r] = w.requests / (c1 - c0);
        requests += w.requests;
    }
    /* The probe again: the server still answers correctly after the load. */
    http_probe(&s);
    char extra[128];
    snprintf(extra, sizeof extra, "wrk=-t1:-c100:-d10s,requests_per_run=%.0f", requests / o->reps);
    bench_print("http", "req_per_s", bench_median(rate, o->reps), "req/s", o, extra);
    bench_print("http", "req_per_cpu_s", bench_median(per_cpu, o->reps), "req/cpu-s", o, extra);
    net_stop(&s);
    return 0;
}

/* --- conns: 10,000 idle keep-alive connections --------------------------------------
 *
 * Each connection sends one GET and reads its whole response, so each is a
 * served keep-alive connection the server has parked, then stays open and
 * idle. The client binds its sockets to source addresses 127.0.0.2 ..
 * 127.0.0.11 (with IP_BIND_ADDRESS_NO_PORT, so the port is picked per
 * 4-tuple at connect) so the ephemeral ports suffice, and keeps at most 256
 * connections between connect and response (well under any listen backlog).
 * The server's RSS is read before (after 100 connections served and closed,
 * once it has settled) and after all 10,000 are served and it has settled
 * again; the figure is the growth over the count. At the end every
 * connection must still be open, and the server must stop (SIGTERM) with
 * all of them open, within the contract's 5 s.
 */

enum {
    CONNS_N = 10000,
    CONNS_WARM = 100,
    CONNS_INFLIGHT = 256,
    CONNS_SRC = 10,
    CONNS_MS = 120000, /* generous: the machine is shared */
    /* RSS has settled when it moved by at most 64 KiB over 1 s (10
     * samples 100 ms apart); give up waiting after 20 s. */
    SETTLE_KIB = 64,
    SETTLE_SAMPLES = 10,
    SETTLE_MS = 20000,
};

static const char conns_req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

typedef struct {
    int fd;
    unsigned short got;
    bool sent;
    char buf[158];
} conns_conn;

static void conns_send(int ep, conns_conn *c, unsigned i)
{
    ssize_t n = send(c->fd, conns_req, sizeof conns_req - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    BENCH_CHECK(n == (ssize_t)(sizeof conns_req - 1), "conns: connection %u: send: %s", i,
                n < 0 ? strerror(errno) : "short");
    c->sent = true;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0, "epoll_ctl: %s", strerror(errno));
}

/* Open connections [from, to) of c[], each served once, then idle. */
static void conns_open(const server_proc *s, conns_conn *c, unsigned from, unsigned to)
{
    const struct sockaddr_in *dst = (const struct sockaddr_in *)&s->addr;
    bool spread = s->addr.ss_family == AF_INET && dst->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    BENCH_CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
    unsigned next = from, served = from, inflight = 0;
    double deadline = now_s() + CONNS_MS / 1000.0;
    while (served < to) {
        for (; next < to && inflight < CONNS_INFLIGHT; next++, inflight++) {
            conns_conn *k = &c[next];
            memset(k, 0, sizeof *k);
            k->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            BENCH_CHECK(k->fd >= 0, "conns: socket %u: %s", next, strerror(errno));
            if (spread) {
                int one = 1;
                struct sockaddr_in src = {.sin_family = AF_INET,
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + next % CONNS_SRC)};
                setsockopt(k->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                BENCH_CHECK(bind(k->fd, (struct sockaddr *)&src, sizeof src) == 0, "conns: bind: %s",
                            strerror(errno));
            }
            int r = connect(k->fd, (const struct sockaddr *)&s->addr, s->addrlen);
            BENCH_CHECK(r == 0 || errno == EINPROGRESS, "conns: connect %u: %s", next, strerror(errno));
            struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = next};
            BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, k->fd, &ev) == 0, "epoll_ctl: %s", strerror(errno));
        }
        struct epoll_event ev[256];
        int n = epoll_wait(ep, ev, 256, 1000);
        BENCH_CHECK(n >= 0 || errno == EINTR, "epoll_wait: %s", strerror(errno));
        BENCH_CHECK(now_s() < deadline, "conns: %u of %u connections served after %d s", served - from,
                    to - from, CONNS_MS / 1000);
        for (int e = 0; e < n; e++) {
            unsigned i = ev[e].data.u32;
            conns_conn *k = &c[i];
            if (!k->sent) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                BENCH_CHECK(err == 0, "conns: connection %u: connect: %s", i, strerror(err));
                conns_send(ep, k, i);
                continue;
            }
            ssize_t r = recv(k->fd, k->buf + k->got, sizeof k->buf - k->got, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            BENCH_CHECK(r > 0, "conns: connection %u: %s before its response", i,
                        r == 0 ? "closed by the server" : strerror(errno));
            k->got += (unsigned short)r;
            http_resp hr;
            if (!resp_parse("conns", k->buf, k->got, false, &hr)) {
                BENCH_CHECK(k->got < sizeof k->buf, "conns: connection %u: response too long", i);
                continue;
            }
            BENCH_CHECK(hr.status == 200 && hr.conn == CONN_NONE && hr.len == k->got,
                        "conns: connection %u: status %d, %s, %zu bytes of %u", i, hr.status,
                        hr.conn == CONN_CLOSE ? "closing" : "keep-alive", hr.len, k->got);
            BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, k->fd, NULL) == 0, "epoll_ctl: %s", strerror(errno));
            served++;
            inflight--;
        }
    }
    close(ep);
}

/* Every connection in [from, to) is still open, with nothing unread. */
static void conns_check_open(conns_conn *c, unsigned from, unsigned to)
{
    unsigned closed = 0, extra = 0;
    for (unsigned i = from; i < to; i++) {
        char b;
        ssize_t r = recv(c[i].fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            closed++;
        else if (r > 0)
            extra++;
    }
    BENCH_CHECK(closed == 0 && extra == 0,
                "conns: of %u idle connections, %u were closed by the server and "
                "%u got bytes nobody asked for",
                to - from, closed, extra);
}

/* The server's RSS once it has stopped moving; *settled says whether it did. */
static long rss_settled(const server_proc *s, bool *settled)
{
    long v[SETTLE_SAMPLES];
    double deadline = now_s() + SETTLE_MS / 1000.0;
    for (unsigned n = 0;; n++) {
        v[n % SETTLE_SAMPLES] = server_rss_kib(s);
        if (n + 1 >= SETTLE_SAMPLES) {
            long lo = v[0], hi = v[0];
            for (unsigned i = 1; i < SETTLE_SAMPLES; i++) {
                lo = v[i] < lo ? v[i] : lo;
                hi = v[i] > hi ? v[i] : hi;
            }
            *settled = hi - lo <= SETTLE_KIB;
            if (*settled || now_s() > deadline)
                return v[n % SETTLE_SAMPLES];
        }
        pause_ms(100);
    }
}

int bench_conns(const bench_opts *o)
{
    if (no_syscount(o, "conns"))
        return 64;
    const char *path = net_server_path(o, "http_server");
    static conns_conn c[CONNS_N];
    double per_conn[101];
    long before = 0, after = 0;
    bool settled_all = true, stopped = true;
    /* One server per repetition: after 10,000 connections have come and
     * gone, a server's allocator keeps memory, and a second baseline
     * would not be one. */
    for (unsigned r = 0; r < o->reps; r++) {
        server_proc s;
        server_start(&s, path, bench_workers(o));
        net_need_fds(CONNS_N);
        conns_open(&s, c, 0, CONNS_WARM);
        for (unsigned i = 0; i < CONNS_WARM; i++)
            close(c[i].fd);
        bool settled;
        before = rss_settled(&s, &settled);
        settled_all &= settled;
        conns_open(&s, c, 0, CONNS_N);
        after = rss_settled(&s, &settled);
        settled_all &= settled;
        conns_check_open(c, 0, CONNS_N);
        per_conn[r] = (double)(after - before) / CONNS_N;
        /* Stop with every connection open: a graceful stop must not wait
         * for idle connections to go away by themselves. */
        stopped &= server_stop(&s);
        for (unsigned i = 0; i < CONNS_N; i++)
            close(c[i].fd);
    }
    char extra[160];
    snprintf(extra, sizeof extra, "conns=%d,rss_before_kib=%ld,rss_after_kib=%ld,settled=%s", CONNS_N, before,
             after, settled_all ? "yes" : "no");
    bench_print("conns", "rss_kib_per_conn", bench_median(per_conn, o->reps), "KiB", o, extra);
    BENCH_CHECK(stopped,
                "the server must exit with status 0 within 5 s of SIGTERM, with %d idle "
                "connections open (bench/peers/HTTP.md)",
                CONNS_N);
    return 0;
}
