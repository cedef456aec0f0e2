/* py_gil.h - what py_gil.c exports: the binding's own
 * "GIL held" hint.
 */
#ifndef ST_PY_GIL_H
#define ST_PY_GIL_H

#include "binding.h"

#include <stdint.h>    /* uint64_t */

#include "st_thread.h" /* st_now_ns */

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

/* The rhythm of every blocking wait that releases the GIL (T6, BENCHMARKS
 * rule 5): slices of at most WAIT_SLICE_NS, the Ctrl-C latency bound
 * (wait_slice_check, py_errors.h, runs between them), and with a second
 * processor WAIT_SPIN_NS of busy-poll before the first sleep.
 * wait_deadline: timeout_ns from now (UINT64_MAX: none, also on
 * overflow); wait_next_slice: the next sleep, 0 once the deadline
 * passed; wait_spin_useful: 1 if another processor may complete the wait
 * while this one polls.  Refs: none. */
#define WAIT_SLICE_NS 50000000u /* 50 ms */
#define WAIT_SPIN_NS 20000u     /* 20 us */

static inline uint64_t
wait_deadline(uint64_t timeout_ns)
{
    uint64_t now = st_now_ns();
    return timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
}

static inline uint64_t
wait_next_slice(uint64_t deadline)
{
    uint64_t now = st_now_ns();
    if (now >= deadline) {
        return 0;
    }
    return deadline - now > WAIT_SLICE_NS ? WAIT_SLICE_NS : deadline - now;
}

/* 1 if another processor may complete a wait while this one polls.
 * Refs: none. */
int wait_spin_useful(void);

#endif /* ST_PY_GIL_H */
