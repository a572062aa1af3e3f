/* procwire.h - the process pool's wire: the frames between the parent and
 * a worker, and between the parent and the zygote.
 *
 * CHANNELS. Every channel is a SOCK_SEQPACKET Unix socket pair: one frame
 * is one message, so a frame is read whole or not at all, and a message
 * longer than the reader's buffer is reported (MSG_TRUNC) instead of
 * spilling into the next read. The parent's end of a worker's channel is a
 * wf_sock_t waited on through the poller (runtime/net/sockmsg.h carries
 * the descriptors); the worker's end, and both ends of the zygote's
 * channel, are plain blocking descriptors used by single-threaded code.
 *
 * A FRAME is a 24-byte header, then the payload inline (under
 * WF__PW_SHM_MIN bytes) or, with the SHM flag, nothing: the payload is a
 * memfd attached to the message (SCM_RIGHTS), exactly `len` bytes long.
 *
 *   parent -> worker  INIT    arg: the initializer's index (-1: none);
 *                              payload: its input. First frame, once.
 *                     JOB     id: the job's number on this worker (1, 2,
 *                              ...); arg: the job's index; payload: input.
 *   worker -> parent  READY   arg: the initializer's status (0: ready; else
 *                              the worker exits after sending it).
 *                     RESULT  id: the JOB's; arg: the job's status
 *                              (-4095..0); payload: the output.
 *
 * Every frame is checked by its reader before anything in it is used
 * (wf__pw_check): the magic, a type the reader expects, the id it expects,
 * no flag but SHM, arg in range, a length that matches what arrived (the
 * message's size, or the memfd's) and within the reader's limit, exactly
 * one descriptor with SHM and none without, a memfd sealed against
 * shrinking, growing and writing (so a mapping of it can never fault), and
 * no truncated message or control data. A parent that finds a bad frame
 * fails the job with -EPROTO and kills the worker; a worker that finds one
 * exits with WF__PW_EXIT_PROTO.
 */
#ifndef WF_POOL_PROCWIRE_H
#define WF_POOL_PROCWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WF__PW_MAGIC 0x50504657u /* "WFPP" on a little-endian machine */

enum {
    WF__PW_INIT = 1,
    WF__PW_JOB = 2,
    WF__PW_READY = 3,
    WF__PW_RESULT = 4,
};

/* flags */
#define WF__PW_SHM 1u

typedef struct wf__pw_frame {
    uint32_t magic;
    uint16_t type;
    uint16_t flags;
    uint32_t id;
    int32_t arg;
    uint64_t len;
} wf__pw_frame;

_Static_assert(sizeof(wf__pw_frame) == 24, "the frame header is 24 bytes");

/* Payloads of this many bytes and more travel through a memfd. 64 KiB:
 * below it a copy through the socket costs less than making, mapping and
 * sealing a memfd (and the message still fits the socket's default
 * buffer of 208 KiB whole). */
#define WF__PW_SHM_MIN ((size_t)64 * 1024)
/* The largest message: a header and the largest inline payload. */
#define WF__PW_MSG_MAX (sizeof(wf__pw_frame) + WF__PW_SHM_MIN - 1)

/* Seals a memfd payload must carry. */
#define WF__PW_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* The lowest status a frame may carry (a negative errno). */
#define WF__PW_STATUS_MIN (-4095)

/* Worker exit statuses of its own (not a job's exit()): the channel failed,
 * or a frame from the parent was bad. */
#define WF__PW_EXIT_IO 74
#define WF__PW_EXIT_PROTO 76

/* Check a received frame: `got` bytes arrived in the message (header
 * included), `nfds` descriptors with it (`fd` the first), `mflags` the
 * message flags. `type` and `id` are what the reader expects; `max_len`
 * the largest payload it accepts; `arg_min`/`arg_max` the range of arg.
 * On success returns true, with the payload either inline (after the
 * header) or in the memfd `fd`, whose size and seals were checked. The
 * caller closes `fd` in every case. */
bool wf__pw_check(const wf__pw_frame *f, size_t got, int nfds, int fd, int mflags, unsigned type, uint32_t id,
                  uint64_t max_len, int32_t arg_min, int32_t arg_max);

/* --- the zygote's channel (zygote.c) ---------------------------------------- */

enum { WF__ZY_HELLO = 0x5a5a0001u, WF__ZY_SPAWN = 0x5a5a0002u, WF__ZY_REPLY = 0x5a5a0003u };

typedef struct wf__zy_msg {
    uint32_t type;
    int32_t value; /* REPLY: the worker's pid, or a negative errno */
} wf__zy_msg;

#endif
