/* weft/gen.h - generators: a task that yields values to its consumer
 * (`async def ... yield` and `async for`).
 *
 * A generator runs its body on a fiber of its own, but only when asked: like
 * a Python generator, its body starts at the first wf_gen_next(), runs up to
 * its first wf_gen_yield(), and stays there until the next wf_gen_next().
 * The hand-off between consumer and generator switches straight from one
 * fiber to the other (no trip through a run queue), so a value costs about
 * two context switches. A pipeline is a chain of generators, each the
 * consumer of the one before (reader -> cleaner -> tokenizer): one value at
 * a time is in flight per stage, so it streams in bounded memory.
 *
 *     static int count_up(wf_gen_t *g, void *arg) {
 *         for (intptr_t i = 0; i < (intptr_t)arg; i++)
 *             if (wf_gen_yield(g, (void *)i) < 0)
 *                 return -ECANCELED;       // closed: clean up and return
 *         return 0;
 *     }
 *     ...
 *     wf_gen_t *g;
 *     wf_gen_create(&g, count_up, (void *)10, NULL);
 *     void *v;
 *     int r;
 *     while ((r = wf_gen_next(g, &v)) == 1)
 *         use(v);
 *     wf_gen_close(g, NULL);   // always: it frees the generator
 *
 * OWNERSHIP OF VALUES. wf_gen_yield() returns 0 when its value was delivered
 * (the consumer has it) and a negative error when it was not (the generator
 * still owns it, and should free it if it must). Like a send in Go racing a
 * close: a close that arrives after the value was delivered is noticed at
 * the generator's next wait, which fails with -ECANCELED (its next
 * wf_gen_yield() fails at once, delivering nothing).
 *
 * CLOSING. wf_gen_close() ends a generator early (aclose()): it cancels the
 * generator's task, so its current or next wait - a yield, or anything else
 * it waits for - fails with -ECANCELED; the body cleans up and returns; the
 * close waits for that and frees the generator. A body that never started
 * never runs (its spawn options' `drop` runs instead). Every generator must
 * be closed once, finished or not, as every file must be fclose()d; a
 * pipeline stage closes its upstream generator on its way out (and in its
 * `drop`), so closing the last stage closes the whole pipeline.
 */
#ifndef WEFT_GEN_H
#define WEFT_GEN_H

#include "task.h"
#include "time.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup gen Generators
 * @{ */

/** A generator (opaque; made by wf_gen_create()). */
typedef struct wf_gen wf_gen_t;

/** A generator's body: yields values with wf_gen_yield(@p g, value) and
 * returns its status, 0 when exhausted normally or a negative errno of its
 * choosing (its "exception", which the consumer's wf_gen_next() returns).
 * A positive return value is reported as -ERANGE. */
typedef int (*wf_gen_fn)(wf_gen_t *g, void *arg);

/** Make a generator running @p fn(g, @p arg). Its task is spawned now but
 * the body first runs at the first wf_gen_next().
 * @param opts  spawn options for its task (name, stack size, pinning), and
 *              `drop`: called with @p arg instead of the body when the
 *              generator is closed before its body ever started. It runs in
 *              the generator's own task, so it may wait, e.g. close the
 *              upstream generator of a pipeline stage (which the body would
 *              have closed on its way out); only if the runtime shuts down
 *              before that task ever ran is it called outside any fiber.
 *              NULL for defaults. A generator pinned to a worker loses the
 *              direct hand-off when its consumer runs elsewhere (it still
 *              works).
 * @return 0; -EINVAL for NULL @p out or @p fn or bad options; -ENOMEM;
 * -EPERM outside a runtime thread. Never blocks. */
int wf_gen_create(wf_gen_t **out, wf_gen_fn fn, void *arg, const wf_spawn_opts_t *opts);

/** Ask the generator for its next value (anext()).
 * @return 1 with the value in *@p value;
 *   0 when the generator has finished with status 0 (exhausted);
 *   the generator's negative status when it finished with one (also on
 *   every later call);
 *   -ECANCELED if the caller was cancelled while waiting: the generator
 *   keeps the value it is computing, and the next call returns it;
 *   -EBUSY if another task is waiting in wf_gen_next() on @p g;
 *   -EDEADLK if called by the generator itself;
 *   -EINVAL for NULL arguments; -EPERM outside a fiber.
 * Fiber only; blocks while the generator computes. */
int wf_gen_next(wf_gen_t *g, void **value);

/** wf_gen_next() with a deadline; plus -ETIMEDOUT (as -ECANCELED: the
 * value being computed is kept for the next call). */
int wf_gen_next_until(wf_gen_t *g, void **value, int64_t deadline);

/** Generator side: hand @p value to the consumer and wait until it asks for
 * the next one. @return 0 when the value was delivered and another is
 * wanted; -ECANCELED when the generator is closed (or its task cancelled)
 * before the value was delivered: the generator still owns @p value and
 * should clean up and return; -EPERM when not called from @p g's own body;
 * -EINVAL for NULL @p g. Fiber only (the generator's). */
int wf_gen_yield(wf_gen_t *g, void *value);

/** Close and free a generator (aclose()). If its body is running or
 * suspended in a yield, its task is cancelled and the call waits for the
 * body to return; a body that never started never runs. The wait is not
 * interrupted by the caller's own cancellation (cleanup must finish before
 * the memory goes), so a body's cleanup must not wait for ever.
 * @param status  if not NULL, receives the generator's final status: 0,
 *                its own error, or -ECANCELED when closing stopped it.
 * @return 0 (@p g is freed and must not be used again); -EBUSY if another
 * task is waiting in wf_gen_next() on it (nothing happens); -EDEADLK if
 * called by the generator itself; -EINVAL for NULL; -EPERM outside a fiber.
 * Fiber only; may block. */
int wf_gen_close(wf_gen_t *g, int *status);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
