"""The benchmark workloads of BENCHMARKS.md, shipped inside the package.

They live here, not under benchmarks/, so that `python -m sharptask bench`
works from an installed package; benchmarks/run.py and
benchmarks/python/*.py are thin entry points into this package.

Each workload module has `ID`, `TITLE` and `run(ctx) -> [Comparison]`
(see _harness.py). `WORKLOADS` lists them in BENCHMARKS.md order.
"""

import importlib

#: (id, module name) in the order they run.
WORKLOADS = (
    ("W1", "w1_await_completed"),
    ("W2", "w2_sync_call"),
    ("W3", "w3_chain"),
    ("W4a", "w4a_pingpong"),
    ("W4b", "w4b_pingpong_context"),
    ("W5", "w5_run_many"),
    ("W6", "w6_latency"),
    ("W7", "w7_delays"),  # issue 3: Task.delay vs asyncio call_later
    ("W8", "w8_yield"),
    ("W9", "w9_fanout"),  # issue 10: fan-out time, bytes per pending call
    ("W10", "w10_allocations"),  # issue 5: ValueTask allocations
    ("W11", "w11_native_pool"),  # issue 3: pure-C pool, local vs global
    ("W12", "w12_python_items"),  # issue 3: tiny Python items, busy main
    ("WSEM", "w_semaphore"),  # issue 6: SemaphoreSlim vs asyncio.Lock
    ("W13", "w13_executor_roundtrip"),  # issue 11: Executor vs TPE
    ("W14", "w14_run_in_executor"),  # issue 11: asyncio default executor
    ("W15", "w15_await_from_asyncio"),  # issue 11: await Task in asyncio
    ("W16", "w16_dask_fanout"),  # issue 11: ExecutorTaskScheduler on Dask
    ("WT", "wt_trace_cost"),  # issue 12: W5 with tracing on vs off
)


def workload_ids():
    """The workload ids, in order."""
    return [wid for wid, _ in WORKLOADS]


def load(wid):
    """The module of workload `wid` (case-insensitive), e.g. load("w4a")."""
    for known, module in WORKLOADS:
        if known.lower() == wid.lower():
            return importlib.import_module(f"{__name__}.{module}")
    raise KeyError(f"unknown workload {wid!r}; known: {', '.join(workload_ids())}")
