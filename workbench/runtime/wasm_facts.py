"""What a module's binary says that wasmtime-py does not: function names, exports by index,
globals, data segments.  Read once per module, only for debugging (a fault, a memory snapshot).

A tiny reader over the binary format (sections, LEB128: :mod:`~workbench.languages.wasm_binary`);
a section it does not understand is skipped, never trusted: the facts are for people to read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..languages.wasm_binary import _read_leb, _read_uleb, _sections
from .data_image import _segments

__all__ = ["ModuleFacts", "DataSegment", "GlobalFact", "facts_of"]

_IMPORT, _GLOBAL, _EXPORT, _DATA, _CUSTOM = 2, 6, 7, 11, 0
_VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref", 0x6F: "externref"}


@dataclass(frozen=True)
class DataSegment:
    """An active data segment of memory 0: where the module puts its bytes at instantiation."""

    index: int
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class GlobalFact:
    """A global the module defines (imported ones are not read): its index, type, mutability and name."""

    index: int
    type: str
    mutable: bool
    name: str | None  # the export name, or the name section's, or None
    exported: bool = False


@dataclass(frozen=True)
class ModuleFacts:
    imported_functions: int = 0
    function_names: dict[int, str] = field(default_factory=dict)  # name section, then exports
    globals: tuple[GlobalFact, ...] = ()
    data: tuple[DataSegment, ...] = ()


def _name(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _read_uleb(data, pos)
    return data[pos:pos + length].decode("utf-8", "replace"), pos + length


def _skip_const(data: bytes, pos: int) -> int:
    """Past a constant expression (one instruction and ``end``)."""
    op = data[pos]
    pos += 1
    if op in (0x41, 0x42):  # i32.const, i64.const
        _, pos = _read_leb(data, pos, True)
    elif op == 0x43:
        pos += 4
    elif op == 0x44:
        pos += 8
    elif op in (0x23, 0xD2):  # global.get, ref.func
        _, pos = _read_uleb(data, pos)
    elif op == 0xD0:
        pos += 1
    while data[pos] != 0x0B:  # an extended constant expression: not read further
        pos += 1
    return pos + 1


def facts_of(wasm: bytes) -> ModuleFacts:
    """The facts of ``wasm``; an empty :class:`ModuleFacts` for bytes it cannot read."""
    try:
        return _read(wasm)
    except (IndexError, ValueError, struct.error):
        return ModuleFacts()


def _read(wasm: bytes) -> ModuleFacts:
    imported_functions = imported_globals = 0
    exported_funcs: dict[int, str] = {}
    exported_globals: dict[int, str] = {}
    named: dict[int, str] = {}
    global_names: dict[int, str] = {}
    defined: list[tuple[str, bool]] = []
    data: tuple[DataSegment, ...] = ()
    for sid, _, payload, end in _sections(wasm):
        if sid == _IMPORT:
            count, pos = _read_uleb(wasm, payload)
            for _ in range(count):
                _, pos = _name(wasm, pos)
                _, pos = _name(wasm, pos)
                kind = wasm[pos]
                pos += 1
                if kind == 0:
                    _, pos = _read_uleb(wasm, pos)
                    imported_functions += 1
                elif kind == 1:  # table: reftype, limits
                    pos = _skip_limits(wasm, pos + 1)
                elif kind == 2:
                    pos = _skip_limits(wasm, pos)
                elif kind == 3:
                    pos += 2
                    imported_globals += 1
                else:
                    return ModuleFacts()
        elif sid == _GLOBAL:
            count, pos = _read_uleb(wasm, payload)
            for _ in range(count):
                kind, mutable = wasm[pos], wasm[pos + 1] == 1
                pos = _skip_const(wasm, pos + 2)
                defined.append((_VALTYPES.get(kind, hex(kind)), mutable))
        elif sid == _EXPORT:
            count, pos = _read_uleb(wasm, payload)
            for _ in range(count):
                name, pos = _name(wasm, pos)
                kind = wasm[pos]
                index, pos = _read_uleb(wasm, pos + 1)
                if kind == 0:
                    exported_funcs.setdefault(index, name)
                elif kind == 3:
                    exported_globals.setdefault(index, name)
        elif sid == _DATA:
            segments = _segments(wasm, payload, end) or []
            data = tuple(DataSegment(i, s.offset, s.data_end - s.data_start) for i, s in enumerate(segments) if s.active)
        elif sid == _CUSTOM:
            title, pos = _name(wasm, payload)
            if title == "name":
                _names(wasm, pos, end, named, global_names)
    functions = {**exported_funcs, **named}
    globals_ = tuple(
        GlobalFact(imported_globals + i, kind, mutable,
                   exported_globals.get(imported_globals + i) or global_names.get(imported_globals + i),
                   imported_globals + i in exported_globals)
        for i, (kind, mutable) in enumerate(defined)
    )
    return ModuleFacts(imported_functions, functions, globals_, data)


def _skip_limits(data: bytes, pos: int) -> int:
    flags = data[pos]
    _, pos = _read_uleb(data, pos + 1)
    if flags & 1:
        _, pos = _read_uleb(data, pos)
    return pos


def _names(wasm: bytes, pos: int, end: int, functions: dict[int, str], globals_: dict[int, str]) -> None:
    """The name section's function (1) and global (7) name maps."""
    while pos < end:
        sub = wasm[pos]
        size, pos = _read_uleb(wasm, pos + 1)
        stop = pos + size
        if sub in (1, 7):
            target = functions if sub == 1 else globals_
            count, at = _read_uleb(wasm, pos)
            for _ in range(count):
                index, at = _read_uleb(wasm, at)
                name, at = _name(wasm, at)
                target[index] = name
        pos = stop
