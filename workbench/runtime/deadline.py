"""The epoch-deadline callback: how a running guest is watched, paused and stopped.

wasmtime calls this on the guest's own thread when the engine's epoch reaches the
store's deadline (design.md §5), so it may read the store and sleep.  One C
callback serves every run: the ``data`` pointer is a run number that finds the
run's :class:`RunWatch`, so runs in several threads at once never see each other's
state.  Returning 0 with ``delta=N`` lets the guest go on for N more ticks;
returning a ``wasmtime_error_t*`` traps the guest with that message, which is how
deadlines, cancellation and ``kill`` decisions stop a run.

Each callback does, in order: stop if asked or past the deadline; run the monitor
(``on_tick``: budgets, CPU-share pause, samples), which says how long it can wait
before it must look again; check again, so a stop asked by the monitor, or a
deadline reached while the guest was paused, takes effect at once; then sleep
through as many ticks as nobody needs.

Why not every tick: the callback must take the GIL, and on this 2-core VM each
one costs a spinning guest 30-80 µs of wall time (waiting for the GIL and the
ticker thread): 4-9% of a call-heavy guest at a 2 ms tick.  Asking only for
the ticks needed (the next sample, the deadline, a CPU budget that cannot run out
sooner than wall time) leaves about 10 callbacks a second.  A stop asked from
another thread moves every engine's epoch ahead (:func:`engine.kick_engines`), so
cancellation still lands within a tick.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from typing import Any, Callable


from .._wasmtime_ffi import ffi
from .clock import SYSTEM_CLOCK, Clock
from .engine import kick_engines, tick_seconds

__all__ = ["RunWatch", "install_watch", "KILL_PREFIX", "MAX_TICKS"]

#: the most ticks a guest runs between two callbacks (~128 ms at 2 ms: above the sample interval)
MAX_TICKS = 64

#: every trap message this module makes starts with this, so traps can be told apart
KILL_PREFIX = "workbench-stop:"

_CALLBACK_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_FINALIZER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class RunWatch:
    """What the deadline callback checks for one run.

    - ``deadline``: ``time.monotonic()`` value after which the run is stopped (or None);
    - ``stop(kind, reason)``: ask the guest to stop at the next tick (cancellation, kill);
    - ``pause(seconds)``: sleep on the guest's thread, cut short by a stop or the deadline;
    - ``on_tick``: optional monitor, called on the guest thread at each callback; it returns
      how many seconds it can wait before it must look again (None or 0: next tick).
    """

    def __init__(
        self, deadline: float | None, on_tick: Callable[[], float | None] | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.deadline = deadline
        self.clock = clock
        self.on_tick = on_tick
        #: a profiler's sampler: called at every tick (the callback then asks for every tick)
        self.sampler: Callable[[], None] | None = None
        self.stop_reason: str | None = None
        self.stop_kind: str | None = None
        self.ticks = 0  # callbacks so far
        self.tick_errors: list[BaseException] = []
        self._stopped = threading.Event()
        self._in_callback = False

    def stop(self, kind: str, reason: str) -> None:
        """Stop the guest within one tick (at once, if it is paused); the first reason wins."""
        if self.stop_reason is None:
            self.stop_kind, self.stop_reason = kind, reason
        self._stopped.set()
        if not self._in_callback:  # from another thread, or a host call: the next callback may be far
            kick_engines(MAX_TICKS)

    def pause(self, seconds: float) -> float:
        """Hold the guest for ``seconds`` (CPU-share throttling); returns the time actually paused.

        Why not ``time.sleep``: a pause must never outlast the run's deadline, nor keep
        a cancelled guest waiting for the end of its pause.
        """
        wall = self.clock.wall
        if self.deadline is not None:
            seconds = min(seconds, self.deadline - wall())
        if seconds <= 0 or self._stopped.is_set():
            return 0.0
        started = wall()
        self.clock.wait(self._stopped, seconds)
        return wall() - started

    def check(self) -> bool:
        """True when the guest must stop now (asked to, or past its deadline)."""
        if self.stop_kind is None and self.deadline is not None and self.clock.wall() >= self.deadline:
            self.stop("time", "wall-clock deadline reached")
        return self.stop_kind is not None


_watches: dict[int, RunWatch] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


def _trap(kind: str) -> int:
    error = ffi.wasmtime_error_new(f"{KILL_PREFIX}{kind}".encode())
    return ctypes.cast(error, ctypes.c_void_p).value or 0


def _tick(data: int | None, delta: Any, kind: Any) -> int:
    watch = _watches.get(data or 0)
    if watch is None:  # the run is gone; never let a stray guest continue
        return _trap("gone")
    watch.ticks += 1
    watch._in_callback = True  # stops asked from here need no kick: they are checked below
    try:
        if watch.check():
            return _trap(watch.stop_kind or "cancel")
        wait = MAX_TICKS * tick_seconds()  # without a monitor: as long as allowed
        if watch.on_tick is not None:
            try:
                wait = watch.on_tick() or 0.0
            except Exception as exc:  # the monitor must never break the guest; keep the error to report
                wait = 0.0
                if len(watch.tick_errors) < 10:
                    watch.tick_errors.append(exc)
            if watch.check():
                return _trap(watch.stop_kind or "cancel")
    finally:
        watch._in_callback = False
    if watch.stop_kind is not None:  # asked from another thread just now, and so not kicked
        return _trap(watch.stop_kind)
    if watch.sampler is not None:
        try:
            watch.sampler()
        except Exception as exc:  # a profiler must never break the guest
            if len(watch.tick_errors) < 10:
                watch.tick_errors.append(exc)
        wait = 0.0  # sample again at the next tick
    if watch.deadline is not None:
        # ticks run a little long (and much longer on a loaded machine), so aim at half the time
        # left: the callbacks close in on the deadline and the last step is a single tick
        wait = min(wait, (watch.deadline - watch.clock.wall()) / 2)
    delta[0] = max(1, min(MAX_TICKS, int(wait / tick_seconds())))
    kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
    return 0


@_CALLBACK_TYPE
def _on_deadline(context, data, delta, kind):  # type: ignore[no-untyped-def]
    try:
        return _tick(data, delta, kind)
    except KeyboardInterrupt:  # Ctrl-C lands here when the guest runs on the main thread
        watch = _watches.get(data or 0)
        if watch is not None:
            watch.stop("cancel", "interrupted (KeyboardInterrupt)")
        return _trap("cancel")
    except BaseException:  # nothing may unwind into wasmtime: stop the guest instead
        return _trap("internal")


_NO_FINALIZER = ctypes.cast(None, _FINALIZER_TYPE)  # type: ignore[arg-type]  # a NULL finalizer


def install_watch(store_ptr: object, watch: RunWatch) -> Callable[[], None]:
    """Attach ``watch`` to a store; returns the function that detaches it (call it after the run)."""
    with _lock:
        run_number = next(_ids)
        _watches[run_number] = watch
    ffi.wasmtime_store_epoch_deadline_callback(store_ptr, _on_deadline, ctypes.c_void_p(run_number), _NO_FINALIZER)

    def remove() -> None:
        with _lock:
            _watches.pop(run_number, None)

    return remove
