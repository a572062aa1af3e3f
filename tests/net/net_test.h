/* net_test.h - helpers shared by the socket, stream and server tests. */
#ifndef WF_NET_TEST_H
#define WF_NET_TEST_H

#include "common.h"

#include <sys/resource.h>
#include <weft/net.h>

/* Under valgrind (on_valgrind(), common.h), a descriptor the kernel hands
 * out above the process's (emulated) limit is closed by valgrind itself and
 * reported as EMFILE: an accept then loses its connection, which the real
 * kernel keeps in the backlog. The tests of accept while out of
 * descriptors skip there. */

/* Deadlines that only a lost wake-up could reach. */
#define GENEROUS (30 * WF_NSEC_PER_SEC)
#define DL() wf_deadline_in(GENEROUS)

/* Open descriptors of this process (entries of /proc/self/fd, the
 * directory's own included): taken before a runtime starts and after it
 * ends, the two must be equal. */
static inline long open_fds(void)
{
    return count_dir("/proc/self/fd");
}

/* A TCP listener on 127.0.0.1 with a kernel-chosen port; *port gets it. */
static inline int listen_any(wf_sock_t **l, uint16_t *port)
{
    int e = wf_tcp_listen(l, "127.0.0.1", 0, NULL);
    if (e)
        return e;
    wf_addr_t a;
    e = wf_sock_local_addr(*l, &a);
    if (e)
        return e;
    *port = (uint16_t)wf_addr_port(&a);
    return 0;
}

/* A connected TCP pair over loopback: *c the client end, *s the server's. */
int tcp_pair(wf_sock_t **c, wf_sock_t **s);

/* Run fn on `workers` workers (run_main) and assert that the descriptors
 * open before are exactly those open after. */
void run_counted(unsigned workers, wf_fn fn, void *arg);

/* Fill byte i of a stream with a pattern both ends can check. */
static inline uint8_t pattern(uint64_t i, uint64_t seed)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    return (uint8_t)(x >> 29);
}

#endif
