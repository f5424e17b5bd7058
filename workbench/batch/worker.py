"""What runs on each Dask worker: per-worker state, kept on the worker, and the task functions.

Each worker process keeps, for one batch (:class:`BatchPlugin`, a Dask ``WorkerPlugin``):

- its prepared sandboxes, one per effective policy (at most :data:`SANDBOXES_MAX`), so
  mounts are planned and the audit log opened once per worker, not once per job;
- the process-wide compile cache (``workbench.runtime.CompileCache``): the Python interpreter
  is compiled or loaded once per worker process, then every job finds it in memory;
- its own audit segment (:mod:`workbench.audit.segments`): no two processes share a file.

Around each job it appends two records to its segment: ``batch``/``job-start`` (job id,
attempt) before the run and ``batch``/``job-end`` (run id, outcome) after it, so a job whose
worker died shows as a start without an end, in the dead worker's segment.

A task runs a *chunk* of jobs (one Dask task costs milliseconds of scheduling; a small
Python job about as much), and never raises for what a job does: every job becomes a
:class:`~workbench.batch.results.JobResult`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Sequence

from distributed import WorkerPlugin, get_worker

from ..audit import AuditLog
from ..audit.segments import TRAIL_MODULE, segment_label
from ..errors import SandboxError
from ..events import Event, Sample
from ..policy import Policy
from ..runtime import RunResult, Sandbox
from ..runtime.plan import OnViolationLike as OnViolation
from ..runtime.sandbox import shared_cache
from .jobs import Job
from .results import JobResult

__all__ = ["BatchPlugin", "WorkerState", "run_chunk", "cancel_batch", "worker_stats", "SANDBOXES_MAX"]

#: prepared sandboxes kept per worker (a batch with a policy per job keeps only the latest)
SANDBOXES_MAX = 64


class WorkerState:
    """One worker's share of one batch: sandboxes by policy, its audit segment, the cancel flag."""

    def __init__(self, batch_id: str, worker_name: str, root: str, audit_dir: str | None,
                 on_violation: OnViolation) -> None:
        self.batch_id = batch_id
        self.root = root
        self.on_violation: OnViolation = on_violation
        self.label = segment_label(worker_name)
        self.audit = AuditLog(Path(audit_dir) / f"{self.label}.jsonl").open() if audit_dir else None
        self.cancelled = threading.Event()
        self.jobs_run = 0
        self._sandboxes: OrderedDict[tuple[str, ...], Sandbox] = OrderedDict()
        self._lock = threading.Lock()

    def sandbox(self, policy: tuple[str, ...]) -> Sandbox:
        """The prepared sandbox for ``policy`` (made on first use)."""
        with self._lock:
            sandbox = self._sandboxes.get(policy)
            if sandbox is not None:
                self._sandboxes.move_to_end(policy)
                return sandbox
        sandbox = Sandbox(Policy.parse(list(policy)), root=self.root, audit=self.audit,
                          on_violation=self.on_violation)
        sandbox.subscribe(_LateCancel(self.cancelled, sandbox))
        with self._lock:
            self._sandboxes[policy] = sandbox
            while len(self._sandboxes) > SANDBOXES_MAX:
                self._sandboxes.popitem(last=False)
        return sandbox

    def _record(self, action: str, job: Job, attempt: int, run_id: str = "", **detail: Any) -> dict[str, Any] | None:
        if self.audit is None:
            return None
        event = Event(run_id=run_id, category="lifecycle", action=action, decision="audit", target=job.id,
                      module=TRAIL_MODULE, reason=f"batch {self.batch_id}",
                      detail={"batch": self.batch_id, "attempt": attempt, **detail})
        return self.audit.append(event)

    def run(self, job: Job, attempt: int) -> JobResult:
        """Run one job; whatever happens is its result (an unwritable audit segment included)."""
        if self.cancelled.is_set():
            return JobResult(job.id, error="the batch was cancelled before this job ran", error_type="cancelled",
                             worker=self.label, attempts=attempt)
        result: RunResult | None = None
        error: str | None = None
        error_type: str | None = None
        try:
            self._record("job-start", job, attempt)
            sandbox = self.sandbox(job.policy)
            if job.module is not None:
                result = sandbox.run_module(job.module, dict(job.inputs) if job.inputs is not None else None)
            else:
                result = sandbox.run(job.source, job.lang, args=job.args, stdin=job.stdin, name=job.name,
                                     inputs=job.inputs)
        except SandboxError as exc:  # bad input: the job's own fault, reported as its result
            error, error_type = str(exc), type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - a bug of ours must cost one job, not the batch
            error, error_type = f"internal error: {type(exc).__name__}: {exc}", type(exc).__name__
        if self.cancelled.is_set() and (result is None or not result.ok):
            error, error_type = "the batch was cancelled while this job ran", "cancelled"
        self.jobs_run += 1
        end = None
        outcome = result.outcome if result is not None else f"error ({error_type})"
        try:
            end = self._record("job-end", job, attempt, run_id=result.run_id if result is not None else "",
                               outcome=outcome)
        except (OSError, SandboxError) as exc:
            if error is None:
                error, error_type = f"the audit segment could not be written: {exc}", "AuditError"
        return JobResult(job.id, result=result, error=error, error_type=error_type, worker=self.label,
                         attempts=attempt, audit_seq=None if end is None else end["seq"],
                         audit_hash=None if end is None else end["hash"])

    def cancel(self) -> int:
        """Refuse the jobs not yet started and stop the running guests (within a tick)."""
        self.cancelled.set()
        with self._lock:
            sandboxes = list(self._sandboxes.values())
        return sum(s.cancel("batch cancelled") for s in sandboxes)

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()


class _LateCancel:
    """Stops a guest that started after the batch was cancelled.

    ``Sandbox.cancel()`` reaches the runs in progress only: a job that passed the cancel flag's check and was
    still being prepared when the cancel came would run to its own limit.  The monitor's samples come from the
    running guest (about ten a second, the first one after the run is registered as in progress), so at the
    first one the flag is seen and the run is stopped like the others."""

    def __init__(self, cancelled: threading.Event, sandbox: Sandbox) -> None:
        self.cancelled = cancelled
        self.sandbox = sandbox

    def __call__(self, item: Event | Sample) -> None:
        if isinstance(item, Sample) and self.cancelled.is_set():
            self.sandbox.cancel("batch cancelled")


class BatchPlugin(WorkerPlugin):
    """Registered on every worker of the cluster for one batch (and on workers that join or
    restart while it runs); holds that worker's :class:`WorkerState`."""

    def __init__(self, name: str, batch_id: str, root: str, audit_dir: str | None, on_violation: OnViolation) -> None:
        self.name = name
        self.batch_id = batch_id
        self.root = root
        self.audit_dir = audit_dir
        self.on_violation: OnViolation = on_violation
        self.state: WorkerState | None = None
        self.client_pid = os.getpid()  # pickled with the plugin: a worker compares it with its own
        self._previous_hook: Any = None

    def setup(self, worker: Any) -> None:
        # a first compile's note goes to the worker's log, not its stderr: a worker started from a notebook
        # kernel shares the kernel's stderr, which ipykernel copies into whatever cell is running.  Only in a
        # worker process of its own: threads of the client's process (processes=False) keep the client's hook
        if os.getpid() != self.client_pid:
            from ..languages.progress import set_progress_hook

            self._previous_hook = set_progress_hook(_log_progress)
        self.state = WorkerState(self.batch_id, str(worker.name), self.root, self.audit_dir, self.on_violation)

    def teardown(self, worker: Any) -> None:
        if self._previous_hook is not None:
            from ..languages.progress import set_progress_hook

            set_progress_hook(self._previous_hook)
            self._previous_hook = None
        if self.state is not None:
            self.state.close()


@contextlib.contextmanager
def _log_progress(label: str, expected_seconds: float) -> Iterator[None]:
    """The compile-progress hook on a worker: one line in the worker's log (the dashboard shows it)."""
    logging.getLogger("workbench.batch").info("%s (about %.0f s, once per worker)", label, expected_seconds)
    yield


def _state(plugin: str, worker: Any = None) -> WorkerState:
    worker = worker if worker is not None else get_worker()
    state = worker.plugins[plugin].state
    assert state is not None, "BatchPlugin.setup has run on every worker it is registered on"
    return state  # type: ignore[no-any-return]


def run_chunk(plugin: str, jobs: Sequence[Job], attempt: int) -> list[JobResult]:
    """The Dask task: run ``jobs`` one after another on this worker."""
    state = _state(plugin)
    return [state.run(job, attempt) for job in jobs]


def cancel_batch(plugin: str, dask_worker: Any = None) -> int:
    """``Client.run`` target: cancel the batch on this worker; returns how many guests were stopped."""
    state = dask_worker.plugins.get(plugin) if dask_worker is not None else None
    if state is None or state.state is None:
        return 0
    return state.state.cancel()  # type: ignore[no-any-return]


def _rss_bytes() -> int | None:
    """This process's resident memory now (Linux: /proc/self/statm), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def worker_stats(plugin: str, dask_worker: Any = None) -> dict[str, Any]:
    """``Client.run`` target: this worker's segment, jobs run, compile-cache counters and memory."""
    cache = shared_cache()
    state = _state(plugin, dask_worker)
    return {
        "segment": state.label,
        "pid": os.getpid(),
        "jobs": state.jobs_run,
        "sandboxes": len(state._sandboxes),
        "compiles": cache.compiles,
        "disk_hits": cache.disk_hits,
        "memory_hits": cache.hits,
        "rss_bytes": _rss_bytes(),
    }
