"""Files in the compile cache's private folder: written atomically, read back only when intact.

The compile cache keeps more than compiled modules: the interpreter's identity record and
the pre-initialised Python snapshot (:mod:`workbench.languages.pycache`).  All of them obey
the same trust rules as :class:`~.cache.CompileCache`:

- the folder is made with mode 0700 and used only if it is this user's and nobody else
  can write to it (someone who could would plant what we load);
- every file is written to a temporary name and renamed into place, so a reader sees
  a whole file or none;
- a *checked* file carries a header with what it is for (its key), its length and its
  sha256: a truncated, swapped or altered file is deleted and rebuilt, never used;
- large files (a compiled module, a memory snapshot) are *identified* instead of hashed on
  every load: a checked record written after them holds their size, modification and change
  times and inode.  A file that no longer matches (truncated, resized, replaced, rewritten:
  a user cannot set a change time back) is deleted with its record and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Sequence

__all__ = ["ensure_private_dir", "write_atomic", "write_checked", "read_checked", "write_identified",
           "read_identified", "identity"]

_MAGIC = b"workbench-artifact-1\n"
#: the header is one JSON line; anything longer is not ours
_MAX_HEADER = 4096


def ensure_private_dir(directory: Path) -> bool:
    """Make ``directory`` (0700) if needed; True only if it is ours and no one else can write to it."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.stat()
    except OSError:
        return False
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or info.st_uid != os.getuid():
        return False  # someone else could plant files here: do not use it
    return True


def write_atomic(directory: Path, path: Path, data: bytes | bytearray) -> None:
    """Write ``data`` to ``path`` (inside ``directory``) through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_checked(directory: Path, path: Path, key: str, payload: bytes) -> bool:
    """Store ``payload`` for ``key`` with its length and sha256; False if the folder is not private
    or the disk refuses (a cache that cannot be written only costs a rebuild next time)."""
    if not ensure_private_dir(directory):
        return False
    header = json.dumps({"key": key, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()})
    try:
        write_atomic(directory, path, _MAGIC + header.encode() + b"\n" + payload)
    except OSError:
        return False
    return True


def read_checked(directory: Path, path: Path, key: str) -> bytes | None:
    """The payload stored for ``key``, or None: missing, not private, or damaged (then deleted)."""
    if not path.is_file() or not ensure_private_dir(directory):
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    payload = _verified(data, key)
    if payload is None:
        path.unlink(missing_ok=True)  # damaged or stale: rebuilt by the caller, never used
    return payload


def _verified(data: bytes, key: str) -> bytes | None:
    if not data.startswith(_MAGIC):
        return None
    end = data.find(b"\n", len(_MAGIC), len(_MAGIC) + _MAX_HEADER)
    if end < 0:
        return None
    try:
        header = json.loads(data[len(_MAGIC):end])
    except ValueError:
        return None
    payload = data[end + 1:]
    if not isinstance(header, dict) or header.get("key") != key or header.get("size") != len(payload):
        return None
    if header.get("sha256") != hashlib.sha256(payload).hexdigest():
        return None
    return payload


def identity(path: Path) -> list[int]:
    """What says a file is still the one written: size, modification and change times, inode."""
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def write_identified(directory: Path, record: Path, key: str, files: dict[Path, bytes | bytearray],
                     extra: dict[str, Any] | None = None) -> bool:
    """Write ``files`` atomically, then the checked ``record`` of their identities (and ``extra``).

    The record goes first out and last in: until it is written again, the files are not used."""
    if not ensure_private_dir(directory):
        return False
    try:
        record.unlink(missing_ok=True)
        for path, data in files.items():
            write_atomic(directory, path, data)
        identities = {path.name: identity(path) for path in files}
    except OSError:
        return False
    return write_checked(directory, record, key, json.dumps({"files": identities, "extra": extra or {}}).encode())


def read_identified(directory: Path, record: Path, key: str, files: Sequence[Path]) -> dict[str, Any] | None:
    """``extra`` of ``record`` if every file is still the one it names; else all are deleted and None."""
    payload = read_checked(directory, record, key)
    try:
        found = json.loads(payload) if payload is not None else None
        expected = found["files"] if isinstance(found, dict) else None
        if isinstance(expected, dict) and expected == {path.name: identity(path) for path in files}:
            extra = found.get("extra")  # type: ignore[union-attr]
            return extra if isinstance(extra, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for path in (*files, record):
        path.unlink(missing_ok=True)  # stale or damaged: rebuilt by the caller, never used
    return None
