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

from .frame_columns import cut_columns, Unusual
from .record import RECORD_FIELDS, canonical_json, v1_canonical_json

__all__ = ["frame", "details", "DECISIONS", "CATEGORICAL_COLUMNS", "STRING_COLUMNS"]

#: decision categories, in a fixed order
DECISIONS = ("allow", "deny", "kill", "audit")
CATEGORICAL_COLUMNS = ("v", "category", "action", "decision", "module", "module_sha256", "capability")
STRING_COLUMNS = ("run_id", "target", "resolved", "reason", "detail", "prev_hash", "hash", "mac")

_CUT = ("detail", "mac")  # cut out of the lines, not parsed (see cut_columns)
_SCALARS = pa.schema([
    ("v", pa.int64()), ("seq", pa.int64()), ("ts", pa.int64()), ("run_id", pa.string()),
    ("module", pa.string()), ("module_sha256", pa.string()), ("caller_chain", pa.list_(pa.string())),
    ("category", pa.string()), ("action", pa.string()), ("target", pa.string()),
    ("resolved", pa.string()), ("decision", pa.string()), ("capability", pa.string()),
    ("reason", pa.string()), ("errno", pa.int64()), ("prev_hash", pa.string()), ("hash", pa.string()),
])  # the _CUT fields are cut out of the lines, not parsed (see cut_columns)
_SCHEMA = pa.schema([
    _SCALARS.field(name) if name not in _CUT else
    pa.field(name, pa.large_string())
    for name in RECORD_FIELDS
])
_BLOCK = 4 << 20



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
    except (Unusual, pa.ArrowInvalid):
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
        raise Unusual("blank lines")
    if table.column("seq").null_count or table.column("ts").null_count:
        raise Unusual("lines that are not records")
    columns = {name: table.column(name) for name in _SCALARS.names}
    for name, cut in cut_columns(buf, arr, offsets, table, escapes).items():
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
