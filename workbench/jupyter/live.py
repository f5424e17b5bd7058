"""What the live view knows about a run in progress: a subscriber that only records.

The event bus calls subscribers on the guest's thread, inside wasmtime's
epoch callback, so :class:`LiveState` does the least possible there: it keeps
the latest samples and places violations on the run's :class:`~workbench.runtime.Timeline`
(the one builder every view uses) and returns.  The refresh thread takes a
:class:`Snapshot` whenever it wakes and turns it into widget updates; nothing
about widgets ever runs on the guest's thread.

One clock: a snapshot's ``wall_seconds`` is what the time gauge shows *and* where
the timeline's axis ends, taken at one moment, so the two never disagree.  The clock
starts at the run's ``lifecycle start``, not when the cell started: compiling (a first
C compile takes 25-40 s) is shown as compiling by its own progress display, never on
the guest's time gauge.

Pure Python (no ipywidgets), so gauges can be computed and tested without a kernel.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Union

from ..events import Event, Sample
from ..runtime import Timeline, TimelineGroup

__all__ = ["LiveState", "Snapshot"]

#: samples kept for the CPU-share window (at 10/s: the last half second)
_CPU_WINDOW = 5


@dataclass(frozen=True)
class Snapshot:
    """A consistent reading of a run, taken by the refresh thread."""

    wall_seconds: float
    memory_bytes: int
    cpu_seconds: float
    cpu_share: float
    fuel_used: int | None
    groups: tuple[TimelineGroup, ...] = ()
    lanes: tuple[str, ...] = ()
    sampled: bool = True
    finished: bool = False
    #: the finished run's summary (HTML, without the gauges shown above it)
    summary_html: str = ""

    @property
    def total(self) -> int:
        """Violations (and learn mode's recorded refusals) so far, repeats counted."""
        return sum(g.count for g in self.groups)

    @property
    def violated(self) -> Mapping[str, int]:
        """Violations per category (deny and kill): what turns a gauge red."""
        counts: Counter[str] = Counter()
        for group in self.groups:
            if group.decision in ("deny", "kill"):
                counts[group.category] += group.count
        return counts


class LiveState:
    """Subscriber for ``sandbox.subscribe``: keeps what the gauges and the timeline need."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._samples: deque[Sample] = deque(maxlen=_CPU_WINDOW)
        self.timeline = Timeline()
        self._started_wall: float | None = None  # the run's start (its lifecycle start event)
        self._final: Snapshot | None = None
        self.changes = 0  # bumped on every item: lets the refresher skip idle ticks
        #: repeats the run's event budget counted instead of publishing, per timeline group: (how many, last ts)
        self._counted: dict[tuple[object, ...], tuple[int, float]] = {}

    def __call__(self, item: Union[Event, Sample]) -> None:
        with self._lock:
            self.changes += 1
            if isinstance(item, Sample):
                self._samples.append(item)
                return
            if item.category == "lifecycle" and item.action == "start":
                self._started_wall = self._clock()
            if "repeated" in item.detail or "dropped" in item.detail:
                self._counted.clear()  # the budget's exact aggregates have come: they replace the live counts
        self.timeline.add(item)

    def on_counted(self, event: Event) -> None:
        """A repeat the event budget counted rather than kept (``EventBus.publish_counted``): the
        group it belongs to shows it at once, not only when the run's aggregate comes at the end."""
        if event.decision == "allow":  # only violations and learn mode's records are on a timeline
            return
        key = (event.decision, event.category, event.action, event.resolved or event.target, event.capability)
        with self._lock:
            self.changes += 1
            count, _ = self._counted.get(key, (0, 0.0))
            self._counted[key] = (count + 1, event.ts)

    def _with_counted(self, groups: tuple[TimelineGroup, ...]) -> tuple[TimelineGroup, ...]:
        with self._lock:
            counted = dict(self._counted)
        start = self.timeline.start_ts
        if not counted or start is None:
            return groups
        merged = []
        for group in groups:
            extra = counted.get((group.decision, group.category, group.action, group.target, group.capability))
            if extra is not None and not group.folded:
                group = replace(group, count=group.count + extra[0], last=max(group.last, extra[1] - start))
            merged.append(group)
        return tuple(merged)

    def running_seconds(self) -> float | None:
        """Seconds since the guest started; None while it has not (the module is still compiling)."""
        with self._lock:
            return None if self._started_wall is None else self._clock() - self._started_wall

    def finish(self, snapshot: Snapshot) -> None:
        """The exact final numbers (from the RunResult); later snapshots return them, with
        the timeline as it ended (the same one, built while the run went on)."""
        with self._lock:
            self._final = replace(snapshot, groups=tuple(self.timeline.groups()), lanes=tuple(self.timeline.lanes()),
                                  finished=True)
            self.changes += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._final is not None:
                return self._final
            samples = list(self._samples)
            wall = 0.0 if self._started_wall is None else self._clock() - self._started_wall
        groups = self._with_counted(tuple(self.timeline.groups()))
        lanes = tuple(self.timeline.lanes())
        if not samples:
            return Snapshot(wall, 0, 0.0, 0.0, None, groups, lanes, sampled=False)
        last = samples[-1]
        share = 0.0
        if len(samples) >= 2:
            first = samples[0]
            span = last.wall_seconds - first.wall_seconds
            if span > 0:
                share = (last.cpu_seconds - first.cpu_seconds) / span
        elif last.wall_seconds > 0:
            share = last.cpu_seconds / last.wall_seconds
        return Snapshot(
            wall_seconds=max(wall, last.wall_seconds),
            memory_bytes=last.memory_bytes,
            cpu_seconds=last.cpu_seconds,
            cpu_share=max(share, 0.0),
            fuel_used=last.fuel_used,
            groups=groups,
            lanes=lanes,
            sampled=True,
        )


def final_snapshot(result: object, summary_html: str = "") -> Snapshot:
    """A finished run's exact numbers, in the shape the gauges read (groups come from the
    live timeline in :meth:`LiveState.finish`, or from the result's events)."""
    u = getattr(result, "usage")
    timeline = Timeline.from_events(getattr(result, "events"))
    return Snapshot(wall_seconds=u.wall_seconds, memory_bytes=u.memory_peak_bytes, cpu_seconds=u.cpu_seconds,
                    cpu_share=u.cpu_share, fuel_used=u.fuel_used, groups=tuple(timeline.groups()),
                    lanes=tuple(timeline.lanes()), sampled=True, finished=True, summary_html=summary_html)


