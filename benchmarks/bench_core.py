"""Per-run overhead of ``Sandbox.run`` and the compile cache's effect.

Ratios against a baseline run in the same process (machines here are shared and
noisy); medians of interleaved rounds.  Run: ``.venv/bin/python benchmarks/bench_core.py``.

1. A trivial WAT module (WASI hello): bare wasmtime-py (fresh Store + WasiConfig +
   instantiate + ``_start``, module compiled once) vs ``Sandbox.run`` of the same
   source (compiled once; a sandbox keeps the text it ran ready, as a notebook re-running
   a cell would use it).  Target: ratio <= 2x and a median of at most 2 ms.  For context,
   also ``Sandbox.run`` of text new to the sandbox (detection, compile-cache lookup and
   import checks each call).
2. A large generated module (a few thousand functions): compile from scratch vs
   load from the on-disk cache in a fresh CompileCache (what a new process does).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import probes  # noqa: E402
from workbench.runtime import CompileCache, Sandbox  # noqa: E402
from workbench.runtime.engine import EngineSettings, engine_for  # noqa: E402


def bare_runner(source: str, default_engine: bool = False):
    """Bare wasmtime-py on the sandbox's engine (same settings, its memory creator included), or
    with ``default_engine`` on ``wasmtime.Engine()`` with epoch interruption only, as a user of
    wasmtime-py would have it (wasmtime's own memories, copy-on-write init)."""
    if default_engine:
        config = wasmtime.Config()
        config.epoch_interruption = True
        engine = wasmtime.Engine(config)
    else:
        engine = engine_for(EngineSettings()).engine  # same engine settings as the sandbox's default
    module = wasmtime.Module(engine, source)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()

    def run() -> None:
        store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.stdout_custom = lambda data: None
        store.set_wasi(wasi)
        store.set_epoch_deadline(1 << 40)
        instance = linker.instantiate(store, module)
        instance.exports(store)["_start"](store)

    return run


def timed(fn, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def bench_overhead(rounds: int = 15, per_round: int = 100) -> None:
    source = probes.hello()
    bare = bare_runner(source)
    plain = bare_runner(source, default_engine=True)
    sandbox = Sandbox()
    sandbox.run(source)  # compile once

    def unprepared() -> None:  # context: the text is new to this sandbox (detect, cache lookup, checks)
        sandbox._prepared.clear()
        sandbox.run(source)

    ratios, fresh_ratios, bare_ms, sandbox_ms, fresh_ms, plain_ms, plain_ratios = [], [], [], [], [], [], []
    for _ in range(rounds):
        p = statistics.median(timed(plain, per_round))
        plain_ms.append(p * 1e3)
        b = statistics.median(timed(bare, per_round))
        s = statistics.median(timed(lambda: sandbox.run(source), per_round))
        f = statistics.median(timed(unprepared, per_round))
        bare_ms.append(b * 1e3)
        sandbox_ms.append(s * 1e3)
        fresh_ms.append(f * 1e3)
        ratios.append(s / b)
        fresh_ratios.append(f / b)
        plain_ratios.append(s / p)
    print(f"trivial module: bare {statistics.median(bare_ms):.3f} ms, Sandbox.run {statistics.median(sandbox_ms):.3f} ms "
          f"(median of {rounds} rounds x {per_round}); ratio median {statistics.median(ratios):.2f}x "
          f"[min {min(ratios):.2f}, max {max(ratios):.2f}]  target <= 2x and <= 2 ms")
    print(f"  context: text new to the sandbox each call {statistics.median(fresh_ms):.3f} ms, "
          f"ratio median {statistics.median(fresh_ratios):.2f}x")
    print(f"  against bare wasmtime-py on a default engine (wasmtime's own memories): {statistics.median(plain_ms):.3f} ms, "
          f"ratio median {statistics.median(plain_ratios):.2f}x [min {min(plain_ratios):.2f}, max {max(plain_ratios):.2f}]")


def large_module(functions: int = 3000) -> str:
    body = "\n".join(
        f'(func $f{i} (param i32) (result i32) (local.get 0) (i32.const {i}) (i32.mul) (i32.const 7) (i32.add))'
        for i in range(functions)
    )
    return f'(module (memory (export "memory") 1) {body} (func (export "_start") (drop (call $f1 (i32.const 2)))))'


def bench_cache(rounds: int = 5) -> None:
    source = large_module()
    compile_s, load_s = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            cold = CompileCache(folder)
            compile_s.append(min(timed(lambda: Sandbox(cache=cold).run(source), 1)))
            warm = CompileCache(folder)  # a new process would start like this
            load_s.append(min(timed(lambda: Sandbox(cache=warm).run(source), 1)))
            assert cold.compiles == 1 and warm.disk_hits == 1
    c, l = statistics.median(compile_s), statistics.median(load_s)
    print(f"large module (3000 functions): uncached run {c * 1e3:.1f} ms, cached run {l * 1e3:.1f} ms; "
          f"speed-up {c / l:.1f}x (median of {rounds})")


if __name__ == "__main__":
    bench_overhead()
    bench_cache()
