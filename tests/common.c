/* common.c - helpers shared by the test executables (common.h). */
#include "common.h"
#include "wf_config.h"

#include <dirent.h>
#include <sys/wait.h>
#if WF_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

bool on_valgrind(void)
{
#if WF_HAVE_VALGRIND
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}

_Atomic int check_failures;

void run_main_cfg(const wf_config_t *cfg, wf_fn fn, void *arg)
{
    atomic_store(&check_failures, 0);
    int status = -12345;
    int e = wf_run(cfg, fn, arg, &status, NULL);
    if (e != 0)
        fprintf(stderr, "wf_run: %s\n", wf_strerror(e));
    assert_int_equal(e, 0);
    if (status != 0)
        fprintf(stderr, "main task status: %d (%s)\n", status, wf_strerror(status));
    assert_int_equal(status, 0);
    assert_int_equal(atomic_load(&check_failures), 0);
}

void run_main(unsigned workers, wf_fn fn, void *arg)
{
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = workers;
    run_main_cfg(&cfg, fn, arg);
}

bool wait_flag(_Atomic int *flag, int64_t timeout_ns)
{
    int64_t deadline = wf_deadline_in(timeout_ns);
    while (!atomic_load(flag)) {
        if (wf_now() > deadline)
            return false;
        wf_sleep(100 * WF_NSEC_PER_USEC);
    }
    return true;
}

bool wait_count(_Atomic long *count, long target, int64_t timeout_ns)
{
    int64_t deadline = wf_deadline_in(timeout_ns);
    while (atomic_load(count) < target) {
        if (wf_now() > deadline)
            return false;
        wf_sleep(100 * WF_NSEC_PER_USEC);
    }
    return true;
}

long count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

char *run_child_stderr(int (*child)(void *arg), void *arg, int *wstatus)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL); /* nothing buffered is printed twice */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        _exit(child(arg));
    }
    close(p[1]);
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(cap, 1);
    assert_non_null(out);
    ssize_t r;
    while ((r = read(p[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    close(p[0]);
    assert_int_equal(waitpid(pid, wstatus, 0), pid);
    return out;
}
