"""``%sandbox_batch SOURCES``: many sources of the notebook, one results frame (:mod:`workbench.batch`).

A thin layer like :mod:`.magics`: find the sources in the notebook, call
:func:`~workbench.batch.run_many`, return its results frame.  What it adds is the
notebook's share:

- the sources are a notebook variable: a list of source texts, a pandas Series, or a
  DataFrame with ``--column COL`` (the index gives the job ids, so the results frame
  joins back onto the DataFrame);
- live progress and the Dask dashboard's link come from the batch itself
  (:mod:`workbench.batch.progress`);
- ■ (the kernel's interrupt) cancels the batch: the running guests stop at their next
  epoch tick, the jobs not started come back ``cancelled``, and the results already in are
  kept (in ``-o VAR``, and on the :class:`~.errors.RunInterrupted` error).

Bad input is a :class:`~workbench.errors.BatchError` (or the capability error of a bad
``--cap``) with a hint, raised before any cluster starts; a job that violates, traps or
does not compile is a row of the frame, not an error.  The policy options are those of
``%%sandbox`` (``--cap``, ``--policy``, the limit shortcuts) and ``%config
SandboxMagics.default_caps``/``default_root``/``on_violation`` apply here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, argument_group, kwds, magic_arguments

from ..errors import BatchError
from ..policy import Policy
from .errors import RunInterrupted
from .magic_helpers import close_match, plain_help
from .options import SHORTCUTS, resolve_policy, shortcut_capabilities

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BatchMagics", "batch_jobs"]

_EXAMPLES = """examples:
  %sandbox_batch programs --lang python --timeout 5s
  results = %sandbox_batch df --column source --cap filesystem:read:/data --client client
  %sandbox_batch submissions --workers 2 --audit audit/ -o results

The value is the results frame (one row per job, in the order given: job_id,
outcome, exit_code, stdout/stderr heads, violations, usage, value).  The stop
button (■) stops the running guests and keeps the results already in."""

_HINT = ("pass the name of a list of source texts, a pandas Series, or a DataFrame with --column COL; "
         "e.g. %sandbox_batch programs --lang python")


def _is_source(value: Any) -> bool:
    return isinstance(value, (str, bytes))


def batch_jobs(name: str, value: Any, column: str | None, lang: str | None) -> list[dict[str, Any]]:
    """The jobs for ``%sandbox_batch NAME [--column COL]``: one ``{id, source, lang}`` per source.

    ``value`` is what ``NAME`` holds.  Raises :class:`BatchError` (naming the variable, the
    column and the first bad item) for anything that is not a collection of source texts.
    """
    import pandas as pd

    ids: list[Any]
    if isinstance(value, pd.DataFrame):
        if column is None:
            raise BatchError(f"{name} is a DataFrame: say which column holds the sources",
                             hint=f"%sandbox_batch {name} --column COL (columns: "
                                  f"{', '.join(map(str, value.columns))})")
        if column not in value.columns:
            raise BatchError(f"{name} has no column {column!r}{close_match(column, list(map(str, value.columns)))}",
                             hint=f"its columns: {', '.join(map(str, value.columns))}")
        series = value[column]
        if isinstance(series, pd.DataFrame):
            raise BatchError(f"{name} has more than one column named {column!r}", hint="rename one of them")
        where = f"{name}[{column!r}]"
        ids, sources = list(series.index), list(series)
    elif column is not None:
        raise BatchError(f"--column {column}: {name} is a {type(value).__name__}, not a DataFrame",
                         hint="--column picks the sources' column of a DataFrame; drop it for a list or Series")
    elif isinstance(value, pd.Series):
        where, ids, sources = name, list(value.index), list(value)
    elif isinstance(value, (list, tuple)):
        where, ids, sources = name, list(range(len(value))), list(value)
    else:
        kind = "one source" if _is_source(value) else f"a {type(value).__name__}"
        raise BatchError(f"{name} holds {kind}, not a collection of sources", hint=_HINT)
    if not sources:
        raise BatchError(f"{where} is empty: there is nothing to run", hint=_HINT)
    for position, (job_id, source) in enumerate(zip(ids, sources)):
        if not _is_source(source):
            raise BatchError(f"{where}: item {job_id!r} is {type(source).__name__}, not source text",
                             hint="every item must be a source (str, or bytes for wasm); "
                                  f"the first bad one is at position {position}")
    return [{"id": str(job_id), "source": source, **({"lang": lang} if lang else {})}
            for job_id, source in zip(ids, sources)]


@magics_class
class BatchMagics(Magics):
    """``%sandbox_batch``: run a list or a DataFrame column of sources as one batch."""

    @property
    def _namespace(self) -> dict[str, Any]:
        assert self.shell is not None, "BatchMagics needs an IPython shell"
        return self.shell.user_ns

    def _settings(self) -> Any:
        """The ``SandboxMagics`` of this shell (named policies and ``%config`` defaults), if loaded."""
        return getattr(self.shell, "_workbench_magics", None)

    @plain_help("%")
    @magic_arguments()
    @kwds(epilog=_EXAMPLES)
    @argument("sources", metavar="SOURCES", help="a notebook variable: a list of sources, a Series, or a DataFrame")
    @argument("--column", metavar="COL", help="the DataFrame column that holds the sources (the index gives job ids)")
    @argument("--lang", metavar="L", help="wat, wasm, python or c for every source (default: detected per source)")
    @argument_group("capabilities")
    @argument("--cap", action="append", default=[], metavar="CAP", help="grant a capability (repeatable)")
    @argument("--policy", metavar="NAME", help="start from a policy defined with %%sandbox_policy (or a variable)")
    @argument("--root", metavar="DIR", help="host folder every guest's / maps to (default: .)")
    @argument("--timeout", metavar="T", help="wall-clock limit per job, e.g. 2s (time:limit:T)")
    @argument("--memory", metavar="M", help="linear memory cap per job, e.g. 64MB (memory:limit:M)")
    @argument("--cpu", metavar="P", help="CPU share (50%%) or CPU-time budget (2s) per job (cpu:limit:P)")
    @argument("--fuel", metavar="F", help="instruction budget per job, e.g. 1e9 (fuel:limit:F)")
    @argument("--on-violation", choices=["deny", "kill", "audit"], help="deny and go on (default), or kill the run")
    @argument_group("where it runs")
    @argument("--client", metavar="VAR", help="a dask.distributed Client in variable VAR (default: a LocalCluster)")
    @argument("--workers", type=int, default=2, metavar="N", help="worker processes of that LocalCluster (default 2)")
    @argument("--chunk-size", type=int, metavar="N", help="jobs per Dask task (default: up to 16)")
    @argument_group("results")
    @argument("--audit", metavar="DIR", help="audit folder: one hash-chained segment per worker (AuditLog.open_many)")
    @argument("-o", "--out", dest="out", metavar="VAR", help="also store the results frame in VAR")
    @argument("--no-progress", action="store_true", help="no progress bar (and no dashboard link)")
    @line_magic
    def sandbox_batch(self, line: str) -> "pd.DataFrame":
        """Run every source of a list, Series or DataFrame column in its own sandbox, on Dask workers.

        One policy for the whole batch; the value is the results frame.
        """
        args = self.sandbox_batch.parser.parse_argstring(line)  # UsageError on bad options
        namespace = self._namespace
        if args.sources not in namespace:
            public = [k for k in namespace if not k.startswith("_")]
            raise BatchError(f"no variable {args.sources!r} in the notebook{close_match(args.sources, public)}",
                             hint=_HINT)
        jobs = batch_jobs(args.sources, namespace[args.sources], args.column, args.lang)
        policy = self._policy(args)
        client = None
        if args.client is not None:
            client = namespace.get(args.client)
            if client is None or not all(hasattr(client, a) for a in ("submit", "register_plugin", "nthreads")):
                held = "nothing" if client is None else f"a {type(client).__name__}"
                raise BatchError(f"--client {args.client}: the variable holds {held}, not a Dask Client",
                                 hint="client = dask.distributed.Client(cluster); or drop --client for a LocalCluster")
        settings = self._settings()
        from ..batch import run_many

        batch = run_many(jobs, policy, workers=args.workers, client=client,
                         root=args.root or getattr(settings, "default_root", "."), audit=args.audit,
                         on_violation=args.on_violation or getattr(settings, "on_violation", "deny"),
                         chunk_size=args.chunk_size, progress=False if args.no_progress else None)
        try:
            batch.wait()
        except KeyboardInterrupt:  # ■: the batch cancelled itself and kept what was in; say so, keep the frame
            frame = batch.frame()
            if args.out:
                namespace[args.out] = frame
            done = int((frame.outcome != "cancelled").sum())
            where = f"; the results frame is in {args.out}" if args.out else "; -o VAR keeps the results frame"
            raise RunInterrupted(f"stopped the batch: {done} of {len(frame)} jobs done{where}", result=frame) from None
        frame = batch.frame()
        if args.out:
            namespace[args.out] = frame
        return frame

    def _policy(self, args: Any) -> Policy:
        settings = self._settings()
        named = getattr(settings, "policies", {})
        try:
            base = resolve_policy(args.policy, named, self._namespace)
        except KeyError as exc:
            raise BatchError(exc.args[0], hint="%sandbox_policy NAME CAP... defines one") from None
        shortcuts = {option: getattr(args, option) for option in SHORTCUTS}
        defaults = list(getattr(settings, "default_caps", []))
        return Policy.parse([*defaults, *base.to_strings(), *args.cap, *shortcut_capabilities(shortcuts)])
