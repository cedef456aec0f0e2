/* py_state.h - bottom layer (py_state.c): what every file
 * reaches through the module state.  g_st and get_st_state, with the
 * state struct, are in binding.h.
 */
#ifndef ST_PY_STATE_H
#define ST_PY_STATE_H

#include "binding.h"

/* sharptask._impl.<name>(*args) by vectorcall.  Refs: new (the result);
 * borrows args and kwnames. */
PyObject *call_impl(st_state *st, const char *name, PyObject *const *args,
                    size_t nargsf, PyObject *kwnames);
/* AggregateError(message, excs).  Refs: new; borrows excs. */
PyObject *make_aggregate(st_state *st, PyObject *excs);

#endif /* ST_PY_STATE_H */
