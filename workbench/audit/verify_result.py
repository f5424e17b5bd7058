"""What :meth:`AuditLog.verify` answers: :class:`VerifyResult`, and :class:`RecordRef` for where.

Apart from the checker (:mod:`.verify`) because every reader of a result (the CLI, the
notebook views, a batch's segments) needs the value and none of the checking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

__all__ = ["RecordRef", "VerifyResult"]


class RecordRef(NamedTuple):
    """Where a record is: file, 1-based line number, and its ``seq`` when it has one."""

    file: Path
    line: int
    seq: int | None

    def __str__(self) -> str:
        seq = "" if self.seq is None else f" (seq {self.seq})"
        return f"{self.file}:{self.line}{seq}"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :meth:`AuditLog.verify`.  ``bool(result)`` is ``result.ok``.

    - ``ok``: the chain is whole
    - ``records``: how many records were checked and found sound (before ``first_bad``)
    - ``first_bad``: ``(file, line, seq)`` of the first bad record, or None
    - ``reason``: what is wrong, in words ("hash mismatch at line 7 (seq 6): record altered")
    - ``notes``: things a reader should know that are not failures (a recovered torn write, no head file)
    - ``keyed``: the records carry MACs (a keyed log)
    - ``authenticated``: every record's MAC (and the head's) was checked with the log's key
    - ``checkpoint_seq``: the ``seq`` of the signed checkpoint the log was found to match, if one was given
    - ``last_seq``, ``last_hash``: the last sound record (what a checkpoint of this log would sign)
    """

    ok: bool
    records: int
    first_bad: RecordRef | None = None
    reason: str = ""
    files: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default=())
    keyed: bool = False
    authenticated: bool = False
    checkpoint_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            text = f"ok: {self.records} records in {len(self.files)} file(s), chain intact"
            if self.authenticated:
                text += ", every MAC valid for the key"
            if self.checkpoint_seq is not None:
                text += f", matches the signed checkpoint at seq {self.checkpoint_seq}"
        else:
            where = f" [{self.first_bad}]" if self.first_bad else ""
            text = f"FAILED: {self.reason}{where}"
        return "\n".join([text, *(f"note: {n}" for n in self.notes)])
