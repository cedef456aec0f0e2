"""The driver of tools/bench-before-after.sh (issue 10, BENCHMARKS.md).

Issue 10: "Speed must not suffer: the W1–W12 ratios stay within 5 % of
today's, measured side by side before and after in one run."

Given two source trees, each with its extension built in place
(--before-tree, --after-tree; the script builds them), runs

    python -m sharptask bench --only ID --out DIR --no-progress [--quick]

in a child process per workload and variant, with PYTHONPATH=<tree>/python
so that each variant runs its own package and its own benchmarks (the child
checks that every sharptask module it imported comes from that tree). The
variants alternate: before then after for one workload, after then before
for the next, the other way round in the next round; every workload runs
--rounds times per variant. Each run's results.json gives, per result row,
the ratio sharptask / peer (itself the ratio of two medians over the bench's
own alternating inner rounds). The table shows per row the median over the
rounds of each variant's ratio ([min–max] with more than one round), the
change after / before - 1 in %, and a flag on each row that moved more than
--tolerance % (default 5) the bad way. A row that only one variant has
(W9, W2b ...) shows "—" in the other's column.

The bad way: results.json has no direction field; a ratio is lower-is-better
(harness: "lower is better: every workload here measures time": ns, blocks,
bytes per operation) unless the row says otherwise with "better":
"higher"/"lower" or "higher_is_better", or its unit is a rate ("items/s").
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from bench_trace_baseline import _env  # noqa: E402  (PYTHONPATH=<path>)

VARIANTS = ("before", "after")

# Child side. argv: TREE MODE [ARGS...]. Imports sharptask, refuses any
# sharptask module not from TREE/python/sharptask, then either prints the
# variant's workload ids (MODE "ids") or runs `python -m sharptask ARGS`.
_CHILD = r'''
import json
import os
import runpy
import sys

tree, mode = sys.argv[1], sys.argv[2]
expected = os.path.realpath(os.path.join(tree, "python", "sharptask"))
import sharptask
import sharptask._native
for name, mod in sorted(sys.modules.items()):
    if name != "sharptask" and not name.startswith("sharptask."):
        continue
    where = getattr(mod, "__file__", None)
    if where is None:
        continue
    where = os.path.realpath(where)
    if not (where + os.sep).startswith(expected + os.sep):
        sys.exit(f"bench-before-after: {name} was imported from {where}, "
                 f"not from {expected}")
if mode == "ids":
    from sharptask._benchmarks import workload_ids
    print(json.dumps(workload_ids()))
else:
    sys.argv = ["sharptask"] + sys.argv[3:]
    runpy.run_module("sharptask", run_name="__main__", alter_sys=True)
'''

_RANGE = re.compile(r"^W(\d+)([a-z]*)$", re.IGNORECASE)


class ChildError(RuntimeError):
    """A child could not run the variant it was given (wrong import...)."""


# ------------------------------------------------------------ selection

def _order_key(wid):
    m = _RANGE.match(wid)
    return (int(m.group(1)), m.group(2).lower()) if m else (10 ** 6, wid)


def default_ids(before_ids, after_ids, low=1, high=12):
    """Every workload W<low>..W<high> (with a letter: W2b, W4a) that either
    variant has, in numeric order."""
    found = {}
    for wid in list(after_ids) + list(before_ids):
        m = _RANGE.match(wid)
        if m and low <= int(m.group(1)) <= high:
            found.setdefault(wid.lower(), wid)
    return sorted(found.values(), key=_order_key)


def select_ids(only, before_ids, after_ids):
    """The workloads to run: --only's (case-insensitive, each known to at
    least one variant) or the default range."""
    if not only:
        return default_ids(before_ids, after_ids)
    known = {}
    for wid in list(after_ids) + list(before_ids):
        known.setdefault(wid.lower(), wid)
    wanted = [p.strip() for p in only.split(",") if p.strip()]
    unknown = [w for w in wanted if w.lower() not in known]
    if unknown:
        raise SystemExit(
            f"--only: unknown workload(s) {', '.join(unknown)}; the variants "
            f"know {', '.join(sorted(known.values(), key=_order_key))}")
    return [known[w.lower()] for w in wanted]


# ------------------------------------------------------------ children

def _child_env(tree):
    env = _env(os.path.join(tree, "python"))
    env.pop("PYTHONHOME", None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def workload_ids_of(tree, python=sys.executable, timeout=120):
    """The workload ids the variant in `tree` knows (its own
    sharptask._benchmarks.WORKLOADS); ChildError when its child does not
    import that variant."""
    done = subprocess.run([python, "-c", _CHILD, tree, "ids"],
                          env=_child_env(tree), cwd=tree, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise ChildError(f"{tree}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_bench(tree, wid, out_dir, quick, python=sys.executable,
              timeout=3600):
    """One `python -m sharptask bench --only wid` of the variant in `tree`;
    returns (results payload or None, wall seconds, problem text or None)."""
    os.makedirs(out_dir, exist_ok=True)
    args = [python, "-c", _CHILD, tree, "bench", "bench", "--only", wid,
            "--out", out_dir, "--no-progress"]
    if quick:
        args.append("--quick")
    started = time.perf_counter()
    with open(os.path.join(out_dir, "stdout.txt"), "w") as out, \
            open(os.path.join(out_dir, "stderr.txt"), "w+") as err:
        try:
            done = subprocess.run(args, env=_child_env(tree), cwd=tree,
                                  stdout=out, stderr=err, timeout=timeout)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = None
        err.seek(0)
        stderr = err.read()
    took = time.perf_counter() - started
    if "bench-before-after:" in stderr:
        raise ChildError(stderr.strip()[-2000:])
    path = os.path.join(out_dir, "results.json")
    payload = read_results(path) if os.path.isfile(path) else None
    problem = None
    if code is None:
        problem = f"timed out after {timeout} s"
    elif payload is None:
        problem = (f"exit status {code}, no results.json: "
                   f"{stderr.strip()[-500:]}")
    elif code != 0:
        problem = "; ".join(e.get("error", "?") for e in
                            payload.get("errors", [])) or f"exit {code}"
    if payload is not None:
        where = payload.get("environment", {}).get("sharptask_path", "")
        expected = os.path.join(tree, "python", "sharptask")
        if os.path.realpath(where) != os.path.realpath(expected):
            raise ChildError(f"{wid}: the bench ran sharptask from {where}, "
                             f"not from {expected}")
    return payload, took, problem


# ------------------------------------------------------------ parsing

def read_results(path):
    """A results.json written by `python -m sharptask bench`."""
    with open(path, encoding="utf-8") as fh:
        payload = json.load(fh)
    if not isinstance(payload, dict) or not isinstance(
            payload.get("results"), list):
        raise ValueError(f"{path}: not a sharptask bench results.json "
                         "(no 'results' list)")
    return payload


def lower_is_better(row):
    """Whether a smaller ratio is the good direction for this result row."""
    better = row.get("better")
    if better in ("lower", "higher"):
        return better == "lower"
    if "higher_is_better" in row:
        return not row["higher_is_better"]
    return not str(row.get("unit", "")).strip().endswith("/s")


def collect(payloads):
    """Result rows of several runs of one variant, by row id (first-seen
    order): {"workload", "unit", "lower_is_better", "ratios": [...]}."""
    rows = {}
    for payload in payloads:
        for row in payload.get("results", []):
            rid = row["id"]
            entry = rows.setdefault(rid, {
                "workload": row.get("short") or row.get("workload", ""),
                "peer": (row.get("peer") or {}).get("label", ""),
                "unit": row.get("unit", ""),
                "lower_is_better": lower_is_better(row),
                "ratios": [],
            })
            ratio = row.get("ratio")
            if isinstance(ratio, (int, float)):
                entry["ratios"].append(float(ratio))
    return rows


def merged_order(before_ids, after_ids):
    """The after variant's row order, each before-only row placed after the
    row it follows in the before variant."""
    order = list(after_ids)
    previous = None
    for rid in before_ids:
        if rid not in order:
            order.insert(0 if previous is None else order.index(previous) + 1,
                         rid)
        previous = rid
    return order


def change_pct(before, after):
    """after / before - 1, in %; None when it cannot be computed."""
    if before is None or after is None or before == 0:
        return None
    return (after / before - 1.0) * 100.0


def is_regression(before, after, lower_better, tolerance=5.0):
    """True when the ratio moved more than `tolerance` % the bad way."""
    change = change_pct(before, after)
    if change is None:
        return False
    return change > tolerance if lower_better else change < -tolerance


def _fmt(value):
    return f"{value:.3f}" if abs(value) >= 0.1 else f"{value:.3g}"


def _cell(ratios):
    if not ratios:
        return "—"
    text = _fmt(statistics.median(ratios))
    if len(ratios) > 1:
        text += f" [{_fmt(min(ratios))}–{_fmt(max(ratios))}]"
    return text


def table_rows(before, after, tolerance=5.0):
    """One dict per row of the table, from collect()'s output per variant."""
    rows = []
    for rid in merged_order(list(before), list(after)):
        b, a = before.get(rid), after.get(rid)
        info = a or b
        mb = statistics.median(b["ratios"]) if b and b["ratios"] else None
        ma = statistics.median(a["ratios"]) if a and a["ratios"] else None
        rows.append({
            "id": rid,
            "workload": info["workload"],
            "peer": info["peer"],
            "unit": info["unit"],
            "lower_is_better": info["lower_is_better"],
            "before": mb,
            "after": ma,
            "before_cell": _cell(b["ratios"] if b else []),
            "after_cell": _cell(a["ratios"] if a else []),
            "change": change_pct(mb, ma),
            "regression": is_regression(mb, ma, info["lower_is_better"],
                                        tolerance),
        })
    return rows


def format_table(rows, tolerance=5.0):
    """The Markdown table of table_rows()."""
    def esc(text):
        return str(text).replace("|", "\\|")

    out = ["| id | workload | peer | unit | better | before | after | "
           "change | |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        change = "—" if r["change"] is None else f"{r['change']:+.1f} %"
        flag = (f"**worse by more than {tolerance:g} %**"
                if r["regression"] else "")
        out.append(
            f"| {esc(r['id'])} | {esc(r['workload'])} | {esc(r['peer'])} | "
            f"{esc(r['unit'])} | "
            f"{'lower' if r['lower_is_better'] else 'higher'} | "
            f"{r['before_cell']} | {r['after_cell']} | {change} | {flag} |")
    return "\n".join(out)


def summary_line(rows, tolerance=5.0):
    worse = [r["id"] for r in rows if r["regression"]]
    if worse:
        return (f"{len(worse)} row(s) moved more than {tolerance:g} % the "
                f"bad way: {', '.join(worse)}")
    return f"no row moved more than {tolerance:g} % the bad way"


# ------------------------------------------------------------ main

def _environment_lines(payloads):
    env = next((p.get("environment", {}) for p in payloads), {})
    if not env:
        return []
    return [f"interpreter: {env.get('implementation', '?')} "
            f"{env.get('python', '?')}; CPUs available: "
            f"{env.get('cpu_count', '?')}; asyncio peer uses uvloop: "
            f"{'yes' if env.get('uvloop') else 'no'}"]


def _load():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-tree", required=True,
                        help="source tree of the before build (built in "
                             "place)")
    parser.add_argument("--after-tree", required=True,
                        help="source tree of the after build")
    parser.add_argument("--before-label", default="before")
    parser.add_argument("--after-label", default="after")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs per workload and variant (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="pass --quick to every bench run")
    parser.add_argument("--only", metavar="IDS", default="",
                        help="comma-separated workload ids (default: every "
                             "W1..W12 either variant has)")
    parser.add_argument("--tolerance", type=float, default=5.0,
                        help="flag a change over this many %% the bad way "
                             "(default 5)")
    parser.add_argument("--out", metavar="DIR",
                        help="where the runs' results and table.md go "
                             "(default: runs/<UTC time> beside the trees)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.tolerance < 0:
        parser.error("--tolerance must not be negative")
    trees = {"before": os.path.abspath(args.before_tree),
             "after": os.path.abspath(args.after_tree)}
    labels = {"before": args.before_label, "after": args.after_label}
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    out = args.out or os.path.join(os.path.dirname(trees["before"]), "runs",
                                   stamp)

    known = {v: workload_ids_of(trees[v]) for v in VARIANTS}
    ids = select_ids(args.only, known["before"], known["after"])
    load_start, started = _load(), time.perf_counter()
    payloads = {v: [] for v in VARIANTS}
    problems, wall = [], {(v, w): [] for v in VARIANTS for w in ids}
    for rnd in range(args.rounds):
        for index, wid in enumerate(ids):
            order = VARIANTS if (rnd + index) % 2 == 0 else VARIANTS[::-1]
            took = []
            for variant in order:
                if wid.lower() not in {k.lower() for k in known[variant]}:
                    continue
                payload, seconds, problem = run_bench(
                    trees[variant], wid,
                    os.path.join(out, variant, f"round{rnd + 1}", wid),
                    args.quick)
                wall[variant, wid].append(seconds)
                took.append(f"{variant} {seconds:.1f} s")
                if payload is not None:
                    payloads[variant].append(payload)
                if problem:
                    problems.append(f"{variant}, round {rnd + 1}, {wid}: "
                                    f"{problem}")
                    took[-1] += " (FAILED)"
            print(f"round {rnd + 1}/{args.rounds} {wid}: "
                  f"{', '.join(took) or 'in neither variant'}",
                  file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started

    rows = table_rows(collect(payloads["before"]), collect(payloads["after"]),
                      args.tolerance)
    lines = ["# sharptask before / after (issue 10)", ""]
    lines += [f"- before: {labels['before']} (built in {trees['before']})",
              f"- after: {labels['after']} (built in {trees['after']})"]
    lines += [f"- {x}" for x in _environment_lines(
        payloads["after"] + payloads["before"])]
    lines += [
        f"- mode: {'--quick' if args.quick else 'full'}; {args.rounds} "
        f"round(s): per round one `python -m sharptask bench --only ID` "
        "child per workload and variant, the variants alternating",
        "- cells: the median over the rounds of the run's ratio "
        "sharptask / peer [min–max]; change = after / before - 1; "
        f"flagged: more than {args.tolerance:g} % the bad way ('better' "
        "says which way is good)",
        f"- load average at the start {load_start}, at the end {_load()}; "
        f"{elapsed:.0f} s of runs",
        "", format_table(rows, args.tolerance),
        "", summary_line(rows, args.tolerance)]
    if problems:
        lines += ["", "Runs that failed:", ""] + [f"- {p}" for p in problems]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump({"labels": labels, "trees": trees, "quick": args.quick,
                   "rounds": args.rounds, "ids": ids, "rows": rows,
                   "problems": problems, "elapsed_s": elapsed,
                   "wall_s": {f"{v}/{w}": s for (v, w), s in wall.items()}},
                  fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    print(f"\nwrote {os.path.join(out, 'table.md')}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ChildError as exc:
        print(f"bench-before-after: a child did not run its variant: {exc}",
              file=sys.stderr)
        sys.exit(2)
