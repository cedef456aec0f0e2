"""Docstrings written for ``help()``, made safe for reStructuredText.

The package's docstrings are plain text meant for a terminal: the C types'
ones (csrc/binding) use no markup at all, and write ``fn(*args)``,
``yield_()`` or ``a | b`` freely; the Python ones use ``double backticks``
and the odd ``:class:`` role.  Read as reST, a lone ``*`` opens emphasis, a
``name_`` is a hyperlink reference and an indented example is a block quote
that breaks at its first deeper line; with warnings as errors, any of those
stops the build.  So before autodoc renders a docstring, this hook:

- keeps roles (``:class:`Task```) and ``double-backtick`` literals as they
  are, and turns a single-backtick `name` into a literal too;
- escapes ``*``, ``|`` and a word's trailing ``_`` everywhere else;
- turns every indented block into a literal block (an example or a table,
  shown as written), and puts a blank line before a list that follows a
  line of text;
- links every rule id that has an entry in semantics.md (``SPEC A3``,
  ``R7.2``) to that entry.

No docstring is changed in the package; only what the site shows.
"""

from __future__ import annotations

import os
import re

# A role with its text, a ``literal``, or a `single` backtick span.
_SPANS = re.compile(r"(:[\w:.-]+:`[^`]+`|``.+?``|`[^`\n]+`)")
_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?=[\s.,:;!?)\]}'\"/\\>-]|$)")
_LIST_ITEM = re.compile(r"^(?:[-*+] |\d+[.)] )")
_RULE_ID = re.compile(
    r"(?<![\w.\\])([TSACVKPDHI]\d{1,2}a?|[RS]\d{1,2}\.\d{1,2})(?![\w]|\.\d)")
# rule id -> label of its entry in semantics.md, filled at builder-inited
_RULES: dict[str, str] = {}


def _link_rules(text: str) -> str:
    def link(m):
        label = _RULES.get(m.group(1))
        if label is None:
            return m.group(0)
        return f":ref:`{m.group(1)} <{label}>`"
    return _RULE_ID.sub(link, text)


def _escape_text(text: str) -> str:
    text = text.replace("\\", "\\\\")
    text = text.replace("*", r"\*").replace("|", r"\|")
    return _TRAILING_UNDERSCORE.sub(r"\\_", text)


def _inline(line: str) -> str:
    out = []
    for i, part in enumerate(_SPANS.split(line)):
        if i % 2 == 0:
            out.append(_link_rules(_escape_text(part)))
        elif part.startswith("`") and not part.startswith("``"):
            out.append("``" + part[1:-1] + "``")  # `x` -> ``x``
        else:
            out.append(part)
    return "".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def convert(lines: list[str]) -> list[str]:
    """The reST form of a plain docstring (already dedented)."""
    out: list[str] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            out.append("")
            i += 1
            continue
        if _indent(line) > 0 and not (out and out[-1].strip()
                                      and _LIST_ITEM.match(
                                          out[-1].lstrip())):
            # an indented block: shown as written, in a literal block
            block = []
            while i < n and (not lines[i].strip() or _indent(lines[i]) > 0):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            last = next((x for x in reversed(out) if x.strip()), "")
            if _indent(last) > 0 or not last.rstrip().endswith(":"):
                if out and out[-1].strip():
                    out.append("")
                out.append("::")
            elif not last.rstrip().endswith("::"):
                # "... like this:" becomes "... like this::"
                idx = len(out) - 1 - out[::-1].index(last)
                out[idx] = last.rstrip() + ":"
            out.append("")
            out += ["    " + b if b.strip() else "" for b in block]
            out.append("")
            continue
        stripped = line.lstrip()
        if (_LIST_ITEM.match(stripped) and out and out[-1].strip()
                and not _LIST_ITEM.match(out[-1].lstrip())
                and _indent(out[-1]) == 0):
            out.append("")
        out.append(_inline(line))
        i += 1
    return out


def _on_docstring(app, what, name, obj, options, lines):
    lines[:] = convert(list(lines))


def _load_rules(app):
    """Read the entries of semantics.md: a label line, then its heading."""
    path = os.path.join(app.srcdir, "semantics.md")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    _RULES.clear()
    for prev, line in zip(lines, lines[1:]):
        label = re.fullmatch(r"\(([\w-]+)\)=", prev.strip())
        head = re.match(r"^#{3,4} (\S+) · ", line)
        if label and head:
            _RULES[head.group(1)] = label.group(1)


def setup(app):
    app.connect("builder-inited", _load_rules)
    app.connect("autodoc-process-docstring", _on_docstring)
    return {"version": "1", "parallel_read_safe": True}
