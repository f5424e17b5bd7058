"""The audit log writer and reader: :class:`AuditLog`.

Why it is built this way:

* **One ``write()`` per record** on a file opened ``O_APPEND``: a record is
  committed when its terminating newline is in the file; no user-space buffer
  can hold half a record back, and concurrent writers never interleave bytes.
* **A lock for threads and ``flock`` for processes.**  Under the lock the writer
  checks that its file is still the live one (another process may have rotated
  it) and that the file has the size it left it at; if not, it re-reads the
  tail, so several processes (a batch of runs) can share one log and the chain
  stays a single line of records.
* **Resume from the file, not from memory**: on first use ``seq`` and
  ``prev_hash`` come from the last record on disk (or the last rotated file
  when the live file is empty), read backwards, so opening is O(last record).
* **A record is committed when its newline is written.**  An unterminated last
  line is reported by ``verify()`` as torn.  When the writer reopens the log:
  if those bytes are a whole record (only the newline was lost) it writes the
  newline and goes on from it; otherwise:
* **Torn tails are kept and named, never cut** (the recovery decision):
  when the writer finds bytes after the last record that are not JSON (a writer
  was killed mid-``write()``), it leaves them where they are, ends them with a
  newline, and appends a ``lifecycle``/``recovered`` record (``decision``
  ``audit``, ``module`` ``workbench.audit``, ``run_id`` ``""``) whose
  ``detail.torn`` lists each torn line's byte offset, length and sha256.  The
  chain continues from the last good record.  So the writer never truncates or
  rewrites a byte of the log, the torn bytes stay as evidence, and the excuse is itself
  hash-chained: ``verify()`` accepts torn lines only when such a record follows
  them and names exactly those bytes, and lists them in ``notes``.  Until the
  log is reopened for writing, ``verify()`` reports the torn last line as a
  failure.
* **Rotation** (``max_bytes``): see :mod:`.files` for the naming.  The chain runs
  on across files; a record never straddles two files.
* **Gaps stay visible**: if the head file says more records were written than
  the files hold (the end of the log was cut), the next record takes the next
  ``seq`` after the head's, so ``verify()`` keeps reporting the gap instead of
  the writer papering over it.
* **Keyed logs** (``key=``): every record gets a MAC, the head file too, and the
  head is written before the first record.  A writer never continues a log in
  another key mode, with another key, or whose keyed head is missing or forged
  (:class:`~workbench.errors.AuditError`): it would write records that can never
  verify, or cover up a cut end.
* **Fail closed**: :meth:`AuditLog.open` opens (and creates) the files for
  writing at once, so ``Sandbox(audit=log)`` refuses a log it cannot write
  before anything runs; a failed ``append`` raises, and a run stops on it
  (docs/decisions.md, "The audit log fails closed").
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..errors import AuditError, AuditKeyError
from ..events import Event, Sample
from .files import (
    Head,
    Tail,
    encode_head,
    head_path,
    read_head,
    rotated_files,
    rotated_path,
    scan_tail,
    unwritable,
)
from .keys import KeyLike
from .reading import LogReader
from .record import GENESIS_HASH, build_record
from .verify import RECOVERY_MODULE

if TYPE_CHECKING:
    import pandas as pd

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads are still serialised, processes are not
    fcntl = None  # type: ignore[assignment]

__all__ = ["AuditLog"]


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``: one ``write()`` unless the kernel takes less (tests replace this)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@contextmanager
def _flocked(fd: int) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class AuditLog(LogReader):
    """A hash-chained JSON Lines audit log (design.md §4).

    - ``path``: the live file (``audit.jsonl``); rotated files and the head file
      sit beside it (:mod:`workbench.audit.files`)
    - ``max_bytes``: rotate before a record would make the live file larger than
      this; None never rotates.  A record larger than ``max_bytes`` gets a file
      of its own.
    - ``fsync``: ``os.fsync`` after every record (durable across power loss,
      much slower); without it a record is safe from a process crash as soon as
      ``append`` returns, but not from a kernel crash
    - ``key``: an :class:`~workbench.audit.keys.AuditKey` (or its bytes) makes a
      keyed log: records and head carry HMAC-SHA256 MACs, and ``verify()`` checks
      them.  The key is never written anywhere.

    Nothing is opened or created until :meth:`open` or the first :meth:`append`,
    so reading an existing log (``records``, ``verify``, ``frame``) never changes it.

    An ``AuditLog`` is callable, so it can subscribe to an ``EventBus``:
    events are appended, ``Sample`` readings are ignored.
    """

    #: an audit log keeps the record: as an ``EventBus`` subscriber, its failure stops the run
    critical = True

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int | None = None,
                 fsync: bool = False, key: KeyLike | None = None) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        super().__init__(path, key=key)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._head_fd: int | None = None
        self._size = -1  # live file size after our last write; -1: unknown, resync first
        self._next_seq = 0
        self._prev_hash = GENESIS_HASH

    def __repr__(self) -> str:
        keyed = "" if self.key is None else f", key={self.key!r}"
        return f"AuditLog({str(self.path)!r}, max_bytes={self.max_bytes!r}, fsync={self.fsync!r}{keyed})"

    # -- writing ---------------------------------------------------------------------------------

    def open(self) -> "AuditLog":
        """Open (creating them if needed) the log's files for writing now; returns the log.

        Why: a log that cannot be written must stop a run before it starts, not
        fail silently in its middle.  Raises :class:`~workbench.errors.AuditError`
        naming the cause (a folder that cannot be made, a read-only file, a keyed
        log without its key, ...).  ``Sandbox(audit=log)`` calls it.
        """
        with self._lock:
            try:
                while True:
                    fd = self._live_fd()
                    with _flocked(fd):
                        if self._still_live(fd):
                            size = os.fstat(fd).st_size
                            if size != self._size:
                                self._resync(fd, size)
                            self._head()
                            break
                    self._close_live()
            except OSError as exc:
                raise unwritable(self.path, exc) from exc
        return self

    def append(self, event: Event | Mapping[str, Any]) -> dict[str, Any]:
        """Append ``event`` (an :class:`Event`, or a mapping shaped like ``Event.to_dict()``).

        Returns the record as written (with ``v``, ``seq``, ``ts`` in µs,
        ``prev_hash``, ``hash`` and ``mac``).  Secret-named ``detail`` keys are dropped
        (:func:`~workbench.audit.record.scrub_detail`).  Raises ``OSError`` when the
        write fails, :class:`~workbench.errors.AuditError` when the log on disk cannot
        be continued (see :meth:`open`).
        """
        data = event.to_dict() if isinstance(event, Event) else dict(event)
        with self._lock:
            while True:
                fd = self._live_fd()
                reopen = False
                with _flocked(fd):
                    if not self._still_live(fd):
                        reopen = True
                    else:
                        size = os.fstat(fd).st_size
                        if size != self._size:
                            self._resync(fd, size)
                        record, line = build_record(data, self._next_seq, self._prev_hash, self.key)
                        if self.max_bytes and self._size > 0 and self._size + len(line) > self.max_bytes:
                            self._rotate()
                            reopen = True
                        else:
                            self._commit(fd, record, line)
                            return record
                if reopen:
                    self._close_live()

    def __call__(self, item: Event | Sample) -> None:
        """EventBus subscriber: append events, ignore samples (usage readings are not audit facts)."""
        if isinstance(item, Sample):
            return
        if not isinstance(item, Event):
            raise TypeError(f"AuditLog subscribes to Event and Sample, not {type(item).__name__}")
        self.append(item)

    def _commit(self, fd: int, record: dict[str, Any], line: bytes) -> None:
        _write_all(fd, line)
        if self.fsync:
            os.fsync(fd)
        self._size += len(line)
        self._next_seq = record["seq"] + 1
        self._prev_hash = record["hash"]
        self._write_head()

    def _live_fd(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = -1
        return self._fd

    def _still_live(self, fd: int) -> bool:
        """Is ``fd`` still the file at ``path`` (and not a file another process rotated away)?"""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def _close_live(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._size = -1

    def _resync(self, fd: int, size: int) -> None:
        """Take ``seq``/``prev_hash`` from what is on disk; recover a torn tail."""
        tail = scan_tail(fd, size)
        last = tail.last if tail.last is not None else self._last_rotated_record()
        self._next_seq = last["seq"] + 1 if last else 0
        self._prev_hash = last["hash"] if last else GENESIS_HASH
        self._size = -1  # until the checks below pass: a refused log is checked again on every append
        if self.key is not None:
            head = self._keyed_head(last)
        else:
            head = self._read_head_quietly()
            if last is not None and last.get("mac") is not None or head is not None and head.mac is not None:
                raise AuditKeyError(f"the audit log {self.path} is keyed: it can only be continued with its key",
                                    hint="pass key=AuditKey.from_file(...) (CLI: --audit-key-file or "
                                         "--audit-key-env), or write to a new file")
        if head is not None and head.seq >= self._next_seq:
            self._next_seq = head.seq + 1  # records were cut off the end: keep the gap visible
        self._size = size
        if tail.torn:
            self._recover(fd, tail)
        elif not tail.ends_with_newline:
            # the last record is whole and only its newline was lost: commit it
            _write_all(fd, b"\n")
            self._size += 1

    def _keyed_head(self, last: dict[str, Any] | None) -> Head | None:
        """Check that a keyed writer may continue this log; returns its head.

        Refuses (AuditError) an unkeyed log, another key, or a keyed log whose head
        file is missing or forged: continuing would write records that never
        verify, or hide that its end was cut.  A new log gets its head now, before
        its first record, so a keyed log is never without one.
        """
        key = self.key
        assert key is not None
        try:
            head = read_head(head_path(self.path))
        except ValueError:
            head = Head(-2, "", None)  # unreadable: treated as forged below
        if last is not None and last.get("mac") is None:
            raise AuditError(f"the audit log {self.path} is not keyed: a keyed log is keyed from its first record",
                             hint="write the keyed log to a new file, or open this one without key=")
        if last is not None and key.record_mac(last["hash"]) != last["mac"]:
            raise AuditKeyError(f"the key {key.id} does not match the audit log {self.path}: wrong key, or its "
                                f"last record was forged", hint="check the key; run `workbench audit verify` on the log")
        if head is None and last is None:
            self._write_head()  # a new keyed log: its head exists before its first record
            return None
        if head is None or head.mac is None or head.mac != key.head_mac(head.seq, head.hash):
            what = "missing" if head is None else "not valid for this key"
            raise AuditError(f"the head file of the keyed audit log {self.path} is {what}: records may have "
                             f"been cut from its end", hint="run `workbench audit verify` with the key, keep the "
                                                            "log as evidence and write to a new file")
        return head

    def _last_rotated_record(self) -> dict[str, Any] | None:
        rotated = rotated_files(self.path)
        if not rotated:
            return None
        newest = rotated[-1][1]
        rfd = os.open(newest, os.O_RDONLY)
        try:
            return scan_tail(rfd, os.fstat(rfd).st_size).last
        finally:
            os.close(rfd)

    def _recover(self, fd: int, tail: Tail) -> None:
        torn = tail.torn
        total = sum(t.length for t in torn)
        event = {
            "ts": time.time(),
            "run_id": "",
            "module": RECOVERY_MODULE,
            "category": "lifecycle",
            "action": "recovered",
            "decision": "audit",
            "target": self.path.name,
            "reason": (f"{len(torn)} torn line(s), {total} bytes, left by a crash while writing: "
                       f"kept in place, outside the chain"),
            "detail": {"torn": [t.claim() for t in torn]},
        }
        record, line = build_record(event, self._next_seq, self._prev_hash, self.key)
        prefix = b"" if tail.ends_with_newline else b"\n"
        self._commit(fd, record, prefix + line)

    def _rotate(self) -> None:
        number = max((n for n, _ in rotated_files(self.path)), default=0) + 1
        os.rename(self.path, rotated_path(self.path, number))
        if self.fsync:
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _head(self) -> int:
        if self._head_fd is None:
            self._head_fd = os.open(head_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        return self._head_fd

    def _write_head(self) -> None:
        seq, hash = self._next_seq - 1, self._prev_hash
        mac = self.key.head_mac(seq, hash) if self.key is not None else None
        os.pwrite(self._head(), encode_head(seq, hash, mac), 0)

    def _read_head_quietly(self) -> Head | None:
        try:
            return read_head(head_path(self.path))
        except ValueError:  # a garbled head only loses the tripwire; verify() reports it
            return None

    def close(self) -> None:
        """Close the files (the log reopens itself on the next append)."""
        with self._lock:
            self._close_live()
            if self._head_fd is not None:
                os.close(self._head_fd)
                self._head_fd = None

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            for fd in (self._fd, self._head_fd):
                if fd is not None:
                    os.close(fd)
        except (AttributeError, OSError):
            pass

    @classmethod
    def open_many(cls, folder: str | os.PathLike[str], *, key: KeyLike | None = None) -> "pd.DataFrame":
        """Verify every segment of a batch's audit folder and load them as one frame, with a
        ``worker`` column; raises :class:`~workbench.errors.AuditError` when any segment or
        manifest does not verify.  See :mod:`workbench.audit.segments` (``AuditTrail`` for the
        per-segment results and a lazy ``dask.dataframe`` view)."""
        from .segments import open_many

        return open_many(folder, key=key)
