"""Signed checkpoints: a log's state, vouched for by an ed25519 signature anyone can check.

A checkpoint names a record of the log (``seq``) and its chain ``hash``.  The
chain hash is ``sha256`` over the previous hash and the record, so it pins
every record up to ``seq``: whoever has the signer's *public* key can check
that a log still begins with exactly those records, without any secret.  That
covers what neither the hash chain nor the HMAC key can: a log cut back to an
earlier state whose head file was saved and put back, a log rewritten by
someone who holds the HMAC key, a log checked by someone who must not hold it.

The file is one JSON object (see docs/audit-record.md)::

    {"format": "workbench-audit-checkpoint", "v": 1, "log": "audit.jsonl",
     "seq": 41, "hash": "<64 hex>", "keyed": true, "ts": 1700000000000000,
     "public_key": "<64 hex: raw ed25519>", "signature": "<128 hex>"}

``signature`` is ed25519 over the RFC 8785 bytes of the object without
``signature``.  ``public_key`` says who signed it, but a check uses the public
key the *checker* trusts, given separately: a forger can sign with a key of
their own.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AuditKeyError
from .keys import load_public_key, load_signing_key, public_key_bytes
from .record import canonical_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["Checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "workbench-audit-checkpoint"
_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"[0-9a-f]{128}\Z")
_FIELDS = ("format", "v", "log", "seq", "hash", "keyed", "ts", "public_key", "signature")


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: "record ``seq`` of log ``log`` had chain hash ``hash``".

    - ``log``: the live file's name when it was signed (for people; not checked)
    - ``seq``, ``hash``: the record it pins, and so every record before it
    - ``keyed``: the log's records carried MACs when it was signed
    - ``ts``: when it was signed (µs since the epoch, UTC)
    - ``public_key``, ``signature``: hex; see the module docstring
    """

    log: str
    seq: int
    hash: str
    keyed: bool
    ts: int
    public_key: str
    signature: str

    @classmethod
    def sign(cls, signing_key: "Ed25519PrivateKey | bytes | str | os.PathLike[str]", *, log: str, seq: int,
             hash: str, keyed: bool) -> "Checkpoint":
        """Sign a checkpoint of record ``seq`` (chain hash ``hash``) of ``log`` (use ``AuditLog.checkpoint``)."""
        key = load_signing_key(signing_key)
        unsigned = cls(log, seq, hash, keyed, time.time_ns() // 1000, public_key_bytes(key.public_key()).hex(), "")
        return cls(**{**asdict(unsigned), "signature": key.sign(unsigned.signed_bytes()).hex()})

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: RFC 8785 of every field but ``signature``."""
        data = self.to_dict()
        del data["signature"]
        return canonical_json(data)

    def check(self, public_key: "Ed25519PublicKey | bytes | str | os.PathLike[str]") -> str | None:
        """Why this checkpoint is not vouched for by ``public_key``, or None when its signature holds."""
        from cryptography.exceptions import InvalidSignature

        trusted = load_public_key(public_key)
        if public_key_bytes(trusted).hex() != self.public_key:
            return ("the checkpoint was signed by another key than the public key given "
                    f"(it names {self.public_key[:16]}...)")
        try:
            trusted.verify(bytes.fromhex(self.signature), self.signed_bytes())
        except InvalidSignature:
            return "the checkpoint's signature is not valid: the checkpoint was altered after it was signed"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "v": _VERSION, **asdict(self)}

    def to_json(self) -> str:
        """The checkpoint file's text: RFC 8785 JSON and a newline."""
        return canonical_json(self.to_dict()).decode("utf-8") + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the checkpoint to ``path`` (replacing it); returns the path."""
        target = Path(path)
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def from_json(cls, text: str | bytes) -> "Checkpoint":
        """Parse a checkpoint; raises :class:`~workbench.errors.AuditKeyError` when it is not one."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise AuditKeyError(f"not a checkpoint: not JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise AuditKeyError("not a checkpoint: no \"format\": \"workbench-audit-checkpoint\"",
                                hint="make one with `workbench audit checkpoint LOG --signing-key KEY -o OUT`")
        if data.get("v") != _VERSION or isinstance(data.get("v"), bool):
            raise AuditKeyError(f"unsupported checkpoint version {data.get('v')!r}")
        missing = [name for name in _FIELDS if name not in data]
        if missing or set(data) - set(_FIELDS):
            raise AuditKeyError(f"malformed checkpoint: fields {sorted(data)}, expected {sorted(_FIELDS)}")
        seq, keyed, ts = data["seq"], data["keyed"], data["ts"]
        if type(seq) is not int or seq < 0 or type(ts) is not int or type(keyed) is not bool:
            raise AuditKeyError("malformed checkpoint: seq and ts must be integers, keyed true or false")
        if not (isinstance(data["hash"], str) and _HEX64.match(data["hash"])
                and isinstance(data["public_key"], str) and _HEX64.match(data["public_key"])
                and isinstance(data["signature"], str) and _HEX128.match(data["signature"])
                and isinstance(data["log"], str)):
            raise AuditKeyError("malformed checkpoint: hash, public_key and signature must be lowercase hex")
        return cls(data["log"], seq, data["hash"], keyed, ts, data["public_key"], data["signature"])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Checkpoint":
        """Read a checkpoint file."""
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise AuditKeyError(f"cannot read the checkpoint {path}: {exc.strerror or exc}") from None
        return cls.from_json(text)
