/* server_cli.h - what the two example servers share around weft: their
 * command line, the descriptor limit, and stopping on SIGINT / SIGTERM
 * (bench/peers/HTTP.md is their full contract).
 *
 * Stopping: the signals are blocked in the calling thread before wf_run()
 * starts, so every runtime thread inherits the mask (io.h) and no thread
 * takes the signal's default action (death); a signalfd then delivers them
 * as readable data, which a fiber waits for with wf_wait_readable(). */
#ifndef SERVER_CLI_H
#define SERVER_CLI_H

#define _GNU_SOURCE /* signalfd, pipe2 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <weft.h>

typedef struct server_cli {
    const char *host; /* --host, default 127.0.0.1 */
    uint16_t port;    /* --port, default 0: the kernel picks */
    unsigned workers; /* --workers, default 0: one per CPU */
    int sigfd;        /* SIGINT and SIGTERM, as readable data */
} server_cli;

static void server_usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--host H] [--port N] [--workers N]\n", prog);
    exit(64);
}

/* Parse the command line, raise the descriptor limit, and turn SIGINT and
 * SIGTERM into a signalfd. Exits with a message on bad usage. */
static void server_cli_init(server_cli *c, int argc, char **argv)
{
    c->host = "127.0.0.1";
    c->port = 0;
    c->workers = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--host") && i + 1 < argc) {
            c->host = argv[++i];
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || v > 65535)
                server_usage(argv[0]);
            c->port = (uint16_t)v;
        } else if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || v > 1024)
                server_usage(argv[0]);
            c->workers = (unsigned)v;
        } else {
            server_usage(argv[0]);
        }
    }
    /* One descriptor per connection: take all the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        (c->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        perror("signalfd");
        exit(1);
    }
}

/* Print the one ready line of the contract: "listening on HOST:PORT". */
static void server_ready(wf_server_t *srv)
{
    wf_addr_t a;
    char text[WF_ADDR_STRLEN];
    if (wf_server_addr(srv, &a) == 0 && wf_addr_format(&a, text, sizeof text) > 0)
        printf("listening on %s\n", text);
    fflush(stdout);
}

/* Read one signal from the signalfd, -errno (EAGAIN: none yet). Not
 * inlined: errno is read right after the system call, on the thread that
 * made it (io.h). */
static __attribute__((noinline)) int read_signal(int fd)
{
    struct signalfd_siginfo si;
    ssize_t r = read(fd, &si, sizeof si);
    return r == (ssize_t)sizeof si ? (int)si.ssi_signo : r < 0 ? -errno : -EIO;
}

/* Park until SIGINT or SIGTERM arrives; returns the signal number. */
static int server_wait_signal(const server_cli *c)
{
    for (;;) {
        int s = read_signal(c->sigfd);
        if (s > 0)
            return s;
        if (s != -EAGAIN)
            return s;
        int e = wf_wait_readable(c->sigfd, WF_FOREVER);
        if (e && e != -ECANCELED)
            return e;
        if (e == -ECANCELED)
            return e;
    }
}

/* A second signal while the server shuts down ends the process at once. */
static int second_signal(void *arg, void **result)
{
    (void)result;
    if (server_wait_signal(arg) > 0) {
        fprintf(stderr, "second signal: exiting without waiting for connections\n");
        _exit(1);
    }
    return 0;
}

/* The usual ending: wait for a signal, then shut the server down, giving
 * requests in progress `grace_ns` to finish. */
static int server_serve_until_signal(server_cli *c, wf_server_t *srv, int64_t grace_ns)
{
    server_ready(srv);
    int s = server_wait_signal(c);
    wf_task_t watcher;
    if (wf_spawn(&watcher, second_signal, c, NULL) == 0)
        wf_detach(watcher);
    int e = wf_server_shutdown(srv, wf_deadline_in(grace_ns));
    if (e == -ETIMEDOUT)
        fprintf(stderr, "connections still open after %lld ms: cancelled\n", (long long)(grace_ns / 1000000));
    return s > 0 ? 0 : s;
}

#endif
