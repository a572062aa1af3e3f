/* hash_server.c - an HTTP/1.1 server that offloads its CPU-heavy requests
 * to weft's process pool, so that its cheap requests keep answering fast.
 *
 *   hash_server [--host H] [--port N] [--workers N] [--inline] [--demo SECONDS]
 *
 *   GET /                 "Hello, World!" (cheap)
 *   POST /hash?rounds=R   the body hashed R times over (FNV-1a, each round
 *                         seeded by the last; R from 1 to 1,000,000,
 *                         default 1000), in a worker process; the answer is
 *                         the 64-bit digest in hex (heavy: 16 KiB x 2000
 *                         rounds is tens of milliseconds of CPU)
 *
 * Each request's service time (from its last byte read to its response
 * queued) is measured by kind; on SIGINT or SIGTERM the server stops and
 * prints both latencies (count, median, 99th percentile, max). With
 * --inline the hashing runs in the connection's own fiber instead: a
 * runtime worker thread then computes for the whole hash, and every cheap
 * request queued behind it waits. --demo SECONDS loads the server itself
 * (heavy clients posting 16 KiB to hash 2000 times, and a cheap client
 * sending a GET every millisecond), first with the pool and then inline,
 * prints what the clients measured, and exits: the difference is the point
 * of the process pool.
 *
 * The parser is minimal but strict (a request line, headers, a
 * Content-Length body of 1 MiB at most; a bare LF, a bad Content-Length,
 * Transfer-Encoding: 400 or 501 and close), with keep-alive. It is
 * examples/http_server.c's in spirit, short: see bench/peers/HTTP.md.
 *
 * Build against an installed weft:
 *   cc -std=c11 hash_server.c $(pkg-config --cflags --libs weft)
 */
#include "server_cli.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <strings.h>

enum { MAX_HEAD = 8192, MAX_BODY = 1 << 20, DEFAULT_ROUNDS = 1000, MAX_ROUNDS = 1000000 };

/* --- the job: runs in a worker process ------------------------------------------ */

/* Input: the rounds (4 bytes, native order), then the body. */
static uint64_t hash_rounds(const unsigned char *b, size_t n, uint32_t rounds)
{
    uint64_t h = 1469598103934665603ull;
    for (uint32_t r = 0; r < rounds; r++) {
        h ^= r;
        for (size_t i = 0; i < n; i++)
            h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

static int hash_job(const void *in, size_t len, wf_procout_t *out)
{
    uint32_t rounds;
    if (len < sizeof rounds)
        return -EINVAL;
    memcpy(&rounds, in, sizeof rounds);
    uint64_t h = hash_rounds((const unsigned char *)in + sizeof rounds, len - sizeof rounds, rounds);
    return wf_procout_set(out, &h, sizeof h);
}

/* --- latencies ------------------------------------------------------------------- */

/* Samples of one kind of request (the first 1 << 16 are kept). */
typedef struct lat {
    _Atomic uint32_t n;
    int64_t v[1 << 16];
} lat;

static void lat_add(lat *l, int64_t ns)
{
    uint32_t i = atomic_fetch_add_explicit(&l->n, 1, memory_order_relaxed);
    if (i < sizeof l->v / sizeof l->v[0])
        l->v[i] = ns;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void lat_print(const char *what, lat *l)
{
    uint32_t n = atomic_load(&l->n), k = n < (1u << 16) ? n : (1u << 16);
    if (k == 0) {
        printf("  %-22s no requests\n", what);
        return;
    }
    qsort(l->v, k, sizeof l->v[0], cmp_i64);
    printf("  %-22s %6u requests, median %8.3f ms, p99 %8.3f ms, max %8.3f ms\n", what, n,
           (double)l->v[k / 2] / 1e6, (double)l->v[(size_t)k * 99 / 100] / 1e6, (double)l->v[k - 1] / 1e6);
    atomic_store(&l->n, 0);
}

/* --- the server ------------------------------------------------------------------ */

typedef struct server {
    wf_procpool_t *pool;
    bool inline_hash; /* --inline: hash in the connection's fiber */
    lat cheap, heavy; /* service times */
} server;

typedef struct request {
    size_t head_len, body_len;
    bool is_get, is_head, is_post, close;
    uint32_t rounds; /* POST /hash: its rounds; 0 for another target */
} request;

static bool tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The rounds of "/hash?rounds=R" (DEFAULT_ROUNDS without one); 0 if bad. */
static uint32_t rounds_of(const char *t, size_t n)
{
    if (n < 5 || memcmp(t, "/hash", 5))
        return 0;
    if (n == 5)
        return DEFAULT_ROUNDS;
    if (n < 13 || memcmp(t + 5, "?rounds=", 8))
        return 0;
    uint64_t v = 0;
    for (size_t i = 13; i < n; i++) {
        if (t[i] < '0' || t[i] > '9' || v > MAX_ROUNDS)
            return 0;
        v = v * 10 + (uint64_t)(t[i] - '0');
    }
    return v >= 1 && v <= MAX_ROUNDS ? (uint32_t)v : 0;
}

/* Parse one head at the start of b[0, n): 0 (need more), 200 (*r filled),
 * or an error status. Keeps no state: a head is parsed again from its
 * start when more bytes arrive (8 KiB at most). */
static int parse(const char *b, size_t n, request *r)
{
    memset(r, 0, sizeof *r);
    /* Every LF must end a CRLF; the head ends at the first empty line. */
    const char *end = NULL;
    size_t limit = n < MAX_HEAD ? n : MAX_HEAD;
    for (size_t i = 0; i < limit && !end; i++) {
        if (b[i] != '\n')
            continue;
        if (i == 0 || b[i - 1] != '\r')
            return 400; /* a bare LF */
        if (i >= 3 && b[i - 2] == '\n' && b[i - 3] == '\r')
            end = b + i - 3;
    }
    if (!end)
        return n >= MAX_HEAD ? 431 : 0;
    r->head_len = (size_t)(end - b) + 4;
    bool v11 = false, saw_close = false, saw_keep = false, saw_len = false;
    const char *p = b;
    for (int line = 0; p < end; line++) {
        const char *eol = p;
        while (*eol != '\r')
            eol++; /* every CR before the end is a CRLF's: checked below */
        size_t len = (size_t)(eol - p);
        if (eol[1] != '\n')
            return 400; /* a stray CR */
        if (line == 0) {
            size_t m = 0;
            while (m < len && tchar(p[m]))
                m++;
            const char *sp = memchr(p + m, ' ', len - m);
            if (!m || p[m] != ' ' || !sp || sp != p + m)
                return 400;
            const char *t = p + m + 1, *sp2 = memchr(t, ' ', (size_t)(p + len - t));
            if (!sp2 || sp2 == t || (size_t)(p + len - sp2 - 1) != 8)
                return 400;
            for (const char *c = t; c < sp2; c++)
                if (*c < 0x21 || *c > 0x7e)
                    return 400;
            if (!memcmp(sp2 + 1, "HTTP/1.1", 8))
                v11 = true;
            else if (memcmp(sp2 + 1, "HTTP/1.0", 8))
                return 400;
            r->is_get = m == 3 && !memcmp(p, "GET", 3);
            r->is_head = m == 4 && !memcmp(p, "HEAD", 4);
            r->is_post = m == 4 && !memcmp(p, "POST", 4);
            /* The head's bytes go once it is consumed: keep what we need. */
            r->rounds = rounds_of(t, (size_t)(sp2 - t));
        } else {
            const char *colon = memchr(p, ':', len);
            size_t k = 0;
            while (k < len && tchar(p[k]))
                k++;
            if (!colon || !k || p + k != colon)
                return 400;
            const char *v = colon + 1, *ve = p + len;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (k == 14 && !strncasecmp(p, "Content-Length", 14)) {
                size_t cl = 0;
                if (v == ve)
                    return 400;
                for (const char *c = v; c < ve; c++) {
                    if (*c < '0' || *c > '9')
                        return 400;
                    if (cl > MAX_BODY)
                        return 413;
                    cl = cl * 10 + (size_t)(*c - '0');
                }
                if ((saw_len && cl != r->body_len))
                    return 400;
                if (cl > MAX_BODY)
                    return 413;
                r->body_len = cl;
                saw_len = true;
            } else if (k == 17 && !strncasecmp(p, "Transfer-Encoding", 17)) {
                return 501;
            } else if (k == 10 && !strncasecmp(p, "Connection", 10)) {
                saw_close |= (size_t)(ve - v) == 5 && !strncasecmp(v, "close", 5);
                saw_keep |= (size_t)(ve - v) == 10 && !strncasecmp(v, "keep-alive", 10);
            }
        }
        p = eol + 2;
    }
    r->close = v11 ? saw_close : !saw_keep;
    return 200;
}

static int reply(wf_stream_t *st, int status, const char *reason, const char *body, bool with_body, bool close)
{
    char head[256];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
                     status, reason, blen, close ? "Connection: close\r\n" : "");
    int e = wf_stream_write(st, head, (size_t)n);
    if (!e && with_body && blen)
        e = wf_stream_write(st, body, blen);
    return e ? e : wf_stream_drain(st, WF_FOREVER);
}

/* Serve one complete request whose body is `body`; false: close after. */
static bool serve_one(server *s, wf_stream_t *st, const request *r, const unsigned char *body, int64_t t0)
{
    if (r->is_get || r->is_head) {
        bool ok = reply(st, 200, "OK", "Hello, World!", r->is_get, r->close) == 0;
        lat_add(&s->cheap, wf_now() - t0);
        return ok && !r->close;
    }
    uint32_t rounds = r->is_post ? r->rounds : 0;
    if (!r->is_post || !rounds) {
        reply(st, r->is_post ? 400 : 405, r->is_post ? "Bad Request" : "Method Not Allowed", NULL, false, true);
        return false;
    }
    /* The job's input: the rounds, then the body. */
    unsigned char *in = malloc(sizeof rounds + r->body_len);
    if (!in) {
        reply(st, 503, "Service Unavailable", NULL, false, true);
        return false;
    }
    memcpy(in, &rounds, sizeof rounds);
    memcpy(in + sizeof rounds, body, r->body_len);
    uint64_t h = 0;
    int e = 0;
    if (s->inline_hash) {
        h = hash_rounds(body, r->body_len, rounds); /* the worker thread computes */
    } else {
        wf_procres_t res;
        e = wf_procpool_run(s->pool, "hash", in, sizeof rounds + r->body_len, WF_FOREVER, &res);
        if (e == 0 && res.status == 0 && res.len == sizeof h)
            memcpy(&h, res.out, sizeof h);
        else if (e == 0)
            e = res.status ? res.status : -EPROTO;
        wf_procres_free(&res);
    }
    free(in);
    bool ok = false;
    if (e) {
        fprintf(stderr, "hash_server: hash job: %s\n", wf_strerror(e));
        reply(st, 500, "Internal Server Error", NULL, false, true);
    } else {
        char hex[32];
        snprintf(hex, sizeof hex, "%016llx\n", (unsigned long long)h);
        ok = reply(st, 200, "OK", hex, true, r->close) == 0 && !r->close;
    }
    lat_add(&s->heavy, wf_now() - t0);
    return ok;
}

static int handler(wf_stream_t *st, void *arg)
{
    server *s = arg;
    unsigned char *body = NULL;
    for (;;) {
        size_t have;
        const char *b = wf_stream_peek(st, &have);
        request r;
        int status = have ? parse(b, have, &r) : 0;
        if (status == 0) {
            if (wf_stream_fill(st, NULL, WF_FOREVER))
                break; /* end of file, an error, or the shutdown */
            continue;
        }
        if (status != 200) {
            static const char *const why[] = {[0] = "Bad Request", [1] = "Content Too Large",
                                              [2] = "Request Header Fields Too Large", [3] = "Not Implemented"};
            int k = status == 413 ? 1 : status == 431 ? 2 : status == 501 ? 3 : 0;
            reply(st, status, why[k], NULL, false, true);
            break;
        }
        wf_stream_consume(st, r.head_len);
        if (r.body_len) {
            unsigned char *nb = realloc(body, r.body_len);
            if (!nb || wf_stream_read_exactly(st, nb, r.body_len, NULL, WF_FOREVER) != 0) {
                body = nb ? nb : body;
                break;
            }
            body = nb;
        }
        if (!serve_one(s, st, &r, body, wf_now()))
            break;
    }
    free(body);
    return 0;
}

/* --- the demo: clients in the same runtime ------------------------------------------ */

/* The heavy clients' body: filled once, before they start. */
static unsigned char demo_body[16 * 1024];

typedef struct client {
    uint16_t port;
    int64_t until;
    bool heavy;
    lat *l;
    int err;
} client;

/* One request and its response on `st`; 0 or an error. */
static int roundtrip(wf_stream_t *st, const char *head, const void *body, size_t blen)
{
    int e = wf_stream_write(st, head, strlen(head));
    if (!e && blen)
        e = wf_stream_write(st, body, blen);
    char resp[MAX_HEAD];
    size_t n = 0;
    if (e || (e = wf_stream_read_until(st, "\r\n\r\n", 4, resp, sizeof resp - 1, &n, WF_FOREVER)) != 0)
        return e;
    resp[n] = 0;
    const char *cl = strstr(resp, "Content-Length: ");
    size_t len = cl ? strtoul(cl + 16, NULL, 10) : 0;
    char sink[256];
    if (strncmp(resp, "HTTP/1.1 200 ", 13) || len > sizeof sink)
        return -EPROTO;
    return len ? wf_stream_read_exactly(st, sink, len, NULL, WF_FOREVER) : 0;
}

static int client_task(void *arg, void **res)
{
    (void)res;
    client *c = arg;
    wf_stream_t *st;
    if ((c->err = wf_open_connection(&st, "127.0.0.1", c->port, wf_deadline_in(10 * WF_NSEC_PER_SEC))) != 0)
        return 0;
    char head[160];
    if (c->heavy)
        snprintf(head, sizeof head, "POST /hash?rounds=2000 HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                 sizeof demo_body);
    else
        snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    while (wf_now() < c->until && !c->err) {
        int64_t t0 = wf_now();
        c->err = roundtrip(st, head, c->heavy ? demo_body : NULL, c->heavy ? sizeof demo_body : 0);
        lat_add(c->l, wf_now() - t0);
        if (!c->heavy)
            wf_sleep(WF_NSEC_PER_MSEC);
    }
    wf_stream_close(st, wf_deadline_in(WF_NSEC_PER_SEC));
    return 0;
}

/* Load the server for `secs` seconds: one heavy client per pool worker and
 * two more (so that every worker stays busy and jobs queue), and a cheap
 * client; print what they measured. */
static int demo_phase(server *s, uint16_t port, unsigned heavy, unsigned secs, const char *title)
{
    static lat cheap, heavy_l;
    enum { MAXC = 64 };
    client c[MAXC + 1];
    wf_task_t t[MAXC + 1];
    if (heavy > MAXC)
        heavy = MAXC;
    for (size_t i = 0; i < sizeof demo_body; i++)
        demo_body[i] = (unsigned char)(i * 31 + 7);
    int64_t until = wf_deadline_in((int64_t)secs * WF_NSEC_PER_SEC);
    for (unsigned i = 0; i <= heavy; i++) {
        c[i] = (client){.port = port, .until = until, .heavy = i < heavy, .l = i < heavy ? &heavy_l : &cheap};
        if (wf_spawn(&t[i], client_task, &c[i], NULL))
            return -ENOMEM;
    }
    int err = 0;
    for (unsigned i = 0; i <= heavy; i++) {
        wf_join(t[i], NULL, NULL);
        if (c[i].err && !err)
            err = c[i].err;
    }
    printf("%s\n", title);
    lat_print("cheap  GET /", &cheap);
    lat_print("heavy  POST /hash", &heavy_l);
    atomic_store(&s->cheap.n, 0);
    atomic_store(&s->heavy.n, 0);
    fflush(stdout);
    return err;
}

typedef struct app {
    server_cli cli;
    server srv;
    unsigned demo; /* seconds per phase; 0: serve until a signal */
} app;

static int main_task(void *arg, void **result)
{
    (void)result;
    app *a = arg;
    server *s = &a->srv;
    wf_procpool_opts_t po;
    wf_procpool_opts_init(&po);
    po.eager = true; /* one worker process per CPU, started now */
    int e = wf_procpool_open(&s->pool, &po);
    if (!e)
        e = wf_procpool_warm(s->pool, wf_deadline_in(30 * WF_NSEC_PER_SEC));
    if (e) {
        fprintf(stderr, "hash_server: process pool: %s\n", wf_strerror(e));
        return e;
    }
    wf_server_opts_t o;
    wf_server_opts_init(&o);
    o.stream.limit = MAX_HEAD;
    o.shut_reads = true; /* on shutdown, idle keep-alive connections end at once */
    wf_server_t *srv;
    if ((e = wf_start_server(&srv, a->cli.host, a->cli.port, handler, s, &o)) != 0) {
        fprintf(stderr, "hash_server: %s:%u: %s\n", a->cli.host, (unsigned)a->cli.port, wf_strerror(e));
        wf_procpool_close(s->pool, WF_PROCPOOL_CANCEL, WF_FOREVER);
        return e;
    }
    if (a->demo) {
        wf_addr_t addr;
        wf_server_addr(srv, &addr);
        uint16_t port = (uint16_t)wf_addr_port(&addr);
        wf_procpool_stats_t ps;
        wf_procpool_stats(s->pool, &ps);
        unsigned heavy = ps.workers + 2;
        printf("hash_server demo: %u heavy clients (16 KiB x 2000 rounds each request), 1 cheap client "
               "(a GET every ms), %u s per phase, %d runtime workers, %u worker processes\n",
               heavy, a->demo, wf_workers(), ps.workers);
        s->inline_hash = false;
        e = demo_phase(s, port, heavy, a->demo, "hashing offloaded to the process pool:");
        s->inline_hash = true;
        if (!e)
            e = demo_phase(s, port, heavy, a->demo, "hashing in the server's own fibers (--inline):");
        wf_server_shutdown(srv, wf_deadline_in(WF_NSEC_PER_SEC));
        if (e)
            fprintf(stderr, "hash_server: demo client: %s\n", wf_strerror(e));
    } else {
        server_serve_until_signal(srv, 4 * WF_NSEC_PER_SEC);
        printf("served (service time, from the request's last byte to its response queued):\n");
        lat_print("cheap  GET /", &s->cheap);
        lat_print("heavy  POST /hash", &s->heavy);
        fflush(stdout);
    }
    wf_procpool_close(s->pool, WF_PROCPOOL_CANCEL, WF_FOREVER);
    return e;
}

int main(int argc, char **argv)
{
    /* Jobs are registered, and the zygote started, before any thread. */
    if (wf_procpool_register("hash", hash_job) || wf_procpool_init()) {
        fprintf(stderr, "hash_server: cannot start the process pool\n");
        return 1;
    }
    static app a;
    /* Our own options first; the rest are server_cli's. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--inline")) {
            a.srv.inline_hash = true;
        } else if (!strcmp(argv[i], "--demo") && i + 1 < argc) {
            a.demo = (unsigned)strtoul(argv[++i], NULL, 10);
            if (a.demo == 0 || a.demo > 3600)
                server_usage(argv[0]);
        } else {
            rest[nrest++] = argv[i];
        }
    }
    server_cli_init(&a.cli, nrest, rest);
    free(rest);
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = a.cli.workers;
    cfg.shutdown_on_signal = true; /* SIGINT/SIGTERM cancel main_task */
    int status = 0;
    int e = wf_run(&cfg, main_task, &a, &status, NULL);
    if (e) {
        fprintf(stderr, "hash_server: wf_run: %s\n", wf_strerror(e));
        return 1;
    }
    return status ? 1 : 0;
}
