"""Many runs at once: local worker processes or a Dask cluster, one results frame, one audit trail.

::

    from workbench.batch import run_many

    batch = run_many(sources, ["time:limit:2s"], workers=2, audit="audit/")
    for result in batch:          # JobResult objects, as they finish
        ...
    frame = batch.frame()         # job_id, outcome, exit_code, stdout, ..., value
    trail = AuditLog.open_many("audit/")   # every worker's segment, verified, one frame

Layout, one job per module::

    jobs.py      Job, and turning lists, dicts and paths into jobs (a job's caps only narrow)
    worker.py    what each Dask worker keeps (sandboxes, its audit segment) and the task functions
    runner.py    run_many and Batch (one list of keywords: BatchOptions): submit in chunks, collect,
                 retry a dead worker's jobs, cancel
    results.py   JobResult and the results frame
    progress.py  tqdm bar and the dashboard link
    paths.py     a jobs file's `path`: read below its folder only (no absolute path, `..` or symlink)
    commands.py  `workbench batch JOBS ... -o results.parquet|csv`

Needs ``dask.distributed`` (a dependency); importing ``workbench`` (or this package) does not load it:
the names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import Job, as_jobs
    from .results import JobResult, results_frame
    from .runner import Batch, BatchOptions, run_many

__all__ = ["run_many", "Batch", "BatchOptions", "Job", "JobResult", "as_jobs", "results_frame"]

_LAZY = {"run_many": ".runner", "Batch": ".runner", "BatchOptions": ".runner", "Job": ".jobs", "as_jobs": ".jobs", "JobResult": ".results",
         "results_frame": ".results"}


def __getattr__(name: str) -> Any:
    """Load on first use (PEP 562): ``workbench batch --help`` need not import Dask."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
