"""The byte-level half of :func:`~workbench.audit.frames.frame`: cutting columns out of
canonical record lines with numpy, rather than parsing them.

Why apart: this is where the speed of loading a million records comes from, and where the
care is (every span is proven to lie inside the buffer, every cut hash is checked against
the record's own); :mod:`.frames` decides when a file may take this path.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_DETAIL_KEY = b'"detail":'
_ERRNO_KEY = b',"errno":'
_HASH_KEY = b',"hash":"'

class Unusual(Exception):
    """The fast path's assumptions do not hold for this file."""


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
        raise Unusual("spans out of order")  # never hand Arrow offsets outside the buffer
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
        raise Unusual("lines not in canonical form")
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
        raise Unusual("lines not in canonical form")
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
        raise Unusual("lines not in canonical form")
    data = np.ascontiguousarray(view[picked])
    words = data.view(np.uint64)
    if (words & _HIGH_BITS).any():
        raise Unusual("a hash field that is not plain text")
    if escapes:  # the file holds a backslash somewhere: is it in one of these?
        backslashes = words ^ _BACKSLASHES
        if ((backslashes - _LOW_BITS) & ~backslashes & _HIGH_BITS).any():
            raise Unusual("an escape in a hash field: its text is not its bytes")
    offsets = np.zeros(len(at) + 1, dtype=np.int64)
    np.cumsum(np.where(valid, width, 0), out=offsets[1:])
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.LargeStringArray.from_buffers(len(at), pa.py_buffer(offsets), pa.py_buffer(data), bitmap,
                                            int(len(at) - np.count_nonzero(valid)))


def cut_columns(buf: pa.Buffer, arr: np.ndarray, offsets: np.ndarray, table: pa.Table,
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
        raise Unusual("lines not in canonical form")
    mac_len, mac, mac_ok = _cut_hex(arr, _words(arr), module_at, "mac", ~v1, escapes)

    head = sum(_key_len(name, i == 0) + length(name) for i, name in enumerate(_HEAD_FIELDS))
    start = offsets[:-1] + 1 + head + _key_len("detail")  # 1 for the record's '{'
    hash_at = module_at - mac_len - 65  # the hash's 64 digits and its closing quote
    stop = hash_at - len(_HASH_KEY) - length("errno") - _key_len("errno")
    if (stop < start + 2).any() or (hash_at < 0).any():
        raise Unusual("lines not in canonical form")
    if (arr[start] != ord("{")).any() or (arr[stop - 1] != ord("}")).any():
        raise Unusual("lines not in canonical form")
    keys = _spans(buf, start - len(_DETAIL_KEY), start)
    errno_keys = _spans(buf, stop, stop + len(_ERRNO_KEY))
    hashes = _spans(buf, hash_at, hash_at + 64)
    proven = pc.and_(pc.equal(keys, _DETAIL_KEY.decode()), pc.equal(errno_keys, _ERRNO_KEY.decode()))
    proven = pc.and_(proven, pc.equal(hashes.cast(pa.string()), table.column("hash").combine_chunks()))
    if not mac_ok.all() or not pc.all(proven, skip_nulls=False).as_py():
        raise Unusual("lines not in canonical form")
    return {"detail": _spans(buf, start, stop), "mac": mac}
