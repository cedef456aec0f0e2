"""The command line: `python -m sharptask demo [NAME]`,
`python -m sharptask bench [--quick]` (SPEC D4),
`python -m sharptask lint PATH...` (SPEC D5),
`python -m sharptask trace SCRIPT ... -o FILE.json` (SPEC D2) and
`python -m sharptask --version`."""

from __future__ import annotations

import os
import sys

USAGE = """usage: python -m sharptask COMMAND [ARGS]

commands:
  demo [NAME]       run the article's scenarios as explained experiments
                    (python -m sharptask demo --help lists them)
  bench [--quick]   run the benchmarks against asyncio and concurrent.futures
  lint PATH...      check code for the article's async best practices
                    (python -m sharptask lint --help)
  trace SCRIPT [ARGS...] -o FILE.json [--png FILE.png]
                    run a script under sharptask.trace() and save the trace
                    (python -m sharptask trace --help)

options:
  --version         print sharptask's version and exit
"""


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] in ("--version", "-V", "version"):
        from . import __version__
        print(f"sharptask {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command == "demo":
        from .demo import main as demo_main
        return demo_main(rest)
    if command == "bench":
        from .bench import main as bench_main
        return bench_main(rest)
    if command == "lint":
        from ._lint import main as lint_main
        return lint_main(rest)
    if command == "trace":
        from ._trace import main as trace_main
        return trace_main(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command; return the exit status.

    Output piped into a reader that stops early (``... | head``) ends the
    command quietly: no BrokenPipeError traceback, exit status 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = _dispatch(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        # The reader is gone.  Point stdout at /dev/null so that the
        # interpreter's own flush at exit does not fail again (the recipe
        # of the `signal` module's documentation).
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
