"""A run's violations in time: identical ones grouped, each group in its category's lane.

One builder for every view (design.md §1): the notebook's live timeline feeds it event by
event while the guest runs, the summary after a run builds it from ``RunResult.events``,
and both read the same :class:`TimelineGroup`\\ s.  What is grouped and why:

- **Identical violations are one group** (``deny open /etc/passwd ×40``, first and last
  time): the same decision, category, action, target and rule.  A guest looping on a
  refused call makes thousands of them; a view that shows each one is unreadable (160
  attempts were 5,300 px of rows) and costs a message per row.
- **The event budget's records count**: an aggregate event (``detail["repeated"]``) adds
  its count and its last time to its group; an overflow event (``detail["dropped"]``)
  becomes a group of its own, so the totals are exact whatever was kept one by one.
- **Bounded**: at most :data:`MAX_GROUPS` groups (later distinct ones are folded into one
  ``… more`` group per lane and decision) and :data:`MAX_MARKS` mark times per group
  (thinned evenly), so a view's size and the data it sends stay flat whatever the count.

Learn mode's ``audit`` decisions (allowed and recorded, refused under a deny policy) are
placed too, so a learn-mode run shows what it would have been refused.  Pure Python.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from ..events import Event
from .errnos import errno_name
from .outcome import is_learned

__all__ = ["Timeline", "TimelineGroup", "LANES", "lane_of", "MAX_GROUPS", "MAX_MARKS"]

#: the lanes, in the order a view draws them (``run`` holds lifecycle stops and traps)
LANES: tuple[str, ...] = ("filesystem", "memory", "cpu", "time", "output", "network", "module", "run")
_LANE_OF = {"fuel": "cpu", "stack": "memory", "table": "memory", "env": "filesystem", "lifecycle": "run",
            "trap": "run", "audit": "run"}
#: distinct groups kept; later ones are folded into one group per lane and decision
MAX_GROUPS = 200
#: mark times kept per group (first and last are always kept)
MAX_MARKS = 40


def lane_of(category: str) -> str:
    """The lane a category is drawn in."""
    return category if category in LANES else _LANE_OF.get(category, "run")


@dataclass
class TimelineGroup:
    """Identical violations: how many, when (seconds from the run's start), and what they were."""

    lane: str
    decision: str
    category: str
    action: str
    target: str | None
    capability: str | None
    reason: str
    errno: int | None
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    marks: list[float] = field(default_factory=list)
    folded: bool = False

    @property
    def errno_name(self) -> str | None:
        return None if self.errno is None or self.errno == 0 else errno_name(self.errno)

    @property
    def label(self) -> str:
        """``deny filesystem open /etc/passwd ×40`` (no count when it happened once)."""
        what = " ".join(p for p in (self.decision, self.category, self.action, self.target or "") if p)
        return what + (f" ×{self.count}" if self.count > 1 else "")

    def _mark(self, seconds: float) -> None:
        self.marks.append(seconds)
        if len(self.marks) > MAX_MARKS:  # thin evenly, keeping the first and the newest
            self.marks = self.marks[:1] + self.marks[2:-1:2] + self.marks[-1:]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a widget's synced state."""
        return {
            "lane": self.lane, "decision": self.decision, "category": self.category, "action": self.action,
            "target": self.target or "", "rule": self.capability or "", "reason": self.reason,
            "errno": self.errno_name or "", "count": self.count, "first": round(self.first, 4),
            "last": round(self.last, 4), "marks": [round(m, 4) for m in self.marks], "label": self.label,
        }


class Timeline:
    """Groups a run's violations as they come (:meth:`add`), or from a finished run's events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[tuple[Any, ...], TimelineGroup] = {}
        self.start_ts: float | None = None
        self.total = 0

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> "Timeline":
        timeline = cls()
        for event in events:
            timeline.add(event)
        return timeline

    def add(self, event: Event) -> bool:
        """Place ``event`` if a timeline shows it; True when it did."""
        with self._lock:
            if event.category == "lifecycle" and event.action == "start" and self.start_ts is None:
                self.start_ts = event.ts
                return False
            if not (event.is_violation or is_learned(event)):
                return False
            start = self.start_ts if self.start_ts is not None else event.ts
            detail = event.detail
            count = 1
            first = last = event.ts
            if isinstance(detail.get("repeated"), int):  # the event budget's aggregate of repeats
                count = detail["repeated"]
                first, last = float(detail.get("first_ts", first)), float(detail.get("last_ts", last))
            elif isinstance(detail.get("dropped"), int):  # the budget's overflow count
                count = detail["dropped"]
                first, last = float(detail.get("first_ts", first)), float(detail.get("last_ts", last))
            target = event.resolved or event.target
            key: tuple[Any, ...] = (event.decision, event.category, event.action, target, event.capability)
            group = self._groups.get(key)
            if group is None:
                if len(self._groups) >= MAX_GROUPS:
                    key = (event.decision, lane_of(event.category), "…")
                    group = self._groups.get(key)
                if group is None:
                    folded = len(key) == 3
                    group = self._groups[key] = TimelineGroup(
                        lane=lane_of(event.category), decision=event.decision,
                        category=event.category, action="more" if folded else event.action,
                        target=None if folded else target, capability=None if folded else event.capability,
                        reason="further distinct violations, counted" if folded
                        else (event.reason or f"{event.category} {event.action}"),
                        errno=None if folded else event.errno, first=max(first - start, 0.0), folded=folded,
                    )
            group.count += count
            group.last = max(group.last, last - start, 0.0)
            group.first = min(group.first, max(first - start, 0.0))
            group._mark(max(last - start, 0.0))
            self.total += count
            return True

    def groups(self) -> list[TimelineGroup]:
        """Copies of the groups, by first time (safe to read while the run goes on)."""
        with self._lock:
            copies = [replace(g, marks=list(g.marks)) for g in self._groups.values()]
        return sorted(copies, key=lambda g: (g.first, LANES.index(g.lane)))

    def lanes(self) -> list[str]:
        """The lanes a view draws: the usual seven always, ``run`` only when used."""
        used = {g.lane for g in self.groups()}
        return [lane for lane in LANES if lane != "run" or lane in used]

    def __len__(self) -> int:
        return len(self._groups)
