"""Copy-on-write initial memory for modules with large data, served by the sandbox's memory creator.

Why: the sandbox maps every linear memory itself (:mod:`.linear_memory`), and wasmtime
then cannot use its own copy-on-write images (``memory_init_cow`` must be off), so it
would copy a module's data segments into each new instance.  For the CPython build
that is 7.2 MB, 4.6 ms a run (measured: instantiation 0.02 ms with wasmtime's CoW,
4.6 ms without), more than a whole pre-initialised Python run.  So, as wasmtime does:

- at compile time, :func:`lift` takes a module's active data out: every active segment
  becomes an *empty passive* segment (segment indices, and what ``memory.init`` and
  ``data.drop`` see, stay exactly as after a real instantiation, where active segments
  count as dropped) and their bytes, applied in order, become one image;
- at instantiation, the image is written once into a sealed ``memfd`` and mapped
  ``MAP_PRIVATE | MAP_FIXED`` over the start of the new memory: pages are shared until
  the guest writes them, then copied for that instance alone.

A module is lifted only when that is exactly equivalent: one defined 32-bit memory,
every active segment for it with a constant ``i32.const`` offset and inside its initial
size (anything else keeps its segments, and wasmtime applies them, or traps, as usual),
and at least :data:`LIFT_MIN_BYTES` of data (below that a copy is cheaper than a map).
Only code offsets matter to DWARF, and the code section is untouched.

Whoever instantiates a module from :class:`~.cache.CompileCache` outside a sandbox run
(the snapshot builder, benchmarks) must do it inside
``linear_memory.charging(None, image_of(module))``, or its memory starts empty.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Callable

from ..languages.wasm_binary import _read_leb, _read_uleb, _sections, uleb

__all__ = ["DataImage", "lift", "image_of", "attach", "LIFT_MIN_BYTES", "FORMAT"]

#: lift data only from modules with at least this much active data
LIFT_MIN_BYTES = 64 * 1024
#: the lifting scheme, in compile-cache keys (an artifact and its image go together)
FORMAT = "lifted-data-1"

_HOST_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MEMORY_SECTION, _DATA_SECTION, _IMPORT_SECTION = 5, 11, 2

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_PROT_RW = 1 | 2
_MAP_PRIVATE_FIXED = 0x02 | 0x10


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


class DataImage:
    """A module's initial memory contents, shared copy-on-write by every instance.

    ``data`` is the image (a multiple of the host page); the memfd is made on first use.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data if len(data) % _HOST_PAGE == 0 else data + bytes(_round_up(len(data), _HOST_PAGE) - len(data))
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def length(self) -> int:
        return len(self.data)

    def _memfd(self) -> int:
        with self._lock:
            if self._fd is None:
                fd = os.memfd_create("workbench-data-image", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
                _write_all(fd, self.data)
                # nothing may change the image behind the instances that map it
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
                self._fd = fd
            return self._fd

    def map_into(self, base: int, accessible: int) -> bool:
        """Map the image privately over ``[base, base + length)``; never past ``accessible`` bytes."""
        if self.length == 0:
            return True
        if self.length > _round_up(accessible, _HOST_PAGE):
            return False
        address = _mmap(base, self.length, _PROT_RW, _MAP_PRIVATE_FIXED, self._memfd(), 0)
        return bool(address == base)

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        # ``_close`` bound at definition: an image freed at interpreter teardown (a snapshot held
        # by a module-level builder) may outlive the ``os`` module's globals
        if self._fd is not None:
            try:
                _close(self._fd)
            except OSError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass(frozen=True)
class _Segment:
    raw: bytes  # the segment's encoding, as it was
    active: bool
    offset: int
    data_start: int
    data_end: int


def _limits(data: bytes, pos: int) -> tuple[int, int, int | None, int]:
    flags = data[pos]
    minimum, pos = _read_uleb(data, pos + 1)
    maximum = None
    if flags & 1:
        maximum, pos = _read_uleb(data, pos)
    return flags, minimum, maximum, pos


def _memory_minimum(data: bytes, sections: list[tuple[int, int, int, int]]) -> int | None:
    """Initial byte size of the module's only memory, if it defines exactly one plain 32-bit memory."""
    for section_id, _, payload, _ in sections:
        if section_id == _IMPORT_SECTION:
            count, pos = _read_uleb(data, payload)
            for _ in range(count):
                for _name in range(2):
                    length, pos = _read_uleb(data, pos)
                    pos += length
                kind = data[pos]
                pos += 1
                if kind == 0:
                    _, pos = _read_uleb(data, pos)
                elif kind == 1:
                    _, _, _, pos = _limits(data, pos + 1)
                elif kind == 2:
                    return None  # an imported memory: not ours to initialise
                elif kind == 3:
                    pos += 2
                else:
                    return None  # tags and the like: keep it simple
    for section_id, _, payload, _ in sections:
        if section_id == _MEMORY_SECTION:
            count, pos = _read_uleb(data, payload)
            if count != 1:
                return None
            flags, minimum, _, _ = _limits(data, pos)
            if flags not in (0, 1):  # shared, 64-bit, custom page size: not lifted
                return None
            return minimum * 65536
    return None


def _segments(data: bytes, payload: int, end: int) -> list[_Segment] | None:
    count, pos = _read_uleb(data, payload)
    out: list[_Segment] = []
    for _ in range(count):
        start = pos
        flags, pos = _read_uleb(data, pos)
        if flags == 1:  # passive
            length, pos = _read_uleb(data, pos)
            pos += length
            out.append(_Segment(data[start:pos], False, 0, 0, 0))
            continue
        if flags == 2:
            memory, pos = _read_uleb(data, pos)
            if memory != 0:
                return None
        elif flags != 0:
            return None
        if data[pos] != 0x41:  # i32.const
            return None
        offset, pos = _read_leb(data, pos + 1, True)
        if data[pos] != 0x0B:  # a constant expression of more than one instruction
            return None
        pos += 1
        length, pos = _read_uleb(data, pos)
        out.append(_Segment(data[start:pos + length], True, offset & 0xFFFFFFFF, pos, pos + length))
        pos += length
    if pos != end:
        return None
    return out


def lift(wasm: bytes, min_bytes: int = LIFT_MIN_BYTES) -> tuple[bytes, bytes | None]:
    """``(module, image)``: the module with its active data lifted out and the image, or ``(wasm, None)``."""
    try:
        sections = _sections(wasm)
        memory_size = _memory_minimum(wasm, sections)
        data_section = next(((start, payload, end) for sid, start, payload, end in sections if sid == _DATA_SECTION), None)
        if memory_size is None or data_section is None:
            return wasm, None
        segments = _segments(wasm, data_section[1], data_section[2])
    except (IndexError, ValueError):
        return wasm, None  # not a module we understand: wasmtime will say what is wrong with it
    if segments is None:
        return wasm, None
    active = [s for s in segments if s.active]
    if sum(s.data_end - s.data_start for s in active) < min_bytes:
        return wasm, None
    if any(s.offset + (s.data_end - s.data_start) > memory_size for s in active):
        return wasm, None  # wasmtime traps at instantiation, as it should
    image = bytearray(_round_up(max(s.offset + s.data_end - s.data_start for s in active), _HOST_PAGE))
    for s in active:  # in order: a later segment overwrites an earlier one, as at instantiation
        image[s.offset:s.offset + s.data_end - s.data_start] = wasm[s.data_start:s.data_end]
    body = uleb(len(segments)) + b"".join(b"\x01\x00" if s.active else s.raw for s in segments)
    start, _, end = data_section
    module = wasm[:start] + bytes([_DATA_SECTION]) + uleb(len(body)) + body + wasm[end:]
    return module, bytes(image)


_images: "weakref.WeakKeyDictionary[object, DataImage]" = weakref.WeakKeyDictionary()


def attach(module: object, image: DataImage | None) -> None:
    """Remember ``module``'s image (modules compiled from lifted bytes must never run without it)."""
    if image is not None:
        _images[module] = image


def image_of(module: object) -> DataImage | None:
    """The image a module compiled from lifted bytes needs at instantiation, or None."""
    return _images.get(module)
