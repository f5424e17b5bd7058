"""``workbench batch JOBS --cap ... [--workers N | --scheduler ADDRESS] [--audit DIR] -o results.parquet|csv``.

``JOBS`` is a folder of source files (one job per file: its name is the job id, its suffix the
language) or a JSON Lines file of ``{id, source|path, lang, inputs, caps}`` (a ``path`` is read
relative to the file's folder, and only below it or ``--jobs-root DIR``: no absolute path, no ``..``,
no symlink; :mod:`.paths`).  Exit codes: 0 every job ran (whatever it did: a violation or a
trap is a result), 2 bad input (the batch could not start, or a job's source did not compile),
130 interrupted (the results in so far are still written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import BatchError
from ..languages.detect import SUFFIXES
from .paths import read_below

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["register", "read_jobs"]


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    batch = subparsers.add_parser(
        "batch", help="run many modules on local worker processes or a Dask cluster",
        description="Run many jobs under one policy; write one row per job.",
        epilog="example: workbench batch submissions/ --cap time:limit:2s --workers 2 --audit audit/ -o results.csv",
    )
    batch.add_argument("jobs", type=Path, metavar="JOBS", help="a folder of source files, or a .jsonl file of jobs")
    batch.add_argument("--cap", action="append", default=[], metavar="CAP", help="grant a capability (repeatable)")
    where = batch.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (tcp://host:8786) instead")
    batch.add_argument("--root", default=".", help="host folder that every guest's / maps to (default: .)")
    batch.add_argument("--jobs-root", type=Path, metavar="DIR",
                       help="a job's 'path' names a file below DIR, relative to it (default: the jobs file's folder)")
    batch.add_argument("--audit", metavar="DIR", help="audit folder: one hash-chained segment per worker process")
    batch.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                       help="results: .parquet or .csv (value as JSON text)")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch.set_defaults(handler=_cmd_batch)
    return batch


def _from_file(job: dict[str, Any], root: Path, path: str) -> dict[str, Any]:
    """``job`` with its ``path`` read (below ``root`` only: :func:`~.paths.read_below`) into ``source``."""
    job = {k: v for k, v in job.items() if k != "path"}
    job["source"] = read_below(root, path, str(job.get("id", path)))
    name = PurePosixPath(path).name
    job.setdefault("lang", SUFFIXES.get(PurePosixPath(name).suffix.lower()))
    job.setdefault("name", PurePosixPath(name).stem)
    return job


def read_jobs(source: Path, root: Path | None = None) -> list[dict[str, Any]]:
    """The jobs of a folder of sources or of a JSON Lines file; :class:`BatchError` for bad input.

    Sources are read here, and only below ``root`` (default: the folder itself, or the jobs file's
    folder): a job's ``path`` that is absolute, climbs out with ``..`` or goes through a symlink is
    refused, naming the job (:mod:`.paths`).  In a folder of sources, a symlink is refused the same way.
    """
    if source.is_dir():
        base = (root or source).resolve()
        folder = source.resolve()
        if root is not None and not folder.is_relative_to(base):
            raise BatchError(f"the jobs folder {source} is not below --jobs-root {root}")
        names = sorted(e.name for e in os.scandir(folder) if PurePosixPath(e.name).suffix.lower() in SUFFIXES
                       and (e.is_symlink() or e.is_file(follow_symlinks=False)))
        if not names:
            raise BatchError(f"no source files in {source}", hint=f"files ending {', '.join(sorted(SUFFIXES))}")
        prefix = folder.relative_to(base).as_posix()
        return [_from_file({"id": name}, base, name if prefix == "." else f"{prefix}/{name}") for name in names]
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"cannot read the jobs file {source}: {exc}",
                         hint="JOBS is a folder of sources or a UTF-8 JSON Lines file") from exc
    jobs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except ValueError as exc:
            raise BatchError(f"{source}:{number}: not JSON ({exc})", hint="one JSON object per line") from exc
        if not isinstance(job, dict):
            raise BatchError(f"{source}:{number}: a job is a JSON object, not {type(job).__name__}")
        if "path" in job and "source" not in job:  # both: as_jobs refuses it, naming the job
            job = _from_file(job, (root or source.parent).resolve(), job["path"])
        jobs.append(job)
    return jobs


def _write(frame: "pd.DataFrame", output: Path) -> None:
    out = frame.copy()
    out["value"] = [json.dumps(v, default=str) if v is not None else None for v in out["value"]]
    if output.suffix.lower() == ".parquet":
        out.to_parquet(output, index=False)
    else:
        out.to_csv(output, index=False)


def _cmd_batch(options: argparse.Namespace) -> int:
    if options.output.suffix.lower() not in (".parquet", ".csv"):
        raise BatchError(f"cannot write {options.output}: the results go to a .parquet or .csv file")
    from . import run_many

    client = None
    if options.scheduler:
        from distributed import Client

        try:
            client = Client(options.scheduler, timeout="10s")
        except OSError as exc:
            raise BatchError(f"cannot reach the Dask scheduler {options.scheduler}: {exc}",
                             hint="check the address (tcp://host:8786) and that the scheduler runs") from exc
    try:
        jobs = read_jobs(options.jobs, options.jobs_root)
        batch = run_many(jobs, options.cap, workers=options.workers, client=client,
                         root=options.root, audit=options.audit, progress=False if options.no_progress else None)
        interrupted = False
        try:
            batch.wait()
        except KeyboardInterrupt:
            interrupted = True
        frame = batch.frame()
    finally:
        if client is not None:
            client.close()
    _write(frame, options.output)
    counts = frame["outcome"].astype(str).value_counts()
    print(", ".join(f"{n} {outcome}" for outcome, n in counts.items()), f"-> {options.output}", file=sys.stderr)
    if interrupted:
        return 130
    bad = frame["outcome"].astype(str).str.startswith("error (")
    for row in frame[bad].itertuples():
        print(f"workbench: bad input: job {row.job_id}: {str(row.error).splitlines()[0]}", file=sys.stderr)
    return 2 if bad.any() else 0
