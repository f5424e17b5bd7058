"""What the Python guest keeps across processes, in the compile cache's private folder.

A new process used to redo ~0.25 s of work before its first Python run: read the 26 MB
interpreter, hash it, patch one export into it in pure Python (``add_global_export``),
hash the result, and boot an interpreter to snapshot it.  Two records make that once per
machine instead (same folder, same trust rules as the compile cache: :mod:`workbench.runtime.private_files`):

- the **identity record** of the interpreter file: its size, modification and change times
  and inode, with what was worked out from its bytes (their sha256, checked against the pin;
  the patched module's sha256 and size; the stack-pointer global and ``_start``'s flag).
  While the file's identity matches, nothing is read; the bytes are read, hashed and checked
  against the pin again only when the compile cache misses (:meth:`Interpreter.module_bytes`).
  What runs is the compiled artifact named by the patched module's hash, never the file;
- the **snapshot** of the pre-initialised interpreter (:mod:`.pysnapshot`), keyed by the
  patched module's sha256, the wasmtime version, the boot program and the preopen layout.
  Only snapshots taken with an *empty* environment are written: environment values can be
  secrets, and they are baked into the snapshot's memory, so those stay in this process.

Every record is a checked file (key, length, sha256 in its header): a damaged, truncated or
stale one is deleted and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["IDENTITY_FORMAT", "SNAPSHOT_FORMAT", "cache_dir", "file_identity", "load_identity", "store_identity",
           "snapshot_key", "load_snapshot", "store_snapshot", "derived_text"]

#: bump when what the identity record holds, or how the module is patched, changes
IDENTITY_FORMAT = "python-identity-1"
#: bump when the snapshot's layout in memory or on disk changes
SNAPSHOT_FORMAT = "python-snapshot-2"


def cache_dir() -> Path:
    """The compile cache's folder (``$WORKBENCH_CACHE_DIR``, ...): the records live beside the artifacts."""
    from ..runtime.cache import default_cache_dir  # runtime imports languages: import late

    return default_cache_dir()


def file_identity(path: Path) -> list[int]:
    """Size, modification and change times, inode: cheap, and the change time cannot be set back."""
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def _identity_key(path: Path, expected_sha256: str | None) -> str:
    return f"{IDENTITY_FORMAT}|{os.path.abspath(path)}|{expected_sha256 or '-'}"


def _identity_path(directory: Path, key: str) -> Path:
    return directory / f"python-{hashlib.sha256(key.encode()).hexdigest()[:24]}.identity"


def load_identity(path: Path, expected_sha256: str | None) -> dict[str, Any] | None:
    """What was worked out from the file's bytes, if the file is still the one it was worked out from."""
    from ..runtime.private_files import read_checked

    directory, key = cache_dir(), _identity_key(path, expected_sha256)
    try:
        current = file_identity(path)
    except OSError:
        return None
    payload = read_checked(directory, _identity_path(directory, key), key)
    if payload is None:
        return None
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("file") != current:
        return None  # the file changed (or was replaced): read and hash it again
    if expected_sha256 is not None and record.get("file_sha256") != expected_sha256:
        return None
    return record


def store_identity(path: Path, expected_sha256: str | None, identity: list[int], record: dict[str, Any]) -> None:
    """Keep ``record`` for the file whose identity (taken *before* its bytes were read) was ``identity``."""
    from ..runtime.private_files import write_checked

    directory, key = cache_dir(), _identity_key(path, expected_sha256)
    write_checked(directory, _identity_path(directory, key), key, json.dumps({**record, "file": identity}).encode())


def snapshot_key(module_sha256: str, boot_argv: Sequence[str], start_flag: int, preopens: Sequence[str]) -> str:
    """Everything the snapshot's memory depends on, but the environment (never written)."""
    from ..runtime.engine import WASMTIME_VERSION

    boot = hashlib.sha256("\0".join(boot_argv).encode()).hexdigest()
    return (f"{SNAPSHOT_FORMAT}|{module_sha256}|wasmtime={WASMTIME_VERSION}|boot={boot}|flag={start_flag}|"
            f"preopens={json.dumps(list(preopens))}")


def _snapshot_paths(directory: Path, key: str) -> tuple[Path, Path]:
    name = f"python-{hashlib.sha256(key.encode()).hexdigest()[:24]}"
    return directory / f"{name}.snapshot", directory / f"{name}.snapshot-meta"


def load_snapshot(key: str) -> tuple[bytes, int] | None:
    """``(memory, stack pointer)`` stored for ``key``, or None (missing or damaged: then rebuilt).

    The 10 MB memory is identified by its record (size, times, inode), not hashed per process."""
    from ..runtime.private_files import read_identified

    directory = cache_dir()
    path, record = _snapshot_paths(directory, key)
    if not path.is_file():
        return None
    extra = read_identified(directory, record, key, (path,))
    if extra is None or not isinstance(extra.get("stack_pointer"), int):
        return None
    try:
        memory = path.read_bytes()
    except OSError:
        return None
    if len(memory) != extra.get("size") or len(memory) % 65536:
        return None
    return memory, extra["stack_pointer"]


def store_snapshot(key: str, memory: bytes, stack_pointer: int) -> None:
    from ..runtime.private_files import write_identified

    directory = cache_dir()
    path, record = _snapshot_paths(directory, key)
    write_identified(directory, record, key, {path: memory}, {"stack_pointer": stack_pointer, "size": len(memory)})


def derived_text(purpose: str, text: str, derive: Callable[[str], str]) -> str:
    """``derive(text)``, kept in the cache's folder under ``purpose`` and the text's sha256."""
    from ..runtime.private_files import read_checked, write_checked

    directory = cache_dir()
    key = f"{purpose}|{hashlib.sha256(text.encode()).hexdigest()}"
    path = directory / f"text-{hashlib.sha256(key.encode()).hexdigest()[:24]}.txt"
    stored = read_checked(directory, path, key)
    if stored is not None:
        try:
            return stored.decode("utf-8")
        except UnicodeDecodeError:
            path.unlink(missing_ok=True)
    derived = derive(text)
    write_checked(directory, path, key, derived.encode("utf-8"))
    return derived
