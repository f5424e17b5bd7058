"""Python guest latency: bare wasmtime-py vs Sandbox.run, cold start vs the pre-initialised fast path.

Run: ``.venv/bin/python benchmarks/bench_python.py [--rounds 7 --per-round 15]``

Medians of interleaved rounds (this machine is shared and noisy), ratios against a
baseline measured in the same process and the same rounds:

(a)  bare wasmtime-py: the same interpreter module from the compile cache, a fresh
     Store + WasiConfig + instantiate + ``_start`` of ``python -I -c CODE``;
(a2) bare wasmtime-py running exactly the sandbox's argv (its guest driver included), so
     (b)/(a2) is the sandbox's own cost: guard, monitor, mounts, events (the driver ends
     with ``os._exit`` and skips interpreter finalisation, ~4 ms, which (a) pays);
(a') bare wasmtime-py + the snapshot: a fresh instance restored from the same
     pre-initialised interpreter and re-entered (what (c) does, minus the sandbox);
(b)  ``Sandbox.run`` with the fast path off (cold interpreter start per run);
     target (b) <= 1.10 x (a);
(c)  ``Sandbox.run`` on the fast path; targets: ``pass`` <= 5 ms, ``print("hi")`` <= 15 ms;
(d)  for context, ``python3 -I -S -c pass`` as a subprocess.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import Sandbox  # noqa: E402
from workbench.languages import pyruntime  # noqa: E402
from workbench.languages.program import Entry  # noqa: E402
from workbench.languages.python import EXECUTABLE, FLAGS, snapshot_builder  # noqa: E402
from workbench.runtime.cache import CompileCache  # noqa: E402
from workbench.runtime.data_image import image_of  # noqa: E402
from workbench.runtime.engine import EngineSettings, engine_for  # noqa: E402
from workbench.runtime.linear_memory import charging  # noqa: E402

CODES = {"pass": "pass", "print": 'print("hi")'}


def bare_store(engine: wasmtime.Engine, argv: list[str]) -> wasmtime.Store:
    """A store as bare wasmtime-py would make it: WASI with argv, output discarded, no deadline."""
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = argv
    wasi.stdout_custom = lambda data: len(data)
    wasi.stderr_custom = lambda data: len(data)
    store.set_wasi(wasi)
    store.set_epoch_deadline(1 << 40)
    return store


def bare_runner(code: str, *, as_sandbox: bool = False) -> Callable[[], None]:
    """(a): the cached interpreter under plain wasmtime-py, same engine settings as the sandbox;
    (a2) with ``as_sandbox``: the same, with the argv the sandbox passes (driver and payload)."""
    from workbench.languages import prepare_program

    handle = engine_for(EngineSettings())
    interp = pyruntime.interpreter()
    module = CompileCache().get(interp.module_bytes, interp.sha256, handle)
    linker = wasmtime.Linker(handle.engine)
    linker.define_wasi()
    argv = list(prepare_program("python", code, "bench").argv) if as_sandbox else [EXECUTABLE, *FLAGS, "-c", code]

    def run() -> None:
        store = bare_store(handle.engine, argv)
        try:
            with charging(None, image_of(module)):  # the interpreter's data, mapped copy-on-write
                linker.instantiate(store, module).exports(store)["_start"](store)
        except wasmtime.ExitTrap:
            pass
        finally:
            store.close()

    return run


def bare_snapshot_runner(code: str) -> Callable[[], None]:
    """(a'): a fresh instance restored from the pre-initialised interpreter, without the sandbox."""
    from workbench.languages import prepare_program

    handle = engine_for(EngineSettings())
    interp = pyruntime.interpreter()
    module = CompileCache().get(interp.module_bytes, interp.sha256, handle)
    builder = snapshot_builder()
    assert builder is not None
    linker = wasmtime.Linker(handle.engine)
    linker.define_wasi()
    argv = list(prepare_program("python", code, "bench").argv)  # exactly what the sandbox passes

    def run() -> None:
        store = bare_store(handle.engine, argv)
        with charging(None, image_of(module)):
            exports = linker.instantiate(store, module).exports(store)
        snapshot = builder.get(interp.sha256, Entry(store, exports, module, handle.engine, (), ()))
        snapshot.restore(store, exports)  # type: ignore[union-attr]
        try:
            exports["_start"](store)
        except wasmtime.ExitTrap:
            pass
        finally:
            store.close()

    return run


def sandbox_runner(code: str, fast: bool) -> Callable[[], None]:
    sandbox = Sandbox()

    def run() -> None:
        pyruntime.configure(snapshot=fast)
        result = sandbox.run(code, lang="python")
        if result.exit_code != 0:
            raise SystemExit(f"guest failed: {result.stderr}")

    return run


def subprocess_runner() -> Callable[[], None]:
    def run() -> None:
        subprocess.run(["python3", "-I", "-S", "-c", "pass"], check=True)

    return run


def median_ms(fn: Callable[[], None], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=15)
    options = parser.parse_args()

    # warm everything once: compile (or load) the interpreter, build the snapshot
    Sandbox().run("pass", lang="python")
    print(f"interpreter: {pyruntime.interpreter().path.name}, module sha256 {pyruntime.interpreter().sha256[:12]}…")
    print(f"rounds: {options.rounds} x {options.per_round} calls, medians; ratios per round, then their median\n")

    for label, code in CODES.items():
        runners = {
            "a": bare_runner(code),
            "a2": bare_runner(code, as_sandbox=True),
            "a'": bare_snapshot_runner(code),
            "b": sandbox_runner(code, fast=False),
            "c": sandbox_runner(code, fast=True),
        }
        for runner in runners.values():
            runner()
        rounds: dict[str, list[float]] = {key: [] for key in runners}
        for _ in range(options.rounds):
            for key, runner in runners.items():
                rounds[key].append(median_ms(runner, options.per_round))
        med = {key: statistics.median(values) for key, values in rounds.items()}
        ratio_b = statistics.median(b / a for a, b in zip(rounds["a"], rounds["b"]))
        ratio_b2 = statistics.median(b / a for a, b in zip(rounds["a2"], rounds["b"]))
        ratio_c = statistics.median(c / a for a, c in zip(rounds["a"], rounds["c"]))
        ratio_c_bare = statistics.median(c / a for a, c in zip(rounds["a'"], rounds["c"]))
        print(f"{label}: {code!r}")
        print(f"  (a)  bare wasmtime-py, cold interpreter      {med['a']:7.2f} ms")
        print(f"  (a2) bare wasmtime-py, the sandbox's argv     {med['a2']:7.2f} ms")
        bare_snapshot = med["a'"]
        print(f"  (a') bare wasmtime-py, from the snapshot      {bare_snapshot:7.2f} ms")
        print(f"  (b)  Sandbox.run, fast path off              {med['b']:7.2f} ms   (b)/(a) = {ratio_b:.3f}  target <= 1.10, "
              f"(b)/(a2) = {ratio_b2:.3f}")
        target = "5" if label == "pass" else "15"
        print(f"  (c)  Sandbox.run, fast path                  {med['c']:7.2f} ms   (c)/(a) = {ratio_c:.3f}, "
              f"(c)/(a') = {ratio_c_bare:.2f}  target <= {target} ms")
    pyruntime.configure(None)
    d = statistics.median(median_ms(subprocess_runner(), options.per_round) for _ in range(3))
    print(f"\n  (d)  python3 -I -S -c pass (subprocess)       {d:7.2f} ms")


if __name__ == "__main__":
    main()
