"""The Jupyter view of the sandbox: magics, live gauges, summaries and plots.

``%load_ext workbench`` calls :func:`load_ipython_extension`, which registers

- the magics ``%%sandbox``, ``%sandbox run``, ``%sandbox_policy`` and
  ``%sandbox_audit`` (:mod:`.magics`), configurable with ``%config SandboxMagics.*``,
  and ``%sandbox_batch`` (:mod:`.batch_magic`: many sources on Dask workers);
- in terminal IPython only, a verbose text form of :class:`~workbench.RunResult`
  (reasons and timings); everywhere else a result shows its own one rendering
  (``RunResult._repr_mimebundle_``), stable text and rich HTML;
- one-line warnings for this package's warnings (no host paths, no source lines).

This is the only package that imports IPython, ipywidgets or matplotlib, and
it does so lazily: importing :mod:`workbench` (or this package) pulls in none
of them.  Modules, one job each:

- :mod:`.magics`    parse the line, call the library, present the result
- :mod:`.batch_magic`  ``%sandbox_batch``: a list or DataFrame column of sources as one batch
- :mod:`.options`   magic options → capabilities and default limits (pure)
- :mod:`.runner`    one run in a cell: live view + output + interrupt route
- :mod:`.live`      the run's state, fed by the event stream (pure)
- :mod:`.gauges`    usage vs limits as readings and levels (pure)
- :mod:`.refresh`   the message budget and the refresh thread (pure)
- :mod:`.widgets`   the ipywidgets live view
- :mod:`.streams`   guest stdout/stderr into the cell
- :mod:`.display`   RunResult as stable text and rich HTML
- :mod:`.plots`     matplotlib: usage over time and the violation timeline
- :mod:`.progress`  a progress bar for a first (slow) compile
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension", "plot_run"]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and result formatters on ``ipython``; silent, and safe to call twice."""
    from ..runtime import RunResult
    from .display import verbose_bundle
    from .batch_magic import BatchMagics
    from .magics import SandboxMagics

    existing = getattr(ipython, "_workbench_magics", None)
    if existing is None:
        magics = SandboxMagics(shell=ipython)
        ipython.register_magics(magics)
        ipython._workbench_magics = magics
    if getattr(ipython, "_workbench_batch_magics", None) is None:
        batch = BatchMagics(shell=ipython)
        ipython.register_magics(batch)
        ipython._workbench_batch_magics = batch
    verbose = getattr(ipython, "kernel", None) is None  # terminal IPython: nothing compares outputs
    if not verbose:  # a kernel: show the first compile of a large module (CPython) as a widget
        from ..languages.progress import set_progress_hook
        from .progress import widget_progress

        previous = set_progress_hook(widget_progress)
        if previous is not widget_progress:
            ipython._workbench_previous_progress = previous
    _short_warnings(ipython)
    if verbose:
        ipython.display_formatter.mimebundle_formatter.for_type(RunResult, verbose_bundle)
    else:  # a run that showed gauges: its value carries the final live view (gauges, timeline, summary)
        from .widgets import final_views

        ipython.display_formatter.mimebundle_formatter.for_type(RunResult, final_views)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what :func:`load_ipython_extension` added."""
    from ..runtime import RunResult

    previous = getattr(ipython, "_workbench_previous_progress", None)
    if previous is not None:
        from ..languages.progress import set_progress_hook

        set_progress_hook(previous)
        del ipython._workbench_previous_progress
    previous_show = getattr(ipython, "_workbench_previous_showwarning", None)
    if previous_show is not None:
        import warnings

        warnings.showwarning = previous_show
        del ipython._workbench_previous_showwarning
    for attribute in ("_workbench_magics", "_workbench_batch_magics"):
        magics = getattr(ipython, attribute, None)
        if magics is not None:
            table = ipython.magics_manager.magics
            for kind, names in magics.magics.items():
                for name in names:
                    table[kind].pop(name, None)
            if magics in getattr(ipython, "configurables", []):
                ipython.configurables.remove(magics)
            delattr(ipython, attribute)
    ipython.display_formatter.mimebundle_formatter.type_printers.pop(RunResult, None)


def _short_warnings(ipython: Any) -> None:
    """Show this package's warnings as one line, ``LanguageGuessWarning: guessed ...``.

    Python's default form names the file and line that warned and prints that line; from a
    magic, that is a host path inside IPython or the workbench and a line of our source,
    which tells a notebook user nothing.  Other warnings are shown as before."""
    import sys
    import warnings

    from ..errors import WorkbenchWarning

    if hasattr(ipython, "_workbench_previous_showwarning"):
        return
    previous = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        if issubclass(category, WorkbenchWarning):
            (file or sys.stderr).write(f"{category.__name__}: {message}\n")
        else:
            previous(message, category, filename, lineno, file, line)

    ipython._workbench_previous_showwarning = previous
    warnings.showwarning = show


def __getattr__(name: str) -> Any:
    if name == "plot_run":  # matplotlib only when a plot is asked for
        from .plots import plot_run

        return plot_run
    raise AttributeError(f"module 'workbench.jupyter' has no attribute {name!r}")
