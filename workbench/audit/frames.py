"""Audit logs as pandas DataFrames, fast enough for millions of records.

Columns (one per record field, in :data:`~workbench.audit.record.RECORD_FIELDS` order):

=================  ===============================  ==========================================
column             dtype                            why
=================  ===============================  ==========================================
ts                 ``datetime64[ns, UTC]``          the record's µs timestamp, time-zone aware
seq                ``int64``
errno              ``Int64`` (nullable)             most records have none
v, category,       ``category``                     few distinct values: small and fast to
action, decision,                                   group; ``decision`` always has the
module,                                             categories allow, deny, kill, audit (in
module_sha256,                                      that order) so colours and counts line up
capability                                          across frames; the others list their
                                                    categories sorted
run_id, target,    ``string[pyarrow]``              many distinct values; kept in Arrow memory
resolved, reason,                                   (no million Python objects); ``mac`` is
prev_hash, hash,                                    null in unkeyed logs and in schema-1
mac                                                 records
detail             ``string[pyarrow]``: the         loads without building a dict per row,
                   canonical JSON text of the       exports to CSV/Parquet unchanged, compares
                   ``detail`` object                by value; :func:`details` opens it into
                                                    columns, ``json.loads`` opens one
caller_chain       ``list<string>[pyarrow]``        a list of module names per row
=================  ===============================  ==========================================

How it is fast: the file is read once into memory; ``pyarrow.json`` parses all
scalar fields in C++ (both cores) with an explicit schema; ``detail`` is cut out
of each line as text, at offsets computed from the lengths of the canonical
JSON before and after it (Arrow kernels and numpy, no per-row Python), and the
cut is proven by the bytes around it and the record's own hash behind it.
``mac`` (null, or 64 hex digits) is cut the same way, just before ``module``,
and its bytes checked 8 at a time with numpy.  Anything unusual (a torn line kept by a recovery, a hand-edited or
non-canonical line) sends that file through a per-line Python parse instead:
slower, same result.

Only committed records appear: a torn last line is not a record.  A frame is a
view, not a check: :meth:`AuditLog.verify` is the check.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .record import RECORD_FIELDS, canonical_json, v1_canonical_json

__all__ = ["frame", "details", "DECISIONS", "CATEGORICAL_COLUMNS", "STRING_COLUMNS"]

#: decision categories, in a fixed order
DECISIONS = ("allow", "deny", "kill", "audit")
CATEGORICAL_COLUMNS = ("v", "category", "action", "decision", "module", "module_sha256", "capability")
STRING_COLUMNS = ("run_id", "target", "resolved", "reason", "detail", "prev_hash", "hash", "mac")

_CUT = ("detail", "mac")  # cut out of the lines, not parsed (see _cut_columns)
_SCALARS = pa.schema([
    ("v", pa.int64()), ("seq", pa.int64()), ("ts", pa.int64()), ("run_id", pa.string()),
    ("module", pa.string()), ("module_sha256", pa.string()), ("caller_chain", pa.list_(pa.string())),
    ("category", pa.string()), ("action", pa.string()), ("target", pa.string()),
    ("resolved", pa.string()), ("decision", pa.string()), ("capability", pa.string()),
    ("reason", pa.string()), ("errno", pa.int64()), ("prev_hash", pa.string()), ("hash", pa.string()),
])  # the _CUT fields are cut out of the lines, not parsed (see _cut_columns)
_SCHEMA = pa.schema([
    _SCALARS.field(name) if name not in _CUT else
    pa.field(name, pa.large_string())
    for name in RECORD_FIELDS
])
_BLOCK = 4 << 20
_DETAIL_KEY = b'"detail":'
_ERRNO_KEY = b',"errno":'
_HASH_KEY = b',"hash":"'


class _Unusual(Exception):
    """The fast path's assumptions do not hold for this file."""


def _as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def frame(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Load one log file, or several (concatenated in the order given), as a typed DataFrame.

    Exactly the files named are read: to get a rotated log's every file, use
    :meth:`AuditLog.frame` (or pass ``AuditLog(path).files()``).
    """
    tables = [_read_file(p) for p in _as_paths(paths)]
    table = pa.concat_tables(tables) if tables else _SCHEMA.empty_table()
    return _to_pandas(table)


def _read_file(path: Path) -> pa.Table:
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # a torn last line (no newline) is not a record
    if end == 0:
        return _SCHEMA.empty_table()
    try:
        return _fast(data, end)
    except (_Unusual, pa.ArrowInvalid):
        return _slow(data[:end])


def _line_offsets(arr: np.ndarray) -> tuple[np.ndarray, bool]:
    """Start offsets of every line plus the end (int64, ``n + 1`` entries), and whether any
    byte is a backslash (every JSON escape starts with one).  numpy releases the GIL here."""
    chunk = 1 << 24
    mask = np.empty(min(chunk, len(arr)), dtype=bool)
    parts = [np.zeros(1, dtype=np.int64)]
    escapes = False
    for start in range(0, len(arr), chunk):
        piece = arr[start:start + chunk]
        m = mask[: len(piece)]
        if not escapes:
            np.equal(piece, ord("\\"), out=m)
            escapes = bool(m.any())
        np.equal(piece, 10, out=m)
        parts.append(np.flatnonzero(m).astype(np.int64) + (start + 1))
    return np.concatenate(parts), escapes


def _fast(data: bytes, end: int) -> pa.Table:
    buf = pa.py_buffer(data).slice(0, end)
    arr = np.frombuffer(buf, dtype=np.uint8)
    # scanning the lines takes ~15% of a frame: done in a thread while Arrow parses
    scan = _Scan(arr)
    scan.start()
    try:
        table = pj.read_json(
            pa.BufferReader(buf),
            read_options=pj.ReadOptions(block_size=_BLOCK),
            parse_options=pj.ParseOptions(explicit_schema=_SCALARS, unexpected_field_behavior="ignore"),
        )
    finally:
        scan.join()
    offsets, escapes = scan.result()
    n = len(offsets) - 1
    if table.num_rows != n:  # blank lines are skipped by the parser: rows no longer match lines
        raise _Unusual("blank lines")
    if table.column("seq").null_count or table.column("ts").null_count:
        raise _Unusual("lines that are not records")
    columns = {name: table.column(name) for name in _SCALARS.names}
    for name, cut in _cut_columns(buf, arr, offsets, table, escapes).items():
        columns[name] = pa.chunked_array([cut])
    return pa.table([columns[name] for name in RECORD_FIELDS], schema=_SCHEMA)


class _Scan(threading.Thread):
    """:func:`_line_offsets` on a thread of its own (its error, if any, is raised by ``result``)."""

    def __init__(self, arr: np.ndarray) -> None:
        super().__init__(name="audit-frame-scan", daemon=True)
        self._arr = arr
        self._result: tuple[np.ndarray, bool] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result = _line_offsets(self._arr)
        except BaseException as exc:  # handed to the caller
            self._error = exc

    def result(self) -> tuple[np.ndarray, bool]:
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _spans(buf: pa.Buffer, start: np.ndarray, stop: np.ndarray) -> pa.Array:
    """``buf[start[i]:stop[i]]`` for every i, as strings, copied by Arrow (no per-row Python).

    Why the detour: an Arrow string array needs contiguous values, so the spans
    and the gaps between them are laid end to end (zero-copy over ``buf``) and
    ``take`` keeps every other one.
    """
    n = len(start)
    if n == 0:
        return pa.array([], pa.large_string())
    both = np.empty(2 * n, dtype=np.int64)
    both[0::2] = start
    both[1::2] = stop
    if both[0] < 0 or both[-1] > buf.size or (np.diff(both) < 0).any():
        raise _Unusual("spans out of order")  # never hand Arrow offsets outside the buffer
    interleaved = pa.LargeStringArray.from_buffers(2 * n - 1, pa.py_buffer(both), buf)
    return interleaved.take(pa.array(np.arange(0, 2 * n, 2, dtype=np.int64)))


_HEAD_FIELDS = ("action", "caller_chain", "capability", "category", "decision")  # keys before "detail"
_AFTER_MAC = ("module", "module_sha256", "prev_hash", "reason", "resolved", "run_id", "seq", "target", "ts",
              "v")  # the keys after "detail", "errno", "hash" and (schema 2 on) "mac"
_HEX_FIELDS = frozenset({"hash", "prev_hash", "module_sha256", "mac"})
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def _json_len(col: pa.ChunkedArray | pa.Array, escapes: bool = True) -> np.ndarray:
    """Bytes each value takes in canonical JSON (``ensure_ascii=False``), computed by Arrow kernels.

    Strings: UTF-8 length + 2 quotes + escapes (``"`` ``\\`` and ``\\b \\f \\n \\r \\t``
    take one byte more, other control characters five more: ``\\u00XX``), as
    Python's encoder writes them.  Integers: their digits.  Lists of strings:
    brackets, commas and elements.  null: 4.  ``escapes=False`` skips looking
    for characters to escape (the caller knows there are none: every escape
    starts with a backslash, and the file has none).
    """
    kind = col.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()  # parent indices must count rows of the whole column
        values = col.flatten()
        parents = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
        sizes = np.bincount(parents, weights=_json_len(values, escapes), minlength=len(col)).astype(np.int64)
        counts = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        total = 2 + sizes + np.maximum(counts - 1, 0)
        return np.where(col.is_null().to_numpy(zero_copy_only=False), 4, total)
    if pa.types.is_integer(kind):
        text = pc.cast(col, pa.string())
        return pc.fill_null(pc.binary_length(text), 4).to_numpy(zero_copy_only=False).astype(np.int64)
    length = pc.binary_length(col)
    if escapes and len(col) and pc.any(pc.match_substring_regex(col, _NEEDS_ESCAPE)).as_py():
        extra = pc.add(pc.count_substring_regex(col, r'["\\\x00-\x1f]'),
                       pc.multiply(pc.count_substring_regex(col, r"[\x00-\x07\x0b\x0e-\x1f]"), 4))
        length = pc.add(length, extra)
    return pc.fill_null(pc.add(length, 2), 4).to_numpy(zero_copy_only=False).astype(np.int64)


def _key_len(name: str, first: bool = False) -> int:
    return len(name) + 3 + (0 if first else 1)  # ("name": or ,"name":


def _words(arr: np.ndarray) -> np.ndarray:
    """``words[i]``: the 8 bytes at ``arr[i]`` as one little-endian integer (an unaligned view, no copy)."""
    return np.ndarray(shape=(max(len(arr) - 7, 0),), dtype="<u8", buffer=arr, strides=(1,))


def _bytes_are(words: np.ndarray, at: np.ndarray, pattern: bytes) -> np.ndarray:
    """Per row: are the bytes at ``at`` exactly ``pattern``?  One 8-byte gather per 8 bytes of pattern."""
    if len(at) and (at.min() < 0 or at.max() + max(len(pattern), 8) > len(words) + 7):
        raise _Unusual("lines not in canonical form")
    if len(pattern) < 8:
        mask = (1 << (8 * len(pattern))) - 1
        return (words[at] & np.uint64(mask)) == np.uint64(int.from_bytes(pattern, "little"))
    same = np.ones(len(at), dtype=bool)
    for chunk in sorted({*range(0, len(pattern) - 7, 8), len(pattern) - 8}):
        same &= words[at + chunk] == np.uint64(int.from_bytes(pattern[chunk:chunk + 8], "little"))
    return same


def _cut_hex(arr: np.ndarray, words: np.ndarray, end_at: np.ndarray, name: str, present: np.ndarray,
             escapes: bool) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """A field written ``,"name":"<64 characters>"`` or ``,"name":null`` whose value ends at ``end_at``.

    Returns its length in bytes (key included; 0 where ``present`` is False), its
    values (strings or nulls), and per row whether the bytes prove it: the key
    right where the length puts it, and either the quotes around 64 characters
    with no escape (so the text is its bytes) or ``null``.  A raw ``"`` cannot sit
    inside a JSON string, so a key found this way is the record's own.
    """
    key = f',"{name}":'.encode()
    if len(end_at) and end_at.min() < 66 + len(key):
        raise _Unusual("lines not in canonical form")
    is_text = present & (arr[end_at - 1] == ord('"'))
    is_null = present & ~is_text
    size = np.where(present, len(key) + np.where(is_text, 66, 4), 0)
    key_at = end_at - size
    proof = ~present
    proof[is_text] = _bytes_are(words, key_at[is_text], key + b'"')  # the key and the opening quote
    proof[is_null] = _bytes_are(words, key_at[is_null], key + b"null")
    return size, _fixed_strings(arr, end_at - 65, is_text, escapes), proof


_HIGH_BITS = np.uint64(0x8080808080808080)
_LOW_BITS = np.uint64(0x0101010101010101)
_BACKSLASHES = np.uint64(0x5C5C5C5C5C5C5C5C)


def _fixed_strings(arr: np.ndarray, at: np.ndarray, valid: np.ndarray, escapes: bool, width: int = 64) -> pa.Array:
    """The ``width`` bytes at ``at`` as strings where ``valid``, else null: one gather, no per-row work.

    Only plain ASCII without backslashes is taken (so each string's text is its
    bytes, as valid UTF-8): anything else is not a hash and goes the slow way.
    Both are checked 8 bytes at a time (a high bit set; a byte equal to ``\\``).
    """
    view = np.ndarray(shape=(max(len(arr) - width + 1, 0),), dtype=f"V{width}", buffer=arr, strides=(1,))
    picked = at[valid]
    if len(picked) and (picked.min() < 0 or picked.max() >= len(view)):
        raise _Unusual("lines not in canonical form")
    data = np.ascontiguousarray(view[picked])
    words = data.view(np.uint64)
    if (words & _HIGH_BITS).any():
        raise _Unusual("a hash field that is not plain text")
    if escapes:  # the file holds a backslash somewhere: is it in one of these?
        backslashes = words ^ _BACKSLASHES
        if ((backslashes - _LOW_BITS) & ~backslashes & _HIGH_BITS).any():
            raise _Unusual("an escape in a hash field: its text is not its bytes")
    offsets = np.zeros(len(at) + 1, dtype=np.int64)
    np.cumsum(np.where(valid, width, 0), out=offsets[1:])
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.LargeStringArray.from_buffers(len(at), pa.py_buffer(offsets), pa.py_buffer(data), bitmap,
                                            int(len(at) - np.count_nonzero(valid)))


def _cut_columns(buf: pa.Buffer, arr: np.ndarray, offsets: np.ndarray, table: pa.Table,
                 escapes: bool = True) -> dict[str, pa.Array]:
    """Each line's ``detail`` object (its exact JSON text) and ``mac``, without per-row Python.

    A record line is canonical JSON, so the detail's first byte is at a known
    distance from the line's start (the keys and values before it, whose
    canonical lengths Arrow computes from the parsed columns) and its last byte
    at a known distance from the line's end.  Then it is proven: the bytes
    around each cut must be ``"detail":`` and ``,"errno":``, and the hash found
    after the cut must be the record's own (a detail cannot contain that: the
    hash covers it).  Any line that is not canonical fails a check and the file
    goes the slow way.

    ``mac`` (schema 2 on; null or 64 hex digits) ends where ``,"module":`` starts,
    a known distance from the line's end, and is cut the same way rather than
    parsed (:func:`_cut_hex` proves the cut): a string column less for Arrow to
    build, which more than pays for the cut in a keyed log.
    """
    def length(name: str) -> np.ndarray:
        # hashes are hex: a wrong guess only shifts the cut, which the checks below catch
        return _json_len(table.column(name), escapes and name not in _HEX_FIELDS)

    v1 = table.column("v").to_numpy(zero_copy_only=False) == 1  # schema-1 records have no "mac" key at all
    module_at = offsets[1:] - 2 - sum(_key_len(name) + length(name) for name in _AFTER_MAC)  # '}', newline
    if (module_at - offsets[:-1] < 2).any():
        raise _Unusual("lines not in canonical form")
    mac_len, mac, mac_ok = _cut_hex(arr, _words(arr), module_at, "mac", ~v1, escapes)

    head = sum(_key_len(name, i == 0) + length(name) for i, name in enumerate(_HEAD_FIELDS))
    start = offsets[:-1] + 1 + head + _key_len("detail")  # 1 for the record's '{'
    hash_at = module_at - mac_len - 65  # the hash's 64 digits and its closing quote
    stop = hash_at - len(_HASH_KEY) - length("errno") - _key_len("errno")
    if (stop < start + 2).any() or (hash_at < 0).any():
        raise _Unusual("lines not in canonical form")
    if (arr[start] != ord("{")).any() or (arr[stop - 1] != ord("}")).any():
        raise _Unusual("lines not in canonical form")
    keys = _spans(buf, start - len(_DETAIL_KEY), start)
    errno_keys = _spans(buf, stop, stop + len(_ERRNO_KEY))
    hashes = _spans(buf, hash_at, hash_at + 64)
    proven = pc.and_(pc.equal(keys, _DETAIL_KEY.decode()), pc.equal(errno_keys, _ERRNO_KEY.decode()))
    proven = pc.and_(proven, pc.equal(hashes.cast(pa.string()), table.column("hash").combine_chunks()))
    if not mac_ok.all() or not pc.all(proven, skip_nulls=False).as_py():
        raise _Unusual("lines not in canonical form")
    return {"detail": _spans(buf, start, stop), "mac": mac}


def _slow(data: bytes) -> pa.Table:
    """Per-line Python parse: for files the fast path cannot take.  Lines that are not records are skipped."""
    rows: list[dict[str, Any]] = []
    for raw in data.split(b"\n"):
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if not (isinstance(obj, dict) and _is_int(obj.get("seq")) and _is_int(obj.get("ts"))):
            continue
        row = {name: _coerce(name, obj.get(name), obj.get("v") == 1) for name in RECORD_FIELDS}
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _coerce(name: str, value: Any, v1: bool = False) -> Any:
    field_type = _SCHEMA.field(name).type
    if name == "detail":
        encode = v1_canonical_json if v1 else canonical_json  # the text the record's own schema wrote
        try:
            return encode(value if value is not None else {}).decode("utf-8")
        except ValueError:
            return json.dumps(value, default=str)
    if value is None:
        return None
    if pa.types.is_integer(field_type):
        return value if _is_int(value) else None
    if pa.types.is_list(field_type):
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return value if isinstance(value, str) else json.dumps(value)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for name in RECORD_FIELDS:
        col = table.column(name)
        if name == "ts":
            micros = col.to_numpy() if len(col) else np.zeros(0, dtype=np.int64)
            columns[name] = pd.to_datetime(micros, unit="us", utc=True).as_unit("ns")
        elif name == "seq":
            columns[name] = col.to_numpy() if len(col) else np.zeros(0, dtype=np.int64)
        elif name == "errno":
            columns[name] = pd.Int64Dtype().__from_arrow__(col)
        elif name in CATEGORICAL_COLUMNS:
            columns[name] = _categorical(name, col)
        elif name == "caller_chain":
            columns[name] = pd.arrays.ArrowExtensionArray(col)
        else:
            columns[name] = pd.arrays.ArrowStringArray(col.cast(pa.large_string()))
    return pd.DataFrame(columns)


def _categorical(name: str, col: pa.ChunkedArray) -> pd.Categorical:
    encoded = pc.dictionary_encode(col.combine_chunks()) if len(col) else None
    if encoded is None:
        cat = pd.Categorical([], categories=pd.Index([], dtype="int64" if name == "v" else object))
    else:
        cat = pd.Categorical.from_codes(
            encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False),
            categories=pd.Index(encoded.dictionary.to_pylist()),
        )
    if name == "decision":
        extra = sorted(c for c in cat.categories if c not in DECISIONS)
        return cat.set_categories([*DECISIONS, *extra])
    # sorted, not order of first appearance: frames of different logs then agree
    return cat.reorder_categories(sorted(cat.categories))


def details(df: pd.DataFrame) -> pd.DataFrame:
    """The ``detail`` column opened into columns (``pandas.json_normalize``), same index as ``df``.

    Why a function and not the default: opening a million small dicts is the
    slowest thing one can do to a frame; do it on the rows you picked.
    """
    parsed = [json.loads(text) if isinstance(text, str) else {} for text in df["detail"]]
    out = pd.json_normalize(parsed)
    out.index = df.index
    return out
