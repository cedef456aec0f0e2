/* py_gil.c - is the interpreter lock held right now?  A hint for the
 * pool's hand-offs (BENCHMARKS.md rules 4 and 5).
 *
 *     gil_note_taken()         # this thread just took the GIL (ours)
 *     gil_note_released()      # this thread just gave it up (ours)
 *     gil_is_locked()          # 1 held, 0 free, as far as we know
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
 * for a few tens of microseconds before it blocks; a holder that keeps
 * the GIL longer costs one bounded spin, then the normal blocking acquire
 * (and CPython's switch interval) takes over.
 *
 * How (SPEC H1: public API only).  CPython has no public "is the GIL
 * taken by some thread" query: PyGILState_Check() answers only for the
 * calling thread, and the lock word itself is interpreter-internal (it
 * moved from _PyRuntime to the interpreter in 3.12).  So the binding
 * keeps its own word, written where the binding itself moves the GIL in
 * the hand-offs above: a pool worker attaching and detaching (py_pool.c
 * hook_attach / hook_detach) and a thread entering and leaving a blocking
 * wait (py_task.c task_wait_blocking).  gil_note_taken() runs right after
 * the GIL was taken there, gil_note_released() right after it was given
 * up, so the word reads "a thread that took the GIL through the binding
 * has not given it up through the binding yet".
 *
 * What it cannot see: the GIL moving anywhere else (a thread's own Python
 * code, time.sleep inside a work item, the eval loop's forced switches).
 * The word is then stale, in one of two ways, neither unsafe:
 *   - it says free while a thread holds the GIL: the waiter does not spin
 *     and blocks at once, as it would without a hint;
 *   - it says held while the GIL is free: the waiter spins for its bounded
 *     time, then takes the GIL at once.  The next hand-off through the
 *     binding writes the word again, so a stale "held" costs one spin.
 * The GIL itself is always taken by PyEval_RestoreThread; the word only
 * decides whether to poll first.  Reads and writes are atomic (release
 * after a release of the GIL, acquire in the poll); the word is shared by
 * every thread of the process and never names an object.
 */
#include "binding.h"
#include "py_gil.h"

#include "st_pool.h"   /* st_pool_spin_pause */
#include "st_thread.h" /* st_now_ns */

/* 1 between gil_note_taken and gil_note_released (see above). */
static ST_ATOMIC(int) g_gil_held;

void
gil_note_taken(void)
{
    st_atomic_store(&g_gil_held, 1, ST_RELAXED);
}

void
gil_note_released(void)
{
    /* release: a poller that sees 0 finds the GIL's own release done */
    st_atomic_store(&g_gil_held, 0, ST_RELEASE);
}

int
gil_is_locked(void)
{
    return st_atomic_load(&g_gil_held, ST_ACQUIRE);
}

void
gil_spin_until_free(uint64_t ns)
{
    uint64_t until;
    unsigned pauses = 0;

    if (!gil_is_locked()) {
        return; /* free, as far as the binding knows: do not spin */
    }
    until = st_now_ns() + ns;
    while (gil_is_locked() && st_now_ns() < until) {
        st_pool_spin_pause(&pauses); /* yields now and then */
    }
}

int
wait_spin_useful(void)
{
    /* relaxed enough: every thread computes the same value, and the GIL
     * (held by every caller) orders the cache */
    static int ncpu = 0;
    if (ncpu == 0) {
        ncpu = st_cpu_count();
    }
    return ncpu > 1;
}
