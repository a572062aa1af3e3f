/* weft/combinators.h - gather, wait, wait_for, as_completed, timeout scopes, shield, task groups, futures, cross-thread entry. */
#ifndef WEFT_COMBINATORS_H
#define WEFT_COMBINATORS_H

#include "task.h"
#include "time.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
