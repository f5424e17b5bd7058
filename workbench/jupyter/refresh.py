"""The throttle between a run and the notebook: a message budget and a refresh thread.

Why: every widget trait change is a comm message on the kernel's iopub
channel.  Unthrottled, a run floods it (5,000 assignments became 4,999
messages, 2,000 of them arriving after the cell had ended, and Jupyter Server
drops iopub traffic above 1,000 messages/s; design.md §6).  So:

- :class:`MessageBudget` allows at most ``rate`` messages in any one-second
  window (a sliding window, not a bucket, so there is never a burst above it);
- :class:`RefreshThread` (modelled on rich's ``_RefreshThread``) wakes
  ``rate`` times a second and asks the view to refresh within the budget.
  It is the only thread that touches the widgets while a run is going, and
  it never prints or uses ``with output:`` (unsafe from threads under ipykernel 7).

Pure standard library.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from typing import Callable

__all__ = ["MessageBudget", "RefreshThread"]


class MessageBudget:
    """At most ``rate`` messages in any window of ``window`` seconds."""

    def __init__(self, rate: float, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.capacity = max(int(rate * window), 1)
        self.window = window
        self._clock = clock
        self._sent: deque[float] = deque(maxlen=self.capacity)
        self.spent = 0

    def in_window(self) -> int:
        """Messages sent in the last ``window`` seconds."""
        now = self._clock()
        return sum(1 for t in self._sent if now - t < self.window)

    def available(self, reserve: int = 0) -> bool:
        """May one more message go now, leaving ``reserve`` messages of the window unspent?

        Live updates keep a reserve so that the final update of every widget
        can go at once when the run ends, without breaking the limit; they are
        also paced (evenly spaced across the window) rather than sent in bursts.
        """
        allowed = max(self.capacity - reserve, 1)
        if self.in_window() >= allowed:
            return False
        if reserve and self._sent and self._clock() - self._sent[-1] < self.window / allowed:
            return False
        return True

    def spend(self) -> None:
        self._sent.append(self._clock())
        self.spent += 1


class RefreshThread(threading.Thread):
    """Calls ``refresh(final=False)`` every ``1/rate`` s until :meth:`stop`, then ``refresh(final=True)``.

    It runs in a copy of the context of the thread that created it (the cell's),
    so output it writes is attributed to that cell by ipykernel.

    ``refresh`` returns True when it still has updates it could not send (the
    budget ran out); the final call is repeated, waiting for the budget, until
    it has sent everything or ``final_timeout`` passed, so the gauges end on the
    run's exact numbers without ever breaking the throttle.
    """

    def __init__(self, refresh: Callable[[bool], bool], rate: float, final_timeout: float = 1.5) -> None:
        super().__init__(name="workbench-live-refresh", daemon=True)
        # the starting thread's context: ipykernel finds the cell's request (parent header) in it
        self._context = contextvars.copy_context()
        self._refresh = refresh
        self._interval = 1.0 / rate
        self._final_timeout = final_timeout
        self._done = threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        self._context.run(self._loop)

    def _loop(self) -> None:
        while not self._done.wait(self._interval):
            self._call(False)
        deadline = time.monotonic() + self._final_timeout
        while self._call(True) and time.monotonic() < deadline:
            time.sleep(min(self._interval / 2, 0.05))

    def _call(self, final: bool) -> bool:
        try:
            return self._refresh(final)
        except Exception as exc:  # a view's bug must never reach the run; keep it for tests
            self.errors.append(exc)
            return False

    def stop(self, timeout: float = 3.0) -> None:
        """Ask for the final refresh and wait for it."""
        self._done.set()
        if self.is_alive():
            self.join(timeout)
