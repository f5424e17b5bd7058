"""The epoch-deadline callback: how a running guest is watched and stopped.

wasmtime calls this on the guest's own thread at every epoch tick (design.md §5),
so it may read the store.  One C callback serves every run: the ``data`` pointer
is a run number that finds the run's :class:`RunWatch`.  Returning 0 with
``delta=1`` lets the guest go on for one more tick; returning a
``wasmtime_error_t*`` traps the guest with that message, which is how deadlines,
cancellation and ``kill`` decisions stop a run at once.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import time
from typing import Callable

from wasmtime import _bindings as ffi

__all__ = ["RunWatch", "install_watch", "KILL_PREFIX"]

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
    - ``stop(reason)``: ask the guest to stop at the next tick (cancellation, kill);
    - ``on_tick``: optional sampler, called on the guest thread at each tick.
    """

    def __init__(self, deadline: float | None, on_tick: Callable[[], None] | None = None) -> None:
        self.deadline = deadline
        self.on_tick = on_tick
        self.stop_reason: str | None = None
        self.stop_kind: str | None = None
        self.ticks = 0

    def stop(self, kind: str, reason: str) -> None:
        """Stop the guest at the next tick; the first reason given wins."""
        if self.stop_reason is None:
            self.stop_kind, self.stop_reason = kind, reason


_watches: dict[int, RunWatch] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


def _trap(kind: str) -> int:
    error = ffi.wasmtime_error_new(f"{KILL_PREFIX}{kind}".encode())
    return ctypes.cast(error, ctypes.c_void_p).value or 0


@_CALLBACK_TYPE
def _on_deadline(context, data, delta, kind):  # type: ignore[no-untyped-def]
    watch = _watches.get(data or 0)
    if watch is None:  # the run is gone; never let a stray guest continue
        return _trap("gone")
    watch.ticks += 1
    if watch.stop_kind is None and watch.deadline is not None and time.monotonic() >= watch.deadline:
        watch.stop("time", "wall-clock deadline reached")
    if watch.stop_kind is not None:
        return _trap(watch.stop_kind)
    if watch.on_tick is not None:
        try:
            watch.on_tick()
        except Exception:
            pass  # sampling must never break the guest
    delta[0] = 1
    kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
    return 0


_NO_FINALIZER = ctypes.cast(None, _FINALIZER_TYPE)


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
