/* echo_server.c - a TCP echo server on weft: a task per connection, each
 * writing back whatever it reads, until end of file.
 *
 *   echo_server [--host H] [--port N] [--workers N]
 *
 * Prints "listening on HOST:PORT" once it accepts connections, serves until
 * SIGINT or SIGTERM, then stops accepting, ends the connections waiting for
 * input, lets a write in progress finish, and exits 0. Follows
 * bench/peers/HTTP.md, the contract of the benchmark servers
 * (`weft-bench echo`), as do its Go and Tokio peers.
 *
 * Build against an installed weft:
 *   cc -std=c11 echo_server.c $(pkg-config --cflags --libs weft)
 */
#include "server_cli.h"

/* One connection: read up to 4 KiB, write it all back, repeat. */
static int echo(wf_stream_t *st, void *arg)
{
    (void)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = wf_stream_read(st, buf, sizeof buf, WF_FOREVER);
        if (n <= 0)
            return n == 0 ? 0 : (int)n; /* end of file, or an error */
        /* write() sends at once when it can and never parks; drain()
         * parks only while a slow reader leaves more than the high-water
         * mark queued, so a client that stops reading cannot grow us. */
        int e = wf_stream_write(st, buf, (size_t)n);
        if (e == 0)
            e = wf_stream_drain(st, WF_FOREVER);
        if (e)
            return e;
    }
}

static int main_task(void *arg, void **result)
{
    (void)result;
    server_cli *cli = arg;
    wf_server_opts_t o;
    wf_server_opts_init(&o);
    o.shut_reads = true; /* on shutdown, idle connections end at once */
    wf_server_t *srv;
    int e = wf_start_server(&srv, cli->host, cli->port, echo, NULL, &o);
    if (e) {
        fprintf(stderr, "echo_server: %s:%u: %s\n", cli->host, (unsigned)cli->port, wf_strerror(e));
        return e;
    }
    return server_serve_until_signal(cli, srv, 4 * WF_NSEC_PER_SEC);
}

int main(int argc, char **argv)
{
    server_cli cli;
    server_cli_init(&cli, argc, argv);
    wf_config_t cfg;
    wf_config_init(&cfg);
    cfg.workers = cli.workers;
    int status = 0;
    int e = wf_run(&cfg, main_task, &cli, &status, NULL);
    if (e) {
        fprintf(stderr, "echo_server: wf_run: %s\n", wf_strerror(e));
        return 1;
    }
    return status ? 1 : 0;
}
