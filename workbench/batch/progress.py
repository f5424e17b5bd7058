"""A batch's progress: a tqdm bar (a widget in notebooks, text in terminals) and, in a notebook,
a link to the Dask dashboard.  IPython is imported only when a notebook kernel is running."""

from __future__ import annotations

import html
import sys
from typing import Any

from .results import JobResult

__all__ = ["Progress", "in_notebook"]


def in_notebook() -> bool:
    """Is this code running in a Jupyter kernel (not a terminal IPython, not a script)?"""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class Progress:
    """Counts finished jobs and those that did not end ``ok``.  ``enabled=None``: on in notebooks
    and when stderr is a terminal."""

    def __init__(self, total: int, enabled: bool | None, dashboard_link: str | None) -> None:
        notebook = in_notebook()
        if enabled is None:
            enabled = notebook or sys.stderr.isatty()
        self.not_ok = 0
        self._bar: Any = None
        if not enabled:
            return
        if notebook and dashboard_link:
            from IPython.display import HTML, display

            link = html.escape(dashboard_link, quote=True)
            display(HTML(f'<a href="{link}" target="_blank">Dask dashboard: {link}</a>'))
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc="batch", unit="job", dynamic_ncols=True)

    def update(self, result: JobResult) -> None:
        if not result.ok:
            self.not_ok += 1
        if self._bar is not None:
            self._bar.update(1)
            if not result.ok:
                self._bar.set_postfix(not_ok=self.not_ok, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
