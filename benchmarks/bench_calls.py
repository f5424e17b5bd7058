"""A module call's cost against a plain ``Sandbox.run`` of the same callee (issue 12, point 8).

- plain: ``sandbox.run(wordcount's source, inputs=payload)`` on a sandbox made once (the fastest
  way the host can run the callee itself);
- call: a Python guest calls ``wordcount`` through ``/dev/workbench/call/wordcount`` N times in one
  run; its cost per call is (that run − the same run making no calls) / N, so it holds everything a
  call adds: the JSON copies in and out, the device exchange, the manifest, the attenuation, the
  callee's fresh sandbox and plan, its run and its records.

Wall time, interleaved rounds, medians.  Target: call / plain <= 2.
Run: ``.venv/bin/python benchmarks/bench_calls.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import Sandbox  # noqa: E402
from workbench.modules import default_catalog  # noqa: E402

CALLS = 20
PAYLOAD = {"text": "the quick brown fox jumps over the lazy dog the end", "top": 2}
CALLER = f"""
import workbench_guest
for _ in range(N):
    answer = workbench_guest.call("wordcount", {PAYLOAD!r})
"""


def main(rounds: int = 9) -> None:
    source = default_catalog().get("wordcount").source_text()
    plain_box = Sandbox([])
    caller = Sandbox(["module:call:wordcount"])
    for _ in range(2):  # warm: compile caches, snapshots
        plain_box.run(source, "python", inputs=PAYLOAD)
        caller.run(CALLER.replace("N", "2"), "python")
    plains, calls = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(CALLS):
            result = plain_box.run(source, "python", inputs=PAYLOAD)
        plains.append((time.perf_counter() - start) / CALLS)
        assert result.ok and result.value["words"] == 11
        start = time.perf_counter()
        empty = caller.run(CALLER.replace("N", "0"), "python")
        base = time.perf_counter() - start
        start = time.perf_counter()
        full = caller.run(CALLER.replace("N", str(CALLS)), "python")
        spent = time.perf_counter() - start
        assert empty.ok and full.ok and len(full.calls) == CALLS and all(c.ok for c in full.calls), full
        calls.append((spent - base) / CALLS)
    plain, call = statistics.median(plains), statistics.median(calls)
    print(f"plain Sandbox.run of wordcount: {plain * 1e3:.2f} ms (median of {rounds})")
    print(f"module call of wordcount:       {call * 1e3:.2f} ms (median of {rounds}, {CALLS} calls a run)")
    print(f"call / plain: {call / plain:.2f}x   (target <= 2x)")


if __name__ == "__main__":
    main()
