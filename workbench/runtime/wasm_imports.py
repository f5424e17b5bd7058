"""A module's imports read from its bytes, before anything is compiled.

Why: the import check (:mod:`.wasi`) refuses a module that imports anything but WASI
preview1.  Done on the compiled module, a refused module first costs a full compile: seconds
and gigabytes for a large one.  The imports are in two small sections at the front of the
binary (types and imports), so they can be read in microseconds and the refusal comes first.

This reader is an early answer, not the gate: whatever it cannot read with certainty (the GC
proposal's recursive types, 64-bit or custom-page memories, an unknown import kind, a name
that is not UTF-8, a truncated section) makes it answer ``None``, and the compiled module is
checked as before.  It never decides that a module is acceptable, only that it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeclaredImport", "declared_imports"]

_MAGIC = b"\0asm\x01\0\0\0"
_TYPE_SECTION, _IMPORT_SECTION = 1, 2
_VALUE_TYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref", 0x6F: "externref"}
_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}


@dataclass(frozen=True)
class DeclaredImport:
    """One import as the binary declares it; ``params``/``results`` only for functions."""

    module: str
    name: str
    kind: str  # func, table, memory, global or tag
    params: tuple[str, ...] = ()
    results: tuple[str, ...] = ()


class _Unreadable(Exception):
    """Something this reader does not handle: leave the answer to the compiled module."""


class _Reader:
    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data, self.at, self.end = data, start, len(data) if end is None else end

    def byte(self) -> int:
        if self.at >= self.end:
            raise _Unreadable("truncated")
        value = self.data[self.at]
        self.at += 1
        return value

    def u32(self) -> int:
        result = shift = 0
        for _ in range(5):
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if result >= 1 << 32:
                    raise _Unreadable("u32 out of range")
                return result
            shift += 7
        raise _Unreadable("u32 too long")

    def name(self) -> str:
        length = self.u32()
        if self.at + length > self.end:
            raise _Unreadable("truncated name")
        raw = self.data[self.at : self.at + length]
        self.at += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unreadable("name is not UTF-8") from None

    def value_types(self) -> tuple[str, ...]:
        count = self.u32()
        types = []
        for _ in range(count):
            code = self.byte()
            if code not in _VALUE_TYPES:
                raise _Unreadable(f"value type 0x{code:02x}")
            types.append(_VALUE_TYPES[code])
        return tuple(types)

    def limits(self, *, memory: bool) -> None:
        flags = self.byte()
        if flags not in ((0, 1, 2, 3) if memory else (0, 1)):  # 64-bit, custom page sizes: unread
            raise _Unreadable(f"limits flags 0x{flags:02x}")
        self.u32()
        if flags & 1:
            self.u32()


def _function_types(reader: _Reader) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    types = []
    for _ in range(reader.u32()):
        form = reader.byte()
        if form != 0x60:  # rec groups, subtypes, structs, arrays (GC): not read here
            raise _Unreadable(f"type form 0x{form:02x}")
        types.append((reader.value_types(), reader.value_types()))
    return types


def _imports(reader: _Reader, types: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[DeclaredImport]:
    imports = []
    for _ in range(reader.u32()):
        module, name, code = reader.name(), reader.name(), reader.byte()
        kind = _KINDS.get(code)
        if kind is None:
            raise _Unreadable(f"import kind 0x{code:02x}")
        if kind == "func":
            index = reader.u32()
            if index >= len(types):
                raise _Unreadable("type index out of range")
            params, results = types[index]
            imports.append(DeclaredImport(module, name, kind, params, results))
            continue
        if kind == "table":
            if reader.byte() not in (0x70, 0x6F):
                raise _Unreadable("table element type")
            reader.limits(memory=False)
        elif kind == "memory":
            reader.limits(memory=True)
        elif kind == "global":  # one value type and a mutability byte
            if reader.byte() not in _VALUE_TYPES or reader.byte() not in (0, 1):
                raise _Unreadable("global type")
        else:  # tag: an attribute byte and a type index
            reader.byte()
            reader.u32()
        imports.append(DeclaredImport(module, name, kind))
    return imports


def declared_imports(wasm: bytes) -> list[DeclaredImport] | None:
    """The imports ``wasm`` declares, in order; ``None`` when this reader cannot be sure of them."""
    if not wasm.startswith(_MAGIC):
        return None
    reader = _Reader(wasm, len(_MAGIC))
    types: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    try:
        while reader.at < reader.end:
            section, size = reader.byte(), reader.u32()
            body_end = reader.at + size
            if body_end > reader.end:
                return None
            body = _Reader(wasm, reader.at, body_end)
            if section == _TYPE_SECTION:
                types = _function_types(body)
            elif section == _IMPORT_SECTION:
                found = _imports(body, types)
                return found if body.at == body_end else None
            elif section != 0:
                return []  # every other known section comes after the imports: there were none
            reader.at = body_end
    except _Unreadable:
        return None
    return []
