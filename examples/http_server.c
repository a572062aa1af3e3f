/* http_server.c - HTTP/1.1 keep-alive "Hello, World!" on weft: a task per
 * connection, a strict minimal parser that works in the stream's buffer
 * (fill / peek / consume), pipelined requests answered in order with one
 * write per batch.
 *
 *   http_server [--host H] [--port N] [--workers N]
 *
 * The rules (request line, headers, Content-Length bodies read and thrown
 * away, Transfer-Encoding refused, 400/413/431/501 then close, keep-alive,
 * pipelining, the lingering close) are bench/peers/HTTP.md's, which its Go
 * and Tokio peers follow too (`weft-bench http`, `weft-bench conns`). A
 * connection never holds more than its 8 KiB read buffer and 4 KiB of
 * queued responses, whatever a client sends; an idle one holds neither.
 *
 * Prints "listening on HOST:PORT" once it accepts connections, serves until
 * SIGINT or SIGTERM, then stops accepting, ends idle connections at once,
 * answers requests already received, and exits 0.
 *
 * Build against an installed weft:
 *   cc -std=c11 http_server.c $(pkg-config --cflags --libs weft)
 */
#include "server_cli.h"

#include <stdbool.h>
#include <strings.h>
#include <sys/uio.h>

enum {
    MAX_HEAD = 8192,    /* request line + headers + the empty line */
    MAX_BODY = 1 << 20, /* the largest Content-Length accepted */
    OUT_BYTES = 4096,   /* queued responses are written out at this size */
    OUT_PARTS = 32,
    LINGER_BYTES = 64 * 1024,
};
#define LINGER_NS (1 * WF_NSEC_PER_SEC)

/* --- the parser (bench/peers/HTTP.md, "Parsing a request") ------------------ */

/* What parse() answers besides a complete head: an HTTP status, or: */
enum { NEED_MORE = 0, HEAD_OK = 200 };

typedef struct request {
    size_t head_len; /* bytes of the head, its empty line included */
    size_t body_len; /* Content-Length (0 without one) */
    bool is_head;    /* HEAD: the response has no body */
    bool close;      /* close the connection after the response */
    bool keep10;     /* an HTTP/1.0 request that keeps the connection */
} request;

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    return i;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trim spaces and tabs at both ends of [*p, *p + *n). */
static void trim_ows(const char **p, size_t *n)
{
    while (*n && is_ows(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_ows((*p)[*n - 1]))
        (*n)--;
}

static bool equal_fold(const char *p, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

/* METHOD SP TARGET SP VERSION. */
static bool request_line(const char *ln, size_t n, request *r, bool *v11)
{
    size_t m = token_len(ln, n);
    if (m == 0 || m >= n || ln[m] != ' ')
        return false;
    r->is_head = m == 4 && memcmp(ln, "HEAD", 4) == 0;
    const char *rest = ln + m + 1;
    size_t left = n - m - 1, t = 0;
    while (t < left && rest[t] >= 0x21 && rest[t] <= 0x7e)
        t++;
    if (t == 0 || t >= left || rest[t] != ' ')
        return false;
    const char *v = rest + t + 1;
    size_t vn = left - t - 1;
    if (vn == 8 && memcmp(v, "HTTP/1.1", 8) == 0)
        *v11 = true;
    else if (vn == 8 && memcmp(v, "HTTP/1.0", 8) == 0)
        *v11 = false;
    else
        return false;
    return true;
}

/* One header line (not the first, not empty). 0, or an error status. */
static int header_line(const char *ln, size_t n, request *r, const char **cl, size_t *cl_n, bool *saw_close,
                       bool *saw_keep)
{
    size_t k = token_len(ln, n);
    if (k == 0 || k >= n || ln[k] != ':')
        return 400;
    const char *v = ln + k + 1;
    size_t vn = n - k - 1;
    trim_ows(&v, &vn);
    for (size_t i = 0; i < vn; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c != '\t' && c != ' ' && (c < 0x21 || c == 0x7f))
            return 400;
    }
    if (equal_fold(ln, k, "Content-Length")) {
        if (vn == 0)
            return 400;
        for (size_t i = 0; i < vn; i++)
            if (v[i] < '0' || v[i] > '9')
                return 400;
        while (vn > 1 && v[0] == '0') {
            v++;
            vn--;
        }
        if (*cl && (*cl_n != vn || memcmp(*cl, v, vn) != 0))
            return 400;
        *cl = v;
        *cl_n = vn;
        /* Eight digits or more is at least 10,000,000: over the limit. */
        if (vn > 7)
            return 413;
        size_t len = 0;
        for (size_t i = 0; i < vn; i++)
            len = len * 10 + (size_t)(v[i] - '0');
        if (len > MAX_BODY)
            return 413;
        r->body_len = len;
    } else if (equal_fold(ln, k, "Transfer-Encoding")) {
        return 501;
    } else if (equal_fold(ln, k, "Connection")) {
        while (vn) {
            const char *comma = memchr(v, ',', vn);
            const char *tok = v;
            size_t tn = comma ? (size_t)(comma - v) : vn;
            v += comma ? tn + 1 : tn;
            vn -= comma ? tn + 1 : tn;
            trim_ows(&tok, &tn);
            if (equal_fold(tok, tn, "close"))
                *saw_close = true;
            else if (equal_fold(tok, tn, "keep-alive"))
                *saw_keep = true;
        }
    }
    return 0;
}

/* Look for one request head at the start of b[0, n). NEED_MORE, HEAD_OK
 * with *r filled in, or the status of the first problem in byte order.
 * Keeps no state: the head is parsed again from its start when more bytes
 * arrive (at most 8 KiB). */
static int parse(const char *b, size_t n, request *r)
{
    memset(r, 0, sizeof *r);
    size_t limit = n < MAX_HEAD ? n : MAX_HEAD;
    bool v11 = false, saw_close = false, saw_keep = false;
    const char *cl = NULL;
    size_t cl_n = 0;
    for (size_t pos = 0, line = 0;; line++) {
        const char *lf = memchr(b + pos, '\n', limit - pos);
        if (!lf)
            return n >= MAX_HEAD ? 431 : NEED_MORE;
        size_t end = (size_t)(lf - b);
        if (end == pos || b[end - 1] != '\r')
            return 400; /* a bare LF */
        const char *ln = b + pos;
        size_t len = end - 1 - pos;
        pos = end + 1;
        if (memchr(ln, '\r', len))
            return 400; /* a stray CR */
        if (line == 0) {
            if (!request_line(ln, len, r, &v11))
                return 400;
            continue;
        }
        if (len == 0) { /* the end of the head */
            r->head_len = pos;
            if (v11) {
                r->close = saw_close;
            } else {
                r->keep10 = saw_keep && !saw_close;
                r->close = !r->keep10;
            }
            return HEAD_OK;
        }
        int e = header_line(ln, len, r, &cl, &cl_n, &saw_close, &saw_keep);
        if (e)
            return e;
    }
}

/* --- responses ---------------------------------------------------------------- */

#define OK_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"

/* [is_head][conn]: conn 0 keeps an HTTP/1.1 connection, 1 closes, 2 keeps
 * an HTTP/1.0 one. */
static const char *const responses[2][3] = {
    {OK_HEAD "\r\nHello, World!", OK_HEAD "Connection: close\r\n\r\nHello, World!",
     OK_HEAD "Connection: keep-alive\r\n\r\nHello, World!"},
    {OK_HEAD "\r\n", OK_HEAD "Connection: close\r\n\r\n", OK_HEAD "Connection: keep-alive\r\n\r\n"},
};

static const char *error_response(int status)
{
    switch (status) {
    case 413:
        return "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    case 431:
        return "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    case 501:
        return "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    default:
        return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    }
}

/* Responses waiting to go out together: constant strings, gathered into
 * one write (writev), so no byte is copied until the stream must queue. */
typedef struct out {
    struct iovec v[OUT_PARTS];
    int n;
    size_t bytes;
} out;

static int flush_out(wf_stream_t *st, out *o)
{
    if (!o->n)
        return 0;
    int e = wf_stream_writev(st, o->v, o->n);
    o->n = 0;
    o->bytes = 0;
    /* Backpressure: a client that pipelines without reading parks us. */
    return e ? e : wf_stream_drain(st, WF_FOREVER);
}

/* Queue one response, writing the queue out first when it would not fit. */
static int put(wf_stream_t *st, out *o, const char *s)
{
    size_t n = strlen(s);
    if (o->n == OUT_PARTS || (o->n && o->bytes + n > OUT_BYTES)) {
        int e = flush_out(st, o);
        if (e)
            return e;
    }
    o->v[o->n].iov_base = (void *)s;
    o->v[o->n].iov_len = n;
    o->n++;
    o->bytes += n;
    return 0;
}

/* Queue the response to a complete request; false when the connection
 * closes after it (or writing failed). */
static bool respond(wf_stream_t *st, out *o, const request *r)
{
    int c = r->close ? 1 : r->keep10 ? 2 : 0;
    return put(st, o, responses[r->is_head][c]) == 0 && !r->close;
}

/* --- a connection ----------------------------------------------------------- */

/* Serve until end of file or an error (0: just close), or until a response
 * closes the connection (1: linger first). */
static int serve(wf_stream_t *st)
{
    out o = {.n = 0};
    request req;
    size_t discard = 0; /* body bytes of req still to throw away */
    for (;;) {
        /* Answer every complete request already buffered. */
        for (;;) {
            size_t have;
            const char *p = wf_stream_peek(st, &have);
            if (discard) {
                size_t k = discard < have ? discard : have;
                wf_stream_consume(st, k);
                if ((discard -= k) > 0)
                    break;
                if (!respond(st, &o, &req))
                    return flush_out(st, &o) == 0;
                continue;
            }
            if (!have)
                break;
            int status = parse(p, have, &req);
            if (status == NEED_MORE)
                break;
            if (status != HEAD_OK)
                return put(st, &o, error_response(status)) == 0 && flush_out(st, &o) == 0;
            wf_stream_consume(st, req.head_len);
            if (req.body_len) {
                discard = req.body_len;
                continue;
            }
            if (!respond(st, &o, &req))
                return flush_out(st, &o) == 0;
        }
        /* No complete request left: what is queued goes out now. */
        if (flush_out(st, &o))
            return 0;
        /* Wait for more input (end of file, an error or shutdown: close). */
        if (wf_stream_fill(st, NULL, WF_FOREVER))
            return 0;
    }
}

/* Close after a last response without a reset destroying it: send end of
 * file, then read and throw away what the client still sends, for 1 s and
 * 64 KiB at most (HTTP.md, "Closing after a response"). */
static void linger(wf_stream_t *st)
{
    int64_t deadline = wf_deadline_in(LINGER_NS);
    if (wf_stream_write_eof(st, deadline))
        return;
    size_t thrown = 0;
    while (thrown < LINGER_BYTES) {
        size_t have = 0;
        if (wf_stream_fill(st, &have, deadline) != 0 && have == 0)
            return;
        wf_stream_consume(st, have);
        thrown += have;
    }
}

static int handler(wf_stream_t *st, void *arg)
{
    (void)arg;
    if (serve(st))
        linger(st);
    return 0;
}

int main(int argc, char **argv)
{
    wf_server_opts_t o;
    wf_server_opts_init(&o);
    o.stream.limit = MAX_HEAD; /* the read buffer: the largest head */
    o.stream.read_size = MAX_HEAD;
    o.shut_reads = true; /* on shutdown, idle keep-alive connections end at once */
    return server_main(argc, argv, "http_server", handler, &o);
}
