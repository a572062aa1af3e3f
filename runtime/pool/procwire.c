/* procwire.c - the check every received frame passes before anything in
 * it is used (procwire.h). */
#include "procwire.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

bool wf__pw_check(const wf__pw_frame *f, size_t got, int nfds, int fd, int mflags, unsigned type, uint32_t id,
                  uint64_t max_len, int32_t arg_min, int32_t arg_max)
{
    /* Cut by the kernel (a message longer than the buffer, descriptors
     * beyond the room for them): something is missing. */
    if (mflags & (MSG_TRUNC | MSG_CTRUNC))
        return false;
    if (got < sizeof *f || f->magic != WF__PW_MAGIC || f->type != type || f->id != id)
        return false;
    if ((f->flags & ~WF__PW_SHM) || f->arg < arg_min || f->arg > arg_max || f->len > max_len)
        return false;
    if (!(f->flags & WF__PW_SHM))
        return nfds == 0 && f->len == got - sizeof *f;
    /* Shared memory: one memfd of exactly len bytes, sealed so that it can
     * neither shrink under a mapping (a fault in the reader) nor change. */
    if (nfds != 1 || fd < 0 || got != sizeof *f || f->len < WF__PW_SHM_MIN)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->len)
        return false;
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & WF__PW_SEALS) == WF__PW_SEALS;
}
