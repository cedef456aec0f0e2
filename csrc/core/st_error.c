/* st_error.c - names of the core's error codes and the fatal-error exit. */
#include "st_error.h"

#include <stdio.h>  /* fprintf: the one place the core writes to stderr */
#include <stdlib.h> /* abort */

const char *
st_strerror(int code)
{
    switch (code) {
    case ST_OK:
        return "success";
    case ST_EINVAL:
        return "invalid argument";
    case ST_ENOMEM:
        return "out of memory";
    case ST_ECLOSED:
        return "closed";
    case ST_ECANCELED:
        return "canceled";
    case ST_EBUSY:
        return "busy";
    case ST_ETIMEDOUT:
        return "timed out";
    case ST_EFULL:
        return "count would exceed its maximum";
    default:
        return "unknown error";
    }
}

void
st_fatal_at(const char *file, int line, const char *msg)
{
    fprintf(stderr, "sharptask core fatal error: %s (%s:%d)\n", msg, file,
            line);
    fflush(stderr);
    abort();
}
