"""Reading an audit log: :class:`LogReader`, the half of :class:`~workbench.audit.AuditLog` that
never writes (its files, records, verification, checkpoints and frame).

Why apart from the writer: reading needs only the log's path and key, and none of the writer's
locks, descriptors and recovery; an ``AuditLog`` is both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import AuditError, AuditKeyError
from .files import Head, chain_files, head_path, read_head, rotated_files, rotated_path
from .keys import AuditKey, KeyLike, as_key
from .verify import VerifyResult, verify_files

if TYPE_CHECKING:
    import pandas as pd

    from .checkpoint import Checkpoint

__all__ = ["LogReader"]


class LogReader:
    """What can be read of the log at ``path`` (keyed with ``key``, if it has one)."""

    def __init__(self, path: str | os.PathLike[str], *, key: KeyLike | None = None) -> None:
        self.path = Path(path)
        self.key: AuditKey | None = as_key(key)

    def files(self) -> list[Path]:
        """The log's files in chain order (rotated oldest first, then the live file)."""
        return chain_files(self.path)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record in chain order, parsed.  Torn lines are skipped: use :meth:`verify` to judge."""
        import json

        for path in self.files():
            with open(path, "rb") as f:
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break  # torn last line: not a record
                    try:
                        obj = json.loads(raw)
                    except (ValueError, RecursionError):
                        continue
                    if isinstance(obj, dict) and "seq" in obj:
                        yield obj

    def verify(self, *, key: KeyLike | None = None, checkpoint: "Checkpoint | str | os.PathLike[str] | None" = None,
               public_key: Any = None) -> VerifyResult:
        """Check the whole chain (all files); see :mod:`workbench.audit.verify` for what is checked.

        - ``key``: the log's key (default: the key this ``AuditLog`` was opened with);
          every record's MAC and the head's are checked, so forgeries without the key fail
        - ``checkpoint``: a :class:`~workbench.audit.checkpoint.Checkpoint` (or its
          file): the log must still hold the records it vouches for
        - ``public_key``: the ed25519 public key trusted to have signed ``checkpoint``
          (a key object, PEM bytes or file, or 32 raw bytes); required with one
        """
        from .checkpoint import Checkpoint

        use_key = as_key(key) if key is not None else self.key
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            checkpoint = Checkpoint.load(checkpoint)
        if checkpoint is not None and public_key is None:
            raise AuditKeyError("a checkpoint is checked against the public key you trust, not the one it names",
                                hint="pass public_key= (CLI: --public-key FILE)")
        files = self.files()
        numbers = [n for n, _ in rotated_files(self.path)]
        missing = [rotated_path(self.path, n) for n in range(1, max(numbers, default=0) + 1)
                   if n not in set(numbers)]
        head_file = head_path(self.path)
        head: Head | None = None
        head_error: str | None = None
        try:
            head = read_head(head_file)
        except ValueError as exc:
            head_error = f"head file {head_file.name} is unreadable ({exc}): it was altered"
        return verify_files(files, head=head, head_error=head_error, missing=missing, key=use_key,
                            checkpoint=checkpoint, public_key=public_key)

    def checkpoint(self, signing_key: Any) -> "Checkpoint":
        """Verify the log (with its key, if it has one) and sign its last record: a :class:`Checkpoint`.

        ``signing_key``: an ed25519 private key (a key object, PEM bytes or file, or
        32 raw bytes).  Anyone with the matching public key can later check that
        the log still begins with these records: ``verify(checkpoint=...,
        public_key=...)``.  Refuses (AuditError) an empty log, a log that does not
        verify, and a keyed log whose key this ``AuditLog`` was not given.
        """
        from .checkpoint import Checkpoint

        result = self.verify()
        if not result.ok:
            raise AuditError(f"the audit log {self.path} does not verify, so it is not signed: {result.reason}")
        if result.last_seq is None or result.last_hash is None:
            raise AuditError(f"the audit log {self.path} has no records to vouch for")
        if result.keyed and not result.authenticated:
            raise AuditKeyError(f"the audit log {self.path} is keyed: its MACs must be checked before it is "
                                "signed", hint="open it with AuditLog(path, key=...) (CLI: --key-file/--key-env)")
        return Checkpoint.sign(signing_key, log=self.path.name, seq=result.last_seq, hash=result.last_hash,
                               keyed=result.authenticated)

    def frame(self) -> "pd.DataFrame":
        """All records as a typed pandas DataFrame (see :func:`workbench.audit.frame`)."""
        from .frames import frame

        return frame(self.files())
