"""``run_many``: many jobs under one policy, on a Dask cluster (a ``LocalCluster`` by default).

How a batch runs:

1. The client checks everything it can before anything runs (:func:`~.jobs.as_jobs`): ids,
   sources, and each job's capabilities against the batch policy (attenuation: a job may only
   narrow it).  Bad input raises here.
2. It registers a :class:`~.worker.BatchPlugin` on the cluster: every worker (and every worker
   that restarts or joins later) gets its own sandboxes and its own audit segment.
3. Jobs go out in chunks (a Dask task costs about as much to schedule as a small Python job
   costs to run); results come back as each chunk ends, through :meth:`Batch.__iter__`.
4. A worker that dies kills its chunk: every job of that chunk is sent again, alone, once
   (``attempts`` 2, and a ``batch``/``retry`` record in the client's segment).  A job whose
   worker dies again is ``lost (worker died)``: a native crash costs one job, not the batch.
   Our own ``LocalCluster`` sets Dask's ``allowed-failures`` to 0, so every retry is ours and
   recorded; a cluster of your own may first retry silently as its configuration says.
5. At the end the client writes a manifest (each worker segment's last record it saw) to its
   own segment, so :class:`~workbench.audit.AuditTrail` can tell when a segment went missing.

Cancelling (:meth:`Batch.cancel`, or Ctrl-C / the notebook's ■ while iterating): every worker
stops its running guests at their next epoch tick and refuses the jobs not yet started; the
results already in are kept, and the rest come back as ``cancelled``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, TypedDict, Unpack

from ..audit import AuditLog
from ..audit.segments import MANIFEST_ACTION, TRAIL_MODULE, segment_label
from ..errors import BatchError
from ..events import Event
from ..policy import Policy
from ..runtime import Sandbox
from ..runtime.plan import OnViolationLike as OnViolation
from ..runtime.sandbox import PolicyLike, as_policy
from .jobs import Job, JobLike, as_jobs, chunks
from .progress import Progress
from .results import JobResult, results_frame
from .worker import BatchPlugin, cancel_batch, run_chunk, worker_stats

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client, Future

__all__ = ["Batch", "BatchOptions", "run_many", "CHUNK_MAX", "DEFAULTS"]

#: most jobs in one Dask task (fewer when the batch is small, so every worker gets work)
CHUNK_MAX = 16


#: how long jobs wait when our own cluster has no worker left, before they fail with the reason
NO_WORKERS_TIMEOUT = "300s"


class BatchOptions(TypedDict, total=False):
    """How a batch runs: the keywords of :func:`run_many` and of :class:`Batch`, listed once
    (PEP 692: ``**options: Unpack[BatchOptions]``, so a type checker sees each keyword and its type).

    - ``workers`` (2): worker processes of the ``LocalCluster`` started when no ``client`` is given
    - ``client`` (None): a ``dask.distributed.Client`` of a cluster of your own (not closed at the end)
    - ``root`` ("."): the host folder every job's ``/`` maps to (it must exist on the workers)
    - ``audit`` (None): a folder; each worker appends to its own segment there (``AuditLog.open_many``)
    - ``on_violation`` ("deny"): what a violation does in every job (``"kill"`` ends the job's run)
    - ``chunk_size`` (None): jobs per Dask task (default: up to :data:`CHUNK_MAX`)
    - ``progress`` (None): a progress bar (default: in notebooks and terminals)
    - ``processes`` (True): ``False`` runs the ``LocalCluster``'s workers as threads of this process
      (measured slower, and a native crash would take the kernel with it: docs/decisions.md)
    """

    workers: int
    client: "Client | None"
    root: "str | os.PathLike[str]"
    audit: "str | os.PathLike[str] | None"
    on_violation: OnViolation
    chunk_size: int | None
    progress: bool | None
    processes: bool


#: the value of each keyword a call leaves out
DEFAULTS: BatchOptions = {"workers": 2, "client": None, "root": ".", "audit": None, "on_violation": "deny",
                          "chunk_size": None, "progress": None, "processes": True}


def run_many(jobs: Iterable[JobLike], policy: PolicyLike = None, **options: Unpack[BatchOptions]) -> "Batch":
    """Run ``jobs`` under ``policy``; returns the running :class:`Batch` (iterate it for results
    as they come, or call :meth:`Batch.frame` for the results frame at the end).

    - ``jobs``: :class:`~.jobs.Job` objects, mappings ``{id, source|path, lang, inputs, caps}``,
      source texts or paths
    - ``policy``: the batch policy; a job's own ``caps`` may only narrow it
    - ``options``: ``workers``, ``client``, ``root``, ``audit``, ``on_violation``, ``chunk_size``,
      ``progress``, ``processes``: see :class:`BatchOptions`
    """
    return Batch(jobs, policy, **options)


def _settings(options: BatchOptions) -> BatchOptions:
    """``options`` over :data:`DEFAULTS`; an unknown keyword is a ``TypeError``, as in any call."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(DEFAULTS), n=1)
        raise TypeError(f"run_many() got an unexpected keyword argument {unknown[0]!r}"
                        + (f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(DEFAULTS)}"))
    return {**DEFAULTS, **options}


class Batch:
    """A running batch (made by :func:`run_many`, which takes the same arguments).  Iterate it for
    :class:`JobResult` objects as they complete; ``frame()`` waits for the rest and returns the
    results frame.  ``results`` holds what is in so far."""

    def __init__(self, jobs: Iterable[JobLike], policy: PolicyLike = None, **options: Unpack[BatchOptions]) -> None:
        settings = _settings(options)
        workers, client, chunk_size = settings["workers"], settings["client"], settings["chunk_size"]
        root, audit = settings["root"], settings["audit"]
        self.policy: Policy = as_policy(policy)
        self.jobs: list[Job] = as_jobs(jobs, self.policy)
        if client is None and (not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 512):
            raise BatchError(f"workers must be a whole number from 1 to 512, not {workers!r}",
                             hint="for more, start a cluster of your own and pass client=")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise BatchError(f"chunk_size must be a positive whole number, not {chunk_size!r}")
        self.root = str(Path(root).resolve())
        if client is None:
            Sandbox(self.policy, root=self.root)  # a granted folder missing here is bad input: refuse now
        self.batch_id = uuid.uuid4().hex[:12]
        self.results: dict[str, JobResult] = {}
        self.audit_dir = None if audit is None else Path(audit).resolve()
        self._client_log: AuditLog | None = None
        if self.audit_dir is not None:
            self._client_log = AuditLog(self.audit_dir / f"{segment_label('batch', role='client')}.jsonl").open()
        self._own_cluster: Any = None
        self._closed = False
        self._cancelled = False
        self._lock = threading.Lock()
        self._segments: dict[str, tuple[int, str]] = {}
        self.retries: list[tuple[str, str]] = []  # (job id, why)
        #: each worker's :meth:`stats` as the batch closed (its compile-cache counters, jobs run, memory)
        self.worker_stats: dict[str, dict[str, Any]] = {}
        try:  # from here on, whatever stops the start (Ctrl-C while the cluster starts too) closes what was opened
            self.client: Client = client if client is not None else self._start_cluster(workers, settings["processes"])
            self._plugin = BatchPlugin(f"workbench-batch-{self.batch_id}", self.batch_id, self.root,
                                       None if self.audit_dir is None else str(self.audit_dir),
                                       settings["on_violation"])
            self.client.register_plugin(self._plugin, name=self._plugin.name)
            threads = max(1, sum(self.client.nthreads().values()))
            size = chunk_size or max(1, min(CHUNK_MAX, math.ceil(len(self.jobs) / (threads * 4))))
            self.chunk_size = size
            self._record("batch-start", target=self.batch_id, jobs=len(self.jobs), policy=str(self.policy),
                         chunk_size=size, workers=len(self.client.nthreads()))
            from distributed import as_completed

            self._pending: dict[Future, tuple[list[Job], int]] = {}
            self._ac = as_completed(loop=self.client.loop)
            for chunk in chunks(self.jobs, size):
                self._submit(chunk, 1)
        except BaseException:
            self.close()
            raise
        self.progress = Progress(len(self.jobs), settings["progress"], self.dashboard_link)
        self._driver = self._drive()

    # -- cluster ---------------------------------------------------------------------------------

    def _start_cluster(self, workers: int, processes: bool) -> "Client":
        import dask
        from distributed import Client, LocalCluster

        try:
            import bokeh  # noqa: F401  (the dashboard needs it)

            dashboard: str | None = ":0"
        except ImportError:  # pragma: no cover - bokeh is a dependency
            dashboard = None
        # no-workers-timeout: if every worker is gone and none comes back (a machine out of memory
        # kills them as they start), the jobs fail with a reason after that long instead of the
        # batch waiting for ever; a killed worker's restart takes seconds, well inside it.
        # worker-saturation 1.0: a worker holds only the chunk it runs, so when a guest kills its
        # worker, no queued chunk dies with it and is blamed (the default 1.1 lends each
        # one-thread worker a second task; a retried job queued there was lost in a test under load)
        with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                              "distributed.scheduler.worker-saturation": 1.0,
                              "distributed.scheduler.no-workers-timeout": NO_WORKERS_TIMEOUT}):
            self._own_cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                             dashboard_address=dashboard, silence_logs=logging.ERROR)
        return Client(self._own_cluster, set_as_default=False)

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address (None without one)."""
        try:
            return str(self.client.dashboard_link)
        except Exception:  # noqa: BLE001 - a client without a dashboard
            return None

    # -- submitting and collecting ---------------------------------------------------------------

    def _submit(self, chunk: list[Job], attempt: int) -> None:
        key = f"workbench-batch-{self.batch_id}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(run_chunk, self._plugin.name, chunk, attempt, key=key, pure=False)
        self._pending[future] = (chunk, attempt)
        self._ac.add(future)

    def __iter__(self) -> Iterator[JobResult]:
        return self._driver

    def _drive(self) -> Iterator[JobResult]:
        try:
            for future in self._ac:
                for result in self._collect(future):
                    yield result
        except (KeyboardInterrupt, GeneratorExit) as stop:
            if isinstance(stop, KeyboardInterrupt):
                self._interrupted()
            self.close()
            raise
        self.close()

    def _interrupted(self) -> None:
        """Ctrl-C or ■: stop the running guests, collect what the workers still send back, close."""
        if self._closed:  # the driver has done it already
            return
        self.cancel()
        self._drain(timeout=10.0)
        self.close()

    def _collect(self, future: "Future") -> list[JobResult]:
        from distributed import KilledWorker

        chunk, attempt = self._pending.pop(future)
        done: list[JobResult] = []
        if future.status == "finished":
            try:
                done = list(future.result())
            except Exception as unreadable:  # noqa: BLE001 - results that cannot be read back cost their chunk
                done = [JobResult(j.id, error=f"result lost: {unreadable}", error_type=type(unreadable).__name__,
                                  attempts=attempt) for j in chunk]
        elif future.status == "cancelled":
            done = [JobResult(j.id, error="the batch was cancelled", error_type="cancelled", attempts=attempt)
                    for j in chunk]
        else:
            exc = future.exception()
            if isinstance(exc, KilledWorker) and attempt == 1 and not self._cancelled:
                for job in chunk:  # alone this time: if one of them crashes its worker again, it costs only itself
                    self._record("retry", target=job.id, attempt=2, why=f"worker died: {exc}")
                    self.retries.append((job.id, str(exc)))
                    self._submit([job], 2)
            elif isinstance(exc, KilledWorker):
                for job in chunk:
                    self._record("lost", target=job.id, attempt=attempt, why=str(exc))
                done = [JobResult(j.id, error=f"its worker died twice while running it: {exc}", error_type="lost",
                                  attempts=attempt) for j in chunk]
            else:
                done = [JobResult(j.id, error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__,
                                  attempts=attempt) for j in chunk]
        future.release()
        for result in done:
            self._accept(result)
        return done

    def _accept(self, result: JobResult) -> None:
        with self._lock:
            self.results[result.job_id] = result
            if result.worker is not None and result.audit_seq is not None and result.audit_hash is not None:
                seen = self._segments.get(result.worker)
                if seen is None or seen[0] < result.audit_seq:
                    self._segments[result.worker] = (result.audit_seq, result.audit_hash)
        self.progress.update(result)

    def _drain(self, timeout: float) -> None:
        """After a cancel: collect what the workers still send back, for up to ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while self._pending and time.monotonic() < end:
            finished = [f for f in list(self._pending) if f.done()]
            for future in finished:
                self._collect(future)
            if not finished:
                time.sleep(0.02)

    def wait(self) -> dict[str, JobResult]:
        """Wait for every job; returns :attr:`results`.  Ctrl-C (■) while waiting cancels the batch
        and keeps the results in, then raises ``KeyboardInterrupt``."""
        try:
            for _ in self:
                pass
        except KeyboardInterrupt:  # also when it lands between two results, outside the driver
            self._interrupted()
            raise
        return self.results

    def frame(self) -> "pd.DataFrame":
        """Wait for every job; the results frame, one row per job in the order given (a job that
        never ran, in a cancelled batch, is ``cancelled``)."""
        self.wait()
        return results_frame(self.results.get(j.id) or JobResult(j.id, error="never ran", error_type="cancelled")
                             for j in self.jobs)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each worker's segment, jobs run, compile-cache counters and resident memory (while running)."""
        return dict(self.client.run(worker_stats, self._plugin.name))

    def cancel(self) -> None:
        """Stop the running guests (within a tick), refuse the jobs not started; keep the results in."""
        if self._cancelled or self._closed:
            return
        self._cancelled = True
        self._record("cancel", target=self.batch_id, done=len(self.results))
        try:
            self.client.run(cancel_batch, self._plugin.name)
        except Exception:  # noqa: BLE001 - a worker that is gone has nothing left to stop
            pass

    # -- the end ---------------------------------------------------------------------------------

    def _record(self, action: str, *, target: str, **detail: Any) -> None:
        if self._client_log is not None:
            self._client_log.append(Event(run_id="", category="lifecycle", action=action, decision="audit",
                                          target=target, module=TRAIL_MODULE, reason=f"batch {self.batch_id}",
                                          detail={"batch": self.batch_id, **detail}))

    def close(self) -> None:
        """Write the manifest, remove the batch from the workers, stop our own cluster.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if hasattr(self, "_pending"):
                try:
                    self.worker_stats = self.stats()
                except Exception:  # noqa: BLE001 - statistics are a courtesy; a dying cluster has none
                    pass
                self._record(MANIFEST_ACTION, target=self.batch_id, done=len(self.results),
                             segments={label: list(pos) for label, pos in sorted(self._segments.items())})
                for future in list(self._pending):
                    future.release()
        finally:
            if hasattr(self, "progress"):
                self.progress.close()
            if self._client_log is not None:
                self._client_log.close()
            try:
                if self._own_cluster is None and hasattr(self, "_plugin"):
                    self.client.unregister_worker_plugin(self._plugin.name)
            finally:
                if self._own_cluster is not None:
                    if hasattr(self, "client"):
                        self.client.close()
                    self._own_cluster.close()

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and not self._closed:
            self.cancel()
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"Batch({len(self.jobs)} jobs, {len(self.results)} done, {state})"
