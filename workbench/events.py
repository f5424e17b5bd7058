"""The event stream every view of a run subscribes to.

A run produces :class:`Event` objects (security-relevant facts: lifecycle,
allowed and denied accesses, limit hits, traps) and :class:`Sample` objects
(periodic usage readings).  ``RunResult.events``, the audit log and the live
widgets all read this one stream, so they can never disagree about what
happened.  A violation is simply an event whose decision is ``deny`` or
``kill``.

This module is pure Python: no wasmtime, no Jupyter.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Union

__all__ = [
    "Category",
    "Decision",
    "Event",
    "Sample",
    "Violation",
    "EventBus",
    "Subscriber",
    "SubscriberFailure",
]

Category = Literal[
    "filesystem", "network", "env", "memory", "cpu", "time", "fuel", "output",
    "module", "lifecycle", "trap", "stack",
]
Decision = Literal["allow", "deny", "kill", "audit"]

#: categories whose deny/kill events are limit violations rather than access denials
LIMIT_CATEGORIES = frozenset({"memory", "cpu", "time", "fuel", "output", "stack"})


@dataclass(frozen=True)
class Event:
    """One security-relevant fact about a run (design.md §4 without the chain fields).

    ``ts`` is seconds since the epoch (UTC).  ``detail`` never holds secrets
    (environment values, file contents).
    """

    run_id: str
    category: str
    action: str
    decision: Decision = "allow"
    target: str | None = None
    resolved: str | None = None
    capability: str | None = None
    reason: str | None = None
    errno: int | None = None
    module: str = ""
    module_sha256: str | None = None
    caller_chain: tuple[str, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    @property
    def is_violation(self) -> bool:
        """A violation is an event the sandbox refused (``deny``) or stopped a run for (``kill``)."""
        return self.decision in ("deny", "kill")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the audit log and ``--json`` write)."""
        return {
            "ts": self.ts,
            "run_id": self.run_id,
            "module": self.module,
            "module_sha256": self.module_sha256,
            "caller_chain": list(self.caller_chain),
            "category": self.category,
            "action": self.action,
            "target": self.target,
            "resolved": self.resolved,
            "decision": self.decision,
            "capability": self.capability,
            "reason": self.reason,
            "errno": self.errno,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class Sample:
    """A periodic usage reading of a running guest (feeds gauges, not the audit log)."""

    run_id: str
    wall_seconds: float
    memory_bytes: int
    cpu_seconds: float = 0.0
    fuel_used: int | None = None
    throttled_seconds: float = 0.0
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Violation:
    """A refused or stopped action, as users read it in ``RunResult.violations``.

    ``kind`` is the event category (``filesystem``, ``memory``, ``time``, ...);
    ``target`` is what the guest asked for, as it crossed the WASI boundary (``etc/passwd``
    relative to a preopened ``/``, ``../secret``); ``resolved`` is the guest path the sandbox
    made of it (``/etc/passwd``), when there is one; ``event`` is the event it was derived
    from, so nothing is lost.
    """

    kind: str
    capability: str | None
    target: str | None
    message: str
    decision: Decision
    event: Event | None = None
    resolved: str | None = None

    @property
    def where(self) -> str | None:
        """What to show a reader: the resolved guest path, else the target as requested."""
        return self.resolved or self.target

    @classmethod
    def from_event(cls, event: Event) -> "Violation":
        return cls(
            kind=event.category,
            capability=event.capability,
            target=event.target,
            message=event.reason or f"{event.category} {event.action} {event.decision}",
            decision=event.decision,
            event=event,
            resolved=event.resolved,
        )

    def __str__(self) -> str:
        rule = f" [{self.capability}]" if self.capability else ""
        return f"{self.kind}: {self.message}{rule}"


Subscriber = Callable[[Union[Event, Sample]], None]


@dataclass(frozen=True)
class SubscriberFailure:
    """A subscriber that raised while an event or sample was delivered to it.

    - ``subscriber``: what it was (its qualified name, or its repr)
    - ``critical``: a subscriber that keeps the record (the audit log): its failure stops the run
    - ``error``: ``"OSError: [Errno 28] No space left on device"``
    - ``count``: how many deliveries failed this way in the run (only the first is kept whole)
    - ``exception``: the first exception itself, with its traceback
    """

    subscriber: str
    critical: bool
    error: str
    count: int = 1
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        times = f" ({self.count} times)" if self.count > 1 else ""
        return f"{self.subscriber} failed{times}: {self.error}"


def _describe(subscriber: Subscriber) -> str:
    name = getattr(subscriber, "__qualname__", None)
    text = name if isinstance(name, str) else repr(subscriber)
    return text if len(text) <= 200 else text[:197] + "..."


_NO_FAILURES: tuple[SubscriberFailure, ...] = ()

#: how many exceptions ``EventBus.errors`` keeps (the first ones); a subscriber that fails on
#: every sample of a long run must not grow the host without bound
MAX_KEPT_ERRORS = 100


class EventBus:
    """Fan-out of events and samples to subscribers.

    Subscribers are called synchronously on the publishing thread (often the
    guest's own thread), so they must be quick: a widget sets a trait, a log
    appends a line.

    A subscriber that raises never breaks the delivery to the others, and its
    failure is never silent (the rule, docs/decisions.md "Subscriber failures"):
    :meth:`publish` returns every failure of that delivery as a
    :class:`SubscriberFailure`, and a run turns them into its result: a
    *critical* subscriber's failure (the audit log: ``Sandbox(audit=...)``)
    stops the run, a view's failure is a ``SubscriberWarning`` and is listed in
    ``RunResult.subscriber_failures``.  ``errors`` keeps the first
    :data:`MAX_KEPT_ERRORS` exceptions for anyone publishing outside a run.
    """

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, bool]] = []
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []

    def subscribe(self, subscriber: Subscriber, *, critical: bool | None = None) -> Callable[[], None]:
        """Add ``subscriber``; returns a function that removes it again.

        ``critical``: the subscriber keeps the record of what happened (an audit log):
        a run must not go on without it, so its failure stops the run.  Default: the
        subscriber's own ``critical`` attribute (``AuditLog.critical`` is True), else False.
        """
        if critical is None:
            critical = getattr(subscriber, "critical", False) is True
        entry = (subscriber, bool(critical))
        with self._lock:
            self._subscribers = [*self._subscribers, entry]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not entry]

        return unsubscribe

    def publish_counted(self, event: Event) -> None:
        """``event`` was counted, not kept (the run's event budget: a repeat past the first few).

        Only subscribers with an ``on_counted(event)`` method hear of it: a live view keeping its
        counts current while the run goes on.  Record keepers (the audit log) get the exact
        aggregate at the run's end instead.  A display's failure never stops a run: it is kept in
        ``errors`` and the event goes on to the others.
        """
        for subscriber, _ in self._subscribers:
            hook = getattr(subscriber, "on_counted", None)
            if hook is None:
                continue
            try:
                hook(event)
            except Exception as exc:  # a live view's bug: kept, never raised inside a host call
                if len(self.errors) < MAX_KEPT_ERRORS:
                    self.errors.append(exc)

    def publish(self, item: Event | Sample) -> tuple[SubscriberFailure, ...]:
        """Deliver ``item`` to every subscriber; returns the failures (empty when all went well).

        Never raises for a subscriber's exception: it is often called from inside a
        wasmtime host call, where nothing may unwind.
        """
        failures: list[SubscriberFailure] | None = None
        for subscriber, critical in self._subscribers:  # copy-on-write list: safe without the lock
            try:
                subscriber(item)
            except Exception as exc:  # reported to the caller, never swallowed
                if len(self.errors) < MAX_KEPT_ERRORS:
                    self.errors.append(exc)
                failure = SubscriberFailure(_describe(subscriber), critical, f"{type(exc).__name__}: {exc}",
                                            exception=exc)
                if failures is None:
                    failures = []
                failures.append(failure)
        return _NO_FAILURES if failures is None else tuple(failures)
