/* signal.c - signals for fibers (weft/signal.h) and the signal masks of the
 * runtime's threads (sigs.h). */
#include "sigs.h"

#include <signal.h>

void wf__sigset_async(sigset_t *s)
{
    sigfillset(s);
    static const int sync[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT, SIGKILL, SIGSTOP};
    for (unsigned i = 0; i < sizeof sync / sizeof sync[0]; i++)
        sigdelset(s, sync[i]);
}

bool wf__signo_catchable(int signo)
{
    if (signo < 1 || signo > SIGRTMAX)
        return false;
    /* glibc's own (thread cancellation, setxid): between the classic
     * signals and SIGRTMIN. */
    if (signo >= 32 && signo < SIGRTMIN)
        return false;
    switch (signo) {
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGTRAP:
    case SIGSYS:
    case SIGABRT:
    case SIGKILL:
    case SIGSTOP:
        return false;
    default:
        return true;
    }
}
