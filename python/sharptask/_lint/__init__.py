"""sharptask's analyzer (SPEC D5, issue 13): the article's best practices
as lint rules, like .NET's analyzers (VSTHRD002, VSTHRD100, VSTHRD110,
CA2012, CA2007, VSTHRD103).

    python -m sharptask lint PATH... [--format json] [--library]
    flake8 --select ST PATH...

It reads source with the `ast` module and never imports the code it
checks.  The rules, each with a bad and a good example, are in
docs/lint.md:

    ST001  a blocking wait inside an async def            (VSTHRD002)
    ST002  @async_void on something not an event handler  (VSTHRD100)
    ST003  a Task dropped by an expression statement      (VSTHRD110)
    ST004  a ValueTask consumed twice                     (CA2012)
    ST005  await without .configure_await(False), library (CA2007)
    ST006  a nested event loop inside an async def        (VSTHRD103)

Layout: `_checker.py` holds the rules (one entry point, `check_tree`),
`_cli.py` the command line, noqa handling and file discovery,
`_flake8.py` the flake8 plugin over the same `check_tree`.
"""

from ._checker import RULES, Finding, check_tree
from ._cli import check_file, check_source, main

__all__ = ["RULES", "Finding", "check_file", "check_source", "check_tree",
           "main"]
