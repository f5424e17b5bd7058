"""Keys: the HMAC secret of a keyed log (:class:`AuditKey`) and ed25519 keys for checkpoints.

Why two kinds: the HMAC key proves that whoever wrote a record held the secret,
but only someone with the same secret can check it.  A checkpoint is signed with
an ed25519 private key, and anyone with the public key can check a log against
it (:mod:`.checkpoint`).

An :class:`AuditKey` never leaves the process through the log: records and the
head file carry MACs made with it, never the key, and its ``repr`` shows only a
short key id (an HMAC of a fixed text, so it tells keys apart without revealing them).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import AuditKeyError
from .record import SAFE_INTEGER, canonical_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["AuditKey", "KeyLike", "as_key", "DEFAULT_KEY_ENV", "load_signing_key", "load_public_key",
           "public_key_bytes"]

#: the environment variable ``AuditKey.from_env()`` reads by default
DEFAULT_KEY_ENV = "WORKBENCH_AUDIT_KEY"

_KEYGEN_HINT = "make one with `workbench audit keygen hmac KEYFILE` (or `openssl rand -hex 32 > KEYFILE`)"
_HEX = re.compile(rb"[0-9a-fA-F]+\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


class AuditKey:
    """The secret of a keyed audit log: HMAC-SHA256 key bytes (at least :attr:`MIN_BYTES`).

    Make one from a file (:meth:`from_file`), an environment variable
    (:meth:`from_env`) or bytes; :meth:`generate` makes a new random one.  A key
    file or variable holds the key as is (one trailing newline is dropped), so
    ``openssl rand -hex 32`` output works: the key is then those 64 characters.
    """

    MIN_BYTES = 16

    __slots__ = ("_secret", "_hmac", "source", "id")

    def __init__(self, secret: bytes | bytearray, *, source: str = "bytes") -> None:
        if not isinstance(secret, (bytes, bytearray)):
            raise AuditKeyError(f"an audit key is bytes, not {type(secret).__name__}",
                                hint="use AuditKey.from_file(path) or AuditKey.from_env(name)")
        if len(secret) < self.MIN_BYTES:
            raise AuditKeyError(f"the audit key from {source} is {len(secret)} bytes; at least "
                                f"{self.MIN_BYTES} are needed", hint=_KEYGEN_HINT)
        self._secret = bytes(secret)
        self._hmac = hmac.new(self._secret, digestmod=hashlib.sha256)
        self.source = source
        #: 16 hex digits that name the key without revealing it
        self.id = hmac.new(self._secret, b"workbench-audit key id", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "AuditKey":
        """The key held in the file at ``path`` (its bytes, without one trailing newline)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AuditKeyError(f"cannot read the audit key file {path}: {exc.strerror or exc}",
                                hint=_KEYGEN_HINT) from None
        return cls(_strip_newline(data), source=f"file {path}")

    @classmethod
    def from_env(cls, name: str = DEFAULT_KEY_ENV) -> "AuditKey":
        """The key held in the environment variable ``name`` (its bytes, without one trailing newline)."""
        value = os.environb.get(name.encode()) if os.supports_bytes_environ else None
        if value is None:
            text = os.environ.get(name)
            value = text.encode("utf-8", "surrogateescape") if text is not None else None
        if not value:
            raise AuditKeyError(f"the environment variable {name} holding the audit key is not set",
                                hint=f"export {name}=$(openssl rand -hex 32), and keep it secret")
        return cls(_strip_newline(value), source=f"environment variable {name}")

    @classmethod
    def generate(cls) -> "AuditKey":
        """A new random key: 32 random bytes as 64 hex characters (so it can live in a text file)."""
        return cls(secrets.token_hex(32).encode("ascii"), source="generated")

    def secret_text(self) -> bytes:
        """The key's bytes, to save it (``workbench audit keygen``); never logged."""
        return self._secret

    def record_mac(self, hash: str) -> str:
        """``HMAC-SHA256(key, hash)`` of a record whose chain hash is ``hash`` (64 hex digits)."""
        mac = self._hmac.copy()
        mac.update(hash.encode("utf-8"))  # hex: ASCII; a forged non-hex hash must not raise
        return mac.hexdigest()

    def head_mac(self, seq: int, hash: str) -> str:
        """``HMAC-SHA256(key, JCS({"hash": hash, "seq": seq}))``: the MAC of a head file."""
        mac = self._hmac.copy()
        if _HEX64.match(hash) and type(seq) is int and abs(seq) <= SAFE_INTEGER:
            # JCS of exactly this object, spelled out: after every record, so it pays to skip the encoder
            mac.update(b'{"hash":"%s","seq":%d}' % (hash.encode("ascii"), seq))
        else:
            mac.update(canonical_json({"hash": hash, "seq": seq}))
        return mac.hexdigest()

    def __repr__(self) -> str:
        return f"AuditKey(id={self.id!r}, source={self.source!r})"

    def __reduce__(self) -> Any:
        raise TypeError("an AuditKey is not pickled: it would copy the secret; load it where it is used")


KeyLike = Union[AuditKey, bytes, bytearray]


def as_key(key: KeyLike | None) -> AuditKey | None:
    """``key`` as an :class:`AuditKey` (bytes are taken as the secret); None stays None."""
    if key is None or isinstance(key, AuditKey):
        return key
    return AuditKey(key)


def _strip_newline(data: bytes) -> bytes:
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith(b"\n") else data


# -- ed25519, for checkpoints (cryptography is imported only here, and only when used) ---------------

def _read(source: Any, what: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"cannot read the {what} {source}: {exc.strerror or exc}") from None


def _raw(data: bytes) -> bytes | None:
    """32 raw key bytes, given as such or as 64 hex characters; None when ``data`` is neither."""
    text = _strip_newline(data).strip()
    if len(text) == 64 and _HEX.match(text):
        return bytes.fromhex(text.decode("ascii"))
    return bytes(data) if len(data) == 32 else None


def load_signing_key(source: "Ed25519PrivateKey | bytes | str | os.PathLike[str]") -> "Ed25519PrivateKey":
    """An ed25519 private key: a key object, PEM (PKCS#8) bytes or file, or 32 raw bytes (or 64 hex)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if isinstance(source, Ed25519PrivateKey):
        return source
    data = _read(source, "signing key")
    raw = None if data.lstrip().startswith(b"-----BEGIN") else _raw(data)
    try:
        key = Ed25519PrivateKey.from_private_bytes(raw) if raw is not None else load_pem_private_key(data, None)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"not an ed25519 signing key: {exc}",
                            hint="make one with `workbench audit keygen ed25519 KEYFILE`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"the signing key is {type(key).__name__}, not ed25519",
                            hint="make one with `workbench audit keygen ed25519 KEYFILE`")
    return key


def load_public_key(source: "Ed25519PublicKey | bytes | str | os.PathLike[str]") -> "Ed25519PublicKey":
    """An ed25519 public key: a key object, PEM (SubjectPublicKeyInfo) bytes or file, or 32 raw bytes (or 64 hex)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if isinstance(source, Ed25519PublicKey):
        return source
    data = _read(source, "public key")
    raw = None if data.lstrip().startswith(b"-----BEGIN") else _raw(data)
    try:
        key = Ed25519PublicKey.from_public_bytes(raw) if raw is not None else load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"not an ed25519 public key: {exc}",
                            hint="use the KEYFILE.pub written by `workbench audit keygen ed25519 KEYFILE`") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"the public key is {type(key).__name__}, not ed25519")
    return key


def public_key_bytes(key: "Ed25519PublicKey") -> bytes:
    """The 32 raw bytes of an ed25519 public key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
