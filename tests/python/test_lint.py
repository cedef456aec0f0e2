"""SPEC D5 (issue 13): the analyzer, `python -m sharptask lint` and the
flake8 plugin.

Per rule: cases that must be flagged and near misses that must not, in the
manner of the .NET analyzers' tests (vs-threading's VSTHRD002/100/110 tests
mark the expected span with `[|...|]`) and of flake8-async's eval files.
Here `[|name|]` marks where a finding of the test's rule must point (line
and 1-based column of the marked text), `[ST004|name|]` one of another
rule; the markers are removed before checking, and the findings must be
exactly the marked ones, no more.  Then the command line (exit codes,
JSON, noqa, unparsable files), flake8 (`flake8 --select ST` gives the same
findings as the command line), the package's own demos and examples, and
the examples of docs/lint.md.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import tokenize

import pytest

from sharptask._lint import RULES, check_source
from sharptask._lint._checker import check_tree

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PACKAGE_SRC = os.path.join(REPO, "python", "sharptask")
DOC = os.path.join(REPO, "docs", "lint.md")
HAS_FLAKE8 = importlib.util.find_spec("flake8") is not None
# tools/check-py-asan.sh copies only the code (not README.md and docs/)
needs_docs = pytest.mark.skipif(
    not os.path.isfile(DOC), reason="docs/ is not in this copy of the tree "
                                    "(the ASan run copies only the code)")
needs_flake8 = pytest.mark.skipif(
    not HAS_FLAKE8, reason="flake8 is not installed (make venv installs it; "
                           "CI always has it)")

_MARK = re.compile(r"\[(ST\d{3})?\|(.*?)\|\]")


def marked(src, code):
    """Remove the markers; return the source and the expected findings as
    sorted (line, col, code)."""
    src = textwrap.dedent(src).lstrip("\n")
    lines, expected = [], []
    for lineno, line in enumerate(src.split("\n"), 1):
        m = _MARK.search(line)
        while m:
            expected.append((lineno, m.start() + 1, m.group(1) or code))
            line = line[:m.start()] + m.group(2) + line[m.end():]
            m = _MARK.search(line)
        lines.append(line)
    return "\n".join(lines), sorted(expected)


def lint(src, library=False):
    return sorted((f.line, f.col, f.code)
                  for f in check_source(src, "case.py", library=library))


def check(src, code, library=False):
    source, expected = marked(src, code)
    assert lint(source, library) == expected, source


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sharptask", "lint", *args],
                          capture_output=True, text=True, timeout=60,
                          cwd=cwd)


# ------------------------------------------------------------------ ST001

ST001_FLAGGED = {
    "result_of_call": """
        import sharptask as st

        @st.async_method
        async def get_json_async(uri):
            return "{}"

        @st.async_method
        async def handler(uri):
            return get_json_async(uri).[|result|]
        """,
    "result_of_parameter": """
        from sharptask import async_method

        @async_method
        async def f(task):
            x = 1
            return task.[|result|] + x
        """,
    "wait_and_timeout": """
        import sharptask

        async def f(t, u):
            t.[|wait|]()
            u.[|wait|](timeout=5)
        """,
    "get_awaiter_get_result": """
        import sharptask as st

        async def f():
            return st.Task.run(int).get_awaiter().[|get_result|]()
        """,
    "wait_all_wait_any_aliased": """
        from sharptask import Task as T
        import sharptask as st

        async def f(a, b):
            T.[|wait_all|](a, b)
            return st.Task.[|wait_any|]([a, b])
        """,
    "time_sleep_every_spelling": """
        import time
        import time as clock
        from time import sleep
        import sharptask

        async def f():
            time.[|sleep|](1)
            clock.[|sleep|](1)
            [|sleep|](0.5)
        """,
    "in_comprehension_and_nested_async_def": """
        import sharptask as st

        def outer(tasks):
            async def inner():
                return [t.[|result|] for t in tasks]
            return inner
        """,
    "method_attribute_chain": """
        import sharptask as st

        class Client:
            @st.async_method
            async def refresh_async(self):
                return self.pending.[|result|]
        """,
    "not_all_awaited_by_when_all": """
        from sharptask import Task

        async def f(a, b, c):
            await Task.when_all(a, b)
            return a.result + b.result + c.[|result|]
        """,
    "reused_after_await": """
        from sharptask import Task

        async def f(work):
            t = Task.run(work)
            await t
            first = t.result
            t = Task.run(work)
            return first + t.[|result|]
        """,
    "elements_of_a_collection_not_awaited": """
        from sharptask import Task

        async def f(tasks, others):
            await Task.when_any(tasks)
            for t in tasks:
                t.[|wait|]()
            await Task.when_all(others)
            others = list(tasks)
            return [t.[|result|] for t in others]
        """,
    "awaited_on_one_branch_only": """
        import sharptask

        async def f(t, fast):
            if fast:
                await t
            return t.[|result|]
        """,
    "local_import_in_function": """
        async def f(t):
            import sharptask as st
            st.Task.[|wait_all|](t)
        """,
    "concurrent_futures_result": """
        import concurrent.futures
        from concurrent.futures import ThreadPoolExecutor
        import asyncio
        import sharptask as st

        async def f(task, coro, loop, work):
            pool = concurrent.futures.ThreadPoolExecutor(2)
            fut = pool.submit(work)
            a = fut.[|result|]()
            with ThreadPoolExecutor() as ex:
                b = ex.submit(work).[|result|]()
            c = task.as_future().[|result|](timeout=1)
            d = asyncio.run_coroutine_threadsafe(coro, loop).[|result|]()
            concurrent.futures.[|wait|]([fut])
            return a, b, c, d
        """,
    "star_import": """
        from sharptask import *

        async def f(a):
            Task.[|wait_all|](a)
        """,
    "alias_assignment": """
        import sharptask as st

        T = st.Task

        async def f(a):
            T.[|wait_any|](a)
        """,
}

ST001_NOT_FLAGGED = {
    "sync_def_and_module_level": """
        import time
        import sharptask as st

        def f(t):
            time.sleep(1)
            t.wait()
            return t.result

        x = st.Task.run(int).result
        """,
    "lambda_and_nested_def_are_continuations": """
        import sharptask as st

        async def f(t):
            t2 = t.continue_with(lambda done: done.result)
            def later(done):
                return done.result + done.get_awaiter().get_result()
            return await t2
        """,
    "named_continuation_of_continue_with": """
        import sharptask as st

        async def on_done(antecedent, extra=None):
            return antecedent.result

        def f(t):
            return t.continue_with(on_done)
        """,
    "after_await_and_when_all": """
        import sharptask as st
        from sharptask import Task

        async def f(a, b, c, d):
            await a
            x = a.result
            await Task.when_all(b, c)
            await st.Task.when_all([d])
            return x + b.result + c.result + d.result + a.wait()
        """,
    "known_complete_values": """
        import sharptask as st
        from sharptask import Task

        async def f(tasks, a, b):
            await Task.when_all(tasks)
            total = sum(t.result for t in tasks)
            for t in tasks:
                total += t.result
            winner = await Task.when_any(a, b)
            response = await st.Task.run(dict)
            total += response.result
            done = Task.from_result(1)
            same = done
            return (total + winner.result + done.result + same.result
                    + st.Task.completed_task.result
                    + Task.from_result(2).result)
        """,
    "inside_is_completed": """
        import sharptask

        async def f(t, u):
            if t.is_completed:
                return t.result
            if not u.is_completed_successfully:
                await u
            if t.is_faulted and u.is_canceled:
                return t.result, u.wait()
            return u.result
        """,
    "asyncio_and_other_libraries": """
        import asyncio
        import threading
        import sharptask

        async def f(coro):
            task = asyncio.create_task(coro)
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            event = asyncio.Event()
            await event.wait()
            await asyncio.wait_for(event.wait(), 1)
            asyncio.ensure_future(event.wait())
            done, _ = await asyncio.wait([task])
            threading.Event().wait(0)
            return task.result(), fut.result, task.result
        """,
    "awaited_or_handed_over_wait_of_unknown_event": """
        import asyncio
        import sharptask

        async def f(self, event, cond, tg):
            await event.wait()
            await asyncio.wait_for(cond.wait(), 1)
            asyncio.ensure_future(event.wait())
            self.loop.create_task(event.wait())
            tg.create_task(cond.wait())
        """,
    "result_call_of_unknown_future": """
        import sharptask

        async def f(fut):
            return fut.result() + fut.done()
        """,
    "self_members_await_and_stores": """
        import sharptask

        class Job:
            async def run_async(self, get):
                self.result = 1
                self.wait()
                value = (await get()).result
                return self.result + value
        """,
    "shadowed_names": """
        import sharptask
        from sharptask import Task

        async def f(time, Task):
            time.sleep(1)
            Task.wait_all()

        async def g():
            from mylib import Task
            Task.wait_any(1)
        """,
    "other_librarys_task_and_sleep": """
        from mylib import Task
        from asyncio import sleep
        import sharptask

        async def f():
            Task.wait_all(1)
            await sleep(1)
        """,
    "module_attributes_of_another_library": """
        import mylib
        from mylib import job
        import sharptask

        async def f():
            mylib.wait()
            return job.result + mylib.state.result
        """,
    "wait_async_is_not_wait": """
        import sharptask as st

        async def f(sem, t):
            await sem.wait_async()
            await t.wait_async(1.0)
        """,
    "file_without_sharptask": """
        import time

        async def f(t):
            time.sleep(1)
            t.wait()
            return t.result
        """,
    "class_scope_name_not_seen_by_method": """
        class C:
            from sharptask import Task
            async def m(self, Task=None):
                pass
            async def n(self):
                Task.wait_all()
        """,
}


@pytest.mark.parametrize("src", ST001_FLAGGED.values(), ids=ST001_FLAGGED)
def test_st001_flagged(src):
    """D5 ST001 (VSTHRD002): blocking waits inside an async def."""
    check(src, "ST001")


@pytest.mark.parametrize("src", ST001_NOT_FLAGGED.values(),
                         ids=ST001_NOT_FLAGGED)
def test_st001_near_misses(src):
    """D5 ST001: waits that do not block, or are not sharptask's."""
    check(src, "ST001")


def test_st001_exact_position_and_message():
    """D5 ST001: line and column of the member's name; the message says
    what is wrong, the .NET rule and the fix."""
    src = ("import sharptask as st\n"
           "\n"
           "async def f(t):\n"
           "    return t.result\n")
    (f,) = check_source(src, "x.py", library=False)
    assert (f.line, f.col, f.code) == (4, 14, "ST001")
    assert "VSTHRD002" in f.message and " — " in f.message
    assert "blocks" in f.message and "await" in f.message.split(" — ")[1]


def test_st001_columns_count_characters():
    """D5 ST001: a column is in characters, not UTF-8 bytes (ast's)."""
    src = ("import sharptask\n"
           "async def f(t):\n"
           "    s = 'µµµ'; return t.result\n")
    (f,) = check_source(src, "x.py", library=False)
    assert (f.line, f.col) == (3, 25)
    assert src.splitlines()[2][f.col - 1:].startswith("result")


# ------------------------------------------------------------------ ST002

ST002_FLAGGED = {
    "no_parameters": """
        import sharptask as st

        @st.async_void
        async def [|on_click|]():
            await st.Task.delay(0)
        """,
    "one_parameter_aliased_decorator": """
        from sharptask import async_void as av

        @av
        async def [|handler|](sender):
            pass
        """,
    "wrong_names_or_extra": """
        from sharptask import async_void

        @async_void
        async def [|a|](s, e):
            pass

        @async_void
        async def [|b|](sender, e, extra):
            pass

        @async_void
        async def [|c|](sender, *, e):
            pass

        @async_void
        async def [|d|](sender, e, *rest):
            pass

        @async_void
        async def [|g|](sender, event):
            pass
        """,
    "method_without_event_args": """
        import sharptask

        class Window:
            @sharptask.async_void
            async def [|save|](self, path):
                pass

            @staticmethod
            @sharptask.async_void
            async def [|reload|](sender):
                pass
        """,
    "star_import": """
        from sharptask import *

        @async_void
        async def [|refresh|](n):
            pass
        """,
}

ST002_NOT_FLAGGED = {
    "event_handlers": """
        import sharptask as st

        @st.async_void
        async def on_click(sender, e):
            pass

        @st.async_void
        async def on_load(sender, args):
            pass

        class Window:
            @st.async_void
            async def on_save(self, sender, event_args):
                pass

            @classmethod
            @st.async_void
            async def on_close(cls, sender, e):
                pass
        """,
    "other_decorators_and_libraries": """
        import sharptask as st
        from mylib import async_void

        @st.async_method
        async def save(path):
            pass

        @async_void
        async def refresh(n):
            pass

        async def plain(n):
            pass

        handler = st.async_void(plain)
        """,
}


@pytest.mark.parametrize("src", ST002_FLAGGED.values(), ids=ST002_FLAGGED)
def test_st002_flagged(src):
    """D5 ST002 (VSTHRD100): @async_void on what is not an event handler;
    reported at the function's name, as VSTHRD100 does."""
    check(src, "ST002")


@pytest.mark.parametrize("src", ST002_NOT_FLAGGED.values(),
                         ids=ST002_NOT_FLAGGED)
def test_st002_near_misses(src):
    """D5 ST002: event handlers (sender, e|args|event_args after self)."""
    check(src, "ST002")


# ------------------------------------------------------------------ ST003

ST003_FLAGGED = {
    "task_factories": """
        import sharptask as st
        from sharptask import Task as T

        def f(a, b, work):
            st.Task.[|run|](work)
            T.[|delay|](1)
            st.Task.factory.[|start_new|](work)
            T.[|when_all|](a, b)
            st.Task.[|when_any|](a, b)
        """,
    "module_level_and_async_def": """
        from sharptask import Task

        Task.[|run|](print)

        async def f():
            Task.[|delay|](1)
        """,
    "decorated_functions": """
        import sharptask as st
        from sharptask import async_method as am

        @st.async_method
        async def save_async():
            pass

        @st.async_value_method(pooling=True)
        async def read_async():
            pass

        @am
        async def load_async():
            pass

        def f():
            [|save_async|]()
            [|read_async|]()
            [|load_async|]()
        """,
    "nested_decorated_function": """
        import sharptask as st

        def demo():
            @st.async_method
            async def work():
                pass

            [|work|]()
        """,
    "methods_on_self_and_class": """
        import sharptask as st

        class Base:
            @st.async_method
            async def save_async(self):
                pass

            @staticmethod
            @st.async_method
            async def ping_async():
                pass

        class Service(Base):
            @st.async_value_method
            async def read_async(self):
                pass

            def close(self):
                self.[|save_async|]()
                self.[|read_async|]()
                Service.[|read_async|](self)
                Base.[|ping_async|]()

                def callback():
                    self.[|save_async|]()
                return callback
        """,
}

ST003_NOT_FLAGGED = {
    "value_used": """
        import sharptask as st

        @st.async_method
        async def save_async():
            pass

        async def f(tasks, work, g):
            _ = st.Task.run(work)
            t = st.Task.run(work)
            await st.Task.delay(1)
            tasks.append(save_async())
            g(save_async())
            x = [save_async() for _ in range(3)]
            return st.Task.when_all(t)
        """,
    "not_a_task": """
        import asyncio
        import sharptask as st

        @st.async_void
        async def on_click(sender, e):
            pass

        def plain():
            pass

        async def coro():
            pass

        def f(t, obj):
            on_click(None, None)
            plain()
            st.Task.from_result(1)
            t.continue_with(print)
            asyncio.ensure_future(coro())
            obj.save_async()
        """,
    "shadowed_or_foreign": """
        import sharptask as st
        from mylib import Task

        @st.async_method
        async def save_async():
            pass

        def f(save_async):
            save_async()
            Task.run(print)

        def g():
            save_async = print
            save_async()
        """,
    "self_without_decorated_method": """
        import sharptask as st

        class Service:
            async def plain_async(self):
                pass

            def stop(self):
                self.plain_async
                self.unknown_async()
        """,
}


@pytest.mark.parametrize("src", ST003_FLAGGED.values(), ids=ST003_FLAGGED)
def test_st003_flagged(src):
    """D5 ST003 (VSTHRD110): a dropped Task, at the called name."""
    check(src, "ST003")


@pytest.mark.parametrize("src", ST003_NOT_FLAGGED.values(),
                         ids=ST003_NOT_FLAGGED)
def test_st003_near_misses(src):
    """D5 ST003: assigned (`_ =` included), awaited, passed on, or not a
    Task."""
    check(src, "ST003")


# ------------------------------------------------------------------ ST004

ST004_FLAGGED = {
    "awaited_twice": """
        import sharptask as st

        @st.async_value_method(pooling=True)
        async def read_async():
            pass

        @st.async_method
        async def f():
            vt = read_async()
            a = await vt
            b = await [|vt|]
            return a, b, await [|vt|]
        """,
    "result_twice_in_sync_def": """
        from sharptask import ValueTask

        def f(t):
            vt = ValueTask(t)
            return vt.result, [|vt|].result
        """,
    "await_then_result_is_st001_too": """
        import sharptask as st

        @st.async_value_method
        async def read_async():
            pass

        async def f():
            vt = read_async()
            await vt.configure_await(False)
            return [|vt|].[ST001|result|]
        """,
    "get_result_after_await": """
        import sharptask as st

        async def f(t):
            vt = st.ValueTask(t)
            await vt
            [|vt|].get_awaiter().[ST001|get_result|]()
        """,
    "in_a_loop": """
        import sharptask as st

        @st.async_value_method
        async def read_async():
            pass

        async def f(n):
            vt = read_async()
            for _ in range(n):
                await [|vt|]
        """,
    "method_on_self_and_walrus": """
        import sharptask as st

        class Reader:
            @st.async_value_method(pooling=True)
            async def read_async(self):
                pass

            async def twice(self):
                vt = self.read_async()
                await vt
                await [|vt|]
                if (other := self.read_async()) is not None:
                    await other
                return await [|other|]
        """,
    "after_the_if": """
        import sharptask as st

        @st.async_value_method
        async def read_async():
            pass

        async def f(c):
            vt = read_async()
            if c:
                await vt
            else:
                await vt
            await [|vt|]
        """,
}

ST004_NOT_FLAGGED = {
    "once_per_path": """
        import sharptask as st

        @st.async_value_method
        async def read_async():
            pass

        async def f(c):
            vt = read_async()
            if c:
                return await vt
            return await vt
        """,
    "rebound_between": """
        import sharptask as st

        @st.async_value_method
        async def read_async():
            pass

        async def f(keys):
            vt = read_async()
            await vt
            vt = read_async()
            await vt
            for k in keys:
                vt = read_async()
                await vt
        """,
    "preserved_as_task_or_a_task": """
        import sharptask as st

        @st.async_value_method
        async def read_async():
            pass

        @st.async_method
        async def load_async():
            pass

        async def f():
            p = read_async().preserve()
            t = read_async().as_task()
            u = load_async()
            await p; await p; await t; await t; await u
            return u.result
        """,
    "one_consumption_and_inspection": """
        import sharptask as st

        @st.async_value_method
        async def read_async():
            pass

        async def f(g):
            vt = read_async()
            if not vt.is_completed:
                g(vt.is_faulted)
            return await vt
        """,
    "other_librarys_value_task": """
        from mylib import ValueTask
        import sharptask

        async def f():
            vt = ValueTask()
            await vt
            await vt
        """,
    "closure_is_another_function": """
        import sharptask as st

        @st.async_value_method
        async def read_async():
            pass

        async def f():
            vt = read_async()
            async def inner():
                return await vt
            return await vt
        """,
}


@pytest.mark.parametrize("src", ST004_FLAGGED.values(), ids=ST004_FLAGGED)
def test_st004_flagged(src):
    """D5 ST004 (CA2012): the second consumption of a ValueTask, and each
    later one (a `.result` in an async def is ST001 as well)."""
    check(src, "ST004")


@pytest.mark.parametrize("src", ST004_NOT_FLAGGED.values(),
                         ids=ST004_NOT_FLAGGED)
def test_st004_near_misses(src):
    """D5 ST004: one consumption per path, rebinding, preserve()."""
    check(src, "ST004")


# ------------------------------------------------------------------ ST005

ST005_FLAGGED = {
    "plain_awaits": """
        import sharptask as st

        @st.async_method
        async def load_async():
            pass

        @st.async_method
        async def f(gate, t):
            [|await|] st.Task.delay(1)
            x = [|await|] load_async()
            y = [|await|] gate.task
            z = [|await|] t.configure_await(True)
            o = st.ConfigureAwaitOptions
            w = [|await|] t.configure_await(
                o.CONTINUE_ON_CAPTURED_CONTEXT | o.FORCE_YIELDING)
            return x, y, z, w
        """,
}

ST005_NOT_FLAGGED = {
    "configured": """
        import sharptask as st
        from sharptask import ConfigureAwaitOptions as O

        @st.async_method
        async def f(t, vt):
            await st.Task.delay(1).configure_await(False)
            await vt.configure_await(continue_on_captured_context=False)
            await t.configure_await(O.NONE)
            await t.configure_await(O.FORCE_YIELDING | O.SUPPRESS_THROWING)
        """,
    "exempt_awaits": """
        import asyncio
        import sharptask as st

        async def helper():
            await asyncio.sleep(0)

        class C:
            async def plain(self):
                pass

            @st.async_method
            async def f(self, lock, stream):
                await st.Task.yield_()
                await asyncio.sleep(1)
                await helper()
                await self.plain()
                async with lock:
                    pass
                async for _ in stream:
                    pass
        """,
}


@pytest.mark.parametrize("src", ST005_FLAGGED.values(), ids=ST005_FLAGGED)
def test_st005_flagged_in_library_mode(src):
    """D5 ST005 (CA2007): awaits that capture the context, library code."""
    check(src, "ST005", library=True)


@pytest.mark.parametrize("src", ST005_NOT_FLAGGED.values(),
                         ids=ST005_NOT_FLAGGED)
def test_st005_near_misses(src):
    """D5 ST005: configure_await(False) and its equivalents; awaits with
    nothing to configure."""
    check(src, "ST005", library=True)


def test_st005_off_unless_library():
    """D5 ST005: off by default."""
    source, expected = marked(ST005_FLAGGED["plain_awaits"], "ST005")
    assert expected and lint(source, library=False) == []


# ------------------------------------------------------------------ ST006

ST006_FLAGGED = {
    "asyncio_run_and_run_until_complete": """
        import asyncio
        from asyncio import run
        import sharptask as st

        @st.async_method
        async def f(coro, loop):
            asyncio.[|run|](coro)
            [|run|](coro)
            loop.[|run_until_complete|](coro)
            asyncio.get_event_loop().[|run_until_complete|](coro)
        """,
}

ST006_NOT_FLAGGED = {
    "sync_def_lambda_other_run": """
        import asyncio
        import sharptask as st
        from mylib import run

        def main(coro):
            asyncio.run(coro)

        async def f(coro, loop):
            run(coro)
            cb = lambda: asyncio.run(coro)
            await loop.run_in_executor(None, print)
        """,
    "file_without_sharptask": """
        import asyncio

        async def f(coro):
            asyncio.run(coro)
        """,
}


@pytest.mark.parametrize("src", ST006_FLAGGED.values(), ids=ST006_FLAGGED)
def test_st006_flagged(src):
    """D5 ST006: a nested event loop inside an async def."""
    check(src, "ST006")


@pytest.mark.parametrize("src", ST006_NOT_FLAGGED.values(),
                         ids=ST006_NOT_FLAGGED)
def test_st006_near_misses(src):
    """D5 ST006: the entry point of a program, other libraries' run."""
    check(src, "ST006")


# --------------------------------------------------------- the checker


def test_every_rule_message_names_its_dotnet_rule_and_fix():
    """D5: each message says what is wrong, the .NET rule, and the fix."""
    sources = [marked(s, "")[0] for s in (
        ST001_FLAGGED["result_of_parameter"], ST002_FLAGGED["no_parameters"],
        ST003_FLAGGED["task_factories"], ST004_FLAGGED["awaited_twice"],
        ST005_FLAGGED["plain_awaits"],
        ST006_FLAGGED["asyncio_run_and_run_until_complete"])]
    seen = set()
    for src in sources:
        for f in check_source(src, "x.py", library=True):
            what, fix = f.message.split(" — ")
            assert f"({RULES[f.code].dotnet})" in what
            assert what and fix
            seen.add(f.code)
    assert seen == set(RULES)


def test_checker_never_imports_what_it_reads(tmp_path):
    """D5: source only: a module whose import would leave a marker file
    (and exit) is checked without running it."""
    marker = tmp_path / "imported"
    target = tmp_path / "side_effect.py"
    target.write_text(
        "import pathlib, sys\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "import sharptask as st\n"
        "async def f(t):\n"
        "    return t.result\n"
        "sys.exit(3)\n")
    proc = run_cli(str(target))
    assert proc.returncode == 1, proc.stderr
    assert "ST001" in proc.stdout
    assert not marker.exists()


@pytest.mark.timeout(60)
def test_checker_deep_nesting_terminates():
    """D5: loops are walked twice to find a second consumption on the next
    turn; 30 nested loops around a ValueTask still finish (the second turn
    is skipped when it cannot change anything, and past a depth), and the
    double await is still found."""
    depth = 30
    lines = ["import sharptask as st", "",
             "@st.async_value_method", "async def read_async():", "    pass",
             "", "async def f(xs):", "    vt = read_async()"]
    for i in range(depth):
        lines.append("    " * (i + 1) + f"for x{i} in xs:")
    lines.append("    " * (depth + 1) + "await vt")
    found = lint("\n".join(lines) + "\n")
    assert found == [(len(lines), 4 * depth + 11, "ST004")]


def test_check_tree_is_the_shared_entry_point():
    """D5: check_tree takes a tree and lines (what flake8 hands a plugin)
    and leaves noqa to the caller."""
    src = "import sharptask as st\nst.Task.run(print)  # noqa\n"
    found = check_tree(ast.parse(src), src.splitlines(True), "m.py")
    assert [(f.line, f.col, f.code) for f in found] == [(2, 9, "ST003")]
    assert check_source(src, "m.py", library=False) == []


# ------------------------------------------------------------------- CLI

BAD = ("import sharptask as st\n"
       "\n"
       "async def f(t):\n"
       "    st.Task.run(print)\n"
       "    return t.result\n")


def test_cli_exit_0_clean_1_findings(tmp_path):
    """D5: exit 0 without findings, 1 with; text format
    `path:line:col: STnnn message — fix`."""
    good = tmp_path / "good.py"
    good.write_text("import sharptask as st\n\nasync def f(t):\n"
                    "    return await t\n")
    bad = tmp_path / "bad.py"
    bad.write_text(BAD)
    proc = run_cli(str(good))
    assert (proc.returncode, proc.stdout) == (0, "")
    proc = run_cli(str(bad))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert [ln.split(" ")[0:2] for ln in lines] == [
        [f"{bad}:4:13:", "ST003"], [f"{bad}:5:14:", "ST001"]]
    assert all(" — " in ln and "(VSTHRD" in ln for ln in lines)


def test_cli_json(tmp_path):
    """D5: --format json prints a JSON list of {path, line, col, code,
    message}."""
    bad = tmp_path / "bad.py"
    bad.write_text(BAD)
    proc = run_cli("--format", "json", str(bad))
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert [set(d) for d in data] == [
        {"path", "line", "col", "code", "message"}] * 2
    assert [(d["line"], d["col"], d["code"]) for d in data] == [
        (4, 13, "ST003"), (5, 14, "ST001")]
    assert data[0]["path"] == str(bad)
    assert not data[0]["message"].startswith("ST")
    proc = run_cli("--format", "json", str(tmp_path / "missing.py"))
    assert proc.returncode == 2


def test_cli_usage_errors_exit_2():
    """D5: exit 2 on a usage error, naming an unknown option."""
    proc = run_cli("--frobnicate", "x.py")
    assert proc.returncode == 2
    assert "--frobnicate" in proc.stderr
    assert run_cli().returncode == 2
    assert run_cli("--format", "xml", "x.py").returncode == 2
    help_ = run_cli("--help")
    assert help_.returncode == 0 and "--library" in help_.stdout


def test_cli_unparsable_file_reported_rest_checked(tmp_path):
    """D5: a file that does not parse is named, exit 2, and the other
    files are still checked."""
    (tmp_path / "a_broken.py").write_text("def f(:\n    pass\n")
    (tmp_path / "b_bad.py").write_text(BAD)
    (tmp_path / "c_nul.py").write_bytes(b"x = 1\x00\n")
    proc = run_cli(str(tmp_path))
    assert proc.returncode == 2
    assert "a_broken.py:1:" in proc.stderr and "cannot parse" in proc.stderr
    assert "c_nul.py" in proc.stderr
    assert proc.stdout.count("b_bad.py:") == 2
    proc = run_cli(str(tmp_path / "b_bad.py"), str(tmp_path / "nope.py"))
    assert proc.returncode == 2
    assert "nope.py" in proc.stderr and proc.stdout.count("b_bad.py:") == 2


def test_cli_folders_recursive_sorted(tmp_path):
    """D5: folders are searched recursively for *.py (hidden folders and
    __pycache__ skipped), output sorted by path and line."""
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / ".venv").mkdir()
    (tmp_path / "__pycache__").mkdir()
    for rel in ("pkg/sub/z.py", "pkg/a.py", ".venv/hidden.py",
                "__pycache__/cached.py"):
        (tmp_path / rel).write_text(BAD)
    (tmp_path / "pkg" / "notes.txt").write_text(BAD)
    proc = run_cli(str(tmp_path))
    assert proc.returncode == 1
    paths = [ln.split(":")[0] for ln in proc.stdout.splitlines()]
    assert paths == sorted(paths)
    assert {os.path.relpath(p, tmp_path) for p in paths} == {
        os.path.join("pkg", "a.py"), os.path.join("pkg", "sub", "z.py")}


NOQA = ("import sharptask as st\n"
        "\n"
        "async def f(vt_source, t):\n"
        "    vt = st.ValueTask(t)\n"
        "    await vt\n"
        "    a = vt.result  # noqa: ST001\n"
        "    b = t.result  # noqa\n"
        "    c = t.result  # noqa: ST003\n"
        "    d = t.result  # NOQA:ST003,ST001 the reason\n"
        "    st.Task.run(print)  # noqa: ST\n"
        "    e = t.result\n"
        "    # noqa\n"
        "    return a, b, c, d, e\n")


def test_cli_noqa(tmp_path):
    """D5: `# noqa: ST001` silences that code only on that line; a bare
    `# noqa` every code; codes match by prefix, as in flake8."""
    path = tmp_path / "noqa.py"
    path.write_text(NOQA)
    proc = run_cli("--format", "json", str(path))
    got = [(d["line"], d["code"]) for d in json.loads(proc.stdout)]
    assert got == [(6, "ST004"), (8, "ST001"), (11, "ST001")]
    assert proc.returncode == 1
    path.write_text("# flake8: noqa\n" + BAD)
    assert run_cli(str(path)).returncode == 0


def test_cli_library_flag_and_pyproject(tmp_path):
    """D5: ST005 is off unless --library or the nearest pyproject.toml
    (looked up from the file's folder upward) says library = true."""
    src = "import sharptask as st\n\nasync def f():\n" \
          "    await st.Task.delay(0)\n"
    lib = tmp_path / "lib" / "pkg"
    lib.mkdir(parents=True)
    (tmp_path / "lib" / "pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n[tool.sharptask.lint]\nlibrary = true\n")
    (lib / "m.py").write_text(src)
    app = tmp_path / "app"
    app.mkdir()
    (app / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    (app / "m.py").write_text(src)
    proc = run_cli(str(tmp_path))
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"{lib / 'm.py'}:4:5: ST005 ")
    proc = run_cli("--library", str(app / "m.py"))
    assert proc.returncode == 1 and ":4:5: ST005 " in proc.stdout


def test_cli_via_main_usage_lists_lint():
    """D5: `python -m sharptask` lists the lint command."""
    proc = subprocess.run([sys.executable, "-m", "sharptask", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "lint PATH" in proc.stdout


def test_cli_coding_cookie(tmp_path):
    """D5: a file is read in the encoding its coding cookie names;
    columns count characters."""
    path = tmp_path / "latin.py"
    path.write_bytes("# -*- coding: latin-1 -*-\nimport sharptask\n"
                     "async def f(t):\n    s = 'é'; return t.result\n"
                     .encode("latin-1"))
    proc = run_cli(str(path))
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{path}:4:23: ST001")


# ----------------------------------------------------------------- flake8


def run_flake8(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "flake8", "--select", "ST", "--isolated",
         "--jobs", "1",
         "--format", "%(path)s:%(row)d:%(col)d: %(code)s %(text)s", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd)


@needs_flake8
def test_flake8_plugin_registered():
    """D5: the plugin is an entry point of the group flake8.extension with
    the prefix ST."""
    from importlib.metadata import entry_points
    eps = [ep for ep in entry_points(group="flake8.extension")
           if ep.name == "ST"]
    assert [ep.value for ep in eps] == ["sharptask._lint._flake8:Plugin"]
    proc = subprocess.run([sys.executable, "-m", "flake8", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert "sharptask" in proc.stdout


def _equivalence_corpus(tmp_path):
    """Files for the equivalence test: every flagged and near-miss case
    above, the noqa file, a backslash and a multi-line string with noqa,
    and docs/lint.md's examples."""
    files = []
    tables = (ST001_FLAGGED, ST001_NOT_FLAGGED, ST002_FLAGGED,
              ST002_NOT_FLAGGED, ST003_FLAGGED, ST003_NOT_FLAGGED,
              ST004_FLAGGED, ST004_NOT_FLAGGED, ST006_FLAGGED,
              ST006_NOT_FLAGGED)
    n = 0
    for table in tables:
        for src in table.values():
            n += 1
            path = tmp_path / f"case{n:03d}.py"
            path.write_text(marked(src, "")[0])
            files.append(path)
    (tmp_path / "noqa.py").write_text(NOQA)
    (tmp_path / "multiline.py").write_text(
        "import sharptask as st\n"
        "async def f(t):\n"
        "    x = t.result + len('''\n"
        "    text''')  # noqa: ST001\n"
        "    y = t.result + \\\n"
        "        1  # noqa\n"
        "    z = (t.result +\n"
        "         1)  # noqa\n"
        "    return x, y, z\n")
    for i, (kind, _, src) in enumerate(doc_examples()):
        (tmp_path / f"doc{i:02d}_{kind}.py").write_text(src)
    return tmp_path


@needs_flake8
@pytest.mark.timeout(180)
def test_flake8_same_findings_as_cli(tmp_path):
    """D5: `flake8 --select ST` gives the same findings as the command line
    on the same files (noqa included)."""
    corpus = _equivalence_corpus(tmp_path)
    cli = run_cli("--format", "json", str(corpus))
    assert cli.returncode == 1, cli.stderr
    from_cli = sorted((d["path"], d["line"], d["col"], d["code"],
                       d["message"]) for d in json.loads(cli.stdout))
    fl = run_flake8(str(corpus))
    assert fl.returncode == 1, fl.stderr
    from_flake8 = []
    for line in fl.stdout.splitlines():
        path, row, col, rest = line.split(":", 3)
        code, message = rest.strip().split(" ", 1)
        from_flake8.append((path, int(row), int(col), code, message))
    assert sorted(from_flake8) == from_cli
    assert {c[3] for c in from_cli} == set(RULES) - {"ST005"}
    multiline = [c[1] for c in from_cli if c[0].endswith("multiline.py")]
    assert multiline == [7]     # line 7 is not line 8's: one line each


@needs_flake8
@pytest.mark.timeout(120)
def test_flake8_library_option_and_pyproject(tmp_path):
    """D5: ST005 through flake8: --sharptask-library, or the nearest
    pyproject.toml, as for the command line."""
    src = "import sharptask as st\n\nasync def f():\n" \
          "    await st.Task.delay(0)\n"
    (tmp_path / "m.py").write_text(src)
    assert run_flake8(str(tmp_path / "m.py")).stdout == ""
    out = run_flake8("--sharptask-library", str(tmp_path / "m.py")).stdout
    assert ":4:5: ST005 " in out
    (tmp_path / "pyproject.toml").write_text(
        "[tool.sharptask.lint]\nlibrary = true\n")
    cli = run_cli(str(tmp_path / "m.py")).stdout
    assert run_flake8(str(tmp_path / "m.py")).stdout == cli != ""


# ------------------------------------------------- the package's own code


def _package_files():
    for folder, dirs, files in os.walk(PACKAGE_SRC):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_package_demos_and_examples_are_clean():
    """Issue 13 item "run it over the package's own demos and examples":
    the package (demo.py, bench.py, _benchmarks/, the modules) has no
    finding; benchmarks/ neither."""
    proc = run_cli(PACKAGE_SRC, os.path.join(REPO, "benchmarks"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_package_library_modules_clean_in_library_mode():
    """Issue 13 / D5 ST005: the library modules themselves (not the demos
    and benchmarks, which are applications) pass with --library."""
    modules = [p for p in _package_files()
               if os.path.basename(p) not in ("demo.py", "bench.py")
               and "_benchmarks" not in p]
    proc = run_cli("--library", *modules)
    assert (proc.returncode, proc.stdout) == (0, "")


def test_package_noqa_comments_are_needed_and_explained():
    """Issue 13: every `# noqa: STnnn` in the package silences a finding
    that is really there (none is stale), and says why beside it (on the
    line or on the line above)."""
    seen = 0
    for path in _package_files():
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        lines = source.splitlines()
        raw = {(f.line, f.code) for f in check_tree(
            ast.parse(source), lines, path, package="sharptask")}
        comments = [(tok.start[0], tok.string) for tok in
                    tokenize.generate_tokens(io.StringIO(source).readline)
                    if tok.type == tokenize.COMMENT]
        for i, comment in comments:
            m = re.match(r"# noqa: (ST\d{3})(.*)$", comment)
            if not m:
                continue
            seen += 1
            assert (i, m.group(1)) in raw, f"{path}:{i}: stale noqa"
            reason = m.group(2).strip() or (
                lines[i - 2].split("#", 1)[1].strip()
                if "#" in lines[i - 2] else "")
            assert len(reason) > 8, f"{path}:{i}: noqa without a reason"
    assert seen >= 4


def test_demo_child_scripts_are_clean():
    """Issue 13: the programs the demos run in child processes are clean
    too (they are demos' source held in strings)."""
    from sharptask import demo
    assert "st.async_method" in demo._HANG_CHILD
    assert check_source(demo._HANG_CHILD, "child.py", library=False) == []


@needs_docs
def test_readme_example_is_clean():
    """Issue 13: the README's Python example is clean."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks
    for src in blocks:
        assert check_source(src, "example.py", library=False) == []


# -------------------------------------------------------------- the docs


def doc_examples():
    """(kind, code or None, source) of each example of docs/lint.md."""
    if not os.path.isfile(DOC):
        return []
    with open(DOC, encoding="utf-8") as fh:
        text = fh.read()
    pattern = re.compile(r"<!-- lint: (bad|good)( ST\d{3})?( library)? -->"
                         r"\n```python\n(.*?)```", re.S)
    return [(("library-" if m.group(3) else "") + m.group(1),
             m.group(2).strip() if m.group(2) else None, m.group(4))
            for m in pattern.finditer(text)]


@needs_docs
def test_docs_every_rule_has_bad_and_good_examples():
    """Issue 13 docs: docs/lint.md gives every rule its .NET rule and a
    bad and a good example."""
    with open(DOC, encoding="utf-8") as fh:
        text = fh.read()
    examples = doc_examples()
    assert {code for _, code, _ in examples if code} == set(RULES)
    sections = re.split(r"\n### ", text)[1:]
    for code, rule in RULES.items():
        (section,) = [s for s in sections if s.startswith(code)]
        assert f"({rule.dotnet})" in section.splitlines()[0]
        assert "<!-- lint: bad" in section and "<!-- lint: good" in section


@needs_docs
@pytest.mark.parametrize("kind,code,src", doc_examples(),
                         ids=[f"{i}-{k}-{c or 'clean'}" for i, (k, c, _)
                              in enumerate(doc_examples())])
def test_docs_examples(kind, code, src):
    """Issue 13 docs: each bad example is flagged with its rule (and only
    it), each good one is clean."""
    library = kind.startswith("library")
    found = {f.code for f in check_source(src, "doc.py", library=library)}
    if kind.endswith("bad"):
        assert found == {code}
    else:
        assert found == set()
