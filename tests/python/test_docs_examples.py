"""Every code example of the documentation site runs (issue 14, docs item
"every code example on the site runs in the test suite").

The site's sources are Markdown under docs/. Each Python block — a
```` ```python ```` fence or a ```` ```{code-block} python ```` directive — is
a complete program: this file runs each one in a fresh interpreter, with
warnings turned into errors, and requires exit status 0 and nothing on stderr
(so an example that leaves an unobserved task exception behind, SPEC T11,
fails too). The `assert` lines of the examples are the claims of the text.
Console blocks that run a demo name a scenario that exists (SPEC D4).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import sharptask.demo as demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")

# An opening fence: ``` or more backticks, then a language or a directive.
_FENCE = re.compile(r"^(?P<ticks>`{3,})(?P<info>[^`\n]*)$")


def _blocks(path):
    """(line, language, code) of every fenced block of a Markdown file."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    found = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i].strip())
        if not m:
            i += 1
            continue
        ticks, info = m.group("ticks"), m.group("info").strip()
        start = i + 1
        j = start
        while j < len(lines) and lines[j].strip() != ticks:
            j += 1
        body = lines[start:j]
        lang = info
        d = re.match(r"\{(code-block|code|sourcecode)\}\s*(\S*)", info)
        if d:
            lang = d.group(2)
            # directive options (":caption: ...") come first
            while body and re.match(r"^\s*:[\w-]+:", body[0]):
                body = body[1:]
        found.append((start, lang.split()[0] if lang else "",
                      "\n".join(body) + "\n"))
        i = j + 1
    return found


def _markdown_files():
    out = []
    for folder, _dirs, files in os.walk(DOCS):
        if "_build" in folder or "_generated" in folder:
            continue
        for name in files:
            if name.endswith(".md"):
                out.append(os.path.join(folder, name))
    return sorted(out)


def _examples(lang):
    cases = []
    for path in _markdown_files():
        rel = os.path.relpath(path, ROOT)
        for line, block_lang, code in _blocks(path):
            if block_lang == lang:
                cases.append(pytest.param(code, id=f"{rel}:{line}"))
    return cases


PYTHON_EXAMPLES = _examples("python")
CONSOLE_EXAMPLES = _examples("console")


def test_docs_have_examples():
    """Issue 14 docs item: the extraction finds the examples (a broken
    pattern would make every test below vanish silently)."""
    assert len(PYTHON_EXAMPLES) >= 20
    tutorial = [p for p in PYTHON_EXAMPLES
                if "docs/tutorial/" in p.id.replace(os.sep, "/")]
    assert len(tutorial) >= 8


@pytest.mark.timeout(90)
@pytest.mark.parametrize("code", PYTHON_EXAMPLES)
def test_docs_python_example_runs(code, tmp_path):
    """Issue 14 docs item: a Python example of the site runs to completion,
    with warnings as errors and nothing on stderr."""
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-W", "error", str(script)],
        capture_output=True, text=True, timeout=80, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr


@pytest.mark.parametrize("code", CONSOLE_EXAMPLES)
def test_docs_console_demo_names_exist(code):
    """SPEC D4 / issue 14 docs item: a `python -m sharptask demo NAME` shown
    on the site names a scenario that exists."""
    names = re.findall(r"python -m sharptask demo ([a-z][a-z-]*)", code)
    for name in names:
        assert name in demo.SCENARIOS, name


def test_docs_demo_names_in_prose_exist():
    """SPEC D4 / issue 14 docs item: every demo the pages send the reader to
    exists, and every demo has a tutorial page that names it."""
    named = set()
    for path in _markdown_files():
        with open(path, encoding="utf-8") as f:
            named.update(re.findall(r"python -m sharptask demo ([a-z][a-z-]+)",
                                    f.read()))
    assert named <= set(demo.SCENARIOS), named - set(demo.SCENARIOS)
    tutorial = os.path.join(DOCS, "tutorial")
    for name in demo.SCENARIOS:
        page = os.path.join(tutorial, f"{name}.md")
        assert os.path.exists(page), f"no tutorial page for demo {name}"
        with open(page, encoding="utf-8") as f:
            assert f"python -m sharptask demo {name}" in f.read(), name
