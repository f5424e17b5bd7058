"""A run's subscriber failures: kept (never silent), counted, and the first critical one told.

Why apart from the run: the rule is small but exact (one entry per subscriber, the first
failure kept with a count; the audit log's first failure stops the run, once), and views
must hear about a failing view after the run, on the caller's thread.
"""

from __future__ import annotations

import threading
import warnings

from ..errors import SubscriberWarning
from ..events import SubscriberFailure

__all__ = ["FailureBook"]


class FailureBook:
    """Subscriber failures of one run, by (subscriber, critical): the first failure and a count."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, bool], tuple[SubscriberFailure, int]] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def add(self, failures: tuple[SubscriberFailure, ...]) -> SubscriberFailure | None:
        """Keep ``failures``; returns the first critical failure of the run (once), which must stop it."""
        stop: SubscriberFailure | None = None
        with self._lock:
            for failure in failures:
                key = (failure.subscriber, failure.critical)
                first, count = self._kept.get(key, (failure, 0))
                self._kept[key] = (first, count + 1)
                if failure.critical and not self._stopped:
                    self._stopped = True
                    stop = failure
        return stop

    def failures(self) -> tuple[SubscriberFailure, ...]:
        """One failure per subscriber, with how often it failed."""
        with self._lock:
            kept = list(self._kept.values())
        return tuple(SubscriberFailure(f.subscriber, f.critical, f.error, n, f.exception) for f, n in kept)

    def report(self, module: str) -> tuple[SubscriberFailure, ...]:
        """The failures for the result; a failing view is told as a :class:`SubscriberWarning`."""
        if not self._kept:  # the usual case, on every run's hot path
            return ()
        failures = self.failures()
        views = [f for f in failures if not f.critical]
        if views:  # on the caller's thread, after the run: a view's bug is told, never swallowed
            warnings.warn(f"a subscriber failed during the run of {module} (the run went on): "
                          + "; ".join(map(str, views)), SubscriberWarning, stacklevel=6)  # Sandbox.run's caller
        return failures
