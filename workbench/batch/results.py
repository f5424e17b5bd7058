"""What a batch gives back: one :class:`JobResult` per job, and the results frame.

A job that traps, times out or violates its policy is a result like any other (its
``RunResult`` says what happened).  So is a job that could not run:

- ``error (CompileError)`` and the like: bad input (the source does not compile, the module
  imports something not granted); ``error`` holds the message;
- ``lost (worker died)``: the worker process died while running it, twice (it was retried once);
- ``cancelled``: the batch was cancelled before or while it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from ..runtime import RunResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["JobResult", "results_frame", "HEAD_CHARS", "USAGE_COLUMNS"]

#: how much of stdout and stderr the frame keeps (the whole text is on ``JobResult.result``)
HEAD_CHARS = 200

USAGE_COLUMNS = ("wall_seconds", "cpu_seconds", "memory_peak_bytes", "fuel_used", "output_bytes")


@dataclass(frozen=True)
class JobResult:
    """The outcome of one job.

    - ``result``: the job's :class:`~workbench.runtime.RunResult` (None when it did not run)
    - ``error``: why it did not run (bad input, a lost worker, a cancelled batch)
    - ``worker``: the audit segment (one per worker process) that holds its records
    - ``attempts``: 2 when a worker died under it and it ran again
    - ``audit_seq``, ``audit_hash``: its last record in that segment (its ``batch``/``job-end``
      record), which the batch's manifest vouches for
    """

    job_id: str
    result: RunResult | None = None
    error: str | None = None
    error_type: str | None = None
    worker: str | None = None
    attempts: int = 1
    audit_seq: int | None = None
    audit_hash: str | None = None

    @property
    def outcome(self) -> str:
        if self.error_type == "cancelled":
            return "cancelled"
        if self.result is not None:
            return self.result.outcome
        if self.error_type == "lost":
            return "lost (worker died)"
        return f"error ({self.error_type})"

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok and self.error_type is None

    @property
    def bad_input(self) -> bool:
        """The job could not run as given (its source or module is unusable)."""
        return self.result is None and self.error_type not in ("cancelled", "lost")

    def row(self) -> dict[str, Any]:
        """One row of the results frame."""
        r = self.result
        row: dict[str, Any] = {
            "job_id": self.job_id,
            "outcome": self.outcome,
            "ok": self.ok,
            "exit_code": None if r is None else r.exit_code,
            "stdout": "" if r is None else r.stdout[:HEAD_CHARS],
            "stderr": "" if r is None else r.stderr[:HEAD_CHARS],
            "violations": 0 if r is None else sum(1 for e in r.events if e.is_violation),
        }
        for column in USAGE_COLUMNS:
            row[column] = None if r is None else getattr(r.usage, column)
        row.update({
            "value": None if r is None else r.value,
            "error": self.error,
            "worker": self.worker,
            "attempts": self.attempts,
            "run_id": None if r is None else r.run_id,
        })
        return row

    def __repr__(self) -> str:
        return f"JobResult({self.job_id!r}: {self.outcome})"


_DTYPES = {
    "job_id": "string", "outcome": "category", "ok": "bool", "exit_code": "Int64", "stdout": "string",
    "stderr": "string", "violations": "int64", "wall_seconds": "float64", "cpu_seconds": "float64",
    "memory_peak_bytes": "Int64", "fuel_used": "Int64", "output_bytes": "Int64", "error": "string",
    "worker": "category", "attempts": "int64", "run_id": "string",
}


def results_frame(results: Iterable[JobResult]) -> "pd.DataFrame":
    """The results as a typed DataFrame, one row per job, in the order given; ``value`` stays
    an object column (whatever each guest returned)."""
    import pandas as pd

    rows = [r.row() for r in results]
    columns = list(JobResult("").row())
    frame = pd.DataFrame(rows, columns=columns).astype(_DTYPES)
    frame["value"] = pd.Series([row["value"] for row in rows], index=frame.index, dtype=object)  # as returned
    return frame
