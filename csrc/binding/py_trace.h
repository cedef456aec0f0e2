/* py_trace.h - what py_trace.c, the event recorder's Python face (SPEC D2,
 * issue 12), gives module.c.  Nothing else in the binding uses it: the
 * binding's event sites call the core's ST_TRACE (st_trace.h) directly.
 */
#ifndef ST_PY_TRACE_H
#define ST_PY_TRACE_H

#include "binding.h" /* Python.h, the module state */

/* The module functions _trace_start, _trace_stop, _trace_active,
 * _trace_collect, _trace_names and _trace_string, for
 * PyModule_AddFunctions in module.c.  A static table.  Refs: none. */
extern PyMethodDef trace_methods[];

#endif /* ST_PY_TRACE_H */
