"""What one job of a batch is: :class:`Job`, and turning what users hand in into jobs.

A job is a source, its language, the inputs a Python guest sees and, optionally, capabilities
of its own.  Those may only *narrow* the batch's policy: the job's effective policy is
``batch_policy.attenuate(job_caps)`` (:mod:`workbench.policy.attenuation`), so a job that asks
for a right the batch does not hold is refused before anything runs, with an
:class:`~workbench.errors.EscalationError` that names the job.

Everything is resolved on the client: a ``pathlib.Path`` source is read here (a worker on
another machine does not share our disk), ids are checked to be unique, and each job carries
its effective policy as canonical capability strings, so a worker parses nothing it was not
sent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

from ..errors import BatchError, CapabilityError, EscalationError
from ..languages.detect import SUFFIXES
from ..policy import Policy

__all__ = ["Job", "JobLike", "as_jobs"]


@dataclass(frozen=True)
class Job:
    """One run of a batch.

    - ``id``: unique in its batch (the results frame's ``job_id``); default: its position
    - ``source``: text or bytes (a ``Path`` is read when the batch is made)
    - ``lang``: ``"wat"``, ``"wasm"``, ``"c"``, ``"python"``; None detects it
    - ``inputs``: a Python guest's ``inputs`` dict; its ``result`` comes back as ``value``
    - ``caps``: capabilities of this job alone; they may only narrow the batch policy
    - ``args``, ``stdin``: the guest's ``argv[1:]`` and standard input
    - ``name``: the module name shown in results and audit records
    - ``module``: instead of a source, a catalog module (``extensions/``, ``WORKBENCH_EXTENSIONS``)
      run with ``inputs`` as its payload, under its manifest's request ∩ the job's policy
      (:meth:`Sandbox.run_module`); the client checks the name in its own catalog, and each
      worker runs it from its own
    """

    id: str
    source: Union[str, bytes]
    lang: str | None = None
    inputs: Mapping[str, Any] | None = None
    caps: tuple[str, ...] | None = None
    args: tuple[str, ...] = ()
    stdin: Union[str, bytes, None] = None
    name: str | None = None
    module: str | None = None
    #: the policy the job runs under (canonical strings), set by :func:`as_jobs`
    policy: tuple[str, ...] = field(default=(), repr=False)


JobLike = Union[Job, Mapping[str, Any], str, bytes, "os.PathLike[str]"]

_KEYS = {"id", "source", "path", "module", "lang", "inputs", "caps", "args", "stdin", "name"}


def _from_mapping(item: Mapping[str, Any], position: int) -> Job:
    unknown = set(item) - _KEYS
    if unknown:
        raise BatchError(f"job {position}: unknown key(s) {', '.join(sorted(map(str, unknown)))}",
                         hint=f"a job has the keys {', '.join(sorted(_KEYS))}")
    if sum(key in item for key in ("source", "path", "module")) != 1:
        raise BatchError(f"job {item.get('id', position)!r}: give exactly one of 'source', 'path' and 'module'",
                         hint="'source' is the program text, 'path' a file to read it from, 'module' the name "
                              "of a catalog module (workbench modules list)")
    if "module" in item:
        return _catalog_job(item, position)
    caps = item.get("caps")
    if isinstance(caps, str):
        caps = Policy.parse(caps).to_strings()
    source: Any = Path(item["path"]) if "path" in item else item["source"]
    job = Job(
        id=str(item.get("id", position)),
        source=b"",
        lang=item.get("lang"),
        inputs=item.get("inputs"),
        caps=None if caps is None else tuple(str(c) for c in caps),
        args=tuple(str(a) for a in item.get("args", ())),
        stdin=item.get("stdin"),
        name=item.get("name"),
    )
    return _with_source(job, source)


def _catalog_job(item: Mapping[str, Any], position: int) -> Job:
    """A job that runs a catalog module: its name must be in the catalog (checked here, on the client)."""
    from ..errors import SandboxError
    from ..modules import default_catalog

    name = item["module"]
    job_id = str(item.get("id", position))
    if not isinstance(name, str) or not name:
        raise BatchError(f"job {job_id!r}: 'module' is the name of a catalog module, not {name!r}",
                         hint="see `workbench modules list`")
    for key in ("lang", "args", "stdin"):
        if key in item:
            raise BatchError(f"job {job_id!r}: a module job takes no {key!r}",
                             hint="a catalog module's language and entry come from its manifest; pass data as 'inputs'")
    try:
        default_catalog().get(name)
    except SandboxError as exc:
        raise BatchError(f"job {job_id!r}: {exc.message}", hint=exc.hint or "see `workbench modules list`") from exc
    caps = item.get("caps")
    if isinstance(caps, str):
        caps = Policy.parse(caps).to_strings()
    return Job(id=job_id, source=b"", inputs=item.get("inputs"),
               caps=None if caps is None else tuple(str(c) for c in caps), name=item.get("name") or name, module=name)


def _with_source(job: Job, source: Any) -> Job:
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise BatchError(f"job {job.id!r}: cannot read {path}: {exc.strerror or exc}",
                             hint="check the path; sources are read on the client, before the batch starts") from exc
        return replace(job, source=content, lang=job.lang or SUFFIXES.get(path.suffix.lower()),
                       name=job.name or path.stem)
    if isinstance(source, (bytearray, memoryview)):
        return replace(job, source=bytes(source))
    if not isinstance(source, (str, bytes)):
        raise BatchError(f"job {job.id!r}: a source is text, bytes or a path, not {type(source).__name__}")
    return replace(job, source=source)


def _narrowed(job: Job, batch: Policy) -> Job:
    if job.caps is None:
        return replace(job, policy=tuple(batch.to_strings()))
    try:
        own = Policy.parse(list(job.caps))
        effective = batch.attenuate(own)
    except EscalationError as exc:
        raise EscalationError(f"job {job.id!r}: {exc.message}", text=exc.text, part=exc.part,
                              hint="a job's capabilities may only narrow the batch policy: grant the right to "
                                   "the whole batch, or drop it from the job") from exc
    except CapabilityError as exc:
        raise CapabilityError(f"job {job.id!r}: {exc.message}", text=exc.text, part=exc.part,
                              suggestion=exc.suggestion, hint=exc.hint) from exc
    return replace(job, policy=tuple(effective.to_strings()))


def as_jobs(items: Iterable[JobLike], policy: Policy) -> list[Job]:
    """``items`` as :class:`Job` objects with their effective policies; refuses bad input.

    An item is a :class:`Job`, a mapping (``{id, source|path, lang, inputs, caps, ...}``),
    source text or bytes, or a path.  Raises :class:`~workbench.errors.BatchError` for
    duplicate ids or a malformed item, :class:`~workbench.errors.EscalationError` for a job
    whose capabilities would widen the batch policy.
    """
    if isinstance(items, (str, bytes)) or isinstance(items, os.PathLike):
        raise BatchError("run_many takes a list of jobs, not one source",
                         hint="wrap it in a list: run_many([source], policy)")
    jobs: list[Job] = []
    seen: set[str] = set()
    for position, item in enumerate(items):
        if isinstance(item, Job):
            job = item if item.module is not None else _with_source(item, item.source)
        elif isinstance(item, Mapping):
            job = _from_mapping(item, position)
        else:
            job = _with_source(Job(id=str(position), source=b""), item)
        if job.name is not None and (job.name == "workbench" or job.name.startswith("workbench.")):
            raise BatchError(f"job {job.id!r}: the module name {job.name!r} is reserved",
                             hint="the audit trail marks the batch's own records with module 'workbench.batch': "
                                  "name the job's module otherwise")
        if job.id in seen:
            raise BatchError(f"two jobs have the id {job.id!r}", hint="give every job its own id")
        seen.add(job.id)
        jobs.append(_narrowed(job, policy))
    return jobs


def chunks(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """``jobs`` cut into lists of at most ``size``, in order."""
    return [list(jobs[i:i + size]) for i in range(0, len(jobs), max(1, size))]
