/* py_gil.c - is the interpreter lock free right now?  A hint for the
 * pool's hand-offs (BENCHMARKS.md rules 4 and 5).
 *
 *     gil_is_locked()          # 1 held, 0 free, -1 unknown
 *     gil_spin_until_free(ns)  # busy-poll (GIL not held) while it is held
 *
 * Why.  A thread that calls PyEval_RestoreThread while another thread
 * holds the GIL sleeps on the GIL's condition variable, and the holder's
 * release wakes it through the kernel: 20-25 us on the machines we
 * measure, against well under a microsecond for a busy-poll hand-off.  In
 * the round trip `Task.run(f).result` both sides meet that case: the
 * worker that picked the item up wants the GIL a moment before the caller
 * releases it in its wait, and the caller, seeing the completion, wants
 * it back a moment before the worker detaches.  Each side therefore polls
 * the lock word for a few tens of microseconds before it blocks; a holder
 * that keeps the GIL longer costs one bounded spin, then the normal
 * blocking acquire (and CPython's switch interval) takes over.
 *
 * How.  CPython has no public "is the GIL taken" query.  The lock word is
 * read from the runtime's internal state, which needs Py_BUILD_CORE and
 * the internal headers (as greenlet does for frames), so this file is
 * kept apart and tiny.  3.11 keeps the GIL in _PyRuntime.ceval.gil (the
 * versions this project ships for); 3.12 moved it to the interpreter
 * (interp->ceval.gil), untested here, so on any other version the answer
 * is "unknown" and the callers simply do not spin.  The read is a
 * relaxed atomic load of a word CPython itself reads without a lock: it
 * can only be stale, never unsafe, and a stale answer costs one spin or
 * one blocking acquire, never correctness.
 */
#define Py_BUILD_CORE 1 /* the internal headers below demand it */

#include <Python.h> /* the C API, and PY_VERSION_HEX */

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#include "internal/pycore_runtime.h" /* _PyRuntime.ceval.gil (3.11) */
#define ST_GIL_KNOWN 1
#else
#define ST_GIL_KNOWN 0
#endif

#include "st_pool.h"   /* st_pool_spin_pause */
#include "st_thread.h" /* st_now_ns */

/* Declared in binding.h (kept free of the internal headers). */
int gil_is_locked(void);
void gil_spin_until_free(uint64_t ns);

int
gil_is_locked(void)
{
#if ST_GIL_KNOWN == 1
    /* relaxed: CPython reads this word the same way (ceval_gil.h) */
    return _Py_atomic_load_relaxed(&_PyRuntime.ceval.gil.locked) > 0;
#else
    return -1;
#endif
}

void
gil_spin_until_free(uint64_t ns)
{
    uint64_t until;
    unsigned pauses = 0;

    if (gil_is_locked() != 1) {
        return; /* free, or unknown: do not spin */
    }
    until = st_now_ns() + ns;
    while (gil_is_locked() == 1 && st_now_ns() < until) {
        st_pool_spin_pause(&pauses); /* yields now and then */
    }
}
