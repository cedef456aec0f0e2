"""Draw the benchmark page's chart and table from results.json.

    python docs/benchmarks/make_chart.py [RESULTS_JSON] [OUT_DIR]

results.json here is the output of one full `python -m sharptask bench
--out docs/benchmarks` run, committed with the date, interpreter and CPU
count it was measured with (the machine is shared, so only the ratios
measured side by side in that run mean anything).  The documentation build
(conf.py) runs this script every time, so the chart and the table can never
drift from the committed numbers: it writes _generated/ratios.png (a
matplotlib bar chart of every ratio sharptask/peer, on a log scale, grouped
by peer: asyncio, ThreadPoolExecutor, Dask, the interpreter's own floors)
and _generated/table.md (the same numbers as a table, included by
benchmarks.md).

Rows measured later than the full run, by a `--only` run of the workloads
added since, carry `"run": ID`, and `added_runs` describes that run (the
command, when, the interpreter, the machine's load average): the table
marks such rows and says so under it.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Which family each peer belongs to, by a word of its label ("the loop's
# default ThreadPoolExecutor", "await asyncio future ...").
FAMILIES = [
    ("asyncio", "asyncio", "#3b75af"),
    ("ThreadPoolExecutor", "concurrent.futures.ThreadPoolExecutor",
     "#e1812c"),
    ("client.map", "Dask (distributed.Client)", "#519e3e"),
    ("", "the interpreter's own floor, or sharptask's own baseline",
     "#8c8c8c"),
]


def family(label: str):
    for word, name, colour in FAMILIES:
        if word in label:
            return name, colour
    return FAMILIES[-1][1], FAMILIES[-1][2]


def fmt_ns(ns: float, unit: str) -> str:
    if "block" in unit:
        return f"{ns:g} blocks"
    if unit.startswith("bytes"):
        return f"{ns:.0f} B"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def _load(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def table(results, added_runs=()) -> str:
    marks = {run["id"]: "†" * (i + 1) for i, run in enumerate(added_runs)}
    rows = ["| id | workload | sharptask (median) | peer | peer (median) "
            "| ratio | target | met |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        unit = r.get("unit", "")
        met = {True: "yes", False: "no"}.get(r.get("target_met"), "—")
        cells = [r["id"] + marks.get(r.get("run"), ""),
                 r.get("short") or r["workload"],
                 fmt_ns(r["sharptask"]["median_ns"], unit),
                 r["peer"]["label"],
                 fmt_ns(r["peer"]["median_ns"], unit),
                 f"{r['ratio']:.3f}", r.get("target") or "—", met]
        rows.append("| " + " | ".join(c.replace("|", "\\|")
                                       for c in cells) + " |")
    notes = []
    for run in added_runs:
        env = run.get("environment", {})
        load = run.get("load_average", {})
        note = (
            f"{marks[run['id']]} Measured in a separate, later run: "
            f"`{run['command']}` ({run['generated'][:16].replace('T', ' ')} "
            f"UTC, CPython {env.get('python', '?')}, "
            f"{env.get('cpu_count', '?')} CPUs, {run.get('rounds', '?')} "
            f"rounds). {run.get('why', '')}")
        if load.get("before") and load.get("after"):
            note += (f" The machine's load average (1 / 5 / 15 min) was "
                     f"{_load(load['before'])} before that run and "
                     f"{_load(load['after'])} after it.")
        notes.append(note)
    return "\n".join(rows) + "\n" + "".join(f"\n{n}\n" for n in notes)


def chart(results, env, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = [r for r in results if r.get("ratio")]
    order = [name for _, name, _ in FAMILIES]
    rows.sort(key=lambda r: (order.index(family(r["peer"]["label"])[0]),
                             r["ratio"]))
    labels = [f"{r['id']}{'†' if r.get('run') else ''}  "
              f"{r.get('short') or r['workload']}" for r in rows]
    ratios = [r["ratio"] for r in rows]
    colours = [family(r["peer"]["label"])[1] for r in rows]

    fig, ax = plt.subplots(figsize=(9, 0.34 * len(rows) + 1.6), dpi=110)
    y = range(len(rows))
    ax.barh(list(y), ratios, color=colours)
    ax.set_xscale("log")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    for i, ratio in enumerate(ratios):
        ax.text(ratio * 1.08, i, f"{ratio:.3g}", va="center", fontsize=7)
    ax.set_xlim(min(ratios) / 2, max(max(ratios) * 3, 3))
    ax.set_xlabel("time (or blocks) of sharptask / peer, measured side by "
                  "side (log scale; < 1: sharptask is faster)", fontsize=8)
    ax.set_title(
        f"sharptask against its peers: CPython {env.get('python', '?')}, "
        f"{env.get('cpu_count', '?')} CPUs, "
        f"uvloop {'on' if env.get('uvloop') else 'off'}"
        + ("\n† measured in a later run (see the table)"
           if any(r.get("run") for r in rows) else ""), fontsize=9)
    ax.legend(handles=[Patch(color=c, label=n) for _, n, c in FAMILIES],
              fontsize=7, loc="upper right")
    ax.grid(axis="x", which="both", alpha=0.25)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    src = argv[0] if argv else os.path.join(HERE, "results.json")
    out = argv[1] if len(argv) > 1 else os.path.join(HERE, "_generated")
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    os.makedirs(out, exist_ok=True)
    results = data["results"]
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write(table(results, data.get("added_runs", ())))
    chart(results, data.get("environment", {}),
          os.path.join(out, "ratios.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
