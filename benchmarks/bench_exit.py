"""How long a process takes to exit after its guest run: the cost of a clean exit.

Run: ``.venv/bin/python benchmarks/bench_exit.py [--rounds 10]``

Each round starts fresh processes (``RUST_BACKTRACE`` unset, as users run) that run
one guest (Python, C, WAT) and then print ``time.monotonic()`` as their last act; the
parent notes when the process has ended (CLOCK_MONOTONIC is one clock for the whole
machine).  The difference is what the exit costs: interpreter finalisation, atexit
handlers, freeing wasmtime's engines.  For context, the same for a process that only
imports the workbench (no guest), the floor any such process pays (its interpreter
teardown).  Target: what a run adds to the exit, median minus that floor, under
50 ms; the absolute figures are printed too.
Before the fix, every such exit waited 1.0 s for output callbacks that never came,
and about half of them ended in SIGABRT.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import Sandbox, probes  # noqa: E402

TARGET_MS = 50.0

CHILD = """
import sys, time
from pathlib import Path
from workbench import Sandbox
path = sys.argv[1]
if path != "-":
    result = Sandbox().run(Path(path))
    assert result.ok, result
sys.stdout.write(repr(time.monotonic()))
sys.stdout.flush()
"""


def exit_ms(path: str, env: dict[str, str]) -> tuple[float, int]:
    """Milliseconds from the end of the child's script to the end of the process, and its exit code."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate(timeout=120)
    ended = time.monotonic()
    if proc.returncode != 0 or not out:
        raise SystemExit(f"child failed ({proc.returncode}): {err.decode()[-500:]}")
    return (ended - float(out)) * 1e3, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    with tempfile.TemporaryDirectory() as folder:
        guests = {
            "python": Path(folder) / "sum.py",
            "c": Path(folder) / "hi.c",
            "wat": Path(folder) / "hello.wat",
        }
        guests["python"].write_text("print(sum(range(10)))\n")
        guests["c"].write_text('#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }\n')
        guests["wat"].write_text(probes.hello())
        Sandbox().run(guests["c"])  # compile once: the children find it in the compile cache
        Sandbox().run(guests["python"])
        cases = {"no guest (import only)": "-", **{lang: str(path) for lang, path in guests.items()}}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):  # interleaved: a busy moment hits every case alike
            for name, path in cases.items():
                times[name].append(exit_ms(path, env)[0])
    print(f"exit time after the end of the script, median of {args.rounds} fresh processes (RUST_BACKTRACE unset)")
    floor = statistics.median(times["no guest (import only)"])
    for name, values in times.items():
        median = statistics.median(values)
        added = median - floor
        verdict = "" if name.startswith("no guest") else (
            f"  adds {added:+.1f} ms: target < {TARGET_MS:.0f} ms {'ok' if added < TARGET_MS else 'MISSED'}"
        )
        print(f"  {name:24s} {median:7.1f} ms  [min {min(values):.1f}, max {max(values):.1f}]{verdict}")


if __name__ == "__main__":
    main()
