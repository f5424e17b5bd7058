"""One audit record: its fields, its canonical bytes, its chain hash and its MAC.

Everything that decides what bytes a record becomes lives here, so the writer
(:mod:`.log`) and the checker (:mod:`.verify`) cannot drift apart.  The schema,
for readers in any language, is docs/audit-record.md.

Schema version 2 (written since the keyed chain):

* **Canonical form: RFC 8785** (JSON Canonicalization Scheme), computed by the
  ``rfc8785`` package: keys sorted by UTF-16 code units, no whitespace, minimal
  string escapes, numbers as ECMAScript prints them.  Any language with a JCS
  library reproduces the bytes.  Integers beyond ±(2**53 - 1), which JSON
  numbers cannot carry exactly, are written in ``detail`` as decimal strings.
* ``hash = sha256(prev_hash + JCS(record without "hash" and "mac"))``, both as
  UTF-8, written as 64 lowercase hex digits.  This chain is public: anyone can
  recompute it, which is what a signed checkpoint pins.
* ``mac``: ``null`` in an unkeyed log; in a keyed log
  ``HMAC-SHA256(key, hash)`` (the hash as its 64 ASCII hex digits), 64 hex
  digits.  The hash covers the previous hash, so each MAC vouches for the whole
  chain up to its record: without the key, no record can be added, changed or
  re-hashed.
* A record's line in the file is the JCS of the *whole* record (``hash`` and
  ``mac`` included), so :mod:`.verify` also insists that the bytes on disk are
  exactly canonical: a byte change that leaves the parsed value equal (``1e5``
  -> ``1E5``, ``\\u001f`` -> ``\\u001F``) is still caught.

Schema version 1 (logs written before): no ``mac`` field, canonical form
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` (equal
to JCS except for floats and for keys outside the Basic Multilingual Plane).
:mod:`.verify` still reads and checks v1 records; nothing writes them any more.

Why a fast path: ``rfc8785`` is pure Python (about 27 µs a record, five times
Python's C JSON encoder).  For values without floats and without keys outside
the Basic Multilingual Plane, with integers in the safe range, JCS and the C
encoder (sorted keys, compact, ``ensure_ascii=False``) write the same bytes
(string escapes are the same, code-point order equals UTF-16 order inside the
BMP); every other value goes through ``rfc8785``.  tests/test_audit_keyed.py
proves the two agree on random values (hypothesis, with ``rfc8785`` as the oracle).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from typing import Any, Mapping, Protocol

import rfc8785

from ..caches import memoized

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "GENESIS_HASH",
    "RECORD_FIELDS",
    "V1_FIELDS",
    "SAFE_INTEGER",
    "SECRET_WORDS",
    "canonical_json",
    "chain_hash",
    "to_microseconds",
    "scrub_detail",
    "build_record",
    "record_problem",
]


class RecordKey(Protocol):
    """What a record needs of the log's key (:class:`~workbench.audit.keys.AuditKey`, which
    builds on this module: the protocol keeps the dependency one way)."""

    def record_mac(self, digest: str, /) -> str: ...


#: schema version written as ``v`` in every new record
SCHEMA_VERSION = 2

#: schema versions :func:`record_problem` (and so ``verify()``) can check
SCHEMA_VERSIONS = (1, 2)

#: ``prev_hash`` of the very first record of a chain
GENESIS_HASH = "0" * 64

#: the largest integer a JSON number carries exactly (RFC 8785 §3.2.2.3, I-JSON)
SAFE_INTEGER = 2**53 - 1

#: every key of a v1 record, in the order frames and exports show them
V1_FIELDS: tuple[str, ...] = (
    "v", "seq", "ts", "run_id", "module", "module_sha256", "caller_chain", "category",
    "action", "target", "resolved", "decision", "capability", "reason", "errno", "detail",
    "prev_hash", "hash",
)

#: every key of a record (v2), in the order frames and exports show them
RECORD_FIELDS: tuple[str, ...] = (*V1_FIELDS, "mac")

#: ``detail`` keys are dropped when any of their words is one of these (see :func:`scrub_detail`)
SECRET_WORDS = frozenset({
    "value", "values", "content", "contents", "data", "secret", "secrets",
    "password", "passwords", "passwd", "token", "tokens", "credential", "credentials",
})

_STRING_FIELDS = ("run_id", "module", "module_sha256", "category", "action", "target",
                  "resolved", "decision", "capability", "reason")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_MODULE_KEY = b',"module":'

# v2's fast path (see the module docstring) and v1's canonical form: the same encoder
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _astral(key: str) -> bool:
    """Does ``key`` hold a character outside the BMP (where UTF-16 order differs from code points)?"""
    return not key.isascii() and any(ord(c) > 0xFFFF for c in key)


def _plain(value: Any) -> bool:
    """Are JCS's bytes for ``value`` the C encoder's bytes?  (No floats, no astral keys, safe ints.)"""
    if value is None or isinstance(value, str) or value is True or value is False:
        return True
    if type(value) is int:
        return -SAFE_INTEGER <= value <= SAFE_INTEGER
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str or _astral(key) or not _plain(item):
                return False
        return True
    if type(value) is list:
        return all(_plain(item) for item in value)
    return False


def canonical_json(obj: Any) -> bytes:
    """The RFC 8785 (JCS) bytes of ``obj``.

    Raises ``ValueError`` (``rfc8785.CanonicalizationError``) for what JCS cannot
    write: NaN, infinities, integers beyond ±(2**53 - 1), lone surrogates; and
    ``UnicodeEncodeError`` (also a ``ValueError``) for lone surrogates on the fast path.
    """
    if _plain(obj):
        return _ENCODER.encode(obj).encode("utf-8")
    return rfc8785.dumps(obj)


def v1_canonical_json(obj: Any) -> bytes:
    """The canonical bytes of a schema-1 record (sorted keys, compact, no NaN)."""
    return _ENCODER.encode(obj).encode("utf-8")


def chain_hash(prev_hash: str, body: bytes) -> str:
    """``sha256(prev_hash + body)`` as hex, where ``body`` is the canonical record without ``hash`` (and ``mac``)."""
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(body)
    return h.hexdigest()


def to_microseconds(ts: float | int) -> int:
    """Seconds since the epoch (``Event.ts``) as integer microseconds.

    Integers keep the log exact and sortable; a float's last digits would change
    between JSON libraries and break the canonical form.
    """
    return int(round(ts * 1_000_000))


@memoized("detail key names")
def _is_secret_key(key: str) -> bool:
    words = (w.lower() for w in _WORD.findall(key))
    return any(w in SECRET_WORDS for w in words)


def _clean(value: Any, path: str, dropped: list[str], odd: list[bool]) -> Any:
    """``value`` made JSON-safe and canonical-stable, with secret-named keys removed.

    ``odd`` gets an entry when the value needs ``rfc8785`` rather than the fast path.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        # beyond 2**53 a JSON number is not exact (and JCS refuses it): keep the digits as text
        return value if -SAFE_INTEGER <= value <= SAFE_INTEGER else str(value)
    if isinstance(value, float):
        # NaN/Infinity are not JSON; keep the fact as text rather than fail the append
        if not math.isfinite(value):
            return repr(value)
        odd.append(True)
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if _is_secret_key(key):
                dropped.append(f"{path}{key}")
                continue
            if _astral(key):
                odd.append(True)
            out[key] = _clean(v, f"{path}{key}.", dropped, odd)
        return out
    if isinstance(value, (list, tuple)):
        return [_clean(v, path, dropped, odd) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_clean(v, path, dropped, odd) for v in value), key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        # raw bytes are file or network contents: keep only their size
        return f"<{len(value)} bytes>"
    return str(value)


def _scrub(detail: Mapping[str, Any] | None) -> tuple[dict[str, Any], bool]:
    if not detail:
        return {}, True
    dropped: list[str] = []
    odd: list[bool] = []
    out = _clean(detail, "", dropped, odd)
    if dropped:
        out["redacted"] = sorted(dropped)
    return out, not odd


def scrub_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """``detail`` as it may be written: JSON-safe, and without anything that may be a secret.

    Why: the audit log is read by people and tools that must never see an
    environment value or a file's contents.  The runtime does not put them in
    ``detail``; this is the second fence.  A key is dropped (at any depth) when
    any of its words, split on ``_ - .`` and camelCase, is in
    :data:`SECRET_WORDS` (``value``, ``content(s)``, ``data``, ``secret``,
    ``password``, ``token``, ...): ``env_value``, ``fileContents``, ``api-token``
    all go.  The dropped key *names* (never values) are listed under
    ``detail["redacted"]`` so a reader knows something was removed.  Bytes are
    replaced by ``"<N bytes>"``, non-finite floats by their ``repr``, integers
    beyond ±(2**53 - 1) by their decimal digits, other objects by ``str()``.
    """
    return _scrub(detail)[0]


def _unsurrogate(value: Any) -> Any:
    """Lone surrogates (undecodable bytes smuggled through ``surrogateescape``) as visible ``\\udcxx`` text.

    Why: a guest must not be able to dodge the log by naming a path that is not
    valid UTF-8; the record is written with the odd bytes spelled out instead.
    """
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_unsurrogate(k): _unsurrogate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsurrogate(v) for v in value]
    return value


def _splice(body: bytes, hash: str, mac: str | None) -> bytes:
    """JCS of the whole record from JCS of its body: ``hash`` and ``mac`` go just before ``module``.

    Why this is exact: the record's keys sort ``... errno, hash, mac, module, ...``;
    the last ``,"module":`` in the body is the top-level one, because every field
    after it is a string, a number or null (a string cannot hold an unescaped
    ``"``), and ``hash``/``mac`` are hex, which needs no escaping.
    """
    at = body.rindex(_MODULE_KEY)
    mac_text = b"null" if mac is None else b'"' + mac.encode("ascii") + b'"'
    return b"".join((body[:at], b',"hash":"', hash.encode("ascii"), b'","mac":', mac_text, body[at:]))


def build_record(
    event: Mapping[str, Any], seq: int, prev_hash: str, key: RecordKey | None = None
) -> tuple[dict[str, Any], bytes]:
    """The record for ``event`` (an ``Event.to_dict()``) at ``seq`` after ``prev_hash``.

    ``key``: the keyed log's :class:`~workbench.audit.keys.AuditKey` (the record gets
    its ``mac``), or None.  Returns the record (with ``hash`` and ``mac``) and its
    line: its canonical JSON plus ``\\n``.
    """
    detail, plain = _scrub(event.get("detail"))
    record: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "seq": seq,
        "ts": to_microseconds(event["ts"] if event.get("ts") is not None else time.time()),
        "run_id": str(event.get("run_id", "")),
        "module": str(event.get("module") or ""),
        "module_sha256": event.get("module_sha256"),
        "caller_chain": [str(c) for c in event.get("caller_chain") or ()],
        "category": event.get("category"),
        "action": event.get("action"),
        "target": event.get("target"),
        "resolved": event.get("resolved"),
        "decision": event.get("decision", "allow"),
        "capability": event.get("capability"),
        "reason": event.get("reason"),
        "errno": event.get("errno"),
        "detail": detail,
        "prev_hash": prev_hash,
    }
    for name in _STRING_FIELDS:
        v = record[name]
        if v is not None and not isinstance(v, str):
            record[name] = str(v)
    errno = record["errno"]
    if errno is not None and not isinstance(errno, int):
        record["errno"] = errno = int(errno)
    plain = plain and all(
        type(n) is int and -SAFE_INTEGER <= n <= SAFE_INTEGER for n in (seq, record["ts"], errno) if n is not None
    )
    try:
        body = _ENCODER.encode(record).encode("utf-8") if plain else rfc8785.dumps(record)
    except (UnicodeEncodeError, rfc8785.CanonicalizationError) as exc:
        if isinstance(exc, rfc8785.CanonicalizationError) and not isinstance(exc.__cause__, UnicodeEncodeError):
            raise
        record = _unsurrogate(record)
        body = _ENCODER.encode(record).encode("utf-8") if plain else rfc8785.dumps(record)
    digest = chain_hash(prev_hash, body)
    mac = key.record_mac(digest) if key is not None else None
    line = _splice(body, digest, mac) + b"\n"
    record["hash"] = digest
    record["mac"] = mac
    return record, line


def _doubles(value: Any) -> Any:
    """``value`` with every integer beyond ±(2**53 - 1) as a float (raises OverflowError beyond a double)."""
    if type(value) is int and not -SAFE_INTEGER <= value <= SAFE_INTEGER:
        return float(value)
    if type(value) is dict:
        return {key: _doubles(item) for key, item in value.items()}
    if type(value) is list:
        return [_doubles(item) for item in value]
    return value


def _version(obj: dict[str, Any]) -> int | None:
    v = obj.get("v")
    return v if type(v) is int and v in SCHEMA_VERSIONS else None


def record_problem(obj: Any, line: bytes) -> str | None:
    """Why ``obj`` (parsed from ``line``, without its newline) is not a sound record, or None.

    Checks the shape, the schema version, the hash and the canonical form of
    either schema; the chain (``seq``, ``prev_hash``) and the MAC (which needs the
    key) are :mod:`.verify`'s job.
    """
    if not isinstance(obj, dict):
        return "not a JSON object"
    version = _version(obj)
    fields = V1_FIELDS if version == 1 else RECORD_FIELDS
    missing = [k for k in fields if k not in obj]
    if missing:
        return f"missing field {missing[0]!r}"
    extra = sorted(set(obj) - set(fields))
    if extra:
        return f"unexpected field {extra[0]!r}"
    if version is None:
        return f"unsupported schema version {obj['v']!r}"
    if not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool) or obj["seq"] < 0:
        return "seq is not a non-negative integer"
    prev, stored = obj["prev_hash"], obj["hash"]
    if not isinstance(prev, str) or not _HEX64.match(prev):
        return "prev_hash is not 64 hex digits"
    if version == 1:
        return _v1_problem(obj, line, prev, stored)
    if not isinstance(stored, str) or not _HEX64.match(stored):
        return "hash is not 64 hex digits"
    mac = obj["mac"]
    if mac is not None and not (isinstance(mac, str) and _HEX64.match(mac)):
        return "mac is not null or 64 hex digits"
    body = dict(obj)
    del body["hash"], body["mac"]
    try:
        try:
            canonical_body = canonical_json(body)
        except rfc8785.IntegerDomainError:
            # a JSON number is a double (RFC 8785 §3.2.2.3): 1e16 is written "10000000000000000" and
            # parses back as a Python int beyond 2**53; read such numbers as the doubles they are
            canonical_body = canonical_json(_doubles(body))
    except (ValueError, OverflowError):  # NaN, lone surrogates, numbers no double holds: JCS has no bytes for them
        return "not in canonical form"
    if chain_hash(prev, canonical_body) != stored:
        return "hash mismatch"
    if _splice(canonical_body, stored, mac) != line:
        return "not in canonical form"
    return None


def _v1_problem(obj: dict[str, Any], line: bytes, prev: str, stored: Any) -> str | None:
    if not isinstance(stored, str):
        return "hash is not a string"
    body = dict(obj)
    del body["hash"]
    try:
        if chain_hash(prev, v1_canonical_json(body)) != stored:
            return "hash mismatch"
        if v1_canonical_json(obj) != line:
            return "not in canonical form"
    except ValueError:  # NaN/Infinity parse as JSON in Python but have no canonical form
        return "not in canonical form"
    return None
