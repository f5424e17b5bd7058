"""Checking a log's hash chain: every record sound, in order, none missing.

What is checked, file by file in chain order (oldest rotated file first):

* each line is canonical JSON of a complete record whose ``hash`` is
  ``sha256(prev_hash + record without hash)`` (a changed byte anywhere, even one
  that leaves the parsed value equal, fails here);
* ``seq`` counts up by one from 0 and ``prev_hash`` is the previous record's
  ``hash`` (the first one's is :data:`~workbench.audit.record.GENESIS_HASH`), so
  a removed, inserted, swapped or replayed record fails, and so does a missing
  rotated file;
* the last line ends with a newline: a process killed in the middle of a write
  leaves a *torn* line, which is reported, never skipped or accepted;
* torn lines are only excused by the ``lifecycle``/``recovered`` record the
  writer puts right after them when it reopens the log: that record names each
  torn line by byte offset, length and sha256, so the excuse is itself in the
  chain and cannot be moved to other bytes;
* the head file (see :mod:`.files`) names a ``seq`` the log must reach: a log cut
  exactly at a line boundary "ends early";
* the schema version never goes back (v1 records, then v2), and the key mode
  never changes: every record has a ``mac``, or none has.

With ``key`` (a keyed log, see :mod:`.keys`), also: every record's ``mac`` is
``HMAC-SHA256(key, hash)``; the head file exists, carries a valid MAC, and is at
most one record behind the log (a crash between a record and its head).  So
records appended with recomputed hashes, a record edited and the chain and head
re-hashed, and the last records cut with the head deleted are all caught;
cutting the log back to a state whose head file was saved earlier is not (a
signed checkpoint catches that).

With a signed ``checkpoint`` (see :mod:`.checkpoint`), checked against the public
key the caller trusts: the log must reach the checkpoint's ``seq`` and that
record's hash must be the one signed, which pins every record before it, with no
secret needed.

The first failure found is reported with its file, line and seq; checking stops
there (everything after a break is suspect anyway).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Sequence

from .files import Head, torn_claim
from .record import GENESIS_HASH, record_problem
from .verify_result import RecordRef, VerifyResult

if TYPE_CHECKING:
    from .checkpoint import Checkpoint
    from .keys import AuditKey

__all__ = ["RecordRef", "VerifyResult", "verify_files", "RECOVERY_MODULE"]

#: ``module`` of the records the log writes about itself (``recovered``)
RECOVERY_MODULE = "workbench.audit"


class _Pending(NamedTuple):
    line: int
    offset: int
    length: int
    sha256: str

    def claim(self) -> dict[str, Any]:
        return torn_claim(self.offset, self.length, self.sha256)


class _Failed(Exception):
    def __init__(self, ref: RecordRef | None, reason: str) -> None:
        self.ref, self.reason = ref, reason


def _lines(path: Path) -> Iterator[tuple[int, int, bytes, bool]]:
    """``(line_no, offset, bytes without newline, terminated)`` for every line of ``path``."""
    offset = 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            terminated = raw.endswith(b"\n")
            yield line_no, offset, raw[:-1] if terminated else raw, terminated
            offset += len(raw)


def _parse(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body)
    except (ValueError, RecursionError):  # nested too deep to read: no record, like any other non-JSON line
        return False, None


def _is_recovery(obj: dict[str, Any]) -> bool:
    return (obj.get("category") == "lifecycle" and obj.get("action") == "recovered"
            and obj.get("module") == RECOVERY_MODULE)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Checker:
    def __init__(self, files: Sequence[Path], head: Head | None, missing: Sequence[Path],
                 key: "AuditKey | None" = None, checkpoint: "Checkpoint | None" = None) -> None:
        self.files = list(files)
        self.head = head
        self.missing = list(missing)
        self.key = key
        self.checkpoint = checkpoint
        self.expected = 0
        self.prev = GENESIS_HASH
        self.count = 0
        self.last: RecordRef | None = None
        self.notes: list[str] = []
        self.version = 0  # highest schema version so far
        self.keyed: bool | None = None  # do the records carry MACs (None: no record yet)
        self.head_error: str | None = None

    def run(self) -> None:
        for index, path in enumerate(self.files):
            self._file(index, path)
        self._check_head()

    def _file(self, index: int, path: Path) -> None:
        pending: list[_Pending] = []
        is_last_file = index == len(self.files) - 1
        for line_no, offset, body, terminated in _lines(path):
            if not terminated:
                if pending:
                    raise self._unrecovered(path, pending[0])
                where = "" if is_last_file else " of a rotated file"
                raise _Failed(RecordRef(path, line_no, None),
                              f"torn last line{where}: {len(body)} bytes without newline at line {line_no} "
                              f"(crash while writing)")
            parsed, obj = _parse(body)
            if not parsed:
                pending.append(_Pending(line_no, offset, len(body), hashlib.sha256(body).hexdigest()))
                continue
            problem = record_problem(obj, body)
            seq = obj.get("seq") if isinstance(obj, dict) and isinstance(obj.get("seq"), int) else None
            ref = RecordRef(path, line_no, seq)
            claims = self._claims(obj) if problem is None else None
            if pending:
                if claims != [p.claim() for p in pending]:
                    raise self._unrecovered(path, pending[0])
                self.notes.append(
                    f"{path.name} line {pending[0].line}: {_plural(len(pending), 'torn line')} "
                    f"({sum(p.length for p in pending)} bytes) left by a crash, recovered by seq {seq}")
                pending = []
            elif claims:
                raise _Failed(ref, f"recovered record at line {line_no} (seq {seq}) names torn lines "
                                   f"that are not there: record altered or moved")
            if problem is not None:
                seq_text = f" (seq {seq})" if seq is not None else ""
                raise _Failed(ref, f"{problem} at line {line_no}{seq_text}: record altered")
            assert seq is not None
            self._chain(index, path, line_no, obj, ref)
        if pending:
            raise self._unrecovered(path, pending[0])

    @staticmethod
    def _claims(obj: dict[str, Any]) -> list[Any] | None:
        if not _is_recovery(obj):
            return None
        detail = obj.get("detail")
        torn = detail.get("torn") if isinstance(detail, dict) else None
        return torn if isinstance(torn, list) else None

    @staticmethod
    def _unrecovered(path: Path, p: _Pending) -> _Failed:
        return _Failed(RecordRef(path, p.line, None),
                       f"line {p.line} is not valid JSON ({p.length} bytes): record altered "
                       f"(or torn by a crash and never recovered)")

    def _chain(self, index: int, path: Path, line_no: int, obj: dict[str, Any], ref: RecordRef) -> None:
        seq: int = obj["seq"]
        if seq != self.expected:
            raise _Failed(ref, self._seq_reason(index, path, line_no, seq))
        if obj["prev_hash"] != self.prev:
            raise _Failed(ref, f"chain broken at line {line_no} (seq {seq}): prev_hash is not the previous "
                               f"record's hash (a record was replaced or inserted)")
        if self.head is not None and seq == self.head.seq and obj["hash"] != self.head.hash:
            raise _Failed(ref, f"record seq {seq} at line {line_no} differs from the head file: "
                               f"the log was rewritten after it was written")
        self._modes(obj, line_no, seq, ref)
        if self.checkpoint is not None and seq == self.checkpoint.seq and obj["hash"] != self.checkpoint.hash:
            raise _Failed(ref, f"record seq {seq} at line {line_no} differs from the signed checkpoint: "
                               f"the log was rewritten up to here after the checkpoint was signed")
        self.expected = seq + 1
        self.prev = obj["hash"]
        self.count += 1
        self.last = ref

    def _modes(self, obj: dict[str, Any], line_no: int, seq: int, ref: RecordRef) -> None:
        """Schema versions only go up; the key mode never changes; with a key, every MAC holds."""
        version: int = obj["v"]
        if version < self.version:
            raise _Failed(ref, f"schema version goes back from {self.version} to {version} at line {line_no} "
                               f"(seq {seq}): a record in an older format was put into the log")
        self.version = version
        mac = obj.get("mac")
        keyed = mac is not None
        if self.keyed is not None and keyed != self.keyed:
            was, now = ("keyed", "has no MAC") if self.keyed else ("unkeyed", "has a MAC")
            raise _Failed(ref, f"key mode changes at line {line_no} (seq {seq}): the records before are {was}, "
                               f"this one {now} (written or altered without the log's writer)")
        self.keyed = keyed
        if self.key is None:
            return
        if mac is None:
            raise _Failed(ref, f"record at line {line_no} (seq {seq}) has no MAC: it was not written with "
                               f"the key (a keyed log is keyed from its first record)")
        if self.key.record_mac(obj["hash"]) != mac:
            wrong = " (or this is not the log's key)" if self.count == 0 else ""
            raise _Failed(ref, f"MAC mismatch at line {line_no} (seq {seq}): the record was forged or "
                               f"re-hashed without the key{wrong}")

    def _seq_reason(self, index: int, path: Path, line_no: int, seq: int) -> str:
        expected = self.expected
        head = f"at line {line_no}: expected seq {expected}, found {seq}"
        if seq < expected:
            return f"out of order {head} (a record duplicated or moved back)"
        if self._appears_later(index, line_no, expected):
            return f"out of order {head} (records swapped or moved)"
        missing = seq - expected
        text = f"seq gap {head} ({_plural(missing, 'record')} removed)"
        if line_no == 1 and index == 0 and expected == 0:
            text = (f"chain does not start at seq 0: {path.name} line 1 is seq {seq} "
                    f"({_plural(missing, 'earlier record')} or rotated files missing)")
        elif line_no == 1 and index > 0:
            gone = ", ".join(p.name for p in self.missing)
            text += (f": rotated file {gone} missing" if gone
                     else f": {self.files[index - 1].name} ends early")
        return text

    def _appears_later(self, index: int, line_no: int, wanted: int) -> bool:
        for i in range(index, len(self.files)):
            for n, _, body, _ in _lines(self.files[i]):
                if i == index and n <= line_no:
                    continue
                ok, obj = _parse(body)
                if ok and isinstance(obj, dict) and obj.get("seq") == wanted:
                    return True
        return False

    def end(self) -> dict[str, Any]:
        """``last_seq`` and ``last_hash`` of the last sound record, for :class:`VerifyResult`."""
        if not self.count:
            return {"last_seq": None, "last_hash": None, "keyed": False}
        return {"last_seq": self.expected - 1, "last_hash": self.prev, "keyed": bool(self.keyed)}

    def _end_ref(self) -> RecordRef:
        last = self.last
        if last is not None:
            return RecordRef(last.file, last.line + 1, self.expected)
        return RecordRef(self.files[-1] if self.files else Path("?"), 1, 0)

    def _check_keyed_head(self) -> None:
        """With a key: the head exists, its MAC holds, and it is at most one record behind."""
        assert self.key is not None
        head = self.head
        if head is None and self.head_error is not None:
            raise _Failed(None, self.head_error)
        if head is None:
            raise _Failed(None, "no head file: a keyed log always has one (it is written before the first "
                                "record), so it was deleted; records may have been cut from the end")
        if head.mac is None or head.mac != self.key.head_mac(head.seq, head.hash):
            raise _Failed(None, "the head file has no valid MAC for this key: it was forged or replaced "
                                "(or this is not the log's key)")
        behind = self.expected - 1 - head.seq
        if behind > 1:
            raise _Failed(None, f"the head file is {behind} records behind the log (seq {head.seq}, the log "
                                f"ends at seq {self.expected - 1}): an older head file was put back")
        if behind == 1:
            self.notes.append(f"the head file is one record behind (seq {head.seq}): a crash between "
                              f"writing a record and its head")

    def _check_checkpoint(self) -> None:
        checkpoint = self.checkpoint
        if checkpoint is None or checkpoint.seq < self.expected:
            return
        where = f"the log ends at seq {self.expected - 1}" if self.count else "the log has no records"
        raise _Failed(self._end_ref(), f"file ends early: {where}, but the signed checkpoint vouches for "
                                       f"seq {checkpoint.seq}: records were cut")

    def _check_head(self) -> None:
        self._check_checkpoint()
        if self.key is not None:
            self._check_keyed_head()
        elif self.keyed:
            self.notes.append("the records carry MACs that were not checked: give the log's key to "
                              "authenticate them (without it, anyone who can write the file could forge them)")
        head = self.head
        if head is None or head.seq < self.expected:
            return
        missing = head.seq - self.expected + 1
        last = self.last
        if last is not None:
            ref = RecordRef(last.file, last.line + 1, self.expected)
            where = f"the log ends at seq {last.seq} ({last.file.name} line {last.line})"
        else:
            file = self.files[-1] if self.files else Path("?")
            ref = RecordRef(file, 1, 0)
            where = "the log has no records"
        raise _Failed(ref, f"file ends early: {where} but the head file says seq {head.seq} was written "
                           f"({_plural(missing, 'record')} missing at the end)")


def verify_files(
    files: Sequence[Path],
    *,
    head: Head | None = None,
    head_error: str | None = None,
    missing: Sequence[Path] = (),
    key: "AuditKey | None" = None,
    checkpoint: "Checkpoint | None" = None,
    public_key: Any = None,
) -> VerifyResult:
    """Verify the chain spread over ``files`` (chain order).

    - ``head``: the head file's content, when there is one
    - ``head_error``: why the head file could not be read (a failure of its own)
    - ``missing``: rotated files whose numbers are absent (named in the reason)
    - ``key``: the log's :class:`~workbench.audit.keys.AuditKey`: check every MAC
    - ``checkpoint``, ``public_key``: a signed checkpoint, and the ed25519 public key
      trusted to have signed it (required with a checkpoint)
    """
    notes: list[str] = []
    if checkpoint is not None:
        problem = checkpoint.check(public_key)
        if problem is not None:
            return VerifyResult(False, 0, None, problem, tuple(files))
    checker = _Checker(files, head, missing, key, checkpoint)
    checker.head_error = head_error
    try:
        checker.run()
        if head_error is not None:
            raise _Failed(None, head_error)
    except _Failed as failed:
        return VerifyResult(False, checker.count, failed.ref, failed.reason, tuple(files), tuple(checker.notes),
                            **checker.end())
    if head is None and checker.count and key is None:
        notes.append("no head file: a cut exactly at a line boundary would not be seen")
    reason = "chain intact" if checker.count else "empty log: no records"
    return VerifyResult(True, checker.count, None, reason, tuple(files), (*checker.notes, *notes),
                        authenticated=key is not None,
                        checkpoint_seq=checkpoint.seq if checkpoint is not None else None,
                        **checker.end())
