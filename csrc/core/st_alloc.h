/* st_alloc.h - allocator hooks of the core (libuv's uv_replace_allocator).
 *
 * Every allocation of the core goes through st_malloc/st_free.  By default
 * they are malloc/free; the binding may install PyMem_RawMalloc/RawFree,
 * which are safe without the GIL.
 */
#ifndef ST_ALLOC_H
#define ST_ALLOC_H

#include <stddef.h> /* size_t */

typedef void *(*st_malloc_fn)(size_t size);
typedef void *(*st_realloc_fn)(void *ptr, size_t size);
typedef void (*st_free_fn)(void *ptr);

/* Call once before any other core call (not thread safe).  NULLs restore
 * the defaults.  Returns 0. */
int st_replace_allocator(st_malloc_fn m, st_realloc_fn r, st_free_fn f);

/* Any thread. */
void *st_malloc(size_t size);
void *st_calloc(size_t n, size_t size);
void *st_realloc(void *ptr, size_t size);
void st_free(void *ptr);

#endif /* ST_ALLOC_H */
