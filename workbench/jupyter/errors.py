"""Errors the notebook layer adds to :mod:`workbench.errors`.

Only one: an interrupted run.  It subclasses ``KeyboardInterrupt`` (not
``Exception``) because that is what it is: ``except Exception`` must not swallow
the user's ■, and ipykernel then aborts the rest of a "Run All" as it does for
any interrupted cell.  ``_render_traceback_`` keeps it to one line.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunInterrupted"]


class RunInterrupted(KeyboardInterrupt):
    """The kernel's interrupt stopped a sandboxed run; ``result`` is its RunResult."""

    def __init__(self, message: str, *, result: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self.message}"]
