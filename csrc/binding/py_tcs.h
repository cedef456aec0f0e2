/* py_tcs.h - what py_tcs.c exports: the
 * TaskCompletionSource type.
 */
#ifndef ST_PY_TCS_H
#define ST_PY_TCS_H

#include "binding.h"

/* Static data for module.c.  Refs: none. */
extern PyType_Spec TCS_spec;

#endif /* ST_PY_TCS_H */
