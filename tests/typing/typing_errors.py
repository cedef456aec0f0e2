"""Wrong uses of sharptask that a type checker must report (SPEC §0,
issue 14).

Each line marked ``# E: code`` must get a mypy error with that error code,
and no other line any error (tests/python/test_typing.py).  This file is
never run.
"""
from __future__ import annotations

import sharptask as st
from sharptask import SemaphoreSlim, Task, TaskCompletionSource, ValueTask


@st.async_method
async def fetch(n: int, *, label: str = "x") -> str:
    return f"{label}{n}"


@st.async_value_method
async def cached(key: str) -> int:
    return len(key)


@st.async_value_method(pooling=True)
async def pooled(key: str) -> bytes:
    return key.encode()


@st.async_void
async def on_click(times: int) -> None:
    pass


class Service:
    @st.async_method
    async def add(self, n: int) -> int:
        return n


# the decorators keep the parameters ...
fetch("1")  # E: arg-type
fetch(1, 2)  # E: call-arg, arg-type
fetch(1, lbl="y")  # E: call-arg
cached(1)  # E: arg-type
pooled()  # E: call-arg
on_click("twice")  # E: arg-type
Service().add("1")  # E: arg-type

# ... and the result type
wrong_result: Task[int] = fetch(1)  # E: assignment
wrong_value: ValueTask[str] = cached("k")  # E: assignment
nothing: int = on_click(1)  # E: assignment
fetch(1).result.bit_length()  # E: attr-defined


async def awaits() -> None:
    number: int = await fetch(1)  # E: assignment


# a decorator on a plain def is a mistake the checker sees
@st.async_method  # E: arg-type
def not_async(n: int) -> int:
    return n


# the generics carry the result
Task.from_result(1).result + "s"  # E: operator
tcs: TaskCompletionSource[int] = TaskCompletionSource()
tcs.set_result("s")  # E: arg-type
ValueTask(1).result.upper()  # E: attr-defined

# arguments of the library itself
Task.delay("1")  # E: arg-type
SemaphoreSlim("1")  # E: arg-type
st.set_deadlock_detection("loud")  # E: arg-type
st.no_such_name  # E: attr-defined
