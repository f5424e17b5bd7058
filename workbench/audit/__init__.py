"""The audit log: every decision of every run, hash-chained, on disk (design.md §4).

Layout, one job per module::

    record.py     RFC 8785 canonical JSON, chain hash, secret scrubbing: the bytes a record becomes
    keys.py       AuditKey (the HMAC secret of a keyed log), ed25519 key loading
    checkpoint.py Checkpoint: a log's state signed with ed25519, checkable without any secret
    files.py      where records live: live file, rotated files (audit.N.jsonl), head file
    log.py        AuditLog: thread- and process-safe writer, resume, torn-tail recovery, reader
    segments.py   AuditTrail: a folder of per-worker segments (a batch) verified and read as one
    verify.py     VerifyResult: what a sound chain is and the first place it is not
    frames.py     frame(): logs as typed pandas DataFrames (fast path for millions of rows)
    forensics.py  run_summary, denied_targets, call_chain, timeline
    commands.py   `workbench audit show | verify | export | checkpoint | keygen` (register() into the CLI)

The record schema, for readers in any language: docs/audit-record.md.

``frame``, ``details`` and the forensic helpers import pandas; they are loaded on
first use, so ``from workbench.audit import AuditLog`` (what every run needs) does
not pay for pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checkpoint import Checkpoint
from .keys import AuditKey, load_public_key, load_signing_key
from .log import AuditLog
from .record import GENESIS_HASH, SCHEMA_VERSION, SECRET_WORDS, canonical_json, chain_hash, scrub_detail
from .segments import AuditTrail, TrailVerifyResult
from .verify import RecordRef, VerifyResult

if TYPE_CHECKING:
    from .forensics import call_chain, denied_targets, run_summary, timeline
    from .frames import details, frame

__all__ = [
    "AuditLog",
    "AuditKey",
    "Checkpoint",
    "load_signing_key",
    "load_public_key",
    "VerifyResult",
    "RecordRef",
    "AuditTrail",
    "TrailVerifyResult",
    "frame",
    "details",
    "run_summary",
    "denied_targets",
    "call_chain",
    "timeline",
    "SCHEMA_VERSION",
    "GENESIS_HASH",
    "SECRET_WORDS",
    "canonical_json",
    "chain_hash",
    "scrub_detail",
]

_LAZY = {
    "frame": ".frames",
    "details": ".frames",
    "run_summary": ".forensics",
    "denied_targets": ".forensics",
    "call_chain": ".forensics",
    "timeline": ".forensics",
}


def __getattr__(name: str) -> Any:
    """Load the pandas-based names on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
