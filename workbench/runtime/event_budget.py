"""How many events one run keeps: repeats aggregated, a hard cap, and every event still counted.

Why: each refused call is an event, and a guest can make refused calls as fast as the
host answers them.  A Python guest looping on a refused ``os.stat`` for 8 s left 523,000
events and grew the host by 329 MB, outside every cap (issue 10, point 8).  So a run's
events go through one :class:`EventBudget` (in ``_Run.emit``), before they are stored
or published:

- **Repeats.**  Events that are identical but for their time (same category, action,
  decision, target, resolved path, capability, errno, reason and detail) are kept one
  by one up to :data:`REPEATS`; the ones after that are only counted.  At the end of the
  run one *aggregate* event stands for them: the same fields, with
  ``detail["repeated"]`` (how many events it stands for), ``detail["first_ts"]`` and
  ``detail["last_ts"]``, and a reason that says so.  So the first occurrences and the
  last one (its time) are kept, and the count is exact.
- **A hard cap.**  At most :data:`MAX_EVENTS` events of a run are kept one by one.
  Past that, events are counted per (category, decision); each count becomes one
  *overflow* event (action ``overflow``, ``detail["dropped"]``) at the end of the run.
- **Never dropped:** lifecycle events (a run has a handful, and they frame it) and
  kills (they decide the run's outcome).  Kills are still aggregated when they repeat.

Every view agrees, as design.md §1 requires: aggregate and overflow events are
emitted like any other, so ``RunResult.events``/``violations``, the audit log and the
live view hold the same records, and a violation that was counted rather than kept
is still a violation (its aggregate or overflow event has the same decision).

The bound: a run keeps at most ``MAX_EVENTS`` events one by one, plus one aggregate per
distinct repeated event (each needs ``REPEATS`` kept events first, so at most
``MAX_EVENTS / REPEATS``), plus one overflow event per (category, decision): 11,000
and a few dozen events, about 10 MB of host memory, whatever the guest does.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Hashable

from ..events import Event

__all__ = ["EventBudget", "REPEATS", "MAX_EVENTS"]

#: identical events kept one by one before the rest are only counted
REPEATS = 10
#: events of one run kept one by one, at most
MAX_EVENTS = 10_000


def _frozen(value: Any) -> Hashable:
    """A hashable stand-in for a detail value (lists and dicts included)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value  # type: ignore[no-any-return]


_PLAIN = (str, int, float, bool, type(None))
_KEYED = object()  # a place whose events are counted by their full key


def _key(event: Event) -> Hashable:
    """Everything that makes two events of one run different, except their time."""
    detail: Hashable = ()
    if event.detail:
        detail = tuple(event.detail.items())  # the usual detail: flat values, built by one code path in one order
        if not all(isinstance(v, _PLAIN) for _, v in detail):
            detail = tuple(sorted((k, _frozen(v)) for k, v in event.detail.items()))
    return (event.category, event.action, event.decision, event.target, event.resolved, event.capability,
            event.errno, event.reason, event.caller_chain, detail)


class _Counted:
    """Events that were counted instead of kept: one template event, how many, first and last time."""

    __slots__ = ("event", "count", "first_ts", "last_ts")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.count = 0
        self.first_ts = event.ts
        self.last_ts = event.ts

    def add(self, event: Event) -> None:
        self.count += 1
        self.last_ts = event.ts


class EventBudget:
    """Decides for each event of one run whether it is kept one by one (see the module docstring).

    ``_Run.emit`` calls it from the guest's thread and from wasmtime's output thread,
    so its state changes under a lock.
    """

    def __init__(self, *, repeats: int = REPEATS, max_events: int = MAX_EVENTS) -> None:
        self.repeats = repeats
        self.max_events = max_events
        self.kept = 0  #: events kept one by one so far
        self._seen: dict[Hashable, int] = {}
        self._places: dict[str, Event | object] = {}  # place -> its first event, or _KEYED once counted
        self._repeated: dict[Hashable, _Counted] = {}
        self._dropped: dict[tuple[str, str], _Counted] = {}
        self._lock = threading.Lock()

    def admit(self, event: Event) -> bool:
        """True: keep and publish ``event``.  False: it was counted and will be summed up by :meth:`close`.

        Cheap for the common case: an event whose place (its resolved path, target or action)
        is new in this run cannot repeat an earlier one, so its full identity (:func:`_key`) is
        worked out only once a second event names the same place.  The guard records every
        allowed open, so this keeps the budget off the per-call cost of distinct accesses.
        """
        if event.category == "lifecycle":
            with self._lock:
                self.kept += 1
            return True
        place = event.resolved or event.target or event.action
        with self._lock:
            first = self._places.get(place)
            if first is None and self.kept < self.max_events:
                self._places[place] = event  # its key is made only if the place comes up again
                self.kept += 1
                return True
            if isinstance(first, Event):
                self._places[place] = _KEYED
                first_key = _key(first)
                self._seen[first_key] = self._seen.get(first_key, 0) + 1
            return self._admit(event, _key(event))

    def _admit(self, event: Event, key: Hashable) -> bool:
        seen = self._seen.get(key, 0)
        if seen >= self.repeats:
            counted = self._repeated.get(key)
            if counted is None:
                counted = self._repeated[key] = _Counted(event)
            counted.add(event)
            return False
        if self.kept >= self.max_events and event.decision != "kill":
            group = (event.category, event.decision)
            counted = self._dropped.get(group)
            if counted is None:
                counted = self._dropped[group] = _Counted(event)
            counted.add(event)
            return False
        self._seen[key] = seen + 1
        self.kept += 1
        return True

    @property
    def counted(self) -> int:
        """Events counted but not kept one by one, so far."""
        with self._lock:
            return sum(c.count for c in self._repeated.values()) + sum(c.count for c in self._dropped.values())

    def close(self) -> list[Event]:
        """The aggregate and overflow events that sum up what was counted (call once, at the end)."""
        with self._lock:
            return self._close()

    def _close(self) -> list[Event]:
        now = time.time()
        closing: list[Event] = []
        for counted in self._repeated.values():
            event = counted.event
            closing.append(dataclasses.replace(
                event,
                reason=f"{event.reason or f'{event.category} {event.action} {event.decision}'} "
                f"({counted.count:,} more times after the first {self.repeats}: counted, not recorded one by one)",
                detail={**event.detail, "repeated": counted.count, "first_ts": counted.first_ts,
                        "last_ts": counted.last_ts},
                ts=now,
            ))
        for (category, decision), counted in self._dropped.items():
            closing.append(dataclasses.replace(
                counted.event,
                action="overflow",
                target=None,
                resolved=None,
                capability=None,
                errno=None,
                reason=f"{counted.count:,} more {category} events ({decision}) not recorded one by one: "
                f"the run reached its cap of {self.max_events:,} recorded events",
                detail={"dropped": counted.count, "first_ts": counted.first_ts, "last_ts": counted.last_ts,
                        "cap": self.max_events},
                ts=now,
            ))
        self._repeated.clear()
        self._dropped.clear()
        return closing
