"""One audit record: its fields, its canonical JSON form and its chain hash.

Everything that decides what bytes a record becomes lives here, so the writer
(:mod:`.log`) and the checker (:mod:`.verify`) cannot drift apart.

Canonical form (design.md §4): keys sorted, separators ``,`` and ``:`` with no
spaces, ``ensure_ascii=False``, UTF-8, and no ``NaN``/``Infinity`` (they are
not JSON).  A record's line in the file is the canonical JSON of the *whole*
record (hash included), so :func:`~workbench.audit.verify` can also insist that
the bytes on disk are exactly canonical: a byte change that leaves the parsed
value equal (``1e5`` → ``1E5``, ``\\u001f`` → ``\\u001F``) is still caught.

``hash = sha256(prev_hash + canonical JSON of the record without "hash")``,
both as UTF-8, written as 64 lowercase hex digits.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import time
from typing import Any, Mapping

__all__ = [
    "SCHEMA_VERSION",
    "GENESIS_HASH",
    "RECORD_FIELDS",
    "SECRET_WORDS",
    "canonical_json",
    "chain_hash",
    "to_microseconds",
    "scrub_detail",
    "build_record",
    "record_problem",
]

#: schema version written as ``v`` in every record
SCHEMA_VERSION = 1

#: ``prev_hash`` of the very first record of a chain
GENESIS_HASH = "0" * 64

#: every key of a record, in the order frames and exports show them
RECORD_FIELDS: tuple[str, ...] = (
    "v", "seq", "ts", "run_id", "module", "module_sha256", "caller_chain", "category",
    "action", "target", "resolved", "decision", "capability", "reason", "errno", "detail",
    "prev_hash", "hash",
)

#: ``detail`` keys are dropped when any of their words is one of these (see :func:`scrub_detail`)
SECRET_WORDS = frozenset({
    "value", "values", "content", "contents", "data", "secret", "secrets",
    "password", "passwords", "passwd", "token", "tokens", "credential", "credentials",
})

_STRING_FIELDS = ("run_id", "module", "module_sha256", "category", "action", "target",
                  "resolved", "decision", "capability", "reason")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(obj: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of ``obj`` (sorted keys, compact, no NaN)."""
    return _ENCODER.encode(obj).encode("utf-8")


def chain_hash(prev_hash: str, body: bytes) -> str:
    """``sha256(prev_hash + body)`` as hex, where ``body`` is the canonical record without ``hash``."""
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(body)
    return h.hexdigest()


def to_microseconds(ts: float | int) -> int:
    """Seconds since the epoch (``Event.ts``) as integer microseconds.

    Integers keep the log exact and sortable; a float's last digits would change
    between JSON libraries and break the canonical form.
    """
    return int(round(ts * 1_000_000))


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    words = (w.lower() for w in _WORD.findall(key))
    return any(w in SECRET_WORDS for w in words)


def _clean(value: Any, path: str, dropped: list[str]) -> Any:
    """``value`` made JSON-safe and canonical-stable, with secret-named keys removed."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # NaN/Infinity are not JSON; keep the fact as text rather than fail the append
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if _is_secret_key(key):
                dropped.append(f"{path}{key}")
                continue
            out[key] = _clean(v, f"{path}{key}.", dropped)
        return out
    if isinstance(value, (list, tuple)):
        return [_clean(v, path, dropped) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_clean(v, path, dropped) for v in value), key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        # raw bytes are file or network contents: keep only their size
        return f"<{len(value)} bytes>"
    return str(value)


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
    replaced by ``"<N bytes>"``, non-finite floats by their ``repr``, other
    objects by ``str()``.
    """
    if not detail:
        return {}
    dropped: list[str] = []
    out = _clean(detail, "", dropped)
    if dropped:
        out["redacted"] = sorted(dropped)
    return out


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


def build_record(event: Mapping[str, Any], seq: int, prev_hash: str) -> tuple[dict[str, Any], bytes]:
    """The record for ``event`` (an ``Event.to_dict()``) at ``seq`` after ``prev_hash``.

    Returns the record (with ``hash``) and its line: canonical JSON plus ``\\n``.
    """
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
        "detail": scrub_detail(event.get("detail")),
        "prev_hash": prev_hash,
    }
    for key in _STRING_FIELDS:
        v = record[key]
        if v is not None and not isinstance(v, str):
            record[key] = str(v)
    errno = record["errno"]
    if errno is not None and not isinstance(errno, int):
        record["errno"] = int(errno)
    try:
        body = canonical_json(record)
    except UnicodeEncodeError:
        record = _unsurrogate(record)
        body = canonical_json(record)
    record["hash"] = chain_hash(prev_hash, body)
    return record, canonical_json(record) + b"\n"


def record_problem(obj: Any, line: bytes) -> str | None:
    """Why ``obj`` (parsed from ``line``, without its newline) is not a sound record, or None.

    Checks the shape, the schema version, the hash and the canonical form; the
    chain (``seq``, ``prev_hash``) is :mod:`.verify`'s job.
    """
    if not isinstance(obj, dict):
        return "not a JSON object"
    missing = [k for k in RECORD_FIELDS if k not in obj]
    if missing:
        return f"missing field {missing[0]!r}"
    extra = sorted(set(obj) - set(RECORD_FIELDS))
    if extra:
        return f"unexpected field {extra[0]!r}"
    if obj["v"] != SCHEMA_VERSION or isinstance(obj["v"], bool):
        return f"unsupported schema version {obj['v']!r}"
    if not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool) or obj["seq"] < 0:
        return "seq is not a non-negative integer"
    prev, stored = obj["prev_hash"], obj["hash"]
    if not isinstance(prev, str) or not _HEX64.match(prev):
        return "prev_hash is not 64 hex digits"
    if not isinstance(stored, str):
        return "hash is not a string"
    body = dict(obj)
    del body["hash"]
    try:
        if chain_hash(prev, canonical_json(body)) != stored:
            return "hash mismatch"
        if canonical_json(obj) != line:
            return "not in canonical form"
    except ValueError:  # NaN/Infinity parse as JSON in Python but have no canonical form
        return "not in canonical form"
    return None
