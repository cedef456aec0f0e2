"""What a type checker sees of sharptask (SPEC §0, issue 14).

tests/python/test_typing.py runs mypy on this file (every assert_type must
hold, no error anywhere) and then runs it: the types asserted here are the
values the code really produces.
"""
from __future__ import annotations

import datetime
from typing import Any, Callable, assert_type

import sharptask as st
from sharptask import (CancellationToken, CancellationTokenSource,
                       SemaphoreSlim, Task, TaskCompletionSource, ValueTask)

# ---- the decorators keep the signature and carry the result (SPEC §0)


@st.async_method
async def fetch(n: int, *, label: str = "x") -> str:
    await Task.delay(0)
    return f"{label}{n}"


@st.async_value_method
async def cached(key: str) -> int:
    return len(key)


@st.async_value_method(pooling=True)
async def pooled(key: str) -> bytes:
    return key.encode()


@st.async_void
async def on_click(times: int) -> None:
    await Task.yield_()


assert_type(fetch(1), Task[str])
assert_type(fetch(1, label="y"), Task[str])
assert_type(cached("abc"), ValueTask[int])
assert_type(pooled("abc"), ValueTask[bytes])
assert_type(on_click(2), None)


@st.async_method
async def add(a: int, b: int) -> int:
    return a + b


# To the checker the decorated function is a callable of the function's
# parameters (at run time an AsyncMethod / AsyncValueMethod).
as_callable: Callable[[int, int], Task[int]] = add
as_value_callable: Callable[[str], ValueTask[int]] = cached


def _runtime_types() -> None:
    assert isinstance(add, st.AsyncMethod)
    assert isinstance(cached, st.AsyncValueMethod)
    assert isinstance(pooled, st.AsyncValueMethod)


class Service:
    """The decorators on methods, static and class methods."""

    def __init__(self) -> None:
        self.base = 10

    @st.async_method
    async def add(self, n: int) -> int:
        return self.base + n

    @st.async_value_method
    async def peek(self, n: int) -> float:
        return n / 2

    @staticmethod
    @st.async_method
    async def version() -> str:
        return "1"

    @classmethod  # outermost, for the checker (the runtime takes both)
    @st.async_method
    async def create(cls, base: int) -> Service:
        s = cls()
        s.base = base
        return s

    @st.async_void
    async def fire(self, n: int) -> None:
        await Task.yield_()


svc = Service()
assert_type(svc.add(1), Task[int])
assert_type(svc.peek(3), ValueTask[float])
assert_type(Service.version(), Task[str])
assert_type(Service.create(5), Task[Service])
assert_type(svc.fire(1), None)


async def awaits_them() -> None:
    text = await fetch(2)
    assert_type(text, str)
    number = await cached("k")
    assert_type(number, int)
    configured = await fetch(3).configure_await(False)
    assert_type(configured, str)
    svc2 = await Service.create(1)
    assert_type(svc2, Service)


# ---- Task, ValueTask and TaskCompletionSource are generic

assert_type(Task.from_result(3), Task[int])
assert_type(Task.from_result(3).result, int)
assert_type(Task.completed_task, Task[None])
assert_type(Task.run(lambda: 2.5), Task[float])
assert_type(Task.run(fetch, 4), Task[str])       # a coroutine: unwrapped
assert_type(Task.run(svc.add, 4), Task[int])     # a Task: unwrapped
assert_type(Task.when_all(fetch(1), fetch(2)), Task[list[str]])
assert_type(Task.when_any([fetch(1), fetch(2)]), Task[Task[str]])
assert_type(Task.delay(datetime.timedelta(milliseconds=1)), Task[None])
assert_type(fetch(1).continue_with(lambda t: len(t.result)), Task[int])
assert_type(fetch(1).get_awaiter().get_result(), str)
assert_type(Task.from_result(Task.from_result(1)).unwrap(), Task[int])
assert_type(fetch(1).wait_async(1.0), Task[str])
assert_type(Task.current_id(), int | None)

tcs: TaskCompletionSource[int] = TaskCompletionSource()
assert_type(tcs.task, Task[int])
tcs.set_result(7)
assert_type(tcs.task.result, int)
done: TaskCompletionSource[None] = TaskCompletionSource()
done.set_result()

assert_type(ValueTask(5), ValueTask[int])
assert_type(ValueTask(), ValueTask[None])
assert_type(ValueTask(Task.from_result("s")), ValueTask[str])
assert_type(ValueTask(result=1.5).result, float)
assert_type(cached("k").as_task(), Task[int])
assert_type(ValueTask.from_result(b"x"), ValueTask[bytes])

# ---- run(), contexts, cancellation, the semaphore, timers

assert_type(st.run(fetch(5)), str)
assert_type(st.run(fetch, 6), str)
assert_type(st.run(svc.add, 1), int)

ui = st.SingleThreadSynchronizationContext()
assert_type(ui.run(fetch, 7), str)
assert_type(st.SynchronizationContext.current(), st.SynchronizationContext
            | None)
mode: str = st.get_deadlock_detection()
previous_mode = st.set_deadlock_detection("raise")

cts = CancellationTokenSource()
assert_type(cts.token, CancellationToken)
registration = cts.token.register(lambda: None)
registration.dispose()
cts.dispose()

sem = SemaphoreSlim(1)
with sem as entered:
    assert_type(entered, bool)


async def uses_the_lock() -> int:
    async with sem as got:
        assert_type(got, bool)
    return sem.current_count


assert_type(st.run(uses_the_lock()), int)

on_tick: Callable[[Any], object] = lambda state: None
with st.Timer(on_tick, None, -1, -1) as timer:
    assert_type(timer.change(None, None), bool)

# ---- every public name is known to the checker

for _name in st.__all__:
    assert hasattr(st, _name), _name

if __name__ == "__main__":
    _runtime_types()
    st.run(awaits_them())
    print("typing_ok: ran")
