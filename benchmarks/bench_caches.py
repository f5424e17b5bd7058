"""Process memory over many runs of distinct small modules: every cache is bounded.

Run: ``.venv/bin/python benchmarks/bench_caches.py [--runs 10000]``

A batch of thousands of distinct modules in one process is what a grading or screening job
looks like.  Each run here is a different WAT module (a distinct constant makes a distinct
sha256), half of them importing WASI (so the guard plans them), run by one sandbox with a
fresh on-disk compile cache.  The resident set size is read after a warm-up (the first
1,000 runs fill the caches and the allocator's pools) and at the end.  Target: growth of at
most 50 MB from the warm-up to the end.  The caches' own sizes are printed
(:func:`workbench.caches.report`): each stays at or under its bound.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import Sandbox  # noqa: E402
from workbench.caches import report  # noqa: E402
from workbench.runtime import CompileCache  # noqa: E402

TARGET_MB = 50.0
PLAIN = '(module (func (export "_start") (drop (i32.const {n}))))'
WASI = """(module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1) (data (i32.const 16) "x")
  (func (export "_start") (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 1))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const {n})))))"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-caches-") as folder:
        sandbox = Sandbox(cache=CompileCache(folder))
        started = time.monotonic()
        warm = 0.0
        for n in range(options.runs):
            source = (WASI if n % 2 else PLAIN).format(n=32 + 4 * n)  # a distinct module every run
            result = sandbox.run(source, lang="wat")
            if not result.ok and n < 3:
                print(result.summary_lines(), file=sys.stderr)
            if n + 1 == options.warmup:
                warm = rss_mb()
            if (n + 1) % 1000 == 0:
                print(f"  {n + 1:>6} runs  rss {rss_mb():7.1f} MB  {time.monotonic() - started:6.1f} s", flush=True)
        end = rss_mb()
    growth = end - warm
    print(f"rss after {options.warmup:,} runs: {warm:.1f} MB; after {options.runs:,}: {end:.1f} MB; "
          f"growth {growth:+.1f} MB (target <= {TARGET_MB:.0f} MB): {'PASS' if growth <= TARGET_MB else 'FAIL'}")
    for name, (held, bound) in sorted(report().items()):
        print(f"  cache {name:<22} {held:>6} of {bound:>6}")
    return 0 if growth <= TARGET_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
