"""Reading and patching a core wasm binary: just the few facts the Python fast path needs.

The pre-initialised interpreter (:mod:`.pysnapshot`) must set the guest's stack
pointer, a global that wasm-ld never exports, and clear the "already started"
flag that wasi-libc's ``_start`` keeps in linear memory.  This module finds both
in the binary and adds an export for the global.  It knows only the binary
format (sections, LEB128), nothing about Python.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WasmLayout", "read_layout", "add_global_export", "uleb", "ModuleShape", "read_shape"]

_I32 = 0x7F


def uleb(value: int) -> bytes:
    """Unsigned LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_leb(data: bytes, pos: int, signed: bool) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if signed and byte & 0x40:
                result -= 1 << shift
            return result, pos


def _read_uleb(data: bytes, pos: int) -> tuple[int, int]:
    return _read_leb(data, pos, signed=False)


def _read_sleb(data: bytes, pos: int) -> tuple[int, int]:
    return _read_leb(data, pos, signed=True)


def _sections(data: bytes) -> list[tuple[int, int, int, int]]:
    """``(id, start_of_header, payload_start, payload_end)`` for every section."""
    if data[:4] != b"\0asm":
        raise ValueError("not a wasm binary")
    pos, out = 8, []
    while pos < len(data):
        start = pos
        section_id = data[pos]
        size, payload = _read_uleb(data, pos + 1)
        out.append((section_id, start, payload, payload + size))
        pos = payload + size
    return out


@dataclass(frozen=True)
class WasmLayout:
    """What the fast path needs to know about an interpreter binary.

    - ``stack_pointer_global``: index of the only mutable i32 global (wasm-ld's
      ``__stack_pointer``), or None when the module does not look like that;
    - ``start_flag_address``: the linear-memory address of wasi-libc's ``_start``
      re-entry guard (the first ``i32.const A; i32.load`` in ``_start``), or None;
    - ``exports``: names already exported.
    """

    stack_pointer_global: int | None
    start_flag_address: int | None
    exports: tuple[str, ...]


def read_layout(data: bytes) -> WasmLayout:
    """Find the stack-pointer global and ``_start``'s re-entry flag."""
    imported_functions = 0
    mutable_i32: list[int] = []
    imported_globals = 0
    exports: dict[str, tuple[int, int]] = {}
    code: tuple[int, int] | None = None
    for section_id, _, payload, end in _sections(data):
        if section_id == 2:  # imports
            count, pos = _read_uleb(data, payload)
            for _ in range(count):
                for _name in range(2):
                    length, pos = _read_uleb(data, pos)
                    pos += length
                kind = data[pos]
                pos += 1
                if kind == 0:
                    imported_functions += 1
                    _, pos = _read_uleb(data, pos)
                elif kind == 1:  # table: reftype + limits
                    pos += 1
                    flags = data[pos]
                    _, pos = _read_uleb(data, pos + 1)
                    if flags & 1:
                        _, pos = _read_uleb(data, pos)
                elif kind == 2:  # memory: limits
                    flags = data[pos]
                    _, pos = _read_uleb(data, pos + 1)
                    if flags & 1:
                        _, pos = _read_uleb(data, pos)
                elif kind == 3:
                    imported_globals += 1
                    pos += 2
                else:
                    raise ValueError(f"unknown import kind {kind}")
        elif section_id == 6:  # globals
            count, pos = _read_uleb(data, payload)
            for index in range(count):
                valtype, mutable = data[pos], data[pos + 1]
                pos += 2
                while data[pos] != 0x0B:  # skip the constant expression
                    pos += 1
                pos += 1
                if valtype == _I32 and mutable == 1:
                    mutable_i32.append(imported_globals + index)
        elif section_id == 7:  # exports
            count, pos = _read_uleb(data, payload)
            for _ in range(count):
                length, pos = _read_uleb(data, pos)
                name = data[pos:pos + length].decode("utf-8", "replace")
                pos += length
                kind = data[pos]
                index, pos = _read_uleb(data, pos + 1)
                exports[name] = (kind, index)
        elif section_id == 10:
            code = (payload, end)
    stack_pointer = mutable_i32[0] if len(mutable_i32) == 1 else None
    flag = None
    start = exports.get("_start")
    if code is not None and start is not None and start[0] == 0 and start[1] >= imported_functions:
        flag = _start_flag(data, code[0], start[1] - imported_functions)
    return WasmLayout(stack_pointer, flag, tuple(exports))


def _start_flag(data: bytes, code_payload: int, defined_index: int) -> int | None:
    """The address in ``i32.const A; i32.load`` at the top of ``_start`` (its re-entry guard)."""
    count, pos = _read_uleb(data, code_payload)
    if defined_index >= count:
        return None
    for _ in range(defined_index):
        size, pos = _read_uleb(data, pos)
        pos += size
    size, pos = _read_uleb(data, pos)
    end = pos + size
    groups, pos = _read_uleb(data, pos)
    for _ in range(groups):
        _, pos = _read_uleb(data, pos)
        pos += 1
    # allow a few block/loop openers before the guard
    for _ in range(4):
        if pos + 1 < end and data[pos] in (0x02, 0x03) and data[pos + 1] == 0x40:
            pos += 2
    if pos < end and data[pos] == 0x41:  # i32.const
        address, after = _read_sleb(data, pos + 1)
        if after < end and data[after] == 0x28:  # i32.load
            return address
    return None


def add_global_export(data: bytes, global_index: int, name: str) -> bytes:
    """The same module with one more export: global ``global_index`` as ``name``.

    Only the export section changes (function and global indices stay as they are),
    so the code, data and debug sections are byte-for-byte the original.
    """
    out = bytearray(data[:8])
    entry = uleb(len(name.encode())) + name.encode() + b"\x03" + uleb(global_index)
    done = False
    for section_id, start, payload, end in _sections(data):
        if section_id == 7:
            count, pos = _read_uleb(data, payload)
            body = uleb(count + 1) + data[pos:end] + entry
            out += b"\x07" + uleb(len(body)) + body
            done = True
        else:
            out += data[start:end]
    if not done:
        raise ValueError("module has no export section")
    return bytes(out)


@dataclass(frozen=True)
class ModuleShape:
    """A module's size and counts, read from section headers only (no code is decoded).

    ``counts`` maps a section name (``imports``, ``functions``, ``exports``, ...) to the
    number of entries it declares; ``code_bytes`` is the code section's size.
    """

    size: int
    code_bytes: int
    counts: dict[str, int]


_COUNTED = {1: "types", 2: "imports", 3: "functions", 4: "tables", 5: "memories", 6: "globals", 7: "exports",
            9: "element segments", 10: "function bodies", 11: "data segments"}


def read_shape(data: bytes) -> ModuleShape | None:
    """The :class:`ModuleShape` of a binary module, or None when the bytes do not read as one
    (then the compiler's own error says what is wrong).  Linear in the number of sections."""
    try:
        code_bytes = 0
        counts: dict[str, int] = {}
        for section_id, _, payload, end in _sections(data):
            if end > len(data):
                return None
            name = _COUNTED.get(section_id)
            if name is not None:
                count, _ = _read_uleb(data, payload)
                counts[name] = counts.get(name, 0) + count
            if section_id == 10:
                code_bytes += end - payload
        return ModuleShape(len(data), code_bytes, counts)
    except (ValueError, IndexError):
        return None
