"""Every guest linear memory is mapped by the sandbox, so every growth request passes through its cap.

Why: wasmtime's store limiter refuses ``memory.grow`` silently (the guest sees -1 and
nothing outside it sees the request), and the C API has no limiter callback.  A host
memory creator (``wasmtime_config_host_memory_creator_set``) does see each request:
wasmtime calls ``grow_memory(env, new_byte_size)`` for every ``memory.grow`` the
memory's own type allows (a grow past the module's declared maximum is refused by
wasmtime before, as the wasm spec says), refused ones included, and an error returned
from it makes the instruction return -1 without a trap.  So the cap lives here, and each
refusal reaches the run with the size asked for and the size it had
(:class:`MemoryAccount`).

Memory safety, which is what a creator written with ctypes must get right:

- wasmtime compiles 32-bit memories to use no bounds checks: it relies on
  ``reservation + guard`` bytes (4 GiB + 32 MiB by default) after the base being
  either the guest's memory or unmapped.  :func:`_new_memory` maps exactly that much
  (more if the minimum exceeds the reservation), ``PROT_NONE`` and ``MAP_NORESERVE``,
  and makes only ``[base, base + size)`` readable and writable, growing it page by page
  with ``mprotect``; an access past the size faults, and wasmtime's signal handler turns
  the fault into a trap (its ``wasm_accessible`` range is this very mapping).
- The base never moves: the capacity reported is the reservation, and a grow past it is
  refused.  Memory64, shared memories and custom page sizes are refused at creation
  (the guests here are 32-bit WASI preview 1; each would need its own safety argument).
- The mapping is unmapped only in the finalizer, which wasmtime calls when it drops the
  memory (with its store, which the run frees itself: see shutdown.py).  The finalizer
  and every callback are immortal thunks; ``get_memory`` never fails (a NULL base would
  be a Rust panic).
- ``memory_init_cow`` must be off in an engine with a host creator: wasmtime 50 builds a
  copy-on-write image for a module's data and then panics ("memory_image is Some only
  for mmap-based memories") on a memory whose base it did not map (tried).  The
  sandbox keeps copy-on-write for large data itself: :mod:`.data_image` lifts a
  module's active data into an image that :func:`_new_memory` maps privately from a
  sealed memfd, as wasmtime would.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
from dataclasses import dataclass
from typing import Callable


from .._wasmtime_ffi import ffi
from .wasi_streams import keep_forever

__all__ = [
    "MemoryAccount",
    "Refusal",
    "charging",
    "current_account",
    "install",
    "live_mappings",
    "WASM_PAGE",
]

WASM_PAGE = 65536
HOST_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

_PROT_NONE, _PROT_READ, _PROT_WRITE = 0, 1, 2
_MAP_PRIVATE, _MAP_FIXED, _MAP_ANONYMOUS, _MAP_NORESERVE = 0x02, 0x10, 0x20, 0x4000
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_mprotect = _libc.mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
# the raw C functions behind wasmtime-py's wrappers (one Python frame less on every instantiation)
_is64 = ffi._wasmtime_memorytype_is64
_isshared = ffi._wasmtime_memorytype_isshared
_page_size = ffi._wasmtime_memorytype_page_size


@dataclass(frozen=True)
class Refusal:
    """A growth request the sandbox refused: the size asked for and the size the memory had."""

    requested_bytes: int
    current_bytes: int
    limit_bytes: int | None
    reason: str  # "cap" (the run's memory cap) or "host" (the host could not map it)


class MemoryAccount:
    """One run's memory cap, and who hears of each refusal.

    ``on_refused(refusal)`` runs on the guest's thread, inside wasmtime's grow; it may
    record an event and ask the run to stop, and must not raise (it is guarded anyway).
    """

    def __init__(self, cap: int | None, on_refused: Callable[[Refusal], None] | None = None) -> None:
        self.cap = cap
        self.on_refused = on_refused
        self.refusals = 0
        self.last: Refusal | None = None

    def allows(self, size: int) -> bool:
        return self.cap is None or size <= self.cap

    def refuse(self, requested: int, current: int, reason: str = "cap", *, notify: bool = True) -> None:
        """Count a refusal and tell ``on_refused`` (not for an initial memory: instantiation fails
        and the run reports that itself, with :attr:`last`)."""
        self.refusals += 1
        self.last = Refusal(requested, current, self.cap, reason)
        if notify and self.on_refused is not None:
            try:
                self.on_refused(self.last)
            except Exception:  # a recorder's bug must not unwind into wasmtime
                pass


_local = threading.local()


class charging:
    """Memories created on this thread inside the ``with`` block belong to ``account``.

    ``image`` (a :class:`~.data_image.DataImage`) is the initial content of the next memory
    created here: that of the module about to be instantiated, whose data was lifted.
    (A class rather than a generator: it is on every run's path.)
    """

    __slots__ = ("account", "image", "_previous")

    def __init__(self, account: MemoryAccount | None, image: object | None = None) -> None:
        self.account = account
        self.image = image
        self._previous: tuple[object, object] = (None, None)

    def __enter__(self) -> None:
        self._previous = getattr(_local, "account", None), getattr(_local, "image", None)
        _local.account, _local.image = self.account, self.image

    def __exit__(self, *exc: object) -> None:
        _local.account, _local.image = self._previous


def current_account() -> MemoryAccount | None:
    """The account memories made on this thread are charged to (None outside a run)."""
    return getattr(_local, "account", None)


class _Mapping:
    __slots__ = ("base", "total", "size", "capacity", "account")

    def __init__(self, base: int, total: int, size: int, capacity: int, account: MemoryAccount | None) -> None:
        self.base = base
        self.total = total
        self.size = size
        self.capacity = capacity
        self.account = account


_mappings: dict[int, _Mapping] = {}
_ids = itertools.count(1)


def live_mappings() -> int:
    """Linear memories mapped by this process and not yet freed by wasmtime (tests: no leak)."""
    return len(_mappings)


def _error(message: str) -> int:
    return ctypes.cast(ffi.wasmtime_error_new(message.encode()), ctypes.c_void_p).value or 0


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _get_memory(env: int | None, size: object, capacity: object) -> int:
    mapping = _mappings[env or 0]  # always present until the finalizer ran
    size[0] = mapping.size  # type: ignore[index]
    capacity[0] = mapping.capacity  # type: ignore[index]
    return mapping.base


def _grow_memory(env: int | None, new_size: int) -> int:
    try:
        mapping = _mappings.get(env or 0)
        if mapping is None:
            return _error("workbench: unknown linear memory")
        old = mapping.size
        if new_size <= old:
            return 0
        account = mapping.account
        if account is not None and not account.allows(new_size):
            account.refuse(new_size, old, "cap")
            return _error(f"workbench: memory.grow to {new_size} bytes refused by the memory cap")
        if new_size > mapping.capacity:  # past the reservation: the base would have to move
            if account is not None:
                account.refuse(new_size, old, "host")
            return _error(f"workbench: memory.grow to {new_size} bytes is past the reservation")
        start = _round_up(old, HOST_PAGE)
        end = _round_up(new_size, HOST_PAGE)
        if end > start and _mprotect(mapping.base + start, end - start, _PROT_READ | _PROT_WRITE) != 0:
            if account is not None:
                account.refuse(new_size, old, "host")
            return _error(f"workbench: the host could not commit {new_size} bytes ({os.strerror(ctypes.get_errno())})")
        mapping.size = new_size
        return 0
    except BaseException:  # nothing may unwind into wasmtime; refusing is the safe answer
        return _error("workbench: memory.grow failed in the host")


def _finalize(env: int | None) -> None:
    mapping = _mappings.pop(env or 0, None)
    if mapping is not None:
        _munmap(mapping.base, mapping.total)


_get_thunk = keep_forever(ffi.wasmtime_memory_get_callback_t(_get_memory))
_grow_thunk = keep_forever(ffi.wasmtime_memory_grow_callback_t(_grow_memory))
_finalize_thunk = keep_forever(ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_finalize))


def _new_memory(env: object, ty: object, minimum: int, maximum: int, reserved: int, guard: int, ret: object) -> int:
    try:
        if _is64(ty):
            return _error("workbench: 64-bit memories (memory64) are not supported by the sandbox")
        if _isshared(ty):
            return _error("workbench: shared memories are not supported by the sandbox")
        if _page_size(ty) != WASM_PAGE:
            return _error("workbench: memories with a custom page size are not supported by the sandbox")
        account: MemoryAccount | None = getattr(_local, "account", None)
        image = getattr(_local, "image", None)
        if image is not None and image.length <= _round_up(minimum, HOST_PAGE):
            _local.image = None  # the image is for one memory: the next one made here
        else:  # too small for it: not the module's own memory (wasmtime's GC heap, for exceptions)
            image = None
        if account is not None and not account.allows(minimum):
            account.refuse(minimum, 0, "cap", notify=False)
            return _error(
                f"memory minimum size of {minimum // WASM_PAGE} pages exceeds memory limits "
                f"(the sandbox's cap is {account.cap} bytes)"
            )
        capacity = max(reserved, minimum) if reserved else min(maximum, 1 << 32)
        capacity = _round_up(max(capacity, minimum), WASM_PAGE)
        total = _round_up(capacity + guard, HOST_PAGE)
        base = _mmap(None, total, _PROT_NONE, _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
        if base is None or base == _MAP_FAILED:
            return _error(f"workbench: could not reserve {total} bytes for a linear memory")
        committed = _round_up(minimum, HOST_PAGE)
        ok = committed == 0 or _mprotect(base, committed, _PROT_READ | _PROT_WRITE) == 0
        if ok and image is not None:
            ok = image.map_into(base, minimum)
        if not ok:
            _munmap(base, total)
            return _error(f"workbench: could not map a linear memory of {minimum} bytes")
        key = next(_ids)
        _mappings[key] = _Mapping(base, total, minimum, capacity, account)
        out = ret[0]  # type: ignore[index]
        out.env = key
        out.get_memory = _get_thunk
        out.grow_memory = _grow_thunk
        out.finalizer = _finalize_thunk
        return 0
    except BaseException:
        return _error("workbench: creating a linear memory failed in the host")


_new_thunk = keep_forever(ffi.wasmtime_new_memory_callback_t(_new_memory))
_NO_FINALIZER = ctypes.cast(None, ctypes.CFUNCTYPE(None, ctypes.c_void_p))  # type: ignore[arg-type]


def install(config_ptr: object) -> None:
    """Make this creator the one an engine built from ``config_ptr`` uses (and turn off wasmtime's CoW)."""
    ffi.wasmtime_config_memory_init_cow_set(config_ptr, False)
    creator = ffi.wasmtime_memory_creator_t(None, _new_thunk, _NO_FINALIZER)
    ffi.wasmtime_config_host_memory_creator_set(config_ptr, ctypes.byref(creator))  # copied by wasmtime

