/* bench_pool.c - benchmarks of the thread pool and what runs on it: the
 * round trip of an empty blocking call (one fiber, and 64 fibers in
 * flight), reading a large file through the pool, and spawning a process.
 * Their peers (scripts/poolbench runs them in the same script, interleaved):
 * asyncio.to_thread (bench/peers/py/to_thread.py), tokio's spawn_blocking
 * (bench/peers/rust/src/bin/to_thread.rs), and cat(1) for the file. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/fs.h>
#include <weft/pool.h>
#include <weft/process.h>

typedef struct {
    const bench_opts *o;
    double v[101];
    double v2[101];
} pool_ctx;

/* --- to_thread: an empty call's round trip ------------------------------ */

enum { TT_ONE = 100 * 1000, TT_FIBERS = 64, TT_PER_FIBER = 5000 };

static int empty_call(void *arg, void **res)
{
    *res = arg;
    return 0;
}

static int tt_fiber(void *arg, void **res)
{
    _Atomic long *sum = arg;
    long s = 0;
    for (long i = 1; i <= TT_PER_FIBER; i++) {
        void *rv = NULL;
        if (wf_to_thread(empty_call, (void *)i, NULL, &rv) != 0)
            return -1;
        s += (long)rv;
    }
    atomic_fetch_add(sum, s);
    return 0;
}

static int tt_main(void *arg, void **res)
{
    pool_ctx *c = arg;
    for (unsigned r = 0; r <= c->o->reps; r++) {
        /* One fiber, one call at a time: the latency. */
        int64_t t0 = wf_now();
        long s = 0;
        for (long i = 1; i <= TT_ONE; i++) {
            void *rv = NULL;
            BENCH_CHECK(wf_to_thread(empty_call, (void *)i, NULL, &rv) == 0, "to_thread");
            s += (long)rv;
        }
        int64_t t1 = wf_now();
        BENCH_CHECK(s == (long)TT_ONE * (TT_ONE + 1) / 2, "sum %ld", s);
        /* 64 fibers, each a call at a time: 64 in flight. */
        _Atomic long sum = 0;
        wf_task_t t[TT_FIBERS];
        int64_t t2 = wf_now();
        for (int i = 0; i < TT_FIBERS; i++)
            BENCH_CHECK(wf_spawn(&t[i], tt_fiber, &sum, NULL) == 0, "spawn");
        for (int i = 0; i < TT_FIBERS; i++) {
            int st = -1;
            BENCH_CHECK(wf_join(t[i], &st, NULL) == 0 && st == 0, "fiber %d", st);
        }
        int64_t t3 = wf_now();
        BENCH_CHECK(atomic_load(&sum) == (long)TT_FIBERS * TT_PER_FIBER * (TT_PER_FIBER + 1) / 2, "sum");
        if (r) {
            c->v[r - 1] = (double)(t1 - t0) / 1000.0 / TT_ONE;
            c->v2[r - 1] = (double)(t3 - t2) / 1000.0 / ((double)TT_FIBERS * TT_PER_FIBER);
        }
    }
    return 0;
}

static int bench_to_thread(const bench_opts *o)
{
    pool_ctx c = {.o = o};
    bench_run(o, tt_main, &c);
    bench_print("to_thread", "us_per_call", bench_median(c.v, o->reps), "us", o, "calls=100000,fibers=1");
    bench_print("to_thread", "us_per_call_64", bench_median(c.v2, o->reps), "us", o,
                "calls=320000,fibers=64");
    return 0;
}

/* --- file: a 256 MiB file read through the pool in 64 KiB reads --------- */

#define FILE_SIZE (256L << 20)
#define FILE_CHUNK (64 << 10)

/* The file's content: each 4 KiB page holds one byte value, so that a
 * read at any offset can be checked at its ends. */
static unsigned char file_byte(long off)
{
    return (unsigned char)((off / 4096) % 251);
}

/* WF_BENCH_FILE names the file (scripts/poolbench passes one, to time cat
 * on the same file): made here if missing, and left. Without it, a temp
 * file is made and removed. Returns the path; *made_temp says whether to
 * remove it. */
static const char *file_prepare(char *tmp, size_t n, bool *made_temp)
{
    const char *path = getenv("WF_BENCH_FILE");
    *made_temp = false;
    if (!path || !*path) {
        snprintf(tmp, n, "%s/weft-bench-file-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        int fd = mkstemp(tmp);
        BENCH_CHECK(fd >= 0, "mkstemp %s", tmp);
        close(fd);
        unlink(tmp);
        path = tmp;
        *made_temp = true;
    }
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size == FILE_SIZE)
        return path;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    BENCH_CHECK(fd >= 0, "create %s", path);
    static unsigned char block[1 << 20];
    for (long off = 0; off < FILE_SIZE; off += (long)sizeof block) {
        for (long i = 0; i < (long)sizeof block; i += 4096)
            memset(block + i, file_byte(off + i), 4096);
        BENCH_CHECK(write(fd, block, sizeof block) == (ssize_t)sizeof block, "write %s", path);
    }
    close(fd);
    return path;
}

typedef struct {
    pool_ctx c;
    const char *path;
} file_ctx;

/* One pass over the file; its speed in MiB/s. */
static double file_pass(const char *path)
{
    static unsigned char buf[FILE_CHUNK];
    int64_t t0 = wf_now();
    wf_file_t *f;
    BENCH_CHECK(wf_file_open(&f, path, O_RDONLY, 0, WF_FOREVER) == 0, "open %s", path);
    long off = 0;
    ssize_t n;
    while ((n = wf_file_read(f, buf, sizeof buf, WF_FOREVER)) > 0) {
        BENCH_CHECK(buf[0] == file_byte(off) && buf[n - 1] == file_byte(off + n - 1), "content at %ld", off);
        off += n;
    }
    BENCH_CHECK(n == 0, "read: %s", wf_strerror((int)n));
    BENCH_CHECK(wf_file_close(f) == 0, "close");
    int64_t t1 = wf_now();
    BENCH_CHECK(off == FILE_SIZE, "read %ld bytes", off);
    return (double)FILE_SIZE / (1 << 20) / ((double)(t1 - t0) / 1e9);
}

/* Each repetition reads the file twice: as wf_file_read() does by default
 * (the page cache first, on the worker: fs.h), and with every read through
 * the pool (WF_FILE_NO_NOWAIT, read when the file is opened). */
static int file_main(void *arg, void **res)
{
    file_ctx *fc = arg;
    for (unsigned r = 0; r <= fc->c.o->reps; r++) {
        double plain = file_pass(fc->path);
        setenv("WF_FILE_NO_NOWAIT", "1", 1);
        double pool = file_pass(fc->path);
        unsetenv("WF_FILE_NO_NOWAIT");
        if (r) {
            fc->c.v[r - 1] = plain;
            fc->c.v2[r - 1] = pool;
        }
    }
    return 0;
}

static int bench_file(const bench_opts *o)
{
    char tmp[300];
    bool made_temp;
    file_ctx fc = {.c = {.o = o}};
    fc.path = file_prepare(tmp, sizeof tmp, &made_temp);
    bench_run(o, file_main, &fc);
    if (made_temp)
        unlink(fc.path);
    bench_print("file", "mib_per_s", bench_median(fc.c.v, o->reps), "MiB/s", o, "size=256MiB,read=64KiB");
    bench_print("file", "mib_per_s_pool", bench_median(fc.c.v2, o->reps), "MiB/s", o,
                "size=256MiB,read=64KiB,every_read_through_the_pool");
    return 0;
}

/* --- spawn_proc: spawn /bin/true and wait for it ------------------------- */

enum { SP_N = 300 };

static int spawn_main(void *arg, void **res)
{
    pool_ctx *c = arg;
    char *argv[] = {"true", NULL};
    for (unsigned r = 0; r <= c->o->reps; r++) {
        int64_t t0 = wf_now();
        for (int i = 0; i < SP_N; i++) {
            wf_process_t *p;
            BENCH_CHECK(wf_process_spawn(&p, "/bin/true", argv, NULL) == 0, "spawn");
            int st = -1;
            BENCH_CHECK(wf_process_wait(p, WF_FOREVER, &st) == 0 && st == 0, "status %d", st);
            BENCH_CHECK(wf_process_close(p) == 0, "close");
        }
        int64_t t1 = wf_now();
        if (r)
            c->v[r - 1] = (double)(t1 - t0) / 1000.0 / SP_N;
    }
    return 0;
}

static int bench_spawn_proc(const bench_opts *o)
{
    pool_ctx c = {.o = o};
    bench_run(o, spawn_main, &c);
    bench_print("spawn_proc", "us_per_proc", bench_median(c.v, o->reps), "us", o, "procs=300,prog=/bin/true");
    return 0;
}

const bench_def bench_pool[] = {
    {"to_thread", "an empty blocking call's round trip through the pool, 1 fiber and 64 in flight",
     bench_to_thread},
    {"file", "a 256 MiB file read through the pool in 64 KiB reads (WF_BENCH_FILE: which file)", bench_file},
    {"spawn_proc", "spawn /bin/true and wait for it, one at a time", bench_spawn_proc},
};
const unsigned bench_pool_n = sizeof bench_pool / sizeof bench_pool[0];
