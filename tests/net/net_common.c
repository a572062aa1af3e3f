/* net_common.c - helpers shared by the socket, stream and server tests
 * (net_test.h). */
#include "net_test.h"

int tcp_pair(wf_sock_t **c, wf_sock_t **s)
{
    wf_sock_t *l;
    uint16_t port = 0;
    int e = listen_any(&l, &port);
    if (e)
        return e;
    e = wf_tcp_connect(c, "127.0.0.1", port, DL());
    if (e == 0) {
        e = wf_sock_accept(l, s, NULL, DL());
        if (e)
            wf_sock_close(*c);
    }
    wf_sock_close(l);
    return e;
}

void run_counted(unsigned workers, wf_fn fn, void *arg)
{
    long before = open_fds();
    run_main(workers, fn, arg);
    assert_int_equal(open_fds(), before);
}
