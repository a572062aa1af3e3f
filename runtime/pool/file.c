/* file.c - files for fibers through the pool's file crew (weft/fs.h).
 *
 * Each call that may block is one job (job.h) on the WF_POOL_FILE crew,
 * waited for in FINISH mode: a call that a pool thread has started reads
 * or writes the caller's buffer, so it is waited for to the end whatever
 * happens meanwhile (the record can then live on the caller's stack: no
 * allocation per call). close(2) is waited for WHOLE: never withdrawn.
 *
 * READS TRY THE PAGE CACHE FIRST, on the caller's thread: preadv2 with
 * RWF_NOWAIT (Linux 4.14) reads what is cached and fails with EAGAIN
 * instead of waiting for the disk, and only then does the read go to the
 * pool (the try-first rule of sockets, applied to the page cache). A
 * cached read costs no pool round trip: two thread hand-offs per 64 KiB
 * read kept a sequential reader at half cat's speed on the 2-core VM
 * (docs/benchmarks.md). A file system that refuses the flag (EOPNOTSUPP)
 * sends that file's reads to the pool from then on.
 *
 * A file carries a count of calls in progress (`busy`), so that close can
 * refuse while one runs instead of pulling the fd from under it, and a
 * fiber lock that serialises the calls that use the file position with the
 * line reader's buffer (rbuf[rpos..rlen) holds bytes read from the file
 * and not yet handed out: the kernel's position is rlen - rpos bytes ahead
 * of the reader's).
 */
#include "pool.h"
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <weft/fs.h>
#include <weft/sync.h>

/* Read-ahead buffer of the line reader (aiofiles and asyncio read 64 KiB
 * at a time as well). */
#define RBUF_SIZE (64 * 1024)

/* busy: calls in progress, and this bit once close has begun. */
#define CLOSING 0x80000000u

struct wf_file {
    int fd;
    _Atomic uint32_t busy;
    /* Reads go straight to the pool: the file system refused RWF_NOWAIT
     * (or WF_FILE_NO_NOWAIT asked so). relaxed: a hint, set once. */
    _Atomic bool nowait_off;
    wf_lock_t turn; /* calls that use the file position */
    char *rbuf;     /* under turn */
    size_t rpos, rlen;
};

enum { OP_OPEN, OP_READ, OP_PREAD, OP_WRITE, OP_PWRITE, OP_SYNC, OP_DATASYNC, OP_CLOSE };

typedef struct fop {
    wf__job job;
    int op;
    int fd;
    int flags;
    mode_t mode;
    const char *path;
    void *buf;
    size_t n;
    off_t off;   /* pread/pwrite: the offset; write: lseek(SEEK_CUR) first */
    ssize_t ret; /* the count (or the new fd), or -errno */
    size_t done; /* writes: bytes written */
} fop;

/* --- on the pool thread ---------------------------------------------------- */

/* A plain thread: errno is read right after each call, on the thread that
 * made it. */
static ssize_t write_all(fop *o, bool positional)
{
    const char *p = o->buf;
    while (o->done < o->n) {
        ssize_t w = positional ? pwrite(o->fd, p + o->done, o->n - o->done, o->off + (off_t)o->done)
                               : write(o->fd, p + o->done, o->n - o->done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO; /* a regular file never takes nothing; do not loop */
        o->done += (size_t)w;
    }
    return 0;
}

static void fop_run(wf__job *j)
{
    fop *o = wf__container_of(j, fop, job);
    ssize_t r;
    switch (o->op) {
    case OP_OPEN: {
        int fd;
        do
            fd = open(o->path, o->flags | O_CLOEXEC, o->mode);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) {
            r = -errno;
            break;
        }
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            close(fd);
            r = -EISDIR; /* a file is expected (Python's open() says so too) */
            break;
        }
        r = fd;
        break;
    }
    case OP_READ:
    case OP_PREAD:
        do
            r = o->op == OP_READ ? read(o->fd, o->buf, o->n) : pread(o->fd, o->buf, o->n, o->off);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            r = -errno;
        break;
    case OP_WRITE:
        /* Put the position back where the line reader is first. */
        if (o->off && lseek(o->fd, o->off, SEEK_CUR) < 0) {
            r = -errno;
            break;
        }
        r = write_all(o, false);
        break;
    case OP_PWRITE:
        r = write_all(o, true);
        break;
    case OP_SYNC:
    case OP_DATASYNC:
        r = (o->op == OP_SYNC ? fsync(o->fd) : fdatasync(o->fd)) < 0 ? -errno : 0;
        break;
    case OP_CLOSE:
        /* EINTR: the fd is closed all the same on Linux; not an error. */
        r = close(o->fd) < 0 && errno != EINTR ? -errno : 0;
        break;
    default:
        r = -EINVAL;
    }
    o->ret = r;
}

/* --- on the fiber ----------------------------------------------------------- */

static void fop_init(fop *o, int op, int fd)
{
    memset(o, 0, sizeof *o);
    wf__job_init(&o->job, fop_run, NULL);
    o->op = op;
    o->fd = fd;
}

/* Run `o` on the file crew. Returns o->ret, or the wait's own error
 * (withdrawn before it started: -ECANCELED, -ETIMEDOUT; -EAGAIN...). */
static ssize_t submit(wf__task *self, fop *o, int64_t deadline, int mode)
{
    wf__crew *c = wf__pool_crew(self->rt->pool, WF__CREW_FILE);
    int r = wf__job_wait(self, c, &o->job, deadline, mode);
    return r < 0 ? r : o->ret;
}

static __attribute__((noinline)) ssize_t sys_read_nowait(int fd, void *buf, size_t n, off_t off)
{
    struct iovec v = {.iov_base = buf, .iov_len = n};
    ssize_t r;
    do
        r = preadv2(fd, &v, 1, off, RWF_NOWAIT);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

/* A read (OP_READ, OP_PREAD): from the page cache here if it is all there
 * (READS TRY THE PAGE CACHE FIRST above), else on the file crew. */
static ssize_t submit_read(wf__task *self, wf_file_t *f, fop *o, int64_t deadline)
{
    /* relaxed: see nowait_off. */
    if (!atomic_load_explicit(&f->nowait_off, memory_order_relaxed)) {
        ssize_t r = sys_read_nowait(o->fd, o->buf, o->n, o->op == OP_READ ? (off_t)-1 : o->off);
        if (r >= 0 || (r != -EAGAIN && r != -EOPNOTSUPP && r != -EINVAL && r != -ENOSYS))
            return r;     /* done, or a real error (the pool would get it too) */
        if (r != -EAGAIN) /* refused: this file's reads go to the pool */
            atomic_store_explicit(&f->nowait_off, true, memory_order_relaxed);
    }
    return submit(self, o, deadline, WF__JOB_FINISH);
}

static bool no_nowait(void)
{
    const char *v = getenv("WF_FILE_NO_NOWAIT");
    return v && *v && strcmp(v, "0") != 0;
}

static bool ran(const fop *o)
{
    return o->job.err == 0 && atomic_load_explicit(&o->job.state, memory_order_relaxed) == WF__JOB_DONE;
}

/* Count a call in on `f` (-EBADF once its close has begun). */
static int enter(wf_file_t *f)
{
    /* relaxed: the count is a guard against close, whose CAS from 0
     * decides; the call's own use of f is ordered by the fiber itself. */
    uint32_t v = atomic_load_explicit(&f->busy, memory_order_relaxed);
    do {
        if (v & CLOSING)
            return -EBADF;
    } while (!atomic_compare_exchange_weak_explicit(&f->busy, &v, v + 1, memory_order_acquire,
                                                    memory_order_relaxed));
    return 0;
}

static void leave(wf_file_t *f)
{
    /* release: the call's writes to f happen before a close that sees 0. */
    atomic_fetch_sub_explicit(&f->busy, 1, memory_order_release);
}

/* Common checks of a call on `f`: 0 and `*self`, or the error. */
static int begin(wf_file_t *f, const void *buf, size_t n, int64_t deadline, wf__task **self)
{
    *self = wf__current();
    if (!*self)
        return -EPERM;
    if (!f || (!buf && n) || deadline < WF_FOREVER)
        return -EINVAL;
    return enter(f);
}

/* begin() for the calls at an offset: also -EINVAL for a negative one. */
static int begin_at(wf_file_t *f, const void *buf, size_t n, int64_t offset, int64_t deadline,
                    wf__task **self)
{
    int e = begin(f, buf, n, deadline, self);
    if (e == 0 && offset < 0) {
        leave(f);
        e = -EINVAL;
    }
    return e;
}

int wf_file_open(wf_file_t **out, const char *path, int flags, mode_t mode, int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!out || !path || deadline < WF_FOREVER)
        return -EINVAL;
    wf_file_t *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    if (wf_lock_init(&f->turn) < 0) {
        free(f);
        return -ENOMEM;
    }
    fop o;
    fop_init(&o, OP_OPEN, -1);
    o.path = path;
    o.flags = flags;
    o.mode = mode;
    ssize_t r = submit(self, &o, deadline, WF__JOB_FINISH);
    if (r < 0) {
        wf_lock_destroy(&f->turn);
        free(f);
        return (int)r;
    }
    f->fd = (int)r;
    atomic_init(&f->busy, 0);
    atomic_init(&f->nowait_off, no_nowait());
    *out = f;
    return 0;
}

ssize_t wf_file_pread(wf_file_t *f, void *buf, size_t n, int64_t offset, int64_t deadline)
{
    wf__task *self;
    int e = begin_at(f, buf, n, offset, deadline, &self);
    if (e < 0)
        return e;
    ssize_t r = 0;
    if (n) {
        fop o;
        fop_init(&o, OP_PREAD, f->fd);
        o.buf = buf;
        o.n = n;
        o.off = (off_t)offset;
        r = submit_read(self, f, &o, deadline);
    }
    leave(f);
    return r;
}

int wf_file_pwrite(wf_file_t *f, const void *buf, size_t n, int64_t offset, size_t *written, int64_t deadline)
{
    if (written)
        *written = 0;
    wf__task *self;
    int e = begin_at(f, buf, n, offset, deadline, &self);
    if (e < 0)
        return e;
    ssize_t r = 0;
    if (n) {
        fop o;
        fop_init(&o, OP_PWRITE, f->fd);
        o.buf = (void *)buf;
        o.n = n;
        o.off = (off_t)offset;
        r = submit(self, &o, deadline, WF__JOB_FINISH);
        if (written)
            *written = o.done;
    }
    leave(f);
    return (int)r;
}

int wf_file_sync(wf_file_t *f, bool data_only, int64_t deadline)
{
    wf__task *self;
    int e = begin(f, NULL, 0, deadline, &self);
    if (e < 0)
        return e;
    fop o;
    fop_init(&o, data_only ? OP_DATASYNC : OP_SYNC, f->fd);
    ssize_t r = submit(self, &o, deadline, WF__JOB_FINISH);
    leave(f);
    return (int)r;
}

/* --- calls that use the file position: one at a time --------------------- */

/* For a call that begin() counted in: take the file's turn (cancellable,
 * until `deadline`). Returns 0, or the error with the call counted out
 * again (leave), so the caller only returns it. */
static int take_turn(wf_file_t *f, int64_t deadline)
{
    int e = wf_lock_acquire_until(&f->turn, deadline);
    if (e < 0)
        leave(f);
    return e;
}

/* The end of a call that took the turn: give it back, then count out. */
static void give_turn(wf_file_t *f)
{
    wf_lock_release(&f->turn);
    leave(f);
}

static size_t buffered(const wf_file_t *f)
{
    return f->rlen - f->rpos;
}

ssize_t wf_file_read(wf_file_t *f, void *buf, size_t n, int64_t deadline)
{
    wf__task *self;
    int e = begin(f, buf, n, deadline, &self);
    if (e < 0)
        return e;
    if (!n) {
        leave(f);
        return 0;
    }
    if ((e = take_turn(f, deadline)) < 0)
        return e;
    ssize_t r;
    if (buffered(f)) {
        /* What the line reader read ahead comes first. */
        r = (ssize_t)(n < buffered(f) ? n : buffered(f));
        memcpy(buf, f->rbuf + f->rpos, (size_t)r);
        f->rpos += (size_t)r;
    } else {
        fop o;
        fop_init(&o, OP_READ, f->fd);
        o.buf = buf;
        o.n = n;
        r = submit_read(self, f, &o, deadline);
    }
    give_turn(f);
    return r;
}

ssize_t wf_file_read_line(wf_file_t *f, char *buf, size_t n, int64_t deadline)
{
    wf__task *self;
    int e = begin(f, buf, n, deadline, &self);
    if (e < 0)
        return e;
    if (!buf || n < 2) {
        leave(f);
        return -EINVAL;
    }
    if ((e = take_turn(f, deadline)) < 0)
        return e;
    ssize_t r = 0;
    if (!f->rbuf && !(f->rbuf = malloc(RBUF_SIZE))) {
        r = -ENOMEM;
        goto out;
    }
    size_t max = n - 1, take;
    for (;;) {
        size_t have = buffered(f);
        const char *nl = have ? memchr(f->rbuf + f->rpos, '\n', have < max ? have : max) : NULL;
        if (nl) {
            take = (size_t)(nl - (f->rbuf + f->rpos)) + 1;
            break;
        }
        if (have >= max || have == RBUF_SIZE) {
            take = have < max ? have : max; /* a piece of a long line */
            break;
        }
        /* Need more: move what is left to the front and refill behind it. */
        if (f->rpos) {
            memmove(f->rbuf, f->rbuf + f->rpos, have);
            f->rpos = 0;
            f->rlen = have;
        }
        fop o;
        fop_init(&o, OP_READ, f->fd);
        o.buf = f->rbuf + f->rlen;
        o.n = RBUF_SIZE - f->rlen;
        ssize_t got = submit_read(self, f, &o, deadline);
        if (got < 0) {
            r = got; /* what was buffered stays for the next call */
            goto out;
        }
        if (got == 0) {
            take = have; /* end of file: the last line, or nothing */
            break;
        }
        f->rlen += (size_t)got;
    }
    memcpy(buf, f->rbuf + f->rpos, take);
    buf[take] = '\0';
    f->rpos += take;
    if (f->rpos == f->rlen)
        f->rpos = f->rlen = 0;
    r = (ssize_t)take;
out:
    give_turn(f);
    return r;
}

int wf_file_write(wf_file_t *f, const void *buf, size_t n, size_t *written, int64_t deadline)
{
    if (written)
        *written = 0;
    wf__task *self;
    int e = begin(f, buf, n, deadline, &self);
    if (e < 0)
        return e;
    if (!n) {
        leave(f);
        return 0;
    }
    if ((e = take_turn(f, deadline)) < 0)
        return e;
    fop o;
    fop_init(&o, OP_WRITE, f->fd);
    o.buf = (void *)buf;
    o.n = n;
    o.off = -(off_t)buffered(f); /* back to where the reader is */
    ssize_t r = submit(self, &o, deadline, WF__JOB_FINISH);
    if (ran(&o))
        f->rpos = f->rlen = 0; /* the position moved back: drop the buffer */
    if (written)
        *written = o.done;
    give_turn(f);
    return (int)r;
}

static __attribute__((noinline)) int64_t do_lseek(int fd, off_t off, int whence)
{
    off_t r = lseek(fd, off, whence);
    return r < 0 ? -errno : (int64_t)r;
}

int64_t wf_file_seek(wf_file_t *f, int64_t offset, int whence)
{
    wf__task *self;
    int e = begin(f, NULL, 0, WF_FOREVER, &self);
    if (e < 0)
        return e;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) {
        leave(f);
        return -EINVAL;
    }
    if ((e = take_turn(f, WF_FOREVER)) < 0)
        return e;
    if (whence == SEEK_CUR)
        offset -= (int64_t)buffered(f); /* relative to the reader */
    int64_t r = do_lseek(f->fd, (off_t)offset, whence);
    if (r >= 0)
        f->rpos = f->rlen = 0;
    give_turn(f);
    return r;
}

int wf_file_fd(const wf_file_t *f)
{
    return f ? f->fd : -EINVAL;
}

int wf_file_close(wf_file_t *f)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!f)
        return -EINVAL;
    uint32_t idle = 0;
    /* acquire: pairs with leave()'s release, so every call's use of f is
     * over before we free it. */
    if (!atomic_compare_exchange_strong_explicit(&f->busy, &idle, CLOSING, memory_order_acquire,
                                                 memory_order_relaxed))
        return idle & CLOSING ? -EBADF : -EBUSY;
    fop o;
    fop_init(&o, OP_CLOSE, f->fd);
    ssize_t r = submit(self, &o, WF_FOREVER, WF__JOB_WHOLE);
    if (!ran(&o)) {
        /* No pool thread could be had (-EAGAIN): close it here rather
         * than leak it; closing a local file does not block for long. */
        fop_run(&o.job);
        r = o.ret;
    }
    wf_lock_destroy(&f->turn);
    free(f->rbuf);
    free(f);
    return (int)r;
}
