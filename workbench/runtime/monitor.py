"""The per-run monitor: usage samples, CPU share and CPU-time budgets.

It runs inside the epoch-deadline callback, which wasmtime calls on the guest's
own thread at every tick of the engine's ticker (design.md §5).  That is what
makes it cheap and exact:

- ``time.thread_time()`` read there is the guest thread's own CPU time, so runs in
  other threads (other guests, the caller's widgets) are never charged to it;
- pausing there pauses the guest, which is how ``cpu:limit:50%`` is enforced in
  this process, without cgroups: after each tick the guest is held until its CPU
  time is at most ``share × wall time``.  The rule is cumulative over the run, so a
  pause that oversleeps is paid back by shorter pauses later (measured: 50.0% for
  a 50% target over 3 s);
- the store may be read there, so linear-memory size and fuel are sampled live.

Samples are published at a bounded rate (default 10/s) so live views are never
flooded.  Between samples the guest is not called back at all unless a CPU share
needs pacing: :meth:`Monitor.tick` says how long it can wait (see deadline.py).
Linear memory never shrinks, so its size at the last sample (and the final one
the sandbox takes after the run) is its peak.  Subscribers run on the guest's thread and their CPU time
counts as the guest's; keep them quick (set a trait, append to a list).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import wasmtime

from ..events import Sample
from .clock import SYSTEM_CLOCK, Clock

__all__ = ["Monitor", "SAMPLE_INTERVAL"]

#: seconds between published samples (10/s)
SAMPLE_INTERVAL = 0.1


class Monitor:
    """Watches one run from its guest thread.

    - ``publish``: receives every :class:`Sample` (the sandbox's event bus);
    - ``stop(kind, reason)``: ends the run at once (the run's ``RunWatch.stop``);
    - ``cpu_share``: share of one core, in (0, 1]; ``cpu_seconds``: CPU-time budget;
    - ``fuel_limit``: the store's fuel at the start, to report fuel used;
    - ``pause(seconds) -> paused``: how the guest is held for its CPU share; the run's
      ``RunWatch.pause`` (cut short by a stop or the deadline), a plain wait if not given;
    - ``clock``: where wall and CPU time are read (:mod:`.clock`; a test passes a manual one).
    """

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
        pause: Callable[[float], float] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.run_id = run_id
        self._publish = publish
        self._stop = stop
        self._clock = clock
        self._pause = pause or self._sleep
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

    def _sleep(self, seconds: float) -> float:
        started = self._clock.wall()
        self._clock.wait(threading.Event(), seconds)
        return self._clock.wall() - started

    def start(self) -> None:
        """Call on the guest's thread right before the guest starts."""
        self._wall0 = self._clock.wall()
        self._cpu0 = self._clock.cpu()
        self._next_sample = self._wall0 + self.sample_interval

    def resume(self, cpu_used: float, wall_used: float) -> None:
        """Call on the guest's thread before each call of a live instance: its budgets go on from
        the CPU and wall time its earlier calls used (time between calls is not the guest's)."""
        self._wall0 = self._clock.wall() - wall_used
        self._cpu0 = self._clock.cpu() - cpu_used
        self._next_sample = self._clock.wall() + self.sample_interval

    def detach(self) -> None:
        """Forget the store after the run.

        Why it matters: wasmtime-py keeps the guest's stdout/stderr callbacks in a global
        table until the store is freed, and those callbacks lead back to this run; a
        store reachable from the run would keep itself alive forever (a leak of every run).
        """
        self._store = None
        self._memory = None

    def attach(self, store: wasmtime.Store, exports: Any) -> None:
        """Let the monitor read the guest's linear memory (once it is instantiated)."""
        self._store = store
        self._memory = next(iter(exports.memories()), None)  # by name (rawlink.Exports), never enumerated
        self.memory_bytes()

    def cpu_used(self) -> float:
        """CPU seconds of the guest's thread since :meth:`start` (call on that thread)."""
        return self._clock.cpu() - self._cpu0

    def memory_bytes(self) -> int:
        """Linear-memory size now (and the peak so far, which is the same: it never shrinks)."""
        if self._memory is None or self._store is None:
            return 0
        size = self._memory.data_len(self._store)
        if size > self.memory_peak:
            self.memory_peak = size
        return size

    def fuel_used(self) -> int | None:
        """Fuel consumed so far (current only after the guest's last call; design.md §5)."""
        if self.fuel_limit is None or self._store is None:
            return None
        try:
            return self.fuel_limit - self._store.get_fuel()
        except wasmtime.WasmtimeError:
            return None

    def tick(self) -> float:
        """At a deadline callback, on the guest thread: budgets, throttling, sampling.

        Returns how many seconds may pass before the monitor must look again: 0 under a
        CPU share (it paces the guest at every tick), else until the next sample or half
        the time the CPU budget could last (CPU time never runs faster than wall time;
        halving closes in on the budget however long the ticks run).
        """
        now = self._clock.wall()
        cpu = self._clock.cpu() - self._cpu0
        if self.cpu_budget is not None and cpu >= self.cpu_budget:
            self._stop("cpu", f"CPU-time budget of {self.cpu_budget:g}s used up")
            return 0.0
        if self.cpu_share is not None:
            # hold the guest until cpu / wall <= share; the pause is wall time without CPU
            owed = cpu / self.cpu_share - (now - self._wall0)
            if owed > 0:
                self.throttled_seconds += self._pause(owed)
                now = self._clock.wall()
        if now >= self._next_sample:
            self._next_sample += self.sample_interval
            if self._next_sample <= now:  # a long pause or a slow subscriber: do not burst to catch up
                self._next_sample = now + self.sample_interval
            self.sample(now, cpu)
        if self.cpu_share is not None:
            return 0.0
        wait = self._next_sample - now
        if self.cpu_budget is not None:
            wait = min(wait, (self.cpu_budget - cpu) / 2)
        return max(wait, 0.0)

    def sample(self, now: float | None = None, cpu: float | None = None) -> Sample:
        """Take, keep and publish one reading (the sandbox takes a last one after the run)."""
        now = self._clock.wall() if now is None else now
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
