"""The benchmark runner: `python -m sharptask bench [--quick] [--only IDS]`.

Runs the benchmark workloads (W1-W12, listed in _benchmarks.WORKLOADS and
described on the documentation's benchmarks page, docs/benchmarks.md) that
live in `sharptask._benchmarks`, each against its peer in this same process, with a
progress indicator on stderr; prints the interpreter, the CPU count and
whether uvloop is used; prints one result line per comparison (with its
ratio sharptask/peer) and a table; and writes `results.json` and
`results.md` to the output directory. `benchmarks/run.py` and the scripts in
`benchmarks/python/` call into this module.

Benchmarks are not tests: a missed target is reported, not raised. A
workload that crashes is reported and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback

from ._benchmarks import _harness as h
from ._benchmarks import load, workload_ids


class _Progress:
    """One line per workload on stderr: a dot per measured round."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.index = 0
        self.started = 0.0

    def start(self, wid: str, title: str) -> None:
        self.index += 1
        self.started = time.perf_counter()
        self._write(f"[{self.index}/{self.total}] {wid} {title} ")

    def tick(self) -> None:
        self._write(".")

    def finish(self, status: str) -> None:
        took = time.perf_counter() - self.started
        self._write(f" {status} ({took:.1f} s)\n")

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text)
            self.stream.flush()


def _parse(argv, prog, default_out):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the sharptask benchmarks against asyncio and "
                    "concurrent.futures in one process and print the ratios.")
    parser.add_argument(
        "--quick", action="store_true",
        help="fewer iterations per round (a smoke run under a minute)")
    parser.add_argument(
        "--only", metavar="IDS", default="",
        help="comma-separated workload ids to run, e.g. W1,W4a "
             f"(default: all of {', '.join(workload_ids())})")
    parser.add_argument(
        "--out", metavar="DIR", default=default_out,
        help="write results.json and results.md there"
             + (f" (default: {default_out})" if default_out else
                " (default: benchmarks/ when run from the repository, "
                "else nothing is written)"))
    parser.add_argument(
        "--no-progress", action="store_true",
        help="do not print the progress indicator on stderr")
    return parser.parse_args(argv)


def _selected(only: str):
    if not only:
        return workload_ids()
    wanted = [part.strip() for part in only.split(",") if part.strip()]
    known = {wid.lower(): wid for wid in workload_ids()}
    unknown = [w for w in wanted if w.lower() not in known]
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)}; "
                         f"known: {', '.join(workload_ids())}")
    return [known[w.lower()] for w in wanted]


def _default_out():
    """benchmarks/ of the repository when run from its top directory."""
    candidate = os.path.join(os.getcwd(), "benchmarks")
    if os.path.isfile(os.path.join(candidate, "run.py")):
        return candidate
    return None


def run_workloads(ids, quick, progress):
    """Run the workloads; return (comparisons, errors, notes by id)."""
    comparisons, errors, notes = [], [], {}
    for wid in ids:
        module = load(wid)
        progress.start(wid, module.TITLE)
        ctx = h.Context(quick=quick, tick=progress.tick)
        try:
            found = module.run(ctx)
        except Exception as exc:  # report it, go on with the others
            progress.finish("FAILED")
            errors.append({"id": wid, "error": repr(exc),
                           "traceback": traceback.format_exc()})
            continue
        progress.finish("done")
        comparisons.extend(found)
        if ctx.notes:
            notes[wid] = list(ctx.notes)
    return comparisons, errors, notes


def _table_rows(comparisons):
    rows = []
    for c in comparisons:
        met = {True: "yes", False: "no", None: "—"}[c.met]
        rows.append([
            c.id, c.short or c.workload, h.fmt_stats(c.ours), c.peer.label,
            h.fmt_stats(c.peer), f"{c.ratio:.3f}", c.target_text or "—", met,
        ])
    return rows


_HEADER = ["id", "workload", "sharptask median [min–max]", "peer",
           "peer median [min–max]", "ratio", "target", "met"]


def format_text_table(comparisons) -> str:
    rows = [_HEADER] + _table_rows(comparisons)
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(env, quick, comparisons, errors, notes) -> str:
    out = ["# sharptask benchmark results", ""]
    out += [f"- {line}" for line in h.environment_lines(env)]
    out.append(f"- mode: {'--quick' if quick else 'full'}; "
               f"{h.ROUNDS} alternating rounds per side after a warm-up; "
               "medians with [min–max] over rounds; ratio = sharptask / "
               "peer (lower is better)")
    out += ["", "| " + " | ".join(_HEADER) + " |",
            "|" + "---|" * len(_HEADER)]
    for row in _table_rows(comparisons):
        out.append("| " + " | ".join(cell.replace("|", "\\|")
                                     for cell in row) + " |")
    extra = [f"- {c.id}: {n}" for c in comparisons for n in c.notes]
    extra += [f"- {wid}: {n}" for wid, ns in notes.items() for n in ns]
    if extra:
        out += ["", "Notes:", ""] + extra
    if errors:
        out += ["", "Failed workloads:", ""]
        out += [f"- {e['id']}: `{e['error']}`" for e in errors]
    return "\n".join(out) + "\n"


def write_results(out_dir, env, quick, comparisons, errors, notes):
    os.makedirs(out_dir, exist_ok=True)
    payload = {
        "generated": datetime.datetime.now(datetime.timezone.utc)
                             .isoformat(timespec="seconds"),
        "environment": env,
        "quick": quick,
        "rounds": h.ROUNDS,
        "results": [c.as_dict() for c in comparisons],
        "notes": notes,
        "errors": errors,
    }
    json_path = os.path.join(out_dir, "results.json")
    md_path = os.path.join(out_dir, "results.md")
    with open(json_path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(format_markdown(env, quick, comparisons, errors, notes))
    return json_path, md_path


def main(argv=None, *, prog="python -m sharptask bench", default_out=None,
         write_files=True) -> int:
    """Run the benchmarks as the command line asks; return the exit status."""
    args = _parse(argv, prog, default_out)
    ids = _selected(args.only)
    out_dir = args.out if args.out else (_default_out() if write_files
                                         else None)
    env = h.environment()
    for line in h.environment_lines(env):
        print(line)
    print(f"mode: {'--quick' if args.quick else 'full'}, workloads: "
          f"{', '.join(ids)}")
    sys.stdout.flush()

    progress = _Progress(len(ids), enabled=not args.no_progress)
    comparisons, errors, notes = run_workloads(ids, args.quick, progress)

    print()
    for c in comparisons:
        print(c.line())
        for note in c.notes:
            print(f"    note: {note}")
    for wid, ns in notes.items():
        for note in ns:
            print(f"{wid}: note: {note}")
    if comparisons:
        print()
        print(format_text_table(comparisons))
    for e in errors:
        print(f"\n{e['id']} FAILED: {e['error']}", file=sys.stderr)
        print(e["traceback"], file=sys.stderr)
    if out_dir:
        paths = write_results(out_dir, env, args.quick, comparisons, errors,
                              notes)
        print(f"\nwrote {paths[0]} and {paths[1]}")
    return 1 if errors else 0


def main_single(wid, argv=None, *, prog=None) -> int:
    """Entry point of one benchmarks/python/<workload>.py script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return main(argv + ["--only", wid], prog=prog or f"{wid} benchmark",
                write_files=False)


if __name__ == "__main__":
    sys.exit(main())
