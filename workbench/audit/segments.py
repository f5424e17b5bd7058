"""One audit trail written by many processes: a folder of hash-chained *segments*.

A batch (``workbench.batch``) runs on many worker processes, perhaps on many machines.
They never share one log file: each worker process appends to a segment of its own,
``<folder>/<label>.jsonl`` (an ordinary :class:`~workbench.audit.AuditLog`, rotated files
and head file included), whose label names the worker and is unique per process
(:func:`segment_label`).  The client that ran the batch writes a segment too
(``client-...``): batch start, each retry, and at the end a *manifest*, the last
``(seq, hash)`` every worker segment reported.

:class:`AuditTrail` reads the folder back:

- :meth:`~AuditTrail.verify` checks every segment's chain, and every manifest against the
  segments it names, so a worker segment that was deleted, cut short or swapped for
  another chain is found (a chain alone cannot see that it was cut at a record boundary);
- :meth:`~AuditTrail.frame` loads every segment as one typed frame (the columns of
  :func:`workbench.audit.frame`) plus a categorical ``worker`` column, the segment's label;
- :meth:`~AuditTrail.dask_frame` is the same frame as a lazy ``dask.dataframe``, one
  partition per file, for trails larger than memory.

``AuditLog.open_many(folder)`` is the short way: verify, then frame.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import AuditError
from .files import chain_files
from .keys import KeyLike, as_key
from .reading import LogReader
from .verify import VerifyResult

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

__all__ = ["AuditTrail", "TrailVerifyResult", "segment_label", "MANIFEST_ACTION", "TRAIL_MODULE"]

#: the ``module`` of records the batch itself writes (not a guest's)
TRAIL_MODULE = "workbench.batch"
#: the client's closing record: ``detail.segments`` maps each worker segment to its last (seq, hash)
MANIFEST_ACTION = "manifest"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# a segment's live file: a label (no dots) + .jsonl; rotated files (label.N.jsonl) and heads are not segments
_LIVE = re.compile(r"\A([A-Za-z0-9_-]+)\.jsonl\Z")
_ROTATED = re.compile(r"\A([A-Za-z0-9_-]+)\.[1-9]\d*\.jsonl\Z")


def segment_label(worker: str, *, role: str = "worker") -> str:
    """A segment label unique to this process: role, worker name, host, pid and a random token.

    Only ``[A-Za-z0-9_-]``: a label never holds a dot, so it cannot be mistaken for a rotated
    file, and a worker name chosen by whoever runs the cluster cannot climb out of the folder.
    """
    name = _UNSAFE.sub("_", worker).strip("_")[:40] or "w"
    host = _UNSAFE.sub("_", socket.gethostname()).strip("_")[:24] or "host"
    return f"{role}-{name}-{host}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class TrailVerifyResult:
    """The outcome of :meth:`AuditTrail.verify`; ``bool(result)`` is ``result.ok``.

    - ``segments``: each segment's own :class:`~workbench.audit.verify.VerifyResult`
    - ``problems``: every failure in words: a broken chain, a manifest naming a segment that is
      missing or does not hold the record it vouches for
    """

    ok: bool
    segments: Mapping[str, VerifyResult] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            records = sum(v.records for v in self.segments.values())
            return f"ok: {len(self.segments)} segment(s), {records} records, every chain and manifest intact"
        return "FAILED:\n" + "\n".join(f"  {p}" for p in self.problems)


class AuditTrail:
    """The segments in ``folder``, read as one trail.  ``key``: the key of keyed segments."""

    def __init__(self, folder: str | os.PathLike[str], *, key: KeyLike | None = None) -> None:
        self.folder = Path(folder)
        self.key = as_key(key)

    def __repr__(self) -> str:
        return f"AuditTrail({str(self.folder)!r})"

    def labels(self) -> list[str]:
        """Every segment's label, sorted (a segment whose live file is gone still counts if its
        rotated files remain)."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        found = {m.group(1) for n in names if (m := _LIVE.match(n) or _ROTATED.match(n))}
        return sorted(found)

    def segments(self) -> dict[str, LogReader]:
        """Each segment, to read and verify (an :class:`AuditLog` of the same path appends to it), by label."""
        return {label: LogReader(self.folder / f"{label}.jsonl", key=self.key) for label in self.labels()}

    def verify(self) -> TrailVerifyResult:
        """Check every segment's chain and every manifest (see the module docstring)."""
        segments = self.segments()
        results = {label: log.verify() for label, log in segments.items()}
        problems = [f"segment {label}: {result.reason}" for label, result in results.items() if not result.ok]
        for label, log in segments.items():
            if not label.startswith("client-") or not results[label].ok:
                continue
            for record in log.records():
                if record.get("module") == TRAIL_MODULE and record.get("action") == MANIFEST_ACTION:
                    claims = (record.get("detail") or {}).get("segments") or {}
                    problems.extend(_check_manifest(label, claims, segments, results))
        return TrailVerifyResult(not problems, results, tuple(problems))

    def files(self) -> list[tuple[str, Path]]:
        """``(label, file)`` for every file of every segment, each segment in chain order."""
        return [(label, path) for label, log in self.segments().items() for path in chain_files(log.path)]

    def frame(self) -> "pd.DataFrame":
        """Every segment's records as one frame, with a categorical ``worker`` column (the label)."""
        import pandas as pd

        from .frames import frame

        parts = []
        labels = self.labels()
        for label, log in self.segments().items():
            part = frame(log.files())
            part.insert(0, "worker", pd.Categorical([label] * len(part), categories=labels))
            parts.append(part)
        if not parts:
            empty = frame([])
            empty.insert(0, "worker", pd.Categorical([], categories=labels))
            return empty
        return _concat(parts)

    def dask_frame(self) -> "dd.DataFrame":
        """The same frame as :meth:`frame`, lazily: one ``dask.dataframe`` partition per file,
        read only when computed (a trail larger than memory can be filtered and grouped)."""
        import dask.dataframe as dd

        files = self.files()
        labels = self.labels()
        meta = _one_file(("", None), labels)
        if not files:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_map(_one_file, files, labels=labels, meta=meta, enforce_metadata=False)


def _one_file(item: tuple[str, Path | None], labels: list[str]) -> "pd.DataFrame":
    import pandas as pd

    from .frames import frame

    label, path = item
    part = frame([] if path is None else [path])
    part.insert(0, "worker", pd.Categorical([label] * len(part), categories=labels))
    return part


def _concat(parts: list["pd.DataFrame"]) -> "pd.DataFrame":
    """Concatenate segment frames keeping categoricals categorical (their categories are unioned)."""
    import pandas as pd
    from pandas.api.types import union_categoricals

    columns = parts[0].columns
    parts = [p for p in parts if len(p)] or parts[:1]  # an empty segment's frame has untyped categories
    out: dict[str, Any] = {}
    for column in columns:
        values = [p[column] for p in parts]
        if isinstance(values[0].dtype, pd.CategoricalDtype):
            out[column] = pd.Series(union_categoricals([v.array for v in values], sort_categories=True))
            if column == "decision":
                out[column] = out[column].cat.set_categories(values[0].cat.categories)
            elif column == "worker":
                out[column] = out[column].cat.set_categories(values[0].cat.categories)
        else:
            out[column] = pd.concat(values, ignore_index=True)
    return pd.DataFrame(out, columns=columns)


def _check_manifest(client: str, claims: Mapping[str, Any], segments: Mapping[str, LogReader],
                    results: Mapping[str, VerifyResult]) -> list[str]:
    problems = []
    for label, claim in sorted(claims.items()):
        try:
            seq, digest = int(claim[0]), str(claim[1])
        except (TypeError, ValueError, IndexError, KeyError):
            problems.append(f"manifest in {client}: malformed entry for {label!r}")
            continue
        if label not in segments:
            problems.append(f"manifest in {client}: segment {label} is missing (it held records up to seq {seq})")
            continue
        if not results[label].ok:
            continue  # already reported
        last = results[label].last_seq
        if last is None or last < seq:
            problems.append(f"manifest in {client}: segment {label} ends at seq {last}, but held seq {seq}: "
                            f"records were cut from its end")
            continue
        found = next((r.get("hash") for r in segments[label].records() if r.get("seq") == seq), None)
        if found != digest:
            problems.append(f"manifest in {client}: segment {label} has another record at seq {seq}: "
                            f"it was replaced")
    return problems


def open_many(folder: str | os.PathLike[str], *, key: KeyLike | None = None) -> "pd.DataFrame":
    """Verify every segment in ``folder`` and load them as one frame (``worker`` column).

    Raises :class:`~workbench.errors.AuditError` naming every problem when the trail does
    not verify, or when ``folder`` holds no segment at all."""
    trail = AuditTrail(folder, key=key)
    if not trail.labels():
        raise AuditError(f"no audit segments in {folder}",
                         hint="pass the folder given to run_many(audit=...); segments are <label>.jsonl files")
    result = trail.verify()
    if not result.ok:
        raise AuditError(f"the audit trail in {folder} does not verify: " + "; ".join(result.problems),
                         hint="keep the folder as evidence; AuditTrail(folder).verify() gives each segment's result")
    return trail.frame()
