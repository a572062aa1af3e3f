/* server_cli.h - what the two example servers share around weft: their
 * command line, the descriptor limit, and stopping on SIGINT / SIGTERM
 * (bench/peers/HTTP.md is their full contract).
 *
 * Stopping: the servers run with cfg.shutdown_on_signal (weft/signal.h), so
 * the first SIGINT or SIGTERM cancels the main task, which then shuts the
 * server down gracefully; a second one ends the process at once (asyncio's
 * second ^C). */
#ifndef SERVER_CLI_H
#define SERVER_CLI_H

#define _POSIX_C_SOURCE 200809L /* getrlimit */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <weft.h>

typedef struct server_cli {
    const char *host; /* --host, default 127.0.0.1 */
    uint16_t port;    /* --port, default 0: the kernel picks */
    unsigned workers; /* --workers, default 0: one per CPU */
} server_cli;

static void server_usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--host H] [--port N] [--workers N]\n", prog);
    exit(64);
}

/* Parse the command line and raise the descriptor limit. Exits with a
 * message on bad usage. */
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

/* The usual ending: say we are ready, serve until SIGINT or SIGTERM
 * cancels the main task (cfg.shutdown_on_signal), then shut the server
 * down, giving requests in progress `grace_ns` to finish. The shutdown
 * itself ignores the main task's cancellation (server.h). */
static int server_serve_until_signal(wf_server_t *srv, int64_t grace_ns)
{
    server_ready(srv);
    int e;
    while ((e = wf_sleep(3600 * WF_NSEC_PER_SEC)) == 0) {
    }
    if (e != -ECANCELED)
        fprintf(stderr, "unexpected end of the wait: %s\n", wf_strerror(e));
    e = wf_server_shutdown(srv, wf_deadline_in(grace_ns));
    if (e == -ETIMEDOUT)
        fprintf(stderr, "connections still open after %lld ms: cancelled\n", (long long)(grace_ns / 1000000));
    return 0;
}

/* Everything a server's main() does around its handler: parse the command
 * line, run a runtime of --workers workers with cfg.shutdown_on_signal,
 * start the server with `opts` on --host:--port, serve until SIGINT or
 * SIGTERM, shut down with a 4 s grace. Returns main()'s exit status. */
typedef struct server_job {
    server_cli cli;
    const char *name;
    wf_server_fn fn;
    const wf_server_opts_t *opts;
} server_job;

static int server_main_task(void *arg, void **result)
{
    (void)result;
    server_job *j = arg;
    wf_server_t *srv;
    int e = wf_start_server(&srv, j->cli.host, j->cli.port, j->fn, NULL, j->opts);
    if (e) {
        fprintf(stderr, "%s: %s:%u: %s\n", j->name, j->cli.host, (unsigned)j->cli.port, wf_strerror(e));
        return e;
    }
    return server_serve_until_signal(srv, 4 * WF_NSEC_PER_SEC);
}

/* Inline only so that a server with a main of its own (hash_server.c)
 * may include this header without an unused-function warning. */
static inline int server_main(int argc, char **argv, const char *name, wf_server_fn fn, const wf_server_opts_t *opts)
{
    server_job j = {.name = name, .fn = fn, .opts = opts};
    server_cli_init(&j.cli, argc, argv);
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = j.cli.workers;
    cfg.shutdown_on_signal = true; /* SIGINT/SIGTERM cancel the main task */
    int status = 0;
    int e = wf_run(&cfg, server_main_task, &j, &status, NULL);
    if (e) {
        fprintf(stderr, "%s: wf_run: %s\n", name, wf_strerror(e));
        return 1;
    }
    return status ? 1 : 0;
}

#endif
