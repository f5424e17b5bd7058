"""A read-only copy of a guest's linear memory, kept after a run (``keep_memory=True``) or read
from a live instance: hex views, searches, typed reads, the globals and the data segments.

Why a copy (``bytes``): nothing a person does with it can reach the guest, and it outlives the
store.  Every address is checked against the copy; a bad one (negative, past the end, a length
that would overflow, not an integer) raises :class:`~workbench.errors.MemoryAccessError`.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Mapping

import wasmtime

from .._wasmtime_ffi import memory_handle, store_context, ffi
from ..errors import MemoryAccessError
from .wasm_facts import DataSegment, facts_of

__all__ = ["MemorySnapshot", "MAX_FIND", "copy_memory"]

#: addresses :meth:`MemorySnapshot.find` returns at most by default
MAX_FIND = 10_000
_FORMATS = {"i8": "<b", "u8": "<B", "i16": "<h", "u16": "<H", "i32": "<i", "u32": "<I", "i64": "<q", "u64": "<Q",
            "f32": "<f", "f64": "<d"}


def copy_memory(store: wasmtime.Store, memory: wasmtime.Memory) -> bytes:
    """The memory's bytes, copied (one memcpy)."""
    context = store_context(store)
    raw = ctypes.byref(memory_handle(memory))
    size = ffi.wasmtime_memory_data_size(context, raw)
    if size == 0:
        return b""
    return ctypes.string_at(ctypes.addressof(ffi.wasmtime_memory_data(context, raw).contents), size)


def _index(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MemoryAccessError(f"{what} must be an integer, not {type(value).__name__}",
                                hint="pass an address as a Python int, e.g. 0x1000")
    return value


class MemorySnapshot:
    """The guest's memory as it was, with the module's globals and data segments."""

    def __init__(self, data: bytes, globals_: Mapping[str, int | float] | None = None,
                 data_segments: tuple[DataSegment, ...] = ()) -> None:
        self._data = bytes(data)
        self.globals: dict[str, int | float] = dict(globals_ or {})
        self.data_segments = data_segments

    @classmethod
    def of_instance(cls, store: wasmtime.Store, exports: Any, module: wasmtime.Module, wasm: bytes = b"") -> "MemorySnapshot":
        """Copy the exported ``memory`` (or the first exported memory) and read the exported globals."""
        memory = exports.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            memories = exports.memories()
            memory = memories[0] if memories else None
        data = copy_memory(store, memory) if memory is not None else b""
        values: dict[str, int | float] = {}
        for export in module.exports:
            if export.name is not None and isinstance(export.type, wasmtime.GlobalType):
                item = exports.get(export.name)
                if isinstance(item, wasmtime.Global):
                    value = item.value(store)
                    if isinstance(value, (int, float)):
                        values[export.name] = value
        segments = facts_of(wasm).data if wasm else ()
        return cls(data, values, segments)

    # -- size and bounds ----------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def stack_pointer(self) -> int | None:
        """C's stack pointer (the ``__stack_pointer`` global), when the module has one."""
        value = self.globals.get("__stack_pointer")
        return None if value is None else int(value) & 0xFFFFFFFF

    def _span(self, addr: Any, length: Any) -> tuple[int, int]:
        addr, length = _index(addr, "address"), _index(length, "length")
        if addr < 0 or length < 0:
            raise MemoryAccessError(f"negative {'address' if addr < 0 else 'length'} ({addr if addr < 0 else length})",
                                    hint="addresses and lengths start at 0")
        if addr > self.size or length > self.size - addr:
            raise MemoryAccessError(
                f"{length:,} bytes at {addr:#x} are outside the memory ({self.size:,} bytes, up to {self.size:#x})",
                hint="check the address (snapshot.size is the memory's size)")
        return addr, length

    def read(self, addr: int, length: int) -> bytes:
        """``length`` bytes at ``addr``."""
        start, length = self._span(addr, length)
        return self._data[start:start + length]

    def tobytes(self) -> bytes:
        """The whole memory (an immutable copy)."""
        return self._data

    # -- views ----------------------------------------------------------------------------------
    def hexdump(self, addr: int = 0, n: int = 256) -> str:
        """Classic hex view: ``address  16 bytes in hex  |text|`` per line."""
        start, length = self._span(addr, n)
        lines = []
        for row in range(start, start + length, 16):
            chunk = self._data[row:min(row + 16, start + length)]
            hexes = " ".join(f"{b:02x}" for b in chunk)
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            lines.append(f"{row:08x}  {hexes:<47}  |{text}|")
        return "\n".join(lines)

    def find(self, pattern: bytes | str, *, limit: int = MAX_FIND) -> list[int]:
        """Every address where ``pattern`` (bytes, or text as UTF-8) starts, overlapping ones too,
        in order; at most ``limit``."""
        if isinstance(pattern, str):
            pattern = pattern.encode("utf-8")
        if not isinstance(pattern, (bytes, bytearray)) or not pattern:
            raise MemoryAccessError("find() needs a non-empty bytes or str pattern", hint='e.g. find(b"secret")')
        found: list[int] = []
        at = self._data.find(pattern)
        while at != -1 and len(found) < limit:
            found.append(at)
            at = self._data.find(pattern, at + 1)
        return found

    def cstring(self, addr: int, max_length: int = 4096) -> str:
        """The NUL-terminated string at ``addr`` (UTF-8, bad bytes replaced), at most ``max_length`` bytes."""
        start, _ = self._span(addr, 0)
        stop = self._data.find(b"\0", start, start + max(0, _index(max_length, "max_length")))
        end = stop if stop != -1 else min(self.size, start + max_length)
        return self._data[start:end].decode("utf-8", "replace")

    def _typed(self, kind: str, addr: int) -> Any:
        fmt = struct.Struct(_FORMATS[kind])
        return fmt.unpack(self.read(addr, fmt.size))[0]

    def read_i8(self, addr: int) -> int: return int(self._typed("i8", addr))
    def read_u8(self, addr: int) -> int: return int(self._typed("u8", addr))
    def read_i16(self, addr: int) -> int: return int(self._typed("i16", addr))
    def read_u16(self, addr: int) -> int: return int(self._typed("u16", addr))
    def read_i32(self, addr: int) -> int: return int(self._typed("i32", addr))
    def read_u32(self, addr: int) -> int: return int(self._typed("u32", addr))
    def read_i64(self, addr: int) -> int: return int(self._typed("i64", addr))
    def read_u64(self, addr: int) -> int: return int(self._typed("u64", addr))
    def read_f32(self, addr: int) -> float: return float(self._typed("f32", addr))
    def read_f64(self, addr: int) -> float: return float(self._typed("f64", addr))

    def segment_at(self, addr: int) -> DataSegment | None:
        """The data segment that placed ``addr``'s byte, if any."""
        return next((s for s in self.data_segments if s.offset <= addr < s.end), None)

    def widget(self) -> Any:
        """A notebook browser: an address box, a hex view and a search (ipywidgets)."""
        from ..jupyter.memory_widget import MemoryBrowser

        return MemoryBrowser(self).widget

    def __repr__(self) -> str:
        sp = "" if self.stack_pointer is None else f", stack pointer {self.stack_pointer:#x}"
        return (f"MemorySnapshot({self.size:,} bytes, {len(self.data_segments)} data segments, "
                f"{len(self.globals)} globals{sp})")
