"""How a :class:`~workbench.RunResult` looks in a notebook.

There is one rendering of a run, the runtime's (``RunResult._repr_mimebundle_``: stable
``text/plain``, rich ``text/html``; :mod:`workbench.runtime.render`).  This module only
re-exports it for the notebook layer, and adds the verbose text that terminal IPython
shows (where nothing compares outputs, reasons and timings help).
"""

from __future__ import annotations

from typing import Any

from ..runtime import RunResult, mount_line, result_html, result_limits, result_text
from .live import final_snapshot

__all__ = ["result_text", "result_html", "final_snapshot", "result_limits", "mount_line", "verbose_bundle"]


def verbose_bundle(result: RunResult, include: Any = None, exclude: Any = None) -> dict[str, str]:
    """The mime bundle with the verbose text (terminal IPython)."""
    return {"text/plain": result_text(result, verbose=True), "text/html": result_html(result)}
