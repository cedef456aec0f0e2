"""The command line: `python -m sharptask demo [NAME]`,
`python -m sharptask bench [--quick]` (SPEC D4) and
`python -m sharptask lint PATH...` (SPEC D5)."""

from __future__ import annotations

import sys

USAGE = """usage: python -m sharptask COMMAND [ARGS]

commands:
  demo [NAME]       run the article's scenarios as explained experiments
                    (python -m sharptask demo --help lists them)
  bench [--quick]   run the benchmarks against asyncio and concurrent.futures
  lint PATH...      check code for the article's async best practices
                    (python -m sharptask lint --help)
"""


def main(argv=None) -> int:
    """Dispatch to a sub-command; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
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
    print(f"unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
