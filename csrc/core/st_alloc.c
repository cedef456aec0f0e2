/* st_alloc.c - the replaceable allocator of the core. */
#include "st_alloc.h"

#include <stdlib.h> /* malloc, realloc, free */
#include <string.h> /* memset */

static st_malloc_fn g_malloc = malloc;
static st_realloc_fn g_realloc = realloc;
static st_free_fn g_free = free;

int
st_replace_allocator(st_malloc_fn m, st_realloc_fn r, st_free_fn f)
{
    g_malloc = m != NULL ? m : malloc;
    g_realloc = r != NULL ? r : realloc;
    g_free = f != NULL ? f : free;
    return 0;
}

void *
st_malloc(size_t size)
{
    return g_malloc(size == 0 ? 1 : size);
}

void *
st_calloc(size_t n, size_t size)
{
    void *p;
    if (size != 0 && n > (size_t)-1 / size) {
        return NULL;
    }
    p = st_malloc(n * size);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

void *
st_realloc(void *ptr, size_t size)
{
    return g_realloc(ptr, size == 0 ? 1 : size);
}

void
st_free(void *ptr)
{
    g_free(ptr);
}
