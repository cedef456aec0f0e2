"""The flake8 plugin (SPEC D5): the same checker as `python -m sharptask
lint`, registered under the entry point group `flake8.extension` with the
prefix `ST`, so `flake8 --select ST` runs rules ST001-ST006.

flake8 parses the file and applies `# noqa` itself; the plugin only
passes the tree and the lines to `check_tree`.  ST005 is on when
`--sharptask-library` is given (or `sharptask-library = true` in flake8's
configuration) or when the nearest pyproject.toml has
`[tool.sharptask.lint] library = true`, as for the command line.
"""

from __future__ import annotations

from .. import __version__
from ._checker import check_tree
from ._cli import library_default, package_of

__all__ = ["Plugin"]


class Plugin:
    """flake8 AST plugin: yields (line, column, "STnnn message", type)."""

    name = "sharptask"
    version = __version__
    library = False

    def __init__(self, tree, lines, filename="<string>"):
        self.tree = tree
        self.lines = lines
        self.filename = filename

    @classmethod
    def add_options(cls, option_manager) -> None:
        option_manager.add_option(
            "--sharptask-library", action="store_true", default=False,
            parse_from_config=True,
            help="sharptask: library code, turn on ST005 "
                 "(await without configure_await(False))")

    @classmethod
    def parse_options(cls, options) -> None:
        cls.library = bool(getattr(options, "sharptask_library", False))

    def run(self):
        real_file = self.filename not in ("stdin", "-", "<string>")
        library = self.library or library_default(
            self.filename if real_file else "./stdin.py")
        package = package_of(self.filename) if real_file else None
        for f in check_tree(self.tree, self.lines, self.filename,
                            library=library, package=package):
            yield f.line, f.col - 1, f"{f.code} {f.message}", type(self)
