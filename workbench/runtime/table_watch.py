"""Every ``table.grow`` the sandbox's table cap refuses reaches the host: the module is instrumented.

Why: tables live in host memory, so every store caps them (``STORE_CAPS.table_elements``),
and wasmtime's store limiter refuses a ``table.grow`` past that cap silently (-1 to the
guest); unlike memories, tables have no host creator to see the request.  So, at compile
time, in a module with a table that *could* grow past the cap (no declared maximum, or a
maximum above the cap), each ``table.grow`` on such a table becomes a call to a small
added function that does the same ``table.grow`` and, when it returns -1, reports the
table's size, the delta, the table and its declared maximum through ``call_indirect``
on an added one-slot table, exported as :data:`HOOKS_EXPORT`.  The run puts its host
function in that slot after instantiation (:func:`connect`); a start function that grows
such a table before that traps on the empty slot (fails closed).

Nothing else changes: types, functions and tables are only appended (no index moves),
so calls, exports, element segments and names stay valid.  Code offsets do move, so
DWARF sections (``.debug_*``) are dropped from an instrumented module.  Modules whose
tables cannot pass the cap (CPython's build, C from zig: fixed-size tables) are left
byte-for-byte alone.  A module this decoder cannot read (the GC proposal's instructions,
typed function-reference tables) that needs instrumenting is refused with our error:
its refusals could not be recorded.
"""

from __future__ import annotations

from typing import Any, Callable

import wasmtime

from ..errors import ModuleError
from ..languages.wasm_binary import _read_leb, _read_uleb, _sections, uleb

__all__ = ["instrument", "connect", "HOOKS_EXPORT", "FORMAT", "Unsupported"]

HOOKS_EXPORT = "__workbench_table_hooks"
FORMAT = "table-watch-1"

_TYPE, _IMPORT, _FUNCTION, _TABLE, _EXPORT, _CODE, _CUSTOM = 1, 2, 3, 4, 7, 10, 0
#: the binary format's section order (custom sections go anywhere); tags (13) sit after memories
_ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]
_FUNCREF, _EXTERNREF = 0x70, 0x6F
_I32 = 0x7F
_VALTYPES = set(range(0x7B, 0x80)) | set(range(0x69, 0x75))


class Unsupported(Exception):
    """Something in the module this decoder does not read."""


def _heaptype(data: bytes, pos: int) -> int:
    if 0x69 <= data[pos] <= 0x74:
        return pos + 1
    _, pos = _read_leb(data, pos, True)
    return pos


def _valtype(data: bytes, pos: int) -> int:
    byte = data[pos]
    if byte in (0x63, 0x64):
        return _heaptype(data, pos + 1)
    if byte in _VALTYPES:
        return pos + 1
    raise Unsupported(f"value type 0x{byte:02x}")


def _blocktype(data: bytes, pos: int) -> int:
    byte = data[pos]
    if byte == 0x40 or byte in _VALTYPES:
        return pos + 1
    if byte in (0x63, 0x64):
        return _heaptype(data, pos + 1)
    _, pos = _read_leb(data, pos, True)  # a type index (s33)
    return pos


def _memarg(data: bytes, pos: int) -> int:
    align, pos = _read_uleb(data, pos)
    if align & 0x40:  # multi-memory: a memory index follows
        _, pos = _read_uleb(data, pos)
    _, pos = _read_uleb(data, pos)
    return pos


def _ulebs(data: bytes, pos: int, count: int) -> int:
    for _ in range(count):
        _, pos = _read_uleb(data, pos)
    return pos


_NONE = frozenset([0x00, 0x01, 0x05, 0x0A, 0x0B, 0x0F, 0x19, 0x1A, 0x1B, 0xD1, 0xD3, 0xD5, *range(0x45, 0xC5)])
_ONE = frozenset([0x07, 0x08, 0x09, 0x0C, 0x0D, 0x10, 0x12, 0x14, 0x15, 0x18, *range(0x20, 0x27), 0x3F, 0x40, 0xD2, 0xD4, 0xD6])
_FC_ARGS = {8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1, **{n: 0 for n in range(8)}, **{n: 0 for n in range(19, 23)}}


def table_grows(data: bytes, pos: int, end: int) -> list[tuple[int, int, int]]:
    """``(start, stop, table)`` of every ``table.grow`` in the instructions ``data[pos:end]``."""
    found: list[tuple[int, int, int]] = []
    while pos < end:
        start = pos
        op = data[pos]
        pos += 1
        if op in _NONE:
            continue
        if op in _ONE:
            _, pos = _read_uleb(data, pos)
        elif op in (0x02, 0x03, 0x04, 0x06):
            pos = _blocktype(data, pos)
        elif op == 0x0E:
            count, pos = _read_uleb(data, pos)
            pos = _ulebs(data, pos, count + 1)
        elif op in (0x11, 0x13):
            pos = _ulebs(data, pos, 2)
        elif op == 0x1C:
            count, pos = _read_uleb(data, pos)
            for _ in range(count):
                pos = _valtype(data, pos)
        elif op == 0x1F:  # try_table
            pos = _blocktype(data, pos)
            count, pos = _read_uleb(data, pos)
            for _ in range(count):
                kind = data[pos]
                pos = _ulebs(data, pos + 1, 2 if kind in (0, 1) else 1)
        elif 0x28 <= op <= 0x3E:
            pos = _memarg(data, pos)
        elif op == 0x41:
            _, pos = _read_leb(data, pos, True)
        elif op == 0x42:
            _, pos = _read_leb(data, pos, True)
        elif op == 0x43:
            pos += 4
        elif op == 0x44:
            pos += 8
        elif op == 0xD0:
            pos = _heaptype(data, pos)
        elif op == 0xFC:
            sub, pos = _read_uleb(data, pos)
            if sub not in _FC_ARGS:
                raise Unsupported(f"instruction 0xfc {sub}")
            if sub == 15:
                table, after = _read_uleb(data, pos)
                found.append((start, after, table))
            pos = _ulebs(data, pos, _FC_ARGS[sub])
        elif op == 0xFD:
            sub, pos = _read_uleb(data, pos)
            if sub <= 11 or sub in (92, 93):
                pos = _memarg(data, pos)
            elif sub in (12, 13):
                pos += 16
            elif 21 <= sub <= 34:
                pos += 1
            elif 84 <= sub <= 91:
                pos = _memarg(data, pos) + 1
            elif sub > 0x113:
                raise Unsupported(f"instruction 0xfd {sub}")
        elif op == 0xFE:
            sub, pos = _read_uleb(data, pos)
            pos = pos + 1 if sub == 0x03 else _memarg(data, pos)
        else:
            raise Unsupported(f"instruction 0x{op:02x}")
    if pos != end:
        raise Unsupported("a function body that does not end where it says")
    return found


def _limits(data: bytes, pos: int) -> tuple[int, int | None, int]:
    flags = data[pos]
    if flags not in (0, 1):  # 64-bit (i64 deltas) or otherwise unusual tables
        raise Unsupported(f"table limits flags 0x{flags:02x}")
    minimum, pos = _read_uleb(data, pos + 1)
    maximum = None
    if flags & 1:
        maximum, pos = _read_uleb(data, pos)
    return minimum, maximum, pos


def _table_type(data: bytes, pos: int) -> tuple[int, int | None, int]:
    """(reftype, maximum, next position) of a table type; reftype 0 for typed references."""
    reftype = data[pos]
    if reftype in (0x63, 0x64):
        pos = _heaptype(data, pos + 1)
        reftype = 0
    elif reftype in _VALTYPES:
        pos += 1
    else:
        raise Unsupported(f"a table of reference type 0x{reftype:02x}")
    _, maximum, pos = _limits(data, pos)
    return reftype, maximum, pos


def instrument(wasm: bytes, cap: int) -> bytes:
    """``wasm`` with each ``table.grow`` on a table that may pass ``cap`` reported when refused.

    Returns ``wasm`` itself when no table can pass the cap (or no code grows one).
    Raises :class:`ModuleError` when it would need instrumenting and cannot be read.
    """
    try:
        return _instrument(wasm, cap)
    except Unsupported as exc:
        raise ModuleError(
            f"this module has a table that may grow past the sandbox's cap of {cap:,} elements and uses "
            f"something the sandbox cannot check ({exc}), so a refused table.grow could not be recorded",
            hint="declare a maximum of at most that many elements on its tables",
        ) from None
    except (IndexError, ValueError):
        return wasm  # malformed: wasmtime reports what is wrong with it


def _instrument(wasm: bytes, cap: int) -> bytes:
    sections = _sections(wasm)
    by_id = {sid: (start, payload, end) for sid, start, payload, end in sections if sid != _CUSTOM}
    tables: list[tuple[int, int | None]] = []  # (reftype, maximum) of every table, imports first
    imported_functions = 0
    if _IMPORT in by_id:
        count, pos = _read_uleb(wasm, by_id[_IMPORT][1])
        for _ in range(count):
            for _name in range(2):
                length, pos = _read_uleb(wasm, pos)
                pos += length
            kind = wasm[pos]
            pos += 1
            if kind == 0:
                imported_functions += 1
                _, pos = _read_uleb(wasm, pos)
            elif kind == 1:
                reftype, maximum, pos = _table_type(wasm, pos)
                tables.append((reftype, maximum))
            elif kind == 2:
                flags = wasm[pos]
                _, pos = _read_uleb(wasm, pos + 1)
                if flags & 1:
                    _, pos = _read_uleb(wasm, pos)
            elif kind == 3:
                pos = _valtype(wasm, pos) + 1
            elif kind == 4:  # a tag: attribute, type index
                _, pos = _read_uleb(wasm, pos + 1)
            else:
                raise Unsupported(f"import kind {kind}")
    if _TABLE in by_id:
        count, pos = _read_uleb(wasm, by_id[_TABLE][1])
        for _ in range(count):
            if wasm[pos] == 0x40:
                raise Unsupported("a table with an initialiser expression")
            reftype, maximum, pos = _table_type(wasm, pos)
            tables.append((reftype, maximum))
    watched = {i for i, (_, maximum) in enumerate(tables) if maximum is None or maximum > cap}
    if not watched or _CODE not in by_id:
        return wasm
    if any(tables[t][0] not in (_FUNCREF, _EXTERNREF) for t in watched):
        raise Unsupported("a growable table of typed references")

    # find the table.grow instructions on watched tables
    code_start, code_payload, code_end = by_id[_CODE]
    count, pos = _read_uleb(wasm, code_payload)
    bodies: list[tuple[bytes, list[tuple[int, int, int]], int]] = []  # (raw body, grows, body start)
    for _ in range(count):
        size, pos = _read_uleb(wasm, pos)
        body_start, body_end = pos, pos + size
        groups, p = _read_uleb(wasm, pos)
        for _group in range(groups):
            _, p = _read_uleb(wasm, p)
            p = _valtype(wasm, p)
        grows = [g for g in table_grows(wasm, p, body_end) if g[2] in watched]
        bodies.append((wasm[body_start:body_end], grows, body_start))
        pos = body_end
    if not any(grows for _, grows, _ in bodies):
        return wasm

    type_count, type_pos = _read_uleb(wasm, by_id[_TYPE][1])
    function_count = _read_uleb(wasm, by_id[_FUNCTION][1])[0] if _FUNCTION in by_id else 0
    hook_type = type_count
    reftypes = sorted({tables[t][0] for t in watched})
    helper_type = {rt: type_count + 1 + i for i, rt in enumerate(reftypes)}
    hook_table = len(tables)
    ordered = sorted(watched)
    helper_function = {t: imported_functions + function_count + i for i, t in enumerate(ordered)}

    new_types = b"\x60\x04\x7f\x7f\x7f\x7e\x00" + b"".join(b"\x60\x02" + bytes([rt]) + b"\x7f\x01\x7f" for rt in reftypes)
    new_functions = b"".join(uleb(helper_type[tables[t][0]]) for t in ordered)
    helpers = []
    for t in ordered:
        maximum = tables[t][1]
        body = (
            b"\x01\x01\x7f"  # one i32 local: the result
            + b"\x20\x00\x20\x01\xfc\x0f" + uleb(t)  # table.grow t (init, delta)
            + b"\x22\x02\x41\x7f\x46\x04\x40"  # local.tee 2; i32.const -1; i32.eq; if
            + b"\xfc\x10" + uleb(t)  # table.size t
            + b"\x20\x01\x41" + _sleb(t)  # delta; the table's index
            + b"\x42" + _sleb(-1 if maximum is None else maximum)  # its declared maximum (-1: none)
            + b"\x41\x00\x11" + uleb(hook_type) + uleb(hook_table)  # call_indirect slot 0 of the hooks
            + b"\x0b\x20\x02\x0b"  # end; local.get 2; end
        )
        helpers.append(uleb(len(body)) + body)

    out_bodies = []
    for raw, grows, body_start in bodies:
        if grows:
            parts, last = [], 0
            for start, stop, table in grows:
                parts.append(raw[last:start - body_start])
                parts.append(b"\x10" + uleb(helper_function[table]))
                last = stop - body_start
            parts.append(raw[last:])
            raw = b"".join(parts)
        out_bodies.append(uleb(len(raw)) + raw)

    def section(sid: int, payload: bytes) -> bytes:
        return bytes([sid]) + uleb(len(payload)) + payload

    def appended(sid: int, extra_count: int, extra: bytes) -> bytes:
        if sid in by_id:
            count, pos = _read_uleb(wasm, by_id[sid][1])
            return section(sid, uleb(count + extra_count) + wasm[pos:by_id[sid][2]] + extra)
        return section(sid, uleb(extra_count) + extra)

    export_names = _export_names(wasm, by_id)
    if HOOKS_EXPORT in export_names:
        raise Unsupported(f"an export named {HOOKS_EXPORT}")
    replaced = {
        _TYPE: section(_TYPE, uleb(type_count + 1 + len(reftypes)) + wasm[type_pos:by_id[_TYPE][2]] + new_types),
        _FUNCTION: appended(_FUNCTION, len(ordered), new_functions),
        _TABLE: appended(_TABLE, 1, b"\x70\x01\x01\x01"),  # funcref, exactly one slot
        _EXPORT: appended(_EXPORT, 1, uleb(len(HOOKS_EXPORT)) + HOOKS_EXPORT.encode() + b"\x01" + uleb(hook_table)),
        _CODE: section(_CODE, uleb(count + len(ordered)) + b"".join(out_bodies) + b"".join(helpers)),
    }
    out = bytearray(wasm[:8])
    pending = dict(replaced)
    for sid, start, _, end in sections:
        if sid == _CUSTOM:
            if _custom_name(wasm, start).startswith(".debug"):
                continue  # code offsets moved: DWARF would point at the wrong lines
            out += wasm[start:end]
            continue
        for missing in [m for m in pending if m not in by_id and _ORDER.index(m) < _ORDER.index(sid)]:
            out += pending.pop(missing)
        out += pending.pop(sid, wasm[start:end])
    for missing in sorted(pending, key=_ORDER.index):
        out += pending[missing]
    return bytes(out)


def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _custom_name(wasm: bytes, start: int) -> str:
    _, pos = _read_uleb(wasm, start + 1)
    length, pos = _read_uleb(wasm, pos)
    return wasm[pos:pos + length].decode("utf-8", "replace")


def _export_names(wasm: bytes, by_id: dict[int, tuple[int, int, int]]) -> set[str]:
    if _EXPORT not in by_id:
        return set()
    count, pos = _read_uleb(wasm, by_id[_EXPORT][1])
    names = set()
    for _ in range(count):
        length, pos = _read_uleb(wasm, pos)
        names.add(wasm[pos:pos + length].decode("utf-8", "replace"))
        pos += length + 1
        _, pos = _read_uleb(wasm, pos)
    return names


def connect(store: wasmtime.Store, exports: Any, on_refused: Callable[[int, int, int, int | None], None]) -> bool:
    """Put the run's hook in an instrumented guest's slot; False when the guest is not instrumented.

    ``on_refused(table, requested, current, maximum)`` hears each refused ``table.grow``.
    """
    try:
        table = exports[HOOKS_EXPORT]
    except KeyError:
        return False

    def hook(current: int, delta: int, index: int, maximum: int) -> None:
        requested = current + (delta & 0xFFFFFFFF)
        on_refused(index, requested, current, None if maximum < 0 else maximum)

    # a FuncType is bound to the first engine it is used with (another engine then aborts the
    # process: "cross-Engine usage is not supported"), so it is made here, per store
    hook_type = wasmtime.FuncType([wasmtime.ValType.i32()] * 3 + [wasmtime.ValType.i64()], [])
    table.set(store, 0, wasmtime.Func(store, hook_type, hook))
    return True
