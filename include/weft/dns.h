/* weft/dns.h - name resolution for fibers: getaddrinfo(3) on the thread
 * pool (loop.getaddrinfo, tokio::net::lookup_host).
 *
 * glibc's getaddrinfo blocks (it reads /etc/hosts, asks the name servers of
 * /etc/resolv.conf, and may wait seconds for an answer), so it runs on the
 * pool's DNS threads (WF_POOL_DNS, weft/pool.h): 4 by default, with their
 * own limit, so that slow lookups queue behind each other and never delay
 * file I/O or the program's own blocking calls (libuv's issue #28).
 *
 * DEADLINES. A lookup cannot be interrupted inside the C library. When the
 * caller's deadline passes (or it is cancelled), it returns at once; a
 * lookup still waiting for a thread never runs, and one already running
 * finishes on its thread, where its result is freed. (The resolver's own
 * timeouts, /etc/resolv.conf's "options timeout:N attempts:N", bound how
 * long that takes.)
 *
 * ERRORS. getaddrinfo's EAI_* codes become negative errnos, as every weft
 * call returns: a name that does not resolve (EAI_NONAME, EAI_NODATA,
 * EAI_ADDRFAMILY, EAI_SERVICE) is -ENOENT; a name server that did not
 * answer (EAI_AGAIN) is -EAGAIN; its non-recoverable failure (EAI_FAIL) is
 * -EIO; EAI_MEMORY is -ENOMEM; EAI_FAMILY is -EAFNOSUPPORT; EAI_SOCKTYPE is
 * -ESOCKTNOSUPPORT; EAI_BADFLAGS is -EINVAL; EAI_SYSTEM is the errno it
 * carries.
 */
#ifndef WEFT_DNS_H
#define WEFT_DNS_H

#include "core.h"
#include "net.h"
#include <netdb.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup dns Name resolution
 * @{ */

/* getaddrinfo's list. <netdb.h> defines it only for POSIX programs
 * (_POSIX_C_SOURCE, _GNU_SOURCE...); a strict C11 program that does not use
 * these two calls still compiles with this header. */
struct addrinfo;

/** getaddrinfo(3) on a pool thread (loop.getaddrinfo(host, port, ...)).
 * @param host     a host name or numeric address; NULL for the wildcard
 *                 or loopback address (as getaddrinfo).
 * @param service  a port number or service name ("80", "https"), or NULL.
 * @param hints    as getaddrinfo's, or NULL (any family, any socket type).
 * @param res      receives the list, which the caller frees with
 *                 wf_freeaddrinfo() (one call frees it all).
 * @param deadline WF_FOREVER, or when to give up (see DEADLINES above).
 * @return 0 with *res; -EINVAL for NULL @p res, NULL @p host and
 *   @p service both, a bad deadline, or bad hints (EAI_BADFLAGS); -ENOENT
 *   the name (or service) does not resolve; -EAGAIN no name server
 *   answered (try again later), or no pool thread could be started;
 *   -EIO the name server failed; -EAFNOSUPPORT, -ESOCKTNOSUPPORT (hints);
 *   -ENOMEM; -ETIMEDOUT, -ECANCELED (nothing is returned; a lookup that
 *   was running is freed when it ends); -EPERM not a fiber.
 * Fiber only; parks. */
int wf_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints, struct addrinfo **res,
                   int64_t deadline);

/** Free a list from wf_getaddrinfo() (freeaddrinfo(3)). NULL is ignored.
 * Never blocks; any thread. */
void wf_freeaddrinfo(struct addrinfo *res);

/** Resolve @p host to the addresses to connect to on @p port, in the
 * order getaddrinfo(3) prefers them (RFC 6724: typically IPv6 first where
 * the host has IPv6 connectivity): what wf_tcp_connect() and friends need
 * for a host name. A numeric address ("127.0.0.1", "::1") is converted on
 * the caller's thread, without the pool.
 * @param host    a host name or numeric address; required.
 * @param port    the port every address gets.
 * @param family  AF_UNSPEC (any), AF_INET or AF_INET6.
 * @param out     receives up to @p max addresses.
 * @param max     room in @p out (at least 1).
 * @return the number of addresses written (1 to @p max; the others are
 *   dropped); -EINVAL for NULL or empty @p host, NULL @p out, @p max of 0,
 *   another @p family, or a bad deadline; and as wf_getaddrinfo().
 * Fiber only; parks unless @p host is numeric. */
int wf_resolve(const char *host, uint16_t port, int family, wf_addr_t *out, size_t max, int64_t deadline);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
