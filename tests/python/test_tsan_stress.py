"""Bounded concurrency stress for the ThreadSanitizer run of the extension
(issue 9, "Make it provable: races"; tools/check-py-tsan.sh runs this file
and tests/python/test_stress.py against a -fsanitize=thread build).

Each test races the binding's shared state from several threads for a
bounded number of rounds (about a second in the normal suite, a few under
TSan) and checks an exactly-once / conservation invariant, so it is a
useful test without TSan too.  Under TSan the races themselves are the
finding: the run halts on the first report.

- completion from many threads: sources completed (result, exception,
  cancellation) by racing threads while others register continuations;
- cancellation racing registration and disposal (K2), linked sources;
- the cyclic GC run from other threads while pool threads complete tasks
  and drop the last references (H3);
- the pool's first use from many threads at once, in a fresh interpreter
  (issue 9 item 8);
- timers: Task.delay from several threads (issue 9 item 1), Timer
  change/dispose racing its callbacks, CancellationTokenSource(delay).
- SemaphoreSlim and a SingleThreadSynchronizationContext fed from many
  threads.

ST_STRESS_SCALE (default 1) multiplies the rounds.
"""

from __future__ import annotations

import collections
import gc
import os
import threading
import time
import weakref

import pytest

import sharptask as st
from conftest import Recorder, observe, run_script

SCALE = max(1, int(os.environ.get("ST_STRESS_SCALE", "1")))
TCO = st.TaskContinuationOptions
RCA = st.TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY


def _run_threads(n, body, timeout=60):
    """Run body(i, barrier) in n threads started together; re-raise the
    first error; fail if one hangs."""
    barrier = threading.Barrier(n)
    errors = []

    def wrap(i):
        try:
            body(i, barrier)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "stress threads hung"
    if errors:
        raise errors[0]


def _exactly_once(items, expected):
    counts = collections.Counter(items)
    dup = {k: v for k, v in counts.items() if v != 1}
    missing = set(expected) - set(counts)
    extra = set(counts) - set(expected)
    assert not dup and not missing and not extra, (
        f"dup={list(dup.items())[:5]} missing={sorted(missing)[:5]} "
        f"extra={sorted(extra)[:5]}")


# ---------------------------------------------------------------- completion


@pytest.mark.timeout(120)
def test_tsan_T7_S2_mixed_completions_raced_with_registrations():
    """T7, S2 (issue 9 races: completion): per round, 16 sources (half with
    RUN_CONTINUATIONS_ASYNCHRONOUSLY); three threads race to complete each
    one (result / exception / cancellation) while two threads register
    continuations of every kind and start async methods awaiting them.
    Exactly one completion wins per source; every continuation runs once
    and sees the winner's outcome."""
    n_src = 16
    for rnd in range(8 * SCALE):
        sources = [st.TaskCompletionSource(None, RCA if k % 2 else 0)
                   for k in range(n_src)]
        rec = Recorder()
        wins = collections.defaultdict(list)
        wins_lock = threading.Lock()
        started = []
        started_lock = threading.Lock()

        @st.async_method
        async def waiter(k, tag):
            try:
                await sources[k].task
                rec.add(tag)
            except (ValueError, st.TaskCanceledError):
                rec.add(tag)

        def body(i, barrier):
            barrier.wait()
            if i < 3:  # completers
                for k in range(n_src):
                    src = sources[(k + i * 5) % n_src]
                    if i == 0:
                        ok = src.try_set_result(k)
                    elif i == 1:
                        ok = src.try_set_exception(ValueError(k))
                    else:
                        ok = src.try_set_canceled()
                    if ok:
                        with wins_lock:
                            wins[id(src)].append(i)
                return
            mine = []
            for k in range(n_src):
                task = sources[k].task
                tag = (i, k)
                kind = (k + i) % 3
                if kind == 0:
                    mine.append(task.continue_with(
                        lambda a, tag=tag: rec.add(tag)))
                elif kind == 1:
                    mine.append(task.continue_with(
                        lambda a, tag=tag: rec.add(tag),
                        options=TCO.EXECUTE_SYNCHRONOUSLY))
                else:
                    mine.append(waiter(k, tag))
            with started_lock:
                started.extend(mine)

        _run_threads(5, body)
        assert all(len(wins[id(s)]) == 1 for s in sources), (rnd, dict(wins))
        expected = [(i, k) for i in (3, 4) for k in range(n_src)]
        assert rec.wait_for(len(expected), 30), (rnd, len(rec))
        assert st.Task.wait_all(started, timeout=30)
        _exactly_once(rec.items, expected)
        observe(*(s.task for s in sources))


# -------------------------------------------------------------- cancellation


@pytest.mark.timeout(120)
def test_tsan_K2_cancel_races_register_and_dispose():
    """K2 (issue 9 races: cancellation racing registration and disposal):
    per round, two threads register callbacks (disposing every third one
    at once) while a third cancels.  A registration that was not disposed
    runs exactly once (by cancel, or at once when registered after it); a
    disposed one at most once; dispose() never returns while its callback
    runs elsewhere."""
    for rnd in range(40 * SCALE):
        cts = st.CancellationTokenSource()
        ran = collections.Counter()
        ran_lock = threading.Lock()
        kept, disposed = [], []
        lists_lock = threading.Lock()
        running = {}

        def cb(tag):
            running[tag] = True
            with ran_lock:
                ran[tag] += 1
            running[tag] = False

        def body(i, barrier):
            barrier.wait()
            if i == 2:
                cts.cancel()
                return
            for s in range(30):
                tag = (i, s)
                reg = cts.token.register(cb, tag)
                if s % 3 == 0:
                    reg.dispose()
                    # .NET: Dispose waits for a callback running elsewhere
                    assert not running.get(tag), tag
                    with lists_lock:
                        disposed.append(tag)
                else:
                    with lists_lock:
                        kept.append(tag)

        _run_threads(3, body)
        for tag in kept:
            assert ran[tag] == 1, (rnd, tag, ran[tag])
        for tag in disposed:
            assert ran[tag] <= 1, (rnd, tag, ran[tag])
        assert cts._registration_count == 0
        cts.dispose()


@pytest.mark.timeout(120)
def test_tsan_K1_linked_sources_and_dispose_race_cancel():
    """K1/K2 (issue 9 races): a linked source over two parents canceled by
    two threads at once is canceled once and runs its callback once; a
    third thread disposes another source while a fourth cancels it (either
    order is fine, neither may crash or hang)."""
    for rnd in range(60 * SCALE):
        a = st.CancellationTokenSource()
        b = st.CancellationTokenSource()
        linked = st.CancellationTokenSource.create_linked_token_source(
            a.token, b.token)
        hits = []
        linked.token.register(lambda: hits.append(1))
        victim = st.CancellationTokenSource()
        victim.token.register(lambda: None)

        def body(i, barrier):
            barrier.wait()
            if i == 0:
                a.cancel()
            elif i == 1:
                b.cancel()
            elif i == 2:
                victim.dispose()
            else:
                try:
                    victim.cancel()
                except st.ObjectDisposedError:
                    pass

        _run_threads(4, body)
        assert linked.is_cancellation_requested
        assert hits == [1], (rnd, hits)
        linked.dispose()
        a.dispose()
        b.dispose()


# ------------------------------------------------------------------------ GC


class _Node:
    """Cycle material: a node that refers to itself and to a task."""

    def __init__(self):
        self.me = self
        self.task = None


@pytest.mark.timeout(120)
def test_tsan_H3_gc_from_other_threads_while_tasks_complete():
    """H3 (issue 9 races: GC from other threads): async methods whose frames
    hold cycles through their own tasks are suspended on sources that pool
    items complete, while two other threads run gc.collect() in a loop.
    Every method completes with its value, and once dropped every cycle
    is collected."""
    stop = threading.Event()
    collections_done = [0, 0]

    def collector(i):
        while not stop.is_set():
            gc.collect()
            collections_done[i] += 1
            time.sleep(0.001)

    gcs = [threading.Thread(target=collector, args=(i,), daemon=True)
           for i in range(2)]
    for t in gcs:
        t.start()
    refs = []
    try:
        for rnd in range(10 * SCALE):
            sources = [st.TaskCompletionSource() for _ in range(40)]

            @st.async_method
            async def method(k):
                node = _Node()
                refs.append(weakref.ref(node))
                node.task = sources[k].task
                v = await sources[k].task
                await st.Task.yield_()
                return (v, node.me is node)

            tasks = [method(k) for k in range(len(sources))]
            items = [st.Task.run(lambda s=s, k=k: s.set_result(k))
                     for k, s in enumerate(sources)]
            assert st.Task.wait_all(items, timeout=30)
            assert st.Task.wait_all(tasks, timeout=30)
            assert [t.result for t in tasks] == [
                (k, True) for k in range(len(sources))]
            del tasks, items, sources, method
    finally:
        stop.set()
        for t in gcs:
            t.join(10)
    assert all(n > 0 for n in collections_done)

    def all_collected():
        gc.collect()
        return all(r() is None for r in refs)

    deadline = time.monotonic() + 10
    while not all_collected() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all_collected(), sum(r() is not None for r in refs)


# ------------------------------------------------------------ pool first use


_FIRST_USE = r"""
import os, threading, time, sharptask as st
n = 8
barrier = threading.Barrier(n)
idents = []
def body():
    barrier.wait()
    idents.append(st.Task.run(lambda: threading.get_ident()).result)
threads = [threading.Thread(target=body) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
assert len(idents) == n, idents
workers = st._native._pool_stats()["thread_count"]
# the joined threads' OS threads end a moment after join() returns
for _ in range(300):
    os_threads = len(os.listdir("/proc/self/task"))
    if os_threads <= 1 + workers + 2:
        break
    time.sleep(0.01)
print(os_threads, workers)
"""


@pytest.mark.timeout(180)
def test_tsan_P1_pool_first_use_from_many_threads_creates_one_pool():
    """P1, issue 9 item 8 (races: pool first use): in a fresh interpreter,
    8 threads make their first Task.run at the same moment.  One pool is
    created: the OS threads left are the main thread, the pool's workers
    and at most two helpers (the pool's gate thread and, under TSan, the
    sanitizer's background thread), never the 13-25 of several pools
    (each pool has its workers and its gate)."""
    for _ in range(3 * SCALE):
        r = run_script(_FIRST_USE, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        os_threads, workers = map(int, r.stdout.split())
        assert os_threads <= 1 + workers + 2, (os_threads, workers)


# -------------------------------------------------------------------- timers


@pytest.mark.timeout(120)
def test_tsan_P5_delays_from_many_threads():
    """P5, issue 9 item 1 (races: timers): three threads each start bursts of
    short Task.delay (the timer thread submits them to the pool without
    the GIL; workers run and free them) and wait for them; every delay
    completes."""
    def body(i, barrier):
        barrier.wait()
        for _ in range(25 * SCALE):
            ds = [st.Task.delay(0.0002) for _ in range(8)]
            assert st.Task.wait_all(ds, timeout=30)
            assert all(d.is_completed_successfully for d in ds)

    _run_threads(3, body)


@pytest.mark.timeout(120)
def test_tsan_P5_timer_change_and_dispose_race_callbacks():
    """P5 (issue 9 races: timers): periodic timers firing every millisecond
    are changed and disposed by other threads while their callbacks run;
    no callback runs after dispose() has returned and its callbacks have
    drained, and CancellationTokenSource(delay) races an explicit cancel."""
    for rnd in range(5 * SCALE):
        counts = collections.Counter()
        lock = threading.Lock()
        disposed = set()
        late = []

        def tick(k):
            with lock:
                counts[k] += 1
                if k in disposed:
                    late.append(k)

        timers = [st.Timer(tick, k, 0.001, 0.001) for k in range(6)]
        sources = [st.CancellationTokenSource(0.002) for _ in range(20)]

        def body(i, barrier):
            barrier.wait()
            if i == 0:
                for k, t in enumerate(timers):
                    try:
                        t.change(0.0005, 0.0005)
                    except st.ObjectDisposedError:
                        pass  # lost the race with dispose(): allowed
                    time.sleep(0.002)
            elif i == 1:
                time.sleep(0.01)
                for k, t in enumerate(timers):
                    t.dispose()
            else:
                for s in sources:
                    s.cancel()

        _run_threads(3, body)
        time.sleep(0.05)  # a callback already queued may still run once
        with lock:
            disposed.update(range(len(timers)))
            late.clear()
        time.sleep(0.05)
        with lock:
            assert late == [], late
        assert all(s.is_cancellation_requested for s in sources)
        for s in sources:
            s.dispose()


# ------------------------------------------------- semaphore and the context


@pytest.mark.timeout(120)
def test_tsan_K4_semaphore_from_threads_and_async_methods():
    """K4 (issue 9 races): a SemaphoreSlim(2) taken and released by three
    threads (wait/release) and by async methods on the pool (wait_async /
    release) at once: never more than two holders, and the count is back
    to 2 at the end."""
    sem = st.SemaphoreSlim(2, 2)
    inside = [0]
    peak = [0]
    lock = threading.Lock()

    def enter():
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])

    def leave():
        with lock:
            inside[0] -= 1

    @st.async_method
    async def holder():
        for _ in range(20 * SCALE):
            await sem.wait_async()
            enter()
            await st.Task.yield_()
            leave()
            sem.release()

    def body(i, barrier):
        barrier.wait()
        if i == 0:
            tasks = [st.Task.run(holder) for _ in range(4)]
            assert st.Task.wait_all(tasks, timeout=60)
            return
        for _ in range(60 * SCALE):
            assert sem.wait(30)
            enter()
            leave()
            sem.release()

    _run_threads(4, body)
    assert peak[0] <= 2
    assert sem.current_count == 2


@pytest.mark.timeout(120)
def test_tsan_C8_context_posted_from_many_threads_while_pumping():
    """C8 (issue 9 races): a SingleThreadSynchronizationContext pumped by
    one thread receives posts from four threads and async-method
    resumptions completed by pool items, all at once; every callback runs
    exactly once, on the pumping thread, in each producer's order."""
    ctx = st.SingleThreadSynchronizationContext()
    seen = []
    per = 100 * SCALE

    @st.async_method
    async def main():
        pump_ident = threading.get_ident()
        sources = [st.TaskCompletionSource() for _ in range(50)]
        posters_done = Recorder()

        def poster(i):
            for s in range(per):
                ctx.post(lambda tag: seen.append(
                    (tag, threading.get_ident() == pump_ident)), (i, s))
            posters_done.add(i)

        threads = [threading.Thread(target=poster, args=(i,), daemon=True)
                   for i in range(4)]
        for t in threads:
            t.start()
        for k, s in enumerate(sources):
            st.Task.run(lambda s=s, k=k: s.set_result(k))
        total = 0
        for s in sources:
            total += await s.task  # resumes on the context
            assert threading.get_ident() == pump_ident
        while len(posters_done) < 4:
            await st.Task.delay(0.001)
        for t in threads:
            t.join(10)
        await st.Task.yield_()  # let the last posts run
        return total

    out = []
    runner = threading.Thread(target=lambda: out.append(ctx.run(main)),
                              daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive()
    assert out == [sum(range(50))]
    # posts queued before run() returned all ran, on the pumping thread
    deadline = time.monotonic() + 10
    while len(seen) < 4 * per and time.monotonic() < deadline:
        time.sleep(0.01)
    tags = [tag for tag, on_pump in seen]
    assert all(on_pump for tag, on_pump in seen)
    _exactly_once(tags, [(i, s) for i in range(4) for s in range(per)])
    for i in range(4):
        mine = [s for (j, s) in tags if j == i]
        assert mine == sorted(mine), f"producer {i} out of order"
