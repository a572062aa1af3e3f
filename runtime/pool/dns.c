/* dns.c - getaddrinfo on the pool's DNS crew (weft/dns.h).
 *
 * A lookup is a heap job waited for in ABANDON mode (job.h): a caller whose
 * deadline passes returns at once, and a lookup already inside the C
 * library finishes on its thread, where `abandon` frees its result. So the
 * job owns copies of the host, the service and the hints: the caller's
 * strings may be gone by then.
 */
#include "pool.h"
#include "runtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/dns.h>

typedef struct lookup {
    wf__job job;
    char *host, *service; /* copies, or NULL */
    struct addrinfo hints;
    bool has_hints;
    struct addrinfo *res;
    int sys_errno; /* errno after EAI_SYSTEM, read on the pool thread */
} lookup;

static void lookup_free(lookup *l)
{
    free(l->host);
    free(l->service);
    free(l);
}

static void lookup_run(wf__job *j)
{
    lookup *l = wf__container_of(j, lookup, job);
    l->res = NULL;
    j->status = getaddrinfo(l->host, l->service, l->has_hints ? &l->hints : NULL, &l->res);
    l->sys_errno = j->status == EAI_SYSTEM ? errno : 0;
}

/* The caller has gone: free what the lookup found. */
static void lookup_abandon(wf__job *j)
{
    lookup *l = wf__container_of(j, lookup, job);
    if (!j->err && l->res)
        freeaddrinfo(l->res);
    lookup_free(l);
}

/* getaddrinfo's codes as negative errnos (the mapping weft/dns.h lists). */
static int gai_errno(int eai, int sys_errno)
{
    switch (eai) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
    case EAI_SERVICE:
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_FAIL:
        return -EIO;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SOCKTYPE:
        return -ESOCKTNOSUPPORT;
    case EAI_BADFLAGS:
        return -EINVAL;
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : -EIO;
    default:
        return -EIO;
    }
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = true;
    return d;
}

int wf_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints, struct addrinfo **res,
                   int64_t deadline)
{
    wf__task *self = wf__current();
    if (!self)
        return -EPERM;
    if (!res || (!host && !service) || deadline < WF_FOREVER)
        return -EINVAL;
    lookup *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    bool failed = false;
    l->host = dup_or_null(host, &failed);
    l->service = dup_or_null(service, &failed);
    if (failed) {
        lookup_free(l);
        return -ENOMEM;
    }
    if (hints) {
        /* Only the four fields getaddrinfo reads from hints. */
        l->hints.ai_flags = hints->ai_flags;
        l->hints.ai_family = hints->ai_family;
        l->hints.ai_socktype = hints->ai_socktype;
        l->hints.ai_protocol = hints->ai_protocol;
        l->has_hints = true;
    }
    wf__job_init(&l->job, lookup_run, lookup_abandon);
    wf__crew *c = wf__pool_crew(self->rt->pool, WF__CREW_DNS);
    int r = wf__job_wait(self, c, &l->job, deadline, WF__JOB_ABANDON);
    if (r == -ECANCELED || r == -ETIMEDOUT)
        return r; /* the job is the pool's now */
    if (r == 0) {
        r = gai_errno(l->job.status, l->sys_errno);
        if (r == 0)
            *res = l->res;
        else if (l->res)
            freeaddrinfo(l->res); /* not set on failure; never trust it */
    }
    lookup_free(l);
    return r;
}

void wf_freeaddrinfo(struct addrinfo *res)
{
    if (res)
        freeaddrinfo(res);
}

/* A numeric host, converted here: 1 (one address in *out), 0 (not
 * numeric: ask the resolver). */
static int numeric(const char *host, uint16_t port, int family, wf_addr_t *out)
{
    memset(out, 0, sizeof *out);
    if (family != AF_INET6) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
            in->sin_family = AF_INET;
            in->sin_port = htons(port);
            out->len = sizeof *in;
            return 1;
        }
    }
    if (family != AF_INET) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(port);
            out->len = sizeof *in6;
            return 1;
        }
    }
    return 0;
}

int wf_resolve(const char *host, uint16_t port, int family, wf_addr_t *out, size_t max, int64_t deadline)
{
    if (!wf__current())
        return -EPERM;
    if (!host || !*host || !out || !max || deadline < WF_FOREVER ||
        (family != AF_UNSPEC && family != AF_INET && family != AF_INET6))
        return -EINVAL;
    if (numeric(host, port, family, out))
        return 1;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    /* One entry per address: the address serves any socket type. */
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char svc[8];
    snprintf(svc, sizeof svc, "%u", (unsigned)port);
    int r = wf_getaddrinfo(host, svc, &hints, &res, deadline);
    if (r < 0)
        return r;
    size_t n = 0;
    for (struct addrinfo *a = res; a && n < max; a = a->ai_next) {
        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) || a->ai_addrlen > sizeof out[n].ss)
            continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n].ss, a->ai_addr, a->ai_addrlen);
        out[n].len = a->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    return n ? (int)n : -ENOENT;
}
