/* weft/gen.h - generators: a body that yields values to whoever asks for
 * them (`async def ... yield` and `async for`).
 *
 * A generator is a body on a stack of its own, run by the task that asks it
 * for a value, as Python runs an async generator's frame inside the task
 * that awaits anext(). wf_gen_next() switches straight onto the generator's
 * stack and runs the body, as the calling task, until the body yields a
 * value (or returns); wf_gen_yield() switches straight back. No run queue,
 * no other task: a value costs two context switches and one atomic. The
 * body starts at the first wf_gen_next(), not before.
 *
 * A pipeline is a chain of generators, each the consumer of the one before
 * (reader -> cleaner -> tokenizer): one value at a time is in flight per
 * stage, so it streams in bounded memory.
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
 * THE BODY RUNS AS ITS CONSUMER. While it runs, wf_self() is the task that
 * called wf_gen_next(); the body may wait on anything (sleep, queues,
 * sockets), and its waits are that task's: cancelling the consumer fails
 * them with -ECANCELED, and a deadline given to wf_gen_next_until() caps
 * them (-ETIMEDOUT), exactly as asyncio.timeout() around anext() would. The
 * body decides what such an error means: return it (the generator ends with
 * it, and wf_gen_next() returns it), or yield something and go on. Any task
 * may drive a generator, one at a time; a second one gets -EBUSY.
 *
 * OWNERSHIP OF VALUES. A value passed to wf_gen_yield() is the consumer's
 * from that moment (the consumer is running with it before the yield
 * returns). The yield returns 0 when the next value is wanted, and
 * -ECANCELED when the generator is being closed instead: the body cleans up
 * and returns. Only a yield called after that (a body that ignored the
 * close) delivers nothing, and fails with -EPIPE.
 *
 * WHAT -ECANCELED MEANS HERE. A yield never waits, so its -ECANCELED has
 * one cause only: a close has called the generator's work off (Python
 * throws GeneratorExit in at the yield). It is not a cancellation of the
 * task running the body: no request is counted (wf_cancelling() is
 * unchanged), and the waits of the body's cleanup fail only if the closing
 * task is itself cancelled or in an expired timeout scope. The code is the
 * one a task cancelled before its first run ends with; wf_gen_close()
 * reports it for a body that never ran, and a closed body usually returns
 * it too.
 *
 * CLOSING. wf_gen_close() ends a generator (aclose()): a body suspended in a
 * yield is resumed, in the closer's task, with that yield returning
 * -ECANCELED, and the close returns when the body has returned; a body that
 * never started never runs (its options' `drop` gets its argument instead).
 * Every generator must be closed once, finished or not, as every file must
 * be fclose()d; a pipeline stage closes its upstream generator on its way
 * out (and in its `drop`), so closing the last stage closes the pipeline.
 *
 * TIMEOUT SCOPES. A body must leave the wf_timeout_enter() scopes it enters
 * before it yields (a yield inside one fails with -EBUSY): the scope's frame
 * is on the generator's stack, and the consumer's code would otherwise run
 * under it (PEP 789). Scopes a body leaves open when it returns are left
 * for it.
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

/** Make a generator running @p fn(g, @p arg) on a stack of its own. Nothing
 * runs and no stack is taken until the first wf_gen_next().
 * @param opts  NULL for defaults, or: `name` (its stack's name in sanitizer
 *              reports), `stack_size` (as wf_spawn()), and `drop`: called
 *              with @p arg by wf_gen_close() when the body never started (so
 *              a pipeline stage can close its upstream, which the body would
 *              have done on its way out). `worker` must be -1: the body runs
 *              in its consumer's task, wherever that runs.
 * @return 0; -EINVAL for NULL @p out or @p fn, a stack size out of range or
 * a `worker` other than -1; -ENOMEM; -EPERM outside a runtime thread.
 * Never blocks. */
int wf_gen_create(wf_gen_t **out, wf_gen_fn fn, void *arg, const wf_spawn_opts_t *opts);

/** Ask the generator for its next value (anext()): runs the body, in the
 * calling task, until it yields or returns.
 * @return 1 with the value in *@p value;
 *   0 when the body has returned 0 (exhausted);
 *   the body's negative return value when it returned one (also on every
 *   later call): its own error, or the -ECANCELED / -ETIMEDOUT of a wait it
 *   gave up on and passed on; -ERANGE if it returned a positive value;
 *   -ENOMEM when the first call finds no memory for the stack (nothing ran);
 *   -EBUSY if another task is running or closing @p g right now;
 *   -EDEADLK if called from @p g's own body;
 *   -EXDEV if @p g was made in another runtime;
 *   -EINVAL for NULL arguments; -EPERM outside a fiber.
 * Fiber only; blocks while the body waits. */
int wf_gen_next(wf_gen_t *g, void **value);

/** wf_gen_next() whose body runs under a timeout scope ending at @p deadline
 * (absolute, wf_now() time; WF_FOREVER for none): the body's waits past it
 * fail with -ETIMEDOUT, and the body decides what that means (see THE BODY
 * RUNS AS ITS CONSUMER). A body that yields without waiting yields even
 * after the deadline. Returns as wf_gen_next() (the call adds no
 * -ETIMEDOUT of its own: only the body's waits see the deadline); -EINVAL
 * also for a deadline below WF_FOREVER. */
int wf_gen_next_until(wf_gen_t *g, void **value, int64_t deadline);

/** Body side: hand @p value to the consumer and stay suspended until the
 * next value is asked for. @return 0 when the next value is wanted;
 * -ECANCELED when the generator is being closed by wf_gen_close() (the
 * value was delivered; clean up and return; the task is not cancelled, see
 * WHAT -ECANCELED MEANS HERE); -EPIPE when it was closed already (the value
 * was NOT delivered); -EBUSY when a timeout scope the body entered is still
 * open (nothing happens); -EPERM when not called from @p g's body while it
 * runs; -EINVAL for NULL @p g. Fiber only (the body's); never blocks by
 * itself. */
int wf_gen_yield(wf_gen_t *g, void *value);

/** Close and free a generator (aclose()). A body suspended in a yield is
 * resumed with -ECANCELED from that yield and runs to its end in the
 * caller's task (so a cancellation of the caller fails its cleanup's
 * waits, as in asyncio); a body that never started never runs (`drop` is
 * called instead); a finished one is just freed.
 * @param status  if not NULL, receives the generator's final status: what
 *                the body returned (-ERANGE for a positive value), or
 *                -ECANCELED if it never started (it was called off before
 *                it ran, as a task cancelled before its first run is).
 * @return 0 (@p g is freed and must not be used again); -EBUSY if another
 * task is running it right now (nothing happens); -EDEADLK if called from
 * its own body; -EXDEV if made in another runtime; -EINVAL for NULL;
 * -EPERM outside a fiber. Fiber only; blocks while the body cleans up. */
int wf_gen_close(wf_gen_t *g, int *status);

/** @} */

#ifdef __cplusplus
}
#endif
#endif
