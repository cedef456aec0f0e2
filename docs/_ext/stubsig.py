"""Signatures for the API reference from the package's ``.pyi`` stubs.

autodoc imports the installed package, so the text of every entry is the
docstring users see with ``help()`` (for the C types, the one written in
csrc/binding).  What the runtime cannot give is a typed signature: a C
method has at most a ``__text_signature__`` with no types, and some C
types have none at all.  This extension reads every ``*.pyi`` file that
ships in the package, indexes its classes, functions and methods by
qualified name (``Task.run``, ``ValueTask.__init__``), and hands autodoc
the stub's signature (parameters, annotations, return type; every
``@overload`` on its own line) wherever the stub has one.  Anything the
stubs do not cover keeps the signature autodoc found at runtime.
"""

from __future__ import annotations

import ast
import pathlib

_PREFIX = "sharptask."
_SIGNATURES: dict[str, list[tuple[str, str]]] = {}


def _is_overload(node: ast.FunctionDef) -> bool:
    for dec in node.decorator_list:
        name = dec.attr if isinstance(dec, ast.Attribute) else getattr(
            dec, "id", None)
        if name == "overload":
            return True
    return False


def _is_property(node: ast.FunctionDef) -> bool:
    for dec in node.decorator_list:
        name = dec.attr if isinstance(dec, ast.Attribute) else getattr(
            dec, "id", None)
        if name in ("property", "setter", "getter", "deleter"):
            return True
    return False


def _binds_first(node: ast.FunctionDef, in_class: bool) -> bool:
    """True when the first parameter is self/cls (dropped from the text)."""
    if not in_class:
        return False
    for dec in node.decorator_list:
        if getattr(dec, "id", None) == "staticmethod":
            return False
    return True


def _format(node: ast.FunctionDef, in_class: bool) -> tuple[str, str]:
    args = node.args
    if _binds_first(node, in_class):
        args = ast.arguments(
            posonlyargs=list(args.posonlyargs), args=list(args.args),
            vararg=args.vararg, kwonlyargs=args.kwonlyargs,
            kw_defaults=args.kw_defaults, kwarg=args.kwarg,
            defaults=list(args.defaults))
        if args.posonlyargs:
            args.posonlyargs.pop(0)
        elif args.args:
            args.args.pop(0)
    ret = ""
    if node.returns is not None and node.name not in ("__init__",
                                                      "__new__"):
        ret = ast.unparse(node.returns)
    return f"({ast.unparse(args)})", ret


def _index(stub_dir: pathlib.Path) -> dict[str, list[tuple[str, str]]]:
    """qualified name -> its signatures, from every stub of the package."""
    found: dict[str, list[tuple[str, str]]] = {}

    def visit(body, prefix: str, in_class: bool) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + node.name
                if _is_property(node):
                    if node.returns is not None and name not in found:
                        found[name] = [("", ast.unparse(node.returns))]
                    continue
                sig = _format(node, in_class)
                if _is_overload(node):
                    found.setdefault(name, []).append(sig)
                elif name not in found:
                    found[name] = [sig]

    # _native.pyi (the C types) first; a name in several stubs keeps the
    # first one found.
    for path in sorted(stub_dir.glob("*.pyi"),
                       key=lambda p: (p.name != "_native.pyi", p.name)):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        visit(tree.body, "", False)
    return found


def lookup(full_name: str, obj_type: str):
    """The stub signatures of ``sharptask.X.y`` as (args, return) pairs,
    or None when the stubs do not have it."""
    if not full_name.startswith(_PREFIX):
        return None
    qual = full_name[len(_PREFIX):]
    if obj_type in ("class", "exception"):
        return (_SIGNATURES.get(qual + ".__init__")
                or _SIGNATURES.get(qual + ".__new__"))
    if obj_type in ("function", "method", "decorator", "property"):
        return _SIGNATURES.get(qual)
    return None


def _patch_autodoc() -> None:
    """Make the stubs the first source of signatures.

    autodoc asks ``_extract_signature_from_object`` for the runtime
    signature; where the stubs have one, it gets the stub's instead, so a
    C type whose runtime signature is missing or broken is still shown
    with its typed signature (and no "error while formatting arguments"
    warning).  Sphinx is pinned in requirements.txt; if this internal moves,
    the build stops here rather than silently losing the stub signatures.
    """
    from sphinx.ext.autodoc._dynamic import _signatures as mod

    original = mod._extract_signature_from_object
    if getattr(original, "_stubsig", False):
        return

    def extract(*args, props, **kwargs):
        found = lookup(props.full_name, props.obj_type)
        if found:
            return list(found)
        return original(*args, props=props, **kwargs)

    extract._stubsig = True
    mod._extract_signature_from_object = extract

    # _record_typehints feeds autodoc_typehints = "description" (not used
    # here) from inspect.signature(), which raises more than the
    # TypeError/ValueError it expects on a C type whose text signature
    # inspect cannot parse; the stub signature is shown either way.
    record = mod._record_typehints

    def record_quietly(*args, **kwargs):
        try:
            return record(*args, **kwargs)
        except Exception:
            return None

    mod._record_typehints = record_quietly


def _on_inited(app):
    import sharptask
    stub_dir = pathlib.Path(sharptask.__file__).parent
    _SIGNATURES.clear()
    _SIGNATURES.update(_index(stub_dir))


def setup(app):
    app.connect("builder-inited", _on_inited)
    _patch_autodoc()
    return {"version": "1", "parallel_read_safe": True,
            "env_version": 1}
