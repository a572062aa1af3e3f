/* weft/stream.h - buffered streams over sockets: asyncio's StreamReader and
 * StreamWriter in one object, and open_connection().
 *
 * A wf_stream_t owns a socket (net.h) and buffers both directions:
 *
 * READING takes what the stream has buffered first and reads the socket
 * only when that is not enough: read up to n bytes, read exactly n, read a
 * line, read until a delimiter, or work on the buffer in place (fill /
 * peek / consume: a parser looks at the bytes where they are). The buffer
 * is allocated when a read needs it and given back while the stream waits
 * with nothing buffered, so an idle connection holds no buffer.
 *
 * WRITING never parks. wf_stream_write() hands the bytes to the kernel at
 * once when nothing is queued before them, and queues what the kernel
 * cannot take yet; a flusher task (started when needed, ended when the
 * queue is empty) sends the queue as the kernel makes room, so queued
 * bytes go out without further calls, as asyncio's transports do.
 * wf_stream_drain() is the backpressure point: it parks while more than
 * the high-water mark is queued, until at most the low-water mark is;
 * wf_stream_flush() parks until nothing is queued. A write error (the peer
 * gone: -EPIPE, -ECONNRESET) is kept and returned by every later write,
 * drain and flush; the bytes still queued are dropped.
 *
 * CANCELLATION AND DEADLINES. Every call that parks takes an absolute
 * deadline (WF_FOREVER, or 0 to try once without parking) and honours the
 * task's timeout scopes and cancellation. All reads are safe to cancel: a
 * read that ends with -ETIMEDOUT or -ECANCELED has consumed nothing, and
 * the next read returns every byte that arrived (read_exactly puts back
 * what it had already copied). drain and flush are safe to cancel: the
 * queued bytes stay queued and are still sent. A task that was cancelled
 * and must still flush does it inside a cleanup scope (wf_cleanup_enter,
 * combinators.h), as the server of server.h does for its handlers.
 *
 * One reader and one writer may use a stream at once (two fibers); calls
 * of the same direction from more fibers are served one at a time (fill,
 * peek and consume together are one reader's: the buffer they show is the
 * reading fiber's until it consumes). Calls need a fiber (-EPERM
 * elsewhere), except wf_stream_open(), wf_stream_abort(), the getters and
 * wf_stream_close() of a stream with nothing queued. wf_stream_write()
 * does not park for the peer; it parks only in two rare cases: for the
 * write turn while another fiber's write hands over, and to flush by
 * itself if no flusher task can be started (out of memory, or the
 * runtime shutting down). Closing frees the stream: no call may follow.
 */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include "core.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup stream Streams
 * @{ */

/** A buffered stream over a socket. Opaque. */
typedef struct wf_stream wf_stream_t;

/** Stream options (asyncio's limit and write buffer limits). */
typedef struct wf_stream_opts {
    size_t limit;      /**< most bytes a line / read_until / fill may buffer
                            (asyncio's limit); default 64 KiB, at least 1 */
    size_t read_size;  /**< bytes asked of the kernel per read; default 8 KiB */
    size_t high_water; /**< drain parks while more is queued; default 64 KiB */
    size_t low_water;  /**< ...until at most this much is; default 16 KiB,
                            at most high_water */
} wf_stream_opts_t;

/** Fill @p o with the defaults above. NULL is ignored. */
void wf_stream_opts_init(wf_stream_opts_t *o);

/** A stream over @p s, which it takes over: on success the stream owns the
 * caller's reference to @p s (close the stream, not the socket).
 * @param opts NULL for the defaults.
 * @return 0; -EINVAL for NULL @p out / @p s, a limit or read_size of 0,
 *   low_water above high_water; -EBADF if @p s is closed; -ENOMEM. On
 *   failure @p s stays the caller's. Never blocks; any thread. */
int wf_stream_open(wf_stream_t **out, wf_sock_t *s, const wf_stream_opts_t *opts);

/** asyncio.open_connection(host, port): wf_tcp_connect() and a stream with
 * default options. @return 0; wf_tcp_connect()'s errors; -ENOMEM. Fiber
 * only; parks. */
int wf_open_connection(wf_stream_t **out, const char *host, uint16_t port, int64_t deadline);

/** asyncio.open_unix_connection(path). @return as wf_unix_connect(). */
int wf_open_unix_connection(wf_stream_t **out, const char *path, int64_t deadline);

/** Flush what is queued (until @p deadline), then close the socket for
 * every holder and free the stream, whatever happened (asyncio's
 * writer.close() and wait_closed()).
 * @return 0 when everything queued went out; -ETIMEDOUT / -ECANCELED
 *   (not all of it did), or the stream's write error (-EPIPE...); -EINVAL
 *   for NULL. The stream is gone either way. Fiber only when something is
 *   queued (it parks); else any thread. */
int wf_stream_close(wf_stream_t *st, int64_t deadline);

/** Close at once, dropping whatever is queued (asyncio's transport.abort()).
 * @return 0; -EINVAL for NULL. Never blocks; any thread. */
int wf_stream_abort(wf_stream_t *st);

/** The stream's socket (borrowed: do not close or release it), for options
 * and addresses. NULL for NULL. */
wf_sock_t *wf_stream_socket(wf_stream_t *st);

/* --- reading -------------------------------------------------------------- */

/** Read up to @p n bytes (asyncio's read(n)): what is buffered, or else one
 * read of the socket.
 * @return the count (> 0); 0 at end of file (or @p n of 0); -EINVAL for
 *   NULL / a bad deadline; -ETIMEDOUT; -ECANCELED; the socket's errors
 *   (-ECONNRESET, -EBADF...). Fiber only; parks while nothing is there.
 *   Safe to cancel. */
ssize_t wf_stream_read(wf_stream_t *st, void *buf, size_t n, int64_t deadline);

/** Read exactly @p n bytes (asyncio's readexactly).
 * @param got  if not NULL, receives how many bytes were read: @p n on
 *             success, the partial count on -EPIPE, 0 otherwise.
 * @return 0; -EPIPE if the stream ended first (asyncio's
 *   IncompleteReadError: those bytes are in @p buf and consumed);
 *   -ETIMEDOUT / -ECANCELED (nothing consumed: the bytes already copied
 *   into @p buf are put back in the stream); as wf_stream_read(). Fiber
 *   only; parks. Safe to cancel. */
int wf_stream_read_exactly(wf_stream_t *st, void *buf, size_t n, size_t *got, int64_t deadline);

/** Read up to and including @p delim (asyncio's readuntil).
 * @param buf, cap  where the bytes go (delimiter included).
 * @param len       receives the count copied.
 * @return 0 with the bytes in @p buf; -EMSGSIZE if no delimiter is found
 *   within min(@p cap, the limit) bytes (asyncio's LimitOverrunError):
 *   nothing is consumed, the bytes stay readable; -EPIPE at end of file
 *   before a delimiter (the partial bytes are copied and consumed, *len
 *   tells how many, as asyncio's IncompleteReadError.partial);
 *   -EINVAL for NULL arguments or an empty delimiter; -ETIMEDOUT /
 *   -ECANCELED (nothing consumed); the socket's errors. Fiber only; parks.
 *   Safe to cancel. */
int wf_stream_read_until(wf_stream_t *st, const void *delim, size_t dlen, void *buf, size_t cap, size_t *len,
                         int64_t deadline);

/** Read a line, '\n' included (asyncio's readline).
 * @return 0 with *len bytes: a line, or at end of file the last bytes
 *   without '\n', or *len == 0 at end of file; -EMSGSIZE for a line longer
 *   than min(@p cap, the limit) (nothing consumed, as read_until); the
 *   other errors of wf_stream_read_until(). Fiber only; parks. Safe to
 *   cancel. */
int wf_stream_readline(wf_stream_t *st, void *buf, size_t cap, size_t *len, int64_t deadline);

/** Read more into the buffer: at least one more byte, or end of file
 * (Go's bufio.Reader.Peek, for parsers that work in place).
 * @param avail if not NULL, receives the bytes now buffered.
 * @return 0; -EPIPE at end of file (nothing more will come; *avail may
 *   still be above 0); -EMSGSIZE if the limit's worth is already buffered;
 *   -ETIMEDOUT / -ECANCELED (nothing lost); the socket's errors. Fiber
 *   only; parks. Safe to cancel. */
int wf_stream_fill(wf_stream_t *st, size_t *avail, int64_t deadline);

/** The buffered bytes, without reading or consuming them; valid until the
 * next call that reads or consumes. @return the start (NULL when nothing
 * is buffered); *len gets the count. Never blocks. */
const void *wf_stream_peek(wf_stream_t *st, size_t *len);

/** Drop the first @p n buffered bytes (after a peek). @return 0; -EINVAL
 * for NULL or @p n above what is buffered. Never blocks. */
int wf_stream_consume(wf_stream_t *st, size_t n);

/** 1 if nothing is buffered and the peer has ended the stream (asyncio's
 * at_eof), 0 if not; -EINVAL for NULL. Never blocks. */
int wf_stream_at_eof(wf_stream_t *st);

/* --- writing -------------------------------------------------------------- */

/** Queue @p n bytes (asyncio's writer.write): sent at once when the kernel
 * takes them and nothing is queued before them, else queued and sent by
 * the flusher. Never parks for the peer (see the top of this header).
 * @return 0; -EINVAL for NULL arguments; -ENOMEM (nothing queued); -EPERM
 *   outside a fiber; the stream's write error (-EPIPE, -ECONNRESET,
 *   -EBADF once closed...). Fiber only. */
int wf_stream_write(wf_stream_t *st, const void *buf, size_t n);

/** wf_stream_write() of @p cnt buffers in order (writelines).
 * @return as wf_stream_write(); -EINVAL for a negative @p cnt or a NULL
 *   buffer with a length. */
int wf_stream_writev(wf_stream_t *st, const struct iovec *iov, int cnt);

/** Backpressure (asyncio's drain): return at once while at most the
 * high-water mark is queued; else park until at most the low-water mark
 * is.
 * @return 0; the stream's write error; -ETIMEDOUT / -ECANCELED (the bytes
 *   stay queued and still go out); -EINVAL. Fiber only; parks. Safe to
 *   cancel. */
int wf_stream_drain(wf_stream_t *st, int64_t deadline);

/** Park until nothing is queued: every byte written so far is with the
 * kernel. @return as wf_stream_drain(). Fiber only; parks. Safe to
 * cancel. */
int wf_stream_flush(wf_stream_t *st, int64_t deadline);

/** Flush, then shut down the writing half: the peer reads end of file
 * (asyncio's write_eof). Later writes fail with -EPIPE.
 * @return as wf_stream_flush(); the errors of wf_sock_shutdown(). */
int wf_stream_write_eof(wf_stream_t *st, int64_t deadline);

/** Bytes queued and not yet with the kernel (get_write_buffer_size).
 * 0 for NULL. Never blocks. */
size_t wf_stream_write_queued(wf_stream_t *st);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
