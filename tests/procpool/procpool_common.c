/* procpool_common.c - the test jobs and helpers (procpool_test.h). Every
 * job below runs in a worker process. */
#include "procpool_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pool/procwire.h"
#include "pool/zygote.h"

shared_page *shared;

static int32_t arg_of(const void *in, size_t len)
{
    int32_t v = 0;
    if (len >= sizeof v)
        memcpy(&v, in, sizeof v);
    return v;
}

static int put_int(wf_procout_t *out, int32_t v)
{
    return wf_procout_set(out, &v, sizeof v);
}

/* --- ordinary jobs --------------------------------------------------------------- */

static int job_echo(const void *in, size_t len, wf_procout_t *out)
{
    return wf_procout_set(out, in, len);
}

/* 8 bytes: FNV-1a of the input, then its length as 8 bytes. */
static int job_hash(const void *in, size_t len, wf_procout_t *out)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = in;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    uint64_t r[2] = {h, (uint64_t)len};
    return wf_procout_set(out, r, sizeof r);
}

/* Output `arg` bytes, byte i = (i * 7 + 3) & 0xff: a big output from a
 * small input. */
static int job_make(const void *in, size_t len, wf_procout_t *out)
{
    size_t n = (size_t)(uint32_t)arg_of(in, len);
    unsigned char *b = wf_procout_alloc(out, n);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 7 + 3);
    return 0;
}

/* Returns its argument as the status, with "st" as output. */
static int job_status(const void *in, size_t len, wf_procout_t *out)
{
    wf_procout_set(out, "st", 2);
    return arg_of(in, len);
}

static int job_pid(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    return put_int(out, (int32_t)getpid());
}

static int job_add1(const void *in, size_t len, wf_procout_t *out)
{
    return put_int(out, arg_of(in, len) + 1);
}

/* Sleeps `arg` ms, then answers arg. */
static int job_sleep(const void *in, size_t len, wf_procout_t *out)
{
    int32_t ms = arg_of(in, len);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return put_int(out, ms);
}

/* Waits for shared->gate (counted in in_gate), then answers arg. */
static int job_gate(const void *in, size_t len, wf_procout_t *out)
{
    atomic_fetch_add(&shared->in_gate, 1);
    while (!atomic_load(&shared->gate)) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_sub(&shared->in_gate, 1);
    return put_int(out, arg_of(in, len));
}

/* Counts primes below arg by trial division (the benchmark's job too). */
static int job_primes(const void *in, size_t len, wf_procout_t *out)
{
    int32_t n = arg_of(in, len), c = 0;
    for (int32_t k = 2; k < n; k++) {
        bool prime = true;
        for (int32_t d = 2; d * d <= k; d++)
            if (k % d == 0) {
                prime = false;
                break;
            }
        c += prime;
    }
    return put_int(out, c);
}

/* --- jobs that die ------------------------------------------------------------------ */

static int job_abort(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    abort();
}

static int job_segv(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)out;
    /* A real invalid access, through a pointer the compiler cannot see. */
    static volatile uintptr_t where = 8;
    volatile int *p = (volatile int *)(where + (len > 1000000000 ? 8 : 0));
    *p = 1;
    return 0;
}

static int job_exit(const void *in, size_t len, wf_procout_t *out)
{
    (void)out;
    exit(arg_of(in, len));
}

/* Ends without a reply: _exit(0) (no atexit handlers, no flush). */
static int job_vanish(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    _exit(0);
}

static int job_kill_self(const void *in, size_t len, wf_procout_t *out)
{
    (void)out;
    raise(arg_of(in, len));
    return 0;
}

/* Forks a child that keeps the worker's channel open (sleeping), then
 * aborts: the parent sees no end of file from the channel. */
static int job_fork_abort(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    pid_t c = fork();
    if (c == 0) {
        struct timespec ts = {60, 0};
        nanosleep(&ts, NULL);
        _exit(0);
    }
    atomic_store(&shared->grandchild, c);
    abort();
}

/* Loops forever, burning CPU (a deadline must stop it). */
static int job_spin(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    for (volatile unsigned long i = 0;; i++) {
    }
    return 0;
}

/* Hangs forever without burning CPU. */
static int job_hang(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    for (;;)
        pause();
    return 0;
}

/* --- jobs that break the wire --------------------------------------------------------- */

/* Send b[0..n) with the nfds (0 to 2) descriptors of fds attached. */
static void raw_send_fds(const void *b, size_t n, const int *fds, int nfds)
{
    union {
        struct cmsghdr h;
        char c[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct iovec v = {.iov_base = (void *)b, .iov_len = n};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&ctl, 0, sizeof ctl);
        m.msg_control = ctl.c;
        m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    (void)sendmsg(wf__procworker_channel(), &m, MSG_NOSIGNAL);
}

static void raw_send(const void *b, size_t n, int fd)
{
    raw_send_fds(b, n, &fd, fd >= 0);
}

static wf__pw_frame result_frame(uint64_t len)
{
    wf__pw_frame f = {.magic = WF__PW_MAGIC, .type = WF__PW_RESULT, .id = wf__procworker_job_id(), .len = len};
    return f;
}

/* Kinds of bad frames (the argument). The worker then replies as usual
 * after it: the parent must have stopped at the bad one. */
enum { BAD_GARBAGE, BAD_HUGE_LEN, BAD_SHORT, BAD_WRONG_ID, BAD_TYPE, BAD_STATUS, BAD_LONG_MSG, BAD_FD_INLINE,
       BAD_SHM_UNSEALED, BAD_SHM_SIZE, BAD_SHM_NOFD, BAD_FLAGS, BAD_SHM_TWO_FDS, BAD_KINDS };

static int job_bad(const void *in, size_t len, wf_procout_t *out)
{
    (void)out;
    int kind = arg_of(in, len);
    wf__pw_frame f = result_frame(0);
    switch (kind) {
    case BAD_GARBAGE: {
        char junk[40];
        memset(junk, 0xa5, sizeof junk);
        raw_send(junk, sizeof junk, -1);
        break;
    }
    case BAD_HUGE_LEN: /* an inline frame that claims 1 TiB */
        f.len = 1ull << 40;
        raw_send(&f, sizeof f, -1);
        break;
    case BAD_SHORT:
        raw_send(&f, 10, -1);
        break;
    case BAD_WRONG_ID:
        f.id++;
        raw_send(&f, sizeof f, -1);
        break;
    case BAD_TYPE:
        f.type = WF__PW_READY;
        raw_send(&f, sizeof f, -1);
        break;
    case BAD_STATUS:
        f.arg = 5; /* a positive status */
        raw_send(&f, sizeof f, -1);
        break;
    case BAD_LONG_MSG: { /* longer than any frame: truncated by the reader */
        size_t n = 100 * 1024;
        char *b = calloc(1, n);
        f.len = n - sizeof f;
        memcpy(b, &f, sizeof f);
        raw_send(b, n, -1);
        free(b);
        break;
    }
    case BAD_FD_INLINE: /* an inline frame with a descriptor attached */
        raw_send(&f, sizeof f, 0);
        break;
    case BAD_SHM_UNSEALED:
    case BAD_SHM_SIZE:
    case BAD_SHM_TWO_FDS: {
        size_t n = 128 * 1024;
        int fd[2] = {memfd_create("bad", MFD_ALLOW_SEALING), -1};
        ftruncate(fd[0], (off_t)n);
        if (kind != BAD_SHM_UNSEALED) /* BAD_SHM_SIZE: sealed, but not the size announced */
            fcntl(fd[0], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
        f = result_frame(kind == BAD_SHM_SIZE ? 2 * n : n);
        f.flags = WF__PW_SHM;
        if (kind == BAD_SHM_TWO_FDS) { /* a good shared frame, and one descriptor too many */
            fd[1] = dup(fd[0]);
            raw_send_fds(&f, sizeof f, fd, 2);
            close(fd[1]);
        } else {
            raw_send(&f, sizeof f, fd[0]);
        }
        close(fd[0]);
        break;
    }
    case BAD_SHM_NOFD:
        f = result_frame(128 * 1024);
        f.flags = WF__PW_SHM;
        raw_send(&f, sizeof f, -1);
        break;
    case BAD_FLAGS:
        f.flags = 6;
        raw_send(&f, sizeof f, -1);
        break;
    }
    return 0;
}

/* --- initializers ----------------------------------------------------------------------- */

static int32_t init_value; /* set by init_ok in each worker */

static int init_ok(const void *in, size_t len, wf_procout_t *out)
{
    (void)out;
    atomic_fetch_add(&shared->init_runs, 1);
    init_value = arg_of(in, len);
    return 0;
}

static int job_init_value(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    return put_int(out, init_value);
}

static int init_fail(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    atomic_fetch_add(&shared->init_runs, 1);
    return -EACCES;
}

static int init_crash(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    atomic_fetch_add(&shared->init_runs, 1);
    abort();
}

/* Fails while shared->flaky_fails is above zero (counting it down). */
static int init_flaky(const void *in, size_t len, wf_procout_t *out)
{
    (void)in;
    (void)len;
    (void)out;
    atomic_fetch_add(&shared->init_runs, 1);
    if (atomic_fetch_sub(&shared->flaky_fails, 1) > 0)
        return -EAGAIN;
    return 0;
}

/* --- setup and helpers ------------------------------------------------------------------- */

void procpool_test_setup(void)
{
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    static const struct {
        const char *name;
        wf_procjob_fn fn;
    } jobs[] = {
        {"echo", job_echo},       {"hash", job_hash},        {"make", job_make},
        {"status", job_status},   {"pid", job_pid},          {"add1", job_add1},
        {"sleep", job_sleep},     {"gate", job_gate},        {"primes", job_primes},
        {"abort", job_abort},     {"segv", job_segv},        {"exit", job_exit},
        {"vanish", job_vanish},   {"kill_self", job_kill_self}, {"spin", job_spin},
        {"hang", job_hang},       {"bad", job_bad},          {"init_ok", init_ok},
        {"init_value", job_init_value}, {"init_fail", init_fail}, {"init_crash", init_crash},
        {"init_flaky", init_flaky}, {"fork_abort", job_fork_abort},
    };
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
        int e = wf_procpool_register(jobs[i].name, jobs[i].fn);
        if (e) {
            fprintf(stderr, "register %s: %s\n", jobs[i].name, wf_strerror(e));
            exit(1);
        }
    }
    int e = wf_procpool_init();
    if (e) {
        fprintf(stderr, "wf_procpool_init: %s\n", wf_strerror(e));
        exit(1);
    }
}

int children(int *pids, int max)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int pid;
        while (fscanf(f, "%d", &pid) == 1) {
            if (n < max)
                pids[n] = pid;
            n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

int threads_of(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

bool pid_exists(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", pid);
    struct stat st;
    return stat(path, &st) == 0;
}

wf_procpool_t *open_pool(unsigned workers)
{
    wf_procpool_opts_t o;
    wf_procpool_opts_init(&o);
    o.workers = workers;
    o.eager = true;
    wf_procpool_t *p = NULL;
    int e = wf_procpool_open(&p, &o);
    CHECK_EQ(e, 0);
    if (e)
        return NULL;
    CHECK_EQ(wf_procpool_warm(p, wf_deadline_in(LONG_NS)), 0);
    return p;
}

int run_int(wf_procpool_t *p, const char *job, int32_t arg, int64_t deadline, int32_t *out)
{
    wf_procres_t r;
    int e = wf_procpool_run(p, job, &arg, sizeof arg, deadline, &r);
    if (e == 0) {
        if (r.status)
            *out = r.status;
        else if (r.len == sizeof(int32_t))
            memcpy(out, r.out, sizeof(int32_t));
        else
            *out = INT32_MIN;
    }
    wf_procres_free(&r);
    return e;
}

int worker_pid(wf_procpool_t *p)
{
    int32_t pid = 0;
    int e = run_int(p, "pid", 0, wf_deadline_in(LONG_NS), &pid);
    return e ? e : pid;
}
