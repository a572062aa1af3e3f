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

int main(int argc, char **argv)
{
    wf_server_opts_t o;
    wf_server_opts_init(&o);
    o.shut_reads = true; /* on shutdown, idle connections end at once */
    return server_main(argc, argv, "echo_server", echo, &o);
}
