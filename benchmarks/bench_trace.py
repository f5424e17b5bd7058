"""Tracing's cost per call, next to the guard's own, in the same run (issue 13, point 1).

The guest of bench_guard.py (10,000 x path_open + fd_read + fd_close, then exit) runs three ways,
interleaved, CPU time of the process, medians: bare wasmtime-py (no guard), ``Sandbox.run``
(the guard checks and records every open) and ``Sandbox.run(trace=True)`` (the same, and every one
of the 30,000 WASI calls recorded). The guard's added cost is (guarded - bare) per file; tracing's
is (traced - guarded) per file, and per traced call (a third of that).
Target: tracing adds no more than half of the guard's added cost.
Run: ``.venv/bin/python benchmarks/bench_trace.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_guard import FILES, OPENER, bare, make_files  # noqa: E402
from workbench.runtime import Sandbox  # noqa: E402

CALLS_PER_FILE = 3  # path_open, fd_read, fd_close
YIELDS = 200_000
#: a guest making only calls the trace keeps in wasm (no host call each): sched_yield in a loop
YIELDER = f"""(module
 (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
 (memory (export "memory") 1)
 (func (export "_start") (local $i i32)
   (loop $l (drop (call $y)) (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get $i) (i32.const {YIELDS}))))))
"""


def yielding(trace: bool) -> float:
    sandbox = Sandbox()
    start = time.process_time()
    result = sandbox.run(YIELDER, trace=trace)
    elapsed = time.process_time() - start
    assert result.ok and (not trace or len(result.call_log) == YIELDS)
    return elapsed


def sandboxed(folder: Path, trace: bool) -> float:
    sandbox = Sandbox(["filesystem:read:/d"], root=folder)
    start = time.process_time()
    result = sandbox.run(OPENER, trace=trace)
    elapsed = time.process_time() - start
    assert result.ok, result
    if trace:  # the table is made when first read (not part of the run): timed apart
        assert len(result.call_log) == FILES * CALLS_PER_FILE, len(result.call_log)
        start = time.process_time()
        assert len(result.trace) == FILES * CALLS_PER_FILE
        TABLE.append(time.process_time() - start)
    return elapsed


TABLE: list[float] = []


def main(rounds: int = 11) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_files(folder)
        bare(folder), sandboxed(folder, False), sandboxed(folder, True)  # warm up
        guard_added: list[float] = []
        trace_added: list[float] = []
        share: list[float] = []
        for _ in range(rounds):
            b, g, t = bare(folder), sandboxed(folder, False), sandboxed(folder, True)
            guard_added.append((g - b) / FILES * 1e6)
            trace_added.append((t - g) / FILES * 1e6)
            share.append((t - g) / (g - b))
        yielded = []
        for _ in range(rounds):
            plain, traced = yielding(False), yielding(True)
            yielded.append((traced - plain) / YIELDS * 1e6)
    g, t = statistics.median(guard_added), statistics.median(trace_added)
    print(f"{FILES} x (open + read + close), medians of {rounds} interleaved rounds (process CPU time):")
    print(f"  guard added   {g:.1f} us per file (open checked and recorded)")
    print(f"  tracing added {t:.1f} us per file = {t / CALLS_PER_FILE:.2f} us per traced call")
    print(f"  tracing / guard: {statistics.median(share):.2f} (target <= 0.50)")
    print(f"  {YIELDS:,} x sched_yield (recorded in wasm, handed over 512 at a time): tracing added "
          f"{statistics.median(yielded):.2f} us per call")
    table = statistics.median(TABLE) / (FILES * CALLS_PER_FILE) * 1e6
    print(f"  reading result.trace (the DataFrame, made once, on first use): {table:.2f} us per call")


if __name__ == "__main__":
    main()
