/* weft/fs.h - files for fibers, through the thread pool (aiofiles,
 * tokio::fs::File).
 *
 * epoll cannot wait for a regular file (the kernel calls it always ready,
 * and a read from a slow disk blocks all the same), so every call here that
 * may block runs on the pool's file threads (WF_POOL_FILE, weft/pool.h),
 * which have their own limit: a flood of slow name lookups or user calls
 * never delays a file read. The calling fiber parks meanwhile (a fiber whose
 * worker has nothing else to do watches for a quick result for up to 20 us
 * first).
 *
 * READS TRY THE PAGE CACHE FIRST. wf_file_read(), wf_file_pread() and the
 * line reader first read on the caller's thread with preadv2(RWF_NOWAIT),
 * which takes what the page cache holds and never waits for the disk; only
 * a read that would wait goes to a pool thread (the try-first rule of
 * sockets, applied to files: a cached read costs no thread hand-off). A
 * file system that refuses the flag sends that file's reads to the pool;
 * WF_FILE_NO_NOWAIT=1 in the environment (read when a file is opened) does
 * so for every file.
 *
 * CANCELLATION AND DEADLINES. A file call writes into (or reads from) your
 * buffer, so once a pool thread has started it, it is never abandoned: a
 * cancellation or a deadline (the call's own, or a timeout scope's) that
 * comes while it runs is held off until it ends, its outcome is returned,
 * and the cancellation stays pending for the task's next wait (nothing read
 * or written is ever lost). While the call still waits for a free thread,
 * cancellation and deadlines take it back at once: it returns -ECANCELED or
 * -ETIMEDOUT and did nothing. So a file call on a hung network file system
 * cannot be interrupted; wf_run_in_executor() with a buffer of your own is
 * the way to give up on such a call.
 *
 * SHARING. One wf_file_t may be used by several fibers at once. Calls that
 * use the file position (read, write, read_line, seek) take turns, so that
 * the line reader's buffer and the position agree; pread, pwrite and sync
 * do not wait for them. wf_file_close() refuses (-EBUSY) while any call on
 * the file is in progress; once it has closed the file, the wf_file_t is
 * freed and must not be used again (as after fclose()).
 *
 * LINES. wf_file_read_line() reads ahead into a 64 KiB buffer of the
 * file's own, one pool call per buffer, not per line (asyncio's
 * StreamReader.readline over a file, Python's buffered readline). The
 * other calls see the file as if that buffer were not there: wf_file_read()
 * returns buffered bytes first, and wf_file_write() and wf_file_seek() put
 * the position back where the reader is (and drop the buffer).
 *
 * Every fd is O_CLOEXEC. errno is never read after a wait, nor set.
 */
#ifndef WEFT_FS_H
#define WEFT_FS_H

#include "core.h"
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup fs Files
 * @{ */

/** An open file. Opaque; see the top of this header. */
typedef struct wf_file wf_file_t;

/** Open @p path (open(2) on a pool thread; aiofiles.open).
 * @param out    receives the file.
 * @param flags  open(2)'s flags (O_RDONLY, O_WRONLY|O_CREAT|O_TRUNC,
 *               O_APPEND...); O_CLOEXEC is always added.
 * @param mode   the permissions of a file that O_CREAT creates.
 * @param deadline  WF_FOREVER, or when to stop waiting for a free thread.
 * @return 0; -EINVAL for NULL @p out or @p path, or a bad deadline;
 *   -EISDIR if @p path is a directory (a file is expected, as Python's
 *   open() says; opening one for writing is open(2)'s -EISDIR too);
 *   open(2)'s errors: -ENOENT, -EACCES, -EEXIST (O_EXCL), -ENOTDIR,
 *   -EMFILE, -ENAMETOOLONG, -ELOOP, -EROFS...; -ECANCELED, -ETIMEDOUT
 *   (nothing was opened); -EAGAIN, -ENOMEM; -EPERM not a fiber.
 * Fiber only; parks. */
int wf_file_open(wf_file_t **out, const char *path, int flags, mode_t mode, int64_t deadline);

/** Read up to @p n bytes at the file position (one read(2)).
 * @return the count read (> 0), 0 at end of file (or @p n of 0);
 *   -EINVAL for NULL @p f, NULL @p buf with @p n > 0, or a bad deadline;
 *   -EBADF if the file was not opened for reading;
 *   -EISDIR, -EIO and read(2)'s other errors; -ECANCELED, -ETIMEDOUT
 *   (nothing was read); -EPERM not a fiber.
 * Fiber only; parks. */
ssize_t wf_file_read(wf_file_t *f, void *buf, size_t n, int64_t deadline);

/** Read one line: bytes up to and including the next '\n', or up to end
 * of file, at most @p n - 1 of them, stored in @p buf and followed by a
 * NUL (fgets()). A line longer than @p n - 1 comes in pieces: each piece
 * but the last has no '\n'.
 * @return the line's length in bytes (without the NUL; the '\n' included);
 *   0 at end of file; -EINVAL for NULL @p f or @p buf, @p n below 2, or a
 *   bad deadline; -ENOMEM (the read-ahead buffer); and as wf_file_read().
 *   A line may contain NUL bytes: use the length, not strlen().
 * Fiber only; parks when the read-ahead buffer needs refilling. */
ssize_t wf_file_read_line(wf_file_t *f, char *buf, size_t n, int64_t deadline);

/** Write all @p n bytes at the file position (at the end with O_APPEND),
 * with as many write(2) calls as it takes.
 * @param written  if not NULL, receives how many bytes were written, on
 *                 success (@p n) and on failure.
 * @return 0; -EINVAL; -EBADF (not opened for writing); -ENOSPC,
 *   -EDQUOT, -EFBIG, -EIO and write(2)'s other errors; -ECANCELED,
 *   -ETIMEDOUT (nothing was written); -EPERM.
 * Fiber only; parks. */
int wf_file_write(wf_file_t *f, const void *buf, size_t n, size_t *written, int64_t deadline);

/** Read up to @p n bytes at @p offset (pread(2)); the file position does
 * not move. @return as wf_file_read(); -EINVAL also for a negative
 * @p offset. Fiber only; parks. */
ssize_t wf_file_pread(wf_file_t *f, void *buf, size_t n, int64_t offset, int64_t deadline);

/** Write all @p n bytes at @p offset (pwrite(2), looping); the file
 * position does not move. @return as wf_file_write(); -EINVAL also for a
 * negative @p offset. Fiber only; parks. */
int wf_file_pwrite(wf_file_t *f, const void *buf, size_t n, int64_t offset, size_t *written,
                   int64_t deadline);

/** Flush the file to its storage: fsync(2), or fdatasync(2) when
 * @p data_only (metadata that is not needed to read the data back is not
 * flushed). @return 0; -EINVAL; -EBADF; -EIO, -ENOSPC, -EROFS...;
 * -ECANCELED, -ETIMEDOUT (nothing done); -EPERM. Fiber only; parks. */
int wf_file_sync(wf_file_t *f, bool data_only, int64_t deadline);

/** Move the file position (lseek(2), which never blocks: it runs on the
 * caller's thread), dropping the line reader's buffer.
 * @param whence SEEK_SET, SEEK_CUR (relative to the position the reader
 *               has reached, not to the end of its buffer) or SEEK_END.
 * @return the new position; -EINVAL (NULL @p f, a bad @p whence, a
 *   resulting negative position); -ESPIPE;
 *   -ECANCELED if cancelled while waiting for its turn; -EPERM.
 * Fiber only (it may wait for another fiber's read or write to end). */
int64_t wf_file_seek(wf_file_t *f, int64_t offset, int whence);

/** The file's descriptor, for fstat(2) and the like: never close it
 * yourself. @return the fd; -EINVAL for NULL. Never blocks; any thread. */
int wf_file_fd(const wf_file_t *f);

/** Close the file (close(2) on a pool thread: closing a file on a network
 * file system may flush it) and free it. Data in the line reader's buffer
 * is dropped.
 * @return 0, or a negative errno from close(2) (-EIO: written data may be
 *   lost): either way the file is closed and @p f freed; -EINVAL for NULL;
 *   -EBUSY while another call on the file is in progress, and -EPERM when
 *   not called from a fiber (nothing is done: @p f is still open). Waits
 *   for the close(2) to end, holding off cancellation and timeout scopes
 *   (the fd must not be left half closed).
 * Fiber only; parks. */
int wf_file_close(wf_file_t *f);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
