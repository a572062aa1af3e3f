/* addr.c - socket addresses: numeric IPv4/IPv6 and Unix-domain paths, in
 * and out of text (net.h). Nothing here blocks or touches the runtime. */
#include <weft/net.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wf_addr_parse(wf_addr_t *out, const char *host, uint16_t port)
{
    if (!out)
        return -EINVAL;
    if (!host || !*host) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
        sin.sin_addr.s_addr = htonl(INADDR_ANY);
        memset(out, 0, sizeof *out);
        memcpy(&out->ss, &sin, sizeof sin);
        out->len = sizeof sin;
        return 0;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        memset(out, 0, sizeof *out);
        memcpy(&out->ss, &sin, sizeof sin);
        out->len = sizeof sin;
        return 0;
    }
    /* IPv6: optional brackets, optional %scope (an interface name or a
     * number). */
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 4];
    size_t len = strlen(host);
    const char *h = host;
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        h = host + 1;
        len -= 2;
    }
    if (len >= sizeof buf)
        return -EAFNOSUPPORT;
    memcpy(buf, h, len);
    buf[len] = '\0';
    uint32_t scope = 0;
    char *pct = strchr(buf, '%');
    if (pct) {
        *pct++ = '\0';
        if (!*pct)
            return -EAFNOSUPPORT;
        char *end;
        unsigned long v = strtoul(pct, &end, 10);
        if (*end == '\0' && v <= UINT32_MAX) {
            scope = (uint32_t)v;
        } else {
            scope = if_nametoindex(pct);
            if (!scope)
                return -EAFNOSUPPORT; /* no such interface */
        }
    }
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_scope_id = scope};
    if (inet_pton(AF_INET6, buf, &sin6.sin6_addr) != 1)
        return -EAFNOSUPPORT; /* not numeric: a host name needs DNS */
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, &sin6, sizeof sin6);
    out->len = sizeof sin6;
    return 0;
}

int wf_addr_unix(wf_addr_t *out, const char *path)
{
    if (!out || !path || !*path)
        return -EINVAL;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len > sizeof sun.sun_path - (path[0] == '@' ? 0 : 1))
        return -ENAMETOOLONG;
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* the abstract namespace: no NUL at the end */
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, &sun, sizeof sun);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
    return 0;
}

/* snprintf into buf, -ENOSPC when truncated. */
static int put(char *buf, size_t n, int r)
{
    if (r < 0)
        return -EINVAL;
    return (size_t)r >= n ? -ENOSPC : r;
}

int wf_addr_format(const wf_addr_t *a, char *buf, size_t n)
{
    if (!a || !buf || n == 0)
        return -EINVAL;
    buf[0] = '\0';
    sa_family_t fam = a->ss.ss_family;
    if (fam == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        return put(buf, n, snprintf(buf, n, "%s:%u", ip, (unsigned)ntohs(sin->sin_port)));
    }
    if (fam == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        if (sin6->sin6_scope_id)
            return put(buf, n, snprintf(buf, n, "[%s%%%u]:%u", ip, (unsigned)sin6->sin6_scope_id,
                                        (unsigned)ntohs(sin6->sin6_port)));
        return put(buf, n, snprintf(buf, n, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port)));
    }
    if (fam == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t len = a->len > off ? a->len - off : 0;
        if (len > sizeof sun->sun_path)
            len = sizeof sun->sun_path;
        if (len == 0)
            return 0; /* unnamed */
        if (sun->sun_path[0] == '\0') {
            /* Abstract: "@name" (the name may hold NULs; they print as @). */
            char tmp[sizeof sun->sun_path + 1];
            tmp[0] = '@';
            for (size_t i = 1; i < len; i++)
                tmp[i] = sun->sun_path[i] ? sun->sun_path[i] : '@';
            tmp[len] = '\0';
            return put(buf, n, snprintf(buf, n, "%s", tmp));
        }
        return put(buf, n, snprintf(buf, n, "%.*s", (int)strnlen(sun->sun_path, len), sun->sun_path));
    }
    return -EAFNOSUPPORT;
}

int wf_addr_port(const wf_addr_t *a)
{
    if (!a)
        return -EINVAL;
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return -EAFNOSUPPORT;
}
