"""CPU-bound C guests: the sandbox's cost over bare wasmtime-py, and the engine's own instrumentation.

Run: ``.venv/bin/python benchmarks/bench_c.py [--rounds 5]``  (needs the ``c`` extra and gcc for the native column)

Three workloads, each compiled once with the adapter's defaults (``-O2 -g -msimd128``):
``fib`` (recursive calls: the worst case for per-call epoch checks), ``nbody``
(scalar floating point) and ``saxpy`` (a loop the compiler vectorises).  Medians of per-round ratios, all runs interleaved:

1. ``Sandbox.run`` (guard, monitor, epoch deadline ticking every 2 ms, debug-info engine)
   vs the same wasm under bare wasmtime-py on an engine with the *same settings*
   (its epoch checks compiled in but never firing).  Target: <= 1.10x.
2. The engine's instrumentation on its own, bare wasmtime-py, against plain wasm
   (no epoch checks, no fuel): epoch checks, fuel metering, both.
3. Plain wasm against the same C built natively with ``gcc -O2 -fno-math-errno`` (and scalar wasm
   without ``-msimd128``, to show what SIMD buys).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import Sandbox  # noqa: E402
from workbench.languages.c import COptions, compile_c  # noqa: E402
from workbench.runtime.cache import CompileCache  # noqa: E402
from workbench.runtime.engine import EngineSettings, engine_for  # noqa: E402

WORKLOADS = {
    "fib": r"""
#include <stdio.h>
static unsigned fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(int argc, char **argv) { (void)argv; printf("%u\n", fib(38 + argc)); return 0; }
""",
    "nbody": r"""
#include <math.h>
#include <stdio.h>
#define N 5
typedef struct { double x, y, z, vx, vy, vz, m; } Body;
static Body b[N] = {
  {0, 0, 0, 0, 0, 0, 39.47841760435743},
  {4.84, -1.16, -0.10, 0.606, 2.81, -0.02, 0.037},
  {8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.011},
  {12.89, -15.11, -0.22, 1.08, 0.868, -0.01, 0.0017},
  {15.37, -25.91, 0.17, 0.979, 0.594, -0.034, 0.002}};
static void advance(double dt) {
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) {
      double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
      double d2 = dx * dx + dy * dy + dz * dz, mag = dt / (d2 * sqrt(d2));
      b[i].vx -= dx * b[j].m * mag; b[i].vy -= dy * b[j].m * mag; b[i].vz -= dz * b[j].m * mag;
      b[j].vx += dx * b[i].m * mag; b[j].vy += dy * b[i].m * mag; b[j].vz += dz * b[i].m * mag;
    }
  for (int i = 0; i < N; i++) { b[i].x += dt * b[i].vx; b[i].y += dt * b[i].vy; b[i].z += dt * b[i].vz; }
}
int main(void) { for (int s = 0; s < 2000000; s++) advance(0.01); printf("%.9f\n", b[0].x); return 0; }
""",
    "saxpy": r"""
#include <stdio.h>
#define N 4096
static float a[N], b[N];
int main(int argc, char **argv) {
  (void)argv;
  for (int i = 0; i < N; i++) { a[i] = i * 0.5f; b[i] = (N - i) * 0.25f; }
  for (int r = 0; r < 40000 * argc; r++)
    for (int i = 0; i < N; i++) a[i] = a[i] * 0.999f + b[i];
  float s = 0;
  for (int i = 0; i < N; i++) s += a[i];
  printf("%f\n", s);
  return 0;
}
""",
}


def bare(wasm: bytes, config: wasmtime.Config | None = None, settings: EngineSettings | None = None) -> Callable[[], None]:
    """A fresh Store + WASI + instantiate + _start per call; the module compiled once."""
    if settings is not None:
        handle = engine_for(settings)
        engine = handle.engine
        import hashlib

        module = CompileCache().get(lambda: wasm, hashlib.sha256(wasm).hexdigest(), handle)
    else:
        engine = wasmtime.Engine(config)
        module = wasmtime.Module(engine, wasm)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    epoch = settings is not None or getattr(config, "_epoch", False)
    fuel = getattr(config, "_fuel", False)

    def run() -> None:
        store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["prog"]  # argc = 1, as under the sandbox and natively (fib's n depends on it)
        wasi.stdout_custom = lambda data: len(data)
        store.set_wasi(wasi)
        if epoch:
            store.set_epoch_deadline(1 << 40)
        if fuel:
            store.set_fuel(1 << 62)
        linker.instantiate(store, module).exports(store)["_start"](store)

    return run


def config(epoch: bool, fuel: bool) -> wasmtime.Config:
    cfg = wasmtime.Config()
    cfg.epoch_interruption = epoch
    cfg.consume_fuel = fuel
    cfg.cranelift_opt_level = "speed"
    cfg._epoch, cfg._fuel = epoch, fuel  # type: ignore[attr-defined]  # remembered for the store set-up
    return cfg


def native(source: str, folder: Path) -> Callable[[], None] | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    (folder / "prog.c").write_text(source)
    # -fno-math-errno: what clang assumes for wasm (sqrt is one instruction there, a libm call with errno here)
    subprocess.run([gcc, "-O2", "-fno-math-errno", "prog.c", "-o", "prog", "-lm"], cwd=folder, check=True)
    binary = str(folder / "prog")
    return lambda: subprocess.run([binary], check=True, stdout=subprocess.DEVNULL)


def seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-c-"))
    try:
        for name, source in WORKLOADS.items():
            wasm = compile_c(source, name)
            scalar = compile_c(source, name, COptions(simd=False))
            sandbox = Sandbox()
            runners: dict[str, Callable[[], None]] = {
                "sandbox": lambda: sandbox.run(source, lang="c", name=name),
                "bare-same": bare(wasm, settings=EngineSettings(debug_info=True)),
                "plain": bare(wasm, config(False, False)),
                "epoch": bare(wasm, config(True, False)),
                "fuel": bare(wasm, config(False, True)),
                "epoch+fuel": bare(wasm, config(True, True)),
                "plain-scalar": bare(scalar, config(False, False)),
            }
            nat = native(source, folder)
            if nat is not None:
                runners["native"] = nat
            for runner in runners.values():
                runner()  # warm: compile, caches
            times: dict[str, list[float]] = {key: [] for key in runners}
            for _ in range(options.rounds):
                for key, runner in runners.items():
                    times[key].append(seconds(runner))

            def ratio(top: str, bottom: str) -> str:
                value = statistics.median(t / b for t, b in zip(times[top], times[bottom]))
                return f"{value:.3f}x"

            med = {key: statistics.median(values) * 1e3 for key, values in times.items()}
            print(f"{name}: medians of {options.rounds} rounds")
            for key in runners:
                print(f"  {key:13s} {med[key]:9.1f} ms")
            print(f"  Sandbox.run / bare wasmtime-py (same engine settings): {ratio('sandbox', 'bare-same')}  target <= 1.10")
            print(f"  instrumentation vs plain wasm: epoch {ratio('epoch', 'plain')}, fuel {ratio('fuel', 'plain')}, "
                  f"both {ratio('epoch+fuel', 'plain')}")
            print(f"  SIMD: scalar wasm / -msimd128 wasm: {ratio('plain-scalar', 'plain')}")
            if nat is not None:
                print(f"  plain wasm / native gcc -O2: {ratio('plain', 'native')}; "
                      f"Sandbox.run / native: {ratio('sandbox', 'native')}")
            print()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
