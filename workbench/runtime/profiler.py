"""The guest profiler: wasmtime's own (``wasmtime_guestprofiler_*``), sampled from our epoch callback.

Why wasmtime's: it walks the guest's real stack (names from the name section, inlined C frames
as wasmtime knows them) without instrumenting the module.  At every epoch tick (2 ms) the
deadline callback (:mod:`deadline`) calls :meth:`Profiler.sample`, on the guest's thread, while the
guest is on the stack, with the CPU time used since the last sample.  The result is a Firefox
Profiler file (:class:`~.profile_view.Profile` reads it: top functions, flame graph).
Only a run asked to profile pays for this: the callback then wakes at every tick, not ~10 a second.
"""

from __future__ import annotations

import time
from typing import Any

import wasmtime

from .._wasmtime_ffi import guest_profiler_delete, guest_profiler_finish, guest_profiler_new, guest_profiler_sample
from .deadline import RunWatch
from .engine import tick_seconds

__all__ = ["Profiler"]


class Profiler:
    """One run's profiler."""

    def __init__(self, module: wasmtime.Module, module_name: str, engine: wasmtime.Engine) -> None:
        self.module = module
        self.module_name = module_name
        self.engine = engine
        self._profiler: Any = None
        self._store: wasmtime.Store | None = None
        self._watch: RunWatch | None = None
        self._cpu = 0
        self.samples = 0

    def start(self, store: wasmtime.Store, watch: RunWatch) -> None:
        """Begin sampling ``store``'s guest at each tick of ``watch``."""
        interval = int(tick_seconds() * 1e9)
        self._profiler = guest_profiler_new(self.engine, self.module_name, interval, [(self.module_name, self.module)])
        self._store, self._watch = store, watch
        self._cpu = time.thread_time_ns()
        watch.sampler = self.sample

    def sample(self) -> None:
        if self._profiler is None or self._store is None:
            return
        now = time.thread_time_ns()
        guest_profiler_sample(self._profiler, self._store, max(now - self._cpu, 0))
        self._cpu = now
        self.samples += 1

    def stop(self) -> None:
        """No more samples (the guest has stopped).  Never raises."""
        if self._watch is not None:
            self._watch.sampler = None
        self._store = None

    def finish(self, names: dict[int, str] | None = None) -> Any:
        """The profile (a :class:`~.profile_view.Profile`), or None if it was never started."""
        self.stop()
        profiler, self._profiler = self._profiler, None
        if profiler is None:
            return None
        from .profile_view import Profile

        return Profile(guest_profiler_finish(profiler), self.module_name, self.samples, names)

    def __del__(self) -> None:
        if self._profiler is not None:
            guest_profiler_delete(self._profiler)
