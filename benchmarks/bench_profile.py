"""The profiler's sampling overhead (issue 13, point 4): a CPU-bound guest with and without profile=True.

One hot loop (~0.5 s), run plain and profiled, interleaved, medians of wall time (the guest is
single-threaded: its wall time is what a user waits).  Sampling wakes the epoch callback at every
2 ms tick (instead of ~10 times a second) and records one stack each time.
Run: ``.venv/bin/python benchmarks/bench_profile.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.runtime import Sandbox  # noqa: E402

HOT = """(module
  (func $hot (param $n i32) (result i32) (local $i i32) (local $a i32)
    (loop $l (local.set $a (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $a))
  (func (export "_start") (drop (call $hot (i32.const 400000000)))))
"""


def timed(sandbox: Sandbox, profile: bool) -> tuple[float, int]:
    start = time.perf_counter()
    result = sandbox.run(HOT, profile=profile)
    elapsed = time.perf_counter() - start
    assert result.ok
    return elapsed, (result.profile.sample_count if profile else 0)


def main(rounds: int = 9) -> None:
    sandbox = Sandbox()
    timed(sandbox, False), timed(sandbox, True)  # warm up
    plain, profiled, ratio, samples = [], [], [], []
    for _ in range(rounds):
        p, _ = timed(sandbox, False)
        q, n = timed(sandbox, True)
        plain.append(p)
        profiled.append(q)
        ratio.append(q / p)
        samples.append(n)
    overhead = (statistics.median(profiled) - statistics.median(plain)) / statistics.median(samples) * 1e6
    print(f"hot loop, medians of {rounds} interleaved rounds (wall time):")
    print(f"  plain {statistics.median(plain) * 1e3:.1f} ms, profiled {statistics.median(profiled) * 1e3:.1f} ms "
          f"({statistics.median(samples)} samples): profiled/plain {statistics.median(ratio):.3f}x")
    print(f"  about {overhead:.0f} us per sample")


if __name__ == "__main__":
    main()
