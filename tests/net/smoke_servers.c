/* smoke_servers.c - the example servers as a user runs them: start each,
 * read its ready line, talk to it, leave a keep-alive connection idle,
 * stop it with SIGTERM, and check that it exits 0 (bench/peers/HTTP.md).
 *
 *   smoke_servers ECHO_SERVER HTTP_SERVER
 *
 * Plain blocking sockets, no weft: the servers are what is tested. Every
 * wait has a generous bound (a hang fails the test, a slow machine does
 * not). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BOUND_MS 30000

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("smoke_servers: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

typedef struct {
    pid_t pid;
    int out;
    uint16_t port;
} proc;

static void start(proc *p, const char *path)
{
    int fds[2];
    if (pipe(fds) < 0)
        fail("pipe: %s", strerror(errno));
    p->pid = fork();
    if (p->pid < 0)
        fail("fork: %s", strerror(errno));
    if (p->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(path, path, "--host", "127.0.0.1", "--port", "0", "--workers", "2", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    p->out = fds[0];
    char line[256];
    size_t n = 0;
    struct pollfd pf = {.fd = p->out, .events = POLLIN};
    while (n < sizeof line - 1 && (n == 0 || line[n - 1] != '\n')) {
        if (poll(&pf, 1, BOUND_MS) != 1)
            fail("%s: no ready line", path);
        ssize_t r = read(p->out, line + n, sizeof line - 1 - n);
        if (r <= 0)
            fail("%s: exited before its ready line", path);
        n += (size_t)r;
    }
    line[n] = '\0';
    unsigned port;
    if (sscanf(line, "listening on 127.0.0.1:%u", &port) != 1)
        fail("%s: unexpected ready line: %s", path, line);
    p->port = (uint16_t)port;
}

static int dial(const proc *p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        fail("connect: %s", strerror(errno));
    struct timeval tv = {.tv_sec = BOUND_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const void *b, size_t n)
{
    while (n) {
        ssize_t r = write(fd, b, n);
        if (r <= 0)
            fail("write: %s", strerror(errno));
        b = (const char *)b + r;
        n -= (size_t)r;
    }
}

/* Read until `n` bytes or end of file; returns the count. */
static size_t recv_upto(int fd, char *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0)
            fail("read: %s", strerror(errno));
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static void stop(proc *p, const char *path)
{
    if (kill(p->pid, SIGTERM) < 0)
        fail("kill: %s", strerror(errno));
    int status;
    for (int ms = 0;; ms += 10) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (ms > BOUND_MS) {
            kill(p->pid, SIGKILL);
            fail("%s: did not exit after SIGTERM", path);
        }
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("%s: exit status %d after SIGTERM", path, status);
    close(p->out);
}

static void smoke_echo(const char *path)
{
    proc p;
    start(&p, path);
    int fd = dial(&p);
    static char out[100000], in[100000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(i * 7 + 3);
    send_all(fd, "hello", 5);
    if (recv_upto(fd, in, 5) != 5 || memcmp(in, "hello", 5))
        fail("echo: hello not echoed");
    send_all(fd, out, sizeof out);
    if (recv_upto(fd, in, sizeof in) != sizeof in || memcmp(in, out, sizeof in))
        fail("echo: 100,000 bytes not echoed");
    /* An idle connection stays open across the stop: the server ends it. */
    int idle = dial(&p);
    send_all(idle, "x", 1);
    if (recv_upto(idle, in, 1) != 1)
        fail("echo: idle connection not served");
    close(fd);
    stop(&p, path);
    if (recv_upto(idle, in, 1) != 0)
        fail("echo: idle connection not closed by the stop");
    close(idle);
}

#define REQ(m) m " / HTTP/1.1\r\nHost: x\r\n\r\n"
#define OK "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"

static void smoke_http(const char *path)
{
    proc p;
    start(&p, path);
    int fd = dial(&p);
    /* Three pipelined requests, a body included, in one write. */
    const char *req = REQ("GET") REQ("HEAD") "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    const char *want = OK "\r\nHello, World!" OK "\r\n" OK "\r\nHello, World!";
    send_all(fd, req, strlen(req));
    char in[1024];
    size_t n = recv_upto(fd, in, strlen(want));
    if (n != strlen(want) || memcmp(in, want, n))
        fail("http: pipelined responses wrong: %.*s", (int)n, in);
    /* A malformed request: 400, then the connection closes. */
    const char *bad = "GET / HTTP/1.1\nHost: x\n\n";
    const char *want400 = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    send_all(fd, bad, strlen(bad));
    n = recv_upto(fd, in, sizeof in);
    if (n != strlen(want400) || memcmp(in, want400, n))
        fail("http: malformed request not answered 400 then closed: %.*s", (int)n, in);
    close(fd);
    /* An idle keep-alive connection: the stop ends it at once. */
    int idle = dial(&p);
    send_all(idle, REQ("GET"), strlen(REQ("GET")));
    want = OK "\r\nHello, World!";
    if (recv_upto(idle, in, strlen(want)) != strlen(want))
        fail("http: keep-alive request not answered");
    stop(&p, path);
    if (recv_upto(idle, in, 1) != 0)
        fail("http: idle keep-alive connection not closed by the stop");
    close(idle);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        fail("usage: smoke_servers ECHO_SERVER HTTP_SERVER");
    signal(SIGPIPE, SIG_IGN);
    smoke_echo(argv[1]);
    smoke_http(argv[2]);
    printf("smoke_servers: echo_server and http_server started, served, stopped with SIGTERM, exit 0\n");
    return 0;
}
