"""The documentation's name table and API reference match the package
(SPEC §0, issue 14 docs items "a .NET <-> sharptask name table (every type
and member ...): verify each name exists at runtime" and "the API
reference").

docs/dotnet-names.md is a set of Markdown tables `| .NET | sharptask | what
differs |`; every backticked name in the sharptask column is resolved at run
time, and every public name of the package (each name of `__all__`, and each
public member of each public class, enum members included) must appear
there. docs/api.md must document every name of `__all__`.
"""

from __future__ import annotations

import builtins
import enum
import os
import re

import pytest

import sharptask as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NAMES_PAGE = os.path.join(ROOT, "docs", "dotnet-names.md")
API_PAGE = os.path.join(ROOT, "docs", "api.md")

_NAME = re.compile(r"`([A-Za-z_][\w.]*)(?:\(\))?`")


def _table_names():
    """Every name of the sharptask column, with the line it is on."""
    names = {}
    with open(NAMES_PAGE, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.startswith("|") or set(line.strip()) <= set("|-"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 3 or cells[1] == "sharptask":
                continue
            for name in _NAME.findall(cells[1]):
                names.setdefault(name, lineno)
    return names


TABLE = _table_names()


def _instance_of(cls):
    """An instance, for attributes that only instances carry."""
    if cls is st.UiThread:
        return None  # made (and closed) by the caller
    makers = {
        st.OperationCanceledError: lambda: st.OperationCanceledError("x"),
        st.TaskCanceledError: lambda: st.TaskCanceledError(),
        st.AsyncDump: st.dump_async,
    }
    maker = makers.get(cls)
    return maker() if maker else None


def _resolve(name):
    head, *rest = name.split(".")
    if hasattr(st, head):
        obj = getattr(st, head)
    elif head in ("TimeoutError", "TypeError", "ValueError") and not rest:
        return getattr(builtins, head)
    else:
        raise AttributeError(f"sharptask has no {head!r}")
    for i, attr in enumerate(rest):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            if i != len(rest) - 1 or not isinstance(obj, type):
                raise
            if obj is st.UiThread:
                with st.UiThread() as ui:
                    return getattr(ui, attr)
            inst = _instance_of(obj)
            if inst is None:
                raise
            obj = getattr(inst, attr)
    return obj


def test_docs_name_table_is_found():
    """Issue 14 docs item: the table parses (a broken pattern would make
    the checks below vacuous)."""
    assert len(TABLE) > 250
    assert "Task.configure_await" in TABLE


@pytest.mark.parametrize("name", sorted(TABLE))
def test_docs_name_table_entry_exists(name):
    """SPEC §0 / issue 14 docs item: a sharptask name of the table exists at
    run time."""
    try:
        _resolve(name)
    except AttributeError as exc:
        pytest.fail(f"dotnet-names.md line {TABLE[name]}: `{name}` does not "
                    f"exist ({exc})")


_INHERITED = (set(dir(object)) | set(dir(BaseException))
              | set(dir(ExceptionGroup)) | set(dir(int)))


def _public_members(obj):
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        return list(obj.__members__)
    cls = obj if isinstance(obj, type) else type(obj)
    skip = set(_INHERITED)
    if issubclass(cls, enum.Enum):
        skip |= set(dir(enum.Enum))
    return [m for m in dir(cls) if not m.startswith("_") and m not in skip]


def _expected():
    out = []
    for name in st.__all__:
        out.append(name)
        obj = getattr(st, name)
        if isinstance(obj, type) or name == "ThreadPool":
            out += [f"{name}.{m}" for m in _public_members(obj)]
    return out


@pytest.mark.parametrize("name", _expected())
def test_docs_name_table_covers_public_name(name):
    """SPEC §0 / issue 14 docs item: every public name of the package
    (and every public member of a public class) has a row in the name
    table."""
    assert name in TABLE, f"`{name}` is missing from docs/dotnet-names.md"


def test_docs_api_reference_covers_all():
    """Issue 14 docs item: the API reference documents every name of
    sharptask.__all__."""
    with open(API_PAGE, encoding="utf-8") as f:
        text = f.read()
    documented = set(re.findall(r"\.\. auto\w+:: sharptask\.(\w+)", text))
    missing = sorted(set(st.__all__) - documented)
    assert not missing, f"docs/api.md does not document {missing}"
