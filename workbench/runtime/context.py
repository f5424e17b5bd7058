"""What an enforcer may touch of the run in progress: :class:`RunContext`, and :class:`ActiveRuns`.

Why one typed object: the enforcers (the guard, the memory creator, the table watch, the
output cap, the verdicts after a trap) each need the plan, a way to record an event and a
way to stop the guest, and nothing else of the run.  Passing exactly that keeps them
testable on their own and keeps the run's internals private.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..events import Event
from .deadline import RunWatch
from .plan import RunPlan

__all__ = ["Emit", "RunContext", "ActiveRuns"]


class Emit(Protocol):
    """Record one event of the run (the run adds its id, module and hash)."""

    def __call__(self, category: str, action: str, decision: str = "allow", **fields: Any) -> Event: ...


@dataclass(eq=False)
class RunContext:
    """One run's plan, its record and its stop, as the enforcers see them."""

    plan: RunPlan
    emit: Emit
    watch: RunWatch
    events: list[Event] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() when the guest started

    @property
    def refusal(self) -> Literal["kill", "deny"]:
        """The decision a refused limit records under this run's ``on_violation``."""
        return self.plan.on_violation.refusal

    def refused(self, kind: str, reason: str) -> None:
        """A limit refused something: in kill mode the run stops (at its next epoch check)."""
        if self.plan.on_violation.kills:
            self.watch.stop(kind, reason)


class ActiveRuns:
    """The runs of one sandbox in progress, so :meth:`Sandbox.cancel` can stop them."""

    def __init__(self) -> None:
        self._watches: set[RunWatch] = set()
        self._lock = threading.Lock()

    def add(self, watch: RunWatch) -> None:
        with self._lock:
            self._watches.add(watch)

    def discard(self, watch: RunWatch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def stop_all(self, kind: str, reason: str) -> int:
        """Ask every run in progress to stop; returns how many were asked."""
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch.stop(kind, reason)
        return len(watches)
