"""Ctrl-C (and Jupyter's ■ button) for a guest that is spinning inside wasmtime.

Why this exists: a guest runs inside a ctypes call on the caller's thread.  A
Python signal handler runs only when the main thread executes Python bytecode,
and when it does so inside one of wasmtime's callbacks (the epoch-deadline
callback, an output writer) a ``KeyboardInterrupt`` raised there is swallowed
by ctypes ("Exception ignored on calling ctypes callback function") and the
guest goes on.  So the default handler either waits until the guest returns
or loses the interrupt altogether.

:func:`route_interrupts` fixes that for the duration of a ``with`` block:

- ``signal.set_wakeup_fd`` makes the C-level signal handler write the signal
  number into a pipe the moment the signal arrives, whatever the main thread
  is doing; a small watcher thread reads it and calls ``on_interrupt(signum)``
  (typically ``lambda s: sandbox.cancel("interrupted") > 0``), which trips the
  run's epoch deadline: the guest stops within one tick.
- the Python-level handler is replaced by one that never raises inside a
  guest callback; when ``on_interrupt`` reports that it had nothing to stop
  (the signal came while no guest was running: compiling, printing), it
  raises ``KeyboardInterrupt`` as usual, so Ctrl-C still interrupts ordinary
  Python code inside the block.
- on exit the previous handlers and wakeup fd are restored; signals the block
  does not route that arrive meanwhile are forwarded to the previous wakeup fd
  (an asyncio or tornado loop's), so nothing else loses its signals.

Signals can only be handled on the main thread, so off it the block does
nothing (``route.active`` is False) and the caller keeps its own means of
stopping a run (``Sandbox.cancel`` from anywhere).

Pure standard library: usable by the CLI, a notebook or a test alike.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Callable, Iterator, Sequence

__all__ = ["InterruptRoute", "route_interrupts"]

#: ``on_interrupt(signum) -> handled``: True when it stopped something (a run is cancelled)
OnInterrupt = Callable[[int], Any]


class InterruptRoute:
    """The state of one :func:`route_interrupts` block.

    - ``active``: signals are being routed (False off the main thread);
    - ``received``: the routed signal numbers, in arrival order;
    - ``handled``: how many of them ``on_interrupt`` reported as handled.

    Each arrival is seen twice, once by the watcher thread (from the pipe) and
    once by the Python-level handler; whichever comes first calls
    ``on_interrupt`` and both share its answer, so the callback runs once per
    signal and the handler knows whether to raise ``KeyboardInterrupt``.
    """

    def __init__(self, on_interrupt: OnInterrupt, signals: Sequence[int], active: bool) -> None:
        self.active = active
        self.signals = tuple(int(s) for s in signals)
        self.received: list[int] = []
        self.handled = 0
        self._on_interrupt = on_interrupt
        self._lock = threading.RLock()  # re-entrant: a handler may be interrupted by a second signal
        self._answers: list[bool] = []  # one per arrival: did on_interrupt handle it
        self._seen = {"watcher": 0, "handler": 0}

    @property
    def interrupted(self) -> bool:
        """At least one routed signal arrived during the block."""
        return bool(self.received)

    def _dispatch(self, signum: int, side: str) -> bool:
        """Called by the watcher (``side="watcher"``) and by the Python handler (``"handler"``)."""
        with self._lock:
            index = self._seen[side]
            self._seen[side] = index + 1
            if index < len(self._answers):
                return self._answers[index]
            self.received.append(signum)
            try:
                handled = bool(self._on_interrupt(signum))
            except Exception:  # a broken callback must not break the guest or the watcher
                handled = False
            if handled:
                self.handled += 1
            self._answers.append(handled)
            return handled


def _watch(route: InterruptRoute, read_fd: int, forward_fd: int) -> None:
    """Watcher thread: one byte per signal arrives in ``read_fd``; EOF ends the watch."""
    while True:
        try:
            data = os.read(read_fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in route.signals:
                route._dispatch(signum, "watcher")
            elif forward_fd >= 0:
                try:  # someone else's signal (SIGCHLD for an event loop, ...): pass it on
                    os.write(forward_fd, bytes([signum]))
                except OSError:
                    pass


@contextmanager
def route_interrupts(
    on_interrupt: OnInterrupt,
    *,
    signals: Sequence[int] = (signal.SIGINT,),
) -> Iterator[InterruptRoute]:
    """Route ``signals`` (default SIGINT) to ``on_interrupt`` while the block runs.

    - ``on_interrupt(signum)`` runs on a watcher thread, at once, even while a
      guest spins; return True when it stopped something.  When it returns
      False the main thread gets the usual ``KeyboardInterrupt`` (at its next
      Python bytecode).
    - yields an :class:`InterruptRoute` (``route.interrupted`` after the block
      tells whether a signal came).

    Off the main thread this is a no-op block with ``route.active`` False.
    """
    on_main = threading.current_thread() is threading.main_thread()
    route = InterruptRoute(on_interrupt, signals, active=on_main)
    if not on_main:
        yield route
        return

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # set_wakeup_fd requires it: the C handler must never block
    previous_handlers: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if not route._dispatch(signum, "handler"):
            raise KeyboardInterrupt

    try:
        for signum in route.signals:
            previous_handlers[signum] = signal.signal(signum, handler)
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except BaseException:
        for signum, old in previous_handlers.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
        os.close(read_fd)
        os.close(write_fd)
        raise
    watcher = threading.Thread(
        target=_watch, args=(route, read_fd, previous_fd), name="workbench-interrupt-watcher", daemon=True
    )
    watcher.start()
    try:
        yield route
    finally:
        # handlers first: a signal from here on gets the ordinary behaviour again
        for signum, old in previous_handlers.items():
            if old is None:  # installed from C, not restorable from Python: fall back to the default
                old = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, old)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # EOF for the watcher
        watcher.join(timeout=2.0)
        os.close(read_fd)
