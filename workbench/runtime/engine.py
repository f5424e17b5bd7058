"""Shared wasmtime engines, one per configuration, each with its epoch ticker.

Why one engine per configuration rather than one per run: an engine owns the
compiled code and its settings decide what a serialized module may be loaded
into (design.md §5).  Fuel metering costs 15-60% on CPU-bound code, so runs that
do not ask for a fuel budget use an engine without it.

The ticker thread calls ``engine.increment_epoch()`` every ``TICK_SECONDS`` while at
least one run on that engine is active, and sleeps otherwise, so an idle kernel
pays nothing.  Every tick gives each running guest a chance to run its deadline
callback (wall deadline, cancellation, sampling).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import wasmtime

__all__ = ["EngineSettings", "EngineHandle", "engine_for", "TICK_SECONDS", "WASMTIME_VERSION"]

#: epoch tick period; the deadline overshoot is about one tick (design.md §5)
TICK_SECONDS = 0.002

try:
    from importlib.metadata import version as _version

    WASMTIME_VERSION = _version("wasmtime")
except Exception:  # pragma: no cover - metadata missing in odd installs
    WASMTIME_VERSION = "unknown"


@dataclass(frozen=True)
class EngineSettings:
    """The engine options that change compiled code (so they key the compile cache)."""

    fuel: bool = False
    max_wasm_stack: int = 512 * 1024
    debug_info: bool = False

    def fingerprint(self) -> str:
        """A stable string for cache keys: every field that changes the artifact."""
        return (
            f"wasmtime={WASMTIME_VERSION};epoch=1;fuel={int(self.fuel)};"
            f"stack={self.max_wasm_stack};debug={int(self.debug_info)};cow=1"
        )

    def build_config(self) -> wasmtime.Config:
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.consume_fuel = self.fuel
        config.max_wasm_stack = self.max_wasm_stack
        config.debug_info = self.debug_info
        config.cranelift_opt_level = "speed"
        return config


class _Ticker:
    """Increments an engine's epoch while runs are active (a rich ``_RefreshThread``-style loop)."""

    def __init__(self, engine: wasmtime.Engine, interval: float) -> None:
        self._engine = engine
        self._interval = interval
        self._active = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="workbench-epoch-ticker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        stop = threading.Event()  # never set: a dedicated sleep with the right granularity
        while True:
            self._wake.wait()
            while self._active > 0:
                stop.wait(self._interval)
                self._engine.increment_epoch()

    def acquire(self) -> None:
        with self._lock:
            self._active += 1
            self._wake.set()

    def release(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._wake.clear()


class EngineHandle:
    """An engine, its settings, its ticker and its linker template."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.engine = wasmtime.Engine(settings.build_config())
        self.ticker = _Ticker(self.engine, TICK_SECONDS)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.lock = threading.Lock()


_engines: dict[EngineSettings, EngineHandle] = {}
_engines_lock = threading.Lock()


def engine_for(settings: EngineSettings) -> EngineHandle:
    """The shared engine for ``settings`` (created on first use)."""
    handle = _engines.get(settings)
    if handle is None:
        with _engines_lock:
            handle = _engines.get(settings)
            if handle is None:
                handle = _engines[settings] = EngineHandle(settings)
    return handle
