"""The rules ST001-ST006 (SPEC D5) over a module's syntax tree.

The checker reads source only: it parses nothing itself (it is given the
tree and the lines) and imports nothing it checks.  `check_tree()` is the
one entry point; the command line (`_cli.py`) and the flake8 plugin
(`_flake8.py`) both call it, so the two cannot disagree.

DESIGN
    Two passes over the tree.

    1. `_Scopes` builds Python's scopes (module, class, function, lambda,
       comprehension) and, per scope, every binding of every name: an
       import (with the dotted name it stands for), a def, a class, a
       parameter, an assignment (with its value), or something else.  A
       name resolves the way Python resolves it (a name bound anywhere in
       a function is local to all of it; class scopes are skipped by the
       functions inside them), so `from sharptask import Task as T`,
       `import sharptask as st`, `T = st.Task` and a parameter that
       shadows `Task` all come out right.  A name with two different
       kinds of binding in one scope resolves to nothing: the checker
       stays silent rather than guess.

    2. `_Flow` walks each body (module, class, function, lambda) in
       evaluation order, with a small abstract state that branches at
       `if`, `match`, `try`, conditional expressions and short-circuit
       operators, runs loop bodies twice, and merges at the joins:
         - `vt`: the local names bound to a fresh ValueTask and how many
           times each was consumed on the worst path (ST004: a may
           analysis, maximum at joins);
         - `done`: the local names known to be completed tasks, after
           `await t`, `await Task.when_all(t, u)` or inside
           `if t.is_completed:`, `t = await ...` (`Task.when_any`),
           `t = Task.from_result(...)`, the elements of an awaited
           `when_all(tasks)`, and the first parameter of a def passed
           to `t.continue_with(fn)` (ST001 then leaves `t.result` alone,
           as VSTHRD002 does after `await Task.WhenAll` and in a task's
           own continuation; a must analysis, intersection at joins).
       Expression-level rules (ST001, ST003, ST005, ST006) are checked on
       the same walk; a finding seen twice (loop bodies) is kept once.

    What counts as "sharptask's" is decided by resolution, never by a bare
    name: a file that never imports sharptask gets no finding at all, and
    a receiver that resolves to another library (asyncio, threading,
    concurrent.futures ...) is not a sharptask task.  The exceptions are
    the two blocking calls that are blocking whoever's they are: ST001's
    `time.sleep(...)` (SPEC) and a `concurrent.futures.Future.result()`
    (issue 13: a decision, see docs/lint.md), which is flagged only when
    the future provably is one: made by an executor's `submit`,
    `Task.as_future()`, `asyncio.run_coroutine_threadsafe` or
    `concurrent.futures.Future()`.

    Rejected: type inference over the whole program (a linter of this size
    cannot be right about it, and a wrong guess cries wolf); matching bare
    names such as `Task` without resolving them (asyncio has a `Task`
    too); flagging every `.result` in a file (only reads of the attribute,
    never calls: sharptask's `result` is a property, asyncio's and
    concurrent.futures' are methods).

Positions follow the .NET analyzers (VSTHRD002/110 report the member's
name, VSTHRD100 the method's name): a finding points at the name of the
member, function or decorator it is about (`result` in `t.result`, `run`
in `Task.run(...)`), at the `await` keyword for ST005, and at the
ValueTask's name for ST004.  Columns are 1-based and count characters.
"""

from __future__ import annotations

import ast
import re
from typing import Iterable, NamedTuple

__all__ = ["Finding", "RULES", "check_tree"]


class Finding(NamedTuple):
    """One finding: where, which rule, and the message (what is wrong, the
    .NET rule it mirrors, and the fix after an em dash)."""

    path: str
    line: int
    col: int        # 1-based, in characters
    code: str
    message: str


class Rule(NamedTuple):
    code: str
    dotnet: str     # the .NET analyzer rule it mirrors
    title: str


#: Every rule, in order.  docs/lint.md has one section per entry.
RULES = {
    "ST001": Rule("ST001", "VSTHRD002",
                  "a blocking wait inside an async def"),
    "ST002": Rule("ST002", "VSTHRD100",
                  "@async_void on a function that is not an event handler"),
    "ST003": Rule("ST003", "VSTHRD110",
                  "a Task dropped by an expression statement"),
    "ST004": Rule("ST004", "CA2012", "a ValueTask consumed twice"),
    "ST005": Rule("ST005", "CA2007",
                  "an await without .configure_await(False) in library "
                  "code"),
    "ST006": Rule("ST006", "VSTHRD103",
                  "a nested event loop inside an async def"),
}

# ------------------------------------------------------------ vocabulary

_ST = "sharptask"

# Calls whose value is a Task that must not be dropped (ST003).
_TASK_FACTORIES = {
    "sharptask.Task.run": "Task.run",
    "sharptask.Task.delay": "Task.delay",
    "sharptask.Task.factory.start_new": "Task.factory.start_new",
    "sharptask.Task.when_all": "Task.when_all",
    "sharptask.Task.when_any": "Task.when_any",
}

_DECORATORS = {
    "sharptask.async_method": "task",
    "sharptask.async_value_method": "valuetask",
    "sharptask.async_void": "void",
}

# Event-handler parameters (ST002): `sender` and one of these, after self.
_EVENT_ARGS = ("e", "args", "event_args")

_CF_EXECUTORS = {
    "concurrent.futures.ThreadPoolExecutor",
    "concurrent.futures.ProcessPoolExecutor",
    "concurrent.futures.thread.ThreadPoolExecutor",
    "concurrent.futures.process.ProcessPoolExecutor",
}
_CF_FUTURE_MAKERS = {
    "concurrent.futures.Future",
    "concurrent.futures._base.Future",
    "asyncio.run_coroutine_threadsafe",
}
# Methods that take a coroutine and run or schedule it (asyncio's, on a
# loop or a task group we cannot resolve): `loop.create_task(ev.wait())`
# hands the coroutine over, it does not block.
_CORO_CONSUMERS = frozenset({
    "create_task", "ensure_future", "gather", "wait_for", "shield",
    "run_coroutine_threadsafe", "start_soon", "start",
})
_COMPLETED_MAKERS = frozenset({
    "sharptask.Task.from_result", "sharptask.Task.from_exception",
    "sharptask.Task.from_canceled",
})
_COMPLETED_PROPS = ("is_completed", "is_completed_successfully",
                    "is_faulted", "is_canceled")

# Public names of the package, for `from sharptask import *`.
_STAR_NAMES = frozenset({
    "Task", "ValueTask", "TaskCompletionSource", "async_method",
    "async_value_method", "async_void", "run", "ConfigureAwaitOptions",
    "TaskFactory", "TaskScheduler", "ThreadPool", "SemaphoreSlim",
    "SynchronizationContext", "SingleThreadSynchronizationContext",
    "UiThread", "CancellationToken", "CancellationTokenSource",
    "PeriodicTimer", "Timer", "TimeProvider", "FakeTimeProvider",
})


def _canonical(qual: str) -> str:
    """`sharptask._native.Task` -> `sharptask.Task`: the private modules
    re-export into the package namespace (SPEC 0)."""
    parts = qual.split(".")
    if parts[0] == _ST:
        while (len(parts) > 2 and parts[1].startswith("_")
               and not parts[1].startswith("__")):
            del parts[1]
    return ".".join(parts)


def _is_foreign(qual: str | None) -> bool:
    """A dotted name of another library (not sharptask, not a builtin)."""
    return qual is not None and qual.split(".")[0] != _ST


# ---------------------------------------------------------------- scopes


class _Binding:
    __slots__ = ("kind", "qual", "node", "index", "value", "scope")

    def __init__(self, kind, scope, qual=None, node=None, index=-1,
                 value=None):
        self.kind = kind        # import/def/class/param/assign/other
        self.scope = scope      # where it is bound
        self.qual = qual        # import: the dotted name it stands for
        self.node = node        # def/class: the node; param: the function
        self.index = index      # param: its position
        self.value = value      # assign: the value expression


class _Scope:
    __slots__ = ("kind", "node", "parent", "bindings", "star", "is_async")

    def __init__(self, kind, node, parent, is_async=False):
        self.kind = kind        # module/class/function/lambda/comprehension
        self.node = node
        self.parent = parent
        self.bindings: dict[str, list[_Binding]] = {}
        self.star = False       # `from sharptask import *` here
        self.is_async = is_async

    def bind(self, name, binding):
        self.bindings.setdefault(name, []).append(binding)

    def function_scope(self):
        """The nearest scope that is not a comprehension."""
        s = self
        while s.kind == "comprehension":
            s = s.parent
        return s


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


class _Scopes(ast.NodeVisitor):
    """Pass 1: scopes and bindings (see DESIGN)."""

    def __init__(self, tree, package):
        self.package = package          # for relative imports, or None
        self.scope_of: dict[ast.AST, _Scope] = {}   # body owner -> scope
        self.def_scope: dict[ast.AST, _Scope] = {}  # def/class -> outer
        self.uses_sharptask = False
        self.continue_with_calls = []   # (call, scope): t.continue_with(f)
        self.module = _Scope("module", tree, None)
        self.scope_of[tree] = self.module
        self.cur = self.module
        for stmt in tree.body:
            self.visit(stmt)

    # -- helpers

    def _push(self, kind, node, is_async=False):
        scope = _Scope(kind, node, self.cur, is_async)
        self.scope_of[node] = scope
        self.cur = scope
        return scope

    def _pop(self, scope):
        self.cur = scope.parent

    def _bind_target(self, target, kind="other", value=None):
        if isinstance(target, ast.Name):
            scope = self.cur
            if kind == "walrus":
                scope = scope.function_scope()
                kind = "assign"
            scope.bind(target.id, _Binding(kind, scope, value=value))
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._bind_target(elt)
        elif isinstance(target, ast.Starred):
            self._bind_target(target.value)
        else:
            self.visit(target)

    def _import_qual(self, qual):
        qual = _canonical(qual)
        if qual.split(".")[0] == _ST:
            self.uses_sharptask = True
        return qual

    def _arguments(self, args, scope, fn):
        params = args.posonlyargs + args.args
        for i, a in enumerate(params):
            scope.bind(a.arg, _Binding("param", scope, node=fn, index=i))
        for a in args.kwonlyargs + [args.vararg, args.kwarg]:
            if a is not None:
                scope.bind(a.arg, _Binding("other", scope))

    def _outer_parts(self, node):
        """Decorators, defaults and annotations run in the outer scope."""
        for d in getattr(node, "decorator_list", ()):
            self.visit(d)
        args = node.args
        for d in args.defaults + [d for d in args.kw_defaults if d]:
            self.visit(d)

    def visit_Call(self, node):
        if (isinstance(node.func, ast.Attribute)
                and node.func.attr == "continue_with" and node.args
                and isinstance(node.args[0], ast.Name)):
            self.continue_with_calls.append((node, self.cur))
        self.generic_visit(node)

    # -- statements that bind

    def visit_Import(self, node):
        for alias in node.names:
            if alias.asname:
                self.cur.bind(alias.asname, _Binding(
                    "import", self.cur, qual=self._import_qual(alias.name)))
            else:
                top = alias.name.split(".")[0]
                self._import_qual(alias.name)
                self.cur.bind(top, _Binding("import", self.cur, qual=top))

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if node.level:
            base = self.package.split(".") if self.package else None
            if base is None or node.level - 1 > len(base) - 1:
                module = None
            else:
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
        for alias in node.names:
            if alias.name == "*":
                if module and _canonical(module + ".x") == _ST + ".x":
                    self.uses_sharptask = True
                    self.cur.star = True
                continue
            name = alias.asname or alias.name
            if module is None:
                self.cur.bind(name, _Binding("other", self.cur))
            else:
                self.cur.bind(name, _Binding(
                    "import", self.cur,
                    qual=self._import_qual(f"{module}.{alias.name}")))

    def visit_FunctionDef(self, node):
        self._outer_parts(node)
        self.def_scope[node] = self.cur
        self.cur.bind(node.name, _Binding("def", self.cur, node=node))
        scope = self._push("function", node,
                           isinstance(node, ast.AsyncFunctionDef))
        self._arguments(node.args, scope, node)
        for stmt in node.body:
            self.visit(stmt)
        self._pop(scope)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._outer_parts(node)
        scope = self._push("lambda", node)
        self._arguments(node.args, scope, node)
        self.visit(node.body)
        self._pop(scope)

    def visit_ClassDef(self, node):
        for d in node.decorator_list + node.bases:
            self.visit(d)
        for k in node.keywords:
            self.visit(k.value)
        self.def_scope[node] = self.cur
        self.cur.bind(node.name, _Binding("class", self.cur, node=node))
        scope = self._push("class", node)
        for stmt in node.body:
            self.visit(stmt)
        self._pop(scope)

    def _comprehension(self, node):
        gens = node.generators
        self.visit(gens[0].iter)
        scope = self._push("comprehension", node)
        for i, gen in enumerate(gens):
            if i:
                self.visit(gen.iter)
            self._bind_target(gen.target)
            for cond in gen.ifs:
                self.visit(cond)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self._pop(scope)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = _comprehension
    visit_DictComp = _comprehension

    def visit_Assign(self, node):
        self.visit(node.value)
        single = len(node.targets) == 1
        for t in node.targets:
            if single and isinstance(t, ast.Name):
                self._bind_target(t, "assign", node.value)
            else:
                self._bind_target(t)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
            self._bind_target(node.target, "assign", node.value)
        elif not isinstance(node.target, ast.Name):
            self.visit(node.target)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        self._bind_target(node.target)

    def visit_NamedExpr(self, node):
        self.visit(node.value)
        self._bind_target(node.target, "walrus", node.value)

    def visit_For(self, node):
        self.visit(node.iter)
        self._bind_target(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node):
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                if isinstance(item.optional_vars, ast.Name):
                    self._bind_target(item.optional_vars, "assign",
                                      item.context_expr)
                else:
                    self._bind_target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node):
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.cur.bind(node.name, _Binding("other", self.cur))
        for stmt in node.body:
            self.visit(stmt)

    def visit_Delete(self, node):
        for t in node.targets:
            self._bind_target(t)

    def visit_Global(self, node):
        for name in node.names:
            self.cur.bind(name, _Binding("other", self.cur))

    visit_Nonlocal = visit_Global

    def visit_MatchAs(self, node):
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.cur.bind(node.name, _Binding("other", self.cur))

    def visit_MatchStar(self, node):
        if node.name:
            self.cur.bind(node.name, _Binding("other", self.cur))

    def visit_MatchMapping(self, node):
        self.generic_visit(node)
        if node.rest:
            self.cur.bind(node.rest, _Binding("other", self.cur))


# ------------------------------------------------------------ resolution


class _Resolver:
    """Name resolution over the scopes of pass 1."""

    def __init__(self, scopes: _Scopes):
        self.scopes = scopes
        self._busy: set[int] = set()    # assignments being resolved
        self._kind_of: dict[int, str | None] = {}   # assignment -> kind

    def lookup(self, name, scope):
        """The bindings `name` refers to from `scope` (None: unknown or
        builtin)."""
        s, first = scope, True
        while s is not None:
            if s.kind == "class" and not first:
                s = s.parent
                continue
            if name in s.bindings:
                return s.bindings[name]
            if s.star and name in _STAR_NAMES:
                return [_Binding("import", s, qual=f"{_ST}.{name}")]
            first = False
            s = s.parent
        return None

    def qual(self, expr, scope) -> str | None:
        """The dotted name an expression stands for (`st.Task.run` ->
        `sharptask.Task.run`), or None."""
        if isinstance(expr, ast.Attribute):
            base = self.qual(expr.value, scope)
            return None if base is None else f"{base}.{expr.attr}"
        if not isinstance(expr, ast.Name):
            return None
        bindings = self.lookup(expr.id, scope)
        if not bindings:
            return None
        if all(b.kind == "import" for b in bindings):
            quals = {b.qual for b in bindings}
            return quals.pop() if len(quals) == 1 else None
        if (len(bindings) == 1 and bindings[0].kind == "assign"
                and isinstance(bindings[0].value, (ast.Name, ast.Attribute))):
            key = id(bindings[0])
            if key in self._busy:
                return None
            self._busy.add(key)
            try:
                q = self.qual(bindings[0].value, bindings[0].scope)
            finally:
                self._busy.discard(key)
            return None if q is None else _canonical(q)
        return None

    def root_qual(self, expr, scope) -> str | None:
        """The dotted name of the leftmost name of a chain of attributes,
        calls and subscripts (`asyncio.get_running_loop().create_task` ->
        `asyncio`)."""
        while isinstance(expr, (ast.Attribute, ast.Call, ast.Subscript)):
            expr = expr.func if isinstance(expr, ast.Call) else expr.value
        return self.qual(expr, scope) if isinstance(expr, ast.Name) else None

    # -- what a local name holds (see kind())

    def kind(self, expr, scope) -> str | None:
        """What an expression evaluates to, as far as resolution can tell:
        "cf_executor", "cf_future" (concurrent.futures), "foreign" (a
        value of another library), or None (unknown: maybe a task)."""
        if isinstance(expr, ast.Name):
            bindings = self.lookup(expr.id, scope)
            if not bindings:
                return None
            if all(b.kind == "import" for b in bindings):
                return "foreign" if all(_is_foreign(b.qual)
                                        for b in bindings) else None
            if any(b.kind != "assign" for b in bindings):
                return None
            kinds = set()
            for b in bindings:
                key = id(b)
                if key not in self._kind_of:
                    if key in self._busy:
                        return None
                    self._busy.add(key)
                    try:
                        self._kind_of[key] = self.kind(b.value, b.scope)
                    finally:
                        self._busy.discard(key)
                kinds.add(self._kind_of[key])
                if len(kinds) > 1:
                    return None
            return kinds.pop()
        if isinstance(expr, ast.Call):
            q = self.qual(expr.func, scope)
            if q in _CF_EXECUTORS:
                return "cf_executor"
            if q in _CF_FUTURE_MAKERS:
                return "cf_future"
            if isinstance(expr.func, ast.Attribute):
                recv = self.kind(expr.func.value, scope)
                if expr.func.attr == "submit" and recv == "cf_executor":
                    return "cf_future"
                if expr.func.attr == "as_future" and recv is None:
                    return "cf_future"      # Task.as_future()
                if recv is not None:
                    return "foreign"
            return "foreign" if _is_foreign(q) else None
        if isinstance(expr, (ast.Attribute, ast.Subscript)):
            if self.kind(expr.value, scope) is not None:
                return "foreign"
            return None
        return None

    # -- callables defined in this module

    def _class_of_self(self, name_expr, scope):
        """The ClassDef that `self` (the first parameter of a method, seen
        from the method or a function nested in it) is an instance of."""
        bindings = self.lookup(name_expr.id, scope)
        if not bindings or len(bindings) != 1:
            return None
        b = bindings[0]
        if b.kind == "class":
            return b.node
        if b.kind != "param" or b.index != 0 or not isinstance(
                b.node, _FUNCTIONS):
            return None
        outer = self.scopes.def_scope.get(b.node)
        if outer is None or outer.kind != "class":
            return None
        if any(self.decorator_name(d, outer) == "staticmethod"
               for d in b.node.decorator_list):
            return None
        return outer.node

    def _methods(self, cls, name, seen=None):
        """The defs of method `name` of a class, or of its bases defined in
        this module; none when the class body assigns the name."""
        seen = seen if seen is not None else set()
        if id(cls) in seen:
            return []
        seen.add(id(cls))
        for s in cls.body:
            targets = (s.targets if isinstance(s, ast.Assign) else
                       [s.target] if isinstance(s, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name
                   for t in targets):
                return []
        found = [s for s in cls.body
                 if isinstance(s, _FUNCTIONS) and s.name == name]
        if found:
            return found
        outer = self.scopes.def_scope.get(cls)
        for base in cls.bases:
            if isinstance(base, ast.Name) and outer is not None:
                bs = self.lookup(base.id, outer)
                if bs and len(bs) == 1 and bs[0].kind == "class":
                    found = self._methods(bs[0].node, name, seen)
                    if found:
                        return found
        return []

    def callee_defs(self, func, scope):
        """The module's own defs a call's callee refers to, or None."""
        if isinstance(func, ast.Name):
            bindings = self.lookup(func.id, scope)
            if bindings and all(b.kind == "def" for b in bindings):
                return [b.node for b in bindings]
            return None
        if isinstance(func, ast.Attribute) and isinstance(func.value,
                                                          ast.Name):
            cls = self._class_of_self(func.value, scope)
            if cls is not None:
                return self._methods(cls, func.attr) or None
        return None

    def decorator_name(self, dec, scope):
        """`staticmethod`, `classmethod`, or the canonical dotted name."""
        if isinstance(dec, ast.Call):
            dec = dec.func
        if isinstance(dec, ast.Name) and dec.id in ("staticmethod",
                                                    "classmethod"):
            if self.lookup(dec.id, scope) is None:
                return dec.id
        q = self.qual(dec, scope)
        return None if q is None else _canonical(q)

    def def_kind(self, fn) -> str | None:
        """"task", "valuetask" or "void" for a def decorated with
        sharptask's decorators, else None."""
        if not isinstance(fn, _FUNCTIONS):
            return None
        outer = self.scopes.def_scope.get(fn)
        for dec in fn.decorator_list:
            kind = _DECORATORS.get(self.decorator_name(dec, outer) or "")
            if kind:
                return kind
        return None

    def returns_kind(self, call, scope):
        """"task"/"valuetask" when `call` calls a module-local async
        method, None otherwise."""
        defs = self.callee_defs(call.func, scope)
        if not defs:
            return None
        kinds = {self.def_kind(d) for d in defs}
        if len(kinds) == 1:
            k = kinds.pop()
            return k if k in ("task", "valuetask") else None
        return None

    def is_plain_coroutine(self, call, scope):
        """A call of this module's own undecorated async def."""
        defs = self.callee_defs(call.func, scope)
        return bool(defs) and all(
            isinstance(d, ast.AsyncFunctionDef) and self.def_kind(d) is None
            for d in defs)


# ------------------------------------------------------------- positions


class _Lines:
    """Byte offsets (ast) to character columns (what an editor shows)."""

    def __init__(self, lines):
        self.lines = lines

    def col(self, line, byte_col):
        if 1 <= line <= len(self.lines):
            text = self.lines[line - 1]
            if text.isascii():
                return byte_col
            return len(text.encode("utf-8")[:byte_col].decode(
                "utf-8", "replace"))
        return byte_col

    def def_name(self, node):
        """(line, char col) of the name in `def name` / `async def`."""
        line = node.lineno
        col = self.col(line, node.col_offset)
        if 1 <= line <= len(self.lines):
            m = re.compile(r"(?:async\s+)?def\s+").match(
                self.lines[line - 1], col)
            if m:
                return line, m.end()
        return line, col


def _name_pos(node):
    """(line, byte col) of the identifier a node is about."""
    if isinstance(node, ast.Attribute):
        return (node.end_lineno,
                (node.end_col_offset or 0) - len(node.attr.encode("utf-8")))
    if isinstance(node, ast.Call):
        return _name_pos(node.func)
    return node.lineno, node.col_offset


def _callee_text(func):
    """`Task.run` for st.Task.run, `save_async` for self.save_async."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    parts.reverse()
    return ".".join(parts[-3:]) if parts else "the call"


# ------------------------------------------------------------------ flow


class _State:
    __slots__ = ("vt", "done")

    def __init__(self, vt=None, done=frozenset()):
        self.vt = dict(vt or {})    # ValueTask local -> times consumed
        self.done = done            # locals known to be completed tasks

    def copy(self):
        return _State(self.vt, self.done)

    def same(self, other):
        return (other is not None and self.vt == other.vt
                and self.done == other.done)


def _merge(*states):
    live = [s for s in states if s is not None]
    if not live:
        return None
    vt: dict = {}
    for s in live:
        for name, n in s.vt.items():
            vt[name] = max(n, vt.get(name, 0))
    done = frozenset.intersection(*(s.done for s in live))
    return _State(vt, done)


_MAX_LOOP_DEPTH = 6


class _Loop:
    __slots__ = ("breaks", "continues")

    def __init__(self):
        self.breaks = []
        self.continues = []


class _Flow:
    """Pass 2 over one body (see DESIGN)."""

    def __init__(self, checker, scope, body, is_async):
        self.c = checker
        self.r = checker.resolver
        self.scope = scope
        self.is_async = is_async
        self.loops: list[_Loop] = []
        self.in_await = 0       # walking the operand of an await
        self.in_foreign_arg = 0  # walking arguments of another library's call
        start = _State()
        first = checker.continuations.get(scope.node)
        if first is not None:   # a continuation: its antecedent is complete
            start.done = frozenset({first})
        if isinstance(body, list):
            self.block(body, start)
        else:                   # a lambda's expression
            self.expr(body, start)

    # -- statements

    def block(self, stmts, st):
        for stmt in stmts:
            if st is None:      # unreachable: still check, fresh state
                st = _State()
            st = self.stmt(stmt, st)
        return st

    def stmt(self, node, st):
        method = getattr(self, "s_" + type(node).__name__, None)
        if method is not None:
            return method(node, st)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                st = self.expr(child, st)
        return st

    def s_Expr(self, node, st):
        st = self.expr(node.value, st)
        if isinstance(node.value, ast.Call):
            self.c.st003(node.value, self.scope)
        return st

    def s_Assign(self, node, st):
        st = self.expr(node.value, st)
        for t in node.targets:
            st = self.bind(t, node.value, st)
        return st

    def s_AnnAssign(self, node, st):
        if node.value is None:
            return st
        st = self.expr(node.value, st)
        return self.bind(node.target, node.value, st)

    def s_AugAssign(self, node, st):
        st = self.expr(node.value, st)
        return self.bind(node.target, None, st)

    def s_Return(self, node, st):
        if node.value is not None:
            self.expr(node.value, st)
        return None

    def s_Raise(self, node, st):
        for child in (node.exc, node.cause):
            if child is not None:
                st = self.expr(child, st)
        return None

    def s_Delete(self, node, st):
        for t in node.targets:
            st = self.bind(t, None, st)
        return st

    def s_Break(self, node, st):
        if self.loops:
            self.loops[-1].breaks.append(st)
        return None

    def s_Continue(self, node, st):
        if self.loops:
            self.loops[-1].continues.append(st)
        return None

    def s_If(self, node, st):
        st = self.expr(node.test, st)
        yes, no = self.refine(node.test, st)
        return _merge(self.block(node.body, yes), self.block(node.orelse, no))

    def _loop(self, st, body, orelse, target=None, test=None,
              elements_done=False):
        def one_pass(entry):
            loop = _Loop()
            self.loops.append(loop)
            s = entry
            if target is not None:
                s = self.bind(target, None, s)
                if elements_done and isinstance(target, ast.Name):
                    s = s.copy()        # `for t in tasks` after
                    s.done = s.done | {target.id}   # when_all(tasks)
            if test is not None:
                s, _ = self.refine(test, self.expr(test, s))
            end = self.block(body, s)
            self.loops.pop()
            return _merge(end, *loop.continues), loop.breaks

        first, breaks1 = one_pass(st)
        again = _merge(st, first)
        if st.same(again) or len(self.loops) >= _MAX_LOOP_DEPTH:
            # A second turn would see the same state (or the loop is nested
            # too deep to afford one: each level doubles the work).
            second, breaks2 = first, []
        else:
            second, breaks2 = one_pass(again)
        forever = (test is not None and isinstance(test, ast.Constant)
                   and test.value)
        normal = None if forever else _merge(st, first, second)
        if normal is not None and test is not None:
            _, normal = self.refine(test, normal)
        after_else = self.block(orelse, normal) if normal else None
        return _merge(after_else, *breaks1, *breaks2)

    def s_While(self, node, st):
        st = self.expr(node.test, st)
        return self._loop(st, node.body, node.orelse, test=node.test)

    def s_For(self, node, st):
        st = self.expr(node.iter, st)
        return self._loop(st, node.body, node.orelse, target=node.target,
                          elements_done=self._elements_done(node.iter, st))

    @staticmethod
    def _elements_done(iterable, st):
        return isinstance(iterable, ast.Name) and iterable.id in st.done

    s_AsyncFor = s_For

    def s_With(self, node, st):
        for item in node.items:
            st = self.expr(item.context_expr, st)
            if item.optional_vars is not None:
                st = self.bind(item.optional_vars, None, st)
        return self.block(node.body, st)

    s_AsyncWith = s_With

    def s_Try(self, node, st):
        body = self.block(node.body, st.copy())
        anywhere = _merge(st, body)
        handled = [self.block(h.body, self.bind_name(h.name, anywhere)
                              if h.name else anywhere.copy())
                   for h in node.handlers]
        for h in node.handlers:
            if h.type is not None:
                self.expr(h.type, anywhere)
        normal = self.block(node.orelse, body) if body else None
        out = _merge(normal, *handled)
        if node.finalbody:
            fin = self.block(node.finalbody, _merge(anywhere, out))
            return fin if out is not None else None
        return out

    s_TryStar = s_Try

    def s_Match(self, node, st):
        st = self.expr(node.subject, st)
        outs = [st]
        for case in node.cases:
            s = st.copy()
            for n in ast.walk(case.pattern):
                name = getattr(n, "name", None) or getattr(n, "rest", None)
                if isinstance(name, str):
                    s = self.bind_name(name, s)
            if case.guard is not None:
                s = self.expr(case.guard, s)
            outs.append(self.block(case.body, s))
        return _merge(*outs)

    def _def(self, node, st):
        for d in node.decorator_list:
            st = self.expr(d, st)
        if not isinstance(node, ast.ClassDef):
            args = node.args
            for d in args.defaults + [d for d in args.kw_defaults if d]:
                st = self.expr(d, st)
        else:
            for b in node.bases + [k.value for k in node.keywords]:
                st = self.expr(b, st)
        return self.bind_name(node.name, st)

    s_FunctionDef = s_AsyncFunctionDef = s_ClassDef = _def

    def s_Import(self, node, st):
        for alias in node.names:
            st = self.bind_name((alias.asname or alias.name).split(".")[0],
                                st)
        return st

    s_ImportFrom = s_Import

    # -- bindings

    def bind_name(self, name, st):
        if st is None:
            return None
        if name in st.vt or name in st.done:
            st = st.copy()
            st.vt.pop(name, None)
            st.done = st.done - {name}
        return st

    def bind(self, target, value, st):
        if isinstance(target, ast.Name):
            st = self.bind_name(target.id, st)
            if value is not None and self.is_valuetask_call(value):
                st = st.copy()
                st.vt[target.id] = 0
            elif value is not None and self.c.is_complete(
                    value, self.scope, st):
                st = st.copy()
                st.done = st.done | {target.id}
            return st
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                st = self.bind(elt, None, st)
            return st
        if isinstance(target, ast.Starred):
            return self.bind(target.value, None, st)
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            st = self.expr(target.value, st)
            if isinstance(target, ast.Subscript):
                st = self.expr(target.slice, st)
        return st

    def is_valuetask_call(self, value):
        if not isinstance(value, ast.Call):
            return False
        if self.r.qual(value.func, self.scope) == f"{_ST}.ValueTask":
            return True
        return self.r.returns_kind(value, self.scope) == "valuetask"

    # -- conditions

    def refine(self, test, st):
        """(state if test is true, state if false): `t.is_completed`
        marks t completed on the true side, `not t.is_completed` on the
        false side."""
        if st is None:
            return None, None
        yes, no = st, st
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            no2, yes2 = self.refine(test.operand, st)
            return yes2, no2
        names = []
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
            for v in test.values:
                y, _ = self.refine(v, st)
                names.extend(y.done - st.done)
        elif (isinstance(test, ast.Attribute)
              and test.attr in _COMPLETED_PROPS
              and isinstance(test.value, ast.Name)):
            names.append(test.value.id)
        if names:
            yes = st.copy()
            yes.done = st.done | set(names)
        return yes, no

    # -- expressions

    def expr(self, node, st):
        if st is None:
            st = _State()
        method = getattr(self, "e_" + type(node).__name__, None)
        if method is not None:
            return method(node, st)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.expr, ast.comprehension,
                                  ast.keyword)):
                st = self.expr(child, st)
        return st

    def e_comprehension(self, node, st):
        return st       # walked by _comprehension

    def e_keyword(self, node, st):
        return self.expr(node.value, st)

    def e_Lambda(self, node, st):
        args = node.args
        for d in args.defaults + [d for d in args.kw_defaults if d]:
            st = self.expr(d, st)
        return st       # the body is its own flow

    def e_IfExp(self, node, st):
        st = self.expr(node.test, st)
        yes, no = self.refine(node.test, st)
        return _merge(self.expr(node.body, yes), self.expr(node.orelse, no))

    def e_BoolOp(self, node, st):
        st = self.expr(node.values[0], st)
        outs = [st]
        for v in node.values[1:]:
            st = self.expr(v, st)
            outs.append(st)
        return _merge(*outs)

    def e_NamedExpr(self, node, st):
        st = self.expr(node.value, st)
        return self.bind(node.target, node.value, st)

    def _comprehension(self, node, st):
        gens = node.generators
        st = self.expr(gens[0].iter, st)
        outer = self.scope
        self.scope = self.c.scopes.scope_of.get(node, outer)
        try:
            entry = st
            for turn in range(2):   # the body runs many times
                if turn and entry.same(_merge(entry, st)):
                    break
                for i, gen in enumerate(gens):
                    if i:
                        st = self.expr(gen.iter, st)
                    if (self._elements_done(gen.iter, st)
                            and isinstance(gen.target, ast.Name)):
                        st = st.copy()
                        st.done = st.done | {gen.target.id}
                    for cond in gen.ifs:
                        st = self.expr(cond, st)
                if isinstance(node, ast.DictComp):
                    st = self.expr(node.key, st)
                    st = self.expr(node.value, st)
                else:
                    st = self.expr(node.elt, st)
            return _merge(entry, st)
        finally:
            self.scope = outer

    e_ListComp = e_SetComp = e_DictComp = e_GeneratorExp = _comprehension

    def e_Await(self, node, st):
        self.in_await += 1
        try:
            st = self.expr(node.value, st)
        finally:
            self.in_await -= 1
        if self.is_async:
            self.c.st005(node, self.scope)
        target = node.value
        if (isinstance(target, ast.Call)
                and isinstance(target.func, ast.Attribute)
                and target.func.attr == "configure_await"):
            target = target.func.value
        if isinstance(target, ast.Name):
            st = self.consume(target, st)
            st = st.copy()
            st.done = st.done | {target.id}
        elif (isinstance(target, ast.Call) and self.r.qual(
                target.func, self.scope) == f"{_ST}.Task.when_all"):
            names: set = set()
            for a in target.args:
                elts = a.elts if isinstance(a, (ast.List, ast.Tuple)) else [a]
                names.update(e.id for e in elts if isinstance(e, ast.Name))
            st = st.copy()
            st.done = st.done | names
        return st

    def e_Attribute(self, node, st):
        st = self.expr(node.value, st)
        if node.attr == "result" and isinstance(node.ctx, ast.Load):
            if isinstance(node.value, ast.Name):
                st = self.consume(node.value, st)
            if self.is_async:
                self.c.st001_result(node, self.scope, st)
        return st

    def e_Call(self, node, st):
        func = node.func
        if isinstance(func, ast.Attribute):
            st = self.expr(func.value, st)
        else:
            st = self.expr(func, st)
        foreign = _is_foreign(self.r.qual(func, self.scope)) or (
            isinstance(func, ast.Attribute)
            and (func.attr in _CORO_CONSUMERS
                 or self.r.kind(func.value, self.scope) == "foreign"))
        if foreign:
            self.in_foreign_arg += 1
        try:
            for a in node.args:
                st = self.expr(a, st)
            for k in node.keywords:
                st = self.expr(k.value, st)
        finally:
            if foreign:
                self.in_foreign_arg -= 1
        # vt.get_awaiter().get_result() consumes vt
        if (isinstance(func, ast.Attribute) and func.attr == "get_result"
                and isinstance(func.value, ast.Call)
                and isinstance(func.value.func, ast.Attribute)
                and func.value.func.attr == "get_awaiter"
                and isinstance(func.value.func.value, ast.Name)):
            st = self.consume(func.value.func.value, st)
        if self.is_async:
            self.c.st001_call(node, self.scope, st,
                              self.in_await or self.in_foreign_arg)
            self.c.st006(node, self.scope)
        return st

    def consume(self, name_node, st):
        """A ValueTask local consumed (await, .result, get_result())."""
        name = name_node.id
        if name not in st.vt:
            return st
        st = st.copy()
        st.vt[name] += 1
        if st.vt[name] >= 2:
            self.c.st004(name_node)
        return st


# --------------------------------------------------------------- checker


class _Checker:
    def __init__(self, tree, lines, path, library, package):
        self.path = path
        self.library = library
        self.pos = _Lines(lines)
        self.scopes = _Scopes(tree, package)
        self.resolver = _Resolver(self.scopes)
        self.found: dict[tuple, Finding] = {}
        # Defs passed to `t.continue_with(fn)`: fn's first parameter is the
        # antecedent task, complete when fn runs (VSTHRD002 leaves `.Result`
        # in a task's own continuation alone).
        self.continuations: dict[ast.AST, str] = {}
        for call, scope in self.scopes.continue_with_calls:
            for fn in self.resolver.callee_defs(call.args[0], scope) or ():
                params = fn.args.posonlyargs + fn.args.args
                if params:
                    self.continuations[fn] = params[0].arg

    def report(self, code, line, byte_col, what, fix):
        col = self.pos.col(line, byte_col) + 1
        key = (line, col, code)
        if key not in self.found:
            message = f"{what} ({RULES[code].dotnet}) — {fix}"
            self.found[key] = Finding(self.path, line, col, code, message)

    def run(self):
        if not self.scopes.uses_sharptask:
            return []
        for owner, scope in self.scopes.scope_of.items():
            if scope.kind == "comprehension":
                continue
            # every owner but a comprehension (skipped above) has a body
            body = owner.body  # type: ignore[attr-defined]
            if isinstance(owner, ast.Lambda):
                _Flow(self, scope, body, False)
            else:
                _Flow(self, scope, body, scope.is_async)
            if isinstance(owner, _FUNCTIONS):
                self.st002(owner)
        return sorted(self.found.values())

    # -- ST001 (VSTHRD002)

    def is_complete(self, value, scope, st):
        """A value known not to be a pending task: a name in `st.done`
        (not a ValueTask: its second read is ST001 as well as ST004, SPEC
        D5), the value of an `await` (a result; `await Task.when_any(...)`
        gives the task that finished), `Task.from_result(...)` and its
        kin, `Task.completed_task`."""
        if isinstance(value, ast.Name):
            return value.id in st.done and value.id not in st.vt
        if isinstance(value, ast.Await):
            return True
        if isinstance(value, ast.Call):
            return self.resolver.qual(value.func, scope) in _COMPLETED_MAKERS
        return self.resolver.qual(value, scope) == \
            f"{_ST}.Task.completed_task"

    def _receiver_is_task_like(self, recv, scope, st):
        """Could `recv` be a sharptask task whose wait blocks?"""
        if isinstance(recv, ast.Name) and recv.id in ("self", "cls"):
            return False
        if self.is_complete(recv, scope, st):
            return False
        if isinstance(recv, (ast.Await, ast.Constant, ast.JoinedStr)):
            return False
        q = self.resolver.qual(recv, scope)
        if q is not None:
            return not _is_foreign(q)
        return self.resolver.kind(recv, scope) is None

    def st001_result(self, node, scope, st):
        if self._receiver_is_task_like(node.value, scope, st):
            line, col = _name_pos(node)
            self.report("ST001", line, col,
                        "`.result` blocks the thread inside an async def",
                        "`await` the task instead")

    def st001_call(self, call, scope, st, awaited_or_foreign_arg):
        func = call.func
        q = self.resolver.qual(func, scope)
        line, col = _name_pos(call)
        if q in ("sharptask.Task.wait_all", "sharptask.Task.wait_any"):
            short = q.rsplit(".", 1)[1]
            fix = "when_all" if short == "wait_all" else "when_any"
            self.report("ST001", line, col,
                        f"`Task.{short}(...)` blocks the thread inside an "
                        "async def", f"`await Task.{fix}(...)` instead")
            return
        if q == "time.sleep":
            self.report("ST001", line, col,
                        "`time.sleep(...)` blocks the thread inside an "
                        "async def", "`await Task.delay(seconds)` instead")
            return
        if q == "concurrent.futures.wait":
            self.report("ST001", line, col,
                        "`concurrent.futures.wait(...)` blocks the thread "
                        "inside an async def",
                        "`await Task.when_all(Task.from_future(f) ...)` "
                        "instead")
            return
        if not isinstance(func, ast.Attribute):
            return
        recv = func.value
        if func.attr == "wait" and not awaited_or_foreign_arg:
            if self._receiver_is_task_like(recv, scope, st):
                self.report("ST001", line, col,
                            "`.wait()` blocks the thread inside an async "
                            "def",
                            "`await` the task instead (`await "
                            "task.wait_async(timeout)` for a timeout)")
        elif (func.attr == "get_result" and isinstance(recv, ast.Call)
              and isinstance(recv.func, ast.Attribute)
              and recv.func.attr == "get_awaiter"):
            if self._receiver_is_task_like(recv.func.value, scope, st):
                self.report("ST001", line, col,
                            "`.get_awaiter().get_result()` blocks the "
                            "thread inside an async def",
                            "`await` the task instead")
        elif func.attr == "result":
            if self.resolver.kind(recv, scope) == "cf_future":
                self.report("ST001", line, col,
                            "`concurrent.futures.Future.result()` blocks "
                            "the thread inside an async def",
                            "`await Task.from_future(future)` instead")

    # -- ST002 (VSTHRD100)

    def st002(self, fn):
        if self.resolver.def_kind(fn) != "void":
            return
        a = fn.args
        names = [p.arg for p in a.posonlyargs + a.args]
        if names and names[0] in ("self", "cls"):
            names = names[1:]
        if (len(names) == 2 and names[0] == "sender"
                and names[1] in _EVENT_ARGS and not a.vararg
                and not a.kwarg and not a.kwonlyargs):
            return
        line, col = self.pos.def_name(fn)
        self.found.setdefault((line, col + 1, "ST002"), Finding(
            self.path, line, col + 1, "ST002",
            f"`@async_void` on `{fn.name}`, which is not an event handler "
            f"(its caller cannot await it or catch its exception) "
            f"({RULES['ST002'].dotnet}) — make it `@async_method` and await "
            f"its Task; keep `@async_void` for handlers of the form "
            f"`(sender, e)`"))

    # -- ST003 (VSTHRD110)

    def st003(self, call, scope):
        q = self.resolver.qual(call.func, scope)
        q = _canonical(q) if q else None
        if q in _TASK_FACTORIES:
            what = f"`{_TASK_FACTORIES[q]}(...)`"
            thing = "Task"
        else:
            kind = self.resolver.returns_kind(call, scope)
            if kind is None:
                return
            what = f"`{_callee_text(call.func)}(...)`"
            thing = "Task" if kind == "task" else "ValueTask"
        line, col = _name_pos(call)
        self.report("ST003", line, col,
                    f"the {thing} returned by {what} is dropped: its "
                    "exception goes unobserved",
                    "await it, keep it, or discard it explicitly with "
                    "`_ = ...`")

    # -- ST004 (CA2012)

    def st004(self, name_node):
        self.report("ST004", name_node.lineno, name_node.col_offset,
                    f"the ValueTask `{name_node.id}` is consumed a second "
                    "time",
                    "consume a ValueTask once; use `.preserve()` or "
                    "`.as_task()` to await it more than once")

    # -- ST005 (CA2007)

    def _configured_false(self, call, scope):
        if not (isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "configure_await"):
            return False
        args = list(call.args) + [k.value for k in call.keywords]
        if len(args) != 1:
            return False
        arg = args[0]
        if isinstance(arg, ast.Constant):
            return arg.value is False
        # ConfigureAwaitOptions without CONTINUE_ON_CAPTURED_CONTEXT
        flags = []
        stack = [arg]
        while stack:
            n = stack.pop()
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
                stack += [n.left, n.right]
                continue
            q = self.resolver.qual(n, scope)
            if not q or not q.startswith(
                    f"{_ST}.ConfigureAwaitOptions."):
                return False
            flags.append(q.rsplit(".", 1)[1])
        return "CONTINUE_ON_CAPTURED_CONTEXT" not in flags

    def st005(self, node, scope):
        if not self.library:
            return
        value = node.value
        if self._configured_false(value, scope):
            return
        if isinstance(value, ast.Call):
            q = self.resolver.qual(value.func, scope)
            if q == f"{_ST}.Task.yield_":
                return      # YieldAwaitable has no configure_await
            if self.resolver.is_plain_coroutine(value, scope):
                return      # runs inline: its own awaits are checked
        if _is_foreign(self.resolver.root_qual(value, scope)) or \
                self.resolver.kind(value, scope) is not None:
            return          # another library's awaitable
        self.report("ST005", node.lineno, node.col_offset,
                    "`await` without `.configure_await(False)` in library "
                    "code: the rest of the method resumes on the caller's "
                    "context",
                    "`await x.configure_await(False)`")

    # -- ST006

    def st006(self, call, scope):
        func = call.func
        q = self.resolver.qual(func, scope)
        if q == "asyncio.run":
            what = "`asyncio.run(...)`"
        elif isinstance(func, ast.Attribute) and \
                func.attr == "run_until_complete":
            what = "`run_until_complete(...)`"
        else:
            return
        line, col = _name_pos(call)
        self.report("ST006", line, col,
                    f"{what} inside an async def runs a nested event loop "
                    "and blocks the caller as a sync wait does",
                    "`await` the coroutine instead")


def check_tree(tree: ast.AST, lines: Iterable[str], path: str = "<string>",
               *, library: bool = False,
               package: str | None = None) -> list[Finding]:
    """Run every rule over a parsed module; return its findings sorted by
    line and column (noqa comments are not applied here: the caller does,
    as flake8 does for plugins).

    `lines` are the source's lines (for character columns), `library`
    turns ST005 on, `package` is the dotted package the module lives in
    (for relative imports), if known.
    """
    lines = [ln.rstrip("\r\n") for ln in lines]
    return _Checker(tree, lines, path, library, package).run()
