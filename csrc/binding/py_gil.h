/* py_gil.h - what py_gil.c exports: the binding's own
 * "GIL held" hint.
 */
#ifndef ST_PY_GIL_H
#define ST_PY_GIL_H

#include "binding.h"

/* py_gil.c: the binding's own "GIL held" hint (no CPython internals):
 * note_taken right after the binding took the GIL in a hand-off (worker
 * attach, end of a blocking wait), note_released right after it gave it
 * up (worker detach, start of a blocking wait).  is_locked: 1 if held as
 * far as those notes tell, else 0; spin_until_free: a bounded busy-poll
 * while it is (GIL not held by the caller).  Refs: none. */
void gil_note_taken(void);
void gil_note_released(void);
int gil_is_locked(void);
void gil_spin_until_free(uint64_t ns);

#endif /* ST_PY_GIL_H */
