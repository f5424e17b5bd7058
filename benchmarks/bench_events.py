"""Events a guest can make the host keep: the refused-stat loop, with and without the event budget.

The guest (issue 10, point 8)::

    import os
    while True:
        try: os.stat('/nope')
        except OSError: pass

runs under ``time:limit:8s``.  Each measurement is a fresh process (so RSS is not
shared between runs): it warms the interpreter up with one short run, reads its RSS,
runs the loop, keeps the ``RunResult`` alive and reads RSS again.  ``unbounded`` swaps
the run's :class:`EventBudget` for one that keeps everything (what main did);
``budget`` is the sandbox as it is.  Medians of ``--rounds`` processes each, run
alternately.  Run: ``.venv/bin/python benchmarks/bench_events.py [--seconds 8] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUEST = "import os\nwhile True:\n    try:\n        os.stat('/nope')\n    except OSError:\n        pass\n"


def measure(mode: str, seconds: float) -> dict[str, float]:
    """One run in this process; prints its numbers as JSON."""
    import gc

    import psutil

    sys.path.insert(0, str(ROOT))
    from workbench.runtime import Sandbox, event_budget, run

    if mode == "unbounded":  # keep every event, as main did
        class Unbounded(event_budget.EventBudget):
            def __init__(self) -> None:
                super().__init__(repeats=10**12, max_events=10**12)

        run.EventBudget = Unbounded  # type: ignore[attr-defined,misc]
    sandbox = Sandbox([f"time:limit:{seconds}s"])
    assert sandbox.run("print('warm')", lang="python").stdout == "warm\n"
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    result = sandbox.run(GUEST, lang="python")
    gc.collect()
    after = process.memory_info().rss
    refused = [e for e in result.events if e.category == "filesystem"]
    stats = sum(e.detail.get("repeated", 1) for e in refused if e.action == "stat")
    stats += sum(e.detail.get("dropped", 0) for e in refused if e.action == "overflow")
    return {
        "events": len(result.events),
        "stat_calls": stats,
        "rss_growth_mb": (after - before) / 1e6,
        "wall_seconds": result.usage.wall_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", choices=["unbounded", "budget"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        print(json.dumps(measure(options.measure, options.seconds)))
        return
    results: dict[str, list[dict[str, float]]] = {"unbounded": [], "budget": []}
    for _ in range(options.rounds):
        for mode in results:
            proc = subprocess.run(
                [sys.executable, __file__, "--measure", mode, "--seconds", str(options.seconds)],
                capture_output=True, text=True, timeout=options.seconds * 10 + 120,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
            results[mode].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"refused os.stat loop under time:limit:{options.seconds:g}s, medians of {options.rounds} fresh processes each")
    print(f"{'':12} {'events kept':>12} {'stat calls':>12} {'host RSS growth':>16}")
    medians = {}
    for mode, rows in results.items():
        med = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        medians[mode] = med
        print(f"{mode:12} {med['events']:>12,.0f} {med['stat_calls']:>12,.0f} {med['rss_growth_mb']:>13.1f} MB")
    ratio = medians["unbounded"]["rss_growth_mb"] / max(medians["budget"]["rss_growth_mb"], 0.1)
    print(f"host memory: {ratio:.0f}x less with the budget; events kept: "
          f"{medians['unbounded']['events'] / medians['budget']['events']:,.0f}x fewer")


if __name__ == "__main__":
    main()
