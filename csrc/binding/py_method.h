/* py_method.h - what py_method.c exports: the async-method type's two
 * specs, for module.c (the rest of py_method.c is reached through the
 * type).  Every declaration says what it does with references
 * (binding.h's top comment).
 */
#ifndef ST_PY_METHOD_H
#define ST_PY_METHOD_H

#include "binding.h"

/* AsyncMethod (@async_method) and AsyncValueMethod
 * (@async_value_method): one C type with a mode, two Python classes
 * (py_method.c's head comment).  Static data.  Refs: none. */
extern PyType_Spec AsyncMethod_spec;
extern PyType_Spec AsyncValueMethod_spec;

#endif /* ST_PY_METHOD_H */
