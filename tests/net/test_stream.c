/* test_stream.c - buffered streams (include/weft/stream.h): every read and
 * write call, their error paths, cancellation losing nothing, the flusher
 * under a slow reader, and storms on all workers. Every runtime leaves the
 * descriptors it found. */
#include "net_test.h"

#include <signal.h>
#include <weft/stream.h>



/* A stream pair over a Unix socketpair (or TCP when `tcp`). */
static void stream_pair(wf_stream_t **a, wf_stream_t **b, bool tcp, const wf_stream_opts_t *o)
{
    wf_sock_t *x, *y;
    if (tcp)
        CHECK_EQ(tcp_pair(&x, &y), 0);
    else
        CHECK_EQ(wf_socketpair(&x, &y, SOCK_STREAM), 0);
    CHECK_EQ(wf_stream_open(a, x, o), 0);
    CHECK_EQ(wf_stream_open(b, y, o), 0);
}

/* Write `s` and flush. */
static void put(wf_stream_t *st, const char *s)
{
    CHECK_EQ(wf_stream_write(st, s, strlen(s)), 0);
    CHECK_EQ(wf_stream_flush(st, DL()), 0);
}

/* --- reading --------------------------------------------------------------- */

static int reads_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_stream_t *a, *b;
    stream_pair(&a, &b, false, NULL);
    char buf[256];
    size_t len, got;

    put(a, "line one\nline two\nrest");
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 9);
    CHECK(memcmp(buf, "line one\n", 9) == 0);
    CHECK_EQ(wf_stream_read_until(b, "two\n", 4, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 9);
    CHECK(memcmp(buf, "line two\n", 9) == 0);
    /* A partial line waits for the rest. */
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, wf_deadline_in(10 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    put(a, "of it\n");
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 10);
    CHECK(memcmp(buf, "restof it\n", 10) == 0);

    /* read(n): what is buffered first, at most n. */
    put(a, "abcdefgh");
    CHECK_EQ(wf_stream_read(b, buf, 3, DL()), 3);
    CHECK(memcmp(buf, "abc", 3) == 0);
    CHECK_EQ(wf_stream_read(b, buf, sizeof buf, DL()), 5);
    CHECK(memcmp(buf, "defgh", 5) == 0);
    CHECK_EQ(wf_stream_read(b, buf, 0, DL()), 0);
    CHECK_EQ(wf_stream_read(b, buf, sizeof buf, 0), -ETIMEDOUT);

    /* read_exactly across several writes. */
    CHECK_EQ(wf_stream_write(a, "12345", 5), 0);
    CHECK_EQ(wf_stream_write(a, "67890", 5), 0);
    CHECK_EQ(wf_stream_read_exactly(b, buf, 10, &got, DL()), 0);
    CHECK_EQ(got, 10);
    CHECK(memcmp(buf, "1234567890", 10) == 0);

    /* fill / peek / consume: a parser working in place. */
    put(a, "GET / HTTP/1.1\r\n\r\n");
    size_t avail = 0;
    while (avail < 18)
        CHECK_EQ(wf_stream_fill(b, &avail, DL()), 0);
    const char *p = wf_stream_peek(b, &len);
    CHECK(p != NULL);
    CHECK_EQ(len, 18);
    CHECK(memcmp(p, "GET ", 4) == 0);
    CHECK_EQ(wf_stream_consume(b, 4), 0);
    p = wf_stream_peek(b, &len);
    CHECK_EQ(len, 14);
    CHECK_EQ(p[0], '/');
    CHECK_EQ(wf_stream_consume(b, 15), -EINVAL);
    CHECK_EQ(wf_stream_consume(b, 14), 0);
    CHECK(wf_stream_peek(b, &len) == NULL);
    CHECK_EQ(len, 0);

    /* End of file: read_exactly gets the partial bytes and -EPIPE. */
    put(a, "tail");
    CHECK_EQ(wf_stream_write_eof(a, DL()), 0);
    CHECK_EQ(wf_stream_write(a, "x", 1), -EPIPE);
    CHECK_EQ(wf_stream_read_exactly(b, buf, 10, &got, DL()), -EPIPE);
    CHECK_EQ(got, 4);
    CHECK(memcmp(buf, "tail", 4) == 0);
    CHECK_EQ(wf_stream_at_eof(b), 1);
    CHECK_EQ(wf_stream_read(b, buf, sizeof buf, DL()), 0);
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 0);
    CHECK_EQ(wf_stream_read_until(b, "x", 1, buf, sizeof buf, &len, DL()), -EPIPE);
    CHECK_EQ(wf_stream_fill(b, &avail, DL()), -EPIPE);
    /* The other direction still works after a's write_eof. */
    put(b, "back\n");
    CHECK_EQ(wf_stream_readline(a, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 5);
    CHECK_EQ(wf_stream_close(a, DL()), 0);
    CHECK_EQ(wf_stream_close(b, DL()), 0);

    /* readline's last line without '\n'; read_until's partial on EOF. */
    stream_pair(&a, &b, true, NULL);
    put(a, "no newline");
    CHECK_EQ(wf_stream_close(a, DL()), 0);
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 10);
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 0);
    CHECK_EQ(wf_stream_close(b, DL()), 0);
    return 0;
}

static void test_reads(void **state)
{
    (void)state;
    run_counted(2, reads_main, NULL);
}

/* An overlong line: -EMSGSIZE, nothing consumed, the stream still usable. */
static int limit_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_stream_opts_t o;
    wf_stream_opts_init(&o);
    o.limit = 100;
    o.read_size = 32;
    wf_stream_t *a, *b;
    stream_pair(&a, &b, false, &o);
    char line[300];
    memset(line, 'x', 250);
    line[250] = '\n';
    CHECK_EQ(wf_stream_write(a, line, 251), 0);
    CHECK_EQ(wf_stream_write(a, "short\n", 6), 0);
    char buf[400];
    size_t len;
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), -EMSGSIZE);
    /* The bytes are all still there: read them as a plain stream. */
    size_t got = 0;
    while (got < 251) {
        ssize_t r = wf_stream_read(b, buf + got, 251 - got, DL());
        CHECK(r > 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    CHECK(memcmp(buf, line, 251) == 0);
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 6);
    CHECK(memcmp(buf, "short\n", 6) == 0);
    /* A line that fits the limit but not the caller's buffer. */
    put(a, "0123456789\n");
    CHECK_EQ(wf_stream_readline(b, buf, 5, &len, DL()), -EMSGSIZE);
    CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 11);
    /* A buffer already holding the limit: fill says so. */
    memset(line, 'y', 150);
    CHECK_EQ(wf_stream_write(a, line, 150), 0);
    size_t avail = 0;
    int e = 0;
    while (e == 0)
        e = wf_stream_fill(b, &avail, DL());
    CHECK_EQ(e, -EMSGSIZE);
    CHECK(avail >= 100);
    /* Never more than the limit plus one read is buffered. */
    CHECK(avail <= 100 + 32);
    CHECK_EQ(wf_stream_read_until(b, "", 0, buf, sizeof buf, &len, DL()), -EINVAL);
    CHECK_EQ(wf_stream_read_until(b, "ab", 2, buf, 1, &len, DL()), -EINVAL);
    wf_stream_abort(a);
    wf_stream_abort(b);
    return 0;
}

static void test_limit(void **state)
{
    (void)state;
    run_counted(2, limit_main, NULL);
}

/* --- cancellation and deadlines lose nothing ---------------------------------- */

typedef struct {
    wf_stream_t *st;
    char buf[64];
    int what; /* 0 read_exactly(20), 1 readline, 2 read_until("END") */
} blocked_job;

static int blocked_read(void *arg, void **res)
{
    (void)res;
    blocked_job *j = arg;
    size_t len;
    if (j->what == 0)
        return wf_stream_read_exactly(j->st, j->buf, 20, &len, WF_FOREVER);
    if (j->what == 1)
        return wf_stream_readline(j->st, j->buf, sizeof j->buf, &len, WF_FOREVER);
    return wf_stream_read_until(j->st, "END", 3, j->buf, sizeof j->buf, &len, WF_FOREVER);
}

static int cancel_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_stream_opts_t o;
    wf_stream_opts_init(&o);
    o.read_size = 4; /* many small reads: cancel can land between them */
    wf_stream_t *a, *b;
    stream_pair(&a, &b, false, &o);
    for (int round = 0; round < 30; round++) {
        int what = round % 3;
        blocked_job j = {.st = b, .what = what};
        wf_task_t t;
        CHECK_EQ(wf_spawn(&t, blocked_read, &j, NULL), 0);
        /* Part of what it waits for arrives, then it is cancelled. */
        put(a, "0123456789");
        while (wf_task_state(t) != WF_TASK_PARKED)
            wf_yield();
        wf_sleep(100 * WF_NSEC_PER_USEC);
        CHECK_EQ(wf_cancel(t), 0);
        int st;
        CHECK_EQ(wf_join(t, &st, NULL), 0);
        CHECK_EQ(st, -ECANCELED);
        /* The rest arrives; the next reader gets every byte, in order. */
        put(a, what == 0 ? "abcdefghij" : what == 1 ? "abc\n" : "abcEND");
        char buf[64];
        size_t len;
        if (what == 0) {
            CHECK_EQ(wf_stream_read_exactly(b, buf, 20, &len, DL()), 0);
            CHECK(memcmp(buf, "0123456789abcdefghij", 20) == 0);
        } else if (what == 1) {
            CHECK_EQ(wf_stream_readline(b, buf, sizeof buf, &len, DL()), 0);
            CHECK_EQ(len, 14);
            CHECK(memcmp(buf, "0123456789abc\n", 14) == 0);
        } else {
            CHECK_EQ(wf_stream_read_until(b, "END", 3, buf, sizeof buf, &len, DL()), 0);
            CHECK_EQ(len, 16);
            CHECK(memcmp(buf, "0123456789abcEND", 16) == 0);
        }
    }
    /* Deadlines: the same. */
    put(a, "01234");
    char buf[64];
    size_t got;
    CHECK_EQ(wf_stream_read_exactly(b, buf, 10, &got, wf_deadline_in(5 * WF_NSEC_PER_MSEC)), -ETIMEDOUT);
    CHECK_EQ(got, 0);
    put(a, "56789");
    CHECK_EQ(wf_stream_read_exactly(b, buf, 10, &got, DL()), 0);
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    wf_stream_close(a, DL());
    wf_stream_close(b, DL());
    return 0;
}

static void test_cancel_loses_nothing(void **state)
{
    (void)state;
    run_counted(2, cancel_main, NULL);
    run_counted(1, cancel_main, NULL);
}

/* --- writing: a slow reader, drain's marks, flush, close ------------------- */

typedef struct {
    wf_stream_t *st;
    size_t bytes;
    int64_t pause_every; /* bytes between short sleeps: a slow reader */
    wf_event_t *start;   /* if set, read nothing until it is set */
} slow_job;

static int slow_reader(void *arg, void **res)
{
    (void)res;
    slow_job *j = arg;
    uint8_t buf[3000];
    size_t got = 0, since = 0;
    if (j->start) {
        int rc = wf_event_wait_until(j->start, DL());
        if (rc)
            return rc;
    }
    while (got < j->bytes) {
        ssize_t r = wf_stream_read(j->st, buf, sizeof buf, DL());
        if (r <= 0)
            return r == 0 ? -EPIPE : (int)r;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pattern(got + (size_t)i, 7))
                return -EILSEQ;
        got += (size_t)r;
        since += (size_t)r;
        if (j->pause_every && since >= (size_t)j->pause_every) {
            since = 0;
            wf_sleep(200 * WF_NSEC_PER_USEC);
        }
    }
    /* Then the writer's close. */
    ssize_t r = wf_stream_read(j->st, buf, sizeof buf, DL());
    return r == 0 ? 0 : -EIO;
}

static int writes_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_stream_opts_t o;
    wf_stream_opts_init(&o);
    o.high_water = 32 * 1024;
    o.low_water = 8 * 1024;
    wf_stream_t *a, *b;
    stream_pair(&a, &b, true, &o);
    /* A small send buffer, so that the queue and the flusher work while
     * the reader pauses; and enough bytes at every test scale (valgrind's
     * included) to fill it. Not a small receive buffer: shrunk on a
     * connection already established, it left the sender waiting on TCP's
     * zero-window probes (200 ms and more each), and this test took 200 s
     * instead of 1. */
    int small = 16 * 1024;
    CHECK_EQ(setsockopt(wf_sock_fd(wf_stream_socket(a)), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    size_t bytes = (size_t)SCALED(16 << 20);
    if (bytes < (2u << 20))
        bytes = 2u << 20;
    /* The reader starts only once the writer has seen bytes queue up, so
     * the kernel's buffers do fill whatever the machine's speed: a reader
     * that kept pace (CI under TSan, 2 MiB into a receive buffer autotuned
     * to megabytes) left nothing queued. Until the receiver first reads,
     * its window stays at its initial size, far below these 2 MiB. */
    wf_event_t go;
    CHECK_EQ(wf_event_init(&go), 0);
    slow_job j = {.st = b, .bytes = bytes, .pause_every = 256 * 1024, .start = &go};
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, slow_reader, &j, NULL), 0);
    uint8_t chunk[1500];
    size_t sent = 0, max_after_drain = 0;
    bool queued_seen = false;
    while (sent < bytes) {
        size_t n = bytes - sent < sizeof chunk ? bytes - sent : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(sent + i, 7);
        CHECK_EQ(wf_stream_write(a, chunk, n), 0);
        sent += n;
        if (!queued_seen && wf_stream_write_queued(a) > 0) {
            queued_seen = true;
            CHECK(wf_event_set(&go) >= 0);
        }
        CHECK_EQ(wf_stream_drain(a, DL()), 0);
        size_t q = wf_stream_write_queued(a);
        if (q > max_after_drain)
            max_after_drain = q;
    }
    CHECK(queued_seen); /* the kernel's buffer did fill */
    /* After drain at most the high-water mark stays queued. */
    CHECK(max_after_drain <= o.high_water);
    CHECK_EQ(wf_stream_flush(a, DL()), 0);
    CHECK_EQ(wf_stream_write_queued(a), 0);
    /* Close flushes (nothing left) and the reader sees EOF. */
    CHECK_EQ(wf_stream_close(a, DL()), 0);
    int st;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    wf_stream_close(b, DL());
    CHECK_EQ(wf_event_clear(&go), 0);

    /* Close with a big queue: everything arrives before EOF. The reader
     * starts after the write, so the queue cannot have been read away. */
    stream_pair(&a, &b, true, &o);
    CHECK_EQ(setsockopt(wf_sock_fd(wf_stream_socket(a)), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    j = (slow_job){.st = b, .bytes = 1 << 20, .pause_every = 64 * 1024, .start = &go};
    CHECK_EQ(wf_spawn(&t, slow_reader, &j, NULL), 0);
    uint8_t *big = malloc(1 << 20);
    for (size_t i = 0; i < (1 << 20); i++)
        big[i] = pattern(i, 7);
    CHECK_EQ(wf_stream_write(a, big, 1 << 20), 0); /* no drain: all queued */
    CHECK(wf_stream_write_queued(a) > 0);
    CHECK(wf_event_set(&go) >= 0);
    CHECK_EQ(wf_stream_close(a, DL()), 0);
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, 0);
    wf_stream_close(b, DL());
    free(big);
    CHECK_EQ(wf_event_destroy(&go), 0);
    return 0;
}

static void test_writes(void **state)
{
    (void)state;
    run_counted(2, writes_main, NULL);
    run_counted(1, writes_main, NULL);
}

/* Bytes queued go out without further calls (the flusher), a cancelled
 * drain included; a gone peer makes the error sticky. */
static int flusher_job(void *arg, void **res)
{
    (void)res;
    wf_stream_t *st = arg;
    /* Cancelled while it drains: the bytes still go. */
    return wf_stream_drain(st, WF_FOREVER);
}

static int flusher_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_stream_opts_t o;
    wf_stream_opts_init(&o);
    o.high_water = 1024;
    o.low_water = 0;
    wf_stream_t *a, *b;
    stream_pair(&a, &b, false, &o);
    size_t n = 4 << 20;
    uint8_t *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = pattern(i, 9);
    CHECK_EQ(wf_stream_write(a, big, n), 0);
    CHECK(wf_stream_write_queued(a) > 0);
    wf_task_t t;
    CHECK_EQ(wf_spawn(&t, flusher_job, a, NULL), 0);
    while (wf_task_state(t) != WF_TASK_PARKED)
        wf_yield();
    CHECK_EQ(wf_cancel(t), 0);
    int st;
    CHECK_EQ(wf_join(t, &st, NULL), 0);
    CHECK_EQ(st, -ECANCELED);
    /* Nobody drains or flushes now: the flusher sends it all anyway. */
    uint8_t *in = malloc(n);
    size_t got = 0;
    CHECK_EQ(wf_stream_read_exactly(b, in, n, &got, DL()), 0);
    CHECK(memcmp(in, big, n) == 0);
    CHECK(wf_stream_write_queued(a) == 0 || wf_stream_flush(a, DL()) == 0);
    free(in);

    /* The peer goes: the error comes back from write, drain, flush, close. */
    wf_stream_abort(b);
    int e = 0;
    for (int i = 0; i < 1000 && e == 0; i++) {
        e = wf_stream_write(a, big, 65536);
        if (e == 0)
            e = wf_stream_drain(a, DL());
    }
    CHECK(e == -EPIPE || e == -ECONNRESET);
    CHECK_EQ(wf_stream_write(a, "x", 1), e);
    CHECK_EQ(wf_stream_flush(a, DL()), e);
    CHECK_EQ(wf_stream_close(a, DL()), e);
    free(big);
    return 0;
}

static void test_flusher(void **state)
{
    (void)state;
    struct sigaction old, dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGPIPE, &dfl, &old);
    run_counted(2, flusher_main, NULL);
    sigaction(SIGPIPE, &old, NULL);
}

/* Several writers on one stream: each write call's bytes arrive together
 * and in each writer's order. */
typedef struct {
    wf_stream_t *st;
    int id, n;
} rec_job;

static int rec_writer(void *arg, void **res)
{
    (void)res;
    rec_job *j = arg;
    char rec[700];
    for (int i = 0; i < j->n; i++) {
        memset(rec, 'A' + j->id, sizeof rec);
        memcpy(rec, &j->id, sizeof j->id);
        memcpy(rec + sizeof j->id, &i, sizeof i);
        int e = wf_stream_write(j->st, rec, sizeof rec);
        if (e)
            return e;
        if (i % 5 == 0 && (e = wf_stream_drain(j->st, DL())) != 0)
            return e;
    }
    return wf_stream_flush(j->st, DL());
}

static int records_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    enum { W = 6 };
    int per = SCALED(1000);
    wf_stream_t *a, *b;
    stream_pair(&a, &b, true, NULL);
    rec_job j[W];
    wf_task_t t[W];
    for (int i = 0; i < W; i++) {
        j[i] = (rec_job){.st = a, .id = i, .n = per};
        CHECK_EQ(wf_spawn(&t[i], rec_writer, &j[i], NULL), 0);
    }
    int next[W] = {0};
    char rec[700];
    for (int k = 0; k < W * per; k++) {
        size_t got;
        CHECK_EQ(wf_stream_read_exactly(b, rec, sizeof rec, &got, DL()), 0);
        int id, i;
        memcpy(&id, rec, sizeof id);
        memcpy(&i, rec + sizeof id, sizeof i);
        if (id < 0 || id >= W) {
            CHECK(!"bad record");
            break;
        }
        CHECK_EQ(i, next[id]);
        next[id]++;
        for (size_t c = 8; c < sizeof rec; c++)
            if (rec[c] != 'A' + id) {
                CHECK(!"torn record");
                break;
            }
    }
    for (int i = 0; i < W; i++) {
        int st;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
        CHECK_EQ(next[i], per);
    }
    wf_stream_close(a, DL());
    wf_stream_close(b, DL());
    return 0;
}

static void test_records(void **state)
{
    (void)state;
    run_counted(4, records_main, NULL);
}

/* --- a line protocol storm over many connections, all workers -------------- */

typedef struct {
    wf_stream_t *st;
    int lines;
    uint64_t seed;
} line_job;

static int line_server(void *arg, void **res)
{
    (void)res;
    line_job *j = arg;
    char buf[512];
    size_t len;
    for (;;) {
        int e = wf_stream_readline(j->st, buf, sizeof buf, &len, DL());
        if (e)
            return e;
        if (len == 0)
            break;
        e = wf_stream_write(j->st, buf, len);
        if (e == 0)
            e = wf_stream_drain(j->st, DL());
        if (e)
            return e;
    }
    return wf_stream_close(j->st, DL());
}

static int line_client(void *arg, void **res)
{
    (void)res;
    line_job *j = arg;
    char out[512], in[512];
    int sent = 0, recvd = 0;
    while (recvd < j->lines) {
        /* Up to 8 lines in flight, of random lengths. */
        while (sent < j->lines && sent - recvd < 8) {
            int n = snprintf(out, sizeof out, "%d:", sent);
            int pad = (int)(test_rand(&j->seed) % 300);
            memset(out + n, 'a' + sent % 26, (size_t)pad);
            out[n + pad] = '\n';
            int e = wf_stream_write(j->st, out, (size_t)n + (size_t)pad + 1);
            if (e)
                return e;
            sent++;
        }
        size_t len;
        int e = wf_stream_readline(j->st, in, sizeof in, &len, DL());
        if (e)
            return e;
        int id = atoi(in);
        if (id != recvd || in[len - 1] != '\n')
            return -EILSEQ;
        recvd++;
    }
    CHECK_EQ(wf_stream_write_eof(j->st, DL()), 0);
    size_t len;
    CHECK_EQ(wf_stream_readline(j->st, in, sizeof in, &len, DL()), 0);
    CHECK_EQ(len, 0);
    return wf_stream_close(j->st, DL());
}

static int lines_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    int conns = SCALED(40) < 4 ? 4 : SCALED(40);
    line_job *j = calloc((size_t)conns * 2, sizeof *j);
    wf_task_t *t = calloc((size_t)conns * 2, sizeof *t);
    for (int i = 0; i < conns; i++) {
        wf_stream_t *a, *b;
        stream_pair(&a, &b, i % 2 == 0, NULL);
        j[2 * i] = (line_job){.st = b};
        j[2 * i + 1] = (line_job){.st = a, .lines = SCALED(2000), .seed = (uint64_t)i + 1};
        CHECK_EQ(wf_spawn(&t[2 * i], line_server, &j[2 * i], NULL), 0);
        CHECK_EQ(wf_spawn(&t[2 * i + 1], line_client, &j[2 * i + 1], NULL), 0);
    }
    for (int i = 0; i < 2 * conns; i++) {
        int st;
        CHECK_EQ(wf_join(t[i], &st, NULL), 0);
        CHECK_EQ(st, 0);
    }
    free(j);
    free(t);
    return 0;
}

static void test_lines_storm(void **state)
{
    (void)state;
    run_counted(4, lines_main, NULL);
}

/* --- closing while other fibers are in calls ------------------------------ */

typedef struct {
    wf_stream_t *st;
    int what; /* 0 a read, 1 a drain on a full queue, 2 read_exactly */
} pending_job;

static int pending_call(void *arg, void **res)
{
    (void)res;
    pending_job *j = arg;
    char buf[64];
    size_t got;
    if (j->what == 0)
        return (int)wf_stream_read(j->st, buf, sizeof buf, DL());
    if (j->what == 2)
        return wf_stream_read_exactly(j->st, buf, sizeof buf, &got, DL());
    static char big[1 << 20];
    int e = wf_stream_write(j->st, big, sizeof big);
    return e ? e : wf_stream_drain(j->st, DL());
}

static int close_under_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    for (int round = 0; round < SCALED(40) + 2; round++) {
        wf_stream_opts_t o;
        wf_stream_opts_init(&o);
        o.high_water = 1024;
        o.low_water = 0;
        wf_stream_t *a, *b;
        stream_pair(&a, &b, round % 2 == 0, &o);
        /* A small kernel buffer: the 1 MiB write must queue. */
        int small = 16 * 1024;
        CHECK_EQ(setsockopt(wf_sock_fd(wf_stream_socket(a)), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
        pending_job j[3] = {{a, 0}, {a, 1}, {a, 2}};
        wf_task_t t[3];
        for (int i = 0; i < 3; i++)
            CHECK_EQ(wf_spawn(&t[i], pending_call, &j[i], NULL), 0);
        for (int i = 0; i < 3; i++) {
            int st;
            while ((st = wf_task_state(t[i])) != WF_TASK_PARKED && st != WF_TASK_DONE)
                wf_yield();
            CHECK(st == WF_TASK_PARKED); /* each call waits when the close comes */
        }
        /* Close under them: each returns an error (the stream is gone for
         * later calls), none touches freed memory (ASan), none hangs. */
        wf_stream_abort(a);
        for (int i = 0; i < 3; i++) {
            int st;
            CHECK_EQ(wf_join(t[i], &st, NULL), 0);
            CHECK(st == -EBADF || st == -ECONNRESET || st == -EPIPE);
        }
        wf_stream_abort(b);
    }
    return 0;
}

static void test_close_under_calls(void **state)
{
    (void)state;
    run_counted(2, close_under_main, NULL);
    run_counted(1, close_under_main, NULL);
}

/* An abort while the flusher is at work: a peer reads, so the flusher
 * sends, parks and wakes as the abort comes, at a random point; a flush and
 * a read wait on the stream. Eight pairs at a time on 4 workers. Each call
 * ends with its error or success, none touches freed memory (ASan) or
 * hangs, and every descriptor is closed (counted). */
enum { AB_PAIRS = 8, AB_BYTES = 256 * 1024 };

typedef struct {
    wf_stream_t *a, *b;
    int what; /* 0 write and flush on a, 1 read on a, 2 the peer: read b to its end */
    long got;
} ab_job;

static int ab_call(void *arg, void **res)
{
    (void)res;
    ab_job *j = arg;
    static char big[AB_BYTES];
    char buf[4096];
    if (j->what == 0) {
        int e = wf_stream_write(j->a, big, sizeof big);
        return e ? e : wf_stream_flush(j->a, DL());
    }
    if (j->what == 1)
        return (int)wf_stream_read(j->a, buf, sizeof buf, DL());
    for (;;) {
        ssize_t r = wf_stream_read(j->b, buf, sizeof buf, DL());
        if (r <= 0) {
            wf_stream_abort(j->b);
            return r == -ECONNRESET ? 0 : (int)r;
        }
        j->got += r;
    }
}

static int abort_flush_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    uint64_t seed = 7;
    for (int round = 0; round < SCALED(100) + 2; round++) {
        ab_job j[AB_PAIRS][3];
        wf_task_t t[AB_PAIRS][3];
        wf_stream_opts_t o;
        wf_stream_opts_init(&o);
        o.high_water = 1024;
        o.low_water = 0;
        for (int i = 0; i < AB_PAIRS; i++) {
            wf_stream_t *a, *b;
            stream_pair(&a, &b, false, &o);
            int small = 16 * 1024;
            CHECK_EQ(setsockopt(wf_sock_fd(wf_stream_socket(a)), SOL_SOCKET, SO_SNDBUF, &small, sizeof small),
                     0);
            for (int k = 0; k < 3; k++) {
                j[i][k] = (ab_job){.a = a, .b = b, .what = k};
                CHECK_EQ(wf_spawn(&t[i][k], ab_call, &j[i][k], NULL), 0);
            }
        }
        for (int i = 0; i < AB_PAIRS; i++) {
            /* The writer and the reader are in their last call (parked in
             * it, or done) before the abort may come. */
            for (int k = 0; k < 2; k++) {
                int st;
                while ((st = wf_task_state(t[i][k])) != WF_TASK_PARKED && st != WF_TASK_DONE)
                    wf_yield();
            }
            for (unsigned y = test_rand(&seed) % 8; y; y--)
                wf_yield();
            wf_stream_abort(j[i][0].a);
        }
        for (int i = 0; i < AB_PAIRS; i++) {
            int st[3];
            for (int k = 0; k < 3; k++)
                CHECK_EQ(wf_join(t[i][k], &st[k], NULL), 0);
            CHECK(st[0] == 0 || st[0] == -EBADF || st[0] == -EPIPE || st[0] == -ECONNRESET);
            CHECK_EQ(st[1], -EBADF);
            CHECK_EQ(st[2], 0);
            CHECK(j[i][2].got <= AB_BYTES);
            if (st[0] == 0)
                CHECK_EQ(j[i][2].got, AB_BYTES); /* flushed: all of it arrived */
        }
    }
    return 0;
}

static void test_abort_while_flushing(void **state)
{
    (void)state;
    run_counted(4, abort_flush_main, NULL);
}

/* --- bad input, open_connection ------------------------------------------- */

static int misc_main(void *arg, void **res)
{
    (void)arg;
    (void)res;
    wf_stream_t *st;
    wf_sock_t *l;
    uint16_t port = 0;
    CHECK_EQ(listen_any(&l, &port), 0);
    CHECK_EQ(wf_open_connection(&st, "127.0.0.1", port, DL()), 0);
    wf_sock_t *s;
    CHECK_EQ(wf_sock_accept(l, &s, NULL, DL()), 0);
    wf_stream_t *srv;
    CHECK_EQ(wf_stream_open(&srv, s, NULL), 0);
    put(st, "ping\n");
    char buf[16];
    size_t len;
    CHECK_EQ(wf_stream_readline(srv, buf, sizeof buf, &len, DL()), 0);
    CHECK_EQ(len, 5);
    CHECK(wf_stream_socket(st) != NULL);
    CHECK_EQ(wf_stream_close(st, DL()), 0);
    CHECK_EQ(wf_stream_close(srv, DL()), 0);
    wf_sock_close(l);
    CHECK_EQ(wf_open_connection(&st, "127.0.0.1", port, DL()), -ECONNREFUSED);

    wf_stream_opts_t o;
    wf_stream_opts_init(&o);
    CHECK_EQ(wf_socketpair(&s, &l, SOCK_STREAM), 0);
    o.low_water = o.high_water + 1;
    CHECK_EQ(wf_stream_open(&st, s, &o), -EINVAL);
    wf_stream_opts_init(&o);
    o.limit = 0;
    CHECK_EQ(wf_stream_open(&st, s, &o), -EINVAL);
    CHECK_EQ(wf_stream_open(NULL, s, NULL), -EINVAL);
    CHECK_EQ(wf_stream_open(&st, NULL, NULL), -EINVAL);
    CHECK_EQ(wf_sock_ref(l), 0);
    CHECK_EQ(wf_sock_close(l), 0);
    CHECK_EQ(wf_stream_open(&st, l, NULL), -EBADF);
    wf_sock_release(l);
    CHECK_EQ(wf_stream_open(&st, s, NULL), 0);
    CHECK_EQ(wf_stream_read(NULL, buf, 1, DL()), -EINVAL);
    CHECK_EQ(wf_stream_read(st, NULL, 1, DL()), -EINVAL);
    CHECK_EQ(wf_stream_read(st, buf, 1, -7), -EINVAL);
    CHECK_EQ(wf_stream_write(NULL, buf, 1), -EINVAL);
    CHECK_EQ(wf_stream_write(st, NULL, 1), -EINVAL);
    CHECK_EQ(wf_stream_writev(st, NULL, -1), -EINVAL);
    CHECK_EQ(wf_stream_drain(NULL, DL()), -EINVAL);
    CHECK_EQ(wf_stream_at_eof(NULL), -EINVAL);
    CHECK_EQ(wf_stream_consume(NULL, 0), -EINVAL);
    CHECK_EQ(wf_stream_write_queued(NULL), 0);
    /* The peer is closed: reads see EOF, writes -EPIPE. */
    CHECK_EQ(wf_stream_read(st, buf, sizeof buf, DL()), 0);
    int e = wf_stream_write(st, "x", 1);
    if (e == 0)
        e = wf_stream_flush(st, DL());
    CHECK_EQ(e, -EPIPE);
    CHECK_EQ(wf_stream_close(st, DL()), -EPIPE);
    CHECK_EQ(wf_stream_close(NULL, DL()), -EINVAL);
    CHECK_EQ(wf_stream_abort(NULL), -EINVAL);
    return 0;
}

static void test_misc(void **state)
{
    (void)state;
    run_counted(2, misc_main, NULL);
    /* Outside a runtime: calls that park say so. */
    wf_sock_t *x, *y;
    assert_int_equal(wf_socketpair(&x, &y, SOCK_STREAM), 0);
    wf_stream_t *st;
    assert_int_equal(wf_stream_open(&st, x, NULL), 0);
    char b[4];
    assert_int_equal(wf_stream_read(st, b, sizeof b, 0), -EPERM);
    assert_int_equal(wf_stream_write(st, b, sizeof b), -EPERM);
    assert_int_equal(wf_stream_close(st, 0), 0);
    wf_sock_close(y);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_cancel_loses_nothing),
        cmocka_unit_test(test_writes),
        cmocka_unit_test(test_flusher),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_lines_storm),
        cmocka_unit_test(test_close_under_calls),
        cmocka_unit_test(test_abort_while_flushing),
        cmocka_unit_test(test_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
