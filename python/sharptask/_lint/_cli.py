"""`python -m sharptask lint PATH...` (SPEC D5): files and folders in,
findings out, one a line or as JSON.

Everything a source file needs before the checker sees it lives here:
reading (with the encoding its coding cookie names), parsing, the
package it belongs to (for relative imports), the `pyproject.toml` that
may turn ST005 on, and `# noqa` comments, read the way flake8 reads them
so that the command line and `flake8 --select ST` agree finding for
finding.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import re
import sys
import tokenize

from ._checker import RULES, Finding, check_tree

import tomllib

__all__ = ["main", "check_source", "check_file", "library_default",
           "package_of", "noqa_filter"]

# Folders never descended into (flake8's default exclusions, plus every
# hidden folder: .venv, .git, .tox ...).
_SKIP_DIRS = {"__pycache__", "CVS", "node_modules"}

# `# noqa`, `# noqa: ST001` and `# noqa:ST001,ST004`, any case: the same
# grammar as flake8's, whose codes are letters then digits.
_NOQA = re.compile(
    r"# noqa(?::\s?(?P<codes>(?:[A-Z]+[0-9]+(?:[,\s]+)?)+))?", re.I)
_NOQA_FILE = re.compile(r"\s*# flake8[:=]\s*noqa", re.I)


# ----------------------------------------------------------------- noqa


def _noqa_lines(source: str) -> dict[int, str]:
    """Line number -> the text searched for `# noqa` when a finding is on
    that line: the line itself, or every line of a token that spans
    several (a triple-quoted string, a backslash continuation), joined,
    as flake8 does."""
    lines = source.splitlines(keepends=True)
    mapping: dict[int, str] = {}
    first = last = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.ENDMARKER, tokenize.DEDENT):
                continue
            if first is None or last is None:
                first, last = tok.start[0], tok.end[0]
            else:
                first, last = min(first, tok.start[0]), max(last, tok.end[0])
            if tok.type in (tokenize.NL, tokenize.NEWLINE):
                text = "".join(lines[first - 1:last])
                for n in range(first, last + 1):
                    mapping[n] = text
                first = last = None
    except (tokenize.TokenError, SyntaxError):
        return {}
    return mapping


def _silenced(code: str, text: str | None) -> bool:
    if text is None:
        return False
    m = _NOQA.search(text)
    if m is None:
        return False
    if m.group("codes") is None:
        return True             # a bare `# noqa` silences every code
    codes = [c for c in re.split(r"[,\s]", m.group("codes")) if c]
    return any(code.startswith(c) for c in codes)


def noqa_filter(findings: list[Finding], source: str) -> list[Finding]:
    """Drop the findings a `# noqa` comment silences (SPEC D5)."""
    if not findings:
        return findings
    if any(_NOQA_FILE.match(line) for line in source.splitlines()):
        return []               # `# flake8: noqa`: the whole file
    mapping = _noqa_lines(source)
    return [f for f in findings if not _silenced(f.code,
                                                 mapping.get(f.line))]


# ---------------------------------------------------------- per file


def package_of(path: str) -> str | None:
    """The dotted package a file belongs to, from the `__init__.py` files
    above it (`python/sharptask/demo.py` -> `sharptask`)."""
    folder = os.path.dirname(os.path.abspath(path))
    parts = []
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parts.append(os.path.basename(folder))
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return ".".join(reversed(parts)) or None


_library_cache: dict[str, bool] = {}


def library_default(path: str) -> bool:
    """`[tool.sharptask.lint] library` of the nearest `pyproject.toml`,
    looked up from the file's folder upward (False when there is none,
    or when the nearest one does not say)."""
    folder = os.path.dirname(os.path.abspath(path))
    seen = []
    value = False
    while True:
        if folder in _library_cache:
            value = _library_cache[folder]
            break
        seen.append(folder)
        candidate = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(candidate):
            value = _read_library(candidate)
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for f in seen:
        _library_cache[f] = value
    return value


def _read_library(pyproject: str) -> bool:
    try:
        with open(pyproject, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError):
        return False
    table = data.get("tool", {}).get("sharptask", {}).get("lint", {})
    return table.get("library", False) is True


def check_source(source: str, path: str = "<string>", *,
                 library: bool | None = None,
                 package: str | None = None) -> list[Finding]:
    """Check one module's source text; noqa comments applied.  Raises
    SyntaxError (or ValueError) if it does not parse.  `library=None`
    means: as the nearest pyproject.toml says."""
    tree = ast.parse(source, filename=path)
    if library is None:
        library = library_default(path)
    found = check_tree(tree, source.splitlines(), path, library=library,
                       package=package)
    return noqa_filter(found, source)


def _read(path: str) -> str:
    with open(path, "rb") as fh:
        data = fh.read()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


def check_file(path: str, *, library: bool | None = None) -> list[Finding]:
    """Check one file (read with its coding cookie's encoding)."""
    return check_source(_read(path), path, library=library,
                        package=package_of(path))


def _python_files(root: str):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and d not in _SKIP_DIRS
                         and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


# ---------------------------------------------------------- the command


def _parser() -> argparse.ArgumentParser:
    rules = "\n".join(f"  {r.code}  {r.title} ({r.dotnet})"
                      for r in RULES.values())
    p = argparse.ArgumentParser(
        prog="python -m sharptask lint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check code written against sharptask for the "
                    "article's async best practices,\nlike .NET's "
                    "analyzers (docs/lint.md).  Reads source only; "
                    "imports nothing\nit checks.",
        epilog=f"rules:\n{rules}\n\n"
               "`# noqa` or `# noqa: ST001` at the end of a line "
               "silences it.\nexit status: 0 no findings, 1 findings, "
               "2 usage error or a file that does\nnot parse.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a file, or a folder searched for *.py")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="one finding a line (default), or a JSON list")
    p.add_argument("--library", action="store_true",
                   help="library code: turn on ST005 (configure_await); "
                        "also `[tool.sharptask.lint] library = true` in "
                        "pyproject.toml")
    return p


def _write(stream, text: str) -> None:
    try:
        stream.write(text)
    except UnicodeEncodeError:
        stream.write(text.encode(stream.encoding or "ascii",
                                 "backslashreplace").decode(
            stream.encoding or "ascii"))


def main(argv=None) -> int:
    """Run the linter; return the exit status (SPEC D5)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:   # argparse: usage printed, 2 (or 0: -h)
        return exc.code if isinstance(exc.code, int) else 2
    status = 0
    files = []
    for path in args.paths:
        if os.path.isdir(path):
            files.extend(_python_files(path))
        elif os.path.isfile(path):
            files.append(path)
        else:
            _write(sys.stderr, f"{path}: no such file or folder\n")
            status = 2
    findings: list[Finding] = []
    for path in files:
        try:
            findings.extend(check_file(
                path, library=True if args.library else None))
        except SyntaxError as exc:
            line = exc.lineno or 1
            col = exc.offset or 1
            _write(sys.stderr, f"{path}:{line}:{col}: cannot parse: "
                               f"{exc.msg}\n")
            status = 2
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            _write(sys.stderr, f"{path}:1:1: cannot parse: {exc}\n")
            status = 2
    findings.sort()
    if args.format == "json":
        _write(sys.stdout, json.dumps(
            [f._asdict() for f in findings], indent=2) + "\n")
    else:
        for f in findings:
            _write(sys.stdout,
                   f"{f.path}:{f.line}:{f.col}: {f.code} {f.message}\n")
    if status:
        return status
    return 1 if findings else 0
