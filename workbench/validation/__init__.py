"""The validation suites behind ``workbench modules test-limits | test-capabilities | test-violations``.

Each suite runs bundled probe modules (:mod:`workbench.probes`) and returns a
:class:`Report`: rows of expected versus measured, each with its own tolerance, so
a clean checkout can prove its limits, rights and violation handling in a few
seconds, and a regression names the row that broke.
"""

from __future__ import annotations

from .report import Report, Row, within

__all__ = ["Report", "Row", "within", "run_limits", "run_capabilities", "run_violations"]


def run_limits(*, seconds: float = 1.5) -> Report:
    """Each resource limit measured against its tolerance (see :mod:`.limits`)."""
    from .limits import run_limits as run

    return run(seconds=seconds)


def run_capabilities() -> Report:
    """Each capability allowed or denied as it should be (see :mod:`.capabilities`)."""
    from .capabilities import run_capabilities as run

    return run()


def run_violations() -> Report:
    """Each violation caught and classified (see :mod:`.violations`)."""
    from .violations import run_violations as run

    return run()
