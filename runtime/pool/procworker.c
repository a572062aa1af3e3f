/* procworker.c - a process-pool worker: single-threaded C in a copy of the
 * zygote, serving frames on its channel (procwire.h) until end of file.
 *
 * THE LOOP. Read one frame (blocking), check it, run the job on its input
 * (inline in the receive buffer, or a read-only mapping of the memfd),
 * reply with the status and the output (inline from the send buffer, or
 * the job's memfd, sealed), and read again. The first frame is INIT: the
 * initializer's status goes back as READY, and a worker whose initializer
 * failed exits. End of file (the parent closed its end: shutdown, a
 * worker retired, or the parent died) ends the worker with status 0.
 *
 * WAITING FOR THE NEXT FRAME. Right after a reply the worker looks for the
 * next frame without blocking for WORKER_SPIN_NS, yielding the CPU at each
 * look after the first 2 us (job.h, SPINNING: on a loaded machine the
 * parent may need this very CPU to send it): a caller that submits its
 * next job at once finds the worker awake, which saves the sleep and the
 * wake-up of a process, tens of microseconds on a VM. Then it blocks.
 */
#include "net/sockmsg.h"
#include "procwire.h"
#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* See WAITING FOR THE NEXT FRAME. */
#define WORKER_SPIN_NS (50 * 1000)
#define WORKER_SPIN_YIELD_NS (2 * 1000)

struct wf_procout {
    unsigned char *inline_buf; /* the send buffer's payload */
    size_t len;
    int memfd; /* -1: inline */
    void *map;
};

static int worker_chan = -1;
static uint32_t worker_job_id; /* the JOB running (0: the initializer) */

int wf__procworker_channel(void)
{
    return worker_chan;
}

uint32_t wf__procworker_job_id(void)
{
    return worker_job_id;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- the output ---------------------------------------------------------------- */

static void out_release(wf_procout_t *o)
{
    if (o->memfd >= 0) {
        munmap(o->map, o->len);
        close(o->memfd);
    }
    o->memfd = -1;
    o->map = NULL;
    o->len = 0;
}

void *wf_procout_alloc(wf_procout_t *o, size_t len)
{
    if (!o)
        return NULL;
    out_release(o);
    if (len < WF__PW_SHM_MIN) {
        o->len = len;
        return o->inline_buf;
    }
    int fd = memfd_create("wf-procpool-out", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return NULL;
    void *m = MAP_FAILED;
    if (ftruncate(fd, (off_t)len) == 0)
        m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED) {
        close(fd);
        return NULL;
    }
    o->memfd = fd;
    o->map = m;
    o->len = len;
    return m;
}

int wf_procout_set(wf_procout_t *o, const void *data, size_t len)
{
    if (!o || (!data && len))
        return -EINVAL;
    void *p = wf_procout_alloc(o, len);
    if (!p)
        return -ENOMEM;
    if (len)
        memcpy(p, data, len);
    return 0;
}

/* --- frames -------------------------------------------------------------------- */

/* One message into buf (WF__PW_MSG_MAX bytes); *fd the descriptor that came
 * with it (-1: none). `spin`: look without blocking first. */
static ssize_t recv_frame(int chan, unsigned char *buf, int *fd, int *nfds, int *mflags, bool spin)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct iovec v = {.iov_base = buf, .iov_len = WF__PW_MSG_MAX};
    int64_t start = spin ? mono_ns() : 0;
    ssize_t r;
    struct msghdr m;
    for (unsigned i = 0;; i++) {
        memset(&m, 0, sizeof m);
        m.msg_iov = &v;
        m.msg_iovlen = 1;
        m.msg_control = ctl.b;
        m.msg_controllen = sizeof ctl.b;
        r = recvmsg(chan, &m, MSG_CMSG_CLOEXEC | (spin ? MSG_DONTWAIT : 0));
        if (r >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || !spin)
            return -errno;
        int64_t t = mono_ns() - start;
        if (t >= WORKER_SPIN_NS)
            spin = false; /* now block */
        else if (t >= WORKER_SPIN_YIELD_NS)
            sched_yield();
        (void)i;
    }
    *fd = -1;
    *nfds = wf__cmsg_take_fds(&m, fd, 1);
    *mflags = m.msg_flags;
    return r;
}

static void send_all(int chan, struct msghdr *m)
{
    for (;;) {
        if (sendmsg(chan, m, MSG_NOSIGNAL) >= 0)
            return;
        if (errno != EINTR)
            _exit(errno == EPIPE || errno == ECONNRESET ? 0 : WF__PW_EXIT_IO);
    }
}

/* Reply with `type`, `id`, `status` and the output in `o` (RESULT) or none
 * (READY). The send buffer holds the header and an inline payload. */
static void reply(int chan, unsigned char *tx, unsigned type, uint32_t id, int status, wf_procout_t *o)
{
    wf__pw_frame f = {.magic = WF__PW_MAGIC, .type = (uint16_t)type, .flags = 0, .id = id, .arg = status, .len = 0};
    struct msghdr m = {0};
    struct iovec v = {.iov_base = tx, .iov_len = sizeof f};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    if (o && o->memfd >= 0) {
        /* Unmapped first: a write seal needs no writable mapping left. */
        munmap(o->map, o->len);
        o->map = NULL;
        if (fcntl(o->memfd, F_ADD_SEALS, WF__PW_SEALS | F_SEAL_SEAL) < 0) {
            /* Cannot happen with a memfd of ours; say so as a status. */
            close(o->memfd);
            o->memfd = -1;
            o->len = 0;
            f.arg = -EIO;
        } else {
            f.flags = WF__PW_SHM;
            f.len = o->len;
            memset(&ctl, 0, sizeof ctl);
            m.msg_control = ctl.b;
            m.msg_controllen = sizeof ctl.b;
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &o->memfd, sizeof(int));
        }
    } else if (o) {
        f.len = o->len;
        v.iov_len += o->len;
    }
    memcpy(tx, &f, sizeof f);
    send_all(chan, &m);
    if (o && o->memfd >= 0) {
        close(o->memfd);
        o->memfd = -1;
    }
}

_Noreturn void wf__procworker_main(int chan)
{
    worker_chan = chan;
    unsigned char *rx = malloc(WF__PW_MSG_MAX), *tx = malloc(WF__PW_MSG_MAX);
    if (!rx || !tx)
        _exit(WF__PW_EXIT_IO);
    int njobs = wf__procjob_count();
    bool started = false, spin = false;
    uint32_t next_id = 1;
    for (;;) {
        int fd = -1, nfds = 0, mflags = 0;
        ssize_t r = recv_frame(chan, rx, &fd, &nfds, &mflags, spin);
        if (r == 0)
            _exit(0);
        if (r < 0)
            _exit(WF__PW_EXIT_IO);
        wf__pw_frame f = {0};
        if (r >= (ssize_t)sizeof f)
            memcpy(&f, rx, sizeof f);
        unsigned want = started ? WF__PW_JOB : WF__PW_INIT;
        uint32_t want_id = started ? next_id : 0;
        /* The initializer may be -1 (none); a job must be a real index. */
        if (!wf__pw_check(&f, (size_t)r, nfds, fd, mflags, want, want_id, UINT64_MAX, started ? 0 : -1,
                          njobs - 1))
            _exit(WF__PW_EXIT_PROTO);
        const void *in = rx + sizeof f;
        void *map = NULL;
        if (f.flags & WF__PW_SHM) {
            map = mmap(NULL, (size_t)f.len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
            close(fd);
            if (map == MAP_FAILED)
                _exit(WF__PW_EXIT_IO);
            in = map;
        }
        wf_procout_t out = {.inline_buf = tx + sizeof f, .len = 0, .memfd = -1, .map = NULL};
        wf_procjob_fn fn = wf__procjob_fn(f.arg);
        worker_job_id = f.id;
        int st = fn ? fn(in, (size_t)f.len, &out) : 0;
        if (st > 0 || st < WF__PW_STATUS_MIN)
            st = -ERANGE;
        if (map)
            munmap(map, (size_t)f.len);
        if (!started) {
            out_release(&out); /* an initializer's output goes nowhere */
            reply(chan, tx, WF__PW_READY, 0, st, NULL);
            if (st != 0)
                _exit(0);
            started = true;
        } else {
            reply(chan, tx, WF__PW_RESULT, next_id++, st, &out);
        }
        spin = true;
    }
}
