"""The per-run monitor: usage samples, CPU share and CPU-time budgets.

It runs inside the epoch-deadline callback, which wasmtime calls on the guest's
own thread at every tick of the engine's ticker (design.md §5).  That is what
makes it cheap and exact:

- ``time.thread_time()`` read there is the guest thread's own CPU time;
- sleeping there pauses the guest, which is how ``cpu:limit:50%`` is enforced in
  this process, without cgroups: after each tick the guest is put to sleep until
  its CPU time is at most ``share × wall time``;
- the store may be read there, so linear-memory size and fuel are sampled live.

Samples are published at a bounded rate (default 10/s) so live views are never
flooded; the peak memory is tracked at every tick.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import wasmtime

from ..events import Sample

__all__ = ["Monitor", "SAMPLE_INTERVAL"]

#: seconds between published samples (10/s)
SAMPLE_INTERVAL = 0.1


class Monitor:
    """Watches one run from its guest thread.  ``stop(kind, reason)`` ends the run at once."""

    def __init__(
        self,
        run_id: str,
        publish: Callable[[Sample], None],
        stop: Callable[[str, str], None],
        *,
        cpu_share: float | None = None,
        cpu_seconds: float | None = None,
        fuel_limit: int | None = None,
        sample_interval: float = SAMPLE_INTERVAL,
    ) -> None:
        self.run_id = run_id
        self._publish = publish
        self._stop = stop
        self.cpu_share = cpu_share
        self.cpu_budget = cpu_seconds
        self.fuel_limit = fuel_limit
        self.sample_interval = sample_interval
        self.samples: list[Sample] = []
        self.throttled_seconds = 0.0
        self.memory_peak = 0
        self._store: wasmtime.Store | None = None
        self._memory: wasmtime.Memory | None = None
        self._wall0 = 0.0
        self._cpu0 = 0.0
        self._next_sample = 0.0

    def start(self) -> None:
        """Call on the guest's thread right before the guest starts."""
        self._wall0 = time.monotonic()
        self._cpu0 = time.thread_time()
        self._next_sample = self._wall0 + self.sample_interval

    def attach(self, store: wasmtime.Store, exports: Any) -> None:
        """Let the monitor read the guest's linear memory (once it is instantiated)."""
        self._store = store
        for item in exports.by_index:
            if isinstance(item, wasmtime.Memory):
                self._memory = item
                break

    def cpu_used(self) -> float:
        return time.thread_time() - self._cpu0

    def memory_bytes(self) -> int:
        if self._memory is None or self._store is None:
            return 0
        size = self._memory.data_len(self._store)
        if size > self.memory_peak:
            self.memory_peak = size
        return size

    def fuel_used(self) -> int | None:
        if self.fuel_limit is None or self._store is None:
            return None
        try:
            return self.fuel_limit - self._store.get_fuel()
        except wasmtime.WasmtimeError:
            return None

    def tick(self) -> None:
        """At every epoch tick, on the guest thread: budgets, throttling, sampling."""
        now = time.monotonic()
        cpu = self.cpu_used()
        if self.cpu_budget is not None and cpu >= self.cpu_budget:
            self._stop("cpu", f"CPU-time budget of {self.cpu_budget:g}s used up")
            return
        if self.cpu_share is not None:
            # sleep until cpu / wall <= share; the sleep itself is wall time without CPU
            wall = now - self._wall0
            owed = cpu / self.cpu_share - wall
            if owed > 0:
                time.sleep(owed)
                self.throttled_seconds += owed
                now = time.monotonic()
        if now >= self._next_sample:
            self._next_sample = now + self.sample_interval
            self.sample(now, cpu)
        else:
            self.memory_bytes()  # keep the peak exact between samples

    def sample(self, now: float | None = None, cpu: float | None = None) -> Sample:
        now = time.monotonic() if now is None else now
        sample = Sample(
            run_id=self.run_id,
            wall_seconds=now - self._wall0,
            memory_bytes=self.memory_bytes(),
            cpu_seconds=self.cpu_used() if cpu is None else cpu,
            fuel_used=self.fuel_used(),
            throttled_seconds=self.throttled_seconds,
        )
        self.samples.append(sample)
        self._publish(sample)
        return sample
