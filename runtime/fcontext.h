/* fcontext.h - boost.context's C-linkage context switch (libboost_context).
 *
 * jump_fcontext() saves the callee-saved registers on the current stack,
 * switches the stack pointer to `to`, and returns there. The returned
 * transfer_t carries the context we came from (to resume it later) and the
 * `vp` the switcher passed. A round trip is about 11 ns on this machine: the
 * floor under every weft figure.
 */
#ifndef WF_FCONTEXT_H
#define WF_FCONTEXT_H

#include <stddef.h>

typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} transfer_t;

transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));
transfer_t ontop_fcontext(fcontext_t const to, void *vp, transfer_t (*fn)(transfer_t));

#endif
