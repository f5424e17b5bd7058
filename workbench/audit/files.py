"""Where a log's records live on disk: the live file, its rotated files, its head file.

Naming (``max_bytes`` rotation), for a log opened as ``audit.jsonl``:

* ``audit.jsonl`` is always the live file, the only one ever written to;
* when it is full it is renamed, once and for good, to ``audit.N.jsonl`` where
  ``N`` is one more than the highest number already there: ``audit.1.jsonl`` is
  the *oldest* file, so chain order is ``audit.1.jsonl, audit.2.jsonl, ...,
  audit.jsonl``.  Why not logrotate's "1 is newest": that renames every file on
  every rotation (not atomic, and a file named in a verify report would change
  name afterwards); here a rotated file keeps its name forever and a rotation is
  one ``rename()``.
* ``audit.jsonl.head`` holds the chain's last ``seq`` and ``hash`` (one small
  JSON line, rewritten in place after every append).  It lets ``verify()`` see
  that a file was cut exactly at a line boundary ("file ends early"), which a
  hash chain alone cannot see.  In an unkeyed log it is a tripwire, not a seal:
  whoever can write the log can write it too.  In a keyed log it also carries
  ``mac = HMAC-SHA256(key, JCS({"hash": hash, "seq": seq}))``, is written before
  the first record (``seq`` -1) and so always exists: a keyed log whose head is
  missing or does not match the key has been tampered with.

Also here: reading the tail of a file backwards, so opening a large log costs
O(last record), not O(file).
"""

from __future__ import annotations

import errno as errnos
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AuditError

__all__ = ["rotated_path", "chain_files", "rotated_files", "head_path", "Head", "read_head",
           "encode_head", "Tail", "TornLine", "scan_tail", "torn_claim", "unwritable"]

HEAD_SIZE = 256  # fixed size, so a rewrite in place never leaves old bytes behind (v1 heads were 128)


def _split(path: Path) -> tuple[str, str]:
    return (path.stem, path.suffix) if path.suffix else (path.name, "")


def rotated_path(path: Path, n: int) -> Path:
    """The ``n``-th rotated file of the log whose live file is ``path`` (``audit.jsonl`` → ``audit.3.jsonl``)."""
    stem, suffix = _split(path)
    return path.with_name(f"{stem}.{n}{suffix}")


def rotated_files(path: Path) -> list[tuple[int, Path]]:
    """``(number, path)`` of every rotated file of ``path``, oldest first."""
    stem, suffix = _split(path)
    pattern = re.compile(rf"{re.escape(stem)}\.([1-9]\d*){re.escape(suffix)}\Z")
    directory = path.parent
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), directory / name) for name in names if (m := pattern.match(name))]
    return sorted(found)


def chain_files(path: Path) -> list[Path]:
    """All files of the log, in chain order: rotated files oldest first, then the live file (if it exists)."""
    files = [p for _, p in rotated_files(path)]
    if path.exists():
        files.append(path)
    return files


def head_path(path: Path) -> Path:
    """The head file beside live file ``path`` (``audit.jsonl`` → ``audit.jsonl.head``)."""
    return path.with_name(path.name + ".head")


@dataclass(frozen=True)
class Head:
    """The chain's last record as the writer last saw it (``seq`` -1: none yet); ``mac`` in keyed logs."""

    seq: int
    hash: str
    mac: str | None = None


def encode_head(seq: int, hash: str, mac: str | None = None) -> bytes:
    """The fixed-size bytes of a head file."""
    text = json.dumps({"hash": hash, "mac": mac, "seq": seq, "v": 2}, sort_keys=True, separators=(",", ":"))
    return text.encode("ascii").ljust(HEAD_SIZE - 1) + b"\n"


def read_head(path: Path) -> Head | None:
    """The head stored at ``path``; None when there is none.  Raises ValueError when unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if not raw:
        return None
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deep to be a head record") from None
    if not (isinstance(obj, dict) and type(obj.get("seq")) is int and obj["seq"] >= -1
            and isinstance(obj.get("hash"), str)):
        raise ValueError("not a head record")
    mac = obj.get("mac")
    if mac is not None and not isinstance(mac, str):
        raise ValueError("its mac is not text")
    return Head(obj["seq"], obj["hash"], mac)


@dataclass(frozen=True)
class TornLine:
    """Bytes at the end of a file that are not a record: a write cut short by a crash.

    ``offset`` is the byte offset in its file, ``length`` excludes the newline.
    """

    offset: int
    length: int
    sha256: str
    terminated: bool

    def claim(self) -> dict[str, Any]:
        """How a ``recovered`` record names this line (and how verify matches it)."""
        return torn_claim(self.offset, self.length, self.sha256)


def torn_claim(offset: int, length: int, sha256: str) -> dict[str, Any]:
    """The one format of a torn line's claim: written by the log, matched by verify."""
    return {"offset": offset, "bytes": length, "sha256": sha256}


@dataclass(frozen=True)
class Tail:
    """The end of a file: its last record (parsed) and any torn lines after it."""

    last: dict[str, Any] | None
    torn: tuple[TornLine, ...]
    ends_with_newline: bool


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep for the parser
        return _INVALID


_INVALID = object()


def scan_tail(fd: int, size: int) -> Tail:
    """Read the file open as ``fd`` (``size`` bytes) backwards to its last JSON record.

    Lines after that record that are not JSON at all are *torn*: a prefix of a
    record written by a process that died mid-``write()``.  A line that is JSON
    but not a sound record is not torn (a crash cannot produce it): it is left
    for verify to report, and the scan continues past it to find where the chain
    can resume.
    """
    if size == 0:
        return Tail(None, (), True)
    ends_with_newline = os.pread(fd, 1, size - 1) == b"\n"
    window = 64 * 1024
    while True:
        start = max(0, size - window)
        buf = os.pread(fd, size - start, start)
        lines = buf.split(b"\n")
        # offsets of each piece; the first piece is partial unless start == 0
        offsets = []
        pos = start
        for piece in lines:
            offsets.append(pos)
            pos += len(piece) + 1
        torn: list[TornLine] = []
        claiming = True
        last_index = len(lines) - 1
        first_complete = 0 if start == 0 else 1
        for i in range(last_index, first_complete - 1, -1):
            piece = lines[i]
            terminated = i != last_index
            if i == last_index and not piece:
                continue  # nothing after the final newline
            obj = _parse(piece)
            if obj is _INVALID:
                if claiming:
                    torn.append(TornLine(offsets[i], len(piece), hashlib.sha256(piece).hexdigest(), terminated))
                continue
            claiming = False
            if isinstance(obj, dict) and isinstance(obj.get("seq"), int) and isinstance(obj.get("hash"), str):
                return Tail(obj, tuple(reversed(torn)), ends_with_newline)
        if start == 0:
            return Tail(None, tuple(reversed(torn)), ends_with_newline)
        window *= 4

_UNWRITABLE_HINTS = {
    errnos.ENOTDIR: "a part of the folder path is a file: choose another audit path",
    errnos.EISDIR: "the audit path is a folder: name a file in it, e.g. audit.jsonl",
    errnos.EACCES: "the file or its folder is not writable for this user: choose another path or fix its permissions",
    errnos.EPERM: "the file or its folder is not writable for this user: choose another path or fix its permissions",
    errnos.EROFS: "the file system is read-only: choose an audit path on a writable one",
    errnos.ENOSPC: "the disk is full: free space or choose another audit path",
}


def unwritable(path: Path, exc: OSError) -> AuditError:
    """The one clear error for an audit log that cannot be opened for writing."""
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    return AuditError(f"cannot write the audit log {path}: {exc.strerror or exc}{where}",
                      hint=_UNWRITABLE_HINTS.get(exc.errno or 0, "check the audit path and its permissions"))
